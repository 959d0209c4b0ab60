//! systemd's notify protocol: `READY=1` once we serve, `WATCHDOG=1` only
//! while our own `/health` really answers (a hung server stops pinging and
//! systemd restarts it), `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET`
//! (not under systemd) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::probe;

/// Tells systemd we are serving.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify systemd (READY=1)");
    }
}

/// Tells systemd we are shutting down.
pub fn stopping() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Stopping]) {
        tracing::warn!(error = %e, "could not notify systemd (STOPPING=1)");
    }
}

/// Starts the watchdog pinger if systemd asked for one (`WATCHDOG_USEC`).
pub fn spawn_watchdog(host: String, port: u16, pid: u32, shutdown: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(50));
    tracing::info!(?period, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (h, timeout) = (host.clone(), every.min(probe::PROBE_TIMEOUT));
            let answered = tokio::task::spawn_blocking(move || probe::probe_health(&h, port, timeout))
                .await
                .is_ok_and(|health| {
                    matches!(health, single_instance::Health::Answered { status: 200, identity: Some(id) } if id.pid == pid)
                });
            if answered {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            } else {
                tracing::warn!("our own /health did not answer; withholding the systemd watchdog ping");
            }
        }
    });
}
