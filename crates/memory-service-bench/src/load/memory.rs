//! Phase 5: resident memory and WAL size, sampled every 100 ms by a thread
//! for the whole run and kept as a peak per phase, so the report can say
//! which phase needed the memory.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Phase 5: resident memory of the service, MiB.
#[derive(Debug, Serialize)]
pub struct Memory {
    /// After start and 100 `/health`.
    pub idle_mib: f64,
    /// Peak during the fill.
    pub fill_peak_mib: f64,
    /// Peak during phases 3-4 (sampled every 100 ms).
    pub loaded_peak_mib: f64,
    /// The last sample, after the run's load stopped.
    pub end_mib: f64,
    /// Disk, not RSS: largest `memory.sqlite-wal` seen during the fill.
    pub wal_peak_fill_mib: f64,
    /// Largest `memory.sqlite-wal` seen during phases 3-4 (readers running
    /// all the time can keep a checkpoint from ever restarting the WAL).
    pub wal_peak_loaded_mib: f64,
    /// `memory.sqlite` after the run, before SIGTERM's checkpoint.
    pub db_mib: f64,
}

/// Phases, for the memory sampler.
pub(super) const PH_FILL: usize = 1;
pub(super) const PH_MIXED: usize = 3;
pub(super) const PH_FILES: usize = 4;
pub(super) const PH_END: usize = 5;

/// Peak RSS per phase, sampled every 100 ms by a thread.
#[derive(Default)]
pub(super) struct Sampler {
    pub(super) phase: AtomicUsize,
    peaks: [AtomicU64; 6],
    pub(super) last: AtomicU64,
    /// Peak size of the service's WAL file per phase, bytes.
    wal_peaks: [AtomicU64; 6],
    pub(super) stop: AtomicBool,
}

impl Sampler {
    pub(super) fn run(&self, pid: u32, wal: &std::path::Path) {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
        let pid = sysinfo::Pid::from_u32(pid);
        let Ok(mut sys) = System::new() else { return };
        while !self.stop.load(Ordering::Relaxed) {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_memory(),
            );
            if let Some(p) = sys.process(pid) {
                let rss = p.memory();
                self.peaks[self.phase.load(Ordering::Relaxed)].fetch_max(rss, Ordering::Relaxed);
                self.last.store(rss, Ordering::Relaxed);
            }
            if let Ok(m) = std::fs::metadata(wal) {
                self.wal_peaks[self.phase.load(Ordering::Relaxed)].fetch_max(m.len(), Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The phase 5 report: peaks per phase, the last sample, and the
    /// caller's idle RSS and database size (MiB).
    pub(super) fn memory(&self, idle_mib: f64, db_mib: f64) -> Memory {
        Memory {
            idle_mib,
            fill_peak_mib: self.peak_mib(&[PH_FILL]),
            loaded_peak_mib: self.peak_mib(&[PH_MIXED, PH_FILES]),
            end_mib: self.last.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0),
            wal_peak_fill_mib: self.wal_peak_mib(&[PH_FILL]),
            wal_peak_loaded_mib: self.wal_peak_mib(&[PH_MIXED, PH_FILES]),
            db_mib,
        }
    }

    fn peak_mib(&self, phases: &[usize]) -> f64 {
        Self::peak_of(&self.peaks, phases)
    }

    fn wal_peak_mib(&self, phases: &[usize]) -> f64 {
        Self::peak_of(&self.wal_peaks, phases)
    }

    fn peak_of(peaks: &[AtomicU64; 6], phases: &[usize]) -> f64 {
        let b = phases
            .iter()
            .map(|&p| peaks[p].load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        b as f64 / (1024.0 * 1024.0)
    }
}
