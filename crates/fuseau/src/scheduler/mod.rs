//! The scheduler: runs fibers on one thread, in FIFO order, interleaved with
//! an event loop.
//!
//! # Ownership rules
//!
//! 1. [`SchedInner`] belongs to one thread (it is reached through `Rc`s and
//!    the thread-local context, `context.rs`); only its [`Inbox`] is shared
//!    with other threads, through an `Arc` (see `inbox.rs`).
//! 2. No `RefCell` of the scheduler is borrowed while a fiber or other user
//!    code runs; each borrow ends within its statement.
//! 3. Fibers run only inside the scheduler's context (an [`Enter`] guard):
//!    from [`Scheduler::run_iteration`] and from the teardown, which
//!    [`Scheduler::dispose`] and the tail of `run_iteration` run. Nothing
//!    runs fibers from a `Drop` of the scheduler's state (`SchedInner`),
//!    where no context could be entered (`teardown.rs`).
//! 4. The fiber record knows the scheduler only through
//!    [`Schedule`](crate::task::Schedule), which `SchedInner` implements.

pub(crate) mod context;
mod teardown;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult, Yielder};
use slab::Slab;

use crate::error::{install_panic_hook, Error, ErrorKind, Result};
use crate::event_loop::EventLoop;
use crate::id::FiberId;
use crate::inbox::{Inbox, Message};
use crate::prefetch;
use crate::stack::StackPool;
use crate::switch::StackBounds;
use crate::task::{self, Origin, SchedLink, Schedule, Stage, Task, Wakeup};
use crate::timer::{TimerKey, TimerQueue};
use context::{not_in_fiber, switch_in, switch_out, with_fiber, with_sched, Enter};

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
    idle_spin: Duration,
}

impl Config {
    /// The default stack size: 256 KiB of address space, of which a fiber
    /// only uses (in memory) the pages it touches.
    pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

    /// Defaults: [`DEFAULT_STACK_SIZE`](Config::DEFAULT_STACK_SIZE), a pool of
    /// 1024 stacks, a budget of 128 fiber runs per iteration, an idle spin
    /// of [`DEFAULT_IDLE_SPIN`](Config::DEFAULT_IDLE_SPIN).
    pub fn new() -> Config {
        Config {
            stack_size: Config::DEFAULT_STACK_SIZE,
            stack_pool_size: 1024,
            budget: 128,
            idle_spin: Config::DEFAULT_IDLE_SPIN,
        }
    }

    /// The default [idle spin](Config::idle_spin): 20 µs.
    pub const DEFAULT_IDLE_SPIN: Duration = Duration::from_micros(20);

    /// Stack size of fibers that do not choose one with
    /// [`Builder::stack_size`](crate::Builder::stack_size). At least 4 KiB is
    /// used; a guard page is added below. A size over 1 GiB is refused: the
    /// fibers fail at once with an [`ErrorKind::Other`] error that says so.
    pub fn stack_size(mut self, bytes: usize) -> Config {
        self.stack_size = bytes;
        self
    }

    /// How many free stacks the scheduler keeps warm (in memory) for
    /// reuse. A finished fiber's stack always goes back to the pool; the
    /// memory of the surplus over this size is given back to the system
    /// later (`MADV_DONTNEED`), a batch at a time, when no fiber is ready
    /// (so a burst of fibers that finish together waits for no system
    /// call), and their slots are reused before new ones.
    pub fn stack_pool_size(mut self, stacks: usize) -> Config {
        self.stack_pool_size = stacks;
        self
    }

    /// How many fibers one [`Scheduler::run_iteration`] runs at most before
    /// it hands control back to the event loop (so that I/O and timers are
    /// served even while fibers keep yielding). At least 1.
    ///
    /// Not to be confused with the coop budget, fixed at 128 suspension
    /// points in a row that did not wait, after which a fiber yields and
    /// the iteration ends early (see the [guide](crate::guide)): together
    /// they bound how long the event loop waits for its turn.
    pub fn budget(mut self, runs: usize) -> Config {
        self.budget = runs.max(1);
        self
    }

    /// How long a scheduler with nothing to run keeps watching its inbox
    /// before it tells its event loop it is idle, while messages from other
    /// threads are frequent (one came within the last 50 spins' time, 1 ms
    /// for the default spin): a wake-up
    /// from a fiber on another thread (a [`SharedChan`](crate::SharedChan)
    /// send, say) that comes within the spin costs no system call on
    /// either side, where waking a parked event loop costs one on each.
    /// A scheduler that hears from no other thread never spins. The spin
    /// delays the event loop's own work (I/O, timers) by at most this
    /// long; `Duration::ZERO` turns it off.
    ///
    /// Measured on two cores (the suite's W3s: fibers on two threads
    /// passing values through a `SharedChan`), the default spin makes a
    /// message about 2.5 times cheaper than no spin.
    pub fn idle_spin(mut self, spin: Duration) -> Config {
        self.idle_spin = spin;
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

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Wake a sleeping fiber (or a timeout event's waiter).
    Wake(Wakeup),
    /// Cancel a fiber with `Timeout` (`cancel_after`).
    Deadline(Rc<Task>),
}

struct MicroTask {
    /// The fiber that scheduled it: held open until it ran.
    from: Option<Rc<Task>>,
    run: Box<dyn FnOnce()>,
}

/// The state of a scheduler, shared by its handles.
pub(crate) struct SchedInner {
    /// What its fibers hold to reach it (a `Weak` to itself).
    pub(crate) link: Rc<SchedLink>,
    event_loop: Box<dyn EventLoop>,
    config: Config,
    inbox: Arc<Inbox>,
    run_queue: RefCell<VecDeque<Rc<Task>>>,
    micro_tasks: RefCell<VecDeque<MicroTask>>,
    /// The registry: every fiber that is not done (`task` module docs).
    fibers: RefCell<Slab<Rc<Task>>>,
    timers: RefCell<TimerQueue<TimerAction>>,
    stacks: RefCell<StackPool>,
    spawned: Cell<u64>,
    phase: Cell<Phase>,
    in_iteration: Cell<bool>,
    /// One of this scheduler's fibers is running (its stack is executing).
    running: Cell<bool>,
    /// The fiber that ran last yielded because it used up its budget of
    /// suspension points that did not wait (`Schedule::budget_spent`): the
    /// iteration ends after it.
    budget_spent: Cell<bool>,
    /// How many owning `Scheduler` handles exist (see `Scheduler::owner`).
    owners: Cell<usize>,
    /// Stacks leaked at disposal (see `teardown.rs`, `panic = "abort"`).
    leaked_stacks: Cell<usize>,
    /// When the inbox last had a message (see `spin_for_message`).
    last_message: Cell<Option<Instant>>,
}

/// How long after a message from another thread an idle scheduler still
/// spins, in spins (see [`Config::idle_spin`]): 1 ms for the default spin.
const RECENT_IN_SPINS: u32 = 50;

impl Schedule for SchedInner {
    fn schedule(&self, task: Rc<Task>) {
        self.run_queue.borrow_mut().push_back(task);
        if !self.in_iteration.get() {
            // Woken from outside an iteration (a Tokio task on this thread,
            // say): the event loop may be waiting and must look again.
            self.inbox.unpark();
        }
    }

    fn release(&self, task: &Task) -> Option<Rc<Task>> {
        self.fibers
            .borrow_mut()
            .try_remove(task.header().slab_key())
    }

    fn remove_timer(&self, key: TimerKey) {
        let removed = self.timers.borrow_mut().remove(key);
        drop(removed);
    }

    fn now(&self) -> Instant {
        SchedInner::now(self)
    }

    fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    fn wake_fiber(&self, key: usize, id: FiberId, epoch: u64) -> bool {
        if !self.is_active() || self.fibers.try_borrow().is_err() {
            return false;
        }
        self.wake_at(key, id, epoch);
        true
    }

    fn budget_spent(&self) {
        self.budget_spent.set(true);
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

impl SchedInner {
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn is_active(&self) -> bool {
        self.phase.get() == Phase::Active
    }

    /// Registers a new fiber and queues it.
    pub(crate) fn register(&self, task: &Rc<Task>) {
        let key = self.fibers.borrow_mut().insert(task.clone());
        task.header().set_slab_key(key);
        self.spawned.set(self.spawned.get() + 1);
    }

    pub(crate) fn add_timer(&self, deadline: Instant, action: TimerAction) -> TimerKey {
        self.timers.borrow_mut().insert(deadline, action)
    }

    /// `true` while a timer has neither fired nor been disarmed.
    pub(crate) fn timer_armed(&self, key: TimerKey) -> bool {
        self.timers.borrow().contains(key)
    }

    pub(crate) fn schedule_micro_task(&self, from: Option<Rc<Task>>, run: Box<dyn FnOnce()>) {
        if let Some(task) = &from {
            task.header().micro_task_queued();
        }
        self.micro_tasks
            .borrow_mut()
            .push_back(MicroTask { from, run });
        if !self.in_iteration.get() {
            self.inbox.unpark();
        }
    }

    fn run_micro_tasks(&self) {
        loop {
            let next = self.micro_tasks.borrow_mut().pop_front();
            let Some(MicroTask { from, run }) = next else {
                return;
            };
            let outcome = catch_unwind(AssertUnwindSafe(run));
            if let Some(task) = from {
                // The panic message was printed by the panic hook; the
                // failure goes to the fiber that scheduled the task, which
                // is not done before its micro-tasks are.
                if let Err(payload) = outcome {
                    task::fail(&task, Error::from_panic(payload));
                }
                task.header().micro_task_done();
                task::try_complete(&task);
            }
        }
    }

    /// Runs micro-tasks and ready fibers, at most `budget` fibers (fewer if
    /// one spends its coop budget); the budget left.
    fn run_ready(&self, mut budget: usize) -> usize {
        loop {
            if !self.micro_tasks.borrow().is_empty() {
                self.run_micro_tasks();
            }
            if budget == 0 {
                return 0;
            }
            let next = {
                let mut queue = self.run_queue.borrow_mut();
                let next = queue.pop_front();
                prefetch_next(&queue);
                next
            };
            let Some(task) = next else { return budget };
            let ran = Rc::as_ptr(&task);
            self.resume(task);
            budget -= 1;
            if self.budget_spent.replace(false) {
                self.after_budget_spent(ran);
                return 0;
            }
        }
    }

    /// With nothing to run: waits up to the configured idle spin for a
    /// message from another thread, if one came recently (see
    /// [`Config::idle_spin`]); `true` if one came. The clock is the
    /// system's, not the event loop's: this bounds a busy wait, it is no
    /// timer.
    fn spin_for_message(&self) -> bool {
        let spin = self.config.idle_spin;
        let Some(last) = self.last_message.get() else {
            return false;
        };
        if spin.is_zero() {
            return false;
        }
        let now = Instant::now();
        if now.saturating_duration_since(last) > spin.saturating_mul(RECENT_IN_SPINS) {
            return false;
        }
        let end = now + spin;
        loop {
            // A clock reading per 64 checks of the queue.
            for _ in 0..64 {
                if self.inbox.has_messages() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    fn drain_inbox(&self) {
        if self.inbox.has_messages() {
            self.last_message.set(Some(Instant::now()));
        }
        while let Some(message) = self.inbox.pop() {
            match message {
                Message::Wake { key, id, epoch } => self.wake_at(key, id, epoch),
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
    /// fiber `id`: for the inbox's `Wake` message and the same-thread waker.
    fn wake_at(&self, key: usize, id: FiberId, epoch: u64) {
        if let Some(task) = self.fiber(key, id) {
            task.wake(epoch);
        }
    }

    /// The live fiber at slab key `key`, if it has id `id`.
    fn fiber(&self, key: usize, id: FiberId) -> Option<Rc<Task>> {
        let task = self.fibers.borrow().get(key).cloned();
        task.filter(|t| t.header().id == id)
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

    /// The fiber `ran` just yielded because it used up its budget of
    /// suspension points that did not wait: what other threads sent and the
    /// timers that are due go ahead of it in the run queue, and the
    /// iteration ends (the caller's part), so that the event loop polls
    /// I/O before it runs again.
    #[cold]
    fn after_budget_spent(&self, ran: *const Task) {
        // `resume` queued it last, if it did yield.
        let busy = {
            let mut queue = self.run_queue.borrow_mut();
            let last = queue
                .back()
                .is_some_and(|t| std::ptr::addr_eq(Rc::as_ptr(t), ran));
            if last {
                queue.pop_back()
            } else {
                None
            }
        };
        self.drain_inbox();
        self.fire_timers();
        if let Some(task) = busy {
            self.run_queue.borrow_mut().push_back(task);
        }
    }

    /// Runs `task` (just popped from the run queue) until it suspends or its
    /// body returns.
    #[inline]
    fn resume(&self, task: Rc<Task>) {
        let h = task.header();
        match h.stage() {
            Stage::Suspended => {}
            Stage::NotStarted => {
                if !self.start(&task) {
                    return;
                }
            }
            // A stale entry (a fiber finished by the teardown).
            Stage::Running | Stage::Finishing | Stage::Done => return,
        }
        let result = {
            // Borrowed in place while the fiber runs (no move of the
            // coroutine per switch); nothing else touches the cell of a
            // running fiber (ownership rule 2 in the `task` module).
            let mut slot = h.coroutine.borrow_mut();
            let Some(coroutine) = slot.as_mut() else {
                return;
            };
            h.state().resume(std::thread::panicking());
            self.running.set(true);
            let previous = switch_in(&task);
            let result = coroutine.resume(());
            switch_out(previous);
            self.running.set(false);
            result
        };
        match result {
            CoroutineResult::Yield(()) => {
                if h.state().take_yielded() {
                    self.run_queue.borrow_mut().push_back(task);
                }
            }
            CoroutineResult::Return(result) => {
                let coroutine = h.coroutine.borrow_mut().take();
                if let Some(coroutine) = coroutine {
                    self.stacks
                        .borrow_mut()
                        .give_back(h.stack_size(), coroutine.into_stack());
                }
                task::body_finished(&task, result);
            }
        }
    }

    /// Gives a fiber that never ran its stack and coroutine; `false` (and
    /// the fiber is finished) if its body will never run.
    #[cold]
    fn start(&self, task: &Rc<Task>) -> bool {
        let h = task.header();
        h.state().dequeue();
        if let Some(e) = h.cancel_error() {
            // Cancelled before it ever ran: the body never runs.
            task::never_run(task, e);
            return false;
        }
        let stack = self.stacks.borrow_mut().take(h.stack_size());
        match stack {
            Ok(stack) => {
                h.yielder.set_bounds(StackBounds::of(&stack));
                let body = task.clone();
                *h.coroutine.borrow_mut() =
                    Some(Coroutine::with_stack(stack, move |yielder, ()| {
                        fiber_main(yielder, body)
                    }));
                true
            }
            Err(e) => {
                task::never_run(task, e);
                false
            }
        }
    }

    /// The scheduler's clock.
    pub(crate) fn now(&self) -> Instant {
        self.event_loop.now()
    }
}

impl Drop for SchedInner {
    fn drop(&mut self) {
        // Teardown ran before the last reference went (ownership rule 3);
        // if it somehow did not, what is left is leaked, never run here.
        if self.phase.get() != Phase::Disposed {
            self.leak_remaining();
        }
        task::unregister_local(&self.inbox);
    }
}

/// Asks the caches for what the next fibers to run will touch first (see
/// the `prefetch` module for why): the record of the fiber after the next
/// one, and the top of the next one's stack, found in its record (which the
/// previous call asked for).
///
/// The top line of the stack is a guess at what the fiber will touch: it is
/// where its outermost frames are, and it brings the stack's top page into
/// the TLB, which for a fiber suspended less than a page deep (most are) is
/// the page the switch lands on. Measured against prefetching from where the
/// fiber suspended (which needs a word more in every record), or every line
/// down to there, or further ahead in the queue: no better, or worse.
///
/// Nothing when fewer than two fibers wait behind the one about to run: a
/// queue that short is a hot one (two fibers yielding to each other), where
/// the hints cost more than they save (8 % on the suite's W2).
#[inline]
fn prefetch_next(queue: &VecDeque<Rc<Task>>) {
    /// A record's reference counts, which `Rc` keeps just before it.
    const RC_COUNTS: usize = 2 * std::mem::size_of::<usize>();
    if queue.len() < 2 {
        return;
    }
    let record = Rc::as_ptr(&queue[1]).cast::<u8>();
    prefetch::lines(
        record.wrapping_sub(RC_COUNTS),
        RC_COUNTS + std::mem::size_of::<task::Header>(),
    );
    let base = queue[0].header().yielder.bounds().base();
    // 0: the fiber has no stack yet.
    if base != 0 {
        prefetch::lines((base - 1) as *const u8, 1);
    }
}

/// The entry function of every fiber, running on the fiber's own stack.
fn fiber_main(yielder: &Yielder<(), ()>, task: Rc<Task>) -> Result<()> {
    let h = task.header();
    let _entered = h.yielder.enter(yielder);
    let result = catch_unwind(AssertUnwindSafe(|| task.run_body()));
    let result = result.unwrap_or_else(|payload| rethrow_if_unwinding(&task, payload));
    // Fiber-local values die with the body, on the fiber's stack, inside
    // its panic boundary, while fiber-only calls still work in their
    // destructors; until none are left, since a destructor may set another
    // one. Also when the scheduler force-unwinds the fiber (before the
    // unwind goes on), or they would outlive the teardown.
    let mut dropped = Ok(());
    loop {
        let locals = h.take_extra(|e| &mut e.locals);
        if locals.is_empty() {
            break;
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(locals))) {
            if dropped.is_ok() {
                dropped = rethrow_if_unwinding(&task, payload);
            }
        }
    }
    result.and(dropped)
}

/// A panic caught at the fiber boundary becomes the fiber's error, unless it
/// is the scheduler's forced unwind, which must go on to corosensei's root.
fn rethrow_if_unwinding(task: &Task, payload: Box<dyn std::any::Any + Send>) -> Result<()> {
    if task.header().is_unwinding() {
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
/// disposes of it ([`Scheduler::dispose`]); dropped from one of the
/// scheduler's own fibers, the disposal completes when the current
/// iteration ends. Handles from [`Scheduler::current`] do not keep it from
/// being disposed of: they live on its fibers' stacks, which only the
/// disposal unwinds.
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
        install_panic_hook(context::in_fiber);
        crate::overflow::install(context::running_stack);
        let unpark = event_loop.unparker();
        let inner = Rc::new_cyclic(|weak: &Weak<SchedInner>| SchedInner {
            link: SchedLink::new(weak.clone()),
            event_loop: Box::new(event_loop),
            stacks: RefCell::new(StackPool::new(config.stack_pool_size)),
            config,
            inbox: Arc::new(Inbox::new(unpark)),
            run_queue: RefCell::new(VecDeque::new()),
            micro_tasks: RefCell::new(VecDeque::new()),
            fibers: RefCell::new(Slab::new()),
            timers: RefCell::new(TimerQueue::default()),
            spawned: Cell::new(0),
            phase: Cell::new(Phase::Active),
            in_iteration: Cell::new(false),
            running: Cell::new(false),
            budget_spent: Cell::new(false),
            owners: Cell::new(1),
            leaked_stacks: Cell::new(0),
            last_message: Cell::new(None),
        });
        let weak: Weak<dyn Schedule> = Rc::downgrade(&inner) as Weak<SchedInner>;
        task::register_local(&inner.inbox, weak);
        Scheduler { inner, owner: true }
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
        with_sched(|s| Scheduler::borrowed(s.clone()))
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
            inbox: self.inner.inbox.clone(),
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
    /// that ignore their cancellation are then force-unwound. (Built with
    /// `panic = "abort"`, where nothing can unwind, the stacks of fibers
    /// still suspended then are leaked instead, with a message on stderr.)
    ///
    /// Called from one of the scheduler's own fibers, it only cancels: the
    /// teardown completes when the current iteration ends (the driver also
    /// disposes once the main fiber is done). Idempotent.
    pub fn dispose(&self) {
        if self.inner.running.get() {
            self.inner.begin_dispose();
        } else {
            let _enter = Enter::new(&self.inner);
            self.inner.teardown();
        }
    }

    /// Runs ready fibers (at most the configured [budget](Config::budget)),
    /// due timers, micro-tasks and messages from other threads, then says
    /// whether more work is ready. This is what an [`EventLoop`] driver
    /// calls in its loop. With nothing left to run, a scheduler that heard
    /// from other threads recently first watches its inbox for up to
    /// [`Config::idle_spin`], and serves what comes within this call.
    ///
    /// # Panics
    ///
    /// If called from inside one of this scheduler's own fibers.
    pub fn run_iteration(&self) -> Iteration {
        let inner = &*self.inner;
        assert!(
            !inner.running.get(),
            "Scheduler::run_iteration called from inside one of its own fibers"
        );
        if inner.phase.get() == Phase::Disposed {
            return Iteration::Idle { deadline: None };
        }
        let _enter = Enter::new(&self.inner);
        let was_in_iteration = inner.in_iteration.replace(true);
        let mut budget = inner.config.budget;
        loop {
            inner.drain_inbox();
            inner.fire_timers();
            budget = inner.run_ready(budget);
            inner.drain_inbox();
            // Out of work: a message from another thread that comes within
            // the idle spin is served in this iteration. Each such round
            // costs a unit of budget, so the event loop still gets its turn.
            if budget == 0
                || inner.owners.get() == 0
                || inner.phase.get() != Phase::Active
                || !inner.run_queue.borrow().is_empty()
                || !inner.micro_tasks.borrow().is_empty()
                || !inner.spin_for_message()
            {
                break;
            }
            budget -= 1;
        }
        inner.inbox.set_n_fibers(inner.fibers.borrow().len());
        inner.in_iteration.set(was_in_iteration);
        if inner.owners.get() == 0 {
            // The last owner was dropped by a fiber during this iteration:
            // finish the disposal here, in the scheduler's context.
            inner.teardown();
            return Iteration::Idle { deadline: None };
        }
        if !inner.run_queue.borrow().is_empty() || !inner.micro_tasks.borrow().is_empty() {
            return Iteration::Busy;
        }
        // Idle: the time to retire surplus stacks, a batch per iteration so
        // that the event loop gets its turns in between.
        if inner.stacks.borrow().over_capacity() {
            inner.stacks.borrow_mut().trim();
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
    pub(crate) inbox: Arc<Inbox>,
}

impl SchedulerHandle {
    /// `false` once the scheduler was disposed of.
    pub fn is_active(&self) -> bool {
        self.inbox.is_active()
    }

    /// How many fibers the scheduler had alive (spawned and not done) at
    /// the end of its last iteration: [`Scheduler::n_fibers`] as other
    /// threads can see it, a little late, to place work on the least
    /// loaded of several schedulers. 0 before the first iteration.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// fuseau::block_on(|| {
    ///     let handle = fuseau::Scheduler::current().handle();
    ///     let child = fuseau::spawn(|| fuseau::sleep(Duration::from_secs(60)));
    ///     // Both wait: the iteration ends with two fibers alive.
    ///     fuseau::sleep(Duration::from_millis(1))?;
    ///     assert_eq!(handle.n_fibers(), 2);
    ///     child.cancel();
    ///     assert!(child.join().unwrap_err().is_cancellation());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn n_fibers(&self) -> usize {
        self.inbox.n_fibers()
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
/// and a long chain of them delays everything else.
///
/// A micro-task scheduled from a fiber belongs to it: the fiber is not done
/// (its joiners wait) until its micro-tasks have run, and one that panics
/// fails it with [`ErrorKind::Panicked`], as a panic of its body would. One
/// scheduled from outside any fiber (from another micro-task) has no fiber
/// to fail: its panic is reported by the panic hook and otherwise ignored.
///
/// Not a cancellation point.
///
/// # Errors
///
/// [`ErrorKind::NotInFiber`] outside a scheduler; [`ErrorKind::Inactive`] if
/// it was disposed of.
///
/// # Examples
///
/// ```
/// let e = fuseau::block_on(|| {
///     let child = fuseau::Builder::new()
///         .propagate_cancel_to_parent(false)
///         .spawn(|| {
///             fuseau::schedule_micro_task(|| panic!("boom"))?;
///             Ok(2)
///         });
///     // The body returned `Ok(2)`, but its micro-task failed it.
///     Ok(child.join())
/// })?;
/// assert!(e.unwrap_err().is_panic());
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn schedule_micro_task(f: impl FnOnce() + 'static) -> Result<()> {
    let sched = context::current_sched().ok_or_else(|| not_in_fiber("schedule_micro_task"))?;
    if !sched.is_active() {
        return Err(inactive());
    }
    sched.schedule_micro_task(context::current_task(), Box::new(f));
    Ok(())
}

pub(crate) fn inactive() -> Error {
    Error::new(ErrorKind::Inactive, "the scheduler was disposed of")
}

/// A cancellation point that does not wait: fails with the fiber's
/// cancellation error if it is cancelled, else returns at once. It counts
/// toward the coop budget as any suspension point that did not have to
/// wait (the 129th in a row yields, so that a loop of them cannot starve
/// the thread), which makes it the first step of an operation that may
/// complete without waiting: a read that finds data ready, say, then
/// behaves as if it had waited for it.
///
/// # Cancellation
///
/// A cancellation point, the cheapest there is.
///
/// # Errors
///
/// The fiber's cancellation error; [`ErrorKind::NotInFiber`] outside a
/// fiber.
///
/// # Examples
///
/// ```
/// fuseau::block_on(|| {
///     let mut sum = 0u64;
///     for i in 0..1_000 {
///         fuseau::checkpoint()?; // cancellable, and fair to other fibers
///         sum += i;
///     }
///     assert_eq!(sum, 499_500);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn checkpoint() -> Result<()> {
    with_fiber("checkpoint", |me| me.checkpoint())
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
    with_fiber("yield_now", |me| {
        me.checkpoint()?;
        me.yield_now();
        me.cancelled()
    })
}
