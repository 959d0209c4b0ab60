//! The instance's identity and health state, kept in memory so `/health`
//! answers in microseconds whatever else the service is doing: it reads an
//! atomically swapped snapshot and never takes a lock a slow component could
//! hold. Components report trouble by name; any open report makes the state
//! `degraded` with its reasons. No HTTP types here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use arc_swap::ArcSwap;
use serde::Serialize;

/// Who this instance is. Fixed at start; the same values are in the holder
/// record of the lock file, which is how a prober ties an answer to a holder.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceIdentity {
    /// Always "memory-service".
    pub service: &'static str,
    /// Our PID.
    pub pid: u32,
    /// The random id in our holder record.
    pub instance_id: String,
    /// Our version.
    pub version: &'static str,
    /// The host we serve on.
    pub host: String,
    /// The port we serve on.
    pub port: u16,
    /// Our home directory.
    pub home: PathBuf,
    /// When we started, local time ISO-8601.
    pub started_at: String,
}

// The wire types of `/health` live in the contract crate; re-exported here
// because the semantic stage and `status` name them through this module.
pub use memory_api::HealthReport;
pub use memory_api::health::{SemanticReport, SemanticState, State};

/// The published part of the state: swapped whole, read without locking.
#[derive(Debug, Clone)]
struct Snapshot {
    state: State,
    reasons: Vec<String>,
}

/// Health state shared by the server and its components.
#[derive(Debug)]
pub struct Monitor {
    /// Fixed identity.
    identity: ServiceIdentity,
    /// Monotonic start, for uptime.
    started: Instant,
    /// What `/health` reads.
    snapshot: ArcSwap<Snapshot>,
    /// The semantic part of `/health`, swapped whole by the model loader and the
    /// embedding stage.
    semantic: ArcSwap<SemanticReport>,
    /// Writers' side: whether start-up finished and the open problems. Only
    /// reporters lock it, never `/health`.
    inner: Mutex<(bool, BTreeMap<String, String>)>,
}

impl Monitor {
    /// A monitor in state `starting`.
    pub fn new(identity: ServiceIdentity) -> Arc<Monitor> {
        Arc::new(Monitor {
            identity,
            started: Instant::now(),
            snapshot: ArcSwap::from_pointee(Snapshot {
                state: State::Starting,
                reasons: Vec::new(),
            }),
            semantic: ArcSwap::from_pointee(SemanticReport::default()),
            inner: Mutex::new((false, BTreeMap::new())),
        })
    }

    /// Replaces the semantic report.
    pub fn set_semantic(&self, report: SemanticReport) {
        self.semantic.store(Arc::new(report));
    }

    /// The semantic report.
    pub fn semantic(&self) -> SemanticReport {
        (**self.semantic.load()).clone()
    }

    /// Our identity.
    pub fn identity(&self) -> &ServiceIdentity {
        &self.identity
    }

    /// Seconds since start.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn publish(&self, ready: bool, problems: &BTreeMap<String, String>) {
        let state = match (ready, problems.is_empty()) {
            (_, false) => State::Degraded,
            (false, true) => State::Starting,
            (true, true) => State::Ready,
        };
        let reasons = problems.iter().map(|(c, r)| format!("{c}: {r}")).collect();
        self.snapshot.store(Arc::new(Snapshot { state, reasons }));
    }

    /// Start-up work is done.
    pub fn set_ready(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = true;
        self.publish(g.0, &g.1);
    }

    /// A component reports a problem (`Some`) or that it is fine again (`None`).
    pub fn report(&self, component: &str, problem: Option<String>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match problem {
            Some(p) => g.1.insert(component.to_string(), p.clone()).as_ref() != Some(&p),
            None => g.1.remove(component).is_some(),
        };
        if changed {
            self.publish(g.0, &g.1);
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.snapshot.load().state
    }

    /// The `/health` body, built from memory.
    pub fn report_now(&self) -> HealthReport {
        let snap = self.snapshot.load();
        let id = &self.identity;
        HealthReport {
            status: "ok".into(),
            service: id.service.into(),
            pid: id.pid,
            instance_id: id.instance_id.clone(),
            version: id.version.into(),
            host: id.host.clone(),
            port: id.port,
            home: id.home.clone(),
            started_at: id.started_at.clone(),
            uptime_s: self.uptime_s(),
            state: snap.state,
            reasons: snap.reasons.clone(),
            semantic: self.semantic(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn monitor() -> Arc<Monitor> {
        Monitor::new(ServiceIdentity {
            service: "memory-service",
            pid: 1,
            instance_id: "i".into(),
            version: "v",
            host: "127.0.0.1".into(),
            port: 1,
            home: "/h".into(),
            started_at: "t".into(),
        })
    }

    #[test]
    fn starting_ready_degraded_and_back() {
        let m = monitor();
        assert_eq!(m.state(), State::Starting);
        m.set_ready();
        assert_eq!(m.state(), State::Ready);
        m.report("writer", Some("queue 500 deep".into()));
        let r = m.report_now();
        assert_eq!(
            (r.state, r.reasons.clone()),
            (State::Degraded, vec!["writer: queue 500 deep".to_string()])
        );
        m.report("writer", None);
        assert_eq!(m.state(), State::Ready);
    }

    #[test]
    fn body_has_every_identity_field() {
        let v = serde_json::to_value(monitor().report_now()).unwrap();
        for k in [
            "status",
            "service",
            "pid",
            "instance_id",
            "version",
            "host",
            "port",
            "home",
            "started_at",
            "uptime_s",
            "state",
            "reasons",
            "semantic",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {v}");
        }
        assert_eq!(v["status"], "ok");
        assert_eq!(v["state"], "starting");
    }
}
