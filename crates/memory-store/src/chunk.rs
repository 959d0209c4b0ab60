//! A chunk as the store keeps it: a piece of a message's or a file's text with its
//! character offsets. How text is split is the indexing pipeline's business
//! (`memory_indexer::chunk`); the store receives chunks (files), or for chat a
//! [`Splitter`] that it runs inside the writer's transaction, so the text split is the
//! message's newest.

/// One piece of a text: `[start_char, end_char)` in characters (Unicode scalar values),
/// and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// First character, inclusive.
    pub start_char: usize,
    /// Last character, exclusive.
    pub end_char: usize,
    /// The characters of `[start_char, end_char)`.
    pub text: String,
}

/// Splits a text into chunks that cover it in order (empty for a blank text); total:
/// it never fails or panics.
pub type Splitter = fn(&str) -> Vec<Chunk>;

/// Characters per chunk assumed for a chat job's `estimated_chunks` (and so its
/// `computed_timeout`): the pipeline's chunk size (`memory_indexer::chunk::TARGET_CHARS`,
/// which a test there keeps equal to this).
pub const ESTIMATE_CHARS_PER_CHUNK: usize = 1000;

/// How many chunks a text of `chars` characters will roughly produce (at least 1).
pub(crate) fn estimate(chars: usize) -> usize {
    chars.div_ceil(ESTIMATE_CHARS_PER_CHUNK).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_rounds_up() {
        assert_eq!(estimate(0), 1);
        assert_eq!(estimate(1000), 1);
        assert_eq!(estimate(1001), 2);
    }
}
