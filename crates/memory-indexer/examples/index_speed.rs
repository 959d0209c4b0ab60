//! Indexing throughput on a generated tree (~20 MB of text in 2,000 files): prints
//! files/s and MB/s for the first index, an unchanged re-sync and a rebuild.
//! `cargo run -p memory-indexer --example index_speed [-- <megabytes>]`

use std::time::{Duration, Instant};

use memory_indexer::{Indexer, IndexerConfig};
use memory_store::{FileJobKind, Store, StoreConfig};

fn main() {
    let mb: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("tree");
    let total = write_tree(&root, mb * 100);
    let store = Store::open(StoreConfig::new(dir.path().join("home/memory.sqlite"))).expect("store");
    let ix = Indexer::start(
        store.clone(),
        IndexerConfig {
            watch: false,
            ..IndexerConfig::default()
        },
    )
    .expect("indexer");
    let report = |what: &str, job: i64| {
        let start = Instant::now();
        let j = ix.wait_job(job, Duration::from_secs(3600)).expect("job");
        let s = start.elapsed().as_secs_f64();
        println!(
            "{what:<18} {:>6} files ({:>5} re-read) {:>7.1} MB in {:>6.2} s: {:>8.0} files/s {:>6.1} MB/s ({:?})",
            j.files_processed,
            j.files_updated,
            total as f64 / 1e6,
            s,
            j.files_processed as f64 / s,
            total as f64 / 1e6 / s,
            j.status
        );
    };
    let (src, job) = ix
        .add_source(root.to_str().expect("utf8"), None, None)
        .expect("add");
    report("first index", job);
    let job = store.enqueue_file_job(&src.id, FileJobKind::Sync).expect("sync");
    ix.reindex(&src.id).expect("wake"); // wakes the worker; the rebuild runs after the sync
    report("unchanged re-sync", job);
    let rebuild = store.source_jobs(&src.id, 1).expect("jobs")[0].id;
    report("rebuild", rebuild);
    let stats = store.chunk_stats(&src.id).expect("stats").expect("source");
    println!(
        "chunks: {} (avg {} chars); integrity: {}",
        stats.total_chunks,
        stats.avg_chunk_size,
        store.integrity_check().expect("check")
    );
    ix.shutdown();
    store.shutdown().expect("shutdown");
}

/// Writes `files` markdown files of about 10,000 bytes each (pseudo-random words from
/// a small vocabulary, a sentence break every dozen words) in 40 folders under
/// `root`; the bytes written.
fn write_tree(root: &std::path::Path, files: usize) -> usize {
    let words = [
        "alpha", "beta", "gamma", "delta", "memory", "service", "index", "search", "chunk", "quokka",
    ];
    let mut total = 0usize;
    for i in 0..files {
        let sub = root.join(format!("d{:02}", i % 40));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let mut text = String::with_capacity(10_500);
        let mut n = i;
        while text.len() < 10_000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(words[(n >> 33) % words.len()]);
            text.push_str(if (n >> 20) % 12 == 0 { ".\n" } else { " " });
        }
        total += text.len();
        std::fs::write(sub.join(format!("f{i}.md")), text).expect("write");
    }
    total
}
