//! The launchd LaunchAgent plist that runs `serve`, built as a `plist::Value`
//! (never a string template, so escaping is the plist crate's job). Each key
//! exists because of `serve`'s exit codes: a duplicate start exits non-zero
//! (10 already running, 11 starting, 12 unresponsive), and launchd must retry
//! it slowly, not storm, and must take over once a manual instance stops.
//!
//! Why each key:
//! - `ProgramArguments`: the absolute exe and `serve --home --host --port`;
//!   launchd's `PATH` is minimal, and the same `--home` as a manual start
//!   means the single-instance lock arbitrates between them.
//! - `RunAtLoad` true: start at login (and at `launchctl bootstrap`).
//! - `KeepAlive = {SuccessfulExit: false}`: respawn only after a failing exit.
//!   A clean exit 0 (SIGTERM drain, `memory-service stop`) stays stopped;
//!   every non-zero exit, including 10-16, is retried.
//! - `ThrottleInterval` 30: launchd waits at least 30 s between spawns. An
//!   "already running" exit 10 therefore costs one short-lived process per
//!   30 s (never a respawn storm), and the agent takes over within 30 s after
//!   a manual instance stops. Config errors (13-15) retry at the same slow
//!   pace and show in the log. launchd has no per-exit-code policy, which is
//!   why the pace, not a skip list, is the protection here.
//! - `ExitTimeOut` 20: SIGKILL 20 s after SIGTERM, the same drain budget as
//!   the systemd unit's `TimeoutStopSec`.
//! - `StandardOutPath`/`StandardErrorPath`: `<log_dir>/memory_service.log` (the home's log, read by `memory-service logs`),
//!   so `serve`'s exit messages ("already running ...") are where
//!   `memory-service logs` looks.
//! - `EnvironmentVariables` `RUST_LOG=info`: launchd passes almost no
//!   environment, so the log level is set here.
//! - `ProcessType` Background: a user-invisible daemon; launchd may limit
//!   its CPU and I/O priority relative to the apps the user is using.

use plist::{Dictionary, Value};

use crate::{Error, ServiceSpec};

/// Seconds launchd waits between two spawns of the agent.
pub const THROTTLE_INTERVAL_SECS: i64 = 30;

/// Seconds between SIGTERM and SIGKILL when launchd stops the agent.
pub const EXIT_TIMEOUT_SECS: i64 = 20;

/// The agent's plist as XML. Validates `spec` first (absolute UTF-8 paths,
/// a plain host, a valid label).
pub fn launchd_plist(spec: &ServiceSpec) -> Result<String, Error> {
    spec.validate()?;
    let value = plist_value(spec);
    let mut xml = Vec::new();
    value.to_writer_xml(&mut xml).map_err(|source| Error::Plist {
        label: spec.label.clone(),
        source,
    })?;
    xml.push(b'\n');
    // The plist crate writes only UTF-8 and every input string is UTF-8.
    Ok(String::from_utf8(xml).expect("plist XML is UTF-8"))
}

/// The agent as a plist value; `spec` must already be validated (paths are
/// converted lossily otherwise).
fn plist_value(spec: &ServiceSpec) -> Value {
    let text = |p: &std::path::Path| Value::String(p.to_string_lossy().into_owned());
    let log = text(&spec.log_file());

    let arguments = vec![
        text(&spec.exe),
        Value::String("serve".into()),
        Value::String("--home".into()),
        text(&spec.home),
        Value::String("--host".into()),
        Value::String(spec.host.clone()),
        Value::String("--port".into()),
        Value::String(spec.port.to_string()),
    ];

    let mut keep_alive = Dictionary::new();
    keep_alive.insert("SuccessfulExit".into(), Value::Boolean(false));

    let mut environment = Dictionary::new();
    environment.insert("RUST_LOG".into(), Value::String("info".into()));

    let mut agent = Dictionary::new();
    agent.insert("Label".into(), Value::String(spec.label.clone()));
    agent.insert("ProgramArguments".into(), Value::Array(arguments));
    agent.insert("RunAtLoad".into(), Value::Boolean(true));
    agent.insert("KeepAlive".into(), Value::Dictionary(keep_alive));
    agent.insert(
        "ThrottleInterval".into(),
        Value::Integer(THROTTLE_INTERVAL_SECS.into()),
    );
    agent.insert("ExitTimeOut".into(), Value::Integer(EXIT_TIMEOUT_SECS.into()));
    agent.insert("StandardOutPath".into(), log.clone());
    agent.insert("StandardErrorPath".into(), log);
    agent.insert("EnvironmentVariables".into(), Value::Dictionary(environment));
    agent.insert("ProcessType".into(), Value::String("Background".into()));
    Value::Dictionary(agent)
}
