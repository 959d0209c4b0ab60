//! The decision, kept pure: facts gathered from the OS go in, a verdict comes
//! out. No I/O happens here, so every case (a torn record, a reused PID, a
//! frozen holder, a stranger on the port) is a row in a unit-test table.

use std::fmt;
use std::path::PathBuf;

use crate::app::AppIdentity;
use crate::pidfile::PidFile;
use crate::process::{PortOwner, ProcessFacts, RunState};
use crate::record::HolderRecord;

/// What an HTTP health probe of an address found. Supplied by the caller: this
/// crate has no HTTP in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Nothing answered (refused, timed out, not HTTP).
    NoAnswer {
        /// Why, for the message.
        reason: String,
    },
    /// Something answered over HTTP.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The identity it claimed, if its body had one.
        identity: Option<Identity>,
    },
}

/// The identity an instance reports on its health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The service name; ours only if it equals the policy's
    /// [`AppIdentity::service`].
    pub service: String,
    /// Its PID.
    pub pid: u32,
    /// Its instance id (also in its holder record).
    pub instance_id: String,
    /// Its home directory.
    pub home: PathBuf,
}

/// Fixed inputs to the decision.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Our names: `app.service` is what `/health` reports; the others are
    /// used in messages.
    pub app: AppIdentity,
    /// How long after its start a silent holder is "starting", not "unresponsive".
    pub startup_grace_secs: u64,
}

/// Facts about a lock held by another process.
#[derive(Debug, Clone, PartialEq)]
pub struct HolderFacts {
    /// The complete holder record, if any.
    pub record: Option<HolderRecord>,
    /// The record's first line, even when the rest is torn.
    pub record_pid: Option<u32>,
    /// Who holds the flock per the OS (`/proc/locks`); `None` where it cannot tell.
    pub lock_pids: Option<Vec<u32>>,
    /// The holder process, if it exists.
    pub process: Option<ProcessFacts>,
    /// The health probe of the record's address, if one was made.
    pub health: Option<Health>,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
    /// The path whose flock is held (the home directory or the lock file).
    pub locked: PathBuf,
    /// This process, to recognise a holder running another program.
    pub ours: Option<ProcessFacts>,
}

/// Facts about a port we could not bind although we hold the lock.
#[derive(Debug, Clone, PartialEq)]
pub struct PortFacts {
    /// The host we tried.
    pub host: String,
    /// The port.
    pub port: u16,
    /// What answered there.
    pub health: Health,
    /// Who listens there, if the OS tells.
    pub owner: Option<PortOwner>,
}

/// Everything the decision needs, for one of three situations.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per decision and dropped; a Box would only add noise to the table tests"
)]
pub enum Facts {
    /// We took the lock. The PID file says what it says; we are `own_pid`.
    Clear {
        /// The PID file's content.
        pid_file: PidFile,
        /// Our PID.
        own_pid: u32,
    },
    /// Another process holds the lock.
    Held(HolderFacts),
    /// We hold the lock, but the port is taken.
    PortBusy(PortFacts),
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead. `stale` describes a PID file left by a dead or foreign
    /// process, which is replaced, never obeyed.
    Start {
        /// What the stale PID file said, if there was one.
        stale: Option<String>,
    },
    /// Our healthy instance holds the home.
    AlreadyRunning {
        /// Its PID.
        pid: u32,
        /// Its host.
        host: String,
        /// Its port.
        port: u16,
        /// Its home.
        home: PathBuf,
    },
    /// Another instance holds the home and started moments ago.
    Starting {
        /// Its PID, if known.
        pid: Option<u32>,
        /// Its address, if its record is readable.
        addr: Option<(String, u16)>,
    },
    /// Another process holds the home's lock but does not answer as itself.
    Unresponsive {
        /// Its PID, if known.
        pid: Option<u32>,
        /// Its address, if its record is readable.
        addr: Option<(String, u16)>,
        /// Why we call it unresponsive.
        reason: String,
    },
    /// The lock was released while we looked: try to take it again.
    Retry,
    /// We hold the lock, but another instance of ours (another home) has the port.
    PortHeldByOtherInstance {
        /// The port.
        port: u16,
        /// That instance's PID.
        pid: u32,
        /// That instance's home.
        home: PathBuf,
    },
    /// A program that is not ours (e.g. `flock(1)`) holds the home's lock. It
    /// never serves this home; it is named, never signalled.
    HeldByStranger {
        /// Its PID.
        pid: u32,
        /// Its executable, or its name when the executable is hidden.
        program: String,
        /// The path whose flock it holds.
        path: PathBuf,
    },
    /// We hold the lock, but a program that is not ours has the port.
    PortHeldByStranger {
        /// The port.
        port: u16,
        /// Who, if the OS tells.
        owner: Option<PortOwner>,
    },
}

/// The PID that holds the lock, as best the facts tell. The OS's word
/// (`/proc/locks`) beats the record, which may be stale or torn.
pub fn holder_pid(f: &HolderFacts) -> Option<u32> {
    let recorded = f.record.as_ref().map(|r| r.pid).or(f.record_pid);
    match &f.lock_pids {
        Some(pids) if !pids.is_empty() => match recorded {
            Some(r) if pids.contains(&r) => Some(r),
            _ => Some(pids[0]),
        },
        Some(_) => None,
        None => recorded,
    }
}

/// Whether the lock `holder` runs another program than `ours`: no holder
/// record names its PID, and neither its name (`comm`) nor its executable is
/// ours. An instance of ours writes its record right after taking the lock,
/// so a holder without one that is also another program is not ours. `false`
/// when we do not know ourselves.
pub fn is_stranger(holder: &ProcessFacts, ours: Option<&ProcessFacts>, recorded_pid: Option<u32>) -> bool {
    let Some(ours) = ours else { return false };
    recorded_pid != Some(holder.pid)
        && holder.name != ours.name
        && (holder.exe.is_none() || holder.exe != ours.exe)
}

/// The program a process runs, for messages: its executable, or its name.
pub fn program_of(p: &ProcessFacts) -> String {
    p.exe
        .as_ref()
        .map_or_else(|| p.name.clone(), |e| e.display().to_string())
}

/// Decides what to do. Pure: same facts, same verdict.
pub fn decide(facts: &Facts, policy: &Policy) -> Verdict {
    match facts {
        Facts::Clear { pid_file, own_pid } => Verdict::Start {
            stale: match pid_file {
                PidFile::Missing => None,
                PidFile::Pid(p) if p == own_pid => None,
                PidFile::Pid(p) => Some(format!("PID file named PID {p}, which does not hold the lock")),
                PidFile::Garbage(g) => Some(format!("PID file held no PID ({g:?})")),
                PidFile::NotAFile(kind) => Some(format!("PID file was {kind}, not a regular file")),
            },
        },
        Facts::Held(h) => decide_held(h, policy),
        Facts::PortBusy(p) => match &p.health {
            Health::Answered {
                identity: Some(id), ..
            } if id.service == policy.app.service => Verdict::PortHeldByOtherInstance {
                port: p.port,
                pid: id.pid,
                home: id.home.clone(),
            },
            _ => Verdict::PortHeldByStranger {
                port: p.port,
                owner: p.owner.clone(),
            },
        },
    }
}

fn decide_held(h: &HolderFacts, policy: &Policy) -> Verdict {
    if matches!(&h.lock_pids, Some(p) if p.is_empty()) {
        return Verdict::Retry; // released between our try and our look
    }
    let pid = holder_pid(h);
    let record = h.record.as_ref().filter(|r| Some(r.pid) == pid);
    let addr = record.map(|r| (r.host.clone(), r.port));
    if let Some(r) = record
        && answers_as(r, h.health.as_ref(), policy)
    {
        return Verdict::AlreadyRunning {
            pid: r.pid,
            host: r.host.clone(),
            port: r.port,
            home: r.home.clone(),
        };
    }
    let unresponsive = |reason: String| Verdict::Unresponsive {
        pid,
        addr: addr.clone(),
        reason,
    };
    let Some(process) = h.process.as_ref().filter(|p| Some(p.pid) == pid) else {
        if h.lock_pids.is_none() {
            // Without a lock table we only know the record's PID; if it is
            // dead, the lock is held by someone we cannot name, possibly a
            // momentary inspector (`status`): look again.
            return Verdict::Retry;
        }
        return match pid {
            Some(p) => unresponsive(format!(
                "the lock is held, but its holder (PID {p}) is not visible to us"
            )),
            None => unresponsive("the lock is held, but its holder cannot be identified".into()),
        };
    };
    if process.run_state == RunState::Zombie {
        return Verdict::Retry; // a zombie has closed its files
    }
    let recorded = h.record.as_ref().map(|r| r.pid).or(h.record_pid);
    if is_stranger(process, h.ours.as_ref(), recorded) {
        return Verdict::HeldByStranger {
            pid: process.pid,
            program: program_of(process),
            path: h.locked.clone(),
        };
    }
    if process.run_state == RunState::Stopped {
        return unresponsive(format!("PID {} is stopped (SIGSTOP or a debugger)", process.pid));
    }
    if h.now.saturating_sub(process.start_time) < policy.startup_grace_secs {
        return Verdict::Starting { pid, addr };
    }
    unresponsive(silence_reason(addr.as_ref(), h.health.as_ref()))
}

/// True when `/health` answered with the identity `record` promises: our
/// service, the record's PID and instance id.
fn answers_as(record: &HolderRecord, health: Option<&Health>, policy: &Policy) -> bool {
    matches!(
        health,
        Some(Health::Answered { identity: Some(id), .. })
            if id.service == policy.app.service
                && id.pid == record.pid
                && id.instance_id == record.instance_id
    )
}

/// Why a holder past its start-up grace does not count as running: what its
/// record's address (`addr`) and its `/health` probe said.
fn silence_reason(addr: Option<&(String, u16)>, health: Option<&Health>) -> String {
    match (addr, health) {
        (None, _) => "its holder record is missing or torn".to_string(),
        (Some((host, port)), Some(Health::NoAnswer { reason })) => {
            format!("it does not answer http://{host}:{port}/health ({reason})")
        }
        (Some((host, port)), Some(Health::Answered { status, identity })) => match identity {
            Some(id) => format!(
                "http://{host}:{port}/health answers as another process (PID {}, instance {})",
                id.pid, id.instance_id
            ),
            None => format!("http://{host}:{port}/health answers {status} without our identity"),
        },
        (Some((host, port)), None) => format!("http://{host}:{port}/health was not probed"),
    }
}

/// Facts needed before signalling a lock holder.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyFacts {
    /// The holder record in the lock file.
    pub record: Option<HolderRecord>,
    /// Who holds the flock per the OS; `None` where it cannot tell.
    pub lock_pids: Option<Vec<u32>>,
    /// The recorded PID's process, if it exists.
    pub process: Option<ProcessFacts>,
}

/// Decides whether the lock holder is verifiably our instance for this home,
/// and may therefore be signalled: the record names it, the OS's lock table
/// (where there is one) agrees, and the process with that PID started when
/// the record says (a reused PID has another start time). `Err` says why not.
pub fn verify(f: &VerifyFacts) -> Result<u32, String> {
    let r = f
        .record
        .as_ref()
        .ok_or("the holder record is missing or torn, so the holder cannot be verified")?;
    if let Some(pids) = &f.lock_pids
        && !pids.contains(&r.pid)
    {
        return Err(format!(
            "the record names PID {}, but the OS says the lock is held by {:?}",
            r.pid, pids
        ));
    }
    let p = f
        .process
        .as_ref()
        .filter(|p| p.pid == r.pid)
        .ok_or_else(|| format!("PID {} named by the record does not exist", r.pid))?;
    if p.start_time.abs_diff(r.process_start) > 1 {
        return Err(format!(
            "PID {} started at {} but the record says {}: the PID was reused",
            r.pid, p.start_time, r.process_start
        ));
    }
    if p.run_state == RunState::Zombie {
        return Err(format!("PID {} has already exited", r.pid));
    }
    Ok(r.pid)
}

impl Verdict {
    /// True when the verdict lets us serve.
    pub fn is_start(&self) -> bool {
        matches!(self, Verdict::Start { .. })
    }
}

fn fmt_pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "unknown PID".to_string(), |p| format!("PID {p}"))
}

fn fmt_addr(addr: &Option<(String, u16)>) -> String {
    addr.as_ref()
        .map_or_else(|| "an unknown address".to_string(), |(h, p)| format!("{h}:{p}"))
}

/// A verdict in words, naming the application (see [`Verdict::describe`]).
#[derive(Debug, Clone, Copy)]
pub struct Describe<'a> {
    verdict: &'a Verdict,
    app: &'a AppIdentity,
}

impl Verdict {
    /// The verdict as one sentence, e.g. "My Daemon is already running on
    /// 127.0.0.1:5858 (PID 42, home /h)", with the application's display name
    /// taken from `app`.
    pub fn describe<'a>(&'a self, app: &'a AppIdentity) -> Describe<'a> {
        Describe { verdict: self, app }
    }
}

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.app.display_name;
        match self.verdict {
            Verdict::Start { stale: None } => write!(f, "free to start"),
            Verdict::Start { stale: Some(s) } => write!(f, "free to start ({s}; replaced)"),
            Verdict::AlreadyRunning {
                pid,
                host,
                port,
                home,
            } => write!(
                f,
                "{name} is already running on {host}:{port} (PID {pid}, home {})",
                home.display()
            ),
            Verdict::Starting { pid, addr } => write!(
                f,
                "another {name} instance ({}) is starting on {} for this home",
                fmt_pid(*pid),
                fmt_addr(addr)
            ),
            Verdict::Unresponsive { pid, addr, reason } => write!(
                f,
                "another {name} instance ({}, {}) holds this home but is unresponsive: {reason}",
                fmt_pid(*pid),
                fmt_addr(addr)
            ),
            Verdict::Retry => write!(f, "the lock was just released; trying again"),
            Verdict::PortHeldByOtherInstance { port, pid, home } => write!(
                f,
                "port {port} is in use by another {name} instance (PID {pid}) for home {}",
                home.display()
            ),
            Verdict::HeldByStranger { pid, program, path } => write!(
                f,
                "{} is locked by another program (not {name}): PID {pid} ({program})",
                path.display()
            ),
            Verdict::PortHeldByStranger { port, owner } => {
                write!(f, "port {port} is in use by another program (not {name})")?;
                match owner {
                    Some(PortOwner {
                        pid: Some(pid),
                        program,
                    }) => write!(
                        f,
                        ": PID {pid} ({})",
                        program.as_deref().unwrap_or("unknown program")
                    ),
                    _ => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
