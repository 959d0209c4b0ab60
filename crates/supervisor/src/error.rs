//! The crate's one error type: each variant names the action and the path or
//! field involved, so the binary can print `memory-service: <chain>` once and
//! the user knows which file or setting to look at. Sources are kept as
//! `source()`, not repeated in the message.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while rendering, installing or uninstalling a
/// service definition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed; `action` says what we were doing
    /// ("writing unit file", "creating directory", ...).
    #[error("{action} {}", path.display())]
    Io {
        /// What we were doing, as a verb phrase.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The `plist` crate could not serialize the launchd agent.
    #[error("serializing launchd plist for {label}")]
    Plist {
        /// The agent's label.
        label: String,
        /// The serializer's error.
        #[source]
        source: plist::Error,
    },

    /// A field of the [`ServiceSpec`](crate::ServiceSpec) cannot be written
    /// into a service definition safely.
    #[error("invalid service spec: {field} {value:?} {reason}")]
    InvalidSpec {
        /// The field's name (`exe`, `home`, `host`, `log_dir`, `label`).
        field: &'static str,
        /// The offending value, lossily converted for display.
        value: String,
        /// Why it is refused, phrased to follow the value.
        reason: &'static str,
    },

    /// The user's home directory could not be determined from the
    /// environment (`HOME` unset, empty or relative).
    #[error("locating the home directory: HOME is unset or not an absolute path")]
    NoHome,
}

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with real causes where a variant wraps one.
    fn every_variant() -> Vec<Error> {
        let all = vec![
            Error::io(
                "writing unit file",
                "/u/memory-service.service",
                io::Error::from_raw_os_error(13),
            ),
            Error::Plist {
                label: "com.chatdo.memory-service".into(),
                source: plist::from_bytes::<plist::Value>(b"not a plist").unwrap_err(),
            },
            Error::InvalidSpec {
                field: "home",
                value: "a\nb".into(),
                reason: "contains a newline",
            },
            Error::NoHome,
        ];
        for e in &all {
            // A new variant fails to compile here until it is added above.
            match e {
                Error::Io { .. } | Error::Plist { .. } | Error::InvalidSpec { .. } | Error::NoHome => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_prints_each_cause_once() {
        for e in every_variant() {
            let e = anyhow::Error::new(e).context("installing the service");
            testkit::assert_each_cause_once(e);
        }
    }
}
