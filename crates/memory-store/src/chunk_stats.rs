//! Chunk diagnostics for `GET /sources/{id}/chunk-stats` (api.md A.2.8), computed over a
//! source's searchable generation. Read-only SQL; no HTTP.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{SqlContext, StoreError};

/// `GET /sources/{id}/chunk-stats` over the searchable generation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkStats {
    /// The source.
    pub source_id: String,
    /// Chunks.
    pub total_chunks: i64,
    /// Distinct chunk texts.
    pub unique_chunks: i64,
    /// `100 * (1 - unique / total)`, 2 decimals.
    pub duplicate_rate: f64,
    /// Mean characters per chunk, 1 decimal.
    pub avg_chunk_size: f64,
    /// Smallest chunk in characters.
    pub min_chunk_size: i64,
    /// Largest chunk in characters.
    pub max_chunk_size: i64,
    /// Files indexed.
    pub total_files: i64,
    /// `(range, count)` for `< 100`, `100-500`, `500-1000`, `1000-2000`, `2000+`;
    /// non-empty ranges only.
    pub size_distribution: Vec<(String, i64)>,
}

/// Chunk diagnostics of the searchable generation; `None` for an unknown source.
pub(crate) fn chunk_stats(conn: &Connection, source_id: &str) -> Result<Option<ChunkStats>, StoreError> {
    let context = "while computing chunk statistics";
    let Some(generation) = conn
        .query_row("SELECT generation FROM sources WHERE id = ?1", [source_id], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
        .ctx(context)?
    else {
        return Ok(None);
    };
    let sizes = chunk_sizes(conn, source_id, generation)?;
    let total_files: i64 = conn
        .query_row(
            "SELECT count(*) FROM files WHERE source_id = ?1 AND generation = ?2",
            params![source_id, generation],
            |r| r.get(0),
        )
        .ctx(context)?;
    let duplicate_rate = if sizes.total > 0 {
        round(100.0 * (1.0 - sizes.unique as f64 / sizes.total as f64), 2)
    } else {
        0.0
    };
    Ok(Some(ChunkStats {
        source_id: source_id.to_string(),
        total_chunks: sizes.total,
        unique_chunks: sizes.unique,
        duplicate_rate,
        avg_chunk_size: round(sizes.avg, 1),
        min_chunk_size: sizes.min,
        max_chunk_size: sizes.max,
        total_files,
        size_distribution: size_distribution(sizes.buckets),
    }))
}

/// The chunk counts and sizes (in characters) of one generation of a source.
struct ChunkSizes {
    /// Chunks.
    total: i64,
    /// Distinct chunk texts.
    unique: i64,
    /// Mean characters per chunk (0 without chunks).
    avg: f64,
    /// Smallest chunk in characters (0 without chunks).
    min: i64,
    /// Largest chunk in characters (0 without chunks).
    max: i64,
    /// Chunks per size range, in the order of [`SIZE_RANGES`].
    buckets: [i64; 5],
}

/// The labels of [`ChunkSizes::buckets`], in characters.
const SIZE_RANGES: [&str; 5] = ["< 100", "100-500", "500-1000", "1000-2000", "2000+"];

/// Counts and sizes (in characters) of the file chunks of `source_id`'s `generation`.
fn chunk_sizes(conn: &Connection, source_id: &str, generation: i64) -> Result<ChunkSizes, StoreError> {
    conn.query_row(
        "SELECT count(*), count(DISTINCT text), coalesce(avg(length(text)), 0),
                coalesce(min(length(text)), 0), coalesce(max(length(text)), 0),
                coalesce(sum(length(text) < 100), 0),
                coalesce(sum(length(text) >= 100 AND length(text) < 500), 0),
                coalesce(sum(length(text) >= 500 AND length(text) < 1000), 0),
                coalesce(sum(length(text) >= 1000 AND length(text) < 2000), 0),
                coalesce(sum(length(text) >= 2000), 0)
         FROM chunks WHERE kind = 'file' AND source_id = ?1 AND generation = ?2",
        params![source_id, generation],
        |r| {
            Ok(ChunkSizes {
                total: r.get(0)?,
                unique: r.get(1)?,
                avg: r.get(2)?,
                min: r.get(3)?,
                max: r.get(4)?,
                buckets: [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?],
            })
        },
    )
    .ctx("while computing chunk statistics")
}

/// `x` rounded to `d` decimals.
fn round(x: f64, d: i32) -> f64 {
    (x * 10f64.powi(d)).round() / 10f64.powi(d)
}

/// The non-empty size ranges with their chunk counts, labelled as in [`SIZE_RANGES`].
fn size_distribution(buckets: [i64; 5]) -> Vec<(String, i64)> {
    SIZE_RANGES
        .into_iter()
        .zip(buckets)
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.to_string(), n))
        .collect()
}
