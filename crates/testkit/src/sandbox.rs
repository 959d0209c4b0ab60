//! Sandboxes and real instances. A test or benchmark must never touch the
//! user's `~/.chatdo` or port 5858, nor inherit settings from the caller's
//! environment, and two running at once must not collide. So each sandbox is
//! a temp root holding the homes, a fake `HOME` and every child's captured
//! output; children run with `MEMORY_SERVICE_*` removed; and instances start
//! on `--port 0` and are found through the port they bound, which serve
//! writes into its holder record (`<home>/memory_service.lock`). Picking a
//! free port and dropping it before the child binds would let parallel tests
//! take each other's ports.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use memory_api::HealthReport;
use memory_api::health::State;
use nix::sys::signal::Signal;
use single_instance::{HolderRecord, HomeFiles};

use crate::http::health;
use crate::poll::{DEADLINE, Pause, poll, try_poll};
use crate::process::Proc;

/// The stem of the service's files in a home (`memory_service.lock`, `.pid`).
pub const FILE_STEM: &str = "memory_service";

/// A temp root for one test (or one benchmark run): the default home, more
/// homes on demand, the children's `HOME`, and their captured output. On
/// drop it kills whatever verifiably holds the default home (instances that
/// `start` detached are not our children) and, when a test is failing, prints
/// each command with its stdout and stderr and the home's listing.
pub struct Sandbox {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The default home (`<root>/home`, created by the service).
    pub home: PathBuf,
    rust_log: Option<String>,
    logs: Mutex<Vec<(String, PathBuf, PathBuf)>>,
    counter: AtomicUsize,
}

impl Sandbox {
    /// A sandbox for the service binary `bin` (integration tests pass
    /// `env!("CARGO_BIN_EXE_memory-service")`), whose children log at `info`.
    pub fn new(bin: impl Into<PathBuf>) -> Sandbox {
        Sandbox::try_new(bin, "memory-service-test-").expect("creating a sandbox")
    }

    /// A sandbox whose temp root's name starts with `prefix`.
    pub fn try_new(bin: impl Into<PathBuf>, prefix: &str) -> Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("creating a temp directory")?;
        std::fs::create_dir(dir.path().join("user-home")).context("creating the fake $HOME")?;
        Ok(Sandbox {
            bin: bin.into(),
            home: dir.path().join("home"),
            dir,
            rust_log: Some("info".into()),
            logs: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        })
    }

    /// Children get no `RUST_LOG` at all (the binary's default level): the
    /// same log volume on every machine, as benchmarks need.
    pub fn without_rust_log(mut self) -> Sandbox {
        self.rust_log = None;
        self
    }

    /// The temp root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The service binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A fresh home path under the root (not created: the service creates it).
    pub fn new_home(&self) -> PathBuf {
        self.path().join(format!("home-{}", self.next()))
    }

    /// The default home's lock file (which holds the holder record).
    pub fn lock_file(&self) -> PathBuf {
        self.home.join(format!("{FILE_STEM}.lock"))
    }

    /// The default home's PID file.
    pub fn pid_file(&self) -> PathBuf {
        self.home.join(format!("{FILE_STEM}.pid"))
    }

    /// A command for the service binary with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_for(self.bin.as_os_str(), args)
    }

    /// A command for any program with a clean environment: no
    /// `MEMORY_SERVICE_*` of the caller, `HOME` inside the sandbox (so
    /// `~/.chatdo` is never touched), `NO_COLOR`, stdin from /dev/null.
    pub fn command_for(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MEMORY_SERVICE_") {
                cmd.env_remove(k);
            }
        }
        match &self.rust_log {
            Some(level) => cmd.env("RUST_LOG", level),
            None => cmd.env_remove("RUST_LOG"),
        };
        cmd.env("HOME", self.path().join("user-home"))
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Points `cmd`'s stdout and stderr at new files under the root (dumped
    /// if the test fails, `label` naming them); returns their paths. Apart
    /// from [`Proc::spawn`], so a benchmark's clock starts at the spawn.
    pub fn capture(&self, cmd: &mut Command, label: &str) -> Result<(PathBuf, PathBuf)> {
        let n = self.next();
        let out = self.path().join(format!("proc-{n}.stdout"));
        let err = self.path().join(format!("proc-{n}.stderr"));
        cmd.stdout(File::create(&out).context("creating a stdout file")?)
            .stderr(File::create(&err).context("creating a stderr file")?);
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).push((
            format!("#{n}: {label}"),
            out.clone(),
            err.clone(),
        ));
        Ok((out, err))
    }

    /// Spawns `cmd` with stdout and stderr captured (see [`Sandbox::capture`]).
    pub fn try_spawn_command(&self, mut cmd: Command, label: &str) -> Result<Proc> {
        let (out, err) = self.capture(&mut cmd, label)?;
        let p = Proc::spawn(cmd, out, err)?;
        if let Some(entry) = (self.logs.lock().unwrap_or_else(|e| e.into_inner()))
            .iter_mut()
            .find(|(_, o, _)| *o == p.stdout)
        {
            entry.0 = format!("{} (pid {})", entry.0, p.pid());
        }
        Ok(p)
    }

    /// [`Sandbox::try_spawn_command`] that panics on failure.
    pub fn spawn_command(&self, cmd: Command, label: &str) -> Proc {
        self.try_spawn_command(cmd, label)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Spawns the binary with `args` and extra `envs`.
    pub fn spawn(&self, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = self.command(args);
        cmd.envs(envs.iter().copied());
        self.spawn_command(cmd, &format!("memory-service {}", args.join(" ")))
    }

    /// Spawns another program (e.g. `unshare` wrapping the binary) with the
    /// same clean environment.
    pub fn spawn_program(&self, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = self.command_for(program, args);
        cmd.envs(envs.iter().copied());
        self.spawn_command(cmd, &format!("{program} {}", args.join(" ")))
    }

    /// The command for `--home home --port port serve serve_args...`.
    pub fn serve_command(&self, home: &Path, port: u16, serve_args: &[&OsStr]) -> Command {
        let mut cmd = self.command(&[]);
        cmd.arg("--home")
            .arg(home)
            .arg("--port")
            .arg(port.to_string())
            .arg("serve")
            .args(serve_args);
        cmd
    }

    /// Spawns `serve` on the default home and `port` (0: any free port; find
    /// it with [`Proc::wait_port`]).
    pub fn serve(&self, port: u16) -> Proc {
        self.serve_with(port, &[])
    }

    /// [`Sandbox::serve`] with extra `envs`.
    pub fn serve_with(&self, port: u16, envs: &[(&str, &str)]) -> Proc {
        let mut cmd = self.serve_command(&self.home, port, &[]);
        cmd.envs(envs.iter().copied());
        self.spawn_command(cmd, &format!("memory-service --home HOME --port {port} serve"))
    }

    /// Starts `serve` on the default home and port 0, and waits until it is
    /// ready; returns the child and its port.
    pub fn start(&self) -> (Proc, u16) {
        self.start_with(&[])
    }

    /// [`Sandbox::start`] with extra `envs`.
    pub fn start_with(&self, envs: &[(&str, &str)]) -> (Proc, u16) {
        let mut p = self.serve_with(0, envs);
        let port = p.wait_port(&self.home);
        p.wait_ready(port);
        (p, port)
    }

    /// Runs a client command (`start`, `stop`, ...) on the default home and
    /// `port` to completion; returns (exit code, stdout, stderr).
    pub fn cli(&self, port: u16, args: &[&str]) -> (i32, String, String) {
        self.cli_env(port, args, &[])
    }

    /// [`Sandbox::cli`] with extra `envs`.
    pub fn cli_env(&self, port: u16, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let home = self.home.display().to_string();
        let port = port.to_string();
        let mut all = vec!["--home", home.as_str(), "--port", port.as_str()];
        all.extend_from_slice(args);
        let mut p = self.spawn(&all, envs);
        let code = p.wait_code();
        (code, p.stdout_text(), p.stderr_text())
    }

    /// The port `pid` serves on, read from the default home's holder record;
    /// panics unless the record names `pid` with a bound port (it does once
    /// `start` has printed that PID, or [`Proc::wait_port`] returned).
    pub fn port_of(&self, pid: u32) -> u16 {
        bound_port(&self.home, pid).unwrap_or_else(|| {
            panic!(
                "the holder record of {} names no port of pid {pid}",
                self.home.display()
            )
        })
    }

    /// The PID in the default home's PID file.
    pub fn pid_from_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()
    }

    /// Kills whatever verifiably holds the default home, and waits until the
    /// lock is free.
    pub fn kill_holder(&self) {
        let files = HomeFiles::new(&self.home, FILE_STEM);
        if let Ok(single_instance::Holder::Verified { record, process }) = single_instance::holder(&files) {
            let _ = single_instance::signal_holder(&files, record.pid, process.start_time, Signal::SIGKILL);
            poll("the killed holder to release the lock", DEADLINE, || {
                (!self.lock_held()).then_some(())
            });
        }
    }

    /// Whether anything holds the default home's lock.
    pub fn lock_held(&self) -> bool {
        let files = HomeFiles::new(&self.home, FILE_STEM);
        single_instance::inspect(&files).ok().flatten().is_some()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill_holder();
        if !std::thread::panicking() {
            return;
        }
        eprintln!("==== test failed; sandbox {}", self.path().display());
        for (what, out, err) in self.logs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            eprintln!("---- {what}");
            eprintln!("stdout:\n{}", std::fs::read_to_string(out).unwrap_or_default());
            eprintln!("stderr:\n{}", std::fs::read_to_string(err).unwrap_or_default());
        }
        eprintln!("---- home listing:");
        if let Ok(rd) = std::fs::read_dir(&self.home) {
            for e in rd.flatten() {
                let content = std::fs::read_to_string(e.path()).unwrap_or_default();
                eprintln!(
                    "{}: {:?}",
                    e.path().display(),
                    content.chars().take(300).collect::<String>()
                );
            }
        }
    }
}

/// The port `pid` serves on, from the holder record in `home`'s lock file:
/// `None` until that process holds the home and has bound (serve claims with
/// the configured port, 0 here, and rewrites the record once bound).
pub fn bound_port(home: &Path, pid: u32) -> Option<u16> {
    let text = std::fs::read_to_string(home.join(format!("{FILE_STEM}.lock"))).ok()?;
    let record = HolderRecord::parse(&text)?;
    (record.pid == pid && record.port != 0).then_some(record.port)
}

/// Waits until `/health` on `port` answers with `pid` and state `ready`
/// (data requests wait for the open while it is `starting`); panics after
/// [`DEADLINE`]. For instances that are not our children (`start` detaches
/// them); for our own, [`Proc::wait_ready`] also fails when the child exits.
pub fn wait_ready(port: u16, pid: u32) -> HealthReport {
    poll(&format!("pid {pid} to be ready on port {port}"), DEADLINE, || {
        health(port).filter(|h| h.pid == pid && h.state == State::Ready)
    })
}

impl Proc {
    /// The port this `serve` bound, read from the holder record in `home`;
    /// fails if the child exits first or after `deadline`.
    pub fn try_wait_port(&mut self, home: &Path, deadline: Duration, pause: Pause) -> Result<u16> {
        let pid = self.pid();
        try_poll(&format!("pid {pid} to bind a port"), deadline, pause, || {
            if let Some(port) = bound_port(home, pid) {
                return Ok(Some(port));
            }
            self.check_running("binding a port")?;
            Ok(None)
        })
    }

    /// [`Proc::try_wait_port`] with [`DEADLINE`]; panics on failure.
    pub fn wait_port(&mut self, home: &Path) -> u16 {
        self.try_wait_port(home, DEADLINE, Pause::BACKOFF)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Waits until `/health` on `port` answers with this child's pid and
    /// state `ready`; fails if the child exits first or after `deadline`.
    pub fn try_wait_ready(&mut self, port: u16, deadline: Duration, pause: Pause) -> Result<HealthReport> {
        let pid = self.pid();
        try_poll(
            &format!("pid {pid} to be ready on port {port}"),
            deadline,
            pause,
            || {
                self.check_running("serving")?;
                Ok(health(port).filter(|h| h.pid == pid && h.state == State::Ready))
            },
        )
    }

    /// [`Proc::try_wait_ready`] with [`DEADLINE`]; panics on failure.
    pub fn wait_ready(&mut self, port: u16) -> HealthReport {
        self.try_wait_ready(port, DEADLINE, Pause::BACKOFF)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, port: u16) -> HolderRecord {
        HolderRecord {
            pid,
            process_start: 1_700_000_000,
            instance_id: "abc".into(),
            host: "127.0.0.1".into(),
            port,
            home: PathBuf::from("/h"),
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn the_port_is_read_only_from_a_whole_record_of_that_pid_once_bound() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(format!("{FILE_STEM}.lock"));
        assert_eq!(bound_port(dir.path(), 7), None, "no lock file yet");
        std::fs::write(&lock, record(7, 0).to_text()).unwrap();
        assert_eq!(
            bound_port(dir.path(), 7),
            None,
            "claimed with --port 0, not bound yet"
        );
        let text = record(7, 41234).to_text();
        std::fs::write(&lock, &text[..text.len() - 3]).unwrap();
        assert_eq!(bound_port(dir.path(), 7), None, "torn");
        std::fs::write(&lock, &text).unwrap();
        assert_eq!(bound_port(dir.path(), 8), None, "another process's record");
        assert_eq!(bound_port(dir.path(), 7), Some(41234));
    }

    #[test]
    fn children_get_a_home_inside_the_sandbox_and_no_service_settings() {
        let sb = Sandbox::new("/bin/true");
        let cmd = sb.command(&["x"]);
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                let v = v.map(|v| v.to_string_lossy().into_owned());
                (k.to_string_lossy().into_owned(), v)
            })
            .collect();
        let home = envs
            .iter()
            .find(|(k, _)| k == "HOME")
            .and_then(|(_, v)| v.clone());
        assert_eq!(home, Some(sb.path().join("user-home").display().to_string()));
        assert!(sb.path().join("user-home").is_dir());
        for (k, v) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("MEMORY_SERVICE_") {
                assert!(envs.contains(&(k.clone(), None)), "{k}={v:?} is passed on");
            }
        }
    }
}
