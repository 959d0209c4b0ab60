//! The one deadline poll. Tests and benchmarks wait on other processes
//! (a port bound, a job finished, a child exited); sleeping a guessed time
//! either wastes it or flakes, so every wait re-checks its condition with a
//! short pause and gives up at a generous deadline that is a hang guard,
//! never a timing assertion.

use std::time::{Duration, Instant};

use anyhow::bail;

/// The hang guard of tests: generous, never a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The pause between attempts: starts at `first` and doubles up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    /// The pause after the first failed attempt.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Pause {
    /// 2 ms doubling to 50 ms: quick for fast answers, cheap for slow ones.
    pub const BACKOFF: Pause = Pause {
        first: Duration::from_millis(2),
        max: Duration::from_millis(50),
    };

    /// A fixed pause (a benchmark's timing resolution).
    pub const fn every(pause: Duration) -> Pause {
        Pause {
            first: pause,
            max: pause,
        }
    }
}

/// Calls `f` until it returns `Ok(Some(_))` (that value), `Err` (that error),
/// or `deadline` has passed (an error naming `what` and the deadline).
pub fn try_poll<T>(
    what: &str,
    deadline: Duration,
    pause: Pause,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let end = Instant::now() + deadline;
    let mut next = pause.first;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(next);
        next = (next * 2).min(pause.max);
    }
}

/// Calls `f` until it returns `Some` (that value); panics naming `what` at
/// the deadline. The tests' form of [`try_poll`] (with [`Pause::BACKOFF`]).
pub fn poll<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    try_poll(what, deadline, Pause::BACKOFF, || Ok(f())).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value() {
        let mut n = 0;
        let v = poll("n to reach 3", DEADLINE, || {
            n += 1;
            (n == 3).then_some(n * 10)
        });
        assert_eq!(v, 30);
    }

    #[test]
    fn gives_up_at_the_deadline_naming_what() {
        let e = try_poll("nothing", Duration::from_millis(5), Pause::BACKOFF, || {
            Ok(None::<()>)
        })
        .unwrap_err();
        assert!(e.to_string().contains("waiting for nothing"), "{e}");
    }

    #[test]
    fn an_error_ends_the_wait() {
        let e = try_poll("x", DEADLINE, Pause::BACKOFF, || -> anyhow::Result<Option<()>> {
            bail!("broke")
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "broke");
    }
}
