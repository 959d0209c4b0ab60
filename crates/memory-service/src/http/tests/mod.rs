//! In-process router tests: `router(state)` driven with `oneshot`, no server,
//! no port. Every endpoint's success and error paths.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use memory_api::chat::{ChatJobState, ChatJobStatus, Queued};
use memory_api::search::{SearchResult, SearchResults, SourceType};
use memory_api::{ErrorBody, HealthReport};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, router};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::{Monitor, ServiceIdentity};

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) state: AppState,
}

pub(super) fn fixture() -> Fixture {
    fixture_with(memory_indexer::IndexerConfig::default())
}

/// [`fixture`] with the file indexer configured as `cfg`.
pub(super) fn fixture_with(cfg: memory_indexer::IndexerConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store =
        memory_store::Store::open(memory_store::StoreConfig::new(dir.path().join("m.sqlite"))).unwrap();
    let indexer = memory_indexer::Indexer::start(store.clone(), cfg).unwrap();
    let config = Config {
        home: dir.path().to_path_buf(),
        host: "127.0.0.1".into(),
        port: 5858,
        lock_check_interval: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(1),
        startup_grace: Duration::from_secs(15),
        cors_origins: vec!["http://localhost:5173".into()],
        embedding_model: dir.path().join("no-model"),
        chatdo_projects: None,
        allow_remote: false,
        header_timeout: crate::config::DEFAULT_HEADER_TIMEOUT,
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        integrity_check_interval: crate::config::DEFAULT_INTEGRITY_CHECK_INTERVAL,
        auth_token: None,
    };
    let monitor = Monitor::new(ServiceIdentity {
        service: "memory-service",
        pid: 1,
        instance_id: "test".into(),
        version: "0",
        host: "127.0.0.1".into(),
        port: 5858,
        home: dir.path().to_path_buf(),
        started_at: "t".into(),
    });
    monitor.set_ready();
    Fixture {
        state: AppState {
            monitor,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            services: Arc::new(super::ServicesCell::from(super::Services {
                store,
                indexer: Arc::new(indexer),
            })),
            semantic: Arc::default(),
        },
        _dir: dir,
    }
}

impl Fixture {
    pub(super) async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub(super) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(req("GET", path).body(Body::empty()).unwrap()).await
    }

    /// GET `path`, which must answer 200 with the contract type `T`.
    pub(super) async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let (s, v) = self.get(path).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        typed(v)
    }

    /// POST `body` to `path`, which must answer 200 with the contract type `T`.
    pub(super) async fn post_as<T: serde::de::DeserializeOwned>(&self, path: &str, body: Value) -> T {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, StatusCode::OK, "POST {path}: {v}");
        typed(v)
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            req("POST", path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn index(&self, project: &str, chat: &str, id: &str, content: &str) -> Queued {
        self.post_as("/index-chat-message", message(project, chat, id, content))
            .await
    }

    pub(super) async fn search(&self, body: Value) -> Vec<SearchResult> {
        self.post_as::<SearchResults>("/search", body).await.results
    }

    fn idle(&self) {
        assert!(
            self.state.store().unwrap().wait_idle(Duration::from_secs(30)),
            "indexing finished"
        );
    }
}

/// `v` read as the contract type `T` (a test failure naming the body if it is not).
pub(super) fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not the contract's shape ({e}): {v}"))
}

/// The `detail` of an error body (`None` when the body is not `{"detail": "..."}`).
pub(super) fn detail(v: &Value) -> Option<String> {
    serde_json::from_value::<ErrorBody>(v.clone())
        .ok()
        .map(|b| b.detail)
}

pub(super) fn req(method: &str, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1:5858")
}

fn message(project: &str, chat: &str, id: &str, content: &str) -> Value {
    json!({
        "project_id": project, "chat_id": chat, "message_id": id, "role": "user",
        "content": content, "timestamp": "2025-12-27T21:10:29.123456Z", "message_index": 0
    })
}

#[tokio::test]
async fn health_answers_with_identity() {
    let f = fixture();
    let v: HealthReport = f.get_as("/health").await;
    assert_eq!(
        (v.status.as_str(), v.service.as_str(), v.state),
        ("ok", "memory-service", memory_api::health::State::Ready)
    );
}

/// `GET /openapi.json` serves the document generated from the contract
/// types, without waiting for the database, and it names every data route.
#[tokio::test]
async fn openapi_document_is_served_from_the_contract_types() {
    let (_f, state, _open) = starting_state(Duration::from_millis(50));
    let resp = router(state)
        .oneshot(req("GET", "/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let want: Value = serde_json::from_str(&memory_api::openapi_json()).unwrap();
    assert_eq!(doc, want);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/health",
        "/sources",
        "/sources/{source_id}",
        "/reindex",
        "/search",
        "/index-chat-message",
        "/index-job-status/{job_id}",
        "/chats/{project_id}/{chat_id}",
        "/search-facts",
        "/facts",
        "/filetree/{source_id}/file",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
}

#[tokio::test]
async fn index_then_job_success_then_search_finds_it() {
    let f = fixture();
    let ack = f
        .index("p1", "c1", "m1", "The quick brown fox talks about zebras")
        .await;
    assert_eq!(ack.status, "queued");
    assert_eq!(ack.message, "Indexing job enqueued successfully");
    let job = ack.job_id.clone();
    assert!(job.starts_with("c1:m1:"), "{job}");
    f.idle();
    let (s, st) = f.get(&format!("/index-job-status/{job}")).await;
    assert_eq!(s, StatusCode::OK, "{st}");
    let status: ChatJobStatus = typed(st.clone());
    assert_eq!(status.state, ChatJobState::Success);
    assert_eq!(status.message_uuid.as_deref(), Some(ack.message_uuid.as_str()));
    // Every key present (null or not): typed reads cannot tell a missing key from null.
    for k in [
        "enqueue_time",
        "start_time",
        "end_time",
        "duration",
        "estimated_chunks",
        "computed_timeout",
        "error_message",
    ] {
        assert!(st.get(k).is_some(), "missing {k}");
    }
    let hits = f.search(json!({"project_id": "p1", "query": "zebras"})).await;
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(
        (h.source_type, h.chat_id.as_deref(), h.message_id.as_deref()),
        (SourceType::Chat, Some("c1"), Some("m1"))
    );
    assert_eq!(h.message_uuid.as_deref(), Some(ack.message_uuid.as_str()));
    assert!(h.file_path.is_none() && h.filetype.is_none());
    assert!((0.0..=1.0).contains(&h.score));
}

#[tokio::test]
async fn update_in_place_keeps_uuid_and_client_uuid_is_honoured() {
    let f = fixture();
    let uuid = "6f1c2a9e-8d7b-4c3a-9e1f-2b3c4d5e6f70";
    let mut m = message("p", "c", "m", "first words");
    m["message_uuid"] = json!(uuid);
    let a: Queued = f.post_as("/index-chat-message", m).await;
    assert_eq!(a.message_uuid, uuid);
    let b = f.index("p", "c", "m", "second words").await;
    assert_eq!(b.message_uuid, uuid, "same (chat, message) keeps its UUID");
    f.idle();
    assert!(
        f.search(json!({"project_id": "p", "query": "first"}))
            .await
            .is_empty()
    );
    assert_eq!(
        f.search(json!({"project_id": "p", "query": "second"}))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn projects_are_isolated_and_excluded_chats_are_not_searched() {
    let f = fixture();
    f.index("a", "c1", "1", "apples everywhere").await;
    f.index("a", "c2", "2", "apples again").await;
    f.index("b", "c3", "3", "apples in b").await;
    f.idle();
    let hits = f.search(json!({"project_id": "a", "query": "apples"})).await;
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.project_id == "a"));
    let hits = f
        .search(json!({"project_id": "a", "query": "apples", "exclude_chat_ids": ["c1"]}))
        .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chat_id.as_deref(), Some("c2"));
    let limited = f
        .search(json!({"project_id": "a", "query": "apples", "limit": 1}))
        .await;
    assert_eq!(limited.len(), 1);
}

#[tokio::test]
async fn delete_chat_answers_the_count_and_the_chat_is_gone() {
    let f = fixture();
    f.index("p", "c", "1", "pears one").await;
    f.index("p", "c", "2", "pears two").await;
    f.idle();
    let (s, v) = f
        .send(req("DELETE", "/chats/p/c").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"status": "ok", "message": "Deleted 2 chat messages for chat_id=c", "deleted_count": 2,
               "deleted_facts_count": 0})
    );
    assert!(
        f.search(json!({"project_id": "p", "query": "pears"}))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn hostile_queries_are_plain_text() {
    let f = fixture();
    f.index(
        "p",
        "c",
        "1",
        "NEAR the AND OR quotes \"x\" star* (paren) col:on -minus",
    )
    .await;
    f.idle();
    for q in [
        "\"",
        "*",
        "NEAR(",
        "AND",
        "OR OR",
        "-",
        ":",
        "(",
        ")",
        "a:b",
        "\"unterminated",
        "^x",
        "NOT",
        "",
        "   ",
        "🙂",
        "x\u{0}y",
    ] {
        let (s, v) = f.post("/search", json!({"project_id": "p", "query": q})).await;
        assert_eq!(s, StatusCode::OK, "query {q:?}: {v}");
    }
    assert_eq!(
        f.search(json!({"project_id": "p", "query": "(paren)"}))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx_with_detail() {
    let f = fixture();
    let cases: Vec<(Request<Body>, StatusCode)> = vec![
        (
            req("POST", "/index-chat-message").header(header::CONTENT_TYPE, "application/json").body(Body::from("{not json")).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            req("POST", "/index-chat-message")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"project_id": "p"}).to_string()))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            req("POST", "/index-chat-message")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"project_id": "p", "chat_id": 5, "message_id": "m", "role": "u", "content": "c", "timestamp": "t", "message_index": 0}).to_string()))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            // A "simple" cross-origin form post: never accepted.
            req("POST", "/index-chat-message")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(message("p", "c", "m", "x").to_string()))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            req("POST", "/search")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(vec![b' '; 11 * 1024 * 1024]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            req("POST", "/index-chat-message")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(vec![0xff, 0xfe, b'{']))
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (i, (r, want)) in cases.into_iter().enumerate() {
        let (s, v) = f.send(r).await;
        assert_eq!(s, want, "case {i}: {v}");
        assert!(detail(&v).is_some(), "case {i} has a detail: {v}");
    }
    let mut bad_ts = message("p", "c", "m", "x");
    bad_ts["timestamp"] = json!("yesterday");
    let (s, v) = f.post("/index-chat-message", bad_ts).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let mut bad_uuid = message("p", "c", "m", "x");
    bad_uuid["message_uuid"] = json!("not-a-uuid");
    assert_eq!(
        f.post("/index-chat-message", bad_uuid).await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = f.post("/search", json!({"project_id": "  ", "query": "x"})).await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (
            StatusCode::BAD_REQUEST,
            Some("project_id is required and cannot be empty")
        )
    );
    assert_eq!(
        f.post("/search", json!({"project_id": "p", "query": "x", "limit": 0}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, v) = f.get("/index-job-status/nope").await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::NOT_FOUND, Some("Job nope not found"))
    );
    let (s, v) = f.get("/no-such-route").await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::NOT_FOUND, Some("Not Found"))
    );
    let (s, _) = f.send(req("GET", "/search").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_huge_message_is_refused_and_the_writer_goes_on() {
    let f = fixture();
    let (s, v) = f
        .post(
            "/index-chat-message",
            message("p", "c", "big", &"x".repeat(2 * 1024 * 1024)),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    f.index("p", "c", "small", "still works").await;
}

#[tokio::test]
async fn foreign_hosts_are_refused_and_cors_allows_only_configured_origins() {
    let f = fixture();
    let r = Request::builder()
        .uri("/health")
        .header(header::HOST, "evil.example:5858")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(r).await.0, StatusCode::FORBIDDEN);

    let preflight = |origin: &str| {
        req("OPTIONS", "/search")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let ok = router(f.state.clone())
        .oneshot(preflight("http://localhost:5173"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "http://localhost:5173"
    );
    let bad = router(f.state.clone())
        .oneshot(preflight("http://evil.example"))
        .await
        .unwrap();
    assert!(bad.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_service_goes_on() {
    let f = fixture();
    let (s, v) = f.get("/__test/panic").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(detail(&v).is_some(), "{v}");
    assert_eq!(f.get("/health").await.0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_include_store_counters() {
    let f = fixture();
    f.index("p", "c", "1", "x").await;
    f.idle();
    let resp = router(f.state.clone())
        .oneshot(req("GET", "/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains("memory_service_store_messages_indexed_total 1"),
        "{text}"
    );
    assert!(text.contains("memory_service_store_writer_queue_depth"), "{text}");
}

/// A state whose services are not open yet (the daemon's first moments),
/// with requests waiting at most `wait`; and the services to open later.
fn starting_state(wait: Duration) -> (Fixture, AppState, super::Services) {
    let f = fixture();
    let services = Arc::new(super::ServicesCell::with_wait_limit(wait));
    let state = AppState {
        services: services.clone(),
        ..f.state.clone()
    };
    let open = super::Services {
        store: f.state.store().unwrap().clone(),
        indexer: f.state.indexer().unwrap().clone(),
    };
    (f, state, open)
}

/// ChatDO's order: `/health` first (it answers at once, `starting`), then a
/// data request at once. The request waits for the open and gets its normal
/// answer, not a 503.
#[tokio::test]
async fn a_request_arriving_while_the_store_opens_waits_and_is_answered() {
    let (_f, state, open) = starting_state(Duration::from_secs(30));
    let health = router(state.clone())
        .oneshot(req("GET", "/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let post = req("POST", "/index-chat-message")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(message("p", "c", "m", "hello").to_string()))
        .unwrap();
    let pending = tokio::spawn(router(state.clone()).oneshot(post));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while state.services.waiting() == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never waited");
        tokio::task::yield_now().await;
    }
    assert!(!pending.is_finished(), "answered before the store was open");
    assert!(state.services.set(open).is_ok());
    let resp = pending.await.unwrap().unwrap();
    let status = resp.status();
    let body: Queued = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        (status, body.status.as_str()),
        (StatusCode::OK, "queued"),
        "{body:?}"
    );
    assert_eq!(state.services.waiting(), 0);
}

/// An open that outlasts the wait: 503 with `Retry-After`, while `/health`
/// and `/metrics` never wait.
#[tokio::test]
async fn a_longer_open_is_a_503_with_retry_after() {
    let (_f, state, _open) = starting_state(Duration::from_millis(50));
    for path in ["/health", "/metrics", "/openapi.json"] {
        let r = router(state.clone())
            .oneshot(req("GET", path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = router(state.clone())
        .oneshot(
            req("POST", "/search")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json!({"project_id": "p", "query": "x"}).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
    let body: ErrorBody = serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(body.detail.contains("starting"), "{body:?}");
}

/// A failed open wakes the waiting requests at once (503), instead of at the
/// end of their wait.
#[tokio::test]
async fn a_failed_open_answers_the_waiting_requests() {
    let (_f, state, _open) = starting_state(Duration::from_secs(600));
    let pending =
        tokio::spawn(router(state.clone()).oneshot(req("GET", "/sources").body(Body::empty()).unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while state.services.waiting() == 0 {
        assert!(std::time::Instant::now() < deadline, "the request never waited");
        tokio::task::yield_now().await;
    }
    state.services.give_up();
    let r = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("answered long before the 600 s wait")
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

mod facts;
mod sources;
