//! `start`: the safe start. Our healthy instance: say so, touch nothing.
//! Nothing running: spawn `serve` detached and wait until `/health` answers
//! *with the new child's PID* (any other 200 proves nothing). A stuck instance
//! (holds the lock, silent): stop it (verified; TERM, then KILL) and start
//! anew. Several `start`s at once converge on one instance: a starter whose
//! child lost the race waits for the winner and reports it. With `--port 0`
//! the child binds a port of the system's choosing: `start` reads it from the
//! child's holder record, probes it and prints it.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use single_instance::Verdict;

use super::{Stopped, observe, stop_holder};
use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::probe;

/// A log above this size is rotated to `.1` before a start.
pub const LOG_CAP_BYTES: u64 = 10 * 1024 * 1024;

/// Options of `start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Seconds to wait for the new instance to answer /health.
    #[arg(long, default_value_t = 15.0, value_name = "SECS")]
    pub timeout: f64,
    /// Seconds between SIGTERM and SIGKILL when stopping a stuck (or, with
    /// --force, a healthy) instance.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub kill_timeout: f64,
    /// Replace the instance even if it is healthy (graceful stop, then start).
    #[arg(long)]
    pub force: bool,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Runs `start`.
pub fn run(config: &Config, args: &StartArgs) -> anyhow::Result<ExitCode> {
    let mut at = Attempt::new(args);
    loop {
        let verdict = observe(config)?;
        if !matches!(verdict, Verdict::Unresponsive { .. }) {
            at.first_silent = None;
        }
        match verdict {
            Verdict::AlreadyRunning { pid, host, port, .. } if at.replaced_healthy => {
                print_running(config, pid, &host, port);
                return Ok(ExitCode::Ok);
            }
            Verdict::AlreadyRunning { pid, .. } => {
                if let Some(code) = replace_healthy(config, args, pid)? {
                    return Ok(code);
                }
                at.replaced_healthy = true;
                at.anew(args);
            }
            Verdict::Starting { pid, .. } if Instant::now() < at.deadline => {
                tracing::debug!(?pid, "another instance is starting; waiting for it");
                std::thread::sleep(Duration::from_millis(25));
            }
            Verdict::Starting { pid, addr } => return Ok(report_still_starting(pid, addr, args)),
            v @ Verdict::Unresponsive { .. } => {
                // One missed probe proves little: a stopped process is stuck at
                // once; a silent one only after STUCK_CONFIRM of silence.
                let since = *at.first_silent.get_or_insert_with(Instant::now);
                if !holder_is_stopped(config) && since.elapsed() < STUCK_CONFIRM {
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
                if let Some(code) = replace_stuck(config, args, &v)? {
                    return Ok(code);
                }
                at.anew(args);
            }
            Verdict::Start { .. } | Verdict::Retry => {
                if let Some(code) = start_ours(config, &mut at)? {
                    return Ok(code);
                }
            }
            Verdict::HeldByStranger { pid, program, path } => {
                return Ok(super::report_stranger(pid, &program, &path));
            }
            v @ (Verdict::PortHeldByOtherInstance { .. } | Verdict::PortHeldByStranger { .. }) => {
                eprintln!("memory-service: {}", v.describe(&crate::daemon::app()));
                return Ok(ExitCode::for_verdict(&v));
            }
        }
        if Instant::now() > at.deadline + Duration::from_secs(1) {
            eprintln!(
                "memory-service: gave up after {}s without a healthy instance",
                args.timeout
            );
            return Ok(ExitCode::Error);
        }
    }
}

/// Where one `start` stands between two looks at the home.
struct Attempt {
    /// When to stop waiting for a healthy instance; set anew after each
    /// instance we stopped.
    deadline: Instant,
    /// Whether a healthy instance ends `start`: at once, unless `--force`
    /// has yet to replace one.
    replaced_healthy: bool,
    /// When the holder was first seen silent (see [`STUCK_CONFIRM`]).
    first_silent: Option<Instant>,
    /// Our `serve` of this attempt, once it lost the home to another
    /// starter: we follow the winner by observing, never by a second child.
    spawned: Option<u32>,
}

impl Attempt {
    fn new(args: &StartArgs) -> Attempt {
        Attempt {
            deadline: Instant::now() + secs(args.timeout),
            replaced_healthy: !args.force,
            first_silent: None,
            spawned: None,
        }
    }

    /// After we stopped an instance (stuck, or healthy with `--force`): a
    /// new attempt, with its own deadline and child.
    fn anew(&mut self, args: &StartArgs) {
        self.deadline = Instant::now() + secs(args.timeout);
        self.first_silent = None;
        self.spawned = None;
    }
}

/// Nobody holds the home: spawns this attempt's `serve` and waits for it;
/// `Some(code)` ends `start`, `None` means our child lost the home to another
/// starter (observe again and report the winner).
fn start_ours(config: &Config, at: &mut Attempt) -> anyhow::Result<Option<ExitCode>> {
    if let Some(pid) = at.spawned {
        eprintln!(
            "memory-service: our `serve` (PID {pid}) found this home taken, but now nobody \
             holds it; not starting a second one."
        );
        eprintln!("  next: run `memory-service start` again");
        return Ok(Some(ExitCode::Error));
    }
    match spawn_and_wait(config, at.deadline)? {
        Spawned::Done(code) => Ok(Some(code)),
        Spawned::LostRace(pid) => {
            at.spawned = Some(pid);
            Ok(None)
        }
    }
}

/// `start` on our healthy instance: says so, touches nothing.
fn print_running(config: &Config, pid: u32, host: &str, port: u16) {
    println!("✅ Memory Service is already running on port {port}");
    println!("   PID:  {pid}");
    println!("   URL:  {}", probe::base_url(host, port));
    println!("   Home: {}", config.home.display());
}

/// `--force` on a healthy instance: a graceful stop, with its full drain time
/// before SIGKILL; `Some(code)` ends `start`.
fn replace_healthy(config: &Config, args: &StartArgs, pid: u32) -> anyhow::Result<Option<ExitCode>> {
    println!("Replacing the running instance (PID {pid}) as asked (--force)...");
    let grace = secs(args.kill_timeout).max(config.drain_timeout + Duration::from_secs(2));
    stop_or_report(config, grace)
}

/// A stuck instance (silent long enough, or stopped): TERM, then KILL after
/// `--kill-timeout`; `Some(code)` ends `start`.
fn replace_stuck(config: &Config, args: &StartArgs, verdict: &Verdict) -> anyhow::Result<Option<ExitCode>> {
    println!("⚠️  {}", verdict.describe(&crate::daemon::app()));
    println!(
        "   It is stuck: stopping it (SIGTERM, then SIGKILL after {}s)...",
        args.kill_timeout
    );
    stop_or_report(config, secs(args.kill_timeout))
}

/// An instance still starting when our wait ends. Never stopped: it may just
/// be slow.
fn report_still_starting(pid: Option<u32>, addr: Option<(String, u16)>, args: &StartArgs) -> ExitCode {
    eprintln!(
        "memory-service: another instance (PID {}, {}) is still starting after {}s; not touching it.",
        pid.map_or_else(|| "unknown".into(), |p| p.to_string()),
        addr.map_or_else(|| "unknown address".into(), |(h, p)| probe::base_url(&h, p)),
        args.timeout
    );
    eprintln!("  next: `memory-service status` shows when it is ready");
    ExitCode::Starting
}

/// How long an instance must stay silent before `start` calls it stuck
/// (unless it is stopped, which is proof enough).
pub const STUCK_CONFIRM: Duration = Duration::from_secs(3);

fn holder_is_stopped(config: &Config) -> bool {
    matches!(
        single_instance::holder(&config.paths().guarded()),
        Ok(single_instance::Holder::Verified { process, .. })
            if process.run_state == single_instance::process::RunState::Stopped
    )
}

/// Stops the current holder (SIGTERM, SIGKILL after `grace`); `Some(code)`
/// ends `start` with that code.
fn stop_or_report(config: &Config, grace: Duration) -> anyhow::Result<Option<ExitCode>> {
    match stop_holder(config, grace, true)? {
        Stopped::NotRunning => Ok(None),
        Stopped::Graceful(pid) => {
            println!("   Stopped PID {pid}.");
            Ok(None)
        }
        Stopped::Killed(pid) => {
            println!("   Killed PID {pid} (it ignored SIGTERM).");
            Ok(None)
        }
        other => Ok(Some(super::stop::report(config, &other))),
    }
}

/// Moves a log over the cap aside, keeping one old generation. Only a
/// regular file is moved (`symlink_metadata`: a link is never followed).
fn rotate_log(config: &Config) {
    let log = config.paths().log();
    if std::fs::symlink_metadata(&log).is_ok_and(|m| m.is_file() && m.len() > LOG_CAP_BYTES) {
        let _ = std::fs::rename(&log, log.with_extension("log.1"));
    }
}

/// Why `start` cannot write its log: the path is not a regular file.
#[derive(Debug, thiserror::Error)]
#[error("log file {path} is {kind}, not a regular file; remove it and start again")]
pub struct LogNotAFile {
    /// The log path.
    pub path: std::path::PathBuf,
    /// What is there instead.
    pub kind: single_instance::file::Kind,
}

/// Opens the log for appending (mode 0600), never following a link or
/// blocking on a FIFO at its path.
fn open_log(log: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).mode(0o600);
    let out = single_instance::file::open_regular(log, &options)
        .with_context(|| format!("opening log file {}", log.display()))?
        .map_err(|kind| LogNotAFile {
            path: log.to_path_buf(),
            kind,
        })?;
    if let Ok(Some(from)) = single_instance::file::make_private(&out) {
        tracing::warn!(path = %log.display(), "was mode {from:04o}; made it private (0600)");
    }
    Ok(out)
}

fn spawn_serve(config: &Config) -> anyhow::Result<Child> {
    let prepared = single_instance::home::prepare(&config.home, &crate::daemon::app())?;
    if let Some(from) = prepared.tightened_from {
        tracing::warn!(
            home = %config.home.display(),
            "the home directory was mode {from:04o} (others could read it); made it private (0700)"
        );
    }
    // A special file at the lock path would make `serve` exit 15 at once:
    // say so here and spawn nothing (issue 13: a FIFO or link there).
    let lock = config.paths().guarded().lock;
    if let Ok(m) = std::fs::symlink_metadata(&lock)
        && !m.is_file()
    {
        let kind = single_instance::file::Kind::of(m.file_type());
        return Err(if kind == single_instance::file::Kind::Symlink {
            single_instance::Error::LockIsSymlink { path: lock }
        } else {
            single_instance::Error::NotARegularFile {
                what: "lock file",
                path: lock,
                kind,
            }
        }
        .into());
    }
    rotate_log(config);
    let log = config.paths().log();
    let out = open_log(&log)?;
    let err = out.try_clone().context("duplicating the log handle")?;
    let exe = std::env::current_exe().context("finding this program's path")?;
    let mut cmd = Command::new(exe);
    if config.allow_remote {
        cmd.arg("--allow-remote");
    }
    cmd.arg("--home")
        .arg(&config.home)
        .arg("--host")
        .arg(&config.host)
        .arg("--port")
        .arg(config.port.to_string())
        .arg("serve")
        // The service's own settings, resolved here (flags or environment),
        // so the child runs with exactly what `start` was given.
        .arg("--embedding-model")
        .arg(&config.embedding_model);
    if let Some(projects) = &config.chatdo_projects {
        cmd.arg("--chatdo-projects").arg(projects);
    }
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("NO_COLOR", "1");
    // SAFETY: setsid() is async-signal-safe; it detaches the child from our
    // session and terminal so it outlives this command and its shell.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    cmd.spawn().context("spawning `memory-service serve`")
}

/// Whether `e` says the home (or one of our files in it) cannot be used:
/// the same exit code as `serve` gives for it.
fn is_unusable_home(e: &anyhow::Error) -> bool {
    e.downcast_ref::<LogNotAFile>().is_some()
        || matches!(
            e.downcast_ref::<single_instance::Error>(),
            Some(
                single_instance::Error::HomeUnusable { .. }
                    | single_instance::Error::NotARegularFile { .. }
                    | single_instance::Error::LockIsSymlink { .. }
            )
        )
}

/// How one spawned `serve` ended, for `start`.
enum Spawned {
    /// `start` ends with this code.
    Done(ExitCode),
    /// The child (this PID) lost the home to another starter (exit 10/11):
    /// observe again.
    LostRace(u32),
}

/// Spawns a detached `serve` and waits for it.
fn spawn_and_wait(config: &Config, deadline: Instant) -> anyhow::Result<Spawned> {
    let mut child = match spawn_serve(config) {
        Ok(child) => child,
        Err(e) if is_unusable_home(&e) => {
            eprintln!("memory-service: {e:#}");
            return Ok(Spawned::Done(ExitCode::HomeUnusable));
        }
        Err(e) => return Err(e),
    };
    let pid = child.id();
    let log = config.paths().log();
    loop {
        if let Some(status) = child.try_wait()? {
            let code = status.code().unwrap_or(1);
            if code == ExitCode::AlreadyRunning.code() as i32 || code == ExitCode::Starting.code() as i32 {
                return Ok(Spawned::LostRace(pid));
            }
            eprintln!("❌ Memory Service failed to start: `serve` (PID {pid}) exited with {status}.");
            print_log_tail(&log);
            let known = ExitCode::ALL.into_iter().find(|c| c.code() as i32 == code);
            return Ok(Spawned::Done(known.unwrap_or(ExitCode::Error)));
        }
        if let Some(port) = child_port(config, pid)
            && let Ok((200, Some(body))) = probe::get_json::<memory_api::HealthReport>(
                &config.host,
                port,
                "/health",
                probe::PROBE_TIMEOUT,
            )
            && body.pid == pid
        {
            let ready = body.state != memory_api::health::State::Starting;
            if ready || Instant::now() > deadline {
                print_started(config, pid, port, ready);
                return Ok(Spawned::Done(ExitCode::Ok));
            }
        }
        if Instant::now() > deadline {
            // Our own unreaped child: its PID cannot have been reused.
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("❌ Memory Service did not answer /health with PID {pid} in time; stopped it.");
            print_log_tail(&log);
            return Ok(Spawned::Done(ExitCode::Error));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The port our child `pid` serves on: the configured one, or with
/// `--port 0` the one it bound, from its holder record (`None` until then).
fn child_port(config: &Config, pid: u32) -> Option<u16> {
    if config.port != 0 {
        return Some(config.port);
    }
    super::recorded_port(config).and_then(|(holder, port)| (holder == pid).then_some(port))
}

/// What `start` says once its child answers `/health` on `port`.
fn print_started(config: &Config, pid: u32, port: u16, ready: bool) {
    println!("✅ Memory Service started on port {port}");
    println!("   PID:  {pid}");
    println!("   URL:  {}", probe::base_url(&config.host, port));
    println!("   Home: {}", config.home.display());
    println!("   Log:  {}", config.paths().log().display());
    if config.allow_remote {
        eprintln!(
            "⚠️  --allow-remote: it listens on {}:{port}; other machines can reach it. Every request \
             but /health needs `Authorization: Bearer <token>`, the token in {}",
            config.host,
            crate::http::auth::token_path(&config.home).display()
        );
    }
    if !ready {
        println!("   (still opening its database; `memory-service status` shows when it is ready)");
    }
}

fn print_log_tail(log: &std::path::Path) {
    eprintln!("Last 20 lines of {}:", log.display());
    for line in super::logs::tail(log, 20) {
        eprintln!("  {line}");
    }
}
