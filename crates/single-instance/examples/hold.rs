//! Takes a home directory's lock, shows the holder record it wrote, then runs
//! a second copy of itself against the same home and shows it being refused.
//!
//! ```text
//! cargo run -p single-instance --example hold -- /tmp/example-home
//! ```
//!
//! The second copy is a separate process (flock excludes processes, and
//! within one process it excludes separate opens, so either would do).

use std::process::Command;

use single_instance::{AppIdentity, Claim, Health, HomeFiles, Policy};

fn app() -> AppIdentity {
    AppIdentity::new(
        "example-service",
        "Example Service",
        "a different directory argument",
    )
}

fn policy() -> Policy {
    Policy {
        app: app(),
        // Our holder answers no health probe; with no grace period the
        // second copy calls it unresponsive at once instead of "starting".
        startup_grace_secs: 0,
    }
}

/// This example serves no HTTP, so nothing ever answers the probe.
fn no_http(_host: &str, _port: u16) -> Health {
    Health::NoAnswer {
        reason: "this example serves no HTTP".into(),
    }
}

fn claim(home: &str) -> Result<Claim, single_instance::Error> {
    let files = HomeFiles::new(home, "example");
    single_instance::claim(&files, "127.0.0.1", 8080, "0.1.0", &policy(), &no_http)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let home = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("single-instance-example")
            .display()
            .to_string()
    });
    if args.next().as_deref() == Some("--second") {
        return match claim(&home)? {
            Claim::Won(_) => Err("the second copy won the lock: this must never happen".into()),
            Claim::Refused(verdict) => {
                println!(
                    "second copy (PID {}): refused: {}",
                    std::process::id(),
                    verdict.describe(&app())
                );
                Ok(())
            }
        };
    }
    let Claim::Won(instance) = claim(&home)? else {
        return Err(format!("{home} is already held by another process").into());
    };
    println!("first copy (PID {}): holds {home}", std::process::id());
    if let Some(from) = instance.prepared().tightened_from {
        println!("  (the home was mode {from:04o}; it is now 0700)");
    }
    println!("  holder record in {}:", instance.files().lock.display());
    for line in std::fs::read_to_string(&instance.files().lock)?.lines() {
        println!("    {line}");
    }
    let status = Command::new(std::env::current_exe()?)
        .arg(&home)
        .arg("--second")
        .status()?;
    if !status.success() {
        return Err(format!("the second copy failed: {status}").into());
    }
    instance.release()?;
    println!("first copy: released {home}");
    Ok(())
}
