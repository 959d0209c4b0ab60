//! The service's processes as the benchmarks see them, over the shared
//! harness (`testkit`: sandboxes, children killed and reaped on drop, the
//! deadline poll, the port read back from the holder record): a signal thread
//! that kills every live child on Ctrl-C or SIGTERM, and `/health` probes
//! that tolerate older binaries. It measures nothing itself: callers take
//! the timestamps, so every benchmark times the same way.

use std::io::Read;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use serde::Deserialize;
pub use testkit::{Pause, Sandbox, exit_code, try_poll};

/// A spawned `memory-service` of ours, killed and reaped on drop (testkit's).
pub type Service = testkit::Proc;

/// The hang guard for anything we wait on: generous, never a measurement.
pub const HANG_GUARD: Duration = Duration::from_secs(30);
/// Pause between `/health` attempts while waiting for a start. A refused
/// connect costs tens of microseconds, so this is the timing resolution.
pub const HEALTH_POLL: Duration = Duration::from_millis(1);
/// Pause between `try_wait` calls while waiting for an exit (a cheap syscall;
/// a short pause keeps exit times honest without a platform-specific wait).
pub const EXIT_POLL: Duration = Duration::from_micros(250);

/// Temp roots to delete if a signal ends the run before their `Drop`.
static ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The write end of the signal pipe, for the handler (-1 until installed).
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

/// The signal handler: one byte (the signal number) down the pipe. `write` is
/// async-signal-safe; the thread reading the pipe does the real work.
extern "C" fn on_signal(sig: nix::libc::c_int) {
    let byte = sig as u8;
    // SAFETY: a plain write of one byte from a live local to an open fd.
    unsafe { nix::libc::write(SIGNAL_FD.load(Ordering::Relaxed), (&raw const byte).cast(), 1) };
}

/// Makes SIGINT, SIGTERM and SIGHUP kill every live child and delete the temp
/// roots before exiting (128 + the signal). A handler plus a pipe, not a
/// blocked mask and `sigwait`: children inherit a blocked mask across exec
/// (std does not reset it), and a service that cannot see SIGTERM never stops.
/// Handled signals are reset to the default on exec, so children are unaffected.
pub fn clean_up_on_signals() -> Result<()> {
    // std creates both ends close-on-exec: no child inherits them.
    let (mut rx, tx) = std::os::unix::net::UnixStream::pair().context("creating the signal pipe")?;
    SIGNAL_FD.store(tx.into_raw_fd(), Ordering::Relaxed);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = [0u8];
            if rx.read_exact(&mut byte).is_err() {
                return;
            }
            let sig = i32::from(byte[0]);
            // Blocks spawns and reaps for good: no pid is freed meanwhile.
            let killed = testkit::kill_all_children();
            for root in ROOTS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = std::fs::remove_dir_all(root);
            }
            eprintln!(
                "memory-service-bench: signal {sig}: killed {killed} child process(es), removed temp files"
            );
            std::process::exit(128 + sig);
        })
        .context("starting the signal thread")?;
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only loads an atomic and calls write(2).
        unsafe { sigaction(s, &action) }.with_context(|| format!("handling {s}"))?;
    }
    Ok(())
}

/// The binary to measure: `explicit`, or `memory-service` next to our own
/// executable (so `target/release/memory-service-bench` measures
/// `target/release/memory-service`). Fails with the command that builds it.
pub fn resolve_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    let bin = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("finding this executable's path")?
            .with_file_name("memory-service"),
    };
    if !bin.is_file() {
        bail!(
            "no memory-service binary at {}\n\
             build it with `cargo build --release -p memory-service`, or pass --bin PATH",
            bin.display()
        );
    }
    bin.canonicalize()
        .with_context(|| format!("resolving {}", bin.display()))
}

/// A port nobody listens on right now (bind port 0 and read it back), only
/// for the start race, whose starters must all be given the same port before
/// any of them runs. Another program could take it before the service binds;
/// that shows up as a failed round, not as a wrong number. Every other
/// instance starts on `--port 0` and is found through its holder record.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The sandbox of one benchmark run for the service binary `bin` (one temp
/// root holding every home, every child's `HOME` and captured output),
/// whose children get no `RUST_LOG` (the same log volume on every machine).
/// Its root is removed on drop, or by the signal thread.
pub fn sandbox(bin: &Path) -> Result<Sandbox> {
    let sandbox = Sandbox::try_new(bin, "memory-service-bench-")?.without_rust_log();
    ROOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(sandbox.path().to_path_buf());
    Ok(sandbox)
}

/// The command for `serve` on `home` and `port` (0: any free port) with
/// `serve_args` after `serve`, its output captured to files: ready to spawn,
/// so the caller's timestamp just before [`Service::spawn`] is the start.
pub fn serve_command(
    sandbox: &Sandbox,
    home: &Path,
    port: u16,
    serve_args: &[&std::ffi::OsStr],
) -> Result<(Command, PathBuf, PathBuf)> {
    let mut cmd = sandbox.serve_command(home, port, serve_args);
    let (out, err) = sandbox.capture(&mut cmd, &format!("serve --home {}", home.display()))?;
    Ok((cmd, out, err))
}

/// Spawns `serve` on `home` (port 0) and waits until it answers ready;
/// returns it, its port and when it answered.
pub fn start(
    sandbox: &Sandbox,
    home: &Path,
    serve_args: &[&std::ffi::OsStr],
) -> Result<(Service, u16, Healthy)> {
    let (cmd, out, err) = serve_command(sandbox, home, 0, serve_args)?;
    let mut svc = Service::spawn(cmd, out, err)?;
    let (port, healthy) = wait_healthy(&agent(), &mut svc, home)?;
    Ok((svc, port, healthy))
}

/// Waits for `svc` to exit (polling every [`EXIT_POLL`], up to [`HANG_GUARD`]).
pub fn wait(svc: &mut Service) -> Result<ExitStatus> {
    svc.wait_for_exit(HANG_GUARD, Pause::every(EXIT_POLL))
}

/// The fields of `/health` we check.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    /// Must be "memory-service": a 200 from anything else is not ours.
    pub service: String,
    /// The pid of the instance that answered.
    pub pid: u32,
    /// "starting", "ready" or "degraded".
    pub state: String,
    /// Semantic search (issue 9); `None` from a binary that predates it.
    #[serde(default)]
    pub semantic: Option<Semantic>,
}

/// `/health`'s `semantic` object: whether the embedding model is loaded and
/// how far the embedding backlog is. Every field is optional so a binary that
/// sends fewer fields still parses (a missing count reads as unknown).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct Semantic {
    /// "off", "loading", "ready" or "error".
    #[serde(default)]
    pub state: Option<String>,
    /// The model's name when one is configured.
    #[serde(default)]
    pub model: Option<String>,
    /// Why semantic search is off or failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// Chunks waiting for a vector.
    #[serde(default)]
    pub pending_chunks: Option<u64>,
    /// Chunks holding a vector.
    #[serde(default)]
    pub embedded_chunks: Option<u64>,
}

impl Semantic {
    /// The state, or "?" when absent.
    pub fn state(&self) -> &str {
        self.state.as_deref().unwrap_or("?")
    }
}

/// An HTTP agent for `/health`: keeps connections alive, treats every status
/// as an answer (we check it), and gives up on a silent server after 2 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into()
}

/// One `GET /health` on 127.0.0.1:`port`: `Some` for a 200 from
/// memory-service, `None` for no answer (refused, reset, other status).
pub fn health(agent: &ureq::Agent, port: u16) -> Option<Health> {
    let mut resp = agent.get(format!("http://127.0.0.1:{port}/health")).call().ok()?;
    if resp.status() != 200 {
        return None;
    }
    let h: Health = resp.body_mut().read_json().ok()?;
    (h.service == "memory-service").then_some(h)
}

/// When the service answered: the first 200 naming its pid, and the first
/// answer with `state: "ready"` (the same instant when it starts ready).
#[derive(Debug, Clone, Copy)]
pub struct Healthy {
    /// The first 200 from `/health` with the child's pid.
    pub answered: Instant,
    /// The first such answer with `state: "ready"`.
    pub ready: Instant,
}

/// Polls every [`HEALTH_POLL`]: first the holder record in `home` for the
/// port `svc` bound, then `/health` on it until `svc` answers with its own
/// pid and state "ready"; returns the port and when. Fails if the child exits
/// first, if another pid answers on the port for the whole hang guard, or
/// after [`HANG_GUARD`].
pub fn wait_healthy(agent: &ureq::Agent, svc: &mut Service, home: &Path) -> Result<(u16, Healthy)> {
    let pid = svc.pid();
    let mut port = None;
    let mut answered = None;
    let mut last = None;
    let waited = try_poll(
        &format!("pid {pid} to become ready"),
        HANG_GUARD,
        Pause::every(HEALTH_POLL),
        || {
            let Some(p) = port.or_else(|| testkit::bound_port(home, pid)) else {
                svc.check_running("binding a port")?;
                return Ok(None);
            };
            port = Some(p);
            if let Some(h) = health(agent, p) {
                let now = Instant::now();
                if h.pid == pid {
                    let answered = *answered.get_or_insert(now);
                    if h.state == "ready" {
                        return Ok(Some((p, Healthy { answered, ready: now })));
                    }
                }
                last = Some(h);
            }
            svc.check_running(&format!("answering /health on port {p}"))?;
            Ok(None)
        },
    );
    waited.map_err(|e| e.context(format!("last answer: {last:?}\n{}", svc.stderr_tail())))
}

/// The resident set of `pid`, in MiB (sysinfo reports bytes).
pub fn resident_mib(pid: u32) -> Result<f64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let pid = sysinfo::Pid::from_u32(pid);
    let mut sys = System::new().context("reading system information")?;
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    let p = sys
        .process(pid)
        .with_context(|| format!("pid {pid} not found by sysinfo"))?;
    Ok(p.memory() as f64 / (1024.0 * 1024.0))
}

/// "linux x86_64, 2 CPUs": what the numbers were measured on.
pub fn host_description() -> String {
    format!(
        "{} {}, {} CPUs",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_with_and_without_semantic() {
        let old: Health =
            serde_json::from_str(r#"{"status":"ok","service":"memory-service","pid":7,"state":"ready"}"#)
                .unwrap();
        assert!(old.semantic.is_none());
        let new: Health = serde_json::from_str(
            r#"{"status":"ok","service":"memory-service","pid":7,"state":"ready",
                "semantic":{"state":"ready","model":"all-MiniLM-L6-v2","reason":null,
                            "pending_chunks":0,"embedded_chunks":2760}}"#,
        )
        .unwrap();
        let s = new.semantic.unwrap();
        assert_eq!(
            (s.state(), s.model.as_deref(), s.pending_chunks, s.embedded_chunks),
            ("ready", Some("all-MiniLM-L6-v2"), Some(0), Some(2760))
        );
        let partial: Health = serde_json::from_str(
            r#"{"service":"memory-service","pid":7,"state":"ready","semantic":{"state":"off","reason":"no model"}}"#,
        )
        .unwrap();
        let s = partial.semantic.unwrap();
        assert_eq!((s.state(), s.pending_chunks), ("off", None));
    }
}
