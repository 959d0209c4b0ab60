//! `sources list|add|rm` and `reindex`: the user's folders, over the API.

use serde_json::{Value, json};

use super::progress::follow;
use super::{Client, human_bytes, human_time_now, segment};
use crate::config::Config;
use crate::exit_code::ExitCode;

/// `sources` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SourcesCommand {
    /// List the sources: id, project, path, status, files, size, last indexed.
    #[command(
        after_help = "Examples:\n  memory-service sources list\n  memory-service sources list --json | jq -r '.sources[].id'"
    )]
    List {
        /// Print the API's JSON (ISO timestamps) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a folder as a source and start indexing it. A folder that already
    /// is a source is not added again (it is shown instead) unless --duplicate.
    #[command(
        after_help = "Examples:\n  memory-service sources add ~/notes --wait\n  memory-service sources add ~/work/docs --project work --name docs"
    )]
    Add {
        /// The folder.
        path: std::path::PathBuf,
        /// The project it belongs to.
        #[arg(long, default_value = "general")]
        project: String,
        /// A display name (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// Wait for the indexing job, with progress.
        #[arg(long)]
        wait: bool,
        /// Add it even if the folder already is a source (its files are then
        /// indexed, and found, twice).
        #[arg(long)]
        duplicate: bool,
        /// Print the API's JSON (the new source, or `{"existing": SOURCE}`).
        #[arg(long)]
        json: bool,
    },
    /// Remove a source and its index (the folder itself is untouched).
    Rm {
        /// The source id.
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The source whose folder is `path` (compared after resolving links and
/// `..`, so `~/notes` and `~/notes/../notes` are the same folder).
pub fn existing_source<'a>(sources: &'a [Value], path: &std::path::Path) -> Option<&'a Value> {
    let norm = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let want = norm(path);
    sources.iter().find(|s| {
        s["root_path"]
            .as_str()
            .is_some_and(|r| norm(std::path::Path::new(r)) == want)
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders sources as an aligned table.
pub fn table(sources: &[Value]) -> String {
    let header = [
        "ID",
        "PROJECT",
        "PATH",
        "STATUS",
        "FILES",
        "SIZE",
        "SKIPPED",
        "LAST INDEXED",
    ];
    let rows: Vec<[String; 8]> = sources
        .iter()
        .map(|s| {
            let status = match s["latest_job"]["status"].as_str() {
                Some("running") => format!(
                    "indexing {}/{}",
                    cell(&s["latest_job"]["files_processed"]),
                    cell(&s["latest_job"]["files_total"])
                ),
                _ => cell(&s["status"]),
            };
            [
                cell(&s["id"]),
                cell(&s["project_id"]),
                cell(&s["root_path"]),
                status,
                cell(&s["files_indexed"]),
                human_bytes(s["bytes_indexed"].as_u64().unwrap_or(0)),
                super::progress::skipped_text(s),
                human_time_now(s["last_index_completed_at"].as_str()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

/// Runs a `sources` subcommand.
pub fn run(config: &Config, cmd: &SourcesCommand) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    match cmd {
        SourcesCommand::List { json } => {
            let v = client.get("/sources")?;
            if *json {
                println!("{v}");
            } else {
                let sources = v["sources"].as_array().cloned().unwrap_or_default();
                if sources.is_empty() {
                    println!("No sources yet. Add one with `memory-service sources add PATH`.");
                } else {
                    println!("{}", table(&sources));
                }
            }
            Ok(ExitCode::Ok)
        }
        SourcesCommand::Add {
            path,
            project,
            name,
            wait,
            duplicate,
            json,
        } => {
            // The service resolves paths in its own working directory: send ours, absolute.
            let abs = std::path::absolute(path)?;
            if !duplicate {
                let list = client.get("/sources")?;
                let sources = list["sources"].as_array().cloned().unwrap_or_default();
                if let Some(s) = existing_source(&sources, &abs) {
                    if *json {
                        println!("{}", json!({ "existing": s }));
                    } else {
                        println!(
                            "{} already is source {} (project {}); not added again.\n{}\n  \
                             next: search it with `memory-service search --source {} WORDS`, \
                             or add a second source with --duplicate",
                            abs.display(),
                            cell(&s["id"]),
                            cell(&s["project_id"]),
                            table(std::slice::from_ref(s)),
                            cell(&s["id"]),
                        );
                    }
                    return Ok(ExitCode::Ok);
                }
            }
            let v = client.post(
                "/sources",
                &json!({"root_path": abs, "display_name": name, "project_id": project}),
            )?;
            let id = v["source_id"].as_str().unwrap_or_default().to_string();
            let job = v["job_id"].as_i64().unwrap_or(0);
            if *json {
                println!("{v}");
            } else {
                println!(
                    "Added source {id} ({}) to project {project}; indexing job {job}.",
                    abs.display()
                );
            }
            if *wait {
                return Ok(if follow(&client, &id, job, *json)?.ok {
                    ExitCode::Ok
                } else {
                    ExitCode::Error
                });
            }
            Ok(ExitCode::Ok)
        }
        SourcesCommand::Rm { id, json } => {
            let v = client.delete(&format!("/sources/{}", segment(id)))?;
            if *json {
                println!("{v}");
            } else {
                println!("{}", v["message"].as_str().unwrap_or("deleted"));
            }
            Ok(ExitCode::Ok)
        }
    }
}

/// Runs `reindex ID [--wait]`.
pub fn reindex(config: &Config, id: &str, wait: bool, json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    let v = client.post("/reindex", &json!({"source_id": id}))?;
    let job = v["job_id"].as_i64().unwrap_or(0);
    if json {
        println!("{v}");
    } else {
        println!("Reindexing {id}: job {job}.");
    }
    if wait {
        return Ok(if follow(&client, id, job, json)?.ok {
            ExitCode::Ok
        } else {
            ExitCode::Error
        });
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_shows_progress() {
        let t = table(&[
            json!({"id": "docs-dir", "project_id": "general", "root_path": "/d", "status": "idle",
                   "files_indexed": 3, "bytes_indexed": 2048, "last_index_completed_at": "2026-01-01T00:00:00",
                   "files_skipped": 4, "skipped": {"binary": 3, "too_large": 1, "ignored": 0},
                   "latest_job": {"status": "completed"}}),
            json!({"id": "x", "project_id": null, "root_path": "/long/path", "status": "indexing",
                   "files_indexed": 0, "bytes_indexed": 0, "last_index_completed_at": null,
                   "latest_job": {"status": "running", "files_processed": 5, "files_total": 9}}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID        PROJECT  PATH"), "{t}");
        assert!(lines[1].contains("2.0 KiB") && lines[1].contains("idle"), "{t}");
        assert!(lines[1].contains("4 skipped (binary 3, too large 1)"), "{t}");
        assert!(
            lines[1].contains("2026-01-01 00:00"),
            "a local date, not the raw timestamp: {t}"
        );
        assert!(
            lines[2].contains("indexing 5/9") && lines[2].contains("0 skipped"),
            "{t}"
        );
        assert_eq!(lines[1].find("/d"), lines[0].find("PATH"), "aligned:\n{t}");
    }

    #[test]
    fn the_same_folder_is_found_however_it_is_written() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("notes");
        std::fs::create_dir(&sub).unwrap();
        let sources = vec![json!({"id": "notes-dir", "root_path": sub.display().to_string()})];
        let again = d.path().join("notes/../notes");
        assert_eq!(existing_source(&sources, &again).unwrap()["id"], "notes-dir");
        assert!(existing_source(&sources, d.path()).is_none());
    }
}
