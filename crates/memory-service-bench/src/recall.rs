//! The `recall` benchmark: how much of what was said `/search` finds, on
//! LoCoMo (the standard long-term conversational memory benchmark). Every
//! dialog turn goes in as one chat message through the HTTP API, as ChatDO
//! would send it; every answerable question (categories 1-4) is asked with
//! `/search` over its conversation's project, and we count the share of its
//! evidence turns in the top k. Run once on a BM25-only instance and once on
//! a hybrid one (`--embedding-model`), in the same run, so the two columns are
//! comparable. Recall is a number to report, never a pass/fail test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use memory_api::chat::IndexChatMessage;
use memory_api::search::SearchResult;
use serde::Serialize;

use crate::instance::{self, Instance};
use crate::jobs;
use crate::locomo::{self, CATEGORIES, Conversation, Question};
use crate::proc::{self, Sandbox, Semantic};
use crate::stats::Summary;

/// `memory-service-bench recall`: LoCoMo retrieval recall, BM25-only vs hybrid.
#[derive(Debug, clap::Args)]
pub struct RecallArgs {
    /// A LoCoMo-format directory: one conversation per `*.json`
    /// (e.g. /work/shared/data/locomo)
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The memory-service binary [default: `memory-service` next to this one]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Model directory for the hybrid instance [default:
    /// target/test-model/all-MiniLM-L6-v2 if it exists]
    #[arg(long, value_name = "DIR")]
    pub embedding_model: Option<PathBuf>,
    /// The cut-offs k of recall@k and session hit@k
    #[arg(long, value_delimiter = ',', default_value = "1,5,10",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub k: Vec<u32>,
    /// Only the first N conversations (by file name) [default: all; --quick: 1]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub conversations: Option<u32>,
    /// Writer threads posting the turns [default: 2]
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub clients: u32,
    /// A reduced size for CI: one conversation (explicit options still win)
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

/// Everything `recall` measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The binary measured.
    pub bin: PathBuf,
    /// What ran it.
    pub host: String,
    /// The data directory.
    pub data: PathBuf,
    /// Project ids (conversations) indexed.
    pub conversations: Vec<String>,
    /// Turns indexed per instance.
    pub turns: usize,
    /// Questions asked (categories 1-4 with known evidence).
    pub questions: usize,
    /// Evidence ids naming no turn, dropped from their questions.
    pub unknown_evidence: Vec<String>,
    /// Category 1-4 questions not asked (no known evidence).
    pub questions_without_evidence: usize,
    /// The k of every `recall` / `session_hit` column, in order.
    pub ks: Vec<usize>,
    /// `limit` of every `/search`.
    pub search_limit: usize,
    /// The BM25-only instance.
    pub bm25: Measured,
    /// The hybrid instance, `None` when not measured (see `hybrid_skipped`).
    pub hybrid: Option<Measured>,
    /// Why hybrid was not measured.
    pub hybrid_skipped: Option<String>,
    /// Wall time of the whole run, seconds.
    pub total_secs: f64,
}

/// One instance's run. Times in seconds unless the name says ms.
#[derive(Debug, Serialize)]
pub struct Measured {
    /// "bm25" or "hybrid".
    pub mode: String,
    /// The model directory it was started with.
    pub model_dir: Option<PathBuf>,
    /// `/health`'s `semantic` once indexing was over (`None`: no such object).
    pub semantic: Option<Semantic>,
    /// First post to every chat index job done.
    pub index_secs: f64,
    /// First post to the embedding backlog at 0 (hybrid only).
    pub embedded_secs: Option<f64>,
    /// Chat jobs done to the embedding backlog at 0 (hybrid only).
    pub embed_drain_after_index_secs: Option<f64>,
    /// POST to 200 of `/index-chat-message`, ms.
    pub ack_ms: Summary,
    /// `/search` round trips, ms.
    pub search_ms: Summary,
    /// One row per category 1-4, then "overall" (all questions, 1-4).
    pub rows: Vec<Row>,
}

/// Recall of one category (or all).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// 1-4, or 0 for the overall row.
    pub category: u8,
    /// "multi-hop", ..., "overall".
    pub name: String,
    /// Questions in the row.
    pub questions: usize,
    /// Mean over questions of (evidence turns in the top k) / (evidence turns), per k.
    pub recall: Vec<f64>,
    /// Share of questions with a hit from a session holding evidence in the top k, per k.
    pub session_hit: Vec<f64>,
}

/// Runs both instances and prints the report.
pub fn run(args: &RecallArgs) -> Result<()> {
    let started = Instant::now();
    let bin = proc::resolve_bin(args.bin.as_deref())?;
    let mut convs = locomo::load_dir(&args.data)?;
    let limit = args.conversations.or(args.quick.then_some(1));
    if let Some(n) = limit {
        convs.truncate(n as usize);
    }
    let mut ks: Vec<usize> = args.k.iter().map(|&k| k as usize).collect();
    ks.sort_unstable();
    ks.dedup();
    let search_limit = ks.last().copied().unwrap_or(10).max(10);
    let say = |what: &str| {
        if !args.json {
            eprintln!("running: {what}");
        }
    };
    let sandbox = proc::sandbox(&bin)?;
    let plan = Plan {
        convs: &convs,
        ks: &ks,
        search_limit,
        clients: args.clients as usize,
        quiet: args.json,
    };

    say("BM25-only instance (no model)");
    let bm25 = plan.measure(&sandbox, None).context("the BM25-only instance")?;
    let (hybrid, hybrid_skipped) = instance::measure_hybrid(args.embedding_model.as_deref(), say, |dir| {
        plan.measure(&sandbox, Some(dir))
    })?;

    let report = Report {
        bin,
        host: proc::host_description(),
        data: args.data.clone(),
        conversations: convs.iter().map(|c| c.id.clone()).collect(),
        turns: convs.iter().map(|c| c.turns.len()).sum(),
        questions: convs.iter().map(|c| c.questions.len()).sum(),
        unknown_evidence: convs.iter().flat_map(|c| c.unknown_evidence.clone()).collect(),
        questions_without_evidence: convs.iter().map(|c| c.questions_without_evidence).sum(),
        ks,
        search_limit,
        bm25,
        hybrid,
        hybrid_skipped,
        total_secs: started.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// What both instances share.
struct Plan<'a> {
    convs: &'a [Conversation],
    ks: &'a [usize],
    search_limit: usize,
    clients: usize,
    quiet: bool,
}

impl Plan<'_> {
    /// Starts an instance (hybrid when `model` is given), indexes every turn,
    /// waits for the index (and the embeddings), asks every question.
    fn measure(&self, sandbox: &Sandbox, model: Option<&Path>) -> Result<Measured> {
        let inst = Instance::start(sandbox, model, self.quiet)?;
        let result = self.measure_on(&inst);
        result.map_err(|e| anyhow!("{e:#}\n{}", inst.svc.stderr_tail()))
    }

    fn measure_on(&self, inst: &Instance) -> Result<Measured> {
        if inst.model.is_some() {
            inst.wait_model_ready()?;
        } else {
            inst.check_bm25_only()?;
        }
        let bodies: Vec<IndexChatMessage> = self
            .convs
            .iter()
            .flat_map(|c| c.turns.iter().map(|t| message_body(&c.id, t)))
            .collect();
        let before = inst.counts()?;
        let posted = inst.post_messages(bodies.len(), &|i| bodies[i].clone(), self.clients)?;
        let drained = inst.wait_indexed(before, bodies.len() as u64, &posted.last_job)?;
        let index_secs = (drained.at - posted.first_post).as_secs_f64();
        let (mut embedded_secs, mut embed_drain) = (None, None);
        if inst.model.is_some() {
            let (at, _) = inst.wait_embedded(bodies.len() as u64)?;
            embedded_secs = Some((at - posted.first_post).as_secs_f64());
            embed_drain = Some(at.saturating_duration_since(drained.at).as_secs_f64());
        }
        let semantic = inst.semantic()?;
        let c = inst.client();
        let mut scored: Vec<(u8, Score)> = Vec::new();
        let mut search_ms = Vec::new();
        for conv in self.convs {
            for q in &conv.questions {
                let body = jobs::search_body(&conv.id, &q.text, self.search_limit as i64, None);
                let t = Instant::now();
                let hits = jobs::search(&c, &body)?;
                search_ms.push(t.elapsed().as_secs_f64() * 1e3);
                scored.push((q.category, score(q, &hits, self.ks)));
            }
        }
        Ok(Measured {
            mode: if inst.model.is_some() { "hybrid" } else { "bm25" }.into(),
            model_dir: inst.model.clone(),
            semantic,
            index_secs,
            embedded_secs,
            embed_drain_after_index_secs: embed_drain,
            ack_ms: Summary::of(&posted.ack_ms).context("no acks")?,
            search_ms: Summary::of(&search_ms).context("no question was asked")?,
            rows: rows(&scored, self.ks.len()),
        })
    }
}

/// The `/index-chat-message` body of one turn of conversation `project`.
fn message_body(project: &str, t: &locomo::Turn) -> IndexChatMessage {
    IndexChatMessage {
        project_id: project.to_string(),
        chat_id: t.chat_id.clone(),
        message_id: t.message_id.clone(),
        role: "user".to_string(),
        content: t.content.clone(),
        timestamp: t.timestamp.clone(),
        message_index: t.index as i64,
        message_uuid: None,
    }
}

/// One question's outcome per k.
#[derive(Debug, Clone, PartialEq)]
struct Score {
    /// Share of its evidence turns among the top k hits.
    recall: Vec<f64>,
    /// 1.0 when a top-k hit is from a session holding evidence.
    session_hit: Vec<f64>,
}

/// Scores the ranked `hits` (`message_id`, `chat_id`) of `q` at each k.
fn score(q: &Question, hits: &[SearchResult], ks: &[usize]) -> Score {
    let mut recall = Vec::with_capacity(ks.len());
    let mut session_hit = Vec::with_capacity(ks.len());
    for &k in ks {
        let top = &hits[..k.min(hits.len())];
        let found = q
            .evidence
            .iter()
            .filter(|e| top.iter().any(|h| h.message_id.as_deref() == Some(e.as_str())))
            .count();
        recall.push(found as f64 / q.evidence.len() as f64);
        let hit = top.iter().any(|h| {
            h.chat_id
                .as_deref()
                .is_some_and(|c| q.sessions.iter().any(|s| s == c))
        });
        session_hit.push(if hit { 1.0 } else { 0.0 });
    }
    Score { recall, session_hit }
}

/// Per-category means, then the overall row (category 0).
fn rows(scored: &[(u8, Score)], nk: usize) -> Vec<Row> {
    let mut by: BTreeMap<u8, Vec<&Score>> = BTreeMap::new();
    for (c, s) in scored {
        by.entry(*c).or_default().push(s);
    }
    let mean = |ss: &[&Score], f: &dyn Fn(&Score) -> &Vec<f64>| -> Vec<f64> {
        (0..nk)
            .map(|i| {
                if ss.is_empty() {
                    0.0
                } else {
                    ss.iter().map(|s| f(s)[i]).sum::<f64>() / ss.len() as f64
                }
            })
            .collect()
    };
    let row = |category: u8, name: &str, ss: &[&Score]| Row {
        category,
        name: name.into(),
        questions: ss.len(),
        recall: mean(ss, &|s| &s.recall),
        session_hit: mean(ss, &|s| &s.session_hit),
    };
    let mut out: Vec<Row> = CATEGORIES
        .iter()
        .map(|&(c, name)| row(c, name, by.get(&c).map_or(&[][..], Vec::as_slice)))
        .collect();
    let all: Vec<&Score> = scored.iter().map(|(_, s)| s).collect();
    out.push(row(0, "overall 1-4", &all));
    out
}

fn print_table(r: &Report) {
    println!("memory-service recall benchmark (LoCoMo)");
    println!("  binary  {}", r.bin.display());
    println!("  host    {}", r.host);
    println!(
        "  data    {} ({} conversations: {}), {} turns, {} questions of categories 1-4, /search limit {}",
        r.data.display(),
        r.conversations.len(),
        r.conversations.join(", "),
        r.turns,
        r.questions,
        r.search_limit
    );
    if !r.unknown_evidence.is_empty() || r.questions_without_evidence > 0 {
        println!(
            "  note    evidence ids naming no turn, dropped: {:?}; questions left without evidence, not asked: {}",
            r.unknown_evidence, r.questions_without_evidence
        );
    }
    let mut all = vec![&r.bm25];
    all.extend(r.hybrid.as_ref());
    for m in &all {
        println!();
        print_measured(m, &r.ks);
    }
    if let Some(why) = &r.hybrid_skipped {
        println!();
        println!("hybrid: not measured: {why}");
    }
    if let Some(h) = &r.hybrid {
        println!();
        println!("hybrid - BM25 (recall@k)");
        for (b, h) in r.bm25.rows.iter().zip(&h.rows) {
            let d: Vec<String> = h
                .recall
                .iter()
                .zip(&b.recall)
                .map(|(h, b)| format!("{:+.3}", h - b))
                .collect();
            println!("  {:<12} {}", b.name, d.join("  "));
        }
    }
    println!();
    println!("whole run {:.1} s", r.total_secs);
}

fn print_measured(m: &Measured, ks: &[usize]) {
    let model = m
        .semantic
        .as_ref()
        .and_then(|s| s.model.clone())
        .or_else(|| m.model_dir.as_ref().map(|d| d.display().to_string()));
    match &model {
        Some(model) if m.mode == "hybrid" => println!("{} ({model})", m.mode),
        _ => println!("{}", m.mode),
    }
    let state = m
        .semantic
        .as_ref()
        .map_or("no semantic object in /health".into(), |s| {
            format!("semantic {}", s.state())
        });
    print!("  indexed   all turns {:.2} s after the first post", m.index_secs);
    if let (Some(e), Some(d)) = (m.embedded_secs, m.embed_drain_after_index_secs) {
        print!("; embedding backlog 0 after {e:.2} s ({d:.2} s after indexing)");
    }
    println!(" [{state}]");
    println!(
        "  acks      p50 {:.2} ms  p99 {:.2} ms;  /search p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        m.ack_ms.median, m.ack_ms.p99, m.search_ms.median, m.search_ms.p99, m.search_ms.max
    );
    let head: Vec<String> = ks.iter().map(|k| format!("{:>6}", format!("R@{k}"))).collect();
    let shead: Vec<String> = ks.iter().map(|k| format!("{:>6}", format!("S@{k}"))).collect();
    println!(
        "  {:<12} {:>5} {}  | {}",
        "category",
        "n",
        head.join(""),
        shead.join("")
    );
    for row in &m.rows {
        let r: Vec<String> = row.recall.iter().map(|v| format!("{v:>6.3}")).collect();
        let s: Vec<String> = row.session_hit.iter().map(|v| format!("{v:>6.3}")).collect();
        println!(
            "  {:<12} {:>5} {}  | {}",
            row.name,
            row.questions,
            r.join(""),
            s.join("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(evidence: &[&str], sessions: &[&str]) -> Question {
        Question {
            text: "?".into(),
            category: 1,
            evidence: evidence.iter().map(|s| s.to_string()).collect(),
            sessions: sessions.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn hit(m: &str, c: &str) -> SearchResult {
        SearchResult {
            score: 0.5,
            project_id: "p".into(),
            source_id: "project-p".into(),
            file_path: None,
            filetype: None,
            chunk_index: 0,
            text: String::new(),
            start_char: 0,
            end_char: 0,
            source_type: memory_api::search::SourceType::Chat,
            chat_id: Some(c.into()),
            message_id: Some(m.into()),
            message_uuid: None,
        }
    }

    #[test]
    fn recall_and_session_hits_at_k() {
        let q = q(&["D1:2", "D3:1"], &["session_1", "session_3"]);
        let hits = [
            hit("D2:5", "session_2"),
            hit("D1:2", "session_1"),
            hit("D3:1", "session_3"),
        ];
        let s = score(&q, &hits, &[1, 2, 10]);
        assert_eq!(s.recall, [0.0, 0.5, 1.0]);
        assert_eq!(s.session_hit, [0.0, 1.0, 1.0]);
        let none = score(&q, &[], &[1, 5]);
        assert_eq!(none.recall, [0.0, 0.0]);
    }

    #[test]
    fn session_hit_without_the_evidence_turn() {
        let q = q(&["D1:2"], &["session_1"]);
        let s = score(&q, &[hit("D1:9", "session_1")], &[1]);
        assert_eq!((s.recall[0], s.session_hit[0]), (0.0, 1.0));
    }

    #[test]
    fn rows_average_per_question() {
        let a = Score {
            recall: vec![1.0],
            session_hit: vec![1.0],
        };
        let b = Score {
            recall: vec![0.0],
            session_hit: vec![1.0],
        };
        let c = Score {
            recall: vec![0.5],
            session_hit: vec![0.0],
        };
        let rows = rows(&[(1, a), (1, b), (4, c)], 1);
        assert_eq!(rows.len(), 5);
        assert_eq!((rows[0].questions, rows[0].recall[0]), (2, 0.5));
        assert_eq!((rows[1].questions, rows[1].recall[0]), (0, 0.0));
        assert_eq!((rows[3].questions, rows[3].recall[0]), (1, 0.5));
        assert_eq!(rows[4].name, "overall 1-4");
        assert_eq!(rows[4].questions, 3);
        assert!((rows[4].recall[0] - 0.5).abs() < 1e-12);
        assert!((rows[4].session_hit[0] - 2.0 / 3.0).abs() < 1e-12);
    }
}
