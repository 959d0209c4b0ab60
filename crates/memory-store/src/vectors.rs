//! Chunk embeddings: their rows in `chunk_vectors` (the durable truth, schema
//! `TERMS_AND_VECTORS`) and an in-memory copy for exact nearest-neighbour search.
//!
//! Why exact search in memory: 100,000 chunks × 384 dimensions is 38.4 M multiply-adds
//! per query, with no approximation to tune and nothing to rebuild; reading the vectors
//! from SQLite per query would cost far more. The scan is bound by memory bandwidth
//! (150 MB of `f32` per query at 100,000 chunks), so it reads an `i8` copy of each vector
//! (4× less; scalar quantization with one scale per vector, as in "Efficient Vector
//! Search with int8 quantization", the usual first step of FAISS/Lucene) and re-ranks
//! its best [`RESCORE_FACTOR`]` × k` by the exact `f32` cosine: the `i8` error (about
//! 0.004 in cosine) decides only which few are re-ranked. The copy
//! holds, per chunk, its FTS scope token (so a search filters exactly as the text
//! channel does) and, for chat chunks, its chat and message order (so a turn's
//! neighbours in its conversation can be looked up).
//!
//! The copy may hold chunks deleted since (a deleted chat, a replaced generation):
//! search re-reads every candidate from `chunks` and drops the missing ones, and
//! [`VectorIndex::retain`] prunes them when the embedding stage reconciles.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

use rusqlite::{Connection, params};

use crate::error::{SqlContext, StoreError};

/// Encodes a vector as its `chunk_vectors.vector` blob: little-endian `f32`s.
pub(crate) fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes a `chunk_vectors.vector` blob; `None` when its length is not `4 * dim`.
pub(crate) fn from_blob(b: &[u8], dim: usize) -> Option<Vec<f32>> {
    if b.len() != dim * 4 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Dot product; for L2-normalised vectors, the cosine similarity in [-1, 1].
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without fast-math.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// The `i8` scan keeps this many times `k` candidates for the exact `f32` re-ranking.
pub const RESCORE_FACTOR: usize = 4;

/// Quantizes a vector to `i8` with one scale: `v[i] ≈ q[i] * scale`, `scale = max|v| /
/// 127` (0 for a zero vector).
fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    out.extend(v.iter().map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8));
    scale
}

/// Dot product of two `i8` vectors, exact in `i32` (384 × 127² fits easily), with the
/// widest integer vector instructions this CPU has (the scan of every vector of a scope
/// runs it 100,000 times per search at 100,000 chunks). The release build targets
/// baseline x86-64 (SSE2); the same loop is also compiled for AVX2 and for AVX-512BW,
/// each halving the instructions of the one before. Integer arithmetic: every path gives
/// the same result.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU supports AVX-512BW (checked just above; the check is cached).
            return unsafe { dot_i8_avx512(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above; the check is cached).
            return unsafe { dot_i8_avx2(a, b) };
        }
    }
    dot_i8_portable(a, b)
}

/// [`dot_i8_portable`] compiled for AVX-512BW (512-bit `vpmaddwd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn dot_i8_avx512(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_portable(a, b)
}

/// [`dot_i8_portable`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_portable(a, b)
}

/// The dot product's one definition, vectorised by the compiler for whatever target
/// features the function it is inlined into has.
#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += *x as i32 * *y as i32;
    }
    sum
}

/// Where a chunk sits, as the index needs it for filtering and neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    chunk_id: i64,
    /// Interned FTS scope token (`c<hex project>` or `s<hex source>g<generation>`).
    scope: u32,
    /// Interned `<scope>/<chat_id>` for chat chunks, `u32::MAX` for file chunks.
    chat: u32,
    /// The message's `message_index` within its chat (chat chunks), else 0.
    seq: i64,
}

#[derive(Debug, Default)]
struct Inner {
    model: String,
    dim: usize,
    entries: Vec<Entry>,
    /// `entries.len() * dim` floats, entry `i` at `[i * dim, (i + 1) * dim)`.
    data: Vec<f32>,
    /// The same vectors quantized ([`quantize`]), laid out alike, for the scan.
    quantized: Vec<i8>,
    /// Each entry's quantization scale.
    scales: Vec<f32>,
    position: HashMap<i64, usize>,
    /// (chat, seq) → positions of that message's chunks.
    by_message: HashMap<(u32, i64), Vec<usize>>,
    names: HashMap<String, u32>,
}

impl Inner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.insert(name.to_string(), id);
        id
    }

    fn insert(&mut self, chunk_id: i64, scope: &str, chat_id: Option<&str>, seq: i64, v: &[f32]) {
        if v.len() != self.dim {
            return;
        }
        let scope_id = self.intern(scope);
        let chat = match chat_id {
            Some(c) => self.intern(&format!("{scope}/{c}")),
            None => u32::MAX,
        };
        let entry = Entry {
            chunk_id,
            scope: scope_id,
            chat,
            seq,
        };
        if let Some(&pos) = self.position.get(&chunk_id) {
            self.unlink_message(pos);
            self.entries[pos] = entry;
            self.data[pos * self.dim..(pos + 1) * self.dim].copy_from_slice(v);
            let mut q = Vec::with_capacity(self.dim);
            self.scales[pos] = quantize(v, &mut q);
            self.quantized[pos * self.dim..(pos + 1) * self.dim].copy_from_slice(&q);
            self.link_message(pos);
            return;
        }
        let pos = self.entries.len();
        self.entries.push(entry);
        self.data.extend_from_slice(v);
        let scale = quantize(v, &mut self.quantized);
        self.scales.push(scale);
        self.position.insert(chunk_id, pos);
        self.link_message(pos);
    }

    fn link_message(&mut self, pos: usize) {
        let e = self.entries[pos];
        if e.chat != u32::MAX {
            self.by_message.entry((e.chat, e.seq)).or_default().push(pos);
        }
    }

    fn unlink_message(&mut self, pos: usize) {
        let e = self.entries[pos];
        if let Some(list) = self.by_message.get_mut(&(e.chat, e.seq)) {
            list.retain(|&p| p != pos);
            if list.is_empty() {
                self.by_message.remove(&(e.chat, e.seq));
            }
        }
    }

    fn vector(&self, pos: usize) -> &[f32] {
        &self.data[pos * self.dim..(pos + 1) * self.dim]
    }

    /// Rebuilds positions after entries were removed.
    fn reindex(&mut self) {
        self.position = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.chunk_id, i))
            .collect();
        self.by_message.clear();
        for pos in 0..self.entries.len() {
            self.link_message(pos);
        }
    }
}

/// A nearest-neighbour candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    /// `chunks.id`.
    pub chunk_id: i64,
    /// Cosine similarity to the query, in [-1, 1].
    pub cosine: f32,
}

/// What a search may see: FTS scope tokens, chats left out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter<'a> {
    pub scopes: &'a [String],
    /// `(chat scope token, chat_id)` pairs excluded.
    pub excluded_chats: Vec<String>,
}

/// A vector just stored, with what the in-memory copy needs to place it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredVector {
    pub chunk_id: i64,
    /// The chunk's FTS scope token.
    pub scope: String,
    /// The chunk's chat (chat chunks).
    pub chat_id: Option<String>,
    /// Its message's `message_index` (chat chunks), else 0.
    pub seq: i64,
    pub vector: Vec<f32>,
}

/// The in-memory copy of one model's vectors. `Send + Sync`; searches take a read lock.
#[derive(Debug, Default)]
pub struct VectorIndex {
    inner: RwLock<Inner>,
}

impl VectorIndex {
    /// The model whose vectors are held ("" before one is loaded).
    pub fn model(&self) -> String {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .model
            .clone()
    }

    /// Vectors held.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the content with `model`'s vectors of dimension `dim` from the database.
    pub(crate) fn load(&self, conn: &Connection, model: &str, dim: usize) -> Result<(), StoreError> {
        let context = "while loading chunk vectors";
        let mut fresh = Inner {
            model: model.to_string(),
            dim,
            ..Inner::default()
        };
        let mut stmt = conn
            .prepare(
                "SELECT v.chunk_id, v.vector, c.scope, c.chat_id, m.message_index
                 FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id
                 LEFT JOIN chat_messages m ON m.message_uuid = c.message_uuid
                 WHERE v.model = ?1",
            )
            .ctx(context)?;
        let mut rows = stmt.query([model]).ctx(context)?;
        while let Some(r) = rows.next().ctx(context)? {
            let id: i64 = r.get(0).ctx(context)?;
            let blob: Vec<u8> = r.get(1).ctx(context)?;
            let scope: String = r.get(2).ctx(context)?;
            let chat: Option<String> = r.get(3).ctx(context)?;
            let seq: Option<i64> = r.get(4).ctx(context)?;
            if let Some(v) = from_blob(&blob, dim) {
                fresh.insert(id, &scope, chat.as_deref(), seq.unwrap_or(0), &v);
            }
        }
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Adds or replaces vectors (after their rows committed).
    pub(crate) fn insert_all(&self, model: &str, rows: &[StoredVector]) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.model != model {
            return;
        }
        for r in rows {
            inner.insert(r.chunk_id, &r.scope, r.chat_id.as_deref(), r.seq, &r.vector);
        }
    }

    /// Keeps only the chunks in `alive`; returns how many were dropped.
    pub(crate) fn retain(&self, alive: &HashSet<i64>) -> usize {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let before = inner.entries.len();
        if alive.len() >= before && inner.entries.iter().all(|e| alive.contains(&e.chunk_id)) {
            return 0;
        }
        let dim = inner.dim;
        let mut entries = Vec::with_capacity(alive.len());
        let mut data = Vec::with_capacity(alive.len() * dim);
        let mut quantized = Vec::with_capacity(alive.len() * dim);
        let mut scales = Vec::with_capacity(alive.len());
        for (i, e) in inner.entries.iter().enumerate() {
            if alive.contains(&e.chunk_id) {
                entries.push(*e);
                data.extend_from_slice(&inner.data[i * dim..(i + 1) * dim]);
                quantized.extend_from_slice(&inner.quantized[i * dim..(i + 1) * dim]);
                scales.push(inner.scales[i]);
            }
        }
        inner.entries = entries;
        inner.data = data;
        inner.quantized = quantized;
        inner.scales = scales;
        inner.reindex();
        before - inner.entries.len()
    }

    /// The `k` nearest chunks to `query` (L2-normalised, the index's dimension) among
    /// those the filter allows, best first, with their exact cosines. The scan compares
    /// `i8` copies and keeps the best `RESCORE_FACTOR * k`, which are then re-ranked by
    /// their `f32` cosine. A large index is scanned in parts on several threads
    /// ([`ENTRIES_PER_SCAN_THREAD`] at least each, one per core); the result is the
    /// same. Empty when the dimension differs.
    pub(crate) fn nearest(&self, query: &[f32], filter: &Filter<'_>, k: usize) -> Vec<VectorHit> {
        self.nearest_on(query, filter, k, None)
    }

    /// [`VectorIndex::nearest`] with the scan split over `threads` threads (at least 1;
    /// `None`: as many as the index's size is worth).
    fn nearest_on(
        &self,
        query: &[f32],
        filter: &Filter<'_>,
        k: usize,
        threads: Option<usize>,
    ) -> Vec<VectorHit> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let dim = inner.dim;
        if query.len() != dim || k == 0 {
            return Vec::new();
        }
        // A search has a few scopes and excluded chats: a linear look-up beats hashing.
        let scopes: Vec<u32> = filter
            .scopes
            .iter()
            .filter_map(|s| inner.names.get(s).copied())
            .collect();
        let excluded: Vec<u32> = filter
            .excluded_chats
            .iter()
            .filter_map(|s| inner.names.get(s).copied())
            .collect();
        let mut q = Vec::with_capacity(dim);
        quantize(query, &mut q);
        let keep = k.saturating_mul(RESCORE_FACTOR);
        let scan = |range: std::ops::Range<usize>| scan_best(&inner, &q, &scopes, &excluded, range, keep);
        let n = inner.entries.len();
        let threads = threads.unwrap_or_else(|| crate::cores::threads_for(n, ENTRIES_PER_SCAN_THREAD));
        let mut best = crate::cores::split_ranges(n, threads, scan);
        best.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        best.truncate(keep);
        let mut hits: Vec<VectorHit> = best
            .into_iter()
            .map(|(_, pos)| VectorHit {
                chunk_id: inner.entries[pos].chunk_id,
                cosine: dot(query, inner.vector(pos)),
            })
            .collect();
        hits.sort_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.chunk_id.cmp(&b.chunk_id)));
        hits.truncate(k);
        hits
    }

    /// Cosine of `query` with a chunk's vector, and the mean cosine of the chunks of the
    /// messages right before and after it in its chat (`None` where there are none).
    pub(crate) fn cosines(&self, query: &[f32], chunk_id: i64) -> Option<(f32, Option<f32>)> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if query.len() != inner.dim {
            return None;
        }
        let &pos = inner.position.get(&chunk_id)?;
        let own = dot(query, inner.vector(pos));
        let e = inner.entries[pos];
        if e.chat == u32::MAX {
            return Some((own, None));
        }
        let mut sum = 0.0;
        let mut n = 0;
        for seq in [e.seq - 1, e.seq + 1] {
            for &p in inner
                .by_message
                .get(&(e.chat, seq))
                .map_or(&[][..], Vec::as_slice)
            {
                sum += dot(query, inner.vector(p));
                n += 1;
            }
        }
        Some((own, (n > 0).then(|| sum / n as f32)))
    }
}

/// Entries one scan thread takes at least: below this, a thread costs more than it saves
/// (spawning one is tens of microseconds; scanning 25,000 vectors about half a
/// millisecond). The scan is bound by memory bandwidth, which one core does not saturate
/// on the machines measured (`memory-service-bench fusion`).
const ENTRIES_PER_SCAN_THREAD: usize = 25_000;

/// The best `keep` entries of `range` by approximate cosine (scale × `i8` dot with the
/// quantized query `q`; the query's own scale is common to all and left out) among those
/// in one of `scopes` and not in an `excluded` chat, unordered.
fn scan_best(
    inner: &Inner,
    q: &[i8],
    scopes: &[u32],
    excluded: &[u32],
    range: std::ops::Range<usize>,
    keep: usize,
) -> Vec<(OrdF32, usize)> {
    let dim = inner.dim;
    // Min-heap of the best `keep` so far.
    let mut heap: BinaryHeap<(std::cmp::Reverse<OrdF32>, usize)> = BinaryHeap::with_capacity(keep + 1);
    for pos in range {
        let e = &inner.entries[pos];
        if !scopes.contains(&e.scope) || (e.chat != u32::MAX && excluded.contains(&e.chat)) {
            continue;
        }
        let c = dot_i8(q, &inner.quantized[pos * dim..(pos + 1) * dim]) as f32 * inner.scales[pos];
        if heap.len() < keep {
            heap.push((std::cmp::Reverse(OrdF32(c)), pos));
        } else if heap.peek().is_some_and(|(std::cmp::Reverse(min), _)| c > min.0) {
            heap.pop();
            heap.push((std::cmp::Reverse(OrdF32(c)), pos));
        }
    }
    heap.into_iter()
        .map(|(std::cmp::Reverse(c), pos)| (c, pos))
        .collect()
}

/// `f32` ordered by `total_cmp`, for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A counter of changes to what the embedding stage embeds (chunk inserts, deletes and
/// generation swaps, and new facts) that the stage sleeps on, so it wakes when there is
/// work and never polls.
#[derive(Debug, Default)]
pub struct ChunkChanges {
    count: std::sync::Mutex<u64>,
    changed: std::sync::Condvar,
}

impl ChunkChanges {
    /// Wakes the waiters (e.g. to make them see a stop flag).
    pub fn wake(&self) {
        self.bump();
    }

    /// Records a change and wakes the waiters.
    pub(crate) fn bump(&self) {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
    }

    /// Waits until the count differs from `seen` or `timeout` passes; the count then.
    pub fn wait_past(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, _) = self
            .changed
            .wait_timeout_while(count, timeout, |c| *c == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *count
    }

    /// The current count.
    pub fn current(&self) -> u64 {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One chunk waiting for its embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChunk {
    /// `chunks.id`.
    pub chunk_id: i64,
    /// The chunk's text, to embed.
    pub text: String,
    /// A chat chunk (else a file chunk).
    pub is_chat: bool,
}

/// Up to `limit` chunks without a vector of `model`, chat chunks first, ids above
/// `after` ascending (the embedding stage's cursor).
pub(crate) fn pending(
    conn: &Connection,
    model: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<PendingChunk>, StoreError> {
    let context = "while listing chunks to embed";
    let missing = "NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id AND v.model = ?1)";
    let mut out = Vec::new();
    for kind_clause in ["AND c.kind = 'chat'", ""] {
        let sql = format!(
            "SELECT c.id, c.text, c.kind = 'chat' FROM chunks c
             WHERE c.id > ?2 {kind_clause} AND {missing}
             ORDER BY c.id LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql).ctx(context)?;
        let rows = stmt
            .query_map(params![model, after, limit as i64], |r| {
                Ok(PendingChunk {
                    chunk_id: r.get(0)?,
                    text: r.get(1)?,
                    is_chat: r.get(2)?,
                })
            })
            .ctx(context)?;
        out = rows.collect::<Result<Vec<_>, _>>().ctx(context)?;
        if !out.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// Writes vectors of `model` (replacing any other model's) for chunks that still exist;
/// returns what the in-memory copy needs.
pub(crate) fn write(
    conn: &Connection,
    model: &str,
    vectors: Vec<(i64, Vec<f32>)>,
) -> Result<Vec<StoredVector>, StoreError> {
    let context = "while storing chunk vectors";
    let mut meta = conn
        .prepare_cached(
            "SELECT c.scope, c.chat_id, m.message_index FROM chunks c
             LEFT JOIN chat_messages m ON m.message_uuid = c.message_uuid WHERE c.id = ?1",
        )
        .ctx(context)?;
    let mut insert = conn
        .prepare_cached("INSERT OR REPLACE INTO chunk_vectors (chunk_id, model, vector) VALUES (?1, ?2, ?3)")
        .ctx(context)?;
    let mut out = Vec::with_capacity(vectors.len());
    for (id, v) in vectors {
        let row: Option<(String, Option<String>, Option<i64>)> = {
            use rusqlite::OptionalExtension;
            meta.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .ctx(context)?
        };
        // The chunk was deleted while it was being embedded: nothing to store.
        let Some((scope, chat, seq)) = row else { continue };
        insert.execute(params![id, model, to_blob(&v)]).ctx(context)?;
        out.push(StoredVector {
            chunk_id: id,
            scope,
            chat_id: chat,
            seq: seq.unwrap_or(0),
            vector: v,
        });
    }
    Ok(out)
}

/// Every chunk id holding a vector of `model` (for [`VectorIndex::retain`]).
pub(crate) fn alive(conn: &Connection, model: &str) -> Result<HashSet<i64>, StoreError> {
    let context = "while listing chunk vectors";
    let mut stmt = conn
        .prepare_cached("SELECT chunk_id FROM chunk_vectors WHERE model = ?1")
        .ctx(context)?;
    let rows = stmt.query_map([model], |r| r.get(0)).ctx(context)?;
    rows.collect::<Result<_, _>>().ctx(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = dot(v, v).sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn blob_round_trip_and_length_check() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(from_blob(&to_blob(&v), 3), Some(v));
        assert_eq!(from_blob(&[0u8; 7], 2), None);
    }

    #[test]
    fn dot_matches_naive_sum() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn every_i8_dot_product_path_gives_the_same_sum() {
        let a: Vec<i8> = (0..389).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..389).map(|i| ((i * 91 + 5) % 255 - 127) as i8).collect();
        let naive: i32 = a.iter().zip(&b).map(|(x, y)| *x as i32 * *y as i32).sum();
        assert_eq!(dot_i8_portable(&a, &b), naive);
        assert_eq!(dot_i8(&a, &b), naive);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 checked just above.
            assert_eq!(unsafe { dot_i8_avx2(&a, &b) }, naive);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: AVX-512BW checked just above.
            assert_eq!(unsafe { dot_i8_avx512(&a, &b) }, naive);
        }
    }

    /// A fixed pseudo-random stream of floats in [-1, 1) from `seed` (64-bit LCG,
    /// Knuth's MMIX constants).
    fn uniform(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// Split over threads, the scan finds what one thread finds (ties broken by position).
    #[test]
    fn a_split_scan_finds_the_same_nearest() {
        let dim = 16;
        let index = VectorIndex::default();
        {
            let mut inner = index.inner.write().unwrap();
            inner.model = "m".into();
            inner.dim = dim;
        }
        let mut next = uniform(7);
        let rows: Vec<StoredVector> = (0..10_001)
            .map(|i| StoredVector {
                chunk_id: i,
                scope: if i % 3 == 0 { "cB".into() } else { "cA".into() },
                chat_id: Some(format!("c{}", i % 7)),
                seq: i,
                vector: unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()),
            })
            .collect();
        index.insert_all("m", &rows);
        let scopes = vec!["cA".to_string()];
        let filter = Filter {
            scopes: &scopes,
            excluded_chats: vec!["cA/c2".into()],
        };
        for _ in 0..10 {
            let q = unit(&(0..dim).map(|_| next()).collect::<Vec<_>>());
            let one = index.nearest_on(&q, &filter, 50, Some(1));
            assert_eq!(one.len(), 50);
            assert!(one.iter().all(|h| h.chunk_id % 3 != 0 && h.chunk_id % 7 != 2));
            for threads in [2, 3, 64] {
                assert_eq!(
                    index.nearest_on(&q, &filter, 50, Some(threads)),
                    one,
                    "{threads} threads"
                );
            }
        }
    }

    #[test]
    fn quantized_scan_finds_the_exact_nearest() {
        let mut next = uniform(0x2545_F491_4F6C_DD1D);
        let dim = 384;
        let index = VectorIndex::default();
        {
            let mut inner = index.inner.write().unwrap();
            inner.model = "m".into();
            inner.dim = dim;
        }
        let vectors: Vec<Vec<f32>> = (0..3000)
            .map(|_| unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let rows: Vec<StoredVector> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| StoredVector {
                chunk_id: i as i64,
                scope: "cA".into(),
                chat_id: Some("c".into()),
                seq: i as i64,
                vector: v.clone(),
            })
            .collect();
        index.insert_all("m", &rows);
        let scopes = vec!["cA".to_string()];
        let filter = Filter {
            scopes: &scopes,
            excluded_chats: vec![],
        };
        for _ in 0..20 {
            let q = unit(&(0..dim).map(|_| next()).collect::<Vec<_>>());
            let mut exact: Vec<(f32, i64)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (dot(&q, v), i as i64))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let got = index.nearest(&q, &filter, 20);
            let want: Vec<i64> = exact[..20].iter().map(|e| e.1).collect();
            assert_eq!(got.iter().map(|h| h.chunk_id).collect::<Vec<_>>(), want);
            for (h, e) in got.iter().zip(&exact) {
                assert_eq!(h.cosine, e.0, "exact cosines are returned");
            }
        }
        // Quantization error per component is at most half a step.
        let mut qv = Vec::new();
        let scale = quantize(&vectors[0], &mut qv);
        for (x, q) in vectors[0].iter().zip(&qv) {
            assert!((x - *q as f32 * scale).abs() <= scale / 2.0 + 1e-7);
        }
        assert_eq!(dot_i8(&[127, -128, 3], &[127, 1, -2]), 127 * 127 - 128 - 6);
        assert_eq!(quantize(&[0.0, 0.0], &mut Vec::new()), 0.0);
    }

    #[test]
    fn nearest_respects_scope_exclusions_and_order() {
        let index = VectorIndex::default();
        {
            let mut inner = index.inner.write().unwrap();
            inner.model = "m".into();
            inner.dim = 2;
        }
        let row = |chunk_id, scope: &str, chat: Option<&str>, seq, v: &[f32]| StoredVector {
            chunk_id,
            scope: scope.into(),
            chat_id: chat.map(Into::into),
            seq,
            vector: unit(v),
        };
        let rows = vec![
            row(1, "cA", Some("chat1"), 0, &[1.0, 0.0]),
            row(2, "cA", Some("chat1"), 1, &[1.0, 1.0]),
            row(3, "cA", Some("chat2"), 0, &[1.0, 0.1]),
            row(4, "cB", Some("chat1"), 0, &[1.0, 0.0]),
            row(5, "sXg1", None, 0, &[0.0, 1.0]),
        ];
        index.insert_all("m", &rows);
        index.insert_all("other model", &rows);
        assert_eq!(index.len(), 5);
        let scopes = vec!["cA".to_string(), "sXg1".to_string()];
        let filter = Filter {
            scopes: &scopes,
            excluded_chats: vec![],
        };
        let q = unit(&[1.0, 0.0]);
        let ids: Vec<i64> = index
            .nearest(&q, &filter, 10)
            .iter()
            .map(|h| h.chunk_id)
            .collect();
        assert_eq!(ids, vec![1, 3, 2, 5]);
        assert_eq!(index.nearest(&q, &filter, 2).len(), 2);
        let filter = Filter {
            scopes: &scopes,
            excluded_chats: vec!["cA/chat1".into()],
        };
        let ids: Vec<i64> = index
            .nearest(&q, &filter, 10)
            .iter()
            .map(|h| h.chunk_id)
            .collect();
        assert_eq!(ids, vec![3, 5]);
        assert!(index.nearest(&[1.0, 0.0, 0.0], &filter, 10).is_empty());
        // Neighbours: chunk 1's next message is chunk 2.
        let (own, near) = index.cosines(&q, 1).expect("held");
        assert!((own - 1.0).abs() < 1e-6);
        assert!((near.expect("neighbour") - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
        assert_eq!(index.cosines(&q, 5).expect("held").1, None);
        assert_eq!(index.retain(&[1, 5].into_iter().collect()), 3);
        assert_eq!(index.cosines(&q, 1).expect("held").1, None);
        assert!(index.cosines(&q, 2).is_none());
    }
}
