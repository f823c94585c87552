//! Events: how a fiber waits for things.
//!
//! An [`Event`] is something a fiber can wait for: a channel operation, a
//! timeout, a future. [`await_event`] waits for one; [`select`](crate::select()) and the
//! [`select!`](crate::select!) macro wait for the first of several.
//!
//! # The wait protocol
//!
//! Every wait on events follows one loop ([`wait_on`]), crossbeam's select
//! protocol with fibers:
//!
//! 1. the checkpoint (cancellation, `task::wait`);
//! 2. a new wait begins (a new epoch: no older [`Wakeup`] can wake it);
//! 3. every event is polled, in order; the first ready one wins;
//! 4. every event is registered with a [`Wakeup`] naming its branch;
//! 5. if the fiber suspended during 3 or 4 (an event's `poll` or `wait` ran
//!    code that waits: a future polled by [`ev_future`] that calls a
//!    fiber-blocking function), every registration is undone and the loop
//!    starts over at 2, since something may have become ready meanwhile
//!    with nobody registered to notice;
//! 6. the fiber parks; when it wakes, every registration is undone and the
//!    wait is ended, so that nothing can claim it any more, from this
//!    thread or another (on every path: a guard does it, also when an
//!    event's `wait` panics);
//! 7. a branch that claimed the wait (a channel handed it a value) wins;
//!    else a cancellation is returned; else the loop starts over at 2.

mod future;
mod select;

use crate::cancel::CancelHandle;
use crate::error::Result;
use crate::scheduler::context::{not_in_fiber, with_current};
use crate::task::{Task, Wakeup};

pub use future::{ev_future, ev_future_pinned, FutureEvent, PinnedFutureEvent};
pub use select::{select, When};
#[doc(hidden)]
pub use select::{select_index, DynBranch, SelectBranch};

/// Something a fiber can wait for, alone or in a [`select`](crate::select()).
///
/// The protocol, as in crossbeam's select: [`poll`](Event::poll) tries to
/// complete the event without waiting; if it cannot, [`wait`](Event::wait)
/// registers the fiber's [`Wakeup`] with whatever will make the event ready,
/// and returns a [`CancelHandle`] that undoes the registration. `select`
/// always undoes every registration once the fiber wakes, whatever woke it,
/// and then polls again.
///
/// An event that completes by *handing* something to the waiter (a channel
/// passing a value) must first [`claim`](Wakeup::claim) the wake-up: a wait
/// can be claimed by one branch only, and `select` then reports that branch.
/// Events that merely become ready (a timer) call [`wake`](Wakeup::wake).
///
/// `poll` and `wait` may run code that suspends the fiber (a future polled
/// by [`ev_future`] that calls a fiber-blocking function): the wait then
/// undoes its registrations and polls every event again before it parks,
/// so nothing that became ready meanwhile is missed.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub trait Event {
    /// What the event resolves to.
    type Output;

    /// Completes the event if it is ready: `Some(Ok(value))`, or
    /// `Some(Err(e))` if it failed; `None` if it is not ready.
    fn poll(&mut self) -> Option<Result<Self::Output>>;

    /// Registers `wakeup` to be woken (or claimed) when the event may have
    /// become ready. Called only after `poll` returned `None`.
    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle;
}

impl<E: Event + ?Sized> Event for &mut E {
    type Output = E::Output;

    fn poll(&mut self) -> Option<Result<E::Output>> {
        (**self).poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        (**self).wait(wakeup)
    }
}

impl<E: Event + ?Sized> Event for Box<E> {
    type Output = E::Output;

    fn poll(&mut self) -> Option<Result<E::Output>> {
        (**self).poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        (**self).wait(wakeup)
    }
}

/// The events of one wait, as [`wait_on`] drives them: one event, the
/// branches of [`select`](crate::select()), or those of [`select!`](crate::select!).
pub(crate) trait Waitable {
    /// What the wait gives back.
    type Output;
    /// Polls every event, in order; the outcome of the first ready one.
    fn poll(&mut self) -> Option<Self::Output>;
    /// Polls event `branch` only (it claimed the wait).
    fn poll_claimed(&mut self, branch: usize) -> Option<Self::Output>;
    /// Registers every event with a wake-up of `me`'s current wait naming
    /// its branch.
    fn register(&mut self, me: &Task);
    /// Undoes every registration made so far.
    fn unregister(&mut self);
}

/// The registrations of one wait: [`finish`](Registered::finish) undoes
/// them and ends the wait; dropped unfinished (an event's `wait` or the
/// park unwinding), it does the same.
struct Registered<'a, W: Waitable + ?Sized> {
    set: &'a mut W,
    me: &'a Task,
    /// The wait they belong to.
    epoch: u64,
}

impl<'a, W: Waitable + ?Sized> Registered<'a, W> {
    /// Registers every event of `set` with a wake-up of `me`'s current wait.
    fn new(set: &'a mut W, me: &'a Task) -> Self {
        let registered = Registered {
            set,
            me,
            epoch: me.epoch(),
        };
        registered.set.register(me);
        registered
    }

    /// Undoes every registration, then ends the wait: from now on no branch
    /// can claim it, from this thread or another. Returns the branch that
    /// claimed it, if one did.
    fn finish(self) -> Option<usize> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.set.unregister();
        this.me.end_wait(this.epoch)
    }
}

impl<W: Waitable + ?Sized> Drop for Registered<'_, W> {
    fn drop(&mut self) {
        self.set.unregister();
        self.me.end_wait(self.epoch);
    }
}

/// Waits, in the running fiber `me`, until one of the events of `set` is
/// ready (the protocol in the module docs).
///
/// # Errors
///
/// The fiber's cancellation (before the call, or while it waits, unless an
/// event claimed the wait first).
pub(crate) fn wait_on<W: Waitable + ?Sized>(me: &Task, set: &mut W) -> Result<W::Output> {
    me.checkpoint()?;
    loop {
        me.begin_wait();
        let switches = me.switches();
        if let Some(out) = set.poll() {
            return Ok(out);
        }
        let registered = Registered::new(&mut *set, me);
        // A `poll` or `wait` that suspended the fiber: something may have
        // become ready meanwhile with nobody registered to notice, so the
        // events are polled again rather than parked on (a branch that
        // claimed the wait meanwhile, from another thread, still wins).
        let parked = me.switches() == switches;
        if parked {
            me.park();
        }
        let claimed = registered.finish();
        if let Some(out) = claimed.and_then(|branch| set.poll_claimed(branch)) {
            return Ok(out);
        }
        if parked {
            me.cancelled()?;
        }
    }
}

/// One event as a [`Waitable`].
struct One<E: Event> {
    event: E,
    registration: Option<CancelHandle>,
}

impl<E: Event> Waitable for One<E> {
    type Output = Result<E::Output>;

    fn poll(&mut self) -> Option<Result<E::Output>> {
        self.event.poll()
    }

    fn poll_claimed(&mut self, _: usize) -> Option<Result<E::Output>> {
        self.event.poll()
    }

    fn register(&mut self, me: &Task) {
        self.registration = Some(self.event.wait(Wakeup::new(me, 0)));
    }

    fn unregister(&mut self) {
        if let Some(handle) = self.registration.take() {
            handle.cancel();
        }
    }
}

/// Waits for `event`: [`select`](crate::select()) with one branch, without the boxing.
///
/// # Cancellation
///
/// A cancellation point, as [`select`](crate::select()): cancelled before the call or while
/// waiting, it returns the cancellation error, unless the event completed
/// by claiming the wait first.
///
/// # Errors
///
/// The event's error or the fiber's cancellation. Outside a fiber, an event
/// that is ready completes; one that would wait gives
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let e = fuseau::block_on(|| {
///     fuseau::await_event(fuseau::ev_timeout(Duration::from_millis(1)))
/// });
/// assert!(e.unwrap_err().is_timeout());
/// ```
pub fn await_event<E: Event>(event: E) -> Result<E::Output> {
    wait_for(event, "await_event")
}

/// [`await_event`] naming `call` in its `NotInFiber` error.
pub(crate) fn wait_for<E: Event>(event: E, call: &str) -> Result<E::Output> {
    let mut one = One {
        event,
        registration: None,
    };
    match with_current(|me| wait_on(me, &mut one)) {
        Some(waited) => waited?,
        None => one.event.poll().unwrap_or_else(|| Err(not_in_fiber(call))),
    }
}
