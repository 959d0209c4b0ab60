//! `memory-service import-chatdo DIR`: brings an existing ChatDO install's memory
//! across, so a user who switches does not start from nothing: every project's chat
//! messages (with their `message_uuid`, which ChatDO stores), every project fact with
//! its history, and the file sources with their ids unchanged (then indexed by us).
//!
//! When no instance runs, the importer starts one (`start`) and leaves it running:
//! the imported sources are indexed by it.
//!
//! Why through the running service's API rather than into the database file: the
//! service is the database's only writer (one writer thread, facts only through the
//! API), and an import then behaves exactly as ChatDO's own calls would. The
//! original's SQLite files are opened read-only; nothing under DIR is written.
//!
//! Idempotent: sources already present (same id) and facts already present (same
//! key, value, `effective_at` and source message) are skipped; messages imported
//! before are remembered in `<home>/import-chatdo.json` (the API has no "does this
//! message exist" call, and re-posting one would re-index it). Layout of DIR:
//! chatdo-data.md.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use memory_api::chat::IndexChatMessage;
use memory_api::facts::{Facts, NewFact};
use memory_api::health::HealthIdentity;
use memory_api::sources::{AddSource, SourceList};

use crate::client::{Client, ClientError, segment};
use crate::config::Config;
use crate::exit_code::ExitCode;

/// `import-chatdo`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// A ChatDO checkout (the directory holding `server/` and `memory_service/`).
    pub dir: PathBuf,
    /// Read and report what would be imported; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One chat message read from a project DB.
#[derive(Debug, Clone)]
struct Message {
    body: IndexChatMessage,
    uuid: String,
}

/// What the importer found under DIR.
#[derive(Debug, Default)]
struct Found {
    messages: Vec<Message>,
    /// Per project id, its facts oldest first (so the latest stays current).
    facts: Vec<(String, Vec<NewFact>)>,
    sources: Vec<Value>,
    skipped: Vec<String>,
}

/// A stable UUID for a message stored before ChatDO had `message_uuid`: the same
/// message gets the same UUID on every run (UUIDv5 of its project, chat and id).
fn derived_uuid(project: &str, chat: &str, message: &str) -> String {
    let name = format!("chatdo-message:{project}\u{0}{chat}\u{0}{message}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// Context for SQLite results that prints each cause once: rusqlite's failure
/// repeats SQLite's message in its `source()` ("disk I/O error: Error code 266:
/// disk I/O error"), so only its own line is kept under the context.
trait SqlContext<T> {
    /// [`anyhow::Context::with_context`] on the error's own line.
    fn sql_context<C: std::fmt::Display + Send + Sync + 'static>(
        self,
        context: impl FnOnce() -> C,
    ) -> anyhow::Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn sql_context<C: std::fmt::Display + Send + Sync + 'static>(
        self,
        context: impl FnOnce() -> C,
    ) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{e}")).with_context(context)
    }
}

pub(crate) fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .sql_context(|| format!("opening {} read-only", path.display()))
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for n in names {
        if n? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads one project DB: its messages and its facts (when those tables exist).
fn read_project(db: &Path, project: &str, found: &mut Found) -> anyhow::Result<()> {
    let conn = open_read_only(db)?;
    let context = || format!("reading {}", db.display());
    if has_column(&conn, "chat_messages", "chat_id").sql_context(context)? {
        read_messages(&conn, project, found).sql_context(context)?;
    }
    if has_column(&conn, "project_facts", "fact_key").sql_context(context)? {
        let facts = read_facts(&conn, project).sql_context(context)?;
        if !facts.is_empty() {
            found.facts.push((project.to_string(), facts));
        }
    }
    Ok(())
}

/// A project DB's chat messages, in conversation order. A message without a
/// valid `message_uuid` (older DBs have no such column) gets one derived from
/// its ids ([`derived_uuid`]), so importing twice updates rather than duplicates.
fn read_messages(conn: &Connection, project: &str, found: &mut Found) -> rusqlite::Result<()> {
    let uuid_col = if has_column(conn, "chat_messages", "message_uuid")? {
        "message_uuid"
    } else {
        "NULL"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT chat_id, message_id, {uuid_col}, role, content, CAST(timestamp AS TEXT),
                message_index FROM chat_messages ORDER BY chat_id, message_index, id"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    for row in rows {
        let (chat, message, uuid, role, content, timestamp, index) = row?;
        let uuid = uuid
            .filter(|u| uuid::Uuid::parse_str(u).is_ok())
            .unwrap_or_else(|| derived_uuid(project, &chat, &message));
        found.messages.push(Message {
            body: IndexChatMessage {
                project_id: project.to_string(),
                chat_id: chat,
                message_id: message,
                role,
                content,
                timestamp,
                message_index: index,
                message_uuid: Some(uuid.clone()),
            },
            uuid,
        });
    }
    Ok(())
}

/// A project DB's facts, oldest first (their `effective_at`, else `created_at`).
fn read_facts(conn: &Connection, project: &str) -> rusqlite::Result<Vec<NewFact>> {
    let mut stmt = conn.prepare(
        "SELECT fact_key, value_text, value_type, confidence, source_message_uuid,
                CAST(coalesce(effective_at, created_at) AS TEXT)
         FROM project_facts ORDER BY created_at, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(NewFact {
            project_id: project.to_string(),
            fact_key: r.get::<_, String>(0)?,
            value_text: r.get::<_, String>(1)?,
            value_type: r.get::<_, String>(2)?,
            confidence: r.get::<_, Option<f64>>(3)?,
            source_message_uuid: r.get::<_, Option<String>>(4)?,
            effective_at: r.get::<_, Option<String>>(5)?,
        })
    })?;
    rows.collect()
}

/// Reads DIR: projects.json, every project DB, the source config files.
fn read_chatdo(dir: &Path) -> anyhow::Result<Found> {
    let mut found = Found::default();
    let projects_file = dir.join("server/data/projects.json");
    let by_dir = project_dirs(&projects_file)?;
    let projects_dir = dir.join("memory_service/projects");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&projects_dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", projects_dir.display())),
    };
    dirs.sort();
    for d in dirs {
        let db = d.join("index/index.sqlite");
        if !db.is_file() {
            continue;
        }
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match by_dir.get(&name) {
            Some(project) => read_project(&db, project, &mut found)?,
            None => found.skipped.push(format!(
                "{}: no project in {} has this directory name (slug of its name, or its id)",
                db.display(),
                projects_file.display()
            )),
        }
    }
    read_source_configs(dir, &mut found)?;
    Ok(found)
}

/// ChatDO's `projects.json` (missing: none) as project directory name -> project
/// id: a project's directory is the slug of its name, else its id.
fn project_dirs(projects_file: &Path) -> anyhow::Result<HashMap<String, String>> {
    let projects: Vec<Value> = match std::fs::read_to_string(projects_file) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("reading {}", projects_file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", projects_file.display())),
    };
    let mut by_dir = HashMap::new();
    for p in &projects {
        let Some(id) = p.get("id").and_then(Value::as_str) else {
            continue;
        };
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let dir_name = if name.is_empty() {
            id.to_string()
        } else {
            memory_store::slug(name)
        };
        by_dir.insert(dir_name, id.to_string());
    }
    Ok(by_dir)
}

/// The file sources ChatDO knew: `config/memory_sources.yaml` and the
/// dashboard's `dynamic_sources.json` (either may be missing).
fn read_source_configs(dir: &Path, found: &mut Found) -> anyhow::Result<()> {
    let yaml_file = dir.join("config/memory_sources.yaml");
    if let Ok(text) = std::fs::read_to_string(&yaml_file) {
        let docs = yaml_rust2::YamlLoader::load_from_str(&text)
            .with_context(|| format!("reading {}", yaml_file.display()))?;
        for s in docs
            .first()
            .and_then(|d| d["sources"].as_vec())
            .into_iter()
            .flatten()
        {
            let field = |k: &str| s[k].as_str().map(str::to_string);
            found
                .sources
                .push(json!({"id": field("id"), "root_path": field("root_path"),
                                      "display_name": field("display_name"),
                                      "project_id": field("project_id")}));
        }
    }
    let dynamic_file = dir.join("memory_service/memory_dashboard/dynamic_sources.json");
    if let Ok(text) = std::fs::read_to_string(&dynamic_file) {
        let list: Vec<Value> =
            serde_json::from_str(&text).with_context(|| format!("reading {}", dynamic_file.display()))?;
        found.sources.extend(list);
    }
    Ok(())
}

/// Refuses while ChatDO's own service runs: something not ours answering `/health`
/// on the port, or ChatDO's PID file (`~/.chatdo/memory_service.pid`) naming a live
/// process that is not our instance.
fn refuse_if_chatdo_runs(config: &Config, ours: Option<u32>) -> anyhow::Result<()> {
    if let Ok((200, body)) = crate::probe::get_json::<HealthIdentity>(
        &config.host,
        config.port,
        "/health",
        crate::probe::PROBE_TIMEOUT,
    ) && body.is_none_or(|id| id.service != crate::daemon::SERVICE)
    {
        bail!(
            "ChatDO's own Memory Service answers on {}; stop it (its data must not change while it is read), then run import-chatdo again",
            config.base_url()
        );
    }
    if let Some(home) = std::env::var_os("HOME") {
        let pid_file = PathBuf::from(home).join(".chatdo/memory_service.pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            && pid > 0
            && Some(pid as u32) != ours
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        {
            bail!(
                "ChatDO's Memory Service looks running: {} names live PID {pid}; stop it, or remove the file if that PID is something else, then run import-chatdo again",
                pid_file.display()
            );
        }
    }
    Ok(())
}

fn ledger_path(config: &Config) -> PathBuf {
    config.paths().import_ledger()
}

fn read_ledger(config: &Config) -> HashSet<String> {
    std::fs::read_to_string(ledger_path(config))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["messages"].as_array().cloned())
        .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn write_ledger(config: &Config, done: &HashSet<String>) -> anyhow::Result<()> {
    let mut list: Vec<&String> = done.iter().collect();
    list.sort();
    let path = ledger_path(config);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&json!({"messages": list}))?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
}

/// What makes an imported fact "already present": key, value, `effective_at` and
/// source message (our fact ids and `created_at` are new).
fn fact_signature(
    key: &str,
    value: &str,
    effective_at: Option<&str>,
    source_message_uuid: Option<&str>,
) -> FactSignature {
    (
        key.to_string(),
        value.to_string(),
        effective_at.map(str::to_string),
        source_message_uuid.map(str::to_lowercase),
    )
}

/// Key, value, `effective_at` and lower-cased source message UUID.
type FactSignature = (String, String, Option<String>, Option<String>);

/// The service refused one item (bad input, already there): the reason, to report
/// it as skipped and go on. Anything else (the service gone, a 5xx) stops the run.
fn refused(e: ClientError) -> Result<String, anyhow::Error> {
    match e {
        ClientError::Http { status, detail, .. } if matches!(status, 400 | 404 | 409 | 413 | 422) => {
            Ok(format!("refused by the service (HTTP {status}): {detail}"))
        }
        other => Err(other.into()),
    }
}

/// Runs the import (see the module doc); prints what it imported and skipped.
pub fn run(config: &Config, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let client = match connect_or_start(config, args)? {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let found = read_chatdo(&args.dir)?;
    let mut skipped = found.skipped.clone();
    let verb = if args.dry_run { "would import" } else { "imported" };
    // Sources first: they index in the background meanwhile.
    let sources = import_sources(client.as_ref(), &found, args, &mut skipped)?;
    let messages = import_messages(config, client.as_ref(), &found, args, &mut skipped)?;
    let facts = import_facts(client.as_ref(), &found, args, &mut skipped)?;
    println!("{verb}: {messages} messages, {facts} facts, {sources} sources");
    for s in &skipped {
        println!("skipped: {s}");
    }
    if client.is_none() {
        println!("(the service is not running: nothing was compared with what it already holds)");
    }
    let projects = args.dir.join("server/data/projects.json");
    if projects.is_file() && config.chatdo_projects.as_deref() != Some(projects.as_path()) {
        println!(
            "hint: to list ChatDO's projects per source, run the service with --chatdo-projects {}",
            projects.display()
        );
    }
    Ok(ExitCode::Ok)
}

/// Our instance's client, after refusing while ChatDO's own service runs; starts one
/// when none runs (it must run anyway to index the imported sources), except for a
/// dry run (`Ok(None)`). `Err(code)` when `start` failed (it said why).
fn connect_or_start(config: &Config, args: &ImportArgs) -> anyhow::Result<Result<Option<Client>, ExitCode>> {
    let client = match Client::connect(config) {
        Ok(c) => Some(c),
        Err(ClientError::NotRunning { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let ours = client
        .as_ref()
        .and_then(|_| {
            crate::probe::get_json::<HealthIdentity>(
                &config.host,
                config.port,
                "/health",
                crate::probe::PROBE_TIMEOUT,
            )
            .ok()
        })
        .and_then(|(_, b)| b)
        .map(|b| b.pid);
    refuse_if_chatdo_runs(config, ours)?;
    // Not running: start it (it must run anyway to index the imported sources).
    let client = match client {
        Some(c) => Some(c),
        None if args.dry_run => None,
        None => {
            let start = crate::lifecycle::start::StartArgs {
                timeout: 15.0,
                kill_timeout: 5.0,
                force: false,
            };
            let code = crate::lifecycle::start::run(config, &start)?;
            if code != ExitCode::Ok {
                return Ok(Err(code));
            }
            println!(
                "started the Memory Service for the import; it keeps running (it indexes the imported sources)"
            );
            // With `--port 0` the instance bound a port of the system's
            // choosing: connect where its holder record says it serves.
            let mut started = config.clone();
            if started.port == 0
                && let Some((_, port)) = crate::lifecycle::recorded_port(config)
            {
                started.port = port;
            }
            Some(Client::connect(&started)?)
        }
    };
    Ok(Ok(client))
}

/// Adds ChatDO's sources whose folders exist here and that we do not have yet;
/// returns how many (would be) added.
fn import_sources(
    client: Option<&Client>,
    found: &Found,
    args: &ImportArgs,
    skipped: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let existing: HashSet<String> = match client {
        Some(c) => c
            .get::<SourceList>("/sources")?
            .sources
            .into_iter()
            .map(|s| s.id)
            .collect(),
        None => HashSet::new(),
    };
    let mut sources = 0;
    for s in &found.sources {
        let id = s["id"].as_str().unwrap_or_default();
        let root = s["root_path"].as_str().unwrap_or_default();
        if id.is_empty() || existing.contains(id) {
            skipped.push(format!("source {id:?}: already present"));
            continue;
        }
        let expanded = match (root.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(root),
        };
        if !expanded.is_dir() {
            skipped.push(format!("source {id}: its folder {root} does not exist here"));
            continue;
        }
        if let Some(c) = client
            && !args.dry_run
        {
            let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
            let body = AddSource {
                root_path: expanded.display().to_string(),
                display_name: text("display_name"),
                project_id: text("project_id"),
                source_id: Some(id.to_string()),
            };
            if let Err(e) = c.post::<_, memory_api::sources::SourceAdded>("/sources", &body) {
                skipped.push(format!("source {id}: {}", refused(e)?));
                continue;
            }
        }
        sources += 1;
    }

    Ok(sources)
}

/// Posts the messages no earlier run imported (the ledger), with a progress bar;
/// returns how many (would be) imported. The ledger is written even when a request
/// fails midway, so a rerun resumes.
fn import_messages(
    config: &Config,
    client: Option<&Client>,
    found: &Found,
    args: &ImportArgs,
    skipped: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut done = read_ledger(config);
    let todo: Vec<&Message> = found
        .messages
        .iter()
        .filter(|m| !done.contains(&m.uuid))
        .collect();
    let already = found.messages.len() - todo.len();
    if already > 0 {
        skipped.push(format!("{already} messages: imported by an earlier run"));
    }
    let bar = indicatif::ProgressBar::new(todo.len() as u64).with_message("messages");
    let mut messages = 0;
    let mut result = Ok(());
    for m in &todo {
        if let Some(c) = client
            && !args.dry_run
        {
            match c
                .post::<_, memory_api::chat::Queued>("/index-chat-message", &m.body)
                .map_err(refused)
            {
                Ok(_) => {
                    done.insert(m.uuid.clone());
                }
                Err(Ok(why)) => {
                    skipped.push(format!(
                        "message {:?} of chat {:?}: {why}",
                        m.body.message_id, m.body.chat_id
                    ));
                    bar.inc(1);
                    continue;
                }
                Err(Err(e)) => {
                    result = Err(e);
                    break;
                }
            }
        }
        messages += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !args.dry_run && client.is_some() {
        write_ledger(config, &done)?;
    }
    result?;

    Ok(messages)
}

/// Stores each project's facts we do not hold yet (same key, value, time and source
/// message), oldest first; returns how many (would be) stored.
fn import_facts(
    client: Option<&Client>,
    found: &Found,
    args: &ImportArgs,
    skipped: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut facts = 0;
    for (project, list) in &found.facts {
        let have: HashSet<FactSignature> = match client {
            Some(c) => c
                .get::<Facts>(&format!(
                    "/facts?project_id={}&include_history=true",
                    segment(project)
                ))?
                .facts
                .iter()
                .map(|f| {
                    fact_signature(
                        &f.fact_key,
                        &f.value_text,
                        Some(&f.effective_at),
                        f.source_message_uuid.as_deref(),
                    )
                })
                .collect(),
            None => HashSet::new(),
        };
        for f in list {
            let signature = fact_signature(
                &f.fact_key,
                &f.value_text,
                f.effective_at.as_deref(),
                f.source_message_uuid.as_deref(),
            );
            if have.contains(&signature) {
                skipped.push(format!(
                    "fact {:?} of project {project}: already present",
                    f.fact_key
                ));
                continue;
            }
            if let Some(c) = client
                && !args.dry_run
                && let Err(e) = c.post::<_, memory_api::facts::Fact>("/facts", f)
            {
                skipped.push(format!(
                    "fact {:?} of project {project}: {}",
                    f.fact_key,
                    refused(e)?
                ));
                continue;
            }
            facts += 1;
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuids_are_stable_and_distinct() {
        let a = derived_uuid("p", "c", "m");
        assert_eq!(a, derived_uuid("p", "c", "m"));
        assert_ne!(a, derived_uuid("p", "c", "m2"));
        assert_ne!(derived_uuid("p", "c1", "m"), derived_uuid("p", "c", "1m"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
