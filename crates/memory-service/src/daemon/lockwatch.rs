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
            if let Some(why) = act_on(outcome, &monitor, &metrics) {
                tracing::error!("{why}");
                *exit.lock().unwrap_or_else(|e| e.into_inner()) = ExitCode::LockLost;
                shutdown.cancel();
                return;
            }
        }
    });
}

/// Logs and reports one re-check's outcome; `Some(why)` (a sentence for the log)
/// when the instance must shut down: another process holds the lock now, or the
/// home is gone.
fn act_on(
    outcome: Result<Option<Result<LockCheck, single_instance::Error>>, tokio::task::JoinError>,
    monitor: &Monitor,
    metrics: &Metrics,
) -> Option<String> {
    match outcome {
        Ok(Some(Ok(LockCheck::Intact))) | Ok(None) => monitor.report("lock", None),
        Ok(Some(Ok(LockCheck::Recreated))) => {
            tracing::warn!("the lock file had been deleted or replaced; recreated and relocked it");
            metrics.lock_recreated.fetch_add(1, Ordering::Relaxed);
            monitor.report("lock", None);
        }
        Ok(Some(Ok(LockCheck::Healed))) => {
            tracing::warn!("the holder record or the PID file had been damaged; rewrote them in place");
            monitor.report("lock", None);
        }
        Ok(Some(Ok(LockCheck::Lost(held)))) => {
            return Some(format!(
                "the lock file {} was replaced and another process (holder PID {:?}) now holds it; \
                 shutting down so that two instances never share this home",
                held.path.display(),
                held.record_pid
            ));
        }
        Ok(Some(Ok(LockCheck::HomeGone))) => {
            return Some(
                "the home directory was deleted or replaced while we ran (our database with it); \
                 shutting down so that a new instance can start cleanly"
                    .into(),
            );
        }
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "could not re-check the lock file");
            metrics.lock_check_failures.fetch_add(1, Ordering::Relaxed);
            monitor.report("lock", Some(format!("cannot re-check the lock file: {e}")));
        }
        Err(e) => tracing::warn!(error = %e, "lock re-check task failed"),
    }
    None
}
