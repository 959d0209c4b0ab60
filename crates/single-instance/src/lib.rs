//! One running instance per home directory.
//!
//! The truth is an exclusive `flock` on `<home>/<stem>.lock`, taken before
//! anything else and held for the life of the instance: the kernel frees it on
//! any death, so nothing stale can block a start and no two starters both win.
//! The lock file also carries a holder record (PID first, PostgreSQL style) so
//! losers can name the holder; a bare PID file sits beside it for people.
//! This crate has no HTTP and no async runtime: the health probe is passed in.
//! It names no application: the names in its messages come from the caller's
//! [`AppIdentity`]. Claiming, inspecting and deciding never signal anyone.
//! A process is signalled in exactly one place, [`signal_holder`], when the
//! caller asks for it, and only a holder it has just re-verified (it holds
//! the lock, its record names it, and its PID and start time are the ones the
//! caller saw) as the instance the caller asked about; a stopped holder then
//! also gets `SIGCONT` so it can act on the signal.
//!
//! # Layout
//! - [`app`]: the application's names, passed in by the caller.
//! - [`file`](mod@file): opening our own files without blocking on a FIFO or following
//!   a link; making them private.
//! - [`home`]: the home directory and its file names; creation and checks.
//! - [`lock`]: taking, re-checking, inspecting and releasing the flock.
//! - [`record`]: the holder record's format; torn records parse as `None`.
//! - [`pidfile`]: the atomic PID file (mode 0600).
//! - [`process`]: facts from the OS (liveness, start time, lock and port owners).
//! - [`verdict`]: the pure decision from facts to a verdict.
//! - [`guard`]: gathers facts, decides, acts; the entry points callers use,
//!   including the only function that signals a process (after verifying it).
#![deny(missing_docs)]

pub mod app;
pub mod error;
pub mod file;
pub mod guard;
pub mod home;
pub mod lock;
pub mod pidfile;
pub mod process;
pub mod record;
pub mod verdict;

pub use app::AppIdentity;
pub use error::{Error, Result};
pub use guard::{
    Claim, HealthProbe, Holder, Instance, SignalOutcome, claim, examine_port, holder, holder_facts, inspect,
    signal_holder,
};
pub use home::{HomeFiles, Prepared};
pub use lock::{HeldLock, LockCheck};
pub use nix::sys::signal::Signal;
pub use record::HolderRecord;
pub use verdict::{Health, Identity, Policy, Verdict, decide};
