//! Every fixture is built here, in code: zips with the `zip` crate, a PDF with `lopdf`.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::extract::{self, Extracted};

/// A zip archive of `(name, content)` entries, deflated.
fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        w.start_file(*name, options).expect("start entry");
        w.write_all(content.as_bytes()).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

fn text_of(ext: &str, bytes: &[u8]) -> String {
    match extract::extract(Some(ext), bytes) {
        Extracted::Text(t) => t,
        other => panic!("{ext}: {other:?}"),
    }
}

#[test]
fn docx_paragraphs_headers_and_entities() {
    let doc = r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
        <w:p><w:r><w:t>Quarterly</w:t></w:r><w:r><w:t xml:space="preserve"> zephyrine report</w:t></w:r></w:p>
        <w:p><w:r><w:t>Fish &amp; chips</w:t><w:tab/><w:t>café</w:t></w:r></w:p>
        <w:p><w:r><w:delText>deletedword</w:delText></w:r></w:p></w:body></w:document>"#;
    let header = r#"<w:hdr xmlns:w="x"><w:p><w:r><w:t>Confidential header</w:t></w:r></w:p></w:hdr>"#;
    let bytes = zip_of(&[("word/document.xml", doc), ("word/header1.xml", header)]);
    let text = text_of("docx", &bytes);
    assert!(text.contains("Quarterly zephyrine report\n"), "{text:?}");
    assert!(text.contains("Fish & chips\tcafé"), "{text:?}");
    assert!(text.contains("Confidential header"), "{text:?}");
    assert!(!text.contains("deletedword"), "{text:?}");
}

#[test]
fn pptx_slides_in_order() {
    let slide = |t: &str| {
        format!(
            r#"<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>{t}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
        )
    };
    let (s2, s10) = (slide("second slide"), slide("tenth slide"));
    let bytes = zip_of(&[("ppt/slides/slide10.xml", &s10), ("ppt/slides/slide2.xml", &s2)]);
    let text = text_of("pptx", &bytes);
    let (a, b) = (text.find("second").expect("s2"), text.find("tenth").expect("s10"));
    assert!(a < b, "{text:?}");
}

#[test]
fn odt_and_odp_text() {
    let content = r#"<office:document-content xmlns:office="o" xmlns:text="t"><office:automatic-styles/><office:body><office:text>
        <text:h>Heading quillwort</text:h><text:p>One<text:s/>two<text:tab/>three<text:line-break/>four</text:p></office:text></office:body></office:document-content>"#;
    let bytes = zip_of(&[
        ("mimetype", "application/vnd.oasis.opendocument.text"),
        ("content.xml", content),
    ]);
    let text = text_of("odt", &bytes);
    assert!(text.contains("Heading quillwort\n"), "{text:?}");
    assert!(text.contains("One two\tthree\nfour"), "{text:?}");
    assert!(text_of("odp", &bytes).contains("quillwort"));
}

#[test]
fn spreadsheets_have_sheet_names_and_cells() {
    let ods = r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>
        <table:table table:name="Budget2026"><table:table-row><table:table-cell office:value-type="string"><text:p>marmoset</text:p></table:table-cell><table:table-cell office:value-type="float" office:value="42"><text:p>42</text:p></table:table-cell></table:table-row></table:table>
        </office:spreadsheet></office:body></office:document-content>"#;
    let manifest = r#"<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    let bytes = zip_of(&[
        ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", manifest),
        ("content.xml", ods),
    ]);
    let text = text_of("ods", &bytes);
    assert!(text.contains("Budget2026"), "{text:?}");
    assert!(text.contains("marmoset\t42"), "{text:?}");

    let ct = r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    let wb = r#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Inventory" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    let wb_rels = r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;
    let shared = r#"<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>pangolin</t></si></sst>"#;
    let sheet = r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1"><v>7</v></c></row></sheetData></worksheet>"#;
    let bytes = zip_of(&[
        ("[Content_Types].xml", ct),
        ("_rels/.rels", rels),
        ("xl/workbook.xml", wb),
        ("xl/_rels/workbook.xml.rels", wb_rels),
        ("xl/sharedStrings.xml", shared),
        ("xl/worksheets/sheet1.xml", sheet),
    ]);
    let text = text_of("xlsx", &bytes);
    assert!(text.contains("Inventory"), "{text:?}");
    assert!(text.contains("pangolin\t7"), "{text:?}");
}

#[test]
fn epub_in_spine_order() {
    let container = r#"<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    let opf = r#"<package xmlns="http://www.idpf.org/2007/opf"><manifest><item id="b" href="b.xhtml" media-type="application/xhtml+xml"/><item id="a" href="text/a.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="a"/><itemref idref="b"/></spine></package>"#;
    let a = "<html><head><style>.x{}</style></head><body><h1>Chapter one</h1><p>The axolotl swam.</p></body></html>";
    let b = "<html><body><p>Chapter two &amp; more</p><script>hiddenscript()</script></body></html>";
    let bytes = zip_of(&[
        ("mimetype", "application/epub+zip"),
        ("META-INF/container.xml", container),
        ("OEBPS/content.opf", opf),
        ("OEBPS/b.xhtml", b),
        ("OEBPS/text/a.xhtml", a),
    ]);
    let text = text_of("epub", &bytes);
    let (one, two) = (
        text.find("axolotl").expect("a"),
        text.find("Chapter two & more").expect("b"),
    );
    assert!(one < two, "{text:?}");
    assert!(!text.contains("hiddenscript") && !text.contains('<'), "{text:?}");
}

#[test]
fn eml_headers_and_body() {
    let eml = "From: Ada Lovelace <ada@example.org>\r\nTo: Charles <cb@example.org>\r\nSubject: =?UTF-8?Q?R=C3=A9sum=C3=A9_of_the_engine?=\r\nDate: Tue, 1 Jul 2025 10:52:37 +0200\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe analytical engine weaves algebraic patterns.\r\n";
    let text = text_of("eml", eml.as_bytes());
    for want in [
        "Ada Lovelace",
        "ada@example.org",
        "cb@example.org",
        "Résumé of the engine",
        "2025-07-01",
        "algebraic patterns",
    ] {
        assert!(text.contains(want), "{want}: {text:?}");
    }
}

#[test]
fn rtf_text_with_escapes() {
    let rtf = br"{\rtf1\ansi\deff0{\fonttbl{\f0 Times;}}{\colortbl;\red0\green0\blue0;}{\*\generator Hand;}{\info{\title secret title}}
\f0\fs24 Caf\'e9 ocelot\par
Second \b bold\b0  line\tab end \u8364? euro\par}";
    let text = text_of("rtf", rtf);
    assert!(text.contains("Café ocelot\n"), "{text:?}");
    assert!(text.contains("Second bold line\tend € euro"), "{text:?}");
    assert!(
        !text.contains("Times") && !text.contains("secret") && !text.contains("Hand"),
        "{text:?}"
    );
}

#[path = "../../tests/helper/pdf.rs"]
mod pdf_fixture;
use pdf_fixture::pdf as pdf_of;

#[test]
fn pdf_text_layer() {
    let bytes = pdf_of("Invoice for the kinkajou project");
    let text = text_of("pdf", &bytes);
    assert!(text.contains("kinkajou"), "{text:?}");
}

#[test]
fn hostile_documents_are_refused_with_a_reason() {
    let failed = |ext: &str, bytes: &[u8]| match extract::extract_isolated(
        Some(ext),
        bytes.to_vec(),
        Duration::from_secs(30),
    ) {
        Extracted::Failed(reason) => reason,
        other => panic!("{ext}: {other:?}"),
    };
    // A truncated PDF, a PDF with no text, garbage "documents".
    let pdf = pdf_of("truncated");
    let reason = failed("pdf", &pdf[..pdf.len() / 3]);
    assert!(!reason.is_empty());
    assert!(failed("pdf", &pdf_of("")).contains("no text layer"));
    assert!(failed("docx", b"not a zip at all").contains("zip"));
    assert!(failed("xlsx", b"PK\x03\x04 broken").contains("zip"));
    assert!(failed("rtf", b"plain words").contains("RTF"));
    let nested = format!(
        "%PDF-1.5\n1 0 obj\n{}{}\nendobj\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(
        !failed("pdf", nested.as_bytes()).is_empty(),
        "arrays nested 100 000 deep"
    );
    // Deep nesting.
    let deep = format!(
        "<w:document xmlns:w=\"w\">{}{}</w:document>",
        "<w:x>".repeat(5_000),
        "</w:x>".repeat(5_000)
    );
    assert!(failed("docx", &zip_of(&[("word/document.xml", &deep)])).contains("nested deeper"));
    assert!(failed("rtf", format!("{{\\rtf1{}", "{".repeat(5_000)).as_bytes()).contains("nested deeper"));
    assert!(failed("odt", &zip_of(&[("content.xml", "<a><b></a>")])).contains("malformed XML"));
    // An entry that unpacks past the budget (its declared size is not trusted).
    let big = zip_of(&[("word/document.xml", &"<w:t>x</w:t>".repeat(1_000))]);
    let mut archive = open_zip(&big).expect("open");
    let mut budget = 100;
    let err = read_entry(&mut archive, "word/document.xml", &mut budget).expect_err("over budget");
    assert!(err.contains("zip bomb"), "{err}");
}

#[test]
fn a_panicking_or_hanging_parser_is_abandoned() {
    let out = extract::run_isolated(|| panic!("boom in parser"), Duration::from_secs(30));
    assert_eq!(
        out,
        Extracted::Failed("the parser crashed: boom in parser".into())
    );
    let out = extract::run_isolated(
        || loop {
            std::thread::park();
        },
        Duration::from_millis(50),
    );
    assert!(
        matches!(&out, Extracted::Failed(r) if r.contains("longer than")),
        "{out:?}"
    );
}

/// A zip bomb: one MiB of zeros, compressed once, then copied raw under 130 names, so the
/// archive is small but unpacks to 130 MiB. Refused with a reason as a DOCX and as an
/// XLSX (calamine never sees it), without unpacking it.
#[test]
fn a_zip_bomb_is_refused_with_a_reason() {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("zeros", options).expect("start entry");
    w.write_all(&vec![0u8; 1 << 20]).expect("zeros");
    let one = w.finish().expect("finish").into_inner();
    let mut src = zip::ZipArchive::new(Cursor::new(one)).expect("reopen");
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("word/document.xml", options).expect("start entry");
    w.write_all(b"<w:document xmlns:w=\"w\"><w:t>bomb</w:t></w:document>")
        .expect("document");
    for i in 0..130 {
        let entry = src.by_index(0).expect("zeros entry");
        w.raw_copy_file_rename(entry, format!("xl/worksheets/sheet{i}.xml"))
            .expect("raw copy");
    }
    let bomb = w.finish().expect("finish").into_inner();
    assert!(bomb.len() < 1 << 20, "small on disk: {} bytes", bomb.len());
    for ext in ["docx", "xlsx", "pptx", "odt", "epub"] {
        match extract::extract_isolated(Some(ext), bomb.clone(), Duration::from_secs(60)) {
            Extracted::Failed(reason) => assert!(reason.contains("zip bomb"), "{ext}: {reason}"),
            other => panic!("{ext}: {other:?}"),
        }
    }
}
