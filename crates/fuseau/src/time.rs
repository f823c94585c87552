//! Time: the clock, sleeping, deadlines, and the scheduler's timer queue.
//!
//! Timers are kept by the scheduler in one ordered map and measured against
//! its [`EventLoop`](crate::EventLoop)'s clock; the event loop only has to
//! wake up at the earliest deadline. Under `fuseau_tokio` the clock is
//! Tokio's, so tests with paused time (`start_paused`) run sleeps instantly
//! and deterministically.

use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cancel::CancelHandle;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::scheduler::context::{current_sched, with_fiber, with_sched};
use crate::scheduler::{SchedInner, TimerAction};
use crate::task::{self, Origin, Task, Wakeup};

/// Nanoseconds elapsed since a fixed point (the first call in the process),
/// from the monotonic clock. Not affected by paused test time.
///
/// ```
/// let a = fuseau::time::monotonic_ns();
/// let b = fuseau::time::monotonic_ns();
/// assert!(b >= a);
/// ```
pub fn monotonic_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// [`monotonic_ns`] in seconds.
pub fn monotonic_s() -> f64 {
    monotonic_ns() as f64 / 1e9
}

/// The current time of the running scheduler's event loop; outside a
/// scheduler, [`Instant::now`]. Deadlines for [`sleep_until`] should be
/// computed from this (it follows Tokio's paused clock in tests).
pub fn now() -> Instant {
    with_sched(|s| s.now()).unwrap_or_else(Instant::now)
}

/// Suspends the running fiber for `duration`.
///
/// Other fibers, I/O and timers run meanwhile; the thread is never blocked.
///
/// # Cancellation
///
/// A cancellation point. If the fiber is cancelled before the call or while
/// it sleeps, it wakes at once and this returns the cancellation error. If
/// the timer had already fired, the sleep counts as done and returns `Ok`.
///
/// # Errors
///
/// The fiber's cancellation error; [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber)
/// outside a fiber.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fuseau::block_on(|| {
///     let start = fuseau::time::now();
///     fuseau::sleep(Duration::from_millis(5))?;
///     assert!(start.elapsed() >= Duration::from_millis(5));
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn sleep(duration: Duration) -> Result<()> {
    with_fiber("sleep", |me| {
        let sched = entered_sched();
        let deadline = sched.now().checked_add(duration);
        sleep_inner(me, &sched, deadline)
    })
}

/// The scheduler of the running fiber (entered while any of its fibers
/// runs).
fn entered_sched() -> Rc<SchedInner> {
    current_sched().expect("a running fiber's scheduler is entered")
}

/// Suspends the running fiber until `deadline` (see [`now`]). Returns at
/// once (after a yield) if it is past.
///
/// # Cancellation
///
/// As [`sleep`].
///
/// # Errors
///
/// As [`sleep`].
pub fn sleep_until(deadline: Instant) -> Result<()> {
    with_fiber("sleep_until", |me| {
        let sched = entered_sched();
        sleep_inner(me, &sched, Some(deadline))
    })
}

/// `deadline: None` is a deadline too far to represent: sleep until cancelled.
fn sleep_inner(me: &Task, sched: &SchedInner, deadline: Option<Instant>) -> Result<()> {
    me.checkpoint()?;
    loop {
        // Each round is a wait of its own, with a wake-up of its own.
        me.begin_wait();
        let key = deadline.map(|d| sched.add_timer(d, TimerAction::Wake(Wakeup::new(me, 0))));
        me.park();
        let fired = key.is_some_and(|k| !sched.timer_armed(k));
        if fired {
            return Ok(());
        }
        if let Some(k) = key {
            task::Schedule::remove_timer(sched, k);
        }
        me.cancelled()?;
    }
}

/// Cancels the running fiber with a [`Timeout`](crate::ErrorKind::Timeout)
/// error after `duration`, unless it is done first. The fiber's next (or
/// current) suspension point then returns that error, and its children are
/// cancelled. Several deadlines may be armed; the first to expire wins.
/// A deadline that is due already (`Duration::ZERO`) cancels the fiber at
/// once; one that falls due while the fiber keeps running (yielding, or
/// passing suspension points that need not wait) fires at its next
/// suspension point.
///
/// Not a cancellation point.
///
/// # Errors
///
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) outside a fiber.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let result = fuseau::block_on(|| {
///     fuseau::cancel_after(Duration::from_millis(1))?;
///     fuseau::sleep(Duration::from_secs(3600))
/// });
/// assert!(result.unwrap_err().is_timeout());
/// ```
pub fn cancel_after(duration: Duration) -> Result<()> {
    with_fiber("cancel_after", |me| {
        let sched = entered_sched();
        let now = sched.now();
        let Some(deadline) = now.checked_add(duration) else {
            return Ok(()); // Too far to represent: never.
        };
        if deadline <= now {
            task::cancel(me, Error::timeout(), Origin::Own);
            return Ok(());
        }
        let key = sched.add_timer(deadline, TimerAction::Deadline(me.to_rc()));
        me.header().add_deadline(key);
        Ok(())
    })
}

/// An event that fails with [`Timeout`](crate::ErrorKind::Timeout) once
/// `duration` has passed (from now, on the scheduler's clock). Use it in a
/// [`select`](crate::select()) to bound a wait.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fuseau::{select, Chan, When};
///
/// let got = fuseau::block_on(|| {
///     let never: Chan<u32> = Chan::new();
///     select(vec![
///         When::new(never.ev_recv(), Some),
///         When::new(fuseau::ev_timeout(Duration::from_millis(2)), |()| None),
///     ])
/// });
/// assert!(got.unwrap_err().is_timeout());
/// ```
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub fn ev_timeout(duration: Duration) -> TimeoutEvent {
    TimeoutEvent {
        deadline: now().checked_add(duration),
    }
}

/// An event that fails with [`Timeout`](crate::ErrorKind::Timeout) at the
/// point in time `deadline` (see [`now`]). Unlike [`ev_timeout`], which
/// takes a duration, this takes an instant: a deadline shared by several
/// waits does not stretch.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub fn ev_deadline(deadline: Instant) -> TimeoutEvent {
    TimeoutEvent {
        deadline: Some(deadline),
    }
}

/// The event of [`ev_timeout`] and [`ev_deadline`]. It never succeeds: it
/// resolves to `Err(Timeout)` once its deadline has passed.
#[derive(Debug, Clone, Copy)]
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct TimeoutEvent {
    /// `None`: too far in the future to represent; never fires.
    deadline: Option<Instant>,
}

impl Event for TimeoutEvent {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        match self.deadline {
            Some(deadline) if now() >= deadline => Some(Err(Error::timeout())),
            _ => None,
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let (Some(deadline), Some(sched)) = (self.deadline, current_sched()) else {
            return CancelHandle::dummy();
        };
        let key = sched.add_timer(deadline, TimerAction::Wake(wakeup));
        // A weak reference: the handle lives on the waiting fiber's stack,
        // and must not keep the scheduler alive from there.
        let sched = Rc::downgrade(&sched);
        CancelHandle::new(move || {
            if let Some(sched) = sched.upgrade() {
                task::Schedule::remove_timer(&*sched, key);
            }
        })
    }
}
