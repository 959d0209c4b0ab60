//! Text of documents: PDF (its text layer, `lopdf`), DOCX/PPTX (`zip` + `quick-xml`),
//! XLSX/XLS/ODS (`calamine`: sheet names and cell text), ODT/ODP (`zip` + `quick-xml`),
//! EPUB (its XHTML in spine order), EML (`mail-parser`: From, To, Subject, Date and the
//! text body) and RTF (a small control-word reader). Images and OCR stay out.
//!
//! Every input is untrusted: archives are refused when they declare or unpack more than
//! [`MAX_UNPACKED_BYTES`] (zip bombs), XML deeper than [`MAX_XML_DEPTH`] is refused, and
//! text stops at [`MAX_TEXT_BYTES`]. Time and panics are bounded by the caller
//! ([`crate::extract::extract_isolated`]). Errors are a one-line reason for the skip.

use std::io::{Cursor, Read};

use quick_xml::events::Event;

use crate::extract::{decode_text, strip_html};

/// Most bytes unpacked from one archive (all entries together), and most bytes of
/// decompressed PDF streams per page.
pub const MAX_UNPACKED_BYTES: u64 = 128 * 1024 * 1024;
/// Most entries in one archive.
pub const MAX_ZIP_ENTRIES: usize = 20_000;
/// Deepest XML element nesting accepted.
pub const MAX_XML_DEPTH: usize = 512;
/// Most text kept from one document (the rest is dropped).
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;
/// Most spreadsheet cells read from one workbook.
pub const MAX_CELLS: usize = 2_000_000;
/// Deepest RTF group nesting accepted.
const MAX_RTF_DEPTH: usize = 1_000;

/// Extensions (lowercase) extracted here.
pub const DOCUMENT_EXTENSIONS: &[&str] = &[
    "pdf", "docx", "docm", "pptx", "pptm", "xlsx", "xlsm", "xlsb", "xls", "ods", "odt", "odp", "epub", "eml",
    "rtf",
];

/// True when `ext` (lowercase) is a document format extracted here.
pub fn is_document(ext: &str) -> bool {
    DOCUMENT_EXTENSIONS.contains(&ext)
}

/// The text of a document with extension `ext` (lowercase); the reason when it has none.
pub fn extract(ext: &str, bytes: &[u8]) -> Result<String, String> {
    let text = match ext {
        "pdf" => pdf(bytes)?,
        "docx" | "docm" => docx(bytes)?,
        "pptx" | "pptm" => pptx(bytes)?,
        "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => spreadsheet(ext, bytes)?,
        "odt" | "odp" => opendocument(bytes)?,
        "epub" => epub(bytes)?,
        "eml" => eml(bytes)?,
        "rtf" => rtf(bytes)?,
        other => return Err(format!("no extractor for .{other}")),
    };
    if text.trim().is_empty() {
        return Err(match ext {
            "pdf" => "the PDF has no text layer (scanned pages are not read)".into(),
            _ => "the document holds no text".into(),
        });
    }
    Ok(text)
}

/// Appends `s` unless the text is already at [`MAX_TEXT_BYTES`].
fn push(out: &mut String, s: &str) {
    if out.len() < MAX_TEXT_BYTES {
        out.push_str(s);
    }
}

// ---------------------------------------------------------------- zip archives

type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Opens an archive; refuses too many entries or a declared unpacked size over the cap.
fn open_zip(bytes: &[u8]) -> Result<Archive<'_>, String> {
    let archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable zip archive: {e}"))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(format!(
            "the archive has {} entries (more than {MAX_ZIP_ENTRIES})",
            archive.len()
        ));
    }
    // Unknown (entries streamed with data descriptors): `read_entry`'s budget still holds.
    if archive
        .decompressed_size()
        .is_some_and(|n| n > u128::from(MAX_UNPACKED_BYTES))
    {
        return Err(format!(
            "the archive unpacks to more than {} MiB (a zip bomb?)",
            MAX_UNPACKED_BYTES >> 20
        ));
    }
    Ok(archive)
}

/// Reads one entry, `None` when absent; `budget` is what may still be unpacked (the
/// sizes an archive declares are not trusted: reading stops at the budget).
fn read_entry(archive: &mut Archive<'_>, name: &str, budget: &mut u64) -> Result<Option<Vec<u8>>, String> {
    let entry = match archive.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("cannot read {name} in the archive: {e}")),
    };
    let mut buf = Vec::new();
    entry
        .take(*budget + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot unpack {name}: {e}"))?;
    if buf.len() as u64 > *budget {
        return Err(format!(
            "the archive unpacks to more than {} MiB (a zip bomb?)",
            MAX_UNPACKED_BYTES >> 20
        ));
    }
    *budget -= buf.len() as u64;
    Ok(Some(buf))
}

/// Unpacks every entry into nothing, refusing an archive whose entries really unpack
/// (whatever their headers say) to more than [`MAX_UNPACKED_BYTES`] in all: the check
/// made before handing an archive to a parser that unpacks it without our budget.
fn unpacks_within_budget(bytes: &[u8]) -> Result<(), String> {
    let mut archive = open_zip(bytes)?;
    let mut budget = MAX_UNPACKED_BYTES;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| format!("cannot read entry {i} of the archive: {e}"))?;
        let n = std::io::copy(&mut entry.take(budget + 1), &mut std::io::sink())
            .map_err(|e| format!("cannot unpack entry {i} of the archive: {e}"))?;
        if n > budget {
            return Err(format!(
                "the archive unpacks to more than {} MiB (a zip bomb?)",
                MAX_UNPACKED_BYTES >> 20
            ));
        }
        budget -= n;
    }
    Ok(())
}

fn names(archive: &Archive<'_>) -> Vec<String> {
    archive
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect()
}

// ---------------------------------------------------------------- XML text

/// Which elements of an XML part hold text and how they are laid out (local names).
struct XmlSpec<'s> {
    /// Text counts only inside these elements; empty: all text counts.
    text_in: &'s [&'s str],
    /// A line break after each of these elements (paragraphs).
    paragraphs: &'s [&'s str],
    /// A line break for these empty elements (`<w:br/>`).
    line_breaks: &'s [&'s str],
    /// A tab for these empty elements (`<w:tab/>`, cells).
    tabs: &'s [&'s str],
    /// A space for these empty elements (`<text:s/>`).
    spaces: &'s [&'s str],
}

/// Appends the text of an XML part to `out` per `spec`.
fn xml_text(xml: &[u8], spec: &XmlSpec<'_>, out: &mut String) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut depth = 0usize;
    let mut inside = 0usize;
    let counts = |inside: usize| spec.text_in.is_empty() || inside > 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_XML_DEPTH} levels"));
                }
                let name = e.local_name();
                if spec.text_in.contains(&name.as_ref()) {
                    inside += 1;
                }
                empty_element(spec, name.as_ref(), out);
            }
            Ok(Event::End(e)) => {
                depth = depth.saturating_sub(1);
                let name = e.local_name();
                if spec.text_in.contains(&name.as_ref()) {
                    inside = inside.saturating_sub(1);
                }
                if spec.paragraphs.contains(&name.as_ref()) {
                    push(out, "\n");
                }
            }
            Ok(Event::Empty(e)) => {
                let name = e.local_name();
                empty_element(spec, name.as_ref(), out);
                if spec.paragraphs.contains(&name.as_ref()) {
                    push(out, "\n");
                }
            }
            Ok(Event::Text(t)) if counts(inside) => push(out, &t.xml10_content()),
            Ok(Event::CData(t)) if counts(inside) => push(out, &t.xml10_content()),
            Ok(Event::GeneralRef(r)) if counts(inside) => {
                if let Some(c) = reference_char(&r) {
                    push(out, c.encode_utf8(&mut [0; 4]));
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("malformed XML at byte {}: {e}", reader.buffer_position())),
        }
    }
}

/// What an element of `spec` (met as a start tag or an empty one) puts into the text: a
/// line break, a tab, a space or nothing.
fn empty_element(spec: &XmlSpec<'_>, name: &str, out: &mut String) {
    if spec.line_breaks.contains(&name) {
        push(out, "\n");
    } else if spec.tabs.contains(&name) {
        push(out, "\t");
    } else if spec.spaces.contains(&name) {
        push(out, " ");
    }
}

/// The character a reference stands for: a character reference (`&#65;`) or one of
/// XML's five predefined entities; `None` for any other.
fn reference_char(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Some(c),
        _ => match &**r {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => None,
        },
    }
}

const WORD: XmlSpec<'static> = XmlSpec {
    text_in: &["t"],
    paragraphs: &["p"],
    line_breaks: &["br", "cr"],
    tabs: &["tab"],
    spaces: &[],
};

const OPEN_DOCUMENT: XmlSpec<'static> = XmlSpec {
    text_in: &[],
    paragraphs: &["p", "h"],
    line_breaks: &["line-break"],
    tabs: &["tab"],
    spaces: &["s"],
};

/// The number in a part name such as `ppt/slides/slide12.xml` (for natural order).
fn part_number(name: &str) -> u64 {
    let digits: String = name
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

/// Parts of `archive` under `prefix` named `stem<N>.xml`, in N order.
fn numbered_parts(archive: &Archive<'_>, prefix: &str, stem: &str) -> Vec<String> {
    let mut parts: Vec<String> = names(archive)
        .into_iter()
        .filter(|n| {
            n.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix(stem))
                .is_some_and(|rest| rest.ends_with(".xml") && !rest.contains('/'))
        })
        .collect();
    parts.sort_by_key(|n| part_number(n));
    parts
}

fn docx(bytes: &[u8]) -> Result<String, String> {
    let mut archive = open_zip(bytes)?;
    let mut budget = MAX_UNPACKED_BYTES;
    let mut parts = vec!["word/document.xml".to_string()];
    parts.extend(numbered_parts(&archive, "word/", "header"));
    parts.extend(numbered_parts(&archive, "word/", "footer"));
    parts.extend(["word/footnotes.xml".into(), "word/endnotes.xml".into()]);
    let mut out = String::new();
    let mut found = false;
    for part in parts {
        if let Some(xml) = read_entry(&mut archive, &part, &mut budget)? {
            found = true;
            xml_text(&xml, &WORD, &mut out)?;
            push(&mut out, "\n");
        }
    }
    if !found {
        return Err("not a Word document: word/document.xml is missing".into());
    }
    Ok(out)
}

fn pptx(bytes: &[u8]) -> Result<String, String> {
    let mut archive = open_zip(bytes)?;
    let mut budget = MAX_UNPACKED_BYTES;
    let slides = numbered_parts(&archive, "ppt/slides/", "slide");
    if slides.is_empty() {
        return Err("not a PowerPoint presentation: no ppt/slides/slide*.xml".into());
    }
    let notes = numbered_parts(&archive, "ppt/notesSlides/", "notesSlide");
    let mut out = String::new();
    for part in slides.iter().chain(&notes) {
        if let Some(xml) = read_entry(&mut archive, part, &mut budget)? {
            xml_text(&xml, &WORD, &mut out)?;
            push(&mut out, "\n");
        }
    }
    Ok(out)
}

fn opendocument(bytes: &[u8]) -> Result<String, String> {
    let mut archive = open_zip(bytes)?;
    let mut budget = MAX_UNPACKED_BYTES;
    let xml = read_entry(&mut archive, "content.xml", &mut budget)?
        .ok_or("not an OpenDocument file: content.xml is missing")?;
    let mut out = String::new();
    xml_text(&xml, &OPEN_DOCUMENT, &mut out)?;
    Ok(out)
}

/// Sheet names and cell text of a workbook; `ext` picks the reader (`xls`, `xlsb`,
/// `ods`, else the XLSX family).
fn spreadsheet(ext: &str, bytes: &[u8]) -> Result<String, String> {
    use calamine::{Reader, Sheets, open_workbook_from_rs};
    if bytes.starts_with(b"PK") {
        unpacks_within_budget(bytes)?; // before calamine unpacks anything on its own
    }
    fn bad(e: impl std::fmt::Display) -> String {
        format!("not a readable spreadsheet: {e}")
    }
    let rs = Cursor::new(bytes);
    let mut book = match ext {
        "xls" => Sheets::Xls(open_workbook_from_rs(rs).map_err(bad)?),
        "xlsb" => Sheets::Xlsb(open_workbook_from_rs(rs).map_err(bad)?),
        "ods" => Sheets::Ods(open_workbook_from_rs(rs).map_err(bad)?),
        _ => Sheets::Xlsx(open_workbook_from_rs(rs).map_err(bad)?),
    };
    let mut out = String::new();
    let mut cells = 0usize;
    for name in book.sheet_names() {
        push(&mut out, &name);
        push(&mut out, "\n");
        let range = book
            .worksheet_range(&name)
            .map_err(|e| format!("cannot read sheet {name:?}: {e}"))?;
        for row in range.rows() {
            let mut line = Vec::new();
            for cell in row {
                cells += 1;
                if cells > MAX_CELLS {
                    return Ok(out);
                }
                if !matches!(cell, calamine::Data::Empty) {
                    line.push(cell.to_string());
                }
            }
            if !line.is_empty() {
                push(&mut out, &line.join("\t"));
                push(&mut out, "\n");
            }
        }
        push(&mut out, "\n");
    }
    Ok(out)
}

// ---------------------------------------------------------------- EPUB

/// The value of attribute `key` (local name) of an element.
fn attr(e: &quick_xml::events::BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.local_name().as_ref() == key)
        .map(|a| a.value.into_owned())
}

/// The XHTML parts of an EPUB in reading (spine) order, from its container and package.
fn epub_spine(archive: &mut Archive<'_>, budget: &mut u64) -> Result<Vec<String>, String> {
    let container = read_entry(archive, "META-INF/container.xml", budget)?
        .ok_or("not an EPUB: META-INF/container.xml is missing")?;
    let mut reader = quick_xml::Reader::from_reader(container.as_slice());
    let mut opf = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "rootfile" => {
                opf = attr(&e, "full-path");
                break;
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("malformed EPUB container: {e}")),
        }
    }
    let opf = opf.ok_or("not an EPUB: the container names no package")?;
    let package =
        read_entry(archive, &opf, budget)?.ok_or_else(|| format!("not an EPUB: {opf} is missing"))?;
    let dir = opf
        .rsplit_once('/')
        .map_or(String::new(), |(d, _)| format!("{d}/"));
    let mut manifest = std::collections::HashMap::new();
    let mut spine = Vec::new();
    let mut reader = quick_xml::Reader::from_reader(package.as_slice());
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => match e.local_name().as_ref() {
                "item" => {
                    if let (Some(id), Some(href)) = (attr(&e, "id"), attr(&e, "href")) {
                        manifest.insert(id, href);
                    }
                }
                "itemref" => spine.extend(attr(&e, "idref")),
                _ => {}
            },
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("malformed EPUB package {opf}: {e}")),
        }
    }
    Ok(spine
        .iter()
        .filter_map(|id| manifest.get(id))
        .map(|href| format!("{dir}{href}"))
        .collect())
}

fn epub(bytes: &[u8]) -> Result<String, String> {
    let mut archive = open_zip(bytes)?;
    let mut budget = MAX_UNPACKED_BYTES;
    let mut parts = epub_spine(&mut archive, &mut budget)?;
    if parts.is_empty() {
        // No usable spine: every XHTML part in archive order.
        parts = names(&archive)
            .into_iter()
            .filter(|n| {
                [".xhtml", ".html", ".htm"]
                    .iter()
                    .any(|x| n.to_ascii_lowercase().ends_with(x))
            })
            .collect();
    }
    let mut out = String::new();
    for part in parts {
        if let Some(html) = read_entry(&mut archive, &part, &mut budget)?
            && let Some(d) = decode_text(&html)
        {
            push(&mut out, &strip_html(&d.text));
            push(&mut out, "\n\n");
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- e-mail

fn eml(bytes: &[u8]) -> Result<String, String> {
    let message = mail_parser::MessageParser::default()
        .parse(bytes)
        .ok_or("not a readable e-mail message")?;
    let addresses = |a: Option<&mail_parser::Address<'_>>| {
        a.map(|a| {
            a.iter()
                .map(|x| match (x.name(), x.address()) {
                    (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                    (Some(n), None) => n.to_string(),
                    (None, Some(ad)) => ad.to_string(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let mut out = String::new();
    if let Some(from) = addresses(message.from()) {
        push(&mut out, &format!("From: {from}\n"));
    }
    if let Some(to) = addresses(message.to()) {
        push(&mut out, &format!("To: {to}\n"));
    }
    if let Some(subject) = message.subject() {
        push(&mut out, &format!("Subject: {subject}\n"));
    }
    if let Some(date) = message.date() {
        push(&mut out, &format!("Date: {}\n", date.to_rfc3339()));
    }
    push(&mut out, "\n");
    for i in 0..message.text_body_count() {
        if let Some(body) = message.body_text(i) {
            push(&mut out, &body);
            push(&mut out, "\n");
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- PDF

fn pdf(bytes: &[u8]) -> Result<String, String> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| format!("not a readable PDF: {e}"))?;
    let mut out = String::new();
    let mut failed = None;
    for page in doc.get_pages().into_keys() {
        match doc.extract_text_with_limit(&[page], MAX_UNPACKED_BYTES as usize) {
            Ok(text) => {
                push(&mut out, &text);
                push(&mut out, "\n");
            }
            Err(e) => failed = Some(format!("cannot read the text of page {page}: {e}")),
        }
        if out.len() >= MAX_TEXT_BYTES {
            break;
        }
    }
    match failed {
        Some(e) if out.trim().is_empty() => Err(e),
        _ => Ok(out),
    }
}

// ---------------------------------------------------------------- RTF

/// RTF destinations whose content is not text.
const RTF_SKIPPED: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "filetbl",
    "revtbl",
];

fn rtf(bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"{\\rtf") {
        return Err("not an RTF document (no {\\rtf header)".into());
    }
    let mut r = Rtf {
        bytes,
        i: 0,
        stack: Vec::new(),
        skip: false,
        uc: 1,
        pending: 0,
        out: String::new(),
    };
    while let Some(&b) = r.bytes.get(r.i) {
        r.i += 1;
        match b {
            b'{' => {
                r.stack.push((r.skip, r.uc));
                if r.stack.len() > MAX_RTF_DEPTH {
                    return Err(format!("RTF groups nested deeper than {MAX_RTF_DEPTH}"));
                }
                r.pending = 0;
            }
            b'}' => {
                (r.skip, r.uc) = r.stack.pop().unwrap_or((false, 1));
                r.pending = 0;
            }
            b'\r' | b'\n' => {}
            b'\\' => {
                let Some(&c) = r.bytes.get(r.i) else { break };
                r.i += 1;
                if c.is_ascii_alphabetic() {
                    r.control_word();
                } else {
                    r.control_symbol(c);
                }
            }
            _ => r.emit(if b.is_ascii() { b as char } else { cp1252(b) }),
        }
    }
    Ok(r.out)
}

/// A byte of Windows-1252, RTF's default code page.
fn cp1252(b: u8) -> char {
    let byte = [b];
    let (s, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&byte);
    s.chars().next().unwrap_or('\u{FFFD}')
}

/// The state of [`rtf`]'s one pass over the bytes.
struct Rtf<'a> {
    bytes: &'a [u8],
    /// The next byte to read.
    i: usize,
    /// Per enclosing group: (skipped, characters to skip after `\uN`).
    stack: Vec<(bool, usize)>,
    /// Inside a destination whose text is not shown (`\*`, fonts, pictures, ...).
    skip: bool,
    /// `\ucN`: fallback characters that follow each `\uN`.
    uc: usize,
    /// Fallback characters still to drop after the last `\uN`.
    pending: usize,
    out: String,
}

impl Rtf<'_> {
    /// A character of text, unless skipped, a fallback still owed, or past the cap.
    fn emit(&mut self, c: char) {
        if self.skip {
            return;
        }
        if self.pending > 0 {
            self.pending -= 1;
        } else if self.out.len() < MAX_TEXT_BYTES {
            self.out.push(c);
        }
    }

    /// A break or a `\uN` character: never taken for a fallback.
    fn emit_always(&mut self, c: char) {
        let pending = std::mem::take(&mut self.pending);
        self.emit(c);
        self.pending = pending;
    }

    /// `\word[-]N?[ ]`, the backslash and first letter already read.
    fn control_word(&mut self) {
        let bytes = self.bytes;
        let start = self.i - 1;
        while self.i < bytes.len() && bytes[self.i].is_ascii_alphabetic() {
            self.i += 1;
        }
        let word = std::str::from_utf8(&bytes[start..self.i]).unwrap_or_default();
        let num_start = self.i;
        if self.i < bytes.len() && bytes[self.i] == b'-' {
            self.i += 1;
        }
        while self.i < bytes.len() && bytes[self.i].is_ascii_digit() && self.i - num_start < 11 {
            self.i += 1;
        }
        let param: Option<i64> = std::str::from_utf8(&bytes[num_start..self.i])
            .ok()
            .and_then(|s| s.parse().ok());
        if self.i < bytes.len() && bytes[self.i] == b' ' {
            self.i += 1;
        }
        match word {
            "par" | "line" | "row" | "sect" | "page" => self.emit_always('\n'),
            "tab" | "cell" => self.emit_always('\t'),
            "uc" => self.uc = param.unwrap_or(1).clamp(0, 10) as usize,
            "u" => {
                let n = param.unwrap_or(0);
                let n = if n < 0 { n + 65_536 } else { n };
                let c = u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                self.emit_always(c);
                self.pending = self.uc;
            }
            "bin" => self.i += param.unwrap_or(0).max(0) as usize,
            w if RTF_SKIPPED.contains(&w) => self.skip = true,
            _ => {}
        }
    }

    /// `\` followed by a non-letter `c`.
    fn control_symbol(&mut self, c: u8) {
        match c {
            b'*' => self.skip = true,
            b'\'' => {
                let hex = self
                    .bytes
                    .get(self.i..self.i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    self.emit(cp1252(v));
                }
                self.i += 2;
            }
            b'~' => self.emit(' '),
            b'\r' | b'\n' => self.emit_always('\n'),
            b'\\' | b'{' | b'}' => self.emit(c as char),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
