//! The status page (`GET /`): its headers over plain HTTP, and end to end in
//! headless Chromium driven over the DevTools protocol (CDP, through the
//! `headless_chrome` crate; the browser is launched here, in a process group of
//! its own, so nothing outlives the test): no console
//! errors, the instance's PID shown, a typed search finding an indexed
//! message (hostile text shown as text), an empty state that says how to add
//! a folder, a folder added with the page's own form (JSON POST from the
//! page's origin) shown with its progress until its job completes, the same
//! folder refused a second time, and screenshots saved under
//! `target/artifacts/`.
//! Chromium is Debian's `/usr/bin/chromium` (`scripts/install-chromium.sh`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Input, Log, Page, Runtime};
use headless_chrome::{Browser, Tab};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::helper::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn artifacts_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/artifacts"))
}

fn status_of(port: u16, path: &str) -> u16 {
    agent()
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .status()
        .as_u16()
}

/// A raw HTTP/1.1 GET with the given `Host`; returns the status code.
fn raw_get_status(port: u16, path: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"))
}

#[test]
fn root_serves_the_status_page_with_a_strict_csp() {
    let sb = Sandbox::new(bin());
    let (_p, port) = sb.start();

    let mut r = agent().get(&format!("http://127.0.0.1:{port}/")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part:?}: {csp}");
    }
    assert!(!csp.contains("unsafe-"), "CSP allows something unsafe: {csp}");
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.starts_with("<!doctype html>"), "{body:.200}");
    assert!(body.contains("<title>Memory Service"), "{body:.400}");

    // The page sits behind the same DNS-rebinding check as the API.
    assert_eq!(raw_get_status(port, "/", &format!("127.0.0.1:{port}")), 200);
    assert_eq!(raw_get_status(port, "/", &format!("evil.example:{port}")), 403);
}

/// Headless Chromium in its own process group with a throwaway profile;
/// the whole group is killed and the profile removed on drop, on every path.
struct Chromium {
    child: Child,
    profile: Option<tempfile::TempDir>,
    log: PathBuf,
    devtools_port: u16,
}

impl Chromium {
    fn launch() -> Chromium {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: run scripts/install-chromium.sh (it installs Debian's chromium; \
             CI runs it) so this end-to-end test can drive the status page in headless Chromium"
        );
        let profile = tempfile::Builder::new()
            .prefix("status-page-chromium-")
            .tempdir()
            .unwrap();
        let log = profile.path().join("chromium.log");
        let out = File::create(&log).unwrap();
        let data_dir = profile.path().join("profile");
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--password-store=basic",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", data_dir.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
        // Its own group, so drop can kill renderers too; and killed with us
        // if this test process dies without unwinding (a runner's timeout).
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        let mut c = Chromium {
            child,
            profile: Some(profile),
            log,
            devtools_port: 0,
        };
        // With port 0, Chromium picks a free port and writes it here.
        let port_file = data_dir.join("DevToolsActivePort");
        c.devtools_port = poll("chromium to open its DevTools port", DEADLINE, || {
            if let Ok(Some(st)) = c.child.try_wait() {
                panic!(
                    "chromium exited ({st}) before opening DevTools:\n{}",
                    c.log_text()
                );
            }
            std::fs::read_to_string(&port_file)
                .ok()?
                .lines()
                .next()?
                .trim()
                .parse()
                .ok()
        });
        c
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The browser's DevTools websocket URL, from the `DevToolsActivePort` file
    /// (its port, then the browser target's path).
    fn browser_ws_url(&self) -> String {
        let port_file = self
            .profile
            .as_ref()
            .unwrap()
            .path()
            .join("profile/DevToolsActivePort");
        let text = std::fs::read_to_string(&port_file).unwrap();
        let path = text
            .lines()
            .nth(1)
            .expect("DevToolsActivePort names the browser target");
        format!("ws://127.0.0.1:{}{}", self.devtools_port, path.trim())
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        // Renderers and the zygote share the group; let them go before
        // removing the profile they write to.
        let end = Instant::now() + Duration::from_secs(5);
        while killpg(group, None).is_ok() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- chromium log (last lines):");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(p) = self.profile.take() {
            let _ = p.close();
        }
    }
}

/// Something the browser reported as an error.
#[derive(Debug, Clone)]
struct Problem {
    kind: String,
    text: String,
    /// Shown (via `Debug`) in failure messages.
    #[allow(dead_code)]
    url: String,
}

impl Problem {
    /// The error a DevTools event reports: `console.error`/`console.assert`, an
    /// uncaught exception, or an error-level log entry (network, CSP, ...).
    fn from_event(event: &Event) -> Option<Problem> {
        use Runtime::ConsoleAPICalledEventTypeOption as Console;
        match event {
            Event::RuntimeConsoleAPICalled(e)
                if matches!(e.params.Type, Console::Error | Console::Assert) =>
            {
                Some(Problem {
                    kind: format!("console.{}", wire_name(&e.params.Type)),
                    text: e
                        .params
                        .args
                        .iter()
                        .map(|x| match &x.value {
                            Some(Value::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                            None => x.description.clone().unwrap_or_default(),
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    url: String::new(),
                })
            }
            Event::RuntimeExceptionThrown(e) => {
                let d = &e.params.exception_details;
                Some(Problem {
                    kind: "exception".into(),
                    text: d
                        .exception
                        .as_ref()
                        .and_then(|x| x.description.clone())
                        .unwrap_or_else(|| d.text.clone()),
                    url: d.url.clone().unwrap_or_default(),
                })
            }
            Event::LogEntryAdded(e) if e.params.entry.level == Log::LogEntryLevel::Error => {
                let entry = &e.params.entry;
                Some(Problem {
                    kind: format!("log.{}", wire_name(&entry.source)),
                    text: entry.text.clone(),
                    url: entry.url.clone().unwrap_or_default(),
                })
            }
            _ => None,
        }
    }
}

/// A protocol enum's wire name (`"error"`, `"network"`).
fn wire_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// One page (tab) of the browser, with every error it reports recorded.
struct Cdp {
    /// Kept for the tab's connection; the browser process is [`Chromium`]'s.
    _browser: Browser,
    tab: Arc<Tab>,
    problems: Arc<Mutex<Vec<Problem>>>,
}

impl Cdp {
    /// Opens a new tab in the browser at `ws_url`, with the Runtime and Log
    /// domains on (their errors recorded).
    fn connect(ws_url: &str) -> Cdp {
        let browser = Browser::connect_with_timeout(ws_url.to_string(), Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("DevTools connection to {ws_url}: {e:#}"));
        let tab = browser.new_tab().expect("a new tab");
        tab.set_default_timeout(DEADLINE);
        let problems = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&problems);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            if let Some(p) = Problem::from_event(event) {
                sink.lock().unwrap_or_else(PoisonError::into_inner).push(p);
            }
        }))
        .unwrap();
        tab.enable_runtime().unwrap();
        tab.enable_log().unwrap();
        Cdp {
            _browser: browser,
            tab,
            problems,
        }
    }

    /// What the page reported as errors so far.
    fn problems(&self) -> Vec<Problem> {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads `url` and waits for it to finish loading.
    fn navigate(&self, url: &str) {
        self.tab
            .navigate_to(url)
            .and_then(|t| t.wait_until_navigated())
            .unwrap_or_else(|e| panic!("navigating to {url}: {e:#}"));
    }

    /// Evaluates `expr` in the page (promises awaited); its JSON value (null
    /// for `undefined`).
    fn eval(&self, expr: &str) -> Value {
        let r = self
            .tab
            .call_method(Runtime::Evaluate {
                expression: expr.to_string(),
                return_by_value: Some(true),
                generate_preview: None,
                silent: Some(false),
                await_promise: Some(true),
                include_command_line_api: None,
                user_gesture: Some(true),
                object_group: None,
                context_id: None,
                throw_on_side_effect: None,
                timeout: None,
                disable_breaks: None,
                repl_mode: None,
                allow_unsafe_eval_blocked_by_csp: None,
                unique_context_id: None,
                serialization_options: None,
            })
            .unwrap_or_else(|e| panic!("evaluating `{expr}`: {e:#}"));
        if let Some(ex) = r.exception_details {
            panic!("evaluating `{expr}` threw: {ex:?}");
        }
        r.result.value.unwrap_or(Value::Null)
    }

    /// Types `text` into the focused element (as an IME would insert it).
    fn insert_text(&self, text: &str) {
        self.tab
            .call_method(Input::InsertText { text: text.into() })
            .unwrap_or_else(|e| panic!("typing {text:?}: {e:#}"));
    }

    /// Emulates `prefers-color-scheme: dark`.
    fn prefer_dark(&self) {
        self.tab
            .call_method(Emulation::SetEmulatedMedia {
                media: None,
                features: Some(vec![Emulation::MediaFeature {
                    name: "prefers-color-scheme".into(),
                    value: "dark".into(),
                }]),
            })
            .unwrap();
    }

    /// Polls `expr` until it is neither null nor false; returns its value.
    fn wait_for(&self, what: &str, expr: &str) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let v = self.eval(expr);
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if Instant::now() > end {
                let text = self.eval("document.body ? document.body.innerText : '(no body)'");
                panic!(
                    "timed out after {DEADLINE:?} waiting for {what}; the page shows:\n{}\nbrowser errors: {:#?}",
                    text.as_str().unwrap_or(""),
                    self.problems()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the whole page as `target/artifacts/<name>`.
    fn screenshot(&self, name: &str) -> PathBuf {
        let size = self
            .tab
            .call_method(Page::GetLayoutMetrics(None))
            .unwrap()
            .css_content_size;
        let shot = self
            .tab
            .call_method(Page::CaptureScreenshot {
                format: Some(Page::CaptureScreenshotFormatOption::Png),
                quality: None,
                clip: Some(Page::Viewport {
                    x: 0.0,
                    y: 0.0,
                    width: size.width.ceil(),
                    height: size.height.ceil(),
                    scale: 1.0,
                }),
                from_surface: Some(true),
                capture_beyond_viewport: Some(true),
                optimize_for_speed: None,
            })
            .unwrap_or_else(|e| panic!("screenshot {name}: {e:#}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.data)
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.canonicalize().unwrap().join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// A JS string literal for `s`.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn status_page_end_to_end_in_headless_chromium() {
    // Fail (not skip) without Chromium: CI installs it.
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/install-chromium.sh (it installs Debian's chromium; \
         CI runs it) so this end-to-end test can drive the status page in headless Chromium"
    );
    let sb = Sandbox::new(bin());
    let (mut service, port) = sb.start();
    let pid = service.pid();

    // A message with a word found nowhere else, and markup that must stay text.
    let word = format!("quokka{}z{port}", std::process::id());
    let content = format!(
        "Status page check: the {word} sleeps here, beside <b>not bold</b> and <img src=x onerror=alert(1)>."
    );
    let v: memory_api::chat::Queued = post_as(
        port,
        "/index-chat-message",
        &json!({"project_id": "general", "chat_id": "page-chat", "message_id": "m1", "role": "user",
                "content": content, "timestamp": "2026-01-01T00:00:00Z", "message_index": 0}),
    );
    let job = v.job_id;
    poll(&format!("chat job {job} to be indexed"), DEADLINE, || {
        use memory_api::chat::{ChatJobState, ChatJobStatus};
        let (s, v) = get(port, &format!("/index-job-status/{job}"))?;
        let st: ChatJobStatus = serde_json::from_value(v).ok()?;
        match st.state {
            ChatJobState::Success if s == 200 => Some(()),
            ChatJobState::Error | ChatJobState::Timeout => panic!("indexing failed: {st:?}"),
            _ => None,
        }
    });

    assert_eq!(status_of(port, "/sources"), 200, "GET /sources");

    let chromium = Chromium::launch();
    let cdp = Cdp::connect(&chromium.browser_ws_url());
    cdp.navigate(&format!("http://127.0.0.1:{port}/"));

    // The instance: PID from /health.
    cdp.wait_for(
        "the page to show the instance's PID",
        &format!(
            "document.getElementById('i-pid')?.textContent === {}",
            js(&pid.to_string())
        ),
    );
    // Semantic search: no model in this home, so the page says it is off and how to
    // install one (the reason /health gives).
    cdp.wait_for(
        "the page to say semantic search is off and how to install the model",
        "(document.getElementById('i-semantic')?.textContent || '').startsWith('off: ') && \
         document.getElementById('i-semantic').textContent.includes('model install')",
    );
    let state = cdp.eval("document.getElementById('i-state').textContent");
    assert!(
        ["ready", "starting", "degraded"].contains(&state.as_str().unwrap_or("")),
        "state shown: {state}"
    );

    // Empty state: no sources, and the page says how to add a folder.
    cdp.wait_for(
        "the empty state to say how to add a folder",
        "(() => { const e = document.getElementById('sources-empty');
                  return !e.hidden && e.textContent.includes('Add folder')
                      && e.textContent.includes('memory-service sources add'); })()",
    );
    cdp.screenshot("status-page-empty.png");

    // Sources: a folder added with the page's form is listed idle with a
    // completed job, and its recent jobs show it.
    let dir = sb.path().join("docs-folder");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), format!("Notes about the {word}.\n")).unwrap();
    let type_into = |cdp: &Cdp, id: &str, text: &str| {
        cdp.eval(&format!("document.getElementById({}).value = ''", js(id)));
        cdp.eval(&format!("document.getElementById({}).focus()", js(id)));
        cdp.insert_text(text);
    };
    type_into(&cdp, "a-path", &dir.display().to_string());
    type_into(&cdp, "a-name", "docs");
    cdp.eval("document.getElementById('a-submit').click()");
    cdp.wait_for(
        "the form to say the folder was added",
        "document.getElementById('add-msg').textContent.includes('as source')",
    );
    let id = cdp.wait_for(
        "the page to list source \"docs\" as idle with a completed job",
        "(() => {
            const row = [...document.querySelectorAll('#sources-body tr')]
                .find(r => r.querySelector('.name strong')?.textContent === 'docs');
            if (!row) return null;
            const status = row.querySelector('.status .badge')?.textContent;
            const job = row.querySelector('.job .badge')?.textContent;
            return status === 'idle' && job === 'completed' ? row.dataset.sourceId : null;
        })()",
    );
    let id = id.as_str().expect("source id").to_string();
    assert_eq!(
        cdp.eval("document.getElementById('sources-empty').hidden"),
        true,
        "the empty state goes once a source exists"
    );
    let v: memory_api::sources::SourceList = get_as(port, "/sources");
    assert_eq!(v.sources[0].project_id, "general", "{v:?}");
    assert_eq!(v.sources[0].root_path, dir.display().to_string(), "{v:?}");
    // The same folder again: refused on the page, nothing posted.
    type_into(&cdp, "a-path", &format!("{}/", dir.display()));
    cdp.eval("document.getElementById('a-submit').click()");
    cdp.wait_for(
        "the form to say the folder already is a source",
        &format!(
            "document.getElementById('add-msg').textContent.includes('already is source ' + {})",
            js(&id)
        ),
    );
    let v: memory_api::sources::SourceList = get_as(port, "/sources");
    assert_eq!(v.sources.len(), 1, "no second source: {v:?}");
    cdp.wait_for(
        "the recent jobs of \"docs\" to show a completed job",
        &format!(
            "[...document.querySelectorAll('.source-jobs')]
                .filter(d => d.dataset.sourceId === {})
                .some(d => [...d.querySelectorAll('tbody .badge')]
                    .some(b => b.textContent === 'completed'))",
            js(&id)
        ),
    );

    // Search: the project defaults to "general"; type the word and submit.
    assert_eq!(cdp.eval("document.getElementById('q-project').value"), "general");
    cdp.eval("document.getElementById('q-query').focus()");
    // "sleep" is a query word too, but only whole words are marked: not
    // the "sleep" inside the message's "sleeps".
    cdp.insert_text(&format!("{word} sleep"));
    cdp.eval("document.getElementById('q-submit').click()");
    cdp.wait_for(
        "a search result with the word highlighted",
        &format!(
            "[...document.querySelectorAll('#results li')].some(li =>
                li.textContent.includes('chat page-chat') &&
                [...li.querySelectorAll('mark')].some(m => m.textContent.toLowerCase() === {}))",
            js(&word.to_lowercase())
        ),
    );
    assert_eq!(
        cdp.eval("[...document.querySelectorAll('#results mark')].filter(m => m.textContent.toLowerCase().startsWith('sleep')).length"),
        0,
        "no mark inside a longer word"
    );
    // The message's markup is shown as text, never parsed.
    assert_eq!(
        cdp.eval("document.querySelectorAll('#results img, #results b').length"),
        0
    );
    assert_eq!(
        cdp.eval("document.getElementById('results').textContent.includes('<img src=x onerror=alert(1)>')"),
        true
    );

    // Screenshots, light then dark; the dark one must actually be dark.
    let bg = "getComputedStyle(document.body).backgroundColor";
    cdp.screenshot("status-page.png");
    let light = cdp.eval(bg);
    cdp.prefer_dark();
    let dark = cdp.eval(bg);
    assert_ne!(light, dark, "the page ignores prefers-color-scheme: dark");
    cdp.screenshot("status-page-dark.png");

    // No console errors, exceptions or CSP violations during all of that
    // (one refresh cycle at least).
    cdp.wait_for(
        "one more refresh of the page",
        "new Promise(r => setTimeout(() => r(true), 500))",
    );
    let problems = cdp.problems();
    assert!(problems.is_empty(), "browser errors: {problems:#?}");
    let seen = problems.len();
    service.signal(Signal::SIGTERM);
    assert_eq!(service.wait_code(), 0, "{}", service.stderr_text());
    cdp.wait_for(
        "the page to say the service is unreachable",
        "document.getElementById('conn').textContent.includes('service unreachable')",
    );
    assert_eq!(
        cdp.eval("document.getElementById('i-pid').textContent"),
        pid.to_string(),
        "the last known PID stays on the page"
    );
    let problems = cdp.problems();
    let new: Vec<&Problem> = problems[seen..]
        .iter()
        .filter(|p| !(p.kind == "log.network" && p.text.contains("ERR_CONNECTION_REFUSED")))
        .collect();
    assert!(new.is_empty(), "errors after the service stopped: {new:#?}");
    drop(cdp);
    drop(chromium);
}
