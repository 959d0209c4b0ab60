//! Which files of a source are indexed: the `ignore` crate's walker (`.gitignore`,
//! `.ignore` and `.git/info/exclude` honoured, in a git repository or not), the source's
//! exclude globs (the original's defaults) and include globs. It never follows a
//! symlink (so never leaves the root) and never reads file contents: it only stats.
//!
//! The `ignore` crate opens each directory's ignore files with a plain blocking `open`,
//! without checking their type: a FIFO named `.gitignore` would block the single indexer
//! thread forever. So every directory is checked before the walker enters it
//! ([`unsafe_ignore_file`]): one whose ignore file is a FIFO, socket or device is skipped
//! (counted as unreadable, with a log line naming it); when the root or one of its
//! ancestors has one, the walk refuses to start and says which file to fix.

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::WalkBuilder;
use ignore::overrides::{Override, OverrideBuilder};

use crate::error::IndexerError;

/// The original's default exclusions (gitignore syntax, matched at any depth), plus the
/// SQLite shared-memory file so a database inside a source never triggers re-indexing.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".git",
    "node_modules",
    "dist",
    "build",
    ".next",
    ".turbo",
    ".cache",
    ".venv",
    "venv",
    "*.sqlite",
    "*.sqlite-journal",
    "*-wal",
    "*-shm",
];

/// The files the `ignore` crate (0.4, `dir.rs`: `add_child_path`, `resolve_git_commondir`)
/// opens in each directory it enters with our settings: `.ignore`, `.gitignore`, `.git`
/// when it is a file (a worktree's pointer, read to find the real repository) and
/// `.git/info/exclude`.
const IGNORE_FILES: &[&str] = &[".ignore", ".gitignore", ".git", ".git/info/exclude"];

/// What kind of file `t` is when opening it could block or never end (a FIFO, socket or
/// device); `None` for a regular file, a directory or a symlink (the caller passes the
/// type of what a link points to, as `open` follows it).
fn blocking_kind(t: FileType) -> Option<&'static str> {
    if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        None
    }
}

/// Why the walker must not enter `dir`: one of its ignore files (`IGNORE_FILES`) is a
/// FIFO, socket or device (followed through symlinks, as `open` would), which the
/// `ignore` crate would open and block on. `None` when entering is safe. Only stats.
/// A file swapped in between this check and the crate's open is not caught (a race a
/// user would have to engineer; the stuck detector then reports the pass).
pub fn unsafe_ignore_file(dir: &Path) -> Option<String> {
    IGNORE_FILES.iter().find_map(|name| {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).ok()?;
        blocking_kind(meta.file_type()).map(|kind| {
            format!(
                "{} is {kind}, not a regular file, so its ignore rules cannot be read",
                path.display()
            )
        })
    })
}

/// A source's file-selection rules, built once per pass or watcher.
#[derive(Debug, Clone)]
pub struct Rules {
    root: PathBuf,
    excludes: Override,
    /// `None` when the includes match everything (`**/*`).
    includes: Option<GlobSet>,
}

/// A file chosen by the walk, with what the incremental check compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedFile {
    /// POSIX path relative to the root.
    pub rel_path: String,
    /// Absolute path.
    pub abs_path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Modification time in ns since the epoch (0 if unknown).
    pub mtime_ns: i64,
}

/// What a walk found.
#[derive(Debug, Clone, Default)]
pub struct WalkOutcome {
    /// Regular files, in walk order.
    pub files: Vec<WalkedFile>,
    /// Entries that could not be read or have non-UTF-8 names (skipped).
    pub unreadable: usize,
    /// Files outside the include globs (skipped; `.gitignore`d and excluded entries are
    /// pruned by the walker unvisited, so not counted).
    pub ignored: usize,
    /// Directories skipped, unvisited, because an ignore file in them is a FIFO, socket
    /// or device (see [`unsafe_ignore_file`]); each also counts once in `unreadable`.
    pub unsafe_dirs: Vec<String>,
}

impl Rules {
    /// Rules for `root` from a source's globs.
    pub fn new(root: &Path, include: &[String], exclude: &[String]) -> Result<Rules, IndexerError> {
        let glob_err = |glob: &str, e: &dyn std::fmt::Display| IndexerError::Glob {
            glob: glob.to_string(),
            root: root.to_path_buf(),
            message: e.to_string(),
        };
        let mut ov = OverrideBuilder::new(root);
        for g in exclude {
            ov.add(&format!("!{g}")).map_err(|e| glob_err(g, &e))?;
        }
        let excludes = ov.build().map_err(|e| glob_err("<excludes>", &e))?;
        let match_all = include.is_empty() || include.iter().any(|g| g == "**/*" || g == "**" || g == "*");
        let includes = if match_all {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for g in include {
                set.add(Glob::new(g).map_err(|e| glob_err(g, &e))?);
            }
            Some(set.build().map_err(|e| glob_err("<includes>", &e))?)
        };
        Ok(Rules {
            root: root.to_path_buf(),
            excludes,
            includes,
        })
    }

    /// The source root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when `path` (absolute, under the root) or one of its directories is excluded
    /// by the exclude globs. Used to ignore watcher events (e.g. inside `.git`); it does
    /// not consult `.gitignore` (the walk does).
    pub fn is_excluded(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        let mut prefix = PathBuf::new();
        let parts: Vec<Component<'_>> = rel.components().collect();
        for (i, c) in parts.iter().enumerate() {
            prefix.push(c);
            let is_dir = i + 1 < parts.len() || path.is_dir();
            if self.excludes.matched(&prefix, is_dir).is_ignore() {
                return true;
            }
        }
        false
    }

    fn included(&self, rel: &str) -> bool {
        self.includes.as_ref().is_none_or(|set| set.is_match(rel))
    }

    /// Walks the root; stops early (returning what it has) when `stop` says so.
    /// `InvalidInput` when the root or one of its ancestors has an ignore file the walker
    /// would block on (see [`unsafe_ignore_file`]): nothing can be decided safely then.
    pub fn walk(&self, stop: &dyn Fn() -> bool) -> Result<WalkOutcome, IndexerError> {
        // The walker reads the root's and every ancestor's ignore files before the filter
        // below can see anything.
        if let Some(why) = self.root.ancestors().find_map(unsafe_ignore_file) {
            return Err(IndexerError::InvalidInput(format!(
                "Source folder {} cannot be indexed: {why}; replace or remove that file",
                self.root.display()
            )));
        }
        let mut out = WalkOutcome::default();
        let skipped: Arc<Mutex<Vec<String>>> = Arc::default();
        let walker = self.walker(Arc::clone(&skipped));
        for entry in walker {
            if stop() {
                break;
            }
            self.record(entry, &mut out);
        }
        out.unsafe_dirs = std::mem::take(&mut *skipped.lock().unwrap_or_else(PoisonError::into_inner));
        out.unreadable += out.unsafe_dirs.len();
        Ok(out)
    }

    /// The walker over the root: hidden files included, links and global git ignores not
    /// followed, the excludes applied; a folder whose ignore file it would block on is
    /// not entered, and why is pushed to `skipped`.
    fn walker(&self, skipped: Arc<Mutex<Vec<String>>>) -> ignore::Walk {
        WalkBuilder::new(&self.root)
            .hidden(false)
            .follow_links(false)
            .git_global(false)
            .require_git(false)
            .overrides(self.excludes.clone())
            .filter_entry(move |entry| {
                if !entry.file_type().is_some_and(|t| t.is_dir()) {
                    return true;
                }
                match unsafe_ignore_file(entry.path()) {
                    None => true,
                    Some(why) => {
                        skipped.lock().unwrap_or_else(PoisonError::into_inner).push(why);
                        false
                    }
                }
            })
            .build()
    }

    /// One entry of the walk into `out`: a regular file included by the rules joins
    /// `out.files`; one that cannot be read or named counts as unreadable, one the
    /// includes leave out as ignored; anything else (folders, links) is passed over.
    fn record(&self, entry: Result<ignore::DirEntry, ignore::Error>, out: &mut WalkOutcome) {
        let Ok(entry) = entry else {
            out.unreadable += 1;
            return;
        };
        // Symlinks are never followed: a link could point outside the root.
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            return;
        }
        let path = entry.path();
        let Some(rel) = posix_rel(&self.root, path) else {
            out.unreadable += 1;
            return;
        };
        if !self.included(&rel) {
            out.ignored += 1;
            return;
        }
        let Ok(meta) = entry.metadata() else {
            out.unreadable += 1;
            return;
        };
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        out.files.push(WalkedFile {
            rel_path: rel,
            abs_path: path.to_path_buf(),
            size: meta.len(),
            mtime_ns,
        });
    }
}

/// `path` relative to `root` with `/` separators; `None` for a non-UTF-8 name.
pub(crate) fn posix_rel(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    parts.map(|p| p.join("/")).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn excludes_apply_to_ancestors() {
        let rules = Rules::new(Path::new("/r"), &[], &defaults()).expect("rules");
        assert!(rules.is_excluded(Path::new("/r/.git/objects/ab")));
        assert!(rules.is_excluded(Path::new("/r/a/node_modules/x.js")));
        assert!(rules.is_excluded(Path::new("/r/db.sqlite-wal")));
        assert!(rules.is_excluded(Path::new("/elsewhere/a.txt")));
        assert!(!rules.is_excluded(Path::new("/r/src/build.rs")));
        assert!(!rules.is_excluded(Path::new("/r/notes.md")));
    }

    #[test]
    fn includes_filter_files() {
        let rules = Rules::new(Path::new("/r"), &["*.md".into()], &[]).expect("rules");
        assert!(rules.included("a/b.md"));
        assert!(!rules.included("a/b.rs"));
        let all = Rules::new(Path::new("/r"), &["**/*".into()], &[]).expect("rules");
        assert!(all.included("x"));
    }

    #[test]
    fn bad_glob_is_reported() {
        let err = Rules::new(Path::new("/r"), &["a[".into()], &[]).expect_err("bad");
        assert!(err.to_string().contains("a["), "{err}");
    }
}
