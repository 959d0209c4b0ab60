//! Source roots that come and go (deleted, renamed, a drive unmounted, replaced by another
//! directory at the same path). An inotify watch follows an inode, not a path: once the
//! root's inode is gone, no event ever arrives again, so the watcher alone cannot notice
//! the root coming back. A monitor thread therefore looks at every root once per
//! `IndexerConfig::root_check` (and at once when a watcher reports the root removed),
//! gathers facts ([`observe`]: exists? a directory? which device and inode?) and lets a
//! pure function ([`decide`]) say what to do with them and the source's stored state:
//! - gone (or only the empty mount point of a drive unmounted is left): the source becomes `error` with [`missing_message`], its files leave search
//!   (the store swaps in an empty generation; the old one is garbage-collected), its
//!   watcher is dropped, and `/health` lists it (see [`Monitor::missing`]);
//! - back: the watcher is re-armed on the directory now there and a sync job indexes it
//!   (the job's completion makes the source `idle` again);
//! - another directory (or none watched): the watcher is re-armed on it and a refresh
//!   brings the index in line with what is there now.
//!
//! Every verdict is recomputed from the store each round, so a job ending in between
//! (which rewrites the status) is corrected at the next round, and a restart changes
//! nothing: a missing root is recognised by its stored message.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use memory_store::{FileJobKind, FileJobState, Source, SourceStatus};

use crate::error::IndexerError;
use crate::runner::Shared;
use crate::watch::Watchers;

/// How every "root missing" `last_error` starts (how a restart recognises one).
pub const ROOT_MISSING: &str = "Source folder is missing: ";

/// A directory's identity: device and inode number (`stat(2)`'s `st_dev`, `st_ino`), and
/// whether it is a mount point (on another device than its parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// Its parent is on another device: a drive is mounted here.
    pub mount_point: bool,
}

/// What is at a root's path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observed {
    /// A directory, with its identity.
    Dir(RootId),
    /// Nothing usable; the whole `last_error` to show ([`missing_message`]).
    Gone(String),
}

/// The `last_error` of a source whose root is gone: what happened (`why`), the path, and
/// what the user can do.
pub fn missing_message(root: &Path, why: &str) -> String {
    format!(
        "{ROOT_MISSING}{} {why}. Its files are hidden from search until a folder is there again, \
         which is then indexed by itself; restore or remount it, or delete the source",
        root.display()
    )
}

/// Looks at `root` without following a final symlink (a link put in the root's place
/// could lead outside it). Never reads the directory.
pub(crate) fn observe(root: &Path) -> Observed {
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => Observed::Dir(RootId {
            dev: m.dev(),
            ino: m.ino(),
            mount_point: root
                .parent()
                .and_then(|p| std::fs::symlink_metadata(p).ok())
                .is_some_and(|p| p.dev() != m.dev()),
        }),
        Ok(m) if m.file_type().is_symlink() => Observed::Gone(missing_message(
            root,
            "is now a symbolic link, not the folder that was added",
        )),
        Ok(_) => Observed::Gone(missing_message(root, "is now a file, not a folder")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Gone(missing_message(
            root,
            "does not exist (deleted, renamed, or its drive unmounted)",
        )),
        Err(e) => Observed::Gone(missing_message(root, &format!("cannot be looked at ({e})"))),
    }
}

/// What is at a root that was a mount point when last seen (`was_mount_point`): a plain
/// directory there now is the empty mount point of an unmounted drive, not the source's
/// folder, so it counts as gone (indexing it would drop every file of the drive). Pure.
pub(crate) fn unless_unmounted(root: &Path, observed: Observed, was_mount_point: bool) -> Observed {
    match observed {
        Observed::Dir(id) if was_mount_point && !id.mount_point => Observed::Gone(missing_message(
            root,
            "is no longer a mounted drive (only its empty mount point is left)",
        )),
        other => other,
    }
}

/// Everything [`decide`] looks at for one source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// The stored status.
    pub status: SourceStatus,
    /// The stored `last_error`.
    pub last_error: Option<&'a str>,
    /// Files in the searchable generation.
    pub files_indexed: i64,
    /// Its newest job is queued or running.
    pub job_pending: bool,
    /// Watchers are used at all (`IndexerConfig::watch`).
    pub watching: bool,
    /// The identity the watcher was last (re)started on; `None` when not watched.
    pub armed: Option<RootId>,
    /// What is at the root's path now.
    pub observed: &'a Observed,
}

/// What to do about one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing.
    Fine,
    /// The root is gone: drop the watcher (`disarm`); when `record`, store the source as
    /// `error` with `message` and hide its files.
    Vanished {
        /// The `last_error`.
        message: String,
        /// The store does not show it yet (or a pass has written files since).
        record: bool,
        /// A watcher is still registered.
        disarm: bool,
    },
    /// The root is back after being recorded missing: re-arm the watcher (`arm`) and queue
    /// a sync job.
    Returned {
        /// Start the watcher on the directory now there.
        arm: bool,
    },
    /// The watcher is on another directory than the one at the path (or none): re-arm it
    /// and refresh the index from what is there now.
    Rearm,
}

/// The verdict for one source (pure).
pub(crate) fn decide(f: &Facts<'_>) -> Verdict {
    match f.observed {
        Observed::Gone(message) => {
            let shown = f.status == SourceStatus::Error && f.last_error == Some(message.as_str());
            let record = !shown || f.files_indexed > 0;
            let disarm = f.armed.is_some();
            if record || disarm {
                Verdict::Vanished {
                    message: message.clone(),
                    record,
                    disarm,
                }
            } else {
                Verdict::Fine
            }
        }
        Observed::Dir(id) => {
            let marked_missing =
                f.status == SourceStatus::Error && f.last_error.is_some_and(|e| e.starts_with(ROOT_MISSING));
            let arm = f.watching && f.armed != Some(*id);
            if marked_missing && !f.job_pending {
                Verdict::Returned { arm }
            } else if arm {
                Verdict::Rearm
            } else {
                Verdict::Fine
            }
        }
    }
}

/// The monitor's shared state: wake-ups and the missing roots `/health` lists.
#[derive(Default)]
pub(crate) struct Monitor {
    state: Mutex<MonitorState>,
    wake: Condvar,
}

#[derive(Default)]
struct MonitorState {
    stop: bool,
    kicked: bool,
    /// Source id -> its missing message, as of the last round.
    missing: BTreeMap<String, String>,
    /// Sources whose root was last seen as a mount point (in memory: after a restart
    /// with the drive unmounted, its empty mount point looks like an empty folder).
    mounted: BTreeSet<String>,
}

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, MonitorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a round now (a watcher saw its root removed).
    pub fn kick(&self) {
        self.lock().kicked = true;
        self.wake.notify_all();
    }

    /// Ends the monitor thread at its next wake-up.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    /// Waits up to `period` or until kicked; false when stopping.
    fn wait(&self, period: Duration) -> bool {
        let mut s = self.lock();
        if !s.kicked && !s.stop {
            s = self
                .wake
                .wait_timeout(s, period)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.kicked = false;
        !s.stop
    }

    fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// `/health` reasons for the roots found missing in the last round (in memory).
    pub fn missing(&self) -> Vec<String> {
        self.lock()
            .missing
            .iter()
            .map(|(id, m)| format!("source {id}: {m}"))
            .collect()
    }
}

/// The monitor thread's body: a round, then a wait, until stopped.
pub(crate) fn run(shared: Arc<Shared>, watchers: Arc<Watchers>) {
    loop {
        if let Err(e) = round(&shared, &watchers) {
            tracing::warn!("file indexer: checking source folders: {e}");
        }
        if !shared.roots.wait(shared.cfg.root_check) {
            return;
        }
    }
}

/// Looks at every source's root once and acts on the verdicts.
fn round(shared: &Arc<Shared>, watchers: &Watchers) -> Result<(), IndexerError> {
    let sources = shared.store.list_sources()?;
    let mut missing = BTreeMap::new();
    for s in &sources {
        let root = Path::new(&s.root_path);
        let was_mount_point = shared.roots.lock().mounted.contains(&s.id);
        let observed = unless_unmounted(root, observe(root), was_mount_point);
        if let Observed::Dir(RootId { mount_point, .. }) = observed {
            let mut state = shared.roots.lock();
            if mount_point {
                state.mounted.insert(s.id.clone());
            } else {
                state.mounted.remove(&s.id);
            }
        }
        let facts = Facts {
            status: s.status,
            last_error: s.last_error.as_deref(),
            files_indexed: s.files_indexed,
            job_pending: s
                .latest_job
                .as_ref()
                .is_some_and(|j| matches!(j.status, FileJobState::Queued | FileJobState::Running)),
            watching: shared.cfg.watch,
            armed: watchers.armed(&s.id),
            observed: &observed,
        };
        let verdict = decide(&facts);
        if shared.roots.stopping() {
            return Ok(());
        }
        if let Err(e) = act(shared, watchers, s, verdict) {
            if matches!(e, IndexerError::Store(memory_store::StoreError::Unavailable(_))) {
                return Err(e);
            }
            // E.g. the source was deleted meanwhile: the next round sees the truth.
            tracing::warn!(source = %s.id, "file indexer: acting on its folder: {e}");
        }
        if let Observed::Gone(m) = observed {
            missing.insert(s.id.clone(), m);
        }
    }
    watchers.retain(|id| sources.iter().any(|s| s.id == id));
    let mut state = shared.roots.lock();
    state.missing = missing;
    state.mounted.retain(|id| sources.iter().any(|s| s.id == *id));
    Ok(())
}

fn act(shared: &Arc<Shared>, watchers: &Watchers, s: &Source, verdict: Verdict) -> Result<(), IndexerError> {
    match verdict {
        Verdict::Fine => {}
        Verdict::Vanished {
            message,
            record,
            disarm,
        } => {
            if disarm {
                watchers.stop(&s.id);
            }
            if record {
                tracing::warn!(source = %s.id, "{message}");
                // A pass still walking what is left would write into the generation
                // being hidden: stop it (the next round corrects the status it leaves).
                shared.cancel_source(&s.id);
                shared.store.mark_source_missing(&s.id, &message)?;
                // The worker deletes the hidden generation's rows after its next task.
                shared.notify_jobs();
            }
        }
        Verdict::Returned { arm } => {
            tracing::info!(source = %s.id, root = %s.root_path, "source folder is back: re-indexing it");
            if arm {
                start_watcher(shared, watchers, s);
            }
            shared.store.enqueue_file_job(&s.id, FileJobKind::Sync)?;
            shared.notify_jobs();
        }
        Verdict::Rearm => {
            tracing::info!(source = %s.id, root = %s.root_path,
                "source folder was replaced or is not watched: watching it again");
            start_watcher(shared, watchers, s);
            shared.request_refresh(&s.id);
        }
    }
    Ok(())
}

fn start_watcher(shared: &Arc<Shared>, watchers: &Watchers, s: &Source) {
    if let Err(e) = watchers.start(s, Arc::downgrade(shared), shared.cfg.debounce) {
        tracing::warn!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: RootId = RootId {
        dev: 1,
        ino: 10,
        mount_point: false,
    };
    const B: RootId = RootId {
        dev: 1,
        ino: 11,
        mount_point: false,
    };

    #[test]
    fn an_empty_mount_point_left_by_an_unmounted_drive_counts_as_gone() {
        let root = Path::new("/mnt/usb");
        let drive = RootId {
            dev: 9,
            ino: 1,
            mount_point: true,
        };
        let empty_mount_point = RootId {
            dev: 1,
            ino: 77,
            mount_point: false,
        };
        let Observed::Gone(m) = unless_unmounted(root, Observed::Dir(empty_mount_point), true) else {
            panic!("an unmounted drive is gone")
        };
        assert!(
            m.starts_with(ROOT_MISSING) && m.contains("no longer a mounted drive"),
            "{m}"
        );
        // Mounted again, or never a mount point: the directory is the folder.
        assert_eq!(
            unless_unmounted(root, Observed::Dir(drive), true),
            Observed::Dir(drive)
        );
        assert_eq!(
            unless_unmounted(root, Observed::Dir(empty_mount_point), false),
            Observed::Dir(empty_mount_point)
        );
    }

    fn facts<'a>(observed: &'a Observed) -> Facts<'a> {
        Facts {
            status: SourceStatus::Idle,
            last_error: None,
            files_indexed: 3,
            job_pending: false,
            watching: true,
            armed: Some(A),
            observed,
        }
    }

    #[test]
    fn a_present_watched_root_needs_nothing() {
        let here = Observed::Dir(A);
        assert_eq!(decide(&facts(&here)), Verdict::Fine);
        let unwatched = Facts {
            watching: false,
            armed: None,
            ..facts(&here)
        };
        assert_eq!(decide(&unwatched), Verdict::Fine, "watchers off: nothing to arm");
    }

    #[test]
    fn a_vanished_root_is_recorded_once_and_its_watcher_dropped() {
        let msg = missing_message(Path::new("/d"), "does not exist");
        let gone = Observed::Gone(msg.clone());
        assert_eq!(
            decide(&facts(&gone)),
            Verdict::Vanished {
                message: msg.clone(),
                record: true,
                disarm: true
            }
        );
        let recorded = Facts {
            status: SourceStatus::Error,
            last_error: Some(&msg),
            files_indexed: 0,
            armed: None,
            ..facts(&gone)
        };
        assert_eq!(decide(&recorded), Verdict::Fine, "already shown and hidden");
        // A job that ended meanwhile rewrote the status, or a pass wrote files: again.
        for again in [
            Facts {
                status: SourceStatus::Idle,
                ..recorded
            },
            Facts {
                files_indexed: 1,
                ..recorded
            },
            Facts {
                last_error: Some("other"),
                ..recorded
            },
        ] {
            assert!(
                matches!(
                    decide(&again),
                    Verdict::Vanished {
                        record: true,
                        disarm: false,
                        ..
                    }
                ),
                "{again:?}"
            );
        }
    }

    #[test]
    fn a_returned_root_is_rearmed_and_resynced_once() {
        let msg = missing_message(Path::new("/d"), "does not exist");
        let here = Observed::Dir(B);
        let missing = Facts {
            status: SourceStatus::Error,
            last_error: Some(&msg),
            files_indexed: 0,
            armed: None,
            ..facts(&here)
        };
        assert_eq!(decide(&missing), Verdict::Returned { arm: true });
        let unwatched = Facts {
            watching: false,
            ..missing
        };
        assert_eq!(decide(&unwatched), Verdict::Returned { arm: false });
        // The sync is queued: only the watcher is (re)armed meanwhile.
        let queued = Facts {
            job_pending: true,
            ..missing
        };
        assert_eq!(decide(&queued), Verdict::Rearm);
        let queued_armed = Facts {
            armed: Some(B),
            ..queued
        };
        assert_eq!(decide(&queued_armed), Verdict::Fine);
        // Another failure is not ours to clear.
        let other = Facts {
            last_error: Some("invalid glob"),
            armed: Some(B),
            ..missing
        };
        assert_eq!(decide(&other), Verdict::Fine);
    }

    #[test]
    fn a_replaced_root_is_rearmed() {
        let other_dir = Observed::Dir(B);
        assert_eq!(decide(&facts(&other_dir)), Verdict::Rearm);
        let never_armed = Facts {
            armed: None,
            ..facts(&other_dir)
        };
        assert_eq!(decide(&never_armed), Verdict::Rearm);
    }

    #[test]
    fn observe_tells_a_dir_a_file_a_link_and_nothing_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        assert!(matches!(observe(&root), Observed::Gone(m) if m.contains("does not exist")));
        std::fs::create_dir(&root).expect("mkdir");
        let Observed::Dir(first) = observe(&root) else {
            panic!("a directory")
        };
        std::fs::rename(&root, dir.path().join("old")).expect("rename");
        std::fs::create_dir(&root).expect("mkdir again");
        let Observed::Dir(second) = observe(&root) else {
            panic!("a directory")
        };
        assert_ne!(first, second, "a new directory at the path has another inode");
        std::fs::remove_dir(&root).expect("rmdir");
        std::fs::write(&root, "x").expect("file");
        let Observed::Gone(m) = observe(&root) else {
            panic!("a file is not a root")
        };
        assert!(m.starts_with(ROOT_MISSING) && m.contains("now a file"), "{m}");
        assert!(m.contains(&root.display().to_string()), "{m}");
        std::fs::remove_file(&root).expect("rm");
        std::os::unix::fs::symlink(dir.path().join("old"), &root).expect("symlink");
        assert!(matches!(observe(&root), Observed::Gone(m) if m.contains("symbolic link")));
    }
}
