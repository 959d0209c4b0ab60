//! Words in every script, scores that mean something, and the vector channel: stored
//! vectors, the embedding work queue, deletes, a model change, hybrid ranking. Vectors
//! here are made by hand (axis-aligned), so these tests pin the store's behaviour, not a
//! model's (the embedding crate tests the model against its reference vectors).

mod common;

use common::{IDLE, msg, open, query, search};
use memory_store::Store;

fn index_all(store: &Store, project: &str, texts: &[&str]) {
    for (i, t) in texts.iter().enumerate() {
        let mut m = msg(project, "chat", &format!("m{i}"), t);
        m.message_index = i as i64;
        store.index_chat_message(m).expect("index");
    }
    assert!(store.wait_idle(IDLE));
}

fn found(store: &Store, project: &str, q: &str) -> Vec<String> {
    search(store, project, q)
        .into_iter()
        .map(|h| h.message_id.unwrap_or_default())
        .collect()
}

#[test]
fn words_inside_cjk_and_thai_text_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    index_all(
        &store,
        "p",
        &[
            "我们决定使用静默模式部署播客服务，数据库选用飞书。",
            "東京都に住んでいます。テストは明日です。",
            "步2 重跑gen-itgc后50条悬空引用清零",
            "ฉันชอบกินข้าวผัดมาก",
            "unrelated English text about databases",
        ],
    );
    for (q, want) in [
        ("静默", "m0"),
        ("数据库", "m0"),
        ("東京", "m1"),
        ("テスト", "m1"),
        ("itgc", "m2"),
        ("悬空引用", "m2"),
        ("ข้าวผัด", "m3"),
    ] {
        assert_eq!(found(&store, "p", q), vec![want.to_string()], "query {q}");
    }
    // A bigram phrase must stand together: 数 and 库 apart do not make 数据库.
    assert!(found(&store, "p", "库数").is_empty());
    store.shutdown().expect("shutdown");
}

#[test]
fn identifiers_match_whole_and_by_parts_and_latin_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    index_all(
        &store,
        "p",
        &[
            "the SessionCache is flushed on exit",
            "read_config_file returns the parsed TOML",
            "Les élèves étudient à l'école",
            "the runners were running fast",
        ],
    );
    assert_eq!(found(&store, "p", "session cache"), ["m0"]);
    assert_eq!(found(&store, "p", "SessionCache"), ["m0"]);
    assert_eq!(found(&store, "p", "config file"), ["m1"]);
    assert_eq!(found(&store, "p", "read_config_file"), ["m1"]);
    assert_eq!(found(&store, "p", "eleves ecole"), ["m2"]);
    assert_eq!(found(&store, "p", "run"), ["m3"]);
    store.shutdown().expect("shutdown");
}

#[test]
fn a_perfect_match_scores_high_in_a_store_of_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    index_all(&store, "p", &["my favourite colour is blue"]);
    let hits = search(&store, "p", "favourite colour blue");
    assert_eq!(hits.len(), 1);
    assert!(hits[0].score > 0.9, "{}", hits[0].score);
    index_all(
        &store,
        "q",
        &["my favourite colour is blue", "the colour of my dog"],
    );
    let hits = search(&store, "q", "what is my favourite colour?");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].message_id.as_deref(), Some("m0"));
    // The dog message sits right after the match in the same chat, so it shares a little
    // of its score by design (search.rs, `Weights::context`); still clearly below.
    assert!(hits[0].score > hits[1].score + 0.15, "{hits:?}");
    for h in &hits {
        assert!((0.0..=1.0).contains(&h.score));
    }
    store.shutdown().expect("shutdown");
}

/// A unit vector along axis `i` of 4 dimensions, plus a little of axis 3.
fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; 4];
    v[i] = 1.0;
    v
}

/// Embeds every pending chunk with `f(text)`, as the embedding stage would.
fn embed_all(store: &Store, model: &str, f: impl Fn(&str) -> Vec<f32>) -> usize {
    let mut after = 0;
    let mut n = 0;
    loop {
        let batch = store.chunks_to_embed(after, 3).expect("pending");
        if batch.is_empty() {
            return n;
        }
        after = batch.iter().map(|c| c.chunk_id).max().expect("ids");
        let rows = batch.iter().map(|c| (c.chunk_id, f(&c.text))).collect();
        n += store.store_vectors(model, rows).expect("store");
    }
}

fn toy_embedding(text: &str) -> Vec<f32> {
    if text.contains("retriever") || text.contains("puppy") {
        axis(0)
    } else if text.contains("blue") || text.contains("colour") {
        axis(1)
    } else {
        axis(2)
    }
}

#[test]
fn vectors_are_queued_stored_searched_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    index_all(
        &store,
        "p",
        &[
            "my golden retriever chewed the hose",
            "the sky is blue",
            "stock markets fell",
        ],
    );
    // Before a model is set there is nothing to embed, and search is text-only.
    assert!(store.chunks_to_embed(0, 10).expect("pending").is_empty());
    store.set_embedding_model("toy@1", 4).expect("model");
    assert_eq!(embed_all(&store, "toy@1", toy_embedding), 3);
    assert!(store.chunks_to_embed(0, 10).expect("pending").is_empty());
    assert_eq!(store.embedded_chunks(), 3);

    // "puppy" shares no word with the dog message; only its meaning finds it.
    let q = query("p", "puppy");
    assert!(store.search(&q).expect("text").is_empty());
    let hits = store.search_with(&q, Some(&axis(0))).expect("hybrid");
    assert_eq!(hits[0].message_id.as_deref(), Some("m0"), "{hits:?}");
    assert!(hits[0].score > hits[1].score, "{hits:?}");

    // Excluded chats stay out of the vector channel too.
    let mut q2 = q.clone();
    q2.exclude_chat_ids = vec!["chat".into()];
    assert!(store.search_with(&q2, Some(&axis(0))).expect("hybrid").is_empty());
    // Another project never sees them.
    let q3 = query("other", "puppy");
    assert!(store.search_with(&q3, Some(&axis(0))).expect("hybrid").is_empty());
    store.shutdown().expect("shutdown");
    drop(store);

    let store = open(dir.path());
    store.set_embedding_model("toy@1", 4).expect("model");
    assert_eq!(store.embedded_chunks(), 3);
    assert!(store.chunks_to_embed(0, 10).expect("pending").is_empty());
    let hits = store.search_with(&q, Some(&axis(0))).expect("hybrid");
    assert_eq!(hits[0].message_id.as_deref(), Some("m0"));

    // An edit re-chunks the message: its new chunk waits for a vector.
    store
        .index_chat_message(msg("p", "chat", "m1", "the sea is blue too"))
        .expect("edit");
    assert!(store.wait_idle(IDLE));
    let pending = store.chunks_to_embed(0, 10).expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].text, "the sea is blue too");

    // A deleted chat takes its vectors along; pruning drops them from memory.
    assert_eq!(store.delete_chat("p", "chat").expect("delete"), 3);
    assert_eq!(store.prune_vectors().expect("prune"), 3);
    assert_eq!(store.embedded_chunks(), 0);
    assert!(store.search_with(&q, Some(&axis(0))).expect("hybrid").is_empty());

    // A new model finds every chunk missing; the old model's rows are replaced.
    index_all(&store, "p", &["a puppy again"]);
    store.set_embedding_model("toy@2", 4).expect("model");
    assert_eq!(store.chunks_to_embed(0, 10).expect("pending").len(), 1);
    assert_eq!(embed_all(&store, "toy@2", toy_embedding), 1);
    assert_eq!(store.integrity_check().expect("check"), "ok");
    store.shutdown().expect("shutdown");
}

#[test]
fn chat_chunks_are_embedded_before_file_chunks_and_vectors_of_deleted_chunks_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.set_embedding_model("toy@1", 4).expect("model");
    index_all(&store, "p", &["first", "second"]);
    let pending = store.chunks_to_embed(0, 10).expect("pending");
    assert_eq!(pending.len(), 2);
    let ids: Vec<i64> = pending.iter().map(|c| c.chunk_id).collect();
    assert_eq!(store.delete_chat("p", "chat").expect("delete"), 2);
    let stored = store
        .store_vectors("toy@1", ids.iter().map(|&id| (id, axis(2))).collect())
        .expect("store");
    assert_eq!(stored, 0);
    assert_eq!(store.embedded_chunks(), 0);
    store.shutdown().expect("shutdown");
}
