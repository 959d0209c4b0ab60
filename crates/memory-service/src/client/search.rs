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

use memory_api::search::{SearchRequest, SearchResult, SearchResults, SourceType};
use memory_api::sources::{Source, SourceList};

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
pub fn place(r: &SearchResult) -> String {
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    match r.source_type {
        SourceType::File => format!("file {}", or_unknown(&r.file_path)),
        SourceType::Chat => format!(
            "chat {} message {}",
            or_unknown(&r.chat_id),
            or_unknown(&r.message_id)
        ),
    }
}

/// What makes two hits the same chunk, across the fan-out's calls.
type HitIdentity = (
    SourceType,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn identity(r: &SearchResult) -> HitIdentity {
    (
        r.source_type,
        r.source_id.clone(),
        r.file_path.clone(),
        r.chunk_index,
        r.chat_id.clone(),
        r.message_id.clone(),
        r.message_uuid.clone(),
    )
}

/// Merges result lists: first occurrence of each chunk, best score first,
/// at most `limit`.
pub fn merge(lists: Vec<Vec<SearchResult>>, limit: usize) -> Vec<SearchResult> {
    let mut seen = HashSet::new();
    let mut all: Vec<SearchResult> = lists
        .into_iter()
        .flatten()
        .filter(|r| seen.insert(identity(r)))
        .collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    all.truncate(limit);
    all
}

/// The `/search` requests for `args`, given the sources the service lists.
fn requests(args: &SearchArgs, sources: &[Source], query: &str) -> anyhow::Result<Vec<SearchRequest>> {
    let base = |project: &str, source_ids: Option<Vec<String>>| SearchRequest {
        project_id: project.to_string(),
        query: query.to_string(),
        limit: i64::from(args.limit),
        source_ids,
        chat_id: None,
        exclude_chat_ids: None,
    };
    if let Some(id) = &args.source {
        let Some(source) = sources.iter().find(|s| &s.id == id) else {
            anyhow::bail!(
                "there is no source {id:?}\n  next: `memory-service sources list` shows the source ids"
            );
        };
        let project = args.project.clone().unwrap_or_else(|| source.project_id.clone());
        return Ok(vec![base(&project, Some(vec![id.clone()]))]);
    }
    if let Some(p) = &args.project {
        return Ok(vec![base(p, None)]);
    }
    let mut projects: BTreeSet<String> = BTreeSet::from([DEFAULT_PROJECT.to_string()]);
    projects.extend(sources.iter().map(|s| s.project_id.clone()));
    Ok(projects.iter().map(|p| base(p, None)).collect())
}

/// Runs `search`.
pub fn run(config: &Config, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    let query = args.query.join(" ");
    let sources = if args.project.is_some() && args.source.is_none() {
        Vec::new()
    } else {
        client.get::<SourceList>("/sources")?.sources
    };
    let mut lists = Vec::new();
    for req in requests(args, &sources, &query)? {
        let v: SearchResults = client.post("/search", &req)?;
        let mut hits = v.results;
        if let Some(id) = &args.source {
            hits.retain(|r| &r.source_id == id);
        }
        lists.push(hits);
    }
    let results = merge(lists, args.limit as usize);
    if args.json {
        let body = SearchResults { results };
        println!("{}", serde_json::to_string(&body).expect("results serialise"));
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
            r.score,
            place(r),
            r.project_id,
            r.source_id,
        );
        println!("    {}", snippet(&r.text, &query, 160, open, close));
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

    fn hit(src: &str, chunk: i64, score: f64) -> SearchResult {
        SearchResult {
            score,
            project_id: "p".into(),
            source_id: src.into(),
            file_path: Some("a.md".into()),
            filetype: Some("md".into()),
            chunk_index: chunk,
            text: String::new(),
            start_char: 0,
            end_char: 0,
            source_type: SourceType::File,
            chat_id: None,
            message_id: None,
            message_uuid: None,
        }
    }

    fn source(id: &str, project: &str) -> Source {
        Source {
            id: id.into(),
            display_name: id.into(),
            root_path: format!("/{id}"),
            status: memory_api::sources::SourceStatus::Idle,
            files_indexed: 0,
            bytes_indexed: 0,
            last_index_started_at: None,
            last_index_completed_at: None,
            last_error: None,
            project_id: project.into(),
            latest_job: None,
            files_skipped: 0,
            skipped: Default::default(),
            connected_projects: None,
        }
    }

    #[test]
    fn merge_drops_repeats_and_keeps_the_best() {
        let merged = merge(
            vec![
                vec![hit("s", 0, 0.5), hit("s", 1, 0.2)],
                vec![hit("s", 0, 0.5), hit("t", 0, 0.9)],
            ],
            2,
        );
        let ids: Vec<_> = merged
            .iter()
            .map(|r| (r.source_id.as_str(), r.chunk_index))
            .collect();
        assert_eq!(ids, vec![("t", 0), ("s", 0)]);
    }

    #[test]
    fn fan_out_covers_every_project() {
        let args = SearchArgs {
            project: None,
            source: None,
            query: vec!["x".into()],
            limit: 5,
            json: false,
        };
        let sources = vec![source("a", "work"), source("b", "work"), source("c", "home")];
        let reqs = requests(&args, &sources, "x").unwrap();
        let projects: Vec<_> = reqs
            .iter()
            .map(|r| (r.project_id.as_str(), r.source_ids.clone(), r.limit))
            .collect();
        assert_eq!(
            projects,
            vec![("general", None, 5), ("home", None, 5), ("work", None, 5)]
        );
        let one = SearchArgs {
            source: Some("b".into()),
            ..args.clone()
        };
        let reqs = requests(&one, &sources, "x").unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].project_id, "work");
        assert_eq!(reqs[0].source_ids, Some(vec!["b".to_string()]));
        let missing = SearchArgs {
            source: Some("zz".into()),
            ..args
        };
        assert!(requests(&missing, &sources, "x").is_err());
    }
}
