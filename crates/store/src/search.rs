//! Search: turning user text into a safe FTS5 query, running it over chat and file
//! chunks with one BM25 ranking, and mapping BM25 to a score in [0, 1]. User text is
//! never passed to FTS5 as syntax: it is split into words here and every word is quoted,
//! so operators, quotes and stray punctuation are plain words or ignored. Candidates are
//! restricted inside FTS to the searched project's and sources' scope tokens (schema
//! V3), so cost follows the searched scopes, not the whole store. Read-only.

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{SqlContext, StoreError};

/// Largest number of results returned; larger limits are clamped.
pub const MAX_LIMIT: usize = 200;
/// Words of a query beyond this many are ignored.
pub const MAX_TERMS: usize = 32;
/// Characters of a single word beyond this many are ignored.
pub const MAX_TERM_CHARS: usize = 64;
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

/// The FTS5 MATCH expression for `query`: its words, each quoted, OR-ed; `None` when the
/// query holds no word (empty results, not an error).
///
/// A word is a run of alphanumeric characters. Terms are OR-ed: a chunk matching any
/// word is a candidate and BM25 ranks chunks matching more (and rarer) words higher,
/// which suits recall-oriented memory lookup (the original was semantic search).
pub(crate) fn match_expression(query: &str) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word: String = word.chars().take(MAX_TERM_CHARS).collect();
        if seen.iter().any(|s| s.to_lowercase() == word.to_lowercase()) {
            continue;
        }
        seen.push(word);
        if seen.len() == MAX_TERMS {
            break;
        }
    }
    if seen.is_empty() {
        return None;
    }
    let quoted: Vec<String> = seen
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    Some(quoted.join(" OR "))
}

/// Maps FTS5 `bm25()` (negative, lower is better) to [0, 1], monotone: x / (1 + x) with
/// x = -bm25.
pub(crate) fn score(bm25: f64) -> f64 {
    let x = -bm25;
    if x.is_nan() || x <= 0.0 {
        0.0
    } else if x.is_infinite() {
        1.0
    } else {
        x / (1.0 + x)
    }
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
    format!("scope : ({}) AND text : ({expr})", scopes.join(" OR "))
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

/// Runs the search on a read connection, in one read transaction (one snapshot): the
/// project's chat chunks (minus `exclude_chat_ids`) and the searchable generation of
/// the file chunks of [`searched_sources`]; one BM25 ranking.
///
/// FTS only yields chunks carrying one of the searched scope tokens; the SQL filters
/// behind it still check every candidate exactly (kind, project, generation, excluded
/// chats), so the scope only narrows the work, it never decides correctness.
pub(crate) fn run(
    conn: &Connection,
    q: &SearchRequest,
    expr: &str,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    let context = "while searching";
    let tx = conn.unchecked_transaction().ctx(context)?;
    let sources = searched_sources(conn, q)?;
    let mut scopes = vec![chat_scope(&q.project_id)];
    scopes.extend(sources.iter().map(|(id, g)| file_scope(id, *g)));
    let full = scoped_expression(&scopes, expr);
    let limit = limit as i64;
    let mut args: Vec<&dyn ToSql> = vec![&full, &q.project_id, &limit];
    // "?4, ?5, ..." for `n` ids numbered after the `taken` parameters already bound.
    let placeholders = |taken: usize, n: usize| -> String {
        (taken + 1..=taken + n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = String::from(
        "SELECT bm25(chunks_fts, 1.0, 0.0) AS r, c.kind, c.project_id, c.source_id,
                c.file_path, c.filetype, c.chunk_index, c.text, c.start_char, c.end_char,
                c.chat_id, c.message_id, c.message_uuid
         FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid
         LEFT JOIN sources s ON c.kind = 'file' AND s.id = c.source_id
         WHERE chunks_fts MATCH ?1
           AND ((c.kind = 'chat' AND c.project_id = ?2",
    );
    if !q.exclude_chat_ids.is_empty() {
        let p = placeholders(args.len(), q.exclude_chat_ids.len());
        sql.push_str(&format!(" AND c.chat_id NOT IN ({p})"));
        args.extend(q.exclude_chat_ids.iter().map(|s| s as &dyn ToSql));
    }
    sql.push(')');
    // File chunks: only of a source's searchable generation (a rebuild in progress and
    // an old generation awaiting deletion stay invisible).
    if !sources.is_empty() {
        let p = placeholders(args.len(), sources.len());
        sql.push_str(&format!(
            " OR (c.kind = 'file' AND c.generation = s.generation AND s.id IN ({p}))"
        ));
        args.extend(sources.iter().map(|(id, _)| id as &dyn ToSql));
    }
    sql.push_str(") ORDER BY r, c.id LIMIT ?3");

    let mut stmt = conn.prepare_cached(&sql).ctx(context)?;
    let rows = stmt
        .query_map(args.as_slice(), |r| {
            let kind: String = r.get(1)?;
            let project: Option<String> = r.get(2)?;
            Ok(SearchHit {
                score: score(r.get(0)?),
                project_id: project.unwrap_or_else(|| q.project_id.clone()),
                source_id: r.get(3)?,
                file_path: r.get(4)?,
                filetype: r.get(5)?,
                chunk_index: r.get(6)?,
                text: r.get(7)?,
                start_char: r.get(8)?,
                end_char: r.get(9)?,
                source_type: if kind == "chat" {
                    SourceType::Chat
                } else {
                    SourceType::File
                },
                chat_id: r.get(10)?,
                message_id: r.get(11)?,
                message_uuid: r.get(12)?,
            })
        })
        .ctx(context)?;
    let hits = rows.collect::<Result<Vec<_>, _>>().ctx(context)?;
    drop(stmt);
    tx.commit().ctx(context)?;
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_quotes_every_word() {
        assert_eq!(match_expression(""), None);
        assert_eq!(match_expression("  \t\n "), None);
        assert_eq!(match_expression("\"*-:^()"), None);
        assert_eq!(
            match_expression("foo AND \"bar\" NEAR(baz) foo"),
            Some("\"foo\" OR \"AND\" OR \"bar\" OR \"NEAR\" OR \"baz\"".into())
        );
        let many = (0..100).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        let expr = match_expression(&many).expect("expr");
        assert_eq!(expr.matches(" OR ").count(), MAX_TERMS - 1);
    }

    #[test]
    fn score_is_monotone_in_unit_interval() {
        let xs = [0.0, -1e-9, -0.5, -1.0, -3.0, -10.0, -1e9];
        let scores: Vec<f64> = xs.iter().map(|&b| score(b)).collect();
        for w in scores.windows(2) {
            assert!(w[0] < w[1] || (w[0] == 0.0 && w[1] >= 0.0), "{scores:?}");
        }
        for s in scores
            .iter()
            .chain([score(f64::NAN), score(1.0), score(f64::NEG_INFINITY)].iter())
        {
            assert!((0.0..=1.0).contains(s));
        }
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
