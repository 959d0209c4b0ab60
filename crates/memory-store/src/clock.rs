//! Wall-clock helpers: the one timestamp format of the service (naive local ISO-8601
//! with microseconds, like the original's Python `datetime.now().isoformat()`), epoch
//! milliseconds/microseconds for job ids and ages, and validation of client-sent chat
//! timestamps. `chrono` is the one time library; every timestamp the service writes (the
//! database, `/health`'s `started_at`, the file tree's `modified`) goes through
//! [`format_timestamp`], and the CLI reads them back with [`parse_timestamp`]. Pure
//! functions; no I/O.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime};

/// The service's timestamp format (`chrono` strftime): naive local time with
/// microseconds, `2025-12-27T21:10:29.123456` (26 characters).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// `t` in [`TIMESTAMP_FORMAT`].
pub fn format_timestamp(t: &DateTime<Local>) -> String {
    t.format(TIMESTAMP_FORMAT).to_string()
}

/// Now in [`TIMESTAMP_FORMAT`].
pub fn now_iso() -> String {
    format_timestamp(&Local::now())
}

/// A service timestamp read back: [`TIMESTAMP_FORMAT`], or the same with fewer (or no)
/// fraction digits; `None` for anything else.
pub fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis().max(0)
}

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_epoch_us() -> i64 {
    chrono::Utc::now().timestamp_micros().max(0)
}

/// True when `s` is an ISO-8601 date-time Python's `datetime.fromisoformat` would take in
/// practice: `Z` or a `±hh:mm` offset or none, `T` or a space between date and time,
/// optional seconds and fraction, or a bare date.
pub(crate) fn is_iso8601(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return false;
    }
    // A trailing Z/z means UTC: rewrite it as an explicit offset.
    let owned;
    let s = match s.strip_suffix(['Z', 'z']) {
        Some(rest) => {
            owned = format!("{rest}+00:00");
            owned.as_str()
        }
        None => s,
    };
    if DateTime::parse_from_rfc3339(s).is_ok() {
        return true;
    }
    const WITH_OFFSET: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ];
    if WITH_OFFSET.iter().any(|f| DateTime::parse_from_str(s, f).is_ok()) {
        return true;
    }
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    NAIVE.iter().any(|f| NaiveDateTime::parse_from_str(s, f).is_ok())
        || NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iso_forms() {
        for ok in [
            "2025-12-27T21:10:29.123456",
            "2025-12-27T21:10:29",
            "2025-12-27T21:10:29Z",
            "2025-12-27T21:10:29.5z",
            "2025-12-27T21:10:29+02:00",
            "2025-12-27T21:10:29.123-05:30",
            "2025-12-27 21:10:29",
            "2025-12-27T21:10",
            "2025-12-27T21:10+01:00",
            "2025-12-27",
        ] {
            assert!(is_iso8601(ok), "{ok} should be accepted");
        }
    }

    #[test]
    fn rejects_non_iso() {
        for bad in [
            "",
            "   ",
            "yesterday",
            "27/12/2025",
            "2025-13-01T00:00:00",
            "2025-12-27T25:00:00",
            "2025-12-27T21:10:29+99:00",
            "1735333829",
            "2025-12-27T21:10:29 UTC",
        ] {
            assert!(!is_iso8601(bad), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn service_time_shape() {
        let t = now_iso();
        assert_eq!(t.len(), 26, "{t}");
        assert_eq!(&t[10..11], "T");
        assert!(parse_timestamp(&t).is_some(), "{t}");
        assert_eq!(
            parse_timestamp("2026-01-02T11:59:30.5").map(|t| t.to_string()),
            Some("2026-01-02 11:59:30.500".to_string())
        );
        assert_eq!(parse_timestamp("2026-01-02 11:59"), None);
        assert!(now_epoch_ms() > 1_600_000_000_000);
        assert!(now_epoch_us() > 1_600_000_000_000_000);
    }
}
