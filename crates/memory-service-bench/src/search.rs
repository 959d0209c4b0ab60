//! The `search` benchmark: `/search` latency in one large project, per kind
//! of query, because the kinds cost very different amounts: two rare words
//! match a handful of chunks, one common word or a natural question makes an
//! OR query rank a large share of the store. Each kind is timed on its own and
//! set against the same OR expression run on a bare FTS5 table holding the
//! same chunk texts, so the report says what the product adds on top of
//! SQLite. BM25-only and hybrid (with `--embedding-model`) in the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::baseline::Bare;
use crate::corpus::{self, Rng, WORDS};
use crate::instance::{self, Instance};
use crate::jobs;
use crate::proc::{self, Sandbox, Semantic};
use crate::stats::Summary;

/// `memory-service-bench search`: /search latency per query kind at scale.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The memory-service binary [default: `memory-service` next to this one]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Model directory for the hybrid instance [default:
    /// target/test-model/all-MiniLM-L6-v2 if it exists]
    #[arg(long, value_name = "DIR")]
    pub embedding_model: Option<PathBuf>,
    /// Chat messages (one chunk each) in the one project [default: 100000; --quick: 5000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunks: Option<u32>,
    /// Timed queries per kind [default: 200]
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub queries: u32,
    /// Writer threads for the fill [default: 4]
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Only the BM25-only instance, even when a model is at hand
    #[arg(long)]
    pub bm25_only: bool,
    /// A reduced size for CI: 5000 chunks (explicit options still win)
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

/// The kinds of query, each timed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Two marker words, each in exactly one message.
    TwoRareWords,
    /// One common vocabulary word (in a large share of messages).
    OneCommonWord,
    /// A 6-10 word question as a user would type it.
    NaturalQuestion,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::TwoRareWords, Kind::OneCommonWord, Kind::NaturalQuestion];

    pub fn label(self) -> &'static str {
        match self {
            Kind::TwoRareWords => "two rare words",
            Kind::OneCommonWord => "one common word",
            Kind::NaturalQuestion => "6-10 word question",
        }
    }
}

/// Question openers for [`natural_question`]: 2-4 words each.
const OPENERS: &[&str] = &[
    "how do I",
    "what did we decide about",
    "why does the",
    "where is the",
    "when did we change the",
    "can you remind me how",
    "what was wrong with the",
    "which",
    "how should we handle",
];

/// A 6-10 word question: an opener, then vocabulary words drawn as the corpus
/// draws them, ending in `?`.
pub fn natural_question(rng: &mut Rng) -> String {
    let opener = OPENERS[rng.below(OPENERS.len())];
    let total = rng.range(6, 10);
    let mut words: Vec<&str> = opener.split(' ').collect();
    while words.len() < total {
        words.push(WORDS[rng.skewed(WORDS.len())]);
    }
    let mut q = words.join(" ");
    q.push('?');
    q
}

/// `n` queries of `kind` over a store of `chunks` benchmark messages, the
/// same for every instance (fixed seed per kind).
pub fn queries(kind: Kind, n: usize, chunks: usize) -> Vec<String> {
    let mut rng = Rng::new(0x5EA2C4 + kind as u64);
    (0..n)
        .map(|_| match kind {
            Kind::TwoRareWords => format!(
                "{} {}",
                corpus::message_marker(rng.below(chunks)),
                corpus::message_marker(rng.below(chunks))
            ),
            Kind::OneCommonWord => WORDS[40 + rng.below(60)].to_string(),
            Kind::NaturalQuestion => natural_question(&mut rng),
        })
        .collect()
}

/// The FTS5 MATCH expression the service built from a query before issue 9
/// (crates/memory-store/src/search.rs `match_expression`): each distinct word
/// (alphanumeric run, case-insensitive, at most 32), quoted, OR-ed.
pub fn or_expression(query: &str) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for w in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !seen.iter().any(|s| s.to_lowercase() == w.to_lowercase()) {
            seen.push(w.to_string());
        }
        if seen.len() == 32 {
            break;
        }
    }
    (!seen.is_empty()).then(|| {
        seen.iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" OR ")
    })
}

/// Everything `search` measured. Times in ms unless the name says otherwise.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The binary measured.
    pub bin: PathBuf,
    /// What ran it.
    pub host: String,
    /// Messages in the project.
    pub chunks: usize,
    /// Timed queries per kind (after 10 untimed warm-up queries).
    pub queries_per_kind: usize,
    /// The BM25-only instance.
    pub bm25: Measured,
    /// The hybrid instance, `None` when not measured (see `hybrid_skipped`).
    pub hybrid: Option<Measured>,
    /// Why hybrid was not measured.
    pub hybrid_skipped: Option<String>,
    /// The same queries' OR expressions on a bare FTS5 table of the same texts.
    pub bare: Vec<KindLatency>,
    /// Wall time of the whole run, seconds.
    pub total_secs: f64,
}

/// One instance's run.
#[derive(Debug, Serialize)]
pub struct Measured {
    /// "bm25" or "hybrid".
    pub mode: String,
    /// The model directory it was started with.
    pub model_dir: Option<PathBuf>,
    /// `/health`'s `semantic` after the fill (`None`: no such object).
    pub semantic: Option<Semantic>,
    /// Acknowledgements per second (first post to last ack).
    pub acks_per_sec: f64,
    /// First post to every chat job done, seconds.
    pub index_secs: f64,
    /// Messages indexed per second over `index_secs`.
    pub indexed_per_sec: f64,
    /// First post to the embedding backlog at 0, seconds (hybrid only).
    pub embedded_secs: Option<f64>,
    /// Chat chunks in the database.
    pub chat_chunks: Option<i64>,
    /// VmRSS after start, before any data, MiB.
    pub rss_idle_mib: f64,
    /// VmRSS after the searches, MiB.
    pub rss_end_mib: f64,
    /// VmHWM (peak resident) at the end, MiB.
    pub rss_peak_mib: f64,
    /// Latency per kind.
    pub kinds: Vec<KindLatency>,
}

impl Measured {
    /// Sets each kind's p50 and p99 ratios to the bare FTS5 query's (`bare`, in
    /// [`Kind::ALL`] order).
    fn compare_to(&mut self, bare: &[KindLatency]) {
        for (k, b) in self.kinds.iter_mut().zip(bare) {
            k.ratio_p50_to_bare = Some(k.ms.median / b.ms.median);
            k.ratio_p99_to_bare = Some(k.ms.p99 / b.ms.p99);
        }
    }
}

/// The latency of one kind of query.
#[derive(Debug, Clone, Serialize)]
pub struct KindLatency {
    /// The kind.
    pub kind: Kind,
    /// One of its queries, as an example.
    pub example: String,
    /// Round trips (or bare query times), ms.
    pub ms: Summary,
    /// Mean results per query.
    pub results_mean: f64,
    /// p50 : the bare FTS5 p50 of the same queries (`None` for the bare rows).
    pub ratio_p50_to_bare: Option<f64>,
    /// p99 : the bare FTS5 p99.
    pub ratio_p99_to_bare: Option<f64>,
}

/// Untimed queries per kind before the timed ones (warm caches, like a
/// service that has been answering for a while).
pub const WARM_UP: usize = 10;

/// Runs the instances and the bare queries and prints the report.
pub fn run(args: &SearchArgs) -> Result<()> {
    let started = Instant::now();
    let bin = proc::resolve_bin(args.bin.as_deref())?;
    let chunks = args
        .chunks
        .map_or(if args.quick { 5_000 } else { 100_000 }, |c| c as usize);
    let n = args.queries as usize;
    let sets: Vec<(Kind, Vec<String>)> = Kind::ALL
        .iter()
        .map(|&k| (k, queries(k, n + WARM_UP, chunks)))
        .collect();
    let say = |what: &str| {
        if !args.json {
            eprintln!("running: {what}");
        }
    };
    let sandbox = proc::sandbox(&bin)?;
    let plan = Plan {
        chunks,
        sets: &sets,
        clients: args.clients as usize,
        quiet: args.json,
    };

    say(&format!("BM25-only instance: {chunks} messages in one project"));
    let (mut bm25, texts_db) = plan.measure(&sandbox, None).context("the BM25-only instance")?;
    say("bare FTS5: the same texts, the same OR expressions");
    let bare = bare_latency(&texts_db, &sandbox.path().join("bare.sqlite"), &sets)
        .context("the bare FTS5 baseline")?;
    let _ = std::fs::remove_file(&texts_db);
    let (mut hybrid, hybrid_skipped) = if args.bm25_only {
        (None, Some("--bm25-only".to_string()))
    } else {
        instance::measure_hybrid(args.embedding_model.as_deref(), say, |dir| {
            let (m, db) = plan.measure(&sandbox, Some(dir))?;
            let _ = std::fs::remove_file(db);
            Ok(m)
        })?
    };
    for m in std::iter::once(&mut bm25).chain(hybrid.as_mut()) {
        m.compare_to(&bare);
    }
    let report = Report {
        bin,
        host: proc::host_description(),
        chunks,
        queries_per_kind: n,
        bm25,
        hybrid,
        hybrid_skipped,
        bare,
        total_secs: started.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// What every instance shares.
struct Plan<'a> {
    chunks: usize,
    sets: &'a [(Kind, Vec<String>)],
    clients: usize,
    quiet: bool,
}

impl Plan<'_> {
    /// Starts an instance, fills it, waits, times every kind. Also returns a
    /// copy of its chunk texts (a small SQLite file) for the bare baseline.
    fn measure(&self, sandbox: &Sandbox, model: Option<&Path>) -> Result<(Measured, PathBuf)> {
        let inst = Instance::start(sandbox, model, self.quiet)?;
        self.measure_on(&inst, sandbox)
            .map_err(|e| anyhow!("{e:#}\n{}", inst.svc.stderr_tail()))
    }

    fn measure_on(&self, inst: &Instance, sandbox: &Sandbox) -> Result<(Measured, PathBuf)> {
        let c = inst.client();
        for _ in 0..20 {
            c.get("/health")?
                .json_200::<serde::de::IgnoredAny>("GET /health")?;
        }
        if inst.model.is_some() {
            inst.wait_model_ready()?;
        } else {
            inst.check_bm25_only()?;
        }
        let (rss_idle_mib, _) = inst.rss_mib()?;
        let before = inst.counts()?;
        let body = |i: usize| corpus::message_body(i, &corpus::message(i));
        let posted = inst.post_messages(self.chunks, &body, self.clients)?;
        let drained = inst.wait_indexed(before, self.chunks as u64, &posted.last_job)?;
        let index_secs = (drained.at - posted.first_post).as_secs_f64();
        let embedded_secs = match inst.model {
            Some(_) => Some((inst.wait_embedded(self.chunks as u64)?.0 - posted.first_post).as_secs_f64()),
            None => None,
        };
        let semantic = inst.semantic()?;
        let mut kinds = Vec::new();
        for (kind, qs) in self.sets {
            kinds.push(time_kind(&c, *kind, qs)?);
        }
        let (rss_end_mib, rss_peak_mib) = inst.rss_mib()?;
        let copy = sandbox.path().join(format!("texts-{}.sqlite", inst.svc.pid()));
        let chat_chunks = copy_texts(&inst.home.join("memory.sqlite"), &copy)?;
        Ok((
            Measured {
                mode: if inst.model.is_some() { "hybrid" } else { "bm25" }.into(),
                model_dir: inst.model.clone(),
                semantic,
                acks_per_sec: self.chunks as f64 / (posted.last_ack - posted.first_post).as_secs_f64(),
                index_secs,
                indexed_per_sec: self.chunks as f64 / index_secs,
                embedded_secs,
                chat_chunks: Some(chat_chunks),
                rss_idle_mib,
                rss_end_mib,
                rss_peak_mib,
                kinds,
            },
            copy,
        ))
    }
}

/// Times `/search` (limit 10) for each query after [`WARM_UP`] untimed ones.
pub fn time_kind(c: &crate::client::Client, kind: Kind, qs: &[String]) -> Result<KindLatency> {
    let (mut ms, mut results) = (Vec::new(), 0);
    for (i, q) in qs.iter().enumerate() {
        let body = jobs::search_body(corpus::PROJECT, q, 10, None);
        let t = Instant::now();
        let hits = jobs::search(c, &body)?;
        if i >= WARM_UP {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            results += hits.len();
        }
    }
    Ok(KindLatency {
        kind,
        example: qs[WARM_UP.min(qs.len() - 1)].clone(),
        results_mean: results as f64 / ms.len().max(1) as f64,
        ms: Summary::of(&ms).context("no timed query")?,
        ratio_p50_to_bare: None,
        ratio_p99_to_bare: None,
    })
}

/// Copies the chat chunk texts of the service's database `db` (read-only,
/// while it runs) into a new SQLite file `to`; returns how many.
fn copy_texts(db: &Path, to: &Path) -> Result<i64> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        to,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("creating {}", to.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute(
        "ATTACH DATABASE ?1 AS svc",
        [format!("file:{}?mode=ro", db.display())],
    )
    .with_context(|| format!("opening {} read-only", db.display()))?;
    conn.execute_batch("CREATE TABLE texts AS SELECT text FROM svc.chunks WHERE kind = 'chat'")
        .with_context(|| format!("copying chunk texts from {}", db.display()))?;
    let n: i64 = conn.query_row("SELECT count(*) FROM texts", [], |r| r.get(0))?;
    Ok(n)
}

/// Builds a bare FTS5 table (baseline.rs: the service's tokenizer) from the
/// texts in `texts_db` and times each query's OR expression on it:
/// `MATCH expr ORDER BY rank LIMIT 10`, reading rowid and text like a result.
fn bare_latency(texts_db: &Path, path: &Path, sets: &[(Kind, Vec<String>)]) -> Result<Vec<KindLatency>> {
    let src =
        rusqlite::Connection::open(texts_db).with_context(|| format!("opening {}", texts_db.display()))?;
    let mut bare = Bare::create(path, 10_000)?;
    {
        let mut stmt = src.prepare("SELECT text FROM texts")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            bare.insert(&r.get::<_, String>(0)?)?;
        }
    }
    bare.finish()?;
    let conn = rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut stmt =
        conn.prepare("SELECT rowid, text, bm25(t) FROM t WHERE t MATCH ?1 ORDER BY rank LIMIT 10")?;
    let mut out = Vec::new();
    for (kind, qs) in sets {
        let (mut ms, mut results) = (Vec::new(), 0);
        for (i, q) in qs.iter().enumerate() {
            let Some(expr) = or_expression(q) else { continue };
            let t = Instant::now();
            let mut n = 0;
            let mut rows = stmt.query([&expr])?;
            while let Some(r) = rows.next()? {
                let _: (i64, String, f64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                n += 1;
            }
            if i >= WARM_UP {
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                results += n;
            }
        }
        out.push(KindLatency {
            kind: *kind,
            example: or_expression(&qs[WARM_UP.min(qs.len() - 1)]).unwrap_or_default(),
            results_mean: results as f64 / ms.len().max(1) as f64,
            ms: Summary::of(&ms).context("no bare query")?,
            ratio_p50_to_bare: None,
            ratio_p99_to_bare: None,
        });
    }
    Ok(out)
}

fn print_kinds(kinds: &[KindLatency]) {
    for k in kinds {
        let ratio = match (k.ratio_p50_to_bare, k.ratio_p99_to_bare) {
            (Some(a), Some(b)) => format!("  vs bare: p50 x{a:.1}, p99 x{b:.1}"),
            _ => String::new(),
        };
        println!(
            "  {:<20} n {:>4}  p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  max {:>8.2} ms  {:>5.1} hits{ratio}",
            k.kind.label(),
            k.ms.n,
            k.ms.median,
            k.ms.p90,
            k.ms.p99,
            k.ms.max,
            k.results_mean
        );
    }
}

fn print_table(r: &Report) {
    println!("memory-service search benchmark");
    println!("  binary  {}", r.bin.display());
    println!("  host    {}", r.host);
    println!(
        "  size    {} messages in one project; {} timed /search (limit 10) per kind, one client, after {WARM_UP} warm-up",
        r.chunks, r.queries_per_kind
    );
    for m in std::iter::once(&r.bm25).chain(r.hybrid.as_ref()) {
        println!();
        let model = m
            .semantic
            .as_ref()
            .and_then(|s| s.model.clone())
            .or_else(|| m.model_dir.as_ref().map(|d| d.display().to_string()));
        match (&model, m.mode.as_str()) {
            (Some(model), "hybrid") => println!("{} ({model})", m.mode),
            _ => println!("{}", m.mode),
        }
        print!(
            "  indexed  {} chat chunks in {:.1} s ({:.0} msg/s; acks {:.0}/s)",
            m.chat_chunks.map_or("?".into(), |n| n.to_string()),
            m.index_secs,
            m.indexed_per_sec,
            m.acks_per_sec
        );
        if let Some(e) = m.embedded_secs {
            print!("; embedding backlog 0 after {e:.1} s");
        }
        println!();
        println!(
            "  RSS      idle {:.1} MiB, after searches {:.1} MiB, peak (VmHWM) {:.1} MiB",
            m.rss_idle_mib, m.rss_end_mib, m.rss_peak_mib
        );
        print_kinds(&m.kinds);
    }
    if let Some(why) = &r.hybrid_skipped {
        println!();
        println!("hybrid: not measured: {why}");
    }
    println!();
    println!(
        "bare FTS5 (same texts, same tokenizer, the OR of the query's words, ORDER BY rank LIMIT 10, in-process)"
    );
    print_kinds(&r.bare);
    for k in &r.bare {
        println!("  e.g. {:<15} {}", k.kind.label(), k.example);
    }
    println!();
    println!("whole run {:.1} s", r.total_secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_have_six_to_ten_words() {
        let mut rng = Rng::new(7);
        for _ in 0..500 {
            let q = natural_question(&mut rng);
            let n = q.split(' ').count();
            assert!((6..=10).contains(&n), "{n} words: {q}");
            assert!(q.ends_with('?'));
        }
    }

    #[test]
    fn query_sets_are_fixed_and_of_their_kind() {
        assert_eq!(
            queries(Kind::OneCommonWord, 5, 100),
            queries(Kind::OneCommonWord, 5, 100)
        );
        for q in queries(Kind::TwoRareWords, 20, 100) {
            let words: Vec<&str> = q.split(' ').collect();
            assert_eq!(words.len(), 2);
            assert!(words.iter().all(|w| w.starts_with("zqm")), "{q}");
        }
        assert!(
            queries(Kind::OneCommonWord, 20, 100)
                .iter()
                .all(|q| !q.contains(' '))
        );
    }

    #[test]
    fn or_expression_like_the_service() {
        assert_eq!(
            or_expression("How do I fix the Fix?").as_deref(),
            Some("\"How\" OR \"do\" OR \"I\" OR \"fix\" OR \"the\"")
        );
        assert_eq!(or_expression(" ?! "), None);
    }
}
