//! The `startup` benchmark: how fast the real binary becomes healthy, refuses
//! a duplicate, settles a start race, and how small and quick it is when idle.
//! Every part spawns fresh instances (own home, free port) in one sandbox and
//! stops them with SIGTERM; it reports numbers and checks exit codes, but sets
//! no goals: a wrong exit code is an error, a slow time is just a number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::proc::{self, HANG_GUARD, HEALTH_POLL, Sandbox, Service};
use crate::stats::Summary;

/// `memory-service-bench startup`: start-up, duplicate, race, idle memory and
/// `/health` latency of the real binary.
#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// The memory-service binary [default: `memory-service` next to this one]
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Starts timed for exec -> healthy, and duplicate starts timed
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Rounds of the start race
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub race_rounds: u32,
    /// Processes started at once in each race round
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..))]
    pub starters: u32,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

/// Everything `startup` measured. Times in ms unless the name says otherwise.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The binary measured.
    pub bin: PathBuf,
    /// What ran it: OS, architecture, CPUs.
    pub host: String,
    /// `Command::spawn` to the first `/health` 200 naming the child's pid.
    pub exec_to_healthy_ms: Summary,
    /// `Command::spawn` to the first `/health` with `state: "ready"`.
    pub exec_to_ready_ms: Summary,
    /// SIGTERM to exit 0 of an idle instance (holding our keep-alive connection).
    pub sigterm_to_exit_ms: Summary,
    /// Spawn to exit 10 of a duplicate `serve` on a home already served.
    pub duplicate_exit_ms: Summary,
    /// The start race.
    pub race: Race,
    /// Resident memory of an idle instance after 100 `/health` requests.
    pub idle_rss_mib: f64,
    /// The same after the 1000 latency requests too.
    pub idle_rss_after_latency_mib: f64,
    /// Sequential `/health` over one keep-alive connection, in microseconds.
    pub health_latency_us: Summary,
}

/// The outcome of the start races.
#[derive(Debug, Serialize)]
pub struct Race {
    /// Rounds run.
    pub rounds: u32,
    /// Processes per round.
    pub starters: u32,
    /// Rounds that ended with exactly one survivor, answering `/health`.
    pub exactly_one: u32,
    /// How the losers exited: "10", "11", ... or "signal N".
    pub loser_codes: BTreeMap<String, u32>,
    /// First spawn to the first `/health` 200 from one of the round's pids.
    pub winner_healthy_ms: Summary,
    /// First to last spawn call of a round: how "at once" the barrier was.
    pub spawn_spread_ms: Summary,
    /// What went wrong in the other rounds.
    pub failures: Vec<String>,
}

/// Runs every part and prints the report.
pub fn run(args: &StartupArgs) -> Result<()> {
    let bin = proc::resolve_bin(args.bin.as_deref())?;
    let sandbox = proc::sandbox(&bin)?;
    let say = |what: &str| {
        if !args.json {
            eprintln!("running: {what}");
        }
    };

    say(&format!("exec -> healthy, {} starts", args.runs));
    let (mut answered, mut ready, mut term) = (vec![], vec![], vec![]);
    for _ in 0..args.runs {
        let s = one_start(&sandbox)?;
        answered.push(s.answered_ms);
        ready.push(s.ready_ms);
        term.push(s.sigterm_ms);
    }

    say(&format!("duplicate serve, {} starts", args.runs));
    let duplicate = duplicates(&sandbox, args.runs)?;

    say(&format!("race, {} rounds of {}", args.race_rounds, args.starters));
    let race = races(&sandbox, args.race_rounds, args.starters)?;

    say("idle memory and /health latency");
    let idle = idle(&sandbox)?;

    let report = Report {
        bin,
        host: crate::proc::host_description(),
        exec_to_healthy_ms: summary(&answered)?,
        exec_to_ready_ms: summary(&ready)?,
        sigterm_to_exit_ms: summary(&term)?,
        duplicate_exit_ms: summary(&duplicate)?,
        race,
        idle_rss_mib: idle.rss_mib,
        idle_rss_after_latency_mib: idle.rss_after_mib,
        health_latency_us: summary(&idle.latency_us)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn summary(samples: &[f64]) -> Result<Summary> {
    Summary::of(samples).context("no samples to summarize")
}

fn ms(since: Instant, until: Instant) -> f64 {
    until.duration_since(since).as_secs_f64() * 1e3
}

struct Start {
    answered_ms: f64,
    ready_ms: f64,
    sigterm_ms: f64,
}

/// One fresh start: spawn, poll until healthy and ready, SIGTERM, expect 0.
fn one_start(sandbox: &Sandbox) -> Result<Start> {
    let home = sandbox.new_home();
    let (cmd, out, err) = proc::serve_command(sandbox, &home, 0, &[])?;
    let agent = proc::agent();
    let t0 = Instant::now();
    let mut svc = Service::spawn(cmd, out, err)?;
    let (_, healthy) = proc::wait_healthy(&agent, &mut svc, &home)?;
    let term_start = Instant::now();
    svc.try_signal(Signal::SIGTERM)?;
    let status = proc::wait(&mut svc)?;
    let term_end = Instant::now();
    let code = proc::exit_code(status)?;
    if code != 0 {
        bail!(
            "after SIGTERM, pid {} exited {code}, not 0\n{}",
            svc.pid(),
            svc.stderr_tail()
        );
    }
    Ok(Start {
        answered_ms: ms(t0, healthy.answered),
        ready_ms: ms(t0, healthy.ready),
        sigterm_ms: ms(term_start, term_end),
    })
}

/// With one instance serving a home, times `runs` duplicate `serve`s on that
/// home (each on port 0) from spawn to exit, expecting exit 10.
fn duplicates(sandbox: &Sandbox, runs: u32) -> Result<Vec<f64>> {
    let home = sandbox.new_home();
    let (mut first, _, _) = proc::start(sandbox, &home, &[])?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let (cmd, out, err) = proc::serve_command(sandbox, &home, 0, &[])?;
        let t0 = Instant::now();
        let mut dup = Service::spawn(cmd, out, err)?;
        let status = proc::wait(&mut dup)?;
        times.push(ms(t0, Instant::now()));
        let code = proc::exit_code(status)?;
        if code != 10 {
            bail!(
                "a duplicate serve (pid {}) exited {code}, not 10 (already running)\n{}",
                dup.pid(),
                dup.stderr_tail()
            );
        }
    }
    first.try_signal(Signal::SIGTERM)?;
    let code = proc::exit_code(proc::wait(&mut first)?)?;
    if code != 0 {
        bail!(
            "after SIGTERM, pid {} exited {code}, not 0\n{}",
            first.pid(),
            first.stderr_tail()
        );
    }
    Ok(times)
}

/// Runs the race `rounds` times and tallies the outcomes.
fn races(sandbox: &Sandbox, rounds: u32, starters: u32) -> Result<Race> {
    let (mut winner_ms, mut spread_ms) = (vec![], vec![]);
    let (mut exactly_one, mut loser_codes, mut failures) = (0, BTreeMap::new(), vec![]);
    for round in 1..=rounds {
        let r = race_round(sandbox, starters)?;
        spread_ms.push(r.spread_ms);
        if let Some(w) = r.winner_ms {
            winner_ms.push(w);
        }
        for code in r.loser_codes {
            *loser_codes.entry(code).or_default() += 1;
        }
        match r.failure {
            None => exactly_one += 1,
            Some(f) => failures.push(format!("round {round}: {f}")),
        }
    }
    Ok(Race {
        rounds,
        starters,
        exactly_one,
        loser_codes,
        winner_healthy_ms: summary(&winner_ms).context("no race round had a winner")?,
        spawn_spread_ms: summary(&spread_ms)?,
        failures,
    })
}

struct Round {
    spread_ms: f64,
    winner_ms: Option<f64>,
    loser_codes: Vec<String>,
    failure: Option<String>,
}

/// One round: `starters` threads wait at a barrier, then each spawns `serve`
/// on the same home and port. We poll `/health` and reap until one of ours
/// answers and all others have exited, then SIGTERM the survivors.
fn race_round(sandbox: &Sandbox, starters: u32) -> Result<Round> {
    let home = sandbox.new_home();
    // The same port for every starter, known before any runs.
    let port = proc::free_port()?;
    let spawned = spawn_at_once(sandbox, &home, port, starters)?;
    let first = spawned
        .iter()
        .map(|(t, _)| *t)
        .min()
        .expect("two or more starters");
    let last = spawned
        .iter()
        .map(|(t, _)| *t)
        .max()
        .expect("two or more starters");
    let mut svcs: Vec<Service> = spawned.into_iter().map(|(_, svc)| svc).collect();
    let agent = proc::agent();
    let winner = await_winner(&agent, port, &mut svcs)?;
    let mut loser_codes = Vec::new();
    for svc in &mut svcs {
        if let Some(status) = svc.try_status() {
            loser_codes.push(match status.code() {
                Some(c) => c.to_string(),
                None => format!("{status}"),
            });
        }
    }
    let survivors: Vec<u32> = svcs
        .iter_mut()
        .filter_map(|s| match s.try_status() {
            None => Some(s.pid()),
            _ => None,
        })
        .collect();
    let answering = proc::health(&agent, port).map(|h| h.pid);
    let mut failure = match (winner, survivors.as_slice(), answering) {
        (Some((w, _)), [only], Some(a)) if *only == w && a == w => None,
        _ => Some(format!(
            "first answer from {:?}, survivors {survivors:?}, /health now from {answering:?}, exit codes {loser_codes:?}",
            winner.map(|(pid, _)| pid)
        )),
    };
    let stop_failure = stop_survivors(&mut svcs)?;
    failure = failure.or(stop_failure);
    Ok(Round {
        spread_ms: ms(first, last),
        winner_ms: winner.map(|(_, t)| ms(first, t)),
        loser_codes,
        failure,
    })
}

/// Spawns `starters` `serve`s on `home` and `port` from threads released by
/// one barrier; each with the instant it was spawned. On an error the ones
/// already spawned are killed (dropped).
fn spawn_at_once(
    sandbox: &Sandbox,
    home: &Path,
    port: u16,
    starters: u32,
) -> Result<Vec<(Instant, Service)>> {
    let cmds = (0..starters)
        .map(|_| proc::serve_command(sandbox, home, port, &[]))
        .collect::<Result<Vec<_>>>()?;
    let barrier = Barrier::new(cmds.len());
    let spawned: Vec<Result<(Instant, Service)>> = std::thread::scope(|s| {
        let handles: Vec<_> = cmds
            .into_iter()
            .map(|(cmd, out, err)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    Service::spawn(cmd, out, err).map(|svc| (t, svc))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a starter thread panicked")))
            .collect()
    });
    spawned.into_iter().collect()
}

/// Polls `/health` on `port` and reaps `svcs` until one of them answered and
/// the others exited (or all exited, or [`HANG_GUARD`] passed); the first
/// answering PID and when it answered.
fn await_winner(agent: &ureq::Agent, port: u16, svcs: &mut [Service]) -> Result<Option<(u32, Instant)>> {
    let end = Instant::now() + HANG_GUARD;
    let mut winner: Option<(u32, Instant)> = None;
    loop {
        for svc in svcs.iter_mut() {
            svc.try_status();
        }
        if winner.is_none()
            && let Some(h) = proc::health(agent, port)
            && svcs.iter().any(|s| s.pid() == h.pid)
        {
            winner = Some((h.pid, Instant::now()));
        }
        let alive = alive(svcs)?;
        if (winner.is_some() && alive <= 1) || alive == 0 || Instant::now() > end {
            return Ok(winner);
        }
        std::thread::sleep(HEALTH_POLL);
    }
}

/// SIGTERMs every service still running (normally the winner) and waits for
/// it; a failure when one exits other than 0.
fn stop_survivors(svcs: &mut [Service]) -> Result<Option<String>> {
    let mut failure = None;
    for svc in svcs.iter_mut() {
        if svc.try_status().is_none() {
            svc.try_signal(Signal::SIGTERM)?;
            let code = proc::exit_code(proc::wait(svc)?)?;
            if code != 0 && failure.is_none() {
                failure = Some(format!(
                    "the winner (pid {}) exited {code} after SIGTERM",
                    svc.pid()
                ));
            }
        }
    }
    Ok(failure)
}

fn alive(svcs: &mut [Service]) -> Result<usize> {
    let mut n = 0;
    for svc in svcs {
        if svc.try_status().is_none() {
            n += 1;
        }
    }
    Ok(n)
}

struct Idle {
    rss_mib: f64,
    rss_after_mib: f64,
    latency_us: Vec<f64>,
}

/// One idle instance: 100 `/health` requests, RSS; then 1000 timed requests
/// over the same keep-alive connection, RSS again; SIGTERM.
fn idle(sandbox: &Sandbox) -> Result<Idle> {
    let home = sandbox.new_home();
    let (mut svc, port, _) = proc::start(sandbox, &home, &[])?;
    let agent = proc::agent();
    for _ in 0..100 {
        proc::health(&agent, port).context("/health did not answer 200 while idle")?;
    }
    let rss_mib = proc::resident_mib(svc.pid())?;
    let mut latency_us = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t0 = Instant::now();
        proc::health(&agent, port).context("/health did not answer 200 while idle")?;
        latency_us.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let rss_after_mib = proc::resident_mib(svc.pid())?;
    svc.try_signal(Signal::SIGTERM)?;
    let code = proc::exit_code(proc::wait(&mut svc)?)?;
    if code != 0 {
        bail!(
            "after SIGTERM, pid {} exited {code}, not 0\n{}",
            svc.pid(),
            svc.stderr_tail()
        );
    }
    Ok(Idle {
        rss_mib,
        rss_after_mib,
        latency_us,
    })
}

fn print_table(r: &Report) {
    println!("memory-service startup benchmark");
    println!("  binary  {}", r.bin.display());
    println!("  host    {}", r.host);
    println!();
    println!(
        "{:<44} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "", "n", "median", "p90", "min", "max"
    );
    let row = |name: &str, s: &Summary| {
        println!(
            "{name:<44} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.n, s.median, s.p90, s.min, s.max
        );
    };
    row("exec -> /health 200 with its pid (ms)", &r.exec_to_healthy_ms);
    row("exec -> /health state ready (ms)", &r.exec_to_ready_ms);
    row("SIGTERM -> exit 0, idle (ms)", &r.sigterm_to_exit_ms);
    row("duplicate serve -> exit 10 (ms)", &r.duplicate_exit_ms);
    row(
        "race: first spawn -> winner's /health (ms)",
        &r.race.winner_healthy_ms,
    );
    row("race: first -> last spawn call (ms)", &r.race.spawn_spread_ms);
    println!();
    let codes: Vec<String> = r
        .race
        .loser_codes
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    println!(
        "race ({} starters): rounds: {}, exactly-one: {}, loser codes: {{{}}}",
        r.race.starters,
        r.race.rounds,
        r.race.exactly_one,
        codes.join(", ")
    );
    for f in &r.race.failures {
        println!("  {f}");
    }
    println!(
        "idle RSS: {:.1} MiB after 100 /health, {:.1} MiB after 1100",
        r.idle_rss_mib, r.idle_rss_after_latency_mib
    );
    let l = &r.health_latency_us;
    println!(
        "/health latency, keep-alive, sequential (µs): n {}, p50 {:.0}, p99 {:.0}, max {:.0}",
        l.n, l.median, l.p99, l.max
    );
}
