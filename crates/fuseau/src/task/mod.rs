//! The fiber record ([`Task`]): what a fiber is, inside.
//!
//! Every fiber is one allocation, `Rc<Task<Closure<T, F>>>`: a non-generic
//! [`Header`] first, then its body. The scheduler sees `Task` (its body's
//! type erased behind [`Body`]); a `Fiber<T>` handle sees
//! `Task<dyn Output<T>>`, which also gives the body's value back.
//!
//! # References to a fiber
//!
//! - The scheduler's **registry** (a slab) holds one `Rc` to every fiber that
//!   is not done; a fiber leaves it when it completes. So a fiber that can
//!   still run is never freed.
//! - The **run queue** holds an `Rc` to every queued fiber. Only fibers that
//!   are not started or suspended are queued (the `QUEUED` bit says so),
//!   and a yielding fiber's `Rc` goes from the run loop straight back to the
//!   queue, with no count traffic.
//! - **Handles** (`Fiber<T>`, `AnyFiber`), **wake-ups** ([`Wakeup`]) and the
//!   parent/child links hold `Rc`s. Links only form cycles until completion,
//!   which breaks them.
//! - The **running fiber** is known from the switch: the scheduler records a
//!   raw pointer to it in a thread-local just before it resumes the fiber's
//!   coroutine and restores the previous value when the coroutine returns or
//!   suspends (`scheduler::context`). The coroutine lives *inside* the
//!   record and is borrowed while it runs, so the record outlives every frame
//!   of the fiber's stack, and a `&Task` that code on that stack obtained
//!   stays valid across the fiber's suspensions.
//! - [`Waker`](std::task::Waker)s, which may go to other threads, hold no
//!   reference: they name the fiber by slab key and id (`waker.rs`).
//!
//! # The state word
//!
//! One [`Cell<u32>`](std::cell::Cell) (`state.rs`): the stage (not started,
//! running, suspended, finishing, done) and the flags `QUEUED`, `WOKEN`,
//! `CANCELLED`, `UNWINDING`, `YIELDED`, `DEADLINE`, `STARTED`,
//! `PROPAGATE`, `RESUMED_PANICKING`, `SHARED_CLAIMS`, `SHIELDED`,
//! `SHIELD_DEADLINE`, `SHIELDED_CHILD`, `OUTPUT_UNWANTED`; and the coop
//! count in its top byte. Every transition is a method in `state.rs`;
//! nobody else flips bits. The hot paths read only
//! this word: the cancellation error itself is read on the slow path, once
//! `CANCELLED` is set (and a wait's cross-thread claim word once
//! `SHARED_CLAIMS` is).
//!
//! # Size
//!
//! Every suspended fiber costs its record (besides a page of stack), so
//! the header is kept to 184 bytes (a test pins it): small fields are
//! `u32`s that pack together, lists are thin vectors or `Cell`s without
//! borrow flags, the scheduler is reached through one shared
//! [`SchedLink`], and whatever most fibers never use (cancel callbacks,
//! deadlines, fiber-locals, scopes, micro-tasks …) is in the boxed
//! [`Extras`]. A fiber whose closure captures two pointers is then one
//! 216-byte allocation (glibc's 224-byte chunk); issue 10's budget for a
//! blocked fiber's record, handle and channel wait is 512 bytes.
//!
//! # Ownership rules
//!
//! 1. Everything here lives on one thread, the scheduler's; the types are
//!    `!Send`.
//! 2. A fiber's `coroutine` cell holds its coroutine from its first run to
//!    the end of its body. While the fiber runs, the scheduler keeps the cell
//!    borrowed (the one borrow held across a context switch): only the
//!    scheduler touches it, and only for a fiber that is not running.
//! 3. Apart from that, no `RefCell` borrow is held while user code runs (a
//!    fiber body, a drop of user data, a cancel callback, a `Clone` of a
//!    fiber-local value) or across a context switch: every borrow below is
//!    taken and released within one statement or block, and what must be
//!    dropped or called is taken out first.
//! 4. A wake-up only queues a fiber; it never switches to it. Each wait has
//!    an epoch, a new one at the start of every wait (`wait.rs`); a
//!    [`Wakeup`] of an older epoch does nothing, and one that arrives while
//!    the fiber is still running (before it suspends) is remembered in
//!    `WOKEN`, so it cannot be lost.
//! 5. The fiber knows its scheduler only through the [`Schedule`] trait:
//!    this module imports nothing from the scheduler.
//! 6. Other threads never touch the record. A wait that other threads may
//!    complete (a `SharedChan` operation in it) publishes a claim word
//!    (`crate::claim`), an `Arc` kept in the extras and shared with the
//!    channels' queues: other threads CAS that word and wake the fiber
//!    through its `Waker` (the inbox), and the fiber's own thread reads the
//!    outcome from the word when the wait ends (`wait.rs`).

mod rc;
mod state;
mod tree;
mod wait;
mod waker;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use thin_vec::ThinVec;

use crate::error::{Error, Result};
use crate::id::FiberId;
use crate::inbox::Inbox;
use crate::stack::MAX_STACK_SIZE;
use crate::switch::{FiberCoroutine, YielderSlot};
use crate::timer::TimerKey;

pub(crate) use state::Stage;
pub(crate) use tree::{
    abandon, body_finished, cancel, fail, link, link_member, never_run, try_complete, LimitKind,
};
pub(crate) use wait::forbid_waits;
pub use wait::Wakeup;
pub(crate) use waker::{register_local, scheduler_on_this_thread, unregister_local, RemoteWakeup};

/// What a fiber needs from its scheduler: the seam between the fiber record
/// and the scheduler (as `Schedule` in tokio's task module).
pub(crate) trait Schedule {
    /// Queues `task`, which was not queued (its `QUEUED` bit was just set).
    fn schedule(&self, task: Rc<Task>);
    /// `task` is done: the scheduler drops it from its registry. The
    /// reference is returned, to be dropped by the caller when no borrow is
    /// held.
    fn release(&self, task: &Task) -> Option<Rc<Task>>;
    /// Disarms a timer, if it has not fired.
    fn remove_timer(&self, key: TimerKey);
    /// The scheduler's clock.
    fn now(&self) -> Instant;
    /// The scheduler's inbox, for wakers that cross threads.
    fn inbox(&self) -> &Arc<Inbox>;
    /// Wakes wait `epoch` of the fiber at slab key `key` if it is still
    /// fiber `id`; on the scheduler's thread, outside any borrow of its
    /// registry. `false` if the scheduler cannot do it now (it is being
    /// disposed of, or its registry is borrowed): the caller then goes
    /// through the inbox.
    fn wake_fiber(&self, key: usize, id: FiberId, epoch: u64) -> bool;
    /// The running fiber used up its budget of suspension points that did
    /// not wait, and yields: end the scheduler's iteration after it, so the
    /// event loop, timers and the inbox get their turn (`wait.rs`).
    fn budget_spent(&self);
    /// The scheduler as `Any`, for the layers above that know its type.
    fn into_any(self: Rc<Self>) -> Rc<dyn Any>;
}

/// A fiber's way to its scheduler: one per scheduler, shared by its
/// fibers, so that each holds a thin `Rc` (one word) rather than a
/// `Weak<dyn Schedule>` (two).
pub(crate) struct SchedLink(Weak<dyn Schedule>);

impl SchedLink {
    pub(crate) fn new(sched: Weak<dyn Schedule>) -> Rc<SchedLink> {
        Rc::new(SchedLink(sched))
    }
}

/// Who cancelled a fiber. It decides whether the fiber's resulting
/// `Cancelled` error is passed on to its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Its parent was cancelled or failed.
    Parent,
    /// Someone called `AnyFiber::cancel`.
    Handle,
    /// The scheduler is being disposed of.
    Scheduler,
    /// Its own doing: a deadline (`cancel_after`) or its own failure,
    /// including a failure propagated from a child.
    Own,
}

/// A `with_cancel_callback` callback.
pub(crate) type CancelCallback = Box<dyn FnOnce(&Error)>;

/// The non-generic part of every fiber.
pub(crate) struct Header {
    pub(crate) id: FiberId,
    /// Boxed twice, so that the field is one word: most fibers have no
    /// name.
    #[allow(clippy::box_collection)]
    name: Option<Box<String>>,
    sched: Rc<SchedLink>,
    /// The stack size asked for: a `u32`, to pack with the small fields
    /// (a size past [`MAX_STACK_SIZE`] is refused when the fiber starts, so
    /// it is kept as `MAX_STACK_SIZE + 1`, which says as much).
    stack_size: u32,
    /// The state word (`state.rs`).
    state: state::State,
    /// The current wait (ownership rule 4).
    epoch: Cell<u64>,
    /// The branch of the current wait that was claimed, if one was
    /// (see [`Wakeup::claim`]). A `u32` with no tag (a `select` has fewer
    /// than 2^32 - 1 branches, `Wakeup::new` checks it), so that it packs
    /// with the other small fields.
    claimed: ClaimedBranch,
    /// How many times the fiber suspended: a wait whose preparation ran code
    /// that suspended (a future polled by a `select` branch, say) sees it
    /// changed and starts over (`event::select`).
    switches: Cell<u32>,
    pub(crate) yielder: YielderSlot,
    pub(crate) coroutine: RefCell<Option<FiberCoroutine>>,
    /// The fiber's key in its scheduler's registry (see
    /// [`slab_key`](Header::slab_key)): a `u32`, as is `index_in_parent`,
    /// so that both pack with the other small fields.
    slab_key: Cell<u32>,
    // `parent`, `children`, `joiners` and `extras` are `Cell`s, not
    // `RefCell`s (no borrow flag, a word less each): they are only ever
    // taken out, used and put back with no user code in between (ownership
    // rule 3), through the helpers below (`parent`, `n_children`,
    // `with_children`, `add_joiner`, `extras_out`, …). Code that runs while
    // one is taken out would see it empty, never a dangling borrow.
    parent: Cell<Option<Rc<Task>>>,
    // Thin vectors (one word; length and capacity live in the buffer):
    // most fibers have no children, and no joiner while they wait.
    children: Cell<ThinVec<Rc<Task>>>,
    index_in_parent: Cell<u32>,
    joiners: Cell<ThinVec<Wakeup>>,
    /// What most fibers never use, allocated on first use, so that a
    /// fiber's record stays small (see [`Extras`]).
    extras: Cell<Option<Box<Extras>>>,
    /// The fiber's last `Waker` (see `Wakeup::to_waker`).
    waker_cache: Cell<Option<Arc<RemoteWakeup>>>,
}

/// An `Option<u32>` in four bytes: `u32::MAX` is `None`.
pub(crate) struct ClaimedBranch(Cell<u32>);

impl ClaimedBranch {
    const NONE: u32 = u32::MAX;

    const fn none() -> ClaimedBranch {
        ClaimedBranch(Cell::new(Self::NONE))
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<u32> {
        match self.0.get() {
            Self::NONE => None,
            branch => Some(branch),
        }
    }

    /// # Panics
    ///
    /// If `branch` is `Some(u32::MAX)` (`Wakeup::new` refuses such a branch).
    #[inline]
    pub(crate) fn set(&self, branch: Option<u32>) {
        let raw = branch.unwrap_or(Self::NONE);
        debug_assert!(branch != Some(Self::NONE), "branch u32::MAX");
        self.0.set(raw);
    }
}

/// The rarely used parts of a fiber.
#[derive(Default)]
pub(crate) struct Extras {
    /// How the fiber was cancelled and how it failed, if it was or did:
    /// kept when the fiber completes (joiners and handles read them), while
    /// everything else here is taken out then (`tree::try_complete`).
    outcome: Outcome,
    /// Wakers of futures waiting for the fiber to be done (`poll_done`).
    done_wakers: Vec<Waker>,
    /// Runs when the fiber is done, after its joiners are woken (remote
    /// fibers send their result back with it).
    on_done: Option<Box<dyn FnOnce()>>,
    callbacks: Vec<(u64, CancelCallback)>,
    next_callback: u64,
    /// Fiber-local values, keyed by `FiberLocal` id. Shared, so that a
    /// value can be cloned with no borrow of the extras held.
    pub(crate) locals: Vec<(usize, Rc<dyn Any>)>,
    /// Deadline timers (`cancel_after`): checked at suspension points,
    /// disarmed when the fiber is done.
    deadlines: Vec<TimerKey>,
    /// The cross-thread claim words of the fiber's waits (`wait.rs`),
    /// boxed: only fibers that wait on `SharedChan`s ever have them.
    shared_waits: Option<Box<wait::SharedWaits>>,
    /// Micro-tasks the fiber scheduled that have not run yet: the fiber is
    /// not done before they have (a panicking one fails it).
    micro_tasks: u32,
    /// How deeply the running code is nested in shields (`crate::shield`);
    /// `SHIELDED` is set while this is not zero.
    shield_depth: u32,
    /// The active time limits, innermost last: those of `shield_for` and
    /// of the deadline scopes (`with_timeout`, `with_deadline`), each with
    /// its timer (`SHIELD_DEADLINE` is set while this is not empty).
    limits: Vec<tree::Limit>,
    /// For each active shield, innermost last: how many limits were active
    /// when it began. A shield holds the limits entered before it (an outer
    /// deadline scope's expiry, as the fiber's cancellation), as Trio's
    /// shielded scopes do; only the limits from the innermost mark on cut
    /// the running code short.
    shield_marks: Vec<usize>,
    /// The number of the last deadline scope the fiber entered (they are
    /// numbered from 1, per fiber, in the order they start).
    last_scope: u64,
    /// The number of the parent's scope this fiber belongs to (0: none):
    /// its innermost deadline or fiber scope when the fiber was linked, or
    /// the fiber scope it was spawned in as a member. The scope's end
    /// cancels it.
    parent_scope: u64,
    /// The fiber is a member of the fiber scope `parent_scope`
    /// (`crate::scope`), which waits for it.
    member: bool,
    /// The fiber is a member whose failure fails its scope.
    fails_scope: bool,
}

/// How a fiber was cancelled and how it failed. Read on slow paths only:
/// the cancel error once the `CANCELLED` bit is set (the hot paths test
/// the bit alone), the failure when the fiber fails or its result is read.
#[derive(Default)]
struct Outcome {
    /// Set once, with `CANCELLED`.
    cancelled: Option<(Error, Origin)>,
    /// The first failure, the fiber's result.
    failure: Option<Error>,
}

impl Outcome {
    fn is_empty(&self) -> bool {
        self.cancelled.is_none() && self.failure.is_none()
    }
}

/// A fiber: its header, then its body. Only made by [`Task::new`], which
/// puts it in an `Rc` (see `rc.rs`).
#[repr(C)]
pub(crate) struct Task<B: ?Sized = dyn Body> {
    header: Header,
    body: B,
}

/// The part of a fiber that depends on its body's type.
pub(crate) trait Body: 'static {
    /// Runs the body (once) and keeps its `Ok` value for the joiner, if
    /// the fiber's handle still wants it once the body returns (`header`'s
    /// state says). Called on the fiber's own stack.
    fn run(&self, header: &Header) -> Result<()>;
    /// Drops the body of a fiber that will never run.
    fn discard(&self);
}

/// The body of a fiber that returns `T`, as its `Fiber<T>` handle sees it.
pub(crate) trait Output<T>: Body {
    fn take_output(&self) -> Option<T>;
}

/// The body of a fiber running `F`, which returns `T`: the closure until
/// it runs, then its value until the handle takes it. One enum of two
/// variants rather than two options, so that a closure with a niche (most
/// capture a pointer, whose one niche value tells the variants apart)
/// costs no tag.
pub(crate) struct Closure<T, F> {
    stage: Cell<BodyStage<T, F>>,
}

enum BodyStage<T, F> {
    Closure(F),
    /// The value, until it is taken; `None` also once the closure ran
    /// and failed, or was discarded.
    Value(Option<T>),
}

impl<T, F> Default for BodyStage<T, F> {
    fn default() -> Self {
        BodyStage::Value(None)
    }
}

/// How a new fiber is set up (see [`Task::new`]).
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) stack_size: usize,
    pub(crate) propagate: bool,
}

impl<T: 'static, F: FnOnce() -> Result<T> + 'static> Task<Closure<T, F>> {
    /// A new fiber of scheduler `sched`, not started.
    pub(crate) fn new(sched: Rc<SchedLink>, options: Options, body: F) -> Rc<Self> {
        Rc::new(Task {
            header: Header {
                id: FiberId::next(),
                name: options.name.map(Box::new),
                sched,
                stack_size: u32::try_from(options.stack_size.min(MAX_STACK_SIZE + 1))
                    .expect("MAX_STACK_SIZE + 1 fits in a u32"),
                state: state::State::new(options.propagate),
                epoch: Cell::new(0),
                claimed: ClaimedBranch::none(),
                switches: Cell::new(0),
                yielder: YielderSlot::new(),
                coroutine: RefCell::new(None),
                slab_key: Cell::new(u32::MAX),
                parent: Cell::new(None),
                children: Cell::new(ThinVec::new()),
                index_in_parent: Cell::new(0),
                joiners: Cell::new(ThinVec::new()),
                extras: Cell::new(None),
                waker_cache: Cell::new(None),
            },
            body: Closure {
                stage: Cell::new(BodyStage::Closure(body)),
            },
        })
    }
}

impl<T: 'static, F: FnOnce() -> Result<T> + 'static> Body for Closure<T, F> {
    fn run(&self, header: &Header) -> Result<()> {
        let BodyStage::Closure(body) = self.stage.take() else {
            unreachable!("a fiber body runs once");
        };
        let value = body()?;
        if header.state.output_wanted() {
            self.stage.set(BodyStage::Value(Some(value)));
        } else {
            drop(value);
        }
        Ok(())
    }

    fn discard(&self) {
        drop(self.stage.take());
    }
}

impl<T: 'static, F: FnOnce() -> Result<T> + 'static> Output<T> for Closure<T, F> {
    fn take_output(&self) -> Option<T> {
        // Moved out and, if it is not the value, back: no user code runs.
        match self.stage.take() {
            BodyStage::Value(value) => value,
            other => {
                self.stage.set(other);
                None
            }
        }
    }
}

impl<T: 'static> Task<dyn Output<T>> {
    /// The `Fiber<T>` handle is gone, so nobody can take the value: drops
    /// it now, and has a value produced later dropped on the fiber's own
    /// stack, where a panic in its destructor becomes the fiber's failure
    /// (it must never happen wherever the scheduler happens to drop the
    /// last reference).
    pub(crate) fn release_output(&self) {
        self.header.state.release_output();
        drop(self.body.take_output());
    }
}

impl<B: ?Sized> Task<B> {
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn body(&self) -> &B {
        &self.body
    }
}

impl Task {
    /// Runs the body; on the fiber's own stack.
    pub(crate) fn run_body(&self) -> Result<()> {
        self.header.state.body_started();
        self.body.run(&self.header)
    }

    pub(crate) fn discard_body(&self) {
        self.body.discard();
    }
}

impl Header {
    /// The fiber's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref().map(String::as_str)
    }

    /// The stack size the fiber asked for.
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size as usize
    }

    /// The scheduler, unless it is gone.
    pub(crate) fn sched(&self) -> Option<Rc<dyn Schedule>> {
        self.sched.0.upgrade()
    }

    /// The error the fiber was cancelled with, if it was and the
    /// cancellation is delivered: `None` while a shield holds it
    /// (`crate::shield`; the stack is not being force-unwound), although
    /// the fiber counts as cancelled ([`is_cancelled`](Header::is_cancelled)).
    /// The state bit is the fast check; the error itself is in the extras.
    pub(crate) fn cancel_error(&self) -> Option<Error> {
        if !self.is_cancelled() {
            return None;
        }
        self.cancel_error_slow()
    }

    #[cold]
    fn cancel_error_slow(&self) -> Option<Error> {
        if self.is_shield_holding() {
            return None;
        }
        self.read_extras(|e| e.outcome.cancelled.as_ref().map(|(e, _)| e.clone()))
    }

    /// Who cancelled the fiber, if it was.
    pub(crate) fn cancel_origin(&self) -> Option<Origin> {
        if !self.is_cancelled() {
            return None;
        }
        self.read_extras(|e| e.outcome.cancelled.as_ref().map(|(_, o)| *o))
    }

    /// The error the fiber ended (or will end) with, if it failed.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.read_extras(|e| e.outcome.failure.clone())
    }

    /// The fiber's key in its scheduler's registry (`usize::MAX` before it
    /// is registered).
    pub(crate) fn slab_key(&self) -> usize {
        match self.slab_key.get() {
            u32::MAX => usize::MAX,
            key => key as usize,
        }
    }

    /// Records the fiber's key in its scheduler's registry. A registry
    /// holds fewer than 2^32 - 1 fibers: each has a stack of at least a
    /// page, so more could not be mapped; should one get there anyway, the
    /// spawn panics rather than wake the wrong fiber.
    pub(crate) fn set_slab_key(&self, key: usize) {
        let key = u32::try_from(key)
            .ok()
            .filter(|&k| k != u32::MAX)
            .expect("at most 2^32 - 2 live fibers per scheduler");
        self.slab_key.set(key);
    }

    pub(crate) fn parent(&self) -> Option<Rc<Task>> {
        // Taken out and put back: `Rc::clone` runs no user code.
        let parent = self.parent.take();
        let copy = parent.clone();
        self.parent.set(parent);
        copy
    }

    pub(crate) fn n_children(&self) -> usize {
        self.with_children(|c| c.len())
    }

    /// The fiber's children, in the order they were linked (as far as the
    /// completion of others, which swaps the last into the gap, left it).
    pub(crate) fn children(&self) -> Vec<Rc<Task>> {
        self.with_children(|c| c.to_vec())
    }

    /// Runs `f` on the fiber's children. `f` must not run user code (nor
    /// drop a child: the caller drops what it removes after this returns),
    /// as the list is taken out meanwhile (see the `Cell` fields).
    fn with_children<R>(&self, f: impl FnOnce(&mut ThinVec<Rc<Task>>) -> R) -> R {
        let mut children = self.children.take();
        let r = f(&mut children);
        self.children.set(children);
        r
    }

    /// Sets what runs when the fiber is done (at most one hook).
    pub(crate) fn set_on_done(&self, hook: Box<dyn FnOnce()>) {
        self.with_extras(|e| e.on_done = Some(hook));
    }

    /// Runs `f` on the fiber's extras, allocating them on first use. `f`
    /// must not run user code (the extras are borrowed).
    pub(crate) fn with_extras<R>(&self, f: impl FnOnce(&mut Extras) -> R) -> R {
        self.extras_out(|x| f(x.get_or_insert_with(Box::default)))
    }

    /// Takes something out of the extras (`Default` if there are none),
    /// to be dropped or used with no borrow held.
    pub(crate) fn take_extra<R: Default>(&self, f: impl FnOnce(&mut Extras) -> &mut R) -> R {
        self.extras_out(|x| x.as_mut().map(|e| std::mem::take(f(e))).unwrap_or_default())
    }

    /// Reads the extras, if the fiber has any. `f` must not run user code.
    pub(crate) fn read_extras<R>(&self, f: impl FnOnce(&Extras) -> Option<R>) -> Option<R> {
        self.extras_out(|x| x.as_deref().and_then(f))
    }

    /// Runs `f` on the extras, taken out of their cell meanwhile and put
    /// back after, even if `f` panics (see the `Cell` fields: `f` runs no
    /// user code, so nothing can look for the extras while they are out).
    fn extras_out<R>(&self, f: impl FnOnce(&mut Option<Box<Extras>>) -> R) -> R {
        struct PutBack<'a>(&'a Cell<Option<Box<Extras>>>, Option<Box<Extras>>);
        impl Drop for PutBack<'_> {
            fn drop(&mut self) {
                let nested = self.0.replace(self.1.take());
                debug_assert!(nested.is_none(), "the extras were used while out");
            }
        }
        let mut out = PutBack(&self.extras, self.extras.take());
        f(&mut out.1)
    }

    /// Registers a joiner, woken when this fiber is done.
    pub(crate) fn add_joiner(&self, w: Wakeup) {
        let mut joiners = self.joiners.take();
        joiners.push(w);
        self.joiners.set(joiners);
    }

    /// Removes the joiner registrations of fiber `joiner`.
    pub(crate) fn remove_joiner(&self, joiner: &Task) {
        let mut removed = Vec::new();
        let mut kept = ThinVec::new();
        // `Wakeup`s move; none is dropped while the list is out.
        for w in self.joiners.take() {
            if w.is_for(joiner) {
                removed.push(w);
            } else {
                kept.push(w);
            }
        }
        self.joiners.set(kept);
        // Dropped once the list is back: dropping a `Wakeup` drops an
        // `Rc<Task>`, which may free a record.
        drop(removed);
    }

    /// Registers `waker` to be woken when this fiber is done (once per
    /// distinct waker).
    pub(crate) fn add_done_waker(&self, waker: &Waker) {
        let present = self
            .read_extras(|e| {
                e.done_wakers
                    .iter()
                    .any(|w| w.will_wake(waker))
                    .then_some(())
            })
            .is_some();
        if !present {
            // Cloned with no borrow held: a foreign waker's clone is user code.
            let waker = waker.clone();
            self.with_extras(|e| e.done_wakers.push(waker));
        }
    }

    pub(crate) fn add_callback(&self, cb: CancelCallback) -> u64 {
        self.with_extras(|e| {
            let token = e.next_callback;
            e.next_callback += 1;
            e.callbacks.push((token, cb));
            token
        })
    }

    /// Removes a callback; `None` if it already ran (or was removed).
    pub(crate) fn remove_callback(&self, token: u64) -> Option<CancelCallback> {
        self.extras_out(|x| {
            let callbacks = &mut x.as_mut()?.callbacks;
            let index = callbacks.iter().position(|(t, _)| *t == token)?;
            Some(callbacks.remove(index).1)
        })
    }

    /// Arms a deadline (`cancel_after`): `key` is its timer.
    pub(crate) fn add_deadline(&self, key: TimerKey) {
        self.with_extras(|e| e.deadlines.push(key));
        self.state.set_deadline();
    }

    /// The earliest deadline armed with `cancel_after`, if any.
    fn earliest_deadline(&self) -> Option<Instant> {
        self.read_extras(|e| e.deadlines.iter().map(|k| k.0).min())
    }

    /// A micro-task of this fiber was queued.
    pub(crate) fn micro_task_queued(&self) {
        self.with_extras(|e| e.micro_tasks += 1);
    }

    /// A micro-task of this fiber ran (or was dropped).
    pub(crate) fn micro_task_done(&self) {
        self.with_extras(|e| e.micro_tasks -= 1);
    }

    /// Micro-tasks of this fiber that have not run yet.
    pub(crate) fn pending_micro_tasks(&self) -> u32 {
        self.read_extras(|e| Some(e.micro_tasks)).unwrap_or(0)
    }
}

impl Header {
    /// The state word, for the scheduler's transitions (`state.rs`).
    pub(crate) fn state(&self) -> &state::State {
        &self.state
    }

    pub(crate) fn stage(&self) -> Stage {
        self.state.stage()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.stage() == Stage::Done
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.has(state::CANCELLED)
    }

    /// A shield holds the fiber's cancellation: it runs inside `shield`
    /// and its stack is not being force-unwound.
    pub(crate) fn is_shield_holding(&self) -> bool {
        self.state.has(state::SHIELDED) && !self.state.has(state::UNWINDING)
    }

    /// The scheduler is force-unwinding the fiber's stack.
    pub(crate) fn is_unwinding(&self) -> bool {
        self.state.has(state::UNWINDING)
    }

    /// `true` once the body started running.
    pub(crate) fn started(&self) -> bool {
        self.state.has(state::STARTED)
    }
}

impl Drop for Header {
    /// A record is never freed with a suspended coroutine inside (`rc.rs`,
    /// `scheduler::context` invariant 4): the teardown unwinds or leaks every
    /// stack first. Should one be left anyway, it is leaked here rather than
    /// unwound, which would run code on a stack that refers to this dying
    /// record.
    fn drop(&mut self) {
        if let Some(coroutine) = self.coroutine.get_mut().take() {
            if coroutine.started() && !coroutine.done() {
                std::mem::forget(coroutine);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every suspended fiber costs its record: a field added to the header
    /// must be worth its bytes (the rare ones go to `Extras`).
    #[test]
    fn the_header_stays_small() {
        let size = std::mem::size_of::<Header>();
        assert!(size <= HEADER_MAX, "the fiber header grew to {size} bytes");
    }

    /// The bound of `the_header_stays_small` (on 64-bit targets).
    const HEADER_MAX: usize = 184;

    /// A scheduler that never existed, for tests of data structures.
    pub(crate) struct NoSched;

    impl Schedule for NoSched {
        fn schedule(&self, _: Rc<Task>) {}
        fn release(&self, _: &Task) -> Option<Rc<Task>> {
            None
        }
        fn remove_timer(&self, _: TimerKey) {}
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn inbox(&self) -> &Arc<Inbox> {
            unreachable!("no scheduler")
        }
        fn wake_fiber(&self, _: usize, _: FiberId, _: u64) -> bool {
            false
        }
        fn budget_spent(&self) {}
        fn into_any(self: Rc<Self>) -> Rc<dyn Any> {
            self
        }
    }
}
