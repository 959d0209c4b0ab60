//! Documents and text encodings end to end: fixtures written here, indexed by the real
//! worker, found by search with the extension as `filetype`; counts by skip reason.

use std::io::Write;

use memory_indexer::filetree::read_file;

use crate::helper::{Env, add, completed, files_found, no_watch, search, write};

/// `printf 'Widgetry settings\r\nsecond line narwhalx\r\n' | iconv -t utf-16le`, after
/// an FF FE byte-order mark (issue 11).
fn utf16le_with_bom(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in s.encode_utf16() {
        out.extend(u.to_le_bytes());
    }
    out
}

fn docx(paragraph: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("word/document.xml", options).expect("entry");
    let xml = format!(
        r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>{paragraph}</w:t></w:r></w:p></w:body></w:document>"#
    );
    w.write_all(xml.as_bytes()).expect("write");
    w.finish().expect("zip").into_inner()
}

/// A one-page PDF whose text layer says `words` (Courier, WinAnsi), written with lopdf.
fn pdf(words: &str) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new("Tj", vec![Object::string_literal(words)]),
            Operation::new("ET", vec![]),
        ],
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().expect("encode")));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save pdf");
    out
}

#[test]
fn every_encoding_and_document_is_searchable() {
    let env = Env::new();
    let root = env.tree();
    write(
        &root,
        "win/settings.ini",
        utf16le_with_bom("Widgetry settings\r\nsecond line narwhalx\r\n"),
    );
    let (latin, _, _) = encoding_rs::WINDOWS_1252.encode("Le café crème de Noël, déjà goûté\n");
    write(&root, "latin.txt", &latin);
    write(
        &root,
        "bom8.txt",
        [&[0xEF, 0xBB, 0xBF][..], "tapirusx here".as_bytes()].concat(),
    );
    write(&root, "report.docx", docx("Quarterly zephyrine figures"));
    write(
        &root,
        "mail.eml",
        "From: Ada <ada@example.org>\r\nTo: cb@example.org\r\nSubject: Engine caracalx\r\nDate: Tue, 1 Jul 2025 10:52:37 +0200\r\n\r\nBody mentions quetzalx.\r\n",
    );
    write(&root, "invoice.pdf", pdf("Invoice for the kinkajoux project"));
    let whole = pdf("never seen");
    write(&root, "broken.pdf", &whole[..whole.len() / 3]); // truncated
    let deep = format!("{}deepword{}", "<w:t>".repeat(10_000), "</w:t>".repeat(10_000));
    write(&root, "deep.docx", docx(&deep)); // XML nested 10 000 deep
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (source, job) = add(&ix, &root);
    let j = completed(&ix, job);
    assert_eq!((j.files_indexed, j.files_skipped), (6, 2), "{j:?}");
    assert_eq!(j.skipped.extraction_failed, 2, "{j:?}");
    assert!(files_found(&store, "deepword").is_empty());
    let s = store.get_source(&source.id).expect("get").expect("known");
    assert_eq!(s.files_indexed, j.files_indexed);

    assert_eq!(files_found(&store, "narwhalx").len(), 1);
    assert_eq!(files_found(&store, "tapirusx").len(), 1);
    for accented in ["café", "crème", "Noël", "goûté"] {
        let hits = search(&store, "general", accented, None);
        assert_eq!(hits.len(), 1, "{accented}");
        assert!(hits[0].text.contains(accented), "{accented}: {:?}", hits[0].text);
    }
    let hits = search(&store, "general", "kinkajoux", None);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].filetype.as_deref(), Some("pdf"));
    let hits = search(&store, "general", "zephyrine", None);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].filetype.as_deref(), Some("docx"));
    let hits = search(&store, "general", "caracalx", None);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].filetype.as_deref(), Some("eml"));
    assert!(hits[0].text.contains("ada@example.org"), "{:?}", hits[0].text);
    assert_eq!(files_found(&store, "quetzalx").len(), 1);

    // The file tree decodes and names the encoding.
    let f = read_file(&root, "win/settings.ini", 65_536).expect("read");
    assert!(!f.is_binary);
    assert_eq!((f.encoding, f.detected_encoding), ("utf-8", Some("UTF-16LE")));
    assert_eq!(
        f.content.as_deref(),
        Some("Widgetry settings\r\nsecond line narwhalx\r\n")
    );
    let f = read_file(&root, "latin.txt", 65_536).expect("read");
    assert_eq!(f.detected_encoding, Some("windows-1252"));
    assert!(f.content.is_some_and(|c| c.contains("déjà")));
    write(&root, "blob.bin2", b"\x00\x01\x02binary");
    let f = read_file(&root, "blob.bin2", 100).expect("read");
    assert!(f.is_binary && f.content.is_none() && f.detected_encoding.is_none());
}
