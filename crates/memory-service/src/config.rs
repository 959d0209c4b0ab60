//! One `Config`, resolved once from the command line and the environment.
//!
//! Precedence, lowest to highest: embedded defaults < `MEMORY_SERVICE_*`
//! environment variables < command-line flags. (No config file yet: the
//! three layers cover every setting today.) A setting with a flag takes its
//! variable through clap's `env` (so `--help` shows it, and clap applies
//! flag > env); [`Config::load`] adds the defaults and reads the tuning
//! variables that have no flag, from an environment passed in as a function
//! so they are unit-tested without touching the real one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// The default home, under the user's home directory.
pub const DEFAULT_HOME_DIR: &str = ".chatdo";
/// The default host: loopback only.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The default port, ChatDO's.
pub const DEFAULT_PORT: u16 = 5858;

/// Settings given on the command line (all optional). Home, host and port
/// are global options (every command needs them: the service binds them, the
/// others find it there); the service's own settings come from
/// [`ServiceArgs`], on the commands that run the service, and are merged in
/// with [`ConfigArgs::with_service`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Home directory: everything the service writes lives here
    /// [default: ~/.chatdo]
    #[arg(long, global = true, value_name = "DIR", env = "MEMORY_SERVICE_HOME")]
    pub home: Option<PathBuf>,
    /// The service's address: bound by serve/start, dialled by the other
    /// commands; loopback only unless --allow-remote [default: 127.0.0.1]
    #[arg(long, global = true, value_name = "HOST", env = "MEMORY_SERVICE_HOST")]
    pub host: Option<String>,
    /// The service's port: bound by serve/start, dialled by the other
    /// commands [default: 5858]
    #[arg(long, global = true, value_name = "PORT", env = "MEMORY_SERVICE_PORT")]
    pub port: Option<u16>,
    /// Allow a --host that is not loopback (e.g. 0.0.0.0: every interface).
    /// Other machines can then reach the service, so every request but
    /// /health must carry `Authorization: Bearer TOKEN`, the token `serve`
    /// keeps in HOME/auth_token (created once, random, 0600); the client
    /// commands send it. Without this flag such a host is refused (exit 2).
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// [`ServiceArgs::embedding_model`], also accepted before the command
    /// (`--embedding-model DIR serve`, as scripts written before the options
    /// moved to the commands that use them do); hidden from `--help`. It
    /// carries the option's environment variable, so the command's own
    /// `--embedding-model` wins over both (see [`ConfigArgs::with_service`]).
    #[arg(long, hide = true, value_name = "DIR", env = "MEMORY_SERVICE_EMBEDDING_MODEL")]
    pub embedding_model: Option<PathBuf>,
    /// [`ServiceArgs::chatdo_projects`], also accepted before the command;
    /// hidden from `--help`; carries the option's environment variable.
    #[arg(
        long,
        hide = true,
        value_name = "FILE",
        env = "MEMORY_SERVICE_CHATDO_PROJECTS"
    )]
    pub chatdo_projects: Option<PathBuf>,
}

impl ConfigArgs {
    /// These settings with a service command's own options, which win over
    /// the same options given before the command or in the environment
    /// (clap has already put `MEMORY_SERVICE_EMBEDDING_MODEL` and
    /// `MEMORY_SERVICE_CHATDO_PROJECTS` into `self` where no flag was given).
    pub fn with_service(&self, service: &ServiceArgs) -> ConfigArgs {
        ConfigArgs {
            embedding_model: service
                .embedding_model
                .clone()
                .or_else(|| self.embedding_model.clone()),
            chatdo_projects: service
                .chatdo_projects
                .clone()
                .or_else(|| self.chatdo_projects.clone()),
            ..self.clone()
        }
    }
}

/// Settings only the service itself reads: options of `serve`, `start`,
/// `restart` (passed on to the `serve` they spawn) and `model`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Service options")]
pub struct ServiceArgs {
    /// Embedding model directory (config.json, tokenizer.json, model.safetensors)
    /// [env: MEMORY_SERVICE_EMBEDDING_MODEL] [default: HOME/models/all-MiniLM-L6-v2]
    #[arg(long, global = true, value_name = "DIR")]
    pub embedding_model: Option<PathBuf>,
    /// ChatDO's `server/data/projects.json`: `GET /sources` lists the projects
    /// connected to each source from it, `DELETE /sources/{id}` removes the id
    /// from it [env: MEMORY_SERVICE_CHATDO_PROJECTS] [default: none]
    #[arg(long, global = true, value_name = "FILE")]
    pub chatdo_projects: Option<PathBuf>,
}

/// How long a connection may take to deliver a complete request head,
/// counted from when it starts waiting for one: at connect and again after
/// each response, so it is also the idle keep-alive timeout. hyper's own
/// default (30 s); `MEMORY_SERVICE_HEADER_TIMEOUT_MS`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Open HTTP connections served at once, beyond which only `/health` is
/// answered (see `http::serve`); `MEMORY_SERVICE_MAX_CONNECTIONS`. ChatDO
/// opens a handful; 512 leaves the rest of a 1024 open-files limit to the
/// database, the watchers and the model.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How often a running instance runs `PRAGMA quick_check` on its database
/// (besides once right after it opens it); `MEMORY_SERVICE_INTEGRITY_CHECK_MS`.
/// The check reads the whole file on a reader (about 1 s per 300 MB here) and
/// never blocks writes; six hours finds damage the same day at a negligible cost.
pub const DEFAULT_INTEGRITY_CHECK_INTERVAL: Duration = Duration::from_secs(6 * 60 * 60);

/// A non-loopback `--host` without `--allow-remote`: a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
#[error(
    "--host {host} is not a loopback address: other machines could reach the service\n  \
     next: use --host 127.0.0.1 (the default), or add --allow-remote to serve other machines \
     (every request but /health then needs the bearer token in <home>/auth_token)"
)]
pub struct RemoteNotAllowed {
    /// The host given.
    pub host: String,
}

/// The bearer token of an instance started with `--allow-remote` (the
/// contents of `<home>/auth_token`). Its `Debug` never shows it and equality
/// is constant-time (`subtle`), so neither a log line nor a comparison's
/// timing reveals it.
#[derive(Clone)]
pub struct AuthToken(String);

impl AuthToken {
    /// Wraps a token's text.
    pub fn new(token: impl Into<String>) -> AuthToken {
        AuthToken(token.into())
    }

    /// Whether `given` is this token, compared in constant time (for equal
    /// lengths; the length itself is not secret: always 64 hex digits).
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(given).into()
    }

    /// The token's text (to send it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

impl PartialEq for AuthToken {
    fn eq(&self, other: &AuthToken) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for AuthToken {}

/// Whether `host` (an address or a name) is loopback only: an IP address in
/// 127.0.0.0/8 or `::1`, `localhost`, or a name every address of which is
/// loopback. A name that does not resolve is not loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    use std::net::ToSocketAddrs;
    match (bare, 0).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// `p` made absolute against the current directory; `what` names it in the error.
fn absolute(p: PathBuf, what: &str) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p);
    }
    Ok(std::env::current_dir()
        .with_context(|| format!("resolving a relative {what} against the current directory"))?
        .join(p))
}

/// A duration in milliseconds from the variable `name` (unset or empty: `default`).
fn env_millis(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> anyhow::Result<Duration> {
    match env(name).filter(|s| !s.is_empty()) {
        Some(v) => {
            Ok(Duration::from_millis(v.trim().parse().with_context(|| {
                format!("{name}={v:?} is not a number of milliseconds")
            })?))
        }
        None => Ok(default),
    }
}

/// [`env_millis`] for a period that must not be zero.
fn env_interval(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> anyhow::Result<Duration> {
    let d = env_millis(env, name, default)?;
    if d.is_zero() {
        bail!("{name} must be at least 1 (milliseconds)");
    }
    Ok(d)
}

/// `MEMORY_SERVICE_MAX_CONNECTIONS` (at least 1), else [`DEFAULT_MAX_CONNECTIONS`].
fn env_max_connections(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<usize> {
    match env("MEMORY_SERVICE_MAX_CONNECTIONS").filter(|s| !s.is_empty()) {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => bail!("MEMORY_SERVICE_MAX_CONNECTIONS={v:?} is not a number of connections (at least 1)"),
        },
        None => Ok(DEFAULT_MAX_CONNECTIONS),
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The home directory (absolute).
    pub home: PathBuf,
    /// The host to bind and to probe.
    pub host: String,
    /// The port to bind and to probe.
    pub port: u16,
    /// How often a running instance re-checks its lock file.
    pub lock_check_interval: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// How long a silent lock holder counts as "starting".
    pub startup_grace: Duration,
    /// Browser origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// The embedding model's directory; semantic search is off while it holds no model.
    pub embedding_model: PathBuf,
    /// ChatDO's `projects.json` (absolute), if configured: the source of
    /// `connected_projects`, edited when a source is deleted.
    pub chatdo_projects: Option<PathBuf>,
    /// `--allow-remote`: a non-loopback host is accepted, and `serve` then
    /// requires the bearer token on every request but `/health`.
    pub allow_remote: bool,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_INTEGRITY_CHECK_INTERVAL`].
    pub integrity_check_interval: Duration,
    /// The token every request but `/health` must carry; set by `serve` when
    /// `allow_remote` (never by [`Config::load`]), `None` otherwise.
    pub auth_token: Option<AuthToken>,
}

impl Config {
    /// Resolves the configuration: `args` (flags, or their environment
    /// variables, as clap resolved them) over the defaults; `env` gives `HOME`
    /// (for the default home) and the tuning variables that have no flag.
    pub fn load(args: &ConfigArgs, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let home = match &args.home {
            Some(h) => h.clone(),
            None => match env("HOME").filter(|s| !s.is_empty()) {
                Some(user_home) => PathBuf::from(user_home).join(DEFAULT_HOME_DIR),
                None => bail!("cannot find your home directory ($HOME is unset); pass --home DIR"),
            },
        };
        let home = absolute(home, "--home")?;
        let chatdo_projects = match &args.chatdo_projects {
            Some(p) => Some(absolute(p.clone(), "--chatdo-projects")?),
            None => None,
        };
        let host = args.host.clone().unwrap_or_else(|| DEFAULT_HOST.to_string());
        if !args.allow_remote && !is_loopback_host(&host) {
            return Err(RemoteNotAllowed { host }.into());
        }
        let embedding_model = match &args.embedding_model {
            Some(d) => absolute(d.clone(), "--embedding-model")?,
            None => crate::home::Home::new(&home)
                .models()
                .join(memory_embedding::default_model_name()),
        };
        Ok(Config {
            allow_remote: args.allow_remote,
            integrity_check_interval: env_interval(
                env,
                "MEMORY_SERVICE_INTEGRITY_CHECK_MS",
                DEFAULT_INTEGRITY_CHECK_INTERVAL,
            )?,
            header_timeout: env_interval(env, "MEMORY_SERVICE_HEADER_TIMEOUT_MS", DEFAULT_HEADER_TIMEOUT)?,
            max_connections: env_max_connections(env)?,
            auth_token: None,
            embedding_model,
            home,
            host,
            port: args.port.unwrap_or(DEFAULT_PORT),
            lock_check_interval: env_interval(env, "MEMORY_SERVICE_LOCK_CHECK_MS", Duration::from_secs(2))?,
            drain_timeout: env_millis(env, "MEMORY_SERVICE_DRAIN_MS", Duration::from_secs(10))?,
            startup_grace: env_millis(env, "MEMORY_SERVICE_STARTUP_GRACE_MS", Duration::from_secs(15))?,
            cors_origins: vec!["http://localhost:5173".into(), "http://127.0.0.1:5173".into()],
            chatdo_projects,
        })
    }

    /// Loads from the real process environment.
    pub fn from_env(args: &ConfigArgs) -> anyhow::Result<Config> {
        Config::load(args, &|k| std::env::var(k).ok())
    }

    /// Every path under the home.
    pub fn paths(&self) -> crate::home::Home {
        crate::home::Home::new(&self.home)
    }

    /// Where `model install` puts models: `HOME/models`.
    pub fn models_dir(&self) -> PathBuf {
        self.paths().models()
    }

    /// The base URL clients use.
    pub fn base_url(&self) -> String {
        crate::probe::base_url(&self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    /// The variables clap reads for the flags (see [`ConfigArgs`]).
    const FLAG_VARS: [&str; 5] = [
        "MEMORY_SERVICE_HOME",
        "MEMORY_SERVICE_HOST",
        "MEMORY_SERVICE_PORT",
        "MEMORY_SERVICE_EMBEDDING_MODEL",
        "MEMORY_SERVICE_CHATDO_PROJECTS",
    ];

    /// Keeps two parses apart under `cargo test` (threads share one
    /// environment; nextest runs each test in its own process anyway).
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// `memory-service ARGV` parsed as `main` parses it, with `vars` the only
    /// flag variables set, then loaded with `env` (HOME and the tuning
    /// variables). clap reads the process environment, so `vars` are set for
    /// the parse and removed after it; no other test in this crate sets them.
    fn load_cli(
        argv: &[&str],
        vars: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Result<anyhow::Result<Config>, crate::cli::ParseError> {
        let _one_at_a_time = ENV.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the lock above keeps this crate's tests from parsing while
        // another sets the variables, and no thread here reads them otherwise.
        unsafe {
            for k in FLAG_VARS {
                std::env::remove_var(k);
            }
            for (k, v) in vars {
                std::env::set_var(k, v);
            }
        }
        let parsed = crate::cli::parse_from(std::iter::once("memory-service").chain(argv.iter().copied()));
        // SAFETY: as above.
        unsafe {
            for k in FLAG_VARS {
                std::env::remove_var(k);
            }
        }
        Ok(Config::load(&parsed?.config_args(), &env_of(env)))
    }

    /// [`load_cli`] that must parse and load.
    fn cli(argv: &[&str], vars: &[(&str, &str)]) -> Config {
        load_cli(argv, vars, &[("HOME", "/u")]).unwrap().unwrap()
    }

    #[test]
    fn every_flag_setting_has_its_documented_variable() {
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let env_of_arg = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        for (id, var) in [
            ("home", "MEMORY_SERVICE_HOME"),
            ("host", "MEMORY_SERVICE_HOST"),
            ("port", "MEMORY_SERVICE_PORT"),
            ("embedding_model", "MEMORY_SERVICE_EMBEDDING_MODEL"),
            ("chatdo_projects", "MEMORY_SERVICE_CHATDO_PROJECTS"),
        ] {
            assert_eq!(env_of_arg(id).as_deref(), Some(var), "--{id}");
        }
    }

    #[test]
    fn embedding_model_flag_then_env_then_home() {
        let c = cli(&["serve"], &[]);
        assert_eq!(
            c.embedding_model,
            PathBuf::from("/u/.chatdo/models/all-MiniLM-L6-v2")
        );
        assert_eq!(c.models_dir(), PathBuf::from("/u/.chatdo/models"));
        let env = [("MEMORY_SERVICE_EMBEDDING_MODEL", "/m/bge")];
        assert_eq!(cli(&["serve"], &env).embedding_model, PathBuf::from("/m/bge"));
        assert_eq!(
            cli(&["serve", "--embedding-model", "/m/e5"], &env).embedding_model,
            PathBuf::from("/m/e5")
        );
        // The older spelling, before the command, also beats the variable;
        // the command's own option beats both.
        assert_eq!(
            cli(&["--embedding-model", "/m/old", "serve"], &env).embedding_model,
            PathBuf::from("/m/old")
        );
        assert_eq!(
            cli(
                &[
                    "--embedding-model",
                    "/m/old",
                    "serve",
                    "--embedding-model",
                    "/m/e5"
                ],
                &env
            )
            .embedding_model,
            PathBuf::from("/m/e5")
        );
    }

    #[test]
    fn precedence_defaults_then_env_then_flags() {
        let c = cli(&["status"], &[]);
        assert_eq!(
            (c.home, c.host.as_str(), c.port),
            (PathBuf::from("/u/.chatdo"), "127.0.0.1", 5858)
        );

        let env = [
            ("MEMORY_SERVICE_HOME", "/e"),
            ("MEMORY_SERVICE_HOST", "::1"),
            ("MEMORY_SERVICE_PORT", "7000"),
        ];
        let c = cli(&["status"], &env);
        assert_eq!(
            (c.home, c.host.as_str(), c.port),
            (PathBuf::from("/e"), "::1", 7000)
        );

        let flags = ["--home", "/f", "--host", "127.0.0.2", "--port", "9", "status"];
        let c = cli(&flags, &env);
        assert_eq!(
            (c.home, c.host.as_str(), c.port),
            (PathBuf::from("/f"), "127.0.0.2", 9)
        );
        // An empty variable counts as unset, as before clap read them.
        let empty = [("MEMORY_SERVICE_HOME", ""), ("MEMORY_SERVICE_PORT", "")];
        let c = cli(&["status"], &empty);
        assert_eq!((c.home, c.port), (PathBuf::from("/u/.chatdo"), 5858));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let Err(crate::cli::ParseError::Env(err)) = load_cli(
            &["status"],
            &[("MEMORY_SERVICE_PORT", "99999")],
            &[("HOME", "/u")],
        ) else {
            panic!("a bad MEMORY_SERVICE_PORT is not reported as such");
        };
        assert!(
            err.to_string().contains("MEMORY_SERVICE_PORT=\"99999\"") && err.to_string().contains("--port"),
            "{err}"
        );
        // A flag given wins over its variable, even a bad one.
        assert_eq!(
            cli(&["--port", "9", "status"], &[("MEMORY_SERVICE_PORT", "99999")]).port,
            9
        );
        // The flag's own bad value stays clap's usage error.
        assert!(matches!(
            load_cli(&["--port", "99999", "status"], &[], &[("HOME", "/u")]),
            Err(crate::cli::ParseError::Clap(_))
        ));
        let err = Config::load(
            &ConfigArgs::default(),
            &env_of(&[("HOME", "/u"), ("MEMORY_SERVICE_LOCK_CHECK_MS", "0")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("at least 1"), "{err:#}");
        let err = Config::load(&ConfigArgs::default(), &env_of(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("--home"), "{err:#}");
    }

    #[test]
    fn chatdo_projects_from_env_or_flag() {
        assert_eq!(cli(&["serve"], &[]).chatdo_projects, None);
        let env = [("MEMORY_SERVICE_CHATDO_PROJECTS", "/c/projects.json")];
        assert_eq!(
            cli(&["serve"], &env).chatdo_projects,
            Some(PathBuf::from("/c/projects.json"))
        );
        assert_eq!(
            cli(&["serve", "--chatdo-projects", "/f/p.json"], &env).chatdo_projects,
            Some(PathBuf::from("/f/p.json"))
        );
    }

    #[test]
    fn a_remote_host_needs_allow_remote() {
        let env = env_of(&[("HOME", "/u")]);
        for host in ["0.0.0.0", "::", "192.0.2.1", "[::]"] {
            let args = ConfigArgs {
                host: Some(host.into()),
                ..Default::default()
            };
            let err = Config::load(&args, &env).unwrap_err();
            assert!(
                err.downcast_ref::<RemoteNotAllowed>().is_some(),
                "{host}: {err:#}"
            );
            assert!(format!("{err:#}").contains("--allow-remote"), "{err:#}");
            let c = Config::load(
                &ConfigArgs {
                    allow_remote: true,
                    ..args
                },
                &env,
            )
            .unwrap();
            assert!(c.allow_remote && c.auth_token.is_none());
        }
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LocalHost"] {
            let args = ConfigArgs {
                host: Some(host.into()),
                ..Default::default()
            };
            assert!(Config::load(&args, &env).is_ok(), "{host}");
        }
        let err = load_cli(
            &["status"],
            &[("MEMORY_SERVICE_HOST", "0.0.0.0")],
            &[("HOME", "/u")],
        )
        .unwrap()
        .unwrap_err();
        assert!(err.downcast_ref::<RemoteNotAllowed>().is_some(), "{err:#}");
    }

    #[test]
    fn connection_limits_from_env() {
        let c = Config::load(&ConfigArgs::default(), &env_of(&[("HOME", "/u")])).unwrap();
        assert_eq!(
            (c.header_timeout, c.max_connections),
            (DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS)
        );
        let env = env_of(&[
            ("HOME", "/u"),
            ("MEMORY_SERVICE_HEADER_TIMEOUT_MS", "250"),
            ("MEMORY_SERVICE_MAX_CONNECTIONS", "8"),
        ]);
        let c = Config::load(&ConfigArgs::default(), &env).unwrap();
        assert_eq!(
            (c.header_timeout, c.max_connections),
            (Duration::from_millis(250), 8)
        );
        for (k, v) in [
            ("MEMORY_SERVICE_HEADER_TIMEOUT_MS", "0"),
            ("MEMORY_SERVICE_MAX_CONNECTIONS", "0"),
            ("MEMORY_SERVICE_MAX_CONNECTIONS", "many"),
        ] {
            let err = Config::load(&ConfigArgs::default(), &env_of(&[("HOME", "/u"), (k, v)])).unwrap_err();
            assert!(format!("{err:#}").contains(k), "{err:#}");
        }
    }

    #[test]
    fn the_token_never_prints_and_compares_whole() {
        let t = AuthToken::new("s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cre") && !t.matches(b"s3cret!") && !t.matches(b""));
    }

    #[test]
    fn relative_home_becomes_absolute() {
        let args = ConfigArgs {
            home: Some("rel".into()),
            ..Default::default()
        };
        let c = Config::load(&args, &env_of(&[])).unwrap();
        assert!(c.home.is_absolute() && c.home.ends_with("rel"));
    }
}
