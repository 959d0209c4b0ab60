//! Who is being guarded. This crate names no application: every sentence it
//! builds for a user takes the application's names from an [`AppIdentity`]
//! the caller passes, so one binary's wording never leaks into another's.

/// The guarded application's names, as they appear in decisions and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    /// The name the application's health endpoint reports (e.g.
    /// `"my-daemon"`); an answer is "ours" only if it matches exactly.
    pub service: String,
    /// The name in sentences (e.g. `"My Daemon"`).
    pub display_name: String,
    /// The command-line option that chooses another home, quoted in hints
    /// (e.g. `"--home"`).
    pub home_option: String,
}

impl AppIdentity {
    /// An identity from its three names: `service` (health endpoint),
    /// `display_name` (sentences), `home_option` (hints).
    pub fn new(
        service: impl Into<String>,
        display_name: impl Into<String>,
        home_option: impl Into<String>,
    ) -> AppIdentity {
        AppIdentity {
            service: service.into(),
            display_name: display_name.into(),
            home_option: home_option.into(),
        }
    }
}
