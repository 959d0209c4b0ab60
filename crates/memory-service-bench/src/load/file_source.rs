//! Phase 4: a generated file tree indexed as a source while writers and
//! searchers keep going, set against a bare FTS5 insert of the same files;
//! then searches over chats and files with no writers. Skipped (not failed)
//! when the service has no file sources.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memory_api::sources::{AddSource, FileJob, FileJobList, FileJobStatus, SourceAdded};
use serde::Serialize;

use super::mixed::{Pace, Samples, chat_query, drain, for_duration, under_load};
use super::{Ctx, LoadSummary};
use crate::baseline;
use crate::client::Client;
use crate::corpus::{self, Rng};
use crate::jobs::{counts, search};

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
    pub job: FileJob,
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

/// Seconds since the Unix epoch of an ISO-8601 time: RFC 3339 with an
/// offset, or naive `YYYY-MM-DD[T ]HH:MM:SS[.f]` read as UTC (the service
/// writes local times without an offset; we only subtract two of them).
fn iso_secs(s: &str) -> Option<f64> {
    let s = s.trim();
    let t = match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.naive_utc(),
        Err(_) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())?,
    };
    Some(t.and_utc().timestamp_micros() as f64 / 1e6)
}

/// Phase 4; `Err(reason)` inside `Ok` when the service has no file sources.
pub(super) fn files(ctx: &Ctx, next: &AtomicUsize) -> Result<std::result::Result<Files, String>> {
    let c = ctx.client();
    // An empty object: 404 means no such route; anything else (422, 400) means it exists.
    let probe = c.post("/sources", &serde_json::Map::new())?;
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
    let ix = index_under_load(ctx, &c, &root, "bench", next, ctx.size.clients, Pace::FlatOut)?;
    ctx.say("4. files: bare FTS5 of the same files");
    let bare = bare_files(ctx, &root, &included)?;
    let (markers_found, ignored_found) = check_file_markers(ctx, &c, &ix.source_id, &tree)?;
    ctx.say(&format!(
        "4. files: {} s of searches over chats and files",
        ctx.size.duration_secs
    ));
    let after = search_after(ctx, next, &ix.source_id, tree.files.len())?;

    let chunks = ctx.chunk_counts();
    let bytes_processed = ix.job.bytes_processed.max(0) as u64;
    let mb_per_sec = bytes_processed as f64 / 1e6 / ix.job_secs;
    Ok(Ok(Files {
        files: included.len(),
        bytes: tree.included_bytes,
        ignored_files: tree.files.iter().filter(|f| f.ignored).count(),
        dirs: tree.dirs,
        generate_secs,
        source_id: ix.source_id,
        job: ix.job,
        job_secs: ix.job_secs,
        job_seen_secs: ix.job_seen_secs,
        mb_per_sec,
        during: ix.during.summary(),
        ratio: mb_per_sec / bare.mb_per_sec(),
        bare,
        markers_found,
        ignored_found,
        after: after.summary(),
        file_chunks: chunks.map(|c| c.1),
        chat_chunks: chunks.map(|c| c.0),
    }))
}

/// The file job, indexed under load.
pub(super) struct Indexed {
    pub(super) source_id: String,
    /// The job's last state from `/sources/{id}/jobs`.
    pub(super) job: FileJob,
    /// The service's started_at..completed_at, or the client's view.
    pub(super) job_secs: f64,
    /// POST /sources to "completed" seen by polling.
    pub(super) job_seen_secs: f64,
    /// The load while the job ran.
    pub(super) during: Samples,
}

/// Adds `root` as a source named `name` and waits for its job to complete
/// while `clients` writers and as many searchers (over the chats and the new
/// source), paced by `pace`, and the prober run; then waits for the chat
/// messages posted meanwhile to be indexed.
pub(super) fn index_under_load(
    ctx: &Ctx,
    c: &Client,
    root: &Path,
    name: &str,
    next: &AtomicUsize,
    clients: usize,
    pace: Pace,
) -> Result<Indexed> {
    let (writers, searchers) = (clients, clients);
    let before = counts(c)?;
    let t_post = Instant::now();
    let v: SourceAdded = c
        .post(
            "/sources",
            &AddSource {
                root_path: root.display().to_string(),
                display_name: Some(name.into()),
                project_id: Some(corpus::PROJECT.into()),
                source_id: None,
            },
        )?
        .json_200("POST /sources")?;
    let (source_id, job_id) = (v.source_id, v.job_id);
    let sid = source_id.clone();
    let query = chat_query(next.load(Ordering::Relaxed));
    let query = move |rng: &mut Rng| {
        let mut q = query(rng);
        q.source_ids = Some(vec![sid.clone()]);
        q
    };
    let (during, (job, t_done)) = under_load(ctx, writers, searchers, pace, next, &query, |failed| {
        wait_job(c, &source_id, job_id, failed, &|m| ctx.note(m))
    })?;
    let job_seen_secs = (t_done - t_post).as_secs_f64();
    if job.bytes_processed == 0 {
        ctx.warn(format!("the file job reports bytes_processed 0: {job:?}"));
    }
    let posted = during.ack_ms.len() as u64;
    drain(ctx, c, before, posted)?;
    Ok(Indexed {
        source_id,
        job_secs: job_secs(ctx, &job, job_seen_secs),
        job,
        job_seen_secs,
        during,
    })
}

/// The job's duration by the service's clock (completed_at - started_at), or
/// `seen_secs` with a warning when those are missing or unparseable.
pub(super) fn job_secs(ctx: &Ctx, job: &FileJob, seen_secs: f64) -> f64 {
    let server_secs = job
        .completed_at
        .as_deref()
        .and_then(iso_secs)
        .zip(iso_secs(&job.started_at))
        .map(|(b, a)| b - a);
    match server_secs {
        Some(s) if s > 0.0 => s,
        _ => {
            ctx.warn(
                "the file job's started_at/completed_at were not usable; its duration is the client's view"
                    .into(),
            );
            seen_secs
        }
    }
}

/// The included files read and inserted, chunked at ~1000 bytes, into a bare
/// FTS5 table (reading counts: the service reads the files too).
pub(super) fn bare_files(ctx: &Ctx, root: &Path, included: &[&corpus::TreeFile]) -> Result<baseline::Run> {
    let mut texts = Vec::with_capacity(included.len());
    let t = Instant::now();
    for f in included {
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
    bare.secs += read_secs;
    drop(texts);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(bare)
}

/// Markers: about 10 prose files must be found (fails otherwise); about 10
/// files excluded by `.gitignore` must not (a warning). Returns (found,
/// ignored found).
pub(super) fn check_file_markers(
    ctx: &Ctx,
    c: &Client,
    source_id: &str,
    tree: &corpus::Tree,
) -> Result<(usize, usize)> {
    let marker_search = |f: &corpus::TreeFile| -> Result<bool> {
        let body = crate::jobs::search_body(corpus::PROJECT, &f.marker, 5, Some(vec![source_id.to_string()]));
        let want = f.rel.to_string_lossy();
        Ok(search(c, &body)?
            .iter()
            .any(|r| r.file_path.as_deref().is_some_and(|p| p.ends_with(want.as_ref()))))
    };
    let prose: Vec<&corpus::TreeFile> = tree.included().filter(|f| f.prose).collect();
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
    Ok((markers_found, ignored_found))
}

/// Searches only (no writers) over chats and the source for the run's
/// duration; queries use the markers of the tree's `n_files` files.
fn search_after(ctx: &Ctx, next: &AtomicUsize, source_id: &str, n_files: usize) -> Result<Samples> {
    let sid = source_id.to_string();
    let file_query = move |rng: &mut Rng| {
        let q = corpus::query(rng, &|r: &mut Rng| corpus::file_marker(r.below(n_files)));
        crate::jobs::search_body(corpus::PROJECT, &q, 10, Some(vec![sid.clone()]))
    };
    let duration = Duration::from_secs(ctx.size.duration_secs);
    let (after, ()) = under_load(
        ctx,
        0,
        ctx.size.clients,
        Pace::FlatOut,
        next,
        &file_query,
        for_duration(duration),
    )?;
    Ok(after)
}

/// Polls `/sources/{id}/jobs` every 100 ms until job `job_id` (or, if the id
/// is not found, the newest job) is completed; fails if it fails or is stuck.
/// Progress every 5 s goes to `note`.
pub(super) fn wait_job(
    c: &Client,
    source_id: &str,
    job_id: i64,
    failed: &AtomicBool,
    note: &dyn Fn(&str),
) -> Result<(FileJob, Instant)> {
    let mut last = (Instant::now(), None);
    let mut last_report = Instant::now();
    loop {
        if failed.load(Ordering::Relaxed) {
            bail!("stopped: a client failed");
        }
        let list: FileJobList = c
            .get(&format!("/sources/{source_id}/jobs?limit=5"))?
            .json_200(&format!("GET /sources/{source_id}/jobs"))?;
        let now = Instant::now();
        let Some(job) = list
            .jobs
            .iter()
            .find(|j| j.id == job_id)
            .or(list.jobs.first())
            .cloned()
        else {
            if now - last.0 > Duration::from_secs(120) {
                bail!("GET /sources/{source_id}/jobs listed no job for 120 s");
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        match job.status {
            FileJobStatus::Completed => return Ok((job, now)),
            FileJobStatus::Failed | FileJobStatus::Cancelled => {
                bail!("the file index job ended {}: {job:?}", job.status.as_str())
            }
            FileJobStatus::Queued | FileJobStatus::Running => {}
        }
        let progress = Some((job.status, job.files_processed, job.bytes_processed));
        if progress != last.1 {
            last = (now, progress);
        } else if now - last.0 > Duration::from_secs(120) {
            bail!("the file index job made no progress for 120 s: {job:?}");
        }
        if now - last_report > Duration::from_secs(5) {
            let total = job.files_total.map_or_else(|| "?".to_string(), |t| t.to_string());
            note(&format!(
                "job {}: {} of {total} files, {} bytes",
                job.status.as_str(),
                job.files_processed,
                job.bytes_processed
            ));
            last_report = now;
        }
        std::thread::sleep(Duration::from_millis(100));
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
        let d = iso_secs("2024-03-01T02:00:00+02:00").unwrap();
        assert!(
            (d - c - 2.0 * 86_400.0).abs() < 1e-6,
            "leap year, offset honoured"
        );
        let e = iso_secs("2024-03-01 00:00:00").unwrap();
        assert!((e - d).abs() < 1e-6, "naive is UTC, space separator");
        assert!(iso_secs("garbage").is_none());
        assert!(iso_secs("2024-13-01T00:00:00").is_none());
    }
}
