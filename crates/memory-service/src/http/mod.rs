//! The HTTP face of the service: thin handlers over the core. Handlers parse,
//! call the core, and map results; the core never names axum. `serve` takes
//! an already-bound listener and a shutdown token, so tests bind port 0 and
//! never wait for start-up, and `main` decides how and where to bind.

mod chat;
mod error;
mod extract;
mod filetree;
mod health;
mod metrics;
mod page;
mod router;
mod search;
mod sources;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use router::router;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitor::Monitor;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Identity and health state.
    pub monitor: Arc<Monitor>,
    /// The resolved configuration.
    pub config: Arc<Config>,
    /// Request and lock counters.
    pub metrics: Arc<Metrics>,
    /// The database and the file indexer, set once they are open. Until
    /// then `/health` answers (state `starting`) and data routes answer 503,
    /// so a slow start (WAL recovery, many watchers) never looks stuck.
    pub services: Arc<OnceLock<Services>>,
    /// The embedding model and stage, once loaded (search is text-only until then).
    pub semantic: Arc<crate::semantic::Semantic>,
}

/// What the data routes need, available once start-up work is done.
pub struct Services {
    /// The database.
    pub store: memory_store::Store,
    /// File sources: jobs, watchers.
    pub indexer: Arc<memory_indexer::Indexer>,
}

impl AppState {
    fn services(&self) -> Result<&Services, ApiError> {
        self.services.get().ok_or_else(|| ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            detail: "Memory Service is starting (opening its database); retry shortly".into(),
        })
    }

    /// The database, or 503 while starting.
    pub fn store(&self) -> Result<&memory_store::Store, ApiError> {
        self.services().map(|s| &s.store)
    }

    /// The file indexer, or 503 while starting.
    pub fn indexer(&self) -> Result<&Arc<memory_indexer::Indexer>, ApiError> {
        self.services().map(|s| &s.indexer)
    }
}

/// Runs blocking work (SQLite, the file system) off the async workers and
/// maps its errors to HTTP.
pub(crate) async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(join) => Err(ApiError::internal(format!("a store task failed: {join}"))),
    }
}

/// Serves `state` on `listener` until `shutdown` is cancelled, then drains
/// in-flight requests for at most `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let app = router(state);
    let graceful = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        r = graceful => r,
        () = async { shutdown.cancelled().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(?drain, "requests still in flight after the drain timeout; closing them");
            Ok(())
        }
    }
}
