//! memory-service's own fixtures over the shared harness (`testkit`): the
//! binary under test, and what only its CLI prints. Everything else (the
//! sandbox, spawning, polls, HTTP, health waits) is `testkit`'s, re-exported
//! so each test module needs one `use`.

#![allow(dead_code, unused_imports)]

pub use testkit::*;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_memory-service")
}

/// A port nobody listens on right now, for the few tests that need a port
/// known before the spawn (`start` dials the port it was given; a port
/// conflict needs the number up front). It is bound and dropped, so another
/// program could take it first: instances that need no such number start on
/// `--port 0` ([`Sandbox::start`]) instead.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The `PID:` value printed by `start`.
pub fn printed_pid(stdout: &str) -> Option<u32> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("PID:"))
        .and_then(|p| p.trim().parse().ok())
}
