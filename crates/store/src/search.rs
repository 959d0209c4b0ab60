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

/// The FTS5 MATCH expression for the query terms: their phrases OR-ed, leaving out
/// English function words when the query has other terms (they match most chunks, cost
/// the most to rank and say the least); `None` when the query holds no word (empty
/// results, not an error). Terms come from [`crate::terms::query_terms`]: every token
/// quoted, so user text is never query syntax.
pub(crate) fn match_expression(terms: &[QueryTerm]) -> Option<String> {
    let content: Vec<&QueryTerm> = terms.iter().filter(|t| !t.stop_word).collect();
    let used: Vec<&QueryTerm> = if content.is_empty() {
        terms.iter().collect()
    } else {
        content
    };
    if used.is_empty() {
        return None;
    }
    Some(used.iter().map(|t| t.phrase()).collect::<Vec<_>>().join(" OR "))
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

/// The full MATCH expression: candidates restricted to `scopes` inside FTS, ranked by
/// the terms of `expr` (from [`match_expression`]). Scope tokens are hex and digits
/// behind a letter, so quoting them is enough.
fn scoped_expression(scopes: &[String], expr: &str) -> String {
    let scopes: Vec<String> = scopes.iter().map(|t| format!("\"{t}\"")).collect();
    format!("scope : ({}) AND terms : ({expr})", scopes.join(" OR "))
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

/// Weight of an English function word in [`coverage`], relative to 1 for other terms.
const STOP_WORD_WEIGHT: f64 = 0.15;

/// The share of the query's terms (weighted) that `text` holds, in [0, 1].
pub(crate) fn coverage(terms: &[QueryTerm], text: &str) -> f64 {
    if terms.is_empty() {
        return 0.0;
    }
    let wanted = terms
        .iter()
        .flat_map(|t| t.normalized.iter().map(String::as_str))
        .collect();
    let words = crate::terms::tokens_present(text, &wanted);
    let (mut held, mut total) = (0.0, 0.0);
    for t in terms {
        let w = if t.stop_word { STOP_WORD_WEIGHT } else { 1.0 };
        total += w;
        if t.normalized.iter().all(|n| words.contains(n)) {
            held += w;
        }
    }
    held / total
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
            ((c - COSINE_LOW) / (COSINE_HIGH - COSINE_LOW)).clamp(0.0, 1.0)
        }
    };
    let total = w.coverage + w.bm25 + w.semantic;
    let s = (w.coverage * coverage + w.bm25 * bm25_rel + w.semantic * semantic) / total;
    if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) }
}

/// Runs the search on a read connection, in one read transaction (one snapshot):
/// candidates from BM25 over the FTS index and, with `query_vector`, from the nearest
/// vectors in `index`, both over the same scopes: the project's chat chunks (minus
/// `exclude_chat_ids`) and the searchable generation of [`searched_sources`]'s file
/// chunks. Each candidate is re-read from `chunks` with the exact filters (so the FTS
/// scope and the vector copy only narrow the work, never decide correctness), scored
/// by [`rank`], best first.
pub(crate) fn run(
    conn: &Connection,
    q: &SearchRequest,
    terms: &[QueryTerm],
    semantic: Option<(&[f32], &VectorIndex)>,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    let context = "while searching";
    let tx = conn.unchecked_transaction().ctx(context)?;
    let sources = searched_sources(conn, q)?;
    let chat_scope_token = chat_scope(&q.project_id);
    let mut scopes = vec![chat_scope_token.clone()];
    scopes.extend(sources.iter().map(|(id, g)| file_scope(id, *g)));
    let want = CANDIDATES_PER_CHANNEL.max(limit * 2);

    let mut bm25: HashMap<i64, f64> = HashMap::new();
    if let Some(expr) = match_expression(terms) {
        let full = scoped_expression(&scopes, &expr);
        let mut stmt = conn
            .prepare_cached(
                "SELECT rowid, bm25(chunks_fts, 1.0, 0.0) AS r FROM chunks_fts
                 WHERE chunks_fts MATCH ?1 ORDER BY r LIMIT ?2",
            )
            .ctx(context)?;
        let rows = stmt
            .query_map(rusqlite::params![full, want as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .ctx(context)?;
        for row in rows {
            let (id, r): (i64, f64) = row.ctx(context)?;
            bm25.insert(id, if r.is_finite() { (-r).max(0.0) } else { 0.0 });
        }
    }
    let mut candidates: Vec<i64> = bm25.keys().copied().collect();
    if let Some((vector, index)) = semantic {
        let filter = Filter {
            scopes: &scopes,
            excluded_chats: q
                .exclude_chat_ids
                .iter()
                .map(|c| format!("{chat_scope_token}/{c}"))
                .collect(),
        };
        for hit in index.nearest(vector, &filter, want) {
            if !bm25.contains_key(&hit.chunk_id) {
                candidates.push(hit.chunk_id);
            }
        }
    }
    let rows = read_candidates(conn, q, &sources, &candidates)?;
    tx.commit().ctx(context)?;

    let weights = if semantic.is_some() { HYBRID } else { TEXT_ONLY };
    // BM25 smoothed with the chunks before and after (absent or not a text candidate:
    // 0), then relative to the best of this search.
    let mut at: HashMap<(&str, i64), f64> = HashMap::new();
    for c in &rows {
        if let Some(&x) = bm25.get(&c.id) {
            let e = at.entry((c.group.as_str(), c.position)).or_insert(0.0);
            *e = e.max(x);
        }
    }
    let smoothed: Vec<f64> = rows
        .iter()
        .map(|c| {
            let own = bm25.get(&c.id).copied().unwrap_or(0.0);
            let near = |p: i64| at.get(&(c.group.as_str(), p)).copied().unwrap_or(0.0);
            let around = (near(c.position - 1) + near(c.position + 1)) / 2.0;
            weights.own_bm25 * own + (1.0 - weights.own_bm25) * around
        })
        .collect();
    let best_bm25 = smoothed.iter().copied().fold(0.0, f64::max);
    let own_scores: Vec<f64> = rows
        .iter()
        .zip(&smoothed)
        .map(|(c, &x)| {
            let rel = if best_bm25 > 0.0 {
                x / best_bm25
            } else if bm25.contains_key(&c.id) {
                // Every candidate at FTS5's IDF floor (a tiny store): all equally good.
                1.0
            } else {
                0.0
            };
            let cosine = semantic.and_then(|(v, index)| index.cosines(v, c.id));
            rank(&weights, coverage(terms, &c.hit.text), rel, cosine)
        })
        .collect();
    // The context prior: the best own score among the chunks at most CONTEXT_WINDOW
    // places away in the same chat (or file).
    let mut own_at: HashMap<(&str, i64), f64> = HashMap::new();
    for (c, &s) in rows.iter().zip(&own_scores) {
        let e = own_at.entry((c.group.as_str(), c.position)).or_insert(0.0);
        *e = e.max(s);
    }
    let mut hits: Vec<(i64, SearchHit)> = rows
        .iter()
        .zip(&own_scores)
        .map(|(c, &own)| {
            let best_near = (c.position - CONTEXT_WINDOW..=c.position + CONTEXT_WINDOW)
                .filter_map(|p| own_at.get(&(c.group.as_str(), p)).copied())
                .fold(own, f64::max);
            let mut hit = c.hit.clone();
            hit.score = with_context(&weights, own, best_near);
            (c.id, hit)
        })
        .collect();
    hits.sort_by(|(ia, a), (ib, b)| b.score.total_cmp(&a.score).then(ia.cmp(ib)));
    hits.truncate(limit);
    Ok(hits.into_iter().map(|(_, h)| h).collect())
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
    use rusqlite::types::Value;
    let context = "while reading search candidates";
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args: Vec<Value> = vec![Value::Text(q.project_id.clone())];
    // "?2, ?3, ..." for `n` values numbered after those already bound.
    let placeholders = |taken: usize, n: usize| -> String {
        (taken + 1..=taken + n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = String::from(
        "SELECT c.id, c.kind, c.project_id, c.source_id, c.file_path, c.filetype,
                c.chunk_index, c.text, c.start_char, c.end_char, c.chat_id, c.message_id,
                c.message_uuid, m.message_index
         FROM chunks c LEFT JOIN sources s ON c.kind = 'file' AND s.id = c.source_id
              LEFT JOIN chat_messages m ON c.kind = 'chat' AND m.message_uuid = c.message_uuid
         WHERE ((c.kind = 'chat' AND c.project_id = ?1",
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

    let mut stmt = conn.prepare(&sql).ctx(context)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
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
        })
        .ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_quotes_every_term_and_drops_function_words() {
        let expr = |q: &str| match_expression(&query_terms(q, MAX_TERMS));
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
        let terms = query_terms("what is my favourite colour", MAX_TERMS);
        // Every word but the function word "what".
        let all = coverage(&terms, "My favourite colour is blue");
        assert!(all > 0.9 && all < 1.0, "{all}");
        assert_eq!(coverage(&terms, "what is my favourite colour?"), 1.0);
        let some = coverage(&terms, "the colours of autumn");
        assert!(some > 0.3 && some < 0.6, "{some}");
        assert_eq!(coverage(&terms, "a dog ran"), 0.0);
        let cjk = query_terms("数据库", MAX_TERMS);
        assert_eq!(coverage(&cjk, "数据库选用飞书"), 1.0);
        assert_eq!(coverage(&cjk, "数据 库"), 0.0);
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
}
