//! `status`: what runs for this home, as aligned lines or one JSON object,
//! with LSB exit codes so scripts can use it like `service x status`. It reads
//! the lock (without taking it), the holder record and `/health`; it never
//! trusts the PID file alone.

use std::path::PathBuf;
use std::time::Duration;

use memory_api::HealthReport;
use memory_api::health::{SemanticReport, State};
use serde::{Deserialize, Serialize};
use single_instance::Verdict;
use single_instance::pidfile::{self, PidFile};

use super::observe;
use crate::config::Config;
use crate::exit_code::StatusExit;
use crate::probe;

/// Options of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of aligned lines.
    #[arg(long)]
    pub json: bool,
}

/// An uptime for people, to its two largest units (`5s`, `1m 5s`, `3h 2m`,
/// `2days 1h`), in `humantime`'s spelling like every duration the CLI prints.
fn uptime(secs: u64) -> String {
    let unit = match secs {
        0..3600 => 1,
        3600..86_400 => 60,
        _ => 3600,
    };
    humantime::format_duration(Duration::from_secs(secs / unit * unit)).to_string()
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

/// What `status --json` prints: one object, keys in alphabetical order (as
/// before it was typed). Fields marked "omitted" are left out when they do
/// not apply; `log` is always there (null when there is no log yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Why the state is `unusable` or `unknown`; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The instance's own `/health` state; omitted unless it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<State>,
    /// The home directory.
    pub home: PathBuf,
    /// From `/health`; omitted unless it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The address the instance bound, for people; omitted unless `/health` answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening: Option<String>,
    /// The log file, or null when there is none.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// The instance's PID: set when running, starting, unresponsive or
    /// locked by a stranger (null when unknown), null when stopped,
    /// omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<Option<u32>>,
    /// The PID a stale PID file names (state `dead`); omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file_pid: Option<u32>,
    /// The stranger holding the lock (state `locked`); omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Why the state is what it is, and odd files in the home; omitted when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    /// From `/health`; omitted unless it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticReport>,
    /// From `/health`, ISO-8601; omitted unless it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// `running`, `starting`, `unresponsive`, `locked`, `dead`, `stopped`,
    /// `unusable` or `unknown`.
    pub state: String,
    /// From `/health`, seconds; omitted unless it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// The URL we dial: set when running, starting or unresponsive (null
    /// when the holder record has no address), omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Option<String>>,
    /// From `/health`; omitted unless it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Gathers the status and its exit code.
pub fn gather(config: &Config) -> (StatusReport, StatusExit) {
    let log = config.paths().log();
    let mut v = StatusReport {
        home: config.home.clone(),
        log: log.exists().then_some(log),
        ..StatusReport::default()
    };
    let verdict = match observe(config) {
        Ok(v) => v,
        Err(e) => {
            if let Some(why) = super::unusable_home(config, &e) {
                v.state = "unusable".into();
                v.error = Some(why);
                return (v, StatusExit::HomeUnusable);
            }
            v.state = "unknown".into();
            v.error = Some(format!("{e:#}"));
            return (v, StatusExit::Unknown);
        }
    };
    let odd = odd_files(config);
    let code = match &verdict {
        Verdict::AlreadyRunning { pid, host, port, .. } => {
            running(&mut v, *pid, host, *port);
            StatusExit::Running
        }
        Verdict::Starting { pid, addr } | Verdict::Unresponsive { pid, addr, .. } => {
            v.pid = Some(*pid);
            v.url = Some(addr.as_ref().map(|(h, p)| probe::base_url(h, *p)));
            if let Verdict::Unresponsive { reason, .. } = &verdict {
                v.state = "unresponsive".into();
                v.reasons = Some(vec![reason.clone()]);
                StatusExit::Unresponsive
            } else {
                v.state = "starting".into();
                StatusExit::Starting
            }
        }
        Verdict::HeldByStranger { pid, program, path } => {
            v.state = "locked".into();
            v.pid = Some(Some(*pid));
            v.program = Some(program.clone());
            v.reasons = Some(vec![format!(
                "{} is locked by PID {pid} ({program}), which is not Memory Service; \
                 stop that program or use another home with --home",
                path.display()
            )]);
            StatusExit::ForeignLockHolder
        }
        _ => not_running(&mut v, config),
    };
    if !odd.is_empty() {
        v.reasons.get_or_insert_default().extend(odd);
    }
    (v, code)
}

/// A running instance: its PID and URL, and what its `/health` says when it
/// answers within [`probe::PROBE_TIMEOUT`].
fn running(v: &mut StatusReport, pid: u32, host: &str, port: u16) {
    v.state = "running".into();
    v.pid = Some(Some(pid));
    v.url = Some(Some(probe::base_url(host, port)));
    if let Ok((200, Some(body))) =
        probe::get_json::<HealthReport>(host, port, "/health", probe::PROBE_TIMEOUT)
    {
        // The address the instance bound (its /health `host`), not the
        // loopback URL we dial: `0.0.0.0` means every interface.
        v.listening = Some(listening(&body.host, u64::from(body.port)));
        v.version = Some(body.version);
        v.uptime_s = Some(body.uptime_s);
        v.instance_id = Some(body.instance_id);
        v.started_at = Some(body.started_at);
        v.reasons = Some(body.reasons);
        v.semantic = Some(body.semantic);
        v.health = Some(body.state);
    }
}

/// No instance holds the lock: `dead` when a PID file outlived it (a crash or
/// `kill -9`), else `stopped`.
fn not_running(v: &mut StatusReport, config: &Config) -> StatusExit {
    if let PidFile::Pid(pid) = pidfile::read(&config.paths().guarded().pid) {
        v.state = "dead".into();
        v.pid_file_pid = Some(pid);
        v.reasons = Some(vec![format!(
            "not running, but a PID file names PID {pid} (a crash or kill -9?); \
             `memory-service start` cleans it up"
        )]);
        StatusExit::DeadWithPidFile
    } else {
        v.state = "stopped".into();
        v.pid = Some(None);
        StatusExit::NotRunning
    }
}

/// Our files that something else (a FIFO, a socket, a device, a directory, a
/// symbolic link) sits in place of, each as a sentence saying what it does
/// and what to do. Looked at with `lstat` only: never opened or followed.
pub fn odd_files(config: &Config) -> Vec<String> {
    let files = config.paths().guarded();
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
            config.paths().log(),
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
pub fn run(config: &Config, args: &StatusArgs) -> StatusExit {
    let (v, code) = gather(config);
    if args.json {
        println!("{}", serde_json::to_string(&v).expect("the status serialises"));
        return code;
    }
    let mut state = v.state.clone();
    if let Some(h) = v.health.filter(|h| *h != State::Ready) {
        state = format!("{state} ({})", h.as_str());
    }
    let mut rows: Vec<(&str, String)> = vec![("State", state)];
    let home = v.home.display().to_string();
    for (label, val) in [
        ("PID", v.pid.flatten().map(|p| p.to_string())),
        ("Program", v.program.clone()),
        ("URL", v.url.clone().flatten()),
        ("Listen", v.listening.clone()),
        ("Home", Some(home)),
        ("Version", v.version.clone()),
        ("Uptime", v.uptime_s.map(uptime)),
        ("Log", v.log.as_ref().map(|l| l.display().to_string())),
        ("Semantic", v.semantic.as_ref().map(semantic_line)),
    ] {
        if let Some(val) = val {
            rows.push((label, val));
        }
    }
    for r in v.reasons.iter().flatten() {
        rows.push(("Reason", r.clone()));
    }
    if let Some(e) = &v.error {
        rows.push(("Error", e.clone()));
    }
    for (label, val) in rows {
        // Values line up after 9 columns; a longer label ("Semantic:") keeps one space.
        println!("{:<8} {val}", format!("{label}:"));
    }
    code
}

/// One line on semantic search: on with its model and backlog, or why not.
fn semantic_line(s: &SemanticReport) -> String {
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
            // `/health`'s reason says "...; semantic search is off: run ..." for readers
            // without this line's "off:" in front; said once here.
            let reason = s.reason.as_deref().unwrap_or("no embedding model");
            format!("off: {}", reason.replacen("; semantic search is off: ", "; ", 1))
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
        // The reason as `/health` gives it: "off" is said once.
        s.reason = Some(
            "no embedding model at /x; semantic search is off: run `memory-service model install`".into(),
        );
        assert_eq!(
            super::semantic_line(&s),
            "off: no embedding model at /x; run `memory-service model install`"
        );
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
        assert_eq!(uptime(2 * 86_400 + 3600 + 59), "2days 1h");
    }
}
