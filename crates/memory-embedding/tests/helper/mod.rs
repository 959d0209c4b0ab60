//! Shared test support: finding the model and the oracle, and a fake Hugging Face Hub.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use memory_embedding::Embedder;

/// The test model directory; panics (fails the test) with the command that fetches it.
pub fn model_dir() -> PathBuf {
    let dir = memory_embedding::test_model_dir();
    if !dir.join("model.safetensors").is_file() {
        panic!(
            "test model missing at {}: run scripts/fetch-test-model.sh",
            dir.display()
        );
    }
    dir
}

/// One embedder shared by the tests of this binary (loading takes about a second).
pub fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| Embedder::load(&model_dir()).expect("load the test model"))
}

/// The independent reference: texts, their vectors and pairwise cosines.
#[derive(serde::Deserialize)]
pub struct Oracle {
    pub texts: Vec<String>,
    pub vectors: Vec<Vec<f32>>,
    pub cosine: Vec<Vec<f32>>,
}

/// Reads `minilm-reference.json` from `$MEMORY_SERVICE_SHARED/data/`, else
/// `<workspace>/../shared/data/` (CI puts `shared/` beside the clone), else
/// `<workspace>/../../shared/data/` (a git worktree one level deeper); fails the test naming
/// every place looked at when it is absent.
pub fn oracle() -> Oracle {
    let root = memory_embedding::workspace_root();
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("MEMORY_SERVICE_SHARED") {
        candidates.push(PathBuf::from(dir).join("data/minilm-reference.json"));
    }
    candidates.push(root.join("../shared/data/minilm-reference.json"));
    candidates.push(root.join("../../shared/data/minilm-reference.json"));
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        panic!("reference vectors missing: looked at {candidates:?} (copy shared/ beside the clone)");
    };
    let text = std::fs::read_to_string(path).expect("read minilm-reference.json");
    serde_json::from_str(&text).expect("parse minilm-reference.json")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Copies the three required files (and the optional ones) of the test model into `dest`.
pub fn copy_model(dest: &Path) {
    let src = model_dir();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
    ] {
        let from = src.join(f);
        if from.is_file() {
            let to = dest.join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// A minimal stand-in for the Hub's `resolve` endpoint, as hf-hub's sync client uses it:
/// `GET /<repo>/resolve/main/<file>` with a `Range` header, answered `206` with `ETag`,
/// `X-Repo-Commit` and `Content-Range: bytes a-b/size`; unknown files get `404`.
pub struct FakeHub {
    pub url: String,
    /// Paths requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHub {
    /// Serves `files` (path inside the repo -> bytes) under `/<repo>/resolve/main/`.
    pub fn start(repo: &str, files: HashMap<String, Vec<u8>>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let prefix = format!("/{repo}/resolve/main/");
        let files = Arc::new(files);
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let files = files.clone();
                    let prefix = prefix.clone();
                    let requests = requests.clone();
                    std::thread::spawn(move || serve(conn, &prefix, &files, &requests));
                }
            })
        };
        FakeHub {
            url: format!("http://{addr}"),
            requests,
            stop,
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes accept()
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, prefix: &str, files: &HashMap<String, Vec<u8>>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut range: Option<(u64, Option<u64>)> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            let spec = v.trim().trim_start_matches("bytes=");
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            range = Some((a.parse().unwrap_or(0), b.parse().ok()));
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
    log.lock().unwrap().push(path.clone());
    let mut out = conn;
    let file = path
        .strip_prefix(prefix)
        .and_then(|f| files.get(f).map(|b| (f, b)));
    let Some((name, bytes)) = file else {
        let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let size = bytes.len() as u64;
    let (start, end) = match range {
        Some((a, b)) => (
            a.min(size),
            b.map(|b| b.min(size.saturating_sub(1)))
                .unwrap_or(size.saturating_sub(1)),
        ),
        None => (0, size.saturating_sub(1)),
    };
    let body = if size == 0 {
        &[][..]
    } else {
        &bytes[start as usize..=end as usize]
    };
    let etag = format!("\"etag-{}\"", name.replace('/', "-"));
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{size}\r\n\
         ETag: {etag}\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Write);
}
