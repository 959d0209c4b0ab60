//! The service's processes as the benchmarks see them: a sandbox (temp homes,
//! a clean environment, free ports), a `Service` guard that SIGKILLs and reaps
//! its child on drop, a signal thread that does the same for every live child
//! on Ctrl-C or SIGTERM, and `/health` probes. It measures nothing itself:
//! callers take the timestamps, so every benchmark times the same way.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;
use serde::Deserialize;

/// The hang guard for anything we wait on: generous, never a measurement.
pub const HANG_GUARD: Duration = Duration::from_secs(30);
/// Pause between `/health` attempts while waiting for a start. A refused
/// connect costs tens of microseconds, so this is the timing resolution.
pub const HEALTH_POLL: Duration = Duration::from_millis(1);
/// Pause between `try_wait` calls while waiting for an exit (a cheap syscall;
/// a short pause keeps exit times honest without a platform-specific wait).
pub const EXIT_POLL: Duration = Duration::from_micros(250);

/// Pids of children spawned and not yet reaped. Only an unreaped pid may be
/// signalled (a reaped one can be reused by a stranger), so reaping and
/// removal happen under this lock, and the signal thread kills under it too.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Spawners hold it shared from `spawn` until the pid is in [`LIVE`]; the
/// signal thread takes it exclusively, so it never misses a child in flight.
/// (Shared, not a mutex: racing starters must not queue behind each other.)
static SPAWNING: RwLock<()> = RwLock::new(());
/// Temp roots to delete if a signal ends the run before their `Drop`.
static ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

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
            let _no_more_spawns = SPAWNING.write().unwrap_or_else(|e| e.into_inner());
            // Holding the lock until exit: no guard reaps (and frees a pid) meanwhile.
            let pids = live();
            for &pid in pids.iter() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            }
            for root in ROOTS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = std::fs::remove_dir_all(root);
            }
            eprintln!(
                "memory-service-bench: signal {sig}: killed {} child process(es), removed temp files",
                pids.len()
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

/// A port nobody listens on right now (bind port 0 and read it back). Another
/// program could take it before the service binds; rare, and it would show
/// up as a failed start, not as a wrong number.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One temp root per benchmark run, holding every home, every child's `HOME`
/// and every child's captured output. Removed on drop (or by the signal thread).
pub struct Sandbox {
    bin: PathBuf,
    root: tempfile::TempDir,
    counter: AtomicUsize,
}

impl Sandbox {
    /// A sandbox for the service binary `bin`.
    pub fn new(bin: &Path) -> Result<Sandbox> {
        let root = tempfile::Builder::new()
            .prefix("memory-service-bench-")
            .tempdir()
            .context("creating a temp directory")?;
        ROOTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(root.path().to_path_buf());
        std::fs::create_dir(root.path().join("user-home")).context("creating the fake $HOME")?;
        Ok(Sandbox {
            bin: bin.to_path_buf(),
            root,
            counter: AtomicUsize::new(0),
        })
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The temp root: scratch files of a benchmark go under it.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A fresh home path (not created: the service creates its home).
    pub fn new_home(&self) -> PathBuf {
        self.root.path().join(format!("home-{}", self.next()))
    }

    /// The command for `serve` on `home` and `port`, with a clean environment:
    /// no `MEMORY_SERVICE_*` (they would override nothing we pass, but could
    /// add settings), no `RUST_LOG` (same log volume on every machine), and
    /// `HOME` inside the sandbox so the real `~/.chatdo` is never touched.
    /// Output goes to files, so spawn cost does not depend on a terminal.
    pub fn serve_command(&self, home: &Path, port: u16) -> Result<(Command, PathBuf)> {
        self.serve_command_with(home, port, &[])
    }

    /// [`Sandbox::serve_command`] with `serve_args` after `serve` (e.g.
    /// `--embedding-model DIR`).
    pub fn serve_command_with(
        &self,
        home: &Path,
        port: u16,
        serve_args: &[&std::ffi::OsStr],
    ) -> Result<(Command, PathBuf)> {
        let n = self.next();
        let stdout = self.root.path().join(format!("proc-{n}.stdout"));
        let stderr = self.root.path().join(format!("proc-{n}.stderr"));
        let mut cmd = Command::new(&self.bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MEMORY_SERVICE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env("HOME", self.root.path().join("user-home"))
            .env("NO_COLOR", "1")
            .arg("--home")
            .arg(home)
            .arg("--port")
            .arg(port.to_string())
            .arg("serve")
            .args(serve_args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).context("creating a stdout file")?)
            .stderr(File::create(&stderr).context("creating a stderr file")?);
        Ok((cmd, stderr))
    }
}

/// A spawned `memory-service` of ours. Dropping it SIGKILLs and reaps the
/// child if it is still unreaped, so no path (error, panic) leaves one running.
pub struct Service {
    child: Child,
    status: Option<ExitStatus>,
    stderr: PathBuf,
}

impl Service {
    /// Spawns `cmd` (from [`Sandbox::serve_command`]) and registers the pid.
    /// The caller's timestamp just before this call is the start.
    pub fn spawn(mut cmd: Command, stderr: PathBuf) -> Result<Service> {
        let _spawning = SPAWNING.read().unwrap_or_else(|e| e.into_inner());
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
        live().insert(child.id() as i32);
        Ok(Service {
            child,
            status: None,
            stderr,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig`, unless the child was already reaped.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        if self.status.is_none() {
            kill(Pid::from_raw(self.pid() as i32), sig)
                .with_context(|| format!("sending {sig} to pid {}", self.pid()))?;
        }
        Ok(())
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            let mut pids = live();
            self.status = self.child.try_wait().context("checking a child's exit")?;
            if self.status.is_some() {
                pids.remove(&(self.child.id() as i32));
            }
        }
        Ok(self.status)
    }

    /// Waits for the exit (polling every [`EXIT_POLL`], up to [`HANG_GUARD`]).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let end = Instant::now() + HANG_GUARD;
        loop {
            if let Some(s) = self.try_status()? {
                return Ok(s);
            }
            if Instant::now() > end {
                bail!(
                    "pid {} did not exit within {HANG_GUARD:?}\n{}",
                    self.pid(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// The last lines of the child's stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        format!("stderr of pid {} (last lines):\n{tail}", self.pid())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let mut pids = live();
        let _ = self.child.kill();
        let _ = self.child.wait();
        pids.remove(&(self.child.id() as i32));
    }
}

/// The exit code, or an error naming the signal that killed the process.
pub fn exit_code(status: ExitStatus) -> Result<i32> {
    match status.code() {
        Some(c) => Ok(c),
        None => bail!("killed by a signal: {status}"),
    }
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

/// Polls `/health` every [`HEALTH_POLL`] until `svc` answers with its own pid
/// and state "ready". Fails if the child exits first, if another pid answers
/// on the port for the whole hang guard, or after [`HANG_GUARD`].
pub fn wait_healthy(agent: &ureq::Agent, svc: &mut Service, port: u16) -> Result<Healthy> {
    let end = Instant::now() + HANG_GUARD;
    let mut answered = None;
    let mut last = None;
    loop {
        if let Some(h) = health(agent, port) {
            let now = Instant::now();
            if h.pid == svc.pid() {
                let answered = *answered.get_or_insert(now);
                if h.state == "ready" {
                    return Ok(Healthy { answered, ready: now });
                }
            }
            last = Some(h);
        }
        if let Some(status) = svc.try_status()? {
            bail!(
                "pid {} exited ({status}) before answering /health on port {port}\n{}",
                svc.pid(),
                svc.stderr_tail()
            );
        }
        if Instant::now() > end {
            bail!(
                "pid {} did not become ready on port {port} within {HANG_GUARD:?} (last answer: {last:?})\n{}",
                svc.pid(),
                svc.stderr_tail()
            );
        }
        std::thread::sleep(HEALTH_POLL);
    }
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
