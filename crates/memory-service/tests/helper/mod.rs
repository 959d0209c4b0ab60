//! Test helpers: every test gets its own temp home and free ports, spawns the
//! real binary, and on failure dumps each command, its stdout and stderr, and
//! the home's listing. Children are killed on drop: no test leaves anything
//! running. No sleeps: we poll with a deadline, or wait on the child.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The guard against a hung test: generous, never a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memory-service")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub fn poll<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A temp directory for one test, holding the home and the captured output.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    logs: Mutex<Vec<(String, PathBuf, PathBuf)>>,
    counter: Mutex<usize>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        Sandbox {
            home,
            dir,
            logs: Mutex::new(Vec::new()),
            counter: Mutex::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn lock_file(&self) -> PathBuf {
        self.home.join("memory_service.lock")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.home.join("memory_service.pid")
    }

    /// A command for the binary with a clean environment (no MEMORY_SERVICE_*
    /// from the caller, HOME inside the sandbox so ~/.chatdo is never touched).
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_for(bin(), args)
    }

    /// Like [`Sandbox::command`], for any program.
    pub fn command_for(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars() {
            if k.starts_with("MEMORY_SERVICE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", self.path().join("user-home"));
        cmd.env("RUST_LOG", "info");
        cmd.env("NO_COLOR", "1");
        cmd.args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Spawns the binary with `args`, capturing output to files.
    pub fn spawn(&self, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = self.command(args);
        cmd.envs(envs.iter().copied());
        self.spawn_command(cmd, &format!("memory-service {}", args.join(" ")))
    }

    /// Spawns another program (e.g. `unshare` wrapping the binary) with the
    /// same clean environment, capturing output to files.
    pub fn spawn_program(&self, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = self.command_for(program, args);
        cmd.envs(envs.iter().copied());
        self.spawn_command(cmd, &format!("{program} {}", args.join(" ")))
    }

    fn spawn_command(&self, mut cmd: Command, label: &str) -> Proc {
        let n = {
            let mut c = self.counter.lock().unwrap();
            *c += 1;
            *c
        };
        let out = self.path().join(format!("proc-{n}.stdout"));
        let err = self.path().join(format!("proc-{n}.stderr"));
        cmd.stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        let child = cmd.spawn().unwrap();
        self.logs.lock().unwrap().push((
            format!("#{n} (pid {}): {label}", child.id()),
            out.clone(),
            err.clone(),
        ));
        Proc {
            child,
            stdout: out,
            stderr: err,
            status: None,
        }
    }

    /// Spawns `serve` on this sandbox's home.
    pub fn serve(&self, port: u16) -> Proc {
        self.serve_with(port, &[])
    }

    pub fn serve_with(&self, port: u16, envs: &[(&str, &str)]) -> Proc {
        let home = self.home.display().to_string();
        let port = port.to_string();
        self.spawn(&["--home", &home, "--port", &port, "serve"], envs)
    }
}

impl Sandbox {
    /// Runs a client command (`start`, `stop`, ...) on this home and port to
    /// completion; returns (exit code, stdout, stderr).
    pub fn cli(&self, port: u16, args: &[&str]) -> (i32, String, String) {
        self.cli_env(port, args, &[])
    }

    pub fn cli_env(&self, port: u16, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
        let home = self.home.display().to_string();
        let port = port.to_string();
        let mut all = vec!["--home", home.as_str(), "--port", port.as_str()];
        all.extend_from_slice(args);
        let mut p = self.spawn(&all, envs);
        let code = p.wait_code();
        (code, p.stdout_text(), p.stderr_text())
    }

    /// The PID in the home's PID file.
    pub fn pid_from_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()
    }

    /// Kills whatever verifiably holds this sandbox's home (detached instances
    /// that `start` spawned are not our children).
    pub fn kill_holder(&self) {
        let files = single_instance::HomeFiles::new(&self.home, "memory_service");
        if let Ok(single_instance::Holder::Verified { record, process }) = single_instance::holder(&files) {
            let _ = single_instance::signal_holder(&files, record.pid, process.start_time, Signal::SIGKILL);
            poll("the killed holder to release the lock", DEADLINE, || {
                single_instance::inspect(&files)
                    .ok()
                    .flatten()
                    .is_none()
                    .then_some(())
            });
        }
    }

    /// Whether anything holds this sandbox's lock.
    pub fn lock_held(&self) -> bool {
        let files = single_instance::HomeFiles::new(&self.home, "memory_service");
        single_instance::inspect(&files).ok().flatten().is_some()
    }
}

/// The `PID:` value printed by `start`.
pub fn printed_pid(stdout: &str) -> Option<u32> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("PID:"))
        .and_then(|p| p.trim().parse().ok())
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill_holder();
        if !std::thread::panicking() {
            return;
        }
        eprintln!("==== test failed; sandbox {}", self.path().display());
        for (what, out, err) in self.logs.lock().unwrap().iter() {
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

/// A spawned process of ours; killed (SIGKILL) on drop if still running.
pub struct Proc {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Has it exited? (Reaps it if so.)
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits for exit (with the hang guard) and returns the exit code.
    pub fn wait_code(&mut self) -> i32 {
        let pid = self.pid();
        let status = poll(&format!("pid {pid} to exit"), DEADLINE, || self.try_status());
        status
            .code()
            .unwrap_or_else(|| panic!("pid {pid} died by a signal: {status:?}"))
    }

    /// Waits for exit by any means (a signal included).
    pub fn wait_code_or_signal(&mut self) -> ExitStatus {
        let pid = self.pid();
        poll(&format!("pid {pid} to exit"), DEADLINE, || self.try_status())
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client that returns every status as is, never uses a proxy, and gives
/// up after 10 s (a hang guard).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent()
}

/// POSTs JSON; `Err` when nothing answered (the server died).
pub fn try_post(port: u16, path: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value), String> {
    let mut r = agent()
        .post(&format!("http://127.0.0.1:{port}{path}"))
        .send_json(body)
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((
        status,
        r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
    ))
}

/// POSTs JSON to a server that must answer.
pub fn post(port: u16, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    try_post(port, path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// DELETEs `path` on a server that must answer.
pub fn delete(port: u16, path: &str) -> (u16, serde_json::Value) {
    let mut r = agent()
        .delete(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
    (
        r.status().as_u16(),
        r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
    )
}

/// GET `path` on loopback:`port` as raw JSON (`Null` when the body is not
/// JSON), for tests of the wire itself (which keys are present, null or
/// omitted); `None` if nothing answered. Prefer [`get_as`].
pub fn get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    memory_service::probe::get_json::<serde_json::Value>("127.0.0.1", port, path, Duration::from_secs(2))
        .ok()
        .map(|(s, v)| (s, v.unwrap_or(serde_json::Value::Null)))
}

/// GET `path` on a server that must answer 200 with the contract type `T`.
pub fn get_as<T: serde::de::DeserializeOwned>(port: u16, path: &str) -> T {
    let (status, body) = get(port, path).unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("GET {path}: {e} in {body}"))
}

/// POSTs `body` to a server that must answer 200 with the contract type `T`.
pub fn post_as<T: serde::de::DeserializeOwned>(port: u16, path: &str, body: &impl serde::Serialize) -> T {
    let body = serde_json::to_value(body).expect("a request serialises");
    let (status, v) = post(port, path, &body);
    assert_eq!(status, 200, "POST {path}: {v}");
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("POST {path}: {e} in {v}"))
}

/// The `/health` report on `port`, if an instance answers 200 with one.
pub fn health(port: u16) -> Option<memory_api::HealthReport> {
    memory_service::probe::get_json::<memory_api::HealthReport>(
        "127.0.0.1",
        port,
        "/health",
        Duration::from_secs(2),
    )
    .ok()
    .filter(|(status, _)| *status == 200)
    .and_then(|(_, h)| h)
}

/// GET `path` as text on a server that must answer (e.g. `/metrics`).
pub fn get_text(port: u16, path: &str) -> (u16, String) {
    let mut r = agent()
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// The `/health` pid on `port`, if an instance answers.
pub fn health_pid(port: u16) -> Option<u32> {
    health(port).map(|h| h.pid)
}

/// Waits until `/health` on `port` answers with `pid` and state `ready`
/// (data requests wait for the open while it is `starting`).
pub fn wait_healthy(port: u16, proc_: &mut Proc) {
    let pid = proc_.pid();
    poll(&format!("pid {pid} to be ready on port {port}"), DEADLINE, || {
        if let Some(st) = proc_.try_status() {
            panic!(
                "pid {pid} exited ({st:?}) before serving:\n{}",
                proc_.stderr_text()
            );
        }
        let h = health(port)?;
        (h.pid == pid && h.state == memory_api::health::State::Ready).then_some(())
    });
}

/// Whether a process exists (not reaped).
pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}
