//! Chat memory end to end with the real binary: index, job status, search,
//! update in place, isolation, deletion, hostile text, and `kill -9` during a
//! stream of writes from several clients.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use memory_api::chat::{ChatDeleted, ChatJobState, Queued};
use memory_api::search::{SearchResult, SearchResults, SourceType};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::helper::*;

fn search(port: u16, project: &str, query: &str, extra: Value) -> Vec<SearchResult> {
    let mut body = json!({"project_id": project, "query": query});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    post_as::<SearchResults>(port, "/search", &body).results
}

/// ChatDO's order (issue 10): `/health`, then at once a message. The message
/// must be accepted even when `/health` still says `starting`.
#[test]
fn a_message_posted_the_moment_health_first_answers_is_accepted() {
    let sb = Sandbox::new(bin());
    let mut p = sb.serve(0);
    let port = p.wait_port(&sb.home);
    let state = poll("the first /health answer", DEADLINE, || {
        if let Some(st) = p.try_status() {
            panic!("exited ({st:?}) before serving:\n{}", p.stderr_text());
        }
        health(port).map(|h| h.state)
    });
    let body = json!({"project_id": "proj", "chat_id": "c", "message_id": "m", "role": "user",
                      "content": "first words", "timestamp": "2026-01-02T03:04:05Z", "message_index": 0});
    let (s, v) = post(port, "/index-chat-message", &body);
    assert_eq!(s, 200, "health said {state:?} and then: {v}");
    assert_eq!(serde_json::from_value::<Queued>(v).unwrap().status, "queued");
    assert_eq!(p.stop(), 0);
}

#[test]
fn index_search_update_isolate_exclude_delete() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();

    let a = index(
        port,
        "proj",
        "chat1",
        "m1",
        "Remember the capybara named Bartholomew",
    );
    let b = index(port, "proj", "chat2", "m2", "Another capybara story");
    let c = index(port, "other", "chat3", "m3", "A capybara in another project");
    for ack in [&a, &b, &c] {
        assert_eq!(wait_job(port, &ack.job_id).state, ChatJobState::Success);
    }
    let hits = search(port, "proj", "capybara", json!({}));
    assert_eq!(hits.len(), 2, "project isolation: {hits:?}");
    assert!(
        hits.iter()
            .all(|h| h.source_type == SourceType::Chat && h.project_id == "proj")
    );
    assert!(hits[0].score >= hits[1].score, "best first");
    let hits = search(port, "proj", "capybara", json!({"exclude_chat_ids": ["chat1"]}));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chat_id.as_deref(), Some("chat2"));

    // Update in place: same (chat, message), new content, same UUID.
    let a2 = index(port, "proj", "chat1", "m1", "Now it is about a wombat");
    assert_eq!(a2.message_uuid, a.message_uuid);
    wait_job(port, &a2.job_id);
    assert!(search(port, "proj", "Bartholomew", json!({})).is_empty());
    assert_eq!(
        search(port, "proj", "wombat", json!({}))[0].message_uuid,
        Some(a.message_uuid.clone())
    );

    for q in [
        "\"",
        "NEAR(a b)",
        "a AND",
        "OR",
        "-x",
        "col:x",
        "(",
        "*",
        "\u{202e}",
    ] {
        let (s, v) = try_post(port, "/search", &json!({"project_id": "proj", "query": q})).unwrap();
        assert_eq!(s, 200, "hostile query {q:?}: {v}");
    }

    let (s, v) = delete(port, "/chats/proj/chat2");
    assert_eq!(s, 200, "{v}");
    assert_eq!(serde_json::from_value::<ChatDeleted>(v).unwrap().deleted_count, 1);
    assert!(search(port, "proj", "capybara", json!({})).is_empty());
    assert_eq!(search(port, "other", "capybara", json!({})).len(), 1);
    assert_eq!(p.stop(), 0);
}

#[test]
fn acknowledged_messages_survive_kill_9_mid_stream() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let token = format!("tok{c}x{i}q");
                    let body = json!({"project_id": "crash", "chat_id": format!("c{c}"), "message_id": format!("m{i}"),
                                      "role": "user", "content": format!("message {token} body"),
                                      "timestamp": "2026-01-02T03:04:05", "message_index": i});
                    match try_post(port, "/index-chat-message", &body) {
                        Ok((200, _)) => acked.lock().unwrap().push(token),
                        _ => return, // the server died: stop this client
                    }
                }
            })
        })
        .collect();
    poll("200 acknowledged messages", DEADLINE, || {
        (acked.lock().unwrap().len() >= 200).then_some(())
    });
    p.signal(Signal::SIGKILL);
    p.wait_code_or_signal();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // The database as the crash left it: recovery yields a sound database.
    let db = sb.home.join("memory.sqlite");
    {
        let store = memory_store::Store::open(memory_store::StoreConfig::new(&db)).unwrap();
        // As the service would: pending chat jobs resume while the store is open.
        let chat_stage = memory_indexer::ChatStage::start(store.clone()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        chat_stage.shutdown();
        store.shutdown().unwrap();
    }

    // Restart: pending work resumes; every acknowledged message is searchable.
    let (mut p, port) = sb.start();
    for token in &acked {
        poll(&format!("{token} to be searchable"), DEADLINE, || {
            let hits = search(port, "crash", token, json!({"limit": 1}));
            hits.first()
                .filter(|h| h.text.contains(token.as_str()))
                .map(|_| ())
        });
    }
    assert_eq!(p.stop(), 0);
    let store = memory_store::Store::open(memory_store::StoreConfig::new(&db)).unwrap();
    let _chat_stage = memory_indexer::ChatStage::start(store.clone()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    eprintln!(
        "acknowledged before kill -9: {}; all searchable after restart",
        acked.len()
    );
}
