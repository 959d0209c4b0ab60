//! The `load` report as a table: one block per phase, same units as the JSON.

use super::{LoadSummary, Paced, Report};
use crate::stats::Summary;

fn lat(s: &Option<Summary>) -> String {
    match s {
        Some(s) => format!(
            "n {:>7}  p50 {:>8.2}  p99 {:>8.2}  max {:>8.2} ms",
            s.n, s.median, s.p99, s.max
        ),
        None => "no samples".into(),
    }
}

fn opt(n: Option<i64>) -> String {
    n.map_or("?".into(), |n| n.to_string())
}

fn print_load(l: &LoadSummary, with_acks: bool) {
    println!(
        "  /health          {}  over 1 s: {}",
        lat(&l.health_ms),
        l.health_over_1s
    );
    println!(
        "  /search          {}  {:.0}/s, {:.1} results each",
        lat(&l.search_ms),
        l.searches_per_sec,
        l.results_per_search
    );
    if with_acks {
        println!("  acks             {}  {:.0}/s", lat(&l.ack_ms), l.acks_per_sec);
    }
}

pub(super) fn print_table(r: &Report) {
    print_header(r);
    println!();
    print_fill(r);
    println!();
    print_baseline(r);
    println!();
    print_mixed(r);
    println!();
    print_files(r);
    if let Some(p) = &r.files_paced {
        println!();
        print_paced("4b", p);
    }
    if let Some(d) = &r.documents {
        println!();
        print_paced("4c", d);
    }
    println!();
    print_memory(r);
    println!();
    print_meaning(r);
    println!();
    print_end(r);
}

/// The binary, host and sizes.
fn print_header(r: &Report) {
    let s = &r.size;
    println!("memory-service load benchmark");
    println!("  binary  {}", r.bin.display());
    println!("  host    {} (clients share them with the service)", r.host);
    println!(
        "  size    {} messages, {} clients, {} s mixed, {} MB source, {} MB documents",
        s.messages, s.clients, s.duration_secs, s.source_mb, s.documents_mb
    );
}

/// Phase 1.
fn print_fill(r: &Report) {
    let f = &r.fill;
    println!(
        "1. fill: {} messages ({:.1} MB of text) by {} clients",
        f.messages,
        f.bytes as f64 / 1e6,
        r.size.clients
    );
    println!(
        "  acks             {}  {:.0}/s",
        lat(&Some(f.ack_ms)),
        f.acks_per_sec
    );
    println!(
        "  indexed          all {} in {:.1} s from the first post: {:.0} msg/s (lag after last ack {:.2} s, peak pending {})",
        f.messages, f.indexed_secs, f.indexed_per_sec, f.index_lag_after_last_ack_secs, f.peak_pending_jobs
    );
    if let Some(r) = f.catch_up_per_sec {
        println!("  indexer alone    {r:.0} msg/s (catching up once the writers stopped)");
    }
    println!(
        "  checked          {} sampled jobs success, {} messages found by marker, {} chat chunks",
        f.jobs_checked,
        f.markers_found,
        opt(f.chat_chunks)
    );
}

/// Phase 2.
fn print_baseline(r: &Report) {
    let b = &r.baseline;
    println!("2. baseline: bare FTS5 table, same rows, same tokenizer, WAL, synchronous=FULL");
    println!(
        "  1000 rows/txn    {} rows in {:.2} s: {:.0} rows/s",
        b.batched.rows,
        b.batched.secs,
        b.batched.rows_per_sec()
    );
    println!(
        "  1 row/txn        {} rows in {:.2} s: {:.0} rows/s",
        b.per_row.rows,
        b.per_row.secs,
        b.per_row.rows_per_sec()
    );
    println!(
        "  ratio            service indexed/s : bare rows/s = {:.3} (1 : {:.1}); vs 1 row/txn: {:.2}",
        b.ratio,
        1.0 / b.ratio,
        b.ratio_per_row
    );
}

/// Phase 3.
fn print_mixed(r: &Report) {
    let m = &r.mixed;
    println!(
        "3. mixed: {:.1} s, {} writers + {} searchers + /health every 10 ms",
        m.secs, m.clients, m.clients
    );
    print_load(&m.load, true);
    println!(
        "  drain            pending 0 {:.2} s after the load; {} chat chunks searched",
        m.drain_secs,
        opt(m.chat_chunks)
    );
}

/// Phase 4, or why it was skipped.
fn print_files(r: &Report) {
    match (&r.files, &r.files_skipped) {
        (Some(f), _) => {
            println!(
                "4. files: {} files, {:.1} MB, {} dirs (+{} ignored files), written in {:.1} s",
                f.files,
                f.bytes as f64 / 1e6,
                f.dirs,
                f.ignored_files,
                f.generate_secs
            );
            println!(
                "  job              {} files_total, {} processed, {} bytes in {:.2} s (seen by polling: {:.2} s): {:.2} MB/s",
                f.job
                    .files_total
                    .map_or_else(|| "null".to_string(), |t| t.to_string()),
                f.job.files_processed,
                f.job.bytes_processed,
                f.job_secs,
                f.job_seen_secs,
                f.mb_per_sec
            );
            println!("  during indexing:");
            print_load(&f.during, true);
            println!(
                "  bare FTS5        {} chunks, {:.1} MB in {:.2} s: {:.2} MB/s; ratio service : bare = {:.3} (1 : {:.1})",
                f.bare.rows,
                f.bare.bytes as f64 / 1e6,
                f.bare.secs,
                f.bare.mb_per_sec(),
                f.ratio,
                1.0 / f.ratio
            );
            println!(
                "  checked          {} files found by marker, {} ignored files found (want 0)",
                f.markers_found, f.ignored_found
            );
            println!(
                "  after indexing ({} file chunks + {} chat chunks), searches only:",
                opt(f.file_chunks),
                opt(f.chat_chunks)
            );
            print_load(&f.after, false);
        }
        (None, why) => println!("4. files: skipped: {}", why.as_deref().unwrap_or("?")),
    }
}

/// Phase 4b or 4c: a tree indexed at ChatDO's pace, against bare FTS5.
fn print_paced(label: &str, p: &Paced) {
    let (w, q) = match p.pace {
        super::Pace::Paced {
            writes_per_sec,
            searches_per_sec,
        } => (writes_per_sec, searches_per_sec),
        super::Pace::FlatOut => (f64::NAN, f64::NAN),
    };
    println!(
        "{label}. {} at ChatDO's pace (1 writer at {w:.0} msg/s, 1 search every {:.0} s, /health every 10 ms): {} files, {:.1} MB on disk, {:.1} MB of text, written in {:.1} s",
        p.what,
        1.0 / q,
        p.files,
        p.bytes as f64 / 1e6,
        p.text_bytes as f64 / 1e6,
        p.generate_secs
    );
    println!(
        "  job              {} processed, {} bytes in {:.2} s: {:.2} MB/s of files, {:.2} MB/s of text, {:.1} files/s",
        p.job.files_processed,
        p.job.bytes_processed,
        p.job_secs,
        p.mb_per_sec,
        p.text_mb_per_sec,
        p.files_per_sec
    );
    println!(
        "  text-searchable  {:.2} s from POST /sources to the job completed",
        p.text_searchable_secs
    );
    println!(
        "  bare FTS5        {} chunks, {:.1} MB of text in {:.2} s (timed: {}): {:.2} MB/s",
        p.bare.rows,
        p.bare.bytes as f64 / 1e6,
        p.bare.secs,
        p.bare_timed,
        p.bare.mb_per_sec()
    );
    println!(
        "  ratio            service : bare = {:.3} (1 : {:.1}), MB of text per second both",
        p.ratio,
        1.0 / p.ratio
    );
    println!("  during indexing:");
    print_load(&p.during, true);
    let budget = |s: &Option<Summary>, ms: f64| match s {
        Some(s) => format!("p99 {:.0} ms of {ms:.0} ms ({:.0}x margin)", s.p99, ms / s.p99),
        None => "no samples".into(),
    };
    println!(
        "  ChatDO budgets   /health {}; ack {}",
        budget(&p.during.health_ms, 1000.0),
        budget(&p.during.ack_ms, 2000.0)
    );
    let markers: Vec<String> = p
        .markers
        .iter()
        .map(|m| {
            format!(
                "{} {}/{} ({:.1} MB)",
                m.kind,
                m.found,
                m.checked,
                m.bytes as f64 / 1e6
            )
        })
        .collect();
    println!("  markers found    {}", markers.join(", "));
    if p.what == "documents" {
        let missing: Vec<&str> = crate::documents::KINDS
            .iter()
            .copied()
            .filter(|k| !p.markers.iter().any(|m| m.kind == *k))
            .collect();
        if !missing.is_empty() {
            println!(
                "  NOT MEASURED     no {} document in the tree (raise --documents-mb)",
                missing.join(", ")
            );
        }
    }
    if p.what == "text tree" {
        println!("  ignored found    {} (want 0)", p.ignored_found);
    }
}

/// Phase 6, or why it was skipped.
fn print_meaning(r: &Report) {
    match (&r.meaning, &r.meaning_skipped) {
        (Some(m), _) => {
            println!(
                "6. meaning: a fresh instance with {} ({}), model ready in {:.1} s (not counted); {} files, {:.2} MB",
                m.model_dir,
                m.model.as_deref().unwrap_or("?"),
                m.model_ready_secs,
                m.files,
                m.bytes as f64 / 1e6
            );
            println!(
                "  text-searchable     {:.2} s from POST /sources to the job completed ({} file chunks)",
                m.text_searchable_secs,
                opt(m.file_chunks)
            );
            println!(
                "  meaning-searchable  {:.2} s from POST /sources to no chunk pending embedding: {} chunks, {} chunks/s",
                m.meaning_searchable_secs,
                m.embedded_chunks.map_or("?".into(), |n| n.to_string()),
                m.chunks_embedded_per_sec
                    .map_or("?".into(), |r| format!("{r:.1}"))
            );
            println!(
                "  chat meaning lag    {} messages at 10/s, ack to embedded: p50 {:.0} / p99 {:.0} / max {:.0} ms",
                m.chat_messages, m.chat_lag_ms.median, m.chat_lag_ms.p99, m.chat_lag_ms.max
            );
        }
        (None, why) => println!("6. meaning: skipped: {}", why.as_deref().unwrap_or("?")),
    }
}

/// Phase 5.
fn print_memory(r: &Report) {
    let mem = &r.memory;
    println!("5. memory (RSS, MiB)");
    println!("  idle after start {:.1}", mem.idle_mib);
    println!("  peak in fill     {:.1}", mem.fill_peak_mib);
    println!("  peak loaded, 3-4 {:.1}", mem.loaded_peak_mib);
    println!("  at the end       {:.1}", mem.end_mib);
    println!(
        "  disk: memory.sqlite {:.1} MiB; WAL peak {:.1} MiB in fill, {:.1} MiB in 3-4",
        mem.db_mib, mem.wal_peak_fill_mib, mem.wal_peak_loaded_mib
    );
}

/// SIGTERM, the whole run, warnings.
fn print_end(r: &Report) {
    println!(
        "SIGTERM -> exit 0 with the full store: {:.0} ms; whole run {:.1} s",
        r.sigterm_to_exit_ms, r.total_secs
    );
    for w in &r.warnings {
        println!("warning: {w}");
    }
}
