//! `status`: what runs for this home, as aligned lines or one JSON object,
//! with LSB exit codes so scripts can use it like `service x status`. It reads
//! the lock (without taking it), the holder record and `/health`; it never
//! trusts the PID file alone.

use serde_json::json;
use single_instance::Verdict;
use single_instance::pidfile::{self, PidFile};

use super::{log_path, observe};
use crate::config::Config;
use crate::daemon::home_files;
use crate::exit_code::StatusCode;
use crate::probe;

/// Options of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of aligned lines.
    #[arg(long)]
    pub json: bool,
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `host:port` (`[v6]:port`), with what an unspecified or non-loopback
/// address means for people.
fn listening(host: &str, port: u64) -> String {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => format!("{addr} (every interface; other machines can reach it)"),
        Ok(ip) if !ip.is_loopback() => format!("{addr} (other machines can reach it)"),
        _ => addr,
    }
}

/// Gathers the status as a JSON object and its exit code.
pub fn gather(config: &Config) -> (serde_json::Value, StatusCode) {
    let log = log_path(config);
    let mut v = json!({
        "home": config.home,
        "log": log.exists().then_some(&log),
    });
    let verdict = match observe(config) {
        Ok(v) => v,
        Err(e) => {
            if let Some(why) = super::unusable_home(config, &e) {
                v["state"] = json!("unusable");
                v["error"] = json!(why);
                return (v, StatusCode::HomeUnusable);
            }
            v["state"] = json!("unknown");
            v["error"] = json!(format!("{e:#}"));
            return (v, StatusCode::Unknown);
        }
    };
    let odd = odd_files(config);
    let code = match &verdict {
        Verdict::AlreadyRunning { pid, host, port, .. } => {
            v["state"] = json!("running");
            v["pid"] = json!(pid);
            v["url"] = json!(probe::base_url(host, *port));
            if let Ok((200, body)) = probe::get_json(host, *port, "/health", probe::PROBE_TIMEOUT) {
                for k in [
                    "version",
                    "uptime_s",
                    "instance_id",
                    "started_at",
                    "reasons",
                    "semantic",
                ] {
                    v[k] = body[k].clone();
                }
                v["health"] = body["state"].clone();
                // The address the instance bound (its /health `host`), not the
                // loopback URL we dial: `0.0.0.0` means every interface.
                if let (Some(h), Some(p)) = (body["host"].as_str(), body["port"].as_u64()) {
                    v["listening"] = json!(listening(h, p));
                }
            }
            StatusCode::Running
        }
        Verdict::Starting { pid, addr } | Verdict::Unresponsive { pid, addr, .. } => {
            let starting = matches!(verdict, Verdict::Starting { .. });
            v["state"] = json!(if starting { "starting" } else { "unresponsive" });
            v["pid"] = json!(pid);
            v["url"] = json!(addr.as_ref().map(|(h, p)| probe::base_url(h, *p)));
            if let Verdict::Unresponsive { reason, .. } = &verdict {
                v["reasons"] = json!([reason]);
            }
            if starting {
                StatusCode::Starting
            } else {
                StatusCode::Unresponsive
            }
        }
        Verdict::HeldByStranger { pid, program, path } => {
            v["state"] = json!("locked");
            v["pid"] = json!(pid);
            v["program"] = json!(program);
            v["reasons"] = json!([format!(
                "{} is locked by PID {pid} ({program}), which is not Memory Service; \
                 stop that program or use another home with --home",
                path.display()
            )]);
            StatusCode::ForeignLockHolder
        }
        _ => match pidfile::read(&home_files(config).pid) {
            PidFile::Pid(pid) => {
                v["state"] = json!("dead");
                v["pid_file_pid"] = json!(pid);
                v["reasons"] = json!([format!(
                    "not running, but a PID file names PID {pid} (a crash or kill -9?); \
                     `memory-service start` cleans it up"
                )]);
                StatusCode::DeadWithPidFile
            }
            _ => {
                v["state"] = json!("stopped");
                v["pid"] = json!(null);
                StatusCode::NotRunning
            }
        },
    };
    if !odd.is_empty() {
        let mut reasons = v["reasons"].as_array().cloned().unwrap_or_default();
        reasons.extend(odd.into_iter().map(serde_json::Value::from));
        v["reasons"] = json!(reasons);
    }
    (v, code)
}

/// Our files that something else (a FIFO, a socket, a device, a directory, a
/// symbolic link) sits in place of, each as a sentence saying what it does
/// and what to do. Looked at with `lstat` only: never opened or followed.
pub fn odd_files(config: &Config) -> Vec<String> {
    let files = home_files(config);
    [
        (
            "lock file",
            files.lock,
            "`memory-service serve` refuses to start until it is removed",
        ),
        (
            "PID file",
            files.pid,
            "it is ignored, and replaced by the next start",
        ),
        (
            "log file",
            log_path(config),
            "`memory-service start` cannot write its log until it is removed",
        ),
    ]
    .into_iter()
    .filter_map(|(what, path, effect)| {
        let m = std::fs::symlink_metadata(&path).ok()?;
        (!m.is_file()).then(|| {
            let kind = single_instance::file::Kind::of(m.file_type());
            format!(
                "the {what} {} is {kind}, not a regular file: {effect}",
                path.display()
            )
        })
    })
    .collect()
}

/// Runs `status`.
pub fn run(config: &Config, args: &StatusArgs) -> StatusCode {
    let (v, code) = gather(config);
    if args.json {
        println!("{v}");
        return code;
    }
    let s = |k: &str| match &v[k] {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let mut rows: Vec<(&str, String)> = vec![("State", s("state").unwrap_or_default())];
    if let Some(h) = s("health").filter(|h| h != "ready") {
        rows[0].1 = format!("{} ({h})", rows[0].1);
    }
    for (label, key) in [
        ("PID", "pid"),
        ("Program", "program"),
        ("URL", "url"),
        ("Listen", "listening"),
        ("Home", "home"),
        ("Version", "version"),
    ] {
        if let Some(val) = s(key) {
            rows.push((label, val));
        }
    }
    if let Some(up) = v["uptime_s"].as_u64() {
        rows.push(("Uptime", uptime(up)));
    }
    if let Some(log) = s("log") {
        rows.push(("Log", log));
    }
    if let Ok(sem) = serde_json::from_value::<crate::monitor::SemanticReport>(v["semantic"].clone()) {
        rows.push(("Semantic", semantic_line(&sem)));
    }
    if let Some(reasons) = v["reasons"].as_array().filter(|r| !r.is_empty()) {
        for r in reasons {
            rows.push(("Reason", r.as_str().unwrap_or_default().to_string()));
        }
    }
    if let Some(e) = s("error") {
        rows.push(("Error", e));
    }
    for (label, val) in rows {
        // Values line up after 9 columns; a longer label ("Semantic:") keeps one space.
        println!("{:<8} {val}", format!("{label}:"));
    }
    code
}

/// One line on semantic search: on with its model and backlog, or why not.
fn semantic_line(s: &crate::monitor::SemanticReport) -> String {
    use crate::monitor::SemanticState;
    let model = s.model.as_deref().unwrap_or("?");
    match s.state {
        SemanticState::Ready if s.pending_chunks > 0 => format!(
            "on ({model}); embedding {} of {} chunks",
            s.pending_chunks,
            s.pending_chunks + s.embedded_chunks
        ),
        SemanticState::Ready => format!("on ({model}); {} chunks embedded", s.embedded_chunks),
        SemanticState::Loading => "loading the embedding model".into(),
        SemanticState::Off | SemanticState::Error => {
            format!("off: {}", s.reason.as_deref().unwrap_or("no embedding model"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::uptime;

    #[test]
    fn semantic_line_says_on_off_and_backlog() {
        use crate::monitor::{SemanticReport, SemanticState};
        let mut s = SemanticReport {
            state: SemanticState::Ready,
            model: Some("m@1".into()),
            pending_chunks: 5,
            embedded_chunks: 15,
            ..SemanticReport::default()
        };
        assert_eq!(super::semantic_line(&s), "on (m@1); embedding 5 of 20 chunks");
        s.pending_chunks = 0;
        assert_eq!(super::semantic_line(&s), "on (m@1); 15 chunks embedded");
        s.state = SemanticState::Off;
        s.reason = Some("no embedding model at /x; run `memory-service model install`".into());
        assert!(super::semantic_line(&s).starts_with("off: no embedding model at /x"));
    }

    #[test]
    fn listening_addresses() {
        assert_eq!(super::listening("127.0.0.1", 5858), "127.0.0.1:5858");
        assert_eq!(super::listening("::1", 1), "[::1]:1");
        assert!(super::listening("0.0.0.0", 2).starts_with("0.0.0.0:2 (every interface"));
        assert!(super::listening("192.0.2.1", 3).ends_with("(other machines can reach it)"));
    }

    #[test]
    fn uptimes() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(65), "1m 5s");
        assert_eq!(uptime(3 * 3600 + 120), "3h 2m");
        assert_eq!(uptime(2 * 86_400 + 3600), "2d 1h");
    }
}
