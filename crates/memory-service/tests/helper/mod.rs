//! memory-service's own fixtures over the shared harness (`testkit`): the
//! binary under test, and what only its CLI prints. Everything else (the
//! sandbox, spawning, polls, HTTP, health waits) is `testkit`'s, re-exported
//! so each test module needs one `use`.

#![allow(dead_code, unused_imports)]

pub use testkit::*;

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
