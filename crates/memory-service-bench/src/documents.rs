//! A generated tree of mixed documents for `load`: PDF (a text layer, several
//! pages), DOCX, PPTX, XLSX, ODT, ODS, EPUB, HTML, EML, RTF, Markdown and
//! plain text, each built in code from prose of [`corpus::plain_text`] that
//! holds a marker word of its own, so the service's extraction can be timed
//! and checked per format against a bare FTS5 insert of the very text each
//! document was made from. Zips are written with `zip`, XML by formatting
//! (escaped), PDFs with `lopdf`; nothing is copied from elsewhere.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::corpus::{self, Rng};

/// The document kinds written, by extension, in the order files cycle through
/// them (so even a small tree holds every kind).
pub const KINDS: &[&str] = &[
    "pdf", "docx", "pptx", "xlsx", "odt", "ods", "epub", "html", "eml", "rtf", "md", "txt",
];

/// The marker word of document `i`: one FTS5 token, in no other document,
/// message or tree file (those use `zqm` and `zqf`).
pub fn doc_marker(i: usize) -> String {
    format!("zqd{i:07}")
}

/// One generated document.
#[derive(Debug, Clone)]
pub struct DocFile {
    /// Path relative to the tree's root.
    pub rel: PathBuf,
    /// Its kind: the extension, one of [`KINDS`].
    pub kind: &'static str,
    /// Its marker word ([`doc_marker`]), in its text.
    pub marker: String,
    /// The plain text it was generated from (what a perfect extractor returns,
    /// give or take line breaks and titles).
    pub text: String,
    /// Its size on disk.
    pub bytes: u64,
}

/// A generated tree of documents.
#[derive(Debug)]
pub struct DocTree {
    /// Every document written.
    pub files: Vec<DocFile>,
    /// Bytes on disk of all documents.
    pub bytes: u64,
    /// Bytes of the plain text they were generated from.
    pub text_bytes: u64,
}

/// Writes documents under `root` (created) until they hold at least `bytes`
/// bytes on disk: kinds in [`KINDS`] order, each from 2-64 KB of prose with
/// its marker on the first line, under `docs/<kind>/`. Deterministic for a
/// `seed`. Errors name the file that could not be written or built.
pub fn write_documents_tree(root: &Path, bytes: u64, seed: u64) -> Result<DocTree> {
    let mut rng = Rng::new(seed);
    let mut files = Vec::new();
    let (mut written, mut text_bytes) = (0u64, 0u64);
    while written < bytes {
        let i = files.len();
        let kind = KINDS[i % KINDS.len()];
        let marker = doc_marker(i);
        let size = (2000.0 * 32f64.powf(rng.unit())) as usize; // 2 KB .. 64 KB of text
        let mut text = String::with_capacity(size + 200);
        corpus::plain_text(&mut rng, &mut text, size, &marker);
        let title = format!(
            "Document {i} {}",
            corpus::WORDS[60 + rng.below(corpus::WORDS.len() - 60)]
        );
        let content = encode(kind, &title, &text).with_context(|| format!("building {kind} document {i}"))?;
        let rel = Path::new("docs").join(kind).join(format!("{kind}-{i:05}.{kind}"));
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap_or(root))
            .with_context(|| format!("creating the directory of {}", path.display()))?;
        std::fs::write(&path, &content).with_context(|| format!("writing {}", path.display()))?;
        written += content.len() as u64;
        text_bytes += text.len() as u64;
        files.push(DocFile {
            rel,
            kind,
            marker,
            text,
            bytes: content.len() as u64,
        });
    }
    Ok(DocTree {
        files,
        bytes: written,
        text_bytes,
    })
}

/// The bytes of a `kind` document titled `title` holding `text`.
pub fn encode(kind: &str, title: &str, text: &str) -> Result<Vec<u8>> {
    let paras = paragraphs(text);
    Ok(match kind {
        "pdf" => pdf(text)?,
        "docx" => docx(title, &paras)?,
        "pptx" => pptx(title, &paras)?,
        "xlsx" => xlsx(title, &paras)?,
        "odt" => odt(title, &paras)?,
        "ods" => ods(title, &paras)?,
        "epub" => epub(title, &paras)?,
        "html" => html(title, &paras).into_bytes(),
        "eml" => eml(title, text).into_bytes(),
        "rtf" => rtf(title, &paras).into_bytes(),
        "md" => format!("# {title}\n\n{text}").into_bytes(),
        "txt" => text.as_bytes().to_vec(),
        other => anyhow::bail!("no generator for .{other}"),
    })
}

/// The non-empty lines of `text` (each paragraph of the prose is one line).
fn paragraphs(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// `s` escaped for XML text and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A zip of `(name, content)` entries: `mimetype` stored (first, as EPUB and
/// OpenDocument want it), the rest deflated.
fn zip_of(entries: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in entries {
        let options = if *name == "mimetype" { stored } else { deflated };
        w.start_file(*name, options)
            .with_context(|| format!("starting zip entry {name}"))?;
        w.write_all(content.as_bytes())
            .with_context(|| format!("writing zip entry {name}"))?;
    }
    Ok(w.finish().context("finishing the zip")?.into_inner())
}

const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
const RELS_NS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const OFFICE_DOC_REL: &str =
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument";

/// `[Content_Types].xml` with `overrides` (`(part, content type)`).
fn content_types(overrides: &[(String, &str)]) -> String {
    let mut s = format!(
        r#"{XML_DECL}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>"#
    );
    for (part, ct) in overrides {
        let _ = write!(s, r#"<Override PartName="{part}" ContentType="{ct}"/>"#);
    }
    s.push_str("</Types>");
    s
}

/// `_rels/.rels` pointing at the main part `target`.
fn root_rels(target: &str) -> String {
    format!(
        r#"{XML_DECL}<Relationships xmlns="{RELS_NS}"><Relationship Id="rId1" Type="{OFFICE_DOC_REL}" Target="{target}"/></Relationships>"#
    )
}

fn docx(title: &str, paras: &[&str]) -> Result<Vec<u8>> {
    let mut body = String::new();
    for p in std::iter::once(&title).chain(paras) {
        let _ = write!(
            body,
            r#"<w:p><w:r><w:t xml:space="preserve">{}</w:t></w:r></w:p>"#,
            xml_escape(p)
        );
    }
    let doc = format!(
        r#"{XML_DECL}<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    let ct = content_types(&[(
        "/word/document.xml".into(),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    )]);
    zip_of(&[
        ("[Content_Types].xml", &ct),
        ("_rels/.rels", &root_rels("word/document.xml")),
        ("word/document.xml", &doc),
    ])
}

fn pptx(title: &str, paras: &[&str]) -> Result<Vec<u8>> {
    let mut slides = Vec::new();
    for (n, chunk) in paras.chunks(6).enumerate() {
        let mut ps = String::new();
        let heading = format!("{title}, slide {}", n + 1);
        for p in std::iter::once(&heading.as_str()).chain(chunk) {
            let _ = write!(ps, "<a:p><a:r><a:t>{}</a:t></a:r></a:p>", xml_escape(p));
        }
        slides.push((
            format!("ppt/slides/slide{}.xml", n + 1),
            format!(
                r#"{XML_DECL}<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree><p:sp><p:txBody>{ps}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
            ),
        ));
    }
    let overrides: Vec<(String, &str)> = slides
        .iter()
        .map(|(name, _)| {
            (
                format!("/{name}"),
                "application/vnd.openxmlformats-officedocument.presentationml.slide+xml",
            )
        })
        .collect();
    let ct = content_types(&overrides);
    let rels = root_rels("ppt/presentation.xml");
    let mut entries: Vec<(&str, &str)> = vec![("[Content_Types].xml", &ct), ("_rels/.rels", &rels)];
    entries.extend(slides.iter().map(|(n, x)| (n.as_str(), x.as_str())));
    zip_of(&entries)
}

fn xlsx(title: &str, paras: &[&str]) -> Result<Vec<u8>> {
    let sheet_name = xml_escape(&title.chars().take(31).collect::<String>());
    let mut shared = String::new();
    let mut rows = String::new();
    for (r, p) in paras.iter().enumerate() {
        let _ = write!(shared, "<si><t>{}</t></si>", xml_escape(p));
        let n = r + 1;
        let _ = write!(
            rows,
            r#"<row r="{n}"><c r="A{n}" t="s"><v>{r}</v></c><c r="B{n}"><v>{n}</v></c></row>"#
        );
    }
    let sml = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let ct = content_types(&[
        (
            "/xl/workbook.xml".into(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        ),
        (
            "/xl/worksheets/sheet1.xml".into(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
        ),
        (
            "/xl/sharedStrings.xml".into(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml",
        ),
    ]);
    let wb = format!(
        r#"{XML_DECL}<workbook xmlns="{sml}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="{sheet_name}" sheetId="1" r:id="rId1"/></sheets></workbook>"#
    );
    let wb_rels = format!(
        r#"{XML_DECL}<Relationships xmlns="{RELS_NS}"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#
    );
    let n = paras.len();
    let sst = format!(r#"{XML_DECL}<sst xmlns="{sml}" count="{n}" uniqueCount="{n}">{shared}</sst>"#);
    let sheet = format!(r#"{XML_DECL}<worksheet xmlns="{sml}"><sheetData>{rows}</sheetData></worksheet>"#);
    zip_of(&[
        ("[Content_Types].xml", &ct),
        ("_rels/.rels", &root_rels("xl/workbook.xml")),
        ("xl/workbook.xml", &wb),
        ("xl/_rels/workbook.xml.rels", &wb_rels),
        ("xl/sharedStrings.xml", &sst),
        ("xl/worksheets/sheet1.xml", &sheet),
    ])
}

const ODF_NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2""#;

/// An OpenDocument zip of `content` with media type `mime`.
fn opendocument(mime: &str, content: &str) -> Result<Vec<u8>> {
    let manifest = format!(
        r#"{XML_DECL}<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#
    );
    zip_of(&[
        ("mimetype", mime),
        ("META-INF/manifest.xml", &manifest),
        ("content.xml", content),
    ])
}

fn odt(title: &str, paras: &[&str]) -> Result<Vec<u8>> {
    let mut body = format!("<text:h>{}</text:h>", xml_escape(title));
    for p in paras {
        let _ = write!(body, "<text:p>{}</text:p>", xml_escape(p));
    }
    let content = format!(
        r#"{XML_DECL}<office:document-content {ODF_NS}><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
    );
    opendocument("application/vnd.oasis.opendocument.text", &content)
}

fn ods(title: &str, paras: &[&str]) -> Result<Vec<u8>> {
    let mut rows = String::new();
    for (r, p) in paras.iter().enumerate() {
        let _ = write!(
            rows,
            r#"<table:table-row><table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="{n}"><text:p>{n}</text:p></table:table-cell></table:table-row>"#,
            xml_escape(p),
            n = r + 1
        );
    }
    let content = format!(
        r#"{XML_DECL}<office:document-content {ODF_NS}><office:body><office:spreadsheet><table:table table:name="{}">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#,
        xml_escape(title)
    );
    opendocument("application/vnd.oasis.opendocument.spreadsheet", &content)
}

fn epub(title: &str, paras: &[&str]) -> Result<Vec<u8>> {
    let container = r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    let mut chapters = Vec::new();
    for (n, chunk) in paras.chunks(8).enumerate() {
        let mut body = format!("<h1>{}, chapter {}</h1>", xml_escape(title), n + 1);
        for p in chunk {
            let _ = write!(body, "<p>{}</p>", xml_escape(p));
        }
        chapters.push((
            format!("OEBPS/ch{}.xhtml", n + 1),
            format!(
                r#"{XML_DECL}<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{}</title></head><body>{body}</body></html>"#,
                xml_escape(title)
            ),
        ));
    }
    let (mut manifest, mut spine) = (String::new(), String::new());
    for n in 1..=chapters.len() {
        let _ = write!(
            manifest,
            r#"<item id="c{n}" href="ch{n}.xhtml" media-type="application/xhtml+xml"/>"#
        );
        let _ = write!(spine, r#"<itemref idref="c{n}"/>"#);
    }
    let opf = format!(
        r#"{XML_DECL}<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{}</dc:title></metadata><manifest>{manifest}</manifest><spine>{spine}</spine></package>"#,
        xml_escape(title)
    );
    let mut entries: Vec<(&str, &str)> = vec![
        ("mimetype", "application/epub+zip"),
        ("META-INF/container.xml", container),
        ("OEBPS/content.opf", &opf),
    ];
    entries.extend(chapters.iter().map(|(n, x)| (n.as_str(), x.as_str())));
    zip_of(&entries)
}

fn html(title: &str, paras: &[&str]) -> String {
    let t = xml_escape(title);
    let mut s = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>p {{ margin: 0 }}</style></head><body>\n<h1>{t}</h1>\n"
    );
    for p in paras {
        let _ = writeln!(s, "<p>{}</p>", xml_escape(p));
    }
    s.push_str("</body></html>\n");
    s
}

/// A plain-text mail, body lines wrapped under 78 characters (RFC 5322).
fn eml(title: &str, text: &str) -> String {
    let mut s = format!(
        "From: Bench Writer <writer@example.org>\r\nTo: Bench Reader <reader@example.org>\r\nSubject: {title}\r\nDate: Tue, 1 Jul 2025 10:52:37 +0000\r\nMessage-ID: <{}@bench.example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        title.replace(' ', ".")
    );
    for line in text.lines() {
        let mut cur = 0;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            if cur > 0 && cur + 1 + word.len() > 76 {
                s.push_str("\r\n");
                cur = 0;
            } else if cur > 0 {
                s.push(' ');
                cur += 1;
            }
            s.push_str(word);
            cur += word.len();
        }
        s.push_str("\r\n");
    }
    s
}

/// `s` escaped for RTF text: `\`, `{`, `}` escaped, non-ASCII as `\uN?`.
fn rtf_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{}?", *u as i16);
                }
            }
        }
    }
    out
}

fn rtf(title: &str, paras: &[&str]) -> String {
    let mut s = format!(
        "{{\\rtf1\\ansi\\deff0{{\\fonttbl{{\\f0 Times New Roman;}}}}{{\\info{{\\title {}}}}}\n\\f0\\fs24 {{\\b {}}}\\par\n",
        rtf_escape(title),
        rtf_escape(title)
    );
    for p in paras {
        let _ = writeln!(s, "{}\\par", rtf_escape(p));
    }
    s.push('}');
    s
}

/// A PDF whose text layer holds `text`, wrapped at 90 characters, 50 lines a
/// page (Courier, WinAnsi; the prose is ASCII). Each line is its own text
/// object, so extractors see a break between lines.
fn pdf(text: &str) -> Result<Vec<u8>> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut lines = Vec::new();
    for para in text.lines() {
        let mut cur = String::new();
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            if !cur.is_empty() && cur.len() + 1 + word.len() > 90 {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        if !cur.is_empty() {
            lines.push(cur);
        }
    }
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids: Vec<Object> = Vec::new();
    for page in lines.chunks(50) {
        let mut operations = Vec::new();
        for (k, line) in page.iter().enumerate() {
            operations.extend([
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 9.into()]),
                Operation::new("Td", vec![40.into(), (800 - 15 * k as i64).into()]),
                Operation::new("Tj", vec![Object::string_literal(line.as_str())]),
                Operation::new("ET", vec![]),
            ]);
        }
        let content = Content { operations }.encode().context("encoding a PDF page")?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        kids.push(
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            })
            .into(),
        );
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).context("saving the PDF")?;
    Ok(out)
}

#[cfg(test)]
mod tests;
