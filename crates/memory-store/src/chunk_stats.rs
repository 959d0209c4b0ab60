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
    let (total, unique, avg, min, max, b0, b1, b2, b3, b4): (
        i64,
        i64,
        f64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = conn
        .query_row(
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
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .ctx(context)?;
    let total_files: i64 = conn
        .query_row(
            "SELECT count(*) FROM files WHERE source_id = ?1 AND generation = ?2",
            params![source_id, generation],
            |r| r.get(0),
        )
        .ctx(context)?;
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    let duplicate_rate = if total > 0 {
        round(100.0 * (1.0 - unique as f64 / total as f64), 2)
    } else {
        0.0
    };
    let size_distribution = [
        ("< 100", b0),
        ("100-500", b1),
        ("500-1000", b2),
        ("1000-2000", b3),
        ("2000+", b4),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(r, n)| (r.to_string(), n))
    .collect();
    Ok(Some(ChunkStats {
        source_id: source_id.to_string(),
        total_chunks: total,
        unique_chunks: unique,
        duplicate_rate,
        avg_chunk_size: round(avg, 1),
        min_chunk_size: min,
        max_chunk_size: max,
        total_files,
        size_distribution,
    }))
}
