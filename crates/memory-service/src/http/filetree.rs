//! `GET /filetree/{source_id}` and `GET /filetree/{source_id}/file`:
//! read-only browsing confined to a source's root (`..`, absolute paths and
//! symlinks leading outside are 400). The confinement lives in
//! `memory_indexer::filetree`; this module checks the contract's bounds
//! (422 outside them) and shapes the answer.

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use memory_api::filetree::{FileContent, FileQuery, Node, Tree, TreeQuery};
use memory_indexer::filetree;

use super::extract::ApiQuery;
use super::{ApiError, AppState, blocking};

fn node(n: filetree::Node) -> Node {
    Node {
        name: n.name,
        path: n.path,
        is_dir: n.is_dir,
        size_bytes: n.size_bytes,
        modified_at: n.modified_at,
        children: n.children.map(|c| c.into_iter().map(node).collect()),
    }
}

async fn root_of(state: &AppState, id: &str) -> Result<PathBuf, ApiError> {
    let store = state.store()?.clone();
    let sid = id.to_string();
    let source = blocking(move || store.get_source(&sid)).await?;
    source
        .map(|s| PathBuf::from(s.root_path))
        .ok_or_else(|| ApiError::client(StatusCode::NOT_FOUND, format!("Source not found: {id}")))
}

fn bounded(name: &str, v: i64, lo: i64, hi: i64) -> Result<usize, ApiError> {
    if (lo..=hi).contains(&v) {
        Ok(v as usize)
    } else {
        Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} must be between {lo} and {hi} (got {v})"),
        ))
    }
}

/// `GET /filetree/{source_id}`.
pub async fn tree(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TreeQuery>,
) -> Result<Json<Tree>, ApiError> {
    let depth = bounded("max_depth", q.max_depth, 0, 10)?;
    let entries = bounded("max_entries", q.max_entries, 1, 5000)?;
    let root = root_of(&state, &id).await?;
    let root = blocking(move || filetree::list_tree(&root, &q.path, depth, entries)).await?;
    Ok(Json(Tree {
        source_id: id,
        root: node(root),
    }))
}

/// `GET /filetree/{source_id}/file`.
pub async fn file(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FileQuery>,
) -> Result<Json<FileContent>, ApiError> {
    let max = bounded("max_bytes", q.max_bytes, 1, 5_000_000)?;
    let root = root_of(&state, &id).await?;
    let path = q.path.clone();
    let f = blocking(move || filetree::read_file(&root, &path, max)).await?;
    Ok(Json(FileContent {
        source_id: id,
        path: q.path,
        encoding: f.encoding.into(),
        detected_encoding: f.detected_encoding.map(Into::into),
        size_bytes: f.size_bytes,
        content: f.content,
        truncated: f.truncated,
        is_binary: f.is_binary,
    }))
}
