//! `GET /metrics`: Prometheus text, built from in-memory counters only.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// The metrics handler.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(
            &state.monitor,
            &(state
                .store()
                .map(|s| store_metrics(&s.stats()))
                .unwrap_or_default()
                + &semantic_metrics(&state.monitor.semantic())),
        ),
    )
}

/// Semantic search: whether it is on and the embedding backlog, from memory.
fn semantic_metrics(s: &crate::monitor::SemanticReport) -> String {
    use crate::monitor::SemanticState;
    let mut out = String::from(
        "# HELP memory_service_semantic_state 1 for the current state of semantic search, 0 for the others.\n\
         # TYPE memory_service_semantic_state gauge\n",
    );
    for (state, name) in [
        (SemanticState::Off, "off"),
        (SemanticState::Loading, "loading"),
        (SemanticState::Ready, "ready"),
        (SemanticState::Error, "error"),
    ] {
        out.push_str(&format!(
            "memory_service_semantic_state{{state=\"{name}\"}} {}\n",
            u8::from(s.state == state)
        ));
    }
    for (name, help, value) in [
        (
            "embedding_pending_chunks",
            "Chunks waiting for their embedding.",
            s.pending_chunks,
        ),
        (
            "embedded_chunks",
            "Chunks embedded with the current model.",
            s.embedded_chunks,
        ),
    ] {
        out.push_str(&format!(
            "# HELP memory_service_{name} {help}\n# TYPE memory_service_{name} gauge\nmemory_service_{name} {value}\n"
        ));
    }
    out
}

/// The store's counters, from memory (never the database).
fn store_metrics(s: &memory_store::StoreStats) -> String {
    let rows: [(&str, &str, &str, u64); 12] = [
        (
            "store_writer_queue_depth",
            "gauge",
            "Writes waiting for the writer thread.",
            s.writer_queue_depth,
        ),
        (
            "store_pending_chat_jobs",
            "gauge",
            "Chat index jobs queued or running.",
            s.pending_chat_jobs,
        ),
        (
            "store_oldest_pending_job_age_ms",
            "gauge",
            "Age of the oldest pending chat job.",
            s.oldest_pending_job_age_ms,
        ),
        (
            "store_commits_total",
            "counter",
            "Write transactions committed.",
            s.commits,
        ),
        (
            "store_writes_committed_total",
            "counter",
            "Writes committed (group commit batches several).",
            s.writes_committed,
        ),
        (
            "store_commit_latency_us_total",
            "counter",
            "Sum of commit latencies in microseconds.",
            s.commit_latency_total_us,
        ),
        (
            "store_commit_latency_max_us",
            "gauge",
            "Slowest commit so far, microseconds.",
            s.commit_latency_max_us,
        ),
        (
            "store_messages_indexed_total",
            "counter",
            "Chat messages indexed.",
            s.messages_indexed,
        ),
        (
            "store_index_errors_total",
            "counter",
            "Chat index jobs that failed.",
            s.index_errors,
        ),
        (
            "store_wal_checkpoints_total",
            "counter",
            "WAL checkpoints forced by its size limit.",
            s.wal_checkpoints,
        ),
        (
            "store_wal_checkpoints_busy_total",
            "counter",
            "Forced WAL checkpoints that gave way to readers.",
            s.wal_checkpoints_busy,
        ),
        (
            "store_wal_checkpoint_stall_max_us",
            "gauge",
            "Longest writer stall in a forced checkpoint, microseconds.",
            s.wal_checkpoint_stall_max_us,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP memory_service_{name} {help}\n# TYPE memory_service_{name} {kind}\nmemory_service_{name} {value}\n"
        ));
    }
    out
}
