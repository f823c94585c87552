//! Time: the clock, sleeping, deadlines, and the scheduler's timer queue.
//!
//! Timers are kept by the scheduler in one ordered map and measured against
//! its [`EventLoop`](crate::EventLoop)'s clock; the event loop only has to
//! wake up at the earliest deadline. Under `fuseau_tokio` the clock is
//! Tokio's, so tests with paused time (`start_paused`) run sleeps instantly
//! and deterministically.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cancel::CancelHandle;
use crate::error::{Error, Result};
use crate::event::{Event, Wakeup};
use crate::scheduler::{current_sched, require_task};
use crate::task::{self, Task};

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
    current_sched().map_or_else(Instant::now, |s| s.now())
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
    let me = require_task("sleep")?;
    let deadline = me
        .core()
        .sched
        .upgrade()
        .and_then(|s| s.now().checked_add(duration));
    sleep_inner(&me, deadline)
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
    let me = require_task("sleep_until")?;
    sleep_inner(&me, Some(deadline))
}

/// `deadline: None` is a deadline too far to represent: sleep until cancelled.
fn sleep_inner(me: &Rc<Task>, deadline: Option<Instant>) -> Result<()> {
    task::checkpoint(me)?;
    let sched = me
        .core()
        .sched
        .upgrade()
        .expect("a running fiber's scheduler is alive");
    let arm = || deadline.map(|d| sched.add_timer(d, TimerAction::Wake(Wakeup::for_task(me))));
    let mut key = arm();
    loop {
        task::park(me);
        let fired = key.is_some_and(|k| !sched.timer_armed(k));
        if fired {
            return Ok(());
        }
        if let Some(k) = key {
            sched.remove_timer(k);
        }
        if let Some(e) = me.core().cancel_error() {
            return Err(e);
        }
        // Woken for nothing: the next wait needs a wake-up of its own (the
        // old one belongs to the wait that just ended).
        key = arm();
    }
}

/// Cancels the running fiber with a [`Timeout`](crate::ErrorKind::Timeout)
/// error after `duration`, unless it is done first. The fiber's next (or
/// current) suspension point then returns that error, and its children are
/// cancelled. Several deadlines may be armed; the first to expire wins.
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
    let me = require_task("cancel_after")?;
    let sched = me
        .core()
        .sched
        .upgrade()
        .expect("a running fiber's scheduler is alive");
    if let Some(deadline) = sched.now().checked_add(duration) {
        let key = sched.add_timer(deadline, TimerAction::Deadline(me.clone()));
        me.core().with_extras(|e| e.deadlines.push(key));
    }
    Ok(())
}

/// An event that fails with [`Timeout`](crate::ErrorKind::Timeout) once
/// `duration` has passed (from now, on the scheduler's clock). Use it in a
/// [`select`](crate::select) to bound a wait.
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
pub fn ev_timeout(duration: Duration) -> TimeoutEvent {
    TimeoutEvent {
        deadline: now().checked_add(duration),
    }
}

/// An event that fails with [`Timeout`](crate::ErrorKind::Timeout) at the
/// point in time `deadline` (see [`now`]). Unlike [`ev_timeout`], which
/// takes a duration, this takes an instant: a deadline shared by several
/// waits does not stretch.
pub fn ev_deadline(deadline: Instant) -> TimeoutEvent {
    TimeoutEvent {
        deadline: Some(deadline),
    }
}

/// The event of [`ev_timeout`] and [`ev_deadline`]. It never succeeds: it
/// resolves to `Err(Timeout)` once its deadline has passed.
#[derive(Debug, Clone, Copy)]
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
                sched.remove_timer(key);
            }
        })
    }
}

/// Identifies an armed timer: its deadline and a sequence number that
/// orders timers with the same deadline by arming order.
pub(crate) type TimerKey = (Instant, u64);

pub(crate) enum TimerAction {
    /// Wake a sleeping fiber.
    Wake(Wakeup),
    /// Cancel a fiber with `Timeout` (`cancel_after`).
    Deadline(Rc<Task>),
}

/// Armed timers, earliest first.
#[derive(Default)]
pub(crate) struct TimerQueue {
    timers: BTreeMap<TimerKey, TimerAction>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn new() -> TimerQueue {
        TimerQueue::default()
    }

    pub(crate) fn insert(&mut self, deadline: Instant, action: TimerAction) -> TimerKey {
        let key = (deadline, self.next_seq);
        self.next_seq += 1;
        self.timers.insert(key, action);
        key
    }

    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<TimerAction> {
        self.timers.remove(&key)
    }

    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        self.timers.contains_key(&key)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimerAction> {
        let entry = self.timers.first_entry()?;
        if entry.key().0 <= now {
            Some(entry.remove())
        } else {
            None
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|(k, _)| k.0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A timer queue whose actions are never run: only keys matter here, so
    /// the tests use deadline timers of no fiber, encoded by `Wake`-less
    /// bookkeeping on the side.
    fn queue_of(deadlines: &[u64], base: Instant) -> (TimerQueue, Vec<TimerKey>) {
        let mut q = TimerQueue::new();
        let keys = deadlines
            .iter()
            .map(|&ms| q.insert(base + Duration::from_millis(ms), dummy_action()))
            .collect();
        (q, keys)
    }

    fn dummy_action() -> TimerAction {
        TimerAction::Deadline(crate::fiber::tests_support::dummy_task())
    }

    proptest! {
        #[test]
        fn pops_in_deadline_then_arming_order(deadlines in proptest::collection::vec(0u64..50, 0..40), now in 0u64..60) {
            let base = Instant::now();
            let (mut q, keys) = queue_of(&deadlines, base);
            let mut expected: Vec<TimerKey> = keys.iter().copied().filter(|k| k.0 <= base + Duration::from_millis(now)).collect();
            expected.sort();
            let mut popped = 0;
            while q.pop_expired(base + Duration::from_millis(now)).is_some() {
                popped += 1;
            }
            prop_assert_eq!(popped, expected.len());
            prop_assert_eq!(q.len(), deadlines.len() - expected.len());
            if let Some(next) = q.next_deadline() {
                prop_assert!(next > base + Duration::from_millis(now));
            }
        }

        #[test]
        fn removed_timers_never_fire(deadlines in proptest::collection::vec(0u64..50, 1..40), pick in any::<prop::sample::Index>()) {
            let base = Instant::now();
            let (mut q, keys) = queue_of(&deadlines, base);
            let victim = keys[pick.index(keys.len())];
            prop_assert!(q.remove(victim).is_some());
            prop_assert!(q.remove(victim).is_none());
            prop_assert!(!q.contains(victim));
            let mut n = 0;
            while q.pop_expired(base + Duration::from_secs(1)).is_some() { n += 1; }
            prop_assert_eq!(n, deadlines.len() - 1);
        }
    }
}
