//! Durability and recovery: acknowledged messages survive an abrupt stop, and pending
//! jobs (queued or left running) are resumed on the next open.

mod common;

use common::{IDLE, msg, open, raw, search};
use memory_store::ChatJobState;

#[test]
fn acknowledged_messages_survive_a_crash_and_get_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.pause_indexer_for_tests(true);
    let acks: Vec<_> = (0..5)
        .map(|i| {
            store
                .index_chat_message(msg("p", "c", &format!("m{i}"), &format!("albatross number{i}")))
                .expect("index")
        })
        .collect();
    store.simulate_crash_for_tests();
    drop(store);

    // Before reopening: the rows are in the file (committed before the ack).
    let conn = raw(dir.path());
    let (messages, queued): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM chat_messages),
                    (SELECT count(*) FROM chat_index_jobs WHERE state = 'queued')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!((messages, queued), (5, 5));
    drop(conn);

    let store = open(dir.path());
    assert_eq!(store.stats().pending_chat_jobs, 5);
    assert!(store.wait_idle(IDLE));
    for a in &acks {
        let s = store.job_status(&a.job_id).expect("status").expect("known");
        assert_eq!(s.state, ChatJobState::Success);
    }
    assert_eq!(search(&store, "p", "albatross").len(), 5);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn drop_without_shutdown_then_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ack = {
        let store = open(dir.path());
        store
            .index_chat_message(msg("p", "c", "m", "cormorant"))
            .expect("index")
    }; // dropped here without an explicit shutdown
    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    let s = store.job_status(&ack.job_id).expect("status").expect("known");
    assert_eq!(s.state, ChatJobState::Success);
    let hits = search(&store, "p", "cormorant");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_uuid.as_deref(), Some(ack.message_uuid.as_str()));
}

#[test]
fn jobs_left_running_are_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ack = {
        let store = open(dir.path());
        let ack = store
            .index_chat_message(msg("p", "c", "m", "flamingo"))
            .expect("index");
        assert!(store.wait_idle(IDLE));
        store.shutdown().expect("shutdown");
        ack
    };
    // Make it look like a crash in the middle of indexing.
    let conn = raw(dir.path());
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         DELETE FROM chunks;
         UPDATE chat_index_jobs SET state = 'running', end_time = NULL, duration = NULL;",
    )
    .expect("tamper");
    drop(conn);

    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    let s = store.job_status(&ack.job_id).expect("status").expect("known");
    assert_eq!(s.state, ChatJobState::Success);
    assert_eq!(search(&store, "p", "flamingo").len(), 1);
}

#[test]
fn crash_with_a_claimed_job_requeues_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for i in 0..20 {
        store
            .index_chat_message(msg("p", "c", &format!("m{i}"), "puffin"))
            .expect("index");
    }
    // Crash wherever the indexer happens to be; whatever it left must resume.
    store.simulate_crash_for_tests();
    drop(store);
    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    assert_eq!(search(&store, "p", "puffin").len(), 20);
    let not_done: i64 = raw(dir.path())
        .query_row(
            "SELECT count(*) FROM chat_index_jobs WHERE state <> 'success'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(not_done, 0);
}

#[test]
fn integrity_and_fts_consistency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for i in 0..10 {
        store
            .index_chat_message(msg("p", "c", &format!("m{i}"), &"gannet ".repeat(400)))
            .expect("index");
    }
    assert!(store.wait_idle(IDLE));
    store
        .index_chat_message(msg("p", "c", "m0", "replaced"))
        .expect("update");
    store.delete_chat("p", "nothing").expect("delete");
    assert!(store.wait_idle(IDLE));
    assert_eq!(store.integrity_check().expect("check"), "ok");
    raw(dir.path())
        .execute(
            "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("fts index matches chunks");
}

#[test]
fn integrity_check_reports_an_fts_index_out_of_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .index_chat_message(msg("p", "c", "m", "hello world"))
        .expect("index");
    assert!(store.wait_idle(IDLE));
    store.shutdown().expect("shutdown");
    drop(store);
    // Break the invariant behind the store's back: delete a chunk without its trigger.
    raw(dir.path())
        .execute_batch("DROP TRIGGER chunks_fts_delete; DELETE FROM chunks;")
        .expect("tamper");
    let store = open(dir.path());
    let report = store.integrity_check().expect("check");
    assert_ne!(report, "ok");
    assert!(report.contains("chunks_fts"), "{report}");
}

#[test]
fn a_bad_job_is_marked_error_and_the_indexer_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.shutdown().expect("shutdown");
    drop(store);
    // A job whose message does not exist (foreign keys switched off to plant it).
    let conn = raw(dir.path());
    conn.pragma_update(None, "foreign_keys", false).expect("fk off");
    conn.execute(
        "INSERT INTO chat_index_jobs (job_id, message_uuid, state, enqueue_ms,
                 enqueue_time, estimated_chunks, computed_timeout)
             VALUES ('c:ghost:1', 'no-such-message', 'queued', 1, '2025-01-01T00:00:00', 1, 10)",
        [],
    )
    .expect("insert bad job");
    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    let bad = store.job_status("c:ghost:1").expect("status").expect("known");
    assert_eq!(bad.state, ChatJobState::Error);
    assert!(bad.error_message.expect("message").contains("no-such-message"));
    assert_eq!(store.stats().index_errors, 1);

    store
        .index_chat_message(msg("p", "c", "m", "kestrel"))
        .expect("index");
    assert!(store.wait_idle(IDLE));
    assert_eq!(search(&store, "p", "kestrel").len(), 1, "indexer still alive");
}

#[test]
fn a_bad_job_inside_a_large_batch_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.pause_indexer_for_tests(true);
    let first: Vec<_> = (0..300)
        .map(|i| {
            store
                .index_chat_message(msg("p", "c", &format!("a{i}"), &format!("grebe first{i}")))
                .expect("index")
        })
        .collect();
    store.shutdown().expect("shutdown");
    drop(store);
    let conn = raw(dir.path());
    conn.pragma_update(None, "foreign_keys", false).expect("fk off");
    conn.execute(
        "INSERT INTO chat_index_jobs (job_id, message_uuid, state, enqueue_ms,
                 enqueue_time, estimated_chunks, computed_timeout)
             VALUES ('c:ghost:1', 'no-such-message', 'queued', 1, '2025-01-01T00:00:00', 1, 10)",
        [],
    )
    .expect("insert bad job");
    drop(conn);
    let store = open(dir.path());
    store.pause_indexer_for_tests(true);
    let second: Vec<_> = (0..300)
        .map(|i| {
            store
                .index_chat_message(msg("p", "c", &format!("b{i}"), &format!("grebe second{i}")))
                .expect("index")
        })
        .collect();
    let commits_before = store.stats().commits;
    store.pause_indexer_for_tests(false);
    assert!(store.wait_idle(IDLE));
    for a in first.iter().chain(&second) {
        let s = store.job_status(&a.job_id).expect("status").expect("known");
        assert_eq!(s.state, ChatJobState::Success);
        assert!(s.start_time.is_some() && s.end_time.is_some());
    }
    let bad = store.job_status("c:ghost:1").expect("status").expect("known");
    assert_eq!(bad.state, ChatJobState::Error);
    let stats = store.stats();
    assert_eq!((stats.messages_indexed, stats.index_errors), (600, 1));
    // 601 jobs, at most 256 claimed per step (budget permitting): a handful of commits.
    assert!(
        stats.commits - commits_before < 100,
        "jobs are finished in batches: {stats:?}"
    );
    let mut q = common::query("p", "grebe");
    q.limit = 200;
    assert_eq!(store.search(&q).expect("search").len(), 200);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

/// A store shutdown tells an attached chat stage that the store is closing and waits
/// for it: the stage's jobs claimed before the shutdown are still finished (the
/// writer takes its steps while closing), so none is left `running`. The stage is
/// played by hand here, through the same store methods the real one calls.
#[test]
fn a_store_shutdown_waits_for_the_chat_stage_to_finish_its_claimed_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        memory_store::Store::open(memory_store::StoreConfig::new(common::db_path(dir.path()))).expect("open");
    for i in 0..5 {
        store
            .index_chat_message(msg("p", "c", &format!("m{i}"), "gannet"))
            .expect("index");
    }
    let work = store.chat_work();
    let attachment = work.attach();
    let claimed = store
        .index_chat_jobs(
            Vec::new(),
            std::time::Duration::from_millis(20),
            256,
            memory_indexer::chunk::split,
        )
        .expect("claim")
        .next;
    assert_eq!(claimed.len(), 5);
    let stage = {
        let (store, work) = (store.clone(), std::sync::Arc::clone(&work));
        std::thread::spawn(move || {
            let mut seen = work.current();
            while !work.is_closing() {
                seen = work.wait_past(seen, None);
            }
            let step = store
                .index_chat_jobs(
                    claimed,
                    std::time::Duration::from_secs(60),
                    0,
                    memory_indexer::chunk::split,
                )
                .expect("finish while closing");
            attachment.finished();
            step
        })
    };
    store.shutdown().expect("shutdown");
    let step = stage.join().expect("stage thread");
    assert_eq!((step.indexed, step.failed, step.next.len()), (5, 0, 0));
    let states: Vec<(String, i64)> = {
        let conn = raw(dir.path());
        let mut stmt = conn
            .prepare("SELECT state, count(*) FROM chat_index_jobs GROUP BY state")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(states, vec![("success".to_string(), 5)]);
}
