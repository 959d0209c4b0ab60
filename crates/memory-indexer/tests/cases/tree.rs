//! The filetree core: node shape, sorting, depth, max_entries, confinement, binaries.

use std::path::Path;

use memory_indexer::filetree::{Node, TreeError, list_tree, read_file};

use crate::helper::{Env, write};

fn names(node: &Node) -> Vec<&str> {
    node.children
        .as_ref()
        .map(|c| c.iter().map(|n| n.name.as_str()).collect())
        .unwrap_or_default()
}

fn sample(root: &Path) {
    write(root, "b.txt", "bee");
    write(root, "A.md", "ay");
    write(root, "c/inner.txt", "inner");
    write(root, "B-dir/x.txt", "x");
    write(root, ".hidden", "h");
    write(root, ".DS_Store", "junk");
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
}

#[test]
fn sorting_depth_and_shape() {
    let env = Env::new();
    let root = env.tree();
    sample(&root);
    let tree = list_tree(&root, "", 2, 500).expect("list");
    assert_eq!(tree.path, "");
    assert_eq!(tree.name, "tree");
    assert!(tree.is_dir && tree.size_bytes.is_none());
    assert_eq!(names(&tree), ["B-dir", "c", "empty", ".hidden", "A.md", "b.txt"]);
    let kids = tree.children.as_ref().expect("children");
    let c = &kids[1];
    assert_eq!((c.path.as_str(), c.is_dir), ("c", true));
    assert_eq!(names(c), ["inner.txt"]);
    assert_eq!(c.children.as_ref().expect("c kids")[0].path, "c/inner.txt");
    assert_eq!(kids[2].children, None, "empty dir has no children");
    let file = &kids[5];
    assert_eq!((file.size_bytes, file.children.as_ref()), (Some(3), None));
    assert_eq!(file.modified_at.as_ref().map(String::len), Some(26));

    let shallow = list_tree(&root, "", 1, 500).expect("list");
    let c = &shallow.children.as_ref().expect("kids")[1];
    assert_eq!(c.children, None, "at the depth limit");
    assert_eq!(list_tree(&root, "", 0, 500).expect("list").children, None);
    let sub = list_tree(&root, "/c", 3, 500).expect("leading slash stripped");
    assert_eq!((sub.name.as_str(), sub.path.as_str()), ("c", "c"));
    assert_eq!(names(&sub), ["inner.txt"]);
}

#[test]
fn max_entries_counts_the_root() {
    let env = Env::new();
    let root = env.tree();
    sample(&root);
    let count = |n: &Node| -> usize {
        fn go(n: &Node) -> usize {
            1 + n.children.as_ref().map_or(0, |c| c.iter().map(go).sum())
        }
        go(n)
    };
    assert_eq!(count(&list_tree(&root, "", 5, 1).expect("list")), 1);
    assert_eq!(count(&list_tree(&root, "", 5, 3).expect("list")), 3);
    assert_eq!(count(&list_tree(&root, "", 5, 1000).expect("list")), 9);
}

#[test]
fn escapes_are_refused() {
    let env = Env::new();
    let root = env.tree();
    sample(&root);
    let outside = env.dir.path().join("outside");
    write(&outside, "secret.txt", "top secret");
    for bad in ["..", "../outside", "c/../../outside", "c/../b.txt"] {
        assert!(
            matches!(list_tree(&root, bad, 1, 10), Err(TreeError::Escape(_))),
            "{bad}"
        );
        assert!(
            matches!(read_file(&root, bad, 100), Err(TreeError::Escape(_))),
            "{bad}"
        );
    }
    let abs = outside.join("secret.txt");
    let err = read_file(&root, abs.to_str().expect("utf8"), 100).expect_err("absolute");
    assert!(matches!(err, TreeError::Escape(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!("Path escapes source root: {}", abs.display())
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, root.join("out-link")).expect("symlink");
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("out-file")).expect("symlink");
        std::os::unix::fs::symlink(root.join("c/inner.txt"), root.join("in-link")).expect("symlink");
        assert!(matches!(
            read_file(&root, "out-link/secret.txt", 100),
            Err(TreeError::Escape(_))
        ));
        assert!(matches!(
            read_file(&root, "out-file", 100),
            Err(TreeError::Escape(_))
        ));
        assert!(matches!(
            list_tree(&root, "out-link", 1, 10),
            Err(TreeError::Escape(_))
        ));
        let inside = read_file(&root, "in-link", 100).expect("symlink inside is allowed");
        assert_eq!(inside.content.as_deref(), Some("inner"));
        let tree = list_tree(&root, "", 1, 100).expect("list");
        let listed = names(&tree);
        assert!(listed.contains(&"in-link"), "{listed:?}");
        assert!(
            !listed.contains(&"out-link") && !listed.contains(&"out-file"),
            "{listed:?}"
        );
    }
}

#[test]
fn errors_name_the_path() {
    let env = Env::new();
    let root = env.tree();
    sample(&root);
    let e = read_file(&root, "nope.txt", 10).expect_err("missing");
    assert_eq!(e.to_string(), "File does not exist: nope.txt");
    let e = read_file(&root, "c", 10).expect_err("dir");
    assert_eq!(e.to_string(), "Path is a directory, not a file: c");
    let e = list_tree(&root, "nope", 1, 10).expect_err("missing");
    assert_eq!(e.to_string(), "Path does not exist: nope");
    let gone = env.dir.path().join("gone");
    assert!(matches!(
        list_tree(&gone, "", 1, 10),
        Err(TreeError::RootMissing(_))
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = root.join("locked.txt");
        std::fs::set_permissions(locked_file(&locked), std::fs::Permissions::from_mode(0o000))
            .expect("chmod");
        // Root ignores permissions; only check when the OS actually refuses.
        if std::fs::read(&locked).is_err() {
            assert!(matches!(
                read_file(&root, "locked.txt", 10),
                Err(TreeError::PermissionDenied(_))
            ));
        }
    }
}

fn locked_file(p: &Path) -> std::path::PathBuf {
    std::fs::write(p, "locked").expect("write");
    p.to_path_buf()
}

#[test]
fn binary_detection_and_truncation() {
    let env = Env::new();
    let root = env.tree();
    write(&root, "text.txt", "hello world");
    write(&root, "nul.bin", b"ab\0cd");
    write(&root, "ctl.txt", [1u8, 2, 3, 4, 5, 6, 7, 8].repeat(10)); // control bytes only
    write(&root, "euro.txt", "€".repeat(20));
    let f = read_file(&root, "text.txt", 5).expect("read");
    assert_eq!(
        (f.content.as_deref(), f.truncated, f.size_bytes),
        (Some("hello"), true, 11)
    );
    assert_eq!((f.encoding, f.is_binary), ("utf-8", false));
    let f = read_file(&root, "text.txt", 100).expect("read");
    assert!(!f.truncated);
    let f = read_file(&root, "nul.bin", 100).expect("read");
    assert_eq!((f.is_binary, f.encoding, f.content), (true, "binary", None));
    assert!(read_file(&root, "ctl.txt", 100).expect("read").is_binary);
    // A cut inside a character (the read stops there) shows as U+FFFD and is still text.
    let f = read_file(&root, "euro.txt", 58).expect("read");
    assert_eq!(f.content, Some(format!("{}\u{FFFD}", "€".repeat(19))));
    assert!(!f.is_binary);
    let f = read_file(&root, "euro.txt", 4).expect("read");
    assert_eq!(f.content.as_deref(), Some("€\u{FFFD}"), "{f:?}");
    assert_eq!(f.detected_encoding, Some("UTF-8"));
}

/// Issue 13, F2: a folder inside the root swapped again and again for a symlink to a
/// folder outside (absolute and relative) while it is read and listed. Nothing outside
/// the root may ever be read or listed. Bounded: 3 s of swapping.
#[cfg(unix)]
#[test]
fn a_directory_symlink_swap_race_never_leaks_outside() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let env = Env::new();
    let root = env.tree();
    let outside = env.dir.path().join("outside");
    write(&outside, "passwd", "OUTSIDE-SECRET");
    write(&outside, "only-outside.txt", "x");
    write(&root, "rd/passwd", "inside");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, outside, stop) = (root.clone(), outside.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (rd, real) = (root.join("rd"), root.join("rd.real"));
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&rd, &real).expect("rd away");
                let target = if swaps.is_multiple_of(2) {
                    outside.clone()
                } else {
                    Path::new("../outside").to_path_buf()
                };
                std::os::unix::fs::symlink(&target, &rd).expect("link in");
                std::fs::remove_file(&rd).expect("link away");
                std::fs::rename(&real, &rd).expect("rd back");
                swaps += 1;
            }
            swaps
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut reads, mut lists) = (0u64, 0u64);
    while Instant::now() < deadline {
        if let Ok(f) = read_file(&root, "rd/passwd", 100) {
            assert_eq!(f.content.as_deref(), Some("inside"), "read outside the root");
            reads += 1;
        }
        for path in ["rd", ""] {
            if let Ok(tree) = list_tree(&root, path, 2, 100) {
                let text = format!("{tree:?}");
                assert!(!text.contains("only-outside"), "listed outside the root: {text}");
                lists += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 0, "the swap never ran");
    assert!(
        reads + lists > 0,
        "nothing was ever read: the race proves nothing"
    );
}
