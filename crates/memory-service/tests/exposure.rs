//! Loopback unless asked, then authenticated; strict `Host` handling; every
//! error with a `{"detail"}`; bounded connections (issue 13 items 5 and 8).
//! Through a real `serve`, a temp home and a free port; raw TCP where a
//! client library would fix the request up for us.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::helper::*;

const USAGE: i32 = 2;

/// Sends `request` as is on a new connection and reads the answer until the
/// server closes (requests here say `Connection: close` or are HTTP/1.0).
/// Returns (status, head, body).
fn raw(port: u16, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The `detail` of a JSON error body, or a panic saying what came instead.
fn detail(body: &str) -> String {
    serde_json::from_str::<memory_api::ErrorBody>(body)
        .unwrap_or_else(|e| panic!("not a {{\"detail\": \"...\"}} body ({e}): {body:?}"))
        .detail
}

fn stop(p: &mut Proc) {
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait_code(), 0, "{}", p.stderr_text());
}

#[test]
fn a_non_loopback_host_is_refused_without_allow_remote() {
    let sb = Sandbox::new(bin());
    // Held, never listening, for the whole test: the last check below sees
    // that no refused command bound it (a bind would fail, not exit 2).
    let refused = RefusedPort::new();
    let port = refused.port();
    let home = sb.home.display().to_string();
    let ps = port.to_string();
    for cmd in ["serve", "start", "status", "stop"] {
        for host in ["0.0.0.0", "::"] {
            let mut p = sb.spawn(&["--home", &home, "--host", host, "--port", &ps, cmd], &[]);
            assert_eq!(p.wait_code(), USAGE, "{cmd} --host {host}: {}", p.stderr_text());
            let err = p.stderr_text();
            assert!(
                err.contains(&format!("--host {host} is not a loopback address"))
                    && err.contains("--allow-remote"),
                "{cmd}: {err}"
            );
        }
    }
    // install-service cannot carry --allow-remote into a unit: refused alike.
    let mut p = sb.spawn(
        &[
            "--home",
            &home,
            "--allow-remote",
            "--host",
            "0.0.0.0",
            "install-service",
            "--print",
        ],
        &[],
    );
    assert_eq!(p.wait_code(), USAGE, "{}", p.stderr_text());
    assert!(p.stderr_text().contains("loopback-only"), "{}", p.stderr_text());
    // The environment is held to the same rule.
    let mut p = sb.spawn(
        &["--home", &home, "--port", &ps, "serve"],
        &[("MEMORY_SERVICE_HOST", "0.0.0.0")],
    );
    assert_eq!(p.wait_code(), USAGE, "{}", p.stderr_text());
    assert!(!sb.home.exists(), "nothing was created, nothing bound");
    assert_eq!(get(port, "/health"), None);
}

#[test]
fn allow_remote_binds_every_interface_and_wants_the_token() {
    let sb = Sandbox::new(bin());
    let home = sb.home.display().to_string();
    let ps = "0".to_string();
    let remote = [
        "--allow-remote",
        "--host",
        "0.0.0.0",
        "--home",
        &home,
        "--port",
        &ps,
    ];
    let mut p = sb.spawn(&[&remote[..], &["serve"]].concat(), &[]);
    let port = p.wait_port(&sb.home);
    p.wait_ready(port);
    let err = p.stderr_text();
    assert!(
        err.contains("WARNING: Memory Service listens on 0.0.0.0"),
        "{err}"
    );
    assert!(err.contains(&format!("listening=0.0.0.0:{port}")), "{err}");

    let token_file = sb.home.join("auth_token");
    let meta = std::fs::metadata(&token_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{token:?}");

    // /health needs nothing and names the address bound.
    let body = health(port).expect("/health answers 200");
    assert_eq!(body.host, "0.0.0.0");

    // Everything else: 401 without the right token, in every way it can be wrong.
    for auth in [
        String::new(),
        "Authorization: Bearer wrong\r\n".to_string(),
        format!("Authorization: Basic {token}\r\n"),
        format!("Authorization: Bearer {}\r\n", &token[..63]),
        format!("Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n"),
    ] {
        let (status, head, body) = raw(
            port,
            &format!("GET /sources HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"),
        );
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        assert!(detail(&body).contains("auth_token"), "{body}");
    }
    // With it: answered, under any Host name (remote clients use the machine's).
    for host in [format!("127.0.0.1:{port}"), format!("192.0.2.7:{port}")] {
        let (status, _, body) = raw(
            port,
            &format!(
                "GET /sources HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "{host}: {body}");
    }

    // The client commands send it; `status` shows the address bound.
    let (code, out, err) = sb.cli_env(
        port,
        &["--allow-remote", "--host", "0.0.0.0", "sources", "list"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = sb.cli_env(port, &["--allow-remote", "--host", "0.0.0.0", "status"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Listen:  0.0.0.0:{port} (every interface")),
        "{out}"
    );

    // The same token on the next start.
    stop(&mut p);
    let mut p = sb.spawn(&[&remote[..], &["serve"]].concat(), &[]);
    let port = p.wait_port(&sb.home);
    p.wait_ready(port);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    stop(&mut p);
}

#[test]
fn a_loopback_instance_shows_its_address_and_needs_no_token() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    assert!(
        !sb.home.join("auth_token").exists(),
        "no token unless --allow-remote"
    );
    let (code, out, err) = sb.cli(port, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Listen:  127.0.0.1:{port}\n")), "{out}");
    assert!(
        p.stderr_text().contains(&format!("listening=127.0.0.1:{port}")),
        "{}",
        p.stderr_text()
    );
    stop(&mut p);
}

#[test]
fn host_headers_are_checked_first_and_every_error_has_a_detail() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    let ok_host = format!("Host: 127.0.0.1:{port}\r\n");

    let (status, _, body) = raw(
        port,
        &format!("GET /health HTTP/1.1\r\n{ok_host}Host: evil.example\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 400, "two Host headers: {body}");
    assert!(detail(&body).contains("more than one Host"), "{body}");

    let (status, _, body) = raw(port, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "HTTP/1.1 without Host: {body}");
    assert!(detail(&body).contains("needs a Host header"), "{body}");

    // An absolute-form target is held to the same rule as the header.
    let (status, _, body) = raw(
        port,
        &format!("GET http://evil.example:{port}/health HTTP/1.1\r\n{ok_host}Connection: close\r\n\r\n"),
    );
    assert_eq!(status, 403, "{body}");

    // HTTP/1.0 has no Host requirement.
    let (status, _, body) = raw(port, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200, "{body}");

    // A CORS preflight from a page whose name resolved to us: refused by the
    // Host check, never answered with CORS headers.
    let preflight = |host: &str| {
        raw(
            port,
            &format!(
                "OPTIONS /search HTTP/1.1\r\nHost: {host}\r\nOrigin: http://localhost:5173\r\n\
                 Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
    };
    let (status, head, body) = preflight(&format!("evil.example:{port}"));
    assert_eq!(status, 403, "{head}{body}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    assert!(detail(&body).contains("DNS rebinding"), "{body}");
    let (status, head, _) = preflight(&format!("localhost:{port}"));
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://localhost:5173"),
        "{head}"
    );

    // The framework's own errors carry a detail too.
    for (request, want) in [
        ("PUT /health", 405),
        ("BREW /sources", 405),
        ("GET /no-such-route", 404),
    ] {
        let (status, head, body) = raw(
            port,
            &format!("{request} HTTP/1.1\r\n{ok_host}Connection: close\r\n\r\n"),
        );
        assert_eq!(status, want, "{request}: {head}{body}");
        assert!(
            head.contains("content-type: application/json"),
            "{request}: {head}"
        );
        assert!(!detail(&body).is_empty(), "{request}");
    }
    let bad_json = "{\"project_id\": ";
    let (status, _, body) = raw(
        port,
        &format!(
            "POST /search HTTP/1.1\r\n{ok_host}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bad_json}",
            bad_json.len()
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(!detail(&body).is_empty());
    stop(&mut p);
}

/// Opens `n` connections that say nothing.
fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect()
}

#[test]
fn idle_connections_beyond_the_cap_leave_room_for_health() {
    let sb = Sandbox::new(bin());
    let cap = 4;
    let (mut p, port) = sb.start_with(&[
        ("MEMORY_SERVICE_MAX_CONNECTIONS", "4"),
        // Long: the idle connections below hold their slots throughout.
        ("MEMORY_SERVICE_HEADER_TIMEOUT_MS", "120000"),
    ]);
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let full = idle_connections(port, cap);
    // Accepted in order, so these come after every idle one: past the cap,
    // only /health is answered, and at once.
    let (status, head, body) = raw(port, &format!("GET /sources HTTP/1.1\r\n{host}\r\n"));
    assert_eq!(status, 503, "{head}{body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(detail(&body).contains("too many open connections"), "{body}");
    let (status, _, body) = raw(
        port,
        &format!("GET /health HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
    );
    assert_eq!(status, 200, "{body}");

    // Many more idle connections than the cap and the /health slots together:
    // the /health slots free themselves, and /health still answers.
    let flood = idle_connections(port, 16 * 2 + 10);
    let deadline = Duration::from_secs(20);
    let (status, body) =
        memory_service::probe::get_json::<memory_api::HealthReport>("127.0.0.1", port, "/health", deadline)
            .unwrap_or_else(|e| panic!("/health did not answer within {deadline:?} under the flood: {e}"));
    assert_eq!((status, body.map(|h| h.pid)), (200, Some(p.pid())));
    drop(flood);

    // Once the idle connections go, data requests are served again.
    drop(full);
    poll("GET /sources to be served again", DEADLINE, || {
        (get(port, "/sources")?.0 == 200).then_some(())
    });
    stop(&mut p);
}

/// Reads until the server closes the connection; the time that took.
fn time_until_closed(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("the server did not close the connection within {DEADLINE:?}: {e}"),
        }
    }
}

#[test]
fn silent_and_idle_keep_alive_connections_are_closed_after_the_timeout() {
    let sb = Sandbox::new(bin());
    let timeout = Duration::from_millis(700);
    let (mut p, port) = sb.start_with(&[("MEMORY_SERVICE_HEADER_TIMEOUT_MS", "700")]);

    // A connection that never sends a request.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let waited = time_until_closed(&mut silent);
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "closed after {waited:?}"
    );

    // A connection that sends half a request head and stops.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    time_until_closed(&mut slow);

    // A keep-alive connection after one answer: served, then closed when idle.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.write_all(format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .unwrap();
    kept.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"service\"") {
        let n = kept.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let waited = time_until_closed(&mut kept);
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "closed after {waited:?}"
    );
    stop(&mut p);
}

/// Issue 13's case: under `ulimit -n 256` (soft and hard, so nothing can be
/// raised), 300 idle connections made `/health` fail for a minute. The cap
/// now shrinks to what the limit holds, and `/health` answers.
#[test]
fn a_low_open_files_limit_shrinks_the_cap_and_health_still_answers() {
    let sb = Sandbox::new(bin());
    let home = sb.home.display().to_string();
    let mut inner = sb.command(&["--home", &home, "--port", "0", "serve"]);
    // Long: idle connections hold what they take for the whole test.
    inner.env("MEMORY_SERVICE_HEADER_TIMEOUT_MS", "120000");
    let err_path = sb.path().join("serve-ulimit.stderr");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut check_running = || {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "exited {st:?}: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
    };
    let port = poll("serve under ulimit -n 256 to bind", DEADLINE, || {
        check_running();
        bound_port(&sb.home, pid)
    });
    poll("serve under ulimit -n 256 to be ready", DEADLINE, || {
        check_running();
        let h = health(port)?;
        (h.pid == pid && h.state == memory_api::health::State::Ready).then_some(())
    });
    let log = std::fs::read_to_string(&err_path).unwrap();
    // 256 - 128 kept for the database and the rest - 16 /health-only slots.
    assert!(log.contains("serving at most 112"), "{log}");
    assert!(log.contains("max_connections=112"), "{log}");

    // More idle connections than the cap and the /health slots together, and
    // more than the open-files limit would hold (without the smaller cap the
    // accept loop runs out of descriptors and `/health` waits behind them),
    // yet within the listen backlog, so every connect completes.
    let idle = idle_connections(port, 250);
    let deadline = Duration::from_secs(45);
    let (status, body) =
        memory_service::probe::get_json::<memory_api::HealthReport>("127.0.0.1", port, "/health", deadline)
            .unwrap_or_else(|e| panic!("/health did not answer within {deadline:?}: {e}"));
    assert_eq!((status, body.map(|h| h.pid)), (200, Some(pid)));
    drop(idle);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let status = poll("serve to exit", DEADLINE, || child.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
}
