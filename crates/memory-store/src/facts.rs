//! Project facts: typed key/value statements about a project ("the user's favourite
//! colour is blue"), each with its provenance (the chat message it came from) and a
//! history per key where the latest stored fact wins. ChatDO's librarian reads them
//! through `POST /search-facts`; in the original its backend wrote them straight into
//! the service's SQLite files, here they come only through the API (`POST /facts`),
//! so there is one writer.
//!
//! Matching keeps the original's rule (chatdo-data.md B.10) so we never find less
//! than it did: the query's `\w+` words, lowercased, minus a 14-word stop list and
//! words of 2 characters or fewer (else the whole query), each matched with SQLite
//! `LIKE '%word%'` against the key or the value, current facts only. The original
//! then ordered by date alone; we rank by how well the words match first (a whole
//! word of the key beats one of the value, which beats a part of a word), then by
//! date, and cut at `limit` after ranking.
//!
//! With an embedding model, each fact also has a vector (`fact_vectors`, filled by the
//! embedding stage from [`fact_text`]); a search then also finds the current facts
//! close in meaning to the query (cosine at least [`FACT_COSINE_MIN`]: "favourite
//! colour" finds `user.favorites.color`, which no `LIKE` matches) and ranks by words
//! and meaning together ([`FACT_WORDS_WEIGHT`]).
//!
//! Functions here run inside the writer's transaction (writes) or on a reader.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use crate::chat::{MAX_CONTENT_BYTES, MAX_ID_BYTES};
use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::sources::is_python_word_char;

/// The value types the original accepts (its CHECK constraint).
pub const VALUE_TYPES: [&str; 5] = ["string", "number", "bool", "date", "json"];

/// The original's stop list for fact queries (chatdo-data.md B.10).
const STOP_WORDS: [&str; 14] = [
    "what", "is", "my", "your", "the", "a", "an", "do", "you", "remember", "know", "tell", "me", "about",
];

/// `POST /facts`'s body.
#[derive(Debug, Clone, PartialEq)]
pub struct FactIn {
    /// The project (non-empty).
    pub project_id: String,
    /// The key, e.g. `user.favorites.color.1` (non-empty).
    pub fact_key: String,
    /// The value as text (at most 1 MiB).
    pub value_text: String,
    /// One of [`VALUE_TYPES`].
    pub value_type: String,
    /// In [0, 1]; 1.0 when absent.
    pub confidence: Option<f64>,
    /// The chat message the fact came from, if any.
    pub source_message_uuid: Option<String>,
    /// ISO-8601, kept as sent; the storing time when absent.
    pub effective_at: Option<String>,
}

/// A stored fact, with the wire's field names.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// UUIDv4.
    pub fact_id: String,
    /// The project.
    pub project_id: String,
    /// The key.
    pub fact_key: String,
    /// The value as text.
    pub value_text: String,
    /// One of [`VALUE_TYPES`].
    pub value_type: String,
    /// In [0, 1].
    pub confidence: f64,
    /// The chat message it came from, if any.
    pub source_message_uuid: Option<String>,
    /// When it was stored (service local time, ISO-8601).
    pub created_at: String,
    /// When it holds from.
    pub effective_at: String,
    /// The fact of the same key that was current when this one was stored.
    pub supersedes_fact_id: Option<String>,
    /// Whether it is the key's latest fact.
    pub is_current: bool,
}

/// `POST /search-facts`'s body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactQuery {
    /// The project (non-empty).
    pub project_id: String,
    /// Free text.
    pub query: String,
    /// At most this many facts (1..=[`crate::MAX_LIMIT`]).
    pub limit: usize,
    /// Facts stored from this message are left out (the turn that just stored them).
    pub exclude_message_uuid: Option<String>,
}

const COLUMNS: &str = "fact_id, project_id, fact_key, value_text, value_type, confidence,
    source_message_uuid, created_at, effective_at, supersedes_fact_id, is_current";

fn fact_from(r: &Row<'_>) -> rusqlite::Result<Fact> {
    Ok(Fact {
        fact_id: r.get(0)?,
        project_id: r.get(1)?,
        fact_key: r.get(2)?,
        value_text: r.get(3)?,
        value_type: r.get(4)?,
        confidence: r.get(5)?,
        source_message_uuid: r.get(6)?,
        created_at: r.get(7)?,
        effective_at: r.get(8)?,
        supersedes_fact_id: r.get(9)?,
        is_current: r.get::<_, i64>(10)? != 0,
    })
}

fn invalid(msg: String) -> StoreError {
    StoreError::InvalidInput(msg)
}

/// Checks a project id the way every facts endpoint needs it.
pub(crate) fn require_project(project_id: &str) -> Result<(), StoreError> {
    if project_id.trim().is_empty() {
        return Err(invalid("project_id is required and cannot be empty".into()));
    }
    if project_id.len() > MAX_ID_BYTES {
        return Err(invalid(format!("project_id is longer than {MAX_ID_BYTES} bytes")));
    }
    Ok(())
}

/// Checks a fact and normalises its message UUID to the hyphenated lower-case form.
pub(crate) fn validate(f: &mut FactIn) -> Result<(), StoreError> {
    require_project(&f.project_id)?;
    if f.fact_key.trim().is_empty() {
        return Err(invalid("fact_key is required and cannot be empty".into()));
    }
    if f.fact_key.len() > MAX_ID_BYTES {
        return Err(invalid(format!("fact_key is longer than {MAX_ID_BYTES} bytes")));
    }
    if f.value_text.len() > MAX_CONTENT_BYTES {
        return Err(invalid(format!(
            "value_text is larger than {MAX_CONTENT_BYTES} bytes"
        )));
    }
    if !VALUE_TYPES.contains(&f.value_type.as_str()) {
        return Err(invalid(format!(
            "value_type must be one of {} (got {:?})",
            VALUE_TYPES.join(", "),
            f.value_type
        )));
    }
    if let Some(c) = f.confidence
        && !(c.is_finite() && (0.0..=1.0).contains(&c))
    {
        return Err(invalid(format!("confidence must be between 0 and 1 (got {c})")));
    }
    if let Some(t) = &f.effective_at
        && !clock::is_iso8601(t)
    {
        return Err(invalid(format!(
            "effective_at is not an ISO-8601 date-time: {:?}",
            t.chars().take(64).collect::<String>()
        )));
    }
    if let Some(u) = &f.source_message_uuid {
        let parsed =
            Uuid::parse_str(u).map_err(|_| invalid(format!("source_message_uuid is not a UUID: {u:?}")))?;
        f.source_message_uuid = Some(parsed.hyphenated().to_string());
    }
    Ok(())
}

/// Stores the fact as its key's current one: the key's previous facts stop being
/// current and the new one names the one it supersedes. In the caller's transaction.
pub(crate) fn insert(conn: &Connection, f: &FactIn) -> Result<Fact, StoreError> {
    let context = "while storing a fact";
    let previous: Option<String> = conn
        .prepare_cached(
            "SELECT fact_id FROM project_facts
             WHERE project_id = ?1 AND fact_key = ?2 AND is_current = 1
             ORDER BY seq DESC LIMIT 1",
        )
        .ctx(context)?
        .query_row(params![f.project_id, f.fact_key], |r| r.get(0))
        .optional()
        .ctx(context)?;
    conn.prepare_cached(
        "UPDATE project_facts SET is_current = 0
         WHERE project_id = ?1 AND fact_key = ?2 AND is_current = 1",
    )
    .ctx(context)?
    .execute(params![f.project_id, f.fact_key])
    .ctx(context)?;
    let now = clock::now_iso();
    let fact = Fact {
        fact_id: Uuid::new_v4().hyphenated().to_string(),
        project_id: f.project_id.clone(),
        fact_key: f.fact_key.clone(),
        value_text: f.value_text.clone(),
        value_type: f.value_type.clone(),
        confidence: f.confidence.unwrap_or(1.0),
        source_message_uuid: f.source_message_uuid.clone(),
        effective_at: f.effective_at.clone().unwrap_or_else(|| now.clone()),
        created_at: now,
        supersedes_fact_id: previous,
        is_current: true,
    };
    conn.prepare_cached(
        "INSERT INTO project_facts (fact_id, project_id, fact_key, value_text, value_type,
                confidence, source_message_uuid, created_at, effective_at, supersedes_fact_id,
                is_current)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)",
    )
    .ctx(context)?
    .execute(params![
        fact.fact_id,
        fact.project_id,
        fact.fact_key,
        fact.value_text,
        fact.value_type,
        fact.confidence,
        fact.source_message_uuid,
        fact.created_at,
        fact.effective_at,
        fact.supersedes_fact_id,
    ])
    .ctx(context)?;
    Ok(fact)
}

/// The project's facts: current ones only, or every one (`include_history`), by key,
/// newest first within a key.
pub(crate) fn list(
    conn: &Connection,
    project_id: &str,
    include_history: bool,
) -> Result<Vec<Fact>, StoreError> {
    let context = "while listing facts";
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM project_facts
             WHERE project_id = ?1 AND (?2 OR is_current = 1)
             ORDER BY fact_key, seq DESC"
        ))
        .ctx(context)?;
    let rows = stmt
        .query_map(params![project_id, include_history], fact_from)
        .ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

/// Deletes the facts with these ids. Where a deleted fact was its key's current one,
/// the key's newest remaining fact becomes current again; facts that superseded a
/// deleted one now supersede what it superseded, so each key's chain stays whole.
/// Returns how many were deleted.
fn remove(conn: &Connection, ids: &[String]) -> Result<u64, StoreError> {
    let context = "while deleting facts";
    let mut n = 0;
    for id in ids {
        let row: Option<(String, String, Option<String>, bool)> = conn
            .prepare_cached(
                "SELECT project_id, fact_key, supersedes_fact_id, is_current
                 FROM project_facts WHERE fact_id = ?1",
            )
            .ctx(context)?
            .query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
            })
            .optional()
            .ctx(context)?;
        let Some((project, key, supersedes, current)) = row else {
            continue;
        };
        conn.prepare_cached("DELETE FROM project_facts WHERE fact_id = ?1")
            .ctx(context)?
            .execute([id])
            .ctx(context)?;
        n += 1;
        conn.prepare_cached("UPDATE project_facts SET supersedes_fact_id = ?2 WHERE supersedes_fact_id = ?1")
            .ctx(context)?
            .execute(params![id, supersedes])
            .ctx(context)?;
        if current {
            conn.prepare_cached(
                "UPDATE project_facts SET is_current = 1 WHERE seq =
                    (SELECT max(seq) FROM project_facts WHERE project_id = ?1 AND fact_key = ?2)",
            )
            .ctx(context)?
            .execute(params![project, key])
            .ctx(context)?;
        }
    }
    Ok(n)
}

/// `DELETE /facts/{id}`: false when there is no such fact.
pub(crate) fn delete(conn: &Connection, fact_id: &str) -> Result<bool, StoreError> {
    Ok(remove(conn, &[fact_id.to_string()])? > 0)
}

/// Deletes the facts whose source message belongs to the chat (run by the chat
/// deletion, in its transaction, before the messages go). Returns how many.
pub(crate) fn delete_for_chat(conn: &Connection, project_id: &str, chat_id: &str) -> Result<u64, StoreError> {
    let context = "while finding a chat's facts";
    let ids = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT fact_id FROM project_facts WHERE source_message_uuid IN
                    (SELECT message_uuid FROM chat_messages WHERE project_id = ?1 AND chat_id = ?2)
                 ORDER BY seq DESC",
            )
            .ctx(context)?;
        let rows = stmt
            .query_map([project_id, chat_id], |r| r.get::<_, String>(0))
            .ctx(context)?;
        rows.collect::<Result<Vec<_>, _>>().ctx(context)?
    };
    remove(conn, &ids)
}

/// The original's keywords: lowercase, `\w+` words not in the stop list and longer
/// than 2 characters; when none is left, the whole lowercased query. Deduplicated,
/// in order.
pub(crate) fn keywords(query: &str) -> Vec<String> {
    let lower = query.to_lowercase();
    let mut out: Vec<String> = Vec::new();
    for word in lower.split(|c: char| !is_python_word_char(c)) {
        if word.chars().count() > 2 && !STOP_WORDS.contains(&word) && !out.iter().any(|w| w == word) {
            out.push(word.to_string());
        }
    }
    if out.is_empty() {
        out.push(lower);
    }
    out
}

/// How well a fact matches the keywords: per keyword, 3 when it is a whole word of
/// the key (keys read `user.favorites.color.1`), 2 when a whole word of the value, 1
/// when only a part of a word (case-insensitive, any script), 0 when only the
/// original's `LIKE` wildcards made it match.
fn score(f: &Fact, keywords: &[String]) -> u32 {
    let key = f.fact_key.to_lowercase();
    let value = f.value_text.to_lowercase();
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !is_python_word_char(c))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (key_words, value_words) = (words(&key), words(&value));
    keywords
        .iter()
        .map(|k| {
            if key_words.iter().any(|w| w == k) {
                3
            } else if value_words.iter().any(|w| w == k) {
                2
            } else if key.contains(k.as_str()) || value.contains(k.as_str()) {
                1
            } else {
                0
            }
        })
        .sum()
}

/// Weight of the words part in a fact's score next to the meaning part's `1 -
/// FACT_WORDS_WEIGHT`, when a query vector is given. Equal weights: a judgement, not
/// tuned (no development data for facts); words alone decide without a model.
pub const FACT_WORDS_WEIGHT: f64 = 0.5;

/// Cosine (all-MiniLM-L6-v2) from which a fact that no keyword matches is still found
/// by its meaning. Paraphrases of a fact score about 0.5-0.8 there, unrelated facts
/// below 0.3.
pub const FACT_COSINE_MIN: f32 = 0.4;

/// The text a fact is embedded as: the words of its key (`user.favorites.color.1` →
/// `user favorites color`, numbers dropped) and its value: `user favorites color:
/// blue`.
pub fn fact_text(key: &str, value: &str) -> String {
    let words: Vec<&str> = key
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    format!("{}: {value}", words.join(" "))
}

/// One fact waiting for its embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFact {
    /// `project_facts.seq`.
    pub seq: i64,
    /// [`fact_text`] of the fact.
    pub text: String,
}

/// Up to `limit` facts (current or not: a deleted newer fact makes an older one current
/// again) without a vector of `model`, oldest first.
pub(crate) fn pending_vectors(
    conn: &Connection,
    model: &str,
    limit: usize,
) -> Result<Vec<PendingFact>, StoreError> {
    let context = "while listing facts to embed";
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, fact_key, value_text FROM project_facts f
             WHERE NOT EXISTS (SELECT 1 FROM fact_vectors v WHERE v.seq = f.seq AND v.model = ?1)
             ORDER BY seq LIMIT ?2",
        )
        .ctx(context)?;
    let rows = stmt
        .query_map(params![model, limit as i64], |r| {
            let (key, value): (String, String) = (r.get(1)?, r.get(2)?);
            Ok(PendingFact {
                seq: r.get(0)?,
                text: fact_text(&key, &value),
            })
        })
        .ctx(context)?;
    rows.collect::<Result<_, _>>().ctx(context)
}

/// Stores fact vectors of `model` (replacing another model's) for facts that still
/// exist; how many were stored.
pub(crate) fn write_vectors(
    conn: &Connection,
    model: &str,
    rows: Vec<(i64, Vec<f32>)>,
) -> Result<usize, StoreError> {
    let context = "while storing fact vectors";
    let mut insert = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO fact_vectors (seq, model, vector)
             SELECT seq, ?2, ?3 FROM project_facts WHERE seq = ?1",
        )
        .ctx(context)?;
    let mut stored = 0;
    for (seq, v) in rows {
        stored += insert
            .execute(params![seq, model, crate::vectors::to_blob(&v)])
            .ctx(context)?;
    }
    Ok(stored)
}

/// `POST /search-facts`: the current facts matching the original's rule and, with
/// `semantic` (the query's L2-normalised vector and the model that made it), those whose
/// vector's cosine with it is at least [`FACT_COSINE_MIN`]. Ranked by how well the words
/// match ([`score`] over its most, 3 per keyword) and, with `semantic`, by meaning (the
/// cosine mapped as `/search` maps it), [`FACT_WORDS_WEIGHT`] between them; then
/// newest (`effective_at`, then `created_at`); at most `limit`.
pub(crate) fn search(
    conn: &Connection,
    q: &FactQuery,
    semantic: Option<(&[f32], &str)>,
) -> Result<Vec<Fact>, StoreError> {
    let context = "while searching facts";
    let kws = keywords(&q.query);
    let json =
        serde_json::to_string(&kws).map_err(|e| StoreError::Internal(format!("encoding keywords: {e}")))?;
    // The original's `LIKE` patterns, unescaped as it built them (so `_` and `%` in
    // a keyword are wildcards there too): the same rows match.
    let like = "EXISTS (SELECT 1 FROM json_each(?3) k
                        WHERE f.fact_key LIKE '%' || k.value || '%'
                           OR f.value_text LIKE '%' || k.value || '%')";
    let (vector, model) = semantic.unwrap_or((&[], ""));
    // Without a vector only the `LIKE` matches; with one, every current fact of the
    // project with a vector of the model too (a project holds hundreds of facts, not
    // millions: read and compared here, nothing kept in memory).
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, f.seq, {like} AS matched, v.vector FROM project_facts f
             LEFT JOIN fact_vectors v ON v.seq = f.seq AND v.model = ?4
             WHERE project_id = ?1 AND is_current = 1
               AND (?2 IS NULL OR source_message_uuid IS NULL OR source_message_uuid <> ?2)
               AND ({like} OR v.vector IS NOT NULL)"
        ))
        .ctx(context)?;
    let rows = stmt
        .query_map(params![q.project_id, q.exclude_message_uuid, json, model], |r| {
            Ok((
                fact_from(r)?,
                r.get::<_, i64>(11)?,
                r.get::<_, bool>(12)?,
                r.get::<_, Option<Vec<u8>>>(13)?,
            ))
        })
        .ctx(context)?;
    let most = 3.0 * kws.len().max(1) as f64;
    let mut hits: Vec<(f64, Fact, i64)> = Vec::new();
    for row in rows {
        let (f, seq, matched, blob) = row.ctx(context)?;
        let cosine = blob
            .and_then(|b| crate::vectors::from_blob(&b, vector.len()))
            .map(|v| crate::vectors::dot(vector, &v));
        if !matched && cosine.is_none_or(|c| c < FACT_COSINE_MIN) {
            continue;
        }
        let s = fact_score(&f, &kws, most, matched, cosine, semantic.is_some());
        hits.push((s, f, seq));
    }
    Ok(best_facts(hits, q.limit))
}

/// A matching fact's score: its share of the keywords' best score (`most`) when its words
/// `matched`, blended with its cosine mapped to [0, 1] when searched `with_vector`.
fn fact_score(
    f: &Fact,
    kws: &[String],
    most: f64,
    matched: bool,
    cosine: Option<f32>,
    with_vector: bool,
) -> f64 {
    let words = if matched { score(f, kws) as f64 / most } else { 0.0 };
    if with_vector {
        let meaning = crate::search::cosine_score(cosine.unwrap_or(0.0) as f64);
        FACT_WORDS_WEIGHT * words + (1.0 - FACT_WORDS_WEIGHT) * meaning
    } else {
        words
    }
}

/// The `limit` best of `(score, fact, seq)`: highest score first, then the newest by
/// effective time, creation time and sequence number.
fn best_facts(mut hits: Vec<(f64, Fact, i64)>, limit: usize) -> Vec<Fact> {
    hits.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| b.1.effective_at.cmp(&a.1.effective_at))
            .then_with(|| b.1.created_at.cmp(&a.1.created_at))
            .then_with(|| b.2.cmp(&a.2))
    });
    hits.into_iter().take(limit).map(|(_, f, _)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_follow_the_original() {
        assert_eq!(keywords("What is my favorite color?"), ["favorite", "color"]);
        assert_eq!(keywords("Do you remember ME"), ["do you remember me"]);
        assert_eq!(
            keywords("tell me about the Café au lait, café!"),
            ["café", "lait"]
        );
        assert_eq!(keywords("user_name is"), ["user_name"]);
        assert_eq!(keywords(""), [""]);
        assert_eq!(keywords("東京タワー"), ["東京タワー"]);
    }

    #[test]
    fn scores_prefer_key_words_then_value_words_then_parts() {
        let fact = |key: &str, value: &str| Fact {
            fact_id: String::new(),
            project_id: String::new(),
            fact_key: key.into(),
            value_text: value.into(),
            value_type: "string".into(),
            confidence: 1.0,
            source_message_uuid: None,
            created_at: String::new(),
            effective_at: String::new(),
            supersedes_fact_id: None,
            is_current: true,
        };
        let k = vec!["color".to_string()];
        assert_eq!(score(&fact("user.favorites.color.1", "blue"), &k), 3);
        assert_eq!(score(&fact("user.car", "a red color"), &k), 2);
        assert_eq!(score(&fact("user.car", "COLORFUL"), &k), 1);
        assert_eq!(score(&fact("user.car", "colxr"), &["col_r".to_string()]), 0);
    }
}
