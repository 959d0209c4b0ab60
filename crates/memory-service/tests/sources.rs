//! File sources end to end with the real binary: indexing, .gitignore, the
//! watcher, reindex under searches, `kill -9` mid-index, path confinement,
//! and the people's commands (`sources add --wait`, `list`, `reindex`, `rm`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memory_api::filetree::FileContent;
use memory_api::health::State;
use memory_api::search::{SearchResult, SearchResults, SourceType};
use memory_api::sources::{
    FileJob, FileJobList, FileJobStatus, Reindexing, Source, SourceAdded, SourceList, SourceStatus,
};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::helper::*;

fn search_files(port: u16, project: &str, q: &str) -> Vec<SearchResult> {
    post_as::<SearchResults>(
        port,
        "/search",
        &json!({"project_id": project, "query": q, "limit": 50}),
    )
    .results
    .into_iter()
    .filter(|h| h.source_type == SourceType::File)
    .collect()
}

/// The jobs of `source`, if the service answers with them.
fn jobs(port: u16, source: &str, limit: u32) -> Option<Vec<FileJob>> {
    let (_, v) = get(port, &format!("/sources/{source}/jobs?limit={limit}"))?;
    serde_json::from_value::<FileJobList>(v).ok().map(|l| l.jobs)
}

fn wait_job_done(port: u16, source: &str, job: i64) -> FileJob {
    poll(&format!("job {job} of {source} to end"), DEADLINE, || {
        let j = jobs(port, source, 20)?.into_iter().find(|j| j.id == job)?;
        j.status.is_finished().then_some(j)
    })
}

fn add_source(port: u16, dir: &Path, name: &str) -> (String, i64) {
    let v: SourceAdded = post_as(
        port,
        "/sources",
        &json!({"root_path": dir, "display_name": name, "project_id": "proj"}),
    );
    (v.source_id, v.job_id)
}

fn serve(sb: &Sandbox) -> (Proc, u16) {
    sb.start()
}

#[test]
fn index_gitignore_watch_and_confinement() {
    let sb = Sandbox::new(bin());
    let docs = sb.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join(".gitignore"), "ignored.md\n").unwrap();
    std::fs::write(docs.join("sub/kept.md"), "the pangolin walks at dawn\n").unwrap();
    std::fs::write(docs.join("ignored.md"), "the pangolin is hidden here\n").unwrap();
    std::fs::create_dir_all(docs.join("node_modules/x")).unwrap();
    std::fs::write(docs.join("node_modules/x/i.js"), "// pangolin in deps\n").unwrap();
    let (mut p, port) = serve(&sb);

    let (id, job) = add_source(port, &docs, "docs");
    assert_eq!(wait_job_done(port, &id, job).status, FileJobStatus::Completed);
    let hits = search_files(port, "proj", "pangolin");
    let paths: Vec<&str> = hits.iter().map(|h| h.file_path.as_deref().unwrap()).collect();
    assert_eq!(
        paths.len(),
        1,
        ".gitignore and default excludes honoured: {paths:?}"
    );
    assert!(paths[0].ends_with("sub/kept.md"));

    // The watcher: created, changed and deleted files show within the deadline.
    std::fs::write(docs.join("new.txt"), "a freshly written narwhal\n").unwrap();
    poll("a created file to be searchable", DEADLINE, || {
        (!search_files(port, "proj", "narwhal").is_empty()).then_some(())
    });
    std::fs::write(docs.join("new.txt"), "now it is about an okapi\n").unwrap();
    poll("a changed file to be re-indexed", DEADLINE, || {
        (search_files(port, "proj", "narwhal").is_empty() && !search_files(port, "proj", "okapi").is_empty())
            .then_some(())
    });
    std::fs::remove_file(docs.join("new.txt")).unwrap();
    poll("a deleted file to leave the index", DEADLINE, || {
        search_files(port, "proj", "okapi").is_empty().then_some(())
    });

    // Confinement over HTTP.
    let outside = sb.path().join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, docs.join("link.txt")).unwrap();
    for q in [
        "../outside.txt",
        "/etc/passwd",
        "link.txt",
        "sub/../../outside.txt",
    ] {
        let (s, v) = get(port, &format!("/filetree/{id}/file?path={q}")).unwrap();
        assert_eq!(s, 400, "{q}: {v}");
        assert!(!v.to_string().contains("secret"));
    }
    let v: FileContent = get_as(port, &format!("/filetree/{id}/file?path=sub/kept.md"));
    assert!(v.content.as_deref().unwrap().contains("pangolin"));
    assert_eq!(p.stop(), 0);
}

#[test]
fn reindex_never_shows_an_empty_source_to_searches() {
    let sb = Sandbox::new(bin());
    let docs = sb.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..300 {
        std::fs::write(
            docs.join(format!("f{i}.txt")),
            format!("file {i} mentions the axolotl {}\n", "word ".repeat(200)),
        )
        .unwrap();
    }
    let (mut p, port) = serve(&sb);
    let (id, job) = add_source(port, &docs, "docs");
    wait_job_done(port, &id, job);

    let stop = Arc::new(AtomicBool::new(false));
    let (searches, empties) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let searcher = {
        let (stop, searches, empties) = (stop.clone(), searches.clone(), empties.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if search_files(port, "proj", "axolotl").is_empty() {
                    empties.fetch_add(1, Ordering::Relaxed);
                }
                searches.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..3 {
        let v: Reindexing = post_as(port, "/reindex", &json!({"source_id": id}));
        assert_eq!(
            wait_job_done(port, &id, v.job_id).status,
            FileJobStatus::Completed
        );
    }
    stop.store(true, Ordering::Relaxed);
    searcher.join().unwrap();
    assert!(searches.load(Ordering::Relaxed) > 0);
    assert_eq!(
        empties.load(Ordering::Relaxed),
        0,
        "a search saw an empty source during a reindex"
    );
    assert_eq!(p.stop(), 0);
}

#[test]
fn kill_9_mid_index_leaves_no_running_job_and_a_sound_database() {
    let sb = Sandbox::new(bin());
    let docs = sb.path().join("docs");
    for d in 0..20 {
        std::fs::create_dir_all(docs.join(format!("d{d}"))).unwrap();
        for i in 0..150 {
            std::fs::write(
                docs.join(format!("d{d}/f{i}.md")),
                format!("# {d}/{i}\n{}\n", "lorem ipsum dolor sit amet ".repeat(40)),
            )
            .unwrap();
        }
    }
    let (mut p, port) = serve(&sb);
    let (id, job) = add_source(port, &docs, "docs");
    let progressed = poll("the job to make progress", DEADLINE, || {
        let j = jobs(port, &id, 5)?.into_iter().find(|j| j.id == job)?;
        (j.files_processed > 0).then_some(j)
    });
    p.signal(Signal::SIGKILL);
    p.wait_code_or_signal();
    let db = sb.home.join("memory.sqlite");
    {
        let store = memory_store::Store::open(memory_store::StoreConfig::new(&db)).unwrap();
        // As the service would: pending chat jobs resume while the store is open.
        let chat_stage = memory_indexer::ChatStage::start(store.clone()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        chat_stage.shutdown();
        store.shutdown().unwrap();
    }
    let (mut p, port) = serve(&sb);
    let listed: FileJobList = get_as(port, &format!("/sources/{id}/jobs?limit=10"));
    let cut = listed.jobs.iter().find(|j| j.id == job).unwrap();
    if progressed.status == FileJobStatus::Running {
        assert_ne!(
            cut.status,
            FileJobStatus::Running,
            "an interrupted job is never left running: {cut:?}"
        );
    }
    // The restart's own sync finishes the work: every file becomes searchable.
    poll("all 3000 files indexed after the restart", DEADLINE * 2, || {
        let (_, v) = get(port, &format!("/sources/{id}/status"))?;
        let s: Source = serde_json::from_value(v).ok()?;
        (s.files_indexed == 3000 && s.status == SourceStatus::Idle).then_some(())
    });
    assert_eq!(p.stop(), 0);
    let store = memory_store::Store::open(memory_store::StoreConfig::new(&db)).unwrap();
    let _chat_stage = memory_indexer::ChatStage::start(store.clone()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn people_commands_add_wait_list_reindex_rm() {
    let sb = Sandbox::new(bin());
    let docs = sb.path().join("my docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..30 {
        std::fs::write(
            docs.join(format!("n{i}.md")),
            format!("note {i} about the tapir\n"),
        )
        .unwrap();
    }
    let (mut p, port) = serve(&sb);
    let dir = docs.display().to_string();
    let (code, out, err) = sb.cli(
        port,
        &[
            "sources",
            "add",
            &dir,
            "--project",
            "proj",
            "--name",
            "notes",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Added source notes-dir"), "{out}");
    assert!(
        out.contains("progress: "),
        "plain progress lines without a terminal: {out}"
    );
    assert!(
        out.lines().last().unwrap().contains("completed: 30 files"),
        "{out}"
    );

    let (code, out, _) = sb.cli(port, &["sources", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("notes-dir"))
        .expect("a row for the source");
    assert!(
        row.contains("proj") && row.contains(&dir) && row.contains("idle") && row.contains(" 30 "),
        "{row}"
    );
    assert!(
        row.contains("  710 B  ") && (row.contains("just now") || row.contains("min ago")),
        "IEC size (30 files of 23-24 bytes) and a human time: {row}"
    );

    // The same folder again (written differently): shown, not added.
    let again = format!("{dir}/../my docs/");
    let (code, out, err) = sb.cli(port, &["sources", "add", &again]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("already is source notes-dir (project proj)"),
        "{out}"
    );
    assert!(
        out.contains("--duplicate"),
        "names the flag that adds a second one: {out}"
    );
    let v: SourceList = get_as(port, "/sources");
    assert_eq!(v.sources.len(), 1, "{v:?}");
    let (code, out, _) = sb.cli(port, &["sources", "add", &dir, "--json"]);
    assert_eq!(code, 0);
    #[derive(serde::Deserialize)]
    struct Existing {
        existing: Source,
    }
    let v: Existing = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v.existing.id, "notes-dir", "{out}");

    // An explicit second source of the same folder: `/search` still returns
    // each file chunk once (30 one-chunk files: 30 hits, not 60).
    let (code, out, err) = sb.cli(
        port,
        &[
            "sources",
            "add",
            &dir,
            "--project",
            "proj",
            "--duplicate",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("completed: 30 files"), "{out}");
    let v: SourceList = get_as(port, "/sources");
    let twin = v
        .sources
        .into_iter()
        .map(|s| s.id)
        .find(|id| id != "notes-dir")
        .expect("a second source");
    let hits = search_files(port, "proj", "tapir");
    let chunks: std::collections::HashSet<String> = hits
        .iter()
        .map(|h| format!("{:?}#{}", h.file_path, h.chunk_index))
        .collect();
    assert_eq!(chunks.len(), hits.len(), "each file chunk once: {hits:?}");
    assert_eq!(hits.len(), 30, "every file found once");
    let (code, out, err) = sb.cli(port, &["sources", "rm", &twin]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = sb.cli(port, &["reindex", "notes-dir", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("completed: 30 files"), "{out}");
    let (code, out, _) = sb.cli(port, &["search", "--project", "proj", "tapir", "-n", "3"]);
    assert_eq!(code, 0);
    assert!(out.contains("file ") && out.contains("[tapir]"), "{out}");
    // No --project: every project with a source; each hit labelled.
    let (code, out, err) = sb.cli(port, &["search", "tapir", "-n", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("(project proj, source notes-dir)") && out.contains("[tapir]"),
        "{out}"
    );
    let (code, out, _) = sb.cli(
        port,
        &["search", "--source", "notes-dir", "--json", "tapir", "-n", "30"],
    );
    assert_eq!(code, 0);
    let v: SearchResults = serde_json::from_str(out.trim()).unwrap();
    let hits = v.results;
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h.source_id == "notes-dir"),
        "{out}"
    );
    let chunks: std::collections::HashSet<String> = hits
        .iter()
        .map(|h| format!("{:?}#{}", h.file_path, h.chunk_index))
        .collect();
    assert_eq!(chunks.len(), hits.len(), "each chunk once: {out}");

    let (code, _, err) = sb.cli(port, &["reindex", "nope"]);
    assert_eq!(code, 1);
    assert!(
        !err.contains("HTTP") && err.contains("Source not found: nope") && err.contains("next: "),
        "one sentence and a hint, no request: {err}"
    );
    assert_eq!(
        err.matches("Source not found").count(),
        1,
        "the cause once: {err}"
    );
    let (_, _, err) = sb.cli(port, &["-v", "reindex", "nope"]);
    assert!(
        err.contains("POST /reindex answered HTTP 404"),
        "-v names the request: {err}"
    );
    let (code, out, _) = sb.cli(port, &["sources", "rm", "notes-dir"]);
    assert_eq!(code, 0);
    assert!(out.contains("deleted successfully"), "{out}");
    let (_, out, _) = sb.cli(port, &["sources", "list"]);
    assert!(out.contains("No sources yet"), "{out}");
    assert_eq!(p.stop(), 0);
}

/// `MEMORY_SERVICE_CHATDO_PROJECTS` reaches the daemon: `connected_projects`
/// names ChatDO's projects, a chosen `source_id` is kept, and deleting the
/// source removes its id from ChatDO's file and nothing else.
#[test]
fn chatdo_projects_file_end_to_end() {
    let sb = Sandbox::new(bin());
    let docs = sb.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "the okapi sleeps\n").unwrap();
    let projects = sb.path().join("projects.json");
    let text = "[\n  {\"id\": \"p1\", \"name\": \"Research\", \"memory_sources\": [\"drr-repo\", \"other-dir\"]}\n]\n";
    std::fs::write(&projects, text).unwrap();
    let file = projects.display().to_string();
    let (mut p, port) = sb.start_with(&[("MEMORY_SERVICE_CHATDO_PROJECTS", &file)]);

    let (s, v) = post(
        port,
        "/sources",
        &json!({"root_path": docs, "display_name": "Impact Doc: report.pdf", "source_id": "drr-repo"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        serde_json::from_value::<SourceAdded>(v).unwrap().source_id,
        "drr-repo"
    );
    let (s, v) = post(
        port,
        "/sources",
        &json!({"root_path": docs, "display_name": "Impact Doc: report.pdf"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        serde_json::from_value::<SourceAdded>(v).unwrap().source_id,
        "impact-doc-reportpdf-dir"
    );
    let (s, v) = post(
        port,
        "/sources",
        &json!({"root_path": docs, "source_id": "drr-repo"}),
    );
    assert_eq!(s, 409, "{v}");

    let list: SourceList = get_as(port, "/sources");
    let of = |id: &str| {
        list.sources
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .connected_projects
            .clone()
            .expect("a list has connected_projects")
    };
    assert_eq!(of("drr-repo"), ["Research"]);
    assert!(of("impact-doc-reportpdf-dir").is_empty());

    let (s, v) = delete(port, "/sources/drr-repo");
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        std::fs::read_to_string(&projects).unwrap(),
        text.replace("\"drr-repo\", ", "")
    );
    assert_eq!(p.stop(), 0);
}

/// Issue 11, item 4: a source folder deleted under a running service turns the source
/// `error` with a `last_error` naming the folder, `/health` lists it and its files leave
/// `/search` (chat untouched); recreated, it is indexed and watched again with no restart
/// or reindex; a folder replaced by another at the same path is watched on the new one.
#[test]
fn a_deleted_recreated_or_replaced_folder_is_noticed_and_watched_again() {
    let sb = Sandbox::new(bin());
    let docs = sb.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "the quetzal nests here\n").unwrap();
    let (mut p, port) = serve(&sb);
    let (id, job) = add_source(port, &docs, "docs");
    assert_eq!(wait_job_done(port, &id, job).status, FileJobStatus::Completed);
    assert_eq!(search_files(port, "proj", "quetzal").len(), 1);
    let body = json!({"project_id": "proj", "chat_id": "c", "message_id": "m", "role": "user",
                      "content": "we spoke of the quetzal", "timestamp": "2026-01-02T03:04:05Z",
                      "message_index": 0});
    let (s, v) = post(port, "/index-chat-message", &body);
    assert_eq!(s, 200, "{v}");
    let chat_hits = || {
        post_as::<SearchResults>(
            port,
            "/search",
            &json!({"project_id": "proj", "query": "quetzal"}),
        )
        .results
        .iter()
        .filter(|h| h.source_type == SourceType::Chat)
        .count()
    };
    poll("the chat message searchable", DEADLINE, || {
        (chat_hits() == 1).then_some(())
    });
    let source = |port: u16| -> Option<Source> {
        let (_, v) = get(port, "/sources")?;
        let list: SourceList = serde_json::from_value(v).ok()?;
        list.sources.into_iter().find(|s| s.id == id)
    };
    let canon = std::fs::canonicalize(&docs).unwrap().display().to_string();

    std::fs::remove_dir_all(&docs).unwrap();
    let s = poll("the source to say its folder is missing", DEADLINE, || {
        source(port).filter(|s| s.status == SourceStatus::Error)
    });
    let err = s.last_error.as_deref().unwrap();
    assert!(
        err.contains(&canon) && err.contains("does not exist") && err.contains("delete the source"),
        "{err}"
    );
    assert!(search_files(port, "proj", "quetzal").is_empty());
    assert_eq!(chat_hits(), 1, "chat is untouched");
    let h = poll("/health to list the missing folder", DEADLINE, || {
        health(port).filter(|h| h.state == State::Degraded)
    });
    let reasons = h.reasons.join("\n");
    assert!(reasons.contains(&id) && reasons.contains(&canon), "{h:?}");

    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("b.md"), "a rhea came back\n").unwrap();
    poll("the recreated folder indexed, the source idle", DEADLINE, || {
        let s = source(port)?;
        (s.status == SourceStatus::Idle
            && s.last_error.is_none()
            && search_files(port, "proj", "rhea").len() == 1)
            .then_some(())
    });
    poll("/health ready again", DEADLINE, || {
        health(port).filter(|h| h.state == State::Ready)
    });
    std::fs::write(docs.join("c.md"), "then a sloth\n").unwrap();
    poll("a later file found by the re-armed watcher", DEADLINE, || {
        (search_files(port, "proj", "sloth").len() == 1).then_some(())
    });

    std::fs::rename(&docs, sb.path().join("docs.old")).unwrap();
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("d.md"), "a tapir in the new folder\n").unwrap();
    poll(
        "the replacing folder indexed, the old one's files gone",
        DEADLINE,
        || {
            (search_files(port, "proj", "tapir").len() == 1 && search_files(port, "proj", "rhea").is_empty())
                .then_some(())
        },
    );
    std::fs::write(docs.join("e.md"), "and an urial\n").unwrap();
    poll("a later file in the replacing folder", DEADLINE, || {
        (search_files(port, "proj", "urial").len() == 1).then_some(())
    });
    assert_eq!(chat_hits(), 1);
    assert_eq!(p.stop(), 0);
}
