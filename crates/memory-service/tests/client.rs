//! Client commands for people (`search`, `sources`, `reindex`) against a real
//! instance, with output captured (not a terminal: plain lines, no colour).

use crate::helper::*;

fn index(port: u16, chat: &str, id: &str, content: &str) {
    let body = serde_json::json!({"project_id": "proj", "chat_id": chat, "message_id": id, "role": "user",
                                  "content": content, "timestamp": "2026-01-02T03:04:05Z", "message_index": 0});
    let v: memory_api::chat::Queued = post_as(port, "/index-chat-message", &body);
    let job = v.job_id;
    poll("the message to be indexed", DEADLINE, || {
        let (_, s) = get(port, &format!("/index-job-status/{job}"))?;
        let s: memory_api::chat::ChatJobStatus = serde_json::from_value(s).ok()?;
        (s.state == memory_api::chat::ChatJobState::Success).then_some(())
    });
}

#[test]
fn client_commands_say_clearly_when_nothing_runs() {
    let sb = Sandbox::new(bin());
    // Held for the whole test: nothing can start listening on it meanwhile.
    let refused = RefusedPort::new();
    let port = refused.port();
    for args in [
        &["search", "--project", "p", "x"][..],
        &["sources", "list"],
        &["reindex", "docs-dir"],
    ] {
        let (code, out, err) = sb.cli(port, args);
        assert_eq!(code, 19, "{args:?}: {out}{err}");
        assert!(
            err.contains("Memory Service is not running on http://127.0.0.1:"),
            "{err}"
        );
        assert!(
            err.contains("memory-service start --home"),
            "says how to start one: {err}"
        );
    }
}

#[test]
fn search_prints_readable_results_with_the_match_marked() {
    let sb = Sandbox::new(bin());
    let (mut p, port) = sb.start();
    index(port, "c1", "m1", "We talked about the aardvark migration plan");
    let (code, out, err) = sb.cli(port, &["search", "--project", "proj", "aardvark"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" 1. "), "{out}");
    assert!(out.contains("chat c1 message m1"), "{out}");
    assert!(out.contains("[aardvark]"), "match marked: {out}");
    let (code, out, _) = sb.cli(port, &["search", "--project", "proj", "--json", "aardvark"]);
    assert_eq!(code, 0);
    let v: memory_api::search::SearchResults = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v.results[0].chat_id.as_deref(), Some("c1"));
    let (code, out, _) = sb.cli(port, &["search", "--project", "proj", "nothinglikethis"]);
    assert_eq!(code, 0);
    assert!(out.contains("No results"), "{out}");
    // Without --project, a chat-only project is not reachable: said so.
    let (code, out, _) = sb.cli(port, &["search", "aardvark"]);
    assert_eq!(code, 0);
    assert!(out.contains("No results") && out.contains("--project"), "{out}");
    assert_eq!(p.stop(), 0);
}

#[test]
fn client_commands_refuse_an_instance_of_another_home() {
    let (a, b) = (Sandbox::new(bin()), Sandbox::new(bin()));
    let (_p, port) = a.start();
    let (code, _, err) = b.cli(port, &["search", "--project", "p", "x"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("another home") && err.contains(&a.home.display().to_string()),
        "{err}"
    );
}

#[test]
fn help_completions_and_man_page_come_from_the_cli_definition() {
    let sb = Sandbox::new(bin());
    // Nothing dials it: these commands only print.
    let port = 0;
    let (code, out, _) = sb.cli(port, &["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Global options:") && out.contains("--home"), "{out}");
    assert!(out.contains("Quick start:"), "{out}");
    // The service's own options only on the commands that run it.
    assert!(!out.contains("--embedding-model"), "{out}");
    for cmd in ["serve", "start", "restart", "model"] {
        let (code, out, _) = sb.cli(port, &[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(
            out.contains("Service options:")
                && out.contains("--embedding-model")
                && out.contains("Global options:"),
            "{cmd}: {out}"
        );
    }
    for cmd in [&["search"][..], &["sources", "list"], &["stop"], &["status"]] {
        let (code, out, _) = sb.cli(port, &[cmd, &["--help"]].concat());
        assert_eq!(code, 0);
        assert!(
            !out.contains("--embedding-model") && !out.contains("--chatdo-projects"),
            "{cmd:?}: {out}"
        );
    }
    let (code, out, _) = sb.cli(port, &["search", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Examples:") && out.contains("--source"), "{out}");
    let (code, out, err) = sb.cli(port, &["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("complete -F") && out.contains("memory-service") && out.contains("sources"),
        "{out}"
    );
    let (code, out, err) = sb.cli(port, &["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(".ie") || out.contains(".TH memory-service 1"),
        "{out}"
    );
    assert!(
        out.contains("import\\-chatdo") || out.contains("import-chatdo"),
        "{out}"
    );
}
