//! One debounced file watcher per source (`notify` + `notify-debouncer-full`). A burst of
//! events under a root becomes one refresh request for that source; the worker then runs
//! an incremental pass (the walk decides what is indexed, so `.gitignore`, excludes,
//! renames and deleted directories all follow the same rules as a job). Events only
//! under excluded paths (`.git`, a database's WAL...) are dropped. It never writes.
//! Each watcher remembers the identity (device, inode) of the root it was started on, so
//! the root monitor (`roots`) can tell when the directory at the path is another one
//! (or none) and re-arm it; an event on the root itself asks the monitor to look at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use memory_store::Source;
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, new_debouncer_opt};

use crate::error::IndexerError;
use crate::roots::{Observed, RootId, observe};
use crate::runner::Shared;
use crate::walk::Rules;

type SourceWatcher = Debouncer<RecommendedWatcher, NoCache>;

/// A source's watcher and the root it was started on.
struct Armed {
    /// The identity of the root when the watcher was started (or its start was tried).
    root: RootId,
    /// Held for its `Drop` (which stops it); `None` when starting it failed (the failure
    /// is in `failures`).
    _watcher: Option<SourceWatcher>,
}

#[derive(Default)]
struct Registry {
    /// By source id.
    armed: HashMap<String, Armed>,
    /// Why a source is not watched, by source id (for `/health`).
    failures: HashMap<String, String>,
    /// After `stop_all`: nothing is started any more.
    closed: bool,
}

/// The running watchers, by source id, and the failures to report in `/health`.
#[derive(Default)]
pub(crate) struct Watchers {
    registry: Mutex<Registry>,
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching `source` (replacing an earlier watcher of the same id). A failure
    /// is remembered for [`Watchers::problems`] and returned. A root that is not a
    /// directory now is not watched (nor is that a failure): the root monitor reports it
    /// and starts the watcher when a directory is back. After [`Watchers::stop_all`],
    /// does nothing.
    pub fn start(
        &self,
        source: &Source,
        shared: Weak<Shared>,
        debounce: Duration,
    ) -> Result<(), IndexerError> {
        let root = PathBuf::from(&source.root_path);
        // The identity first: a directory swapped in after this is seen as "another
        // directory" by the monitor, which re-arms (never the reverse).
        let Observed::Dir(root_id) = observe(&root) else {
            self.stop(&source.id);
            return Ok(());
        };
        let result = Self::try_start(source, root, shared, debounce);
        let mut reg = self.lock();
        if reg.closed {
            return Ok(()); // the new watcher is dropped after the lock (declared before it)
        }
        let (watcher, result) = match result {
            Ok(w) => {
                reg.failures.remove(&source.id);
                (Some(w), Ok(()))
            }
            Err(e) => {
                reg.failures.insert(source.id.clone(), e.to_string());
                (None, Err(e))
            }
        };
        let old = reg.armed.insert(
            source.id.clone(),
            Armed {
                root: root_id,
                _watcher: watcher,
            },
        );
        drop(reg);
        drop(old); // dropping a debouncer joins its threads: never under the lock
        result
    }

    fn try_start(
        source: &Source,
        root: PathBuf,
        shared: Weak<Shared>,
        debounce: Duration,
    ) -> Result<SourceWatcher, IndexerError> {
        let rules = Rules::new(&root, &source.include_globs, &source.exclude_globs)?;
        let id = source.id.clone();
        let watched_root = root.clone();
        let handler = move |result: DebounceEventResult| {
            let Some(s) = shared.upgrade() else { return };
            let Ok(events) = result else {
                // Overflow or watcher error: a full incremental pass catches up, and the
                // root itself may be what went away.
                s.roots.kick();
                s.request_refresh(&id);
                return;
            };
            if events.iter().any(|e| e.paths.contains(&watched_root)) {
                // The root itself was removed, moved or replaced: look at once.
                s.roots.kick();
            }
            let relevant = events.iter().any(|e| {
                !matches!(e.kind, EventKind::Access(_))
                    && (e.paths.is_empty() || e.paths.iter().any(|p| !rules.is_excluded(p)))
            });
            if relevant {
                s.request_refresh(&id);
            }
        };
        let watch_err = |e: notify::Error| IndexerError::Watch {
            path: root.clone(),
            message: e.to_string(),
        };
        let mut debouncer = new_debouncer_opt::<_, RecommendedWatcher, NoCache>(
            debounce,
            None,
            handler,
            NoCache,
            notify::Config::default(),
        )
        .map_err(watch_err)?;
        debouncer
            .watch(&root, RecursiveMode::Recursive)
            .map_err(watch_err)?;
        Ok(debouncer)
    }

    /// The identity of the root the source's watcher was (tried to be) started on;
    /// `None` when it has none.
    pub fn armed(&self, source_id: &str) -> Option<RootId> {
        self.lock().armed.get(source_id).map(|a| a.root)
    }

    /// Stops the watcher of a source (no-op if none).
    pub fn stop(&self, source_id: &str) {
        let mut reg = self.lock();
        let old = reg.armed.remove(source_id);
        reg.failures.remove(source_id);
        drop(reg);
        drop(old); // dropping a debouncer stops its threads
    }

    /// Stops the watchers of sources for which `keep` is false (deleted sources).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut reg = self.lock();
        let gone: Vec<String> = reg.armed.keys().filter(|id| !keep(id)).cloned().collect();
        let old: Vec<Armed> = gone.iter().filter_map(|id| reg.armed.remove(id)).collect();
        reg.failures.retain(|id, _| keep(id));
        drop(reg);
        drop(old);
    }

    /// Stops every watcher; later starts do nothing.
    pub fn stop_all(&self) {
        let mut reg = self.lock();
        reg.closed = true;
        let all: Vec<Armed> = reg.armed.drain().map(|(_, a)| a).collect();
        reg.failures.clear();
        drop(reg);
        drop(all);
    }

    /// Watchers that could not start.
    pub fn problems(&self) -> Vec<String> {
        let reg = self.lock();
        let mut out: Vec<String> = reg
            .failures
            .iter()
            .map(|(id, e)| format!("source {id} is not watched for changes: {e}"))
            .collect();
        out.sort();
        out
    }
}
