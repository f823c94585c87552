//! How a fiber waits: epochs, [`Wakeup`], park, yield and the checkpoint
//! at every suspension point.
//!
//! Every wait (one call of a suspension point) starts with
//! [`Task::begin_wait`], which gives it a new epoch. A [`Wakeup`] carries
//! the epoch of the wait it was made for; waking it does nothing once that
//! wait is over, so a registration that was not removed in time (a timer, a
//! waker a future kept) can never wake a later, unrelated wait.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use super::state::{
    Stage, CANCELLED, CHECKPOINT_SLOW, DEADLINE, RESUMED_PANICKING, SHARED_CLAIMS, SHIELD_DEADLINE,
    UNWINDING, WOKEN,
};
use super::{tree, Origin, Task};
use crate::claim::Claim;
use crate::error::{Error, ErrorKind, Result};
use crate::id::FiberId;

/// The epoch of a shield's alarm ([`Wakeup::shield_alarm`]): no wait ever
/// has it (epochs count up from zero, one per wait).
const SHIELD_ALARM: u64 = u64::MAX;

/// How many suspension points in a row a fiber may pass without waiting
/// before one of them yields anyway (Tokio's coop budget is 128 too).
pub(crate) const COOP_BUDGET: u8 = 128;

thread_local! {
    /// How many cancel callbacks are running on this thread (`forbid_waits`).
    static NO_WAIT: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with every suspension point failing at once (a cancel callback:
/// it runs on the stack of whatever cancels, which must never be paused by
/// it; see `tree::cancel`).
pub(crate) fn forbid_waits<R>(f: impl FnOnce() -> R) -> R {
    struct Allow;
    impl Drop for Allow {
        fn drop(&mut self) {
            NO_WAIT.with(|n| n.set(n.get() - 1));
        }
    }
    NO_WAIT.with(|n| n.set(n.get() + 1));
    let _allow = Allow;
    f()
}

/// Wakes a fiber that waits (thread-bound; see [`Wakeup::to_waker`] for
/// other threads).
///
/// Cheap to clone: all clones wake the same wait.
#[derive(Clone)]
pub struct Wakeup {
    task: Rc<Task>,
    epoch: u64,
    /// Which branch of a `select` this wake-up was given to.
    branch: u32,
}

impl Wakeup {
    /// A wake-up for branch `branch` of the current wait of `task`.
    pub(crate) fn new(task: &Task, branch: usize) -> Wakeup {
        Wakeup {
            task: task.to_rc(),
            epoch: task.header().epoch.get(),
            branch: u32::try_from(branch)
                .ok()
                .filter(|&b| b != u32::MAX)
                .expect("a select has fewer than 2^32 - 1 branches"),
        }
    }

    /// The alarm of a `shield_for` time limit (`crate::shield`): woken (by
    /// its timer), it wakes whatever wait the fiber is in, if a time limit
    /// of one of its active shields has passed by then.
    pub(crate) fn shield_alarm(task: &Task) -> Wakeup {
        Wakeup {
            task: task.to_rc(),
            epoch: SHIELD_ALARM,
            branch: 0,
        }
    }

    pub(crate) fn is_for(&self, task: &Task) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.task), task)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Queues the fiber if it is still in the wait this wake-up belongs to.
    /// Idempotent. Must be called on the fiber's thread (the type is `!Send`).
    pub fn wake(&self) {
        self.task.wake(self.epoch);
    }

    /// Claims the wait for this wake-up's branch and wakes the fiber;
    /// `false` if the wait is over or another branch claimed it first.
    ///
    /// An event that completes by handing something over to the waiting
    /// fiber (a channel giving it a value, or taking the value it offers)
    /// must claim first and hand over only on `true`: the fiber's
    /// [`select`](crate::select()) then reports this branch, whatever else
    /// became ready, so nothing handed over is lost or reported undone.
    /// Must be called on the fiber's thread.
    pub fn claim(&self) -> bool {
        let h = self.task.header();
        let waiting = matches!(h.state.stage(), Stage::Suspended | Stage::Running);
        if !waiting || h.epoch.get() != self.epoch || h.claimed.get().is_some() {
            return false;
        }
        if h.state.has(SHARED_CLAIMS) {
            return self.claim_shared();
        }
        h.claimed.set(Some(self.branch));
        self.wake();
        true
    }

    /// [`claim`](Wakeup::claim) in a fiber with claim words: the wait may
    /// be claimed from other threads too, and its word (if it has one)
    /// decides. (Out of line, so that the common case stays a leaf.)
    #[cold]
    #[inline(never)]
    fn claim_shared(&self) -> bool {
        if !self.task.claim_word(self.epoch, self.branch) {
            return false;
        }
        self.task.header().claimed.set(Some(self.branch));
        self.wake();
        true
    }

    /// The claim word of this wake-up's wait, for an event that other
    /// threads may complete (`crate::claim`), and the branch to claim it
    /// for. Made on first use (the first such event of the wait), then
    /// shared by every branch of the wait. For a wake-up whose wait is over
    /// (an event driven by hand), a word that nothing can claim.
    pub(crate) fn shared_claim(&self) -> (Arc<Claim>, u32) {
        let h = self.task.header();
        let current = h.epoch.get() == self.epoch && h.state.stage() == Stage::Running;
        let claim = if current {
            self.task.publish_claim()
        } else {
            Arc::new(Claim::ended())
        };
        (claim, self.branch)
    }

    /// The id of the fiber this wakes.
    pub fn fiber_id(&self) -> FiberId {
        self.task.header().id
    }

    /// A [`Waker`] that may be sent to, and woken from, any thread. Woken
    /// on the scheduler's own thread (by a Tokio task, say), it wakes the
    /// fiber at once, as [`wake`](Wakeup::wake) would, and unparks the event
    /// loop if the scheduler is not running; woken from another thread, it
    /// sends a message to the scheduler and unparks its event loop, and the
    /// scheduler then wakes the fiber. A waker outliving its scheduler does
    /// nothing.
    pub fn to_waker(&self) -> Waker {
        super::waker::to_waker(&self.task, self.epoch)
    }
}

impl fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wakeup")
            .field("fiber", &self.fiber_id())
            .field("epoch", &self.epoch)
            .field("branch", &self.branch)
            .finish()
    }
}

/// The cross-thread claim words of a fiber's waits (in its extras).
#[derive(Default)]
pub(crate) struct SharedWaits {
    /// The words of the waits that are not ended yet, by epoch
    /// (`SHARED_CLAIMS` is set while this is not empty). Usually one; more
    /// only while a wait runs inside another (an event's `poll` that
    /// suspended the fiber).
    claims: Vec<(u64, Arc<Claim>)>,
    /// An ended word, kept for the next wait to reuse if nothing else holds
    /// it by then (`crate::claim` rule 4).
    spare: Option<Arc<Claim>>,
}

impl SharedWaits {
    /// The word of wait `epoch`, if it has one.
    fn find(&self, epoch: u64) -> Option<&(u64, Arc<Claim>)> {
        self.claims.iter().find(|(ep, _)| *ep == epoch)
    }
}

impl Task {
    /// Queues the fiber to run, if it is waiting (suspended or not started)
    /// and not queued already.
    pub(crate) fn make_ready(&self) {
        let h = self.header();
        if !matches!(h.state.stage(), Stage::Suspended | Stage::NotStarted) || !h.state.try_queue()
        {
            return;
        }
        match h.sched() {
            Some(sched) => sched.schedule(self.to_rc()),
            None => h.state.dequeue(),
        }
    }

    /// Called for a fiber in a `Wakeup`: queue it if it waits on `epoch`.
    pub(crate) fn wake(&self, epoch: u64) {
        let h = self.header();
        if h.epoch.get() != epoch {
            if epoch == SHIELD_ALARM {
                self.limits_changed();
            }
            return;
        }
        match h.state.stage() {
            Stage::Suspended => self.make_ready(),
            Stage::Running => h.state.set_woken(),
            _ => {}
        }
    }

    /// The alarm of a time limit rang (`shield_for`, `with_timeout`,
    /// `with_deadline`), or a fiber scope failed (`crate::scope`): the
    /// deadline scopes that have passed cancel the fibers spawned inside
    /// them, and a suspended fiber whose limit has passed is woken, to fail
    /// with the limit's error.
    #[cold]
    pub(crate) fn limits_changed(&self) {
        if self.limit_passed().is_some() && self.header().state.stage() == Stage::Suspended {
            self.make_ready();
        }
    }

    /// The error of the active limit that passed first, if one has (see
    /// [`Task::expire_limits`]).
    fn limit_passed(&self) -> Option<Error> {
        let h = self.header();
        if !h.state.has(SHIELD_DEADLINE) {
            return None;
        }
        let now = h.sched()?.now();
        self.expire_limits(now)
    }

    /// The error a suspension point of the running fiber must return now,
    /// if any: its cancellation, unless a shield holds it; else, inside a
    /// time limit (`shield_for`, a deadline scope) that has passed, a
    /// `Timeout` naming it.
    #[cold]
    fn interruption(&self) -> Option<Error> {
        if let Some(e) = self.header().cancel_error() {
            return Some(e);
        }
        self.limit_passed()
    }

    /// Starts a new wait of the running fiber: a new epoch, so that no
    /// wake-up made before can wake it, and no claim yet.
    #[inline]
    pub(crate) fn begin_wait(&self) {
        let h = self.header();
        h.epoch.set(h.epoch.get() + 1);
        h.claimed.set(None);
        h.state.begin_wait();
    }

    /// The current epoch (for wake-ups made outside a `Wakeup`).
    pub(crate) fn epoch(&self) -> u64 {
        self.header().epoch.get()
    }

    /// How many times the fiber has suspended so far.
    #[inline]
    pub(crate) fn switches(&self) -> u32 {
        self.header().switches.get()
    }

    /// Suspends the running fiber until a wake-up of the current wait or a
    /// cancellation. Returns at once, without suspending, if a wake-up or a
    /// claim (from this thread or another) already arrived while it was
    /// running, or if it is cancelled (and no shield holds it), or a
    /// `shield_for` time limit has passed. Returns the branch that claimed the
    /// wait locally, if one did (waits with events that other threads may
    /// complete learn their outcome from [`end_wait`](Task::end_wait)).
    pub(crate) fn park(&self) -> Option<usize> {
        let h = self.header();
        let woken = h.state.has(WOKEN)
            || h.claimed.get().is_some()
            || (h.state.has(SHARED_CLAIMS) && self.claimed_from_afar());
        let refused =
            h.state.has(CANCELLED | UNWINDING | SHIELD_DEADLINE) && self.must_not_suspend();
        if !(woken || refused) {
            h.state.suspend();
            self.switch_out();
        }
        h.claimed.get().map(|branch| branch as usize)
    }

    /// `park` must not suspend: the stack is being force-unwound, or a
    /// suspension point would fail now ([`interruption`](Task::interruption)).
    #[cold]
    fn must_not_suspend(&self) -> bool {
        self.header().state.has(UNWINDING) || self.interruption().is_some()
    }

    /// Ends wait `epoch`: the current wait, or one that a wait nested in it
    /// (an event's `poll` that suspended) has replaced. Its claim word, if
    /// it has one, is ended, so that nothing can claim the wait any more.
    /// Returns the branch that claimed the wait, if one did (on this thread
    /// or another). Idempotent.
    #[inline]
    pub(crate) fn end_wait(&self, epoch: u64) -> Option<usize> {
        let h = self.header();
        let local = if h.epoch.get() == epoch {
            h.claimed.get()
        } else {
            // Replaced by a nested wait, during which no local claim of it
            // could succeed (its epoch was not current).
            None
        };
        if h.state.has(SHARED_CLAIMS) {
            return self.end_shared_wait(epoch, local);
        }
        local.map(|branch| branch as usize)
    }

    #[cold]
    fn end_shared_wait(&self, epoch: u64, local: Option<u32>) -> Option<usize> {
        let h = self.header();
        let ended = h.with_extras(|e| {
            let waits = e.shared_waits.as_deref_mut()?;
            let i = waits.claims.iter().position(|(ep, _)| *ep == epoch)?;
            let (_, claim) = waits.claims.swap_remove(i);
            let branch = claim.end();
            let replaced = waits.spare.replace(claim);
            Some((branch, waits.claims.is_empty(), replaced))
        });
        let Some((branch, none_left, replaced)) = ended else {
            return local.map(|b| b as usize);
        };
        drop(replaced);
        if none_left {
            h.state.clear_shared_claims();
        }
        // A local claim CASed the word too, so both agree when both exist.
        debug_assert!(local.is_none() || branch == local, "two branches claimed");
        if branch.is_some() && h.epoch.get() == epoch {
            h.claimed.set(branch);
        }
        branch.or(local).map(|b| b as usize)
    }

    /// `true` if another thread claimed the current wait.
    #[cold]
    fn claimed_from_afar(&self) -> bool {
        let h = self.header();
        let epoch = h.epoch.get();
        h.read_extras(|e| {
            let (_, claim) = e.shared_waits.as_deref()?.find(epoch)?;
            claim.claimed_branch()
        })
        .is_some()
    }

    /// A local claim of branch `branch` of wait `epoch`, in a fiber with
    /// claim words: `false` if the wait's word was claimed (or ended)
    /// already. A wait without a word (only local events) is claimed
    /// locally alone.
    fn claim_word(&self, epoch: u64, branch: u32) -> bool {
        self.header()
            .read_extras(|e| {
                let (_, claim) = e.shared_waits.as_deref()?.find(epoch)?;
                Some(claim.try_claim(branch))
            })
            .unwrap_or(true)
    }

    /// The claim word of the current wait (the running fiber's), made and
    /// published on first use: a spare one is reused if nothing else holds
    /// it (`crate::claim` rule 4). Made claimed already if a local claim of
    /// this wait came first.
    fn publish_claim(&self) -> Arc<Claim> {
        let h = self.header();
        let epoch = h.epoch.get();
        if h.state.has(SHARED_CLAIMS) {
            let published = h.read_extras(|e| {
                let (_, claim) = e.shared_waits.as_deref()?.find(epoch)?;
                Some(claim.clone())
            });
            if let Some(claim) = published {
                return claim;
            }
        }
        let mut spare = h.with_extras(|e| e.shared_waits.as_deref_mut()?.spare.take());
        match spare.as_mut().and_then(Arc::get_mut) {
            // Its old waker goes first, so that the fiber's cached waker is
            // free for reuse by `waker()` below.
            Some(unique) => unique.reset(Waker::noop().clone(), None),
            None => spare = None,
        }
        let waker = self.waker();
        let claimed = h.claimed.get();
        let claim = match spare {
            Some(mut claim) => {
                Arc::get_mut(&mut claim)
                    .expect("unique (checked above)")
                    .reset(waker, claimed);
                claim
            }
            None => Arc::new(match claimed {
                Some(branch) => Claim::claimed(waker, branch),
                None => Claim::new(waker),
            }),
        };
        h.with_extras(|e| {
            let waits = e.shared_waits.get_or_insert_with(Box::default);
            waits.claims.push((epoch, claim.clone()));
        });
        h.state.set_shared_claims();
        claim
    }

    /// Puts the running fiber at the back of the run queue and switches to
    /// the scheduler.
    #[inline]
    pub(crate) fn yield_now(&self) {
        let h = self.header();
        if !h.state.has(UNWINDING) {
            h.state.yield_now();
            self.switch_out();
        }
    }

    #[inline]
    fn switch_out(&self) {
        let h = self.header();
        h.switches.set(h.switches.get().wrapping_add(1));
        h.state.reset_coop();
        h.yielder.suspend();
    }

    /// The check at every suspension point, before it waits: `Err` if the
    /// fiber is cancelled (after yielding once, so that a loop ignoring the
    /// error cannot starve the scheduler or stall its teardown), if a
    /// deadline of its own is due (it is cancelled then), if it is unwinding
    /// a panic, or inside a cancel callback. Inside a shield, a cancellation
    /// is not an error (it is held), but a passed `shield_for` time limit is
    /// (`Timeout`, after yielding once too).
    ///
    /// It also keeps a busy fiber from starving the others: the
    /// [`COOP_BUDGET`]th suspension point in a row that did not have to
    /// wait (an always-ready channel, a ready future) yields first, and
    /// ends the scheduler's iteration, so that the event loop, timers and
    /// messages from other threads are served.
    #[inline]
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let h = self.header();
        if h.state.coop() >= COOP_BUDGET
            || h.state.has(CHECKPOINT_SLOW)
            || NO_WAIT.with(|n| n.get()) != 0
            || std::thread::panicking()
        {
            return self.checkpoint_slow();
        }
        h.state.count_coop();
        Ok(())
    }

    #[cold]
    fn checkpoint_slow(&self) -> Result<()> {
        let h = self.header();
        if NO_WAIT.with(|n| n.get()) != 0 {
            return Err(in_cancel_callback());
        }
        if h.state.has(DEADLINE) && !h.state.has(CANCELLED) {
            let due = h
                .earliest_deadline()
                .zip(h.sched())
                .is_some_and(|(deadline, sched)| sched.now() >= deadline);
            if due {
                tree::cancel(self, Error::timeout(), Origin::Own);
            }
        }
        // A fiber that is unwinding a panic (a destructor that waits, say)
        // must not suspend: other fibers would then run while the thread
        // counts as panicking, and every mutex they release would be
        // poisoned. So a suspension point there fails at once, without
        // yielding. (Unless the thread was panicking already when the fiber
        // resumed: a scheduler torn down by a panic outside the fibers runs
        // them while the thread panics, and a cancelled fiber that ignores
        // its errors in a loop must still yield, or the teardown would never
        // end.)
        let unwinding_a_panic = std::thread::panicking() && !h.state.has(RESUMED_PANICKING);
        match self.interruption() {
            Some(e) => {
                if !unwinding_a_panic {
                    self.yield_now();
                }
                Err(e)
            }
            None if unwinding_a_panic => Err(unwinding_a_panic_error()),
            None if h.state.coop() >= COOP_BUDGET => {
                if let Some(sched) = h.sched().filter(|_| !h.state.has(UNWINDING)) {
                    sched.budget_spent();
                }
                self.yield_now();
                self.cancelled()
            }
            None => {
                h.state.count_coop();
                Ok(())
            }
        }
    }

    /// Why the running fiber may not wait at all now, if it may not: it
    /// runs a cancel callback, or unwinds a panic (see
    /// [`checkpoint`](Task::checkpoint)). Calls that must wait before they
    /// return (`crate::scope`) refuse to start then.
    pub(crate) fn waits_refused(&self) -> Option<Error> {
        if NO_WAIT.with(|n| n.get()) != 0 {
            return Some(in_cancel_callback());
        }
        let h = self.header();
        (std::thread::panicking() && !h.state.has(RESUMED_PANICKING)).then(unwinding_a_panic_error)
    }

    /// `Err` with the cancellation error if the fiber is cancelled (after a
    /// wait, without yielding again), unless a shield holds it; inside a
    /// `shield_for` whose time limit has passed, `Err(Timeout)`.
    #[inline]
    pub(crate) fn cancelled(&self) -> Result<()> {
        if !self.header().state.has(CANCELLED | SHIELD_DEADLINE) {
            return Ok(());
        }
        self.cancelled_slow()
    }

    #[cold]
    fn cancelled_slow(&self) -> Result<()> {
        match self.interruption() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn in_cancel_callback() -> Error {
    Error::new(
        ErrorKind::Other,
        "a cancel callback cannot wait: it runs on the stack of whatever cancels \
         (see fuseau::with_cancel_callback)",
    )
}

fn unwinding_a_panic_error() -> Error {
    Error::new(
        ErrorKind::Other,
        "a fiber cannot wait while it unwinds a panic",
    )
}

impl Task {
    /// A [`Waker`] for the current wait of the running fiber (see
    /// [`Wakeup::to_waker`]).
    pub(crate) fn waker(&self) -> Waker {
        super::waker::to_waker(self, self.epoch())
    }
}
