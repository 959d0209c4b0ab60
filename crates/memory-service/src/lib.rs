//! ChatDO's Memory Service: a local-only HTTP daemon, never more than one per
//! home directory (the guarantee itself lives in the `single-instance` crate).
//!
//! # Layout
//! - [`config`]: one `Config` from flags, environment and defaults.
//! - [`cli`]: the command line (clap); doc comments are the help.
//! - [`client`]: `sources`, `reindex`, `search`: commands for people, over HTTP.
//! - [`exit_code`]: every exit code, in one enum.
//! - [`daemon`]: `serve`: claim the home, bind, serve, shut down cleanly; its
//!   data API is the library function `daemon::serve` (in-process tests use it).
//! - [`lifecycle`]: `start`, `stop`, `status`, `restart`, `logs`, `install-service`.
//! - [`metrics`]: counters for `/metrics`.
//! - [`models`]: `model install|status`, the embedding model on disk.
//! - [`monitor`]: identity and health state, read by `/health` from memory.
//! - [`probe`]: the client side of `/health` (who answers on an address).
//! - [`http`]: thin handlers over the core, one router listing every route.
//! - [`semantic`]: the embedding model behind `/health`, query embeddings, the stage.
//! - [`import`]: `import-chatdo DIR`, an existing ChatDO install's memory, through the API.
//! - [`chatdo_projects`]: ChatDO's `projects.json` (connected projects, source removal).

pub mod chatdo_projects;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod exit_code;
pub mod home;
pub mod http;
pub mod import;
pub mod lifecycle;
pub mod metrics;
pub mod models;
pub mod monitor;
pub mod probe;
pub mod semantic;

#[cfg(test)]
mod error_tests;
