//! Phase 6: time to meaning-searchable. A file's text is searchable when its
//! job completes; its meaning only once every chunk has a vector, which the
//! service computes in the background. This phase starts a fresh instance
//! with `--embedding-model`, waits for the model to load (not counted), adds
//! a small text tree and times both moments from POST /sources, the second
//! read from `/health`'s `semantic.pending_chunks` polled every 100 ms. It
//! runs after the main instance has exited, so nothing else competes.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use memory_api::sources::{AddSource, SourceAdded};
use serde::Serialize;

use super::file_source::wait_job;
use crate::corpus;
use crate::instance::Instance;
use crate::jobs::{search, search_body};
use crate::proc::Sandbox;

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
    })
}
