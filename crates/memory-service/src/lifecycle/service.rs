//! `install-service` / `uninstall-service`: hand `serve` to the OS supervisor
//! (a launchd LaunchAgent on macOS, a systemd user unit on Linux). The files
//! come from the `supervisor` crate; this module only picks the kind, writes,
//! and runs the activation commands (unless told not to).

use std::process::Command;

use anyhow::{Context, bail};
use supervisor::{DEFAULT_LABEL, Kind, Paths, ServiceSpec};

use crate::config::Config;
use crate::exit_code::ExitCode;

/// Which supervisor (default: the platform's).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KindArgs {
    /// Use launchd (the default on macOS).
    #[arg(long, conflicts_with = "systemd")]
    pub launchd: bool,
    /// Use systemd (the default on Linux).
    #[arg(long)]
    pub systemd: bool,
    /// Write or remove the file only; print the launchctl/systemctl commands
    /// instead of running them.
    #[arg(long)]
    pub no_activate: bool,
}

impl KindArgs {
    fn kind(&self) -> Kind {
        match (self.launchd, self.systemd) {
            (true, _) => Kind::Launchd,
            (_, true) => Kind::Systemd,
            _ => Kind::for_this_platform(),
        }
    }
}

/// Options of `install-service`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Which supervisor, and whether to activate.
    #[command(flatten)]
    pub kind: KindArgs,
    /// Print the service file to stdout instead of installing it.
    #[arg(long)]
    pub print: bool,
}

fn show(cmd: &[String]) -> String {
    cmd.join(" ")
}

fn run_commands(cmds: &[Vec<String>], must_succeed: bool) -> anyhow::Result<()> {
    for cmd in cmds {
        let Some((prog, args)) = cmd.split_first() else {
            continue;
        };
        let out = Command::new(prog).args(args).output();
        match out {
            Ok(o) if o.status.success() => println!("  ran: {}", show(cmd)),
            Ok(o) if must_succeed => bail!(
                "`{}` failed ({}): {}",
                show(cmd),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) if must_succeed => bail!("could not run `{}`: {e}", show(cmd)),
            _ => {}
        }
    }
    Ok(())
}

/// Runs `install-service`.
pub fn install(config: &Config, args: &InstallArgs) -> anyhow::Result<ExitCode> {
    if config.allow_remote {
        eprintln!(
            "memory-service: install-service writes a loopback-only service; --allow-remote is not carried into it\n  \
             next: install without --allow-remote and --host, or write your own unit running \
             `memory-service --allow-remote --host {} serve`",
            config.host
        );
        return Ok(ExitCode::Usage);
    }
    let kind = args.kind.kind();
    let paths = Paths::from_env()?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("finding this program's absolute path")?;
    // The supervisor appends to the home's log, the one `start` writes and
    // `logs` reads.
    let spec = ServiceSpec::new(exe, &config.home, &config.host, config.port, &config.home);
    if args.print {
        print!("{}", supervisor::render(kind, &spec)?);
        return Ok(ExitCode::Ok);
    }
    let installed = supervisor::install(kind, &spec, &paths)?;
    match install_man_page() {
        Ok(path) => println!("Wrote the manual page {} (`man memory-service`)", path.display()),
        Err(e) => eprintln!(
            "memory-service: could not write the manual page ({e:#}); `memory-service man` prints it"
        ),
    }
    println!(
        "{} {} service file {}",
        if installed.replaced { "Replaced" } else { "Wrote" },
        kind.name(),
        installed.path.display()
    );
    if args.kind.no_activate {
        println!("To activate it, run:");
        for cmd in installed.prepare.iter().chain(&installed.commands) {
            println!("  {}", show(cmd));
        }
        return Ok(ExitCode::Ok);
    }
    run_commands(&installed.prepare, false)?;
    run_commands(&installed.commands, true).with_context(|| {
        format!(
            "activating {} (the file is written; fix and rerun)",
            installed.path.display()
        )
    })?;
    println!(
        "Memory Service is now supervised by {}; its log: {} (`memory-service logs -f`)",
        kind.name(),
        spec.log_file().display()
    );
    Ok(ExitCode::Ok)
}

/// Writes `memory-service(1)` where `man` finds a user's pages
/// (`$XDG_DATA_HOME/man/man1`, default `~/.local/share/man/man1`; man-db
/// searches it for users with `~/.local/bin` on PATH), so the unit's
/// `Documentation=man:memory-service(1)` names a page that exists.
fn install_man_page() -> anyhow::Result<std::path::PathBuf> {
    let data = match std::env::var_os("XDG_DATA_HOME").map(std::path::PathBuf::from) {
        Some(d) if d.is_absolute() => d,
        _ => {
            std::path::PathBuf::from(std::env::var_os("HOME").context("$HOME is unset")?).join(".local/share")
        }
    };
    let dir = data.join("man/man1");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("memory-service.1");
    std::fs::write(&path, crate::cli::man_page()?).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs `uninstall-service`.
pub fn uninstall(_config: &Config, args: &KindArgs) -> anyhow::Result<ExitCode> {
    let kind = args.kind();
    let paths = Paths::from_env()?;
    let deactivate = supervisor::deactivation_commands(kind, DEFAULT_LABEL);
    if !args.no_activate {
        run_commands(&deactivate, false)?;
    }
    let done = supervisor::uninstall(kind, DEFAULT_LABEL, &paths)?;
    if done.removed {
        println!("Removed {} service file {}", kind.name(), done.path.display());
    } else {
        println!(
            "No {} service file at {}; nothing to remove",
            kind.name(),
            done.path.display()
        );
    }
    if args.no_activate {
        for cmd in deactivate.iter().chain(&done.after) {
            println!("  to run: {}", show(cmd));
        }
    } else {
        run_commands(&done.after, false)?;
    }
    Ok(ExitCode::Ok)
}
