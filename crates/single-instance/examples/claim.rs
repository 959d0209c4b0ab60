//! Claims a home directory given on the command line, prints the verdict, and
//! holds the home until Ctrl-C (or SIGTERM), then releases it. Run it in two
//! terminals with the same directory: the second is refused and says who
//! holds the home; after `kill -9` of the first, a new one starts at once.
//!
//! ```text
//! cargo run -p single-instance --example claim -- /tmp/example-home
//! ```

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use single_instance::{AppIdentity, Claim, Health, HomeFiles, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(home) = std::env::args().nth(1) else {
        eprintln!("usage: claim HOME_DIR");
        std::process::exit(2);
    };
    let app = AppIdentity::new("example-service", "Example Service", "the HOME_DIR argument");
    let policy = Policy {
        app: app.clone(),
        // This example answers no health probe: without a grace period a
        // second copy calls the holder unresponsive at once, not "starting".
        startup_grace_secs: 0,
    };
    // Nothing serves HTTP here, so the probe never gets an answer.
    let no_http = |_host: &str, _port: u16| Health::NoAnswer {
        reason: "this example serves no HTTP".into(),
    };
    // Block the signals before claiming, so a Ctrl-C right after the claim
    // still reaches the release below (it is taken by `wait`, not fatal).
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop), None)?;

    let files = HomeFiles::new(&home, "example");
    match single_instance::claim(&files, "127.0.0.1", 8080, "0.1.0", &policy, &no_http)? {
        Claim::Refused(verdict) => {
            println!("refused: {}", verdict.describe(&app));
            std::process::exit(1);
        }
        Claim::Won(instance) => {
            println!(
                "won: PID {} holds {home}; lock file {}; Ctrl-C to release",
                std::process::id(),
                instance.files().lock.display()
            );
            let signal = stop.wait()?;
            instance.release()?;
            println!("{signal}: released {home}");
        }
    }
    Ok(())
}
