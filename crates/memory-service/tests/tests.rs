//! Integration tests: the real binary, real processes, real signals, a temp
//! home per test and instances on `--port 0` (the harness is `testkit`);
//! data-API tests that need no process run `daemon::serve` in-process.

mod chat;
mod client;
mod exposure;
mod helper;
mod import;
mod in_process;
mod lifecycle;
mod page;
mod semantic;
mod serve;
mod sources;
mod storage;
