//! `GET /metrics` in the OpenMetrics text format, written by `prometheus-client`
//! rather than by hand, so escaping, `_total` suffixes, units and the `# EOF`
//! marker follow the format. Names follow Prometheus's naming conventions:
//! base units (seconds, never ms or µs) in the name, `_total` on counters.
//!
//! Two kinds of numbers: the requests counter and the lock counters are
//! counted here as they happen (one atomic add; the request family takes a
//! write lock only the first time a (route, status) pair is seen); everything
//! else is a snapshot read at scrape time from memory (the monitor, the
//! store's counters, the semantic report), never from the database, and is
//! exposed as constant metrics in a registry built for that scrape.

use std::sync::atomic::{AtomicU64, Ordering};

use memory_store::StoreStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

use crate::monitor::{Monitor, SemanticReport, SemanticState, State};

/// The `Content-Type` of [`Metrics::render`]'s text (OpenMetrics 1.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The prefix of every metric name.
const PREFIX: &str = "memory_service";

/// The labels of `memory_service_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template (`/sources/{id}`), or `unmatched`.
    route: String,
    /// The HTTP status code.
    status: u16,
}

/// The label of a one-hot state gauge (`state="ready"`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The service's own counters (the rest is read at scrape time).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by (route template, status code).
    requests: Family<RequestLabels, Counter>,
    /// Lock re-checks that failed with an error.
    pub lock_check_failures: AtomicU64,
    /// Times the lock file had to be recreated.
    pub lock_recreated: AtomicU64,
}

impl Metrics {
    /// Counts one request.
    pub fn record(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// The OpenMetrics text exposition: this instance's counters, its uptime
    /// and health state from `monitor`, the store's counters (`None` while
    /// the store is not open) and semantic search's state and backlog.
    pub fn render(&self, monitor: &Monitor, store: Option<&StoreStats>, semantic: &SemanticReport) -> String {
        let mut reg = Registry::with_prefix(PREFIX);
        reg.register_with_unit(
            "uptime",
            "Time since this instance started",
            Unit::Seconds,
            ConstGauge::new(monitor.uptime_s() as i64),
        );
        let now = monitor.state();
        reg.register(
            "health_state",
            "1 for the current health state, 0 for the others",
            one_hot([
                ("starting", now == State::Starting),
                ("ready", now == State::Ready),
                ("degraded", now == State::Degraded),
            ]),
        );
        reg.register(
            "requests",
            "HTTP requests by route and status",
            self.requests.clone(),
        );
        reg.register(
            "lock_check_failures",
            "Lock re-checks that failed",
            ConstCounter::new(self.lock_check_failures.load(Ordering::Relaxed)),
        );
        reg.register(
            "lock_recreated",
            "Times the lock file was recreated",
            ConstCounter::new(self.lock_recreated.load(Ordering::Relaxed)),
        );
        if let Some(s) = store {
            register_store(&mut reg, s);
        }
        register_semantic(&mut reg, semantic);
        let mut out = String::new();
        // Writing into a String cannot fail, and every name and label here is ours.
        encode(&mut out, &reg).expect("encoding metrics into a String");
        out
    }
}

/// A gauge family with one series per state: 1 for the current one, 0 for the others.
fn one_hot<const N: usize>(states: [(&'static str, bool); N]) -> Family<StateLabel, Gauge> {
    let family = Family::<StateLabel, Gauge>::default();
    for (state, current) in states {
        family
            .get_or_create(&StateLabel { state })
            .set(i64::from(current));
    }
    family
}

/// Microseconds as seconds (metric names carry base units).
fn us_to_s(us: u64) -> f64 {
    us as f64 / 1e6
}

/// The store's counters and gauges, from memory (never the database).
fn register_store(reg: &mut Registry, s: &StoreStats) {
    let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    reg.register(
        "store_writer_queue_depth",
        "Writes waiting for the writer thread",
        gauge(s.writer_queue_depth),
    );
    reg.register(
        "store_pending_chat_jobs",
        "Chat index jobs queued or running",
        gauge(s.pending_chat_jobs),
    );
    reg.register_with_unit(
        "store_oldest_pending_job_age",
        "Age of the oldest pending chat index job",
        Unit::Seconds,
        ConstGauge::new(s.oldest_pending_job_age_ms as f64 / 1e3),
    );
    register_commits(reg, s);
    reg.register(
        "store_messages_indexed",
        "Chat messages indexed",
        ConstCounter::new(s.messages_indexed),
    );
    reg.register(
        "store_index_errors",
        "Chat index jobs that failed",
        ConstCounter::new(s.index_errors),
    );
    register_wal(reg, s);
}

/// The writer's transactions: how many, how many failed, how long they took.
fn register_commits(reg: &mut Registry, s: &StoreStats) {
    reg.register(
        "store_commits",
        "Write transactions committed",
        ConstCounter::new(s.commits),
    );
    reg.register(
        "store_writes_committed",
        "Writes committed (group commit batches several)",
        ConstCounter::new(s.writes_committed),
    );
    reg.register(
        "store_commit_failures",
        "Write transactions that failed to commit",
        ConstCounter::new(s.commit_failures),
    );
    reg.register_with_unit(
        "store_commit_latency",
        "Sum of commit latencies",
        Unit::Seconds,
        ConstCounter::new(us_to_s(s.commit_latency_total_us)),
    );
    reg.register_with_unit(
        "store_commit_latency_max",
        "Slowest commit so far",
        Unit::Seconds,
        ConstGauge::new(us_to_s(s.commit_latency_max_us)),
    );
}

/// The WAL size guard's forced checkpoints.
fn register_wal(reg: &mut Registry, s: &StoreStats) {
    reg.register(
        "store_wal_checkpoints",
        "WAL checkpoints forced by its size limit",
        ConstCounter::new(s.wal_checkpoints),
    );
    reg.register(
        "store_wal_checkpoints_busy",
        "Forced WAL checkpoints that gave way to readers",
        ConstCounter::new(s.wal_checkpoints_busy),
    );
    reg.register_with_unit(
        "store_wal_checkpoint_stall_max",
        "Longest writer stall in a forced WAL checkpoint",
        Unit::Seconds,
        ConstGauge::new(us_to_s(s.wal_checkpoint_stall_max_us)),
    );
}

/// Semantic search: whether it is on, and the embedding backlog.
fn register_semantic(reg: &mut Registry, s: &SemanticReport) {
    reg.register(
        "semantic_state",
        "1 for the current state of semantic search, 0 for the others",
        one_hot([
            ("off", s.state == SemanticState::Off),
            ("loading", s.state == SemanticState::Loading),
            ("ready", s.state == SemanticState::Ready),
            ("error", s.state == SemanticState::Error),
        ]),
    );
    let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    reg.register(
        "embedding_pending_chunks",
        "Chunks waiting for their embedding",
        gauge(s.pending_chunks),
    );
    reg.register(
        "embedded_chunks",
        "Chunks embedded with the current model",
        gauge(s.embedded_chunks),
    );
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
        let text = m.render(&mon, None, &SemanticReport::default());
        assert!(
            text.contains("memory_service_requests_total{route=\"/health\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("route=\"/x\\\"y\",status=\"404\"} 1"), "{text}");
        assert!(
            text.contains("memory_service_health_state{state=\"starting\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("memory_service_health_state{state=\"ready\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("memory_service_lock_check_failures_total 0"),
            "{text}"
        );
        assert!(text.contains("memory_service_uptime_seconds "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn store_times_are_in_seconds() {
        let stats = StoreStats {
            oldest_pending_job_age_ms: 1_500,
            commit_latency_total_us: 2_500_000,
            commit_latency_max_us: 250_000,
            wal_checkpoint_stall_max_us: 1_000,
            messages_indexed: 7,
            ..StoreStats::default()
        };
        let mon = crate::monitor::tests::monitor();
        let text = Metrics::default().render(&mon, Some(&stats), &SemanticReport::default());
        for line in [
            "memory_service_store_oldest_pending_job_age_seconds 1.5",
            "memory_service_store_commit_latency_seconds_total 2.5",
            "memory_service_store_commit_latency_max_seconds 0.25",
            "memory_service_store_wal_checkpoint_stall_max_seconds 0.001",
            "memory_service_store_messages_indexed_total 7",
            "memory_service_semantic_state{state=\"off\"} 1",
            "memory_service_embedding_pending_chunks 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in {text}");
        }
        assert!(!text.contains("_ms") && !text.contains("_us"), "{text}");
    }
}
