//! One service instance as the retrieval benchmarks (`recall`, `search`) use
//! it: BM25-only or hybrid (started with `--embedding-model DIR`), filled
//! through the HTTP API, and waited on until every acknowledged message is
//! indexed and, for hybrid, embedded, so what is measured afterwards runs over
//! the whole store. Waits poll with hang guards; nothing sleeps a guessed time.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memory_api::chat::{ChatJobState, ChatJobStatus, IndexChatMessage};

use crate::client::{Client, REQUEST_GUARD};
use crate::jobs::{self, Counts, Drained};
use crate::proc::{self, Sandbox, Semantic, Service};

/// How long the model may take to load, or the backlog to make no progress,
/// before we call it hung: a cold load of a small BERT reads ~90 MB.
pub const MODEL_GUARD: Duration = Duration::from_secs(300);

/// A running instance of ours.
pub struct Instance {
    /// The child (killed on drop).
    pub svc: Service,
    /// Its port.
    pub port: u16,
    /// Its home.
    pub home: PathBuf,
    /// The model directory it was started with (`None`: BM25-only).
    pub model: Option<PathBuf>,
    /// Progress lines go to stderr unless set.
    pub quiet: bool,
}

/// One writer's ack latencies (ms), last ack, and the last body's job id if it posted it.
type WriterOut = (Vec<f64>, Instant, Option<String>);

/// What posting a batch of messages took.
pub struct Posted {
    /// POST to 200 of each `/index-chat-message`, ms.
    pub ack_ms: Vec<f64>,
    /// Just before the first POST.
    pub first_post: Instant,
    /// The last acknowledgement.
    pub last_ack: Instant,
    /// The job id of the last body of the batch.
    pub last_job: String,
}

impl Instance {
    /// Starts `serve` on a fresh home and port 0, with `--embedding-model model`
    /// when given, and waits for `/health` to say ready. A binary that refuses
    /// the option fails here, with its stderr.
    pub fn start(sandbox: &Sandbox, model: Option<&Path>, quiet: bool) -> Result<Instance> {
        Instance::start_on(sandbox, sandbox.new_home(), model, quiet)
    }

    /// [`Instance::start`] on `home`, which may already hold a database.
    pub fn start_on(sandbox: &Sandbox, home: PathBuf, model: Option<&Path>, quiet: bool) -> Result<Instance> {
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(m) = model {
            args.extend([OsStr::new("--embedding-model"), m.as_os_str()]);
        }
        let (svc, port, _) = proc::start(sandbox, &home, &args)?;
        Ok(Instance {
            svc,
            port,
            home,
            model: model.map(Path::to_path_buf),
            quiet,
        })
    }

    /// A client with the data-request guard.
    pub fn client(&self) -> Client {
        Client::new(self.port, REQUEST_GUARD)
    }

    fn note(&self, what: &str) {
        if !self.quiet {
            eprintln!("  {what}");
        }
    }

    /// `/health`'s `semantic` object now (`None`: the binary has none).
    pub fn semantic(&self) -> Result<Option<Semantic>> {
        let h = proc::health(&proc::agent(), self.port).with_context(|| {
            format!(
                "GET /health on port {} gave no answer from memory-service",
                self.port
            )
        })?;
        Ok(h.semantic)
    }

    /// Fails when an instance started without a model has semantic search
    /// on anyway (its numbers would not be BM25-only): `semantic.state` must
    /// be absent, "off", or "error".
    pub fn check_bm25_only(&self) -> Result<()> {
        match self.semantic()? {
            Some(s) if matches!(s.state(), "ready" | "loading") => bail!(
                "the BM25-only instance (no --embedding-model, a fresh home) has semantic search {:?} (model {:?}); \
                 it must be off for a BM25-only measurement",
                s.state(),
                s.model
            ),
            _ => Ok(()),
        }
    }

    /// Polls `/health` every 100 ms until `semantic.state` is "ready". Fails
    /// when the binary has no `semantic` object, when the state is "off" or
    /// "error" (with the service's reason), or after [`MODEL_GUARD`].
    pub fn wait_model_ready(&self) -> Result<Semantic> {
        let end = Instant::now() + MODEL_GUARD;
        loop {
            let Some(s) = self.semantic()? else {
                bail!(
                    "/health of pid {} has no `semantic` object: this binary has no semantic search (issue 9); \
                     measure a binary that has it (--bin PATH), or leave out --embedding-model",
                    self.svc.pid()
                );
            };
            match s.state() {
                "ready" => return Ok(s),
                "loading" | "starting" => {}
                other => bail!(
                    "semantic search is {other:?} with --embedding-model {}: {}",
                    self.model.as_deref().unwrap_or(Path::new("?")).display(),
                    s.reason.as_deref().unwrap_or("no reason given")
                ),
            }
            if Instant::now() > end {
                bail!("the embedding model did not load within {MODEL_GUARD:?} (last: {s:?})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `/health` every 100 ms until semantic search is ready with no
    /// chunk pending and at least `min_embedded` chunks embedded (so a
    /// backlog not yet counted cannot pass for an empty one; skipped when the
    /// service does not report the count). Fails on state "error", or when
    /// the embedded count does not move for [`MODEL_GUARD`].
    pub fn wait_embedded(&self, min_embedded: u64) -> Result<(Instant, Semantic)> {
        let mut last = (Instant::now(), None);
        let mut last_report = Instant::now();
        loop {
            let s = self
                .semantic()?
                .context("/health lost its `semantic` object while waiting for the embedding backlog")?;
            let now = Instant::now();
            if s.state() == "error" {
                bail!(
                    "semantic search went to \"error\": {}",
                    s.reason.as_deref().unwrap_or("no reason given")
                );
            }
            if backlog_done(&s, min_embedded) {
                return Ok((now, s));
            }
            if s.embedded_chunks != last.1 {
                last = (now, s.embedded_chunks);
            } else if now - last.0 > MODEL_GUARD {
                bail!("the embedding backlog made no progress for {MODEL_GUARD:?}: {s:?}");
            }
            if now - last_report > Duration::from_secs(5) {
                self.note(&format!(
                    "embedding: {} pending, {} embedded ({})",
                    opt(s.pending_chunks),
                    opt(s.embedded_chunks),
                    s.state()
                ));
                last_report = now;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Posts the `/index-chat-message` bodies `body(0..n)` from `clients`
    /// threads (each its own keep-alive connection), checking each ack.
    pub fn post_messages(
        &self,
        n: usize,
        body: &(dyn Fn(usize) -> IndexChatMessage + Sync),
        clients: usize,
    ) -> Result<Posted> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_post = Instant::now();
        let outs: Vec<Result<WriterOut>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients.max(1))
                .map(|_| {
                    s.spawn(|| {
                        let r = self.post_some(n, body, &next, &failed);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        r
                    })
                })
                .collect();
            let t0 = Instant::now();
            let mut last_report = t0;
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(50));
                if last_report.elapsed() > Duration::from_secs(5) {
                    let sent = next.load(Ordering::Relaxed).min(n);
                    self.note(&format!(
                        "{:.0} s: {sent} of {n} posted",
                        t0.elapsed().as_secs_f64()
                    ));
                    last_report = Instant::now();
                }
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("a writer thread panicked")))
                .collect()
        });
        let (mut ack_ms, mut last_ack, mut last_job) = (Vec::with_capacity(n), first_post, None);
        for o in outs {
            let (lat, last, job) = o?;
            ack_ms.extend(lat);
            last_ack = last_ack.max(last);
            last_job = last_job.or(job);
        }
        Ok(Posted {
            ack_ms,
            first_post,
            last_ack,
            last_job: last_job.context("no message was posted")?,
        })
    }

    /// One writer of [`Instance::post_messages`]: bodies by shared index until
    /// none is left; returns its latencies, last ack and, if it posted the
    /// last body, that job's id.
    fn post_some(
        &self,
        n: usize,
        body: &(dyn Fn(usize) -> IndexChatMessage + Sync),
        next: &AtomicUsize,
        failed: &AtomicBool,
    ) -> Result<WriterOut> {
        let c = self.client();
        let (mut lat, mut last, mut last_job) = (Vec::new(), Instant::now(), None);
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n || failed.load(Ordering::Relaxed) {
                return Ok((lat, last, last_job));
            }
            let b = body(i);
            let t = Instant::now();
            let a = c.post("/index-chat-message", &b)?;
            last = Instant::now();
            lat.push((last - t).as_secs_f64() * 1e3);
            let job = jobs::check_ack(a, i).with_context(|| format!("message_id {:?}", b.message_id))?;
            if i + 1 == n {
                last_job = Some(job);
            }
        }
    }

    /// The store's counters now (before posting, for [`Instance::wait_indexed`]).
    pub fn counts(&self) -> Result<Counts> {
        jobs::counts(&self.client())
    }

    /// Waits until the `posted` messages since `before` are indexed (through
    /// `/metrics`), then checks that `last_job` says `success`. Fails if any
    /// job ended in error.
    pub fn wait_indexed(&self, before: Counts, posted: u64, last_job: &str) -> Result<Drained> {
        let c = self.client();
        let never = AtomicBool::new(false);
        let d = jobs::wait_drained(
            &c,
            before.indexed + before.errors + posted,
            &|| true,
            &never,
            &|k| self.note(&format!("indexing: {} pending, {} indexed", k.pending, k.indexed)),
        )?;
        let errors = d.counts.errors - before.errors;
        if errors > 0 {
            bail!("{errors} acknowledged chat message(s) ended with their index job in `error`");
        }
        let v: ChatJobStatus = c
            .get(&format!("/index-job-status/{last_job}"))?
            .json_200(&format!("GET /index-job-status/{last_job}"))?;
        if v.state != ChatJobState::Success {
            bail!(
                "every job ended, but the last one ({last_job}) is {:?}, not success: {v:?}",
                v.state
            );
        }
        Ok(d)
    }

    /// Resident memory now and its peak (`VmRSS`, `VmHWM` of
    /// `/proc/PID/status`), MiB.
    pub fn rss_mib(&self) -> Result<(f64, f64)> {
        rss_mib(self.svc.pid())
    }
}

/// `VmRSS` and `VmHWM` of `/proc/<pid>/status`, MiB (the file gives kB).
pub fn rss_mib(pid: u32) -> Result<(f64, f64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<f64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .with_context(|| format!("{path} has no {name}"))?;
        let kb: f64 = line
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("{path}: {name} is not a number: {line:?}"))?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS")?, field("VmHWM")?))
}

/// Semantic search ready, no chunk pending, and at least `min_embedded`
/// embedded when the count is reported.
fn backlog_done(s: &Semantic, min_embedded: u64) -> bool {
    let enough = s.embedded_chunks.is_none_or(|e| e >= min_embedded);
    s.state() == "ready" && s.pending_chunks == Some(0) && enough
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "?".into(), |n| n.to_string())
}

/// Runs `measure` on the hybrid instance's model directory ([`model_dir`]):
/// `(Some(result), None)`, or `(None, why)` when there is no model or the
/// default model's run fails (a note in the report). A failure with an
/// `explicit` model (`--embedding-model`) is an error. `say` announces the run.
pub fn measure_hybrid<T>(
    explicit: Option<&Path>,
    say: impl Fn(&str),
    measure: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<(Option<T>, Option<String>)> {
    let dir = match model_dir(explicit) {
        Err(why) => return Ok((None, Some(why))),
        Ok(dir) => dir,
    };
    say(&format!("hybrid instance (--embedding-model {})", dir.display()));
    match measure(&dir) {
        Ok(m) => Ok((Some(m), None)),
        Err(e) if explicit.is_some() => Err(e.context("the hybrid instance")),
        Err(e) => Ok((None, Some(format!("{e:#}")))),
    }
}

/// The model directory to use for the hybrid instance: `explicit`, else
/// `target/test-model/all-MiniLM-L6-v2` (next to this executable's
/// `target/`, then under the current directory) when it exists. `Err` holds
/// why there is none, for the report.
pub fn model_dir(explicit: Option<&Path>) -> std::result::Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_dir() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--embedding-model {} is not a directory", p.display()))
        };
    }
    let rel = Path::new("test-model").join("all-MiniLM-L6-v2");
    let mut tried = Vec::new();
    // target/<profile>/memory-service-bench -> target/
    if let Some(target) = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.to_path_buf()))
    {
        tried.push(target.join(&rel));
    }
    tried.push(Path::new("target").join(&rel));
    for p in &tried {
        if p.is_dir() {
            return Ok(p.clone());
        }
    }
    Err(format!(
        "no model at {}: run scripts/fetch-test-model.sh, or pass --embedding-model DIR",
        tried[0].display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_is_done_only_when_ready_empty_and_counted() {
        let s = |state: &str, pending, embedded| Semantic {
            state: Some(state.into()),
            pending_chunks: pending,
            embedded_chunks: embedded,
            ..Semantic::default()
        };
        assert!(backlog_done(&s("ready", Some(0), Some(10)), 10));
        assert!(backlog_done(&s("ready", Some(0), None), 10), "count not reported");
        assert!(
            !backlog_done(&s("ready", Some(0), Some(9)), 10),
            "not yet enqueued"
        );
        assert!(!backlog_done(&s("ready", Some(1), Some(10)), 10));
        assert!(
            !backlog_done(&s("ready", None, Some(10)), 10),
            "pending not reported"
        );
        assert!(!backlog_done(&s("loading", Some(0), Some(10)), 10));
    }

    #[test]
    fn reads_our_own_rss() {
        let (rss, hwm) = rss_mib(std::process::id()).unwrap();
        assert!(rss > 0.0 && hwm >= rss, "VmRSS {rss} MiB, VmHWM {hwm} MiB");
    }
}
