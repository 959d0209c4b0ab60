//! Following a file indexing job until it ends: an `indicatif` bar driven by
//! `files_processed / files_total` and bytes on a terminal, plain progress
//! lines otherwise (logs, CI, pipes), and a one-line summary at the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::{Client, ClientError, human_bytes, segment};

/// How a followed job ended.
pub struct JobEnd {
    /// Its final JSON.
    pub job: Value,
    /// Whether it completed.
    pub ok: bool,
}

fn find_job(client: &Client, source_id: &str, job_id: i64) -> Result<Option<Value>, ClientError> {
    let v = client.get(&format!("/sources/{}/jobs?limit=20", segment(source_id)))?;
    Ok(v["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["id"].as_i64() == Some(job_id)).cloned()))
}

/// `N files, B indexed; M skipped (binary 3, too large 1)`: what a job's JSON says
/// was made searchable and what was skipped, by reason (reasons with 0 left out).
pub fn summary(job: &Value) -> String {
    let indexed = job["files_indexed"].as_i64().unwrap_or(0);
    let bytes = job["bytes_indexed"].as_u64().unwrap_or(0);
    format!(
        "{indexed} files, {} indexed; {}",
        human_bytes(bytes),
        skipped_text(job)
    )
}

/// `M skipped (binary 3, too large 1)` or `0 skipped` from a job's or source's JSON.
pub fn skipped_text(v: &Value) -> String {
    let total = v["files_skipped"].as_i64().unwrap_or(0);
    let reasons: Vec<String> = v["skipped"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_i64().unwrap_or(0) > 0)
                .map(|(k, n)| format!("{} {n}", k.replace('_', " ")))
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        format!("{total} skipped")
    } else {
        format!("{total} skipped ({})", reasons.join(", "))
    }
}

/// Polls the job until it is no longer running, showing progress (on
/// stderr with `json`, whose stdout ends with the job's final JSON).
pub fn follow(client: &Client, source_id: &str, job_id: i64, json: bool) -> Result<JobEnd, ClientError> {
    let tty = std::io::stdout().is_terminal() && !json;
    let started = Instant::now();
    let bar = if tty {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files  {msg}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let mut last_seen = (-1i64, -1i64);
    loop {
        let Some(job) = find_job(client, source_id, job_id)? else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let done = job["files_processed"].as_i64().unwrap_or(0);
        let total = job["files_total"].as_i64();
        let bytes = job["bytes_processed"].as_u64().unwrap_or(0);
        let status = job["status"].as_str().unwrap_or("unknown").to_string();
        if let Some(b) = &bar {
            if let Some(t) = total {
                b.set_length(t.max(0) as u64);
            }
            b.set_position(done.max(0) as u64);
            b.set_message(human_bytes(bytes));
        } else if !json
            && ((done, total.unwrap_or(-1)) != last_seen || last_line.elapsed() > Duration::from_secs(5))
        {
            let total_s = total.map_or_else(|| "?".to_string(), |t| t.to_string());
            println!(
                "progress: {done}/{total_s} files, {} ({status})",
                human_bytes(bytes)
            );
            last_seen = (done, total.unwrap_or(-1));
            last_line = Instant::now();
        }
        if status != "running" && status != "queued" {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let ok = status == "completed";
            let err = job["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            if json {
                println!("{job}");
            } else {
                // Whole seconds: job lengths are for people, not benchmarks.
                let took = Duration::from_secs(started.elapsed().as_secs());
                println!(
                    "Job {job_id} {status}: {} in {}{err}",
                    summary(&job),
                    humantime::format_duration(took)
                );
            }
            return Ok(JobEnd { job, ok });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
