//! Read-only browsing of a source root for `GET /filetree/{id}` and `/filetree/{id}/file`
//! (api.md A.2.14, A.2.15): the node shape and sorting, and STRICT confinement. A request
//! path with `..`, an absolute path (for files), or anything resolving (through symlinks)
//! outside the canonical root is refused as [`TreeError::Escape`]; listings silently skip
//! symlinks that lead outside. It never writes and never touches the database.

use std::fs::{self, Metadata};
use std::io::{ErrorKind, Read};
use std::path::{Component, Path, PathBuf};

use std::os::unix::fs::OpenOptionsExt;

use chrono::{DateTime, Local};

/// Why a tree or file request failed; each variant's text is the contract's `detail`.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The path leaves the source root (HTTP 400).
    #[error("Path escapes source root: {0}")]
    Escape(String),
    /// The source root itself is gone (HTTP 404).
    #[error("Source root path does not exist: {0}")]
    RootMissing(String),
    /// Nothing at that path (HTTP 404).
    #[error("Path does not exist: {0}")]
    PathNotFound(String),
    /// No file at that path (HTTP 404).
    #[error("File does not exist: {0}")]
    FileNotFound(String),
    /// A directory where a file was expected (HTTP 400).
    #[error("Path is a directory, not a file: {0}")]
    IsADirectory(String),
    /// The OS refused access (HTTP 403).
    #[error("Permission denied reading file: {0}")]
    PermissionDenied(String),
    /// A path the file system cannot name: a NUL byte, too long, a symlink
    /// loop (HTTP 400).
    #[error("Invalid path: {0}")]
    InvalidPath(String),
    /// A FIFO, socket or device where a regular file was expected: reading it
    /// could block forever (HTTP 400).
    #[error("Path is not a regular file: {0}")]
    NotARegularFile(String),
    /// Any other I/O failure (HTTP 500).
    #[error("while {action} {path}: {cause}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path as sent.
        path: String,
        /// The underlying error, embedded in the message (not a `source()`).
        cause: std::io::Error,
    },
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File or directory name (the root's own name for the root).
    pub name: String,
    /// POSIX path relative to the source root; `""` for the root.
    pub path: String,
    /// Directory or not.
    pub is_dir: bool,
    /// Files only.
    pub size_bytes: Option<u64>,
    /// Naive local ISO-8601 with microseconds.
    pub modified_at: Option<String>,
    /// `None` for a file, an empty directory, or a directory at the depth limit.
    pub children: Option<Vec<Node>>,
}

/// A file read for `/filetree/{id}/file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// The path as sent.
    pub path: String,
    /// `"utf-8"` or `"binary"`.
    pub encoding: &'static str,
    /// The whole file's size.
    pub size_bytes: u64,
    /// Lossily decoded text of the bytes read; `None` for a binary file.
    pub content: Option<String>,
    /// True when the file is longer than the bytes read.
    pub truncated: bool,
    /// NUL in the bytes read, or more than 10 % U+FFFD after decoding.
    pub is_binary: bool,
}

fn io_err(action: &'static str, sent: &str, e: std::io::Error, not_found: TreeError) -> TreeError {
    match e.kind() {
        // `a.txt/x` names nothing: not found, like a missing path.
        ErrorKind::NotFound | ErrorKind::NotADirectory => not_found,
        ErrorKind::PermissionDenied => TreeError::PermissionDenied(sent.to_string()),
        ErrorKind::InvalidInput | ErrorKind::InvalidFilename => TreeError::InvalidPath(sent.to_string()),
        _ if e.raw_os_error() == Some(nix::libc::ELOOP) => TreeError::InvalidPath(sent.to_string()),
        _ => TreeError::Io {
            action,
            path: sent.to_string(),
            cause: e,
        },
    }
}

/// Resolves `rel` under the canonical `root`: rejects `..` and absolute paths, then
/// canonicalizes (following symlinks) and requires the result to stay under the root.
fn confine(
    root: &Path,
    rel: &str,
    sent: &str,
    not_found: fn(String) -> TreeError,
) -> Result<PathBuf, TreeError> {
    let root = fs::canonicalize(root).map_err(|e| match e.kind() {
        ErrorKind::NotFound => TreeError::RootMissing(root.display().to_string()),
        _ => TreeError::Io {
            action: "resolving the source root",
            path: root.display().to_string(),
            cause: e,
        },
    })?;
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(TreeError::Escape(sent.to_string()));
    }
    let resolved = fs::canonicalize(root.join(rel_path))
        .map_err(|e| io_err("resolving", sent, e, not_found(sent.to_string())))?;
    if !resolved.starts_with(&root) {
        return Err(TreeError::Escape(sent.to_string()));
    }
    Ok(resolved)
}

fn modified(meta: &Metadata) -> Option<String> {
    let t: DateTime<Local> = meta.modified().ok()?.into();
    Some(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}

/// Lists the tree at `rel_path` (a leading `/` is stripped, as in the original) down to
/// `max_depth` levels (0: the node alone), at most `max_entries` nodes counting the
/// root (truncation is silent). Directories first, then files, each sorted
/// case-insensitively; `.DS_Store` skipped; hidden files listed; symlinks leading
/// outside the root skipped; symlinks inside are listed as what they point to.
pub fn list_tree(
    root: &Path,
    rel_path: &str,
    max_depth: usize,
    max_entries: usize,
) -> Result<Node, TreeError> {
    let rel = rel_path.trim_start_matches('/');
    let target = confine(root, rel, rel_path, TreeError::PathNotFound)?;
    let canon_root = fs::canonicalize(root).map_err(|e| TreeError::Io {
        action: "resolving the source root",
        path: root.display().to_string(),
        cause: e,
    })?;
    let meta = fs::metadata(&target)
        .map_err(|e| io_err("reading", rel_path, e, TreeError::PathNotFound(rel_path.into())))?;
    let rel_clean: String = Path::new(rel)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    let name = if rel_clean.is_empty() {
        canon_root.file_name().map_or_else(
            || canon_root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    } else {
        rel_clean.rsplit('/').next().unwrap_or_default().to_string()
    };
    let mut budget = max_entries.max(1) - 1;
    let walker = Lister {
        root: &canon_root,
        max_depth,
    };
    Ok(walker.node(name, rel_clean, &target, &meta, 0, &mut budget))
}

struct Lister<'a> {
    root: &'a Path,
    max_depth: usize,
}

impl Lister<'_> {
    fn node(
        &self,
        name: String,
        rel: String,
        path: &Path,
        meta: &Metadata,
        depth: usize,
        budget: &mut usize,
    ) -> Node {
        let is_dir = meta.is_dir();
        let children = if is_dir && depth < self.max_depth {
            let kids = self.children(&rel, path, depth, budget);
            (!kids.is_empty()).then_some(kids)
        } else {
            None
        };
        Node {
            name,
            path: rel,
            is_dir,
            size_bytes: (!is_dir).then_some(meta.len()),
            modified_at: modified(meta),
            children,
        }
    }

    fn children(&self, rel: &str, dir: &Path, depth: usize, budget: &mut usize) -> Vec<Node> {
        let Ok(read) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut entries: Vec<(String, PathBuf, Metadata)> = Vec::new();
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".DS_Store" {
                continue;
            }
            let path = entry.path();
            let Ok(link_meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let meta = if link_meta.file_type().is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(real) if real.starts_with(self.root) => match fs::metadata(&real) {
                        Ok(m) => m,
                        Err(_) => continue,
                    },
                    _ => continue, // dangling, or leads outside the root
                }
            } else {
                link_meta
            };
            entries.push((name, path, meta));
        }
        entries.sort_by(|a, b| {
            b.2.is_dir()
                .cmp(&a.2.is_dir())
                .then_with(|| a.0.to_lowercase().cmp(&b.0.to_lowercase()))
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut out = Vec::new();
        for (name, path, meta) in entries {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            out.push(self.node(name, child_rel, &path, &meta, depth + 1, budget));
        }
        out
    }
}

/// Reads at most `max_bytes` of the file at `rel_path` (relative; `..` or an absolute
/// path is an escape), decoding lossily as UTF-8.
pub fn read_file(root: &Path, rel_path: &str, max_bytes: usize) -> Result<FileContent, TreeError> {
    let path = confine(root, rel_path, rel_path, TreeError::FileNotFound)?;
    let meta = fs::metadata(&path)
        .map_err(|e| io_err("reading", rel_path, e, TreeError::FileNotFound(rel_path.into())))?;
    if meta.is_dir() {
        return Err(TreeError::IsADirectory(rel_path.to_string()));
    }
    if !meta.is_file() {
        return Err(TreeError::NotARegularFile(rel_path.to_string()));
    }
    // Non-blocking and no-follow: if the path is swapped for a FIFO or a link
    // after the check above, opening it neither blocks nor leaves the root.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io_err("opening", rel_path, e, TreeError::FileNotFound(rel_path.into())))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(TreeError::NotARegularFile(rel_path.to_string()));
    }
    let mut bytes = Vec::with_capacity(max_bytes.min(1 << 20));
    file.take(max_bytes as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("reading", rel_path, e, TreeError::FileNotFound(rel_path.into())))?;
    let size = meta.len();
    let truncated = size > bytes.len() as u64;
    let text = String::from_utf8_lossy(&bytes);
    let total = text.chars().count();
    let bad = text.chars().filter(|&c| c == '\u{FFFD}').count();
    let is_binary = bytes.contains(&0) || (total > 0 && bad * 10 > total);
    Ok(FileContent {
        path: rel_path.to_string(),
        encoding: if is_binary { "binary" } else { "utf-8" },
        size_bytes: size,
        content: (!is_binary).then(|| text.into_owned()),
        truncated,
        is_binary,
    })
}
