//! Watches the store's in-memory counters once a second and reports trouble
//! to the monitor, so `/health` turns `degraded` with a reason when the writer
//! falls behind or a file job is stuck, without `/health` itself ever
//! touching the store or the indexer.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::monitor::Monitor;

/// Writes waiting beyond this make the state degraded.
pub const MAX_QUEUE_DEPTH: u64 = 1_000;
/// A chat job pending longer than this makes the state degraded.
pub const MAX_PENDING_AGE_MS: u64 = 30_000;

/// What is wrong with the store, if anything (pure, for tests).
pub fn problem(s: &memory_store::StoreStats) -> Option<String> {
    if s.shut_down {
        return Some("the database is closed".into());
    }
    if s.writer_exited {
        return Some("the database writer thread has stopped: writes fail; restart the service".into());
    }
    if s.indexer_exited {
        return Some(
            "the chat indexer thread has stopped: messages are stored but not indexed; restart the service"
                .into(),
        );
    }
    if s.writer_queue_depth > MAX_QUEUE_DEPTH {
        return Some(format!(
            "the database writer is behind: {} writes waiting (threshold {MAX_QUEUE_DEPTH})",
            s.writer_queue_depth
        ));
    }
    if s.oldest_pending_job_age_ms > MAX_PENDING_AGE_MS {
        return Some(format!(
            "chat indexing is behind: the oldest of {} pending jobs waits for {} s",
            s.pending_chat_jobs,
            s.oldest_pending_job_age_ms / 1000
        ));
    }
    None
}

/// Starts the watcher. The indexer's `problems()` reads its own in-memory
/// state (stuck jobs, failed watchers); it runs off the async workers anyway.
pub fn spawn(
    store: memory_store::Store,
    indexer: Arc<memory_indexer::Indexer>,
    semantic: Arc<crate::semantic::Semantic>,
    monitor: Arc<Monitor>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            monitor.report("store", problem(&store.stats()));
            monitor.report(
                "embedding",
                semantic.stage_died().then(|| {
                    "the embedding stage thread has stopped: new chunks are not embedded; restart the service"
                        .to_string()
                }),
            );
            let ix = indexer.clone();
            if let Ok(problems) = tokio::task::spawn_blocking(move || ix.problems()).await {
                monitor.report("indexer", (!problems.is_empty()).then(|| problems.join("; ")));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let ok = memory_store::StoreStats::default();
        assert_eq!(problem(&ok), None);
        let behind = memory_store::StoreStats {
            writer_queue_depth: MAX_QUEUE_DEPTH + 1,
            ..Default::default()
        };
        assert!(problem(&behind).unwrap().contains("writer is behind"));
        let old = memory_store::StoreStats {
            oldest_pending_job_age_ms: 31_000,
            pending_chat_jobs: 4,
            ..Default::default()
        };
        assert!(
            problem(&old)
                .unwrap()
                .contains("oldest of 4 pending jobs waits for 31 s")
        );
    }
}
