//! `logs`: the tail of the log that `start` gives a detached instance, and
//! `-f` to follow it (polling its size; it may be rotated by the next start).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::exit_code::ExitCode;

/// Options of `logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new lines as they are written.
    #[arg(short, long)]
    pub follow: bool,
    /// How many lines of the end to show first.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: usize,
}

/// The last `n` lines of `path` (empty if the file is missing or is not a
/// regular file).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    tail_and_end(path, n).0
}

/// The last `n` lines of `path` and the byte offset just past what was read,
/// where following must continue (a line written after the read is never
/// skipped, as it would be if the offset came from a later `stat`).
fn tail_and_end(path: &Path, n: usize) -> (Vec<String>, u64) {
    // Never blocks on a FIFO or follows a link at the log's path.
    let Ok(Ok(f)) = single_instance::file::open_regular(path, std::fs::OpenOptions::new().read(true)) else {
        return (Vec::new(), 0);
    };
    let mut reader = BufReader::new(f);
    let mut lines = std::collections::VecDeque::with_capacity(n + 1);
    let mut end = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(read) => end += read as u64,
        }
        let line = String::from_utf8_lossy(&buf);
        lines.push_back(line.trim_end_matches(['\n', '\r']).to_string());
        if lines.len() > n {
            lines.pop_front();
        }
    }
    (lines.into(), end)
}

/// Runs `logs`.
pub fn run(config: &Config, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let path = super::log_path(config);
    if !path.exists() {
        eprintln!(
            "memory-service: no log at {} yet (it is written by `memory-service start`; \
             `serve` logs to its own stderr)",
            path.display()
        );
        return Ok(ExitCode::Error);
    }
    let mut out = std::io::stdout().lock();
    let (lines, mut pos) = tail_and_end(&path, args.lines);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::Ok);
    }
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
            continue;
        };
        if len < pos {
            pos = 0; // rotated or truncated: start over from the top
        }
        if len > pos {
            let mut f = single_instance::file::open_regular(&path, std::fs::OpenOptions::new().read(true))
                .with_context(|| format!("opening {}", path.display()))?
                .map_err(|kind| anyhow::anyhow!("{} is {kind}, not a regular file", path.display()))?;
            f.seek(SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.take(len - pos).read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            out.flush()?;
            pos = len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        std::fs::write(&p, (1..=30).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
        assert_eq!(tail(&p, 3), vec!["line 28", "line 29", "line 30"]);
        assert_eq!(tail(&p, 100).len(), 30);
        assert!(tail(&d.path().join("missing"), 3).is_empty());
    }
}
