//! File sources end to end: real files in temp dirs, a real store, the real worker.

#[path = "cases/documents.rs"]
mod documents;
#[path = "cases/folders.rs"]
mod folders;
mod helper;
#[path = "cases/tree.rs"]
mod tree;

use std::time::Duration;

use helper::{DEADLINE, Env, add, completed, eventually, files_found, latest_job, no_watch, search, write};
use memory_indexer::{IndexerConfig, IndexerError};
use memory_store::{FileJobKind, FileJobState, NewSource, SourceStatus, SourceType, StoreError};

#[test]
fn add_source_indexes_and_search_finds_file_text() {
    let env = Env::new();
    let root = env.tree();
    write(
        &root,
        "notes/alpha.md",
        "# Alpha\n\nThe quokka lives on Rottnest.\n",
    );
    write(&root, "src/main.rs", "fn main() { println!(\"wombat\"); }\n");
    let long = format!("{}\nfinale pangolin\n", "filler words here. ".repeat(200));
    write(&root, "long.txt", &long);
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (source, job) = add(&ix, &root);
    assert_eq!(source.id, "tree-dir");
    assert_eq!(source.display_name, "tree");
    assert_eq!(source.project_id, "general");
    assert!(job > 0);
    let j = completed(&ix, job);
    assert_eq!(
        (j.files_total, j.files_processed, j.files_updated),
        (Some(3), 3, 3)
    );

    let hits = search(&store, "general", "quokka", None);
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(h.source_type, SourceType::File);
    assert_eq!(h.source_id, "tree-dir");
    assert_eq!(h.project_id, "general");
    let canon = std::fs::canonicalize(&root).expect("canon");
    assert_eq!(
        h.file_path.as_deref(),
        Some(canon.join("notes/alpha.md").to_str().expect("utf8"))
    );
    assert_eq!(h.filetype.as_deref(), Some("md"));
    assert_eq!((h.chunk_index, h.start_char, h.end_char), (0, 0, 39));
    assert!(h.chat_id.is_none() && h.message_uuid.is_none());

    // Offsets of a later chunk point at its text in the file.
    let hits = search(&store, "general", "pangolin", None);
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert!(h.chunk_index > 0);
    let chars: Vec<char> = long.chars().collect();
    let slice: String = chars[h.start_char as usize..h.end_char as usize].iter().collect();
    assert_eq!(slice, h.text);

    // Other projects do not see it; the client's fallback source_ids=[project] does.
    assert!(search(&store, "other", "quokka", None).is_empty());
    assert_eq!(
        search(&store, "general", "quokka", Some(vec!["general".into()])).len(),
        1
    );
    assert_eq!(
        search(&store, "other", "quokka", Some(vec!["tree-dir".into()])).len(),
        1
    );

    let s = store.get_source("tree-dir").expect("get").expect("known");
    assert_eq!(s.status, SourceStatus::Idle);
    assert_eq!(s.files_indexed, 3);
    assert!(s.bytes_indexed > 0 && s.last_index_completed_at.is_some());
    assert_eq!(s.latest_job.as_ref().map(|j| j.id), Some(job));
    let stats = store.chunk_stats("tree-dir").expect("stats").expect("known");
    assert_eq!(stats.total_files, 3);
    assert!(stats.total_chunks >= 5, "{stats:?}");
    assert!(store.chunk_stats("nope").expect("stats").is_none());
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn invalid_paths_are_refused_and_ids_are_slugs() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "f.txt", "x");
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let missing = env.dir.path().join("nope");
    let err = ix
        .add_source(missing.to_str().expect("utf8"), None, None)
        .expect_err("missing");
    assert!(
        matches!(&err, IndexerError::InvalidInput(m) if m.starts_with("Path does not exist: ")),
        "{err}"
    );
    let file = root.join("f.txt");
    let err = ix
        .add_source(file.to_str().expect("utf8"), None, None)
        .expect_err("file");
    assert!(
        matches!(&err, IndexerError::InvalidInput(m) if m.starts_with("Path is not a directory: ")),
        "{err}"
    );
    let r = root.to_str().expect("utf8");
    let (a, _) = ix
        .add_source(r, Some("My Docs!".into()), Some("p1".into()))
        .expect("a");
    let (b, _) = ix.add_source(r, Some("my docs".into()), None).expect("b");
    let (c, _) = ix.add_source(r, Some("My-Docs".into()), None).expect("c");
    assert_eq!(
        (a.id.as_str(), b.id.as_str(), c.id.as_str()),
        ("my-docs-dir", "my-docs-dir-2", "my-docs-dir-3")
    );
    assert_eq!(a.project_id, "p1");
    let ids: Vec<String> = store
        .list_sources()
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["my-docs-dir", "my-docs-dir-2", "my-docs-dir-3"]);
    assert!(matches!(ix.reindex("nope"), Err(IndexerError::NotFound(m)) if m == "Source not found: nope"));
    assert!(!ix.delete_source("nope").expect("delete"));
}

#[test]
fn gitignore_and_default_excludes_are_honoured() {
    let env = Env::new();
    let root = env.tree();
    write(&root, ".gitignore", "secret.txt\nlogs/\n");
    write(&root, "keep.md", "visible narwhal");
    write(&root, "secret.txt", "hidden narwhal");
    write(&root, "logs/app.log", "hidden narwhal");
    write(&root, "node_modules/pkg/index.js", "hidden narwhal");
    write(&root, "sub/dist/bundle.js", "hidden narwhal");
    write(&root, ".git/config", "hidden narwhal");
    write(&root, ".venv/lib.py", "hidden narwhal");
    write(&root, "data.sqlite", "hidden narwhal");
    write(&root, "data.sqlite-wal", "hidden narwhal");
    write(&root, ".hidden.md", "dotfile narwhal");
    #[cfg(unix)]
    {
        let outside = env.dir.path().join("outside");
        write(&outside, "o.txt", "hidden narwhal");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
    }
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (_, job) = add(&ix, &root);
    completed(&ix, job);
    let canon = std::fs::canonicalize(&root).expect("canon");
    let found = files_found(&store, "narwhal");
    let expect: Vec<String> = [".hidden.md", "keep.md"]
        .iter()
        .map(|f| canon.join(f).display().to_string())
        .collect();
    assert_eq!(found, expect);
}

#[test]
fn binary_and_oversized_files_are_skipped_and_counted() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "ok.txt", "okapi");
    write(&root, "big.txt", "okapi ".repeat(400)); // 2400 bytes > cap
    write(&root, "nul.txt", b"okapi\0\x01\x02");
    write(&root, "pic.png", "okapi"); // binary by extension
    write(
        &root,
        "ctl.txt",
        [b"okapi".as_slice(), &[1u8, 2, 3, 4, 5, 6, 7, 8].repeat(10)].concat(),
    );
    write(&root, "old.doc", "okapi"); // a document format not extracted
    write(
        &root,
        "page.html",
        "<html><script>var hidden_secret;</script><p>okapi &amp; zebra</p></html>",
    );
    let store = env.store();
    let cfg = IndexerConfig {
        max_file_bytes: 1000,
        ..no_watch()
    };
    let ix = env.indexer(&store, cfg);
    let (_, job) = add(&ix, &root);
    let j = completed(&ix, job);
    assert_eq!(j.files_total, Some(7));
    assert_eq!(j.files_skipped, 5, "{j:?}");
    assert_eq!(j.files_updated, 2, "{j:?}");
    let reasons = memory_store::SkipCounts {
        binary: 3,
        too_large: 1,
        unsupported: 1,
        ..Default::default()
    };
    assert_eq!(j.skipped, reasons, "{j:?}");
    assert_eq!((j.files_indexed, j.bytes_indexed), (2, 5 + 72), "{j:?}");
    let s = store.get_source(&j.source_id).expect("get").expect("known");
    assert_eq!(
        (s.files_indexed, s.bytes_indexed),
        (j.files_indexed, j.bytes_indexed)
    );
    let hits = search(&store, "general", "zebra", None);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text, "okapi & zebra");
    assert_eq!(hits[0].filetype.as_deref(), Some("html"));
    assert!(search(&store, "general", "secret", None).is_empty());
    assert_eq!(files_found(&store, "okapi").len(), 2);
}

#[test]
fn second_index_touches_nothing_unchanged() {
    let env = Env::new();
    let root = env.tree();
    for i in 0..30 {
        write(
            &root,
            &format!("d{}/f{i}.txt", i % 3),
            format!("file number {i} ibex"),
        );
    }
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (src, job) = add(&ix, &root);
    assert_eq!(completed(&ix, job).files_updated, 30);
    ix.shutdown();

    // A restart queues an incremental sync: nothing re-read.
    let ix = env.indexer(&store, no_watch());
    let j = latest_job(&store, &src.id);
    assert_ne!(j.id, job);
    let j = completed(&ix, j.id);
    assert_eq!((j.files_processed, j.files_updated, j.files_skipped), (30, 0, 0));
    ix.shutdown();

    // New mtime, same content: the row is updated, nothing re-chunked.
    let f0 = root.join("d0/f0.txt");
    let t = std::fs::File::options().write(true).open(&f0).expect("open");
    t.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .expect("touch");
    drop(t);
    // One changed, one deleted, one new.
    write(&root, "d1/f1.txt", "file number 1 changed yak");
    std::fs::remove_file(root.join("d2/f2.txt")).expect("rm");
    write(&root, "new.txt", "brand new yak");
    let ix = env.indexer(&store, no_watch());
    let j = completed(&ix, latest_job(&store, &src.id).id);
    assert_eq!((j.files_total, j.files_updated), (Some(30), 2), "{j:?}");
    assert_eq!(files_found(&store, "yak").len(), 2);
    assert_eq!(files_found(&store, "ibex").len(), 28);
    assert_eq!(
        store
            .get_source(&src.id)
            .expect("get")
            .expect("known")
            .files_indexed,
        30
    );
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn watcher_follows_create_change_delete() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "a.txt", "first gazelle");
    let store = env.store();
    let cfg = IndexerConfig {
        debounce: Duration::from_millis(200),
        ..IndexerConfig::default()
    };
    let ix = env.indexer(&store, cfg);
    let (src, job) = add(&ix, &root);
    completed(&ix, job);
    assert_eq!(files_found(&store, "gazelle").len(), 1);

    write(&root, "sub/new.md", "created gazelle");
    eventually("created file searchable", || {
        files_found(&store, "created").len() == 1
    });
    write(&root, "a.txt", "changed antelope");
    eventually("changed file searchable", || {
        files_found(&store, "antelope").len() == 1
    });
    assert_eq!(files_found(&store, "first").len(), 0);
    std::fs::remove_file(root.join("sub/new.md")).expect("rm");
    eventually("deleted file gone", || files_found(&store, "created").is_empty());
    write(&root, ".git/HEAD", "ignored gazelle");
    write(&root, "b.txt", "marker oryx");
    eventually("later file searchable", || files_found(&store, "oryx").len() == 1);
    assert!(files_found(&store, "ignored").is_empty());
    assert_eq!(
        store
            .get_source(&src.id)
            .expect("get")
            .expect("known")
            .files_indexed,
        2
    );
    assert!(ix.problems().is_empty(), "{:?}", ix.problems());
    ix.shutdown();
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn reindex_never_shows_an_empty_source() {
    let env = Env::new();
    let root = env.tree();
    for i in 0..200 {
        write(
            &root,
            &format!("f{i:03}.txt"),
            format!("common heron {i}\n{}", "padding text. ".repeat(100)),
        );
    }
    let store = env.store();
    let ix = env.indexer(
        &store,
        IndexerConfig {
            batch_files: 5,
            ..no_watch()
        },
    );
    let (src, job) = add(&ix, &root);
    completed(&ix, job);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let searcher = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let hits = search(&store, "general", "heron", None);
                assert_eq!(hits.len(), 50, "search {n} saw a partial or empty source");
                n += 1;
            }
            n
        })
    };
    let before = store.get_source(&src.id).expect("get").expect("known").generation;
    for _ in 0..3 {
        let job = ix.reindex(&src.id).expect("reindex");
        let j = completed(&ix, job);
        assert_eq!(j.files_updated, 200);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let searches = searcher.join().expect("searcher");
    assert!(searches > 0);
    let s = store.get_source(&src.id).expect("get").expect("known");
    assert_eq!(s.generation, before + 3);
    assert_eq!(s.files_indexed, 200);
    // Old generations are deleted in the background, in small transactions.
    let current = store
        .chunk_stats(&src.id)
        .expect("stats")
        .expect("known")
        .total_chunks;
    eventually("old generations collected", || file_chunk_rows(&env) == current);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

/// File chunks of every generation, read behind the store's back.
fn file_chunk_rows(env: &Env) -> i64 {
    let conn = rusqlite::Connection::open(env.db()).expect("raw open");
    conn.query_row("SELECT count(*) FROM chunks WHERE kind = 'file'", [], |r| {
        r.get(0)
    })
    .expect("count")
}

#[test]
fn delete_source_makes_its_chunks_unsearchable() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "a.txt", "lemur facts");
    let other = env.dir.path().join("other");
    write(&other, "b.txt", "lemur other");
    let store = env.store();
    let ix = env.indexer(&store, IndexerConfig::default());
    let (a, j1) = add(&ix, &root);
    let (b, j2) = ix
        .add_source(other.to_str().expect("utf8"), None, None)
        .expect("add b");
    completed(&ix, j1);
    completed(&ix, j2);
    assert_eq!(files_found(&store, "lemur").len(), 2);
    assert!(ix.delete_source(&a.id).expect("delete"));
    assert_eq!(files_found(&store, "lemur").len(), 1);
    assert!(store.get_source(&a.id).expect("get").is_none());
    assert!(store.source_jobs(&a.id, 10).expect("jobs").is_empty());
    assert!(store.file_job(j1).expect("job").is_none());
    assert!(ix.wait_job(j1, Duration::from_millis(10)).is_none());
    // Its watcher is gone: changes under the old root change nothing.
    write(&root, "c.txt", "lemur again");
    assert!(matches!(ix.reindex(&a.id), Err(IndexerError::NotFound(_))));
    assert_eq!(store.list_sources().expect("list").len(), 1);
    assert_eq!(store.list_sources().expect("list")[0].id, b.id);
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn a_job_interrupted_by_a_crash_is_failed_then_caught_up() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "a.txt", "tapir notes");
    let store = env.store();
    let (src, job) = store
        .add_source(NewSource {
            root_path: root.display().to_string(),
            display_name: "t".into(),
            project_id: String::new(),
            include_globs: Vec::new(),
            exclude_globs: Vec::new(),
        })
        .expect("add");
    let claimed = store.claim_file_job().expect("claim").expect("a job");
    assert_eq!(claimed.job.id, job);
    assert_eq!(
        store.file_job(job).expect("job").expect("known").status,
        FileJobState::Running
    );
    store.simulate_crash_for_tests();
    drop(store);

    let store = env.store();
    let j = store.file_job(job).expect("job").expect("known");
    assert_eq!(j.status, FileJobState::Failed);
    assert_eq!(j.error.as_deref(), Some(memory_store::INTERRUPTED));
    let s = store.get_source(&src.id).expect("get").expect("known");
    assert_eq!(s.status, SourceStatus::Error);
    assert!(s.last_error.expect("error").contains("interrupted"));

    let ix = env.indexer(&store, no_watch());
    let next = latest_job(&store, &src.id);
    assert_ne!(next.id, job);
    assert_eq!(next.kind, FileJobKind::Sync);
    completed(&ix, next.id);
    assert_eq!(files_found(&store, "tapir").len(), 1);
    let s = store.get_source(&src.id).expect("get").expect("known");
    assert_eq!((s.status, s.last_error), (SourceStatus::Idle, None));
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn an_interrupted_rebuild_leaves_the_old_generation_searchable() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "a.txt", "okapi one");
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (src, job) = add(&ix, &root);
    completed(&ix, job);
    ix.shutdown();
    // A rebuild claimed and half-written (one file of a new generation), then a crash.
    store
        .enqueue_file_job(&src.id, FileJobKind::Rebuild)
        .expect("enqueue");
    let claimed = store.claim_file_job().expect("claim").expect("job");
    let generation = claimed.job.generation.expect("generation");
    assert_eq!(generation, 2);
    store
        .apply_file_batch(memory_store::FileBatch {
            source_id: src.id.clone(),
            generation,
            job_id: Some(claimed.job.id),
            ops: vec![memory_store::FileOp::Upsert(memory_store::FileUpsert::new(
                memory_store::FileRecord {
                    rel_path: "a.txt".into(),
                    size: 1,
                    mtime_ns: 1,
                    content_hash: "x".into(),
                },
                "/nowhere/a.txt".into(),
                Some("txt".into()),
                memory_indexer::chunk::split("okapi half built"),
            ))],
            progress: None,
        })
        .expect("partial write");
    assert_eq!(
        files_found(&store, "okapi").len(),
        1,
        "the half-built generation is invisible"
    );
    assert!(search(&store, "general", "half", None).is_empty());
    store.simulate_crash_for_tests();
    drop(store);

    let store = env.store();
    assert_eq!(
        store
            .file_job(claimed.job.id)
            .expect("job")
            .expect("known")
            .status,
        FileJobState::Failed
    );
    let ix = env.indexer(&store, no_watch());
    completed(&ix, latest_job(&store, &src.id).id);
    let s = store.get_source(&src.id).expect("get").expect("known");
    assert_eq!(s.generation, 1);
    assert_eq!(files_found(&store, "okapi").len(), 1);
    // The next rebuild takes a generation never used before.
    let j = completed(&ix, ix.reindex(&src.id).expect("reindex"));
    assert_eq!(j.generation, Some(3));
    assert_eq!(files_found(&store, "okapi").len(), 1);
    ix.shutdown();
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn shutdown_requeues_the_running_job() {
    let env = Env::new();
    let root = env.tree();
    for i in 0..300 {
        write(&root, &format!("f{i}.txt"), format!("koala {i}"));
    }
    let store = env.store();
    let ix = env.indexer(
        &store,
        IndexerConfig {
            batch_files: 1,
            ..no_watch()
        },
    );
    let (src, job) = add(&ix, &root);
    ix.shutdown(); // wherever it is, it stops at a file boundary
    let j = store.file_job(job).expect("job").expect("known");
    assert!(
        matches!(j.status, FileJobState::Queued | FileJobState::Completed),
        "{j:?}"
    );
    let ix = env.indexer(&store, no_watch());
    let done = ix
        .wait_job(latest_job(&store, &src.id).id, DEADLINE)
        .expect("done");
    assert_eq!(done.status, FileJobState::Completed);
    eventually("all jobs done", || {
        store
            .source_jobs(&src.id, 10)
            .expect("jobs")
            .iter()
            .all(|j| j.status.is_finished())
    });
    assert_eq!(files_found(&store, "koala").len(), 50); // limit
    assert_eq!(
        store
            .get_source(&src.id)
            .expect("get")
            .expect("known")
            .files_indexed,
        300
    );
    assert!(matches!(
        store.add_source(NewSource {
            root_path: String::new(),
            display_name: String::new(),
            project_id: String::new(),
            include_globs: Vec::new(),
            exclude_globs: Vec::new(),
        }),
        Err(StoreError::InvalidInput(_))
    ));
}

/// The chat stage indexes acknowledged messages; stopped on purpose it is not reported
/// as exited, and messages acknowledged after it stopped stay pending (nothing else
/// indexes them) until a stage runs again.
#[test]
fn the_chat_stage_indexes_messages_and_a_stop_is_not_a_death() {
    let env = Env::new();
    let store = env.store();
    let message = |id: &str, content: &str| memory_store::ChatMessageIn {
        project_id: "general".into(),
        chat_id: "c".into(),
        message_id: id.into(),
        role: "user".into(),
        content: content.into(),
        timestamp: "2025-01-01T00:00:00Z".into(),
        message_index: 0,
        message_uuid: None,
    };
    let stage = memory_indexer::ChatStage::start(store.clone()).expect("start");
    store.index_chat_message(message("m1", "heron one")).expect("ack");
    assert!(store.wait_idle(DEADLINE));
    assert_eq!(search(&store, "general", "heron", None).len(), 1);
    stage.shutdown();
    assert!(!store.stats().indexer_exited, "stopped on purpose");
    store.index_chat_message(message("m2", "heron two")).expect("ack");
    assert_eq!(store.stats().pending_chat_jobs, 1);
    let _stage = memory_indexer::ChatStage::start(store.clone()).expect("restart");
    assert!(store.wait_idle(DEADLINE));
    assert_eq!(search(&store, "general", "heron", None).len(), 2);
    assert!(!store.stats().indexer_exited);
}

/// A file's chunks replaced or removed in the batch that inserted them leave the FTS
/// index equal to the chunks table (the store writes a batch's FTS rows at its end, so
/// a delete in between must not strand pending rows; see memory-store's `fts` module).
#[test]
fn a_batch_that_rewrites_its_own_chunks_keeps_the_index_whole() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "seed.txt", "seed");
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (src, job) = add(&ix, &root);
    completed(&ix, job);
    let upsert = |rel: &str, text: &str| {
        memory_store::FileOp::Upsert(memory_store::FileUpsert::new(
            memory_store::FileRecord {
                rel_path: rel.into(),
                size: text.len() as i64,
                mtime_ns: 1,
                content_hash: text.into(),
            },
            format!("/nowhere/{rel}"),
            Some("txt".into()),
            memory_indexer::chunk::split(text),
        ))
    };
    let generation = store.get_source(&src.id).expect("get").expect("known").generation;
    store
        .apply_file_batch(memory_store::FileBatch {
            source_id: src.id.clone(),
            generation,
            job_id: None,
            ops: vec![
                upsert("a.txt", "osprey first"),
                upsert("b.txt", "kestrel kept"),
                upsert("a.txt", "heron second"),
                upsert("c.txt", "merlin gone"),
                memory_store::FileOp::Remove {
                    rel_path: "c.txt".into(),
                    abs_path: "/nowhere/c.txt".into(),
                },
            ],
            progress: None,
        })
        .expect("batch");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    assert_eq!(files_found(&store, "heron"), vec!["/nowhere/a.txt".to_string()]);
    assert_eq!(files_found(&store, "kestrel"), vec!["/nowhere/b.txt".to_string()]);
    assert!(
        files_found(&store, "osprey").is_empty(),
        "replaced in the same batch"
    );
    assert!(
        files_found(&store, "merlin").is_empty(),
        "removed in the same batch"
    );
}
