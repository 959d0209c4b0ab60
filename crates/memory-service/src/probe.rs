//! The client side of `/health`: what the guard and the lifecycle commands use
//! to ask "is this address one of ours, and which one?". Blocking (ureq), with
//! a short timeout, no proxy (a loopback probe must never leave the machine),
//! no redirects, and a small body limit: a stranger on the port gets no say.

use std::time::Duration;

use memory_api::health::HealthIdentity;
use serde::de::DeserializeOwned;
use single_instance::{Health, Identity};

/// The timeout of one probe. ChatDO's own client allows `/health` 1 s; a
/// healthy instance answers in milliseconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// `http://host:port`, with IPv6 hosts bracketed; a wildcard bind is probed on
/// loopback.
pub fn base_url(host: &str, port: u16) -> String {
    let host = match host {
        "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .build()
        .new_agent()
}

/// GETs `path` on `host:port`; returns the status and the body read as `T`
/// (a `memory_api` type; `None` when it is not one). `Err` when nothing
/// answered over HTTP.
pub fn get_json<T: DeserializeOwned>(
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Option<T>), String> {
    let url = format!("{}{path}", base_url(host, port));
    let mut resp = agent(timeout).get(&url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Ok((status, serde_json::from_str(&body).ok()))
}

/// The guard's identity of the instance that sent `body`.
pub fn identity_of(body: HealthIdentity) -> Identity {
    Identity {
        service: body.service,
        pid: body.pid,
        instance_id: body.instance_id,
        home: body.home,
    }
}

/// Probes `/health` on `host:port` once.
pub fn probe_health(host: &str, port: u16, timeout: Duration) -> Health {
    match get_json::<HealthIdentity>(host, port, "/health", timeout) {
        Ok((status, body)) => Health::Answered {
            status,
            identity: body.filter(|_| status == 200).map(identity_of),
        },
        Err(reason) => Health::NoAnswer { reason },
    }
}

/// The guard's probe: [`probe_health`] with [`PROBE_TIMEOUT`].
pub fn guard_probe(host: &str, port: u16) -> Health {
    probe_health(host, port, PROBE_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(base_url("127.0.0.1", 5858), "http://127.0.0.1:5858");
        assert_eq!(base_url("::1", 1), "http://[::1]:1");
        assert_eq!(base_url("0.0.0.0", 2), "http://127.0.0.1:2");
        assert_eq!(base_url("localhost", 3), "http://localhost:3");
    }

    /// Bodies as a stranger (or another version) might send them.
    #[test]
    fn identity_needs_every_field() {
        let read = |v: &serde_json::Value| serde_json::from_value::<HealthIdentity>(v.clone()).ok();
        let full =
            serde_json::json!({"service":"memory-service","pid":5,"instance_id":"i","home":"/h","extra":1});
        assert_eq!(identity_of(read(&full).unwrap()).pid, 5);
        for missing in ["service", "pid", "instance_id", "home"] {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(missing);
            assert_eq!(read(&v), None, "without {missing}");
        }
        assert_eq!(read(&serde_json::json!({"status":"ok"})), None);
        assert_eq!(
            read(&serde_json::json!({"service":"x","pid":-1,"instance_id":"i","home":"/h"})),
            None
        );
    }

    #[test]
    fn nothing_listening_is_no_answer() {
        // Held, never listening, until the probe is done: nobody can take it.
        let refused = testkit::RefusedPort::new();
        assert!(matches!(
            probe_health("127.0.0.1", refused.port(), PROBE_TIMEOUT),
            Health::NoAnswer { .. }
        ));
    }
}
