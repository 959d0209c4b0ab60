//! The verdict table: one row per situation the guard can meet.

use super::*;

const NOW: u64 = 1_800_000_000;

fn policy() -> Policy {
    Policy {
        app: AppIdentity::new("example-service", "Example App", "--dir"),
        startup_grace_secs: 15,
    }
}

fn record(pid: u32) -> HolderRecord {
    HolderRecord {
        pid,
        process_start: NOW - 100,
        instance_id: "abc".into(),
        host: "127.0.0.1".into(),
        port: 5858,
        home: "/h".into(),
        version: "0.1.0".into(),
    }
}

fn proc_(pid: u32, age: u64, run_state: RunState) -> ProcessFacts {
    ProcessFacts {
        pid,
        start_time: NOW - age,
        exe: None,
        name: "example-service".into(),
        run_state,
    }
}

fn ours(pid: u32, instance: &str) -> Health {
    Health::Answered {
        status: 200,
        identity: Some(Identity {
            service: "example-service".into(),
            pid,
            instance_id: instance.into(),
            home: "/h".into(),
        }),
    }
}

fn silent() -> Health {
    Health::NoAnswer {
        reason: "timed out".into(),
    }
}

fn held(
    record: Option<HolderRecord>,
    lock_pids: Option<Vec<u32>>,
    process: Option<ProcessFacts>,
    health: Option<Health>,
) -> Facts {
    Facts::Held(HolderFacts {
        record_pid: record.as_ref().map(|r| r.pid),
        record,
        lock_pids,
        process,
        health,
        now: NOW,
        locked: "/h".into(),
        ours: Some(proc_(1, 0, RunState::Runnable)),
    })
}

fn addr() -> Option<(String, u16)> {
    Some(("127.0.0.1".into(), 5858))
}

#[test]
fn verdict_table() {
    let already = Verdict::AlreadyRunning {
        pid: 10,
        host: "127.0.0.1".into(),
        port: 5858,
        home: "/h".into(),
    };
    let old = || Some(proc_(10, 100, RunState::Runnable));
    let young = || Some(proc_(10, 2, RunState::Runnable));
    let rows: Vec<(&str, Facts, Verdict)> = vec![
        (
            "lock free, no pid file",
            Facts::Clear {
                pid_file: PidFile::Missing,
                own_pid: 5,
            },
            Verdict::Start { stale: None },
        ),
        (
            "lock free, pid file names a dead or foreign pid: stale, replaced",
            Facts::Clear {
                pid_file: PidFile::Pid(77),
                own_pid: 5,
            },
            Verdict::Start {
                stale: Some("PID file named PID 77, which does not hold the lock".into()),
            },
        ),
        (
            "lock free, pid file garbage",
            Facts::Clear {
                pid_file: PidFile::Garbage("zz".into()),
                own_pid: 5,
            },
            Verdict::Start {
                stale: Some("PID file held no PID (\"zz\")".into()),
            },
        ),
        (
            "healthy holder whose answer matches its record",
            held(Some(record(10)), Some(vec![10]), old(), Some(ours(10, "abc"))),
            already.clone(),
        ),
        (
            "healthy holder, OS cannot tell lock holders (macOS)",
            held(Some(record(10)), None, old(), Some(ours(10, "abc"))),
            already.clone(),
        ),
        (
            "answer with another instance id (PID reused / other instance) is not the holder",
            held(Some(record(10)), Some(vec![10]), old(), Some(ours(10, "zzz"))),
            Verdict::Unresponsive {
                pid: Some(10),
                addr: addr(),
                reason: "http://127.0.0.1:5858/health answers as another process (PID 10, instance zzz)"
                    .into(),
            },
        ),
        (
            "a stranger's 200 on the holder's address is not ours",
            held(
                Some(record(10)),
                Some(vec![10]),
                old(),
                Some(Health::Answered {
                    status: 200,
                    identity: None,
                }),
            ),
            Verdict::Unresponsive {
                pid: Some(10),
                addr: addr(),
                reason: "http://127.0.0.1:5858/health answers 200 without our identity".into(),
            },
        ),
        (
            "silent old holder: unresponsive",
            held(Some(record(10)), Some(vec![10]), old(), Some(silent())),
            Verdict::Unresponsive {
                pid: Some(10),
                addr: addr(),
                reason: "it does not answer http://127.0.0.1:5858/health (timed out)".into(),
            },
        ),
        (
            "silent young holder: starting",
            held(Some(record(10)), Some(vec![10]), young(), Some(silent())),
            Verdict::Starting {
                pid: Some(10),
                addr: addr(),
            },
        ),
        (
            "young holder with torn record: starting, pid from /proc/locks",
            held(None, Some(vec![10]), young(), None),
            Verdict::Starting {
                pid: Some(10),
                addr: None,
            },
        ),
        (
            "old holder with torn record: unresponsive",
            held(None, Some(vec![10]), old(), None),
            Verdict::Unresponsive {
                pid: Some(10),
                addr: None,
                reason: "its holder record is missing or torn".into(),
            },
        ),
        (
            "stopped holder is unresponsive even when young",
            held(
                Some(record(10)),
                Some(vec![10]),
                Some(proc_(10, 1, RunState::Stopped)),
                None,
            ),
            Verdict::Unresponsive {
                pid: Some(10),
                addr: addr(),
                reason: "PID 10 is stopped (SIGSTOP or a debugger)".into(),
            },
        ),
        (
            "lock released while we looked",
            held(Some(record(10)), Some(vec![]), None, None),
            Verdict::Retry,
        ),
        (
            "zombie holder has closed its files",
            held(
                Some(record(10)),
                Some(vec![10]),
                Some(proc_(10, 100, RunState::Zombie)),
                None,
            ),
            Verdict::Retry,
        ),
        (
            "record names PID 10 but the OS says 20 holds the lock: the record is stale",
            held(
                Some(record(10)),
                Some(vec![20]),
                Some(proc_(20, 100, RunState::Runnable)),
                Some(ours(10, "abc")),
            ),
            Verdict::Unresponsive {
                pid: Some(20),
                addr: None,
                reason: "its holder record is missing or torn".into(),
            },
        ),
        (
            "holder invisible to us",
            held(Some(record(10)), Some(vec![10]), None, None),
            Verdict::Unresponsive {
                pid: Some(10),
                addr: addr(),
                reason: "the lock is held, but its holder (PID 10) is not visible to us".into(),
            },
        ),
        (
            "port: our service for another home",
            Facts::PortBusy(PortFacts {
                host: "127.0.0.1".into(),
                port: 5858,
                health: Health::Answered {
                    status: 200,
                    identity: Some(Identity {
                        service: "example-service".into(),
                        pid: 9,
                        instance_id: "q".into(),
                        home: "/other".into(),
                    }),
                },
                owner: None,
            }),
            Verdict::PortHeldByOtherInstance {
                port: 5858,
                pid: 9,
                home: "/other".into(),
            },
        ),
        (
            "port: a stranger answering 200 status ok",
            Facts::PortBusy(PortFacts {
                host: "127.0.0.1".into(),
                port: 5858,
                health: Health::Answered {
                    status: 200,
                    identity: None,
                },
                owner: Some(PortOwner {
                    pid: Some(3),
                    program: Some("python3".into()),
                }),
            }),
            Verdict::PortHeldByStranger {
                port: 5858,
                owner: Some(PortOwner {
                    pid: Some(3),
                    program: Some("python3".into()),
                }),
            },
        ),
        (
            "port: another service claiming a different name",
            Facts::PortBusy(PortFacts {
                host: "127.0.0.1".into(),
                port: 5858,
                health: Health::Answered {
                    status: 200,
                    identity: Some(Identity {
                        service: "impostor".into(),
                        pid: 9,
                        instance_id: "q".into(),
                        home: "/h".into(),
                    }),
                },
                owner: None,
            }),
            Verdict::PortHeldByStranger {
                port: 5858,
                owner: None,
            },
        ),
        (
            "port: silent listener",
            Facts::PortBusy(PortFacts {
                host: "127.0.0.1".into(),
                port: 5858,
                health: silent(),
                owner: None,
            }),
            Verdict::PortHeldByStranger {
                port: 5858,
                owner: None,
            },
        ),
    ];
    for (name, facts, want) in rows {
        assert_eq!(decide(&facts, &policy()), want, "case: {name}");
    }
}

#[test]
fn messages_name_pid_address_and_home() {
    let v = Verdict::AlreadyRunning {
        pid: 10,
        host: "127.0.0.1".into(),
        port: 5858,
        home: "/h".into(),
    };
    assert_eq!(
        v.describe(&policy().app).to_string(),
        "Example App is already running on 127.0.0.1:5858 (PID 10, home /h)"
    );
    let v = Verdict::PortHeldByStranger {
        port: 80,
        owner: Some(PortOwner {
            pid: Some(3),
            program: Some("/usr/bin/python3".into()),
        }),
    };
    assert_eq!(
        v.describe(&policy().app).to_string(),
        "port 80 is in use by another program (not Example App): PID 3 (/usr/bin/python3)"
    );
    let v = Verdict::Unresponsive {
        pid: Some(4),
        addr: addr(),
        reason: "r".into(),
    };
    let text = v.describe(&policy().app).to_string();
    assert!(
        text.contains("PID 4") && text.contains("127.0.0.1:5858"),
        "{text}"
    );
}

#[test]
fn holder_pid_prefers_the_os() {
    let f = |rec: Option<u32>, lock: Option<Vec<u32>>| HolderFacts {
        record: rec.map(record),
        record_pid: rec,
        lock_pids: lock,
        process: None,
        health: None,
        now: NOW,
        locked: "/h".into(),
        ours: None,
    };
    assert_eq!(holder_pid(&f(Some(10), Some(vec![10]))), Some(10));
    assert_eq!(holder_pid(&f(Some(10), Some(vec![20]))), Some(20));
    assert_eq!(holder_pid(&f(Some(10), None)), Some(10));
    assert_eq!(holder_pid(&f(None, Some(vec![20]))), Some(20));
    assert_eq!(holder_pid(&f(None, None)), None);
    assert_eq!(holder_pid(&f(Some(10), Some(vec![]))), None);
}

#[test]
fn verify_table() {
    let good = proc_(10, 100, RunState::Runnable);
    let f = |record: Option<HolderRecord>, lock_pids: Option<Vec<u32>>, process: Option<ProcessFacts>| {
        VerifyFacts {
            record,
            lock_pids,
            process,
        }
    };
    assert_eq!(
        verify(&f(Some(record(10)), Some(vec![10]), Some(good.clone()))),
        Ok(10)
    );
    assert_eq!(
        verify(&f(Some(record(10)), None, Some(good.clone()))),
        Ok(10),
        "no lock table: start time decides"
    );
    let stopped = proc_(10, 100, RunState::Stopped);
    assert_eq!(
        verify(&f(Some(record(10)), Some(vec![10]), Some(stopped))),
        Ok(10),
        "a stopped holder may be signalled"
    );
    let rows = [
        ("no record", f(None, Some(vec![10]), Some(good.clone()))),
        (
            "lock table disagrees",
            f(Some(record(10)), Some(vec![20]), Some(good.clone())),
        ),
        ("lock free", f(Some(record(10)), Some(vec![]), Some(good.clone()))),
        ("process gone", f(Some(record(10)), Some(vec![10]), None)),
        (
            "pid reused: other start time",
            f(Some(record(10)), None, Some(proc_(10, 5, RunState::Runnable))),
        ),
        (
            "zombie",
            f(
                Some(record(10)),
                Some(vec![10]),
                Some(proc_(10, 100, RunState::Zombie)),
            ),
        ),
        (
            "facts about another pid",
            f(Some(record(10)), None, Some(proc_(11, 100, RunState::Runnable))),
        ),
    ];
    for (name, facts) in rows {
        assert!(verify(&facts).is_err(), "{name} must not verify");
    }
}

#[test]
fn a_program_that_is_not_ours_holding_the_lock_is_named_at_any_age() {
    let mut flock = proc_(77, 0, RunState::Runnable);
    flock.name = "flock".into();
    flock.exe = Some("/usr/bin/flock".into());
    let want = Verdict::HeldByStranger {
        pid: 77,
        program: "/usr/bin/flock".into(),
        path: "/h".into(),
    };
    // Young or old, stopped or not: never "starting", never "unresponsive".
    for (age, state) in [
        (0, RunState::Runnable),
        (1000, RunState::Runnable),
        (5, RunState::Stopped),
    ] {
        let mut p = flock.clone();
        p.start_time = NOW - age;
        p.run_state = state;
        assert_eq!(
            decide(&held(None, Some(vec![77]), Some(p), None), &policy()),
            want
        );
    }
    assert_eq!(
        want.describe(&policy().app).to_string(),
        "/h is locked by another program (not Example App): PID 77 (/usr/bin/flock)"
    );
    // Our program without a record yet (between lock and record): starting.
    let young_ours = proc_(77, 0, RunState::Runnable);
    assert!(matches!(
        decide(&held(None, Some(vec![77]), Some(young_ours), None), &policy()),
        Verdict::Starting { .. }
    ));
    // Another program that a record names (a renamed binary of ours): not a stranger.
    let mut renamed = flock.clone();
    renamed.start_time = NOW - 1000;
    assert!(matches!(
        decide(
            &held(Some(record(77)), Some(vec![77]), Some(renamed), Some(silent())),
            &policy()
        ),
        Verdict::Unresponsive { .. }
    ));
}
