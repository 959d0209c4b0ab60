//! The PID file: the bare PID, for people and supervisors. It is written
//! atomically (temp file + rename) so nobody reads half a number, and removed
//! on clean shutdown. No decision trusts it alone: PIDs get reused, and a
//! crash leaves it behind. The lock and its holder record are the truth.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::file::{self, Kind};

/// What a PID file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFile {
    /// There is no PID file.
    Missing,
    /// It holds something that is not a PID (empty, torn, garbage).
    Garbage(String),
    /// It names this PID.
    Pid(u32),
    /// Something that is not a regular file is at its path (a FIFO, a
    /// socket, a device, a directory, a symbolic link); it was not read.
    NotAFile(Kind),
}

/// Reads the PID file. Unreadable content is [`PidFile::Garbage`], not an
/// error; a FIFO or a link at the path is [`PidFile::NotAFile`], never opened
/// in a way that could block or follow it.
pub fn read(path: &Path) -> PidFile {
    let mut file = match file::open_regular(path, OpenOptions::new().read(true)) {
        Ok(Ok(f)) => f,
        Ok(Err(kind)) => return PidFile::NotAFile(kind),
        Err(_) => return PidFile::Missing,
    };
    let mut bytes = Vec::new();
    // A PID is a few bytes; a huge file is garbage either way.
    if (&mut file).take(4096).read_to_end(&mut bytes).is_err() {
        return PidFile::Missing;
    }
    let text = String::from_utf8_lossy(&bytes);
    match text.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => PidFile::Pid(pid),
        _ => PidFile::Garbage(text.chars().take(64).collect()),
    }
}

/// Writes `pid` to `path` atomically: a temp file (mode 0600) in the same
/// directory, fsynced, renamed over the old one. The rename replaces a FIFO,
/// a socket or a link at the path (the entry, never what a link points to);
/// a directory there is [`Error::NotARegularFile`].
pub fn write(path: &Path, pid: u32) -> Result<()> {
    if let Ok(m) = fs::symlink_metadata(path)
        && m.is_dir()
    {
        return Err(Error::NotARegularFile {
            what: "PID file",
            path: path.to_path_buf(),
            kind: Kind::Directory,
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{pid}.tmp"));
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
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
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
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
    fn a_fifo_is_not_a_file_and_is_replaced_by_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pid");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read(&p), PidFile::NotAFile(Kind::Fifo));
        assert!(!remove_if_ours(&p, 7).unwrap());
        write(&p, 7).unwrap();
        assert_eq!(read(&p), PidFile::Pid(7));
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
        assert_eq!(read(&p), PidFile::NotAFile(Kind::Directory));
        let err = write(&p, 7).unwrap_err().to_string();
        assert!(err.contains("is a directory, not a regular file"), "{err}");
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever bytes the file holds: `read` never panics, and names a PID only when
        /// the content is one positive number (surrounding whitespace allowed).
        #[test]
        fn any_content_reads_as_a_pid_or_garbage(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.pid");
            std::fs::write(&path, &bytes).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let want = text.trim().parse::<u32>().ok().filter(|p| *p > 0);
            match read(&path) {
                PidFile::Pid(pid) => proptest::prop_assert_eq!(Some(pid), want),
                PidFile::Garbage(_) => proptest::prop_assert_eq!(None, want),
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
    }
}
