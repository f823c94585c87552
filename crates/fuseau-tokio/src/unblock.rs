//! Blocking work on Tokio's blocking pool: [`unblock`] hands a closure to
//! the pool and suspends the fiber (not the thread) until it returns.
//!
//! The closure is started lazily, from the first poll of the future the
//! fiber awaits, so a fiber cancelled before the call never starts it; and
//! the future aborts the pool task when dropped, so a closure that is still
//! queued when the fiber gives up never starts either. Once started it
//! cannot be stopped (Tokio cannot interrupt a thread): it runs to its end,
//! and its result is dropped on the pool thread.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use fuseau::{Error, ErrorKind, Result};
use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

use crate::future::await_future;
use crate::runtime::require_fiber;

/// Runs `f` on Tokio's blocking pool and returns its result; the fiber
/// suspends meanwhile, so the other fibers of its thread keep running.
///
/// For work that blocks the thread: a synchronous library call, a
/// CPU-heavy computation, a `std::fs` call (see [`fs`](crate::fs), which
/// wraps those). `f` runs on another thread: it cannot use fibers (fiber
/// calls there return [`ErrorKind::NotInFiber`]). Each call costs a
/// hand-off to the pool and back (a few microseconds): batch small pieces
/// of work into one closure rather than calling `unblock` in a tight loop.
///
/// The pool belongs to the Tokio runtime the fiber runs on; when that
/// runtime shuts down (at the end of [`main`](crate::main), say), it waits
/// for the closures still running on it.
///
/// # Errors
///
/// - [`ErrorKind::Panicked`] if `f` panics, with the panic's message (the
///   panic does not unwind into the fiber);
/// - the fiber's cancellation (see below);
/// - [`ErrorKind::NotInFiber`] outside a fiber: `unblock` does not run `f`
///   inline on the calling thread, since blocking it is what the caller
///   asked to avoid; call `f` directly if that is what you want;
/// - [`ErrorKind::Other`] in a fiber that runs without a Tokio runtime (a
///   plain [`block_on`](fuseau::block_on) scheduler): there is no pool;
/// - [`ErrorKind::Inactive`] if the runtime shut down before `f` could
///   start.
///
/// In the last three cases `f` is dropped without running.
///
/// # Cancellation
///
/// A cancellation point.
/// - Cancelled before the call: returns the cancellation error; `f` never
///   runs.
/// - Cancelled while waiting: returns the cancellation error at once,
///   without waiting for `f`. If `f` was still queued (every pool thread
///   busy), it never runs; if it had started, it runs on to its end on the
///   pool, and its result is dropped there. So whatever side effects `f`
///   has may or may not happen: make `f` idempotent, or check afterwards.
/// - Cancelled after the call returned: the result is the caller's; the
///   fiber's next cancellation point fails. (A cancellation that comes in
///   the instant between `f` returning and the fiber resuming counts as
///   "while waiting": the error is returned and the value dropped.)
///
/// # Examples
///
/// ```
/// fuseau_tokio::main(|| {
///     // A blocking computation, off the fibers' thread.
///     let sum = fuseau_tokio::unblock(|| (1..=1_000_000u64).sum::<u64>())?;
///     assert_eq!(sum, 500_000_500_000);
///
///     // A panic comes back as an error, not as a panic of the fiber.
///     let e = fuseau_tokio::unblock(|| -> u32 { panic!("out of luck") }).unwrap_err();
///     assert!(e.is_panic());
///     assert_eq!(e.message(), "out of luck");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> fuseau::Result<T> {
    unblock_as("fuseau_tokio::unblock", f)
}

/// [`unblock`] naming `call` in its errors (for the `fs` wrappers).
pub(crate) fn unblock_as<T, F>(call: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handle = require_tokio(call)?;
    match await_future(OnPool {
        handle,
        f: Some(f),
        join: None,
    })? {
        Ok(value) => Ok(value),
        Err(e) => Err(join_error(call, e)),
    }
}

/// Checks that the caller is a fiber running inside a Tokio runtime, and
/// returns that runtime's handle.
pub(crate) fn require_tokio(call: &str) -> Result<Handle> {
    require_fiber(call)?;
    Handle::try_current().map_err(|_| {
        Error::new(
            ErrorKind::Other,
            format!(
                "{call} needs a Tokio runtime: run the fiber under fuseau_tokio::main, \
                 fuseau_tokio::run or a fuseau_tokio::Runtime"
            ),
        )
    })
}

/// The future of a closure on the blocking pool: spawns it on the first
/// poll, aborts it (effective only while it is still queued) when dropped
/// before it completed.
struct OnPool<F, T> {
    handle: Handle,
    f: Option<F>,
    join: Option<JoinHandle<T>>,
}

// The closure is moved out, never pinned, and `JoinHandle` is `Unpin`: no
// field is structurally pinned.
impl<F, T> Unpin for OnPool<F, T> {}

impl<F, T> Future for OnPool<F, T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    type Output = std::result::Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let join = match &mut this.join {
            Some(join) => join,
            None => {
                let f = this.f.take().expect("OnPool polled after it completed");
                this.join.insert(this.handle.spawn_blocking(f))
            }
        };
        let result = ready!(Pin::new(join).poll(cx));
        this.join = None;
        Poll::Ready(result)
    }
}

impl<F, T> Drop for OnPool<F, T> {
    fn drop(&mut self) {
        // Prevents a queued closure from starting; one that started runs on
        // (Tokio cannot interrupt it) and its result is dropped.
        if let Some(join) = self.join.take() {
            join.abort();
        }
    }
}

/// Why the pool gave no value: the closure panicked, or the runtime shut
/// down before it started.
fn join_error(call: &str, e: JoinError) -> Error {
    match e.try_into_panic() {
        Ok(payload) => Error::new(ErrorKind::Panicked, panic_message(payload)),
        Err(_) => Error::new(
            ErrorKind::Inactive,
            format!("{call}: the Tokio runtime shut down before the work could start"),
        ),
    }
}

/// The message of a panic payload, as fuseau reports panics of fibers.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast_ref::<&'static str>() {
            Some(s) => (*s).to_owned(),
            None => match payload.downcast_ref::<Error>() {
                Some(e) => e.to_string(),
                None => "Box<dyn Any>".to_owned(),
            },
        },
    }
}
