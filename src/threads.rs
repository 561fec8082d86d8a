//! Starting the helper threads that have a fallback: parsing a batch or
//! an import, writing a long append ahead, sealing, syncing while
//! writing, and a rebuild's keys, names and digests. Each may be refused
//! by the OS (too many threads, too little memory), and each caller then
//! does the same work on its own thread, slower but the same.
//!
//! `LEDGER_TEST_NO_THREADS`, set to anything, refuses them all, so that
//! the tests run every fallback through the real binary and compare what
//! it writes with the threaded run's. Threads without a fallback (a long
//! read's reader, which fails with an error instead) are not started
//! here.

use std::io;
use std::sync::{OnceLock, mpsc};
use std::thread::{self, JoinHandle, Scope, ScopedJoinHandle};

/// Whether helper threads are refused, as if by the OS.
fn refused() -> Option<io::Error> {
    static REFUSED: OnceLock<bool> = OnceLock::new();
    REFUSED
        .get_or_init(|| std::env::var_os("LEDGER_TEST_NO_THREADS").is_some())
        .then(|| io::Error::other("helper threads refused (LEDGER_TEST_NO_THREADS)"))
}

/// Starts `f` on a thread named `name` within `scope`.
pub fn scoped<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> io::Result<ScopedJoinHandle<'scope, T>> {
    match refused() {
        Some(e) => Err(e),
        None => thread::Builder::new()
            .name(name.into())
            .spawn_scoped(scope, f),
    }
}

/// Starts `f` on a thread named `name` within `scope` and hands it
/// `value` once the thread exists; if the thread is refused, gives
/// `value` back, for the caller to do the work itself. (A closure that
/// owned it would be dropped with the refused thread.) The thread gives
/// `None` only if it never got `value`, which cannot happen: it waits
/// for it.
pub fn scoped_with<'scope, V: Send + 'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    value: V,
    f: impl FnOnce(V) -> T + Send + 'scope,
) -> Result<ScopedJoinHandle<'scope, Option<T>>, V> {
    let (give, given) = mpsc::channel::<V>();
    let Ok(thread) = scoped(scope, name, move || given.recv().ok().map(f)) else {
        return Err(value);
    };
    match give.send(value) {
        Ok(()) => Ok(thread),
        Err(mpsc::SendError(value)) => Err(value),
    }
}

/// Starts `f` on a thread named `name`.
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    match refused() {
        Some(e) => Err(e),
        None => thread::Builder::new().name(name.into()).spawn(f),
    }
}
