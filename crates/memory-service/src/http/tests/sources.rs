//! In-process tests of the file source and filetree endpoints.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use memory_api::StatusMessage;
use memory_api::filetree::{FileContent, Tree};
use memory_api::health::State;
use memory_api::search::SourceType;
use memory_api::sources::{
    ChunkStats, FileJobList, FileJobStatus, Reindexing, Source, SourceAdded, SourceList, SourceStatus,
};
use serde_json::json;

use super::{Fixture, detail, fixture, req, typed};

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("notes/deep")).unwrap();
    std::fs::write(
        d.path().join("notes/plan.md"),
        "# Plan\nThe heliotrope project starts in spring.\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("notes/deep/x.rs"),
        "fn main() { println!(\"quasar\"); }\n",
    )
    .unwrap();
    std::fs::write(d.path().join("README.txt"), "readme words\n").unwrap();
    d
}

async fn add(f: &Fixture, root: &std::path::Path, name: &str) -> (String, i64) {
    let v: SourceAdded = f
        .post_as(
            "/sources",
            json!({"root_path": root, "display_name": name, "project_id": "proj"}),
        )
        .await;
    assert_eq!(v.status, "ok");
    let job = v.job_id;
    assert!(job > 0, "a real job id: {v:?}");
    let done = f
        .state
        .indexer()
        .unwrap()
        .wait_job(job, Duration::from_secs(30))
        .expect("the job ends");
    assert_eq!(done.status.as_str(), "completed", "{done:?}");
    (v.source_id, job)
}

#[tokio::test]
async fn add_list_status_jobs_stats_search_reindex_delete() {
    let f = fixture();
    let dir = tree();
    let (id, job) = add(&f, dir.path(), "Docs").await;
    assert_eq!(id, "docs-dir");

    let (s, v) = f.get("/sources").await;
    assert_eq!(s, StatusCode::OK);
    let list: SourceList = typed(v.clone());
    let typed_src = &list.sources[0];
    assert_eq!(
        (typed_src.id.as_str(), typed_src.status),
        ("docs-dir", SourceStatus::Idle)
    );
    assert_eq!(typed_src.files_indexed, 3);
    let latest = typed_src.latest_job.as_ref().expect("a latest job");
    assert_eq!((latest.id, latest.status), (job, FileJobStatus::Completed));
    assert_eq!(
        typed_src.connected_projects,
        Some(vec![]),
        "no ChatDO projects file configured"
    );
    // Every key present (null or not): typed reads cannot tell a missing key from null.
    let src = &v["sources"][0];
    for k in [
        "display_name",
        "root_path",
        "bytes_indexed",
        "last_index_started_at",
        "last_index_completed_at",
        "last_error",
        "project_id",
    ] {
        assert!(src.get(k).is_some(), "missing {k}");
    }

    let (s, v) = f.get("/sources/docs-dir/status").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("connected_projects").is_none(), "omitted, not null: {v}");
    assert_eq!(typed::<Source>(v).id, "docs-dir");
    let (s, v) = f.get("/sources/nope/status").await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::NOT_FOUND, Some("Source not found: nope"))
    );

    let jobs: FileJobList = f.get_as("/sources/docs-dir/jobs?limit=5").await;
    assert_eq!(jobs.jobs[0].files_processed, 3);
    assert_eq!(
        f.get("/sources/docs-dir/jobs?limit=zero").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(
        f.get_as::<FileJobList>("/sources/unknown/jobs")
            .await
            .jobs
            .is_empty()
    );
    let stats: ChunkStats = f.get_as("/sources/docs-dir/chunk-stats").await;
    assert_eq!(stats.total_files, 3, "{stats:?}");

    let hits = f
        .search(json!({"project_id": "proj", "query": "heliotrope"}))
        .await;
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(
        (h.source_type, h.source_id.as_str(), h.filetype.as_deref()),
        (SourceType::File, "docs-dir", Some("md"))
    );
    assert!(h.file_path.as_deref().unwrap().ends_with("notes/plan.md"));
    assert!(h.end_char > h.start_char);
    assert!(h.chat_id.is_none());
    assert!(
        f.search(json!({"project_id": "other", "query": "heliotrope"}))
            .await
            .is_empty(),
        "another project"
    );

    let v: Reindexing = f.post_as("/reindex", json!({"source_id": "docs-dir"})).await;
    let job2 = v.job_id;
    assert_ne!(job2, job);
    f.state
        .indexer()
        .unwrap()
        .wait_job(job2, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        f.search(json!({"project_id": "proj", "query": "quasar"}))
            .await
            .len(),
        1
    );
    let (s, v) = f.post("/reindex", json!({"source_id": "nope"})).await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::NOT_FOUND, Some("Source not found: nope"))
    );

    let del = |path: &str| req("DELETE", path).body(Body::empty()).unwrap();
    let (s, v) = f.send(del("/sources/nope")).await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::NOT_FOUND, Some("Source 'nope' not found"))
    );
    let (s, v) = f.send(del("/sources/docs-dir")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        typed::<StatusMessage>(v),
        StatusMessage::ok("Source 'docs-dir' deleted successfully")
    );
    assert!(
        f.search(json!({"project_id": "proj", "query": "heliotrope"}))
            .await
            .is_empty()
    );
    assert!(
        dir.path().join("notes/plan.md").exists(),
        "the user's files are untouched"
    );
}

/// Ids as the original makes them; a chosen id (400 when invalid, 409 when
/// taken); `connected_projects` from ChatDO's projects file, and a delete that
/// removes the id there and changes no other byte.
#[tokio::test]
async fn source_ids_and_chatdo_projects() {
    let mut f = fixture();
    let projects = tempfile::tempdir().unwrap();
    let file = projects.path().join("projects.json");
    let text = r#"[
  {"id": "a1", "name": "Alpha", "memory_sources": ["drr-repo", "impact-doc-reportpdf-dir"]},
  {"id": "b2", "memory_sources": ["drr-repo"], "default_target": "x"}
]
"#;
    std::fs::write(&file, text).unwrap();
    f.state.config = std::sync::Arc::new(crate::config::Config {
        chatdo_projects: Some(file.clone()),
        ..(*f.state.config).clone()
    });
    let dir = tree();
    let root = dir.path();
    for (name, want) in [
        ("Impact Doc: report.pdf", "impact-doc-reportpdf-dir"),
        ("Ünïcödé Name", "ünïcödé-name-dir"),
        ("東京", "東京-dir"),
        ("a_b c", "a_b-c-dir"),
        ("!!!", "-dir"),
        ("a_b c", "a_b-c-dir-2"),
    ] {
        let (s, v) = f
            .post("/sources", json!({"root_path": root, "display_name": name}))
            .await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
        assert_eq!(typed::<SourceAdded>(v).source_id, want, "{name}");
    }
    let (s, v) = f
        .post(
            "/sources",
            json!({"root_path": root, "display_name": "DRR", "source_id": "drr-repo"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(typed::<SourceAdded>(v).source_id, "drr-repo");
    let (s, v) = f
        .post("/sources", json!({"root_path": root, "source_id": "drr-repo"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(detail(&v).unwrap().contains("drr-repo"), "{v}");
    for bad in ["", "a/b", "has space"] {
        let (s, v) = f
            .post("/sources", json!({"root_path": root, "source_id": bad}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
    }

    let v: SourceList = f.get_as("/sources").await;
    let connected = |v: &SourceList, id: &str| -> Vec<String> {
        v.sources
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} listed"))
            .connected_projects
            .clone()
            .expect("a list has connected_projects")
    };
    assert_eq!(connected(&v, "drr-repo"), ["Alpha", "b2"]);
    assert_eq!(connected(&v, "impact-doc-reportpdf-dir"), ["Alpha"]);
    assert!(connected(&v, "東京-dir").is_empty());

    let (s, _) = f
        .send(req("DELETE", "/sources/drr-repo").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text.replace(r#"["drr-repo", "impact"#, r#"["impact"#)
            .replace(r#"["drr-repo"]"#, "[]")
    );
    let v: SourceList = f.get_as("/sources").await;
    assert_eq!(connected(&v, "impact-doc-reportpdf-dir"), ["Alpha"]);

    // A broken projects file: the list still answers (no connected projects),
    // the delete still deletes, and the file is left as it was.
    std::fs::write(&file, "{broken").unwrap();
    let v: SourceList = f.get_as("/sources").await;
    assert!(connected(&v, "impact-doc-reportpdf-dir").is_empty());
    let (s, _) = f
        .send(
            req("DELETE", "/sources/impact-doc-reportpdf-dir")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{broken");
}

#[tokio::test]
async fn adding_a_bad_path_is_a_400_naming_the_path_as_sent() {
    let f = fixture();
    let (s, v) = f.post("/sources", json!({"root_path": "/no/such/dir"})).await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::BAD_REQUEST, Some("Path does not exist: /no/such/dir"))
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let sent = file.path().display().to_string();
    let (s, v) = f.post("/sources", json!({"root_path": sent})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(detail(&v), Some(format!("Path is not a directory: {sent}")));
    assert_eq!(
        f.post("/sources", json!({"display_name": "x"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn filetree_lists_reads_and_confines() {
    let f = fixture();
    let dir = tree();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.path().join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("leakdir")).unwrap();
    nix::unistd::mkfifo(&dir.path().join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (id, _) = add(&f, dir.path(), "tree").await;

    let v: Tree = f.get_as(&format!("/filetree/{id}")).await;
    assert_eq!(v.source_id, id);
    assert_eq!(v.root.path, "");
    let names: Vec<&str> = v
        .root
        .children
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names.first(), Some(&"notes"), "directories first: {names:?}");
    assert!(
        !names.contains(&"leak.txt") && !names.contains(&"leakdir"),
        "links leading outside are not listed: {names:?}"
    );

    let v: FileContent = f.get_as(&format!("/filetree/{id}/file?path=notes/plan.md")).await;
    assert_eq!(
        (v.encoding.as_str(), v.is_binary, v.truncated),
        ("utf-8", false, false)
    );
    assert!(v.content.as_deref().unwrap().contains("heliotrope"));
    let v: FileContent = f
        .get_as(&format!("/filetree/{id}/file?path=notes/plan.md&max_bytes=3"))
        .await;
    assert_eq!((v.content.as_deref(), v.truncated), (Some("# P"), true));

    let cases = [
        (format!("/filetree/{id}/file?path=../x"), StatusCode::BAD_REQUEST),
        (
            format!("/filetree/{id}/file?path=notes/../../x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/filetree/{id}/file?path=/etc/passwd"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/filetree/{id}/file?path=leak.txt"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/filetree/{id}/file?path=leakdir/secret.txt"),
            StatusCode::BAD_REQUEST,
        ),
        (format!("/filetree/{id}?path=leakdir"), StatusCode::BAD_REQUEST),
        (format!("/filetree/{id}?path=../"), StatusCode::BAD_REQUEST),
        (format!("/filetree/{id}/file?path=notes"), StatusCode::BAD_REQUEST),
        (
            format!("/filetree/{id}/file?path=nope.txt"),
            StatusCode::NOT_FOUND,
        ),
        (format!("/filetree/{id}?path=nope"), StatusCode::NOT_FOUND),
        ("/filetree/unknown".to_string(), StatusCode::NOT_FOUND),
        (format!("/filetree/{id}/file"), StatusCode::UNPROCESSABLE_ENTITY),
        (
            format!("/filetree/{id}/file?path=README.txt&max_bytes=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("/filetree/{id}/file?path=README.txt&max_bytes=5000001"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("/filetree/{id}?max_depth=11"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("/filetree/{id}?max_entries=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("/filetree/{id}?max_entries=5001"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (path, want) in cases {
        let (s, v) = f.get(&path).await;
        assert_eq!(s, want, "{path}: {v}");
        assert!(detail(&v).is_some(), "{path}: {v}");
        assert!(!v.to_string().contains("top secret"), "{path} leaked the secret");
    }
    let (s, v) = f.get(&format!("/filetree/{id}/file?path=../x")).await;
    assert_eq!(
        (s, detail(&v).as_deref()),
        (StatusCode::BAD_REQUEST, Some("Path escapes source root: ../x"))
    );
}

/// Issue 13: `/`, a pseudo file system and the service's own home are refused as
/// roots with a 400 that says why.
#[tokio::test]
async fn special_roots_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let f = super::fixture_with(memory_indexer::IndexerConfig {
        protected: vec![home.clone()],
        ..memory_indexer::IndexerConfig::default()
    });
    for (root, why) in [
        ("/".to_string(), "file-system root"),
        ("/proc".to_string(), "special file system"),
        ("/sys/kernel".to_string(), "special file system"),
        (home.display().to_string(), "own home"),
        (dir.path().display().to_string(), "own home"),
    ] {
        let (s, v) = f.post("/sources", json!({"root_path": root})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{root}: {v}");
        let detail = detail(&v).unwrap_or_default();
        assert!(
            detail.starts_with(&format!("Refusing source root {root}: ")) && detail.contains(why),
            "{root}: {detail}"
        );
    }
    let v: SourceList = f.get_as("/sources").await;
    assert!(v.sources.is_empty(), "nothing was added: {v:?}");
}

/// Issue 13: a file job that stops making progress is named in `/health` reasons
/// (through the same store watcher the daemon runs) and the reason clears once the job
/// moves on. The job is wedged by the indexer's test hook (passes wait at their start);
/// the FIFO `.gitignore` that once wedged the walk is now skipped by the walk itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_file_job_shows_in_health_reasons() {
    let f = super::fixture_with(memory_indexer::IndexerConfig {
        stuck_after: Duration::from_millis(200),
        watch: false,
        ..memory_indexer::IndexerConfig::default()
    });
    let dir = tree();
    f.state.indexer().unwrap().pause_passes_for_tests(true);
    let shutdown = tokio_util::sync::CancellationToken::new();
    crate::daemon::storewatch::spawn(
        f.state.store().unwrap().clone(),
        f.state.indexer().unwrap().clone(),
        f.state.semantic.clone(),
        f.state.monitor.clone(),
        crate::config::DEFAULT_INTEGRITY_CHECK_INTERVAL,
        shutdown.clone(),
    );
    let v: SourceAdded = f
        .post_as(
            "/sources",
            json!({"root_path": dir.path(), "display_name": "Wedged"}),
        )
        .await;
    let job = v.job_id;
    let want = format!("index job {job} for source wedged-dir has made no progress for");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let h: memory_api::HealthReport = f.get_as("/health").await;
        if h.reasons.iter().any(|r| r.contains(&want)) {
            assert_eq!(h.state, State::Degraded, "{h:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reported stuck: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Unwedged: the job goes on and ends.
    f.state.indexer().unwrap().pause_passes_for_tests(false);
    let ix = f.state.indexer().unwrap().clone();
    let done = tokio::task::spawn_blocking(move || ix.wait_job(job, Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the job ends once unblocked");
    assert_eq!(done.status.as_str(), "completed", "{done:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let h: memory_api::HealthReport = f.get_as("/health").await;
        if !h.reasons.iter().any(|r| r.contains("has made no progress")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reason never cleared: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

/// Issue 11: a UTF-16 file (FF FE BOM) is found by `/search`, the file tree names its
/// encoding, and `/sources` and the job say what was skipped and why.
#[tokio::test]
async fn utf16_is_searchable_and_skips_are_counted_by_reason() {
    let f = fixture();
    let d = tempfile::tempdir().unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    for u in "Widgetry settings\r\nsecond line narwhalx\r\n".encode_utf16() {
        utf16.extend(u.to_le_bytes());
    }
    std::fs::write(d.path().join("settings.ini"), &utf16).unwrap();
    std::fs::write(d.path().join("pic.png"), "not text").unwrap();
    std::fs::write(d.path().join("blob.dat2"), b"\x00\x01\x02\x03").unwrap();
    let (id, job) = add(&f, d.path(), "Win").await;

    let hits = f.search(json!({"project_id": "proj", "query": "narwhalx"})).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    let v: FileContent = f.get_as(&format!("/filetree/{id}/file?path=settings.ini")).await;
    assert_eq!(
        (v.encoding.as_str(), v.detected_encoding.as_deref(), v.is_binary),
        ("utf-8", Some("UTF-16LE"), false)
    );
    assert_eq!(
        v.content.as_deref(),
        Some("Widgetry settings\r\nsecond line narwhalx\r\n")
    );

    let v: SourceList = f.get_as("/sources").await;
    let src = &v.sources[0];
    assert_eq!(src.files_indexed, 1, "{src:?}");
    assert_eq!(src.files_skipped, 2, "{src:?}");
    assert_eq!(src.skipped.binary, 2, "{src:?}");
    let v: FileJobList = f.get_as(&format!("/sources/{id}/jobs")).await;
    let j = &v.jobs[0];
    assert_eq!(j.id, job);
    assert_eq!(
        (j.files_indexed, j.files_skipped, j.skipped.binary),
        (1, 2, 2),
        "{j:?}"
    );
    assert_eq!(j.bytes_indexed, utf16.len() as i64, "{j:?}");
}
