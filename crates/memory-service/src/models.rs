//! `memory-service model install|status`: getting the embedding model that semantic
//! search needs onto the machine, and saying what is there. Installing is the
//! embedding crate's job (verified, atomic); this module chooses where, draws the
//! progress bar and says what to do next. A running instance picks a new model up at
//! its next start.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::semantic::{MODEL_FILES, install_hint, missing_model};

/// `model` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Download the embedding model (default sentence-transformers/all-MiniLM-L6-v2,
    /// about 90 MB) from the Hugging Face Hub (HF_ENDPOINT is honoured), or install it
    /// from a directory or .zip holding config.json, tokenizer.json and
    /// model.safetensors. Verified before it replaces anything.
    Install(InstallArgs),
    /// Show which embedding model is configured and whether it is installed (exit 0
    /// either way; `--json` has `installed`).
    Status {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// `model install` options.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Install from this directory or .zip instead of downloading.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// The Hugging Face repository to download.
    #[arg(long, value_name = "OWNER/NAME", default_value = memory_embedding::DEFAULT_REPO)]
    pub repo: String,
}

/// A terminal progress bar (plain lines when not a terminal) for installs.
struct Bar {
    bar: ProgressBar,
    terminal: bool,
}

impl memory_embedding::Progress for Bar {
    fn start(&self, what: &str, total_bytes: Option<u64>) {
        if !self.terminal {
            eprintln!("{what}...");
            return;
        }
        self.bar.reset();
        match total_bytes {
            Some(n) => {
                self.bar.set_length(n);
                self.bar.set_style(
                    ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
            }
            None => self.bar.set_style(ProgressStyle::default_spinner()),
        }
        self.bar.set_message(what.to_string());
    }

    fn advance(&self, bytes: u64) {
        if self.terminal {
            self.bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if self.terminal {
            self.bar.finish();
        }
    }
}

/// Runs a `model` command.
pub fn run(config: &Config, cmd: &ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Install(args) => install(config, args),
        ModelCommand::Status { json } => status(config, *json),
    }
}

fn install(config: &Config, args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let models = config.models_dir();
    std::fs::create_dir_all(&models).with_context(|| format!("creating {}", models.display()))?;
    let terminal = std::io::stderr().is_terminal();
    let bar = Bar {
        bar: ProgressBar::new(0),
        terminal,
    };
    let installed = match &args.from {
        Some(src) => memory_embedding::install_from_path(src, &models, &bar),
        None => memory_embedding::download(&args.repo, &models, &bar),
    };
    bar.bar.finish_and_clear();
    let installed = installed.context("installing the embedding model")?;
    println!("Installed the embedding model at {}", installed.display());
    if installed != config.embedding_model {
        println!(
            "  note: this instance is configured to use {}; pass --embedding-model {} (or set MEMORY_SERVICE_EMBEDDING_MODEL) to use it",
            config.embedding_model.display(),
            installed.display()
        );
    }
    println!(
        "  next: `memory-service restart --home {}` makes a running instance use it; existing chunks are embedded in the background (see `memory-service status`)",
        config.home.display()
    );
    Ok(ExitCode::Ok)
}

/// What `model status` reports (also its `--json` shape).
#[derive(Debug, serde::Serialize)]
struct ModelStatus<'a> {
    /// The configured model directory.
    dir: &'a Path,
    /// Whether the three files are there.
    installed: bool,
    /// Why not, when not.
    reason: Option<String>,
    /// The files and their sizes in bytes.
    files: Vec<(String, Option<u64>)>,
}

fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let dir = config.embedding_model.as_path();
    let reason = missing_model(dir);
    let files = MODEL_FILES
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::metadata(dir.join(f)).ok().map(|m| m.len()),
            )
        })
        .collect();
    let s = ModelStatus {
        dir,
        installed: reason.is_none(),
        reason: reason.clone(),
        files,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("model dir  {}", dir.display());
        match &reason {
            None => {
                println!("installed  yes");
                for (f, size) in &s.files {
                    println!("  {f:18} {}", size.map_or("-".into(), crate::client::human_bytes));
                }
            }
            Some(why) => {
                println!("installed  no ({why})");
                println!("next       {}", install_hint(&config.home));
            }
        }
    }
    Ok(ExitCode::Ok)
}
