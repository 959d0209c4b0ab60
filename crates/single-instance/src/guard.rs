//! The guard: gathers facts from the OS, asks [`crate::verdict::decide`], and
//! acts on the verdict. This is the only module that combines the lock, the
//! record, the PID file and the probe; each piece stays testable on its own.
//! [`signal_holder`] is the only function in this crate that signals a
//! process, and only after re-verifying that it is the lock holder it was
//! asked about.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::home::{self, HomeFiles, Prepared};
use crate::lock::{self, Acquire, HeldLock, HomeAcquire, HomeLock, InstanceLock, LockCheck};
use crate::pidfile;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process::{self, ProcessFacts, RunState};
use crate::record::{self, HolderRecord};
use crate::verdict::{self, Facts, Health, HolderFacts, Policy, PortFacts, Verdict, VerifyFacts};

/// How many times we retry when the lock is released while we look at it.
const MAX_RETRIES: usize = 8;

/// A health probe, supplied by the caller (this crate has no HTTP): it must
/// return within its own short timeout.
pub trait HealthProbe {
    /// Probes `http://host:port/health`.
    fn probe(&self, host: &str, port: u16) -> Health;
}

impl<F: Fn(&str, u16) -> Health> HealthProbe for F {
    fn probe(&self, host: &str, port: u16) -> Health {
        self(host, port)
    }
}

/// What a claim on a home came to.
#[derive(Debug)]
pub enum Claim {
    /// We hold the home. Serve, then [`Instance::release`].
    Won(Box<Instance>),
    /// Someone else does; the verdict says who and why.
    Refused(Verdict),
}

/// A running instance's hold on its home.
#[derive(Debug)]
pub struct Instance {
    /// The home directory's flock: the exclusion that survives a deleted
    /// lock file. Released last, by the kernel at exit.
    home_lock: HomeLock,
    /// The lock file's flock, which also carries the holder record.
    lock: InstanceLock,
    /// What we wrote into the lock file.
    record: HolderRecord,
    /// The home's files.
    files: HomeFiles,
    /// A stale PID file we replaced, for the log.
    stale: Option<String>,
    /// What preparing the home did (created, tightened), for the log.
    prepared: Prepared,
}

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Gathers the facts about a lock someone else holds. The probe is only made
/// when the holder can answer (alive, not stopped) and its address is known,
/// so a frozen holder costs no timeout.
pub fn holder_facts(held: &HeldLock, probe: &dyn HealthProbe) -> HolderFacts {
    let mut facts = HolderFacts {
        record: held.record.clone(),
        record_pid: held.record_pid,
        lock_pids: process::lock_holders(held.file_id),
        process: None,
        health: None,
        now: now_secs(),
        locked: held.locked.clone(),
        ours: process::process_facts(std::process::id()),
    };
    let Some(pid) = verdict::holder_pid(&facts) else {
        return facts;
    };
    facts.process = process::process_facts(pid);
    let runnable = facts
        .process
        .as_ref()
        .is_some_and(|p| p.run_state == RunState::Runnable);
    if let Some(r) = facts.record.as_ref().filter(|r| r.pid == pid && runnable) {
        facts.health = Some(probe.probe(&r.host, r.port));
    }
    facts
}

/// Claims `files.home` for this process, to serve on `host:port`.
///
/// Prepares the home first ([`home::prepare`]: created 0700, a looser one
/// tightened, another user's refused), then takes the locks before anything
/// else (no port, no database), writes the holder record and the PID file.
/// On a held lock, decides who holds it.
pub fn claim(
    files: &HomeFiles,
    host: &str,
    port: u16,
    version: &str,
    policy: &Policy,
    probe: &dyn HealthProbe,
) -> Result<Claim> {
    let prepared = home::prepare(&files.home, &policy.app)?;
    let mut last = Verdict::Retry;
    for attempt in 0..MAX_RETRIES {
        if attempt > 0 {
            // The lock was released while we looked: let the releaser finish.
            std::thread::sleep(std::time::Duration::from_millis(5 << attempt.min(5)));
        }
        let held = match lock::try_lock_home(&files.home)? {
            HomeAcquire::Held(dir_id) => {
                let (record, record_pid) = lock::read_record(&files.lock);
                HeldLock {
                    path: files.lock.clone(),
                    locked: files.home.clone(),
                    file_id: dir_id,
                    record,
                    record_pid,
                }
            }
            HomeAcquire::Acquired(home_lock) => match lock::try_acquire(&files.lock)? {
                Acquire::Acquired(lock) => {
                    let taken = TakenLocks {
                        home_lock,
                        lock,
                        prepared,
                    };
                    return won(files, taken, host, port, version, policy);
                }
                // Held without the directory lock: an instance of an older
                // build. It is still a holder; decide as for any other.
                Acquire::Held(held) => held,
            },
        };
        last = verdict::decide(&Facts::Held(holder_facts(&held, probe)), policy);
        if last != Verdict::Retry {
            return Ok(Claim::Refused(last));
        }
    }
    Ok(Claim::Refused(last))
}

/// Both locks, just taken, and what preparing the home did.
struct TakenLocks {
    home_lock: HomeLock,
    lock: InstanceLock,
    prepared: Prepared,
}

/// We hold both locks: write the record and the PID file.
fn won(
    files: &HomeFiles,
    TakenLocks {
        home_lock,
        mut lock,
        prepared,
    }: TakenLocks,
    host: &str,
    port: u16,
    version: &str,
    policy: &Policy,
) -> Result<Claim> {
    let own_pid = std::process::id();
    let verdict = verdict::decide(
        &Facts::Clear {
            pid_file: pidfile::read(&files.pid),
            own_pid,
        },
        policy,
    );
    let record = HolderRecord {
        pid: own_pid,
        process_start: process::own_start_time(),
        instance_id: record::new_instance_id(),
        host: host.to_string(),
        port,
        home: files.home.clone(),
        version: version.to_string(),
    };
    lock.write_record(&record)?;
    pidfile::write(&files.pid, own_pid)?;
    let stale = match verdict {
        Verdict::Start { stale } => stale,
        _ => None,
    };
    Ok(Claim::Won(Box::new(Instance {
        home_lock,
        lock,
        record,
        files: files.clone(),
        stale,
        prepared,
    })))
}

/// Decides who holds a port we could not bind (we hold the lock). Never
/// signals the owner.
pub fn examine_port(host: &str, port: u16, policy: &Policy, probe: &dyn HealthProbe) -> Verdict {
    let facts = Facts::PortBusy(PortFacts {
        host: host.to_string(),
        port,
        health: probe.probe(host, port),
        owner: process::port_owner(port),
    });
    verdict::decide(&facts, policy)
}

impl Instance {
    /// The holder record (our identity; `/health` must report the same).
    pub fn record(&self) -> &HolderRecord {
        &self.record
    }

    /// The home's files.
    pub fn files(&self) -> &HomeFiles {
        &self.files
    }

    /// The stale PID file we replaced, if any.
    pub fn stale(&self) -> Option<&str> {
        self.stale.as_deref()
    }

    /// What preparing the home did: created it, or tightened a looser mode
    /// to 0700 (the caller logs it).
    pub fn prepared(&self) -> Prepared {
        self.prepared
    }

    /// Records the port actually bound (when asked for port 0).
    pub fn set_port(&mut self, port: u16) -> Result<()> {
        if self.record.port != port {
            self.record.port = port;
            self.lock.write_record(&self.record)?;
        }
        Ok(())
    }

    /// Re-checks the lock path (see [`InstanceLock::check`]); if the file was
    /// recreated, or the PID file no longer names us, the PID file is
    /// rewritten too ([`LockCheck::Healed`]).
    pub fn check(&mut self) -> Result<LockCheck> {
        if !self.home_lock.still_home() {
            return Ok(LockCheck::HomeGone);
        }
        let outcome = self.lock.check(&self.record)?;
        match outcome {
            LockCheck::Recreated => pidfile::write(&self.files.pid, self.record.pid)?,
            LockCheck::Intact | LockCheck::Healed => {
                // The PID file heals too: missing, garbage, or a FIFO put there.
                if pidfile::read(&self.files.pid) != pidfile::PidFile::Pid(self.record.pid) {
                    pidfile::write(&self.files.pid, self.record.pid)?;
                    return Ok(LockCheck::Healed);
                }
            }
            LockCheck::Lost(_) | LockCheck::HomeGone => {}
        }
        Ok(outcome)
    }

    /// Clean shutdown: remove the PID file (if it still names us), then the
    /// lock file while still holding the lock, then unlock.
    pub fn release(self) -> Result<()> {
        pidfile::remove_if_ours(&self.files.pid, self.record.pid)?;
        self.lock.release()?;
        drop(self.home_lock);
        Ok(())
    }
}

/// Who holds `files`' locks right now, without taking them (`None`: nobody):
/// the home directory's lock, or if that is free the lock file's (see
/// [`lock::inspect_home`]).
pub fn inspect(files: &HomeFiles) -> Result<Option<HeldLock>> {
    lock::inspect_home(&files.home, &files.lock)
}

/// The lock holder of a home, as far as it can be verified.
#[derive(Debug, Clone)]
pub enum Holder {
    /// Nobody holds the lock.
    Free,
    /// The holder is verifiably our instance for this home.
    Verified {
        /// Its record.
        record: HolderRecord,
        /// Its process.
        process: ProcessFacts,
    },
    /// A program that is not ours holds the lock (see
    /// [`verdict::is_stranger`]): name it, never signal it.
    Stranger {
        /// Its PID.
        pid: u32,
        /// Its executable, or its name.
        program: String,
        /// The path whose flock it holds.
        path: std::path::PathBuf,
    },
    /// Somebody holds the lock, but we cannot prove who: never signal it.
    Unverified {
        /// The PID we believe holds it, if any.
        pid: Option<u32>,
        /// Why it is not verified.
        reason: String,
    },
}

/// Looks up and verifies the holder of `files`' lock (see [`verdict::verify`]).
pub fn holder(files: &HomeFiles) -> Result<Holder> {
    let Some(held) = inspect(files)? else {
        return Ok(Holder::Free);
    };
    let record_pid = held.record.as_ref().map(|r| r.pid).or(held.record_pid);
    let lock_pids = process::lock_holders(held.file_id);
    if lock_pids.as_ref().is_some_and(|p| p.is_empty()) {
        return Ok(Holder::Free); // released since `inspect` looked
    }
    let holder_pid = lock_pids.as_ref().and_then(|p| p.first().copied()).or(record_pid);
    if let Some(p) = holder_pid.and_then(process::process_facts)
        && verdict::is_stranger(
            &p,
            process::process_facts(std::process::id()).as_ref(),
            record_pid,
        )
    {
        return Ok(Holder::Stranger {
            pid: p.pid,
            program: verdict::program_of(&p),
            path: held.locked,
        });
    }
    let facts = VerifyFacts {
        record: held.record.clone(),
        lock_pids,
        process: record_pid.and_then(process::process_facts),
    };
    Ok(match (verdict::verify(&facts), facts.record, facts.process) {
        (Ok(_), Some(record), Some(process)) => Holder::Verified { record, process },
        (Err(reason), _, _) => Holder::Unverified {
            pid: facts.lock_pids.and_then(|p| p.first().copied()).or(record_pid),
            reason,
        },
        (Ok(pid), _, _) => Holder::Unverified {
            pid: Some(pid),
            reason: "incomplete facts".into(),
        },
    })
}

/// Sends `signal` to the holder of `files`' lock, but only if it is, right
/// now, verifiably our instance with PID `pid` and the start time we saw
/// (re-verified immediately before the signal, so a PID reused since the
/// caller looked is never hit). A stopped holder also gets SIGCONT, so a
/// SIGTERM can be acted on. This is the only function in this crate that
/// signals anything; a [`Holder::Stranger`] or [`Holder::Unverified`] is
/// never signalled.
pub fn signal_holder(files: &HomeFiles, pid: u32, start_time: u64, signal: Signal) -> Result<SignalOutcome> {
    match holder(files)? {
        Holder::Verified { record, process } if record.pid == pid && process.start_time == start_time => {
            let target = Pid::from_raw(pid as i32);
            match kill(target, signal) {
                Ok(()) => {}
                Err(Errno::ESRCH) => return Ok(SignalOutcome::Gone),
                Err(e) => {
                    return Err(crate::Error::io(
                        "signalling PID",
                        &files.lock,
                        std::io::Error::from(e),
                    ));
                }
            }
            if process.run_state == RunState::Stopped && signal != Signal::SIGKILL {
                let _ = kill(target, Signal::SIGCONT);
            }
            Ok(SignalOutcome::Sent)
        }
        Holder::Free => Ok(SignalOutcome::Gone),
        Holder::Verified { record, .. } => Ok(SignalOutcome::Refused(format!(
            "the lock is now held by another instance (PID {})",
            record.pid
        ))),
        Holder::Unverified { reason, .. } => Ok(SignalOutcome::Refused(reason)),
        Holder::Stranger { pid, program, path } => Ok(SignalOutcome::Refused(format!(
            "{} is locked by PID {pid} ({program}), which is another program",
            path.display()
        ))),
    }
}

/// What [`signal_holder`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The signal was sent to the verified holder.
    Sent,
    /// The lock is free or the process is gone: nothing to signal.
    Gone,
    /// Not sent: the holder could not be verified (the reason says why).
    Refused(String),
}
