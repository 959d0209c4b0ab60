//! Client commands for people (`sources`, `reindex`, `search`): they talk to
//! the running instance over its JSON API, like ChatDO does, so what a person
//! sees is what the app gets. Before anything else they check that the
//! address answers as *our* instance for this home, and otherwise say how to
//! start one.

pub mod progress;
pub mod search;
pub mod sources;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// The service answered with an error. Shown as the service's own
    /// sentence plus a hint; `-v` adds the method, path and status.
    #[error("{detail}\n  next: {}", hint_for(*.status))]
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
    /// The service answered 200 with a body that is not the contract's type
    /// (a different version, or not our service).
    #[error(
        "{method} {path} answered a body this client cannot read ({reason})\n  next: check that the service and this command are the same version (`memory-service status`)"
    )]
    Body {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// What did not match.
        reason: String,
    },
    /// The connection failed mid-way.
    #[error(
        "the connection to the service broke: {reason}\n  next: check it with `memory-service status` and `memory-service logs`"
    )]
    Transport {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl ClientError {
    /// `METHOD /path answered HTTP status` (or the transport failure's
    /// request), for `-v`; `None` for errors before any request.
    pub fn request(&self) -> Option<String> {
        match self {
            ClientError::Http {
                method, path, status, ..
            } => Some(format!("{method} {path} answered HTTP {status}")),
            ClientError::Transport { method, path, .. } => Some(format!("{method} {path} failed")),
            ClientError::Body { method, path, .. } => Some(format!("{method} {path} answered 200")),
            _ => None,
        }
    }
}

/// What to do next after the service refused a request with `status`.
fn hint_for(status: u16) -> &'static str {
    match status {
        400 | 422 => "check the command's arguments (`memory-service help COMMAND`)",
        404 => "`memory-service sources list` shows what exists",
        409 => "wait for the running job (`memory-service sources list` shows it) and try again",
        401 => {
            "the instance needs its bearer token: run this on the service's machine with the same --home (the token is <home>/auth_token)"
        }
        413 => "send less at once",
        503 => "the service is still starting or busy; try again in a few seconds",
        _ => "see what the service logged with `memory-service logs`",
    }
}

/// A connection to the instance of one home.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Authorization` for an instance started with `--allow-remote` (its
    /// `<home>/auth_token`); `None` when the home holds no token.
    authorization: Option<String>,
}

impl Client {
    /// Connects to the instance serving `config`'s home, after checking that
    /// `/health` answers as ours for that home.
    pub fn connect(config: &Config) -> Result<Client, ClientError> {
        let url = config.base_url();
        let home = config.home.display().to_string();
        let health = probe::get_json::<memory_api::health::HealthIdentity>(
            &config.host,
            config.port,
            "/health",
            probe::PROBE_TIMEOUT,
        );
        match health {
            Ok((200, body)) => match body {
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
        let authorization =
            crate::http::auth::client_token(&config.home).map(|t| format!("Bearer {}", t.expose()));
        Ok(Client {
            base: url,
            agent,
            authorization,
        })
    }

    /// The 200 body as `T` (a `memory_api` type), or the service's `detail`.
    fn finish<T: DeserializeOwned>(
        method: &'static str,
        path: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let transport = |reason: String| ClientError::Transport {
            method,
            path: path.to_string(),
            reason,
        };
        let mut resp = r.map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        if status == 200 {
            return serde_json::from_str(&text).map_err(|e| ClientError::Body {
                method,
                path: path.to_string(),
                reason: e.to_string(),
            });
        }
        let detail = match serde_json::from_str::<memory_api::ErrorBody>(&text) {
            Ok(b) => b.detail,
            Err(_) if text.trim().is_empty() => "no detail".to_string(),
            Err(_) => text,
        };
        Err(ClientError::Http {
            method,
            path: path.to_string(),
            status,
            detail,
        })
    }

    /// A request builder with the token, when there is one.
    fn with_auth<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(a) => r.header("Authorization", a),
            None => r,
        }
    }

    /// GET a JSON document as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::finish(
            "GET",
            path,
            self.with_auth(self.agent.get(&format!("{}{path}", self.base)))
                .call(),
        )
    }

    /// POST a JSON body; the answer as `T`.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        Self::finish(
            "POST",
            path,
            self.with_auth(self.agent.post(&format!("{}{path}", self.base)))
                .send_json(body),
        )
    }

    /// DELETE a resource; the answer as `T`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::finish(
            "DELETE",
            path,
            self.with_auth(self.agent.delete(&format!("{}{path}", self.base)))
                .call(),
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

/// A byte count for people, in IEC units (`1.5 KiB`, `5.0 MiB`), the one
/// unit system of the CLI, the page and the logs (`bytesize`).
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// A service timestamp (naive local ISO-8601, `2025-12-27T21:10:29.123456`)
/// for people, relative to `now`: `just now`, `3 min ago`, `2 h ago`, and
/// past a day the local date and minute (`2025-12-27 21:10`). Unparsable text
/// is returned as it is; `None` is `-`.
pub fn human_time(iso: Option<&str>, now: chrono::NaiveDateTime) -> String {
    let Some(iso) = iso else {
        return "-".into();
    };
    let Some(t) = memory_store::clock::parse_timestamp(iso) else {
        return iso.to_string();
    };
    let secs = (now - t).num_seconds();
    match secs {
        s if s < 0 => t.format("%Y-%m-%d %H:%M").to_string(),
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => t.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// [`human_time`] against the local clock now.
pub fn human_time_now(iso: Option<&str>) -> String {
    human_time(iso, chrono::Local::now().naive_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(segment("docs-dir"), "docs-dir");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        let now = chrono::NaiveDateTime::parse_from_str("2026-01-02T12:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        assert_eq!(human_time(Some("2026-01-02T11:59:30.5"), now), "just now");
        assert_eq!(human_time(Some("2026-01-02T11:56:59.5"), now), "3 min ago");
        assert_eq!(human_time(Some("2026-01-02T09:00:00"), now), "3 h ago");
        assert_eq!(
            human_time(Some("2025-12-27T21:10:29.123456"), now),
            "2025-12-27 21:10"
        );
        assert_eq!(human_time(Some("garbage"), now), "garbage");
        assert_eq!(human_time(None, now), "-");
    }
}
