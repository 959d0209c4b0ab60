//! Full disks and damaged files: a write that finds no room fails with a disk-full
//! error (HTTP 507 above) and the store says so until a write succeeds again; damage on
//! disk is found by `quick_check`, and `repair::rebuild` recovers every readable row of
//! what the user gave and queues the rest to be derived again.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::{IDLE, db_path, msg, open, raw, search};
use memory_store::repair;

#[test]
fn a_full_disk_fails_writes_with_disk_full_and_recovers_without_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .index_chat_message(msg("p", "c", "m0", "before the disk filled up: heron"))
        .expect("first write");
    assert!(store.wait_idle(IDLE));
    let pages: i64 = raw(dir.path())
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("page count");
    store
        .limit_pages_for_tests(u32::try_from(pages + 2).expect("small"))
        .expect("limit");
    let big = "kingfisher ".repeat(4_000);
    let mut acked = Vec::new();
    let err = (1..200)
        .find_map(
            |i| match store.index_chat_message(msg("p", "c", &format!("m{i}"), &big)) {
                Ok(ack) => {
                    acked.push(ack);
                    None
                }
                Err(e) => Some(e),
            },
        )
        .expect("a write must fail once the database may not grow");
    assert!(err.is_disk_full(), "not a disk-full error: {err}");
    assert!(store.stats().disk_full, "stats must say the disk is full");

    store.limit_pages_for_tests(u32::MAX).expect("lift the limit");
    store
        .index_chat_message(msg("p", "c", "after", "room again: egret"))
        .expect("a write after space is back");
    assert!(!store.stats().disk_full, "a successful write clears disk_full");
    assert!(store.wait_idle(IDLE));
    assert_eq!(search(&store, "p", "egret").len(), 1);
    assert_eq!(search(&store, "p", "heron").len(), 1);
    store.shutdown().expect("shutdown");
    let kept: i64 = raw(dir.path())
        .query_row("SELECT count(*) FROM chat_messages", [], |r| r.get(0))
        .expect("count");
    assert_eq!(kept, 2 + acked.len() as i64, "every acknowledged write is kept");
}

/// A store with `n` indexed messages "petrel number<i>", closed cleanly.
fn filled_store(dir: &Path, n: usize) {
    let store = open(dir);
    for i in 0..n {
        let text = format!("petrel number{i} {}", "shearwater ".repeat(40));
        store
            .index_chat_message(msg("p", "c", &format!("m{i}"), &text))
            .expect("index");
    }
    store
        .add_fact(memory_store::FactIn {
            project_id: "p".into(),
            fact_key: "user.favorite.bird".into(),
            value_text: "petrel".into(),
            value_type: "string".into(),
            confidence: None,
            source_message_uuid: None,
            effective_at: None,
        })
        .expect("fact");
    assert!(store.wait_idle(IDLE));
    store.shutdown().expect("shutdown");
}

/// The page numbers of `table`'s leaf pages (the `dbstat` virtual table).
fn leaf_pages(dir: &Path, table: &str) -> Vec<i64> {
    let conn = raw(dir);
    let mut stmt = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY pageno")
        .expect("dbstat");
    let rows = stmt.query_map([table], |r| r.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Overwrites page `page` (1-based) of the database file with garbage.
fn smash_page(dir: &Path, page: i64) {
    let size: i64 = raw(dir)
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(db_path(dir))
        .expect("open file");
    let offset = u64::try_from((page - 1) * size).expect("offset");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(&vec![0xA5; usize::try_from(size).expect("size")])
        .expect("write");
    f.sync_all().expect("sync");
}

#[test]
fn quick_check_finds_damage_in_a_derived_table_and_rebuild_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled_store(dir.path(), 300);
    let leaves = leaf_pages(dir.path(), "chunks");
    assert!(leaves.len() > 4, "the chunks table spans {} leaves", leaves.len());
    smash_page(dir.path(), leaves[leaves.len() / 2]);

    let found = repair::quick_check(&db_path(dir.path())).expect("quick_check runs");
    assert!(found.is_some(), "quick_check must report the smashed page");
    let store = open(dir.path());
    assert!(store.quick_check().expect("check").is_some());
    assert!(store.stats().damage.is_some(), "stats carry the damage");
    store.shutdown().expect("shutdown");

    let problems = repair::check(&db_path(dir.path())).expect("check");
    assert!(!problems.is_empty());
    let report = repair::rebuild(&db_path(dir.path())).expect("rebuild");
    assert!(
        !report.lost_rows(),
        "nothing the user gave was on the page: {report:?}"
    );
    let messages = report
        .tables
        .iter()
        .find(|t| t.table == "chat_messages")
        .expect("row");
    assert_eq!(messages.rows, 300);
    assert_eq!(report.chat_jobs_queued, 300);
    assert!(report.backup.is_file(), "the damaged file is kept");
    assert_eq!(
        repair::check(&db_path(dir.path())).expect("check"),
        Vec::<String>::new()
    );

    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    assert_eq!(store.quick_check().expect("check"), None);
    assert_eq!(store.stats().damage, None);
    assert_eq!(search(&store, "p", "number123").len(), 1);
    assert_eq!(search(&store, "p", "petrel").len(), 50, "limit 50 of 300");
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn rebuild_steps_over_unreadable_messages_and_says_which() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled_store(dir.path(), 400);
    let leaves = leaf_pages(dir.path(), "chat_messages");
    assert!(leaves.len() > 4, "chat_messages spans {} leaves", leaves.len());
    smash_page(dir.path(), leaves[leaves.len() / 2]);

    let report = repair::rebuild(&db_path(dir.path())).expect("rebuild");
    let messages = report
        .tables
        .iter()
        .find(|t| t.table == "chat_messages")
        .expect("row");
    assert!(messages.lost_rows(), "{messages:?}");
    assert_eq!(messages.unreadable.len(), 1, "{messages:?}");
    let (after, before) = messages.unreadable[0];
    let lost = u64::try_from(before - after - 1).expect("range");
    assert!(
        lost > 0 && lost < 100,
        "one leaf's rows are lost, not more: {messages:?}"
    );
    assert_eq!(messages.rows + lost, 400, "every other row is kept: {messages:?}");
    let facts = report
        .tables
        .iter()
        .find(|t| t.table == "project_facts")
        .expect("row");
    assert_eq!((facts.rows, facts.lost_rows()), (1, false));

    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    assert_eq!(store.quick_check().expect("check"), None);
    // The first and the last message were not on the smashed middle leaf.
    assert_eq!(search(&store, "p", "number0").len(), 1);
    assert_eq!(search(&store, "p", "number399").len(), 1);
}
