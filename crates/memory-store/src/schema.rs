//! Schema migrations, versioned by `PRAGMA user_version`, each applied in its own
//! transaction. It owns table definitions only; it must not hold the features' queries
//! (those live next to their feature), so a later migration (file sources) can be
//! appended here without touching anything else. See [`V1`] for why FTS5 uses external
//! content, [`V3`] for the scope column that keeps searches to their project/sources.

use rusqlite::Connection;

use crate::error::{SqlContext, StoreError};

/// Version 1: chat messages, their index jobs, and the shared `chunks` + `chunks_fts`.
///
/// `chunks` is designed for both kinds of searchable text: `kind = 'chat'` rows carry
/// project/chat/message columns; `kind = 'file'` rows (a later migration adds `sources`,
/// `files` and file index jobs) carry `source_id`, `file_path`, `filetype`.
///
/// Why FTS5 with *external content* (`content='chunks'`) and triggers: the chunk text is
/// stored once, in `chunks`, where search reads it back with all its metadata; the FTS
/// index holds only the inverted index keyed by `chunks.id`. The triggers keep it in sync
/// for every insert/update/delete of a chunk, whoever does it (chat stage, chat delete,
/// the later file indexer), so no code path can forget the FTS side. A contentless table
/// could not return the text and would still need the old text to delete a row.
const V1: &str = r#"
CREATE TABLE chat_messages (
    message_uuid  TEXT PRIMARY KEY NOT NULL,
    project_id    TEXT NOT NULL,
    chat_id       TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    role          TEXT NOT NULL,
    content       TEXT NOT NULL,
    timestamp     TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (project_id, chat_id, message_id)
);

CREATE TABLE chat_index_jobs (
    job_id           TEXT PRIMARY KEY NOT NULL,
    message_uuid     TEXT NOT NULL REFERENCES chat_messages(message_uuid) ON DELETE CASCADE,
    state            TEXT NOT NULL
                     CHECK (state IN ('queued', 'running', 'success', 'timeout', 'error')),
    enqueue_ms       INTEGER NOT NULL,
    enqueue_time     TEXT NOT NULL,
    start_time       TEXT,
    start_us         INTEGER,
    end_time         TEXT,
    duration         REAL,
    estimated_chunks INTEGER NOT NULL,
    computed_timeout REAL NOT NULL,
    error_message    TEXT
);
-- The indexer takes the oldest queued job: (state, rowid) order.
CREATE INDEX chat_index_jobs_state ON chat_index_jobs(state);
CREATE INDEX chat_index_jobs_message ON chat_index_jobs(message_uuid);

CREATE TABLE chunks (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('chat', 'file')),
    project_id   TEXT,
    source_id    TEXT NOT NULL,
    chat_id      TEXT,
    message_id   TEXT,
    message_uuid TEXT REFERENCES chat_messages(message_uuid) ON DELETE CASCADE,
    file_path    TEXT,
    filetype     TEXT,
    chunk_index  INTEGER NOT NULL,
    start_char   INTEGER NOT NULL,
    end_char     INTEGER NOT NULL,
    text         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    CHECK (kind <> 'chat' OR (project_id IS NOT NULL AND chat_id IS NOT NULL
                              AND message_uuid IS NOT NULL))
);
CREATE INDEX chunks_message ON chunks(message_uuid) WHERE message_uuid IS NOT NULL;
CREATE INDEX chunks_chat ON chunks(project_id, chat_id) WHERE kind = 'chat';
CREATE INDEX chunks_source ON chunks(source_id);

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
"#;

/// Version 2: file sources, their index jobs, the files table, and chunk generations.
///
/// Generations: a source's searchable chunks are those whose `generation` equals
/// `sources.generation`. A reindex builds the next generation (`max_generation + 1`,
/// never reused, so leftovers of an interrupted rebuild can never mix in) beside the old
/// one and swaps by updating `sources.generation` in one transaction; the old
/// generation's rows are then invisible and are deleted in small batches afterwards.
/// Chat chunks keep `generation` NULL.
///
/// `chunks.source_id` has no foreign key (chat chunks use `project-<id>`), so file chunks
/// are deleted explicitly with their source; `files` and `index_jobs` cascade.
const V2: &str = r#"
CREATE TABLE sources (
    id                      TEXT PRIMARY KEY NOT NULL,
    display_name            TEXT NOT NULL,
    root_path               TEXT NOT NULL,
    project_id              TEXT NOT NULL DEFAULT 'general',
    include_globs           TEXT NOT NULL DEFAULT '["**/*"]',
    exclude_globs           TEXT NOT NULL DEFAULT '[]',
    status                  TEXT NOT NULL DEFAULT 'idle'
                            CHECK (status IN ('idle', 'indexing', 'error')),
    files_indexed           INTEGER NOT NULL DEFAULT 0,
    bytes_indexed           INTEGER NOT NULL DEFAULT 0,
    last_index_started_at   TEXT,
    last_index_completed_at TEXT,
    last_error              TEXT,
    created_at              TEXT NOT NULL,
    generation              INTEGER NOT NULL DEFAULT 1,
    max_generation          INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX sources_project ON sources(project_id);

-- AUTOINCREMENT: a job id is never reused, even after its source is deleted.
CREATE TABLE index_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id       TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('sync', 'rebuild')),
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    generation      INTEGER,
    files_total     INTEGER,
    files_processed INTEGER NOT NULL DEFAULT 0,
    bytes_processed INTEGER NOT NULL DEFAULT 0,
    files_skipped   INTEGER NOT NULL DEFAULT 0,
    files_updated   INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    completed_at    TEXT,
    error           TEXT
);
CREATE INDEX index_jobs_source ON index_jobs(source_id, id);
CREATE INDEX index_jobs_status ON index_jobs(status);

CREATE TABLE files (
    source_id    TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    generation   INTEGER NOT NULL,
    rel_path     TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_count  INTEGER NOT NULL,
    indexed_at   TEXT NOT NULL,
    PRIMARY KEY (source_id, generation, rel_path)
) WITHOUT ROWID;

ALTER TABLE chunks ADD COLUMN generation INTEGER;
CREATE INDEX chunks_file ON chunks(source_id, generation, file_path) WHERE kind = 'file';

-- Generations no longer needed (replaced by a swap, or left by a failed rebuild), whose
-- rows are deleted in small batches so no single transaction holds the writer long.
CREATE TABLE garbage_generations (
    source_id  TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (source_id, generation)
) WITHOUT ROWID;
"#;

/// Version 3: a `scope` column in `chunks_fts`, so search restricts candidates inside
/// FTS instead of matching every project's chunks and filtering afterwards.
///
/// Each chunk's scope is one token: `c<hex(project_id)>` for chat chunks,
/// `s<hex(source_id)>g<generation>` for file chunks (hex: arbitrary ids become single
/// safe tokens; file scopes name the generation, so a rebuild in progress or an old
/// generation is outside the searched scopes). `chunks.scope` is a VIRTUAL generated
/// column (no storage, nothing for writers to fill in); FTS5's external content reads it
/// by name. Search queries `scope : (...) AND text : (...)` and weights the scope column
/// 0 in `bm25()`. The FTS table is recreated and rebuilt from `chunks` (on a large
/// database this takes a while, once, at open).
const V3: &str = r#"
ALTER TABLE chunks ADD COLUMN scope TEXT GENERATED ALWAYS AS (
    CASE kind
        WHEN 'chat' THEN 'c' || hex(project_id)
        ELSE 's' || hex(source_id) || 'g' || generation
    END
) VIRTUAL;

DROP TRIGGER chunks_fts_insert;
DROP TRIGGER chunks_fts_delete;
DROP TRIGGER chunks_fts_update;
DROP TABLE chunks_fts;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text,
    scope,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, scope) VALUES (new.id, new.text, new.scope);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, scope)
        VALUES ('delete', old.id, old.text, old.scope);
END;
CREATE TRIGGER chunks_fts_update
AFTER UPDATE OF text, kind, project_id, source_id, generation ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, scope)
        VALUES ('delete', old.id, old.text, old.scope);
    INSERT INTO chunks_fts(rowid, text, scope) VALUES (new.id, new.text, new.scope);
END;

INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');
"#;

/// Words in every script, and vectors: FTS5 indexes [`crate::terms::index_terms`] of
/// each chunk (CJK bigrams, identifier parts) instead of its raw text, and
/// `chunk_vectors` holds each chunk's embedding, tagged with the model that made it.
///
/// Why a *contentless* FTS table (`content=''`, `contentless_delete=1`, SQLite 3.43+):
/// the indexed terms are derived from `chunks.text` by a function of ours
/// (`memory_terms`, registered on the write connection by [`register_functions`]), so
/// there is no column for external content to read; storing them would double the text
/// on disk. Search reads text and metadata from `chunks` anyway. A connection without the
/// function (e.g. the `sqlite3` shell) cannot insert chunks: the trigger fails, nothing
/// is half-written. Deletes need no old values with `contentless_delete`.
///
/// `chunk_vectors`: one row per embedded chunk, removed with its chunk (cascade). A
/// chunk without a row for the current model is the embedding stage's durable work
/// queue: nothing to lose in a crash, a model change simply finds every chunk "missing".
/// `vector` is `dim` little-endian `f32`s, L2-normalised.
const TERMS_AND_VECTORS: &str = r#"
DROP TRIGGER chunks_fts_insert;
DROP TRIGGER chunks_fts_delete;
DROP TRIGGER chunks_fts_update;
DROP TABLE chunks_fts;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    terms,
    scope,
    content = '',
    contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, terms, scope)
        VALUES (new.id, memory_terms(new.text), new.scope);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
END;
CREATE TRIGGER chunks_fts_update
AFTER UPDATE OF text, kind, project_id, source_id, generation ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
    INSERT INTO chunks_fts(rowid, terms, scope)
        VALUES (new.id, memory_terms(new.text), new.scope);
END;

INSERT INTO chunks_fts(rowid, terms, scope) SELECT id, memory_terms(text), scope FROM chunks;

CREATE TABLE chunk_vectors (
    chunk_id INTEGER PRIMARY KEY NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    model    TEXT NOT NULL,
    vector   BLOB NOT NULL
);
CREATE INDEX chunk_vectors_model ON chunk_vectors(model);
"#;

/// Project facts (`POST /facts`, `/search-facts`): the original's `project_facts`
/// columns (chatdo-data.md B.3) plus `seq`, a never-reused insertion order that says
/// which fact of a key is the newest (latest stored wins) without trusting clocks.
/// `source_message_uuid` may be NULL (a fact not from a chat message) and has no
/// foreign key: a chat's facts are deleted with it explicitly, in its transaction.
const FACTS: &str = r#"
CREATE TABLE project_facts (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    fact_id             TEXT NOT NULL UNIQUE,
    project_id          TEXT NOT NULL,
    fact_key            TEXT NOT NULL,
    value_text          TEXT NOT NULL,
    value_type          TEXT NOT NULL
                        CHECK (value_type IN ('string', 'number', 'bool', 'date', 'json')),
    confidence          REAL NOT NULL DEFAULT 1.0,
    source_message_uuid TEXT,
    created_at          TEXT NOT NULL,
    effective_at        TEXT NOT NULL,
    supersedes_fact_id  TEXT,
    is_current          INTEGER NOT NULL DEFAULT 1 CHECK (is_current IN (0, 1))
);
CREATE INDEX project_facts_key ON project_facts(project_id, fact_key, is_current);
CREATE INDEX project_facts_message ON project_facts(source_message_uuid)
    WHERE source_message_uuid IS NOT NULL;
CREATE INDEX project_facts_current ON project_facts(project_id, is_current);
CREATE INDEX project_facts_supersedes ON project_facts(supersedes_fact_id)
    WHERE supersedes_fact_id IS NOT NULL;
"#;

/// Honest counts (issue 11): per job, the files and bytes whose text is searchable and
/// the files skipped by reason. `files_skipped` stays their sum.
const SKIP_COUNTS: &str = r#"
ALTER TABLE index_jobs ADD COLUMN files_indexed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN bytes_indexed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN skipped_binary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN skipped_too_large INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN skipped_unsupported INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN skipped_unreadable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN skipped_extraction_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE index_jobs ADD COLUMN skipped_ignored INTEGER NOT NULL DEFAULT 0;
"#;

/// Chunks per search scope, kept by triggers: BM25's `N` over the searched scopes in one
/// indexed lookup instead of counting the scope's FTS5 doclist (about 3 ms at 100,000
/// chunks, on every search). Triggers, like the FTS table's, so no write path can forget
/// it; a scope's row goes when its last chunk does.
const SCOPE_SIZES: &str = r#"
CREATE TABLE scope_sizes (
    scope  TEXT PRIMARY KEY NOT NULL,
    chunks INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER scope_sizes_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO scope_sizes(scope, chunks) VALUES (new.scope, 1)
        ON CONFLICT(scope) DO UPDATE SET chunks = chunks + 1;
END;
CREATE TRIGGER scope_sizes_delete AFTER DELETE ON chunks BEGIN
    UPDATE scope_sizes SET chunks = chunks - 1 WHERE scope = old.scope;
    DELETE FROM scope_sizes WHERE scope = old.scope AND chunks <= 0;
END;
CREATE TRIGGER scope_sizes_update
AFTER UPDATE OF kind, project_id, source_id, generation ON chunks
WHEN old.scope IS NOT new.scope BEGIN
    UPDATE scope_sizes SET chunks = chunks - 1 WHERE scope = old.scope;
    DELETE FROM scope_sizes WHERE scope = old.scope AND chunks <= 0;
    INSERT INTO scope_sizes(scope, chunks) VALUES (new.scope, 1)
        ON CONFLICT(scope) DO UPDATE SET chunks = chunks + 1;
END;

INSERT INTO scope_sizes(scope, chunks) SELECT scope, count(*) FROM chunks GROUP BY scope;
"#;

/// Facts by meaning (`/search-facts` with a model): one embedding per fact, tagged with
/// its model, filled by the embedding stage like `chunk_vectors` (a fact without a
/// vector of the current model is its durable work queue) and removed with its fact.
const FACT_VECTORS: &str = r#"
CREATE TABLE fact_vectors (
    seq    INTEGER PRIMARY KEY NOT NULL REFERENCES project_facts(seq) ON DELETE CASCADE,
    model  TEXT NOT NULL,
    vector BLOB NOT NULL
);
"#;

/// All migrations in order; index `i` brings the database to version `i + 1`.
/// Append new ones at the end; never edit a released one.
const MIGRATIONS: &[&str] = &[
    V1,
    V2,
    V3,
    TERMS_AND_VECTORS,
    FACTS,
    SKIP_COUNTS,
    SCOPE_SIZES,
    FACT_VECTORS,
    FILE_JOB_NAMES,
    FTS_ROWS_BY_WRITERS,
];

/// Names say chat or file: `index_jobs` (file sources' jobs, beside
/// `chat_index_jobs`) becomes `file_index_jobs`. `ALTER TABLE ... RENAME` carries the
/// rows, the foreign key to `sources`, and the AUTOINCREMENT counter (`sqlite_sequence`
/// is renamed with it, so a job id is still never reused); the indexes are recreated
/// under the new names.
const FILE_JOB_NAMES: &str = r#"
ALTER TABLE index_jobs RENAME TO file_index_jobs;
DROP INDEX index_jobs_source;
DROP INDEX index_jobs_status;
CREATE INDEX file_index_jobs_source ON file_index_jobs(source_id, id);
CREATE INDEX file_index_jobs_status ON file_index_jobs(status);
"#;

/// New chunks' FTS rows are inserted by the code that inserts the chunks, at the end of
/// its write request, no longer by a trigger: a trigger's statement savepoint made FTS5
/// flush a one-row segment per chunk (see the `fts` module). The delete and update
/// triggers stay. `usermerge` 2: the idle merging of [`crate::Store::merge_full_text_index`]
/// combines any two segments of a level (FTS5's default waits for 4).
const FTS_ROWS_BY_WRITERS: &str = r#"
DROP TRIGGER chunks_fts_insert;
INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('usermerge', 2);
"#;

/// Registers the SQL functions the schema's triggers call (`memory_terms(text)`, see
/// [`TERMS_AND_VECTORS`]) on a connection that writes chunks. Idempotent.
pub(crate) fn register_functions(conn: &Connection) -> Result<(), StoreError> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "memory_terms",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text: String = ctx.get(0)?;
            Ok(crate::terms::index_terms(&text))
        },
    )
    .ctx("while registering the memory_terms SQL function")
}

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`]; each step commits on its own.
pub(crate) fn migrate(conn: &mut Connection, path_for_errors: &str) -> Result<(), StoreError> {
    migrate_to(conn, path_for_errors, SCHEMA_VERSION)
}

/// Brings the database up to `target` (tests build older schemas with it).
pub(crate) fn migrate_to(
    conn: &mut Connection,
    path_for_errors: &str,
    target: i64,
) -> Result<(), StoreError> {
    register_functions(conn)?;
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx("while reading the schema version")?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path_for_errors.to_string(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    let wanted = MIGRATIONS.iter().take(target.clamp(0, SCHEMA_VERSION) as usize);
    for (i, sql) in wanted.enumerate().skip(current.max(0) as usize) {
        let version = i as i64 + 1;
        let context = format!("while applying schema migration {version}");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx(&context)?;
        tx.execute_batch(sql).ctx(&context)?;
        tx.pragma_update(None, "user_version", version).ctx(&context)?;
        tx.commit().ctx(&context)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn, "mem").expect("first");
        migrate(&mut conn, "mem").expect("second");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn file_jobs_renamed_keep_their_rows_and_never_reuse_an_id() {
        let mut conn = Connection::open_in_memory().expect("open");
        register_functions(&conn).expect("functions");
        migrate_to(&mut conn, "mem", 8).expect("v8");
        conn.execute_batch(
            "INSERT INTO sources (id, display_name, root_path, created_at) VALUES ('d', 'd', '/d', 't');
             INSERT INTO index_jobs (source_id, kind, status, created_at) VALUES
                 ('d', 'sync', 'completed', 't'), ('d', 'sync', 'completed', 't'),
                 ('d', 'sync', 'queued', 't');
             DELETE FROM index_jobs WHERE id = 3;",
        )
        .expect("v8 rows");
        migrate(&mut conn, "mem").expect("to the latest");
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM file_index_jobs", [], |r| r.get(0))
            .expect("count");
        assert_eq!(kept, 2);
        conn.execute(
            "INSERT INTO file_index_jobs (source_id, kind, status, created_at) VALUES ('d', 'sync', 'queued', 't')",
            [],
        )
        .expect("insert");
        assert_eq!(conn.last_insert_rowid(), 4, "id 3 was used before the rename");
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'file_index_jobs' ORDER BY name")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(indexes, ["file_index_jobs_source", "file_index_jobs_status"]);
    }

    #[test]
    fn refuses_newer_schema() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set");
        assert!(matches!(
            migrate(&mut conn, "mem"),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
