//! The instance lock: an exclusive `flock` on `<home>/<name>.lock`, held for
//! the whole life of the instance. The kernel drops it when the holder dies,
//! `kill -9` included, so a stale lock file can never block a start and two
//! starters can never both win. What this module must get right:
//! - `try_lock` reports "held by someone else" as `WouldBlock`, an `Err`; we
//!   map it to [`Acquire::Held`] and never treat it as success;
//! - the lock is on an inode, not a path: after locking we check that the path
//!   still names the locked file (a releasing holder unlinks it), else retry;
//! - the file is opened with `O_NOFOLLOW | O_NONBLOCK` and close-on-exec
//!   (std's default) and its type checked on the descriptor ([`crate::file`]),
//!   so a symlink cannot redirect it, a FIFO cannot block us, and no child
//!   inherits the lock;
//! - the home directory is flocked too ([`HomeLock`]): a deleted lock file
//!   must never let a second instance in before the holder recreates it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::file::{self, Kind};
use crate::record::HolderRecord;

/// How many times we reopen when the lock file is replaced between our
/// `open` and our `flock` (a holder releasing, or a racer recreating it).
const MAX_ATTEMPTS: usize = 64;

/// Identity of a file on disk: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The outcome of trying to take the lock.
#[derive(Debug)]
pub enum Acquire {
    /// We hold it now.
    Acquired(InstanceLock),
    /// Another process holds it.
    Held(HeldLock),
}

/// What a loser learns about the lock it could not take.
#[derive(Debug, Clone)]
pub struct HeldLock {
    /// The lock file path.
    pub path: PathBuf,
    /// The path whose flock is held: the home directory (an instance of
    /// ours takes it first) or the lock file itself (what a program that is
    /// not ours, e.g. `flock(1)`, may hold alone).
    pub locked: PathBuf,
    /// The locked file's identity (to find its holder in `/proc/locks`).
    pub file_id: FileId,
    /// The holder record, if complete.
    pub record: Option<HolderRecord>,
    /// The PID from the record's first line, even when the rest is torn.
    pub record_pid: Option<u32>,
}

/// The result of a periodic re-check of a held lock.
#[derive(Debug)]
pub enum LockCheck {
    /// The path still names our locked file, and it holds our record.
    Intact,
    /// The path still names our locked file, but its holder record had been
    /// damaged (overwritten, truncated) or its mode loosened; we rewrote it in
    /// place (mode 0600). The PID file heals the same way.
    Healed,
    /// The file had been deleted or replaced; we recreated and relocked it.
    Recreated,
    /// The file had been replaced and another process now holds the new one.
    Lost(HeldLock),
    /// The home directory itself was deleted or replaced (our database with it).
    HomeGone,
}

/// An exclusive lock on a home's lock file, held until dropped or released.
#[derive(Debug)]
pub struct InstanceLock {
    /// The open, locked file. Dropping it releases the lock.
    file: File,
    /// The path we locked; re-checked against `id`.
    path: PathBuf,
    /// The identity of the file we locked.
    id: FileId,
}

fn open_lock_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600);
    match file::open_regular(path, &options) {
        Ok(Ok(f)) => {
            // A lock file an older build (or a looser umask) left readable.
            file::make_private(&f).map_err(|e| Error::io("making private the lock file", path, e))?;
            Ok(f)
        }
        Ok(Err(Kind::Symlink)) => Err(Error::LockIsSymlink {
            path: path.to_path_buf(),
        }),
        Ok(Err(kind)) => Err(Error::NotARegularFile {
            what: "lock file",
            path: path.to_path_buf(),
            kind,
        }),
        Err(e) => Err(Error::io("opening lock file", path, e)),
    }
}

/// The identity of whatever the path names now, without following a link.
fn path_id(path: &Path) -> io::Result<Option<FileId>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(FileId::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_text(mut file: &File) -> String {
    let mut buf = Vec::new();
    // A short, best-effort read: the record is a few hundred bytes.
    if file.seek(SeekFrom::Start(0)).is_ok() {
        let _ = file.take(4096).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// One attempt: open, lock, verify. `Ok(None)` means "the path moved, retry".
fn attempt(path: &Path) -> Result<Option<Acquire>> {
    let file = open_lock_file(path)?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of lock file", path, e))?;
    let id = FileId::of(&meta);
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let text = read_text(&file);
            return Ok(Some(Acquire::Held(HeldLock {
                path: path.to_path_buf(),
                locked: path.to_path_buf(),
                file_id: id,
                record: HolderRecord::parse(&text),
                record_pid: HolderRecord::parse_pid(&text),
            })));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io("locking lock file", path, e));
        }
    }
    // We hold a lock on *this inode*. If a releasing holder unlinked the path
    // (or someone replaced it) between our open and our lock, the lock guards
    // nothing: drop it and start over.
    match path_id(path).map_err(|e| Error::io("checking lock file", path, e))? {
        Some(now) if now == id => Ok(Some(Acquire::Acquired(InstanceLock {
            file,
            path: path.to_path_buf(),
            id,
        }))),
        _ => Ok(None),
    }
}

/// Tries once (with retries only for a moving path) to take the lock at
/// `path`, creating the file if needed. Never blocks waiting for a holder.
pub fn try_acquire(path: &Path) -> Result<Acquire> {
    for _ in 0..MAX_ATTEMPTS {
        if let Some(outcome) = attempt(path)? {
            return Ok(outcome);
        }
    }
    Err(Error::LockRace {
        path: path.to_path_buf(),
    })
}

impl InstanceLock {
    /// The lock file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity of the locked file.
    pub fn file_id(&self) -> FileId {
        self.id
    }

    /// Replaces the holder record in the lock file. Readers may see it torn
    /// for an instant; they treat that as "no record", never as an error.
    pub fn write_record(&mut self, record: &HolderRecord) -> Result<()> {
        let text = record.to_text();
        let path = &self.path;
        (|| -> io::Result<()> {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(text.as_bytes())?;
            self.file.sync_data()
        })()
        .map_err(|e| Error::io("writing holder record to", path, e))
    }

    /// Checks that the path still names our locked file and that the file
    /// still holds `record` (rewritten in place if someone damaged it). If the
    /// file was deleted or replaced (a user, a temp cleaner), recreate and
    /// relock it and rewrite `record`; if another process already holds the
    /// new file, report it.
    pub fn check(&mut self, record: &HolderRecord) -> Result<LockCheck> {
        let now = path_id(&self.path).map_err(|e| Error::io("checking lock file", &self.path, e))?;
        if now == Some(self.id) {
            // A `chmod` that let others read it counts as damage too.
            let loosened = file::make_private(&self.file)
                .map_err(|e| Error::io("making private the lock file", &self.path, e))?
                .is_some();
            if read_text(&self.file) == record.to_text() {
                return Ok(if loosened {
                    LockCheck::Healed
                } else {
                    LockCheck::Intact
                });
            }
            self.write_record(record)?;
            return Ok(LockCheck::Healed);
        }
        match try_acquire(&self.path)? {
            Acquire::Acquired(mut fresh) => {
                fresh.write_record(record)?;
                // The old file is unreachable by path; dropping it is harmless.
                *self = fresh;
                Ok(LockCheck::Recreated)
            }
            Acquire::Held(held) => Ok(LockCheck::Lost(held)),
        }
    }

    /// Clean release: unlink the lock file while still holding the lock (only
    /// if the path still names our file), then unlock by closing. A starter
    /// that opened the old inode will see it was unlinked and retry.
    pub fn release(self) -> Result<()> {
        if path_id(&self.path).ok().flatten() == Some(self.id) {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing lock file", &self.path, e)),
            }
        }
        drop(self.file);
        Ok(())
    }
}

/// Whether someone holds an flock on `file` (identity `id`), without taking
/// it where the OS can tell (Linux: `/proc/locks`); elsewhere a momentary
/// shared `try_lock`, released at once.
fn is_held(file: &File, id: FileId, path: &Path) -> Result<bool> {
    match crate::process::lock_holders(id) {
        Some(pids) => Ok(!pids.is_empty()),
        None => match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(false)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("testing the lock of", path, e)),
        },
    }
}

/// Reads the holder record in the lock file at `path` without locking it;
/// a missing or unreadable file has no record.
pub fn read_record(path: &Path) -> (Option<HolderRecord>, Option<u32>) {
    match file::open_regular(path, OpenOptions::new().read(true)) {
        Ok(Ok(f)) => {
            let text = read_text(&f);
            (HolderRecord::parse(&text), HolderRecord::parse_pid(&text))
        }
        // A FIFO, a socket, a link: never read, never followed; no record.
        Ok(Err(_)) | Err(_) => (None, None),
    }
}

/// The home directory's own flock, held for the life of the instance beside
/// the lock file's. A directory holding files cannot be unlinked, so deleting
/// the lock file (a user, a temp cleaner) never opens a window in which a
/// second instance could start: the directory lock still excludes it.
#[derive(Debug)]
pub struct HomeLock {
    /// The open, locked directory; closing it releases the lock.
    #[expect(dead_code, reason = "held open only for its flock")]
    dir: File,
    /// The home path.
    path: PathBuf,
    /// The identity of the directory we locked.
    id: FileId,
}

/// The outcome of trying to take the home directory's lock.
#[derive(Debug)]
pub enum HomeAcquire {
    /// We hold it now.
    Acquired(HomeLock),
    /// Another process holds it; the directory's identity (to find the holder).
    Held(FileId),
}

fn open_dir(home: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY)
        .open(home)
}

/// The identity of what `path` names now (following a symlinked home).
fn dir_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| FileId::of(&m))
}

/// Tries to take the home directory's lock, without waiting.
pub fn try_lock_home(home: &Path) -> Result<HomeAcquire> {
    for _ in 0..MAX_ATTEMPTS {
        let dir = open_dir(home).map_err(|e| Error::io("opening home directory", home, e))?;
        let id = FileId::of(
            &dir.metadata()
                .map_err(|e| Error::io("reading metadata of home directory", home, e))?,
        );
        match dir.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(HomeAcquire::Held(id)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking home directory", home, e));
            }
        }
        // The path may have been replaced between open and lock: retry then.
        if dir_id(home) == Some(id) {
            return Ok(HomeAcquire::Acquired(HomeLock {
                dir,
                path: home.to_path_buf(),
                id,
            }));
        }
    }
    Err(Error::LockRace {
        path: home.to_path_buf(),
    })
}

impl HomeLock {
    /// Whether the home path still names the directory we locked (it may have
    /// been deleted or replaced, with our database in it).
    pub fn still_home(&self) -> bool {
        dir_id(&self.path) == Some(self.id)
    }

    /// The identity of the locked directory.
    pub fn file_id(&self) -> FileId {
        self.id
    }
}

/// Who holds the home's locks right now, without taking them: the home
/// directory's lock first (every instance of ours holds it); if that is free,
/// the lock file's (held alone, it is an older build or a program that is not
/// ours). The record comes from the lock file. `Ok(None)`: nobody holds
/// either (or there is no home).
pub fn inspect_home(home: &Path, lock_path: &Path) -> Result<Option<HeldLock>> {
    let dir = match open_dir(home) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening home directory", home, e)),
    };
    let id = FileId::of(
        &dir.metadata()
            .map_err(|e| Error::io("reading metadata of home directory", home, e))?,
    );
    let (file_id, locked) = if is_held(&dir, id, home)? {
        (id, home)
    } else {
        let Ok(Ok(file)) = file::open_regular(lock_path, OpenOptions::new().read(true)) else {
            return Ok(None); // missing, or not a regular file: nothing to hold
        };
        let lock_id = FileId::of(
            &file
                .metadata()
                .map_err(|e| Error::io("reading metadata of lock file", lock_path, e))?,
        );
        if !is_held(&file, lock_id, lock_path)? {
            return Ok(None);
        }
        (lock_id, lock_path)
    };
    let (record, record_pid) = read_record(lock_path);
    Ok(Some(HeldLock {
        path: lock_path.to_path_buf(),
        locked: locked.to_path_buf(),
        file_id,
        record,
        record_pid,
    }))
}
