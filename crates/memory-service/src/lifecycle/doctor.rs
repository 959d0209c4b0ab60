//! `memory-service doctor`: the way out of a damaged database. The running
//! service only reports damage (`/health` and `status` say `degraded`), because a
//! rebuild needs the file to itself: doctor takes the home's lock (so no `serve`
//! can start meanwhile), checks every page and the FTS index, and when it finds
//! damage rebuilds the database from what can still be read (see
//! `memory_store::repair`), keeping the damaged file beside it. It prints what
//! was kept and what was lost, so nobody has to guess.

use std::path::Path;

use memory_store::repair::{self, RebuildReport};
use single_instance::lock::{HomeAcquire, try_lock_home};

use crate::config::Config;
use crate::exit_code::ExitCode;

/// `doctor`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Only check and report; change nothing (exit 21 when damage is found).
    #[arg(long)]
    pub check_only: bool,
}

/// Problems printed before the report is cut short.
const MAX_PROBLEMS_SHOWN: usize = 10;

/// Runs `doctor`; the home's lock is held throughout.
pub fn run(config: &Config, args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let db = config.paths().database();
    if !config.home.is_dir() || !db.exists() {
        println!("no database at {}: nothing to check", db.display());
        return Ok(ExitCode::Ok);
    }
    let _lock = match try_lock_home(&config.home)? {
        HomeAcquire::Acquired(lock) => lock,
        HomeAcquire::Held(_) => return Ok(refuse_while_running(config)),
    };
    let problems = repair::check(&db)?;
    if problems.is_empty() {
        println!(
            "{}: no damage found (integrity_check and the FTS index's own check)",
            db.display()
        );
        return Ok(ExitCode::Ok);
    }
    println!("damage found in {}:", db.display());
    for p in problems.iter().flat_map(|p| p.lines()).take(MAX_PROBLEMS_SHOWN) {
        println!("  {p}");
    }
    if args.check_only {
        println!("next: run `memory-service doctor` (without --check-only) to rebuild it");
        return Ok(ExitCode::Damaged);
    }
    match repair::rebuild(&db) {
        Ok(report) => Ok(print_report(&db, &report)),
        Err(e) if e.is_damage() => {
            eprintln!("memory-service: nothing can be read from {}: {e}", db.display());
            eprintln!(
                "  it was left as it is; to start with an empty memory, move it away \
                 (mv {0} {0}.unreadable) and start the service",
                db.display()
            );
            Ok(ExitCode::Damaged)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("rebuilding {}", db.display()))),
    }
}

/// Says who holds the home and what to do; doctor never touches a database in use.
fn refuse_while_running(config: &Config) -> ExitCode {
    if let Some(code) = super::stranger_instead_of_instance(config) {
        return code;
    }
    let files = config.paths().guarded();
    let pid = single_instance::lock::read_record(&files.lock)
        .0
        .map(|r| format!("PID {}", r.pid))
        .unwrap_or_else(|| "its PID is not recorded yet".into());
    eprintln!(
        "memory-service: an instance holds {} ({pid}); doctor needs the database to itself",
        config.home.display()
    );
    eprintln!("  next: memory-service stop, then memory-service doctor");
    ExitCode::AlreadyRunning
}

/// Prints what the rebuild kept, lost and queued; the exit code says whether
/// anything was lost.
fn print_report(db: &Path, report: &RebuildReport) -> ExitCode {
    println!("rebuilt {}:", db.display());
    for t in &report.tables {
        let mut line = format!("  {}: {} rows kept", t.table, t.rows);
        if let Some(why) = &t.unreadable_all {
            line.push_str(&format!("; the rest could not be read at all ({why})"));
        }
        for (after, before) in &t.unreadable {
            if *before == i64::MAX {
                line.push_str(&format!("; rows after rowid {after} could not be read"));
            } else {
                line.push_str(&format!(
                    "; rowids {}..={} could not be read (at most {} rows)",
                    after + 1,
                    before - 1,
                    before - after - 1
                ));
            }
        }
        println!("{line}");
    }
    println!(
        "  derived again at the next start: {} chat messages and {} sources queued for indexing \
         (chunks, the FTS index and embeddings)",
        report.chat_jobs_queued, report.sources_queued
    );
    println!("  the damaged file is kept as {}", report.backup.display());
    if report.lost_rows() {
        println!("some stored rows could not be recovered (above); everything else is back");
        println!("next: memory-service start");
        ExitCode::Damaged
    } else {
        println!("nothing stored was lost");
        println!("next: memory-service start");
        ExitCode::Ok
    }
}
