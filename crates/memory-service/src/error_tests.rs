//! Each cause printed once (issue 14 item 4) for this crate's error types, which
//! live beside the code that raises them: every variant, printed as `main`
//! prints it (`{:#}` after a context), repeats no segment.

use testkit::assert_each_cause_once;

use crate::chatdo_projects::ProjectsError;
use crate::client::ClientError;
use crate::config::RemoteNotAllowed;
use crate::lifecycle::start::LogNotAFile;

fn os_error() -> std::io::Error {
    std::io::Error::from_raw_os_error(21)
}

/// Every variant of every error type defined in this crate.
fn every_variant() -> Vec<anyhow::Error> {
    let client = vec![
        ClientError::NotRunning {
            url: "http://127.0.0.1:5858".into(),
            home: "/h".into(),
            args: " --home /h".into(),
        },
        ClientError::OtherHome {
            url: "http://127.0.0.1:5858".into(),
            other: "/other".into(),
            home: "/h".into(),
        },
        ClientError::Http {
            method: "GET",
            path: "/sources/x".into(),
            status: 404,
            detail: "Source not found: x".into(),
        },
        ClientError::Transport {
            method: "POST",
            path: "/search".into(),
            reason: "connection reset by peer".into(),
        },
        ClientError::Body {
            method: "GET",
            path: "/sources".into(),
            reason: "missing field `sources` at line 1 column 2".into(),
        },
    ];
    for e in &client {
        // A new variant fails to compile here until it is added above.
        match e {
            ClientError::NotRunning { .. }
            | ClientError::OtherHome { .. }
            | ClientError::Http { .. }
            | ClientError::Transport { .. }
            | ClientError::Body { .. } => {}
        }
    }
    let projects = vec![
        ProjectsError::Io {
            action: "reading",
            path: "/c/projects.json".into(),
            cause: os_error(),
        },
        ProjectsError::Malformed {
            path: "/c/projects.json".into(),
            why: "the top level is not an array".into(),
        },
    ];
    for e in &projects {
        // A new variant fails to compile here until it is added above.
        match e {
            ProjectsError::Io { .. } | ProjectsError::Malformed { .. } => {}
        }
    }
    let mut all: Vec<anyhow::Error> = client.into_iter().map(anyhow::Error::new).collect();
    all.extend(projects.into_iter().map(anyhow::Error::new));
    all.push(anyhow::Error::new(RemoteNotAllowed {
        host: "0.0.0.0".into(),
    }));
    all.push(anyhow::Error::new(crate::cli::BadEnvValue {
        var: "MEMORY_SERVICE_PORT".into(),
        value: "99999".into(),
        flag: "--port".into(),
        reason: "99999 is not in 0..=65535".into(),
    }));
    all.push(anyhow::Error::new(LogNotAFile {
        path: "/h/memory_service.log".into(),
        kind: single_instance::file::Kind::Fifo,
    }));
    all
}

#[test]
fn every_variant_prints_each_cause_once() {
    for e in every_variant() {
        assert_each_cause_once(e.context("running the command"));
    }
}

/// `import-chatdo` opens ChatDO's project databases: a directory or a missing
/// file there prints SQLite's complaint once (rusqlite's own chain repeats it).
#[test]
fn import_prints_a_sqlite_error_once() {
    let dir = tempfile::tempdir().unwrap();
    for db in [dir.path().to_path_buf(), dir.path().join("missing.db")] {
        let err = crate::import::open_read_only(&db).unwrap_err();
        assert!(format!("{err:#}").contains(&db.display().to_string()), "{err:#}");
        assert_each_cause_once(err.context("importing ChatDO's data"));
    }
}
