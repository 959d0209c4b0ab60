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

/// The `PID:` value printed by `start`.
pub fn printed_pid(stdout: &str) -> Option<u32> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("PID:"))
        .and_then(|p| p.trim().parse().ok())
}
