//! The holder record: who holds the lock, written into the lock file itself,
//! PostgreSQL style (`postmaster.pid`): the PID alone on the first line, then
//! one field per line. Losers read it to name the holder. It may be torn or
//! empty (a crash mid-write, or a reader racing the writer), so parsing is
//! total: anything unreadable is `None`, and nothing ever blocks on it.

use std::fmt::Write as _;
use std::path::PathBuf;

/// The identity of the process holding a home's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderRecord {
    /// The holder's process id.
    pub pid: u32,
    /// When the holder process started, in seconds since the Unix epoch as the
    /// OS reports it. Together with `pid` it names one process: a reused PID
    /// has another start time.
    pub process_start: u64,
    /// A random id chosen at start; `/health` reports it too, so an answer can
    /// be tied to this exact holder.
    pub instance_id: String,
    /// The host the holder serves on.
    pub host: String,
    /// The port the holder serves on.
    pub port: u16,
    /// The home directory, as the holder resolved it.
    pub home: PathBuf,
    /// The holder's version.
    pub version: String,
}

impl HolderRecord {
    /// The file content: seven lines, PID first.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.pid,
            self.process_start,
            self.instance_id,
            self.host,
            self.port,
            self.home.display(),
            self.version
        );
        s
    }

    /// Parses a record; `None` if any field is missing or malformed, which is
    /// what a torn or foreign file looks like.
    pub fn parse(text: &str) -> Option<HolderRecord> {
        if !text.ends_with('\n') {
            return None; // torn: the writer had not finished
        }
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok().filter(|p| *p > 0)?;
        let process_start = lines.next()?.trim().parse().ok()?;
        let instance_id = nonempty(lines.next()?)?;
        let host = nonempty(lines.next()?)?;
        let port = lines.next()?.trim().parse().ok()?;
        let home = PathBuf::from(nonempty(lines.next()?)?);
        let version = nonempty(lines.next()?)?;
        Some(HolderRecord {
            pid,
            process_start,
            instance_id,
            host,
            port,
            home,
            version,
        })
    }

    /// Only the first line: enough to name the holder when the rest is torn.
    pub fn parse_pid(text: &str) -> Option<u32> {
        let first = text.split('\n').next()?;
        // A first line without its newline may still be being written.
        if first.len() == text.len() {
            return None;
        }
        first.trim().parse().ok().filter(|p| *p > 0)
    }
}

fn nonempty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A fresh random instance id (128 bits, hex).
pub fn new_instance_id() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HolderRecord {
        HolderRecord {
            pid: 4242,
            process_start: 1_700_000_000,
            instance_id: new_instance_id(),
            host: "127.0.0.1".into(),
            port: 5858,
            home: PathBuf::from("/home/u/.my-daemon"),
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(HolderRecord::parse(&r.to_text()), Some(r.clone()));
        assert_eq!(HolderRecord::parse_pid(&r.to_text()), Some(4242));
    }

    #[test]
    fn every_prefix_of_a_record_is_torn_not_an_error() {
        let text = sample().to_text();
        for cut in 0..text.len() {
            assert_eq!(HolderRecord::parse(&text[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_none() {
        for junk in [
            "",
            "\n",
            "abc\n",
            "0\n1\n",
            "-5\n",
            "\u{0}\u{1}\n\n\n\n\n\n\n",
            "12 34\n",
        ] {
            assert_eq!(HolderRecord::parse(junk), None, "{junk:?}");
        }
        assert_eq!(HolderRecord::parse_pid("123"), None, "no newline yet: torn");
        assert_eq!(HolderRecord::parse_pid("123\nxx"), Some(123));
        assert_eq!(HolderRecord::parse_pid("0\n"), None);
    }

    #[test]
    fn instance_ids_differ() {
        assert_ne!(new_instance_id(), new_instance_id());
        assert_eq!(new_instance_id().len(), 32);
    }

    proptest::proptest! {
        /// Whatever the bytes: parsing never panics, and a record that parses is one
        /// that writes back to the same fields.
        #[test]
        fn any_text_parses_or_is_none(text in "(?s).{0,400}") {
            if let Some(r) = HolderRecord::parse(&text) {
                proptest::prop_assert_eq!(HolderRecord::parse(&r.to_text()), Some(r.clone()));
                proptest::prop_assert!(r.pid > 0);
            }
            if let Some(pid) = HolderRecord::parse_pid(&text) {
                proptest::prop_assert!(pid > 0);
            }
        }

        /// Every record round-trips, and every strict prefix of its text is torn.
        #[test]
        fn records_round_trip_and_prefixes_are_torn(
            pid in 1u32..,
            process_start in proptest::prelude::any::<u64>(),
            host in "[a-z0-9.:]{1,40}",
            port in proptest::prelude::any::<u16>(),
            home in "/[^\n\r]{0,80}[^\\s]",
        ) {
            let r = HolderRecord {
                pid,
                process_start,
                instance_id: new_instance_id(),
                host,
                port,
                home: PathBuf::from(home),
                version: "0.1.0".into(),
            };
            let text = r.to_text();
            proptest::prop_assert_eq!(HolderRecord::parse(&text), Some(r.clone()));
            proptest::prop_assert_eq!(HolderRecord::parse_pid(&text), Some(pid));
            for cut in (0..text.len()).filter(|&c| text.is_char_boundary(c)) {
                proptest::prop_assert_eq!(HolderRecord::parse(&text[..cut]), None);
            }
        }
    }
}
