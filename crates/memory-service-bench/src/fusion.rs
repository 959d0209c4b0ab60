//! `memory-service-bench fusion`: what hybrid search costs at scale *besides* the
//! query's embedding, in-process, without a model. The `search` benchmark's hybrid run
//! must first embed every chunk (about an hour for 100,000 here); this one gives each
//! chunk a random unit vector instead, so the exact nearest-neighbour scan, the
//! candidates it adds and their fusion cost what they cost with real embeddings (the
//! work does not depend on the vectors' values). Add the query's embedding time (the
//! `memory-embedding` example `embed_speed`) for the whole of a hybrid `/search` minus
//! HTTP.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use memory_store::{ChatMessageIn, SearchRequest, Store, StoreConfig};

use crate::corpus::{self, Rng};
use crate::search::{Kind, queries};
use crate::stats::Summary;

/// Dimensions of the random vectors: all-MiniLM-L6-v2's.
const DIM: usize = 384;
/// Queries run before timing, per kind.
const WARM_UP: usize = 10;

/// `memory-service-bench fusion`: store search with and without a query vector at scale.
#[derive(Debug, clap::Args)]
pub struct FusionArgs {
    /// Chat messages in the one project [default: 100000; --quick: 5000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunks: Option<u32>,
    /// Timed queries per kind [default: 200]
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub queries: u32,
    /// A reduced size for CI: 5000 chunks (an explicit --chunks still wins)
    #[arg(long)]
    pub quick: bool,
}

/// A random unit vector of [`DIM`] dimensions.
fn unit_vector(rng: &mut Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| (rng.unit() * 2.0 - 1.0) as f32).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints its table.
pub fn run(args: &FusionArgs) -> Result<()> {
    let started = Instant::now();
    let chunks = args
        .chunks
        .map_or(if args.quick { 5_000 } else { 100_000 }, |c| c as usize);
    let n = args.queries as usize;
    let dir = tempfile::tempdir().context("creating a temp directory")?;
    let store =
        Store::open(StoreConfig::new(dir.path().join("memory.sqlite"))).context("opening the store")?;
    let _chat_stage = memory_indexer::ChatStage::start(store.clone()).context("starting the chat stage")?;
    let fill = fill(&store, chunks)?;
    let mut rng = Rng::new(0xF051);
    embed_randomly(&store, chunks, &mut rng)?;

    println!("memory-service fusion benchmark (in-process store, no HTTP, no model)");
    println!(
        "  size    {chunks} messages in one project ({:.1} s to index), one random {DIM}-dim vector each; {n} timed searches (limit 10) per kind after {WARM_UP} warm-up",
        fill.as_secs_f64()
    );
    println!(
        "  {:<20} {:>24} {:>30}",
        "", "words only p50 / p99", "with a query vector p50 / p99"
    );
    for kind in [Kind::TwoRareWords, Kind::OneCommonWord, Kind::NaturalQuestion] {
        let (w, h) = time_searches(&store, kind, n, chunks, &mut rng)?;
        println!(
            "  {:<20} {:>10.2} / {:>8.2} ms {:>14.2} / {:>8.2} ms",
            kind.label(),
            w.median,
            w.p99,
            h.median,
            h.p99
        );
    }
    println!("\nwhole run {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Indexes `chunks` generated chat messages into one project and waits until
/// the chat stage has chunked them all; how long that took.
fn fill(store: &Store, chunks: usize) -> Result<Duration> {
    eprintln!("running: {chunks} messages into one project");
    let fill = Instant::now();
    for i in 0..chunks {
        let (chat_id, message_id, role, index) = corpus::message_ids(i);
        store
            .index_chat_message(ChatMessageIn {
                project_id: corpus::PROJECT.into(),
                chat_id,
                message_id,
                role: role.into(),
                content: corpus::message(i),
                timestamp: "2026-01-01T00:00:00Z".into(),
                message_index: index as i64,
                message_uuid: None,
            })
            .with_context(|| format!("indexing message {i}"))?;
    }
    anyhow::ensure!(
        store.wait_idle(Duration::from_secs(600)),
        "the chat stage did not finish within 10 minutes"
    );
    Ok(fill.elapsed())
}

/// Gives every chunk a random [`DIM`]-dimension unit vector, as if a model
/// named `bench-random` had embedded them.
fn embed_randomly(store: &Store, chunks: usize, rng: &mut Rng) -> Result<()> {
    eprintln!("running: a random {DIM}-dimension unit vector for every chunk");
    store
        .set_embedding_model("bench-random", DIM)
        .context("choosing the model")?;
    loop {
        let batch = store.chunks_to_embed(0, 1000).context("listing chunks")?;
        if batch.is_empty() {
            break;
        }
        let rows = batch.iter().map(|c| (c.chunk_id, unit_vector(rng))).collect();
        store
            .store_vectors("bench-random", rows)
            .context("storing vectors")?;
    }
    anyhow::ensure!(
        store.embedded_chunks() >= chunks,
        "only {} of {chunks} chunks hold a vector",
        store.embedded_chunks()
    );
    Ok(())
}

/// `n` timed searches of `kind` (after [`WARM_UP`] untimed ones), each once by
/// words only and once with a random query vector: the two latency summaries (ms).
fn time_searches(
    store: &Store,
    kind: Kind,
    n: usize,
    chunks: usize,
    rng: &mut Rng,
) -> Result<(Summary, Summary)> {
    let qs = queries(kind, n + WARM_UP, chunks);
    let mut words = Vec::with_capacity(n);
    let mut hybrid = Vec::with_capacity(n);
    for (i, q) in qs.iter().enumerate() {
        let req = SearchRequest {
            project_id: corpus::PROJECT.into(),
            query: q.clone(),
            limit: 10,
            ..Default::default()
        };
        let v = unit_vector(rng);
        let t = Instant::now();
        store.search(&req).context("search")?;
        let a = t.elapsed();
        let t = Instant::now();
        store.search_with(&req, Some(&v)).context("hybrid search")?;
        let b = t.elapsed();
        if i >= WARM_UP {
            words.push(ms(a));
            hybrid.push(ms(b));
        }
    }
    Ok((
        Summary::of(&words).context("no samples")?,
        Summary::of(&hybrid).context("no samples")?,
    ))
}
