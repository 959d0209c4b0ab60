//! Search: turning user text into a safe FTS5 query, running it over chat and file
//! chunks with one BM25 ranking, and mapping BM25 to a score in [0, 1]. User text is
//! never passed to FTS5 as syntax: it is split into words here and every word is quoted,
//! so operators, quotes and stray punctuation are plain words or ignored. Read-only.

use rusqlite::Connection;
use rusqlite::types::ToSql;

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

/// The ids among `ids` that name existing sources. ChatDO's client sends
/// `source_ids=[project_id]` when it has none, so ids that are not sources are dropped,
/// and when none is left the project's own sources are searched.
fn existing_sources(conn: &Connection, ids: &[String]) -> Result<Vec<String>, StoreError> {
    let context = "while resolving source_ids";
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM sources WHERE id = ?1")
        .ctx(context)?;
    let mut found = Vec::new();
    for id in ids {
        if !found.contains(id) && stmt.exists([id]).ctx(context)? {
            found.push(id.clone());
        }
    }
    Ok(found)
}

/// Runs the search on a read connection: the project's chat chunks (minus
/// `exclude_chat_ids`) and the file chunks of the named existing sources, or, when no
/// named id is an existing source (or none is named), of the sources attached to the
/// project; one BM25 ranking.
pub(crate) fn run(
    conn: &Connection,
    q: &SearchRequest,
    expr: &str,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    let limit = limit as i64;
    let named = existing_sources(conn, q.source_ids.as_deref().unwrap_or(&[]))?;
    let mut args: Vec<&dyn ToSql> = vec![&expr, &q.project_id, &limit];
    // "?4, ?5, ..." for `n` ids numbered after the `taken` parameters already bound.
    let placeholders = |taken: usize, n: usize| -> String {
        (taken + 1..=taken + n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = String::from(
        "SELECT bm25(chunks_fts), c.kind, c.project_id, c.source_id, c.file_path, c.filetype,
                c.chunk_index, c.text, c.start_char, c.end_char, c.chat_id, c.message_id,
                c.message_uuid
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
    sql.push_str(" OR (c.kind = 'file' AND c.generation = s.generation AND ");
    if named.is_empty() {
        sql.push_str("s.project_id = ?2)");
    } else {
        let p = placeholders(args.len(), named.len());
        sql.push_str(&format!("s.id IN ({p}))"));
        args.extend(named.iter().map(|s| s as &dyn ToSql));
    }
    sql.push_str(") ORDER BY bm25(chunks_fts), c.id LIMIT ?3");

    let context = "while searching";
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
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
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
