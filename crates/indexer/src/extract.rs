//! Turning a file's bytes into indexable text: text-like files only (plain text,
//! Markdown, source code, JSON, YAML, TOML, CSV, HTML with its tags, scripts and styles
//! stripped). Binaries are refused by a NUL byte in the first 8 KiB or by too much
//! invalid UTF-8, and well-known binary extensions are refused without reading. Pure.

/// Bytes sniffed for a NUL before a file is read whole.
pub const SNIFF_BYTES: usize = 8 * 1024;
/// Largest share of U+FFFD (invalid UTF-8) tolerated in a text file.
pub const MAX_INVALID_RATIO: f64 = 0.05;

/// Extensions skipped without reading (lowercase).
const BINARY_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "tiff", "psd", "heic", "pdf", "zip", "gz", "tgz",
    "bz2", "xz", "7z", "rar", "zst", "jar", "war", "class", "exe", "dll", "so", "dylib", "a", "o", "obj",
    "bin", "dat", "db", "sqlite", "sqlite3", "wasm", "pyc", "mp3", "mp4", "m4a", "wav", "flac", "ogg", "mov",
    "avi", "mkv", "webm", "woff", "woff2", "ttf", "otf", "eot", "doc", "docx", "xls", "xlsx", "ppt", "pptx",
    "key", "numbers", "pages", "iso", "dmg", "pkg", "deb", "rpm",
];

/// The result of extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    /// Text to chunk and index.
    Text(String),
    /// Not a text file.
    Binary,
}

/// True when the extension alone says "binary".
pub fn is_binary_extension(filetype: Option<&str>) -> bool {
    filetype.is_some_and(|e| BINARY_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// True when `head` (a file's first bytes) holds a NUL.
pub fn has_nul(head: &[u8]) -> bool {
    head[..head.len().min(SNIFF_BYTES)].contains(&0)
}

/// The indexable text of a file with extension `filetype`.
pub fn extract(filetype: Option<&str>, bytes: &[u8]) -> Extracted {
    if has_nul(bytes) {
        return Extracted::Binary;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let lossy = String::from_utf8_lossy(bytes);
            let total = lossy.chars().count().max(1);
            let bad = lossy.chars().filter(|&c| c == '\u{FFFD}').count();
            if bad as f64 / total as f64 > MAX_INVALID_RATIO {
                return Extracted::Binary;
            }
            lossy.into_owned()
        }
    };
    let text = text.strip_prefix('\u{FEFF}').map(str::to_string).unwrap_or(text);
    match filetype.map(str::to_ascii_lowercase).as_deref() {
        Some("html" | "htm" | "xhtml") => Extracted::Text(strip_html(&text)),
        _ => Extracted::Text(text),
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
        let mostly_bad: Vec<u8> = (0..200u8).map(|i| 0x80 | (i & 0x3f)).collect();
        assert_eq!(extract(Some("txt"), &mostly_bad), Extracted::Binary);
        let mut few_bad = b"hello world, this is mostly fine text ".repeat(10);
        few_bad.push(0xff);
        assert!(matches!(extract(Some("txt"), &few_bad), Extracted::Text(_)));
        assert!(is_binary_extension(Some("PNG")));
        assert!(!is_binary_extension(Some("rs")));
        assert!(!is_binary_extension(None));
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
