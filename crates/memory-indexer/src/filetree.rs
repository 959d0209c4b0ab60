//! Read-only browsing of a source root for `GET /filetree/{id}` and `/filetree/{id}/file`
//! (api.md A.2.14, A.2.15): the node shape and sorting, and STRICT confinement. A request
//! path with `..`, an absolute path (for files), or anything resolving (through symlinks)
//! outside the canonical root is refused as [`TreeError::Escape`]; listings silently skip
//! symlinks that lead outside. It never writes and never touches the database.
//!
//! Confinement is by construction, not by checking a path string and then opening it
//! (issue 13, F2: a folder swapped for a symlink between the check and the open leaked
//! `/etc`). The root is opened once; every component is then opened with `openat`
//! beneath the directory descriptor already held, with `O_NOFOLLOW`. A symlink is never
//! followed by the kernel: we read it and resolve its target ourselves on the same stack
//! of descriptors, where `..` cannot pop past the root and an absolute target must name
//! a place under the root's canonical path (resolved again from the root descriptor).
//! Whatever the file system does meanwhile, every descriptor we read from was reached
//! from the root one component at a time.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Local};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

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
    /// `"utf-8"` (the content as sent) or `"binary"`.
    pub encoding: &'static str,
    /// The encoding the file's bytes were decoded from (`UTF-8`, `UTF-16LE`,
    /// `UTF-16BE`, `windows-1252`, ...); `None` for a binary file.
    pub detected_encoding: Option<&'static str>,
    /// The whole file's size.
    pub size_bytes: u64,
    /// Lossily decoded text of the bytes read; `None` for a binary file.
    pub content: Option<String>,
    /// True when the file is longer than the bytes read.
    pub truncated: bool,
    /// No text decoding accepts the bytes read ([`crate::extract::decode_text`]).
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

/// Symlinks followed while resolving one path at most (Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The source root, opened once per request.
struct Root {
    fd: OwnedFd,
    canon: PathBuf,
}

fn open_root(root: &Path) -> Result<Root, TreeError> {
    let missing = || TreeError::RootMissing(root.display().to_string());
    let canon = fs::canonicalize(root).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => missing(),
        _ => TreeError::Io {
            action: "resolving the source root",
            path: root.display().to_string(),
            cause: e,
        },
    })?;
    let fd = nix::fcntl::open(
        &canon,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOENT | Errno::ENOTDIR => missing(),
        _ => TreeError::Io {
            action: "opening the source root",
            path: root.display().to_string(),
            cause: e.into(),
        },
    })?;
    Ok(Root { fd, canon })
}

/// What a path resolved to.
enum Target {
    /// A directory, opened.
    Dir(OwnedFd, FileStat),
    /// Anything else, not opened: its parent directory and its name.
    Leaf(OwnedFd, OsString, FileStat),
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

fn dup(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    fd.try_clone()
}

/// Resolves `rel` (already checked: only normal components) beneath the root, following
/// symlinks only as described in the module docs. `sent` is the path as sent (for
/// errors), `not_found` the error for a missing component.
fn resolve(
    root: &Root,
    rel: &Path,
    sent: &str,
    not_found: fn(String) -> TreeError,
) -> Result<Target, TreeError> {
    let nf = || not_found(sent.to_string());
    let err = |action: &'static str, e: Errno| io_err(action, sent, e.into(), nf());
    let mut queue: VecDeque<OsString> = rel.iter().map(OsStr::to_os_string).collect();
    let mut stack: Vec<OwnedFd> = vec![dup(&root.fd).map_err(|e| io_err("opening", sent, e, nf()))?];
    let mut links = 0usize;
    while let Some(name) = queue.pop_front() {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            if stack.len() == 1 {
                return Err(TreeError::Escape(sent.to_string()));
            }
            stack.pop();
            continue;
        }
        let top = stack.last().expect("the root is never popped");
        let st = nix::sys::stat::fstatat(top.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| err("reading", e))?;
        let k = kind(&st);
        if k == SFlag::S_IFLNK {
            follow_link(root, &mut stack, &mut queue, &mut links, &name, sent, not_found)?;
            continue;
        }
        if k == SFlag::S_IFDIR {
            open_dir(&mut stack, &mut queue, &mut links, name, sent, not_found)?;
            continue;
        }
        if queue.iter().any(|n| !n.is_empty() && n != ".") {
            return Err(nf()); // `file.txt/x`
        }
        let parent = stack.pop().expect("the root is never popped");
        return Ok(Target::Leaf(parent, name, st));
    }
    let dir = stack.pop().expect("the root is never popped");
    let st = nix::sys::stat::fstat(dir.as_fd()).map_err(|e| err("reading", e))?;
    Ok(Target::Dir(dir, st))
}

/// The link `name` in the directory on top of `stack`, counted in `links` (at most
/// [`MAX_LINKS`]): its target's components go to the front of `queue`, an absolute
/// target's (which must lie under the root's canonical path) from the root again.
fn follow_link(
    root: &Root,
    stack: &mut Vec<OwnedFd>,
    queue: &mut VecDeque<OsString>,
    links: &mut usize,
    name: &OsStr,
    sent: &str,
    not_found: fn(String) -> TreeError,
) -> Result<(), TreeError> {
    let nf = || not_found(sent.to_string());
    let err = |action: &'static str, e: Errno| io_err(action, sent, e.into(), nf());
    *links += 1;
    if *links > MAX_LINKS {
        return Err(TreeError::InvalidPath(sent.to_string()));
    }
    let top = stack.last().expect("the root is never popped");
    let target = PathBuf::from(nix::fcntl::readlinkat(top.as_fd(), name).map_err(|e| match e {
        // Swapped for something else since the stat: look again.
        Errno::EINVAL => TreeError::Io {
            action: "reading the link",
            path: sent.to_string(),
            cause: e.into(),
        },
        _ => err("reading the link", e),
    })?);
    let rest: Vec<OsString> = if target.is_absolute() {
        let Ok(inside) = target.strip_prefix(&root.canon) else {
            return Err(TreeError::Escape(sent.to_string()));
        };
        stack.truncate(1);
        inside.iter().map(OsStr::to_os_string).collect()
    } else {
        target.iter().map(OsStr::to_os_string).collect()
    };
    for part in rest.into_iter().rev() {
        queue.push_front(part);
    }
    Ok(())
}

/// Opens the directory `name` beneath the top of `stack` (never following a link) and
/// pushes it; one swapped for a link or a file since its stat goes back to `queue`.
fn open_dir(
    stack: &mut Vec<OwnedFd>,
    queue: &mut VecDeque<OsString>,
    links: &mut usize,
    name: OsString,
    sent: &str,
    not_found: fn(String) -> TreeError,
) -> Result<(), TreeError> {
    let top = stack.last().expect("the root is never popped");
    match nix::fcntl::openat(
        top.as_fd(),
        name.as_os_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => stack.push(fd),
        // Swapped for a link or a file since the stat: resolve it again.
        Err(Errno::ELOOP | Errno::ENOTDIR) if *links < MAX_LINKS => {
            *links += 1;
            queue.push_front(name);
        }
        Err(e) => return Err(io_err("opening", sent, e.into(), not_found(sent.to_string()))),
    }
    Ok(())
}

/// Refuses `..`, absolute paths and prefixes in a request path.
fn check_rel<'a>(rel: &'a str, sent: &str) -> Result<&'a Path, TreeError> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(TreeError::Escape(sent.to_string()));
    }
    Ok(rel_path)
}

fn modified(st: &FileStat) -> Option<String> {
    let utc = DateTime::from_timestamp(st.st_mtime, u32::try_from(st.st_mtime_nsec).ok()?)?;
    Some(memory_store::clock::format_timestamp(&utc.with_timezone(&Local)))
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
    let rel_p = check_rel(rel, rel_path)?;
    let root = open_root(root)?;
    let target = resolve(&root, rel_p, rel_path, TreeError::PathNotFound)?;
    let rel_clean: String = rel_p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    let name = if rel_clean.is_empty() {
        root.canon.file_name().map_or_else(
            || root.canon.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    } else {
        rel_clean.rsplit('/').next().unwrap_or_default().to_string()
    };
    let mut budget = max_entries.max(1) - 1;
    let walker = Lister {
        root: &root,
        max_depth,
    };
    let (fd, st) = match target {
        Target::Dir(fd, st) => (Some(fd), st),
        Target::Leaf(_, _, st) => (None, st),
    };
    Ok(walker.node(name, rel_clean, fd, &st, 0, &mut budget))
}

struct Lister<'a> {
    root: &'a Root,
    max_depth: usize,
}

impl Lister<'_> {
    fn node(
        &self,
        name: String,
        rel: String,
        dir: Option<OwnedFd>,
        st: &FileStat,
        depth: usize,
        budget: &mut usize,
    ) -> Node {
        let is_dir = kind(st) == SFlag::S_IFDIR;
        let children = match dir {
            Some(fd) if is_dir && depth < self.max_depth => {
                let kids = self.children(&rel, fd, depth, budget);
                (!kids.is_empty()).then_some(kids)
            }
            _ => None,
        };
        Node {
            name,
            path: rel,
            is_dir,
            size_bytes: (!is_dir).then_some(u64::try_from(st.st_size).unwrap_or(0)),
            modified_at: modified(st),
            children,
        }
    }

    /// The entries of the directory open as `dir`; a child directory is opened
    /// beneath `dir` (or, behind a symlink, resolved from the root) only when listed.
    fn children(&self, rel: &str, dir: OwnedFd, depth: usize, budget: &mut usize) -> Vec<Node> {
        let Ok(listing) = nix::unistd::dup(dir.as_fd()).and_then(nix::dir::Dir::from_fd) else {
            return Vec::new();
        };
        let mut listing = listing;
        let mut entries: Vec<(String, OsString, FileStat, bool)> = Vec::new();
        for entry in listing.iter().flatten() {
            let raw = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            if raw == "." || raw == ".." || raw == ".DS_Store" {
                continue;
            }
            let name = raw.to_string_lossy().into_owned();
            let Ok(st) = nix::sys::stat::fstatat(dir.as_fd(), raw.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            if kind(&st) == SFlag::S_IFLNK {
                let child = Path::new(rel).join(&raw);
                match resolve(self.root, &child, &name, TreeError::PathNotFound) {
                    Ok(Target::Dir(_, st)) | Ok(Target::Leaf(_, _, st)) => {
                        entries.push((name, raw, st, true))
                    }
                    Err(_) => continue, // dangling, a loop, or leads outside the root
                }
            } else {
                entries.push((name, raw, st, false));
            }
        }
        entries.sort_by(|a, b| {
            let (ad, bd) = (kind(&a.2) == SFlag::S_IFDIR, kind(&b.2) == SFlag::S_IFDIR);
            bd.cmp(&ad)
                .then_with(|| a.0.to_lowercase().cmp(&b.0.to_lowercase()))
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut out = Vec::new();
        for (name, raw, st, via_link) in entries {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = kind(&st) == SFlag::S_IFDIR;
            let fd = if is_dir && depth + 1 < self.max_depth {
                self.open_child(rel, &dir, &raw, via_link)
            } else {
                None
            };
            out.push(self.node(name, child_rel, fd, &st, depth + 1, budget));
        }
        out
    }

    fn open_child(&self, rel: &str, dir: &OwnedFd, raw: &OsStr, via_link: bool) -> Option<OwnedFd> {
        if via_link {
            let child = Path::new(rel).join(raw);
            return match resolve(self.root, &child, "", TreeError::PathNotFound) {
                Ok(Target::Dir(fd, _)) => Some(fd),
                _ => None,
            };
        }
        nix::fcntl::openat(
            dir.as_fd(),
            raw,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }
}

/// Reads at most `max_bytes` of the file at `rel_path` (relative; `..` or an absolute
/// path is an escape), decoded from its encoding (BOM, UTF-8, or guessed legacy text).
/// Only a regular file is opened, and it is opened beneath the root as the module docs
/// describe.
pub fn read_file(root: &Path, rel_path: &str, max_bytes: usize) -> Result<FileContent, TreeError> {
    let rel = check_rel(rel_path, rel_path)?;
    let root = open_root(root)?;
    let (parent, name, st) = match resolve(&root, rel, rel_path, TreeError::FileNotFound)? {
        Target::Dir(..) => return Err(TreeError::IsADirectory(rel_path.to_string())),
        Target::Leaf(parent, name, st) => (parent, name, st),
    };
    if kind(&st) != SFlag::S_IFREG {
        return Err(TreeError::NotARegularFile(rel_path.to_string()));
    }
    // Non-blocking and no-follow: if the name is swapped for a FIFO or a link after
    // the stat above, opening it neither blocks nor leaves the root.
    let fd = nix::fcntl::openat(
        parent.as_fd(),
        name.as_os_str(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP => TreeError::NotARegularFile(rel_path.to_string()),
        _ => io_err(
            "opening",
            rel_path,
            e.into(),
            TreeError::FileNotFound(rel_path.into()),
        ),
    })?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| io_err("reading", rel_path, e, TreeError::FileNotFound(rel_path.into())))?;
    if !meta.is_file() {
        return Err(TreeError::NotARegularFile(rel_path.to_string()));
    }
    let mut bytes = Vec::with_capacity(max_bytes.min(1 << 20));
    file.take(max_bytes as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("reading", rel_path, e, TreeError::FileNotFound(rel_path.into())))?;
    let size = meta.len();
    let truncated = size > bytes.len() as u64;
    let decoded = crate::extract::decode_text(&bytes);
    let is_binary = decoded.is_none();
    Ok(FileContent {
        path: rel_path.to_string(),
        encoding: if is_binary { "binary" } else { "utf-8" },
        detected_encoding: decoded.as_ref().map(|d| d.encoding),
        size_bytes: size,
        content: decoded.map(|d| d.text),
        truncated,
        is_binary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A root holding `a/inside.txt`, links that point out of it (to its parent, to an
    /// absolute path outside, in a loop) and a secret next to it, outside.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        std::fs::write(root.join("a/inside.txt"), "inside").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "SECRET").expect("write");
        std::os::unix::fs::symlink("../..", root.join("a/up")).expect("link");
        std::os::unix::fs::symlink(dir.path(), root.join("abs")).expect("link");
        std::os::unix::fs::symlink("loop", root.join("loop")).expect("link");
        std::os::unix::fs::symlink("a/inside.txt", root.join("ok")).expect("link");
        dir
    }

    fn segment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "..",
            ".",
            "",
            "a",
            "up",
            "abs",
            "loop",
            "ok",
            "inside.txt",
            "secret.txt",
            "/",
            "a/..",
            "root",
            "\u{0}",
            "%2e%2e",
        ])
    }

    #[test]
    fn the_fixture_reads_inside_and_refuses_the_obvious_escapes() {
        let dir = tree();
        let root = dir.path().join("root");
        let read = |rel: &str| read_file(&root, rel, 4096).map(|f| f.content.unwrap_or_default());
        assert_eq!(read("a/inside.txt").expect("inside"), "inside");
        assert_eq!(
            read("a/../a/./inside.txt").ok(),
            None,
            "dot segments are refused, not normalised"
        );
        for escape in [
            "../secret.txt",
            "a/up/secret.txt",
            "abs/secret.txt",
            "/etc/passwd",
            "loop",
        ] {
            assert!(read(escape).is_err(), "{escape}");
        }
    }

    proptest! {
        /// Whatever path is asked for, built from dot segments, links out of the root,
        /// absolute parts and NULs: nothing outside the root is ever read.
        #[test]
        fn no_path_reads_outside_the_root(parts in prop::collection::vec(segment(), 1..7), lead in any::<bool>()) {
            let dir = tree();
            let root = dir.path().join("root");
            let rel = format!("{}{}", if lead { "/" } else { "" }, parts.join("/"));
            if let Ok(f) = read_file(&root, &rel, 4096) {
                let text = f.content.unwrap_or_default();
                prop_assert!(!text.contains("SECRET"), "{rel:?} read the secret");
                prop_assert_eq!(text, "inside", "{:?}", rel);
            }
        }
    }
}
