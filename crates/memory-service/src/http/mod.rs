//! The HTTP face of the service: thin handlers over the core. Handlers parse,
//! call the core, and map results; the core never names axum. `serve` takes
//! an already-bound listener and a shutdown token, so tests bind port 0 and
//! never wait for start-up, and `main` decides how and where to bind.
//!
//! The accept loop is ours (hyper's HTTP/1 connection builder, as
//! `axum::serve` uses, which offers no knobs): idle or slow connections must
//! not be able to starve `/health`, which ChatDO gives one second. So every
//! connection has a header-read deadline that also ends idle keep-alive
//! connections, at most `max_connections` are served at once, and a few more
//! slots beyond that answer only `/health` (everything else 503 at once).

pub mod auth;
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

/// Connections accepted beyond `max_connections` that answer `/health` only
/// (anything else: 503 at once), one request each, so a flood of idle
/// connections never leaves supervisors and ChatDO without an answer.
pub const HEALTH_ONLY_SLOTS: usize = 16;

/// The header-read deadline of a `/health`-only connection: it frees its slot
/// this soon when the client says nothing (a probe speaks at once).
pub const HEALTH_ONLY_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// The slot a connection holds until it closes.
struct Slot {
    /// Released when the connection's task ends.
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// One of [`HEALTH_ONLY_SLOTS`], not of `max_connections`.
    health_only: bool,
}

/// The answer on a `/health`-only connection to any other route.
fn too_many_connections(max: usize) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut resp = ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        detail: format!(
            "too many open connections (the limit is {max}; MEMORY_SERVICE_MAX_CONNECTIONS); \
             only /health is answered until some close; retry shortly"
        ),
    }
    .into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    h.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

/// Serves `state` on `listener` until `shutdown` is cancelled, then stops
/// accepting and drains in-flight requests for at most `drain`.
///
/// Connections are bounded by `state.config`: `max_connections` served at
/// once plus [`HEALTH_ONLY_SLOTS`] for `/health`; beyond both, connections
/// wait in the kernel's backlog (a health-only slot frees within
/// [`HEALTH_ONLY_HEADER_TIMEOUT`] plus one answer). `header_timeout` bounds
/// the wait for each request head, from the connection's start and again
/// after each response (hyper starts its timer whenever it waits for a
/// head), so it closes idle keep-alive connections too. Source: hyper
/// 1.12's `proto/h1/conn.rs` (`poll_read_head` arms the timer whenever it is
/// not running; it is disarmed once a head is parsed); see
/// hyperium/hyper#3828.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let limits = Limits {
        max: state.config.max_connections,
        header_timeout: state.config.header_timeout,
    };
    let app = router(state);
    let slots = Slots::new(limits.max);
    // Each connection task holds a receiver; the drain waits for all to drop.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    while let Some((stream, slot)) = next_connection(&listener, &slots, &shutdown).await {
        let open = open_rx.clone();
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            slot,
            limits,
            shutdown.clone(),
            open,
        ));
    }
    // Stop accepting: new connections are refused from here on.
    drop(listener);
    drop(open_rx);
    if tokio::time::timeout(drain, open_tx.closed()).await.is_err() {
        tracing::warn!(
            ?drain,
            "requests still in flight after the drain timeout; closing them"
        );
    }
    Ok(())
}

/// The connection limits of one server, from its configuration.
#[derive(Clone, Copy)]
struct Limits {
    /// Connections served at once (`max_connections`), beyond the
    /// `/health`-only slots.
    max: usize,
    /// The header-read deadline of a full connection.
    header_timeout: Duration,
}

/// The connection slots: `max_connections` full ones, then
/// [`HEALTH_ONLY_SLOTS`].
struct Slots {
    full: Arc<tokio::sync::Semaphore>,
    health_only: Arc<tokio::sync::Semaphore>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            full: Arc::new(tokio::sync::Semaphore::new(max)),
            health_only: Arc::new(tokio::sync::Semaphore::new(HEALTH_ONLY_SLOTS)),
        }
    }
}

/// Waits for a free slot, then for a connection; `None` once `shutdown` is
/// cancelled. A full slot that freed during the accept replaces a
/// `/health`-only one.
async fn next_connection(
    listener: &tokio::net::TcpListener,
    slots: &Slots,
    shutdown: &CancellationToken,
) -> Option<(tokio::net::TcpStream, Slot)> {
    loop {
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            p = slots.full.clone().acquire_owned() => Slot { _permit: p.expect("never closed"), health_only: false },
            p = slots.health_only.clone().acquire_owned() => Slot { _permit: p.expect("never closed"), health_only: true },
        };
        let (stream, _peer) = tokio::select! {
            () = shutdown.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: give descriptors a moment to come back.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A full slot may have freed while we waited in accept.
        let slot = match slots.full.clone().try_acquire_owned() {
            Ok(p) if slot.health_only => Slot {
                _permit: p,
                health_only: false,
            },
            _ => slot,
        };
        return Some((stream, slot));
    }
}

/// Serves one connection in its slot until it closes; on shutdown, lets
/// its request in flight finish (the drain bounds it). `open` is dropped
/// with it, which the drain waits for.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: axum::Router,
    slot: Slot,
    limits: Limits,
    shutdown: CancellationToken,
    open: tokio::sync::watch::Receiver<()>,
) {
    use tower::ServiceExt as _;

    let _open = open;
    let only_health = slot.health_only;
    let _slot = slot;
    let max = limits.max;
    let service = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            if only_health && req.uri().path() != "/health" {
                return Ok::<_, std::convert::Infallible>(too_many_connections(max));
            }
            app.oneshot(req.map(axum::body::Body::new)).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(if only_health {
            limits.header_timeout.min(HEALTH_ONLY_HEADER_TIMEOUT)
        } else {
            limits.header_timeout
        })
        .keep_alive(!only_health);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
