//! Project facts: latest wins per key, history, deletion (with the key repaired),
//! deletion with their chat, and search (the original's matches, ranked better).

mod common;

use common::{msg, open};
use memory_store::{Fact, FactIn, FactQuery, Store, StoreError};

fn fact(project: &str, key: &str, value: &str) -> FactIn {
    FactIn {
        project_id: project.into(),
        fact_key: key.into(),
        value_text: value.into(),
        value_type: "string".into(),
        confidence: None,
        source_message_uuid: None,
        effective_at: None,
    }
}

fn find(store: &Store, project: &str, query: &str) -> Vec<Fact> {
    store
        .search_facts(&FactQuery {
            project_id: project.into(),
            query: query.into(),
            limit: 10,
            exclude_message_uuid: None,
        })
        .expect("search")
}

fn values(facts: &[Fact]) -> Vec<&str> {
    facts.iter().map(|f| f.value_text.as_str()).collect()
}

#[test]
fn latest_wins_with_history_and_delete_restores_the_previous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let red = store
        .add_fact(fact("p", "user.favorite.color", "red"))
        .expect("red");
    assert!(red.is_current && red.supersedes_fact_id.is_none());
    assert_eq!((red.confidence, red.value_type.as_str()), (1.0, "string"));
    assert_eq!(red.effective_at, red.created_at);
    let blue = store
        .add_fact(fact("p", "user.favorite.color", "blue"))
        .expect("blue");
    assert_eq!(blue.supersedes_fact_id.as_deref(), Some(red.fact_id.as_str()));
    store.add_fact(fact("p", "user.city", "Lyon")).expect("city");
    store
        .add_fact(fact("other", "user.favorite.color", "green"))
        .expect("other");

    let current = store.list_facts("p", false).expect("list");
    assert_eq!(values(&current), ["Lyon", "blue"]);
    let all = store.list_facts("p", true).expect("history");
    assert_eq!(values(&all), ["Lyon", "blue", "red"]);
    assert!(!all[2].is_current);

    assert!(store.delete_fact(&blue.fact_id).expect("delete"));
    assert!(!store.delete_fact(&blue.fact_id).expect("again"));
    let current = store.list_facts("p", false).expect("list");
    assert_eq!(
        values(&current),
        ["Lyon", "red"],
        "the previous fact is current again"
    );
    let yellow = store
        .add_fact(fact("p", "user.favorite.color", "yellow"))
        .expect("yellow");
    assert_eq!(yellow.supersedes_fact_id.as_deref(), Some(red.fact_id.as_str()));
    // Deleting a superseded fact keeps the chain whole.
    assert!(store.delete_fact(&red.fact_id).expect("delete red"));
    let all = store.list_facts("p", true).expect("history");
    let y = all.iter().find(|f| f.value_text == "yellow").expect("yellow");
    assert!(y.is_current && y.supersedes_fact_id.is_none());
    store.shutdown().expect("shutdown");
}

#[test]
fn bad_facts_are_invalid_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    type Mutation = fn(&mut FactIn);
    let cases: Vec<(&str, Mutation)> = vec![
        ("empty project", |f| f.project_id = " ".into()),
        ("empty key", |f| f.fact_key.clear()),
        ("type", |f| f.value_type = "text".into()),
        ("confidence", |f| f.confidence = Some(1.5)),
        ("nan", |f| f.confidence = Some(f64::NAN)),
        ("effective_at", |f| f.effective_at = Some("soon".into())),
        ("uuid", |f| f.source_message_uuid = Some("nope".into())),
    ];
    for (name, mutate) in cases {
        let mut f = fact("p", "k", "v");
        mutate(&mut f);
        assert!(
            matches!(store.add_fact(f), Err(StoreError::InvalidInput(_))),
            "{name}"
        );
    }
    assert!(matches!(
        store.list_facts("", false),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.search_facts(&FactQuery::default()),
        Err(StoreError::InvalidInput(_))
    ));
    store.shutdown().expect("shutdown");
}

/// Whatever the original's `LIKE` rule matched is found, current facts only, the
/// excluded message's facts left out, and whole-word key matches rank first.
#[test]
fn search_matches_the_original_and_ranks_better() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let uuid = "6f1c2a9e-8d7b-4c3a-9e1f-2b3c4d5e6f70";
    let mut from_turn = fact("p", "user.pet", "a dog named Colorado");
    from_turn.source_message_uuid = Some(uuid.to_uppercase());
    store.add_fact(from_turn).expect("turn");
    let mut older = fact("p", "note.1", "watercolors class on Monday");
    older.effective_at = Some("2030-01-01T00:00:00".into());
    store.add_fact(older).expect("older");
    store
        .add_fact(fact("p", "user.favorite.color", "blue"))
        .expect("color");
    store.add_fact(fact("p", "user.car", "COLOR red")).expect("car");
    store.add_fact(fact("p", "user.job", "baker")).expect("job");
    store
        .add_fact(fact("p", "user.favorite.color", "teal"))
        .expect("newer color");

    // The newest fact (by effective_at) is a partial match; the original put it
    // first, we put the key match first.
    let hits = find(&store, "p", "What is my favorite color?");
    assert_eq!(
        values(&hits),
        [
            "teal",
            "COLOR red",
            "watercolors class on Monday",
            "a dog named Colorado"
        ]
    );
    assert!(hits.iter().all(|f| f.is_current));
    let hits = store
        .search_facts(&FactQuery {
            project_id: "p".into(),
            query: "color".into(),
            limit: 2,
            exclude_message_uuid: Some(uuid.to_uppercase()),
        })
        .expect("search");
    assert_eq!(values(&hits), ["teal", "COLOR red"]);
    assert!(find(&store, "other", "color").is_empty());
    // Stop words only: the whole query is the keyword, as the original.
    assert!(find(&store, "p", "what is it").is_empty());
    assert_eq!(find(&store, "p", "baker").len(), 1);
    // `_` in a keyword is a LIKE wildcard, as it was for the original.
    assert_eq!(values(&find(&store, "p", "bak_r")), ["baker"]);
    store.shutdown().expect("shutdown");
}

/// Deleting a chat deletes the facts stored from its messages, in the same
/// transaction, and says how many.
#[test]
fn deleting_a_chat_deletes_its_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = store
        .index_chat_message(msg("p", "doomed", "m1", "my color is red"))
        .expect("a");
    let b = store
        .index_chat_message(msg("p", "kept", "m2", "no, blue"))
        .expect("b");
    let mut red = fact("p", "user.color", "red");
    red.source_message_uuid = Some(a.message_uuid.clone());
    store.add_fact(red).expect("red");
    let mut blue = fact("p", "user.color", "blue");
    blue.source_message_uuid = Some(b.message_uuid.clone());
    store.add_fact(blue).expect("blue");
    let mut also = fact("p", "user.name", "Ann");
    also.source_message_uuid = Some(a.message_uuid.clone());
    store.add_fact(also).expect("name");
    store.add_fact(fact("p", "user.age", "40")).expect("no message");

    assert_eq!(store.delete_chat_counts("p", "doomed").expect("delete"), (1, 2));
    let left = store.list_facts("p", true).expect("list");
    assert_eq!(values(&left), ["40", "blue"]);
    assert!(left.iter().all(|f| f.is_current));
    assert_eq!(store.delete_chat_counts("p", "doomed").expect("again"), (0, 0));
    assert_eq!(store.integrity_check().expect("check"), "ok");
    store.shutdown().expect("shutdown");
}

/// With a model, facts get vectors through the embedding queue, are found by meaning
/// when no keyword matches, and meaning joins words in the ranking.
#[test]
fn facts_are_found_and_ranked_by_meaning_with_vectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert!(
        store.facts_to_embed(10).expect("pending").is_empty(),
        "no model, no queue"
    );
    store.set_embedding_model("test-model", 4).expect("model");
    for (key, value) in [
        ("user.favorites.color.1", "blue"),
        ("user.pet", "a golden retriever"),
        ("user.city", "Lisbon"),
    ] {
        store.add_fact(fact("p", key, value)).expect("add");
    }
    let pending = store.facts_to_embed(10).expect("pending");
    let texts: Vec<&str> = pending.iter().map(|f| f.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "user favorites color: blue",
            "user pet: a golden retriever",
            "user city: Lisbon"
        ]
    );
    let unit = |i: usize| {
        let mut v = vec![0.0f32; 4];
        v[i] = 1.0;
        v
    };
    let rows = pending
        .iter()
        .enumerate()
        .map(|(i, f)| (f.seq, unit(i)))
        .collect();
    assert_eq!(store.store_fact_vectors("test-model", rows).expect("store"), 3);
    assert!(store.facts_to_embed(10).expect("pending").is_empty());

    let query = |q: &str, v: Option<&[f32]>| -> Vec<String> {
        store
            .search_facts_with(
                &FactQuery {
                    project_id: "p".into(),
                    query: q.into(),
                    limit: 10,
                    exclude_message_uuid: None,
                },
                v,
            )
            .expect("search")
            .into_iter()
            .map(|f| f.value_text)
            .collect()
    };
    // "favourite colour": no keyword matches (British spelling); the vector does.
    let near_colour = [0.99f32, 0.141, 0.0, 0.0];
    assert!(query("favourite colour", None).is_empty());
    assert_eq!(query("favourite colour", Some(&near_colour)), ["blue"]);
    // A keyword match (city) with a fair cosine beats a meaning-only match.
    let between = [0.0f32, 0.8, 0.6, 0.0];
    assert_eq!(query("city", Some(&between)), ["Lisbon", "a golden retriever"]);
    assert_eq!(query("city", None), ["Lisbon"]);

    // A vector goes with its fact; a model change queues every fact again.
    let lisbon = store.list_facts("p", false).expect("list");
    let lisbon = lisbon.iter().find(|f| f.value_text == "Lisbon").expect("lisbon");
    assert!(store.delete_fact(&lisbon.fact_id).expect("delete"));
    let left: i64 = common::raw(dir.path())
        .query_row("SELECT count(*) FROM fact_vectors", [], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 2);
    store.set_embedding_model("other-model", 4).expect("model");
    assert_eq!(store.facts_to_embed(10).expect("pending").len(), 2);
}
