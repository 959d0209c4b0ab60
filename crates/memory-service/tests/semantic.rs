//! Semantic search end to end with the real binary and the real test model
//! (all-MiniLM-L6-v2 from `scripts/fetch-test-model.sh`; a missing model fails the
//! test with that command, never skips it): meaning finds what words miss, the
//! backlog shows in `/health`, and a `kill -9` in the middle of embedding loses
//! nothing: the next start embeds what is missing.

use std::path::PathBuf;
use std::time::Duration;

use memory_api::facts::Facts;
use memory_api::health::{SemanticReport, SemanticState};
use memory_api::search::{SearchResult, SearchResults};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::helper::*;

/// The model directory, or a panic naming the command that fetches it.
fn model_dir() -> PathBuf {
    let dir = memory_embedding::test_model_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "test model missing at {}: run scripts/fetch-test-model.sh",
        dir.display()
    );
    dir
}

/// Generous: the first load hashes and maps ~90 MB; embedding in a debug build of
/// our crates (the numeric crates are optimised) is a few hundred texts a second.
const SEMANTIC_DEADLINE: Duration = Duration::from_secs(180);

fn semantic(port: u16) -> SemanticReport {
    health(port).map(|h| h.semantic).unwrap_or_default()
}

/// Waits until the model is loaded and at least `chunks` chunks are embedded with
/// none pending.
fn wait_embedded(port: u16, chunks: u64) -> SemanticReport {
    poll(
        "semantic search to be ready with nothing pending",
        SEMANTIC_DEADLINE,
        || {
            let s = semantic(port);
            assert_ne!(s.state, SemanticState::Error, "the model failed to load: {s:?}");
            (s.state == SemanticState::Ready && s.pending_chunks == 0 && s.embedded_chunks >= chunks)
                .then_some(s)
        },
    )
}

fn message(project: &str, chat: &str, id: &str, content: &str) -> serde_json::Value {
    json!({
        "project_id": project, "chat_id": chat, "message_id": id, "role": "user",
        "content": content, "timestamp": "2025-06-01T10:00:00Z", "message_index": 0,
    })
}

fn search(port: u16, project: &str, query: &str) -> Vec<SearchResult> {
    post_as::<SearchResults>(
        port,
        "/search",
        &json!({"project_id": project, "query": query, "limit": 5}),
    )
    .results
}

#[test]
fn meaning_finds_what_words_miss_and_health_reports_it() {
    let model = model_dir();
    let sb = Sandbox::new(bin());
    let (home, port_s, model_s) = (
        sb.home.display().to_string(),
        "0".to_string(),
        model.display().to_string(),
    );
    let mut p = sb.spawn(
        &[
            "--home",
            &home,
            "--port",
            &port_s,
            "--embedding-model",
            &model_s,
            "serve",
        ],
        &[],
    );
    let port = p.wait_port(&sb.home);
    p.wait_ready(port);
    let texts = [
        "My golden retriever chewed through the garden hose again.",
        "Stock markets fell sharply today after the announcement.",
        "We agreed to move the Postgres upgrade to next sprint.",
        "The weather in Lisbon was warm and sunny all week.",
    ];
    for (i, t) in texts.iter().enumerate() {
        let (status, body) = post(
            port,
            "/index-chat-message",
            &message("p", "c", &format!("m{i}"), t),
        );
        assert_eq!(status, 200, "{body}");
    }
    let s = wait_embedded(port, texts.len() as u64);
    assert!(
        s.model
            .as_deref()
            .is_some_and(|m| m.starts_with("all-MiniLM-L6-v2@")),
        "{s:?}"
    );

    // No word in common with the dog message: only its meaning finds it.
    let hits = search(port, "p", "puppy");
    assert_eq!(hits[0].message_id.as_deref(), Some("m0"), "{hits:?}");
    let hits = search(port, "p", "what did we decide about the database migration");
    assert_eq!(hits[0].message_id.as_deref(), Some("m2"), "{hits:?}");
    for h in &hits {
        assert!((0.0..=1.0).contains(&h.score), "{h:?}");
    }
    // Scores mean something: the related message clearly above an unrelated one. The
    // weather message sits next to it in the same chat, so it shares a little of its
    // score by design (the context prior, README "Ranking": 0.75 / 1.75 of it at most);
    // it must stay below half the match's score.
    let top = hits[0].score;
    let weather = hits
        .iter()
        .find(|h| h.message_id.as_deref() == Some("m3"))
        .map(|h| h.score);
    assert!(weather.is_none_or(|w| top > 2.0 * w && top > w + 0.1), "{hits:?}");

    // Facts by meaning: "favourite colour" shares no `LIKE` keyword with the key
    // `user.favorites.color` (British spelling), so only its vector can find it.
    for (key, value) in [("user.favorites.color", "blue"), ("user.home.city", "Lisbon")] {
        let (status, body) = post(
            port,
            "/facts",
            &json!({"project_id": "p", "fact_key": key, "value_text": value, "value_type": "string"}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let facts = poll("the colour fact found by meaning", DEADLINE, || {
        let facts = post_as::<Facts>(
            port,
            "/search-facts",
            &json!({"project_id": "p", "query": "what is my favourite colour?"}),
        )
        .facts;
        (!facts.is_empty()).then_some(facts)
    });
    assert_eq!(facts[0].fact_key, "user.favorites.color", "{facts:?}");
    assert!(
        facts.iter().all(|f| f.fact_key != "user.home.city"),
        "unrelated: {facts:?}"
    );
    // A keyword match still comes first when the meaning points elsewhere.
    let body: Facts = post_as(
        port,
        "/search-facts",
        &json!({"project_id": "p", "query": "Lisbon colour"}),
    );
    assert_eq!(body.facts[0].fact_key, "user.home.city", "{body:?}");

    let (_, metrics) = crate::helper::get_text(port, "/metrics");
    assert!(
        metrics.contains("memory_service_semantic_state{state=\"ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("memory_service_embedding_pending_chunks 0"),
        "{metrics}"
    );
    assert_eq!(p.stop(), 0);
}

#[test]
fn without_a_model_health_says_how_to_install_one_and_search_still_works() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    let s = semantic(port);
    assert_eq!(s.state, SemanticState::Off, "{s:?}");
    let reason = s.reason.as_deref().expect("reason");
    assert!(reason.contains("memory-service model install"), "{reason}");
    let (status, _) = post(
        port,
        "/index-chat-message",
        &message("p", "c", "m", "the osprey dives"),
    );
    assert_eq!(status, 200);
    let hits = poll("the message to be searchable", DEADLINE, || {
        let h = search(port, "p", "osprey");
        (!h.is_empty()).then_some(h)
    });
    assert!(hits[0].score > 0.9, "{hits:?}");
    assert_eq!(p.stop(), 0);
}

#[test]
fn kill_9_while_embedding_loses_no_vector() {
    let model = model_dir();
    let sb = Sandbox::new(bin());
    let (home, port_s, model_s) = (
        sb.home.display().to_string(),
        "0".to_string(),
        model.display().to_string(),
    );
    let args = [
        "--home",
        &home,
        "--port",
        &port_s,
        "--embedding-model",
        &model_s,
        "serve",
    ];
    let mut p = sb.spawn(&args, &[]);
    let port = p.wait_port(&sb.home);
    p.wait_ready(port);
    let n = 300u64;
    for i in 0..n {
        let text = format!(
            "note {i}: the quarterly report about project number {i} is due on day {}",
            i % 28
        );
        let (status, _) = post(
            port,
            "/index-chat-message",
            &message("p", "c", &format!("m{i}"), &text),
        );
        assert_eq!(status, 200);
    }
    // Killed as soon as embedding has started and before it can have finished.
    poll("embedding to start", SEMANTIC_DEADLINE, || {
        let s = semantic(port);
        (s.embedded_chunks > 0).then_some(())
    });
    p.signal(Signal::SIGKILL);
    let _ = p.wait_code_or_signal();

    let mut p = sb.spawn(&args, &[]);
    let port = p.wait_port(&sb.home);
    p.wait_ready(port);
    let s = wait_embedded(port, n);
    assert_eq!(s.embedded_chunks, n, "{s:?}");
    assert_eq!(p.stop(), 0);
}

#[test]
fn words_inside_cjk_text_are_found_over_http() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    let texts = [
        "我们决定使用静默模式部署播客服务，数据库选用飞书。",
        "東京都に住んでいます。テストは明日です。",
        "步2 重跑gen-itgc后50条悬空引用清零",
    ];
    for (i, t) in texts.iter().enumerate() {
        let (status, _) = post(
            port,
            "/index-chat-message",
            &message("p", "c", &format!("m{i}"), t),
        );
        assert_eq!(status, 200);
    }
    for (q, want) in [
        ("静默", "m0"),
        ("数据库", "m0"),
        ("東京", "m1"),
        ("テスト", "m1"),
        ("itgc", "m2"),
    ] {
        let hits = poll(&format!("{q} to be found"), DEADLINE, || {
            let h = search(port, "p", q);
            (!h.is_empty()).then_some(h)
        });
        assert_eq!(hits.len(), 1, "{q}: {hits:?}");
        assert_eq!(hits[0].message_id.as_deref(), Some(want), "{q}");
    }
    assert_eq!(p.stop(), 0);
}
