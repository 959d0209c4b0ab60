//! The `load` benchmark: one real service, filled with chat messages as fast as
//! it acknowledges them, compared with a bare FTS5 table fed the same rows, then
//! hammered by writers and searchers while a prober times `/health` (ChatDO gives
//! it 1 s), then (if the service has file sources) made to index a generated
//! tree under the same load; RSS is sampled throughout. Numbers never fail the
//! run; a wrong answer (non-200, a job in `error`, a lost message) does.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::{Value, json};

use crate::baseline;
use crate::client::{Client, REQUEST_GUARD};
use crate::corpus::{self, Rng};
use crate::jobs::{Counts, Drained, check_ack, counts, search, wait_drained};
use crate::proc::{self, Sandbox, Service};
use crate::stats::Summary;

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
}

impl Size {
    fn of(a: &LoadArgs) -> Size {
        let (m, c, d, s) = if a.quick {
            (5_000, 2, 3, 5)
        } else {
            (100_000, 4, 10, 50)
        };
        Size {
            messages: a.messages.map_or(m, |v| v as usize),
            clients: a.clients.map_or(c, |v| v as usize),
            duration_secs: a.duration_secs.unwrap_or(d),
            source_mb: a.source_mb.unwrap_or(s),
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
    /// Why phase 4 was skipped.
    pub files_skipped: Option<String>,
    /// Phase 5.
    pub memory: Memory,
    /// SIGTERM to exit 0 with the full store.
    pub sigterm_to_exit_ms: f64,
    /// Oddities that do not fail the run.
    pub warnings: Vec<String>,
    /// Wall time of the whole run, in seconds.
    pub total_secs: f64,
}

/// Phase 1: the fill.
#[derive(Debug, Serialize)]
pub struct Fill {
    /// Messages posted.
    pub messages: usize,
    /// Bytes of message text posted.
    pub bytes: u64,
    /// POST to 200 of `/index-chat-message`.
    pub ack_ms: Summary,
    /// Messages acknowledged per second (first post to last ack).
    pub acks_per_sec: f64,
    /// First post to the last message indexed (pending jobs 0), seconds.
    pub indexed_secs: f64,
    /// Messages indexed per second over `indexed_secs`.
    pub indexed_per_sec: f64,
    /// Last ack to pending jobs 0, seconds.
    pub index_lag_after_last_ack_secs: f64,
    /// Most pending chat jobs seen (polled every 50 ms).
    pub peak_pending_jobs: u64,
    /// The indexer's rate alone: jobs pending when the last writer finished,
    /// per second until none were (`None` when under 100 were left).
    pub catch_up_per_sec: Option<f64>,
    /// Sampled jobs checked `success` through `/index-job-status`.
    pub jobs_checked: usize,
    /// Messages found by their marker through `/search`.
    pub markers_found: usize,
    /// Chat chunks in the database afterwards.
    pub chat_chunks: Option<i64>,
}

/// Phase 2: the bare FTS5 baseline.
#[derive(Debug, Serialize)]
pub struct Baseline {
    /// The same rows, 1000 per transaction.
    pub batched: baseline::Run,
    /// The same rows, one transaction each (a durable commit per row, like
    /// the service), stopped after 2 s.
    pub per_row: baseline::Run,
    /// Service indexed/s : bare rows/s (batched).
    pub ratio: f64,
    /// Service indexed/s : bare rows/s (one commit per row).
    pub ratio_per_row: f64,
}

/// Phase 3: mixed load.
#[derive(Debug, Serialize)]
pub struct Mixed {
    /// Writers and searchers.
    pub clients: usize,
    /// Seconds of load.
    pub secs: f64,
    /// The samples.
    pub load: LoadSummary,
    /// End of the load to pending chat jobs 0, seconds.
    pub drain_secs: f64,
    /// Chat chunks the searches ran over (after the drain).
    pub chat_chunks: Option<i64>,
}

/// The summaries of one stretch of load.
#[derive(Debug, Serialize)]
pub struct LoadSummary {
    /// `/health` every 10 ms on its own connection.
    pub health_ms: Option<Summary>,
    /// `/health` answers slower than 1 s (ChatDO's client timeout).
    pub health_over_1s: usize,
    /// `/search` round trips.
    pub search_ms: Option<Summary>,
    /// Searches per second (all searchers).
    pub searches_per_sec: f64,
    /// Mean results per search.
    pub results_per_search: f64,
    /// `/index-chat-message` round trips.
    pub ack_ms: Option<Summary>,
    /// Acks per second (all writers).
    pub acks_per_sec: f64,
}

/// Phase 4: a file source indexed under load.
#[derive(Debug, Serialize)]
pub struct Files {
    /// Indexable files written.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files written that `.gitignore` excludes.
    pub ignored_files: usize,
    /// Directories.
    pub dirs: usize,
    /// Seconds to write the tree.
    pub generate_secs: f64,
    /// The source id the service gave.
    pub source_id: String,
    /// The job's end: files_total, files_processed, bytes_processed, ...
    pub job: Value,
    /// Job duration: the service's completed_at - started_at when parseable,
    /// else POST to "completed" as seen by polling every 100 ms.
    pub job_secs: f64,
    /// POST /sources to "completed" seen by polling, seconds.
    pub job_seen_secs: f64,
    /// bytes_processed / job_secs, MB/s.
    pub mb_per_sec: f64,
    /// Load while the job ran.
    pub during: LoadSummary,
    /// The bare FTS5 insert of the same files, chunked at ~1000 bytes.
    pub bare: baseline::Run,
    /// Service MB/s : bare MB/s.
    pub ratio: f64,
    /// Files found by their marker.
    pub markers_found: usize,
    /// Ignored files found by their marker (should be 0).
    pub ignored_found: usize,
    /// Searches (no writers) over chats and files after indexing.
    pub after: LoadSummary,
    /// File chunks in the database.
    pub file_chunks: Option<i64>,
    /// Chat chunks in the database.
    pub chat_chunks: Option<i64>,
}

/// Phase 5: resident memory of the service, MiB.
#[derive(Debug, Serialize)]
pub struct Memory {
    /// After start and 100 `/health`.
    pub idle_mib: f64,
    /// Peak during the fill.
    pub fill_peak_mib: f64,
    /// Peak during phases 3-4 (sampled every 100 ms).
    pub loaded_peak_mib: f64,
    /// The last sample, after the run's load stopped.
    pub end_mib: f64,
    /// Disk, not RSS: largest `memory.sqlite-wal` seen during the fill.
    pub wal_peak_fill_mib: f64,
    /// Largest `memory.sqlite-wal` seen during phases 3-4 (readers running
    /// all the time can keep a checkpoint from ever restarting the WAL).
    pub wal_peak_loaded_mib: f64,
    /// `memory.sqlite` after the run, before SIGTERM's checkpoint.
    pub db_mib: f64,
}

/// Phases, for the memory sampler.
const PH_FILL: usize = 1;
const PH_MIXED: usize = 3;
const PH_FILES: usize = 4;
const PH_END: usize = 5;

/// Peak RSS per phase, sampled every 100 ms by a thread.
#[derive(Default)]
struct Sampler {
    phase: AtomicUsize,
    peaks: [AtomicU64; 6],
    last: AtomicU64,
    /// Peak size of the service's WAL file per phase, bytes.
    wal_peaks: [AtomicU64; 6],
    stop: AtomicBool,
}

impl Sampler {
    fn run(&self, pid: u32, wal: &std::path::Path) {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
        let pid = sysinfo::Pid::from_u32(pid);
        let Ok(mut sys) = System::new() else { return };
        while !self.stop.load(Ordering::Relaxed) {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_memory(),
            );
            if let Some(p) = sys.process(pid) {
                let rss = p.memory();
                self.peaks[self.phase.load(Ordering::Relaxed)].fetch_max(rss, Ordering::Relaxed);
                self.last.store(rss, Ordering::Relaxed);
            }
            if let Ok(m) = std::fs::metadata(wal) {
                self.wal_peaks[self.phase.load(Ordering::Relaxed)].fetch_max(m.len(), Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn peak_mib(&self, phases: &[usize]) -> f64 {
        Self::peak_of(&self.peaks, phases)
    }

    fn wal_peak_mib(&self, phases: &[usize]) -> f64 {
        Self::peak_of(&self.wal_peaks, phases)
    }

    fn peak_of(peaks: &[AtomicU64; 6], phases: &[usize]) -> f64 {
        let b = phases
            .iter()
            .map(|&p| peaks[p].load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        b as f64 / (1024.0 * 1024.0)
    }
}

/// Runs every phase and prints the report.
pub fn run(args: &LoadArgs) -> Result<()> {
    let size = Size::of(args);
    let started = Instant::now();
    let bin = proc::resolve_bin(args.bin.as_deref())?;
    let sandbox = Sandbox::new(&bin)?;
    let say = |what: &str| {
        if !args.json {
            eprintln!("running: {what}");
        }
    };

    let home = sandbox.new_home();
    let port = proc::free_port()?;
    let (cmd, stderr) = sandbox.serve_command(&home, port)?;
    let mut svc = Service::spawn(cmd, stderr)?;
    proc::wait_healthy(&proc::agent(), &mut svc, port)?;
    let health = Client::new(port, REQUEST_GUARD);
    for _ in 0..100 {
        health.get("/health")?.json_200("GET /health")?;
    }
    let idle_mib = proc::resident_mib(svc.pid())?;

    let sampler = Sampler::default();
    let pid = svc.pid();
    let ctx = Ctx {
        port,
        home: home.clone(),
        root: sandbox.root().to_path_buf(),
        size,
        quiet: args.json,
        sampler: &sampler,
        warnings: Mutex::new(Vec::new()),
        count_failed: AtomicBool::new(false),
    };
    let phases = std::thread::scope(|s| {
        let (sampler, wal) = (&sampler, home.join("memory.sqlite-wal"));
        s.spawn(move || sampler.run(pid, &wal));
        let r = phases(&ctx);
        sampler.phase.store(PH_END, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(150));
        sampler.stop.store(true, Ordering::Relaxed);
        r
    });
    let (fill, baseline, mixed, files) = match phases {
        Ok(p) => p,
        Err(e) => {
            let state = match svc.try_status() {
                Ok(Some(status)) => format!("the service has exited ({status})"),
                _ => "the service is still running".to_string(),
            };
            return Err(anyhow!("{e:#}\n{state}; {}", svc.stderr_tail()));
        }
    };

    let db_mib =
        std::fs::metadata(home.join("memory.sqlite")).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0));
    say("SIGTERM with the full store");
    let t = Instant::now();
    svc.signal(Signal::SIGTERM)?;
    let code = proc::exit_code(svc.wait()?)?;
    let sigterm_to_exit_ms = t.elapsed().as_secs_f64() * 1e3;
    if code != 0 {
        bail!(
            "after SIGTERM, pid {} exited {code}, not 0\n{}",
            svc.pid(),
            svc.stderr_tail()
        );
    }

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (files, files_skipped) = match files {
        Ok(f) => (Some(f), None),
        Err(why) => (None, Some(why)),
    };
    let report = Report {
        bin,
        host: crate::proc::host_description(),
        size,
        fill,
        baseline,
        mixed,
        files,
        files_skipped,
        memory: Memory {
            idle_mib,
            fill_peak_mib: sampler.peak_mib(&[PH_FILL]),
            loaded_peak_mib: sampler.peak_mib(&[PH_MIXED, PH_FILES]),
            end_mib: mib(sampler.last.load(Ordering::Relaxed)),
            wal_peak_fill_mib: sampler.wal_peak_mib(&[PH_FILL]),
            wal_peak_loaded_mib: sampler.wal_peak_mib(&[PH_MIXED, PH_FILES]),
            db_mib,
        },
        sigterm_to_exit_ms,
        warnings: ctx.warnings.into_inner().unwrap_or_else(|e| e.into_inner()),
        total_secs: started.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
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
        let r = (|| -> rusqlite::Result<(i64, i64)> {
            let conn = rusqlite::Connection::open_with_flags(
                self.home.join("memory.sqlite"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.query_row(
                "SELECT coalesce(sum(kind = 'chat'), 0), coalesce(sum(kind = 'file'), 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })();
        match r {
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

type Phases = (Fill, Baseline, Mixed, std::result::Result<Files, String>);

fn phases(ctx: &Ctx) -> Result<Phases> {
    let n = ctx.size.messages;
    ctx.say(&format!("generating {n} messages"));
    let messages: Vec<String> = (0..n).map(corpus::message).collect();

    ctx.say(&format!("1. fill: {n} messages, {} clients", ctx.size.clients));
    ctx.phase(PH_FILL);
    let fill = fill(ctx, &messages).context("phase 1 (fill)")?;

    ctx.say("2. baseline: bare FTS5");
    ctx.phase(2);
    let baseline = chat_baseline(ctx, &messages, fill.indexed_per_sec).context("phase 2 (baseline)")?;
    drop(messages);

    ctx.say(&format!(
        "3. mixed: {} s, {} writers, {} searchers, /health every 10 ms",
        ctx.size.duration_secs, ctx.size.clients, ctx.size.clients
    ));
    ctx.phase(PH_MIXED);
    let next = AtomicUsize::new(n);
    let mixed = mixed(ctx, &next).context("phase 3 (mixed load)")?;

    ctx.phase(PH_FILES);
    let files = files(ctx, &next).context("phase 4 (files)")?;
    Ok((fill, baseline, mixed, files))
}

fn summary(samples: &[f64]) -> Result<Summary> {
    Summary::of(samples).context("no samples to summarize")
}

/// One fill writer's ack latencies, sampled (message, job id) pairs, last ack.
type WriterOut = (Vec<f64>, Vec<(usize, String)>, Instant);

fn fill(ctx: &Ctx, messages: &[String]) -> Result<Fill> {
    let n = messages.len();
    let clients = ctx.size.clients;
    let watch = ctx.client();
    let before = counts(&watch)?;
    // About 100 jobs to check afterwards, spread over the run.
    let stride = (n / 100).max(1);
    let next = AtomicUsize::new(0);
    let acked = AtomicUsize::new(0);
    let writers_done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let t0 = Instant::now();
    let (writer_results, drained) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let r = (|| -> Result<WriterOut> {
                        let c = ctx.client();
                        let (mut lat, mut jobs) = (Vec::with_capacity(n / clients + 1), Vec::new());
                        let mut last = Instant::now();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n || failed.load(Ordering::Relaxed) {
                                return Ok((lat, jobs, last));
                            }
                            let body = corpus::message_body(i, &messages[i]);
                            let t = Instant::now();
                            let a = c.post("/index-chat-message", &body)?;
                            last = Instant::now();
                            lat.push((last - t).as_secs_f64() * 1e3);
                            let job = check_ack(a, i)?;
                            acked.fetch_add(1, Ordering::Relaxed);
                            if i.is_multiple_of(stride) {
                                jobs.push((i, job));
                            }
                        }
                    })();
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    writers_done.fetch_add(1, Ordering::Relaxed);
                    r
                })
            })
            .collect();
        let progress = |k: Counts| {
            ctx.note(&format!(
                "{:.0} s: {} of {n} acknowledged, {} indexed, {} pending",
                t0.elapsed().as_secs_f64(),
                acked.load(Ordering::Relaxed),
                k.indexed - before.indexed,
                k.pending
            ))
        };
        let drained = wait_drained(
            &watch,
            before.indexed + before.errors + n as u64,
            &|| writers_done.load(Ordering::Relaxed) == clients,
            &failed,
            &progress,
        );
        if drained.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a writer thread panicked")))
            .collect();
        (results, drained)
    });
    let (mut lat, mut jobs, mut last_ack) = (Vec::new(), Vec::new(), t0);
    for r in writer_results {
        let (l, j, last) = r?;
        lat.extend(l);
        jobs.extend(j);
        last_ack = last_ack.max(last);
    }
    let drained = drained?;
    let errors = drained.counts.errors - before.errors;
    if errors > 0 {
        bail!(
            "{errors} acknowledged chat message(s) ended with their index job in `error` (see /metrics memory_service_store_index_errors_total)"
        );
    }

    // Every sampled job must say success; every sampled message must be found.
    let c = ctx.client();
    jobs.sort();
    for (i, job) in &jobs {
        let v = c
            .get(&format!("/index-job-status/{job}"))?
            .json_200(&format!("GET /index-job-status/{job} (message m-{i})"))?;
        match v["state"].as_str() {
            Some("success") => {}
            Some("error") => bail!(
                "message m-{i} was acknowledged but its job {job} ended in error: {}",
                v["error_message"]
            ),
            other => bail!("message m-{i}: job {job} is {other:?} after every job was done, not \"success\""),
        }
    }
    let mut markers_found = 0;
    for i in (0..n).step_by((n / 20).max(1)) {
        let body = json!({"project_id": corpus::PROJECT, "query": corpus::message_marker(i), "limit": 5});
        let results = search(&c, &body)?;
        let want = format!("m-{i}");
        if !results.iter().any(|r| r["message_id"] == want.as_str()) {
            bail!(
                "message m-{i} was acknowledged and indexed, but /search for its marker {} does not return it ({} results)",
                corpus::message_marker(i),
                results.len()
            );
        }
        markers_found += 1;
    }

    let indexed_secs = (drained.at - t0).as_secs_f64();
    Ok(Fill {
        messages: n,
        bytes: messages.iter().map(|m| m.len() as u64).sum(),
        ack_ms: summary(&lat)?,
        acks_per_sec: n as f64 / (last_ack - t0).as_secs_f64(),
        indexed_secs,
        indexed_per_sec: n as f64 / indexed_secs,
        index_lag_after_last_ack_secs: drained.at.saturating_duration_since(last_ack).as_secs_f64(),
        peak_pending_jobs: drained.peak_pending,
        catch_up_per_sec: drained.writing_done.and_then(|(t, k)| {
            let secs = drained.at.saturating_duration_since(t).as_secs_f64();
            (k.pending >= 100 && secs > 0.0).then(|| k.pending as f64 / secs)
        }),
        jobs_checked: jobs.len(),
        markers_found,
        chat_chunks: ctx.chunk_counts().map(|c| c.0),
    })
}

fn chat_baseline(ctx: &Ctx, messages: &[String], service_per_sec: f64) -> Result<Baseline> {
    let dir = ctx.root.join("baseline");
    std::fs::create_dir_all(&dir).context("creating the baseline directory")?;
    let texts = || messages.iter().map(String::as_str);
    let batched = baseline::run(&dir.join("chat-batched.sqlite"), 1000, texts(), None)?;
    let per_row = baseline::run(
        &dir.join("chat-per-row.sqlite"),
        1,
        texts(),
        Some(Duration::from_secs(2)),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Baseline {
        ratio: service_per_sec / batched.rows_per_sec(),
        ratio_per_row: service_per_sec / per_row.rows_per_sec(),
        batched,
        per_row,
    })
}

/// The raw samples of one stretch of load.
#[derive(Default)]
struct Samples {
    health_ms: Vec<f64>,
    search_ms: Vec<f64>,
    results: usize,
    ack_ms: Vec<f64>,
    secs: f64,
}

impl Samples {
    fn summary(&self) -> LoadSummary {
        let per_sec = |n: usize| {
            if self.secs > 0.0 {
                n as f64 / self.secs
            } else {
                0.0
            }
        };
        LoadSummary {
            health_ms: Summary::of(&self.health_ms),
            health_over_1s: self.health_ms.iter().filter(|&&ms| ms > 1000.0).count(),
            search_ms: Summary::of(&self.search_ms),
            searches_per_sec: per_sec(self.search_ms.len()),
            results_per_search: if self.search_ms.is_empty() {
                0.0
            } else {
                self.results as f64 / self.search_ms.len() as f64
            },
            ack_ms: Summary::of(&self.ack_ms),
            acks_per_sec: per_sec(self.ack_ms.len()),
        }
    }
}

/// Runs `writers` writer threads (new messages numbered from `next`),
/// `searchers` search threads (bodies from `query`) and a `/health` prober
/// (every 10 ms, own connection) while `body` runs on this thread; stops them
/// when it returns. A failing thread makes the whole call fail (and `body`
/// sees `failed` set, so it can give up early).
fn under_load<T>(
    ctx: &Ctx,
    writers: usize,
    searchers: usize,
    next: &AtomicUsize,
    query: &(dyn Fn(&mut Rng) -> Value + Sync),
    body: impl FnOnce(&AtomicBool) -> Result<T>,
) -> Result<(Samples, T)> {
    let stop = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let t0 = Instant::now();
    let running = || !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed);
    let guard = |r: Result<Vec<f64>>| {
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        r
    };
    let results = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let prober = s.spawn(|| {
            guard((|| {
                let c = ctx.client();
                let mut lat = Vec::new();
                let mut tick = Instant::now();
                while running() {
                    let t = Instant::now();
                    c.get("/health")?.json_200("GET /health under load")?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    tick += Duration::from_millis(10);
                    let now = Instant::now();
                    if tick > now {
                        std::thread::sleep(tick - now);
                    } else {
                        tick = now;
                    }
                }
                Ok(lat)
            })())
        });
        let writer_handles: Vec<_> = (0..writers)
            .map(|_| {
                s.spawn(|| {
                    guard((|| {
                        let c = ctx.client();
                        let mut lat = Vec::new();
                        while running() {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let body = corpus::message_body(i, &corpus::message(i));
                            let t = Instant::now();
                            let a = c.post("/index-chat-message", &body)?;
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                            check_ack(a, i)?;
                        }
                        Ok(lat)
                    })())
                })
            })
            .collect();
        let search_handles: Vec<_> = (0..searchers)
            .map(|k| {
                let results = &results;
                s.spawn(move || {
                    guard((|| {
                        let c = ctx.client();
                        let mut rng = Rng::new(0xC0FFEE + k as u64);
                        let mut lat = Vec::new();
                        while running() {
                            let q = query(&mut rng);
                            let t = Instant::now();
                            let r = search(&c, &q)?;
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                            results.fetch_add(r.len(), Ordering::Relaxed);
                        }
                        Ok(lat)
                    })())
                })
            })
            .collect();

        let out = body(&failed);
        stop.store(true, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<Vec<f64>>>| {
            h.join().unwrap_or_else(|_| bail!("a load thread panicked"))
        };
        let mut samples = Samples {
            secs,
            ..Samples::default()
        };
        let mut first_err = None;
        let mut take = |r: Result<Vec<f64>>, into: &mut Vec<f64>| match r {
            Ok(v) => into.extend(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        };
        take(join(prober), &mut samples.health_ms);
        for h in writer_handles {
            take(join(h), &mut samples.ack_ms);
        }
        for h in search_handles {
            take(join(h), &mut samples.search_ms);
        }
        samples.results = results.load(Ordering::Relaxed);
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok((samples, out?))
    })
}

/// A query body over the chat project; markers of messages `0..n`.
fn chat_query(n: usize) -> impl Fn(&mut Rng) -> Value + Sync {
    move |rng: &mut Rng| {
        let q = corpus::query(rng, &|r: &mut Rng| corpus::message_marker(r.below(n)));
        json!({"project_id": corpus::PROJECT, "query": q, "limit": 10})
    }
}

fn mixed(ctx: &Ctx, next: &AtomicUsize) -> Result<Mixed> {
    let c = ctx.client();
    let before = counts(&c)?;
    let first = next.load(Ordering::Relaxed);
    let query = chat_query(first);
    let duration = Duration::from_secs(ctx.size.duration_secs);
    let (samples, ()) = under_load(ctx, ctx.size.clients, ctx.size.clients, next, &query, |failed| {
        let end = Instant::now() + duration;
        while Instant::now() < end && !failed.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })?;
    let t = Instant::now();
    let posted = samples.ack_ms.len() as u64;
    let drained = drain(ctx, &c, before, posted)?;
    Ok(Mixed {
        clients: ctx.size.clients,
        secs: samples.secs,
        load: samples.summary(),
        drain_secs: drained.at.saturating_duration_since(t).as_secs_f64(),
        chat_chunks: ctx.chunk_counts().map(|c| c.0),
    })
}

/// Waits until the `posted` messages since `before` are indexed; fails on errors.
fn drain(ctx: &Ctx, c: &Client, before: Counts, posted: u64) -> Result<Drained> {
    let never = AtomicBool::new(false);
    let d = wait_drained(
        c,
        before.indexed + before.errors + posted,
        &|| true,
        &never,
        &|k| ctx.note(&format!("draining: {} pending", k.pending)),
    )?;
    let errors = d.counts.errors - before.errors;
    if errors > 0 {
        bail!("{errors} acknowledged chat message(s) ended with their index job in `error`");
    }
    Ok(d)
}

/// Seconds since an epoch of a naive ISO-8601 time `YYYY-MM-DDTHH:MM:SS[.f]`
/// (any offset ignored: we only subtract two times of the same service).
fn iso_secs(s: &str) -> Option<f64> {
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+', '-']).next()?;
    let mut t = time.splitn(3, ':');
    let (h, mi, sec) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + sec)
}

/// Phase 4; `Err(reason)` inside `Ok` when the service has no file sources.
fn files(ctx: &Ctx, next: &AtomicUsize) -> Result<std::result::Result<Files, String>> {
    let c = ctx.client();
    // An empty body: 404 means no such route; anything else (422, 400) means it exists.
    let probe = c.post("/sources", &json!({}))?;
    if probe.status == 404 {
        ctx.say("4. files: skipped (POST /sources answered 404)");
        return Ok(Err(
            "file sources not available (POST /sources answered 404)".into()
        ));
    }
    let mb = ctx.size.source_mb;
    ctx.say(&format!("4. files: generating a {mb} MB tree"));
    let root = ctx.root.join("source");
    let t = Instant::now();
    let tree = corpus::write_tree(&root, u64::from(mb) * 1_000_000, 42)?;
    let generate_secs = t.elapsed().as_secs_f64();
    let included: Vec<&corpus::TreeFile> = tree.included().collect();

    ctx.say(&format!(
        "4. files: indexing {} files under load ({} writers, {} searchers, /health every 10 ms)",
        included.len(),
        ctx.size.clients,
        ctx.size.clients
    ));
    let before = counts(&c)?;
    let t_post = Instant::now();
    let v = c
        .post(
            "/sources",
            &json!({"root_path": root, "display_name": "bench", "project_id": corpus::PROJECT}),
        )?
        .json_200("POST /sources")?;
    let source_id = v["source_id"]
        .as_str()
        .with_context(|| format!("POST /sources: no source_id in {v}"))?
        .to_string();
    let job_id = v["job_id"].clone();
    let sid = source_id.clone();
    let query = chat_query(next.load(Ordering::Relaxed));
    let query = move |rng: &mut Rng| {
        let mut q = query(rng);
        q["source_ids"] = json!([sid]);
        q
    };
    let (during, (job, t_done)) =
        under_load(ctx, ctx.size.clients, ctx.size.clients, next, &query, |failed| {
            wait_job(&c, &source_id, &job_id, failed, ctx)
        })?;
    let job_seen_secs = (t_done - t_post).as_secs_f64();
    let bytes_processed = job["bytes_processed"].as_u64().unwrap_or(0);
    let server_secs = match (job["started_at"].as_str(), job["completed_at"].as_str()) {
        (Some(a), Some(b)) => iso_secs(b).zip(iso_secs(a)).map(|(b, a)| b - a),
        _ => None,
    };
    let job_secs = match server_secs {
        Some(s) if s > 0.0 => s,
        _ => {
            ctx.warn(
                "the file job's started_at/completed_at were not usable; its duration is the client's view"
                    .into(),
            );
            job_seen_secs
        }
    };
    if bytes_processed == 0 {
        ctx.warn(format!("the file job reports bytes_processed 0: {job}"));
    }
    let posted = during.ack_ms.len() as u64;
    drain(ctx, &c, before, posted)?;

    ctx.say("4. files: bare FTS5 of the same files");
    let mut texts = Vec::with_capacity(included.len());
    let t = Instant::now();
    for f in &included {
        texts.push(
            std::fs::read_to_string(root.join(&f.rel))
                .with_context(|| format!("reading {}", f.rel.display()))?,
        );
    }
    let read_secs = t.elapsed().as_secs_f64();
    let dir = ctx.root.join("baseline");
    std::fs::create_dir_all(&dir).context("creating the baseline directory")?;
    let mut bare = baseline::run(
        &dir.join("files.sqlite"),
        1000,
        texts.iter().flat_map(|t| corpus::chunks(t)),
        None,
    )?;
    bare.secs += read_secs; // the service reads the files too
    drop(texts);
    let _ = std::fs::remove_dir_all(&dir);

    // Markers: prose files must be found; ignored files must not.
    let marker_search = |f: &corpus::TreeFile| -> Result<bool> {
        let body =
            json!({"project_id": corpus::PROJECT, "query": f.marker, "limit": 5, "source_ids": [source_id]});
        let want = f.rel.to_string_lossy();
        Ok(search(&c, &body)?.iter().any(|r| {
            r["file_path"]
                .as_str()
                .is_some_and(|p| p.ends_with(want.as_ref()))
        }))
    };
    let prose: Vec<&&corpus::TreeFile> = included.iter().filter(|f| f.prose).collect();
    let mut markers_found = 0;
    for f in prose.iter().step_by((prose.len() / 10).max(1)) {
        if !marker_search(f)? {
            bail!(
                "file {} was indexed (job completed) but /search for its marker {} does not return it",
                f.rel.display(),
                f.marker
            );
        }
        markers_found += 1;
    }
    let ignored: Vec<&corpus::TreeFile> = tree.files.iter().filter(|f| f.ignored).collect();
    let (mut ignored_checked, mut ignored_hits) = (0, Vec::new());
    for f in ignored.iter().step_by((ignored.len() / 10).max(1)) {
        ignored_checked += 1;
        if marker_search(f)? {
            ignored_hits.push(f.rel.display().to_string());
        }
    }
    let ignored_found = ignored_hits.len();
    if let Some(example) = ignored_hits.first() {
        ctx.warn(format!(
            "{ignored_found} of {ignored_checked} sampled files excluded by .gitignore were indexed (e.g. {example})"
        ));
    }

    ctx.say(&format!(
        "4. files: {} s of searches over chats and files",
        ctx.size.duration_secs
    ));
    let duration = Duration::from_secs(ctx.size.duration_secs);
    let sid = source_id.clone();
    let n_files = tree.files.len();
    let file_query = move |rng: &mut Rng| {
        let q = corpus::query(rng, &|r: &mut Rng| corpus::file_marker(r.below(n_files)));
        json!({"project_id": corpus::PROJECT, "query": q, "limit": 10, "source_ids": [sid]})
    };
    let (after, ()) = under_load(ctx, 0, ctx.size.clients, next, &file_query, |failed| {
        let end = Instant::now() + duration;
        while Instant::now() < end && !failed.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })?;
    let chunks = ctx.chunk_counts();
    let mb_per_sec = bytes_processed as f64 / 1e6 / job_secs;
    Ok(Ok(Files {
        files: included.len(),
        bytes: tree.included_bytes,
        ignored_files: ignored.len(),
        dirs: tree.dirs,
        generate_secs,
        source_id,
        job,
        job_secs,
        job_seen_secs,
        mb_per_sec,
        during: during.summary(),
        ratio: mb_per_sec / bare.mb_per_sec(),
        bare,
        markers_found,
        ignored_found,
        after: after.summary(),
        file_chunks: chunks.map(|c| c.1),
        chat_chunks: chunks.map(|c| c.0),
    }))
}

/// Polls `/sources/{id}/jobs` every 100 ms until job `job_id` (or, if the id
/// is not found, the newest job) is completed; fails if it fails or is stuck.
fn wait_job(
    c: &Client,
    source_id: &str,
    job_id: &Value,
    failed: &AtomicBool,
    ctx: &Ctx,
) -> Result<(Value, Instant)> {
    let mut last = (Instant::now(), Value::Null);
    let mut last_report = Instant::now();
    loop {
        if failed.load(Ordering::Relaxed) {
            bail!("stopped: a client failed");
        }
        let v = c
            .get(&format!("/sources/{source_id}/jobs?limit=5"))?
            .json_200(&format!("GET /sources/{source_id}/jobs"))?;
        let now = Instant::now();
        let jobs = v["jobs"]
            .as_array()
            .with_context(|| format!("GET /sources/{source_id}/jobs: no jobs array in {v}"))?;
        let same = |j: &&Value| {
            j["id"] == *job_id
                || j["id"].to_string().trim_matches('"') == job_id.to_string().trim_matches('"')
        };
        let job = jobs
            .iter()
            .find(same)
            .or(jobs.first())
            .cloned()
            .unwrap_or(Value::Null);
        match job["status"].as_str() {
            Some("completed") => return Ok((job, now)),
            Some(s @ ("failed" | "cancelled")) => bail!("the file index job ended {s}: {job}"),
            _ => {}
        }
        let progress = json!([job["status"], job["files_processed"], job["bytes_processed"]]);
        if progress != last.1 {
            last = (now, progress);
        } else if now - last.0 > Duration::from_secs(120) {
            bail!("the file index job made no progress for 120 s: {job}");
        }
        if now - last_report > Duration::from_secs(5) {
            ctx.note(&format!(
                "job {}: {} of {} files, {} bytes",
                job["status"], job["files_processed"], job["files_total"], job["bytes_processed"]
            ));
            last_report = now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

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

fn print_table(r: &Report) {
    let s = &r.size;
    println!("memory-service load benchmark");
    println!("  binary  {}", r.bin.display());
    println!("  host    {} (clients share them with the service)", r.host);
    println!(
        "  size    {} messages, {} clients, {} s mixed, {} MB source",
        s.messages, s.clients, s.duration_secs, s.source_mb
    );
    println!();
    let f = &r.fill;
    println!(
        "1. fill: {} messages ({:.1} MB of text) by {} clients",
        f.messages,
        f.bytes as f64 / 1e6,
        s.clients
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
    println!();
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
    println!();
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
    println!();
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
                f.job["files_total"],
                f.job["files_processed"],
                f.job["bytes_processed"],
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
    println!();
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
    println!();
    println!(
        "SIGTERM -> exit 0 with the full store: {:.0} ms; whole run {:.1} s",
        r.sigterm_to_exit_ms, r.total_secs
    );
    for w in &r.warnings {
        println!("warning: {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_differences() {
        let a = iso_secs("2026-01-01T23:59:59.500000").unwrap();
        let b = iso_secs("2026-01-02T00:00:01.250000").unwrap();
        assert!((b - a - 1.75).abs() < 1e-6);
        let c = iso_secs("2024-02-28T00:00:00Z").unwrap();
        let d = iso_secs("2024-03-01T00:00:00+02:00").unwrap();
        assert!((d - c - 2.0 * 86_400.0).abs() < 1e-6, "leap year");
        assert!(iso_secs("garbage").is_none());
    }
}
