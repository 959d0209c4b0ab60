//! Search: chat hits, project isolation, exclusions, chunk offsets, hostile queries.

mod common;

use common::{IDLE, msg, open, query, search};
use memory_store::{SearchRequest, SourceType, StoreError};

#[test]
fn finds_chat_text_with_all_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let ack = store
        .index_chat_message(msg(
            "proj",
            "chat1",
            "msg1",
            "We talked about the lighthouse keeper.",
        ))
        .expect("index");
    store
        .index_chat_message(msg(
            "proj",
            "chat1",
            "msg2",
            "lighthouse lighthouse lighthouse keeper",
        ))
        .expect("index");
    assert!(store.wait_idle(IDLE));
    let hits = search(&store, "proj", "Lighthouse keepers");
    assert_eq!(hits.len(), 2);
    let h = hits
        .iter()
        .find(|h| h.message_id.as_deref() == Some("msg1"))
        .expect("msg1");
    assert_eq!(h.source_type, SourceType::Chat);
    assert_eq!(h.source_type.as_str(), "chat");
    assert_eq!(h.project_id, "proj");
    assert_eq!(h.source_id, "project-proj");
    assert_eq!(h.chat_id.as_deref(), Some("chat1"));
    assert_eq!(h.message_uuid.as_deref(), Some(ack.message_uuid.as_str()));
    assert_eq!(h.file_path, None);
    assert_eq!(h.filetype, None);
    assert_eq!((h.chunk_index, h.start_char), (0, 0));
    assert_eq!(h.end_char, 38);
    assert_eq!(h.text, "We talked about the lighthouse keeper.");
    for w in hits.windows(2) {
        assert!(w[0].score >= w[1].score, "best first");
    }
    for h in &hits {
        assert!(h.score > 0.0 && h.score <= 1.0, "{}", h.score);
    }
    assert_eq!(
        hits[0].message_id.as_deref(),
        Some("msg2"),
        "more matches rank higher"
    );
}

#[test]
fn projects_are_isolated_and_chats_excluded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .index_chat_message(msg("a", "c1", "m", "marmot"))
        .expect("index");
    store
        .index_chat_message(msg("a", "c2", "m", "marmot"))
        .expect("index");
    store
        .index_chat_message(msg("a", "c3", "m", "marmot"))
        .expect("index");
    store
        .index_chat_message(msg("b", "c1", "m", "marmot"))
        .expect("index");
    assert!(store.wait_idle(IDLE));

    assert_eq!(search(&store, "a", "marmot").len(), 3);
    assert_eq!(search(&store, "b", "marmot").len(), 1);
    assert!(search(&store, "c", "marmot").is_empty());

    let mut q = query("a", "marmot");
    q.exclude_chat_ids = vec!["c1".into(), "c3".into(), "unknown".into()];
    let hits = store.search(&q).expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chat_id.as_deref(), Some("c2"));

    // source_ids only adds file sources (none exist yet); chat results are unaffected.
    q.exclude_chat_ids.clear();
    q.source_ids = Some(vec!["a".into(), "project-b".into()]);
    assert_eq!(store.search(&q).expect("search").len(), 3);

    q.limit = 2;
    assert_eq!(store.search(&q).expect("search").len(), 2);
    q.limit = 0;
    assert_eq!(
        store.search(&q).expect("search").len(),
        1,
        "limit clamped to >= 1"
    );
}

#[test]
fn long_messages_are_chunked_with_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let content = format!("{}zebra finale", "filler words here. ".repeat(300));
    store
        .index_chat_message(msg("p", "c", "m", &content))
        .expect("index");
    assert!(store.wait_idle(IDLE));
    let hits = search(&store, "p", "zebra");
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert!(h.chunk_index > 0);
    assert!(h.start_char > 0);
    assert_eq!(h.end_char as usize, content.chars().count());
    let expected: String = content
        .chars()
        .skip(h.start_char as usize)
        .take((h.end_char - h.start_char) as usize)
        .collect();
    assert_eq!(h.text, expected);
    let all = store
        .search(&SearchRequest {
            limit: 200,
            ..query("p", "filler")
        })
        .expect("search");
    assert_eq!(all.len() as i64, h.chunk_index + 1, "every chunk is searchable");
}

#[test]
fn hostile_queries_never_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .index_chat_message(msg(
            "p",
            "c",
            "m",
            "hello world, café NEAR the quay; AND/OR résumé 東京",
        ))
        .expect("index");
    assert!(store.wait_idle(IDLE));
    let long = "a".repeat(100_000);
    let many_words = "word ".repeat(10_000);
    // (query, must find the message?)
    let table: Vec<(&str, Option<bool>)> = vec![
        ("", Some(false)),
        ("   \t\n", Some(false)),
        ("\"", Some(false)),
        ("\"\"", Some(false)),
        ("\"hello", Some(true)),
        ("hello\"world", Some(true)),
        ("hello*", Some(true)),
        ("*", Some(false)),
        ("NEAR(hello world)", Some(true)),
        ("NEAR", Some(true)),
        ("AND", Some(true)),
        ("OR", Some(true)),
        ("NOT", Some(false)),
        ("hello NOT world", Some(true)),
        ("-hello", Some(true)),
        ("text:hello", Some(true)),
        ("c.text:hello", Some(true)),
        ("^hello", Some(true)),
        ("hello^", Some(true)),
        ("(hello", Some(true)),
        ("hello)", Some(true)),
        ("((((", Some(false)),
        ("{hello world}", Some(true)),
        ("[hello]", Some(true)),
        ("hello + world", Some(true)),
        ("'; DROP TABLE chunks; --", Some(false)),
        ("cafe", Some(true)),
        ("CAFÉ", Some(true)),
        ("東京", Some(true)),
        ("😀🎉", Some(false)),
        ("\u{0}hello", Some(true)),
        ("\u{200b}\u{feff}", None),
        ("e\u{301}", None),
        ("ǅ ß ﬁ", None),
        ("١٢٣", None),
        ("𝔥𝔢𝔩𝔩𝔬", None),
        ("x\u{0301}\u{0301}\u{0301}", None),
        ("\\", Some(false)),
        ("%_", Some(false)),
        (long.as_str(), Some(false)),
        (many_words.as_str(), Some(false)),
    ];
    for (q, expect) in table {
        let hits = store
            .search(&query("p", q))
            .unwrap_or_else(|e| panic!("query {:?} failed: {e}", q.chars().take(40).collect::<String>()));
        if let Some(found) = expect {
            assert_eq!(
                !hits.is_empty(),
                found,
                "query {:?}",
                q.chars().take(40).collect::<String>()
            );
        }
    }
    // Hostile project ids and exclusions are data too.
    for p in ["\"", "p' OR 1=1 --", "*", "NEAR("] {
        assert!(search(&store, p, "hello").is_empty());
    }
    let mut q = query("p", "hello");
    q.exclude_chat_ids = vec!["\"".into(), "') OR 1=1 --".into()];
    assert_eq!(store.search(&q).expect("search").len(), 1);
}

#[test]
fn empty_project_id_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert!(matches!(
        store.search(&query("  ", "x")),
        Err(StoreError::InvalidInput(_))
    ));
}

#[test]
fn arbitrary_project_ids_stay_isolated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let long = "é".repeat(256); // 512 bytes, the longest id accepted
    let projects = [
        "x",
        "x y",
        "x-y",
        "xy",
        "X",
        "Ünïcödé",
        "\"*:^() OR",
        long.as_str(),
    ];
    for p in projects {
        store
            .index_chat_message(msg(p, "c", "m", &format!("heron in {p}")))
            .expect("index");
    }
    assert!(store.wait_idle(IDLE));
    for p in projects {
        let hits = search(&store, p, "heron");
        assert_eq!(hits.len(), 1, "{p}");
        assert_eq!(hits[0].project_id, p);
    }
    assert!(search(&store, "x y z", "heron").is_empty());
}

/// BM25's IDF is the searched project's: a name in nearly every message of this project
/// weighs little here, however rare it is across the whole store.
#[test]
fn idf_is_the_searched_projects_not_the_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut n = 0;
    let mut add = |project: &str, chat: &str, text: &str| {
        n += 1;
        store
            .index_chat_message(msg(project, chat, &format!("m{n}"), text))
            .expect("index");
    };
    add("a", "x", "Caroline Caroline Caroline");
    add(
        "a",
        "y",
        "adoption went through after many long months of waiting",
    );
    for i in 0..10 {
        add("a", &format!("f{i}"), "Caroline says hi to everyone here today");
    }
    for i in 0..1000 {
        add(
            "b",
            "weather",
            &format!("filler message number {i} about the weather"),
        );
    }
    assert!(store.wait_idle(IDLE));
    // Over the whole store (1012 chunks, Caroline in 11) the name's IDF is high and the
    // short "Caroline Caroline Caroline" would outrank the adoption message; over
    // project a (12 chunks, Caroline in 11) the name says almost nothing.
    let hits = search(&store, "a", "Caroline adoption");
    assert_eq!(
        hits[0].text,
        "adoption went through after many long months of waiting"
    );
    assert!(
        hits[0].score > hits[1].score + 0.2,
        "{} vs {}",
        hits[0].score,
        hits[1].score
    );
}

/// A word in more chunks of the scope than are counted exactly still ranks (its document
/// frequency estimated), and a rare word next to it is ranked over all its matches.
#[test]
fn common_words_are_estimated_and_rare_words_still_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .index_chat_message(msg("p", "old", "m0", "a tornado warning in the weather report"))
        .expect("index");
    for i in 1..=1200 {
        store
            .index_chat_message(msg("p", "c", &format!("m{i}"), &format!("weather note {i}")))
            .expect("index");
    }
    assert!(store.wait_idle(IDLE));
    let hits = search(&store, "p", "tornado weather");
    assert_eq!(hits[0].message_id.as_deref(), Some("m0"));
    let mut q = query("p", "weather");
    q.limit = 50;
    let hits = store.search(&q).expect("search");
    assert_eq!(hits.len(), 50);
    for h in &hits {
        assert!(h.text.contains("weather"), "{}", h.text);
        assert!(h.score > 0.3, "{}", h.score);
    }
}

/// `scope_sizes` (BM25's N per scope) follows every insert, update and delete of chunks.
#[test]
fn scope_sizes_follow_the_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for (project, chat, id) in [
        ("p", "c1", "a"),
        ("p", "c1", "b"),
        ("p", "c2", "c"),
        ("q", "c1", "d"),
    ] {
        store
            .index_chat_message(msg(project, chat, id, &format!("message {id} about owls")))
            .expect("index");
    }
    // The same message id again: updated in place.
    store
        .index_chat_message(msg("p", "c1", "a", "an edited message about owls"))
        .expect("update");
    assert!(store.wait_idle(IDLE));
    let conn = common::raw(dir.path());
    let sizes = |sql: &str| -> Vec<(String, i64)> {
        let mut stmt = conn.prepare(sql).expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let kept = "SELECT scope, chunks FROM scope_sizes ORDER BY scope";
    let counted = "SELECT scope, count(*) FROM chunks GROUP BY scope ORDER BY scope";
    assert_eq!(sizes(kept), sizes(counted));
    assert_eq!(sizes(kept).iter().map(|(_, n)| n).collect::<Vec<_>>(), [&3, &1]);
    store.delete_chat("p", "c1").expect("delete");
    store.delete_chat("q", "c1").expect("delete");
    assert!(store.wait_idle(IDLE));
    assert_eq!(sizes(kept), sizes(counted));
    assert_eq!(sizes(kept).len(), 1, "q's row goes with its last chunk");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    /// Any query text (quotes, FTS5 operators, every script): search answers without an
    /// error, scores in [0, 1] best first, and a query of a stored message's own words
    /// finds it.
    #[test]
    fn any_query_is_answered_and_finds_its_own_text(text in "(?s)(\\PC|\\s|[\"*:^()-]){1,120}") {
        let (store, _dir) = &*SHARED;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        store.index_chat_message(msg("prop", "c", &format!("m{n}"), &text)).expect("index");
        proptest::prop_assert!(store.wait_idle(IDLE));
        let hits = store.search(&query("prop", &text)).expect("search");
        for w in hits.windows(2) {
            proptest::prop_assert!(w[0].score >= w[1].score);
        }
        for h in &hits {
            proptest::prop_assert!((0.0..=1.0).contains(&h.score), "{}", h.score);
        }
        let has_word = !memory_store::terms::query_terms(&text, memory_store::MAX_TERMS).is_empty();
        if has_word {
            proptest::prop_assert!(
                hits.iter().any(|h| h.message_id.as_deref() == Some(&format!("m{n}"))),
                "{:?} not found", text
            );
        }
    }
}

/// One store for the property test's cases (opening one per case would dominate).
static SHARED: std::sync::LazyLock<(common::Opened, tempfile::TempDir)> = std::sync::LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    (open(dir.path()), dir)
});
static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Idle merging (the file indexer runs it when it has nothing else to do) combines the
/// FTS segments many small commits left, ends, and changes no search result.
#[test]
fn merging_the_full_text_index_ends_and_keeps_every_hit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    // One message per write, each indexed in its own commit: many small segments.
    for i in 0..40 {
        store
            .index_chat_message(msg(
                "p",
                "c",
                &format!("m{i}"),
                &format!("grebe number{i} common"),
            ))
            .expect("index");
        assert!(store.wait_idle(IDLE));
    }
    let hits = |q: &str| -> Vec<(Option<String>, f64)> {
        search(&store, "p", q)
            .into_iter()
            .map(|h| (h.message_id, h.score))
            .collect()
    };
    let before = hits("grebe");
    assert_eq!(before.len(), 40);
    let mut steps = 0;
    while store.merge_full_text_index(16).expect("merge") {
        steps += 1;
        assert!(steps < 1000, "merging never ends");
    }
    assert!(steps > 0, "40 commits left nothing to merge");
    assert!(
        !store.merge_full_text_index(16).expect("merge"),
        "done means done"
    );
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let after = hits("grebe");
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() < 1e-9, "{after:?} vs {before:?}");
    }
    assert_eq!(search(&store, "p", "number17").len(), 1);
}
