//! Chat messages: acknowledgement, update in place, UUIDs, job states, delete.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{IDLE, msg, open, raw, search};
use memory_store::{ChatJobState, SourceType, StoreError};

#[test]
fn job_goes_from_queued_to_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.pause_indexer_for_tests(true);
    let ack = store
        .index_chat_message(msg("p", "c1", "m1", "the quick brown fox"))
        .expect("index");
    assert!(ack.job_id.starts_with("c1:m1:"), "{}", ack.job_id);
    let queued = store.job_status(&ack.job_id).expect("status").expect("known");
    assert_eq!(queued.state, ChatJobState::Queued);
    assert_eq!(queued.state.as_str(), "queued");
    assert_eq!(queued.message_uuid.as_deref(), Some(ack.message_uuid.as_str()));
    assert!(queued.start_time.is_none() && queued.end_time.is_none());
    assert_eq!(queued.estimated_chunks, 1);
    assert!(queued.computed_timeout > 0.0);
    assert_eq!(store.stats().pending_chat_jobs, 1);

    store.pause_indexer_for_tests(false);
    assert!(store.wait_idle(IDLE));
    let done = store.job_status(&ack.job_id).expect("status").expect("known");
    assert_eq!(done.state, ChatJobState::Success);
    assert!(done.start_time.is_some() && done.end_time.is_some());
    assert!(done.duration.expect("duration") >= 0.0);
    assert_eq!(done.error_message, None);
    assert_eq!(done.enqueue_time.len(), 26, "{}", done.enqueue_time);
    let stats = store.stats();
    assert_eq!(stats.pending_chat_jobs, 0);
    assert_eq!(stats.oldest_pending_job_age_ms, 0);
    assert_eq!(stats.messages_indexed, 1);
    assert!(stats.commits >= 2);
    store.shutdown().expect("shutdown");
}

#[test]
fn unknown_job_is_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert!(store.job_status("nope:nope:1").expect("status").is_none());
    assert!(store.job_status("").expect("status").is_none());
}

#[test]
fn update_in_place_keeps_uuid_and_reindexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let first = store
        .index_chat_message(msg("p", "c", "m", "original walrus text"))
        .expect("first");
    let mut second_msg = msg("p", "c", "m", "edited narwhal text");
    second_msg.message_uuid = Some(uuid_v4());
    let second = store.index_chat_message(second_msg).expect("second");
    assert_eq!(first.message_uuid, second.message_uuid, "existing UUID kept");
    assert_ne!(first.job_id, second.job_id, "job ids are unique");
    assert!(store.wait_idle(IDLE));
    assert!(search(&store, "p", "walrus").is_empty(), "old content gone");
    let hits = search(&store, "p", "narwhal");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_uuid.as_deref(), Some(first.message_uuid.as_str()));
    let rows: i64 = raw(dir.path())
        .query_row("SELECT count(*) FROM chat_messages", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 1);
}

fn uuid_v4() -> String {
    // Random enough for tests without a uuid dependency: time + counter.
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (t >> 32) as u32,
        (t >> 16) as u16,
        t as u16 & 0xfff,
        n as u16 & 0xfff,
        n
    )
}

#[test]
fn client_uuid_is_honoured_and_validated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut m = msg("p", "c", "m1", "hello");
    m.message_uuid = Some("6F9619FF-8B86-4011-B42D-00C04FC964FF".into());
    let ack = store.index_chat_message(m).expect("index");
    assert_eq!(ack.message_uuid, "6f9619ff-8b86-4011-b42d-00c04fc964ff");

    let mut bad = msg("p", "c", "m2", "hello");
    bad.message_uuid = Some("not-a-uuid".into());
    assert!(matches!(
        store.index_chat_message(bad),
        Err(StoreError::InvalidInput(_))
    ));

    let mut taken = msg("p", "c", "m3", "hello");
    taken.message_uuid = Some(ack.message_uuid.clone());
    assert!(matches!(
        store.index_chat_message(taken),
        Err(StoreError::InvalidInput(_))
    ));

    let fresh = store.index_chat_message(msg("p", "c", "m4", "x")).expect("fresh");
    assert_eq!(fresh.message_uuid.len(), 36);
    assert_ne!(fresh.message_uuid, ack.message_uuid);
}

#[test]
fn invalid_input_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut cases = vec![
        msg("", "c", "m", "x"),
        msg("p", "", "m", "x"),
        msg("p", "c", "", "x"),
        msg("p", "c", "m", &"x".repeat(memory_store::MAX_CONTENT_BYTES + 1)),
    ];
    let mut bad_time = msg("p", "c", "m", "x");
    bad_time.timestamp = "Saturday".into();
    cases.push(bad_time);
    for m in cases {
        assert!(
            matches!(store.index_chat_message(m), Err(StoreError::InvalidInput(_))),
            "rejected"
        );
    }
    assert!(matches!(
        store.delete_chat("", "c"),
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        store.delete_chat("p", " "),
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(store.stats().pending_chat_jobs, 0);
}

#[test]
fn delete_chat_removes_messages_chunks_and_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut jobs = Vec::new();
    for i in 0..3 {
        let ack = store
            .index_chat_message(msg("p", "doomed", &format!("m{i}"), "pelican story"))
            .expect("index");
        jobs.push(ack.job_id);
    }
    store
        .index_chat_message(msg("p", "kept", "m0", "pelican survives"))
        .expect("index");
    store
        .index_chat_message(msg("other", "doomed", "m0", "pelican elsewhere"))
        .expect("index");
    assert!(store.wait_idle(IDLE));
    assert_eq!(search(&store, "p", "pelican").len(), 4);

    assert_eq!(store.delete_chat("p", "doomed").expect("delete"), 3);
    let hits = search(&store, "p", "pelican");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chat_id.as_deref(), Some("kept"));
    assert_eq!(
        search(&store, "other", "pelican").len(),
        1,
        "other project untouched"
    );
    for j in &jobs {
        assert!(store.job_status(j).expect("status").is_none());
    }
    assert_eq!(store.delete_chat("p", "doomed").expect("again"), 0);
    let conn = raw(dir.path());
    let chunks: i64 = conn
        .query_row(
            "SELECT count(*) FROM chunks WHERE chat_id = 'doomed' AND project_id = 'p'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(chunks, 0);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn delete_chat_with_pending_jobs_leaves_nothing_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.pause_indexer_for_tests(true);
    for i in 0..5 {
        store
            .index_chat_message(msg("p", "c", &format!("m{i}"), "ibis"))
            .expect("index");
    }
    assert_eq!(store.stats().pending_chat_jobs, 5);
    assert_eq!(store.delete_chat("p", "c").expect("delete"), 5);
    assert_eq!(store.stats().pending_chat_jobs, 0);
    store.pause_indexer_for_tests(false);
    assert!(store.wait_idle(IDLE));
    assert!(search(&store, "p", "ibis").is_empty());
}

#[test]
fn concurrent_writers_are_all_acknowledged_and_found() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        store
                            .index_chat_message(msg(
                                "p",
                                &format!("chat{t}"),
                                &format!("m{i}"),
                                &format!("token{t}x{i} shared"),
                            ))
                            .expect("acknowledged")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acks: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let acked_in = started.elapsed();
    assert_eq!(acks.len(), THREADS * PER_THREAD);
    let ids: HashSet<_> = acks.iter().map(|a| a.job_id.clone()).collect();
    assert_eq!(ids.len(), acks.len(), "job ids unique");
    assert!(store.wait_idle(IDLE));
    let indexed_in = started.elapsed();
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let hits = search(&store, "p", &format!("token{t}x{i}"));
            assert_eq!(hits.len(), 1, "token{t}x{i}");
            assert_eq!(hits[0].source_type, SourceType::Chat);
        }
    }
    let stats = store.stats();
    eprintln!(
        "{} messages from {THREADS} threads: acknowledged in {:?} ({:.0}/s), indexed in {:?}; \
         {} commits for {} writes, mean commit {} us, max {} us",
        acks.len(),
        acked_in,
        acks.len() as f64 / acked_in.as_secs_f64(),
        indexed_in,
        stats.commits,
        stats.writes_committed,
        stats.commit_latency_total_us / stats.commits.max(1),
        stats.commit_latency_max_us
    );
    assert_eq!(stats.messages_indexed, (THREADS * PER_THREAD) as u64);
    let shared = Arc::new(store);
    assert_eq!(shared.integrity_check().expect("check"), "ok");
}

#[test]
fn shutdown_is_idempotent_and_refuses_later_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .index_chat_message(msg("p", "c", "m", "heron"))
        .expect("index");
    let clone = store.clone();
    store.shutdown().expect("shutdown");
    clone.shutdown().expect("second shutdown");
    assert!(store.stats().shut_down);
    assert!(matches!(
        clone.index_chat_message(msg("p", "c", "m2", "x")),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        clone.search(&common::query("p", "heron")),
        Err(StoreError::Unavailable(_))
    ));
    // The graceful stop checkpointed the WAL (TRUNCATE leaves it empty or removes it).
    let wal = common::db_path(dir.path()).with_extension("sqlite-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0);
    drop(store);
    drop(clone);
    let store = open(dir.path());
    assert!(store.wait_idle(IDLE));
    assert_eq!(search(&store, "p", "heron").len(), 1);
}

/// Two jobs of one message in one step: the second deletes the chunks the first
/// inserted earlier in the same transaction. The FTS index stays equal to the chunks
/// table (the step's FTS rows are written at its end, and before such a delete).
#[test]
fn a_message_indexed_twice_in_one_step_keeps_the_index_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.pause_indexer_for_tests(true);
    // m0 between the two jobs of m1, so m1's second chunks get a new rowid (a stale
    // FTS row of its first ones would be seen).
    store
        .index_chat_message(msg("p", "c", "m1", "osprey first"))
        .expect("index");
    store
        .index_chat_message(msg("p", "c", "m0", "a bystander wren"))
        .expect("index");
    store
        .index_chat_message(msg("p", "c", "m1", "heron second"))
        .expect("edit");
    let split = memory_indexer::chunk::split;
    let budget = Duration::from_secs(60);
    let claimed = store
        .index_chat_jobs(Vec::new(), budget, 256, split)
        .expect("claim");
    assert_eq!(claimed.next.len(), 3);
    let step = store
        .index_chat_jobs(claimed.next, budget, 0, split)
        .expect("step");
    assert_eq!((step.indexed, step.failed, step.skipped), (3, 0, 0));
    assert_eq!(store.integrity_check().expect("check"), "ok");
    assert_eq!(search(&store, "p", "heron").len(), 1);
    assert_eq!(search(&store, "p", "wren").len(), 1);
    assert!(search(&store, "p", "osprey").is_empty());
}
