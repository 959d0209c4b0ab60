//! Embedding throughput and query latency on this machine (numbers, not a pass/fail test).
//!
//! ```text
//! scripts/fetch-test-model.sh
//! cargo run --release -p memory-embedding --example embed_speed -- [THREADS] [MODEL_DIR]
//! ```
//! THREADS defaults to the number of CPUs; MODEL_DIR to the test model. Prints file chunks/s
//! (1000-character chunks cut from this workspace's sources and README), chat-sized texts/s
//! (README sentences of 40-200 characters) and query latency p50/p99 through an
//! [`EmbedPool`] (distinct queries, so the query cache never answers).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memory_embedding::{EmbedPool, Embedder};

fn collect_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir()
            && !p.ends_with("target")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            collect_sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs" || e == "md") {
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// 1000-character chunks (cut on char boundaries), as the indexer makes of files.
fn file_chunks(n: usize) -> Vec<String> {
    let mut text = String::new();
    collect_sources(&memory_embedding::workspace_root(), &mut text);
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(1000)
        .filter(|c| c.len() == 1000)
        .take(n)
        .map(|c| c.iter().collect())
        .collect()
}

/// Sentences of 40-200 characters from the README: about the size of a chat message.
fn chat_texts(n: usize) -> Vec<String> {
    let readme =
        std::fs::read_to_string(memory_embedding::workspace_root().join("README.md")).unwrap_or_default();
    let mut out: Vec<String> = readme
        .split(['.', '\n'])
        .map(str::trim)
        .filter(|s| (40..=200).contains(&s.len()))
        .map(str::to_owned)
        .collect();
    let base = out.clone();
    let mut i = 0;
    while out.len() < n && !base.is_empty() {
        out.push(format!("{} ({i})", base[i % base.len()]));
        i += 1;
    }
    out.truncate(n);
    out
}

/// CPU seconds this process has used (user + system, from /proc/self/stat at 100 ticks/s),
/// so a run on a shared machine can be judged by work per CPU-second, not only wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (name) ".
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // As the service does (set RAYON_NUM_THREADS=2 to see the difference).
    // SAFETY: first thing in main, before any thread exists.
    unsafe { memory_embedding::one_thread_per_matmul() };
    let mut args = std::env::args().skip(1);
    let threads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(memory_embedding::test_model_dir);

    let t = Instant::now();
    let embedder = Arc::new(Embedder::load(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot load {}: {e} (run scripts/fetch-test-model.sh)",
            dir.display()
        )
    }));
    println!(
        "model {} loaded in {:.2?}; {threads} compute thread(s)",
        embedder.model_id(),
        t.elapsed()
    );
    print_rss("after load");
    let pool = EmbedPool::new(embedder.clone(), threads);

    // Warm-up (first-call allocation, page faults).
    pool.embed_batch(file_chunks(4)).unwrap();

    let n: usize = std::env::var("CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    throughput(&pool, &embedder, "file chunks", "1000 chars", file_chunks(n));
    throughput(&pool, &embedder, "chat texts", "40-200 chars", chat_texts(500));
    query_latency(&pool);
    print_rss("at the end");
}

/// Embeds `texts` as one batch and prints texts per second of wall time and per
/// CPU-second, and their mean length in word pieces.
fn throughput(pool: &EmbedPool, embedder: &Embedder, what: &str, size: &str, texts: Vec<String>) {
    let tokens: usize = texts.iter().map(|c| embedder.token_count(c).unwrap()).sum();
    let count = texts.len();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    pool.embed_batch(texts).unwrap();
    let (dt, dcpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "{what}: {count} x {size} ({:.0} word pieces avg) in {dt:.2} s = {:.1} per s \
         ({dcpu:.1} CPU-s: {:.1} per CPU-second)",
        tokens as f64 / count as f64,
        count as f64 / dt,
        count as f64 / dcpu
    );
}

/// One query at a time (200 distinct ones, then a repeated one from the cache):
/// latency p50, p99 and max.
fn query_latency(pool: &EmbedPool) {
    let queries: Vec<String> = (0..200)
        .map(|i| format!("what did we decide about the database migration number {i}"))
        .collect();
    let mut lat: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            pool.embed_query(q).unwrap();
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "query latency ({} distinct queries, ~12 word pieces): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    let t = Instant::now();
    pool.embed_query(&queries[0]).unwrap();
    println!("cached query: {:.2?}", t.elapsed());
}

/// Resident memory now and at its peak (Linux only).
fn print_rss(when: &str) {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_owned()
        };
        println!("RSS {when}: {} kB (peak {} kB)", field("VmRSS:"), field("VmHWM:"));
    }
}
