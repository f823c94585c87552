//! The inside of a fiber: its state machine, its place in the fiber tree, and
//! the rules of structured concurrency (cancellation down, failure up,
//! completion only after the children).
//!
//! # Ownership rules
//!
//! Everything here lives on one thread, the scheduler's; the types are `!Send`.
//!
//! 1. The scheduler's `fibers` slab holds a strong reference to every fiber
//!    that is not done; a fiber leaves it when it completes. So a live fiber
//!    is never freed, and the parent/child links (strong both ways) only form
//!    cycles until completion, which breaks them.
//! 2. A fiber's `coroutine` cell holds its coroutine from its first run to
//!    the end of its body. While the fiber runs, the scheduler keeps the cell
//!    borrowed (the one borrow held across a context switch): only the
//!    scheduler touches it, and only for a fiber that is not running.
//! 3. Apart from that, no `RefCell` borrow is held while user code runs (a
//!    fiber body, a drop of user data, a cancel callback) or across a
//!    context switch: every borrow below is taken and released within one
//!    statement or block.
//! 4. A wake-up only queues a fiber; it never switches to it. Each wait has an
//!    epoch; a [`Wakeup`] of an older epoch does nothing, and one that arrives
//!    while the fiber is still running (before it suspends) is remembered in
//!    `woken`, so it cannot be lost.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Waker;

use crate::error::{Error, ErrorKind, Result};
use crate::event::{RemoteWakeup, Wakeup};
use crate::fiber::FiberId;
use crate::scheduler::SchedInner;
use crate::switch::{FiberCoroutine, YielderSlot};
use crate::time::TimerKey;

/// Where a fiber is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Spawned, never run: it has no stack yet.
    NotStarted,
    /// Its stack is executing.
    Running,
    /// Waiting at a suspension point (or queued after a yield).
    Suspended,
    /// Its body has returned; it waits for its children.
    Finishing,
    /// Body returned and all children done. Final.
    Done,
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
pub(crate) struct FiberCore {
    pub(crate) id: FiberId,
    pub(crate) name: Option<Box<str>>,
    pub(crate) sched: Weak<SchedInner>,
    pub(crate) stack_size: usize,
    propagate: bool,
    pub(crate) state: Cell<State>,
    /// In the scheduler's run queue (at most once).
    pub(crate) queued: Cell<bool>,
    /// A wake-up of the current epoch arrived while the fiber was running.
    woken: Cell<bool>,
    /// The branch of the current wait that was claimed, if one was
    /// (see `Wakeup::claim`).
    claimed: Cell<Option<usize>>,
    epoch: Cell<u64>,
    /// The scheduler is force-unwinding this fiber's stack: it must not
    /// suspend again.
    pub(crate) unwinding: Cell<bool>,
    /// The thread was already panicking when the fiber last started or
    /// resumed (a scheduler torn down while a panic outside the fibers
    /// unwinds): that panic is not the fiber's own (see `checkpoint`).
    resumed_panicking: Cell<bool>,
    pub(crate) yielder: YielderSlot,
    pub(crate) coroutine: RefCell<Option<FiberCoroutine>>,
    pub(crate) slab_key: Cell<usize>,
    parent: RefCell<Option<Rc<Task>>>,
    children: RefCell<Vec<Rc<Task>>>,
    index_in_parent: Cell<usize>,
    cancelled: RefCell<Option<(Error, Origin)>>,
    failure: RefCell<Option<Error>>,
    joiners: RefCell<Vec<Wakeup>>,
    /// What most fibers never use, allocated on first use, so that a
    /// fiber's record stays small (see `Extras`).
    extras: RefCell<Option<Box<Extras>>>,
    /// The fiber's last `Waker` (see `Wakeup::to_waker`).
    pub(crate) waker_cache: Cell<Option<Arc<RemoteWakeup>>>,
}

/// The rarely used parts of a fiber.
#[derive(Default)]
pub(crate) struct Extras {
    /// Wakers of futures waiting for the fiber to be done (`poll_done`).
    done_wakers: Vec<Waker>,
    /// Runs when the fiber is done, after its joiners are woken (remote
    /// fibers send their result back with it).
    on_done: Option<Box<dyn FnOnce()>>,
    callbacks: Vec<(u64, CancelCallback)>,
    next_callback: u64,
    /// Fiber-local values, keyed by `FiberLocal` id.
    pub(crate) locals: Vec<(usize, Box<dyn Any>)>,
    /// Deadline timers (`cancel_after`) to disarm when the fiber is done.
    pub(crate) deadlines: Vec<TimerKey>,
}

/// A fiber: its core, then its body. The scheduler sees [`Task`], whose
/// body's type is erased; the core sits at a fixed offset, so reaching it
/// is a field access, not a virtual call (it is on every hot path).
pub(crate) struct TaskCell<B: ?Sized> {
    core: FiberCore,
    body: B,
}

/// A fiber as the scheduler sees it.
pub(crate) type Task = TaskCell<dyn Body>;

/// A fiber whose body returns `T`, as its `Fiber<T>` handle sees it.
pub(crate) type TypedTask<T> = TaskCell<dyn TypedBody<T>>;

/// The part of a fiber that depends on its body's type.
pub(crate) trait Body: 'static {
    /// Runs the body (once) and keeps its `Ok` value for the joiner.
    /// Called on the fiber's own stack.
    fn run(&self, core: &FiberCore) -> Result<()>;
    /// Drops the body of a fiber that will never run.
    fn discard(&self);
}

/// The body of a fiber that returns `T`.
pub(crate) trait TypedBody<T>: Body {
    fn take_output(&self) -> Option<T>;
    /// The `Fiber<T>` handle is gone, so nobody can take the value: drop it
    /// now, and drop a value produced later on the fiber's own stack, where
    /// a panic in its destructor becomes the fiber's failure (it must never
    /// happen wherever the scheduler happens to drop the last reference).
    fn release_output(&self);
}

impl<B: ?Sized> TaskCell<B> {
    #[inline]
    pub(crate) fn core(&self) -> &FiberCore {
        &self.core
    }

    pub(crate) fn body(&self) -> &B {
        &self.body
    }
}

impl<B: ?Sized + Body> TaskCell<B> {
    pub(crate) fn run_body(&self) -> Result<()> {
        self.body.run(&self.core)
    }

    pub(crate) fn discard_body(&self) {
        self.body.discard();
    }
}

/// The body of a fiber running `F`, which returns `T`.
pub(crate) struct BodyCell<T, F> {
    body: Cell<Option<F>>,
    output: Cell<Option<T>>,
    /// The `Fiber<T>` handle, the only reader of `output`, still exists.
    handle_alive: Cell<bool>,
}

impl<T: 'static, F: FnOnce() -> Result<T> + 'static> TaskCell<BodyCell<T, F>> {
    pub(crate) fn new(core: FiberCore, body: F) -> TaskCell<BodyCell<T, F>> {
        TaskCell {
            core,
            body: BodyCell {
                body: Cell::new(Some(body)),
                output: Cell::new(None),
                handle_alive: Cell::new(true),
            },
        }
    }
}

impl<T: 'static, F: FnOnce() -> Result<T> + 'static> Body for BodyCell<T, F> {
    fn run(&self, core: &FiberCore) -> Result<()> {
        core.resumed_panicking.set(std::thread::panicking());
        let body = self.body.take().expect("a fiber body runs once");
        let value = body()?;
        if self.handle_alive.get() {
            self.output.set(Some(value));
        } else {
            drop(value);
        }
        Ok(())
    }

    fn discard(&self) {
        drop(self.body.take());
    }
}

impl<T: 'static, F: FnOnce() -> Result<T> + 'static> TypedBody<T> for BodyCell<T, F> {
    fn take_output(&self) -> Option<T> {
        self.output.take()
    }

    fn release_output(&self) {
        self.handle_alive.set(false);
        drop(self.output.take());
    }
}

impl FiberCore {
    pub(crate) fn new(
        id: FiberId,
        name: Option<Box<str>>,
        sched: Weak<SchedInner>,
        stack_size: usize,
        propagate: bool,
    ) -> FiberCore {
        FiberCore {
            id,
            name,
            sched,
            stack_size,
            propagate,
            state: Cell::new(State::NotStarted),
            queued: Cell::new(false),
            woken: Cell::new(false),
            claimed: Cell::new(None),
            epoch: Cell::new(0),
            unwinding: Cell::new(false),
            resumed_panicking: Cell::new(false),
            yielder: YielderSlot::new(),
            coroutine: RefCell::new(None),
            slab_key: Cell::new(usize::MAX),
            parent: RefCell::new(None),
            children: RefCell::new(Vec::new()),
            index_in_parent: Cell::new(0),
            cancelled: RefCell::new(None),
            failure: RefCell::new(None),
            joiners: RefCell::new(Vec::new()),
            extras: RefCell::new(None),
            waker_cache: Cell::new(None),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// The error the fiber was cancelled with, if it was.
    pub(crate) fn cancel_error(&self) -> Option<Error> {
        self.cancelled.borrow().as_ref().map(|(e, _)| e.clone())
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.borrow().is_some()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.get() == State::Done
    }

    /// The error the fiber ended (or will end) with, if it failed.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.failure.borrow().clone()
    }

    pub(crate) fn parent(&self) -> Option<Rc<Task>> {
        self.parent.borrow().clone()
    }

    pub(crate) fn n_children(&self) -> usize {
        self.children.borrow().len()
    }

    /// Called for a fiber in a `Wakeup`: queue it if it waits on this epoch.
    pub(crate) fn wake(task: &Rc<Task>, epoch: u64) {
        let core = task.core();
        if core.epoch.get() != epoch {
            return;
        }
        match core.state.get() {
            State::Suspended => make_ready(task),
            State::Running => core.woken.set(true),
            _ => {}
        }
    }

    /// Claims the wait `epoch` of `task` for `branch`, and wakes it; see
    /// [`Wakeup::claim`]. Fails if that wait is over or already claimed.
    pub(crate) fn claim(task: &Rc<Task>, epoch: u64, branch: usize) -> bool {
        let core = task.core();
        let waiting = matches!(core.state.get(), State::Suspended | State::Running);
        if !waiting || core.epoch.get() != epoch || core.claimed.get().is_some() {
            return false;
        }
        core.claimed.set(Some(branch));
        FiberCore::wake(task, epoch);
        true
    }

    /// Sets what runs when the fiber is done (at most one hook).
    pub(crate) fn set_on_done(&self, hook: Box<dyn FnOnce()>) {
        self.with_extras(|e| e.on_done = Some(hook));
    }

    /// Runs `f` on the fiber's extras, allocating them on first use. `f`
    /// must not run user code (the extras are borrowed).
    pub(crate) fn with_extras<R>(&self, f: impl FnOnce(&mut Extras) -> R) -> R {
        f(self.extras.borrow_mut().get_or_insert_with(Box::default))
    }

    /// Takes something out of the extras (`Default` if there are none),
    /// to be dropped or used with no borrow held.
    pub(crate) fn take_extra<R: Default>(&self, f: impl FnOnce(&mut Extras) -> &mut R) -> R {
        self.extras
            .borrow_mut()
            .as_mut()
            .map(|e| std::mem::take(f(e)))
            .unwrap_or_default()
    }

    /// Reads the extras, if the fiber has any.
    pub(crate) fn read_extras<R>(&self, f: impl FnOnce(&Extras) -> Option<R>) -> Option<R> {
        self.extras.borrow().as_deref().and_then(f)
    }

    /// Registers a joiner, woken when this fiber is done.
    pub(crate) fn add_joiner(&self, w: Wakeup) {
        self.joiners.borrow_mut().push(w);
    }

    /// Registers `waker` to be woken when this fiber is done (once per
    /// distinct waker).
    pub(crate) fn add_done_waker(&self, waker: &Waker) {
        self.with_extras(|e| {
            if !e.done_wakers.iter().any(|w| w.will_wake(waker)) {
                e.done_wakers.push(waker.clone());
            }
        });
    }

    pub(crate) fn remove_joiner(&self, joiner: &Rc<Task>) {
        self.joiners.borrow_mut().retain(|w| !w.is_for(joiner));
    }

    pub(crate) fn add_callback(&self, cb: Box<dyn FnOnce(&Error)>) -> u64 {
        self.with_extras(|e| {
            let token = e.next_callback;
            e.next_callback += 1;
            e.callbacks.push((token, cb));
            token
        })
    }

    /// Removes a callback; `None` if it already ran (or was removed).
    pub(crate) fn remove_callback(&self, token: u64) -> Option<CancelCallback> {
        let mut extras = self.extras.borrow_mut();
        let callbacks = &mut extras.as_mut()?.callbacks;
        let index = callbacks.iter().position(|(t, _)| *t == token)?;
        Some(callbacks.remove(index).1)
    }
}

/// Queues a fiber to run, if it is not queued already.
pub(crate) fn make_ready(task: &Rc<Task>) {
    let core = task.core();
    if core.queued.replace(true) {
        return;
    }
    match core.sched.upgrade() {
        Some(sched) => sched.push_ready(task.clone()),
        None => core.queued.set(false),
    }
}

/// Links `child` under `parent`. A child born under a cancelled parent is
/// cancelled at once (it will never run its body).
pub(crate) fn link(parent: &Rc<Task>, child: &Rc<Task>) {
    let pc = parent.core();
    {
        let mut children = pc.children.borrow_mut();
        child.core().index_in_parent.set(children.len());
        children.push(child.clone());
    }
    *child.core().parent.borrow_mut() = Some(parent.clone());
    if let Some(e) = pc.cancel_error() {
        cancel(child, Error::passed_to_child(&e), Origin::Parent);
    }
}

/// Cancels `task` and, transitively, its children; wakes the ones that are
/// suspended. Cancellation is sticky: the first reason wins and a fiber that
/// is done is left alone. Cancel callbacks run here, newest first.
///
/// Breadth-first, so fibers are woken in a predictable order: the fiber
/// itself, then its children in spawn order, then theirs. Iterative, so deep
/// fiber trees cannot overflow the (small) stack of the fiber that cancels.
pub(crate) fn cancel(task: &Rc<Task>, error: Error, origin: Origin) {
    let mut work = VecDeque::from([(task.clone(), error, origin)]);
    let mut panics = Vec::new();
    while let Some((t, e, o)) = work.pop_front() {
        let core = t.core();
        if core.is_done() || core.is_cancelled() {
            continue;
        }
        *core.cancelled.borrow_mut() = Some((e.clone(), o));
        let callbacks = core.take_extra(|e| &mut e.callbacks);
        for (_, cb) in callbacks.into_iter().rev() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb(&e))) {
                panics.push((t.clone(), Error::from_panic(payload)));
            }
        }
        let for_children = Error::passed_to_child(&e);
        work.extend(
            core.children
                .borrow()
                .iter()
                .map(|c| (c.clone(), for_children.clone(), Origin::Parent)),
        );
        if core.state.get() == State::Suspended {
            make_ready(&t);
        }
    }
    for (t, e) in panics {
        fail(&t, e);
    }
}

/// Records that `task` failed with `error` and applies the rules: the fiber
/// is cancelled (so are its children), and unless it opted out, or the error
/// is merely the cancellation it received from outside, its parent fails
/// with the same error, and so on up the tree. The first failure of a fiber
/// is its result; later ones are ignored.
pub(crate) fn fail(task: &Rc<Task>, error: Error) {
    let mut current = task.clone();
    loop {
        let core = current.core();
        if core.is_done() || core.failure.borrow().is_some() {
            return;
        }
        *core.failure.borrow_mut() = Some(error.clone());
        let cancelled_from_outside = matches!(
            core.cancelled.borrow().as_ref(),
            Some((_, Origin::Parent | Origin::Handle | Origin::Scheduler))
        );
        cancel(&current, error.clone(), Origin::Own);
        if !core.propagate || (cancelled_from_outside && error.is_cancellation()) {
            return;
        }
        let Some(parent) = core.parent() else { return };
        current = parent;
    }
}

/// The body of `task` has returned (or will never run): record the outcome
/// and complete the fiber if it has no children left.
pub(crate) fn body_finished(sched: &SchedInner, task: &Rc<Task>, result: Result<()>) {
    task.core().state.set(State::Finishing);
    if let Err(e) = result {
        fail(task, e);
    }
    try_complete(sched, task);
}

/// Completes `task` if its body has returned and its children are done, then
/// its parent if that was its last child, and so on up.
pub(crate) fn try_complete(sched: &SchedInner, task: &Rc<Task>) {
    let mut current = task.clone();
    loop {
        let core = current.core();
        if core.state.get() != State::Finishing || !core.children.borrow().is_empty() {
            return;
        }
        core.state.set(State::Done);
        // Taken whole: what it holds (callbacks, wakers, the hook) is user
        // code, run or dropped below with no borrow held.
        let extras = core.extras.take().map(|e| *e).unwrap_or_default();
        for key in extras.deadlines {
            sched.remove_timer(key);
        }
        drop(extras.callbacks);
        for joiner in core.joiners.take() {
            joiner.wake();
        }
        for waker in extras.done_wakers {
            // A foreign waker: whatever it does must not unwind through
            // the scheduler.
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
        if let Some(hook) = extras.on_done {
            // Internal hooks do not panic, but they wake foreign wakers:
            // keep anything that does from unwinding through the scheduler.
            let _ = catch_unwind(AssertUnwindSafe(hook));
        }
        let unregistered = sched.unregister(core.slab_key.get());
        drop(unregistered);
        let Some(parent) = core.parent.take() else {
            return;
        };
        let removed = {
            let mut siblings = parent.core().children.borrow_mut();
            let index = core.index_in_parent.get();
            let removed = siblings.swap_remove(index);
            if let Some(moved) = siblings.get(index) {
                moved.core().index_in_parent.set(index);
            }
            removed
        };
        drop(removed);
        current = parent;
    }
}

/// Suspends the running fiber `task` until a wake-up of the current epoch
/// or a cancellation. Returns at once, without suspending, if a wake-up
/// already arrived while it was running, or if it is cancelled. Returns the
/// branch that claimed the wait, if one did.
pub(crate) fn park(task: &Rc<Task>) -> Option<usize> {
    let core = task.core();
    let woken = core.woken.get() || core.claimed.get().is_some();
    if !woken && !core.is_cancelled() && !core.unwinding.get() {
        suspend(task);
    }
    let claimed = core.claimed.get();
    end_wait(core);
    claimed
}

/// Puts the running fiber `task` at the back of the run queue and switches
/// to the scheduler.
pub(crate) fn yield_now(task: &Rc<Task>) {
    let core = task.core();
    if !core.unwinding.get() {
        make_ready(task);
        suspend(task);
    }
    end_wait(core);
}

/// The check at every suspension point: if the fiber is cancelled, yield
/// once (so that a loop ignoring the error cannot starve the scheduler or
/// stall its teardown) and return the cancellation error.
///
/// A fiber that is unwinding a panic (a destructor that waits, say) must not
/// suspend: other fibers would then run while the thread counts as
/// panicking, and every mutex they release would be poisoned. So a
/// suspension point there fails at once, without yielding. (Unless the
/// thread was panicking already when the fiber resumed: a scheduler torn
/// down by a panic outside the fibers runs them while the thread panics,
/// and a cancelled fiber that ignores its errors in a loop must still
/// yield, or the teardown would never end.)
pub(crate) fn checkpoint(task: &Rc<Task>) -> Result<()> {
    let core = task.core();
    let unwinding_a_panic = std::thread::panicking() && !core.resumed_panicking.get();
    match core.cancel_error() {
        Some(e) => {
            if !unwinding_a_panic {
                yield_now(task);
            }
            Err(e)
        }
        None if unwinding_a_panic => Err(Error::new(
            ErrorKind::Other,
            "a fiber cannot wait while it unwinds a panic",
        )),
        None => Ok(()),
    }
}

fn suspend(task: &Rc<Task>) {
    let core = task.core();
    core.state.set(State::Suspended);
    let on_own_stack = core.sched.upgrade().is_some_and(|s| s.is_running(task));
    core.yielder.suspend(on_own_stack);
    core.resumed_panicking.set(std::thread::panicking());
}

/// Every later wake-up refers to a new wait.
fn end_wait(core: &FiberCore) {
    core.woken.set(false);
    core.claimed.set(None);
    core.epoch.set(core.epoch.get() + 1);
}
