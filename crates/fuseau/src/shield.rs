//! Shields: code that may suspend without being interrupted by
//! cancellation ([`shield`]), optionally for a limited time
//! ([`shield_for`]).
//!
//! Cleanup often has to wait: flush a buffer, send a goodbye, wait for a
//! helper to stop. In a cancelled fiber every suspension point fails at
//! once (see the [`guide`](crate::guide)), so such cleanup cannot run.
//! [`shield`] runs a closure during which the fiber's suspension points
//! ignore its cancellation: a cancellation that arrived before the shield or
//! arrives during it is *recorded*, not delivered (waits are not woken by
//! it, checkpoints do not fail), and is delivered at the fiber's first
//! suspension point after the shield. This is Trio's shielded cancel scope
//! (`CancelScope(shield=True)`) and Kotlin's `withContext(NonCancellable)`;
//! as in Trio, a shield can carry a time limit ([`shield_for`], Trio's
//! `move_on_after` with `shield=True`, Kotlin's `withTimeout` inside
//! `NonCancellable`), so that cleanup cannot hang forever: when it
//! expires, the body's suspension points fail with
//! [`Timeout`](crate::ErrorKind::Timeout), and only the body's.
//!
//! # Semantics
//!
//! - **Where**: the closure runs in the calling fiber, on its stack; the
//!   shield is not a fiber and not a suspension point.
//! - **What is held**: the fiber's own cancellation, whoever cancelled it
//!   (a handle, its parent, a failing child, a
//!   [`cancel_after`](crate::cancel_after) deadline, the scheduler's
//!   disposal). [`AnyFiber::is_cancelled`](crate::AnyFiber::is_cancelled)
//!   reports `true` meanwhile. The fiber's cancel callbacks
//!   ([`with_cancel_callback`](crate::with_cancel_callback)) do not run
//!   while a shield holds the cancellation: those still registered when the
//!   outermost shield ends run then. Inside a shield of a cancelled fiber,
//!   `with_cancel_callback` registers its callback as usual.
//! - **Delivery**: `shield` itself never returns the held cancellation: it
//!   returns the closure's result. The fiber's next suspension point after
//!   the outermost shield fails with the cancellation error, as any
//!   suspension point of a cancelled fiber does.
//! - **Nesting**: shields nest; the cancellation is held until the
//!   outermost one ends. Time limits nest too: the body of an inner shield
//!   is cut short by an outer limit as well.
//! - **Children**: fibers spawned (linked) while the parent is inside a
//!   shield are held with it: the parent's cancellation does not reach them
//!   until the parent's outermost shield ends, and reaches them then (they
//!   are cancelled then if the parent was cancelled meanwhile; otherwise
//!   they become ordinary children). So cleanup may spawn helpers and join
//!   them. Children spawned *before* the shield are ordinary children: a
//!   cancellation of the parent reaches them at once, shield or not. A
//!   child's own cancellation (through its handle, its own deadline) is not
//!   affected by its parent's shield.
//! - **Disposal overrides shields**: a shield holds the disposal's
//!   cancellation as any other, but disposal never waits for a shielded
//!   fiber: what has not returned after the graceful phase is force-unwound,
//!   and while a stack unwinds every suspension point fails, shield or not
//!   (the shield's own cleanup — held callbacks, held children — runs as the
//!   shield is unwound).
//! - **Panics**: the shield ends when its closure returns or unwinds (a
//!   guard), so no shield outlives its call.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! let result = fuseau::block_on(|| {
//!     fuseau::cancel_after(Duration::ZERO)?; // cancelled, from now on
//!     // The cleanup may wait all the same.
//!     let flushed = fuseau::shield(|| {
//!         fuseau::sleep(Duration::from_millis(1))?;
//!         Ok("flushed")
//!     })?;
//!     assert_eq!(flushed, "flushed");
//!     // The held cancellation is delivered at the next suspension point.
//!     fuseau::yield_now()
//! });
//! assert!(result.unwrap_err().is_timeout());
//! ```

use std::time::Duration;

use crate::error::Result;
use crate::scheduler::context::{current_sched, with_fiber};
use crate::scheduler::TimerAction;
use crate::task::{Task, Wakeup};
use crate::timer::TimerKey;

/// Runs `f` in the calling fiber with the fiber's cancellation held: while
/// `f` runs, the fiber's suspension points are not interrupted by its
/// cancellation (semantics below).
///
/// A cancellation that arrived before the call or arrives while `f` runs
/// is recorded, not delivered: waits are not woken by it, checkpoints do
/// not fail. When the outermost shield ends, it is delivered at the fiber's
/// next suspension point. Shields nest. Fibers spawned inside the shield
/// are held with it (the fiber's cancellation reaches them when its
/// outermost shield ends); those spawned before are not. It is Trio's
/// shielded cancel scope and Kotlin's `withContext(NonCancellable)`.
///
/// # Semantics
///
/// - **Where**: the closure runs in the calling fiber, on its stack; the
///   shield is not a fiber and not a suspension point.
/// - **What is held**: the fiber's own cancellation, whoever cancelled it
///   (a handle, its parent, a failing child, a
///   [`cancel_after`](crate::cancel_after) deadline, the scheduler's
///   disposal). [`AnyFiber::is_cancelled`](crate::AnyFiber::is_cancelled)
///   reports `true` meanwhile. The fiber's cancel callbacks
///   ([`with_cancel_callback`](crate::with_cancel_callback)) do not run
///   while a shield holds the cancellation: those still registered when the
///   outermost shield ends run then. Inside a shield of a cancelled fiber,
///   `with_cancel_callback` registers its callback as usual.
/// - **Delivery**: `shield` itself never returns the held cancellation: it
///   returns the closure's result. The fiber's next suspension point after
///   the outermost shield fails with the cancellation error, as any
///   suspension point of a cancelled fiber does.
/// - **Nesting**: shields nest; the cancellation is held until the
///   outermost one ends. Time limits nest too: the body of an inner shield
///   is cut short by an outer limit as well.
/// - **Children**: fibers spawned (linked) while the parent is inside a
///   shield are held with it: the parent's cancellation does not reach them
///   until the parent's outermost shield ends, and reaches them then (they
///   are cancelled then if the parent was cancelled meanwhile; otherwise
///   they become ordinary children). So cleanup may spawn helpers and join
///   them. Children spawned *before* the shield are ordinary children: a
///   cancellation of the parent reaches them at once, shield or not. A
///   child's own cancellation (through its handle, its own deadline) is not
///   affected by its parent's shield.
/// - **Disposal overrides shields**: a shield holds the disposal's
///   cancellation as any other, but disposal never waits for a shielded
///   fiber: what has not returned after the graceful phase is force-unwound,
///   and while a stack unwinds every suspension point fails, shield or not
///   (the shield's own cleanup — held callbacks, held children — runs as the
///   shield is unwound).
/// - **Panics**: the shield ends when its closure returns or unwinds (a
///   guard), so no shield outlives its call.
///
/// # Cancellation
///
/// Not a cancellation point: cancelled before the call, `f` still runs
/// (that is the point), and `shield` returns `f`'s result; cancelled while
/// `f` waits, the wait goes on; cancelled when `f` has returned, the
/// cancellation is delivered by the next suspension point after the shield,
/// never by `shield`. The scheduler's disposal force-unwinds a fiber that
/// does not return, shield or not.
///
/// # Errors
///
/// Whatever `f` returns;
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) outside a fiber
/// (then `f` does not run: outside a fiber nothing can be cancelled, and a
/// silent no-op would hide a misplaced call).
///
/// # Panics
///
/// A panic of `f` passes through, and the shield ends as it unwinds.
///
/// # Examples
///
/// A cancelled worker still says goodbye on a channel before it returns:
///
/// ```
/// use fuseau::Chan;
///
/// fuseau::block_on(|| {
///     let goodbyes: Chan<&str> = Chan::bounded(0);
///     let tx = goodbyes.clone();
///     let worker = fuseau::spawn(move || -> fuseau::Result<()> {
///         let e = tx.recv().unwrap_err(); // waits until cancelled
///         assert!(e.is_cancelled());
///         fuseau::shield(|| tx.send("goodbye"))?; // waits for a receiver
///         Err(e)
///     });
///     fuseau::yield_now()?;
///     worker.cancel();
///     assert_eq!(goodbyes.recv()?, "goodbye");
///     assert!(worker.join().unwrap_err().is_cancelled());
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn shield<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    with_fiber("shield", |me| {
        let _shield = Entered::new(me, None);
        f()
    })
}

/// [`shield`] for at most `limit` of the scheduler's clock
/// ([`time::now`](crate::time::now)): when the limit expires, the body's
/// current suspension point (or its next one) fails with an
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) error, and so does
/// every later one of the body, so that cleanup cannot hang forever.
///
/// Only the body is cut short: the timeout does not cancel the fiber, and
/// after `shield_for` returns the fiber goes on as before (a cancellation
/// held by the shield is still delivered at its next suspension point). A
/// function rather than a builder: a time limit is the one option a shield
/// has. A limit too far in the future to represent is no limit;
/// `Duration::ZERO` makes every suspension point of the body fail.
///
/// # Cancellation
///
/// As [`shield`]. A wait of the body that the limit interrupts undoes its
/// registration as it would on cancellation (see the
/// [`guide`](crate::guide)).
///
/// # Errors
///
/// Whatever `f` returns (the `Timeout` errors of its suspension points
/// usually among them, when the limit expires);
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) outside a fiber
/// (then `f` does not run).
///
/// # Panics
///
/// A panic of `f` passes through, and the shield ends as it unwinds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fuseau::block_on(|| {
///     let never: fuseau::Chan<u32> = fuseau::Chan::new();
///     let e = fuseau::shield_for(Duration::from_millis(2), || never.recv()).unwrap_err();
///     assert!(e.is_timeout());
///     // The fiber itself is not cancelled by it.
///     fuseau::yield_now()?;
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn shield_for<T>(limit: Duration, f: impl FnOnce() -> Result<T>) -> Result<T> {
    with_fiber("shield_for", |me| {
        let sched = current_sched().expect("a running fiber's scheduler is entered");
        let key = sched
            .now()
            .checked_add(limit)
            .map(|at| sched.add_timer(at, TimerAction::Wake(Wakeup::shield_alarm(me))));
        // The guard holds no reference to the scheduler (it lives on the
        // fiber's stack): it finds it again through the fiber.
        drop(sched);
        let _shield = Entered::new(me, key);
        f()
    })
}

/// An active shield of the running fiber: ended (and its time limit's
/// timer disarmed) when dropped, including by a panic or a forced unwind.
struct Entered<'a> {
    me: &'a Task,
    limit: Option<TimerKey>,
}

impl<'a> Entered<'a> {
    fn new(me: &'a Task, limit: Option<TimerKey>) -> Entered<'a> {
        me.enter_shield(limit);
        Entered { me, limit }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.limit {
            if let Some(sched) = self.me.header().sched() {
                sched.remove_timer(key);
            }
        }
        self.me.exit_shield(self.limit);
    }
}
