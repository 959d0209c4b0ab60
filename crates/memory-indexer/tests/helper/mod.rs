//! Helpers shared by the integration tests: a temp home with a store, a source tree,
//! search shortcuts and deadline polling (a hang guard, never a sleep-and-hope).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memory_indexer::{Indexer, IndexerConfig};
use memory_store::{FileJob, FileJobState, SearchHit, SearchRequest, Source, Store, StoreConfig};

/// Generous guard for background work.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("home").join("memory.sqlite")
    }

    pub fn tree(&self) -> PathBuf {
        let t = self.dir.path().join("tree");
        std::fs::create_dir_all(&t).expect("tree dir");
        t
    }

    pub fn store(&self) -> Store {
        Store::open(StoreConfig::new(self.db())).expect("open store")
    }

    pub fn indexer(&self, store: &Store, cfg: IndexerConfig) -> Indexer {
        Indexer::start(store.clone(), cfg).expect("start indexer")
    }
}

pub fn no_watch() -> IndexerConfig {
    IndexerConfig {
        watch: false,
        ..IndexerConfig::default()
    }
}

pub fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, content).expect("write");
}

pub fn search(store: &Store, project: &str, q: &str, sources: Option<Vec<String>>) -> Vec<SearchHit> {
    store
        .search(&SearchRequest {
            project_id: project.into(),
            query: q.into(),
            limit: 50,
            source_ids: sources,
            exclude_chat_ids: Vec::new(),
        })
        .expect("search")
}

pub fn files_found(store: &Store, q: &str) -> Vec<String> {
    let mut v: Vec<String> = search(store, "general", q, None)
        .into_iter()
        .filter_map(|h| h.file_path)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Adds `root` as a source with the defaults (name from the folder, project
/// "general"); returns it and its first job's id.
pub fn add(ix: &Indexer, root: &Path) -> (Source, i64) {
    ix.add_source(root.to_str().expect("utf8"), None, None)
        .expect("add source")
}

pub fn completed(ix: &Indexer, job: i64) -> FileJob {
    let j = ix.wait_job(job, DEADLINE).expect("job finished in time");
    assert_eq!(j.status, FileJobState::Completed, "{j:?}");
    j
}

/// Polls `f` until it is true; panics with `what` after the deadline.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newest job of a source.
pub fn latest_job(store: &Store, source: &str) -> FileJob {
    store.source_jobs(source, 1).expect("jobs").pop().expect("a job")
}
