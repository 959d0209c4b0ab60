//! Deterministic text for the load benchmark: chat messages, search queries and
//! a file tree, built from a fixed word list with a seeded RNG (SplitMix64, ours,
//! so the bytes never change with a crate version). Words are drawn with a skew,
//! like real text, so common words have long posting lists. Every message and
//! file carries a unique marker word, so a search can prove it was indexed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// SplitMix64: tiny, fast, and good enough for test text.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed ^ 0x005E_ED0F_BE4C_u64);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index into a list of `n`, skewed to the front (rank ~ n * u^2.5):
    /// the first words are very common, the last ones rare.
    pub fn skewed(&mut self, n: usize) -> usize {
        ((self.unit().powf(2.5) * n as f64) as usize).min(n - 1)
    }
}

/// The vocabulary: everyday English first (drawn most often), then the
/// technical words a coding assistant's chats are full of.
pub const WORDS: &[&str] = &[
    "the",
    "to",
    "and",
    "of",
    "a",
    "in",
    "is",
    "it",
    "that",
    "for",
    "you",
    "this",
    "with",
    "on",
    "be",
    "not",
    "we",
    "can",
    "are",
    "if",
    "but",
    "have",
    "as",
    "or",
    "from",
    "so",
    "what",
    "at",
    "will",
    "should",
    "when",
    "then",
    "there",
    "one",
    "all",
    "do",
    "like",
    "just",
    "now",
    "which",
    "use",
    "new",
    "file",
    "code",
    "test",
    "run",
    "change",
    "error",
    "data",
    "function",
    "value",
    "need",
    "work",
    "make",
    "time",
    "also",
    "only",
    "because",
    "first",
    "after",
    "before",
    "still",
    "here",
    "way",
    "other",
    "into",
    "each",
    "every",
    "some",
    "more",
    "than",
    "same",
    "check",
    "return",
    "build",
    "service",
    "request",
    "server",
    "client",
    "config",
    "project",
    "memory",
    "index",
    "search",
    "query",
    "message",
    "chat",
    "source",
    "folder",
    "path",
    "string",
    "number",
    "list",
    "table",
    "column",
    "row",
    "database",
    "schema",
    "migration",
    "commit",
    "branch",
    "merge",
    "review",
    "release",
    "version",
    "update",
    "install",
    "package",
    "dependency",
    "module",
    "crate",
    "library",
    "import",
    "export",
    "type",
    "struct",
    "field",
    "method",
    "class",
    "object",
    "array",
    "map",
    "key",
    "cache",
    "queue",
    "thread",
    "lock",
    "async",
    "await",
    "future",
    "task",
    "job",
    "worker",
    "process",
    "signal",
    "timeout",
    "retry",
    "latency",
    "throughput",
    "benchmark",
    "profile",
    "memory",
    "leak",
    "crash",
    "panic",
    "log",
    "trace",
    "debug",
    "warning",
    "issue",
    "bug",
    "fix",
    "patch",
    "feature",
    "design",
    "plan",
    "deadline",
    "meeting",
    "customer",
    "invoice",
    "budget",
    "report",
    "summary",
    "draft",
    "document",
    "page",
    "section",
    "chapter",
    "note",
    "idea",
    "question",
    "answer",
    "reason",
    "example",
    "problem",
    "solution",
    "option",
    "setting",
    "default",
    "limit",
    "size",
    "count",
    "total",
    "average",
    "median",
    "percent",
    "window",
    "screen",
    "button",
    "layout",
    "color",
    "font",
    "image",
    "upload",
    "download",
    "network",
    "socket",
    "port",
    "address",
    "header",
    "token",
    "session",
    "password",
    "account",
    "user",
    "admin",
    "permission",
    "backup",
    "restore",
    "snapshot",
    "archive",
    "compress",
    "encrypt",
    "certificate",
    "domain",
    "email",
    "calendar",
    "travel",
    "flight",
    "hotel",
    "recipe",
    "garden",
    "weather",
    "mountain",
    "river",
    "coffee",
    "kitchen",
    "guitar",
    "piano",
    "novel",
    "poetry",
    "history",
    "science",
    "physics",
    "chemistry",
    "biology",
    "astronomy",
    "telescope",
    "galaxy",
    "planet",
    "ocean",
    "forest",
    "quickly",
    "slowly",
    "carefully",
    "probably",
    "exactly",
    "maybe",
    "really",
    "always",
    "never",
    "sometimes",
    "usually",
    "instead",
    "however",
    "therefore",
    "although",
    "unless",
    "whether",
    "migrating",
    "refactoring",
    "deploying",
    "indexing",
    "searching",
    "parsing",
    "rendering",
    "scheduling",
    "throttling",
    "batching",
    "streaming",
    "sharding",
    "replicating",
    "hashing",
    "tokenizer",
    "stemmer",
    "embedding",
    "vector",
    "cosine",
    "ranking",
    "relevance",
    "recall",
    "precision",
    "kubernetes",
    "docker",
    "postgres",
    "sqlite",
    "redis",
    "kafka",
    "nginx",
    "terraform",
    "ansible",
    "prometheus",
    "grafana",
    "webpack",
    "typescript",
    "python",
    "rust",
    "golang",
    "haskell",
    "erlang",
    "fortran",
    "cobol",
    "assembly",
    "compiler",
    "linker",
    "allocator",
    "garbage",
    "collector",
    "borrow",
    "lifetime",
    "closure",
    "iterator",
    "generic",
    "trait",
    "macro",
    "unsafe",
    "pointer",
    "reference",
    "mutex",
    "semaphore",
    "condvar",
    "deadlock",
    "starvation",
    "fairness",
    "quorum",
    "consensus",
    "raft",
    "paxos",
    "gossip",
];

/// Project of every benchmark message.
pub const PROJECT: &str = "bench";
/// Messages per chat: message `i` is number `i % 40` of chat `i / 40`.
pub const PER_CHAT: usize = 40;

/// The marker word of message `i`: one token for FTS5 (letters and digits),
/// unchanged by the porter stemmer, and in no other message.
pub fn message_marker(i: usize) -> String {
    format!("zqm{i:08}")
}

/// The marker word of file `i` of the tree.
pub fn file_marker(i: usize) -> String {
    format!("zqf{i:07}")
}

/// A sentence of `lo..=hi` words, capitalized and punctuated, with `extra`
/// (a marker) as one of its words.
fn sentence(rng: &mut Rng, out: &mut String, lo: usize, hi: usize, extra: Option<&str>) {
    let n = rng.range(lo, hi);
    // Never first: a capitalized marker would still match (FTS5 folds case), but
    // the text should hold the marker exactly.
    let at = extra.map(|_| 1 + rng.below(n - 1));
    for w in 0..n {
        if w > 0 {
            out.push_str(if rng.chance(0.06) { ", " } else { " " });
        }
        let word = match (at, extra) {
            (Some(a), Some(e)) if a == w => e,
            _ => WORDS[rng.skewed(WORDS.len())],
        };
        if w == 0 {
            let mut cs = word.chars();
            if let Some(c) = cs.next() {
                out.extend(c.to_uppercase());
                out.push_str(cs.as_str());
            }
        } else {
            out.push_str(word);
        }
    }
    out.push(match rng.below(10) {
        0 => '?',
        1 => '!',
        _ => '.',
    });
}

/// Chat message `i`: 100-800 characters of sentences (now and then a paragraph
/// break), its marker in the first sentence. The same `i` always gives the same text.
pub fn message(i: usize) -> String {
    let mut rng = Rng::new(i as u64);
    let target = rng.range(100, 800);
    let mut s = String::with_capacity(target + 120);
    sentence(&mut rng, &mut s, 5, 16, Some(&message_marker(i)));
    while s.len() < target {
        s.push_str(if rng.chance(0.1) { "\n\n" } else { " " });
        sentence(&mut rng, &mut s, 4, 18, None);
    }
    if s.len() > 800 {
        // ASCII only, so any byte index is a char boundary; cut at a space.
        let cut = s[..799].rfind(' ').unwrap_or(799);
        s.truncate(cut);
        s.push('.');
    }
    s
}

/// The chat id, message id, role and index of message `i`.
pub fn message_ids(i: usize) -> (String, String, &'static str, usize) {
    let role = if i.is_multiple_of(2) { "user" } else { "assistant" };
    (
        format!("chat-{}", i / PER_CHAT),
        format!("m-{i}"),
        role,
        i % PER_CHAT,
    )
}

/// The `/index-chat-message` body of message `i`.
pub fn message_body(i: usize, content: &str) -> memory_api::chat::IndexChatMessage {
    let (chat_id, message_id, role, index) = message_ids(i);
    memory_api::chat::IndexChatMessage {
        project_id: PROJECT.to_string(),
        chat_id,
        message_id,
        role: role.to_string(),
        content: content.to_string(),
        timestamp: "2026-01-01T00:00:00Z".to_string(),
        message_index: index as i64,
        message_uuid: None,
    }
}

/// A search query like a user's: one common word (40 %), two words (30 %),
/// three words (20 %), or the marker of one of `markers` (10 %, exactly one hit).
pub fn query(rng: &mut Rng, markers: &dyn Fn(&mut Rng) -> String) -> String {
    let word = |rng: &mut Rng| WORDS[rng.skewed(WORDS.len())];
    match rng.below(10) {
        0..=3 => WORDS[40 + rng.below(60)].to_string(),
        4..=6 => format!("{} {}", word(rng), WORDS[rng.below(WORDS.len())]),
        7 | 8 => format!("{} {} {}", word(rng), word(rng), WORDS[rng.below(WORDS.len())]),
        _ => markers(rng),
    }
}

/// One file of the generated tree.
#[derive(Debug, Clone)]
pub struct TreeFile {
    /// Path relative to the tree's root.
    pub rel: PathBuf,
    /// True if `.gitignore` (or the default excludes) should keep it out.
    pub ignored: bool,
    /// Its marker word (see [`file_marker`]).
    pub marker: String,
    /// True for prose (markdown, text): safe to search by marker in any indexer.
    pub prose: bool,
}

/// A generated source tree.
#[derive(Debug)]
pub struct Tree {
    /// Every file written (`.gitignore` and `.git/` excluded).
    pub files: Vec<TreeFile>,
    /// Bytes of the files that should be indexed.
    pub included_bytes: u64,
    /// Directories created.
    pub dirs: usize,
}

impl Tree {
    /// The files that should be indexed.
    pub fn included(&self) -> impl Iterator<Item = &TreeFile> {
        self.files.iter().filter(|f| !f.ignored)
    }
}

/// The root `.gitignore`: a build directory, logs and a cache.
const GITIGNORE: &str = "# generated by memory-service-bench\ntarget/\n*.log\n.cache/\ngenerated/\n";

/// Extensions and their weights (of 100).
const KINDS: &[(&str, usize)] = &[
    ("md", 35),
    ("txt", 20),
    ("rs", 15),
    ("py", 15),
    ("ts", 10),
    ("json", 5),
];

fn pick_kind(rng: &mut Rng) -> &'static str {
    let mut r = rng.below(100);
    for (ext, w) in KINDS {
        if r < *w {
            return ext;
        }
        r -= w;
    }
    "md"
}

/// A lowercase identifier of 1-3 words joined by `sep`.
fn ident(rng: &mut Rng, sep: &str) -> String {
    let n = rng.range(1, 3);
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        parts.push(WORDS[60 + rng.below(WORDS.len() - 60)]);
    }
    parts.join(sep)
}

/// About `size` bytes of file content of kind `ext`, `marker` on the first lines.
fn file_content(rng: &mut Rng, ext: &str, size: usize, marker: &str) -> String {
    let mut s = String::with_capacity(size + 200);
    match ext {
        "md" => markdown(rng, &mut s, size, marker),
        "txt" => plain_text(rng, &mut s, size, marker),
        "json" => json_object(rng, &mut s, size, marker),
        _ => source_code(rng, &mut s, ext, size, marker),
    }
    s
}

/// Markdown: a title, then sections, lists, code blocks and paragraphs.
fn markdown(rng: &mut Rng, s: &mut String, size: usize, marker: &str) {
    let _ = write!(s, "# {}\n\nTag: {marker}\n", ident(rng, " "));
    while s.len() < size {
        match rng.below(8) {
            0 => {
                let _ = write!(s, "\n## {}\n", ident(rng, " "));
            }
            1 => {
                s.push('\n');
                for _ in 0..rng.range(2, 5) {
                    s.push_str("- ");
                    sentence(rng, s, 3, 9, None);
                    s.push('\n');
                }
            }
            2 => {
                let _ = write!(
                    s,
                    "\n```\n{} = {}({})\n```\n",
                    ident(rng, "_"),
                    ident(rng, "_"),
                    rng.below(1000)
                );
            }
            _ => {
                s.push('\n');
                for _ in 0..rng.range(2, 6) {
                    sentence(rng, s, 5, 18, None);
                    s.push(' ');
                }
                s.push('\n');
            }
        }
    }
}

/// Plain text of about `size` bytes appended to `s`: `marker` alone on the
/// first line, then paragraphs of sentences.
pub(crate) fn plain_text(rng: &mut Rng, s: &mut String, size: usize, marker: &str) {
    let _ = writeln!(s, "{marker}");
    while s.len() < size {
        for _ in 0..rng.range(3, 8) {
            sentence(rng, s, 5, 18, None);
            s.push(' ');
        }
        s.push_str("\n\n");
    }
}

/// A flat JSON object of numbers and short strings.
fn json_object(rng: &mut Rng, s: &mut String, size: usize, marker: &str) {
    let _ = write!(s, "{{\n  \"marker\": \"{marker}\"");
    while s.len() < size {
        let _ = write!(s, ",\n  \"{}\": ", ident(rng, "_"));
        if rng.chance(0.5) {
            let _ = write!(s, "{}", rng.below(100_000));
        } else {
            s.push('"');
            sentence(rng, s, 2, 8, None);
            s.push('"');
        }
    }
    s.push_str("\n}\n");
}

/// Source-like text (`rs`, `py`, else JavaScript): commented functions of
/// method calls.
fn source_code(rng: &mut Rng, s: &mut String, ext: &str, size: usize, marker: &str) {
    let (comment, func, open, close, ret) = match ext {
        "rs" => ("//", "fn", ") -> Result<()> {", "}", "    Ok(())"),
        "py" => ("#", "def", "):", "", "    return None"),
        _ => ("//", "function", ") {", "}", "  return null;"),
    };
    let _ = writeln!(s, "{comment} {marker}");
    while s.len() < size {
        s.push_str(comment);
        s.push(' ');
        sentence(rng, s, 6, 16, None);
        let _ = writeln!(s, "\n{func} {}({}{open}", ident(rng, "_"), ident(rng, "_"));
        for _ in 0..rng.range(2, 8) {
            let _ = writeln!(
                s,
                "    let {} = {}.{}({});",
                ident(rng, "_"),
                ident(rng, "_"),
                ident(rng, "_"),
                rng.below(64)
            );
        }
        let _ = writeln!(s, "{ret}\n{close}\n");
    }
}

/// Indexable directories (relative): a few top-level areas, each with nested
/// children up to 4 deep, about one per 200 KiB of content (8 to 2000).
fn directories(rng: &mut Rng, included_bytes: u64) -> Vec<PathBuf> {
    let n_dirs = ((included_bytes / (200 * 1024)) as usize).clamp(8, 2000);
    let mut dirs: Vec<PathBuf> = ["docs", "src", "notes", "web/src", "scripts"]
        .iter()
        .map(PathBuf::from)
        .collect();
    while dirs.len() < n_dirs {
        let parent = dirs[rng.below(dirs.len())].clone();
        if parent.components().count() >= 4 {
            continue;
        }
        let name = ident(rng, "-");
        let child = parent.join(&name);
        // "build" is one of the service's default excludes: not an indexable dir.
        if name != "build" && !dirs.contains(&child) {
            dirs.push(child);
        }
    }
    dirs
}

/// The `i`th file's path (relative) with extension `ext`: in one of `dirs`, or
/// when `ignore`, where the corpus's `.gitignore` excludes it (an ignored
/// directory, or a `.log` file anywhere).
fn file_path(
    rng: &mut Rng,
    dirs: &[PathBuf],
    ignored_dirs: &[PathBuf],
    ignore: bool,
    i: usize,
    ext: &str,
) -> PathBuf {
    if !ignore {
        return dirs[rng.below(dirs.len())].join(format!("{}-{i}.{ext}", ident(rng, "_")));
    }
    match rng.below(3) {
        0 => ignored_dirs[rng.below(ignored_dirs.len())].join(format!("{}-{i}.{ext}", ident(rng, "_"))),
        1 => dirs[rng.below(dirs.len())].join(format!("{}-{i}.log", ident(rng, "_"))),
        _ => ignored_dirs[1].join(format!("{}-{i}.{ext}", ident(rng, "_"))),
    }
}

/// Writes a tree of about `included_bytes` bytes of indexable files under
/// `root` (created): markdown, text and source-like files in nested
/// directories (up to 4 deep), sizes from 512 B to 48 KiB (log-uniform), a
/// `.git` directory (so `.gitignore` applies as in a real checkout), a
/// `.gitignore`, and about 5 % more bytes in ignored places (`target/`,
/// `*.log`, `generated/`).
pub fn write_tree(root: &Path, included_bytes: u64, seed: u64) -> Result<Tree> {
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(root.join(".git")).with_context(|| format!("creating {}", root.display()))?;
    std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").context("writing .git/HEAD")?;
    std::fs::write(root.join(".gitignore"), GITIGNORE).context("writing .gitignore")?;

    let dirs = directories(&mut rng, included_bytes);
    let ignored_dirs = [
        PathBuf::from("target/debug"),
        PathBuf::from("generated"),
        PathBuf::from("src/generated"),
    ];
    for d in dirs.iter().chain(&ignored_dirs) {
        std::fs::create_dir_all(root.join(d)).with_context(|| format!("creating {}", d.display()))?;
    }

    let mut files = Vec::new();
    let mut written = 0u64;
    let mut ignored_written = 0u64;
    let mut names = std::collections::HashSet::new();
    while written < included_bytes || ignored_written < included_bytes / 20 {
        let ignore = written >= included_bytes || (ignored_written < included_bytes / 20 && rng.chance(0.05));
        let size = (512.0 * (96.0f64).powf(rng.unit())) as usize; // 512 B .. 48 KiB
        let i = files.len();
        let ext = pick_kind(&mut rng);
        let rel = file_path(&mut rng, &dirs, &ignored_dirs, ignore, i, ext);
        if !names.insert(rel.clone()) {
            continue;
        }
        let marker = file_marker(i);
        let text = file_content(
            &mut rng,
            if rel.extension().is_some_and(|e| e == "log") {
                "txt"
            } else {
                ext
            },
            size,
            &marker,
        );
        std::fs::write(root.join(&rel), &text).with_context(|| format!("writing {}", rel.display()))?;
        let bytes = text.len() as u64;
        if ignore {
            ignored_written += bytes;
        } else {
            written += bytes;
        }
        files.push(TreeFile {
            rel,
            ignored: ignore,
            marker,
            prose: matches!(ext, "md" | "txt"),
        });
    }
    Ok(Tree {
        files,
        included_bytes: written,
        dirs: dirs.len() + ignored_dirs.len() + 1,
    })
}

/// Splits `text` into pieces of at most ~1000 bytes, cut at the last line
/// break (else space) after byte 600 of each window, else mid-word. A simple
/// stand-in for the service's chunker, for the bare baseline.
pub fn chunks(text: &str) -> Vec<&str> {
    const TARGET: usize = 1000;
    const MIN: usize = 600;
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > TARGET {
        let mut end = TARGET;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[..end];
        let cut = window[MIN.min(window.len())..]
            .rfind('\n')
            .or_else(|| window[MIN.min(window.len())..].rfind(' '))
            .map_or(end, |p| MIN.min(window.len()) + p + 1);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.trim().is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_deterministic_sized_and_marked() {
        for i in [0, 1, 7, 999, 123_456] {
            let m = message(i);
            assert_eq!(m, message(i));
            assert!((100..=800).contains(&m.len()), "{i}: {} chars", m.len());
            assert!(m.contains(&message_marker(i)), "{m}");
        }
        assert_ne!(message(1), message(2));
    }

    #[test]
    fn chunks_cover_the_text_in_bounded_pieces() {
        let text = message(3).repeat(20);
        let parts = chunks(&text);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= 1000));
        assert!(parts.len() >= text.len() / 1000);
    }

    #[test]
    fn tree_has_the_asked_size_and_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let tree = write_tree(dir.path(), 300_000, 1).unwrap();
        assert!(tree.included_bytes >= 300_000 && tree.included_bytes < 360_000);
        assert!(tree.files.iter().any(|f| f.ignored));
        for f in tree.files.iter().take(20) {
            let text = std::fs::read_to_string(dir.path().join(&f.rel)).unwrap();
            assert!(text.contains(&f.marker));
        }
    }
}
