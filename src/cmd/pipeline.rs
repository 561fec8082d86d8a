//! Input cut into chunks, worked on other threads, taken back in order:
//! how `batch` and `import` parse while they apply. Parsing a line costs
//! more than deciding it, and lines parse independently.

use std::sync::mpsc;
use std::thread;

use crate::threads;

/// Worker threads at most: more than the cores of most machines that run
/// a ledger, and past the point where taking the results keeps up.
const MAX_WORKERS: usize = 4;

/// Works each chunk of `read` with a function that `worker` makes (one
/// per thread), and hands the results to `take` in the order of `read`.
/// Stops at the first error `take` returns, and then reading stops too.
///
/// `read` runs on a thread of its own and the work on others, so that
/// reading, working and taking overlap. The channels between them hold
/// `depth` chunks each, so memory stays bounded however long the input,
/// and reading stops soon after taking does. Where the OS gives no
/// thread, the same is done in turn on this one: slower, never different.
pub(crate) fn in_order<C, T, W, E>(
    read: impl Iterator<Item = C> + Send,
    worker: impl Fn() -> W + Sync,
    depth: usize,
    take: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    C: Send,
    T: Send,
    W: FnMut(C) -> T,
{
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS);
    with_workers(workers, read, worker, depth, take)
}

/// [`in_order`] with up to `workers` worker threads; with none (or none
/// the OS gives), in turn on this thread.
fn with_workers<C, T, R, W, E>(
    workers: usize,
    read: R,
    worker: impl Fn() -> W + Sync,
    depth: usize,
    mut take: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    C: Send,
    T: Send,
    R: Iterator<Item = C> + Send,
    W: FnMut(C) -> T,
{
    thread::scope(|scope| {
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        for _ in 0..workers {
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<C>(depth);
            let (done_tx, done_rx) = mpsc::sync_channel::<T>(depth);
            let worker = &worker;
            let spawned = threads::scoped(scope, "parsing", move || {
                let mut work = worker();
                for chunk in chunk_rx {
                    // Closed: taking stopped at an error.
                    if done_tx.send(work(chunk)).is_err() {
                        return;
                    }
                }
            });
            if spawned.is_err() {
                break;
            }
            inputs.push(chunk_tx);
            outputs.push(done_rx);
        }
        if inputs.is_empty() {
            return in_turn(read, &worker, take);
        }
        // Should the OS refuse the reader, `read` comes back to be read in
        // turn (and the workers end with their inputs, dropped with the
        // refused thread).
        let reader = threads::scoped_with(scope, "reading", read, move |read: R| {
            for (c, chunk) in read.enumerate() {
                // Closed: its worker stopped because taking did.
                if inputs[c % inputs.len()].send(chunk).is_err() {
                    return;
                }
            }
        });
        if let Err(read) = reader {
            return in_turn(read, &worker, take);
        }
        for c in 0.. {
            // The worker of chunk `c` ends once it has no chunk `c`.
            let Ok(done) = outputs[c % outputs.len()].recv() else {
                break;
            };
            take(done)?;
        }
        Ok(())
    })
}

/// [`in_order`] on this thread alone.
fn in_turn<C, T, W, E>(
    read: impl Iterator<Item = C>,
    worker: &impl Fn() -> W,
    mut take: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    W: FnMut(C) -> T,
{
    let mut work = worker();
    read.map(&mut work).try_for_each(&mut take)
}

/// The chunks that `cut` makes, each time given one (or none) and
/// whether the input ended there, and how: after an error, the chunk
/// before it comes first, then the error, then nothing.
pub(crate) fn chunks<C, E>(
    mut cut: impl FnMut() -> (Option<C>, Option<Result<(), E>>),
) -> impl Iterator<Item = Result<C, E>> {
    let (mut ended, mut failed) = (false, None);
    std::iter::from_fn(move || {
        while !ended {
            let (chunk, end) = cut();
            match end {
                None => {}
                Some(Ok(())) => ended = true,
                Some(Err(e)) => (ended, failed) = (true, Some(e)),
            }
            if chunk.is_some() {
                return chunk.map(Ok);
            }
        }
        failed.take().map(Err)
    })
}

#[cfg(test)]
mod tests {
    use super::{chunks, with_workers};

    /// Reads `chunks` chunks of numbers, squares them on `workers`
    /// workers and takes them until `stop_at` (an error there); gives
    /// what was taken, the error, and how many chunks were read.
    fn run(workers: usize, chunks: u64, stop_at: Option<u64>) -> (Vec<u64>, Option<u64>, u64) {
        let mut read_count = 0;
        let mut taken = Vec::new();
        let read = (0..chunks).map(|c| {
            read_count += 1;
            (c * 3..c * 3 + 3).collect::<Vec<u64>>()
        });
        let result = with_workers(
            workers,
            read,
            || |chunk: Vec<u64>| chunk.into_iter().map(|n| n * n).collect::<Vec<_>>(),
            1,
            |done: Vec<u64>| {
                for n in done {
                    if Some(n) == stop_at {
                        return Err(n);
                    }
                    taken.push(n);
                }
                Ok(())
            },
        );
        (taken, result.err(), read_count)
    }

    /// Whatever the number of workers (none: in turn, as when the OS
    /// gives no thread), every result is taken, in order.
    #[test]
    fn results_are_taken_in_order_on_any_number_of_threads() {
        let expected: Vec<u64> = (0..300).map(|n| n * n).collect();
        for workers in 0..=4 {
            let (taken, error, read) = run(workers, 100, None);
            assert_eq!(taken, expected, "{workers} workers");
            assert_eq!((error, read), (None, 100), "{workers} workers");
        }
    }

    /// An error from taking stops the run there and soon stops the
    /// reading: with channels of one chunk, a few chunks past it at most.
    #[test]
    fn an_error_stops_taking_and_reading() {
        let expected: Vec<u64> = (0..31).map(|n| n * n).collect();
        for workers in 0..=4 {
            let (taken, error, read) = run(workers, 10_000, Some(31 * 31));
            assert_eq!(taken, expected, "{workers} workers");
            assert_eq!(error, Some(31 * 31), "{workers} workers");
            // Each worker holds a chunk in hand and one in each channel;
            // the reader, one it is sending.
            let most = 11 + 3 * workers as u64 + 1;
            assert!(read <= most, "{workers} workers read {read} chunks");
        }
    }

    /// The chunks cut, then the error that ended the input (after the
    /// chunk cut with it), then nothing; an end without an error ends
    /// after the last chunk, with one or without.
    #[test]
    fn chunks_end_after_their_error() {
        type Cut = (Option<u8>, Option<Result<(), char>>);
        let cuts = |ends: Vec<Cut>| {
            let mut ends = ends.into_iter();
            let cut = move || ends.next().unwrap_or((None, None));
            chunks(cut).take(10).collect::<Vec<_>>()
        };
        let failed = cuts(vec![
            (Some(1), None),
            (Some(2), Some(Err('e'))),
            (Some(3), None),
        ]);
        assert_eq!(failed, [Ok(1), Ok(2), Err('e')]);
        let failed_alone = cuts(vec![(Some(1), None), (None, Some(Err('e')))]);
        assert_eq!(failed_alone, [Ok(1), Err('e')]);
        let ended = cuts(vec![(Some(1), None), (Some(2), Some(Ok(())))]);
        assert_eq!(ended, [Ok(1), Ok(2)]);
        let ended_empty = cuts(vec![(None, None), (Some(1), None), (None, Some(Ok(())))]);
        assert_eq!(ended_empty, [Ok(1)]);
    }
}
