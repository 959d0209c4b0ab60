//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use memory_indexer::ChatStage;
use memory_store::{ChatMessageIn, SearchHit, SearchRequest, Store, StoreConfig};

/// Generous guard for background indexing; tests never sleep-and-hope.
pub const IDLE: Duration = Duration::from_secs(60);

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("data").join("memory.sqlite")
}

/// An open store with its chat stage running (the stage lives in `memory-indexer`);
/// derefs to the [`Store`]. Dropping it stops the stage, then closes the store.
pub struct Opened {
    pub store: Store,
    pub stage: ChatStage,
}

impl std::ops::Deref for Opened {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Opened {
    /// Stop (`true`) or resume (`false`) taking new chat jobs.
    pub fn pause_indexer_for_tests(&self, paused: bool) {
        self.stage.pause_for_tests(paused);
    }

    /// A crash: the stage leaves its claimed jobs `running`, the store stops abruptly.
    pub fn simulate_crash_for_tests(&self) {
        self.stage.simulate_crash_for_tests();
    }
}

/// Opens `cfg` and starts its chat stage.
pub fn open_with(cfg: StoreConfig) -> Opened {
    let store = Store::open(cfg).expect("open store");
    let stage = ChatStage::start(store.clone()).expect("start the chat stage");
    Opened { store, stage }
}

pub fn open(dir: &Path) -> Opened {
    open_with(StoreConfig::new(db_path(dir)))
}

pub fn msg(project: &str, chat: &str, id: &str, content: &str) -> ChatMessageIn {
    ChatMessageIn {
        project_id: project.into(),
        chat_id: chat.into(),
        message_id: id.into(),
        role: "user".into(),
        content: content.into(),
        timestamp: "2025-12-27T21:10:29.123456+01:00".into(),
        message_index: 0,
        message_uuid: None,
    }
}

pub fn query(project: &str, q: &str) -> SearchRequest {
    SearchRequest {
        project_id: project.into(),
        query: q.into(),
        limit: 50,
        source_ids: None,
        exclude_chat_ids: Vec::new(),
    }
}

pub fn search(store: &Store, project: &str, q: &str) -> Vec<SearchHit> {
    store.search(&query(project, q)).expect("search")
}

/// A raw connection to the file, bypassing the store.
pub fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db_path(dir)).expect("raw open")
}
