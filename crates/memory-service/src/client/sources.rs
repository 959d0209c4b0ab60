//! `sources list|add|rm` and `reindex`: the user's folders, over the API.

use std::path::Path;

use memory_api::StatusMessage;
use memory_api::sources::{AddSource, FileJobStatus, Reindex, Reindexing, Source, SourceAdded, SourceList};

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
pub fn existing_source<'a>(sources: &'a [Source], path: &std::path::Path) -> Option<&'a Source> {
    let norm = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let want = norm(path);
    sources
        .iter()
        .find(|s| norm(std::path::Path::new(&s.root_path)) == want)
}

/// A count, or `-` when unknown.
fn count(n: Option<i64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

/// Renders sources as an aligned table.
pub fn table(sources: &[Source]) -> String {
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
            let status = match &s.latest_job {
                Some(j) if j.status == FileJobStatus::Running => {
                    format!("indexing {}/{}", j.files_processed, count(j.files_total))
                }
                _ => s.status.as_str().to_string(),
            };
            [
                s.id.clone(),
                s.project_id.clone(),
                s.root_path.clone(),
                status,
                s.files_indexed.to_string(),
                human_bytes(s.bytes_indexed.max(0) as u64),
                super::progress::skipped_text(s.files_skipped, &s.skipped),
                human_time_now(s.last_index_completed_at.as_deref()),
            ]
        })
        .collect();
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header)
        .add_rows(rows);
    // Columns start flush left, two spaces apart, like `ls -l` or `docker ps`.
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sources add --json`'s answer when the folder already is a source.
#[derive(serde::Serialize)]
struct Existing<'a> {
    /// The source that has the folder.
    existing: &'a Source,
}

/// `--json` output: the API's body, re-serialised (it always serialises).
fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("a contract type serialises")
}

/// Runs a `sources` subcommand.
pub fn run(config: &Config, cmd: &SourcesCommand) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    match cmd {
        SourcesCommand::List { json } => list(&client, *json),
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
            if !duplicate && already_a_source(&client, &abs, *json)? {
                return Ok(ExitCode::Ok);
            }
            add(&client, &abs, project, name.clone(), *wait, *json)
        }
        SourcesCommand::Rm { id, json } => {
            let v: StatusMessage = client.delete(&format!("/sources/{}", segment(id)))?;
            if *json {
                println!("{}", to_json(&v));
            } else {
                println!("{}", v.message);
            }
            Ok(ExitCode::Ok)
        }
    }
}

/// `sources list`: a table, or the API's body with `--json`.
fn list(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let v: SourceList = client.get("/sources")?;
    if json {
        println!("{}", to_json(&v));
    } else if v.sources.is_empty() {
        println!("No sources yet. Add one with `memory-service sources add PATH`.");
    } else {
        println!("{}", table(&v.sources));
    }
    Ok(ExitCode::Ok)
}

/// True (and says so) when the folder `abs` already is a source.
fn already_a_source(client: &Client, abs: &Path, json: bool) -> anyhow::Result<bool> {
    let list: SourceList = client.get("/sources")?;
    let Some(s) = existing_source(&list.sources, abs) else {
        return Ok(false);
    };
    if json {
        println!("{}", to_json(&Existing { existing: s }));
    } else {
        println!(
            "{} already is source {} (project {}); not added again.\n{}\n  \
             next: search it with `memory-service search --source {} WORDS`, \
             or add a second source with --duplicate",
            abs.display(),
            s.id,
            s.project_id,
            table(std::slice::from_ref(s)),
            s.id,
        );
    }
    Ok(true)
}

/// `sources add`: adds the folder `abs` to `project`, then with `wait` follows
/// its first indexing job to the end (exit `Error` when it failed).
fn add(
    client: &Client,
    abs: &Path,
    project: &str,
    name: Option<String>,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let v: SourceAdded = client.post(
        "/sources",
        &AddSource {
            root_path: abs.display().to_string(),
            display_name: name,
            project_id: Some(project.to_string()),
            source_id: None,
        },
    )?;
    let (id, job) = (v.source_id.clone(), v.job_id);
    if json {
        println!("{}", to_json(&v));
    } else {
        println!(
            "Added source {id} ({}) to project {project}; indexing job {job}.",
            abs.display()
        );
    }
    if !wait {
        return Ok(ExitCode::Ok);
    }
    Ok(if follow(client, &id, job, json)?.ok {
        ExitCode::Ok
    } else {
        ExitCode::Error
    })
}

/// Runs `reindex ID [--wait]`.
pub fn reindex(config: &Config, id: &str, wait: bool, json: bool) -> anyhow::Result<ExitCode> {
    let client = Client::connect(config)?;
    let v: Reindexing = client.post("/reindex", &Reindex { source_id: id.into() })?;
    let job = v.job_id;
    if json {
        println!("{}", to_json(&v));
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

    use memory_api::sources::{FileJob, Skipped, SourceStatus};

    fn source(id: &str, root: &str) -> Source {
        Source {
            id: id.into(),
            display_name: id.into(),
            root_path: root.into(),
            status: SourceStatus::Idle,
            files_indexed: 0,
            bytes_indexed: 0,
            last_index_started_at: None,
            last_index_completed_at: None,
            last_error: None,
            project_id: "general".into(),
            latest_job: None,
            files_skipped: 0,
            skipped: Skipped::default(),
            connected_projects: None,
        }
    }

    fn job(status: FileJobStatus, processed: i64, total: Option<i64>) -> FileJob {
        FileJob {
            id: 1,
            source_id: "x".into(),
            status,
            started_at: "2026-01-01T00:00:00".into(),
            completed_at: None,
            files_total: total,
            files_processed: processed,
            bytes_processed: 0,
            error: None,
            files_indexed: 0,
            bytes_indexed: 0,
            files_skipped: 0,
            skipped: Skipped::default(),
        }
    }

    #[test]
    fn table_aligns_and_shows_progress() {
        let docs = Source {
            files_indexed: 3,
            bytes_indexed: 2048,
            last_index_completed_at: Some("2026-01-01T00:00:00".into()),
            files_skipped: 4,
            skipped: Skipped {
                binary: 3,
                too_large: 1,
                ..Skipped::default()
            },
            latest_job: Some(job(FileJobStatus::Completed, 0, None)),
            ..source("docs-dir", "/d")
        };
        let x = Source {
            status: SourceStatus::Indexing,
            project_id: "p".into(),
            latest_job: Some(job(FileJobStatus::Running, 5, Some(9))),
            ..source("x", "/long/path")
        };
        let t = table(&[docs, x]);
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
        let sources = vec![source("notes-dir", &sub.display().to_string())];
        let again = d.path().join("notes/../notes");
        assert_eq!(existing_source(&sources, &again).unwrap().id, "notes-dir");
        assert!(existing_source(&sources, d.path()).is_none());
    }
}
