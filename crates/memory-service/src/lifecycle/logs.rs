//! `logs`: the tail of the home's log, and `-f` to follow it (polling its
//! size and identity; it may be rotated while followed).
//!
//! Why one file: whoever starts the instance (`start`, systemd, launchd), its
//! output goes to `HOME/memory_service.log`: `start` opens it for the child,
//! and `install-service` points the supervisor's stdout/stderr there. So
//! `logs` never has to guess which supervisor ran the instance, and
//! everything the service writes stays under its home. The supervisors only
//! append, so [`rotate_inherited`] lets `serve` itself move a log over the
//! cap aside when it starts on it (as `start` does before spawning).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
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
    let path = config.paths().log();
    if !path.exists() {
        eprintln!(
            "memory-service: no log at {} yet\n  next: it is written by instances run by \
             `memory-service start` or `install-service`; a `serve` in a terminal logs to that terminal",
            path.display()
        );
        return Ok(ExitCode::Error);
    }
    let mut out = std::io::stdout().lock();
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let mut file_id = identity(&path);
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
        let now_id = identity(&path);
        if len < pos || now_id != file_id {
            pos = 0; // rotated or truncated: start over from the top of the new file
            file_id = now_id;
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

/// Called by `serve` before it logs anything: when its stdout or stderr is
/// appended to the home's log (a supervisor's `StandardOutput=append:` or
/// `StandardOutPath`) and that file is over
/// [`LOG_CAP_BYTES`](super::start::LOG_CAP_BYTES), moves it to
/// `memory_service.log.1` (keeping one old generation, like `start`) and
/// points both streams at a fresh file, unless an instance already holds
/// the home. Returns whether it rotated; any failure leaves the streams as
/// they were.
pub fn rotate_inherited(config: &Config) -> bool {
    use std::os::fd::AsFd;
    let log = config.paths().log();
    let Ok(meta) = std::fs::symlink_metadata(&log) else {
        return false;
    };
    if !meta.is_file() || meta.len() <= super::start::LOG_CAP_BYTES {
        return false;
    }
    let ours = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
    };
    let (out, err) = (ours(std::io::stdout().as_fd()), ours(std::io::stderr().as_fd()));
    if !out && !err {
        return false;
    }
    // An instance that runs already still writes to this file: leave it
    // (this `serve` is about to be refused anyway).
    if !matches!(super::observe(config), Ok(single_instance::Verdict::Start { .. })) {
        return false;
    }
    if std::fs::rename(&log, log.with_extension("log.1")).is_err() {
        return false;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let Ok(Ok(fresh)) = single_instance::file::open_regular(&log, &options) else {
        return false;
    };
    if out {
        let _ = nix::unistd::dup2_stdout(&fresh);
    }
    if err {
        let _ = nix::unistd::dup2_stderr(&fresh);
    }
    true
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
