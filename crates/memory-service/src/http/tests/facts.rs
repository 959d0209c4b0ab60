//! In-process tests of the facts endpoints and of facts deleted with their chat.

use axum::body::Body;
use axum::http::StatusCode;
use memory_api::StatusMessage;
use memory_api::chat::Queued;
use memory_api::facts::{Fact, Facts};
use serde_json::{Value, json};

use super::{Fixture, detail, fixture, message, req, typed};

const PROJECT: &str = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";

async fn store(f: &Fixture, key: &str, value: &str, extra: Value) -> Value {
    let mut body = json!({"project_id": PROJECT, "fact_key": key, "value_text": value});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    let (s, v) = f.post("/facts", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn values(v: &Value) -> Vec<String> {
    typed::<Facts>(v.clone())
        .facts
        .into_iter()
        .map(|f| f.value_text)
        .collect()
}

/// The original's response shape, field by field.
fn assert_wire(fact: &Value) {
    let keys: Vec<&str> = fact.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "fact_id",
        "project_id",
        "fact_key",
        "value_text",
        "value_type",
        "confidence",
        "source_message_uuid",
        "created_at",
        "effective_at",
        "supersedes_fact_id",
        "is_current",
    ];
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want, "{fact}");
    assert!(
        fact["is_current"].is_boolean() && fact["confidence"].is_f64(),
        "{fact}"
    );
}

#[tokio::test]
async fn store_list_search_delete() {
    let f = fixture();
    let first = store(&f, "user.favorite.color", "red", json!({})).await;
    assert_wire(&first);
    let first: Fact = typed(first);
    assert_eq!(
        (first.value_type.as_str(), first.confidence, first.is_current),
        ("string", 1.0, true)
    );
    let second: Fact = typed(
        store(
            &f,
            "user.favorite.color",
            "blue",
            json!({"value_type": "string", "confidence": 0.8, "effective_at": "2026-01-01T00:00:00"}),
        )
        .await,
    );
    assert_eq!(second.supersedes_fact_id.as_deref(), Some(first.fact_id.as_str()));
    assert_eq!(second.effective_at, "2026-01-01T00:00:00");
    store(&f, "user.age", "41", json!({"value_type": "number"})).await;

    let (s, v) = f.get(&format!("/facts?project_id={PROJECT}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(values(&v), ["41", "blue"]);
    let (_, v) = f
        .get(&format!("/facts?project_id={PROJECT}&include_history=true"))
        .await;
    assert_eq!(values(&v), ["41", "blue", "red"]);

    let (s, v) = f
        .post(
            "/search-facts",
            json!({"project_id": PROJECT, "query": "what is my favorite color"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(values(&v), ["blue"], "current facts only");
    assert_wire(&v["facts"][0]);
    let (_, v) = f
        .post(
            "/search-facts",
            json!({"project_id": PROJECT, "query": "color", "limit": 5, "exclude_message_uuid": null}),
        )
        .await;
    assert_eq!(values(&v), ["blue"]);

    let id = &second.fact_id;
    let del = |path: String| req("DELETE", &path).body(Body::empty()).unwrap();
    let (s, v) = f.send(del(format!("/facts/{id}"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        typed::<StatusMessage>(v),
        StatusMessage::ok(format!("Fact '{id}' deleted successfully"))
    );
    let (s, v) = f.send(del(format!("/facts/{id}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = f.get(&format!("/facts?project_id={PROJECT}")).await;
    assert_eq!(values(&v), ["41", "red"], "the previous fact is current again");
}

#[tokio::test]
async fn bad_fact_requests_are_4xx_with_detail() {
    let f = fixture();
    let cases = [
        (
            "/search-facts",
            json!({"project_id": "", "query": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/search-facts",
            json!({"project_id": "  ", "query": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/search-facts",
            json!({"project_id": "p"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/search-facts",
            json!({"project_id": "p", "query": "x", "limit": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/facts",
            json!({"project_id": "p", "fact_key": "k"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/facts",
            json!({"project_id": "", "fact_key": "k", "value_text": "v"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/facts",
            json!({"project_id": "p", "fact_key": "k", "value_text": "v", "value_type": "text"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/facts",
            json!({"project_id": "p", "fact_key": "k", "value_text": "v", "confidence": 2}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/facts",
            json!({"project_id": "p", "fact_key": "k", "value_text": "v", "source_message_uuid": "x"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, want) in cases {
        let (s, v) = f.post(path, body.clone()).await;
        assert_eq!(s, want, "{path} {body}: {v}");
        assert!(detail(&v).is_some(), "{v}");
    }
    let (s, v) = f
        .post("/search-facts", json!({"project_id": "", "query": "x"}))
        .await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (
            StatusCode::BAD_REQUEST,
            Some("project_id is required and cannot be empty")
        )
    );
    assert_eq!(f.get("/facts").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(f.get("/facts?project_id=").await.0, StatusCode::BAD_REQUEST);
}

/// `DELETE /chats/...` deletes the facts stored from the chat's messages and
/// reports both counts; other chats' facts stay.
#[tokio::test]
async fn deleting_a_chat_deletes_its_facts() {
    let f = fixture();
    let a: Queued = f
        .post_as(
            "/index-chat-message",
            message(PROJECT, "doomed", "1", "I like red"),
        )
        .await;
    let b: Queued = f
        .post_as(
            "/index-chat-message",
            message(PROJECT, "kept", "2", "I live in Lyon"),
        )
        .await;
    store(
        &f,
        "user.color",
        "red",
        json!({"source_message_uuid": a.message_uuid}),
    )
    .await;
    store(
        &f,
        "user.city",
        "Lyon",
        json!({"source_message_uuid": b.message_uuid}),
    )
    .await;
    let (s, v) = f
        .send(
            req("DELETE", &format!("/chats/{PROJECT}/doomed"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"status": "ok", "message": "Deleted 1 chat messages for chat_id=doomed",
               "deleted_count": 1, "deleted_facts_count": 1})
    );
    let (_, v) = f
        .get(&format!("/facts?project_id={PROJECT}&include_history=true"))
        .await;
    assert_eq!(values(&v), ["Lyon"]);
}
