//! The OpenAPI document (`GET /openapi.json`; the original FastAPI service
//! served one too), derived by utoipa from the types of this crate so it
//! cannot drift from what the service sends.
//!
//! utoipa describes an operation with an attribute on a function item; the
//! functions below exist only to carry those attributes (they are never
//! called: the service's axum handlers are elsewhere, and this crate knows no
//! HTTP framework). Their docstrings become each operation's summary.

#![allow(dead_code)]

use utoipa::OpenApi;

use crate::chat::{ChatDeleted, ChatJobStatus, IndexChatMessage, Queued};
use crate::error::ErrorBody;
use crate::facts::{Facts, FactsQuery, NewFact, SearchFacts};
use crate::filetree::{FileContent, FileQuery, Tree, TreeQuery};
use crate::health::HealthReport;
use crate::search::{SearchRequest, SearchResults};
use crate::sources::{
    AddSource, ChunkStats, FileJobList, FileJobsQuery, Reindex, Reindexing, Source, SourceAdded, SourceList,
};
use crate::{StatusMessage, facts::Fact};

/// Every endpoint and the schemas of its bodies.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "memory-service",
        description = "Local memory for ChatDO: indexes folders and chat messages and answers searches. \
                       Wire-compatible with ChatDO's Memory Service (shared/design/api.md). \
                       Every error body is {\"detail\": \"...\"}."
    ),
    paths(
        health,
        list_sources,
        add_source,
        delete_source,
        reindex,
        source_status,
        source_jobs,
        chunk_stats,
        search,
        index_chat_message,
        index_job_status,
        delete_chat,
        search_facts,
        add_fact,
        list_facts,
        delete_fact,
        filetree,
        filetree_file,
        metrics,
        openapi_document,
    )
)]
pub struct ApiDoc;

/// The document, as a value.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON text (what `GET /openapi.json` serves).
pub fn openapi_json() -> String {
    // Serialising plain structs of strings and maps cannot fail.
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
}

/// Liveness and identity, answered from memory in milliseconds.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "Always 200 while serving", body = HealthReport)))]
fn health() {}

/// Every file source, its status and latest job.
#[utoipa::path(get, path = "/sources", tag = "sources",
    responses((status = 200, body = SourceList)))]
fn list_sources() {}

/// Adds a folder and starts indexing it.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = AddSource,
    responses(
        (status = 200, body = SourceAdded),
        (status = 400, description = "The path does not exist or is not a folder; a bad source_id", body = ErrorBody),
        (status = 409, description = "The chosen source_id is taken", body = ErrorBody),
        (status = 422, description = "A required field is missing or mistyped", body = ErrorBody),
    ))]
fn add_source() {}

/// Deletes a source and its index (never the user's files).
#[utoipa::path(delete, path = "/sources/{source_id}", tag = "sources",
    params(("source_id" = String, Path, description = "The source")),
    responses(
        (status = 200, body = StatusMessage),
        (status = 404, body = ErrorBody),
    ))]
fn delete_source() {}

/// Rebuilds a source's index beside the old one.
#[utoipa::path(post, path = "/reindex", tag = "sources", request_body = Reindex,
    responses(
        (status = 200, body = Reindexing),
        (status = 404, body = ErrorBody),
    ))]
fn reindex() {}

/// One source (read-only).
#[utoipa::path(get, path = "/sources/{source_id}/status", tag = "sources",
    params(("source_id" = String, Path, description = "The source")),
    responses(
        (status = 200, body = Source),
        (status = 404, body = ErrorBody),
    ))]
fn source_status() {}

/// A source's recent jobs, newest first.
#[utoipa::path(get, path = "/sources/{source_id}/jobs", tag = "sources",
    params(("source_id" = String, Path, description = "The source"), FileJobsQuery),
    responses(
        (status = 200, body = FileJobList),
        (status = 422, body = ErrorBody),
    ))]
fn source_jobs() {}

/// Chunking diagnostics of a source.
#[utoipa::path(get, path = "/sources/{source_id}/chunk-stats", tag = "sources",
    params(("source_id" = String, Path, description = "The source")),
    responses(
        (status = 200, body = ChunkStats),
        (status = 404, body = ErrorBody),
    ))]
fn chunk_stats() {}

/// Searches a project's chats and file sources, best first.
#[utoipa::path(post, path = "/search", tag = "search", request_body = SearchRequest,
    responses(
        (status = 200, body = SearchResults),
        (status = 400, description = "Empty project_id", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
fn search() {}

/// Stores a chat message durably and queues its indexing.
#[utoipa::path(post, path = "/index-chat-message", tag = "chat", request_body = IndexChatMessage,
    responses(
        (status = 200, body = Queued),
        (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
fn index_chat_message() {}

/// The state of one chat message's indexing job.
#[utoipa::path(get, path = "/index-job-status/{job_id}", tag = "chat",
    params(("job_id" = String, Path, description = "The id POST /index-chat-message returned")),
    responses(
        (status = 200, body = ChatJobStatus),
        (status = 404, body = ErrorBody),
    ))]
fn index_job_status() {}

/// Purges a chat: its messages, their index and the facts from them.
#[utoipa::path(delete, path = "/chats/{project_id}/{chat_id}", tag = "chat",
    params(
        ("project_id" = String, Path, description = "The ChatDO project"),
        ("chat_id" = String, Path, description = "The chat"),
    ),
    responses((status = 200, body = ChatDeleted)))]
fn delete_chat() {}

/// Keyword (and meaning) search over a project's current facts.
#[utoipa::path(post, path = "/search-facts", tag = "facts", request_body = SearchFacts,
    responses(
        (status = 200, body = Facts),
        (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
fn search_facts() {}

/// Stores a fact (replacing the current one with the same key).
#[utoipa::path(post, path = "/facts", tag = "facts", request_body = NewFact,
    responses(
        (status = 200, body = Fact),
        (status = 400, body = ErrorBody),
    ))]
fn add_fact() {}

/// A project's facts.
#[utoipa::path(get, path = "/facts", tag = "facts", params(FactsQuery),
    responses((status = 200, body = Facts)))]
fn list_facts() {}

/// Deletes one fact.
#[utoipa::path(delete, path = "/facts/{fact_id}", tag = "facts",
    params(("fact_id" = String, Path, description = "The fact")),
    responses(
        (status = 200, body = StatusMessage),
        (status = 404, body = ErrorBody),
    ))]
fn delete_fact() {}

/// Lists a folder tree under a source's root.
#[utoipa::path(get, path = "/filetree/{source_id}", tag = "filetree",
    params(("source_id" = String, Path, description = "The source"), TreeQuery),
    responses(
        (status = 200, body = Tree),
        (status = 400, description = "The path escapes the source root", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
fn filetree() {}

/// Reads a file under a source's root.
#[utoipa::path(get, path = "/filetree/{source_id}/file", tag = "filetree",
    params(("source_id" = String, Path, description = "The source"), FileQuery),
    responses(
        (status = 200, body = FileContent),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
fn filetree_file() {}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, body = String, content_type = "text/plain")))]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
fn openapi_document() {}
