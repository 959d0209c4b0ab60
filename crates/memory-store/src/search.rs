//! Search: hybrid ranking of chat and file chunks. Two channels propose candidates over
//! the same scopes: BM25 (FTS5) over the chunks' index terms, and, when a query vector
//! is given, the nearest chunk embeddings; each candidate then gets one score in [0, 1]
//! from what it holds of the query's words, its BM25 and its meaning (see [`rank`]).
//! A linear fusion of absolute parts rather than reciprocal rank fusion, so the score
//! means the same in a store of any size: a chunk holding every query word scores near
//! 1 even where FTS5's IDF is at its floor (a store of one chunk).
//!
//! User text is never FTS5 syntax: it is split into terms ([`crate::terms`]) and every
//! token is quoted. Candidates are restricted inside FTS to the searched project's and
//! sources' scope tokens (schema V3), so cost follows the searched scopes. Read-only.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{SqlContext, StoreError};
use crate::terms::QueryTerm;
#[cfg(test)]
use crate::terms::query_terms;
use crate::vectors::{Filter, VectorIndex};

/// Largest number of results returned; larger limits are clamped.
pub const MAX_LIMIT: usize = 200;
/// Words of a query beyond this many are ignored.
pub const MAX_TERMS: usize = 32;
/// Most `exclude_chat_ids` plus `source_ids` accepted in one search.
pub const MAX_FILTER_IDS: usize = 10_000;

/// `POST /search`'s parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchRequest {
    /// Project whose chat messages are searched (non-empty).
    pub project_id: String,
    /// Free text; never interpreted as query syntax.
    pub query: String,
    /// Results wanted; clamped to `1..=MAX_LIMIT`.
    pub limit: usize,
    /// File sources whose chunks are searched too. `None`, empty, or naming no existing
    /// source: the sources attached to the project (`sources.project_id`).
    pub source_ids: Option<Vec<String>>,
    /// Chats of the project left out (trashed, archived).
    pub exclude_chat_ids: Vec<String>,
}

/// Where a hit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceType {
    /// A chat message chunk.
    Chat,
    /// A file chunk.
    File,
}

impl SourceType {
    /// The wire name: `chat` or `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Chat => "chat",
            SourceType::File => "file",
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// In [0, 1], higher is better; results come best first.
    pub score: f64,
    /// The chunk's project (for file chunks, the project searched).
    pub project_id: String,
    /// `project-<project_id>` for chat chunks, the source id for file chunks.
    pub source_id: String,
    /// Absolute path for file chunks.
    pub file_path: Option<String>,
    /// Extension without the dot, for file chunks.
    pub filetype: Option<String>,
    /// Position of the chunk within its message or file.
    pub chunk_index: i64,
    /// The chunk's text.
    pub text: String,
    /// First character of the chunk in its message or file.
    pub start_char: i64,
    /// Character after the last one of the chunk.
    pub end_char: i64,
    /// Chat or file.
    pub source_type: SourceType,
    /// For chat chunks.
    pub chat_id: Option<String>,
    /// For chat chunks.
    pub message_id: Option<String>,
    /// For chat chunks.
    pub message_uuid: Option<String>,
}

/// The terms the text channel ranks by (indices into `terms`): all but English function
/// words when the query has other terms (they match most chunks, cost the most to rank
/// and say the least); empty when the query holds no word.
pub(crate) fn text_terms(terms: &[QueryTerm]) -> Vec<usize> {
    let content: Vec<usize> = (0..terms.len()).filter(|&i| !terms[i].stop_word).collect();
    if content.is_empty() {
        (0..terms.len()).collect()
    } else {
        content
    }
}

/// The FTS5 MATCH expression of the terms `which` (indices into `terms`): their phrases
/// OR-ed; `None` when there are none (empty results, not an error). Terms come from
/// [`crate::terms::query_terms`]: every token quoted, so user text is never query syntax.
pub(crate) fn match_expression(terms: &[QueryTerm], which: &[usize]) -> Option<String> {
    if which.is_empty() {
        return None;
    }
    Some(
        which
            .iter()
            .map(|&i| terms[i].phrase())
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// Checks a request; returns the clamped limit.
pub(crate) fn validate(q: &SearchRequest) -> Result<usize, StoreError> {
    if q.project_id.trim().is_empty() {
        return Err(StoreError::InvalidInput(
            "project_id is required and cannot be empty".into(),
        ));
    }
    let ids = q.exclude_chat_ids.len() + q.source_ids.as_ref().map_or(0, Vec::len);
    if ids > MAX_FILTER_IDS {
        return Err(StoreError::InvalidInput(format!(
            "too many exclude_chat_ids and source_ids ({ids}; at most {MAX_FILTER_IDS})"
        )));
    }
    Ok(q.limit.clamp(1, MAX_LIMIT))
}

/// The FTS scope token of a project's chat chunks: `c` + hex of the id, as the
/// generated column `chunks.scope` computes it (schema V3).
pub(crate) fn chat_scope(project_id: &str) -> String {
    format!("c{}", hex(project_id))
}

/// The FTS scope token of one generation of a source's file chunks.
pub(crate) fn file_scope(source_id: &str, generation: i64) -> String {
    format!("s{}g{generation}", hex(source_id))
}

/// Upper-case hex of the UTF-8 bytes, like SQLite's `hex()` of a TEXT value.
fn hex(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The FTS5 expression of the searched scopes (`scope : ("c..." OR "s...g3")`), to which
/// `AND terms : (...)` restricts a term's matches. Scope tokens are hex and digits
/// behind a letter, so quoting them is enough.
fn scope_expression(scopes: &[String]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|t| format!("\"{t}\"")).collect();
    format!("scope : ({})", scopes.join(" OR "))
}

/// The sources whose file chunks are searched, with their searchable generation: the
/// ids among `source_ids` that name existing sources, or, when none does (ChatDO's
/// client sends `source_ids=[project_id]` when it has none), the project's sources.
fn searched_sources(conn: &Connection, q: &SearchRequest) -> Result<Vec<(String, i64)>, StoreError> {
    let context = "while resolving source_ids";
    let mut found: Vec<(String, i64)> = Vec::new();
    let mut stmt = conn
        .prepare_cached("SELECT generation FROM sources WHERE id = ?1")
        .ctx(context)?;
    for id in q.source_ids.as_deref().unwrap_or(&[]) {
        if found.iter().any(|(f, _)| f == id) {
            continue;
        }
        let generation: Option<i64> = stmt.query_row([id], |r| r.get(0)).optional().ctx(context)?;
        if let Some(g) = generation {
            found.push((id.clone(), g));
        }
    }
    if found.is_empty() {
        let mut stmt = conn
            .prepare_cached("SELECT id, generation FROM sources WHERE project_id = ?1 ORDER BY id")
            .ctx(context)?;
        let rows = stmt
            .query_map([&q.project_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx(context)?;
        found = rows.collect::<Result<_, _>>().ctx(context)?;
    }
    Ok(found)
}

/// How the parts of a hit's score are weighed (see [`rank`] and [`run`]). Chosen on the
/// LoCoMo development half with `memory-service-bench recall` and an offline grid over
/// the same features (README, "Ranking"); the optimum is flat around these values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Share of the query's words the chunk holds (function words count little).
    pub coverage: f64,
    /// BM25 relative to the best text candidate of this search, after context smoothing
    /// (`own_bm25`).
    pub bm25: f64,
    /// Semantic similarity (cosine mapped to [0, 1]); 0 without a model.
    pub semantic: f64,
    /// Share of the chunk's cosine in its semantic similarity; the rest is the mean
    /// cosine of its neighbouring messages in the chat (a turn is often understood only
    /// with the turns around it).
    pub own_cosine: f64,
    /// Share of the chunk's own BM25 in its text score; the rest is the mean BM25 of the
    /// chunks right before and after it (the neighbouring messages of its chat, or the
    /// neighbouring chunks of its file). A reply ("yes, last week!") holds few of the
    /// words its question asked.
    pub own_bm25: f64,
    /// Weight of the best score near the chunk (at most [`CONTEXT_WINDOW`] messages of its
    /// chat, or chunks of its file, away) next to its own score of 1:
    /// `(own + context * best_near) / (1 + context)`. What is said around a strong match
    /// is often the rest of the answer; the strong match itself keeps its score.
    pub context: f64,
}

/// Weights with a query vector. On the LoCoMo dev half (categories 1-4) in an offline
/// grid: linear fusion alone reached recall@10 0.71; BM25 context smoothing and the
/// chat prior add about 0.05 (README, "Ranking").
pub const HYBRID: Weights = Weights {
    coverage: 0.30,
    bm25: 0.30,
    semantic: 0.50,
    own_cosine: 0.75,
    own_bm25: 0.50,
    context: 0.75,
};

/// Weights without one (no model installed, or the model still loading).
pub const TEXT_ONLY: Weights = Weights {
    coverage: 0.5,
    bm25: 0.5,
    semantic: 0.0,
    own_cosine: 1.0,
    own_bm25: 0.50,
    context: 0.75,
};

/// How far (in messages of a chat, or chunks of a file) the context prior of
/// [`Weights::context`] looks. On the LoCoMo dev half, 2 to 4 are equally good (recall@10
/// 0.762-0.764 offline), the whole chat worse (0.753), 1 clearly worse (0.738); and a
/// window keeps one strong message from lifting a whole long chat.
pub const CONTEXT_WINDOW: i64 = 3;

/// Candidates taken from each channel (BM25 and nearest neighbours) before fusion.
pub const CANDIDATES_PER_CHANNEL: usize = 200;

/// Cosine similarities of all-MiniLM-L6-v2 below this are unrelated text; at
/// `COSINE_HIGH` and above, paraphrases. Mapped linearly to [0, 1] in between.
const COSINE_LOW: f64 = 0.15;
const COSINE_HIGH: f64 = 0.70;

/// A cosine similarity mapped linearly from [`COSINE_LOW`, `COSINE_HIGH`] to [0, 1]
/// (clamped): the meaning part of a score.
pub(crate) fn cosine_score(c: f64) -> f64 {
    if c.is_nan() {
        return 0.0;
    }
    ((c - COSINE_LOW) / (COSINE_HIGH - COSINE_LOW)).clamp(0.0, 1.0)
}

/// Weight of an English function word in [`coverage`], relative to 1 for other terms.
const STOP_WORD_WEIGHT: f64 = 0.15;

/// The share of the query's terms (weighted) that a chunk holds, in [0, 1], from its
/// [`crate::terms::term_frequencies`] (`tf`, one per term of `terms`).
pub(crate) fn coverage(terms: &[QueryTerm], tf: &[u32]) -> f64 {
    let (mut held, mut total) = (0.0, 0.0);
    for (t, &n) in terms.iter().zip(tf) {
        let w = if t.stop_word { STOP_WORD_WEIGHT } else { 1.0 };
        total += w;
        if n > 0 {
            held += w;
        }
    }
    if total > 0.0 { held / total } else { 0.0 }
}

/// BM25's term-frequency saturation `k1` and length normalisation `b`: the usual values,
/// FTS5's and Lucene's (Robertson & Zaragoza, "The Probabilistic Relevance Framework:
/// BM25 and Beyond", 2009).
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// BM25's inverse document frequency of a term in `df` of `n` chunks, Lucene's form
/// `ln(1 + (n - df + 0.5) / (df + 0.5))`: always above 0, so the only chunk holding a
/// term in a store of one chunk still scores (FTS5's form floors at 1e-6 there).
pub(crate) fn idf(n: f64, df: f64) -> f64 {
    let df = df.clamp(0.0, n.max(0.0));
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// A chunk's BM25 from its term counts, the terms' [`idf`]s (`None`: a term left out of
/// the text score, such as a function word in a query with other words), and the mean
/// length in tokens of the chunks it is compared with.
pub(crate) fn bm25(counts: &crate::terms::TermCounts, idfs: &[Option<f64>], avg_length: f64) -> f64 {
    let norm = 1.0 - BM25_B + BM25_B * counts.length as f64 / avg_length.max(1.0);
    counts
        .tf
        .iter()
        .zip(idfs)
        .filter_map(|(&tf, idf)| idf.map(|idf| (tf as f64, idf)))
        .map(|(tf, idf)| idf * tf * (BM25_K1 + 1.0) / (tf + BM25_K1 * norm))
        .sum()
}

/// A hit's score in [0, 1] from its parts: `coverage` in [0, 1], `bm25_rel` in [0, 1]
/// (its BM25 over the best BM25 among the candidates), and the cosine of the chunk and
/// of its neighbours when a query vector was given.
pub(crate) fn rank(w: &Weights, coverage: f64, bm25_rel: f64, cosine: Option<(f32, Option<f32>)>) -> f64 {
    let semantic = match cosine {
        None => 0.0,
        Some((own, near)) => {
            let c = match near {
                Some(n) => w.own_cosine * own as f64 + (1.0 - w.own_cosine) * n as f64,
                None => own as f64,
            };
            cosine_score(c)
        }
    };
    let total = w.coverage + w.bm25 + w.semantic;
    let s = (w.coverage * coverage + w.bm25 * bm25_rel + w.semantic * semantic) / total;
    if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) }
}

/// A term's document frequency is counted exactly up to this many chunks of the
/// searched scope; beyond, it is estimated from where the last counted match lies in the
/// scope's rowids (see [`scope_stats`]). Counting stops early so a common word costs
/// about 0.3 ms instead of one pass over every chunk holding it (about 6 ms at 100,000).
pub const DF_EXACT_UP_TO: usize = 1000;

/// BM25 statistics of the searched scope, so IDF is the scope's (the project's chats and
/// the searched sources), not the whole database's: a name in half the turns of one
/// conversation says little there, however rare it is across projects. FTS5's `bm25()`
/// only knows the whole table. On the LoCoMo dev half this lifted hybrid recall@10 from
/// 0.744 to 0.761 (README, "Ranking").
struct ScopeStats {
    /// Chunks in the scope (`N`).
    chunks: f64,
    /// Per text term (same order as the indices given): chunks of the scope holding it,
    /// and whether that count is exact (below [`DF_EXACT_UP_TO`]: a *rare* term).
    df: Vec<(f64, bool)>,
}

/// `N` from `scope_sizes` (kept by triggers, schema version 7) and each text term's
/// document frequency counted in FTS5 (so it tokenizes and stems exactly as the index
/// does). A term in [`DF_EXACT_UP_TO`] or more chunks gets `DF_EXACT_UP_TO * span /
/// (last - first + 1)`, where `span` is the scope's rowid range and `last` the rowid of
/// the last counted match: exact when the term is spread evenly over the scope's rowids.
fn scope_stats(
    conn: &Connection,
    scopes: &[String],
    scope: &str,
    terms: &[QueryTerm],
    which: &[usize],
) -> Result<ScopeStats, StoreError> {
    let context = "while counting the searched scope's terms";
    let mut chunks = 0i64;
    let mut size = conn
        .prepare_cached("SELECT chunks FROM scope_sizes WHERE scope = ?1")
        .ctx(context)?;
    for token in scopes {
        let n: Option<i64> = size.query_row([token], |r| r.get(0)).optional().ctx(context)?;
        chunks += n.unwrap_or(0).max(0);
    }
    let chunks = chunks as f64;
    let mut span: Option<(i64, i64)> = None;
    let mut df = Vec::with_capacity(which.len());
    for &i in which {
        let expr = format!("{scope} AND terms : ({})", terms[i].phrase());
        let (n, last): (i64, Option<i64>) = conn
            .prepare_cached(
                "SELECT count(*), max(rowid) FROM (SELECT rowid FROM chunks_fts
                 WHERE chunks_fts MATCH ?1 ORDER BY rowid LIMIT ?2)",
            )
            .ctx(context)?
            .query_row(rusqlite::params![expr, DF_EXACT_UP_TO as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ctx(context)?;
        if (n as usize) < DF_EXACT_UP_TO {
            df.push((n as f64, true));
            continue;
        }
        let (first, end) = match span {
            Some(s) => s,
            None => {
                let edge = |order: &str| -> Result<i64, StoreError> {
                    conn.prepare_cached(&format!(
                        "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1
                         ORDER BY rowid {order} LIMIT 1"
                    ))
                    .ctx(context)?
                    .query_row([scope], |r| r.get(0))
                    .ctx(context)
                };
                let s = (edge("ASC")?, edge("DESC")?);
                span = Some(s);
                s
            }
        };
        let last = last.unwrap_or(end);
        let share = (last - first + 1).max(1) as f64 / (end - first + 1).max(1) as f64;
        let estimate = (DF_EXACT_UP_TO as f64 / share).clamp(DF_EXACT_UP_TO as f64, chunks.max(1.0));
        df.push((estimate, false));
    }
    Ok(ScopeStats { chunks, df })
}

/// Up to `want` BM25 candidates (chunk ids) for the text terms `which`, restricted to
/// `scope` inside FTS5. Their order here does not matter: every candidate is then
/// scored by [`bm25`] over the scope's statistics. What is avoided is FTS5's `bm25()`,
/// which first walks the whole doclist of every phrase of the query, the scope's
/// included (about 10 ms for one common word at 100,000 chunks, whatever the `LIMIT`):
///
/// 1. the matches of the *rare* terms (counted exactly, [`DF_EXACT_UP_TO`]): all of
///    them when they are at most `want`, else the best `want` by FTS5's `bm25()` (cheap
///    there: few matches);
/// 2. then, while candidates are missing, the newest chunks holding every text term,
///    then the newest holding any. Only common terms are left at this point, which
///    hold many chunks each and say little; the vector channel still searches the whole
///    scope by meaning.
fn text_candidates(
    conn: &Connection,
    scope: &str,
    terms: &[QueryTerm],
    which: &[usize],
    stats: &ScopeStats,
    want: usize,
) -> Result<Vec<i64>, StoreError> {
    let rare: Vec<usize> = which
        .iter()
        .zip(&stats.df)
        .filter(|(_, (_, exact))| *exact)
        .map(|(&i, _)| i)
        .collect();
    let mut found = Found {
        ids: Vec::new(),
        seen: std::collections::HashSet::new(),
        want,
    };
    rare_candidates(conn, scope, terms, &rare, &mut found)?;
    if found.ids.len() < want && rare.len() < which.len() {
        newest_candidates(conn, scope, terms, which, &mut found)?;
    }
    Ok(found.ids)
}

/// The candidates [`text_candidates`] has found so far, in order, at most `want`.
struct Found {
    /// Chunk ids in the order found.
    ids: Vec<i64>,
    /// The same ids, to skip one found twice.
    seen: std::collections::HashSet<i64>,
    /// How many are wanted.
    want: usize,
}

impl Found {
    /// Appends the ids not yet found while fewer than `want` are.
    fn take(&mut self, ids: Vec<i64>) {
        for id in ids {
            if self.ids.len() < self.want && self.seen.insert(id) {
                self.ids.push(id);
            }
        }
    }
}

/// The chunk ids `sql` returns with `expr` bound to `?1` and the limit `n` to `?2`.
fn chunk_ids(conn: &Connection, sql: &str, expr: &str, n: usize) -> Result<Vec<i64>, StoreError> {
    let context = "while searching";
    let mut stmt = conn.prepare_cached(sql).ctx(context)?;
    let rows = stmt
        .query_map(rusqlite::params![expr, n as i64], |r| r.get::<_, i64>(0))
        .ctx(context)?;
    rows.collect::<Result<_, _>>().ctx(context)
}

/// Step 1 of [`text_candidates`]: the matches in `scope` of the rare terms `rare`, all of
/// them when at most `found.want`, else the best by FTS5's `bm25()`.
fn rare_candidates(
    conn: &Connection,
    scope: &str,
    terms: &[QueryTerm],
    rare: &[usize],
    found: &mut Found,
) -> Result<(), StoreError> {
    let want = found.want;
    if let Some(expr) = match_expression(terms, rare) {
        let full = format!("{scope} AND terms : ({expr})");
        let all = chunk_ids(
            conn,
            "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 LIMIT ?2",
            &full,
            want + 1,
        )?;
        if all.len() <= want {
            found.take(all);
        } else {
            let best = chunk_ids(
                conn,
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1
                 ORDER BY bm25(chunks_fts, 1.0, 0.0) LIMIT ?2",
                &full,
                want,
            )?;
            found.take(best);
        }
    }
    Ok(())
}

/// Step 2 of [`text_candidates`]: while candidates are missing, the newest chunks in
/// `scope` holding every text term of `which`, then the newest holding any.
fn newest_candidates(
    conn: &Connection,
    scope: &str,
    terms: &[QueryTerm],
    which: &[usize],
    found: &mut Found,
) -> Result<(), StoreError> {
    let phrases: Vec<String> = which.iter().map(|&i| terms[i].phrase()).collect();
    let mut exprs = Vec::new();
    if phrases.len() > 1 {
        exprs.push(phrases.join(" AND "));
    }
    exprs.push(phrases.join(" OR "));
    for expr in exprs {
        if found.ids.len() >= found.want {
            break;
        }
        let newest = chunk_ids(
            conn,
            "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1
             ORDER BY rowid DESC LIMIT ?2",
            &format!("{scope} AND terms : ({expr})"),
            found.want,
        )?;
        found.take(newest);
    }
    Ok(())
}

/// Runs the search on a read connection, in one read transaction (one snapshot):
/// candidates from the FTS index (see [`text_candidates`]) and, when `query_vector`
/// gives a vector and `index` holds some, from the nearest vectors in `index`, both over
/// the same scopes: the
/// project's chat chunks (minus `exclude_chat_ids`) and the searchable generation of
/// [`searched_sources`]'s file chunks. Each candidate is re-read from `chunks` with the
/// exact filters (so the FTS scope and the vector copy only narrow the work, never decide
/// correctness), gets its [`bm25`] over the scope's statistics ([`ScopeStats`]), and is
/// scored by [`rank`] and [`with_context`], best first.
///
/// `query_vector` is called once, after the text channel has run (so a caller can embed
/// the query meanwhile), and may block; it gives the query's L2-normalised embedding or
/// `None` (words only).
pub(crate) fn run(
    conn: &Connection,
    q: &SearchRequest,
    terms: &[QueryTerm],
    index: &VectorIndex,
    query_vector: impl FnOnce() -> Option<Vec<f32>>,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    let Gathered { rows, idfs, vector } = gather(conn, q, terms, index, query_vector, limit)?;
    let semantic = vector.as_deref().map(|v| (v, index));
    let weights = if semantic.is_some() { HYBRID } else { TEXT_ONLY };
    let counts = term_counts(&rows, terms);
    let smoothed = smoothed_bm25(&rows, &counts, &idfs, &weights);
    let best_bm25 = smoothed.iter().copied().fold(0.0, f64::max);
    let own_scores: Vec<f64> = rows
        .iter()
        .zip(&smoothed)
        .zip(&counts)
        .map(|((c, &x), n)| {
            let rel = if best_bm25 > 0.0 { x / best_bm25 } else { 0.0 };
            let cosine = semantic.and_then(|(v, index)| index.cosines(v, c.id));
            rank(&weights, coverage(terms, &n.tf), rel, cosine)
        })
        .collect();
    let mut hits = with_context_prior(&rows, &own_scores, &weights);
    hits.sort_by(|(ia, a), (ib, b)| b.score.total_cmp(&a.score).then(ia.cmp(ib)));
    hits.truncate(limit);
    Ok(hits.into_iter().map(|(_, h)| h).collect())
}

/// Candidates one thread counts terms in at least: below this a thread costs more than
/// it saves (spawning one is tens of microseconds; counting 100 chunks' terms, about half
/// a millisecond).
const CANDIDATES_PER_COUNT_THREAD: usize = 100;

/// Each candidate's [`crate::terms::term_frequencies`], in order. Up to 400 candidates
/// are tokenized and stemmed per search (a few milliseconds), so a large set is split
/// over the cores.
fn term_counts(rows: &[Candidate], terms: &[QueryTerm]) -> Vec<crate::terms::TermCounts> {
    let threads = crate::cores::threads_for(rows.len(), CANDIDATES_PER_COUNT_THREAD);
    crate::cores::split_ranges(rows.len(), threads, |range| {
        rows[range]
            .iter()
            .map(|c| crate::terms::term_frequencies(&c.hit.text, terms))
            .collect()
    })
}

/// The database part of a search, in one read transaction: the candidates of both
/// channels (words over the scope, then nearest neighbours when `query_vector` gives a
/// vector and `index` is not empty), read with the exact filters, with the terms' IDFs
/// and the query vector used.
fn gather(
    conn: &Connection,
    q: &SearchRequest,
    terms: &[QueryTerm],
    index: &VectorIndex,
    query_vector: impl FnOnce() -> Option<Vec<f32>>,
    limit: usize,
) -> Result<Gathered, StoreError> {
    let context = "while searching";
    let tx = conn.unchecked_transaction().ctx(context)?;
    let sources = searched_sources(conn, q)?;
    let chat_scope_token = chat_scope(&q.project_id);
    let mut scopes = vec![chat_scope_token.clone()];
    scopes.extend(sources.iter().map(|(id, g)| file_scope(id, *g)));
    let want = CANDIDATES_PER_CHANNEL.max(limit * 2);

    let which = text_terms(terms);
    let scope = scope_expression(&scopes);
    let stats = scope_stats(conn, &scopes, &scope, terms, &which)?;
    let mut candidates = text_candidates(conn, &scope, terms, &which, &stats, want)?;
    let vector = query_vector().filter(|v| !v.is_empty() && !index.is_empty());
    if let Some(vector) = vector.as_deref() {
        let filter = Filter {
            scopes: &scopes,
            excluded_chats: q
                .exclude_chat_ids
                .iter()
                .map(|c| format!("{chat_scope_token}/{c}"))
                .collect(),
        };
        let text: std::collections::HashSet<i64> = candidates.iter().copied().collect();
        for hit in index.nearest(vector, &filter, want) {
            if !text.contains(&hit.chunk_id) {
                candidates.push(hit.chunk_id);
            }
        }
    }
    let rows = read_candidates(conn, q, &sources, &candidates)?;
    tx.commit().ctx(context)?;
    let mut idfs: Vec<Option<f64>> = vec![None; terms.len()];
    for (&i, &(df, _)) in which.iter().zip(&stats.df) {
        idfs[i] = Some(idf(stats.chunks, df));
    }
    Ok(Gathered { rows, idfs, vector })
}

/// What [`gather`] read.
struct Gathered {
    /// The candidates of both channels that pass the exact filters.
    rows: Vec<Candidate>,
    /// Each query term's IDF over the scope (`None`: not a text term).
    idfs: Vec<Option<f64>>,
    /// The query vector used, if any.
    vector: Option<Vec<f32>>,
}

/// Every candidate's BM25 over the scope's statistics (a vector candidate's too), with
/// the candidates' mean length standing in for the scope's, smoothed with the chunks
/// before and after it in its chat or file (absent: 0) by `weights.own_bm25`.
fn smoothed_bm25(
    rows: &[Candidate],
    counts: &[crate::terms::TermCounts],
    idfs: &[Option<f64>],
    weights: &Weights,
) -> Vec<f64> {
    let avg_length = if counts.is_empty() {
        1.0
    } else {
        counts.iter().map(|c| c.length as f64).sum::<f64>() / counts.len() as f64
    };
    let text_score: Vec<f64> = counts.iter().map(|c| bm25(c, idfs, avg_length)).collect();
    let mut at: HashMap<(&str, i64), f64> = HashMap::new();
    for (c, &x) in rows.iter().zip(&text_score) {
        let e = at.entry((c.group.as_str(), c.position)).or_insert(0.0);
        *e = e.max(x);
    }
    rows.iter()
        .zip(&text_score)
        .map(|(c, &own)| {
            let near = |p: i64| at.get(&(c.group.as_str(), p)).copied().unwrap_or(0.0);
            let around = (near(c.position - 1) + near(c.position + 1)) / 2.0;
            weights.own_bm25 * own + (1.0 - weights.own_bm25) * around
        })
        .collect()
}

/// The hits with their final scores: each own score lifted by the best own score among
/// the chunks at most [`CONTEXT_WINDOW`] places away in the same chat or file
/// ([`with_context`]); unsorted, with their chunk ids for a stable order.
fn with_context_prior(rows: &[Candidate], own_scores: &[f64], weights: &Weights) -> Vec<(i64, SearchHit)> {
    let mut own_at: HashMap<(&str, i64), f64> = HashMap::new();
    for (c, &s) in rows.iter().zip(own_scores) {
        let e = own_at.entry((c.group.as_str(), c.position)).or_insert(0.0);
        *e = e.max(s);
    }
    rows.iter()
        .zip(own_scores)
        .map(|(c, &own)| {
            let best_near = (c.position - CONTEXT_WINDOW..=c.position + CONTEXT_WINDOW)
                .filter_map(|p| own_at.get(&(c.group.as_str(), p)).copied())
                .fold(own, f64::max);
            let mut hit = c.hit.clone();
            hit.score = with_context(weights, own, best_near);
            (c.id, hit)
        })
        .collect()
}

/// A chunk's final score from its own score and the best own score near it (see
/// [`CONTEXT_WINDOW`]), both in [0, 1]: `(own + context * best) / (1 + context)`, so in
/// [0, 1] and equal to `own` for the best chunk of its neighbourhood.
pub(crate) fn with_context(w: &Weights, own: f64, best_near: f64) -> f64 {
    let s = (own + w.context * best_near.max(own)) / (1.0 + w.context);
    if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) }
}

/// A candidate chunk as read back from `chunks`.
struct Candidate {
    /// `chunks.id`.
    id: i64,
    /// The hit it becomes (score still 0).
    hit: SearchHit,
    /// Its chat (`c/<chat_id>`) or file (`f/<file_path>`): the unit of context.
    group: String,
    /// Its place in the group: the message's `message_index` in its chat, or the
    /// chunk's `chunk_index` in its file. Neighbours are one apart.
    position: i64,
}

/// Reads the candidate chunks that pass the exact filters (kind, project, excluded chats,
/// searched sources' current generation), with their ids; `score` is left 0.
fn read_candidates(
    conn: &Connection,
    q: &SearchRequest,
    sources: &[(String, i64)],
    ids: &[i64],
) -> Result<Vec<Candidate>, StoreError> {
    let context = "while reading search candidates";
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, args) = candidates_query(q, sources, ids);
    let mut stmt = conn.prepare(&sql).ctx(context)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            candidate_from_row(r, q)
        })
        .ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

/// "?2, ?3, ..." for `n` values numbered after the `taken` already bound.
fn placeholders(taken: usize, n: usize) -> String {
    (taken + 1..=taken + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQL of [`read_candidates`] and its bound values: the candidates `ids` among the
/// project's chat chunks (minus excluded chats) and the searchable file chunks of `sources`.
///
/// The unary `+` on `c.project_id` keeps SQLite from driving the query by the
/// `chunks_chat` index: without statistics it prefers that index over the `c.id IN`
/// list when no source is searched, and then walks every chat chunk of the project
/// (about 10 ms at 100,000 chunks) instead of seeking a few hundred rowids.
fn candidates_query(
    q: &SearchRequest,
    sources: &[(String, i64)],
    ids: &[i64],
) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut args: Vec<Value> = vec![Value::Text(q.project_id.clone())];
    let mut sql = String::from(
        "SELECT c.id, c.kind, c.project_id, c.source_id, c.file_path, c.filetype,
                c.chunk_index, c.text, c.start_char, c.end_char, c.chat_id, c.message_id,
                c.message_uuid, m.message_index
         FROM chunks c LEFT JOIN sources s ON c.kind = 'file' AND s.id = c.source_id
              LEFT JOIN chat_messages m ON c.kind = 'chat' AND m.message_uuid = c.message_uuid
         WHERE ((c.kind = 'chat' AND +c.project_id = ?1",
    );
    if !q.exclude_chat_ids.is_empty() {
        let p = placeholders(args.len(), q.exclude_chat_ids.len());
        sql.push_str(&format!(" AND c.chat_id NOT IN ({p})"));
        args.extend(q.exclude_chat_ids.iter().map(|s| Value::Text(s.clone())));
    }
    sql.push(')');
    // File chunks: only of a source's searchable generation (a rebuild in progress and
    // an old generation awaiting deletion stay invisible).
    if !sources.is_empty() {
        let p = placeholders(args.len(), sources.len());
        sql.push_str(&format!(
            " OR (c.kind = 'file' AND c.generation = s.generation AND s.id IN ({p}))"
        ));
        args.extend(sources.iter().map(|(id, _)| Value::Text(id.clone())));
    }
    let p = placeholders(args.len(), ids.len());
    sql.push_str(&format!(") AND c.id IN ({p})"));
    args.extend(ids.iter().map(|&id| Value::Integer(id)));
    (sql, args)
}

/// One row of [`candidates_query`] as a [`Candidate`]: its hit (score 0), and its chat or
/// file with its place there.
fn candidate_from_row(r: &rusqlite::Row<'_>, q: &SearchRequest) -> rusqlite::Result<Candidate> {
    let kind: String = r.get(1)?;
    let project: Option<String> = r.get(2)?;
    let chat = kind == "chat";
    let hit = SearchHit {
        score: 0.0,
        project_id: project.unwrap_or_else(|| q.project_id.clone()),
        source_id: r.get(3)?,
        file_path: r.get(4)?,
        filetype: r.get(5)?,
        chunk_index: r.get(6)?,
        text: r.get(7)?,
        start_char: r.get(8)?,
        end_char: r.get(9)?,
        source_type: if chat { SourceType::Chat } else { SourceType::File },
        chat_id: r.get(10)?,
        message_id: r.get(11)?,
        message_uuid: r.get(12)?,
    };
    let message_index: Option<i64> = r.get(13)?;
    let (group, position) = if chat {
        (
            format!("c/{}", hit.chat_id.as_deref().unwrap_or_default()),
            message_index.unwrap_or(0),
        )
    } else {
        (
            format!("f/{}", hit.file_path.as_deref().unwrap_or_default()),
            hit.chunk_index,
        )
    };
    Ok(Candidate {
        id: r.get(0)?,
        hit,
        group,
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_quotes_every_term_and_drops_function_words() {
        let expr = |q: &str| {
            let terms = query_terms(q, MAX_TERMS);
            match_expression(&terms, &text_terms(&terms))
        };
        assert_eq!(expr(""), None);
        assert_eq!(expr("  \t\n "), None);
        assert_eq!(expr("\"*-:^()"), None);
        assert_eq!(
            expr("foo AND \"bar\" NEAR(baz) foo"),
            Some("\"foo\" OR \"bar\" OR \"NEAR\" OR \"baz\"".into())
        );
        assert_eq!(expr("what is the colour"), Some("\"colour\"".into()));
        assert_eq!(expr("what is it"), Some("\"what\" OR \"is\" OR \"it\"".into()));
        assert_eq!(expr("数据库"), Some("\"数据 据库\"".into()));
        let many = (0..100).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(expr(&many).expect("expr").matches(" OR ").count(), MAX_TERMS - 1);
    }

    #[test]
    fn rank_is_in_unit_interval_and_rewards_each_part() {
        for w in [HYBRID, TEXT_ONLY] {
            let full = rank(&w, 1.0, 1.0, Some((1.0, Some(1.0))));
            assert!((full - 1.0).abs() < 1e-9, "{full}");
            assert_eq!(rank(&w, 0.0, 0.0, Some((-1.0, None))), 0.0);
            assert!(rank(&w, 1.0, 0.0, None) > rank(&w, 0.5, 0.0, None));
            assert!(rank(&w, 0.5, 1.0, None) > rank(&w, 0.5, 0.5, None));
            assert!((0.0..=1.0).contains(&rank(&w, f64::NAN, 0.0, None)));
        }
        assert!(rank(&HYBRID, 0.0, 0.0, Some((0.8, None))) > rank(&HYBRID, 0.0, 0.0, Some((0.2, None))));
        // A perfect text match scores well above unrelated text, whatever the store size.
        assert!(rank(&TEXT_ONLY, 1.0, 1.0, None) >= 0.99);
    }

    #[test]
    fn context_lifts_neighbours_but_never_above_the_strong_match() {
        for w in [HYBRID, TEXT_ONLY] {
            // The best chunk of its neighbourhood keeps its own score.
            assert!((with_context(&w, 0.8, 0.8) - 0.8).abs() < 1e-12);
            assert!((with_context(&w, 0.8, 0.3) - 0.8).abs() < 1e-12);
            // A neighbour of a strong match gains, and stays below it.
            let lifted = with_context(&w, 0.2, 0.9);
            assert!(lifted > 0.2 && lifted < 0.9, "{lifted}");
            // Unrelated text beside a perfect match: (0 + 0.75) / 1.75.
            assert!((with_context(&w, 0.0, 1.0) - 0.75 / 1.75).abs() < 1e-12);
            assert_eq!(with_context(&w, 1.0, 1.0), 1.0);
            assert_eq!(with_context(&w, 0.0, 0.0), 0.0);
            assert_eq!(with_context(&w, f64::NAN, 0.5), 0.0);
        }
    }

    #[test]
    fn coverage_counts_words_and_phrases() {
        let cov = |terms: &[QueryTerm], text: &str| {
            coverage(terms, &crate::terms::term_frequencies(text, terms).tf)
        };
        let terms = query_terms("what is my favourite colour", MAX_TERMS);
        // Every word but the function word "what".
        let all = cov(&terms, "My favourite colour is blue");
        assert!(all > 0.9 && all < 1.0, "{all}");
        assert_eq!(cov(&terms, "what is my favourite colour?"), 1.0);
        let some = cov(&terms, "the colours of autumn");
        assert!(some > 0.3 && some < 0.6, "{some}");
        assert_eq!(cov(&terms, "a dog ran"), 0.0);
        let cjk = query_terms("数据库", MAX_TERMS);
        assert_eq!(cov(&cjk, "数据库选用飞书"), 1.0);
        assert_eq!(cov(&cjk, "数据 库"), 0.0);
        assert_eq!(coverage(&[], &[]), 0.0);
    }

    #[test]
    fn bm25_rewards_rare_terms_repetition_and_short_chunks() {
        // Lucene's IDF stays above 0: the only chunk of a store of one still scores.
        assert!(idf(1.0, 1.0) > 0.0);
        assert!(idf(1000.0, 1.0) > idf(1000.0, 500.0));
        assert!(idf(10.0, 50.0).is_finite());
        let terms = query_terms("caroline adoption", MAX_TERMS);
        let tf = |text: &str| crate::terms::term_frequencies(text, &terms);
        // Caroline in 500 of 1000 chunks, adoption in 5.
        let idfs = [Some(idf(1000.0, 500.0)), Some(idf(1000.0, 5.0))];
        let name = bm25(&tf("Caroline: see you soon"), &idfs, 6.0);
        let rare = bm25(&tf("Melanie: the adoption went well"), &idfs, 6.0);
        assert!(rare > 2.0 * name, "{rare} vs {name}");
        let both = bm25(&tf("Caroline: the adoption went well"), &idfs, 6.0);
        assert!(both > rare);
        let twice = bm25(&tf("adoption, adoption went well"), &idfs, 6.0);
        assert!(twice > bm25(&tf("adoption, it went well"), &idfs, 6.0));
        let long = bm25(&tf(&format!("adoption {}", "word ".repeat(40))), &idfs, 6.0);
        assert!(long < rare);
        // A term left out of the text score (None) counts nothing.
        assert_eq!(bm25(&tf("Caroline"), &[None, idfs[1]], 6.0), 0.0);
    }

    #[test]
    fn limit_is_clamped() {
        let mut q = SearchRequest {
            project_id: "p".into(),
            ..Default::default()
        };
        assert_eq!(validate(&q).expect("ok"), 1);
        q.limit = 10_000;
        assert_eq!(validate(&q).expect("ok"), MAX_LIMIT);
        q.project_id = " ".into();
        assert!(matches!(validate(&q), Err(StoreError::InvalidInput(_))));
    }

    /// The candidates are read by rowid, whatever is searched: a plan driven by another
    /// index walks every chunk of the project (see [`candidates_query`]).
    #[test]
    fn candidates_are_read_by_rowid() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn, ":memory:").expect("migrate");
        let ids: Vec<i64> = (1..=400).collect();
        let sources = [("s1".to_string(), 1), ("s2".to_string(), 3)];
        for (excluded, sources) in [(vec![], &sources[..0]), (vec!["c9".to_string()], &sources[..])] {
            let q = SearchRequest {
                project_id: "p".into(),
                exclude_chat_ids: excluded,
                ..Default::default()
            };
            let (sql, args) = candidates_query(&q, sources, &ids);
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare");
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert!(
                plan.iter()
                    .any(|step| step.starts_with("SEARCH c USING INTEGER PRIMARY KEY")),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|step| step.contains("chunks_chat")), "{plan:?}");
        }
    }
}
