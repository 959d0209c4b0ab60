//! Facts about processes from the OS: is a PID alive, when did it start,
//! what program is it, is it stopped; and, on Linux, who holds an flock
//! (`/proc/locks`) and who listens on a port (`/proc/net/tcp*`). Gathering
//! only: no decisions here, and nothing is ever signalled by this module.

use std::path::PathBuf;

use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

use crate::lock::FileId;

/// What the OS says about one live process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessFacts {
    /// The PID.
    pub pid: u32,
    /// Start time, seconds since the Unix epoch.
    pub start_time: u64,
    /// The executable, when the OS lets us see it.
    pub exe: Option<PathBuf>,
    /// The process name (`comm`).
    pub name: String,
    /// Running, stopped (SIGSTOP), or a zombie.
    pub run_state: RunState,
}

/// The scheduling state that matters to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Running or sleeping: it can answer.
    Runnable,
    /// Stopped or traced: it cannot answer until continued.
    Stopped,
    /// Dead, not yet reaped: it holds nothing and will never answer.
    Zombie,
}

/// Facts about `pid`, or `None` if no such process exists.
pub fn process_facts(pid: u32) -> Option<ProcessFacts> {
    let mut sys = System::new().ok()?;
    let spid = Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[spid]),
        true,
        ProcessRefreshKind::nothing().with_exe(UpdateKind::Always),
    );
    let p = sys.process(spid)?;
    let run_state = match p.status() {
        ProcessStatus::Stop | ProcessStatus::Tracing => RunState::Stopped,
        ProcessStatus::Zombie | ProcessStatus::Dead => RunState::Zombie,
        _ => RunState::Runnable,
    };
    Some(ProcessFacts {
        pid,
        start_time: p.start_time(),
        exe: p.exe().map(|e| e.to_path_buf()),
        name: p.name().to_string_lossy().into_owned(),
        run_state,
    })
}

/// This process's start time as the OS reports it (what others will see).
pub fn own_start_time() -> u64 {
    process_facts(std::process::id()).map_or(0, |f| f.start_time)
}

/// Who listens on a TCP port, as far as the OS tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    /// The owning PID, if visible to us.
    pub pid: Option<u32>,
    /// The owning program's name, if known.
    pub program: Option<String>,
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    /// Linux's `MAJOR`/`MINOR` encoding of `st_dev` (glibc's layout).
    fn major_minor(dev: u64) -> (u32, u32) {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        (major as u32, minor as u32)
    }

    pub fn lock_holders(id: FileId) -> Option<Vec<u32>> {
        let locks = procfs::locks().ok()?;
        let (maj, min) = major_minor(id.dev);
        Some(
            locks
                .into_iter()
                .filter(|l| l.inode == id.ino && l.devmaj == maj && l.devmin == min)
                .filter_map(|l| l.pid.filter(|p| *p > 0).map(|p| p as u32))
                .collect(),
        )
    }

    pub fn port_owner(port: u16) -> Option<PortOwner> {
        let mut entries = procfs::net::tcp().unwrap_or_default();
        entries.extend(procfs::net::tcp6().unwrap_or_default());
        let inode = entries
            .iter()
            .find(|e| e.local_address.port() == port && e.state == procfs::net::TcpState::Listen)?
            .inode;
        let owner = procfs::process::all_processes().ok()?.flatten().find(|p| {
            p.fd().is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| matches!(fd.target, procfs::process::FDTarget::Socket(i) if i == inode))
            })
        });
        Some(match owner {
            Some(p) => PortOwner {
                pid: Some(p.pid as u32),
                program: p
                    .exe()
                    .ok()
                    .map(|e| e.display().to_string())
                    .or_else(|| p.stat().ok().map(|s| s.comm)),
            },
            None => PortOwner {
                pid: None,
                program: None,
            },
        })
    }
}

/// PIDs holding an flock on the file `id`, from `/proc/locks`. `None` where
/// the OS cannot tell (not Linux, or `/proc` unreadable).
pub fn lock_holders(id: FileId) -> Option<Vec<u32>> {
    #[cfg(target_os = "linux")]
    {
        linux::lock_holders(id)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = id;
        None
    }
}

/// The process listening on `port`, where the OS tells (Linux, via `/proc`).
/// `None`: nobody listens, or we cannot tell.
pub fn port_owner(port: u16) -> Option<PortOwner> {
    #[cfg(target_os = "linux")]
    {
        linux::port_owner(port)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_about_ourselves() {
        let me = process_facts(std::process::id()).expect("we exist");
        assert_eq!(me.run_state, RunState::Runnable);
        assert!(me.start_time > 1_600_000_000);
        assert_eq!(own_start_time(), me.start_time);
    }

    #[test]
    fn a_dead_child_has_no_facts() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_facts(pid), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_locks_names_us_and_the_listener_is_us() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let f = std::fs::File::create(&path).unwrap();
        f.try_lock().unwrap();
        let id = {
            use std::os::unix::fs::MetadataExt;
            let m = f.metadata().unwrap();
            FileId {
                dev: m.dev(),
                ino: m.ino(),
            }
        };
        assert_eq!(lock_holders(id), Some(vec![std::process::id()]));
        drop(f);
        assert_eq!(lock_holders(id), Some(vec![]));

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let owner = port_owner(port).expect("someone listens");
        assert_eq!(owner.pid, Some(std::process::id()));
    }
}
