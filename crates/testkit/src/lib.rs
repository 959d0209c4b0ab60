//! The one harness for real memory-service instances, shared by the
//! integration tests and the bench, so each wait, spawn and check is written
//! once and means the same thing everywhere: a [`Sandbox`] (temp root, homes,
//! fake `HOME`, clean environment), children that are killed on drop
//! ([`Proc`]), one deadline poll ([`poll()`]), one HTTP client over the
//! `memory-api` types ([`http`]), typed health waits returning the
//! [`memory_api::HealthReport`], and a [`RefusedPort`] where nothing listens.
//! Instances start on `--port 0` and are found through the holder record,
//! never through a port picked and dropped. Not published: it is a dev-dependency (and the bench's harness) only.
#![deny(missing_docs)]

pub mod http;
pub mod poll;
pub mod port;
pub mod process;
pub mod sandbox;

pub use http::{
    Answer, Client, agent, delete, get, get_as, get_text, health, health_pid, post, post_as, try_post,
};
pub use poll::{DEADLINE, Pause, poll, try_poll};
pub use port::RefusedPort;
pub use process::{Proc, alive, exit_code, kill_all_children};
pub use sandbox::{FILE_STEM, Sandbox, bound_port, wait_ready};

use std::collections::HashSet;

/// Asserts that `err`, printed as the binary prints it (`{:#}`: the message,
/// then each `source()` joined by `": "`), names each cause once: no
/// `": "`-separated segment appears twice, and no link of the `source()`
/// chain contains the text of the link after it (a variant that embeds its
/// cause in its message must not also expose it as `source()`).
///
/// Panics with the whole text when either rule is broken. Add a context
/// (`anyhow::Error::new(e).context("doing x")`) first to check the error as a
/// caller would wrap it.
pub fn assert_each_cause_once(err: impl Into<anyhow::Error>) {
    let err: anyhow::Error = err.into();
    let text = format!("{err:#}");
    let mut seen = HashSet::new();
    for segment in text.split(": ") {
        assert!(seen.insert(segment), "{segment:?} repeats in {text:?}");
    }
    let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
    for pair in chain.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{:?} embeds its source {:?} (in {text:?})",
            pair[0],
            pair[1]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::assert_each_cause_once;

    /// Embeds its cause in the message and also exposes it as `source()`.
    #[derive(Debug)]
    struct Both(std::io::Error);

    impl std::fmt::Display for Both {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "opening /h/x.lock: {}", self.0)
        }
    }

    impl std::error::Error for Both {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn eisdir() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::IsADirectory, "Is a directory (os error 21)")
    }

    #[test]
    fn a_cause_printed_once_passes() {
        let e = anyhow::Error::new(eisdir()).context("opening /h/x.lock");
        assert_each_cause_once(e.context("claiming the home directory"));
    }

    #[test]
    #[should_panic(expected = "repeats")]
    fn a_cause_embedded_and_chained_fails() {
        assert_each_cause_once(Both(eisdir()));
    }

    #[test]
    #[should_panic(expected = "repeats")]
    fn a_context_repeating_the_message_fails() {
        let e = anyhow::anyhow!("while opening database /h/m.sqlite: unable to open database file");
        assert_each_cause_once(e.context("while opening database /h/m.sqlite"));
    }

    #[test]
    #[should_panic(expected = "embeds its source")]
    fn a_message_containing_its_source_fails() {
        // No `": "` split catches this one: the source's text sits inside a sentence.
        let e = anyhow::Error::new(eisdir());
        assert_each_cause_once(e.context("the lock failed (Is a directory (os error 21)) so we stopped"));
    }
}
