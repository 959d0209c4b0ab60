//! Splitting one search's CPU-bound work over the cores. A search on this 2-core class
//! of machine otherwise leaves a core idle while it scans 100,000 vectors or tokenizes
//! hundreds of candidates; scoped threads cost tens of microseconds each, so work is
//! split only when each part is large enough to repay its thread.

use std::ops::Range;

/// Threads for `len` items when a thread should take at least `min_per_thread` of them:
/// at least 1, at most one per core.
pub(crate) fn threads_for(len: usize, min_per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (len / min_per_thread.max(1)).clamp(1, cores)
}

/// `part` over `0..len` cut into `threads` contiguous ranges (at least 1, at most `len`),
/// the first on the calling thread and the others on scoped threads, with the results
/// concatenated in range order: the same as `part(0..len)` whenever `part` of a range is
/// the concatenation of `part` of its pieces. A panic in a part is re-raised here.
pub(crate) fn split_ranges<R: Send>(
    len: usize,
    threads: usize,
    part: impl Fn(Range<usize>) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, len.max(1));
    if threads == 1 {
        return part(0..len);
    }
    let per = len.div_ceil(threads);
    let part = &part;
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads)
            .map(|t| s.spawn(move || part(t * per..((t + 1) * per).min(len))))
            .collect();
        let mut all = part(0..per.min(len));
        for h in others {
            all.extend(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_in_order() {
        for len in [0, 1, 5, 100, 101] {
            for threads in [1, 2, 3, 7, 200] {
                let got = split_ranges(len, threads, |r| r.collect::<Vec<usize>>());
                assert_eq!(got, (0..len).collect::<Vec<_>>(), "len {len}, {threads} threads");
            }
        }
        assert_eq!(threads_for(0, 10), 1);
        assert!(threads_for(1_000_000, 10) >= 1);
    }
}
