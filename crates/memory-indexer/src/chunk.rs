//! The pipeline's chunk stage: splitting message and file text into chunks with character
//! offsets (sizes: see [`split`]). Pure and total: it never fails or panics on any input
//! (the stages rely on that), and touches no database. Offsets count Unicode scalar
//! values, like Python's `str`. The chat stage hands [`split`] to the store, which runs it
//! inside the writer's transaction on the message's newest text; the file stage calls it
//! on its own threads.

pub use memory_store::chunk::Chunk;

/// Largest number of characters in a chunk (before the tail merge).
pub const TARGET_CHARS: usize = 1000;
/// A cut is searched for no earlier than this many characters into the window.
pub const MIN_BREAK_CHARS: usize = 600;
/// A final piece shorter than this is merged into the previous chunk.
pub const MIN_TAIL_CHARS: usize = 200;

/// Splits `text` into chunks; a text that is empty or only whitespace gives none.
///
/// Sizes: a chunk holds at most [`TARGET_CHARS`] characters, except the last which may
/// hold up to `TARGET_CHARS + MIN_TAIL_CHARS - 1` because a tail shorter than
/// [`MIN_TAIL_CHARS`] is merged into the chunk before it (no runs of tiny tails). A cut is
/// placed at the latest paragraph break, else line break, else sentence end, else
/// whitespace found in the last 40 % of the window; only when there is none is the text
/// cut mid-word. Chunks do not overlap and together cover the whole text.
pub fn split(text: &str) -> Vec<Chunk> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    // Byte offset of every character, plus the end, for slicing.
    let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    bytes.push(text.len());

    let n = chars.len();
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    while n - pos > TARGET_CHARS {
        let hard = pos + TARGET_CHARS;
        let cut = find_cut(&chars, pos + MIN_BREAK_CHARS, hard).unwrap_or(hard);
        bounds.push((pos, cut));
        pos = cut;
    }
    if pos < n {
        match bounds.last_mut() {
            Some(last) if n - pos < MIN_TAIL_CHARS => last.1 = n,
            _ => bounds.push((pos, n)),
        }
    }
    bounds
        .into_iter()
        .map(|(s, e)| Chunk {
            start_char: s,
            end_char: e,
            text: text[bytes[s]..bytes[e]].to_string(),
        })
        .collect()
}

/// The best cut position `p` in `lo..=hi` (the chunk ends before `chars[p]`), by
/// preference: after a blank line, after a newline, after sentence punctuation followed
/// by whitespace, after any whitespace. `None` if there is no such position.
fn find_cut(chars: &[char], lo: usize, hi: usize) -> Option<usize> {
    let hi = hi.min(chars.len());
    let lo = lo.max(2);
    if lo > hi {
        return None;
    }
    let at = |p: usize| chars[p - 1];
    let rules: [&dyn Fn(usize) -> bool; 4] = [
        &|p| at(p) == '\n' && chars[p - 2] == '\n',
        &|p| at(p) == '\n',
        &|p| at(p).is_whitespace() && matches!(chars[p - 2], '.' | '!' | '?' | '。' | '！' | '？'),
        &|p| at(p).is_whitespace(),
    ];
    rules.iter().find_map(|rule| (lo..=hi).rev().find(|&p| rule(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_cover(text: &str, chunks: &[Chunk]) {
        let chars: Vec<char> = text.chars().collect();
        let mut expect = 0;
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.start_char, expect, "chunk {i} starts where the last ended");
            assert!(c.end_char > c.start_char);
            let slice: String = chars[c.start_char..c.end_char].iter().collect();
            assert_eq!(slice, c.text);
            assert!(c.end_char - c.start_char < TARGET_CHARS + MIN_TAIL_CHARS);
            expect = c.end_char;
        }
        assert_eq!(expect, chars.len());
    }

    #[test]
    fn empty_and_blank_give_nothing() {
        assert!(split("").is_empty());
        assert!(split(" \n\t ").is_empty());
    }

    #[test]
    fn short_text_is_one_chunk() {
        let c = split("hello world");
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start_char, c[0].end_char), (0, 11));
    }

    #[test]
    fn long_text_cuts_at_words_and_covers_everything() {
        let text = "lorem ipsum dolor sit amet. ".repeat(300);
        let chunks = split(&text);
        check_cover(&text, &chunks);
        assert!(chunks.len() >= 8);
        for c in &chunks[..chunks.len() - 1] {
            assert!(
                c.text.ends_with(' '),
                "cut at whitespace: {:?}",
                &c.text[c.text.len() - 5..]
            );
        }
    }

    #[test]
    fn short_tail_is_merged() {
        let text = "x".repeat(TARGET_CHARS + 50);
        let chunks = split(&text);
        assert_eq!(chunks.len(), 1);
        check_cover(&text, &chunks);
        let text = "x".repeat(TARGET_CHARS + MIN_TAIL_CHARS + 1);
        let chunks = split(&text);
        assert_eq!(chunks.len(), 2);
        check_cover(&text, &chunks);
    }

    #[test]
    fn unicode_offsets_are_characters() {
        let text = "é😀中".repeat(1500);
        let chunks = split(&text);
        check_cover(&text, &chunks);
        let text = "第一段。\n\n".repeat(400);
        check_cover(&text, &split(&text));
    }

    #[test]
    fn prefers_paragraphs() {
        let para = format!("{}\n\n", "word ".repeat(150)); // 752 chars
        let text = para.repeat(3);
        let chunks = split(&text);
        check_cover(&text, &chunks);
        assert!(chunks[0].text.ends_with("\n\n"));
    }

    #[test]
    fn the_stores_estimate_assumes_this_chunk_size() {
        assert_eq!(memory_store::chunk::ESTIMATE_CHARS_PER_CHUNK, TARGET_CHARS);
    }

    proptest::proptest! {
        /// Any text: chunks cover it exactly, in order, within the size bounds, and a
        /// text that is not blank gives at least one chunk.
        #[test]
        fn chunks_cover_any_text(text in "(?s)(\\PC|\\s|\\p{Han}){0,3000}") {
            let chunks = split(&text);
            if text.trim().is_empty() {
                proptest::prop_assert!(chunks.is_empty());
            } else {
                proptest::prop_assert!(!chunks.is_empty());
                check_cover(&text, &chunks);
            }
        }
    }
}
