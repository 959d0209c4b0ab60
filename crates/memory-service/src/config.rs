//! One `Config`, resolved once from the command line and the environment.
//!
//! Precedence, lowest to highest: embedded defaults < `MEMORY_SERVICE_*`
//! environment variables < command-line flags. (No config file yet: the
//! three layers cover every setting today.) The environment is passed in as
//! a function so the precedence is unit-tested without touching the real one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// The default home, under the user's home directory.
pub const DEFAULT_HOME_DIR: &str = ".chatdo";
/// The default host: loopback only.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The default port, ChatDO's.
pub const DEFAULT_PORT: u16 = 5858;

/// Where installed embedding models live, under the home.
pub const MODELS_DIR: &str = "models";

/// Settings given on the command line (all optional). Home, host and port
/// are global options (every command needs them: the service binds them, the
/// others find it there); the service's own settings come from
/// [`ServiceArgs`], on the commands that run the service, and are merged in
/// with [`ConfigArgs::with_service`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Home directory: everything the service writes lives here
    /// [env: MEMORY_SERVICE_HOME] [default: ~/.chatdo]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// The service's address: bound by serve/start, dialled by the other
    /// commands [env: MEMORY_SERVICE_HOST] [default: 127.0.0.1]
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,
    /// The service's port: bound by serve/start, dialled by the other
    /// commands [env: MEMORY_SERVICE_PORT] [default: 5858]
    #[arg(long, global = true, value_name = "PORT")]
    pub port: Option<u16>,
    /// [`ServiceArgs::embedding_model`], also accepted before the command
    /// (`--embedding-model DIR serve`, as scripts written before the options
    /// moved to the commands that use them do); hidden from `--help`.
    #[arg(long, hide = true, value_name = "DIR")]
    pub embedding_model: Option<PathBuf>,
    /// [`ServiceArgs::chatdo_projects`], also accepted before the command;
    /// hidden from `--help`.
    #[arg(long, hide = true, value_name = "FILE")]
    pub chatdo_projects: Option<PathBuf>,
}

impl ConfigArgs {
    /// These settings with a service command's own options (which win over
    /// the same options given before the command).
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
}

impl Config {
    /// Resolves the configuration: defaults < `env` < `args`.
    pub fn load(args: &ConfigArgs, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let home = match (&args.home, env("MEMORY_SERVICE_HOME").filter(|s| !s.is_empty())) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => PathBuf::from(h),
            (None, None) => match env("HOME").filter(|s| !s.is_empty()) {
                Some(user_home) => PathBuf::from(user_home).join(DEFAULT_HOME_DIR),
                None => bail!("cannot find your home directory ($HOME is unset); pass --home DIR"),
            },
        };
        let absolute = |p: PathBuf, what: &str| -> anyhow::Result<PathBuf> {
            if p.is_absolute() {
                Ok(p)
            } else {
                Ok(std::env::current_dir()
                    .with_context(|| format!("resolving a relative {what} against the current directory"))?
                    .join(p))
            }
        };
        let home = absolute(home, "--home")?;
        let chatdo_projects = match (
            &args.chatdo_projects,
            env("MEMORY_SERVICE_CHATDO_PROJECTS").filter(|s| !s.is_empty()),
        ) {
            (Some(p), _) => Some(absolute(p.clone(), "--chatdo-projects")?),
            (None, Some(p)) => Some(absolute(PathBuf::from(p), "MEMORY_SERVICE_CHATDO_PROJECTS")?),
            (None, None) => None,
        };
        let host = match (&args.host, env("MEMORY_SERVICE_HOST").filter(|s| !s.is_empty())) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => h,
            (None, None) => DEFAULT_HOST.to_string(),
        };
        let port = match (args.port, env("MEMORY_SERVICE_PORT").filter(|s| !s.is_empty())) {
            (Some(p), _) => p,
            (None, Some(p)) => p
                .trim()
                .parse()
                .with_context(|| format!("MEMORY_SERVICE_PORT={p:?} is not a port number (0-65535)"))?,
            (None, None) => DEFAULT_PORT,
        };
        let millis = |name: &str, default: u64| -> anyhow::Result<Duration> {
            match env(name).filter(|s| !s.is_empty()) {
                Some(v) => {
                    Ok(Duration::from_millis(v.trim().parse().with_context(|| {
                        format!("{name}={v:?} is not a number of milliseconds")
                    })?))
                }
                None => Ok(Duration::from_millis(default)),
            }
        };
        let lock_check_interval = millis("MEMORY_SERVICE_LOCK_CHECK_MS", 2_000)?;
        if lock_check_interval.is_zero() {
            bail!("MEMORY_SERVICE_LOCK_CHECK_MS must be at least 1 (milliseconds)");
        }
        let embedding_model = match (
            &args.embedding_model,
            env("MEMORY_SERVICE_EMBEDDING_MODEL").filter(|s| !s.is_empty()),
        ) {
            (Some(d), _) => absolute(d.clone(), "--embedding-model")?,
            (None, Some(d)) => absolute(PathBuf::from(d), "MEMORY_SERVICE_EMBEDDING_MODEL")?,
            (None, None) => home.join(MODELS_DIR).join(memory_embedding::default_model_name()),
        };
        Ok(Config {
            embedding_model,
            home,
            host,
            port,
            lock_check_interval,
            drain_timeout: millis("MEMORY_SERVICE_DRAIN_MS", 10_000)?,
            startup_grace: millis("MEMORY_SERVICE_STARTUP_GRACE_MS", 15_000)?,
            cors_origins: vec!["http://localhost:5173".into(), "http://127.0.0.1:5173".into()],
            chatdo_projects,
        })
    }

    /// Loads from the real process environment.
    pub fn from_env(args: &ConfigArgs) -> anyhow::Result<Config> {
        Config::load(args, &|k| std::env::var(k).ok())
    }

    /// Where `model install` puts models: `HOME/models`.
    pub fn models_dir(&self) -> PathBuf {
        self.home.join(MODELS_DIR)
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

    #[test]
    fn embedding_model_flag_then_env_then_home() {
        let none = ConfigArgs::default();
        let c = Config::load(&none, &env_of(&[("HOME", "/u")])).unwrap();
        assert_eq!(
            c.embedding_model,
            PathBuf::from("/u/.chatdo/models/all-MiniLM-L6-v2")
        );
        assert_eq!(c.models_dir(), PathBuf::from("/u/.chatdo/models"));
        let env = env_of(&[("HOME", "/u"), ("MEMORY_SERVICE_EMBEDDING_MODEL", "/m/bge")]);
        assert_eq!(
            Config::load(&none, &env).unwrap().embedding_model,
            PathBuf::from("/m/bge")
        );
        let flag = ConfigArgs {
            embedding_model: Some("/m/e5".into()),
            ..ConfigArgs::default()
        };
        assert_eq!(
            Config::load(&flag, &env).unwrap().embedding_model,
            PathBuf::from("/m/e5")
        );
    }

    #[test]
    fn precedence_defaults_then_env_then_flags() {
        let none = ConfigArgs::default();
        let c = Config::load(&none, &env_of(&[("HOME", "/u")])).unwrap();
        assert_eq!(
            (c.home, c.host.as_str(), c.port),
            (PathBuf::from("/u/.chatdo"), "127.0.0.1", 5858)
        );

        let env = env_of(&[
            ("HOME", "/u"),
            ("MEMORY_SERVICE_HOME", "/e"),
            ("MEMORY_SERVICE_HOST", "::1"),
            ("MEMORY_SERVICE_PORT", "7000"),
        ]);
        let c = Config::load(&none, &env).unwrap();
        assert_eq!(
            (c.home, c.host.as_str(), c.port),
            (PathBuf::from("/e"), "::1", 7000)
        );

        let flags = ConfigArgs {
            home: Some("/f".into()),
            host: Some("127.0.0.2".into()),
            port: Some(9),
            ..ConfigArgs::default()
        };
        let c = Config::load(&flags, &env).unwrap();
        assert_eq!(
            (c.home, c.host.as_str(), c.port),
            (PathBuf::from("/f"), "127.0.0.2", 9)
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::load(
            &ConfigArgs::default(),
            &env_of(&[("HOME", "/u"), ("MEMORY_SERVICE_PORT", "99999")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("MEMORY_SERVICE_PORT=\"99999\""),
            "{err:#}"
        );
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
        let none = ConfigArgs::default();
        assert_eq!(
            Config::load(&none, &env_of(&[("HOME", "/u")]))
                .unwrap()
                .chatdo_projects,
            None
        );
        let env = env_of(&[
            ("HOME", "/u"),
            ("MEMORY_SERVICE_CHATDO_PROJECTS", "/c/projects.json"),
        ]);
        assert_eq!(
            Config::load(&none, &env).unwrap().chatdo_projects,
            Some(PathBuf::from("/c/projects.json"))
        );
        let flag = ConfigArgs {
            chatdo_projects: Some("/f/p.json".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&flag, &env).unwrap().chatdo_projects,
            Some(PathBuf::from("/f/p.json"))
        );
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
