//! Turning a file's bytes into indexable text. Plain text in any common encoding (UTF-8
//! with or without BOM, UTF-16 LE/BE with BOM, legacy single-byte text guessed by
//! `chardetng`) is decoded here; documents (PDF, Office, OpenDocument, EPUB, e-mail, RTF,
//! HTML) are handed to the `documents` module. Only bytes that no decoding makes into text
//! count as binary: a NUL in text without a UTF-16 BOM, or too many control characters.
//!
//! Documents come from anywhere, so their parsers are treated as untrusted:
//! [`extract_isolated`] runs one file on its own thread, catches panics, and abandons the
//! thread past a deadline, so a hostile file is skipped with a reason instead of hanging,
//! crashing or stalling the indexer. The parsers themselves are bounded in memory by the
//! limits in the `documents` module.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

use crate::documents;

/// Bytes sniffed for a NUL before a file is read whole.
pub const SNIFF_BYTES: usize = 8 * 1024;
/// Largest share of U+FFFD or control characters tolerated in decoded text; above it the
/// bytes are binary.
pub const MAX_INVALID_RATIO: f64 = 0.05;
/// Largest document read (PDF, Office, ...); text files use the indexer's own cap.
pub const MAX_DOCUMENT_BYTES: u64 = 32 * 1024 * 1024;
/// How long one document may take to extract before it is abandoned.
pub const EXTRACT_DEADLINE: Duration = Duration::from_secs(20);
/// Abandoned extractions (still running past their deadline) tolerated at once; past it,
/// documents are skipped until one ends, so a stream of hostile files cannot pile up threads.
pub const MAX_ABANDONED: usize = 4;
/// Stack of an extraction thread (parsers recurse on nested structures; they bound their
/// depth, this gives the bound room).
const EXTRACT_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Extensions skipped without reading (lowercase): formats with no text to extract.
const BINARY_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "tiff", "psd", "heic", "zip", "gz", "tgz", "bz2",
    "xz", "7z", "rar", "zst", "jar", "war", "class", "exe", "dll", "so", "dylib", "a", "o", "obj", "bin",
    "dat", "db", "sqlite", "sqlite3", "wasm", "pyc", "mp3", "mp4", "m4a", "wav", "flac", "ogg", "mov", "avi",
    "mkv", "webm", "woff", "woff2", "ttf", "otf", "eot", "iso", "dmg", "pkg", "deb", "rpm",
];

/// Document formats recognised but not extracted (old binary Office, Apple iWork).
const UNSUPPORTED_EXTENSIONS: &[&str] = &["doc", "ppt", "key", "numbers", "pages"];

/// The result of extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    /// Text to chunk and index.
    Text(String),
    /// Not a text file.
    Binary,
    /// A document whose extraction failed (malformed, hostile, too slow); the reason.
    Failed(String),
}

/// What a file's extension says before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, decoded by [`decode_text`] (HTML is stripped after decoding).
    Text,
    /// A document extracted by the `documents` module (cap [`MAX_DOCUMENT_BYTES`]).
    Document,
    /// Known binary (images, archives, executables): skipped without reading.
    Binary,
    /// A document format not extracted (`.doc`, `.ppt`, iWork): skipped without reading.
    Unsupported,
}

/// Classifies an extension (any case).
pub fn kind(filetype: Option<&str>) -> Kind {
    let Some(ext) = filetype.map(str::to_ascii_lowercase) else {
        return Kind::Text;
    };
    if documents::is_document(&ext) {
        Kind::Document
    } else if BINARY_EXTENSIONS.contains(&ext.as_str()) {
        Kind::Binary
    } else if UNSUPPORTED_EXTENSIONS.contains(&ext.as_str()) {
        Kind::Unsupported
    } else {
        Kind::Text
    }
}

/// True when the extension alone says "not indexable" (binary or unsupported).
pub fn is_binary_extension(filetype: Option<&str>) -> bool {
    matches!(kind(filetype), Kind::Binary | Kind::Unsupported)
}

/// True when `head` (a file's first bytes) holds a NUL and no UTF-16 BOM: binary.
pub fn has_nul(head: &[u8]) -> bool {
    let (bom, _) = bom(head);
    bom.is_none_or(|e| e == UTF_8) && head[..head.len().min(SNIFF_BYTES)].contains(&0)
}

fn bom(bytes: &[u8]) -> (Option<&'static Encoding>, usize) {
    match Encoding::for_bom(bytes) {
        Some((e, n)) => (Some(e), n),
        None => (None, 0),
    }
}

/// Text decoded from bytes, with the encoding they were in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text (BOM removed; invalid sequences as U+FFFD).
    pub text: String,
    /// The WHATWG name of the encoding the bytes were in: `UTF-8`, `UTF-16LE`,
    /// `UTF-16BE`, `windows-1252`, ...
    pub encoding: &'static str,
}

/// Decodes text bytes, or `None` when they are binary. A BOM decides first; then valid
/// UTF-8 (or UTF-8 with a few stray bytes among real multi-byte characters, or cut in the
/// middle of a character, as a read of the first N bytes is) is UTF-8; anything else is
/// guessed by `chardetng` (Windows-1252 for Western European text). The result is
/// binary when more than [`MAX_INVALID_RATIO`] of its characters are U+FFFD or control
/// characters other than tab, line feed, form feed, carriage return and escape.
pub fn decode_text(bytes: &[u8]) -> Option<Decoded> {
    // A UTF-8 character cut by the end of the bytes read (a first-N-bytes read) shows
    // as one U+FFFD that says nothing about binary content: not counted.
    let mut cut = 0;
    let (encoding, text) = match bom(bytes) {
        (Some(e), n) => {
            let (text, _) = e.decode_without_bom_handling(&bytes[n..]);
            (e, text.into_owned())
        }
        (None, _) => {
            if bytes.contains(&0) {
                return None;
            }
            match std::str::from_utf8(bytes) {
                Ok(s) => (UTF_8, s.to_string()),
                Err(e) if e.error_len().is_none() => {
                    cut = 1;
                    (UTF_8, String::from_utf8_lossy(bytes).into_owned())
                }
                Err(_) => {
                    let lossy = String::from_utf8_lossy(bytes);
                    let multibyte = lossy.chars().filter(|&c| c > '\u{7f}' && c != '\u{FFFD}').count();
                    let bad = lossy.chars().filter(|&c| c == '\u{FFFD}').count();
                    if multibyte > bad {
                        (UTF_8, lossy.into_owned())
                    } else {
                        let mut detector =
                            chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
                        detector.feed(bytes, true);
                        let e = detector.guess(None, chardetng::Utf8Detection::Allow);
                        let (text, _) = e.decode_without_bom_handling(bytes);
                        (e, text.into_owned())
                    }
                }
            }
        }
    };
    let total = text.chars().count().max(1);
    let bad = text
        .chars()
        .filter(|&c| {
            c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x1b'))
        })
        .count()
        - cut;
    if bad as f64 / total as f64 > MAX_INVALID_RATIO {
        return None;
    }
    let encoding = if encoding == UTF_16LE {
        "UTF-16LE"
    } else if encoding == UTF_16BE {
        "UTF-16BE"
    } else {
        encoding.name()
    };
    Some(Decoded { text, encoding })
}

/// The indexable text of a file with extension `filetype`, on the calling thread (see
/// [`extract_isolated`] for untrusted documents).
pub fn extract(filetype: Option<&str>, bytes: &[u8]) -> Extracted {
    let ext = filetype.map(str::to_ascii_lowercase);
    match kind(ext.as_deref()) {
        Kind::Binary => return Extracted::Binary,
        Kind::Unsupported => return Extracted::Failed("unsupported document format".into()),
        Kind::Document => {
            return match documents::extract(ext.as_deref().unwrap_or_default(), bytes) {
                Ok(text) => Extracted::Text(text),
                Err(e) => Extracted::Failed(e),
            };
        }
        Kind::Text => {}
    }
    match decode_text(bytes) {
        Some(d) if matches!(ext.as_deref(), Some("html" | "htm" | "xhtml")) => {
            Extracted::Text(strip_html(&d.text))
        }
        Some(d) => Extracted::Text(d.text),
        None => Extracted::Binary,
    }
}

static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// [`extract`] on a thread of its own: a panic becomes [`Extracted::Failed`], and past
/// `deadline` the thread is abandoned (left to finish and be dropped) and the file is
/// `Failed`. Plain text is extracted inline (its decoders neither recurse nor allocate
/// more than the input's size).
pub fn extract_isolated(filetype: Option<&str>, bytes: Vec<u8>, deadline: Duration) -> Extracted {
    if kind(filetype) != Kind::Document {
        return extract(filetype, &bytes);
    }
    let ft = filetype.map(str::to_string);
    run_isolated(move || extract(ft.as_deref(), &bytes), deadline)
}

/// Runs `work` on a thread of its own with a deadline (see [`extract_isolated`]).
pub(crate) fn run_isolated<F>(work: F, deadline: Duration) -> Extracted
where
    F: FnOnce() -> Extracted + Send + 'static,
{
    if ABANDONED.load(Ordering::SeqCst) >= MAX_ABANDONED {
        return Extracted::Failed(format!(
            "{MAX_ABANDONED} earlier document extractions are still running past their deadline"
        ));
    }
    // The result, or `abandoned` once the caller gave up; one lock decides which, so
    // every abandoned thread decrements ABANDONED exactly once.
    #[derive(Default)]
    struct Slot {
        result: Option<std::thread::Result<Extracted>>,
        abandoned: bool,
    }
    let slot = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
    let theirs = Arc::clone(&slot);
    let spawned = std::thread::Builder::new()
        .name("extract".into())
        .stack_size(EXTRACT_STACK_BYTES)
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let (lock, ready) = &*theirs;
            let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
            if slot.abandoned {
                ABANDONED.fetch_sub(1, Ordering::SeqCst);
            } else {
                slot.result = Some(out);
                ready.notify_one();
            }
        });
    if let Err(e) = spawned {
        return Extracted::Failed(format!("could not start an extraction thread: {e}"));
    }
    let (lock, ready) = &*slot;
    let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    let (mut guard, _) = ready
        .wait_timeout_while(guard, deadline, |s| s.result.is_none())
        .unwrap_or_else(|p| p.into_inner());
    match guard.result.take() {
        Some(Ok(out)) => out,
        Some(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Extracted::Failed(format!("the parser crashed: {msg}"))
        }
        None => {
            guard.abandoned = true;
            ABANDONED.fetch_add(1, Ordering::SeqCst);
            Extracted::Failed(format!(
                "extraction took longer than {:.1} s",
                deadline.as_secs_f64()
            ))
        }
    }
}

/// HTML to text: drops comments, `<script>`/`<style>` elements and every tag, decodes
/// the common entities, and collapses runs of blank lines.
pub fn strip_html(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    while i < html.len() {
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
        } else if let Some(tag) = ["<script", "<style"].iter().find(|t| rest.starts_with(**t)) {
            let close = format!("</{}", &tag[1..]);
            i += match rest.find(&close) {
                Some(e) => e + rest[e..].find('>').map_or(rest.len() - e, |g| g + 1),
                None => rest.len(),
            };
        } else if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let name = &rest[1..end.min(rest.len())];
            if [
                "p", "br", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "/p", "/div", "/li",
            ]
            .iter()
            .any(|t| name.starts_with(t) && name[t.len()..].starts_with(['>', ' ', '/']))
            {
                out.push('\n');
            }
            i += end;
        } else {
            let next = rest.find('<').unwrap_or(rest.len());
            out.push_str(&decode_entities(&html[i..i + next]));
            i += next;
        }
    }
    let mut collapsed = String::with_capacity(out.len());
    let mut blank_run = 0;
    for line in out.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        collapsed.push_str(line);
        collapsed.push('\n');
    }
    collapsed.trim().to_string()
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary() {
        assert_eq!(
            extract(Some("md"), b"# Hi\nthere"),
            Extracted::Text("# Hi\nthere".into())
        );
        assert_eq!(extract(None, b"abc\0def"), Extracted::Binary);
        let controls: Vec<u8> = (0..200u8).map(|i| 1 + i % 8).collect();
        assert_eq!(extract(Some("txt"), &controls), Extracted::Binary);
        let mut few_bad = b"hello world, this is mostly fine text ".repeat(10);
        few_bad.push(0xff);
        assert!(matches!(extract(Some("txt"), &few_bad), Extracted::Text(_)));
        assert!(is_binary_extension(Some("PNG")));
        assert!(is_binary_extension(Some("doc")));
        assert!(!is_binary_extension(Some("rs")));
        assert!(!is_binary_extension(Some("pdf")));
        assert!(!is_binary_extension(None));
    }

    fn utf16(s: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in s.encode_utf16() {
            out.extend(if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn every_text_encoding_is_decoded() {
        let text = "Widgetry settings\r\nsecond line narwhalx café\r\n";
        let le = utf16(text, false);
        assert!(!has_nul(&le));
        assert_eq!(
            decode_text(&le),
            Some(Decoded {
                text: text.into(),
                encoding: "UTF-16LE"
            })
        );
        assert_eq!(
            decode_text(&utf16(text, true)).map(|d| d.encoding),
            Some("UTF-16BE")
        );
        let bom8 = [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat();
        assert_eq!(
            decode_text(&bom8),
            Some(Decoded {
                text: text.into(),
                encoding: "UTF-8"
            })
        );
        // Windows-1252: "Crème brûlée à la française, déjà vu", é = 0xE9, è = 0xE8 ...
        let (latin, _, _) =
            encoding_rs::WINDOWS_1252.encode("Crème brûlée à la française, déjà vu, naïve señor");
        let d = decode_text(&latin).expect("text");
        assert_eq!(d.text, "Crème brûlée à la française, déjà vu, naïve señor");
        assert_eq!(d.encoding, "windows-1252");
        // UTF-8 cut in the middle of a character (a first-N-bytes read) stays UTF-8.
        let cut = &"déjà".as_bytes()[..5];
        assert_eq!(decode_text(cut).map(|d| d.encoding), Some("UTF-8"));
        assert_eq!(
            extract(Some("txt"), &le),
            Extracted::Text(text.into()),
            "UTF-16 is text"
        );
    }

    #[test]
    fn html_is_stripped() {
        let html = "<html><head><style>p{color:red}</style><script>var secret=1;</script></head>\
                    <body><!-- hidden --><h1>Title</h1><p>Fish &amp; chips</p><p>two</p></body></html>";
        let text = strip_html(html);
        assert!(text.contains("Title"), "{text}");
        assert!(text.contains("Fish & chips"), "{text}");
        assert!(
            !text.contains("secret") && !text.contains("color") && !text.contains("hidden"),
            "{text}"
        );
        assert!(!text.contains('<'), "{text}");
        assert_eq!(strip_html("<script>never closed"), "");
    }
}
