//! Damaged or full storage (issue 13 item 7), on real files: a real small
//! file system that fills up (a tmpfs mounted in a private mount namespace
//! with `unshare`, so no root-wide mount is left behind), and a database file
//! with a page overwritten while the service was stopped.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memory_api::ErrorBody;
use memory_api::chat::{IndexChatMessage, Queued};
use memory_api::health::State;
use memory_api::search::{SearchRequest, SearchResults};
use nix::sys::signal::Signal;

use crate::helper::*;

fn message(i: usize, text: &str) -> IndexChatMessage {
    IndexChatMessage {
        project_id: "p".into(),
        chat_id: "c".into(),
        message_id: format!("m{i}"),
        role: "user".into(),
        content: text.into(),
        timestamp: "2025-12-27T21:10:29+01:00".into(),
        message_index: i as i64,
        message_uuid: None,
    }
}

/// POSTs a message: the HTTP status and the body, as the ack or the error body.
fn send(port: u16, m: &IndexChatMessage) -> (u16, Result<Queued, ErrorBody>) {
    let body = serde_json::to_value(m).expect("a request serialises");
    let (status, v) = try_post(port, "/index-chat-message", &body).expect("an answer");
    let body = if status == 200 {
        Ok(serde_json::from_value(v).expect("an ack"))
    } else {
        Err(serde_json::from_value(v).expect("an error body"))
    };
    (status, body)
}

fn search(port: u16, query: &str) -> SearchResults {
    let request = SearchRequest {
        project_id: "p".into(),
        query: query.into(),
        limit: 10,
        source_ids: None,
        chat_id: None,
        exclude_chat_ids: None,
    };
    post_as(port, "/search", &request)
}

/// `/health` is `state` with a reason containing `needle`.
fn health_says(port: u16, state: State, needle: &str) -> bool {
    health(port).is_some_and(|h| h.state == state && h.reasons.iter().any(|r| r.contains(needle)))
}

/// Writes zeros to `path` until the file system says it is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "only ENOSPC ends the filler: {e}");
                break;
            }
        }
    }
    written
}

#[test]
fn a_full_disk_answers_507_and_degraded_then_recovers_without_a_restart() {
    let sb = Sandbox::new(bin());
    std::fs::create_dir_all(&sb.home).unwrap();
    let home = sb.home.display().to_string();
    let port_s = "0".to_string();
    // An 8 MiB tmpfs over the home, visible only to the service's process.
    let script =
        r#"mount -t tmpfs -o size=8m,mode=0700 tmpfs "$1" && exec "$2" --home "$1" --port "$3" serve"#;
    let mut p = sb.spawn_program(
        "unshare",
        &[
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
            &home,
            bin(),
            &port_s,
        ],
        &[],
    );
    // The lock file (and its holder record) is on the tmpfs too.
    let port = p.wait_port(Path::new(&format!("/proc/{}/root{home}", p.pid())));
    p.wait_ready(port);
    // The service's view of its home, through its mount namespace.
    let inside = PathBuf::from(format!("/proc/{}/root{home}", p.pid()));
    assert!(
        inside.join("memory.sqlite").is_file(),
        "the database is on the tmpfs at {}",
        inside.display()
    );
    assert_eq!(send(port, &message(0, "before the disk filled: heron")).0, 200);

    let filler = inside.join("filler");
    let filled = fill(&filler);
    assert!(
        filled > 1024 * 1024,
        "the filler took the free space ({filled} bytes)"
    );
    let big = "kingfisher ".repeat(2_000);
    let mut acked = Vec::new();
    let (status, body) = (1..200)
        .find_map(|i| match send(port, &message(i, &big)) {
            (200, _) => {
                acked.push(i);
                None
            }
            failed => Some(failed),
        })
        .expect("a write must fail on a full disk");
    assert_eq!(status, 507, "{body:?}");
    let detail = body.expect_err("an error body").detail;
    assert!(detail.starts_with("disk full: "), "{detail}");
    // The watcher looks once a second.
    poll("/health to say the disk is full", DEADLINE, || {
        health_says(port, State::Degraded, "disk full").then_some(())
    });

    std::fs::remove_file(&filler).unwrap();
    poll("/health to be ready again once space is back", DEADLINE, || {
        health(port)
            .is_some_and(|h| h.state == State::Ready)
            .then_some(())
    });
    let (s, body) = send(port, &message(500, "room again: egret"));
    assert_eq!(s, 200, "{body:?}");
    for (word, expected) in [("egret", 1), ("heron", 1), ("kingfisher", acked.len().min(10))] {
        poll(&format!("{word} to be searchable"), DEADLINE, || {
            (search(port, word).results.len() == expected).then_some(())
        });
    }
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait_code(), 0, "{}", p.stderr_text());
}

/// Overwrites one leaf page of `table` in the (checkpointed, closed) database.
fn smash_a_leaf_of(db: &Path, table: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let pages: Vec<i64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY pageno")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(conn);
    assert!(pages.len() > 2, "{table} spans {} leaves", pages.len());
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let page = pages[pages.len() / 2];
    f.seek(SeekFrom::Start(u64::try_from((page - 1) * size).unwrap()))
        .unwrap();
    f.write_all(&vec![0x5A; usize::try_from(size).unwrap()]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn damage_found_at_start_is_reported_and_doctor_rebuilds_it() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    for i in 0..200 {
        let text = format!("petrel number{i} {}", "shearwater ".repeat(40));
        let (s, body) = send(port, &message(i, &text));
        assert_eq!(s, 200, "{body:?}");
    }
    poll("every message to be indexed", DEADLINE, || {
        (!search(port, "number199").results.is_empty()).then_some(())
    });
    assert_eq!(p.stop(), 0);
    let db = sb.home.join("memory.sqlite");
    smash_a_leaf_of(&db, "chunks");

    let mut p = sb.serve(0);
    let port = p.wait_port(&sb.home);
    poll("/health to report the damage", DEADLINE, || {
        if let Some(st) = p.try_status() {
            panic!("serve exited ({st:?}): {}", p.stderr_text());
        }
        health_says(port, State::Degraded, "damaged").then_some(())
    });
    let (code, out, _) = sb.cli(port, &["status"]);
    assert_eq!(code, 0, "status still finds the instance running: {out}");
    assert!(
        out.contains("degraded") && out.contains("memory-service doctor"),
        "{out}"
    );
    let (code, _, err) = sb.cli(port, &["doctor"]);
    assert_eq!(code, 10, "doctor refuses while the service runs: {err}");
    assert!(err.contains("memory-service stop"), "{err}");
    assert_eq!(p.stop(), 0);

    let (code, out, err) = sb.cli(port, &["doctor", "--check-only"]);
    assert_eq!(code, 21, "{out}{err}");
    assert!(out.contains("damage found"), "{out}");
    let (code, out, err) = sb.cli(port, &["doctor"]);
    assert_eq!(code, 0, "only derived data was damaged: {out}{err}");
    assert!(out.contains("chat_messages: 200 rows kept"), "{out}");
    assert!(out.contains("nothing stored was lost"), "{out}");
    let (code, out, _) = sb.cli(port, &["doctor"]);
    assert_eq!(code, 0);
    assert!(out.contains("no damage found"), "{out}");

    let (mut p, port) = sb.start();
    poll("messages to be searchable again", DEADLINE, || {
        (search(port, "number123").results.len() == 1).then_some(())
    });
    let h = health(port).expect("/health answers");
    assert_eq!(h.state, State::Ready, "{h:?}");
    assert_eq!(p.stop(), 0);
}
