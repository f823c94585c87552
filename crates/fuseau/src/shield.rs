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
//! The same time limits, without the shield, are *deadline scopes*
//! ([`with_timeout`], [`with_deadline`]; Trio's `fail_after`, Kotlin's
//! `withTimeout`): only the body is cut short (its suspension points fail
//! with `Timeout`, the fibers spawned inside it are cancelled), never the
//! fiber; scopes nest, the earliest deadline wins, and the error's message
//! says which one fired.
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
//!   outermost one ends. A shield also holds the time limits entered before
//!   it (an outer `shield_for`'s, an enclosing `with_timeout`'s), as Trio's
//!   shielded scopes hold an outer deadline: cleanup inside a deadline scope
//!   runs to its end, and the expired deadline cuts the code after the
//!   shield short, at its first suspension point. Only `shield_for`'s own
//!   limit, and limits entered inside the shield, cut its body short.
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

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::scheduler::context::{current_sched, with_fiber};
use crate::scheduler::TimerAction;
use crate::task::{LimitKind, Task, Wakeup};
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
///   outermost one ends. A shield also holds the time limits entered before
///   it (an outer `shield_for`'s, an enclosing `with_timeout`'s), as Trio's
///   shielded scopes hold an outer deadline: cleanup inside a deadline scope
///   runs to its end, and the expired deadline cuts the code after the
///   shield short, at its first suspension point. Only `shield_for`'s own
///   limit, and limits entered inside the shield, cut its body short.
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
        let _shield = Entered::new(me, None, None);
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
        let _shield = Entered::new(me, key, None);
        f()
    })
}

/// Runs `f` in the calling fiber with a time limit of `timeout` on the
/// scheduler's clock ([`time::now`](crate::time::now)): a *deadline
/// scope*. When it expires, the body's current suspension point (or its
/// next one) fails with an [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)
/// error, as does every later one of the body, and the fibers spawned
/// inside the body are cancelled with that error.
///
/// Only the work inside is cancelled, not the fiber: `with_timeout`
/// returns `f`'s result (normally the `Timeout` error that the body passed
/// up with `?`), and the fiber runs on after it, undisturbed. It is Trio's
/// `fail_after`, Kotlin's `withTimeout` and Go's `context.WithTimeout`
/// scoped to a closure.
///
/// # Semantics
///
/// - **Where**: `f` runs in the calling fiber, on its stack; the scope is
///   not a fiber and not a suspension point.
/// - **Expiry**: the body's suspension points fail with `Timeout` from the
///   moment the deadline passes until the body returns (a suspended wait is
///   woken; its registration is undone as on cancellation, see the
///   [`guide`](crate::guide)).
/// - **Children**: fibers spawned (linked) inside the body are cancelled
///   with the scope's `Timeout` error when it expires (and so are theirs);
///   one spawned after the expiry is cancelled at once. Children spawned
///   before the scope are not affected. Children spawned inside that are
///   still running when the body returns in time become ordinary children.
///   Their `Timeout` is not passed to the parent as a failure.
/// - **Nesting**: scopes nest, and the earliest deadline wins: an outer
///   deadline that passes first cuts the inner bodies short too (all of
///   them then return `Timeout`), an inner one that passes first cuts only
///   its own body short. Time limits of [`shield_for`] nest with them the
///   same way. A [`shield`] inside a scope holds its deadline, as it holds
///   a cancellation: the shielded cleanup runs to its end, and the expiry
///   cuts the body short after it.
/// - **Which one fired**: the error's message names the deadline:
///   `fuseau::with_timeout(50ms) expired` (the `Duration` as `{:?}`), or
///   `fuseau::with_deadline(<the Instant as {:?}>) expired`. When deadlines
///   are equal, the outermost scope's is used. So a caller with nested
///   scopes tells them apart by [`Error::message`](crate::Error::message)
///   (or, more simply, by comparing [`time::now`](crate::time::now) with
///   its own deadline after the scope returns).
/// - **Cancellation of the fiber** is not affected: a real cancellation
///   during the scope is delivered as usual, with kind `Cancelled` (it
///   takes precedence over an expired deadline).
/// - **Disarmed on return**: the timer is removed when `f` returns or
///   unwinds (a guard): no late wake-up, no later `Timeout`.
/// - `Duration::ZERO` makes the body's first suspension point fail at
///   once; a deadline too far in the future to represent is no limit.
///
/// # Cancellation
///
/// Not a cancellation point itself: a fiber cancelled before the call
/// still runs `f`, whose first suspension point fails with the
/// cancellation; cancelled while `f` waits, the wait fails with
/// `Cancelled`, not `Timeout`; cancelled after `f` returned, the
/// cancellation is delivered by the next suspension point after the scope.
///
/// # Errors
///
/// Whatever `f` returns (the `Timeout` error of an expired deadline
/// usually among them);
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) outside a
/// fiber (then `f` does not run).
///
/// # Panics
///
/// A panic of `f` passes through, and the scope ends as it unwinds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fuseau::block_on(|| {
///     let never: fuseau::Chan<u32> = fuseau::Chan::new();
///     let e = fuseau::with_timeout(Duration::from_millis(2), || never.recv()).unwrap_err();
///     assert!(e.is_timeout());
///     assert_eq!(e.message(), "fuseau::with_timeout(2ms) expired");
///     // The fiber itself is not cancelled: it runs on.
///     fuseau::sleep(Duration::from_millis(1))?;
///     // A body that finishes in time is unaffected.
///     let v = fuseau::with_timeout(Duration::from_secs(1), || Ok(7))?;
///     assert_eq!(v, 7);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn with_timeout<T>(timeout: Duration, f: impl FnOnce() -> Result<T>) -> Result<T> {
    with_fiber("with_timeout", |me| {
        let now = current_sched()
            .expect("a running fiber's scheduler is entered")
            .now();
        deadline_scope(me, now.checked_add(timeout), LimitKind::Timeout(timeout), f)
    })
}

/// [`with_timeout`] with a deadline, an [`Instant`] on the scheduler's
/// clock: the running event loop's `now`, which
/// [`time::now`](crate::time::now) returns (so Tokio's paused time applies
/// under `fuseau_tokio`); compute deadlines from it, not from
/// `Instant::now()`.
///
/// Semantics, nesting and children as [`with_timeout`]; the `Timeout`
/// error's message is `fuseau::with_deadline(<deadline as {:?}>) expired`.
/// A deadline that has passed already makes the body's first suspension
/// point fail at once.
///
/// # Cancellation
///
/// As [`with_timeout`].
///
/// # Errors
///
/// Whatever `f` returns;
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) outside a
/// fiber (then `f` does not run).
///
/// # Panics
///
/// A panic of `f` passes through, and the scope ends as it unwinds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fuseau::block_on(|| {
///     let deadline = fuseau::time::now() + Duration::from_millis(3);
///     let r = fuseau::with_deadline(deadline, || {
///         fuseau::sleep(Duration::from_millis(1))?; // in time
///         fuseau::sleep(Duration::from_secs(60))?; // cut short
///         Ok(())
///     });
///     let e = r.unwrap_err();
///     assert!(e.is_timeout());
///     assert_eq!(e.message(), format!("fuseau::with_deadline({deadline:?}) expired"));
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn with_deadline<T>(deadline: Instant, f: impl FnOnce() -> Result<T>) -> Result<T> {
    with_fiber("with_deadline", |me| {
        deadline_scope(me, Some(deadline), LimitKind::Deadline(deadline), f)
    })
}

/// Runs `f` in a deadline scope of `me` (the running fiber) ending at `at`
/// (`None`: no limit).
fn deadline_scope<T>(
    me: &Task,
    at: Option<Instant>,
    kind: LimitKind,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let sched = current_sched().expect("a running fiber's scheduler is entered");
    let key = at.map(|at| sched.add_timer(at, TimerAction::Wake(Wakeup::shield_alarm(me))));
    drop(sched);
    let _scope = Entered::new(me, key, Some(kind));
    f()
}

/// An active shield (`scope` is `None`) or deadline scope of the running
/// fiber: ended (and its time limit's timer disarmed) when dropped,
/// including by a panic or a forced unwind.
struct Entered<'a> {
    me: &'a Task,
    limit: Option<TimerKey>,
    /// A deadline scope (`true`) or a shield.
    deadline_scope: bool,
}

impl<'a> Entered<'a> {
    fn new(me: &'a Task, limit: Option<TimerKey>, scope: Option<LimitKind>) -> Entered<'a> {
        let deadline_scope = scope.is_some();
        match scope {
            None => me.enter_shield(limit),
            Some(kind) => me.enter_deadline_scope(limit, kind),
        }
        Entered {
            me,
            limit,
            deadline_scope,
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.limit {
            if let Some(sched) = self.me.header().sched() {
                sched.remove_timer(key);
            }
        }
        if self.deadline_scope {
            self.me.exit_deadline_scope(self.limit);
        } else {
            self.me.exit_shield(self.limit);
        }
    }
}
