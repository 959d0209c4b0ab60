//! The one HTTP client. Tests and the bench read the service's bodies as the
//! `memory-api` types (`get_as`, `post_as`, `Answer::json_200`), so a renamed
//! field fails to compile or to parse instead of reading as missing; wire-shape
//! tests (which keys are present, null or omitted) use the raw forms. Every
//! status is an answer the caller checks, no proxy is ever used (the service
//! is on loopback), and every request has a hang guard.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use memory_api::HealthReport;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The hang guard of a test's request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The hang guard of one `/health` probe (ChatDO itself waits one second).
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A client of one service on 127.0.0.1, owning one agent: one keep-alive
/// connection, never shared across threads' clients.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

/// One answer: the status and the body text.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Client {
    /// A client of 127.0.0.1:`port` whose requests give up after `timeout`.
    pub fn new(port: u16, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .proxy(None)
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .build()
            .into();
        Client {
            agent,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `GET path`; `Err` when nothing answered.
    pub fn get(&self, path: &str) -> Result<Answer> {
        let resp = self.agent.get(format!("{}{path}", self.base)).call();
        answer("GET", path, resp)
    }

    /// `POST path` with a JSON body, usually a `memory_api` request type.
    pub fn post(&self, path: &str, body: &impl Serialize) -> Result<Answer> {
        let resp = self.agent.post(format!("{}{path}", self.base)).send_json(body);
        answer("POST", path, resp)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Answer> {
        let resp = self.agent.delete(format!("{}{path}", self.base)).call();
        answer("DELETE", path, resp)
    }
}

fn answer(
    method: &str,
    path: &str,
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer> {
    let mut resp = resp.with_context(|| format!("{method} {path}: no answer"))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("{method} {path}: reading the body"))?;
    Ok(Answer { status, body })
}

impl Answer {
    /// The body as `T` (a `memory_api` type; `serde::de::IgnoredAny` for
    /// "any JSON") if the status is 200; otherwise an error naming `what`,
    /// the status and (the first 500 bytes of) the body.
    pub fn json_200<T: DeserializeOwned>(self, what: &str) -> Result<T> {
        if self.status != 200 {
            let mut body = self.body;
            if body.len() > 500 {
                let mut cut = 500;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
                body.push_str("...");
            }
            bail!("{what}: HTTP {} {body}", self.status);
        }
        serde_json::from_str(&self.body)
            .with_context(|| format!("{what}: the 200 body is not the contract's: {:.200}", self.body))
    }

    /// The status and the body as raw JSON (`Null` when it is not JSON).
    pub fn raw(self) -> (u16, Value) {
        (
            self.status,
            serde_json::from_str(&self.body).unwrap_or(Value::Null),
        )
    }
}

/// A raw agent, for wire tests that read headers or non-JSON bodies: every
/// status is an answer, no proxy, and [`REQUEST_TIMEOUT`] as the hang guard.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent()
}

fn client(port: u16) -> Client {
    Client::new(port, REQUEST_TIMEOUT)
}

/// GET `path` on loopback:`port` as raw JSON (`Null` when the body is not
/// JSON), for tests of the wire itself; `None` if nothing answered. Prefer
/// [`get_as`].
pub fn get(port: u16, path: &str) -> Option<(u16, Value)> {
    client(port).get(path).ok().map(Answer::raw)
}

/// GET `path` on a server that must answer 200 with the contract type `T`.
pub fn get_as<T: DeserializeOwned>(port: u16, path: &str) -> T {
    let a = client(port).get(path).unwrap_or_else(|e| panic!("{e:#}"));
    a.json_200(&format!("GET {path}"))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// GET `path` as text on a server that must answer (e.g. `/metrics`).
pub fn get_text(port: u16, path: &str) -> (u16, String) {
    let a = client(port).get(path).unwrap_or_else(|e| panic!("{e:#}"));
    (a.status, a.body)
}

/// POSTs JSON; `Err` when nothing answered (the server died).
pub fn try_post(port: u16, path: &str, body: &impl Serialize) -> Result<(u16, Value), String> {
    client(port)
        .post(path, body)
        .map(Answer::raw)
        .map_err(|e| format!("{e:#}"))
}

/// POSTs JSON to a server that must answer; the raw status and body.
pub fn post(port: u16, path: &str, body: &impl Serialize) -> (u16, Value) {
    try_post(port, path, body).unwrap_or_else(|e| panic!("{e}"))
}

/// POSTs `body` to a server that must answer 200 with the contract type `T`.
pub fn post_as<T: DeserializeOwned>(port: u16, path: &str, body: &impl Serialize) -> T {
    let a = client(port).post(path, body).unwrap_or_else(|e| panic!("{e:#}"));
    a.json_200(&format!("POST {path}"))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// DELETEs `path` on a server that must answer; the raw status and body.
pub fn delete(port: u16, path: &str) -> (u16, Value) {
    client(port)
        .delete(path)
        .map(Answer::raw)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The `/health` report on `port`, if memory-service answers 200 with one
/// (anything else on the port, or no answer, is `None`).
pub fn health(port: u16) -> Option<HealthReport> {
    let a = Client::new(port, HEALTH_TIMEOUT).get("/health").ok()?;
    let h: HealthReport = a.json_200("GET /health").ok()?;
    (h.service == "memory-service").then_some(h)
}

/// The `/health` pid on `port`, if an instance answers.
pub fn health_pid(port: u16) -> Option<u32> {
    health(port).map(|h| h.pid)
}
