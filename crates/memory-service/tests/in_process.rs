//! The data API in-process: [`daemon::serve`] on a 127.0.0.1:0 listener in
//! this test's own runtime, over a temp home. No child, no lock, no wait for
//! a port: the listener is bound before `serve` runs. Lock, race, kill and
//! signal tests stay on real processes (`lifecycle`, `serve`, `storage`).

use memory_api::chat::{ChatDeleted, ChatJobState};
use memory_api::facts::{Fact, Facts};
use memory_api::search::SearchResults;
use memory_service::config::{Config, ConfigArgs};
use memory_service::daemon::{self, Shared};
use memory_service::exit_code::ExitCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helper::*;

/// One in-process instance; cancelled and awaited by [`InProcess::stop`]
/// (or, if a test fails first, dropped with its runtime).
struct InProcess {
    port: u16,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<ExitCode>>,
    runtime: tokio::runtime::Runtime,
    /// The home; removed after the runtime (fields drop in order).
    _home: tempfile::TempDir,
}

impl InProcess {
    /// Serves a fresh temp home on 127.0.0.1:0 and waits for `on_ready`
    /// (the data is open).
    fn start() -> InProcess {
        let home = tempfile::tempdir().unwrap();
        let args = ConfigArgs {
            home: Some(home.path().to_path_buf()),
            port: Some(0),
            ..ConfigArgs::default()
        };
        // No environment: no MEMORY_SERVICE_* of the caller, defaults only.
        let config = Config::load(&args, &|_| None).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let bound = listener.local_addr().unwrap();
        let shared = Shared::unlocked(&config, bound);
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let on_ready = move || {
            let _ = ready_tx.send(());
        };
        let task = runtime.spawn(daemon::serve(
            listener,
            config,
            shared,
            shutdown.clone(),
            on_ready,
        ));
        ready_rx
            .recv_timeout(DEADLINE)
            .expect("serve to open the data before the deadline");
        InProcess {
            port: bound.port(),
            shutdown,
            task,
            runtime,
            _home: home,
        }
    }

    /// Cancels the shutdown token and returns what `serve` returned.
    fn stop(self) -> ExitCode {
        self.shutdown.cancel();
        let served = self.runtime.block_on(self.task).expect("the serve task");
        served.unwrap_or_else(|e| panic!("{e:#}"))
    }
}

fn search_chat_ids(port: u16, project: &str, query: &str) -> Vec<String> {
    let v: SearchResults = post_as(port, "/search", &json!({"project_id": project, "query": query}));
    v.results.into_iter().filter_map(|r| r.chat_id).collect()
}

#[test]
fn health_names_this_process_and_shutdown_stops_serving() {
    let s = InProcess::start();
    let h = health(s.port).expect("/health answers");
    assert_eq!((h.pid, h.port), (std::process::id(), s.port), "{h:?}");
    let port = s.port;
    assert_eq!(s.stop(), ExitCode::Ok);
    assert_eq!(
        std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_err()
            .kind(),
        std::io::ErrorKind::ConnectionRefused,
        "the listener is closed once serve returns"
    );
}

#[test]
fn chat_index_search_delete() {
    let s = InProcess::start();
    let a = index(
        s.port,
        "proj",
        "chat1",
        "m1",
        "Remember the capybara named Bartholomew",
    );
    let b = index(s.port, "proj", "chat2", "m2", "Another capybara story");
    let c = index(s.port, "other", "chat3", "m3", "A capybara in another project");
    for ack in [&a, &b, &c] {
        assert_eq!(wait_job(s.port, &ack.job_id).state, ChatJobState::Success);
    }
    let mut found = search_chat_ids(s.port, "proj", "capybara");
    found.sort();
    assert_eq!(found, ["chat1", "chat2"], "only this project's chats");
    let (status, v) = delete(s.port, "/chats/proj/chat1");
    assert_eq!(status, 200, "{v}");
    let deleted: ChatDeleted = serde_json::from_value(v).unwrap();
    assert_eq!(deleted.deleted_count, 1, "{deleted:?}");
    assert_eq!(search_chat_ids(s.port, "proj", "capybara"), ["chat2"]);
    assert_eq!(s.stop(), ExitCode::Ok);
}

#[test]
fn client_errors_have_the_detail_body() {
    let s = InProcess::start();
    let (status, v) = get(s.port, "/index-job-status/no-such-job").expect("an answer");
    assert_eq!(status, 404, "{v}");
    let body: memory_api::ErrorBody = serde_json::from_value(v).unwrap();
    assert!(body.detail.contains("no-such-job"), "{body:?}");
    // A missing field: the contract's validation status, the same shape.
    let (status, v) = post(s.port, "/index-chat-message", &json!({"project_id": "p"}));
    assert_eq!(status, 422, "{v}");
    let body: memory_api::ErrorBody = serde_json::from_value(v).unwrap();
    assert!(!body.detail.is_empty(), "{body:?}");
    assert_eq!(s.stop(), ExitCode::Ok);
}

/// Facts: stored after the commit, found by `/search-facts` with the
/// original's wire, deleted with their chat (moved from `chat`: it needs no
/// real process).
#[test]
fn facts_store_search_and_go_with_their_chat() {
    let s = InProcess::start();
    let port = s.port;
    let ack = index(port, "proj", "chat1", "m1", "my favourite colour is teal");
    let fact: Fact = post_as(
        port,
        "/facts",
        &json!({"project_id": "proj", "fact_key": "user.favorite.color", "value_text": "teal",
                "source_message_uuid": ack.message_uuid}),
    );
    let v: Facts = post_as(
        port,
        "/search-facts",
        &json!({"project_id": "proj", "query": "favorite color?"}),
    );
    assert_eq!(v.facts[0].fact_id, fact.fact_id);
    assert_eq!(
        v.facts[0].source_message_uuid.as_deref(),
        Some(ack.message_uuid.as_str())
    );
    let v: Facts = post_as(
        port,
        "/search-facts",
        &json!({"project_id": "proj", "query": "color", "exclude_message_uuid": ack.message_uuid}),
    );
    assert!(v.facts.is_empty(), "{v:?}");
    let (st, v) = delete(port, "/chats/proj/chat1");
    assert_eq!(st, 200, "{v}");
    let deleted: ChatDeleted = serde_json::from_value(v).unwrap();
    assert_eq!(
        (deleted.deleted_count, deleted.deleted_facts_count),
        (1, 1),
        "{deleted:?}"
    );
    let v: Facts = get_as(port, "/facts?project_id=proj&include_history=true");
    assert!(v.facts.is_empty(), "{v:?}");
    assert_eq!(s.stop(), ExitCode::Ok);
}
