//! `import-chatdo` on a ChatDO-shaped directory built here from the documented
//! layout (chatdo-data.md): a current project DB, an old one without
//! `message_uuid`, a project whose directory is the slug of its name, facts with
//! history, static and dynamic sources; dry run, import, a second run that adds
//! nothing, and the refusal while ChatDO's own service runs.

use std::path::Path;

use memory_api::facts::Facts;
use memory_api::search::{SearchResult, SearchResults};
use memory_api::sources::SourceList;
use rusqlite::{Connection, params};
use serde_json::json;

use crate::helper::*;

const P1: &str = "11111111-2222-4333-8444-555555555555";
const U1: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

fn project_db(path: &Path, with_uuid: bool) -> Connection {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = Connection::open(path).unwrap();
    let uuid_col = if with_uuid {
        "message_uuid TEXT NOT NULL,"
    } else {
        ""
    };
    conn.execute_batch(&format!(
        "CREATE TABLE chat_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, source_id INTEGER NOT NULL,
             project_id TEXT NOT NULL, chat_id TEXT NOT NULL, message_id TEXT NOT NULL, {uuid_col}
             role TEXT NOT NULL, content TEXT NOT NULL, timestamp TIMESTAMP NOT NULL,
             message_index INTEGER NOT NULL, UNIQUE(chat_id, message_id));
         CREATE TABLE project_facts (fact_id TEXT PRIMARY KEY, project_id TEXT NOT NULL,
             fact_key TEXT NOT NULL, value_text TEXT NOT NULL, value_type TEXT NOT NULL,
             confidence REAL NOT NULL DEFAULT 1.0, source_message_uuid TEXT NOT NULL,
             created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
             effective_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
             supersedes_fact_id TEXT, is_current INTEGER NOT NULL DEFAULT 1);"
    ))
    .unwrap();
    conn
}

/// Builds the checkout; returns its path.
fn chatdo(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path().join("ChatDO");
    let data = dir.join("server/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("projects.json"),
        json!([
            {"id": P1, "name": "My Project!", "memory_sources": ["notes-dir"]},
            {"id": "old-proj", "memory_sources": []}
        ])
        .to_string(),
    )
    .unwrap();
    let projects = dir.join("memory_service/projects");
    let new = project_db(&projects.join("my-project/index/index.sqlite"), true);
    new.execute(
        "INSERT INTO chat_messages (source_id, project_id, chat_id, message_id, message_uuid, role,
             content, timestamp, message_index) VALUES (1, ?1, 'c1', 'm1', ?2, 'user',
             'my favourite colour is blue, like the axolotl', '2025-12-27 21:10:29.123456', 0)",
        params![P1, U1],
    )
    .unwrap();
    new.execute_batch(&format!(
        "INSERT INTO project_facts (fact_id, project_id, fact_key, value_text, value_type,
             source_message_uuid, created_at, effective_at, is_current)
         VALUES ('f1', '{P1}', 'user.favorite.color', 'red', 'string', '{U1}',
                 '2025-12-01 10:00:00', '2025-12-01 10:00:00', 0),
                ('f2', '{P1}', 'user.favorite.color', 'blue', 'string', '{U1}',
                 '2025-12-27 21:10:30', '2025-12-27 21:10:30', 1);"
    ))
    .unwrap();
    let old = project_db(&projects.join("old-proj/index/index.sqlite"), false);
    old.execute(
        "INSERT INTO chat_messages (source_id, project_id, chat_id, message_id, role, content,
             timestamp, message_index) VALUES (1, 'old-proj', 'c9', 'm9', 'assistant',
             'an old note about the quokka', '2025-01-02T03:04:05', 3)",
        [],
    )
    .unwrap();
    // Too big for us (over 1 MiB): reported as skipped, the rest goes on.
    old.execute(
        "INSERT INTO chat_messages (source_id, project_id, chat_id, message_id, role, content,
             timestamp, message_index) VALUES (1, 'old-proj', 'c9', 'big', 'user', ?1,
             '2025-01-02T03:04:06', 4)",
        [&"x".repeat(1024 * 1024 + 1)],
    )
    .unwrap();
    project_db(&projects.join("orphan/index/index.sqlite"), true);

    let notes = sb.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("n.md"), "the pangolin notes\n").unwrap();
    let drr = sb.path().join("drr");
    std::fs::create_dir_all(&drr).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/memory_sources.yaml"),
        format!(
            "sources:\n  - id: drr-repo\n    project_id: {P1}\n    root_path: {}\n    display_name: DRR\n  - id: gone-dir\n    project_id: general\n    root_path: /no/such/folder\n",
            drr.display()
        ),
    )
    .unwrap();
    let dash = dir.join("memory_service/memory_dashboard");
    std::fs::create_dir_all(&dash).unwrap();
    std::fs::write(
        dash.join("dynamic_sources.json"),
        json!([{"id": "notes-dir", "project_id": P1, "root_path": notes, "display_name": "notes",
                "include_glob": "**/*", "exclude_glob": ""}])
        .to_string(),
    )
    .unwrap();
    dir
}

fn search(port: u16, project: &str, q: &str) -> Vec<SearchResult> {
    post_as::<SearchResults>(port, "/search", &json!({"project_id": project, "query": q})).results
}

fn source_ids(port: u16) -> Vec<String> {
    get_as::<SourceList>(port, "/sources")
        .sources
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// With no instance running, the import starts one and goes through it.
#[test]
fn import_starts_the_service_when_none_runs() {
    let sb = Sandbox::new(bin());
    let dir = chatdo(&sb);
    // `--port 0`: the import starts an instance on a port of the system's
    // choosing, and finds it through the holder record.
    let (code, out, err) = sb.cli(0, &["import-chatdo", &dir.display().to_string(), "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("would import: 3 messages, 2 facts, 2 sources"),
        "{out}"
    );
    assert!(!sb.lock_held(), "a dry run starts nothing");
    let (code, out, err) = sb.cli(0, &["import-chatdo", &dir.display().to_string()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("imported: 2 messages, 2 facts, 2 sources"), "{out}");
    let pid = printed_pid(&out).expect("the import's `start` prints the PID");
    let port = sb.port_of(pid);
    assert_eq!(health_pid(port), Some(pid), "the started instance answers");
    poll("the imported message to be indexed", DEADLINE, || {
        (search(port, P1, "axolotl").len() == 1).then_some(())
    });
    let (code, _, err) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{err}");
    assert!(health_pid(port).is_none(), "stopped");
}

#[test]
fn import_dry_run_then_import_then_nothing_more() {
    let sb = Sandbox::new(bin());
    let dir = chatdo(&sb);
    let dir_s = dir.display().to_string();
    let (mut p, port) = sb.start();

    let (code, out, err) = sb.cli(port, &["import-chatdo", &dir_s, "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("would import: 3 messages, 2 facts, 2 sources"),
        "{out}"
    );
    assert!(out.contains("orphan"), "the unnamed directory is reported: {out}");
    assert!(out.contains("gone-dir"), "{out}");
    assert!(source_ids(port).is_empty(), "a dry run changes nothing");

    let (code, out, err) = sb.cli(port, &["import-chatdo", &dir_s]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("imported: 2 messages, 2 facts, 2 sources"), "{out}");
    assert!(
        out.contains("skipped: message \"big\" of chat \"c9\": refused by the service (HTTP 400)"),
        "{out}"
    );
    assert_eq!(source_ids(port), ["drr-repo", "notes-dir"]);
    poll("the messages to be indexed", DEADLINE, || {
        let hits = search(port, P1, "axolotl");
        (hits.len() == 1).then_some(())
    });
    assert_eq!(
        search(port, P1, "axolotl")[0].message_uuid.as_deref(),
        Some(U1),
        "ChatDO's message_uuid is kept"
    );
    poll("the old project's message", DEADLINE, || {
        (search(port, "old-proj", "quokka").len() == 1).then_some(())
    });
    let old_uuid = search(port, "old-proj", "quokka")[0].message_uuid.clone();
    let facts = get_as::<Facts>(port, &format!("/facts?project_id={P1}&include_history=true")).facts;
    assert_eq!(facts.len(), 2, "{facts:?}");
    assert_eq!(
        (facts[0].value_text.as_str(), facts[0].is_current),
        ("blue", true)
    );
    assert_eq!(facts[0].source_message_uuid.as_deref(), Some(U1));
    assert_eq!(facts[1].value_text, "red");

    let (code, out, err) = sb.cli(port, &["import-chatdo", &dir_s]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("imported: 0 messages, 0 facts, 0 sources"),
        "a second run adds nothing: {out}"
    );
    assert_eq!(
        search(port, "old-proj", "quokka")[0].message_uuid,
        old_uuid,
        "stable UUID"
    );

    // ChatDO's own service running (its PID file names a live process): refused.
    let chatdo_home = sb.path().join("user-home/.chatdo");
    std::fs::create_dir_all(&chatdo_home).unwrap();
    std::fs::write(
        chatdo_home.join("memory_service.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let (code, out, err) = sb.cli(port, &["import-chatdo", &dir_s]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("ChatDO's Memory Service looks running"), "{err}");
    assert_eq!(p.stop(), 0);
}
