//! Following a file indexing job until it ends: an `indicatif` bar driven by
//! `files_processed / files_total` and bytes on a terminal, plain progress
//! lines otherwise (logs, CI, pipes), and a one-line summary at the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use memory_api::sources::{FileJob, FileJobList, FileJobStatus, Skipped};

use super::{Client, ClientError, human_bytes, segment};

/// How a followed job ended.
pub struct JobEnd {
    /// Its final state.
    pub job: FileJob,
    /// Whether it completed.
    pub ok: bool,
}

fn find_job(client: &Client, source_id: &str, job_id: i64) -> Result<Option<FileJob>, ClientError> {
    let list: FileJobList = client.get(&format!("/sources/{}/jobs?limit=20", segment(source_id)))?;
    Ok(list.jobs.into_iter().find(|j| j.id == job_id))
}

/// `N files, B indexed; M skipped (binary 3, too large 1)`: what a job
/// made searchable and what it skipped, by reason (reasons with 0 left out).
pub fn summary(job: &FileJob) -> String {
    format!(
        "{} files, {} indexed; {}",
        job.files_indexed,
        human_bytes(job.bytes_indexed.max(0) as u64),
        skipped_text(job.files_skipped, &job.skipped)
    )
}

/// `M skipped (binary 3, too large 1)` or `0 skipped`, from a job's or a
/// source's `files_skipped` and `skipped`.
pub fn skipped_text(total: i64, skipped: &Skipped) -> String {
    let reasons: Vec<String> = skipped
        .by_reason()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.replace('_', " ")))
        .collect();
    if reasons.is_empty() {
        format!("{total} skipped")
    } else {
        format!("{total} skipped ({})", reasons.join(", "))
    }
}

/// Polls the job until it is no longer running, showing progress (on
/// stderr with `json`, whose stdout ends with the job's final JSON).
pub fn follow(client: &Client, source_id: &str, job_id: i64, json: bool) -> Result<JobEnd, ClientError> {
    let started = Instant::now();
    let mut shown = Progress::new(std::io::stdout().is_terminal() && !json, json);
    loop {
        let Some(job) = find_job(client, source_id, job_id)? else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        shown.update(&job);
        if job.status.is_finished() {
            shown.finish();
            let ok = job.status == FileJobStatus::Completed;
            if json {
                println!("{}", serde_json::to_string(&job).expect("a job serialises"));
            } else {
                let err = job.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                // Whole seconds: job lengths are for people, not benchmarks.
                let took = Duration::from_secs(started.elapsed().as_secs());
                println!(
                    "Job {job_id} {}: {} in {}{err}",
                    job.status.as_str(),
                    summary(&job),
                    humantime::format_duration(took)
                );
            }
            return Ok(JobEnd { job, ok });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How a followed job's progress is shown: a bar on a terminal, else a
/// `progress:` line when the counts change (at least every 5 s), nothing with
/// `--json`.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_line: Instant,
    /// (files processed, files total or -1) at the last line.
    last_seen: (i64, i64),
}

impl Progress {
    fn new(tty: bool, quiet: bool) -> Progress {
        let bar = tty.then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files  {msg}  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            quiet,
            last_line: Instant::now() - Duration::from_secs(10),
            last_seen: (-1, -1),
        }
    }

    fn update(&mut self, job: &FileJob) {
        let (done, total) = (job.files_processed, job.files_total);
        let bytes = human_bytes(job.bytes_processed.max(0) as u64);
        if let Some(b) = &self.bar {
            if let Some(t) = total {
                b.set_length(t.max(0) as u64);
            }
            b.set_position(done.max(0) as u64);
            b.set_message(bytes);
        } else if !self.quiet
            && ((done, total.unwrap_or(-1)) != self.last_seen
                || self.last_line.elapsed() > Duration::from_secs(5))
        {
            let total_s = total.map_or_else(|| "?".to_string(), |t| t.to_string());
            println!(
                "progress: {done}/{total_s} files, {bytes} ({})",
                job.status.as_str()
            );
            self.last_seen = (done, total.unwrap_or(-1));
            self.last_line = Instant::now();
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
