//! The state word of a fiber, and every transition of it.
//!
//! One `Cell<u32>`: the [`Stage`] in the low three bits, flags above, and
//! in the top byte the fiber's coop count (suspension points passed since
//! it last suspended, `wait.rs`). The methods below are the only code that
//! changes it.
//!
//! | flag | set by | cleared by |
//! | --- | --- | --- |
//! | `QUEUED` | [`State::try_queue`] (a wake-up, a spawn, a yield) | [`State::resume`] (popped from the run queue) or [`State::dequeue`] (teardown) |
//! | `YIELDED` | [`State::yield_now`] | the scheduler, which requeues the fiber ([`State::take_yielded`]) |
//! | `WOKEN` | a wake-up of the current wait while the fiber runs | the start of the next wait |
//! | `CANCELLED` | [`State::cancel`], once | never |
//! | `UNWINDING` | [`State::unwind`]: the scheduler force-unwinds the stack | never |
//! | `DEADLINE` | `cancel_after` | never (it only routes checkpoints to the slow path) |
//! | `STARTED` | the body starts running | never |
//! | `PROPAGATE` | spawn, from `propagate_cancel_to_parent` | never |
//! | `RESUMED_PANICKING` | [`State::resume`], when the thread is panicking | the next resume |
//! | `SHARED_CLAIMS` | a wait publishes a cross-thread claim word (`wait.rs`) | the end of the last such wait |
//! | `SHIELDED` | the outermost `shield` starts ([`State::set_shielded`]) | the outermost `shield` ends |
//! | `SHIELD_DEADLINE` | a time limit starts (`shield_for`, `with_timeout`, `with_deadline`) | the last active time limit ends |
//! | `SHIELDED_CHILD` | a child is linked while its parent is `SHIELDED` | the parent's outermost shield ends |
//! | `OUTPUT_UNWANTED` | the fiber's `Fiber<T>` handle is dropped ([`State::release_output`]) | never |

use std::cell::Cell;

/// Where a fiber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Spawned, never run: it has no stack yet.
    NotStarted = 0,
    /// Its stack is executing.
    Running = 1,
    /// Waiting at a suspension point (or queued after a yield).
    Suspended = 2,
    /// Its body has returned; it waits for its children (and micro-tasks).
    Finishing = 3,
    /// Body returned and all children done. Final.
    Done = 4,
}

const STAGE: u32 = 0b111;
pub(crate) const QUEUED: u32 = 1 << 3;
pub(crate) const WOKEN: u32 = 1 << 4;
pub(crate) const CANCELLED: u32 = 1 << 5;
pub(crate) const UNWINDING: u32 = 1 << 6;
pub(crate) const YIELDED: u32 = 1 << 7;
pub(crate) const DEADLINE: u32 = 1 << 8;
pub(crate) const STARTED: u32 = 1 << 9;
pub(crate) const PROPAGATE: u32 = 1 << 10;
pub(crate) const RESUMED_PANICKING: u32 = 1 << 11;
/// Some wait of the fiber has a cross-thread claim word (`crate::claim`)
/// that is not ended yet: local claims and the end of a wait must consult
/// it. Never set for fibers that use only local events, whose hot paths
/// test this bit and nothing more.
pub(crate) const SHARED_CLAIMS: u32 = 1 << 12;
/// The fiber runs inside a `shield` (`crate::shield`): a cancellation is
/// recorded, not delivered (unless the stack is `UNWINDING`). Only read
/// once `CANCELLED` is set, so it costs nothing to fibers never cancelled.
pub(crate) const SHIELDED: u32 = 1 << 13;
/// A time limit is active (`shield_for`, or a deadline scope:
/// `with_timeout`, `with_deadline`): suspension points take their slow
/// path, which checks the limit, and spawns record the child's scope.
pub(crate) const SHIELD_DEADLINE: u32 = 1 << 14;
/// The fiber was linked to its parent while the parent was `SHIELDED`:
/// the parent's cancellation skips it until the parent's shield ends.
pub(crate) const SHIELDED_CHILD: u32 = 1 << 15;

/// The fiber's `Fiber<T>` handle, the only reader of its value, is gone:
/// the body's value is dropped as soon as it is produced (a flag here
/// rather than in the body, where it would cost a word per fiber).
pub(crate) const OUTPUT_UNWANTED: u32 = 1 << 16;

/// The coop count's place: the top byte.
const COOP_SHIFT: u32 = 24;
const COOP: u32 = 0xff << COOP_SHIFT;

/// The flags that send a suspension point to its slow path.
pub(crate) const CHECKPOINT_SLOW: u32 = CANCELLED | UNWINDING | DEADLINE | SHIELD_DEADLINE;

pub(crate) struct State(Cell<u32>);

impl State {
    pub(crate) fn new(propagate: bool) -> State {
        State(Cell::new(
            Stage::NotStarted as u32 | if propagate { PROPAGATE } else { 0 },
        ))
    }

    #[inline]
    pub(crate) fn has(&self, flags: u32) -> bool {
        self.0.get() & flags != 0
    }

    /// Suspension points passed since the fiber last suspended.
    #[inline]
    pub(crate) fn coop(&self) -> u8 {
        (self.0.get() >> COOP_SHIFT) as u8
    }

    /// One more suspension point passed without suspending. The caller
    /// keeps the count below its budget, far below 255.
    #[inline]
    pub(crate) fn count_coop(&self) {
        debug_assert!(self.coop() < u8::MAX);
        self.0.set(self.0.get() + (1 << COOP_SHIFT));
    }

    /// The fiber suspends: the coop count starts over.
    #[inline]
    pub(crate) fn reset_coop(&self) {
        self.0.set(self.0.get() & !COOP);
    }

    #[inline]
    pub(crate) fn stage(&self) -> Stage {
        match self.0.get() & STAGE {
            0 => Stage::NotStarted,
            1 => Stage::Running,
            2 => Stage::Suspended,
            3 => Stage::Finishing,
            _ => Stage::Done,
        }
    }

    #[inline]
    fn set_stage(&self, stage: Stage) {
        self.0.set(self.0.get() & !STAGE | stage as u32);
    }

    #[inline]
    fn set(&self, flags: u32) {
        self.0.set(self.0.get() | flags);
    }

    #[inline]
    fn clear(&self, flags: u32) {
        self.0.set(self.0.get() & !flags);
    }

    /// Marks the fiber queued; `false` if it was already (it must not be
    /// queued twice).
    #[inline]
    pub(crate) fn try_queue(&self) -> bool {
        let s = self.0.get();
        self.0.set(s | QUEUED);
        s & QUEUED == 0
    }

    /// Teardown empties the run queue without running what is in it.
    pub(crate) fn dequeue(&self) {
        self.clear(QUEUED);
    }

    /// The scheduler is about to switch to the fiber (popped from the run
    /// queue): it runs.
    #[inline]
    pub(crate) fn resume(&self, panicking: bool) {
        let s = self.0.get() & !(STAGE | QUEUED | RESUMED_PANICKING);
        self.0
            .set(s | Stage::Running as u32 | if panicking { RESUMED_PANICKING } else { 0 });
    }

    /// The fiber suspends to wait.
    #[inline]
    pub(crate) fn suspend(&self) {
        self.set_stage(Stage::Suspended);
    }

    /// The fiber suspends to go to the back of the run queue.
    #[inline]
    pub(crate) fn yield_now(&self) {
        self.0
            .set(self.0.get() & !STAGE | Stage::Suspended as u32 | QUEUED | YIELDED);
    }

    /// After a switch back from the fiber: `true` if it yielded (and must be
    /// requeued by the caller, which holds its reference).
    #[inline]
    pub(crate) fn take_yielded(&self) -> bool {
        let s = self.0.get();
        self.0.set(s & !YIELDED);
        s & YIELDED != 0
    }

    /// A new wait starts: no wake-up of it has arrived yet.
    #[inline]
    pub(crate) fn begin_wait(&self) {
        self.clear(WOKEN);
    }

    /// A wake-up of the current wait arrived while the fiber runs.
    pub(crate) fn set_woken(&self) {
        self.set(WOKEN);
    }

    /// Marks the fiber cancelled; `false` if it was already.
    pub(crate) fn cancel(&self) -> bool {
        let was = self.has(CANCELLED);
        self.set(CANCELLED);
        !was
    }

    /// The scheduler force-unwinds the fiber's stack: it must not suspend
    /// again.
    pub(crate) fn unwind(&self) {
        self.set(UNWINDING);
    }

    /// A wait published a cross-thread claim word.
    pub(crate) fn set_shared_claims(&self) {
        self.set(SHARED_CLAIMS);
    }

    /// The last cross-thread claim word was ended.
    pub(crate) fn clear_shared_claims(&self) {
        self.clear(SHARED_CLAIMS);
    }

    /// The outermost shield starts (`true`) or ends (`false`).
    pub(crate) fn set_shielded(&self, on: bool) {
        self.put(SHIELDED, on);
    }

    /// A time limit is active (`true`) or none is (`false`).
    pub(crate) fn set_shield_deadline(&self, on: bool) {
        self.put(SHIELD_DEADLINE, on);
    }

    /// The fiber is linked under a shielded parent (`true`), or that
    /// parent's shield ended (`false`).
    pub(crate) fn set_shielded_child(&self, on: bool) {
        self.put(SHIELDED_CHILD, on);
    }

    fn put(&self, flags: u32, on: bool) {
        if on {
            self.set(flags);
        } else {
            self.clear(flags);
        }
    }

    pub(crate) fn set_deadline(&self) {
        self.set(DEADLINE);
    }

    pub(crate) fn body_started(&self) {
        self.set(STARTED);
    }

    /// The fiber's handle is dropped: nobody will take its value.
    pub(crate) fn release_output(&self) {
        self.set(OUTPUT_UNWANTED);
    }

    /// `true` while the fiber's handle exists, to take its value.
    pub(crate) fn output_wanted(&self) -> bool {
        !self.has(OUTPUT_UNWANTED)
    }

    /// The body returned (or will never run).
    pub(crate) fn finish(&self) {
        self.set_stage(Stage::Finishing);
    }

    /// Body returned, children done: final.
    pub(crate) fn complete(&self) {
        self.set_stage(Stage::Done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_keep_the_other_bits() {
        let s = State::new(true);
        assert_eq!(s.stage(), Stage::NotStarted);
        assert!(s.try_queue());
        assert!(!s.try_queue(), "queued twice");
        s.resume(false);
        assert_eq!(s.stage(), Stage::Running);
        assert!(!s.has(QUEUED));
        assert!(s.has(PROPAGATE));
        s.yield_now();
        assert_eq!(s.stage(), Stage::Suspended);
        assert!(s.has(QUEUED | YIELDED));
        assert!(s.take_yielded());
        assert!(!s.take_yielded());
        assert!(s.cancel());
        assert!(!s.cancel(), "cancelled twice");
        s.resume(true);
        assert!(s.has(RESUMED_PANICKING | CANCELLED));
        s.resume(false);
        assert!(!s.has(RESUMED_PANICKING));
        s.finish();
        s.complete();
        assert_eq!(s.stage(), Stage::Done);
        assert!(s.has(CANCELLED | PROPAGATE));
    }

    #[test]
    fn shield_bits_come_and_go() {
        let s = State::new(false);
        s.set_shielded(true);
        s.set_shield_deadline(true);
        s.set_shielded_child(true);
        assert!(s.has(SHIELDED) && s.has(SHIELD_DEADLINE) && s.has(SHIELDED_CHILD));
        assert!(
            s.has(CHECKPOINT_SLOW),
            "a time limit routes checkpoints to the slow path"
        );
        s.set_shield_deadline(false);
        assert!(!s.has(CHECKPOINT_SLOW), "a shield alone does not");
        s.set_shielded(false);
        s.set_shielded_child(false);
        assert!(!s.has(SHIELDED | SHIELD_DEADLINE | SHIELDED_CHILD));
        assert_eq!(s.stage(), Stage::NotStarted);
    }
}
