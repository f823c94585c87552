//! What runs on this thread: the scheduler whose iteration (or teardown)
//! is running, and the fiber whose stack is executing.
//!
//! Both are thread-local raw pointers, read on every suspension point, so
//! reading them is one load: no `RefCell`, no reference count.
//!
//! # Invariants
//!
//! 1. `SCHED` is `Some(p)` only inside an [`Enter`] guard, which holds an
//!    `Rc` to that scheduler for as long as it is set: `p` is valid then.
//! 2. `FIBER` is `Some(p)` only between [`switch_in`] and [`switch_out`],
//!    which the scheduler calls around resuming (or force-unwinding) a
//!    fiber's coroutine while it holds a reference to the fiber's record,
//!    so `p` is valid then. It is set from the switch itself: code that runs
//!    while it is `Some(p)` runs on `p`'s stack (the scheduler runs none of
//!    its own code between the two calls besides the switch).
//! 3. Entering a scheduler clears `FIBER` (and restores both on exit): the
//!    running fiber is always one of the entered scheduler's, never the
//!    fiber of an outer scheduler that entered this one (a scheduler
//!    disposed of from another scheduler's fiber).
//! 4. A `&Task` handed out by [`with_current`] may be kept across the
//!    fiber's suspensions: the coroutine that runs the stack holding it
//!    lives inside the record and is borrowed while it runs (`task` module
//!    docs), and a record is never freed while its coroutine is suspended
//!    (teardown unwinds or leaks every stack first; `Header`'s drop leaks a
//!    suspended coroutine rather than unwind it inside a dying record).

use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;

use super::SchedInner;
use crate::error::{Error, ErrorKind, Result};
use crate::overflow::RunningStack;
use crate::task::Task;

thread_local! {
    static SCHED: Cell<Option<NonNull<SchedInner>>> = const { Cell::new(None) };
    static FIBER: Cell<Option<NonNull<Task>>> = const { Cell::new(None) };
}

/// Makes a scheduler current on this thread, with no fiber running;
/// restores what was current before on drop.
pub(crate) struct Enter {
    previous: (Option<NonNull<SchedInner>>, Option<NonNull<Task>>),
    /// Keeps the scheduler alive while it is current (invariant 1).
    _sched: Rc<SchedInner>,
}

impl Enter {
    pub(crate) fn new(sched: &Rc<SchedInner>) -> Enter {
        let ptr = NonNull::from(&**sched);
        Enter {
            previous: (SCHED.replace(Some(ptr)), FIBER.replace(None)),
            _sched: sched.clone(),
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        SCHED.set(self.previous.0);
        FIBER.set(self.previous.1);
    }
}

/// The fiber about to be switched to becomes the running one; returns what
/// ran before, for [`switch_out`]. The caller holds a reference to `task`
/// until then (invariant 2).
#[inline]
pub(crate) fn switch_in(task: &Task) -> Option<NonNull<Task>> {
    FIBER.replace(Some(NonNull::from(task)))
}

/// Back from a fiber's stack: restores what ran before.
#[inline]
pub(crate) fn switch_out(previous: Option<NonNull<Task>>) {
    FIBER.set(previous);
}

/// Runs `f` with the running fiber, if a fiber is running.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Task) -> R) -> Option<R> {
    let ptr = FIBER.with(Cell::get)?;
    // SAFETY: by invariant 2 the pointer is valid while it is set, and it is
    // set now; the reference does not outlive the frame on the fiber's stack
    // that called us, which by invariant 4 cannot outlive the record.
    let task = unsafe { ptr.as_ref() };
    Some(f(task))
}

/// The running fiber's stack, for the stack-overflow handler; `None` outside
/// a fiber (or for one without a stack yet).
///
/// Async-signal-safe, as the handler requires (`overflow` module docs): it
/// reads the `FIBER` cell and plain fields of the record, and allocates and
/// borrows nothing.
pub(crate) fn running_stack() -> Option<RunningStack> {
    with_current(|task| {
        let h = task.header();
        let bounds = h.yielder.bounds();
        if bounds.base() == 0 {
            return None;
        }
        Some(RunningStack {
            // corosensei's limit includes the guard page (one page, at the
            // bottom); the usable stack starts above it.
            limit: bounds.limit() + crate::stack::page_size(),
            base: bounds.base(),
            id: h.id.as_u64(),
            name: h.name().map(|n| (n.as_ptr(), n.len())),
        })
    })
    .flatten()
}

/// Runs `f` with the running fiber; `Err(NotInFiber)` naming `call` outside
/// one.
#[inline]
pub(crate) fn with_fiber<R>(call: &str, f: impl FnOnce(&Task) -> Result<R>) -> Result<R> {
    with_current(f).unwrap_or_else(|| Err(not_in_fiber(call)))
}

/// The running fiber.
pub(crate) fn current_task() -> Option<Rc<Task>> {
    with_current(Task::to_rc)
}

/// `true` while a fiber runs on this thread.
pub(crate) fn in_fiber() -> bool {
    FIBER.with(Cell::get).is_some()
}

/// Runs `f` with the current scheduler, if one is entered.
pub(crate) fn with_sched<R>(f: impl FnOnce(&Rc<SchedInner>) -> R) -> Option<R> {
    let ptr = SCHED.with(Cell::get)?;
    // SAFETY: by invariant 1 the `Enter` guard that set the pointer holds an
    // `Rc` to the scheduler for as long as it is set, so `ptr` points at the
    // value of a live `Rc` allocation, as `increment_strong_count` requires.
    unsafe { Rc::increment_strong_count(ptr.as_ptr()) };
    // SAFETY: `ptr` is the value pointer of an `Rc<SchedInner>` (as above),
    // and the count added just before is the one this `Rc` owns.
    let sched = unsafe { Rc::from_raw(ptr.as_ptr()) };
    Some(f(&sched))
}

/// The current scheduler.
pub(crate) fn current_sched() -> Option<Rc<SchedInner>> {
    with_sched(Rc::clone)
}

pub(crate) fn not_in_fiber(call: &str) -> Error {
    Error::new(
        ErrorKind::NotInFiber,
        format!("{call} must be called from inside a fiber"),
    )
}
