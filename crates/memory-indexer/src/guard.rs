//! Defences against sources that could wedge the single indexer thread (issue 13, F1):
//! a root on a pseudo file system (`/proc/kmsg` blocks a reader forever), `/` itself,
//! the service's own home; a FIFO or device where a file was expected; a file whose
//! read never returns (a hung network or FUSE mount). Roots are refused up front;
//! files are opened non-blocking, without following a final symlink, and checked on the
//! open descriptor; every read runs on a helper thread the indexer stops waiting for
//! after a deadline, so one bad file costs one skipped file, not the indexer.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::statfs::{self, FsType};

use crate::error::IndexerError;

/// File systems whose files are not stored data: reading them can block forever
/// (`/proc/kmsg`), never end, or change the kernel's state. Magic numbers from
/// `statfs(2)` / `<linux/magic.h>`, through nix. `/dev` is devtmpfs, which reports the
/// tmpfs magic, so it is refused by path in [`check_root`].
const PSEUDO_FILESYSTEMS: &[(FsType, &str)] = &[
    (statfs::PROC_SUPER_MAGIC, "proc"),
    (statfs::SYSFS_MAGIC, "sysfs"),
    (statfs::DEVPTS_SUPER_MAGIC, "devpts"),
    (statfs::CGROUP_SUPER_MAGIC, "cgroup"),
    (statfs::CGROUP2_SUPER_MAGIC, "cgroup2"),
    (statfs::DEBUGFS_MAGIC, "debugfs"),
    (statfs::TRACEFS_MAGIC, "tracefs"),
    (statfs::SECURITYFS_MAGIC, "securityfs"),
    (statfs::SELINUX_MAGIC, "selinuxfs"),
    (statfs::SMACK_MAGIC, "smackfs"),
    (statfs::BPF_FS_MAGIC, "bpf"),
    (statfs::HUGETLBFS_MAGIC, "hugetlbfs"),
    (statfs::NSFS_MAGIC, "nsfs"),
    (statfs::OPENPROM_SUPER_MAGIC, "openpromfs"),
    (statfs::USBDEVICE_SUPER_MAGIC, "usbdevfs"),
    (statfs::FUTEXFS_SUPER_MAGIC, "futexfs"),
    (statfs::RDTGROUP_SUPER_MAGIC, "resctrl"),
];

/// Directories never accepted as (or above) a source root however they are mounted.
const SPECIAL_TREES: &[&str] = &["/proc", "/sys", "/dev", "/run/udev"];

/// The pseudo file system `fs` is, by name; `None` for a regular (disk, network,
/// tmpfs) file system.
fn pseudo_name(fs: FsType) -> Option<&'static str> {
    PSEUDO_FILESYSTEMS.iter().find(|(t, _)| *t == fs).map(|(_, n)| *n)
}

/// Refuses a source root that would wedge or endanger the indexer. `resolved` is the
/// canonical root (symlinks resolved); `sent` is the path as the client sent it (for the
/// message); `protected` holds directories that must be neither the root nor inside it
/// (the service's home: indexing it or an ancestor would index the database being
/// written). Errors are `InvalidInput` (HTTP 400) saying why.
pub fn check_root(resolved: &Path, sent: &str, protected: &[PathBuf]) -> Result<(), IndexerError> {
    let refuse = |why: String| {
        Err(IndexerError::InvalidInput(format!(
            "Refusing source root {sent}: {why}"
        )))
    };
    if resolved.parent().is_none() {
        return refuse("it is the file-system root `/`; add the folders you want indexed instead".into());
    }
    for special in SPECIAL_TREES {
        if resolved.starts_with(special) {
            return refuse(format!(
                "it is inside {special}, a special file system whose files are not documents and can block a reader forever"
            ));
        }
    }
    match statfs::statfs(resolved) {
        Ok(st) => {
            if let Some(name) = pseudo_name(st.filesystem_type()) {
                return refuse(format!(
                    "it is on a {name} pseudo file system, whose files are not documents and can block a reader forever"
                ));
            }
        }
        Err(e) => {
            return refuse(format!("cannot tell which file system it is on ({e})"));
        }
    }
    for home in protected {
        let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.clone());
        if home.starts_with(resolved) {
            return refuse(format!(
                "it holds the memory service's own home {}, whose database changes while it is indexed",
                home.display()
            ));
        }
    }
    Ok(())
}

/// Opens `path` for reading only if it is a regular file on a regular file system:
/// non-blocking (a FIFO or device swapped in after the walk cannot block the open), not
/// following a final symlink, not becoming a controlling terminal, the type checked with
/// `fstat` on the open descriptor (`O_NONBLOCK` has no effect on a regular file).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW | nix::libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if let Some(name) = statfs::fstatfs(&file)
        .ok()
        .and_then(|st| pseudo_name(st.filesystem_type()))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("on a {name} pseudo file system"),
        ));
    }
    Ok(file)
}

type Job = Box<dyn FnOnce() + Send>;

/// The reader thread's mailbox and generation; replaced when a read is abandoned.
static READER: Mutex<(u64, Option<Sender<Job>>)> = Mutex::new((0, None));

fn reader() -> io::Result<(u64, Sender<Job>)> {
    let mut slot = READER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = slot.1.as_ref() {
        return Ok((slot.0, tx.clone()));
    }
    let (tx, rx): (Sender<Job>, Receiver<Job>) = mpsc::channel();
    std::thread::Builder::new()
        .name("file-reader".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
    slot.0 += 1;
    slot.1 = Some(tx.clone());
    Ok((slot.0, tx))
}

/// Runs `f` (a file read) on the reader thread and waits at most `timeout` for it.
/// `None` when it took longer: the read is abandoned (its thread is left to finish or
/// hang on its own and a fresh one serves the next read), and the caller counts the file
/// as skipped. Also `None` if no thread could be started.
pub fn within<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (generation, tx) = match reader() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("file indexer: cannot start a reader thread: {e}");
            return None;
        }
    };
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = done_tx.send(f());
    });
    if tx.send(job).is_err() {
        // The thread died (a panic in a read): start another next time.
        abandon(generation);
        return None;
    }
    match done_rx.recv_timeout(timeout) {
        Ok(v) => Some(v),
        Err(RecvTimeoutError::Timeout) => {
            abandon(generation);
            None
        }
        Err(RecvTimeoutError::Disconnected) => {
            abandon(generation);
            None
        }
    }
}

/// Forgets reader thread `generation` (if it is still the current one).
fn abandon(generation: u64) {
    let mut slot = READER.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.0 == generation {
        slot.1 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_roots_are_refused_with_the_reason() {
        for (p, why) in [
            ("/", "file-system root"),
            ("/proc", "special file system"),
            ("/proc/self", "special file system"),
            ("/sys", "special file system"),
            ("/dev", "special file system"),
        ] {
            let err = check_root(Path::new(p), p, &[]).expect_err(p).to_string();
            assert!(err.starts_with(&format!("Refusing source root {p}: ")), "{err}");
            assert!(err.contains(why), "{p}: {err}");
        }
    }

    #[test]
    fn the_home_and_its_ancestors_are_refused_but_not_siblings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let sibling = dir.path().join("docs");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&sibling).expect("docs");
        let protected = [home.clone()];
        for refused in [&home, &dir.path().to_path_buf()] {
            let err = check_root(refused, "x", &protected)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("own home"), "{err}");
        }
        check_root(&sibling, "docs", &protected).expect("a sibling is fine");
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let err = open_regular(&fifo).expect_err("fifo");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(open_regular(&link).is_err(), "a final symlink is not followed");
        assert!(
            open_regular(&dir.path().join("")).is_err(),
            "a directory is not read"
        );
        open_regular(&file).expect("regular file");
    }

    #[test]
    fn a_read_that_never_returns_is_abandoned_and_the_next_one_runs() {
        let (_hold, blocked) = mpsc::channel::<()>();
        let slow = within(Duration::from_millis(50), move || blocked.recv().is_ok());
        assert_eq!(slow, None, "abandoned after the deadline");
        assert_eq!(within(Duration::from_secs(30), || 7), Some(7));
    }
}
