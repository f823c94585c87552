//! The scheduler: runs fibers on one thread, in FIFO order, interleaved with
//! an event loop.
//!
//! # Ownership rules
//!
//! 1. [`SchedInner`] belongs to one thread (it is reached through `Rc`s and a
//!    thread-local); only its [`Remote`] is shared with other threads, through
//!    an `Arc` (see the rules in `remote.rs`).
//! 2. No `RefCell` of the scheduler is borrowed while a fiber or other user
//!    code runs; each borrow ends within its statement.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult, Yielder};
use slab::Slab;

use crate::error::{Error, ErrorKind, Result};
use crate::event_loop::EventLoop;
use crate::fiber::FiberId;
use crate::remote::{Message, Remote};
use crate::stack::StackPool;
use crate::task::{self, Origin, State, Task};
use crate::time::{TimerAction, TimerKey, TimerQueue};

/// Options of a scheduler, builder-style.
///
/// # Examples
///
/// ```
/// let config = fuseau::Config::new().stack_size(128 * 1024).stack_pool_size(256);
/// assert_eq!(config.get_stack_size(), 128 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    stack_size: usize,
    stack_pool_size: usize,
    budget: usize,
}

impl Config {
    /// The default stack size: 256 KiB of address space, of which a fiber
    /// only uses (in memory) the pages it touches.
    pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

    /// Defaults: [`DEFAULT_STACK_SIZE`](Config::DEFAULT_STACK_SIZE), a pool of
    /// 1024 stacks, a budget of 128 fiber runs per iteration.
    pub fn new() -> Config {
        Config {
            stack_size: Config::DEFAULT_STACK_SIZE,
            stack_pool_size: 1024,
            budget: 128,
        }
    }

    /// Stack size of fibers that do not choose one with
    /// [`Builder::stack_size`](crate::Builder::stack_size). At least 4 KiB is
    /// used; a guard page is added below.
    pub fn stack_size(mut self, bytes: usize) -> Config {
        self.stack_size = bytes;
        self
    }

    /// How many free stacks the scheduler keeps for reuse. A finished
    /// fiber's stack always goes back to the pool; the surplus over this
    /// size is unmapped later, a batch at a time, when no fiber is ready
    /// (so a burst of fibers that finish together does not wait for a
    /// `munmap` each).
    pub fn stack_pool_size(mut self, stacks: usize) -> Config {
        self.stack_pool_size = stacks;
        self
    }

    /// How many fibers one [`Scheduler::run_iteration`] runs at most before
    /// it hands control back to the event loop (so that I/O and timers are
    /// served even while fibers keep yielding). At least 1.
    pub fn budget(mut self, runs: usize) -> Config {
        self.budget = runs.max(1);
        self
    }

    /// The configured default stack size.
    pub fn get_stack_size(&self) -> usize {
        self.stack_size
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// What a [`Scheduler::run_iteration`] left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Iteration {
    /// Fibers are ready to run: give the event loop a turn (poll I/O without
    /// blocking) and iterate again.
    Busy,
    /// Nothing is ready. Wait for an unpark, or until `deadline` (the next
    /// timer) if there is one, then iterate again.
    Idle {
        /// When the next timer fires, if any is armed.
        deadline: Option<Instant>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Active,
    Disposing,
    Disposed,
}

pub(crate) struct SchedInner {
    event_loop: Box<dyn EventLoop>,
    config: Config,
    remote: Arc<Remote>,
    run_queue: RefCell<VecDeque<Rc<Task>>>,
    micro_tasks: RefCell<VecDeque<MicroTask>>,
    fibers: RefCell<Slab<Rc<Task>>>,
    current: RefCell<Option<Rc<Task>>>,
    timers: RefCell<TimerQueue>,
    stacks: RefCell<StackPool>,
    spawned: Cell<u64>,
    phase: Cell<Phase>,
    in_iteration: Cell<bool>,
    /// How many owning `Scheduler` handles exist (see `Scheduler::owner`).
    owners: Cell<usize>,
}

struct MicroTask {
    from: Option<Weak<Task>>,
    run: Box<dyn FnOnce()>,
}

thread_local! {
    /// The scheduler whose iteration is running on this thread, if any.
    static CONTEXT: RefCell<Option<Rc<SchedInner>>> = const { RefCell::new(None) };
}

thread_local! {
    /// The schedulers alive on this thread, by the address of their
    /// `Remote`: a `Waker` woken on its scheduler's own thread (by a Tokio
    /// task, or a future polled by a fiber) queues the fiber at once,
    /// without the inbox (see `wake_on_this_thread`).
    static ON_THIS_THREAD: RefCell<Vec<(usize, Weak<SchedInner>)>> = const { RefCell::new(Vec::new()) };
}

/// Wakes wait `epoch` of fiber `id` (at slab key `key`) of the scheduler
/// that owns `remote`, if that scheduler lives on this thread and is
/// active. `false` otherwise: the caller then sends the wake-up through the
/// inbox, which also handles a scheduler being disposed of.
pub(crate) fn wake_on_this_thread(
    remote: &Arc<Remote>,
    key: usize,
    id: FiberId,
    epoch: u64,
) -> bool {
    let address = Arc::as_ptr(remote) as usize;
    let sched = ON_THIS_THREAD
        .try_with(|schedulers| {
            let schedulers = schedulers.try_borrow().ok()?;
            let (_, sched) = schedulers.iter().find(|(a, _)| *a == address)?;
            sched.upgrade()
        })
        .ok()
        .flatten();
    let Some(sched) = sched.filter(|s| s.is_active()) else {
        return false;
    };
    if sched.fibers.try_borrow().is_err() {
        return false;
    }
    sched.wake_fiber(key, id, epoch);
    true
}

/// Makes a scheduler current on this thread; restores the previous one on drop.
struct Enter {
    previous: Option<Rc<SchedInner>>,
}

impl Enter {
    fn new(sched: Rc<SchedInner>) -> Enter {
        Enter {
            previous: CONTEXT.with(|c| c.replace(Some(sched))),
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let leaving = CONTEXT.with(|c| c.replace(previous));
        drop(leaving);
    }
}

/// The scheduler current on this thread.
pub(crate) fn current_sched() -> Option<Rc<SchedInner>> {
    CONTEXT.with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
}

/// The fiber running on this thread.
pub(crate) fn current_task() -> Option<Rc<Task>> {
    CONTEXT.with(|c| {
        let c = c.try_borrow().ok()?;
        let sched = c.as_ref()?;
        let current = sched.current.try_borrow().ok()?;
        current.clone()
    })
}

/// The running fiber, or `Err(NotInFiber)` naming the call.
pub(crate) fn require_task(call: &str) -> Result<Rc<Task>> {
    current_task().ok_or_else(|| not_in_fiber(call))
}

pub(crate) fn not_in_fiber(call: &str) -> Error {
    Error::new(
        ErrorKind::NotInFiber,
        format!("{call} must be called from inside a fiber"),
    )
}

impl SchedInner {
    pub(crate) fn now(&self) -> Instant {
        self.event_loop.now()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    pub(crate) fn is_active(&self) -> bool {
        self.phase.get() == Phase::Active
    }

    pub(crate) fn is_running(&self, task: &Rc<Task>) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|c| Rc::ptr_eq(c, task))
    }

    pub(crate) fn push_ready(&self, task: Rc<Task>) {
        self.run_queue.borrow_mut().push_back(task);
        if !self.in_iteration.get() {
            // Woken from outside an iteration (a Tokio task on this thread,
            // say): the event loop may be waiting and must look again.
            self.remote.unpark();
        }
    }

    /// Registers a new fiber; it gets its slab key.
    pub(crate) fn register(&self, task: &Rc<Task>) {
        let key = self.fibers.borrow_mut().insert(task.clone());
        task.core().slab_key.set(key);
        self.spawned.set(self.spawned.get() + 1);
    }

    pub(crate) fn unregister(&self, key: usize) -> Option<Rc<Task>> {
        self.fibers.borrow_mut().try_remove(key)
    }

    pub(crate) fn add_timer(&self, deadline: Instant, action: TimerAction) -> TimerKey {
        self.timers.borrow_mut().insert(deadline, action)
    }

    /// `true` while a timer has neither fired nor been disarmed.
    pub(crate) fn timer_armed(&self, key: TimerKey) -> bool {
        self.timers.borrow().contains(key)
    }

    /// Disarms a timer; `false` if it already fired (or was disarmed).
    pub(crate) fn remove_timer(&self, key: TimerKey) -> bool {
        let removed = self.timers.borrow_mut().remove(key);
        removed.is_some()
    }

    pub(crate) fn schedule_micro_task(&self, run: Box<dyn FnOnce()>) {
        let from = current_task().map(|t| Rc::downgrade(&t));
        self.micro_tasks
            .borrow_mut()
            .push_back(MicroTask { from, run });
        if !self.in_iteration.get() {
            self.remote.unpark();
        }
    }

    fn run_micro_tasks(&self) {
        loop {
            let next = self.micro_tasks.borrow_mut().pop_front();
            let Some(MicroTask { from, run }) = next else {
                return;
            };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(run)) {
                // The panic message was printed by the panic hook; the
                // failure goes to the fiber that scheduled the task.
                if let Some(task) = from.and_then(|w| w.upgrade()) {
                    task::fail(&task, Error::from_panic(payload));
                }
            }
        }
    }

    fn drain_inbox(&self) {
        while let Some(message) = self.remote.pop() {
            match message {
                Message::Wake { key, id, epoch } => self.wake_fiber(key, id, epoch),
                Message::Cancel { key, id } => {
                    if let Some(task) = self.fiber(key, id) {
                        task::cancel(&task, Error::cancelled(), Origin::Handle);
                    }
                }
                Message::Run(run) => {
                    // Remote closures catch their own panics; this is a
                    // second line so that none reaches the event loop.
                    let _ = catch_unwind(AssertUnwindSafe(run));
                }
            }
        }
    }

    /// Wakes wait `epoch` of the fiber at slab key `key`, if it is still
    /// the fiber `id`.
    fn wake_fiber(&self, key: usize, id: FiberId, epoch: u64) {
        if let Some(task) = self.fiber(key, id) {
            task::FiberCore::wake(&task, epoch);
        }
    }

    /// The live fiber at slab key `key`, if it has id `id`.
    fn fiber(&self, key: usize, id: FiberId) -> Option<Rc<Task>> {
        let task = self.fibers.borrow().get(key).cloned();
        task.filter(|t| t.core().id == id)
    }

    fn fire_timers(&self) {
        if self.timers.borrow().is_empty() {
            return; // No clock reading (a system call on some machines).
        }
        let now = self.now();
        loop {
            let expired = self.timers.borrow_mut().pop_expired(now);
            match expired {
                None => return,
                Some(TimerAction::Wake(wakeup)) => wakeup.wake(),
                Some(TimerAction::Deadline(task)) => {
                    task::cancel(&task, Error::timeout(), Origin::Own);
                }
            }
        }
    }

    /// Finishes a fiber whose body will never run, with `error`. Dropping
    /// the body runs user code: a panic there becomes the fiber's error
    /// instead of unwinding through the scheduler.
    fn never_run(&self, task: &Rc<Task>, error: Error) {
        let dropped = catch_unwind(AssertUnwindSafe(|| task.discard_body()));
        let error = dropped.map_or_else(Error::from_panic, |()| error);
        task::body_finished(self, task, Err(error));
    }

    /// Runs `task` until it suspends or its body returns.
    fn resume(&self, task: Rc<Task>) {
        let core = task.core();
        core.queued.set(false);
        match core.state.get() {
            State::Suspended => {}
            State::NotStarted => {
                if let Some(e) = core.cancel_error() {
                    // Cancelled before it ever ran: the body never runs.
                    self.never_run(&task, e);
                    return;
                }
                let stack = self.stacks.borrow_mut().take(core.stack_size);
                match stack {
                    Ok(stack) => {
                        let body = task.clone();
                        *core.coroutine.borrow_mut() =
                            Some(Coroutine::with_stack(stack, move |yielder, ()| {
                                fiber_main(yielder, body)
                            }));
                    }
                    Err(e) => {
                        self.never_run(&task, e);
                        return;
                    }
                }
            }
            State::Running | State::Finishing | State::Done => return,
        }
        let result = {
            // Borrowed in place while the fiber runs (no move of the
            // coroutine per switch); nothing else touches the cell of a
            // running fiber (ownership rule 2 in task.rs).
            let mut slot = core.coroutine.borrow_mut();
            let Some(coroutine) = slot.as_mut() else {
                return;
            };
            core.state.set(State::Running);
            let previous = self.current.replace(Some(task.clone()));
            let result = coroutine.resume(());
            let mine = self.current.replace(previous);
            drop(mine);
            result
        };
        if let CoroutineResult::Return(result) = result {
            let coroutine = core.coroutine.borrow_mut().take();
            if let Some(coroutine) = coroutine {
                self.stacks
                    .borrow_mut()
                    .give_back(core.stack_size, coroutine.into_stack());
            }
            task::body_finished(self, &task, result);
        }
    }

    /// Cancels every fiber and stops accepting work. Teardown proper is
    /// [`SchedInner::teardown`].
    fn begin_dispose(&self) {
        if self.phase.get() != Phase::Active {
            return;
        }
        self.phase.set(Phase::Disposing);
        self.remote.close();
        let roots: Vec<Rc<Task>> = self
            .fibers
            .borrow()
            .iter()
            .map(|(_, t)| t.clone())
            .filter(|t| t.core().parent().is_none())
            .collect();
        let error = Error::new(ErrorKind::Cancelled, "the scheduler was disposed of");
        for root in roots {
            task::cancel(&root, error.clone(), Origin::Scheduler);
        }
    }

    /// Finishes every fiber: first lets the (cancelled) fibers run so that
    /// they return by themselves, then force-unwinds the stacks of those that
    /// still have not, so that every destructor runs. Must be called outside
    /// the scheduler's fibers.
    fn teardown(&self) {
        self.begin_dispose();
        if self.phase.get() == Phase::Disposed {
            return;
        }
        // Graceful: cancelled fibers fail at every suspension point, so most
        // return within a run or two. Bounded, for fibers that ignore it.
        let mut budget = 16 * (self.fibers.borrow().len() + 4);
        while budget > 0 {
            self.run_micro_tasks();
            let next = self.run_queue.borrow_mut().pop_front();
            let Some(task) = next else { break };
            self.resume(task);
            budget -= 1;
        }
        // Forced: unwind what is left. Completion cascades up the tree, so
        // the slab empties once every body has finished.
        loop {
            let left: Vec<Rc<Task>> = self
                .fibers
                .borrow()
                .iter()
                .map(|(_, t)| t.clone())
                .filter(|t| matches!(t.core().state.get(), State::NotStarted | State::Suspended))
                .collect();
            if left.is_empty() {
                break;
            }
            for task in left {
                self.force_finish(&task);
            }
        }
        self.run_micro_tasks();
        // No fiber is left to delay: unmap the whole surplus now.
        while self.stacks.borrow().over_capacity() {
            let unmapped = self.stacks.borrow_mut().trim();
            drop(unmapped);
        }
        self.phase.set(Phase::Disposed);
        let queued = std::mem::take(&mut *self.run_queue.borrow_mut());
        drop(queued);
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        drop(timers);
        // Remote closures are dropped, not run: their owners see `Inactive`.
        self.remote.discard();
        // Fibers still registered are ones whose completion could not
        // cascade (a forced unwind that spawned, say): unlink them so no
        // reference cycle outlives the scheduler.
        let rest: Vec<Rc<Task>> = self.fibers.borrow_mut().drain().collect();
        drop(rest);
    }

    fn force_finish(&self, task: &Rc<Task>) {
        let core = task.core();
        let error = core
            .cancel_error()
            .unwrap_or_else(|| Error::new(ErrorKind::Cancelled, "the scheduler was disposed of"));
        match core.state.get() {
            State::NotStarted => {
                self.never_run(task, error);
            }
            State::Suspended => {
                core.unwinding.set(true);
                let coroutine = core.coroutine.borrow_mut().take();
                if let Some(mut coroutine) = coroutine {
                    let previous = self.current.replace(Some(task.clone()));
                    // A destructor that panics while the stack unwinds aborts
                    // the process (a panic during unwinding); anything else
                    // is stopped here so that it never reaches the caller.
                    let _ = catch_unwind(AssertUnwindSafe(|| coroutine.force_unwind()));
                    let mine = self.current.replace(previous);
                    drop(mine);
                    if coroutine.done() {
                        self.stacks
                            .borrow_mut()
                            .give_back(core.stack_size, coroutine.into_stack());
                    }
                }
                task::body_finished(self, task, Err(error));
            }
            State::Running | State::Finishing | State::Done => {}
        }
    }
}

impl Drop for SchedInner {
    fn drop(&mut self) {
        // Normally `Scheduler`'s drop has torn everything down already; this
        // covers a scheduler whose last reference was dropped from inside
        // one of its own iterations.
        self.teardown();
        let address = Arc::as_ptr(&self.remote) as usize;
        // Not while the thread's locals are being destroyed.
        let _ = ON_THIS_THREAD.try_with(|schedulers| {
            if let Ok(mut schedulers) = schedulers.try_borrow_mut() {
                schedulers.retain(|(a, _)| *a != address);
            }
        });
    }
}

/// The entry function of every fiber, running on the fiber's own stack.
fn fiber_main(yielder: &Yielder<(), ()>, task: Rc<Task>) -> Result<()> {
    let core = task.core();
    let _entered = core.yielder.enter(yielder);
    let result = catch_unwind(AssertUnwindSafe(|| task.run_body()));
    // Fiber-local values die with the body, on the fiber's stack, while
    // fiber-only calls still work in their destructors; also when the
    // scheduler force-unwinds the fiber (before the unwind goes on), or they
    // would outlive the teardown for as long as a handle to the fiber lives.
    let locals = core.take_extra(|e| &mut e.locals);
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(locals)));
    let result = result.unwrap_or_else(|payload| rethrow_if_unwinding(core, payload));
    match dropped {
        Ok(()) => result,
        Err(payload) => result.and(rethrow_if_unwinding(core, payload)),
    }
}

/// A panic caught at the fiber boundary becomes the fiber's error, unless it
/// is the scheduler's forced unwind, which must go on to corosensei's root.
fn rethrow_if_unwinding(
    core: &task::FiberCore,
    payload: Box<dyn std::any::Any + Send>,
) -> Result<()> {
    if core.unwinding.get() {
        std::panic::resume_unwind(payload);
    }
    Err(Error::from_panic(payload))
}

/// Runs fibers on the current thread, driven by an [`EventLoop`].
///
/// Inside a fiber, [`Scheduler::current`] gives the scheduler it runs on. The
/// scheduler is thread-bound (`!Send`); [`Scheduler::handle`] gives a
/// `Send + Sync` [`SchedulerHandle`] for other threads.
///
/// Most programs never build one: `fuseau_tokio::main` and
/// [`block_on`](crate::block_on) do. Event-loop integrations build one with
/// [`Scheduler::new`] and call [`Scheduler::run_iteration`] in their loop.
///
/// Dropping the last handle made by [`Scheduler::new`] (or cloned from one)
/// disposes of it ([`Scheduler::dispose`]). Handles from
/// [`Scheduler::current`] do not keep it from being disposed of: they live
/// on its fibers' stacks, which only the disposal unwinds.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::Scheduler>();
/// ```
pub struct Scheduler {
    pub(crate) inner: Rc<SchedInner>,
    /// Made by `Scheduler::new` or cloned from such a handle, and counted in
    /// `SchedInner::owners`. A handle from `Scheduler::current` is not an
    /// owner: counting it would let a fiber that holds one across a
    /// suspension keep its own scheduler (and so itself) alive for ever.
    owner: bool,
}

impl Clone for Scheduler {
    fn clone(&self) -> Scheduler {
        if self.owner {
            self.inner.owners.set(self.inner.owners.get() + 1);
        }
        Scheduler {
            inner: self.inner.clone(),
            owner: self.owner,
        }
    }
}

impl Scheduler {
    /// A new scheduler on this thread, driven by `event_loop`.
    pub fn new(event_loop: impl EventLoop + 'static, config: Config) -> Scheduler {
        crate::error::install_panic_hook();
        let unpark = event_loop.unparker();
        let scheduler = Scheduler {
            inner: Rc::new(SchedInner {
                event_loop: Box::new(event_loop),
                stacks: RefCell::new(StackPool::new(config.stack_pool_size)),
                config,
                remote: Arc::new(Remote::new(unpark)),
                run_queue: RefCell::new(VecDeque::new()),
                micro_tasks: RefCell::new(VecDeque::new()),
                fibers: RefCell::new(Slab::new()),
                current: RefCell::new(None),
                timers: RefCell::new(TimerQueue::new()),
                spawned: Cell::new(0),
                phase: Cell::new(Phase::Active),
                in_iteration: Cell::new(false),
                owners: Cell::new(1),
            }),
            owner: true,
        };
        let address = Arc::as_ptr(&scheduler.inner.remote) as usize;
        ON_THIS_THREAD.with(|schedulers| {
            schedulers
                .borrow_mut()
                .push((address, Rc::downgrade(&scheduler.inner)));
        });
        scheduler
    }

    /// The scheduler of the running fiber (or micro-task).
    ///
    /// # Panics
    ///
    /// Outside a scheduler's fiber or micro-task; see [`Scheduler::try_current`].
    pub fn current() -> Scheduler {
        Scheduler::try_current().expect("Scheduler::current")
    }

    /// The scheduler of the running fiber (or micro-task).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotInFiber`] outside one.
    pub fn try_current() -> Result<Scheduler> {
        current_sched()
            .map(Scheduler::borrowed)
            .ok_or_else(|| not_in_fiber("Scheduler::current"))
    }

    /// A handle that does not own the scheduler (see [`Scheduler`]).
    pub(crate) fn borrowed(inner: Rc<SchedInner>) -> Scheduler {
        Scheduler {
            inner,
            owner: false,
        }
    }

    /// `false` once [`dispose`](Scheduler::dispose) was called.
    pub fn active(&self) -> bool {
        self.inner.is_active()
    }

    /// How many fibers were spawned on this scheduler since it was created.
    pub fn n_tasks_since_beginning(&self) -> u64 {
        self.inner.spawned.get()
    }

    /// How many fibers are alive (spawned and not done).
    pub fn n_fibers(&self) -> usize {
        self.inner.fibers.borrow().len()
    }

    /// How many free stacks the pool keeps right now (past the configured
    /// size until the scheduler is idle long enough to trim it).
    pub fn n_pooled_stacks(&self) -> usize {
        self.inner.stacks.borrow().kept()
    }

    /// A thread-safe handle to this scheduler.
    pub fn handle(&self) -> SchedulerHandle {
        SchedulerHandle {
            remote: self.inner.remote.clone(),
        }
    }

    /// The current time of the scheduler's event loop (Tokio's clock under
    /// `fuseau_tokio`, which tests may pause).
    pub fn now(&self) -> Instant {
        self.inner.now()
    }

    /// Disposes of the scheduler: it becomes inactive (spawning fails with
    /// [`ErrorKind::Inactive`]), every fiber is cancelled, and every
    /// suspended stack is unwound, so that destructors run and resources are
    /// released. Fibers first get a chance to return by themselves; those
    /// that ignore their cancellation are then force-unwound.
    ///
    /// Called from one of the scheduler's own fibers, it only cancels: the
    /// teardown completes when control is back in the event loop (the
    /// driver disposes once the main fiber is done). Idempotent.
    pub fn dispose(&self) {
        if self.inner.current.borrow().is_some() {
            self.inner.begin_dispose();
        } else {
            let _enter = Enter::new(self.inner.clone());
            self.inner.teardown();
        }
    }

    /// Runs ready fibers (at most the configured [budget](Config::budget)),
    /// due timers, micro-tasks and messages from other threads, then says
    /// whether more work is ready. This is what an [`EventLoop`] driver
    /// calls in its loop.
    ///
    /// # Panics
    ///
    /// If called from inside one of this scheduler's own fibers.
    pub fn run_iteration(&self) -> Iteration {
        let inner = &self.inner;
        assert!(
            inner.current.borrow().is_none(),
            "Scheduler::run_iteration called from inside one of its own fibers"
        );
        if inner.phase.get() == Phase::Disposed {
            return Iteration::Idle { deadline: None };
        }
        let _enter = Enter::new(inner.clone());
        let was_in_iteration = inner.in_iteration.replace(true);
        inner.drain_inbox();
        inner.fire_timers();
        let mut budget = inner.config.budget;
        loop {
            inner.run_micro_tasks();
            if budget == 0 {
                break;
            }
            let next = inner.run_queue.borrow_mut().pop_front();
            let Some(task) = next else { break };
            inner.resume(task);
            budget -= 1;
        }
        inner.drain_inbox();
        inner.in_iteration.set(was_in_iteration);
        if !inner.run_queue.borrow().is_empty() || !inner.micro_tasks.borrow().is_empty() {
            return Iteration::Busy;
        }
        // Idle: the time to unmap surplus stacks, a batch per iteration so
        // that the event loop gets its turns in between.
        if inner.stacks.borrow().over_capacity() {
            let unmapped = inner.stacks.borrow_mut().trim();
            drop(unmapped);
            if inner.stacks.borrow().over_capacity() {
                return Iteration::Busy;
            }
        }
        Iteration::Idle {
            deadline: inner.timers.borrow().next_deadline(),
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if self.owner {
            let owners = self.inner.owners.get() - 1;
            self.inner.owners.set(owners);
            if owners == 0 {
                self.dispose();
            }
        }
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("active", &self.active())
            .field("fibers", &self.n_fibers())
            .field("spawned", &self.n_tasks_since_beginning())
            .finish()
    }
}

/// A `Send + Sync` handle to a [`Scheduler`], for other threads.
#[derive(Clone)]
pub struct SchedulerHandle {
    pub(crate) remote: Arc<Remote>,
}

impl SchedulerHandle {
    /// `false` once the scheduler was disposed of.
    pub fn is_active(&self) -> bool {
        self.remote.is_active()
    }
}

impl fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("active", &self.is_active())
            .finish()
    }
}

/// Queues `f` to run on the current scheduler in this iteration, after the
/// running fiber suspends and before the next fiber runs. Micro-tasks are
/// for very short work: they run on the scheduler's stack, cannot suspend,
/// and a long chain of them delays everything else. A micro-task that
/// panics fails the fiber that scheduled it.
///
/// Not a cancellation point.
///
/// # Errors
///
/// [`ErrorKind::NotInFiber`] outside a scheduler; [`ErrorKind::Inactive`] if
/// it was disposed of.
pub fn schedule_micro_task(f: impl FnOnce() + 'static) -> Result<()> {
    let sched = current_sched().ok_or_else(|| not_in_fiber("schedule_micro_task"))?;
    if !sched.is_active() {
        return Err(inactive());
    }
    sched.schedule_micro_task(Box::new(f));
    Ok(())
}

pub(crate) fn inactive() -> Error {
    Error::new(ErrorKind::Inactive, "the scheduler was disposed of")
}

/// Lets the other ready fibers run, then continues: the running fiber goes to
/// the back of the run queue.
///
/// # Cancellation
///
/// A cancellation point: returns the cancellation error if the fiber is
/// cancelled before the call or while it waits for its turn.
///
/// # Errors
///
/// The fiber's cancellation error; [`ErrorKind::NotInFiber`] outside a fiber.
///
/// # Examples
///
/// ```
/// let order = fuseau::block_on(|| {
///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///     let l = log.clone();
///     let child = fuseau::spawn(move || { l.borrow_mut().push("child"); Ok(()) });
///     log.borrow_mut().push("parent before yield");
///     fuseau::yield_now()?;
///     log.borrow_mut().push("parent after yield");
///     child.join()?;
///     Ok(log.take())
/// })?;
/// assert_eq!(order, ["parent before yield", "child", "parent after yield"]);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn yield_now() -> Result<()> {
    let me = require_task("yield_now")?;
    task::checkpoint(&me)?;
    task::yield_now(&me);
    match me.core().cancel_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
