//! Client commands for people (`sources`, `reindex`, `search`): they talk to
//! the running instance over its JSON API, like ChatDO does, so what a person
//! sees is what the app gets. Before anything else they check that the
//! address answers as *our* instance for this home, and otherwise say how to
//! start one.

pub mod progress;
pub mod search;
pub mod sources;

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::probe;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing (of ours, for this home) answers.
    #[error(
        "Memory Service is not running on {url} for home {home}\n  next: start it with `memory-service start{args}`"
    )]
    NotRunning {
        /// The URL tried.
        url: String,
        /// The home.
        home: String,
        /// The flags to repeat in the hint.
        args: String,
    },
    /// Another instance (another home) answers on the address.
    #[error("{url} is served by a Memory Service for another home ({other}), not {home}")]
    OtherHome {
        /// The URL.
        url: String,
        /// Its home.
        other: String,
        /// Our home.
        home: String,
    },
    /// The service answered with an error.
    #[error("{method} {path} failed with HTTP {status}: {detail}")]
    Http {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// The status.
        status: u16,
        /// The service's `detail`.
        detail: String,
    },
    /// The connection failed mid-way.
    #[error("{method} {path}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// A connection to the instance of one home.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// Connects to the instance serving `config`'s home, after checking that
    /// `/health` answers as ours for that home.
    pub fn connect(config: &Config) -> Result<Client, ClientError> {
        let url = config.base_url();
        let home = config.home.display().to_string();
        match probe::get_json(&config.host, config.port, "/health", probe::PROBE_TIMEOUT) {
            Ok((200, body)) => match probe::identity_of(&body) {
                Some(id) if id.service == crate::daemon::SERVICE && id.home == config.home => {}
                Some(id) if id.service == crate::daemon::SERVICE => {
                    return Err(ClientError::OtherHome {
                        url,
                        other: id.home.display().to_string(),
                        home,
                    });
                }
                _ => return Err(not_running(config)),
            },
            _ => return Err(not_running(config)),
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent();
        Ok(Client { base: url, agent })
    }

    fn finish(
        method: &'static str,
        path: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut resp = r.map_err(|e| ClientError::Transport {
            method,
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        if status == 200 {
            return Ok(body);
        }
        let detail = match &body["detail"] {
            Value::String(s) => s.clone(),
            Value::Null => "no detail".to_string(),
            other => other.to_string(),
        };
        Err(ClientError::Http {
            method,
            path: path.to_string(),
            status,
            detail,
        })
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        Self::finish(
            "GET",
            path,
            self.agent.get(&format!("{}{path}", self.base)).call(),
        )
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        Self::finish(
            "POST",
            path,
            self.agent.post(&format!("{}{path}", self.base)).send_json(body),
        )
    }

    /// DELETE a resource.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        Self::finish(
            "DELETE",
            path,
            self.agent.delete(&format!("{}{path}", self.base)).call(),
        )
    }
}

fn not_running(config: &Config) -> ClientError {
    let mut args = format!(" --home {}", config.home.display());
    if config.port != crate::config::DEFAULT_PORT {
        args.push_str(&format!(" --port {}", config.port));
    }
    ClientError::NotRunning {
        url: config.base_url(),
        home: config.home.display().to_string(),
        args,
    }
}

/// Percent-encodes one path segment (ids are slugs, but be safe).
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A byte count for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(segment("docs-dir"), "docs-dir");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MB");
    }
}
