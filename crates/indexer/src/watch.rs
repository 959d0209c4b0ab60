//! One debounced file watcher per source (`notify` + `notify-debouncer-full`). A burst of
//! events under a root becomes one refresh request for that source; the worker then runs
//! an incremental pass (the walk decides what is indexed, so `.gitignore`, excludes,
//! renames and deleted directories all follow the same rules as a job). Events only
//! under excluded paths (`.git`, a database's WAL...) are dropped. It never writes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use memory_store::Source;
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, NoCache, new_debouncer_opt};

use crate::error::IndexerError;
use crate::runner::Shared;
use crate::walk::Rules;

type SourceWatcher = Debouncer<RecommendedWatcher, NoCache>;

/// The running watchers, by source id, and the failures to report in `/health`.
#[derive(Default)]
pub(crate) struct Watchers {
    running: Mutex<HashMap<String, SourceWatcher>>,
    failures: Mutex<HashMap<String, String>>,
}

impl Watchers {
    /// Starts watching `source` (replacing an earlier watcher of the same id). A failure
    /// is remembered for [`Watchers::problems`] and returned.
    pub fn start(
        &self,
        source: &Source,
        shared: Weak<Shared>,
        debounce: Duration,
    ) -> Result<(), IndexerError> {
        let result = self.try_start(source, shared, debounce);
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(()) => failures.remove(&source.id),
            Err(e) => failures.insert(source.id.clone(), e.to_string()),
        };
        result
    }

    fn try_start(
        &self,
        source: &Source,
        shared: Weak<Shared>,
        debounce: Duration,
    ) -> Result<(), IndexerError> {
        let root = PathBuf::from(&source.root_path);
        let rules = Rules::new(&root, &source.include_globs, &source.exclude_globs)?;
        let id = source.id.clone();
        let handler = move |result: DebounceEventResult| {
            let Ok(events) = result else {
                // Overflow or watcher error: a full incremental pass catches up.
                if let Some(s) = shared.upgrade() {
                    s.request_refresh(&id);
                }
                return;
            };
            let relevant = events.iter().any(|e| {
                !matches!(e.kind, EventKind::Access(_))
                    && (e.paths.is_empty() || e.paths.iter().any(|p| !rules.is_excluded(p)))
            });
            if relevant && let Some(s) = shared.upgrade() {
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
        let old = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(source.id.clone(), debouncer);
        drop(old);
        Ok(())
    }

    /// Stops the watcher of a source (no-op if none).
    pub fn stop(&self, source_id: &str) {
        let w = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(source_id);
        drop(w); // dropping a debouncer stops its threads
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(source_id);
    }

    /// Stops every watcher.
    pub fn stop_all(&self) {
        let all: Vec<SourceWatcher> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, w)| w)
            .collect();
        drop(all);
    }

    /// Watchers that could not start.
    pub fn problems(&self) -> Vec<String> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<String> = failures
            .iter()
            .map(|(id, e)| format!("source {id} is not watched for changes: {e}"))
            .collect();
        out.sort();
        out
    }
}
