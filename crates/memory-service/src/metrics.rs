//! Counters for `GET /metrics` (Prometheus text format): requests by route
//! and status, lock re-check failures; uptime and health state come from the
//! monitor. Counting takes a shared read lock and one atomic add; a write
//! lock only the first time a (route, status) pair is seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::monitor::{Monitor, State};

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by (route template, status code).
    requests: RwLock<BTreeMap<(String, u16), AtomicU64>>,
    /// Lock re-checks that failed with an error.
    pub lock_check_failures: AtomicU64,
    /// Times the lock file had to be recreated.
    pub lock_recreated: AtomicU64,
}

impl Metrics {
    /// Counts one request.
    pub fn record(&self, route: &str, status: u16) {
        {
            let map = self.requests.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map.get(&(route.to_string(), status)) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.requests.write().unwrap_or_else(|e| e.into_inner());
        map.entry((route.to_string(), status))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, monitor: &Monitor, extra: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP memory_service_uptime_seconds Seconds since this instance started."
        );
        let _ = writeln!(out, "# TYPE memory_service_uptime_seconds gauge");
        let _ = writeln!(out, "memory_service_uptime_seconds {}", monitor.uptime_s());
        let _ = writeln!(
            out,
            "# HELP memory_service_health_state 1 for the current state, 0 for the others."
        );
        let _ = writeln!(out, "# TYPE memory_service_health_state gauge");
        let now = monitor.state();
        for (s, name) in [
            (State::Starting, "starting"),
            (State::Ready, "ready"),
            (State::Degraded, "degraded"),
        ] {
            let _ = writeln!(
                out,
                "memory_service_health_state{{state=\"{name}\"}} {}",
                u8::from(now == s)
            );
        }
        let _ = writeln!(
            out,
            "# HELP memory_service_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE memory_service_requests_total counter");
        for ((route, status), n) in self.requests.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "memory_service_requests_total{{route=\"{}\",status=\"{status}\"}} {}",
                route.replace('\\', "\\\\").replace('"', "\\\""),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP memory_service_lock_check_failures_total Lock re-checks that failed."
        );
        let _ = writeln!(out, "# TYPE memory_service_lock_check_failures_total counter");
        let _ = writeln!(
            out,
            "memory_service_lock_check_failures_total {}",
            self.lock_check_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP memory_service_lock_recreated_total Times the lock file was recreated."
        );
        let _ = writeln!(out, "# TYPE memory_service_lock_recreated_total counter");
        let _ = writeln!(
            out,
            "memory_service_lock_recreated_total {}",
            self.lock_recreated.load(Ordering::Relaxed)
        );
        out.push_str(extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_status() {
        let m = Metrics::default();
        m.record("/health", 200);
        m.record("/health", 200);
        m.record("/x\"y", 404);
        let mon = crate::monitor::tests::monitor();
        let text = m.render(&mon, "");
        assert!(
            text.contains("memory_service_requests_total{route=\"/health\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("route=\"/x\\\"y\",status=\"404\"} 1"), "{text}");
        assert!(text.contains("memory_service_health_state{state=\"starting\"} 1"));
        assert!(text.contains("memory_service_lock_check_failures_total 0"));
    }
}
