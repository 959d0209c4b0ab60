//! Watches the store's in-memory counters once a second and reports trouble
//! to the monitor, so `/health` turns `degraded` with a reason when the writer
//! falls behind, a file job is stuck, the disk is full or the database is
//! damaged, without `/health` itself ever touching the store or the indexer.
//! It also runs the periodic `quick_check` (once at start, then every
//! `MEMORY_SERVICE_INTEGRITY_CHECK_MS`), since damage that no request happens
//! to read would otherwise stay hidden until the data is needed.

use std::path::Path;
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

/// Free bytes on the database's file system above which a disk-full state is
/// forgotten without waiting for a write to succeed: 64 MiB, or a quarter of
/// the file system when that is less (a small volume).
pub const ROOM_TO_RESUME_BYTES: u64 = 64 * 1024 * 1024;

/// The `/health` reason for a full disk, if the last write found it full
/// (pure, for tests). `db`: the database file.
pub fn disk_problem(s: &memory_store::StoreStats, db: &Path) -> Option<String> {
    s.disk_full.then(|| {
        format!(
            "disk full: writes to {} fail; free space on its disk (writes resume by themselves)",
            db.display()
        )
    })
}

/// The `/health` reason for damage SQLite reported or `quick_check` found,
/// first line only (pure, for tests).
pub fn damage_problem(s: &memory_store::StoreStats) -> Option<String> {
    s.damage.as_ref().map(|d| {
        format!(
            "the database is damaged ({}); run `memory-service stop` then `memory-service doctor`",
            d.lines().next().unwrap_or_default()
        )
    })
}

/// Whether a file system with `available` of `total` bytes free has room again.
pub fn has_room(available: u64, total: u64) -> bool {
    available >= ROOM_TO_RESUME_BYTES.min(total / 4)
}

/// Free and total bytes of the file system holding `path`.
fn space(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let unit = st.fragment_size() as u64;
    Some((
        (st.blocks_available() as u64).saturating_mul(unit),
        (st.blocks() as u64).saturating_mul(unit),
    ))
}

/// Starts the watcher. The indexer's `problems()` reads its own in-memory
/// state (stuck jobs, failed watchers); it runs off the async workers anyway.
pub fn spawn(
    store: memory_store::Store,
    indexer: Arc<memory_indexer::Indexer>,
    semantic: Arc<crate::semantic::Semantic>,
    monitor: Arc<Monitor>,
    integrity_every: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let db = store.path().to_path_buf();
        let mut integrity = tokio::time::interval(integrity_every);
        let mut check: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = integrity.tick() => {
                    if check.as_ref().is_none_or(|c| c.is_finished()) {
                        let s = store.clone();
                        check = Some(tokio::task::spawn_blocking(move || match s.quick_check() {
                            Ok(None) => tracing::info!("quick_check: the database is whole"),
                            Ok(Some(found)) => tracing::error!(%found, "quick_check found damage"),
                            Err(e) => tracing::warn!(error = %e, "quick_check could not run"),
                        }));
                    }
                }
            }
            let mut stats = store.stats();
            if stats.disk_full {
                let dir = db.parent().unwrap_or(&db).to_path_buf();
                let room = tokio::task::spawn_blocking(move || space(&dir)).await;
                if let Ok(Some((available, total))) = room
                    && has_room(available, total)
                {
                    store.clear_disk_full();
                    stats.disk_full = false;
                }
            }
            monitor.report("store", problem(&stats));
            monitor.report("disk", disk_problem(&stats, &db));
            monitor.report("integrity", damage_problem(&stats));
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

    #[test]
    fn disk_and_damage_reasons() {
        let ok = memory_store::StoreStats::default();
        let db = Path::new("/h/memory.sqlite");
        assert_eq!((disk_problem(&ok, db), damage_problem(&ok)), (None, None));
        let full = memory_store::StoreStats {
            disk_full: true,
            ..Default::default()
        };
        let reason = disk_problem(&full, db).unwrap();
        assert!(
            reason.starts_with("disk full: writes to /h/memory.sqlite fail"),
            "{reason}"
        );
        let damaged = memory_store::StoreStats {
            damage: Some("*** in database main ***\nPage 7: btreeInitPage() returns error code 11".into()),
            ..Default::default()
        };
        let reason = damage_problem(&damaged).unwrap();
        assert!(reason.contains("damaged (*** in database main ***)"), "{reason}");
        assert!(reason.contains("memory-service doctor"), "{reason}");
    }

    #[test]
    fn room_to_resume() {
        let gib = 1024 * 1024 * 1024;
        assert!(has_room(ROOM_TO_RESUME_BYTES, 100 * gib));
        assert!(!has_room(ROOM_TO_RESUME_BYTES - 1, 100 * gib));
        // A small volume: a quarter of it is enough.
        assert!(has_room(2 * 1024 * 1024, 8 * 1024 * 1024));
        assert!(!has_room(1024 * 1024, 8 * 1024 * 1024));
    }
}
