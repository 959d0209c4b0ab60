//! Phase 6: time to meaning-searchable. A file's text is searchable when its
//! job completes; its meaning only once every chunk has a vector, which the
//! service computes in the background. This phase starts a fresh instance
//! with `--embedding-model`, waits for the model to load (not counted), adds
//! a small text tree and times both moments from POST /sources, the second
//! read from `/health`'s `semantic.pending_chunks` polled every 100 ms. It
//! runs after the main instance has exited, so nothing else competes.
//!
//! Then, on the same instance, the chat lag: [`CHAT_MESSAGES`] messages posted at
//! ChatDO's pace (10 a second, on deadlines), each timed from its ack to the first
//! `/health` poll (every [`POLL`]) whose `semantic.embedded_chunks` counts it. Each
//! message is one chunk and the stage embeds them in order, so message `i` is
//! meaning-searchable once the count reaches the count before the first post plus
//! `i + 1`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memory_api::sources::{AddSource, SourceAdded};
use serde::Serialize;

use super::file_source::wait_job;
use crate::corpus;
use crate::instance::Instance;
use crate::jobs::{check_ack, search, search_body};
use crate::proc::Sandbox;
use crate::stats::Summary;

/// Chat messages of the lag measurement.
pub const CHAT_MESSAGES: usize = 200;
/// Their pace: ChatDO's 10 messages a second.
const CHAT_INTERVAL: Duration = Duration::from_millis(100);
/// How often `/health` is read while they are posted.
const POLL: Duration = Duration::from_millis(10);
/// Their numbers in the corpus: far from the other phases' messages.
const CHAT_FIRST: usize = 9_000_000;

/// Phase 6: one small tree on a fresh instance with an embedding model.
#[derive(Debug, Serialize)]
pub struct Meaning {
    /// The model directory.
    pub model_dir: String,
    /// The model's id as `/health` reports it.
    pub model: Option<String>,
    /// Start of the instance to `semantic.state` "ready", seconds (not
    /// counted below).
    pub model_ready_secs: f64,
    /// Files indexed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// POST /sources to the job "completed" (text-searchable), seconds.
    pub text_searchable_secs: f64,
    /// POST /sources to no chunk pending embedding (meaning-searchable), seconds.
    pub meaning_searchable_secs: f64,
    /// File chunks in the database when the job completed.
    pub file_chunks: Option<i64>,
    /// Chunks embedded when the backlog reached 0 (`semantic.embedded_chunks`).
    pub embedded_chunks: Option<u64>,
    /// embedded_chunks / meaning_searchable_secs.
    pub chunks_embedded_per_sec: Option<f64>,
    /// Chat messages posted at 10 a second, each one chunk.
    pub chat_messages: usize,
    /// Ack to meaning-searchable (embedded) per chat message, ms.
    pub chat_lag_ms: Summary,
}

/// Runs phase 6 on a fresh instance in `sandbox` with the model at `model`
/// and a `mb` MB tree under `root`. Fails when the model does not load, the
/// job fails, a marker of the tree is not found once it completed, or the
/// backlog stops moving (see [`Instance::wait_embedded`]).
pub(super) fn meaning(sandbox: &Sandbox, model: &Path, mb: f64, root: &Path, quiet: bool) -> Result<Meaning> {
    let say = |m: &str| {
        if !quiet {
            eprintln!("running: 6. meaning: {m}");
        }
    };
    say(&format!(
        "a fresh instance with --embedding-model {}",
        model.display()
    ));
    let t_start = Instant::now();
    let inst = Instance::start(sandbox, Some(model), quiet)?;
    let ready = inst.wait_model_ready()?;
    let model_ready_secs = t_start.elapsed().as_secs_f64();

    let dir = root.join("meaning");
    let tree = corpus::write_tree(&dir, (mb * 1e6) as u64, 45)?;
    let files = tree.included().count();
    say(&format!(
        "indexing {files} files ({:.2} MB), then waiting for their embeddings",
        tree.included_bytes as f64 / 1e6
    ));
    let c = inst.client();
    let t_post = Instant::now();
    let v: SourceAdded = c
        .post(
            "/sources",
            &AddSource {
                root_path: dir.display().to_string(),
                display_name: Some("bench-meaning".into()),
                project_id: Some(corpus::PROJECT.into()),
                source_id: None,
            },
        )?
        .json_200("POST /sources")?;
    let never = AtomicBool::new(false);
    let note = |m: &str| {
        if !quiet {
            eprintln!("  {m}");
        }
    };
    let (_job, t_text) = wait_job(&c, &v.source_id, v.job_id, &never, &note)?;
    if let Some(f) = tree.included().find(|f| f.prose) {
        let body = search_body(corpus::PROJECT, &f.marker, 5, Some(vec![v.source_id.clone()]));
        let want = f.rel.to_string_lossy();
        if !search(&c, &body)?
            .iter()
            .any(|r| r.file_path.as_deref().is_some_and(|p| p.ends_with(want.as_ref())))
        {
            bail!(
                "file {} was indexed (job completed) but /search for its marker {} does not return it",
                f.rel.display(),
                f.marker
            );
        }
    }
    let file_chunks = super::chunk_counts_at(&inst.home).ok().map(|c| c.1);
    let (t_meaning, s) = inst
        .wait_embedded(file_chunks.map_or(0, |n| n.max(0) as u64))
        .context("waiting for the embedding backlog")?;
    let meaning_searchable_secs = (t_meaning - t_post).as_secs_f64();
    say(&format!(
        "{CHAT_MESSAGES} chat messages at 10 a second, each timed from its ack to its vector"
    ));
    let base = s
        .embedded_chunks
        .context("/health does not report semantic.embedded_chunks")?;
    let chat_lag_ms = chat_lag(&inst, base)?;
    Ok(Meaning {
        model_dir: model.display().to_string(),
        model: s.model.clone().or(ready.model),
        model_ready_secs,
        files,
        bytes: tree.included_bytes,
        text_searchable_secs: (t_text - t_post).as_secs_f64(),
        meaning_searchable_secs,
        file_chunks,
        embedded_chunks: s.embedded_chunks,
        chunks_embedded_per_sec: s.embedded_chunks.map(|e| e as f64 / meaning_searchable_secs),
        chat_messages: CHAT_MESSAGES,
        chat_lag_ms,
    })
}

/// One `/health` reading: when, and `semantic.embedded_chunks` then.
type Poll = (Instant, u64);

/// Posts [`CHAT_MESSAGES`] messages at 10 a second while another thread reads
/// `semantic.embedded_chunks` every [`POLL`]; `base` is the count before the first
/// post. Returns each message's ack-to-embedded time (ms).
fn chat_lag(inst: &Instance, base: u64) -> Result<Summary> {
    let c = inst.client();
    let stop = AtomicBool::new(false);
    let (acks, polls) = std::thread::scope(|scope| -> Result<(Vec<Instant>, Vec<Poll>)> {
        let poller = scope.spawn(|| -> Result<Vec<Poll>> {
            let mut polls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = inst.semantic()?.context("/health lost its `semantic` object")?;
                polls.push((Instant::now(), s.embedded_chunks.unwrap_or(0)));
                std::thread::sleep(POLL);
            }
            Ok(polls)
        });
        let posted = (|| -> Result<Vec<Instant>> {
            let mut acks = Vec::with_capacity(CHAT_MESSAGES);
            let start = Instant::now();
            for i in 0..CHAT_MESSAGES {
                if let Some(wait) = (start + CHAT_INTERVAL * i as u32).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(wait);
                }
                let n = CHAT_FIRST + i;
                check_ack(
                    c.post(
                        "/index-chat-message",
                        &corpus::message_body(n, &corpus::message(n)),
                    )?,
                    n,
                )?;
                acks.push(Instant::now());
            }
            inst.wait_embedded(base + CHAT_MESSAGES as u64)?;
            Ok(acks)
        })();
        stop.store(true, Ordering::Relaxed);
        let polls = poller
            .join()
            .map_err(|_| anyhow::anyhow!("the /health poller panicked"))??;
        Ok((posted?, polls))
    })?;
    let lags: Vec<f64> = acks
        .iter()
        .enumerate()
        .map(|(i, ack)| {
            let want = base + i as u64 + 1;
            let seen = polls
                .iter()
                .find(|(t, n)| *t >= *ack && *n >= want)
                .map(|(t, _)| *t)
                .with_context(|| format!("no /health poll saw chat message {i} embedded"))?;
            Ok((seen - *ack).as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    Summary::of(&lags).context("no chat message timed")
}
