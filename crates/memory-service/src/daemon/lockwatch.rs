//! The lock re-check: every few seconds the holder makes sure its lock path
//! still names its locked file. A user or a temp cleaner may delete it; then
//! we recreate and relock it. A damaged holder record (or PID file) is
//! rewritten in place, so `status`, `stop` and `start` see the truth again. If another process already holds a new one, two
//! instances would share the home, so we log why and shut down gracefully
//! (PostgreSQL does the same with postmaster.pid).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use single_instance::{Instance, LockCheck};
use tokio_util::sync::CancellationToken;

use std::sync::atomic::Ordering;

use crate::exit_code::ExitCode;
use crate::metrics::Metrics;
use crate::monitor::Monitor;

/// Starts the re-check loop. It stops when `shutdown` is cancelled.
pub fn spawn(
    instance: Arc<Mutex<Option<Instance>>>,
    every: Duration,
    shutdown: CancellationToken,
    exit: Arc<Mutex<ExitCode>>,
    monitor: Arc<Monitor>,
    metrics: Arc<Metrics>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let inst = instance.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let mut g = inst.lock().unwrap_or_else(|e| e.into_inner());
                g.as_mut().map(|i| i.check())
            })
            .await;
            match outcome {
                Ok(Some(Ok(LockCheck::Intact))) | Ok(None) => monitor.report("lock", None),
                Ok(Some(Ok(LockCheck::Recreated))) => {
                    tracing::warn!("the lock file had been deleted or replaced; recreated and relocked it");
                    metrics.lock_recreated.fetch_add(1, Ordering::Relaxed);
                    monitor.report("lock", None);
                }
                Ok(Some(Ok(LockCheck::Healed))) => {
                    tracing::warn!(
                        "the holder record or the PID file had been damaged; rewrote them in place"
                    );
                    monitor.report("lock", None);
                }
                Ok(Some(Ok(LockCheck::Lost(held)))) => {
                    tracing::error!(
                        holder_pid = ?held.record_pid,
                        path = %held.path.display(),
                        "the lock file was replaced and another process now holds it; \
                         shutting down so that two instances never share this home"
                    );
                    *exit.lock().unwrap_or_else(|e| e.into_inner()) = ExitCode::LockLost;
                    shutdown.cancel();
                    return;
                }
                Ok(Some(Ok(LockCheck::HomeGone))) => {
                    tracing::error!(
                        "the home directory was deleted or replaced while we ran (our database with it); \
                         shutting down so that a new instance can start cleanly"
                    );
                    *exit.lock().unwrap_or_else(|e| e.into_inner()) = ExitCode::LockLost;
                    shutdown.cancel();
                    return;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "could not re-check the lock file");
                    metrics.lock_check_failures.fetch_add(1, Ordering::Relaxed);
                    monitor.report("lock", Some(format!("cannot re-check the lock file: {e}")));
                }
                Err(e) => tracing::warn!(error = %e, "lock re-check task failed"),
            }
        }
    });
}
