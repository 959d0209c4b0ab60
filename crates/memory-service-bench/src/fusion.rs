//! `memory-service-bench fusion`: what hybrid search costs at scale *besides* the
//! query's embedding, in-process, without a model. The `search` benchmark's hybrid run
//! must first embed every chunk (minutes for 100,000 chat messages here); this one
//! gives each chunk a random unit vector instead, so the exact nearest-neighbour scan, the
//! candidates it adds and their fusion cost what they cost with real embeddings (the
//! work does not depend on the vectors' values). Add the query's embedding time (the
//! `memory-embedding` example `embed_speed`) for the whole of a hybrid `/search` minus
//! HTTP.
//!
//! With `--embedding-model DIR` it then measures the whole of `/search` too: the random
//! vectors are tagged with that model's id, so a real `memory-service serve` started on
//! the same database with the model finds every chunk embedded (nothing to backfill) and
//! answers `/search` over HTTP with the query embedded by the real model. Only the
//! chunk vectors are random; the scan, the candidates and the fusion do the same work
//! as with real embeddings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use memory_store::{ChatMessageIn, SearchRequest, Store, StoreConfig};

use crate::corpus::{self, Rng};
use crate::instance::Instance;
use crate::proc;
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
    /// Also time `/search` end to end: a real service on the same database with this
    /// model (e.g. target/test-model/all-MiniLM-L6-v2) embeds each query
    #[arg(long, value_name = "DIR")]
    pub embedding_model: Option<PathBuf>,
    /// The memory-service binary for --embedding-model [default: `memory-service` next
    /// to this one]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
}

/// The model the random vectors pretend to come from: its id and dimension.
struct VectorModel {
    id: String,
    dim: usize,
}

impl VectorModel {
    /// `bench-random`, for the in-process run alone.
    fn random() -> VectorModel {
        VectorModel {
            id: "bench-random".into(),
            dim: DIM,
        }
    }

    /// The id and dimension the service will give the model in `dir` (it loads it once).
    fn of(dir: &Path) -> Result<VectorModel> {
        let e = memory_embedding::Embedder::load(dir)
            .with_context(|| format!("loading the embedding model at {}", dir.display()))?;
        anyhow::ensure!(
            e.dim() == DIM,
            "the model at {} has {} dimensions, the bench {DIM}",
            dir.display(),
            e.dim()
        );
        Ok(VectorModel {
            id: e.model_id().to_string(),
            dim: e.dim(),
        })
    }
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
    let service = match &args.embedding_model {
        Some(dir) => {
            let bin = proc::resolve_bin(args.bin.as_deref())?;
            Some((proc::sandbox(&bin)?, dir.clone()))
        }
        None => None,
    };
    let model = match &service {
        Some((_, dir)) => VectorModel::of(dir)?,
        None => VectorModel::random(),
    };
    let dir = tempfile::tempdir().context("creating a temp directory")?;
    let home = match &service {
        Some((sandbox, _)) => sandbox.new_home(),
        None => dir.path().to_path_buf(),
    };
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let store = Store::open(StoreConfig::new(home.join("memory.sqlite"))).context("opening the store")?;
    let chat_stage = memory_indexer::ChatStage::start(store.clone()).context("starting the chat stage")?;
    let fill = fill(&store, chunks)?;
    let mut rng = Rng::new(0xF051);
    embed_randomly(&store, chunks, &mut rng, &model)?;

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
    chat_stage.shutdown();
    drop(chat_stage);
    store.shutdown().context("closing the store")?;
    drop(store);
    if let Some((sandbox, dir)) = &service {
        end_to_end(sandbox, home, dir, chunks, n)?;
    }
    println!("\nwhole run {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Starts the service on `home` (filled and embedded) with the model in `dir` and times
/// `/search` per kind over HTTP, each distinct query once (a repeated query would be
/// answered from the query-vector cache), after [`crate::search::WARM_UP`] untimed ones.
fn end_to_end(sandbox: &testkit::Sandbox, home: PathBuf, dir: &Path, chunks: usize, n: usize) -> Result<()> {
    eprintln!(
        "running: memory-service serve on that database with --embedding-model {}",
        dir.display()
    );
    let inst = Instance::start_on(sandbox, home, Some(dir), false)?;
    inst.wait_model_ready()?;
    inst.wait_embedded(chunks as u64)?;
    let (rss_idle, _) = inst.rss_mib()?;
    let c = inst.client();
    println!(
        "\n/search end to end: HTTP, the query embedded by {} on the service's pool, the same {chunks} chunks",
        dir.display()
    );
    println!("  {:<20} {:>9} {:>24}", "", "queries", "p50 / p99 / max");
    for kind in [Kind::TwoRareWords, Kind::OneCommonWord, Kind::NaturalQuestion] {
        let mut seen = std::collections::HashSet::new();
        let qs: Vec<String> = queries(kind, n + crate::search::WARM_UP, chunks)
            .into_iter()
            .filter(|q| seen.insert(q.clone()))
            .collect();
        let l = crate::search::time_kind(&c, kind, &qs)?;
        println!(
            "  {:<20} {:>9} {:>8.2} / {:>6.2} / {:>6.2} ms",
            kind.label(),
            l.ms.n,
            l.ms.median,
            l.ms.p99,
            l.ms.max
        );
    }
    let (rss_end, rss_peak) = inst.rss_mib()?;
    println!(
        "  service RSS with the model and {chunks} vectors: {rss_idle:.1} MiB idle, {rss_end:.1} MiB after, peak {rss_peak:.1} MiB"
    );
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

/// Gives every chunk a random [`DIM`]-dimension unit vector, as if `model` had
/// embedded them.
fn embed_randomly(store: &Store, chunks: usize, rng: &mut Rng, model: &VectorModel) -> Result<()> {
    eprintln!(
        "running: a random {DIM}-dimension unit vector for every chunk, as {}",
        model.id
    );
    store
        .set_embedding_model(&model.id, model.dim)
        .context("choosing the model")?;
    loop {
        let batch = store.chunks_to_embed(0, 1000).context("listing chunks")?;
        if batch.is_empty() {
            break;
        }
        let rows = batch.iter().map(|c| (c.chunk_id, unit_vector(rng))).collect();
        store.store_vectors(&model.id, rows).context("storing vectors")?;
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
