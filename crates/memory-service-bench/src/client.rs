//! HTTP for the benchmarks: testkit's [`Client`] (one keep-alive connection
//! per client, so one slow answer cannot queue another thread's request;
//! every status an [`Answer`] the caller checks, `json_200` naming the
//! request and the body sent back), the data-request hang guard, and a
//! reader for Prometheus text.

use std::time::Duration;

pub use testkit::{Answer, Client};

/// How long a data request may take before we call the service hung: the
/// service's own request timeout is 60 s, so anything longer is a failure.
pub const REQUEST_GUARD: Duration = Duration::from_secs(65);

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
