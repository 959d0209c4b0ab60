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

#[path = "../helper/pdf.rs"]
mod pdf_fixture;
use pdf_fixture::pdf;

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
