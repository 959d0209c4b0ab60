//! `search --project P QUERY`: readable results (score, source, path or
//! chat, a snippet around the first match with the match marked).

use std::io::IsTerminal;

use serde_json::{Value, json};

use super::Client;
use crate::config::Config;
use crate::exit_code::ExitCode;

/// Options of `search`.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchArgs {
    /// The project to search in.
    #[arg(long, short)]
    pub project: String,
    /// What to look for (plain words; no query syntax).
    #[arg(required = true)]
    pub query: Vec<String>,
    /// How many results.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub limit: u32,
    /// Print the API's JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// A snippet of about `width` characters around the first query word found
/// in `text`, with each occurrence of that word wrapped in `open`/`close`.
pub fn snippet(text: &str, query: &str, width: usize, open: &str, close: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = flat.to_lowercase();
    let word = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .find(|w| lower.contains(w.as_str()));
    let chars: Vec<char> = flat.chars().collect();
    let (start, end) = match &word {
        Some(w) => {
            let byte = lower.find(w.as_str()).unwrap_or(0);
            let at = lower[..byte].chars().count();
            let start = at.saturating_sub(width / 3);
            (start, (start + width).min(chars.len()))
        }
        None => (0, width.min(chars.len())),
    };
    let mut s: String = chars[start..end].iter().collect();
    if let Some(w) = word {
        let mut marked = String::new();
        let mut rest = s.as_str();
        loop {
            let low = rest.to_lowercase();
            // Lower-casing can change byte lengths for some scripts; only mark
            // when the positions line up.
            match low.find(w.as_str()).filter(|_| low.len() == rest.len()) {
                Some(i) => {
                    marked.push_str(&rest[..i]);
                    marked.push_str(open);
                    marked.push_str(&rest[i..i + w.len()]);
                    marked.push_str(close);
                    rest = &rest[i + w.len()..];
                }
                None => {
                    marked.push_str(rest);
                    break;
                }
            }
        }
        s = marked;
    }
    let pre = if start > 0 { "…" } else { "" };
    let post = if end < chars.len() { "…" } else { "" };
    format!("{pre}{s}{post}")
}

/// Runs `search`.
pub fn run(config: &Config, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    let query = args.query.join(" ");
    let v = client.post(
        "/search",
        &json!({"project_id": args.project, "query": query, "limit": args.limit}),
    )?;
    if args.json {
        println!("{v}");
        return Ok(ExitCode::Ok);
    }
    let results = v["results"].as_array().cloned().unwrap_or_default();
    if results.is_empty() {
        println!("No results for {query:?} in project {}.", args.project);
        return Ok(ExitCode::Ok);
    }
    let (open, close) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    for (i, r) in results.iter().enumerate() {
        let place = match r["source_type"].as_str() {
            Some("file") => format!("file {}", r["file_path"].as_str().unwrap_or("?")),
            _ => format!(
                "chat {} message {}",
                r["chat_id"].as_str().unwrap_or("?"),
                r["message_id"].as_str().unwrap_or("?")
            ),
        };
        println!(
            "{:>2}. {:.3}  {}  ({})",
            i + 1,
            r["score"].as_f64().unwrap_or(0.0),
            place,
            source_label(r)
        );
        println!(
            "    {}",
            snippet(r["text"].as_str().unwrap_or(""), &query, 160, open, close)
        );
    }
    Ok(ExitCode::Ok)
}

fn source_label(r: &Value) -> String {
    r["source_id"].as_str().unwrap_or("?").to_string()
}

#[cfg(test)]
mod tests {
    use super::snippet;

    #[test]
    fn snippets_mark_the_match() {
        assert_eq!(
            snippet("hello big world", "world", 80, "[", "]"),
            "hello big [world]"
        );
        assert_eq!(snippet("Zebra zebra", "ZEBRA", 80, "[", "]"), "[Zebra] [zebra]");
        let long = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
        let s = snippet(&long, "needle", 60, "[", "]");
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("[needle]"),
            "{s}"
        );
        assert_eq!(snippet("no match here", "zzz", 5, "[", "]"), "no ma…");
        assert_eq!(snippet("", "x", 10, "[", "]"), "");
    }
}
