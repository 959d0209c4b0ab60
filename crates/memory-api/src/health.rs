//! The `/health` report. ChatDO checks only `status == "ok"` (with a one
//! second timeout); everything else is ours, added so a prober can tie an
//! answer to the holder record of the lock (`instance_id`, `pid`, `home`,
//! `port`) and so `status` and supervisors can show why an instance is not
//! ready. It is built from memory, never from the database.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The state `/health` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serving, but start-up work (recovery, migrations) is not finished.
    Starting,
    /// All well.
    Ready,
    /// Serving, with open problems listed in `reasons`.
    Degraded,
}

impl State {
    /// The wire name, e.g. `ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Degraded => "degraded",
        }
    }
}

/// Whether search ranks by meaning too (the `semantic` object of `/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SemanticState {
    /// No embedding model installed (or none wanted): search is BM25 and word coverage.
    #[default]
    Off,
    /// The model is loading (seconds); search is text-only meanwhile.
    Loading,
    /// The model is loaded; new and old chunks are embedded in the background.
    Ready,
    /// The model could not be loaded; `reason` says why.
    Error,
}

/// The `semantic` object of `/health` and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SemanticReport {
    /// Off, loading, ready or error.
    pub state: SemanticState,
    /// The model's id (`<name>@<hash>`) once loaded, else null.
    #[schema(required = true)]
    pub model: Option<String>,
    /// Why semantic search is off or failed, with what to do (e.g. the install
    /// command), else null.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// Chunks still waiting for their embedding (0 when off).
    pub pending_chunks: u64,
    /// Chunks embedded with the current model.
    pub embedded_chunks: u64,
}

/// The `GET /health` body: always 200 while the service answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthReport {
    /// Always `"ok"` while we answer: ChatDO's client checks only this.
    pub status: String,
    /// Always `"memory-service"`: tells us from another program on the port.
    pub service: String,
    /// The serving process's PID.
    pub pid: u32,
    /// The random id of this run, also in the holder record of the lock file.
    pub instance_id: String,
    /// The service's version (its Cargo package version).
    pub version: String,
    /// The host (address) it serves on, e.g. `127.0.0.1`.
    pub host: String,
    /// The TCP port it serves on.
    pub port: u16,
    /// Its home directory (the data directory the lock guards), absolute.
    #[schema(value_type = String)]
    pub home: PathBuf,
    /// When it started, naive local time ISO-8601.
    pub started_at: String,
    /// Seconds since start (whole seconds, monotonic clock).
    pub uptime_s: u64,
    /// Starting, ready or degraded.
    pub state: State,
    /// Why degraded, one `"<component>: <problem>"` each (empty otherwise).
    /// Read as empty from an older instance that did not send it.
    #[serde(default)]
    #[schema(required = true)]
    pub reasons: Vec<String>,
    /// Semantic search: whether it is on, why not, and the embedding backlog.
    /// Read as off from an older instance that did not send it.
    #[serde(default)]
    #[schema(required = true)]
    pub semantic: SemanticReport,
}

/// The part of the `/health` body that says which instance answered: what
/// the single-instance guard and the client compare with the holder record
/// of the lock. Read on its own (other fields ignored), so an instance of
/// another version is still recognised as ours and never taken for a stranger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthIdentity {
    /// `"memory-service"` for ours.
    pub service: String,
    /// The serving process's PID.
    pub pid: u32,
    /// The random id of its run, as in the holder record.
    pub instance_id: String,
    /// Its home directory.
    #[schema(value_type = String)]
    pub home: PathBuf,
}
