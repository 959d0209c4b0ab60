//! The systemd user unit that runs `serve`, and the quoting of its
//! `ExecStart=` words. `serve` speaks sd_notify (READY=1 once serving,
//! WATCHDOG=1 while healthy, STOPPING=1 on shutdown), so the unit is
//! `Type=notify` with a watchdog; its exit codes decide what is restarted.
//!
//! Why the restart policy: `Restart=on-failure` restarts crashes, signals,
//! watchdog timeouts and exit 1 (and 16, "lost the lock": if the usurper is
//! gone we should serve again, and if not the next start exits 10 and stops).
//! `RestartPreventExitStatus=10 11 12 13 14 15` stops restarts where a retry
//! cannot help: 10-12 mean another instance holds the home (restarting every
//! 5 s would loop forever beside a manual `serve`), 13-15 are port or home
//! configuration errors that need a person. The unit then stays failed with
//! that status, visible in `systemctl --user status`, until started again.
//! `StartLimitBurst=10` in `StartLimitIntervalSec=300` caps a crash loop.
//!
//! Why `KillMode=mixed`: stop sends SIGTERM to the main process only, so
//! `serve` drains requests and persists queued work undisturbed; after
//! `TimeoutStopSec=20` every process left in the cgroup gets SIGKILL.
//! (`control-group` would SIGTERM helpers mid-drain; `process` would leave
//! them running.)

use crate::ServiceSpec;

/// Seconds without WATCHDOG=1 after which systemd kills and restarts `serve`.
pub const WATCHDOG_SECS: u32 = 30;

/// The exit codes of `serve` after which systemd must not restart it.
pub const RESTART_PREVENT_EXIT_STATUS: [u8; 6] = [10, 11, 12, 13, 14, 15];

/// The unit file's text. Paths are converted lossily, so call
/// [`ServiceSpec::validate`] first (as [`render`](crate::render) and
/// [`install`](crate::install) do) to refuse non-UTF-8 or relative paths.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let exe = spec.exe.to_string_lossy();
    let home = spec.home.to_string_lossy();
    let port = spec.port.to_string();
    let mut exec = vec![quote_executable(&exe)];
    for arg in ["serve", "--home", &home, "--host", &spec.host, "--port", &port] {
        exec.push(quote_argument(arg));
    }
    let log = escape_specifiers(&spec.log_file().to_string_lossy());
    let prevent = RESTART_PREVENT_EXIT_STATUS.map(|c| c.to_string()).join(" ");

    format!(
        "\
# Written by `memory-service install-service`; reinstall instead of editing.
# Manual: `man memory-service` (install-service writes it to
# ~/.local/share/man/man1/memory-service.1; `memory-service man` prints it).
# Log: `memory-service logs -f`.
[Unit]
Description=Memory Service: local indexing and search daemon
Documentation=man:memory-service(1)
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus={prevent}
WatchdogSec={WATCHDOG_SECS}
TimeoutStopSec=20
KillMode=mixed
Environment=RUST_LOG=info
StandardOutput=append:{log}
StandardError=append:{log}

[Install]
WantedBy=default.target
",
        exec = exec.join(" "),
    )
}

/// `%` starts a specifier in every unit-file value; `%%` is a literal `%`.
fn escape_specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

/// Quotes the executable, the first word of `ExecStart=`. systemd resolves
/// specifiers in it but does not expand `$VARIABLES`, so only `%` is escaped
/// beyond the quoting itself.
fn quote_executable(path: &str) -> String {
    quote_word(&escape_specifiers(path))
}

/// Quotes an argument of `ExecStart=`: `%` becomes `%%` and `$` becomes `$$`
/// (systemd expands `$VAR` and `${VAR}` in arguments), then the word is
/// double-quoted if it holds anything outside a plainly safe set.
fn quote_argument(arg: &str) -> String {
    quote_word(&escape_specifiers(arg).replace('$', "$$"))
}

/// Double-quotes `word` when needed, with C-style escapes for `\` and `"`
/// (systemd.syntax(7) "Quoting"). Whitespace, quotes, backslashes, `;` and
/// the empty word all need quotes; plain words stay bare for readability.
fn quote_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%$[]".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(
            quote_argument("/usr/bin/memory-service"),
            "/usr/bin/memory-service"
        );
        assert_eq!(quote_argument("127.0.0.1"), "127.0.0.1");
        assert_eq!(quote_argument("[::1]"), "[::1]");
    }

    #[test]
    fn spaces_quotes_and_backslashes_are_quoted_with_c_escapes() {
        assert_eq!(quote_argument("/my dir/x"), "\"/my dir/x\"");
        assert_eq!(quote_argument(r#"/a"b\c"#), r#""/a\"b\\c""#);
        assert_eq!(quote_argument("it's"), "\"it's\"");
        assert_eq!(quote_argument(";"), "\";\"");
        assert_eq!(quote_argument(""), "\"\"");
    }

    #[test]
    fn specifiers_and_variables_are_escaped() {
        assert_eq!(quote_argument("/100%/$HOME"), "/100%%/$$HOME");
        // The executable gets no `$` expansion, so `$` stays single.
        assert_eq!(quote_executable("/x$y 1%/ms"), "\"/x$y 1%%/ms\"");
    }
}
