//! Integration tests: the real binary, real processes, real signals, a temp
//! home and free ports per test.

mod chat;
mod client;
mod exposure;
mod helper;
mod import;
mod lifecycle;
mod page;
mod semantic;
mod serve;
mod sources;
mod storage;
