//! Words as search sees them, in every script. FTS5's `unicode61` tokenizer splits at
//! spaces and punctuation only, so a Chinese, Japanese or Thai clause (no spaces) would
//! be one token and no word inside it could ever be found, and `SessionCache` would be
//! one token that `session cache` never matches. So chunk text is rewritten into
//! *index terms* before FTS5 sees it (schema: `memory_terms(text)` feeds the FTS table),
//! and queries are rewritten the same way:
//!
//! - Runs of scripts written without spaces (Han, Hiragana, Katakana, Hangul, Thai, Lao,
//!   Khmer, Myanmar) become overlapping character bigrams, as Lucene's `CJKAnalyzer`
//!   (`CJKBigramFilter`) does, followed by the run's single characters (so a one-character
//!   query still matches). A query run of two or more characters becomes the *phrase* of
//!   its bigrams: `数据库` is `"数据 据库"`, which matches only where the characters stand
//!   together.
//! - Other words are kept whole and, when they are `camelCase`, `PascalCase` or mix
//!   letters and digits, followed by their parts (Lucene's `WordDelimiterGraphFilter`
//!   with `preserveOriginal`). `snake_case` needs nothing: `_` already separates words.
//! - Latin text is otherwise left to FTS5 (`porter unicode61 remove_diacritics 2`):
//!   case and diacritics folded, English stemming, exactly as before.
//!
//! [`normalize`] gives the same folding in Rust, used to tell which query words a hit
//! holds (the coverage part of the score).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Characters of a single word beyond this many are ignored (queries and index alike).
pub const MAX_TERM_CHARS: usize = 64;

/// Whether `c` belongs to a script written without spaces between words.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF          // Thai, Lao
        | 0x1000..=0x109F        // Myanmar
        | 0x1780..=0x17FF        // Khmer
        | 0x1100..=0x11FF        // Hangul Jamo
        | 0x2E80..=0x2FDF        // CJK radicals
        | 0x3040..=0x30FF        // Hiragana, Katakana
        | 0x3100..=0x312F        // Bopomofo
        | 0x3130..=0x318F        // Hangul compatibility Jamo
        | 0x31F0..=0x31FF        // Katakana phonetic extensions
        | 0x3400..=0x4DBF        // CJK extension A
        | 0x4E00..=0x9FFF        // CJK unified ideographs
        | 0xA960..=0xA97F        // Hangul Jamo extended A
        | 0xAC00..=0xD7FF        // Hangul syllables and Jamo extended B
        | 0xF900..=0xFAFF        // CJK compatibility ideographs
        | 0xFF66..=0xFF9F        // half-width Katakana
        | 0x20000..=0x3FFFF      // CJK extensions B-H
    )
}

/// Whether `c` is part of a word (letters, digits, combining marks, unspaced scripts).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c) || is_unspaced(c)
}

/// One piece of a word: a run of one script class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A spaced-script word, with its `camelCase`/digit parts when it has more than one.
    Word {
        /// The word as written (truncated to [`MAX_TERM_CHARS`]).
        whole: String,
        /// Its parts, empty when the word has only one.
        parts: Vec<String>,
    },
    /// A run of an unspaced script, as characters.
    Unspaced(Vec<char>),
}

/// Splits text into pieces: words at spaces and punctuation, then at script changes.
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    for word in text.split(|c: char| !is_word_char(c)) {
        if word.is_empty() {
            continue;
        }
        let mut run = String::new();
        let mut run_unspaced = false;
        for c in word.chars() {
            let unspaced = is_unspaced(c);
            // A combining mark stays with the run it follows.
            if !run.is_empty() && unspaced != run_unspaced && !is_combining_mark(c) {
                out.push(piece(&run, run_unspaced));
                run.clear();
            }
            if run.is_empty() {
                run_unspaced = unspaced;
            }
            run.push(c);
        }
        if !run.is_empty() {
            out.push(piece(&run, run_unspaced));
        }
    }
    out
}

fn piece(run: &str, unspaced: bool) -> Piece {
    if unspaced {
        Piece::Unspaced(run.chars().collect())
    } else {
        let whole: String = run.chars().take(MAX_TERM_CHARS).collect();
        let parts = word_parts(&whole);
        Piece::Word {
            whole,
            parts: if parts.len() > 1 { parts } else { Vec::new() },
        }
    }
}

/// `SessionCache` → `Session`, `Cache`; `HTTPServer2` → `HTTP`, `Server`, `2`: splits at
/// a lower→upper change, before the last capital of a capital run followed by a lower
/// case letter, and at letter↔digit changes.
fn word_parts(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (a, b) = (chars[i - 1], chars[i]);
        let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
        let split = (a.is_lowercase() && b.is_uppercase())
            || (a.is_uppercase() && b.is_uppercase() && next_lower)
            || (a.is_numeric() != b.is_numeric() && (a.is_alphabetic() || b.is_alphabetic()));
        if split {
            parts.push(chars[start..i].iter().collect());
            start = i;
        }
    }
    parts.push(chars[start..].iter().collect());
    parts
}

/// Overlapping bigrams of an unspaced run (one-character runs give the character).
fn bigrams(run: &[char]) -> Vec<String> {
    if run.len() < 2 {
        return run.iter().map(|c| c.to_string()).collect();
    }
    run.windows(2).map(|w| w.iter().collect()).collect()
}

/// The text FTS5 indexes for a chunk: space-separated index terms (see the module doc).
/// Bigrams of a run stand at consecutive positions, so a query's bigram phrase matches.
pub fn index_terms(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let mut push = |t: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    };
    for p in pieces(text) {
        match p {
            Piece::Word { whole, parts } => {
                push(&whole);
                for part in &parts {
                    push(part);
                }
            }
            Piece::Unspaced(run) => {
                for b in bigrams(&run) {
                    push(&b);
                }
                if run.len() >= 2 {
                    for c in &run {
                        push(&c.to_string());
                    }
                }
            }
        }
    }
    out
}

/// One query term: a word, or the bigram phrase of an unspaced run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTerm {
    /// FTS tokens matched as a phrase (one for a word).
    pub tokens: Vec<String>,
    /// The term as [`normalize`]d, to compare with a hit's words.
    pub normalized: Vec<String>,
    /// Whether it is a common English function word (weighted low, dropped from the FTS
    /// expression when the query has other terms).
    pub stop_word: bool,
}

impl QueryTerm {
    /// The FTS5 phrase: every token quoted (user text is never syntax).
    pub fn phrase(&self) -> String {
        let inner: Vec<String> = self.tokens.iter().map(|t| t.replace('"', "\"\"")).collect();
        format!("\"{}\"", inner.join(" "))
    }
}

/// Splits a query into terms, without repeats, at most `max_terms`.
pub fn query_terms(query: &str, max_terms: usize) -> Vec<QueryTerm> {
    let mut out: Vec<QueryTerm> = Vec::new();
    for p in pieces(query) {
        let tokens = match p {
            Piece::Word { whole, .. } => vec![whole],
            Piece::Unspaced(run) => bigrams(&run),
        };
        let normalized: Vec<String> = tokens.iter().map(|t| normalize(t)).collect();
        if out.iter().any(|t| t.normalized == normalized) {
            continue;
        }
        let stop_word = normalized.len() == 1 && is_stop_word(&normalized[0]);
        out.push(QueryTerm {
            tokens,
            normalized,
            stop_word,
        });
        if out.len() == max_terms {
            break;
        }
    }
    out
}

/// Lower case, diacritics removed (NFD, combining marks dropped), and English words
/// stemmed (Snowball English, close to FTS5's `porter`), so `Colours` and `colour` and
/// `Ünïcödé` and `unicode` compare equal. Unspaced-script tokens are only lower-cased.
pub fn normalize(token: &str) -> String {
    let folded = fold(token);
    if folded.chars().all(|c| c.is_ascii_alphabetic()) {
        STEMMER.with(|s| s.stem(&folded).into_owned())
    } else {
        folded
    }
}

thread_local! {
    static STEMMER: rust_stemmers::Stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
}

/// Case and diacritics folded, not stemmed (ASCII fast path).
fn fold(token: &str) -> String {
    if token.is_ascii() {
        token.to_ascii_lowercase()
    } else {
        token
            .nfd()
            .filter(|c| !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .collect()
    }
}

/// Which of `wanted` (normalized tokens) occur among the words of `text`, normalized
/// the same way. Only words that can stem to a wanted token are stemmed: a stem is the
/// folded word or a prefix of it, but for its last letter (`happy` → `happi`).
pub fn tokens_present(
    text: &str,
    wanted: &std::collections::HashSet<&str>,
) -> std::collections::HashSet<String> {
    let mut found = std::collections::HashSet::new();
    let prefixes: Vec<&str> = wanted
        .iter()
        .map(|w| {
            let cut = w.char_indices().last().map_or(0, |(i, _)| i);
            if cut == 0 { *w } else { &w[..cut] }
        })
        .collect();
    let mut check = |token: &str| {
        let folded = fold(token);
        if prefixes.iter().any(|p| folded.starts_with(p)) {
            let n = normalize(token);
            if wanted.contains(n.as_str()) {
                found.insert(n);
            }
        }
    };
    for p in pieces(text) {
        match p {
            Piece::Word { whole, parts } => {
                check(&whole);
                for part in &parts {
                    check(part);
                }
            }
            Piece::Unspaced(run) => {
                for b in bigrams(&run) {
                    check(&b);
                }
            }
        }
    }
    found
}

/// English function words (the list of Lucene's `EnglishAnalyzer` plus pronouns,
/// auxiliaries and question words), compared after [`normalize`]. They carry little
/// meaning for ranking.
fn is_stop_word(normalized: &str) -> bool {
    const STOP: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
        "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
        "to", "was", "will", "with", "what", "when", "where", "which", "who", "whom", "why", "how", "did",
        "do", "does", "has", "have", "had", "i", "me", "my", "we", "our", "you", "your", "he", "him", "his",
        "she", "her", "its", "them", "been", "were", "would", "could", "should", "can", "about", "from",
        "so", "than", "too", "very", "just", "also", "some", "any", "all",
    ];
    static SET: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| STOP.iter().map(|w| normalize(w)).collect())
        .contains(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_runs_become_bigrams_then_characters() {
        assert_eq!(index_terms("东京"), "东京 东 京");
        assert_eq!(index_terms("猫"), "猫");
        assert_eq!(
            index_terms("步2 重跑gen-itgc后50条"),
            "步 2 重跑 重 跑 gen itgc 后 50 条"
        );
        assert_eq!(
            index_terms("東京都に住んでいます"),
            "東京 京都 都に に住 住ん んで でい いま ます 東 京 都 に 住 ん で い ま す"
        );
    }

    #[test]
    fn identifiers_keep_whole_and_parts() {
        assert_eq!(index_terms("SessionCache"), "SessionCache Session Cache");
        assert_eq!(index_terms("HTTPServer2 x"), "HTTPServer2 HTTP Server 2 x");
        assert_eq!(index_terms("snake_case"), "snake case");
        assert_eq!(index_terms("plain words"), "plain words");
        assert_eq!(index_terms("Ünïcödé"), "Ünïcödé");
    }

    #[test]
    fn thai_marks_stay_in_their_run() {
        // "ภาษาไทย" (Thai language): tone and vowel marks are not separators.
        let t = index_terms("ภาษาไทย");
        assert!(t.starts_with("ภา าษ ษา าไ ไท ทย"), "{t}");
        assert_eq!(pieces("ที่นี่").len(), 1);
    }

    #[test]
    fn query_terms_are_phrases_of_bigrams() {
        let q = query_terms("数据库 数据库 静默 SessionCache the", 32);
        let phrases: Vec<String> = q.iter().map(QueryTerm::phrase).collect();
        assert_eq!(
            phrases,
            ["\"数据 据库\"", "\"静默\"", "\"SessionCache\"", "\"the\""]
        );
        assert!(q[3].stop_word && !q[2].stop_word);
        assert_eq!(query_terms("a\"b", 32)[1].phrase(), "\"b\"");
        assert_eq!(query_terms(&"w ".repeat(100), 32).len(), 1);
        let many = (0..100).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(query_terms(&many, 32).len(), 32);
        assert!(query_terms("\"*-:^()", 32).is_empty());
    }

    #[test]
    fn normalization_folds_case_diacritics_and_stems() {
        assert_eq!(normalize("Colours"), normalize("colour"));
        assert_eq!(normalize("Ünïcödé"), "unicod");
        assert_eq!(normalize("Deploying"), normalize("deploy"));
        let session = normalize("session");
        let wanted = [session.as_str(), "sessioncach", "cold"].into_iter().collect();
        let found = tokens_present("My SessionCache is warm", &wanted);
        assert!(found.contains(&session) && found.contains("sessioncach"));
        assert!(!found.contains("cold"));
        let happy = normalize("happy");
        let wanted = [happy.as_str()].into_iter().collect();
        assert!(tokens_present("So HAPPY today", &wanted).contains(&happy));
    }
}
