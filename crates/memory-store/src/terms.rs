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

/// Whether FTS5's `unicode61` tokenizer keeps `c` in a token: its default token
/// categories are `L* N* Co` (SQLite's fts5 documentation, "Unicode61 Tokenizer").
/// Combining marks are not among them, so a run of marks alone (e.g. a Malayalam vowel
/// sign without its consonant) is no token there and must be no term here.
fn is_fts_token_char(c: char) -> bool {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
            | G::PrivateUse
    )
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
                push_piece(&mut out, &run, run_unspaced);
                run.clear();
            }
            if run.is_empty() {
                run_unspaced = unspaced;
            }
            run.push(c);
        }
        if !run.is_empty() {
            push_piece(&mut out, &run, run_unspaced);
        }
    }
    out
}

/// Adds the piece of `run`, unless FTS5 would find no token in it (marks alone).
fn push_piece(out: &mut Vec<Piece>, run: &str, unspaced: bool) {
    if run.chars().any(is_fts_token_char) {
        out.push(piece(run, unspaced));
    }
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

/// Calls `f` with each token of `text`'s index stream, in order: a word, then its
/// identifier parts; for an unspaced run (CJK, Thai, ...) its bigrams, then, when it
/// has two characters or more, each character. [`index_terms`] writes this stream
/// for FTS5 and [`term_frequencies`] counts over it, so the two always agree.
///
/// It runs over every chunk of every indexed file (an indexer worker computes the terms
/// of about 50 MB of source files in under a second on this machine, against 1.6 s when
/// every word was collected into its own `String`): ASCII words, most of what people
/// index, are cut without allocating; any other word goes through [`pieces`].
fn for_each_index_token(text: &str, mut f: impl FnMut(&str)) {
    for word in text.split(|c: char| !is_word_char(c)) {
        if word.is_empty() {
            continue;
        }
        if word.is_ascii() {
            ascii_word_tokens(word, &mut f);
        } else {
            for p in pieces(word) {
                piece_tokens(p, &mut f);
            }
        }
    }
}

/// The tokens of an ASCII word (letters and digits only, as [`is_word_char`] cuts
/// them): the word (first [`MAX_TERM_CHARS`] characters), then its parts as
/// [`word_parts`] cuts them, when there is more than one. Allocates nothing.
fn ascii_word_tokens(word: &str, f: &mut impl FnMut(&str)) {
    let whole = &word[..word.len().min(MAX_TERM_CHARS)];
    f(whole);
    let b = whole.as_bytes();
    let split_at = |i: usize| {
        let (x, y) = (b[i - 1], b[i]);
        let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
        (x.is_ascii_lowercase() && y.is_ascii_uppercase())
            || (x.is_ascii_uppercase() && y.is_ascii_uppercase() && next_lower)
            || x.is_ascii_digit() != y.is_ascii_digit()
    };
    if !(1..b.len()).any(split_at) {
        return;
    }
    let mut start = 0;
    for i in 1..b.len() {
        if split_at(i) {
            f(&whole[start..i]);
            start = i;
        }
    }
    f(&whole[start..]);
}

/// The tokens of one piece (see [`for_each_index_token`]).
fn piece_tokens(p: Piece, f: &mut impl FnMut(&str)) {
    match p {
        Piece::Word { whole, parts } => {
            f(&whole);
            for part in &parts {
                f(part);
            }
        }
        Piece::Unspaced(run) => {
            for b in bigrams(&run) {
                f(&b);
            }
            if run.len() >= 2 {
                let mut buf = [0u8; 4];
                for c in &run {
                    f(c.encode_utf8(&mut buf));
                }
            }
        }
    }
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
    for_each_index_token(text, &mut push);
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

/// How often each query term occurs in a text, as FTS5 indexes it, and the text's
/// length: BM25's `f(q_i, D)` and `|D|` (Robertson & Zaragoza 2009), computed in Rust
/// for the few candidates of a search instead of read from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermCounts {
    /// Occurrences of each term (same order as the terms given); a term of several
    /// tokens (a bigram phrase) counts where its tokens stand together, in order.
    pub tf: Vec<u32>,
    /// Tokens in the text's [`index_terms`] (each word, its identifier parts, each bigram
    /// and character of an unspaced run).
    pub length: usize,
}

/// Counts `terms` in `text` over the same token stream as [`index_terms`], each token
/// [`normalize`]d like the query's. Only tokens that can stem to a wanted token are
/// stemmed: a stem is the folded word or a prefix of it, but for its last letter
/// (`happy` → `happi`), so the cost is one fold per token.
///
/// The stemmer is Porter2 (`rust-stemmers`), FTS5's is the original Porter: the two agree
/// on nearly every inflection, and where they do not, a chunk FTS5 matched counts 0 here.
pub fn term_frequencies(text: &str, terms: &[QueryTerm]) -> TermCounts {
    let wanted: std::collections::HashSet<&str> = terms
        .iter()
        .flat_map(|t| t.normalized.iter().map(String::as_str))
        .collect();
    let prefixes: Vec<&str> = wanted
        .iter()
        .map(|w| {
            let cut = w.char_indices().last().map_or(0, |(i, _)| i);
            if cut == 0 { *w } else { &w[..cut] }
        })
        .collect();
    // The text's index tokens: `Some` where the token is one the query wants.
    let mut stream: Vec<Option<String>> = Vec::new();
    let mut push = |token: &str| {
        // Most tokens are ASCII and wanted by no term: rule them out without allocating.
        let maybe = if token.is_ascii() {
            prefixes.iter().any(|p| {
                token.len() >= p.len() && token.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            })
        } else {
            let folded = fold(token);
            prefixes.iter().any(|p| folded.starts_with(p))
        };
        let hit = if maybe {
            Some(normalize(token)).filter(|n| wanted.contains(n.as_str()))
        } else {
            None
        };
        stream.push(hit);
    };
    for_each_index_token(text, &mut push);
    let tf = terms
        .iter()
        .map(|t| {
            let k = t.normalized.len();
            if k == 0 || stream.len() < k {
                return 0;
            }
            stream
                .windows(k)
                .filter(|w| {
                    w.iter()
                        .zip(&t.normalized)
                        .all(|(s, n)| s.as_deref() == Some(n.as_str()))
                })
                .count() as u32
        })
        .collect();
    TermCounts {
        tf,
        length: stream.len(),
    }
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
        // A vowel sign alone is no token for FTS5 (proptest found it): no term either.
        assert_eq!(index_terms("\u{0D46}"), "");
        assert!(query_terms("\u{0D46}", crate::MAX_TERMS).is_empty());
        assert_eq!(index_terms("\u{0D15}\u{0D46}"), "\u{0D15}\u{0D46}");
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
        assert_eq!(normalize("session"), "session");
        assert_eq!(normalize("SessionCache"), "sessioncach");
    }

    #[test]
    fn term_frequencies_count_words_parts_and_phrases_like_the_index() {
        let q = query_terms("session SessionCache cold happy 数据库 the", 32);
        let c = term_frequencies("My SessionCache is warm; so HAPPY, happy session.", &q);
        // session (the part and the word), SessionCache, cold, happy, 数据库, the.
        assert_eq!(c.tf, [2, 1, 0, 2, 0, 0]);
        // The index's tokens: 8 words plus the two parts of SessionCache.
        assert_eq!(
            c.length,
            index_terms("My SessionCache is warm; so HAPPY, happy session.")
                .split(' ')
                .count()
        );
        assert_eq!(c.length, 10);
        let c = term_frequencies("数据库选用飞书，数据 库", &q);
        assert_eq!(c.tf[4], 1, "the phrase only where its bigrams stand together");
        assert_eq!(
            c.length,
            index_terms("数据库选用飞书，数据 库").split(' ').count()
        );
        assert_eq!(term_frequencies("", &q).tf, [0; 6]);
    }

    /// The index stream as it was computed before the ASCII fast path: every piece of
    /// the whole text through [`pieces`]. The fast path must give the same tokens.
    fn reference_tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for p in pieces(text) {
            piece_tokens(p, &mut |t: &str| out.push(t.to_string()));
        }
        out
    }

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_index_token(text, |t| out.push(t.to_string()));
        out
    }

    #[test]
    fn ascii_words_are_cut_as_before() {
        for text in [
            "SessionCache HTTPServer2 parse_json v2beta3 ABC aB Ab 42 x9Y",
            "getHTTPResponseCode ok 2024abc A1B2C3 camelCaseWordThatIsLongerThanSixtyFourCharactersForSureYesIndeedItIsLong",
            "mixed café SessionCache 数据库 caféBar",
        ] {
            assert_eq!(tokens(text), reference_tokens(text), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_gives_the_reference_tokens(text in "(?s)([A-Za-z0-9_ .]|\\PC|\\s){0,200}") {
            proptest::prop_assert_eq!(tokens(&text), reference_tokens(&text));
        }
    }

    proptest::proptest! {
        /// Any text: its index terms are single tokens, its own query's terms all occur
        /// in it, every phrase is one quoted FTS5 string, and BM25's length is the
        /// number of index tokens.
        #[test]
        fn any_text_is_found_by_its_own_words(text in "(?s)(\\PC|\\s|[_\"*:^()-]){0,300}") {
            let index = index_terms(&text);
            let tokens = index.split(' ').filter(|t| !t.is_empty()).count();
            let q = query_terms(&text, 32);
            let counts = term_frequencies(&text, &q);
            proptest::prop_assert_eq!(counts.length, tokens);
            for (t, tf) in q.iter().zip(&counts.tf) {
                proptest::prop_assert!(*tf >= 1, "{:?} not found in {:?}", t, text);
                let phrase = t.phrase();
                proptest::prop_assert!(phrase.starts_with('"') && phrase.ends_with('"'));
                let inner = &phrase[1..phrase.len() - 1];
                proptest::prop_assert!(!inner.replace("\"\"", "").contains('"'), "{}", phrase);
            }
        }
    }
}
