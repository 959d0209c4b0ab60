//! The lock, the home lock and the guard in one process. `flock` locks belong
//! to an open file description, so two opens in one process conflict exactly
//! as two processes do. Cross-process cases (kill -9, racing starters)
//! belong in the integration tests of the application that uses the crate.

use single_instance::lock::{self, Acquire, HomeAcquire, LockCheck};
use single_instance::{
    AppIdentity, Claim, Health, Holder, HomeFiles, Policy, Signal, SignalOutcome, Verdict,
};

fn files() -> (tempfile::TempDir, HomeFiles) {
    let d = tempfile::tempdir().unwrap();
    let f = HomeFiles::new(d.path().join("home"), "svc");
    std::fs::create_dir_all(&f.home).unwrap();
    (d, f)
}

fn policy() -> Policy {
    Policy {
        app: AppIdentity::new("svc", "Svc", "--home"),
        startup_grace_secs: 15,
    }
}

fn silent(_: &str, _: u16) -> Health {
    Health::NoAnswer {
        reason: "test".into(),
    }
}

#[test]
fn a_second_open_of_a_locked_file_is_held_never_acquired() {
    let (_d, f) = files();
    let Acquire::Acquired(_first) = lock::try_acquire(&f.lock).unwrap() else {
        panic!("first acquire")
    };
    assert!(matches!(lock::try_acquire(&f.lock).unwrap(), Acquire::Held(_)));
    let HomeAcquire::Acquired(_home) = lock::try_lock_home(&f.home).unwrap() else {
        panic!("first home lock")
    };
    assert!(matches!(
        lock::try_lock_home(&f.home).unwrap(),
        HomeAcquire::Held(_)
    ));
}

#[test]
fn release_unlinks_and_frees_and_a_symlink_is_refused() {
    let (_d, f) = files();
    let Acquire::Acquired(l) = lock::try_acquire(&f.lock).unwrap() else {
        panic!()
    };
    l.release().unwrap();
    assert!(!f.lock.exists(), "released lock file is removed");
    assert!(matches!(
        lock::try_acquire(&f.lock).unwrap(),
        Acquire::Acquired(_)
    ));
    std::fs::remove_file(&f.lock).unwrap();
    std::os::unix::fs::symlink("/tmp/elsewhere", &f.lock).unwrap();
    let err = lock::try_acquire(&f.lock).unwrap_err();
    assert!(
        matches!(err, single_instance::Error::LockIsSymlink { .. }),
        "{err}"
    );
}

#[test]
fn check_recreates_a_deleted_file_and_reports_a_lost_one() {
    let (_d, f) = files();
    let Claim::Won(mut inst) = single_instance::claim(&f, "127.0.0.1", 1, "v", &policy(), &silent).unwrap()
    else {
        panic!("claim")
    };
    assert!(matches!(inst.check().unwrap(), LockCheck::Intact));
    std::fs::remove_file(&f.lock).unwrap();
    assert!(matches!(inst.check().unwrap(), LockCheck::Recreated));
    let text = std::fs::read_to_string(&f.lock).unwrap();
    assert_eq!(
        text.lines().next(),
        Some(std::process::id().to_string().as_str()),
        "record rewritten"
    );

    // Replaced by a file that another open holds: lost.
    std::fs::remove_file(&f.lock).unwrap();
    let Acquire::Acquired(_other) = lock::try_acquire(&f.lock).unwrap() else {
        panic!()
    };
    assert!(matches!(inst.check().unwrap(), LockCheck::Lost(_)));
}

#[test]
fn check_heals_a_damaged_record_and_pid_file_in_place() {
    let (_d, f) = files();
    let Claim::Won(mut inst) = single_instance::claim(&f, "127.0.0.1", 1, "v", &policy(), &silent).unwrap()
    else {
        panic!("claim")
    };
    let good = std::fs::read_to_string(&f.lock).unwrap();
    let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&f.lock);
    std::fs::write(&f.lock, "garbage\n\u{0}").unwrap(); // same inode, new content
    assert!(matches!(inst.check().unwrap(), LockCheck::Healed));
    assert_eq!(std::fs::read_to_string(&f.lock).unwrap(), good);
    assert_eq!(inode(&f.lock), before, "rewritten in place, not replaced");
    assert!(matches!(inst.check().unwrap(), LockCheck::Intact));
    std::fs::write(&f.pid, "12x").unwrap();
    assert!(matches!(inst.check().unwrap(), LockCheck::Healed));
    assert_eq!(
        std::fs::read_to_string(&f.pid).unwrap(),
        format!("{}\n", std::process::id())
    );
    inst.release().unwrap();
}

#[test]
fn special_files_at_our_paths_are_refused_or_replaced_never_opened() {
    // A FIFO at the lock path: refused with its kind, without blocking.
    let (_d, f) = files();
    nix::unistd::mkfifo(&f.lock, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = single_instance::claim(&f, "127.0.0.1", 1, "v", &policy(), &silent).unwrap_err();
    assert!(
        err.to_string()
            .contains("is a FIFO (named pipe), not a regular file"),
        "{err}"
    );
    assert!(single_instance::inspect(&f).unwrap().is_none());
    // A FIFO at the PID path: stale, replaced by the winner's PID file.
    std::fs::remove_file(&f.lock).unwrap();
    nix::unistd::mkfifo(&f.pid, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let Claim::Won(inst) = single_instance::claim(&f, "127.0.0.1", 1, "v", &policy(), &silent).unwrap()
    else {
        panic!("claim")
    };
    assert_eq!(
        inst.stale(),
        Some("PID file was a FIFO (named pipe), not a regular file")
    );
    assert_eq!(
        std::fs::read_to_string(&f.pid).unwrap(),
        format!("{}\n", std::process::id())
    );
    inst.release().unwrap();
}

#[test]
fn a_second_claim_is_refused_even_while_the_lock_file_is_missing() {
    let (_d, f) = files();
    let Claim::Won(inst) = single_instance::claim(&f, "127.0.0.1", 1, "v", &policy(), &silent).unwrap()
    else {
        panic!("claim")
    };
    std::fs::remove_file(&f.lock).unwrap();
    // The home directory's lock still excludes a second claim (here from the
    // same process, which flock treats like another one).
    match single_instance::claim(&f, "127.0.0.1", 2, "v", &policy(), &silent).unwrap() {
        Claim::Refused(v) => assert!(
            matches!(v, Verdict::Starting { pid: Some(p), .. } if p == std::process::id()),
            "{v:?}"
        ),
        Claim::Won(_) => panic!("two claims on one home"),
    }
    drop(inst);
}

#[test]
fn the_holder_is_verified_and_only_signalled_with_its_start_time() {
    let (_d, f) = files();
    assert!(matches!(single_instance::holder(&f).unwrap(), Holder::Free));
    let Claim::Won(inst) = single_instance::claim(&f, "127.0.0.1", 1, "v", &policy(), &silent).unwrap()
    else {
        panic!("claim")
    };
    let Holder::Verified { record, process } = single_instance::holder(&f).unwrap() else {
        panic!("our own claim verifies")
    };
    assert_eq!(record.pid, std::process::id());
    // A different start time means another process with a reused PID: refused.
    let refused =
        single_instance::signal_holder(&f, record.pid, process.start_time + 100, Signal::SIGCONT).unwrap();
    assert!(matches!(refused, SignalOutcome::Refused(_)), "{refused:?}");
    // The right identity: sent (SIGCONT to ourselves is harmless).
    let sent = single_instance::signal_holder(&f, record.pid, process.start_time, Signal::SIGCONT).unwrap();
    assert_eq!(sent, SignalOutcome::Sent);

    // A record naming another PID is never verified, so never signalled.
    let mut forged = record.clone();
    forged.pid = 1;
    std::fs::write(&f.lock, forged.to_text()).unwrap();
    assert!(matches!(
        single_instance::holder(&f).unwrap(),
        Holder::Unverified { .. }
    ));
    assert!(matches!(
        single_instance::signal_holder(&f, 1, process.start_time, Signal::SIGTERM).unwrap(),
        SignalOutcome::Refused(_)
    ));
    inst.release().unwrap();
    assert!(matches!(single_instance::holder(&f).unwrap(), Holder::Free));
    assert!(!f.pid.exists() && !f.lock.exists());
}
