//! `memory-service serve`: the foreground instance. The order is the whole
//! safety story: claim the home (flock) before binding the port or opening
//! any data; bind with no port sharing (never the REUSEPORT option); only
//! then build the async runtime and serve. On SIGTERM/SIGINT: stop accepting, drain, remove the PID file,
//! remove the lock file while still holding the lock, exit 0.
//!
//! [`run`] is the binary's part (claim, bind, signals, the lock watcher);
//! [`serve`] is the data API on a bound listener until a shutdown token,
//! a library function so data-API tests run it in-process on port 0.

mod lockwatch;
mod notify;
pub(crate) mod storewatch;

use std::io::Write as _;
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use single_instance::{AppIdentity, Claim, Instance, Policy, Verdict};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::http::{self, AppState, Services};
use crate::metrics::Metrics;
use crate::monitor::{Monitor, ServiceIdentity};
use crate::probe;
use crate::semantic::Semantic;

/// The service name in `/health` and in the guard's policy.
pub const SERVICE: &str = "memory-service";
/// Our version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Our names in the guard's messages.
pub fn app() -> AppIdentity {
    AppIdentity::new(SERVICE, "Memory Service", "--home")
}

/// The guard's policy for this configuration.
pub fn policy(config: &Config) -> Policy {
    Policy {
        app: app(),
        startup_grace_secs: config.startup_grace.as_secs().max(1),
    }
}

/// Prints a refusal the way the seed's users know it, plus who holds what
/// and what to do next.
pub fn report_refusal(verdict: &Verdict, config: &Config) {
    let mut err = std::io::stderr().lock();
    let home = config.home.display();
    let app = app();
    let said = verdict.describe(&app);
    match verdict {
        Verdict::AlreadyRunning {
            pid,
            host,
            port,
            home,
        } => {
            let _ = writeln!(
                err,
                "[STARTUP] Memory Service is already running on {host}:{port}"
            );
            let _ = writeln!(err, "[STARTUP] Exiting to prevent duplicate instance");
            let _ = writeln!(
                err,
                "Cannot start: Memory Service is already running on {host}:{port}"
            );
            let _ = writeln!(err, "  holder: PID {pid}, home {}", home.display());
            let _ = writeln!(
                err,
                "  next: use it as is, or `memory-service stop --home {}` first",
                home.display()
            );
        }
        Verdict::Starting { .. } | Verdict::Unresponsive { .. } => {
            let _ = writeln!(err, "[STARTUP] {said}");
            let _ = writeln!(err, "[STARTUP] Exiting to prevent duplicate instance");
            let _ = writeln!(err, "Cannot start: {said} (home {home})");
            let next = if matches!(verdict, Verdict::Starting { .. }) {
                "wait a moment and check `memory-service status`"
            } else {
                "`memory-service start` replaces a stuck instance; `memory-service stop --force` stops it"
            };
            let _ = writeln!(err, "  next: {next}");
        }
        Verdict::HeldByStranger { .. } => {
            let _ = writeln!(err, "Cannot start: {said} (home {home})");
            let _ = writeln!(
                err,
                "  next: stop that program (nothing was signalled), or use another home with --home"
            );
        }
        Verdict::PortHeldByOtherInstance { .. } | Verdict::PortHeldByStranger { .. } => {
            let _ = writeln!(err, "memory-service: cannot start for home {home}: {said}");
            let _ = writeln!(
                err,
                "  next: stop that program, or choose another port with --port (nothing was signalled)"
            );
        }
        Verdict::Start { .. } | Verdict::Retry => {
            let _ = writeln!(err, "memory-service: cannot start: {said}");
        }
    }
}

fn bind(config: &Config) -> std::io::Result<TcpListener> {
    // std's bind sets SO_REUSEADDR (TIME_WAIT reuse) but never the REUSEPORT option:
    // a second listener on the same port fails with AddrInUse, as it must.
    let addrs: Vec<_> = (config.host.as_str(), config.port).to_socket_addrs()?.collect();
    let listener = TcpListener::bind(&addrs[..])?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Raises the soft open-files limit (`RLIMIT_NOFILE`) to the hard limit. Each HTTP
/// connection, watched folder and SQLite connection holds descriptors; a shell's
/// default soft limit (often 1024, or 256 on macOS) let 300 idle connections make
/// `/health` fail (issue 13). The hard limit is the most an unprivileged process may
/// take; failing to raise it is logged, never fatal.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "could not raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-files limit"),
    }
}

/// Descriptors kept back from HTTP connections for the database, the file
/// watchers, the log and the embedding model.
const RESERVED_DESCRIPTORS: u64 = 128;

/// `wanted` connections, or fewer when the open-files soft limit cannot hold
/// them next to [`RESERVED_DESCRIPTORS`] and the `/health`-only slots (a
/// connection over the limit fails to accept, and `/health` with it).
fn connection_cap(wanted: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    let room = soft.saturating_sub(RESERVED_DESCRIPTORS + http::HEALTH_ONLY_SLOTS as u64);
    let cap = wanted.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1);
    if cap < wanted {
        tracing::warn!(
            wanted,
            cap,
            open_files_limit = soft,
            "the open-files limit allows fewer HTTP connections than configured; serving at most {cap}"
        );
    }
    cap
}

/// The warning of an instance that other machines can reach, in the log and
/// on stderr.
fn warn_remote(config: &Config) {
    let token = crate::http::auth::token_path(&config.home);
    tracing::warn!(
        host = %config.host,
        token = %token.display(),
        "--allow-remote: serving on a non-loopback address; other machines can reach this service. \
         Every request but /health needs `Authorization: Bearer <token>` (the token is in the token file)"
    );
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "WARNING: Memory Service listens on {} (--allow-remote): other machines can reach it.\n\
         WARNING: every request but /health needs `Authorization: Bearer <token>`, the token in {}.\n\
         WARNING: traffic is plain HTTP; use it only on a network you trust, or behind a TLS proxy.",
        config.host,
        token.display()
    );
}

/// Runs the `serve` command to completion (claim, bind, then [`serve`] in a
/// runtime of its own, then release) and returns the exit code.
pub fn run(mut config: Config) -> anyhow::Result<ExitCode> {
    // A parent that blocks SIGTERM/SIGINT passes its mask through exec; we
    // would then never see the signals we drain on. Unblock them first.
    let mut wanted = nix::sys::signal::SigSet::empty();
    wanted.add(nix::sys::signal::Signal::SIGTERM);
    wanted.add(nix::sys::signal::Signal::SIGINT);
    if let Err(e) = wanted.thread_unblock() {
        tracing::warn!(error = %e, "could not unblock SIGTERM/SIGINT");
    }
    // Everything we create (database, WAL, PID and lock files) is private.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    raise_open_files_limit();
    let instance = match claim_home(&config)? {
        Ok(instance) => instance,
        Err(code) => return Ok(code),
    };
    if config.allow_remote {
        match crate::http::auth::load_or_create(&config.home) {
            Ok(token) => config.auth_token = Some(token),
            Err(e) => {
                let _ = instance.release();
                return Err(e.context("preparing the bearer token for --allow-remote"));
            }
        }
        warn_remote(&config);
    }
    config.max_connections = connection_cap(config.max_connections);
    let (listener, mut instance) = match bind_or_release(&config, instance)? {
        Ok(bound) => bound,
        Err(code) => return Ok(code),
    };
    let bound = listener.local_addr()?;
    instance.set_port(bound.port())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("memory-service")
        .build()
        .context("starting the async runtime")?;
    let instance = Arc::new(Mutex::new(Some(instance)));
    let outcome = runtime.block_on(serve_claimed(config, listener, bound, instance.clone()));
    // Blocking tasks still running (a slow file read) must not hold the exit
    // (and the lock) forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    // Release on every path, errors included: no PID file left behind.
    let taken = instance.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(instance) = taken {
        instance.release().context("removing the PID and lock files")?;
    }
    let code = outcome?;
    tracing::info!("stopped");
    Ok(code)
}

/// Claims the home through the guard: `Ok(Ok(instance))` when ours now;
/// `Ok(Err(code))` after the refusal was reported (an unusable home, another
/// holder), so the caller only exits with it.
fn claim_home(config: &Config) -> anyhow::Result<Result<Instance, ExitCode>> {
    let files = config.paths().guarded();
    let policy = policy(config);
    let claim = match single_instance::claim(
        &files,
        &config.host,
        config.port,
        VERSION,
        &policy,
        &probe::guard_probe,
    ) {
        Ok(c) => c,
        Err(
            e @ (single_instance::Error::HomeUnusable { .. }
            | single_instance::Error::NotARegularFile { .. }
            | single_instance::Error::LockIsSymlink { .. }),
        ) => {
            eprintln!("memory-service: {e}");
            return Ok(Err(ExitCode::HomeUnusable));
        }
        Err(e) => return Err(e).context("claiming the home directory"),
    };
    let instance = match claim {
        Claim::Won(instance) => *instance,
        Claim::Refused(verdict) => {
            // Said once, by the seed's lines (stderr: the log under a supervisor).
            report_refusal(&verdict, config);
            return Ok(Err(ExitCode::for_verdict(&verdict)));
        }
    };
    if let Some(from) = instance.prepared().tightened_from {
        tracing::warn!(
            home = %config.home.display(),
            "the home directory was mode {from:04o} (others could read it); made it private (0700)"
        );
    }
    if let Some(stale) = instance.stale() {
        tracing::info!(stale, "replaced a stale PID file");
    }
    Ok(Ok(instance))
}

/// Binds the configured address; on failure releases the claim first. A port
/// someone else holds is examined and reported (`Ok(Err(code))`).
fn bind_or_release(
    config: &Config,
    instance: Instance,
) -> anyhow::Result<Result<(TcpListener, Instance), ExitCode>> {
    match bind(config) {
        Ok(l) => Ok(Ok((l, instance))),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let verdict = single_instance::examine_port(
                &config.host,
                config.port,
                &policy(config),
                &probe::guard_probe,
            );
            instance
                .release()
                .context("releasing the lock after a port conflict")?;
            report_refusal(&verdict, config);
            Ok(Err(ExitCode::for_verdict(&verdict)))
        }
        Err(e) => {
            let _ = instance.release();
            Err(e).with_context(|| format!("binding {}:{}", config.host, config.port))
        }
    }
}

/// The binary's side of serving, once the home is claimed and the port bound:
/// signals, the lock watcher and systemd's notifications around [`serve`].
async fn serve_claimed(
    config: Config,
    listener: TcpListener,
    bound: std::net::SocketAddr,
    instance: Arc<Mutex<Option<Instance>>>,
) -> anyhow::Result<ExitCode> {
    let record = {
        let g = instance.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref()
            .map(|i| i.record().clone())
            .context("instance already released")?
    };
    let shared = Shared {
        monitor: Monitor::new(identity(record.pid, record.instance_id.clone(), bound, &config)),
        metrics: Arc::default(),
    };
    let shutdown = CancellationToken::new();
    // Set by the lock watcher when the home's lock is lost.
    let exit = Arc::new(Mutex::new(ExitCode::Ok));
    spawn_signal_handler(shutdown.clone())?;
    lockwatch::spawn(
        instance,
        config.lock_check_interval,
        shutdown.clone(),
        exit.clone(),
        shared.monitor.clone(),
        shared.metrics.clone(),
    );
    let listener = tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        notify::stopping();
    });
    let (host, watchdog) = (config.host.clone(), shutdown.clone());
    let on_ready = move || {
        notify::ready();
        notify::spawn_watchdog(host, bound.port(), record.pid, watchdog);
    };
    let served = serve(listener, config, shared, shutdown, on_ready).await?;
    let lock = *exit.lock().unwrap_or_else(|e| e.into_inner());
    Ok(if lock == ExitCode::Ok { served } else { lock })
}

/// What one serving instance shares with whoever runs it: `/health` and
/// `/metrics` read both; the binary's lock watcher writes them too.
#[derive(Clone)]
pub struct Shared {
    /// Who we are on `/health`, and the health state: `starting` until the
    /// data is open, then `ready` (or degraded, as components report).
    pub monitor: Arc<Monitor>,
    /// Request and lock counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// For an instance that holds no lock (in-process tests): this process's
    /// PID, a fresh instance id, and `bound` as its address.
    pub fn unlocked(config: &Config, bound: std::net::SocketAddr) -> Shared {
        let id = single_instance::record::new_instance_id();
        Shared {
            monitor: Monitor::new(identity(std::process::id(), id, bound, config)),
            metrics: Arc::default(),
        }
    }
}

/// Serves the data API (store, file indexer, embedding stage, HTTP) on
/// `listener` until `shutdown` is cancelled, then stops accepting, drains
/// in-flight requests (at most `config.drain_timeout`) and closes the data
/// cleanly (indexers stopped at a boundary, the store checkpointed).
///
/// `/health` answers at once (state `starting`) and the database opens
/// behind it, so a slow open is never taken for a stuck instance; once it
/// is open `on_ready` runs (the binary tells systemd) and `/health` says
/// `ready`. It takes no lock and binds nothing: the caller makes sure it is
/// the only user of `config.home`, which must exist (`serve` claims the home
/// first; a test gives it a temp directory), and binds `listener` (a test
/// binds 127.0.0.1:0 and needs no wait for start-up).
///
/// Returns [`ExitCode::Ok`] after a shutdown, or [`ExitCode::Error`] when
/// the data cannot be opened (logged; serving then stops at once). `Err`
/// when the HTTP server itself fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shared: Shared,
    shutdown: CancellationToken,
    on_ready: impl FnOnce() + Send,
) -> anyhow::Result<ExitCode> {
    let bound = listener.local_addr().context("reading the bound address")?;
    let drain = config.drain_timeout;
    let monitor = shared.monitor.clone();
    let services = Arc::new(http::ServicesCell::default());
    let semantic: Arc<Semantic> = Arc::default();
    let state = AppState {
        monitor: monitor.clone(),
        config: Arc::new(config),
        metrics: shared.metrics,
        services: services.clone(),
        semantic: semantic.clone(),
    };
    let server = tokio::spawn(http::serve(listener, state.clone(), shutdown.clone(), drain));
    tracing::info!(
        pid = monitor.identity().pid,
        listening = %bound,
        url = %probe::base_url(&bound.ip().to_string(), bound.port()),
        home = %state.config.home.display(),
        max_connections = state.config.max_connections,
        header_timeout = ?state.config.header_timeout,
        token_required = state.config.auth_token.is_some(),
        "Memory Service is serving; opening the database"
    );
    let mut code = ExitCode::Ok;
    match open_services(&state.config).await {
        Ok(s) => {
            start_background_work(&state, &s, &shutdown);
            let _ = services.set(s);
            monitor.set_ready();
            on_ready();
            tracing::info!("ready");
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot open the data; shutting down");
            services.give_up();
            code = ExitCode::Error;
            shutdown.cancel();
        }
    }
    let served = server.await.context("the HTTP server task failed")?;
    if let Some(s) = services.get() {
        close_services(s, &semantic).await;
    }
    served.context("serving HTTP")?;
    Ok(code)
}

/// What `/health` says about an instance: its PID and instance id (the
/// holder record's, for `serve`), and the address actually bound (`0.0.0.0`
/// for every interface, which `status` shows; the home's record keeps the
/// host as given).
fn identity(pid: u32, instance_id: String, bound: std::net::SocketAddr, config: &Config) -> ServiceIdentity {
    ServiceIdentity {
        service: SERVICE,
        pid,
        instance_id,
        version: VERSION,
        host: bound.ip().to_string(),
        port: bound.port(),
        home: config.home.clone(),
        started_at: memory_store::clock::now_iso(),
    }
}

/// Once the data is open: the store watcher (and its `quick_check`) and the
/// embedding model, which loads behind `/health` and the data routes (seconds).
fn start_background_work(state: &AppState, s: &Services, shutdown: &CancellationToken) {
    storewatch::spawn(
        s.store.clone(),
        s.indexer.clone(),
        state.semantic.clone(),
        state.monitor.clone(),
        state.config.integrity_check_interval,
        shutdown.clone(),
    );
    state.semantic.start(
        state.config.embedding_model.clone(),
        state.config.home.clone(),
        s.store.clone(),
        state.monitor.clone(),
    );
}

/// Requests are drained: stops the chat stage at a message boundary and the
/// file indexer at a file boundary (its job goes back to queued), the
/// embedding stage, then flushes the writer and checkpoints, before our caller
/// releases the lock.
async fn close_services(s: &Services, semantic: &Arc<Semantic>) {
    let (store, indexer) = (s.store.clone(), s.indexer.clone());
    let semantic = semantic.clone();
    match tokio::task::spawn_blocking(move || {
        indexer.shutdown();
        semantic.shutdown();
        store.shutdown()
    })
    .await
    {
        Ok(Ok(())) => tracing::info!("database closed cleanly"),
        Ok(Err(e)) => tracing::error!(error = %e, "closing the database"),
        Err(e) => tracing::error!(error = %e, "closing the database"),
    }
}

/// Opens the database (only now: the lock is ours and the port bound) and
/// starts the file indexer, off the async workers.
async fn open_services(config: &Config) -> anyhow::Result<Services> {
    let db_path = config.paths().database();
    // No source may be (or contain) the home or the database's folder: indexing
    // them would index the database while it is written.
    let mut protected = vec![config.home.clone()];
    protected.extend(db_path.parent().map(std::path::Path::to_path_buf));
    tokio::task::spawn_blocking(move || {
        check_database_files(&db_path)?;
        // The store's error already says "while opening database <path>".
        let store = memory_store::Store::open(memory_store::StoreConfig::new(&db_path)).map_err(|e| {
            if e.is_damage() {
                anyhow::Error::new(e).context(
                    "the database is damaged; run `memory-service doctor` (it rebuilds what can be read)",
                )
            } else {
                e.into()
            }
        })?;
        let cfg = memory_indexer::IndexerConfig {
            protected,
            ..memory_indexer::IndexerConfig::default()
        };
        let indexer =
            memory_indexer::Indexer::start(store.clone(), cfg).context("starting the file indexer")?;
        Ok(Services {
            store,
            indexer: Arc::new(indexer),
        })
    })
    .await
    .context("the start-up task failed")?
}

/// Refuses a FIFO, socket, device or directory at the database's paths
/// (SQLite would block reading a FIFO), then tightens a database (and its WAL
/// and shared-memory files) that an older build or a loose umask left
/// readable by others; SQLite gives new WAL files the database's mode. A
/// symbolic link (a database kept on another disk) is followed, as SQLite does.
fn check_database_files(db_path: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db_path.display()));
        if let Ok(m) = std::fs::metadata(&path)
            && !m.is_file()
        {
            let kind = single_instance::file::Kind::of(m.file_type());
            anyhow::bail!(
                "database file {} is {kind}, not a regular file; remove it and start again",
                path.display()
            );
        }
        match single_instance::file::make_path_private(&path) {
            Ok(Some(from)) => tracing::warn!(
                path = %path.display(),
                "was mode {from:04o} (others could read it); made it private (0600)"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %path.display(), "cannot make it private: {e}"),
        }
    }
    Ok(())
}

fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down: draining requests");
        shutdown.cancel();
    });
    Ok(())
}
