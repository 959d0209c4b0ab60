//! HTTP for the load benchmark: one keep-alive ureq agent per thread (a
//! connection is never shared, so one slow answer cannot queue another
//! thread's request), every status returned as an [`Answer`] the caller checks,
//! and helpers that turn a non-200 into an error naming the request and the
//! body the service sent back, plus a reader for Prometheus text.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a data request may take before we call the service hung: the
/// service's own request timeout is 60 s, so anything longer is a failure.
pub const REQUEST_GUARD: Duration = Duration::from_secs(65);

/// A client of one service, owning one agent (one keep-alive connection).
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

/// One answer: status and body text.
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
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .build()
            .into();
        Client {
            agent,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Answer> {
        let mut resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .with_context(|| format!("GET {path}: no answer"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("GET {path}: reading the body"))?;
        Ok(Answer { status, body })
    }

    /// `POST path` with a JSON body (`Content-Type: application/json`),
    /// usually a `memory_api` request type.
    pub fn post(&self, path: &str, body: &impl Serialize) -> Result<Answer> {
        let mut resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .send_json(body)
            .with_context(|| format!("POST {path}: no answer"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("POST {path}: reading the body"))?;
        Ok(Answer { status, body })
    }
}

impl Answer {
    /// The body as `T` (a `memory_api` type; `serde::de::IgnoredAny` for
    /// "any JSON") if the status is 200; otherwise an error naming `what`,
    /// the status and (the start of) the body.
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
}

/// The value of the unlabelled sample `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_samples_only() {
        let text = "# HELP a_total x\n# TYPE a_total counter\na_total 12\n\
                    a_total_more 3\nb{route=\"/x\"} 4\nb 5.5\n";
        assert_eq!(metric(text, "a_total"), Some(12.0));
        assert_eq!(metric(text, "b"), Some(5.5));
        assert_eq!(metric(text, "c"), None);
    }
}
