//! `serve` and the single-instance guard, end to end.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Barrier};

use nix::sys::signal::Signal;

use crate::helper::*;

const ALREADY_RUNNING: i32 = 10;
const STARTING: i32 = 11;
const UNRESPONSIVE: i32 = 12;
const PORT_IN_USE: i32 = 13;
const PORT_OTHER_INSTANCE: i32 = 14;
const HOME_UNUSABLE: i32 = 15;

fn read_pid_file(sb: &Sandbox) -> Option<u32> {
    std::fs::read_to_string(sb.pid_file()).ok()?.trim().parse().ok()
}

/// Stops `p` with `sig` and checks a clean exit with both files gone.
fn stop_clean(sb: &Sandbox, p: &mut Proc, sig: Signal) {
    p.signal(sig);
    assert_eq!(p.wait_code(), 0, "exit code after {sig:?}\n{}", p.stderr_text());
    assert!(!sb.pid_file().exists(), "PID file left after {sig:?}");
    assert!(!sb.lock_file().exists(), "lock file left after {sig:?}");
}

/// Starts `n` `serve` processes as close to the same instant as threads allow.
fn start_many(sb: &Sandbox, ports: &[u16]) -> Vec<Proc> {
    let sb_ref = sb;
    let barrier = Arc::new(Barrier::new(ports.len()));
    std::thread::scope(|s| {
        let handles: Vec<_> = ports
            .iter()
            .map(|&port| {
                let b = barrier.clone();
                s.spawn(move || {
                    b.wait();
                    sb_ref.serve(port)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Waits until all but one of `procs` exited; returns the survivor's index.
fn sole_survivor(procs: &mut [Proc]) -> usize {
    poll("all but one starter to exit", DEADLINE, || {
        let running: Vec<usize> = (0..procs.len())
            .filter(|&i| procs[i].try_status().is_none())
            .collect();
        match running.as_slice() {
            [one] => Some(*one),
            [] => panic!("every starter exited; none serves"),
            _ => None,
        }
    })
}

/// The one port all starters of a same-port round are given. It must be
/// known before any of them runs (which is the point of that race: the lock,
/// not the bind, decides), so it is picked by binding port 0 and dropping the
/// listener; another program could take it first, which fails that round
/// loudly rather than passing it wrongly. Every other instance starts on
/// `--port 0` and is found through its holder record.
fn shared_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn race(rounds: usize, starters: usize, same_port: bool) {
    let sb = Sandbox::new(bin());
    for round in 0..rounds {
        // One port all must share is known before the spawn; different
        // ports are each starter's own `--port 0`.
        let ports: Vec<u16> = vec![if same_port { shared_port() } else { 0 }; starters];
        let mut procs = start_many(&sb, &ports);
        let winner = sole_survivor(&mut procs);
        let port = procs[winner].wait_port(&sb.home);
        let wpid = procs[winner].pid();
        procs[winner].wait_ready(port);
        assert_eq!(
            read_pid_file(&sb),
            Some(wpid),
            "round {round}: PID file names the winner"
        );
        for (i, p) in procs.iter_mut().enumerate() {
            if i == winner {
                continue;
            }
            let code = p.wait_code();
            let err = p.stderr_text();
            assert!(
                code == ALREADY_RUNNING || code == STARTING,
                "round {round}: loser exit code {code}\n{err}"
            );
            assert!(
                err.contains(&format!("PID {wpid}")),
                "round {round}: loser must name PID {wpid}:\n{err}"
            );
            assert!(
                err.contains("[STARTUP] Exiting to prevent duplicate instance"),
                "{err}"
            );
        }
        // Every loser has exited (above), so none serves on any port; the
        // winner answers on the port it was given.
        if same_port {
            assert_eq!(
                port, ports[0],
                "round {round}: the winner serves on the shared port"
            );
        }
        stop_clean(&sb, &mut procs[winner], Signal::SIGTERM);
    }
}

#[test]
fn many_starters_same_home_same_port_exactly_one_serves() {
    let rounds = std::env::var("RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    race(rounds, 8, true);
}

#[test]
fn many_starters_same_home_different_ports_exactly_one_serves() {
    race(3, 8, false);
}

#[test]
fn different_homes_both_serve() {
    let (a, b) = (Sandbox::new(bin()), Sandbox::new(bin()));
    let (mut x, pa) = a.start();
    let (mut y, pb) = b.start();
    assert_ne!(pa, pb);
    stop_clean(&a, &mut x, Signal::SIGTERM);
    stop_clean(&b, &mut y, Signal::SIGINT);
}

#[test]
fn duplicate_prints_the_seed_lines_and_exits_already_running() {
    let sb = Sandbox::new(bin());
    let (mut first, port) = sb.start();
    let mut second = sb.serve(port);
    assert_eq!(second.wait_code(), ALREADY_RUNNING);
    let err = second.stderr_text();
    for line in [
        format!("[STARTUP] Memory Service is already running on 127.0.0.1:{port}"),
        "[STARTUP] Exiting to prevent duplicate instance".to_string(),
        format!("Cannot start: Memory Service is already running on 127.0.0.1:{port}"),
        format!("holder: PID {}, home {}", first.pid(), sb.home.display()),
    ] {
        assert!(err.contains(&line), "missing {line:?} in:\n{err}");
    }
    assert_eq!(
        health_pid(port),
        Some(first.pid()),
        "the first instance is untouched"
    );
    stop_clean(&sb, &mut first, Signal::SIGTERM);
}

#[test]
fn kill_9_then_start_again_at_once_without_cleanup() {
    let sb = Sandbox::new(bin());
    for _ in 0..5 {
        let (mut p, _) = sb.start();
        p.signal(Signal::SIGKILL);
        p.wait_code_or_signal();
        assert!(
            sb.lock_file().exists() && sb.pid_file().exists(),
            "kill -9 leaves both files behind"
        );
    }
    let (mut p, _) = sb.start();
    assert!(
        p.stderr_text().contains("replaced a stale PID file"),
        "{}",
        p.stderr_text()
    );
    stop_clean(&sb, &mut p, Signal::SIGTERM);
}

#[test]
fn garbage_or_empty_lock_and_pid_files_do_not_block() {
    for content in ["", "garbage\n\u{0}\u{1}", "123", "4242\n17\n"] {
        let sb = Sandbox::new(bin());
        std::fs::create_dir_all(&sb.home).unwrap();
        std::fs::write(sb.lock_file(), content).unwrap();
        std::fs::write(sb.pid_file(), content).unwrap();
        let (mut p, _) = sb.start();
        assert_eq!(read_pid_file(&sb), Some(p.pid()), "content {content:?}");
        stop_clean(&sb, &mut p, Signal::SIGTERM);
    }
}

#[test]
fn files_naming_an_unrelated_live_process_are_stale_and_it_is_untouched() {
    let sb = Sandbox::new(bin());
    let mut bystander = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    let bpid = bystander.id();
    std::fs::create_dir_all(&sb.home).unwrap();
    std::fs::write(sb.pid_file(), format!("{bpid}\n")).unwrap();
    std::fs::write(
        sb.lock_file(),
        format!(
            "{bpid}\n1\nfeedface\n127.0.0.1\n1\n{}\n0.0.1\n",
            sb.home.display()
        ),
    )
    .unwrap();
    let (mut p, _) = sb.start();
    assert_eq!(read_pid_file(&sb), Some(p.pid()));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander must be untouched"
    );
    stop_clean(&sb, &mut p, Signal::SIGTERM);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander must be untouched"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// A foreign HTTP server on a port: answers every request with 200 {"status":"ok"}.
fn foreign_server() -> (
    u16,
    std::thread::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let h = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf);
                    let body = r#"{"status":"ok"}"#;
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    });
    (port, h, stop)
}

#[test]
fn a_foreign_server_answering_200_is_not_ours() {
    let sb = Sandbox::new(bin());
    let (port, handle, stop) = foreign_server();
    let mut p = sb.serve(port);
    assert_eq!(p.wait_code(), PORT_IN_USE);
    let err = p.stderr_text();
    assert!(
        err.contains(&format!(
            "port {port} is in use by another program (not Memory Service)"
        )),
        "{err}"
    );
    if cfg!(target_os = "linux") {
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "names the owner:\n{err}"
        );
    }
    // The foreign server still answers, and the lock is free again.
    assert_eq!(get(port, "/health").map(|(s, _)| s), Some(200));
    assert!(
        !sb.lock_file().exists() && !sb.pid_file().exists(),
        "lock and PID file released"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
}

#[test]
fn a_port_held_by_our_instance_for_another_home_is_named() {
    let (a, b) = (Sandbox::new(bin()), Sandbox::new(bin()));
    let (mut first, port) = a.start();
    let mut second = b.serve(port);
    assert_eq!(second.wait_code(), PORT_OTHER_INSTANCE);
    let err = second.stderr_text();
    assert!(
        err.contains(&a.home.display().to_string()) && err.contains(&format!("PID {}", first.pid())),
        "{err}"
    );
    stop_clean(&a, &mut first, Signal::SIGTERM);
}

#[test]
fn a_frozen_holder_is_unresponsive_not_healthy() {
    let sb = Sandbox::new(bin());
    let (mut holder, _) = sb.start();
    freeze(holder.pid());
    let mut second = sb.serve(0);
    assert_eq!(second.wait_code(), UNRESPONSIVE, "{}", second.stderr_text());
    let err = second.stderr_text();
    assert!(
        err.contains("unresponsive") && err.contains(&format!("PID {}", holder.pid())),
        "{err}"
    );
    holder.signal(Signal::SIGCONT);
    stop_clean(&sb, &mut holder, Signal::SIGTERM);
}

#[test]
fn a_deleted_lock_file_never_lets_a_second_instance_in_and_comes_back() {
    let sb = Sandbox::new(bin());
    // A long re-check period: the second start below happens while the lock
    // file is still missing, the window the home directory's lock closes.
    let (mut holder, port) = sb.start_with(&[("MEMORY_SERVICE_LOCK_CHECK_MS", "1500")]);
    let pid = holder.pid();
    std::fs::remove_file(sb.lock_file()).unwrap();
    let mut early = sb.serve(0);
    let code = early.wait_code();
    let err = early.stderr_text();
    assert!(code == ALREADY_RUNNING || code == STARTING, "exit {code}:\n{err}");
    assert!(err.contains(&format!("PID {pid}")), "names the holder:\n{err}");
    // The whole record, not only its first line: a starter that read a
    // half-written record would (rightly) call the holder starting.
    poll("the lock file to be recreated", DEADLINE, || {
        (bound_port(&sb.home, pid) == Some(port)).then_some(())
    });
    let mut second = sb.serve(0);
    assert_eq!(second.wait_code(), ALREADY_RUNNING, "{}", second.stderr_text());
    assert!(holder.stderr_text().contains("recreated and relocked"));
    assert_eq!(health_pid(port), Some(pid));
    stop_clean(&sb, &mut holder, Signal::SIGTERM);
}

#[test]
fn sigterm_and_sigint_exit_zero_and_remove_files() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let sb = Sandbox::new(bin());
        let (mut p, port) = sb.start();
        assert!(sb.lock_file().exists() && sb.pid_file().exists());
        stop_clean(&sb, &mut p, sig);
        assert_eq!(health_pid(port), None, "nothing serves after {sig:?}");
    }
}

#[test]
fn an_unusable_home_is_a_clear_error_with_its_own_code() {
    let sb = Sandbox::new(bin());
    std::fs::write(&sb.home, "I am a file").unwrap();
    let mut p = sb.serve(0);
    assert_eq!(p.wait_code(), HOME_UNUSABLE);
    let err = p.stderr_text();
    assert!(
        err.contains(&sb.home.display().to_string()) && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn health_reports_identity_matching_the_lock_record() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    let body: memory_api::HealthReport = get_as(port, "/health");
    let record = std::fs::read_to_string(sb.lock_file()).unwrap();
    let lines: Vec<&str> = record.lines().collect();
    assert_eq!(body.status, "ok");
    assert_eq!(body.service, "memory-service");
    assert_eq!(body.pid, p.pid());
    assert_eq!(lines[0], p.pid().to_string());
    assert_eq!(body.instance_id, lines[2]);
    assert_eq!(body.port, port);
    assert_eq!(body.home, sb.home);
    assert_eq!(body.state, memory_api::health::State::Ready);
    stop_clean(&sb, &mut p, Signal::SIGTERM);
}

/// Asserts that an error line printed by the binary names no `": "`-separated
/// segment twice (each cause printed once).
fn assert_each_cause_once(line: &str) {
    let mut seen = std::collections::HashSet::new();
    for segment in line.split(": ") {
        assert!(seen.insert(segment), "{segment:?} repeats in {line:?}");
    }
}

#[test]
fn an_unopenable_database_is_reported_once_per_cause() {
    type Make = fn(&std::path::Path);
    let cases: [(Make, &str); 3] = [
        (
            |p| std::fs::create_dir(p).unwrap(),
            "is a directory, not a regular file",
        ),
        (
            |p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap(),
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            |p| std::fs::write(p, vec![7u8; 8192]).unwrap(),
            "file is not a database",
        ),
    ];
    for (make, says) in cases {
        let sb = Sandbox::new(bin());
        std::fs::create_dir_all(&sb.home).unwrap();
        make(&sb.home.join("memory.sqlite"));
        let mut p = sb.serve(0);
        assert_eq!(p.wait_code(), 1, "{}", p.stderr_text());
        let err = p.stderr_text();
        let line = err
            .lines()
            .find(|l| l.contains("cannot open the data"))
            .unwrap_or_else(|| panic!("no error line:\n{err}"));
        let cause = line.split("error=").nth(1).unwrap_or_else(|| panic!("{line}"));
        assert!(cause.contains(says), "{line}");
        assert_each_cause_once(cause);
    }
}

#[test]
fn a_directory_at_the_lock_path_is_reported_once_with_its_own_code() {
    let sb = Sandbox::new(bin());
    std::fs::create_dir_all(sb.lock_file()).unwrap();
    let mut p = sb.serve(0);
    assert_eq!(p.wait_code(), HOME_UNUSABLE, "{}", p.stderr_text());
    let err = p.stderr_text();
    let line = err
        .lines()
        .find(|l| l.starts_with("memory-service:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("is a directory, not a regular file"), "{line}");
    assert_each_cause_once(line);
}
