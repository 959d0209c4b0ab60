//! `start`, `stop`, `status`, `restart`, `install-service`, the notify
//! protocol and `/metrics`, with real processes and signals.

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use nix::sys::signal::Signal;

use memory_service::lifecycle::status::StatusReport;

use crate::helper::*;

#[test]
fn start_start_status_stop_status_round_trip() {
    let sb = Sandbox::new(bin());
    let (code, out, _) = sb.cli(0, &["status"]);
    assert_eq!(code, 3, "not running: LSB 3\n{out}");
    assert!(out.contains("stopped"));

    // `--port 0`: `start` waits on, and prints, the port its child bound.
    let (code, out, err) = sb.cli(0, &["start"]);
    assert_eq!(code, 0, "{out}{err}");
    let pid = printed_pid(&out).expect("start prints the PID");
    let port = sb.port_of(pid);
    assert!(
        out.contains(&format!("Memory Service started on port {port}"))
            && out.contains(&format!("URL:  http://127.0.0.1:{port}")),
        "{out}"
    );
    assert_eq!(
        health_pid(port),
        Some(pid),
        "/health answers with the started PID"
    );
    assert_eq!(sb.pid_from_file(), Some(pid));

    let (code, out, _) = sb.cli(port, &["start"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("✅ Memory Service is already running on port {port}")),
        "{out}"
    );
    assert_eq!(printed_pid(&out), Some(pid), "the same instance, untouched");

    let (code, out, _) = sb.cli(port, &["status"]);
    assert_eq!(code, 0, "{out}");
    for label in [
        "State:   running",
        &format!("PID:     {pid}"),
        "URL:",
        "Home:",
        "Version:",
        "Uptime:",
        "Log:",
    ] {
        assert!(out.contains(label), "missing {label:?} in\n{out}");
    }
    let (code, out, _) = sb.cli(port, &["status", "--json"]);
    assert_eq!(code, 0);
    let v: StatusReport = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((v.state.as_str(), v.pid), ("running", Some(Some(pid))));

    let (code, out, _) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Stopped Memory Service (PID {pid}")),
        "{out}"
    );
    assert!(!sb.lock_held() && !sb.pid_file().exists() && !sb.lock_file().exists());
    let (code, _, _) = sb.cli(port, &["status"]);
    assert_eq!(code, 3);
    let (code, out, _) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0);
    assert!(out.contains("not running"));

    // A given port (as 5858 is): `start` waits on and prints that one. It is
    // the port our instance just released, not one picked and dropped; were
    // another program to take it meanwhile, `start` would fail loudly.
    let (code, out, err) = sb.cli(port, &["start"]);
    assert_eq!(code, 0, "{out}{err}");
    let pid = printed_pid(&out).expect("start prints the PID");
    assert!(
        out.contains(&format!("Memory Service started on port {port}")),
        "{out}"
    );
    assert_eq!(health_pid(port), Some(pid));
    let (code, out, _) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_frozen_instance_is_replaced_by_start_and_gone_afterwards() {
    let sb = Sandbox::new(bin());
    let (code, out, err) = sb.cli(0, &["start"]);
    assert_eq!(code, 0, "{out}{err}");
    let old = printed_pid(&out).unwrap();
    let port = sb.port_of(old);
    freeze(old);
    let (code, _, _) = sb.cli(port, &["status"]);
    assert_eq!(code, 150, "a stopped holder is unresponsive");

    let (code, out, err) = sb.cli(0, &["start", "--kill-timeout", "3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("unresponsive") && out.contains("stopping it"),
        "{out}"
    );
    let new = printed_pid(&out).unwrap();
    assert_ne!(new, old);
    assert_eq!(health_pid(sb.port_of(new)), Some(new));
    let gone = single_instance::process::process_facts(old)
        .is_none_or(|p| p.run_state == single_instance::process::RunState::Zombie);
    assert!(gone, "the frozen instance must be gone");
}

#[test]
fn force_replaces_a_healthy_instance() {
    let sb = Sandbox::new(bin());
    let (_, out, _) = sb.cli(0, &["start"]);
    let old = printed_pid(&out).unwrap();
    let (code, out, err) = sb.cli(0, &["start", "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    let new = printed_pid(&out).unwrap();
    assert_ne!(old, new);
    assert_eq!(health_pid(sb.port_of(new)), Some(new));
}

#[test]
fn concurrent_starts_converge_on_one_instance() {
    // Each starter's child may bind any port (`--port 0`): the lock, claimed
    // before the bind, decides the winner, and every starter reports it.
    let sb = Sandbox::new(bin());
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let results: Vec<(i32, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let b = barrier.clone();
                let sb = &sb;
                s.spawn(move || {
                    b.wait();
                    sb.cli(0, &["start"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pids: Vec<Option<u32>> = results.iter().map(|(_, out, _)| printed_pid(out)).collect();
    for (code, out, err) in &results {
        assert_eq!(*code, 0, "every starter exits 0:\n{out}{err}");
    }
    assert!(
        pids.iter().all(|p| p.is_some() && *p == pids[0]),
        "same PID everywhere: {pids:?}"
    );
    let port = sb.port_of(pids[0].unwrap());
    for (_, out, _) in &results {
        assert!(out.contains(&format!("on port {port}")), "{out}");
    }
    assert_eq!(health_pid(port), pids[0]);
    assert_eq!(sb.pid_from_file(), pids[0]);
}

#[test]
fn stop_never_signals_a_process_named_by_a_stale_pid_file() {
    let sb = Sandbox::new(bin());
    let port = 0;
    let mut bystander = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::create_dir_all(&sb.home).unwrap();
    std::fs::write(sb.pid_file(), format!("{}\n", bystander.id())).unwrap();
    let (code, out, _) = sb.cli(port, &["stop", "--force"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not running") && out.contains("stale PID file"),
        "{out}"
    );
    assert!(bystander.try_wait().unwrap().is_none(), "the bystander is alive");

    // And with an instance running but its PID file overwritten: stop targets
    // the lock holder, never the PID file's process.
    let (_, out, _) = sb.cli(port, &["start"]);
    let pid = printed_pid(&out).unwrap();
    std::fs::write(sb.pid_file(), format!("{}\n", bystander.id())).unwrap();
    let (code, out, _) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("PID {pid}")), "{out}");
    assert!(bystander.try_wait().unwrap().is_none(), "the bystander is alive");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn start_against_a_foreign_server_fails_clearly_and_leaves_nothing() {
    let sb = Sandbox::new(bin());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (code, out, err) = sb.cli(port, &["start"]);
    assert_eq!(code, 13, "{out}{err}");
    assert!(
        err.contains("failed to start") && err.contains("not Memory Service"),
        "{err}"
    );
    assert!(err.contains("Last 20 lines of"), "{err}");
    assert!(!sb.lock_held(), "nothing left running");
    assert!(l.local_addr().is_ok(), "the foreign listener is untouched");
}

#[test]
fn restart_replaces_the_instance() {
    let sb = Sandbox::new(bin());
    let (_, out, _) = sb.cli(0, &["start"]);
    let old = printed_pid(&out).unwrap();
    let (code, out, err) = sb.cli(0, &["restart"]);
    assert_eq!(code, 0, "{out}{err}");
    let new = printed_pid(&out).unwrap();
    assert_ne!(old, new);
    let port = sb.port_of(new);
    assert_eq!(health_pid(port), Some(new));
    let (code, out, _) = sb.cli(port, &["logs", "-n", "5"]);
    assert_eq!(code, 0);
    assert!(out.contains("Memory Service is serving"), "{out}");
}

#[test]
fn status_says_dead_after_kill_9() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    p.signal(Signal::SIGKILL);
    p.wait_code_or_signal();
    let (code, out, _) = sb.cli(port, &["status"]);
    assert_eq!(code, 1, "dead with a PID file: LSB 1\n{out}");
}

#[test]
fn the_notify_protocol_on_a_fake_socket() {
    let sb = Sandbox::new(bin());
    let sock_path = sb.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let sock_env = sock_path.display().to_string();
    let mut p = sb.serve_with(0, &[("NOTIFY_SOCKET", &sock_env), ("WATCHDOG_USEC", "200000")]);
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock
            .recv(&mut buf)
            .expect("a notify datagram before the deadline");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv().trim(), "READY=1");
    let port = bound_port(&sb.home, p.pid()).expect("the record names the bound port before READY");
    assert_eq!(health_pid(port), Some(p.pid()), "READY comes once we serve");
    assert_eq!(recv().trim(), "WATCHDOG=1");
    p.signal(Signal::SIGTERM);
    loop {
        let msg = recv();
        if msg.trim() == "STOPPING=1" {
            break;
        }
        assert_eq!(msg.trim(), "WATCHDOG=1", "unexpected datagram");
    }
    assert_eq!(p.wait_code(), 0);
}

#[test]
fn no_notify_socket_means_no_notify() {
    // Without NOTIFY_SOCKET serve runs as usual (covered everywhere); with a
    // socket path that does not exist it must still serve, only warning.
    let sb = Sandbox::new(bin());
    let missing = sb.path().join("nope.sock").display().to_string();
    sb.start_with(&[("NOTIFY_SOCKET", &missing)]);
}

#[test]
fn install_service_prints_valid_definitions_and_installs_into_the_user_dirs() {
    let sb = Sandbox::new(bin());
    // Only written into the definitions; nothing binds it.
    let port = 5859;
    let (code, out, err) = sb.cli(port, &["install-service", "--launchd", "--print"]);
    assert_eq!(code, 0, "{err}");
    let plist = plist::Value::from_reader_xml(out.as_bytes()).expect("the plist parses");
    let dict = plist.as_dictionary().unwrap();
    assert_eq!(
        dict.get("Label").and_then(|v| v.as_string()),
        Some("com.chatdo.memoryservice")
    );
    let args: Vec<&str> = dict["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    assert_eq!(
        &args[1..],
        [
            "serve",
            "--home",
            &sb.home.display().to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string()
        ]
    );
    assert!(std::path::Path::new(args[0]).is_absolute());

    let (code, out, _) = sb.cli(port, &["install-service", "--systemd", "--print"]);
    assert_eq!(code, 0);
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "RestartPreventExitStatus=10",
        "WatchdogSec=",
    ] {
        assert!(out.contains(line), "missing {line} in\n{out}");
    }

    // The supervisor appends to the home's log, the one `logs` reads.
    let log = format!("StandardOutput=append:{}/memory_service.log", sb.home.display());
    assert!(out.contains(&log), "missing {log} in\n{out}");

    let cfg = sb.path().join("xdg-config");
    let data = sb.path().join("xdg-data");
    let envs = [
        ("XDG_CONFIG_HOME", cfg.to_str().unwrap()),
        ("XDG_DATA_HOME", data.to_str().unwrap()),
    ];
    let (code, out, err) = sb.cli_env(port, &["install-service", "--systemd", "--no-activate"], &envs);
    assert_eq!(code, 0, "{out}{err}");
    let unit = cfg.join("systemd/user/memory-service.service");
    assert!(unit.exists(), "{out}");
    // The manual page the unit names exists, generated from the CLI.
    let man =
        std::fs::read_to_string(data.join("man/man1/memory-service.1")).expect("the man page is written");
    assert!(man.contains(".TH memory-service 1"), "{man}");
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("Documentation=man:memory-service(1)")
    );
    assert!(
        out.contains("systemctl --user"),
        "prints the activation commands:\n{out}"
    );
    let (code, out, _) = sb.cli_env(port, &["uninstall-service", "--systemd", "--no-activate"], &envs);
    assert_eq!(code, 0);
    assert!(!unit.exists(), "{out}");
}

#[test]
fn metrics_count_requests_by_route() {
    let sb = Sandbox::new(bin());
    let (_p, port) = sb.start();
    for _ in 0..3 {
        get(port, "/health").unwrap();
    }
    get(port, "/nope").unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let health_count: u64 = text
        .lines()
        .find(|l| l.starts_with("memory_service_requests_total{route=\"/health\",status=\"200\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("a /health counter");
    assert!(health_count >= 3, "{text}");
    assert!(text.contains("route=\"unmatched\",status=\"404\"} 1"), "{text}");
    assert!(
        text.contains("memory_service_health_state{state=\"ready\"} 1"),
        "{text}"
    );
    assert!(text.contains("memory_service_uptime_seconds"));
    let _ = Duration::ZERO;
}

/// `flock(1)` holding `path` (the home directory or the lock file) in its own
/// process group, so the test can kill it and its `sleep` child together.
fn foreign_locker(sb: &Sandbox, path: &std::path::Path) -> std::process::Child {
    let locker = std::process::Command::new("flock")
        .arg("--nonblock")
        .arg(path)
        .args(["sleep", "300"])
        .process_group(0)
        .spawn()
        .expect("flock(1) from util-linux");
    poll("flock(1) to hold the lock", DEADLINE, || {
        sb.lock_held().then_some(())
    });
    locker
}

fn kill_group(mut child: std::process::Child) {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

#[test]
fn a_lock_holder_that_is_not_ours_is_named_by_every_command_and_never_signalled() {
    // `flock(1)` holds the home directory's lock, or the lock file's alone:
    // no record, no /health, another program. Every command names it (PID,
    // program, path) with exit 20; `start` spawns nothing; nothing is signalled.
    const FOREIGN: i32 = 20;
    for on_file in [false, true] {
        let sb = Sandbox::new(bin());
        std::fs::create_dir_all(&sb.home).unwrap();
        let path = if on_file {
            std::fs::write(sb.lock_file(), "").unwrap();
            sb.lock_file()
        } else {
            sb.home.clone()
        };
        let locker = foreign_locker(&sb, &path);
        let named = format!(
            "{} is locked by another program (not Memory Service): PID {}",
            path.display(),
            locker.id()
        );
        // The port the commands are given; nothing listens on it.
        let refused = RefusedPort::new();
        let port = refused.port();
        let (code, out, err) = sb.cli(port, &["status"]);
        assert_eq!(code, FOREIGN, "{out}{err}");
        assert!(
            out.contains(&format!("PID:     {}", locker.id())) && out.contains("flock"),
            "{out}"
        );
        let (code, out, _) = sb.cli(port, &["status", "--json"]);
        assert_eq!(code, FOREIGN, "{out}");
        let v: StatusReport = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v.state, "locked", "{v:?}");
        assert_eq!(v.pid, Some(Some(locker.id())), "{v:?}");
        assert!(v.program.as_deref().is_some_and(|p| p.contains("flock")), "{v:?}");
        let (code, out, err) = sb.cli(port, &["start", "--timeout", "5"]);
        assert_eq!(code, FOREIGN, "{out}{err}");
        assert!(err.contains(&named) && err.contains("flock"), "{err}");
        assert!(
            !sb.home.join("memory_service.log").exists(),
            "`start` spawned no `serve` (it would have written the log)"
        );
        let (code, out, err) = sb.cli(port, &["stop", "--force"]);
        assert_eq!(code, FOREIGN, "{out}{err}");
        assert!(
            err.contains(&named) && err.contains("nothing was signalled"),
            "{err}"
        );
        let mut serve = sb.serve(port);
        assert_eq!(serve.wait_code(), FOREIGN, "{}", serve.stderr_text());
        assert!(
            serve
                .stderr_text()
                .contains("is locked by another program (not Memory Service)"),
            "{}",
            serve.stderr_text()
        );
        let (code, out, err) = sb.cli(port, &["restart"]);
        assert_eq!(code, FOREIGN, "{out}{err}");
        let (code, out, err) = sb.cli(port, &["search", "--project", "p", "x"]);
        assert_eq!(code, FOREIGN, "{out}{err}");
        assert!(err.contains(&named), "{err}");
        let mut locker = locker;
        assert!(
            locker.try_wait().unwrap().is_none(),
            "the foreign holder is alive"
        );
        kill_group(locker);
    }
}

#[test]
fn logs_follow_prints_new_lines() {
    let sb = Sandbox::new(bin());
    let (code, out, err) = sb.cli(0, &["start"]);
    assert_eq!(code, 0, "{out}{err}");
    let port = sb.port_of(printed_pid(&out).expect("start prints the PID"));
    let home = sb.home.display().to_string();
    let port_s = port.to_string();
    let follower = sb.spawn(
        &["--home", &home, "--port", &port_s, "logs", "-f", "-n", "1"],
        &[],
    );
    // The follower has read the log (it printed its last line) before the
    // instance logs anything new.
    poll("`logs -f` to print the last line", DEADLINE, || {
        (!follower.stdout_text().is_empty()).then_some(())
    });
    // A new log line: the instance logs its shutdown.
    let (code, _, _) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0);
    poll("`logs -f` to print the shutdown line", DEADLINE, || {
        follower.stdout_text().contains("shutting down").then_some(())
    });
    drop(follower); // killed on drop
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    // Like `memory-service status | head -0`, deterministically: stdout is a
    // pipe whose reading end is already closed, so the first write is EPIPE.
    let sb = Sandbox::new(bin());
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let home = sb.home.display().to_string();
    let out = sb
        .command(&["--home", &home, "status"])
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(13),
        "ended by SIGPIPE like any Unix tool: {:?}",
        out.status
    );
}

fn mkfifo(path: &std::path::Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_fifo_at_the_pid_file_never_blocks_status_stop_or_serve() {
    // Each command runs under the harness's deadline: a blocking open or
    // read of the FIFO would fail the test, not hang it.
    let sb = Sandbox::new(bin());
    std::fs::create_dir_all(&sb.home).unwrap();
    mkfifo(&sb.pid_file());
    let port = 0;
    let (code, out, err) = sb.cli(port, &["status"]);
    assert_eq!(code, 3, "stopped:\n{out}{err}");
    assert!(
        out.contains("PID file") && out.contains("is a FIFO (named pipe), not a regular file"),
        "{out}"
    );
    let (code, out, err) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("not running") && out.contains("FIFO"), "{out}");
    let (mut p, port) = sb.start();
    assert!(
        p.stderr_text()
            .contains("PID file was a FIFO (named pipe), not a regular file"),
        "{}",
        p.stderr_text()
    );
    assert_eq!(
        sb.pid_from_file(),
        Some(p.pid()),
        "replaced by a regular PID file"
    );
    let (code, out, err) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(p.wait_code(), 0);
}

#[test]
fn every_special_file_at_the_pid_path_is_named_stale_and_never_followed() {
    type Make = fn(&std::path::Path);
    let cases: [(&str, Make); 3] = [
        ("a socket", |p| {
            std::mem::forget(std::os::unix::net::UnixListener::bind(p).unwrap());
        }),
        ("a symbolic link", |p| {
            std::os::unix::fs::symlink("/etc/passwd", p).unwrap()
        }),
        ("a directory", |p| std::fs::create_dir(p).unwrap()),
    ];
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for (kind, make) in cases {
        let sb = Sandbox::new(bin());
        std::fs::create_dir_all(&sb.home).unwrap();
        make(&sb.pid_file());
        let port = 0;
        let named = format!(
            "PID file {} is {kind}, not a regular file",
            sb.pid_file().display()
        );
        let (code, out, err) = sb.cli(port, &["status"]);
        assert_eq!(code, 3, "{kind}: stopped:\n{out}{err}");
        assert!(out.contains(&named), "{kind}: {out}");
        let (code, out, err) = sb.cli(port, &["stop"]);
        assert_eq!(code, 0, "{kind}: {out}{err}");
        assert!(out.contains(&named), "{kind}: {out}");
        let mut p = sb.serve(0);
        if kind == "a directory" {
            assert_eq!(p.wait_code(), 15, "{kind}: {}", p.stderr_text());
            assert!(
                p.stderr_text().contains("is a directory, not a regular file"),
                "{}",
                p.stderr_text()
            );
            continue;
        }
        let port = p.wait_port(&sb.home);
        p.wait_ready(port);
        assert_eq!(
            sb.pid_from_file(),
            Some(p.pid()),
            "{kind}: replaced by a regular file"
        );
        assert_eq!(mode(&sb.pid_file()), 0o600);
        let (code, out, err) = sb.cli(port, &["stop"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(p.wait_code(), 0);
    }
    assert_eq!(
        std::fs::read("/etc/passwd").unwrap(),
        passwd,
        "a link is never followed"
    );
}

#[test]
fn special_files_at_the_lock_or_log_path_are_refused_with_their_kind() {
    type Make = fn(&std::path::Path);
    let cases: [(&str, Make); 4] = [
        ("a FIFO (named pipe)", |p| mkfifo(p)),
        ("a socket", |p| {
            std::mem::forget(std::os::unix::net::UnixListener::bind(p).unwrap());
        }),
        ("a symbolic link", |p| {
            std::os::unix::fs::symlink("/etc/passwd", p).unwrap()
        }),
        ("a directory", |p| std::fs::create_dir(p).unwrap()),
    ];
    for (kind, make) in cases {
        let sb = Sandbox::new(bin());
        std::fs::create_dir_all(&sb.home).unwrap();
        make(&sb.lock_file());
        let port = 0;
        let mut p = sb.serve(port);
        assert_eq!(p.wait_code(), 15, "{kind}: {}", p.stderr_text());
        let err = p.stderr_text();
        let named = if kind == "a symbolic link" {
            "is a symbolic link; remove it".to_string()
        } else {
            format!("is {kind}, not a regular file; remove it")
        };
        assert!(err.contains(&named), "{kind}: {err}");
        let (code, out, _) = sb.cli(port, &["status"]);
        assert_eq!(code, 3, "{kind}: {out}");
        assert!(
            out.contains(&format!("lock file {} is {kind}", sb.lock_file().display())),
            "{out}"
        );

        let (code, out, err) = sb.cli(port, &["start", "--timeout", "5"]);
        assert_eq!(code, 15, "{kind}: {out}{err}");
        assert!(err.contains(&named), "{kind}: `start` names it: {err}");
        assert!(
            !err.contains("failed to start"),
            "{kind}: `start` spawns no `serve` to find out: {err}"
        );
        let (code, out, err) = sb.cli(port, &["stop"]);
        assert_eq!(code, 0, "{kind}: not running: {out}{err}");
        assert!(
            out.contains(&format!("lock file {} is {kind}", sb.lock_file().display())),
            "{kind}: `stop` names it: {out}"
        );

        std::fs::remove_dir(sb.lock_file())
            .or_else(|_| std::fs::remove_file(sb.lock_file()))
            .unwrap();
        let log = sb.home.join("memory_service.log");
        make(&log);
        let (code, out, err) = sb.cli(port, &["start", "--timeout", "5"]);
        assert_eq!(code, 15, "{kind}: {out}{err}");
        assert!(
            err.contains(&format!("log file {} is {kind}", log.display())),
            "{err}"
        );
        assert!(!sb.lock_held(), "nothing was started");
        let (code, out, err) = sb.cli(port, &["logs"]);
        assert_eq!(code, 0, "`logs` shows nothing rather than block: {out}{err}");
    }
}

#[test]
fn files_are_private_and_a_loose_home_is_tightened() {
    let sb = Sandbox::new(bin());
    std::fs::create_dir_all(&sb.home).unwrap();
    std::fs::set_permissions(&sb.home, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = sb.home.join("memory_service.log");
    std::fs::write(&log, "old line\n").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let (code, out, err) = sb.cli(0, &["start"]);
    assert_eq!(code, 0, "{out}{err}");
    let port = sb.port_of(printed_pid(&out).expect("start prints the PID"));
    assert!(
        err.contains("made it private (0700)"),
        "a log line says so: {err}"
    );
    assert_eq!(mode(&sb.home), 0o700);
    // A write makes the WAL exist.
    let body = serde_json::json!({"project_id": "p", "chat_id": "c", "message_id": "m", "role": "user",
        "content": "private", "timestamp": "2026-01-02T03:04:05Z", "message_index": 1});
    let (status, v) = post(port, "/index-chat-message", &body);
    assert_eq!(status, 200, "{v}");
    for name in [
        "memory.sqlite",
        "memory.sqlite-wal",
        "memory.sqlite-shm",
        "memory_service.pid",
        "memory_service.lock",
        "memory_service.log",
    ] {
        let path = sb.home.join(name);
        assert_eq!(mode(&path), 0o600, "{name} is {:04o}", mode(&path));
    }
    let (code, _, _) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0);
}

/// Started from a shell with `umask 000` and a soft open-files limit of 256: the log
/// `start` creates, and every file `serve` writes, are still 0600, `serve` runs with
/// umask 077, and its soft open-files limit is raised to the hard limit.
#[test]
fn started_from_a_loose_shell_files_are_private_and_open_files_are_raised() {
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard > 256,
        "this test needs a hard open-files limit above 256 (it is {hard})"
    );
    let sb = Sandbox::new(bin());
    let home = sb.home.display().to_string();
    let inner = sb.command(&["--home", &home, "--port", "0", "start"]);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && ulimit -S -n 256 && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().unwrap();
    let status = poll("`start` under umask 000 to finish", DEADLINE, || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
    let port = sb.port_of(sb.pid_from_file().expect("the PID file names the instance"));
    let body = serde_json::json!({"project_id": "p", "chat_id": "c", "message_id": "m", "role": "user",
        "content": "private", "timestamp": "2026-01-02T03:04:05Z", "message_index": 1});
    let (status, v) = post(port, "/index-chat-message", &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(mode(&sb.home), 0o700);
    for name in [
        "memory.sqlite",
        "memory.sqlite-wal",
        "memory.sqlite-shm",
        "memory_service.pid",
        "memory_service.lock",
        "memory_service.log",
    ] {
        let path = sb.home.join(name);
        assert_eq!(mode(&path), 0o600, "{name} is {:04o}", mode(&path));
    }
    let pid = sb.pid_from_file().unwrap();
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        proc_status.lines().any(|l| l == "Umask:\t0077"),
        "serve's umask:\n{proc_status}"
    );
    // /proc/PID/limits: "Max open files  <soft>  <hard>  files".
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l["Max open files".len()..].split_whitespace().collect())
        .unwrap_or_default();
    let hard_s = if hard == nix::sys::resource::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    assert_eq!(
        open_files.first().copied(),
        Some(hard_s.as_str()),
        "serve's soft open-files limit, raised from 256 to the hard limit:\n{limits}"
    );
    let (code, out, err) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_home_owned_by_another_user_is_refused_even_for_root() {
    let sb = Sandbox::new(bin());
    // As root: a home given to nobody (65534). Otherwise "/", which is root's.
    let home = if nix::unistd::Uid::effective().is_root() {
        std::fs::create_dir_all(&sb.home).unwrap();
        nix::unistd::chown(&sb.home, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        sb.home.display().to_string()
    } else {
        "/".to_string()
    };
    let before = mode(std::path::Path::new(&home));
    let port = "0".to_string();
    for cmd in ["serve", "start"] {
        let mut p = sb.spawn(&["--home", &home, "--port", &port, cmd], &[]);
        assert_eq!(p.wait_code(), 15, "{cmd}: {}", p.stderr_text());
        let err = p.stderr_text();
        assert!(
            err.contains("owned by user id")
                && err.contains(&format!("home directory {home} is unusable"))
                && err.contains("use your own home with --home"),
            "{cmd}: {err}"
        );
    }
    assert_eq!(mode(std::path::Path::new(&home)), before, "left as it was");
}

#[test]
fn a_damaged_holder_record_heals_and_status_and_stop_see_the_holder() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start_with(&[("MEMORY_SERVICE_LOCK_CHECK_MS", "100")]);
    let pid = p.pid();
    let good = std::fs::read_to_string(sb.lock_file()).unwrap();
    // Garbage into the same inode: the lock stays held, the record is gone.
    std::fs::write(sb.lock_file(), "garbage\n\u{0}").unwrap();
    std::fs::write(sb.pid_file(), "nonsense").unwrap();
    poll("the holder record and PID file to be rewritten", DEADLINE, || {
        (std::fs::read_to_string(sb.lock_file()).ok()? == good && sb.pid_from_file() == Some(pid))
            .then_some(())
    });
    // The log line follows the rewrite.
    poll("the log to say so", DEADLINE, || {
        p.stderr_text().contains("rewrote them in place").then_some(())
    });
    let (code, out, _) = sb.cli(port, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("PID:     {pid}")), "{out}");
    let (code, out, err) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Stopped Memory Service (PID {pid}")),
        "{out}"
    );
    assert_eq!(p.wait_code(), 0);
}

/// Every kind of damage to a running instance's holder record, at the default
/// re-check period (2 s): emptied, torn (a first line naming another PID),
/// large garbage, loosened to 0644, and a FIFO in place of the PID file. Each
/// comes back whole within a few periods; `status` and `stop` then see the
/// holder.
#[test]
fn every_kind_of_damage_to_the_holder_record_heals_at_the_default_period() {
    use std::io::Write as _;
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    let pid = p.pid();
    let good = std::fs::read_to_string(sb.lock_file()).unwrap();
    let whole = || {
        // Never open a FIFO here: the test itself would block on it.
        let pid_is_file = std::fs::symlink_metadata(sb.pid_file()).ok()?.is_file();
        (pid_is_file
            && std::fs::read_to_string(sb.lock_file()).ok()? == good
            && mode(&sb.lock_file()) == 0o600
            && sb.pid_from_file() == Some(pid))
        .then_some(())
    };
    type Damage = fn(&Sandbox);
    let damages: [(&str, Damage); 5] = [
        ("emptied", |sb| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(sb.lock_file())
                .unwrap()
                .set_len(0)
                .unwrap()
        }),
        ("torn, naming another PID", |sb| {
            std::fs::write(sb.lock_file(), "1\n").unwrap()
        }),
        ("64 KiB of garbage", |sb| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(sb.lock_file())
                .unwrap();
            f.write_all(&vec![0xA5u8; 64 * 1024]).unwrap();
        }),
        ("loosened to 0644", |sb| {
            std::fs::set_permissions(
                sb.lock_file(),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap()
        }),
        ("a FIFO at the PID file", |sb| {
            std::fs::remove_file(sb.pid_file()).unwrap();
            mkfifo(&sb.pid_file());
        }),
    ];
    for (what, damage) in damages {
        damage(&sb);
        assert!(whole().is_none(), "{what}: the damage took");
        // Default period 2 s: a few periods, then the deadline fails the test.
        poll(
            &format!("the holder record to heal after: {what}"),
            DEADLINE,
            whole,
        );
        let (code, out, err) = sb.cli(port, &["status"]);
        assert_eq!(code, 0, "{what}: {out}{err}");
        assert!(out.contains(&format!("PID:     {pid}")), "{what}: {out}");
    }
    let (code, out, err) = sb.cli(port, &["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Stopped Memory Service (PID {pid}")),
        "{out}"
    );
    assert_eq!(p.wait_code(), 0);
}

/// A supervisor (systemd's `StandardOutput=append:`, launchd's
/// `StandardOutPath`) hands `serve` the home's log as stdout and stderr: `logs`
/// shows that instance's lines, and a log over the cap is rotated by `serve`
/// itself (one old generation), since a supervisor only appends.
#[test]
fn a_supervised_serve_logs_where_logs_reads_and_rotates_it() {
    let sb = Sandbox::new(bin());
    std::fs::create_dir_all(&sb.home).unwrap();
    let log = sb.home.join("memory_service.log");
    let big = 10 * 1024 * 1024 + 1;
    std::fs::write(&log, vec![b'x'; big]).unwrap();
    let open = || std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut cmd = sb.command(&["--home", &sb.home.display().to_string(), "--port", "0", "serve"]);
    cmd.stdout(open()).stderr(open());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let port = poll("the supervised serve to bind", DEADLINE, || {
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        bound_port(&sb.home, pid)
    });
    poll("the supervised serve to answer /health", DEADLINE, || {
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        (health(port)?.pid == pid).then_some(())
    });
    assert_eq!(
        std::fs::metadata(sb.home.join("memory_service.log.1"))
            .unwrap()
            .len(),
        big as u64,
        "the old log is kept as .log.1"
    );
    let (code, out, err) = sb.cli(port, &["logs", "-n", "200"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("rotated the log"),
        "the new log holds this instance's lines: {out}"
    );
    assert!(
        !out.contains("xxxx"),
        "the old lines are gone from the log: {out}"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}

/// The same unusable home gives every lifecycle command the code `serve`
/// gives it (15, `HomeUnusable`) and the same one sentence, said once.
#[test]
fn an_unusable_home_has_one_exit_code_for_every_command() {
    let sb = Sandbox::new(bin());
    std::fs::write(&sb.home, "I am a file").unwrap();
    let port = 0;
    let mut p = sb.serve(port);
    assert_eq!(p.wait_code(), 15, "{}", p.stderr_text());
    let sentence = format!(
        "home directory {} is unusable: it is not a directory",
        sb.home.display()
    );
    assert!(p.stderr_text().contains(&sentence), "{}", p.stderr_text());
    for cmd in [
        &["start", "--timeout", "5"][..],
        &["stop"],
        &["restart"],
        &["status"],
    ] {
        let (code, out, err) = sb.cli(port, cmd);
        assert_eq!(code, 15, "{cmd:?}: {out}{err}");
        let said = format!("{out}{err}");
        assert_eq!(
            said.matches(&sentence).count(),
            1,
            "{cmd:?}, the cause once: {said}"
        );
        assert!(!said.contains("os error"), "{cmd:?}: {said}");
    }
    let (code, out, err) = sb.cli(port, &["status", "--json"]);
    assert_eq!(code, 15, "{out}{err}");
    let v: StatusReport = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v.state, "unusable", "{out}");
}
