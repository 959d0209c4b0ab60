//! Reading and extracting files on every core while one thread writes. A pass's CPU
//! work per file (read, decode or extract a document, hash, chunk, index terms) is
//! independent of every other file's, but the writes must stay in one thread and in a
//! known order (progress counts, batches). So workers take files in order and hand their
//! results back, and the pass consumes them in the same order on its own thread; workers
//! run at most `window` files ahead of it, which bounds the memory held by texts waiting
//! to be written while the writer is busy. Workers run at a lower CPU priority than
//! everything else, so reading ahead never slows requests or the writer.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, PoisonError};

/// Which items are handed out and which were consumed.
struct Cursor {
    /// The next item a worker takes.
    next: usize,
    /// Items the consumer has taken in order (all below this index).
    consumed: usize,
    /// The consumer stopped: workers take nothing more.
    halted: bool,
}

/// Nice value of the worker threads: below the request handlers and the store's
/// writer (nice 0), so background extraction takes the CPU they leave. On 2 cores the
/// writer, the pipeline's bottleneck, otherwise shared its core with a worker.
pub(crate) const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`WORKER_NICE`] (Linux keeps a nice
/// value per thread; `setpriority(PRIO_PROCESS, 0, ..)` sets the caller's). Best effort:
/// a failure leaves the thread at its priority.
fn lower_priority() {
    // SAFETY: setpriority reads no memory of ours; `who` 0 is the calling thread.
    let _ = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, WORKER_NICE) };
}

/// Worker threads for a pass of `items` files: one per core (they run below the
/// writer's priority), at most `max`, no more than there are items, and at least one.
pub(crate) fn workers_for(items: usize, max: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.min(max).min(items).max(1)
}

/// Runs `work` on every item on `workers` threads (scoped: all have ended when this
/// returns), never more than `window` items ahead of the consumer, and calls `consume`
/// with each result in item order on the calling thread. `consume` returning `Ok(false)`
/// or an error stops the run: no item is started after that, those in flight finish and
/// their results are dropped. Returns `Ok(true)` when every item was consumed.
pub(crate) fn ordered_map<T, R, E>(
    items: &[T],
    workers: usize,
    window: usize,
    work: impl Fn(&T) -> R + Sync,
    mut consume: impl FnMut(usize, R) -> Result<bool, E>,
) -> Result<bool, E>
where
    T: Sync,
    R: Send,
{
    let window = window.max(1);
    let cursor = Mutex::new(Cursor {
        next: 0,
        consumed: 0,
        halted: false,
    });
    let moved = Condvar::new();
    // The worker's next item, or `None` when there is none or the run halted.
    let take = || -> Option<usize> {
        let guard = cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut c = moved
            .wait_while(guard, |c| {
                !c.halted && c.next < items.len() && c.next >= c.consumed + window
            })
            .unwrap_or_else(PoisonError::into_inner);
        if c.halted || c.next >= items.len() {
            return None;
        }
        c.next += 1;
        Some(c.next - 1)
    };
    let set = |f: &dyn Fn(&mut Cursor)| {
        f(&mut cursor.lock().unwrap_or_else(PoisonError::into_inner));
        moved.notify_all();
    };
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, R)>();
        for _ in 0..workers.max(1) {
            let tx = tx.clone();
            let (take, work) = (&take, &work);
            scope.spawn(move || {
                lower_priority();
                while let Some(i) = take() {
                    if tx.send((i, work(&items[i]))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut expected = 0;
        let outcome = loop {
            if expected == items.len() {
                break Ok(true);
            }
            let Ok((i, r)) = rx.recv() else {
                // Every worker ended before the last item: only a panic in `work` does
                // that, and the scope re-raises it when it joins them.
                break Ok(false);
            };
            waiting.insert(i, r);
            let mut stop = None;
            while let Some(r) = waiting.remove(&expected) {
                match consume(expected, r) {
                    Ok(true) => expected += 1,
                    Ok(false) => {
                        stop = Some(Ok(false));
                        break;
                    }
                    Err(e) => {
                        stop = Some(Err(e));
                        break;
                    }
                }
            }
            if let Some(stop) = stop {
                break stop;
            }
            set(&|c| c.consumed = expected);
        };
        set(&|c| c.halted = true);
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_in_item_order_whatever_the_workers_do() {
        let items: Vec<u64> = (0..200).collect();
        let mut seen = Vec::new();
        let done = ordered_map(
            &items,
            4,
            8,
            |&x| {
                // Uneven work, so workers finish out of order.
                std::hint::black_box((0..(x % 7) * 10_000).fold(0u64, |a, b| a ^ b));
                x
            },
            |i, r| {
                seen.push((i, r));
                Ok::<_, ()>(true)
            },
        )
        .unwrap();
        assert!(done);
        assert_eq!(seen, items.iter().map(|&x| (x as usize, x)).collect::<Vec<_>>());
    }

    #[test]
    fn workers_never_run_more_than_the_window_ahead() {
        let items: Vec<usize> = (0..100).collect();
        let started = AtomicUsize::new(0);
        let mut worst = 0;
        ordered_map(
            &items,
            3,
            5,
            |_| {
                started.fetch_add(1, Ordering::SeqCst);
            },
            |i, ()| {
                // Items started but not yet consumed (this one included).
                worst = worst.max(started.load(Ordering::SeqCst) - i);
                Ok::<_, ()>(true)
            },
        )
        .unwrap();
        assert!(worst <= 5, "{worst} items were in flight with a window of 5");
        assert_eq!(started.load(Ordering::SeqCst), 100);
    }

    #[test]
    fn a_stop_or_an_error_starts_nothing_more() {
        let items: Vec<usize> = (0..1000).collect();
        let started = AtomicUsize::new(0);
        let done = ordered_map(
            &items,
            2,
            4,
            |_| {
                started.fetch_add(1, Ordering::SeqCst);
            },
            |i, ()| Ok::<_, ()>(i < 10),
        )
        .unwrap();
        assert!(!done);
        let n = started.load(Ordering::SeqCst);
        assert!(n <= 10 + 1 + 4, "{n} items started after a stop at item 10");

        let err = ordered_map(
            &items,
            2,
            4,
            |_| (),
            |i, ()| if i == 3 { Err("bad") } else { Ok(true) },
        );
        assert_eq!(err, Err("bad"));
    }

    #[test]
    fn workers_run_at_a_lower_priority() {
        let items = [(); 2];
        let mut nices = Vec::new();
        ordered_map(
            &items,
            2,
            2,
            |()| {
                nix::errno::Errno::clear();
                // SAFETY: getpriority reads no memory of ours; `who` 0 is this thread.
                unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, 0) }
            },
            |_, nice| {
                nices.push(nice);
                Ok::<_, ()>(true)
            },
        )
        .unwrap();
        // At least WORKER_NICE: a test run already niced further stays where it is.
        assert_eq!(nices.len(), 2);
        assert!(nices.iter().all(|&n| n >= WORKER_NICE), "{nices:?}");
    }

    #[test]
    fn no_items_and_one_worker_are_fine() {
        let none: [u8; 0] = [];
        assert_eq!(
            ordered_map(&none, 2, 4, |_| (), |_, ()| Ok::<_, ()>(true)),
            Ok(true)
        );
        assert_eq!(workers_for(0, 4), 1);
        assert_eq!(workers_for(1, 4), 1);
        assert!(workers_for(1000, 4) <= 4);
    }
}
