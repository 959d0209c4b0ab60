//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use memory_store::{ChatMessageIn, SearchHit, SearchRequest, Store, StoreConfig};

/// Generous guard for background indexing; tests never sleep-and-hope.
pub const IDLE: Duration = Duration::from_secs(60);

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("data").join("memory.sqlite")
}

pub fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(db_path(dir))).expect("open store")
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
