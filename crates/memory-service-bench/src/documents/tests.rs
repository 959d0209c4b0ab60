//! The generator's output read back: deterministic, every kind parses and
//! holds its marker (through the service's own extractor), escaping is right.

use std::io::Read;

use memory_indexer::extract::{Extracted, extract};

use super::*;

#[test]
fn deterministic_for_a_seed_every_kind_within_the_size() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let ta = write_documents_tree(a.path(), 400_000, 7).unwrap();
    let tb = write_documents_tree(b.path(), 400_000, 7).unwrap();
    let tc = write_documents_tree(c.path(), 400_000, 8).unwrap();
    assert!(
        ta.bytes >= 400_000 && ta.bytes < 400_000 + 200_000,
        "{} bytes",
        ta.bytes
    );
    assert_eq!(ta.files.len(), tb.files.len());
    for (x, y) in ta.files.iter().zip(&tb.files) {
        assert_eq!(x.rel, y.rel);
        let (bx, by) = (
            std::fs::read(a.path().join(&x.rel)).unwrap(),
            std::fs::read(b.path().join(&y.rel)).unwrap(),
        );
        assert!(bx == by, "{} differs between two runs of seed 7", x.rel.display());
        assert_eq!(bx.len() as u64, x.bytes);
    }
    assert_ne!(ta.files[0].text, tc.files[0].text, "another seed, other prose");
    for kind in KINDS {
        assert!(ta.files.iter().any(|f| f.kind == *kind), "no {kind}");
    }
    assert_eq!(
        ta.text_bytes,
        ta.files.iter().map(|f| f.text.len() as u64).sum::<u64>()
    );
}

/// Every kind, read back by the service's own extractor, holds its marker
/// and the text's last words.
#[test]
fn every_kind_extracts_with_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let tree = write_documents_tree(dir.path(), 300_000, 3).unwrap();
    for kind in KINDS {
        let f = tree.files.iter().find(|f| f.kind == *kind).unwrap();
        let bytes = std::fs::read(dir.path().join(&f.rel)).unwrap();
        let text = match kind {
            // Plain formats are indexed as they are.
            &"md" | &"txt" => String::from_utf8(bytes).unwrap(),
            _ => match extract(Some(kind), &bytes) {
                Extracted::Text(t) => t,
                other => panic!("{kind}: {other:?}"),
            },
        };
        assert!(
            text.contains(&f.marker),
            "{kind}: no marker {} in {text:.300}",
            f.marker
        );
        let last = f.text.split_whitespace().last().unwrap();
        assert!(text.contains(last), "{kind}: the end {last:?} is missing");
    }
}

#[test]
fn pdf_pages_hold_the_text_layer() {
    let mut rng = Rng::new(5);
    let mut text = String::new();
    corpus::plain_text(&mut rng, &mut text, 12_000, "zqd7654321");
    let bytes = encode("pdf", "t", &text).unwrap();
    let doc = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = doc.get_pages().into_keys().collect();
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert!(doc.extract_text(&pages[..1]).unwrap().contains("zqd7654321"));
    let last_word = text.split_whitespace().last().unwrap();
    assert!(
        doc.extract_text(&pages[pages.len() - 1..])
            .unwrap()
            .contains(last_word)
    );
}

#[test]
fn zips_hold_their_xml_escaped() {
    let paras = ["fish & chips <b> \"quoted\" it's", "zqd0000001 second"];
    let bytes = docx("Title & more", &paras).unwrap();
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut xml = String::new();
    z.by_name("word/document.xml")
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    assert!(
        xml.contains("fish &amp; chips &lt;b&gt; &quot;quoted&quot; it&apos;s"),
        "{xml}"
    );
    assert!(
        xml.contains("Title &amp; more") && xml.contains("zqd0000001"),
        "{xml}"
    );

    let bytes = epub("e", &paras).unwrap();
    let z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(
        z.name_for_index(0).unwrap().unwrap(),
        "mimetype",
        "mimetype first"
    );
    assert!(z.index_for_name("OEBPS/ch1.xhtml").is_some());
}

#[test]
fn rtf_and_eml_are_escaped_and_wrapped() {
    assert_eq!(rtf_escape(r"a\b{c}é"), r"a\\b\{c\}\u233?");
    let long = "word ".repeat(100);
    let mail = eml("s", &long);
    assert!(mail.split("\r\n").all(|l| l.len() <= 998), "line too long");
    assert!(mail.split("\r\n").skip(9).all(|l| l.len() <= 76), "{mail}");
}
