//! The `load` benchmark: one real service, filled with chat messages as fast as
//! it acknowledges them, compared with a bare FTS5 table fed the same rows, then
//! hammered by writers and searchers while a prober times `/health` (ChatDO gives
//! it 1 s), then (if the service has file sources) made to index a generated
//! tree under the same load, then a fresh copy of it and a tree of mixed
//! documents at ChatDO's pace (the ratio against bare FTS5); RSS is
//! sampled throughout. With `--embedding-model`, a fresh instance then times a
//! small tree to text-searchable and to meaning-searchable. Numbers never fail
//! the run; a wrong answer (non-200, a job in `error`, a lost message) does.
//!
//! One module per phase: `chat_fill` (1, 2), `mixed` (3, and the load
//! harness the file phases reuse, flat out or paced), `file_source` (4),
//! `paced` (4b, 4c), `memory` (5, the RSS sampler), `meaning` (6); `print`
//! renders the table. This module runs them in order.

mod chat_fill;
mod file_source;
mod meaning;
mod memory;
mod mixed;
mod paced;
mod print;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::client::{Client, REQUEST_GUARD};
use crate::corpus;
use crate::proc::{self, Sandbox, Service};
use crate::stats::Summary;

pub use chat_fill::{Baseline, Fill};
pub use file_source::Files;
pub use meaning::Meaning;
pub use memory::Memory;
use memory::{PH_END, PH_FILES, PH_FILL, PH_MIXED, Sampler};
pub use mixed::{LoadSummary, Mixed, Pace};
pub use paced::Paced;

/// `memory-service-bench load`: write, index, search and `/health` under load.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The memory-service binary [default: `memory-service` next to this one]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Chat messages posted in the fill phase [default: 100000; --quick: 5000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub messages: Option<u32>,
    /// Writer threads, and as many search threads in the mixed phase [default: 4; --quick: 2]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: Option<u32>,
    /// Length of the mixed phase, and of the search run after file indexing [default: 10; --quick: 3]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: Option<u64>,
    /// Size of the generated file source, MB of indexable files [default: 50; --quick: 5]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub source_mb: Option<u32>,
    /// Size of the generated tree of mixed documents (PDF, DOCX, PPTX, XLSX,
    /// ODT, ODS, EPUB, HTML, EML, RTF, md, txt), MB on disk [default: 20; --quick: 2]
    #[arg(long, value_name = "MB", value_parser = positive_mb)]
    pub documents_mb: Option<f64>,
    /// An embedding model directory: adds phase 6, time to text- and to
    /// meaning-searchable on a fresh instance started with it [default: phase 6 skipped]
    #[arg(long, value_name = "DIR")]
    pub embedding_model: Option<PathBuf>,
    /// Size of the text tree of phase 6, MB [default: 2; --quick: 0.5]
    #[arg(long, value_name = "MB", value_parser = positive_mb)]
    pub meaning_mb: Option<f64>,
    /// A reduced size for CI (explicit options still win)
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

/// The sizes of one run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Size {
    /// Messages in the fill phase.
    pub messages: usize,
    /// Writer (and searcher) threads.
    pub clients: usize,
    /// Seconds of mixed load.
    pub duration_secs: u64,
    /// MB of indexable files in the source tree.
    pub source_mb: u32,
    /// MB (on disk) of the mixed documents tree.
    pub documents_mb: f64,
    /// MB of the text tree of phase 6 (with `--embedding-model`).
    pub meaning_mb: f64,
}

/// A size in MB: a finite number above 0.
fn positive_mb(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a size in MB above 0")),
    }
}

impl Size {
    fn of(a: &LoadArgs) -> Size {
        let (m, c, d, s, docs, meaning) = if a.quick {
            (5_000, 2, 3, 5, 2.0, 0.5)
        } else {
            (100_000, 4, 10, 50, 20.0, 2.0)
        };
        Size {
            messages: a.messages.map_or(m, |v| v as usize),
            clients: a.clients.map_or(c, |v| v as usize),
            duration_secs: a.duration_secs.unwrap_or(d),
            source_mb: a.source_mb.unwrap_or(s),
            documents_mb: a.documents_mb.unwrap_or(docs),
            meaning_mb: a.meaning_mb.unwrap_or(meaning),
        }
    }
}

/// Everything `load` measured. Times in ms unless the name says otherwise.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The binary measured.
    pub bin: PathBuf,
    /// What ran it (the clients share these CPUs with the service).
    pub host: String,
    /// The sizes.
    pub size: Size,
    /// Phase 1.
    pub fill: Fill,
    /// Phase 2.
    pub baseline: Baseline,
    /// Phase 3.
    pub mixed: Mixed,
    /// Phase 4, `None` when skipped (see `files_skipped`).
    pub files: Option<Files>,
    /// Why phase 4 was skipped (then 4b and 4c are too).
    pub files_skipped: Option<String>,
    /// Phase 4b: a fresh copy of the text tree at ChatDO's pace.
    pub files_paced: Option<Paced>,
    /// Phase 4c: the mixed documents tree at ChatDO's pace.
    pub documents: Option<Paced>,
    /// Phase 6, `None` when skipped (see `meaning_skipped`).
    pub meaning: Option<Meaning>,
    /// Why phase 6 was skipped.
    pub meaning_skipped: Option<String>,
    /// Phase 5.
    pub memory: Memory,
    /// SIGTERM to exit 0 with the full store.
    pub sigterm_to_exit_ms: f64,
    /// Oddities that do not fail the run.
    pub warnings: Vec<String>,
    /// Wall time of the whole run, in seconds.
    pub total_secs: f64,
}

/// Runs every phase and prints the report.
pub fn run(args: &LoadArgs) -> Result<()> {
    let size = Size::of(args);
    if let Some(m) = &args.embedding_model {
        crate::instance::model_dir(Some(m)).map_err(|why| anyhow!("{why}"))?;
    }
    let started = Instant::now();
    let bin = proc::resolve_bin(args.bin.as_deref())?;
    let sandbox = proc::sandbox(&bin)?;
    let home = sandbox.new_home();
    let (mut svc, port, idle_mib) = start_idle(&sandbox, &home)?;

    let sampler = Sampler::default();
    let ctx = Ctx {
        port,
        home: home.clone(),
        root: sandbox.path().to_path_buf(),
        size,
        quiet: args.json,
        sampler: &sampler,
        warnings: Mutex::new(Vec::new()),
        count_failed: AtomicBool::new(false),
    };
    let (fill, baseline, mixed, files) = match sampled_phases(&ctx, svc.pid()) {
        Ok(p) => p,
        Err(e) => {
            let state = match svc.try_status() {
                Some(status) => format!("the service has exited ({status})"),
                None => "the service is still running".to_string(),
            };
            return Err(anyhow!("{e:#}\n{state}; {}", svc.stderr_tail()));
        }
    };

    let db_mib =
        std::fs::metadata(home.join("memory.sqlite")).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0));
    ctx.say("SIGTERM with the full store");
    let sigterm_to_exit_ms = sigterm_to_exit(&mut svc)?;
    let (files, files_paced, documents, files_skipped) = match files {
        Ok((f, p, d)) => (Some(f), Some(p), Some(d), None),
        Err(why) => (None, None, None, Some(why)),
    };
    let (meaning, meaning_skipped) = match (&args.embedding_model, &files_skipped) {
        (None, _) => (
            None,
            Some("no --embedding-model DIR given (time to meaning-searchable needs a model)".to_string()),
        ),
        (Some(_), Some(why)) => (None, Some(format!("no file sources: {why}"))),
        (Some(model), None) => {
            let m = meaning::meaning(&sandbox, model, size.meaning_mb, sandbox.path(), args.json)
                .context("phase 6 (meaning)")?;
            (Some(m), None)
        }
    };
    if let Some(why) = &meaning_skipped {
        ctx.say(&format!("6. meaning: skipped: {why}"));
    }
    let report = Report {
        bin,
        host: crate::proc::host_description(),
        size,
        fill,
        baseline,
        mixed,
        files,
        files_skipped,
        files_paced,
        documents,
        meaning,
        meaning_skipped,
        memory: sampler.memory(idle_mib, db_mib),
        sigterm_to_exit_ms,
        warnings: ctx.warnings.into_inner().unwrap_or_else(|e| e.into_inner()),
        total_secs: started.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print::print_table(&report);
    }
    Ok(())
}

/// Starts the service on `home`, waits until ready, answers 100 `/health`;
/// returns it, its port and its idle RSS (MiB).
fn start_idle(sandbox: &Sandbox, home: &std::path::Path) -> Result<(Service, u16, f64)> {
    let (svc, port, _) = proc::start(sandbox, home, &[])?;
    let health = Client::new(port, REQUEST_GUARD);
    for _ in 0..100 {
        health
            .get("/health")?
            .json_200::<serde::de::IgnoredAny>("GET /health")?;
    }
    let idle_mib = proc::resident_mib(svc.pid())?;
    Ok((svc, port, idle_mib))
}

/// Runs the phases while the sampler thread watches `pid`.
fn sampled_phases(ctx: &Ctx, pid: u32) -> Result<Phases> {
    std::thread::scope(|s| {
        let (sampler, wal) = (ctx.sampler, ctx.home.join("memory.sqlite-wal"));
        s.spawn(move || sampler.run(pid, &wal));
        let r = phases(ctx);
        sampler.phase.store(PH_END, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(150));
        sampler.stop.store(true, Ordering::Relaxed);
        r
    })
}

/// SIGTERM to exit, ms; fails unless the exit code is 0.
fn sigterm_to_exit(svc: &mut Service) -> Result<f64> {
    let t = Instant::now();
    svc.try_signal(Signal::SIGTERM)?;
    let code = proc::exit_code(proc::wait(svc)?)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if code != 0 {
        bail!(
            "after SIGTERM, pid {} exited {code}, not 0\n{}",
            svc.pid(),
            svc.stderr_tail()
        );
    }
    Ok(ms)
}

/// What every phase needs.
struct Ctx<'a> {
    port: u16,
    home: PathBuf,
    root: PathBuf,
    size: Size,
    /// No progress lines on stderr (--json).
    quiet: bool,
    sampler: &'a Sampler,
    warnings: Mutex<Vec<String>>,
    /// The chunk count failed once (warn once).
    count_failed: AtomicBool,
}

impl Ctx<'_> {
    /// A phase starts (stderr, unless --json).
    fn say(&self, what: &str) {
        if !self.quiet {
            eprintln!("running: {what}");
        }
    }

    /// Progress within a phase (stderr, unless --json).
    fn note(&self, what: &str) {
        if !self.quiet {
            eprintln!("  {what}");
        }
    }

    fn client(&self) -> Client {
        Client::new(self.port, REQUEST_GUARD)
    }

    fn warn(&self, w: String) {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(w);
    }

    fn phase(&self, p: usize) {
        self.sampler.phase.store(p, Ordering::Relaxed);
    }

    /// Chunks in the database by kind (chat, file), read directly (read-only).
    fn chunk_counts(&self) -> Option<(i64, i64)> {
        match chunk_counts_at(&self.home) {
            Ok(c) => Some(c),
            Err(e) => {
                if !self.count_failed.swap(true, Ordering::Relaxed) {
                    self.warn(format!("could not count chunks in memory.sqlite: {e}"));
                }
                None
            }
        }
    }
}

/// Chunks in `home`'s database by kind (chat, file), read directly (read-only).
fn chunk_counts_at(home: &std::path::Path) -> rusqlite::Result<(i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        home.join("memory.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row(
        "SELECT coalesce(sum(kind = 'chat'), 0), coalesce(sum(kind = 'file'), 0) FROM chunks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Phase 4 under load, 4b and 4c at ChatDO's pace; or why skipped.
type FilePhases = std::result::Result<(Files, Paced, Paced), String>;

type Phases = (Fill, Baseline, Mixed, FilePhases);

fn phases(ctx: &Ctx) -> Result<Phases> {
    let n = ctx.size.messages;
    ctx.say(&format!("generating {n} messages"));
    let messages: Vec<String> = (0..n).map(corpus::message).collect();

    ctx.say(&format!("1. fill: {n} messages, {} clients", ctx.size.clients));
    ctx.phase(PH_FILL);
    let fill = chat_fill::fill(ctx, &messages).context("phase 1 (fill)")?;

    ctx.say("2. baseline: bare FTS5");
    ctx.phase(2);
    let baseline =
        chat_fill::chat_baseline(ctx, &messages, fill.indexed_per_sec).context("phase 2 (baseline)")?;
    drop(messages);

    ctx.say(&format!(
        "3. mixed: {} s, {} writers, {} searchers, /health every 10 ms",
        ctx.size.duration_secs, ctx.size.clients, ctx.size.clients
    ));
    ctx.phase(PH_MIXED);
    let next = AtomicUsize::new(n);
    let mixed = mixed::mixed(ctx, &next).context("phase 3 (mixed load)")?;

    ctx.phase(PH_FILES);
    let files = match file_source::files(ctx, &next).context("phase 4 (files)")? {
        Err(why) => Err(why),
        Ok(f) => {
            let p = paced::text_tree(ctx, &next).context("phase 4b (files at ChatDO's pace)")?;
            let d = paced::documents_tree(ctx, &next).context("phase 4c (documents at ChatDO's pace)")?;
            Ok((f, p, d))
        }
    };
    Ok((fill, baseline, mixed, files))
}

fn summary(samples: &[f64]) -> Result<Summary> {
    Summary::of(samples).context("no samples to summarize")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn size(args: &[&str]) -> Size {
        Size::of(
            &Cli::try_parse_from(std::iter::once("load").chain(args.iter().copied()))
                .unwrap()
                .load,
        )
    }

    #[test]
    fn document_and_meaning_sizes_default_by_mode_and_explicit_wins() {
        let full = size(&[]);
        assert_eq!((full.documents_mb, full.meaning_mb), (20.0, 2.0));
        let quick = size(&["--quick"]);
        assert_eq!((quick.documents_mb, quick.meaning_mb), (2.0, 0.5));
        let explicit = size(&["--quick", "--documents-mb", "1", "--meaning-mb", "0.2"]);
        assert_eq!((explicit.documents_mb, explicit.meaning_mb), (1.0, 0.2));
        for bad in ["0", "-1", "nan", "inf", "two"] {
            assert!(
                Cli::try_parse_from(["load", "--documents-mb", bad]).is_err(),
                "{bad} accepted"
            );
        }
    }
}
