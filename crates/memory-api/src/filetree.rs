//! Read-only browsing of a source's folder (api.md A.2.14-A.2.15): ChatDO's
//! FileTree tools and `/api/files/content` use it. Paths are POSIX and
//! relative to the source's root; escapes are 400.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The `GET /filetree/{source_id}` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeQuery {
    /// The folder to list, relative to the root; default `""` (the root). A
    /// leading `/` is ignored.
    #[serde(default)]
    pub path: String,
    /// Levels below `path`: 0 to 10 (else 422), default 2.
    #[serde(default = "default_depth")]
    pub max_depth: i64,
    /// Nodes listed at most, the root included: 1 to 5000 (else 422), default 500.
    /// Truncation is silent.
    #[serde(default = "default_entries")]
    pub max_entries: i64,
}

fn default_depth() -> i64 {
    2
}

fn default_entries() -> i64 {
    500
}

/// A file or folder of the tree. Folders come first, then files, each sorted
/// case-insensitively; `.DS_Store` is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Its file or folder name.
    pub name: String,
    /// POSIX path relative to the source root, `""` for the root.
    pub path: String,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// Its size in bytes (files only), else null.
    #[schema(required = true)]
    pub size_bytes: Option<u64>,
    /// Last modification, naive local ISO-8601, or null.
    #[schema(required = true)]
    pub modified_at: Option<String>,
    /// Its entries; null for a file, an empty folder, or at the depth limit.
    #[schema(required = true, no_recursion)]
    pub children: Option<Vec<Node>>,
}

/// The `GET /filetree/{source_id}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tree {
    /// The source.
    pub source_id: String,
    /// The listed folder.
    pub root: Node,
}

/// The `GET /filetree/{source_id}/file` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// The file, relative to the root (required, else 422).
    pub path: String,
    /// Bytes read at most: 1 to 5,000,000 (else 422), default 65536.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: i64,
}

fn default_max_bytes() -> i64 {
    65_536
}

/// The `GET /filetree/{source_id}/file` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileContent {
    /// The source.
    pub source_id: String,
    /// The path, echoed as sent.
    pub path: String,
    /// `utf-8` (text, decoded) or `binary` (no content).
    pub encoding: String,
    /// Ours: the encoding the bytes were decoded from (`UTF-8`, `UTF-16LE`,
    /// a guessed legacy one), or null for binary.
    #[schema(required = true)]
    pub detected_encoding: Option<String>,
    /// The whole file's size, bytes.
    pub size_bytes: u64,
    /// The text read (at most `max_bytes` bytes, decoded lossily), or null
    /// for binary.
    #[schema(required = true)]
    pub content: Option<String>,
    /// Whether the file is longer than what was read.
    pub truncated: bool,
    /// Whether it looks binary (a NUL, or over 10 % replacement characters).
    pub is_binary: bool,
}
