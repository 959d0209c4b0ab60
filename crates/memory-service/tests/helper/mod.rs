//! memory-service's own fixtures over the shared harness (`testkit`): the
//! binary under test, and what only its CLI prints. Everything else (the
//! sandbox, spawning, polls, HTTP, health waits) is `testkit`'s, re-exported
//! so each test module needs one `use`.

#![allow(dead_code, unused_imports)]

pub use testkit::*;

use memory_api::chat::{ChatJobState, ChatJobStatus, Queued};

/// Posts a user message (`message_index` 1, a fixed timestamp) and checks it was queued.
pub fn index(port: u16, project: &str, chat: &str, id: &str, content: &str) -> Queued {
    let body = serde_json::json!({"project_id": project, "chat_id": chat, "message_id": id,
        "role": "user", "content": content, "timestamp": "2026-01-02T03:04:05Z", "message_index": 1});
    let v: Queued = post_as(port, "/index-chat-message", &body);
    assert_eq!(v.status, "queued");
    v
}

/// Polls a chat job until it ends (`success` or `error`); its last status.
pub fn wait_job(port: u16, job: &str) -> ChatJobStatus {
    poll(&format!("job {job} to finish"), DEADLINE, || {
        let (s, v) = get(port, &format!("/index-job-status/{job}"))?;
        let st: ChatJobStatus = serde_json::from_value(v).ok().filter(|_| s == 200)?;
        matches!(st.state, ChatJobState::Success | ChatJobState::Error).then_some(st)
    })
}

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memory-service")
}

/// Sends SIGSTOP to `pid` and waits until the kernel shows it stopped: the
/// signal is delivered when the process next runs, and until then a look at
/// `/proc` (ours, or a command's) still sees it running.
pub fn freeze(pid: u32) {
    use single_instance::process::{RunState, process_facts};
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    poll(&format!("pid {pid} to be stopped"), DEADLINE, || {
        process_facts(pid)
            .filter(|p| p.run_state == RunState::Stopped)
            .map(|_| ())
    });
}

/// The `PID:` value printed by `start`.
pub fn printed_pid(stdout: &str) -> Option<u32> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("PID:"))
        .and_then(|p| p.trim().parse().ok())
}
