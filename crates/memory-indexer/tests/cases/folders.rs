//! Folders that come and go (issue 11, item 4): a source root deleted, recreated,
//! replaced by another directory; a subfolder deleted and recreated; and ignore files
//! that are FIFOs. Every wait polls with a deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use memory_indexer::{Indexer, IndexerConfig, ROOT_MISSING};
use memory_store::{FileJobState, SourceStatus, Store};

use crate::helper::{DEADLINE, Env, add, completed, eventually, files_found, no_watch, write};

fn watching() -> IndexerConfig {
    IndexerConfig {
        debounce: Duration::from_millis(100),
        root_check: Duration::from_millis(100),
        ..IndexerConfig::default()
    }
}

fn file_chunk_rows(env: &Env) -> i64 {
    let conn = rusqlite::Connection::open(env.db()).expect("raw open");
    conn.query_row("SELECT count(*) FROM chunks WHERE kind = 'file'", [], |r| {
        r.get(0)
    })
    .expect("count")
}

fn status(store: &Store, id: &str) -> (SourceStatus, Option<String>) {
    let s = store.get_source(id).expect("get").expect("known");
    (s.status, s.last_error)
}

/// A source over `root` with one indexed file saying `word`.
fn indexed(env: &Env, store: &Store, cfg: IndexerConfig, root: &Path, word: &str) -> (Indexer, String) {
    write(root, "first.md", format!("the {word} was here"));
    let ix = env.indexer(store, cfg);
    let (src, job) = add(&ix, root);
    completed(&ix, job);
    assert_eq!(files_found(store, word).len(), 1);
    (ix, src.id)
}

#[test]
fn a_deleted_root_is_flagged_and_hidden_then_indexed_and_watched_again() {
    let env = Env::new();
    let root = env.tree();
    let store = env.store();
    let (ix, id) = indexed(&env, &store, watching(), &root, "aardvark");
    let canon = std::fs::canonicalize(&root).expect("canon");

    std::fs::remove_dir_all(&root).expect("rm root");
    eventually("the source in error, its files hidden", || {
        let (st, err) = status(&store, &id);
        st == SourceStatus::Error
            && err.is_some_and(|e| e.starts_with(ROOT_MISSING))
            && files_found(&store, "aardvark").is_empty()
    });
    let (_, err) = status(&store, &id);
    let err = err.expect("an error");
    assert!(
        err.contains(canon.to_str().expect("utf8")) && err.contains("does not exist"),
        "{err}"
    );
    // The monitor records the error in the store, then in its own list, which
    // `/health` reads once a second: the list may trail the store by a moment.
    eventually("the indexer's problems naming the missing root", || {
        ix.problems()
            .iter()
            .any(|p| p.starts_with(&format!("source {id}: {ROOT_MISSING}")))
    });
    assert_eq!(
        store.get_source(&id).expect("get").expect("known").files_indexed,
        0
    );
    eventually("the hidden chunks deleted in the background", || {
        file_chunk_rows(&env) == 0
    });

    std::fs::create_dir(&root).expect("mkdir root");
    write(&root, "back.md", "the bison came back");
    eventually("the recreated folder indexed, the source idle", || {
        status(&store, &id) == (SourceStatus::Idle, None) && files_found(&store, "bison").len() == 1
    });
    assert!(files_found(&store, "aardvark").is_empty());
    eventually("no problem left", || ix.problems().is_empty());
    // The watcher is armed on the new folder: a later file arrives by itself.
    write(&root, "later.md", "a camel arrives");
    eventually("a later file searchable", || {
        files_found(&store, "camel").len() == 1
    });
    ix.shutdown();
    assert_eq!(store.integrity_check().expect("check"), "ok");
}

#[test]
fn a_root_replaced_by_another_directory_is_watched_on_the_new_one() {
    let env = Env::new();
    let root = env.tree();
    let store = env.store();
    let (ix, id) = indexed(&env, &store, watching(), &root, "dingo");

    let old = env.dir.path().join("tree.old");
    std::fs::rename(&root, &old).expect("move the root away");
    std::fs::create_dir(&root).expect("another folder at the path");
    write(&root, "new.md", "an emu lives here");
    eventually("the new folder's file searchable, the old one's gone", || {
        files_found(&store, "emu").len() == 1 && files_found(&store, "dingo").is_empty()
    });
    write(&root, "later.md", "a ferret follows");
    eventually("a later file in the new folder searchable", || {
        files_found(&store, "ferret").len() == 1
    });
    eventually("idle without error", || {
        status(&store, &id) == (SourceStatus::Idle, None)
    });
    assert!(ix.problems().is_empty(), "{:?}", ix.problems());
    ix.shutdown();
}

#[test]
fn a_subfolder_deleted_and_recreated_is_still_watched() {
    let env = Env::new();
    let root = env.tree();
    let store = env.store();
    write(&root, "sub/deep/a.md", "a gazelle in the deep");
    let (ix, id) = indexed(&env, &store, watching(), &root, "heron");
    assert_eq!(files_found(&store, "gazelle").len(), 1);

    std::fs::remove_dir_all(root.join("sub")).expect("rm sub");
    eventually("the subfolder's file gone", || {
        files_found(&store, "gazelle").is_empty()
    });
    write(&root, "sub/deep/b.md", "an ibis in the new deep");
    eventually("a file in the recreated subfolder", || {
        files_found(&store, "ibis").len() == 1
    });
    write(&root, "sub/deep/c.md", "a jackal later");
    eventually("a later file there", || files_found(&store, "jackal").len() == 1);
    assert_eq!(status(&store, &id), (SourceStatus::Idle, None));
    ix.shutdown();
}

/// A root missing when the service starts is flagged at once (not only when the watcher
/// sees it go), and indexed when it appears.
#[test]
fn a_root_missing_at_start_is_flagged_and_picked_up_when_it_appears() {
    let env = Env::new();
    let root = env.tree();
    let store = env.store();
    let (ix, id) = indexed(&env, &store, no_watch(), &root, "koala");
    ix.shutdown();
    std::fs::remove_dir_all(&root).expect("rm root");
    let cfg = IndexerConfig {
        root_check: Duration::from_millis(100),
        ..no_watch()
    };
    let ix = env.indexer(&store, cfg);
    eventually("flagged and hidden", || {
        status(&store, &id).1.is_some_and(|e| e.starts_with(ROOT_MISSING))
            && files_found(&store, "koala").is_empty()
    });
    // The folder appears whole (renamed into place): this indexer does not watch, so
    // a file written after the sync of a just-created empty root would never be seen.
    let staged = root.with_extension("staged");
    std::fs::create_dir(&staged).expect("mkdir");
    write(&staged, "x.md", "a lemur");
    std::fs::rename(&staged, &root).expect("rename into place");
    eventually("indexed when back", || {
        status(&store, &id) == (SourceStatus::Idle, None) && files_found(&store, "lemur").len() == 1
    });
    ix.shutdown();
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
}

/// Waits for a job on another thread, so a walk blocked on a FIFO fails the test at the
/// deadline instead of hanging it.
fn job_end(ix: &Indexer, job: i64) -> memory_store::FileJob {
    let start = Instant::now();
    let j = ix
        .wait_job(job, DEADLINE)
        .expect("the job ended (a FIFO blocked the walk?)");
    assert!(start.elapsed() < DEADLINE);
    j
}

#[test]
fn a_fifo_named_gitignore_skips_its_folder_instead_of_blocking() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "top.md", "the marmot is fine");
    write(&root, "trap/inside.md", "the narwhal is behind a fifo");
    write(&root, "trap2/inside.md", "the ocelot is behind another");
    mkfifo(&root.join("trap/.gitignore"));
    mkfifo(&root.join("trap2/.ignore"));
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (_src, job) = add(&ix, &root);
    let j = job_end(&ix, job);
    assert_eq!(j.status, FileJobState::Completed, "{j:?}");
    assert_eq!(j.skipped.unreadable, 2, "two folders skipped: {j:?}");
    assert_eq!(files_found(&store, "marmot").len(), 1);
    assert!(files_found(&store, "narwhal").is_empty());
    assert!(files_found(&store, "ocelot").is_empty());
    ix.shutdown();
}

#[test]
fn a_fifo_ignore_file_at_the_root_fails_the_job_with_its_path() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "top.md", "the panda");
    mkfifo(&root.join(".gitignore"));
    let store = env.store();
    let ix = env.indexer(&store, no_watch());
    let (src, job) = add(&ix, &root);
    let j = job_end(&ix, job);
    assert_eq!(j.status, FileJobState::Failed, "{j:?}");
    let err = j.error.expect("a reason");
    let canon = std::fs::canonicalize(&root).expect("canon");
    assert!(
        err.contains(&canon.join(".gitignore").display().to_string()) && err.contains("FIFO"),
        "{err}"
    );
    assert_eq!(status(&store, &src.id).0, SourceStatus::Error);
    ix.shutdown();
}
