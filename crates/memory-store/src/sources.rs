//! File sources: the public types ([`Source`], [`NewSource`], [`SourceStatus`]) and every
//! SQL statement on `sources` (create with a slug id and its first job, list with each
//! latest job in one query, delete with all its rows, recount totals). It must not walk
//! or read files (the indexer crate does) nor open transactions itself (callers run it
//! inside the writer's transaction).

use rusqlite::{Connection, Row, params};

use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::file_jobs::{FileJob, FileJobKind, JOB_COLUMNS, enqueue, job_from};

/// A source's indexing state, as `GET /sources` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceStatus {
    /// Nothing running; the index is usable.
    Idle,
    /// A job is running for it.
    Indexing,
    /// The last job failed; see `last_error` (the previous index stays searchable).
    Error,
}

impl SourceStatus {
    /// The wire name: `idle`, `indexing` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Idle => "idle",
            SourceStatus::Indexing => "indexing",
            SourceStatus::Error => "error",
        }
    }

    fn parse(s: &str) -> SourceStatus {
        match s {
            "indexing" => SourceStatus::Indexing,
            "error" => SourceStatus::Error,
            _ => SourceStatus::Idle,
        }
    }
}

/// A registered directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `slug(display_name)-dir`, `-2`, `-3`... on collision.
    pub id: String,
    /// Shown to users.
    pub display_name: String,
    /// Absolute, resolved directory.
    pub root_path: String,
    /// The project whose searches include this source.
    pub project_id: String,
    /// Globs a file's relative path must match (default `**/*`).
    pub include_globs: Vec<String>,
    /// Globs excluding files and directories (gitignore syntax).
    pub exclude_globs: Vec<String>,
    /// Idle, indexing or error.
    pub status: SourceStatus,
    /// Files in the searchable generation.
    pub files_indexed: i64,
    /// Their bytes.
    pub bytes_indexed: i64,
    /// When the last job started.
    pub last_index_started_at: Option<String>,
    /// When the last job completed.
    pub last_index_completed_at: Option<String>,
    /// The last job's failure.
    pub last_error: Option<String>,
    /// When the source was added.
    pub created_at: String,
    /// The searchable generation.
    pub generation: i64,
    /// The newest job, if any.
    pub latest_job: Option<FileJob>,
}

/// What `add_source` needs; the caller has validated and resolved `root_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    /// Absolute, resolved directory.
    pub root_path: String,
    /// Shown to users; its slug makes the id.
    pub display_name: String,
    /// Defaults to `general` when empty.
    pub project_id: String,
    /// Empty means `["**/*"]`.
    pub include_globs: Vec<String>,
    /// Exclusions (gitignore syntax).
    pub exclude_globs: Vec<String>,
}

/// Python's `\w` on `str` (what the original's `re` module matches): `_`, or a letter
/// (general categories Lu, Ll, Lt, Lm, Lo), or a number (Nd, Nl, No). Python's
/// `str.isalnum` is exactly "alphabetic (L*) or numeric"; Rust's `char::is_alphanumeric`
/// differs (it also takes marks with the Other_Alphabetic property, e.g. Devanagari
/// vowel signs, which Python drops), hence the general category.
pub(crate) fn is_python_word_char(c: char) -> bool {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    c == '_'
        || matches!(
            get_general_category(c),
            G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
                | G::DecimalNumber
                | G::LetterNumber
                | G::OtherNumber
        )
}

/// Python's `\s` on `str` (`str.isspace`): Unicode White_Space plus the four ASCII
/// separators U+001C..U+001F, which Python counts as whitespace and Rust does not.
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The original's `slugify` (ChatDO `memory_service/config.py`), exactly:
/// `re.sub(r'[-\s]+', '-', re.sub(r'[^\w\s-]', '', text.lower())).strip('-')`.
/// Lowercase (full Unicode mapping, as Python's `str.lower`); drop every character
/// that is not a word character, whitespace or `-`; each run of whitespace and `-`
/// becomes one `-`; no `-` at either end. May be empty (e.g. `"!!!"`); no length cap.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in name.to_lowercase().chars() {
        if is_python_word_char(c) {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c);
        } else if c == '-' || is_python_space(c) {
            gap = true;
        }
    }
    out
}

/// The id the original gives a new source named `display_name`: `slug + "-dir"`
/// (so `"-dir"` when the slug is empty, as the original), before collision suffixes.
pub fn source_id_base(display_name: &str) -> String {
    format!("{}-dir", slug(display_name))
}

/// Longest client-chosen source id, in bytes.
pub const MAX_SOURCE_ID_BYTES: usize = 128;

/// Checks a client-chosen source id (`POST /sources` with `source_id`): 1 to
/// [`MAX_SOURCE_ID_BYTES`] bytes, no whitespace, no control characters and none of
/// `/ \ ? # %` (the id travels in URL paths: `/sources/{id}`, `/filetree/{id}`).
pub fn validate_source_id(id: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        Err(StoreError::InvalidInput(format!(
            "source_id {id:?} is not valid: {why}"
        )))
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > MAX_SOURCE_ID_BYTES {
        return bad(&format!("it is longer than {MAX_SOURCE_ID_BYTES} bytes"));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || "/\\?#%".contains(c))
    {
        return bad(&format!(
            "it contains {c:?} (whitespace, control characters and / \\ ? # % are not allowed)"
        ));
    }
    Ok(())
}

fn globs_json(globs: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(globs).map_err(|e| StoreError::Internal(format!("encoding globs: {e}")))
}

fn globs_parse(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

const SOURCE_COLUMNS: &str = "s.id, s.display_name, s.root_path, s.project_id, s.include_globs,
    s.exclude_globs, s.status, s.files_indexed, s.bytes_indexed, s.last_index_started_at,
    s.last_index_completed_at, s.last_error, s.created_at, s.generation";

/// Reads a source from [`SOURCE_COLUMNS`] followed by an optional [`JOB_COLUMNS`].
fn source_from(r: &Row<'_>, with_job: bool) -> rusqlite::Result<Source> {
    let latest_job = if with_job && r.get::<_, Option<i64>>(14)?.is_some() {
        Some(job_from(r, 14)?)
    } else {
        None
    };
    Ok(Source {
        id: r.get(0)?,
        display_name: r.get(1)?,
        root_path: r.get(2)?,
        project_id: r.get(3)?,
        include_globs: globs_parse(&r.get::<_, String>(4)?),
        exclude_globs: globs_parse(&r.get::<_, String>(5)?),
        status: SourceStatus::parse(&r.get::<_, String>(6)?),
        files_indexed: r.get(7)?,
        bytes_indexed: r.get(8)?,
        last_index_started_at: r.get(9)?,
        last_index_completed_at: r.get(10)?,
        last_error: r.get(11)?,
        created_at: r.get(12)?,
        generation: r.get(13)?,
        latest_job,
    })
}

/// Sources (all, or the one with `id`), each with its newest job, in one query.
fn select_sources(conn: &Connection, id: Option<&str>) -> Result<Vec<Source>, StoreError> {
    let sql = format!(
        "SELECT {SOURCE_COLUMNS}, {JOB_COLUMNS} FROM sources s
         LEFT JOIN file_index_jobs j ON j.id = (SELECT max(id) FROM file_index_jobs WHERE source_id = s.id)
         WHERE ?1 IS NULL OR s.id = ?1 ORDER BY s.id"
    );
    let context = "while reading sources";
    let mut stmt = conn.prepare_cached(&sql).ctx(context)?;
    let rows = stmt.query_map([id], |r| source_from(r, true)).ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

/// Every source ordered by id, each with its latest job.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Source>, StoreError> {
    select_sources(conn, None)
}

/// One source with its latest job.
pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<Source>, StoreError> {
    Ok(select_sources(conn, Some(id))?.pop())
}

/// Inserts the source and its first (sync) job. Its id is `wanted` (validated by the
/// caller; [`StoreError::Conflict`] when taken), else [`source_id_base`] of the display
/// name with `-2`, `-3`... on collision.
pub(crate) fn insert(
    conn: &Connection,
    new: &NewSource,
    wanted: Option<&str>,
) -> Result<(Source, i64), StoreError> {
    let context = "while adding a source";
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM sources WHERE id = ?1")
        .ctx(context)?;
    let id = match wanted {
        Some(id) => {
            if exists.exists([id]).ctx(context)? {
                return Err(StoreError::Conflict(format!(
                    "Source '{id}' already exists; delete it first or choose another source_id"
                )));
            }
            id.to_string()
        }
        None => {
            let base = source_id_base(&new.display_name);
            let mut id = base.clone();
            let mut n = 2;
            while exists.exists([&id]).ctx(context)? {
                id = format!("{base}-{n}");
                n += 1;
            }
            id
        }
    };
    let include = if new.include_globs.is_empty() {
        vec!["**/*".to_string()]
    } else {
        new.include_globs.clone()
    };
    let project = if new.project_id.trim().is_empty() {
        "general"
    } else {
        new.project_id.as_str()
    };
    conn.prepare_cached(
        "INSERT INTO sources (id, display_name, root_path, project_id, include_globs,
                exclude_globs, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .ctx(context)?
    .execute(params![
        id,
        new.display_name,
        new.root_path,
        project,
        globs_json(&include)?,
        globs_json(&new.exclude_globs)?,
        clock::now_iso()
    ])
    .ctx(context)?;
    let job = enqueue(conn, &id, FileJobKind::Sync)?;
    let source = get(conn, &id)?.ok_or_else(|| StoreError::Internal("source vanished".into()))?;
    Ok((source, job))
}

/// Deletes the source, its files, jobs and chunks; false when it does not exist.
pub(crate) fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let context = "while deleting a source";
    conn.prepare_cached("DELETE FROM chunks WHERE kind = 'file' AND source_id = ?1")
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    conn.prepare_cached("DELETE FROM garbage_generations WHERE source_id = ?1")
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    let n = conn
        .prepare_cached("DELETE FROM sources WHERE id = ?1")
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    Ok(n > 0)
}

/// Records that a source's root is gone: status `error` with `message` as `last_error`,
/// and, when its searchable generation has files, a fresh empty generation swapped in
/// (the old one becomes garbage, deleted in small batches later), so its files leave
/// search at once and the next sync indexes whatever is there again. Chat rows are not
/// touched. False when the source does not exist.
pub(crate) fn mark_missing(conn: &Connection, id: &str, message: &str) -> Result<bool, StoreError> {
    let context = "while recording a missing source folder";
    let n = conn
        .prepare_cached("UPDATE sources SET status = 'error', last_error = ?2 WHERE id = ?1")
        .ctx(context)?
        .execute(params![id, message])
        .ctx(context)?;
    if n == 0 {
        return Ok(false);
    }
    let has_files: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM files f JOIN sources s ON s.id = f.source_id
                            WHERE s.id = ?1 AND f.generation = s.generation)",
        )
        .ctx(context)?
        .query_row([id], |r| r.get(0))
        .ctx(context)?;
    if has_files {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO garbage_generations (source_id, generation)
             SELECT id, generation FROM sources WHERE id = ?1",
        )
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
        // SQLite evaluates every right-hand side on the old row: both become old max + 1.
        conn.prepare_cached(
            "UPDATE sources SET max_generation = max_generation + 1, generation = max_generation + 1
             WHERE id = ?1",
        )
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    }
    refresh_totals(conn, id)?;
    Ok(true)
}

/// Recomputes `files_indexed` and `bytes_indexed` from the searchable generation.
pub(crate) fn refresh_totals(conn: &Connection, source_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE sources SET
            files_indexed = (SELECT count(*) FROM files f
                             WHERE f.source_id = sources.id AND f.generation = sources.generation),
            bytes_indexed = (SELECT coalesce(sum(size), 0) FROM files f
                             WHERE f.source_id = sources.id AND f.generation = sources.generation)
         WHERE id = ?1",
    )
    .ctx("while counting a source's files")?
    .execute([source_id])
    .ctx("while counting a source's files")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The cases of issue 10 and the original's own behaviour.
    #[test]
    fn ids_follow_the_original() {
        for (name, id) in [
            ("Impact Doc: report.pdf", "impact-doc-reportpdf-dir"),
            ("Ünïcödé Name", "ünïcödé-name-dir"),
            ("東京", "東京-dir"),
            ("a_b c", "a_b-c-dir"),
            ("My Docs!", "my-docs-dir"),
            ("  -- a -- b --  ", "a-b-dir"),
            ("a.b", "ab-dir"),
            ("a . b", "a-b-dir"),
            ("Été 2025/notes", "été-2025notes-dir"),
            ("x\u{1c}y", "x-y-dir"),
            ("हिन्दी", "हनद-dir"),
            ("ΟΔΟΣ", "οδος-dir"),
            ("İx", "ix-dir"),
            ("Ⓐb", "b-dir"),
            ("½x", "½x-dir"),
            ("ǅz", "ǆz-dir"),
            // Slugs to nothing: the original then uses "-dir" as it is.
            ("!!!", "-dir"),
            ("   ", "-dir"),
            ("", "-dir"),
        ] {
            assert_eq!(source_id_base(name), id, "{name:?}");
        }
    }

    #[test]
    fn given_ids_are_checked() {
        for ok in [
            "drr-repo",
            "a",
            "東京-dir",
            "x.y_z",
            &"a".repeat(MAX_SOURCE_ID_BYTES),
        ] {
            validate_source_id(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "",
            " a",
            "a b",
            "a/b",
            "a\\b",
            "a?b",
            "a#b",
            "a%b",
            "a\u{7}",
            &"a".repeat(MAX_SOURCE_ID_BYTES + 1),
        ] {
            assert!(
                matches!(validate_source_id(bad), Err(StoreError::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// Whatever the name: no `-` at either end, never two in a row, only word
        /// characters and `-`, and slugging a slug changes nothing.
        #[test]
        fn slug_shape(name in any::<String>()) {
            let s = slug(&name);
            prop_assert!(!s.starts_with('-') && !s.ends_with('-'), "{s:?}");
            prop_assert!(!s.contains("--"), "{s:?}");
            prop_assert!(s.chars().all(|c| c == '-' || is_python_word_char(c)), "{s:?}");
            prop_assert_eq!(slug(&s), s.clone());
            prop_assert!(source_id_base(&name).ends_with("-dir"));
        }

        /// The slug keeps exactly the word characters of the lowercased name, in order.
        #[test]
        fn slug_keeps_the_word_characters(name in "[a-zA-Z0-9_ .:/!é東Ü\\-]{0,40}") {
            let kept: String = name.to_lowercase().chars().filter(|&c| is_python_word_char(c)).collect();
            prop_assert_eq!(slug(&name).replace('-', ""), kept);
        }

        /// Words separated by any mix of spaces and dashes join with one `-`.
        #[test]
        fn separators_become_one_dash(words in prop::collection::vec("[a-z0-9_]{1,8}", 1..6),
                                      seps in prop::collection::vec("[ \t\n-]{1,4}", 6)) {
            let mut name = String::new();
            for (i, w) in words.iter().enumerate() {
                name.push_str(&seps[i]);
                name.push_str(w);
            }
            name.push_str(&seps[5]);
            prop_assert_eq!(slug(&name), words.join("-"));
        }
    }
}
