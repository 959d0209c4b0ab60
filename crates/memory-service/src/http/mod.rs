//! The HTTP face of the service: thin handlers over the core. Handlers parse,
//! call the core, and map results; the core never names axum. `serve` takes
//! an already-bound listener and a shutdown token, so tests bind port 0 and
//! never wait for start-up, and `main` decides how and where to bind.

mod chat;
mod error;
mod extract;
mod facts;
mod filetree;
mod health;
mod metrics;
mod page;
mod router;
mod search;
mod sources;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// then `/health` answers (state `starting`) and a data request waits for
    /// the open (at most [`ServicesCell::wait_limit`]), so a slow start (WAL
    /// recovery, many watchers) never looks stuck.
    pub services: Arc<ServicesCell>,
    /// The embedding model and stage, once loaded (search is text-only until then).
    pub semantic: Arc<crate::semantic::Semantic>,
}

/// How long a data request waits for the store to open before a 503.
/// An empty home opens in tens of milliseconds, one after a crash in
/// seconds; ChatDO's calls have 2 to 60 s timeouts (api.md A.1).
pub const OPEN_WAIT: Duration = Duration::from_secs(5);

/// The services, set once, and a wake-up for the requests waiting on them.
///
/// Why: ChatDO checks `/health` (which answers at once, from memory) and then
/// posts; a 503 for a request that arrives while the database opens turns a
/// good start into a lost message (issue 10). So the request waits for the
/// open, bounded, instead.
pub struct ServicesCell {
    cell: OnceLock<Services>,
    changed: tokio::sync::Notify,
    waiting: AtomicUsize,
    wait_limit: Duration,
}

impl Default for ServicesCell {
    fn default() -> Self {
        ServicesCell::with_wait_limit(OPEN_WAIT)
    }
}

impl From<Services> for ServicesCell {
    fn from(s: Services) -> Self {
        let cell = ServicesCell::default();
        let _ = cell.set(s);
        cell
    }
}

impl ServicesCell {
    /// Empty; requests wait at most `limit` for [`ServicesCell::set`].
    pub fn with_wait_limit(limit: Duration) -> Self {
        ServicesCell {
            cell: OnceLock::new(),
            changed: tokio::sync::Notify::new(),
            waiting: AtomicUsize::new(0),
            wait_limit: limit,
        }
    }

    /// The services, if open.
    pub fn get(&self) -> Option<&Services> {
        self.cell.get()
    }

    /// Publishes the opened services and wakes every waiting request. `Err`
    /// gives `s` back if they were already set.
    pub fn set(&self, s: Services) -> Result<(), Services> {
        let r = self.cell.set(s);
        self.changed.notify_waiters();
        r
    }

    /// The open failed: wakes the waiting requests so they answer 503 now
    /// rather than at the end of their wait.
    pub fn give_up(&self) {
        self.changed.notify_waiters();
    }

    /// How long a request waits for the open.
    pub fn wait_limit(&self) -> Duration {
        self.wait_limit
    }

    /// Requests waiting right now (for tests and diagnostics).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The services, waiting up to the limit for them; `None` if they are
    /// still not open (or the open failed).
    pub async fn wait(&self) -> Option<&Services> {
        if let Some(s) = self.cell.get() {
            return Some(s);
        }
        let notified = self.changed.notified();
        tokio::pin!(notified);
        // Registered before the second look, so a `set` in between is not missed.
        notified.as_mut().enable();
        if let Some(s) = self.cell.get() {
            return Some(s);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _ = tokio::time::timeout(self.wait_limit, notified).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.cell.get()
    }
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
        self.services.get().ok_or_else(starting)
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

/// The 503 for a request that arrived while the database opens and outwaited
/// [`OPEN_WAIT`].
pub(crate) fn starting() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        detail: format!(
            "Memory Service is starting (its database has been opening for over {} s); retry shortly",
            OPEN_WAIT.as_secs()
        ),
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
