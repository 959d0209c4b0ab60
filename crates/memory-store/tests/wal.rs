//! The WAL stays bounded while searches run continuously (readers always active keep
//! SQLite's passive checkpoints from resetting it; the writer forces a reset).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{IDLE, db_path, msg, query};
use memory_store::StoreConfig;

const LIMIT: u64 = 1024 * 1024;
/// Generous: one transaction (an indexer step, a group of acks) may add a few MiB past
/// the limit before the check that follows it. Unbounded, this test's writes reach
/// tens of MiB.
const BOUND: u64 = 16 * 1024 * 1024;

#[test]
fn wal_stays_bounded_under_continuous_searches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    let mut cfg = StoreConfig::new(&path);
    cfg.wal_limit_bytes = LIMIT;
    let store = common::open_with(cfg);
    let wal = {
        let mut p = path.clone().into_os_string();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());

    let stop = Arc::new(AtomicBool::new(false));
    let searches = Arc::new(AtomicU64::new(0));
    let searchers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop, searches) = (store.clone(), Arc::clone(&stop), Arc::clone(&searches));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    store.search(&query("p", "pelican body")).expect("search");
                    searches.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let body = "pelican body text with enough words to make real chunks. ".repeat(550); // ~32 KB
    let max_seen = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (store, body, max_seen) = (store.clone(), body.clone(), Arc::clone(&max_seen));
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let content = format!("{body} writer{t} number{i}");
                    store
                        .index_chat_message(msg("p", &format!("c{t}"), &format!("m{i}"), &content))
                        .expect("index");
                    let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    max_seen.fetch_max(size, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    assert!(store.wait_idle(IDLE));
    stop.store(true, Ordering::Relaxed);
    for s in searchers {
        s.join().expect("searcher");
    }
    let max_seen = max_seen.load(Ordering::Relaxed).max(wal_size());
    let stats = store.stats();
    eprintln!("max WAL seen {max_seen} bytes; {stats:?}");
    assert!(searches.load(Ordering::Relaxed) > 0);
    assert!(
        stats.wal_checkpoints + stats.wal_checkpoints_busy > 0,
        "the WAL passed the limit, a checkpoint was tried: {stats:?}"
    );
    assert!(
        max_seen < BOUND,
        "WAL reached {max_seen} bytes (limit {LIMIT}, bound {BOUND}): {stats:?}"
    );
    assert_eq!(common::search(&store, "p", "writer3 number99").len(), 50);
    store.shutdown().expect("shutdown");
}
