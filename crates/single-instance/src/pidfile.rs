//! The PID file: the bare PID, for people and supervisors. It is written
//! atomically (temp file + rename) so nobody reads half a number, and removed
//! on clean shutdown. No decision trusts it alone: PIDs get reused, and a
//! crash leaves it behind. The lock and its holder record are the truth.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// What a PID file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFile {
    /// There is no PID file.
    Missing,
    /// It holds something that is not a PID (empty, torn, garbage).
    Garbage(String),
    /// It names this PID.
    Pid(u32),
}

/// Reads the PID file. Unreadable content is [`PidFile::Garbage`], not an error.
pub fn read(path: &Path) -> PidFile {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match text.trim().parse::<u32>() {
                Ok(pid) if pid > 0 => PidFile::Pid(pid),
                _ => PidFile::Garbage(text.chars().take(64).collect()),
            }
        }
        Err(_) => PidFile::Missing,
    }
}

/// Writes `pid` to `path` atomically: a temp file in the same directory,
/// fsynced, renamed over the old one.
pub fn write(path: &Path, pid: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{pid}.tmp"));
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        writeln!(f, "{pid}")?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io("writing PID file", path, e))
}

/// Removes the PID file if it names `pid`; leaves a file naming anyone else.
/// Returns whether a file was removed.
pub fn remove_if_ours(path: &Path, pid: u32) -> Result<bool> {
    if read(path) != PidFile::Pid(pid) {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("removing PID file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        assert_eq!(read(&p), PidFile::Missing);
        write(&p, 1234).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "1234\n");
        assert_eq!(read(&p), PidFile::Pid(1234));
        write(&p, 99).unwrap();
        assert_eq!(read(&p), PidFile::Pid(99));
        assert!(!remove_if_ours(&p, 1234).unwrap(), "not ours: kept");
        assert!(p.exists());
        assert!(remove_if_ours(&p, 99).unwrap());
        assert!(!p.exists());
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        for junk in ["", "abc", "0", "-3", "12 13", "\u{0}"] {
            fs::write(&p, junk).unwrap();
            assert!(matches!(read(&p), PidFile::Garbage(_)), "{junk:?}");
        }
    }
}
