//! Release-mode measurements of the store, outside the HTTP service:
//!
//! - `index N [DB]`: N chat messages acknowledged by 4 threads; time until all are
//!   indexed (messages/s), next to a bare FTS5 insert of the same texts.
//! - `search DB [N]`: opens (and migrates) an existing database, reports search p50/p99
//!   over N queries for common words, word pairs and rare markers, in a large and a
//!   small project.
//! - `wal SECS`: 4 writer threads and 4 searcher threads for SECS seconds; WAL size.
//!
//! `cargo run --release -p memory-store --example store_bench -- index 20000`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memory_indexer::ChatStage;
use memory_store::{ChatMessageIn, SearchRequest, Store, StoreConfig};

/// Projects: message `i` goes to `p0` half of the time, else to one of `p1..p9`.
const PROJECTS: usize = 10;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Zipf-ish: small indexes far more often.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

/// 400 pronounceable words.
fn words() -> Vec<String> {
    let a = ["ka", "lo", "mi", "ter", "san", "dor", "vel", "pu", "ri", "gon"];
    let b = ["ba", "ne", "tis", "ro", "mu", "len", "da", "fi", "co", "war"];
    let c = ["x", "th", "m", "nd"];
    let mut out = Vec::new();
    for x in a {
        for y in b {
            for z in c {
                out.push(format!("{x}{y}{z}"));
            }
        }
    }
    out
}

fn marker(i: usize) -> String {
    format!("zqm{i:08}")
}

fn project(i: usize) -> String {
    let mut r = Rng(i as u64 * 7919 + 13);
    if r.below(2) == 0 {
        "p0".into()
    } else {
        format!("p{}", 1 + r.below(PROJECTS - 1))
    }
}

/// Message `i`: 100-800 characters, its marker second.
fn message(words: &[String], i: usize) -> String {
    let mut r = Rng(i as u64 + 1);
    let target = 100 + r.below(700);
    let mut s = String::new();
    let mut n = 0;
    while s.len() < target {
        if n == 1 {
            s.push_str(&marker(i));
        } else {
            s.push_str(&words[r.skewed(words.len())]);
        }
        s.push(if r.below(12) == 0 { '.' } else { ' ' });
        n += 1;
    }
    s
}

fn msg(words: &[String], i: usize) -> ChatMessageIn {
    ChatMessageIn {
        project_id: project(i),
        chat_id: format!("chat-{}", i / 40),
        message_id: format!("m-{i}"),
        role: "user".into(),
        content: message(words, i),
        timestamp: "2026-01-01T00:00:00Z".into(),
        message_index: (i % 40) as i64,
        message_uuid: None,
    }
}

/// The store with its chat stage (from `memory-indexer`) running; derefs to the store.
/// Dropping it stops the stage, then closes the store.
struct Opened {
    store: Store,
    stage: ChatStage,
}

impl std::ops::Deref for Opened {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

fn open(path: &Path) -> Opened {
    let store = Store::open(StoreConfig::new(path)).expect("open store");
    let stage = ChatStage::start(store.clone()).expect("start the chat stage");
    Opened { store, stage }
}

/// Acknowledges messages `from..to` from 4 threads; returns the elapsed time.
fn ack_all(store: &Store, words: &Arc<Vec<String>>, from: usize, to: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(from));
    let t = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, words, next) = (store.clone(), Arc::clone(words), Arc::clone(&next));
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= to {
                        break;
                    }
                    store.index_chat_message(msg(&words, i)).expect("ack");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    t.elapsed()
}

fn index(n: usize, db: Option<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db.unwrap_or_else(|| dir.path().join("bench.sqlite"));
    let words = Arc::new(words());
    let store = open(&path);
    let before = store.stats().messages_indexed;
    let t = Instant::now();
    let acked = ack_all(&store, &words, 0, n);
    let acked_idx = store.stats().messages_indexed - before;
    assert!(
        store.wait_idle(Duration::from_secs(3600)),
        "indexing did not finish"
    );
    let all = t.elapsed();
    let s = store.stats();
    println!(
        "acks: {n} in {:.2} s = {:.0}/s (indexed meanwhile: {acked_idx})",
        acked.as_secs_f64(),
        n as f64 / acked.as_secs_f64()
    );
    println!(
        "all indexed after {:.2} s = {:.0} messages/s end to end; commits {}, max commit {} ms, errors {}",
        all.as_secs_f64(),
        n as f64 / all.as_secs_f64(),
        s.commits,
        s.commit_latency_max_us / 1000,
        s.index_errors
    );

    // The indexer alone: a backlog of n more messages acknowledged while it is paused.
    store.stage.pause_for_tests(true);
    ack_all(&store, &words, n, 2 * n);
    let t = Instant::now();
    store.stage.pause_for_tests(false);
    assert!(
        store.wait_idle(Duration::from_secs(3600)),
        "backlog did not drain"
    );
    let drain = t.elapsed();
    println!(
        "backlog of {n} drained in {:.2} s = {:.0} messages/s (indexer alone)",
        drain.as_secs_f64(),
        n as f64 / drain.as_secs_f64()
    );
    store.shutdown().expect("shutdown");

    let texts: Vec<String> = (0..n).map(|i| message(&words, i)).collect();
    let bare_t = bare_fts5(&dir.path().join("bare.sqlite"), &texts);
    println!(
        "bare FTS5 insert (256/txn): {:.2} s = {:.0} rows/s; indexer alone / bare = {:.3}",
        bare_t.as_secs_f64(),
        n as f64 / bare_t.as_secs_f64(),
        bare_t.as_secs_f64() / drain.as_secs_f64()
    );
}

/// Bare FTS5 at `path`: `texts` inserted 256 rows per transaction, with the store's
/// durability settings (WAL, `synchronous=FULL`) and tokenizer; how long it took.
fn bare_fts5(path: &std::path::Path, texts: &[String]) -> Duration {
    let conn = rusqlite::Connection::open(path).expect("bare");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE VIRTUAL TABLE f USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2');",
    )
    .expect("bare setup");
    let t = Instant::now();
    for batch in texts.chunks(256) {
        conn.execute_batch("BEGIN").expect("begin");
        let mut st = conn
            .prepare_cached("INSERT INTO f(text) VALUES (?1)")
            .expect("prep");
        for text in batch {
            st.execute([text]).expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    t.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn search(db: PathBuf, n: usize) {
    let t = Instant::now();
    let store = open(&db);
    println!("open (incl. migration): {:.2} s", t.elapsed().as_secs_f64());
    let words = words();
    let total: i64 = rusqlite::Connection::open(&db)
        .expect("raw")
        .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
        .expect("count");
    println!("chunks: {total}");
    let messages = total as usize; // ~1 chunk per message
    for project in ["p0", "p5"] {
        for (kind, mk) in [
            ("common word", 0usize),
            ("two words", 1),
            ("three words", 2),
            ("rare marker", 3),
        ] {
            let mut r = Rng(42);
            let mut ms = Vec::with_capacity(n);
            let mut hits = 0;
            for _ in 0..n {
                let q = match mk {
                    0 => words[r.below(20)].clone(),
                    1 => format!("{} {}", words[r.skewed(words.len())], words[r.below(words.len())]),
                    2 => format!(
                        "{} {} {}",
                        words[r.skewed(words.len())],
                        words[r.skewed(words.len())],
                        words[r.below(words.len())]
                    ),
                    _ => marker(r.below(messages)),
                };
                let req = SearchRequest {
                    project_id: project.into(),
                    query: q,
                    limit: 10,
                    source_ids: None,
                    exclude_chat_ids: Vec::new(),
                };
                let t = Instant::now();
                hits += store.search(&req).expect("search").len();
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{project} {kind:12}: p50 {:7.2} ms  p99 {:7.2} ms  (avg hits {:.1})",
                percentile(&ms, 0.5),
                percentile(&ms, 0.99),
                hits as f64 / n as f64
            );
        }
    }
    store.shutdown().expect("shutdown");
}

fn wal(secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal.sqlite");
    let wal_path = dir.path().join("wal.sqlite-wal");
    let words = Arc::new(words());
    let store = open(&path);
    ack_all(&store, &words, 0, 20_000);
    assert!(store.wait_idle(Duration::from_secs(600)));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(20_000));
    let searches = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for k in 0..8 {
        let (store, words, stop, next, searches) = (
            store.clone(),
            Arc::clone(&words),
            Arc::clone(&stop),
            Arc::clone(&next),
            Arc::clone(&searches),
        );
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(k + 1);
            while !stop.load(Ordering::Relaxed) {
                if k < 4 {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    store.index_chat_message(msg(&words, i)).expect("ack");
                } else {
                    let req = SearchRequest {
                        project_id: "p0".into(),
                        query: words[r.below(30)].clone(),
                        limit: 10,
                        source_ids: None,
                        exclude_chat_ids: Vec::new(),
                    };
                    store.search(&req).expect("search");
                    searches.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let t = Instant::now();
    let mut max_wal = 0u64;
    while t.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(100));
        max_wal = max_wal.max(std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("thread");
    }
    let db = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let s = store.stats();
    println!(
        "{secs} s: {} acks, {} searches; db {:.1} MiB, max WAL {:.1} MiB; max commit {} ms; {s:?}",
        next.load(Ordering::Relaxed) - 20_000,
        searches.load(Ordering::Relaxed),
        db as f64 / 1048576.0,
        max_wal as f64 / 1048576.0,
        s.commit_latency_max_us / 1000,
    );
    store.shutdown().expect("shutdown");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("index") => index(
            arg(1).and_then(|s| s.parse().ok()).unwrap_or(20_000),
            arg(2).map(PathBuf::from),
        ),
        Some("search") => search(
            PathBuf::from(arg(1).expect("search DB [N]")),
            arg(2).and_then(|s| s.parse().ok()).unwrap_or(200),
        ),
        Some("wal") => wal(arg(1).and_then(|s| s.parse().ok()).unwrap_or(20)),
        _ => eprintln!("usage: store_bench index N [DB] | search DB [N] | wal SECS"),
    }
}
