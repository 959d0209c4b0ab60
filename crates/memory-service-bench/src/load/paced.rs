//! Phases 4b and 4c: file indexing at ChatDO's pace, the headline ratio.
//! Phase 4 measures the indexer while writers and searchers take what they
//! can (half the CPU of a 2-core machine), which is a stress figure, not the
//! issue's ratio; here only what ChatDO does runs beside the job (the
//! `/health` prober every 10 ms, one writer at 10 messages/s, one search a
//! second), over a fresh copy of the text tree (4b) and over a tree of mixed
//! documents (4c), each set against a bare FTS5 insert of the same text in
//! the same run. The job's text is searchable when it completes, so POST
//! /sources to "completed" is the time to text-searchable; markers confirm it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use memory_api::sources::FileJob;
use serde::Serialize;

use super::file_source::{bare_files, check_file_markers, index_under_load};
use super::mixed::Pace;
use super::{Ctx, LoadSummary};
use crate::baseline;
use crate::client::Client;
use crate::corpus;
use crate::documents::{self, DocTree, KINDS};
use crate::jobs::{search, search_body};

/// One tree indexed at ChatDO's pace.
#[derive(Debug, Serialize)]
pub struct Paced {
    /// What was indexed: "text tree" or "documents".
    pub what: String,
    /// The pace of the writer and the searcher beside the job.
    pub pace: Pace,
    /// Files that should be indexed.
    pub files: usize,
    /// Their bytes on disk.
    pub bytes: u64,
    /// Bytes of their text (the plain text each document was generated
    /// from; for the text tree, the files' bytes).
    pub text_bytes: u64,
    /// Seconds to write the tree.
    pub generate_secs: f64,
    /// The source id the service gave.
    pub source_id: String,
    /// The job's end state.
    pub job: FileJob,
    /// Job duration (the service's completed_at - started_at when parseable).
    pub job_secs: f64,
    /// Time to text-searchable: POST /sources to "completed" seen by
    /// polling every 100 ms, seconds.
    pub text_searchable_secs: f64,
    /// bytes_processed / job_secs, MB/s (of file bytes).
    pub mb_per_sec: f64,
    /// text_bytes / job_secs, MB/s.
    pub text_mb_per_sec: f64,
    /// files_processed / job_secs.
    pub files_per_sec: f64,
    /// `/health`, acks and searches while the job ran.
    pub during: LoadSummary,
    /// The bare FTS5 insert of the same text, chunked at ~1000 bytes.
    pub bare: baseline::Run,
    /// What the bare time counts: reading the files and inserts (text tree),
    /// or inserts only (documents: their text is generated in memory).
    pub bare_timed: String,
    /// text_mb_per_sec : bare MB/s (MB of text both).
    pub ratio: f64,
    /// Markers searched and found, per kind (extension).
    pub markers: Vec<KindMarkers>,
    /// Files excluded by `.gitignore` found by their marker (text tree; want 0).
    pub ignored_found: usize,
}

/// Markers of one kind of file.
#[derive(Debug, Serialize)]
pub struct KindMarkers {
    /// The extension.
    pub kind: String,
    /// Files of this kind in the tree.
    pub files: usize,
    /// Their bytes on disk.
    pub bytes: u64,
    /// Searched by marker.
    pub checked: usize,
    /// Found by /search under their own path.
    pub found: usize,
}

/// Files of one kind searched by marker at most.
const CHECK_PER_KIND: usize = 6;

/// Phase 4b: a fresh copy of the text tree (another seed, so no content is
/// shared with phase 4's source and the job is a full first index).
pub(super) fn text_tree(ctx: &Ctx, next: &AtomicUsize) -> Result<Paced> {
    let c = ctx.client();
    let mb = ctx.size.source_mb;
    ctx.say(&format!(
        "4b. files at ChatDO's pace: generating a fresh {mb} MB tree"
    ));
    let root = ctx.root.join("source-paced");
    let t = Instant::now();
    let tree = corpus::write_tree(&root, u64::from(mb) * 1_000_000, 43)?;
    let generate_secs = t.elapsed().as_secs_f64();
    let included: Vec<&corpus::TreeFile> = tree.included().collect();
    ctx.say(&format!(
        "4b. files: indexing {} files beside 1 writer at 10 msg/s, 1 search/s, /health every 10 ms",
        included.len()
    ));
    let ix = index_under_load(ctx, &c, &root, "bench-paced", next, 1, Pace::CHATDO)?;
    ctx.say("4b. files: bare FTS5 of the same files");
    let bare = bare_files(ctx, &root, &included)?;
    let (found, ignored_found) = check_file_markers(ctx, &c, &ix.source_id, &tree)?;
    let prose: Vec<&&corpus::TreeFile> = included.iter().filter(|f| f.prose).collect();
    let job_mb = ix.job.bytes_processed.max(0) as f64 / 1e6 / ix.job_secs;
    Ok(Paced {
        what: "text tree".into(),
        pace: Pace::CHATDO,
        files: included.len(),
        bytes: tree.included_bytes,
        text_bytes: tree.included_bytes,
        generate_secs,
        source_id: ix.source_id,
        text_searchable_secs: ix.job_seen_secs,
        mb_per_sec: job_mb,
        text_mb_per_sec: job_mb,
        files_per_sec: ix.job.files_processed as f64 / ix.job_secs,
        job: ix.job,
        job_secs: ix.job_secs,
        during: ix.during.summary(),
        ratio: job_mb / bare.mb_per_sec(),
        bare,
        bare_timed: "reading the files and inserts".into(),
        markers: vec![KindMarkers {
            kind: "md/txt (prose)".into(),
            files: prose.len(),
            bytes: prose
                .iter()
                .map(|f| std::fs::metadata(root.join(&f.rel)).map_or(0, |m| m.len()))
                .sum(),
            checked: found,
            found,
        }],
        ignored_found,
    })
}

/// Phase 4c: a tree of mixed documents (`--documents-mb`).
pub(super) fn documents_tree(ctx: &Ctx, next: &AtomicUsize) -> Result<Paced> {
    let c = ctx.client();
    let mb = ctx.size.documents_mb;
    ctx.say(&format!(
        "4c. documents at ChatDO's pace: generating {mb} MB of documents"
    ));
    let root = ctx.root.join("documents");
    let t = Instant::now();
    let tree = documents::write_documents_tree(&root, (mb * 1e6) as u64, 44)?;
    let generate_secs = t.elapsed().as_secs_f64();
    ctx.say(&format!(
        "4c. documents: indexing {} documents ({:.1} MB of text) beside 1 writer at 10 msg/s, 1 search/s, /health every 10 ms",
        tree.files.len(),
        tree.text_bytes as f64 / 1e6
    ));
    let ix = index_under_load(ctx, &c, &root, "bench-documents", next, 1, Pace::CHATDO)?;
    ctx.say("4c. documents: bare FTS5 of the text they were made from (inserts only)");
    let bare = bare_texts(ctx, &tree)?;
    let markers = check_document_markers(ctx, &c, &ix.source_id, &tree)?;
    let text_mb = tree.text_bytes as f64 / 1e6 / ix.job_secs;
    Ok(Paced {
        what: "documents".into(),
        pace: Pace::CHATDO,
        files: tree.files.len(),
        bytes: tree.bytes,
        text_bytes: tree.text_bytes,
        generate_secs,
        source_id: ix.source_id,
        text_searchable_secs: ix.job_seen_secs,
        mb_per_sec: ix.job.bytes_processed.max(0) as f64 / 1e6 / ix.job_secs,
        text_mb_per_sec: text_mb,
        files_per_sec: ix.job.files_processed as f64 / ix.job_secs,
        job: ix.job,
        job_secs: ix.job_secs,
        during: ix.during.summary(),
        ratio: text_mb / bare.mb_per_sec(),
        bare,
        bare_timed: "inserts only: the text is generated in memory".into(),
        markers,
        ignored_found: 0,
    })
}

/// The generated text of every document, chunked at ~1000 bytes, into a bare
/// FTS5 table; only the inserts are timed (nothing to read or extract).
fn bare_texts(ctx: &Ctx, tree: &DocTree) -> Result<baseline::Run> {
    let dir = ctx.root.join("baseline-documents");
    std::fs::create_dir_all(&dir).context("creating the baseline directory")?;
    let bare = baseline::run(
        &dir.join("documents.sqlite"),
        1000,
        tree.files.iter().flat_map(|f| corpus::chunks(&f.text)),
        None,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(bare)
}

/// Up to [`CHECK_PER_KIND`] documents of each kind searched by marker. A
/// kind of which none is found fails the run (the extractor reads them all);
/// a kind partly found, or absent from the tree (too small), is a warning.
fn check_document_markers(
    ctx: &Ctx,
    c: &Client,
    source_id: &str,
    tree: &DocTree,
) -> Result<Vec<KindMarkers>> {
    let mut by_kind: BTreeMap<&str, Vec<&documents::DocFile>> = BTreeMap::new();
    for f in &tree.files {
        by_kind.entry(f.kind).or_default().push(f);
    }
    let mut out = Vec::new();
    for kind in KINDS {
        let Some(files) = by_kind.get(kind) else {
            let w = format!(
                "no .{kind} document in the {} MB documents tree: that format was not measured (raise --documents-mb)",
                ctx.size.documents_mb
            );
            ctx.note(&format!("WARNING: {w}"));
            ctx.warn(w);
            continue;
        };
        let (mut checked, mut found, mut missed) = (0, 0, Vec::new());
        for f in files
            .iter()
            .step_by((files.len() / CHECK_PER_KIND).max(1))
            .take(CHECK_PER_KIND)
        {
            checked += 1;
            let body = search_body(corpus::PROJECT, &f.marker, 5, Some(vec![source_id.to_string()]));
            let want = f.rel.to_string_lossy();
            let hit = search(c, &body)?
                .iter()
                .any(|r| r.file_path.as_deref().is_some_and(|p| p.ends_with(want.as_ref())));
            if hit {
                found += 1;
            } else {
                missed.push(f.rel.display().to_string());
            }
        }
        if found == 0 {
            bail!(
                "no .{kind} document was found by its marker after the job completed ({checked} searched, e.g. {}): \
                 the extractor reads this format, so its text should be searchable",
                missed.first().map_or("?", String::as_str)
            );
        }
        if !missed.is_empty() {
            ctx.warn(format!(
                "{} of {checked} sampled .{kind} documents were not found by their marker (e.g. {})",
                missed.len(),
                missed[0]
            ));
        }
        out.push(KindMarkers {
            kind: (*kind).to_string(),
            files: files.len(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            checked,
            found,
        });
    }
    Ok(out)
}
