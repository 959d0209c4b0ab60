//! `search [--project P] [--source S] QUERY`: readable results (score,
//! project and source, path or chat, a snippet with every query word marked).
//!
//! Why the CLI fans out instead of the service searching "everything":
//! `POST /search` is ChatDO's wire (api.md A.2.9) and requires `project_id`;
//! changing that, or teaching the store a cross-project query, would touch the
//! contract every existing caller relies on. Without `--project` the CLI asks
//! `GET /sources` which projects hold sources, searches each of them (and
//! `general`, where `sources add` puts folders by default) with the unchanged
//! request, drops hits seen twice and keeps the best `limit` by score. The
//! order across calls is approximate: each part of a score is normalised to
//! [0, 1] within its own search (BM25 against that search's best hit), so
//! each project's best hit scores high. A project that only has
//! chat messages and no source is not known to the service's API, so it still
//! needs `--project`; the empty result says so.

use std::collections::{BTreeSet, HashSet};
use std::io::IsTerminal;

use serde_json::{Value, json};

use super::Client;
use crate::config::Config;
use crate::exit_code::ExitCode;

/// The project `sources add` and the page use when none is given.
pub const DEFAULT_PROJECT: &str = "general";

/// Options of `search`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  memory-service search single instance lock          # every project and source
  memory-service search --project general lock        # one project's files and chats
  memory-service search --source notes-dir -n 3 lock  # one source
  memory-service search --json lock | jq '.results[].file_path'")]
pub struct SearchArgs {
    /// Search only this project (its sources and chats) [default: every
    /// project that has a source, and `general`].
    #[arg(long, short)]
    pub project: Option<String>,
    /// Search only this source (an id from `sources list`).
    #[arg(long, short)]
    pub source: Option<String>,
    /// What to look for (plain words; no query syntax).
    #[arg(required = true)]
    pub query: Vec<String>,
    /// How many results.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub limit: u32,
    /// Print JSON (`{"results": [...]}`, the API's shape) instead.
    #[arg(long)]
    pub json: bool,
}

/// The query's words, lower-cased: runs of letters and digits.
fn query_words(query: &str) -> HashSet<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A snippet of about `width` characters of `text` (whitespace collapsed)
/// around the first query word found, with every whole-word occurrence of
/// any query word wrapped in `open`/`close` (case-insensitive; `cat` is not
/// marked inside `concatenate`). Without a match, the text's start.
pub fn snippet(text: &str, query: &str, width: usize, open: &str, close: &str) -> String {
    let words = query_words(query);
    let chars: Vec<char> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    // Whole words of the text as char ranges, and whether each is a query word.
    let mut marks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if words.contains(&word) {
                marks.push((start, i));
            }
        } else {
            i += 1;
        }
    }
    let (start, end) = match marks.first() {
        Some(&(at, _)) => {
            let start = at.saturating_sub(width / 3);
            (start, (start + width).min(chars.len()))
        }
        None => (0, width.min(chars.len())),
    };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    for &(a, b) in marks.iter().filter(|(a, b)| *a >= start && *b <= end) {
        out.extend(&chars[pos..a]);
        out.push_str(open);
        out.extend(&chars[a..b]);
        out.push_str(close);
        pos = b;
    }
    out.extend(&chars[pos..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// Where a hit comes from, for people: `file PATH` or `chat C message M`.
pub fn place(r: &Value) -> String {
    match r["source_type"].as_str() {
        Some("file") => format!("file {}", r["file_path"].as_str().unwrap_or("?")),
        _ => format!(
            "chat {} message {}",
            r["chat_id"].as_str().unwrap_or("?"),
            r["message_id"].as_str().unwrap_or("?")
        ),
    }
}

/// What makes two hits the same chunk, across the fan-out's calls.
fn identity(r: &Value) -> String {
    [
        "source_type",
        "source_id",
        "file_path",
        "chunk_index",
        "chat_id",
        "message_id",
        "message_uuid",
    ]
    .iter()
    .map(|k| r[*k].to_string())
    .collect::<Vec<_>>()
    .join("\u{1f}")
}

/// Merges result lists: first occurrence of each chunk, best score first,
/// at most `limit`.
pub fn merge(lists: Vec<Vec<Value>>, limit: usize) -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut all: Vec<Value> = lists
        .into_iter()
        .flatten()
        .filter(|r| seen.insert(identity(r)))
        .collect();
    all.sort_by(|a, b| {
        let (x, y) = (
            a["score"].as_f64().unwrap_or(0.0),
            b["score"].as_f64().unwrap_or(0.0),
        );
        y.total_cmp(&x)
    });
    all.truncate(limit);
    all
}

/// The `/search` requests for `args`, given the sources the service lists.
fn requests(args: &SearchArgs, sources: &[Value], query: &str) -> anyhow::Result<Vec<Value>> {
    let base = |project: &str| json!({"project_id": project, "query": query, "limit": args.limit});
    if let Some(id) = &args.source {
        let Some(source) = sources.iter().find(|s| s["id"].as_str() == Some(id)) else {
            anyhow::bail!(
                "there is no source {id:?}\n  next: `memory-service sources list` shows the source ids"
            );
        };
        let project = args
            .project
            .clone()
            .or_else(|| source["project_id"].as_str().map(str::to_string))
            .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
        let mut r = base(&project);
        r["source_ids"] = json!([id]);
        return Ok(vec![r]);
    }
    if let Some(p) = &args.project {
        return Ok(vec![base(p)]);
    }
    let mut projects: BTreeSet<String> = BTreeSet::from([DEFAULT_PROJECT.to_string()]);
    let mut requests = Vec::new();
    for s in sources {
        match s["project_id"].as_str() {
            Some(p) => {
                projects.insert(p.to_string());
            }
            // A source outside any project is only reached by its id.
            None => {
                let mut r = base(DEFAULT_PROJECT);
                r["source_ids"] = json!([s["id"]]);
                requests.push(r);
            }
        }
    }
    requests.extend(projects.iter().map(|p| base(p)));
    Ok(requests)
}

/// Runs `search`.
pub fn run(config: &Config, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    let query = args.query.join(" ");
    let sources = if args.project.is_some() && args.source.is_none() {
        Vec::new()
    } else {
        client.get("/sources")?["sources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let mut lists = Vec::new();
    for req in requests(args, &sources, &query)? {
        let v = client.post("/search", &req)?;
        let mut hits = v["results"].as_array().cloned().unwrap_or_default();
        if let Some(id) = &args.source {
            hits.retain(|r| r["source_id"].as_str() == Some(id));
        }
        lists.push(hits);
    }
    let results = merge(lists, args.limit as usize);
    if args.json {
        println!("{}", json!({ "results": results }));
        return Ok(ExitCode::Ok);
    }
    if results.is_empty() {
        let scope = match (&args.source, &args.project) {
            (Some(s), _) => format!("source {s}"),
            (None, Some(p)) => format!("project {p}"),
            (None, None) => "any project with a source (chat-only projects need --project)".to_string(),
        };
        println!("No results for {query:?} in {scope}.");
        return Ok(ExitCode::Ok);
    }
    let (open, close) = if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    for (i, r) in results.iter().enumerate() {
        println!(
            "{:>2}. {:.3}  {}  (project {}, source {})",
            i + 1,
            r["score"].as_f64().unwrap_or(0.0),
            place(r),
            r["project_id"].as_str().unwrap_or("?"),
            r["source_id"].as_str().unwrap_or("?"),
        );
        println!(
            "    {}",
            snippet(r["text"].as_str().unwrap_or(""), &query, 160, open, close)
        );
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_mark_every_query_word_as_a_whole_word() {
        assert_eq!(
            snippet("hello big world", "world", 80, "[", "]"),
            "hello big [world]"
        );
        assert_eq!(snippet("Zebra zebra", "ZEBRA", 80, "[", "]"), "[Zebra] [zebra]");
        assert_eq!(
            snippet("the cat can concatenate; Cat!", "cat lock", 80, "[", "]"),
            "the [cat] can concatenate; [Cat]!"
        );
        assert_eq!(
            snippet(
                "single instance: one lock per home",
                "single instance lock",
                80,
                "[",
                "]"
            ),
            "[single] [instance]: one [lock] per home"
        );
        let long = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
        let s = snippet(&long, "needle", 60, "[", "]");
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("[needle]"),
            "{s}"
        );
        assert_eq!(snippet("no match here", "zzz", 5, "[", "]"), "no ma…");
        assert_eq!(snippet("", "x", 10, "[", "]"), "");
        assert_eq!(snippet("Ärger über Öl", "öl", 80, "<", ">"), "Ärger über <Öl>");
    }

    #[test]
    fn merge_drops_repeats_and_keeps_the_best() {
        let hit = |src: &str, chunk: i64, score: f64| json!({"source_type": "file", "source_id": src, "file_path": "a.md", "chunk_index": chunk, "score": score});
        let merged = merge(
            vec![
                vec![hit("s", 0, 0.5), hit("s", 1, 0.2)],
                vec![hit("s", 0, 0.5), hit("t", 0, 0.9)],
            ],
            2,
        );
        let ids: Vec<_> = merged
            .iter()
            .map(|r| (r["source_id"].clone(), r["chunk_index"].clone()))
            .collect();
        assert_eq!(ids, vec![(json!("t"), json!(0)), (json!("s"), json!(0))]);
    }

    #[test]
    fn fan_out_covers_every_project_and_loose_source() {
        let args = SearchArgs {
            project: None,
            source: None,
            query: vec!["x".into()],
            limit: 5,
            json: false,
        };
        let sources = vec![
            json!({"id": "a", "project_id": "work"}),
            json!({"id": "b", "project_id": "work"}),
            json!({"id": "c", "project_id": null}),
        ];
        let reqs = requests(&args, &sources, "x").unwrap();
        let projects: Vec<_> = reqs
            .iter()
            .map(|r| (r["project_id"].clone(), r["source_ids"].clone()))
            .collect();
        assert_eq!(
            projects,
            vec![
                (json!("general"), json!(["c"])),
                (json!("general"), Value::Null),
                (json!("work"), Value::Null),
            ]
        );
        let one = SearchArgs {
            source: Some("b".into()),
            ..args.clone()
        };
        let reqs = requests(&one, &sources, "x").unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0]["project_id"], "work");
        assert_eq!(reqs[0]["source_ids"], json!(["b"]));
        let missing = SearchArgs {
            source: Some("zz".into()),
            ..args
        };
        assert!(requests(&missing, &sources, "x").is_err());
    }
}
