//! Fibers spawned from other threads: [`spawn_from_anywhere`] and
//! [`RemoteFiber`].
//!
//! # Ownership rules
//!
//! (The inbox that carries spawns and cancels to the scheduler has its own
//! rules, in `inbox.rs`.)
//!
//! 1. The closure of a remote spawn runs on the scheduler's thread, where it
//!    spawns a root fiber.
//! 2. The result travels back through `Shared`, a mutex-protected slot with a
//!    condition variable (for threads) and a list of wakers (for fibers and
//!    futures). It is completed once; a completed slot is never written again.
//!    Its result is taken once (by `join` or `poll_join`); a later attempt
//!    gets a clear error, and the fiber still counts as done.
//! 3. If the closure is dropped without running, its drop completes the slot
//!    with `Inactive`, so no joiner waits forever.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::cancel::CancelHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::fiber::Builder;
use crate::inbox::{Inbox, Message};
use crate::scheduler::context::{current_sched, with_current};
use crate::scheduler::{inactive, Scheduler, SchedulerHandle};
use crate::std_sync::{lock, Condvar, Mutex};
use crate::task::{Origin, Wakeup};

/// The result slot of a remote fiber (rule 5). `pub(crate)` with its
/// methods so that the loom tests (`loom_tests.rs`) can race them directly.
pub(crate) struct Shared<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

struct State<T> {
    result: Option<Result<T>>,
    /// Set once the result was taken by `join`.
    taken: bool,
    wakers: Vec<Waker>,
    /// Where the fiber is, once spawned, for `cancel`.
    fiber: Option<(usize, crate::id::FiberId)>,
    cancel_requested: bool,
}

impl<T> Shared<T> {
    /// An empty slot.
    pub(crate) fn new() -> Shared<T> {
        Shared {
            state: Mutex::new(State {
                result: None,
                taken: false,
                wakers: Vec::new(),
                fiber: None,
                cancel_requested: false,
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> crate::std_sync::MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Fills the slot (the first completion wins) and wakes every joiner.
    pub(crate) fn complete(&self, result: Result<T>) {
        let wakers = {
            let mut state = self.lock();
            if state.result.is_some() || state.taken {
                return;
            }
            state.result = Some(result);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Takes the result if the slot is filled; never waits. `None` also
    /// once it was taken (see [`Shared::check_taken`]).
    pub(crate) fn try_take(&self) -> Option<Result<T>> {
        let mut state = self.lock();
        let result = state.result.take()?;
        state.taken = true;
        Some(result)
    }

    /// `Err` if the result was taken already (rule 2).
    pub(crate) fn check_taken(&self, call: &str) -> Result<()> {
        if self.lock().taken {
            return Err(already_taken(call));
        }
        Ok(())
    }

    /// `true` once the slot was filled (taken or not).
    pub(crate) fn is_done(&self) -> bool {
        let state = self.lock();
        state.result.is_some() || state.taken
    }

    /// Registers `waker` to be woken by `complete`; `false` (and the waker
    /// is dropped) if the slot is filled already.
    pub(crate) fn register(&self, waker: Waker) -> bool {
        let mut state = self.lock();
        if state.result.is_some() || state.taken {
            return false;
        }
        if !state.wakers.iter().any(|w| w.will_wake(&waker)) {
            state.wakers.push(waker);
        }
        true
    }

    /// Blocks the thread until the slot is filled, and takes the result.
    pub(crate) fn wait_blocking(&self) -> Result<T> {
        let mut state = self.lock();
        loop {
            if let Some(result) = state.result.take() {
                state.taken = true;
                return result;
            }
            if state.taken {
                return Err(already_taken("RemoteFiber::join"));
            }
            state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn already_taken(call: &str) -> Error {
    Error::new(
        ErrorKind::Other,
        format!("{call}: the fiber's result was already taken (by poll_join)"),
    )
}

/// A fiber spawned from another thread with [`spawn_from_anywhere`]; join it
/// from any thread or fiber.
///
/// `Send + Sync`. Dropping it does not stop the fiber.
pub struct RemoteFiber<T> {
    shared: Arc<Shared<T>>,
    inbox: Arc<Inbox>,
}

/// The closure on its way to the scheduler (rule 3).
struct Pending<T, F> {
    shared: Arc<Shared<T>>,
    f: Option<F>,
}

impl<T, F> Drop for Pending<T, F> {
    fn drop(&mut self) {
        if self.f.is_some() {
            self.shared.complete(Err(inactive()));
        }
    }
}

/// Spawns `f` as a fiber with no parent on the scheduler of `handle`, from
/// any thread. The fiber starts in a later iteration of that scheduler.
/// Thread-safe; costlier than [`spawn`](crate::spawn).
///
/// Not a cancellation point; never blocks.
///
/// # Errors
///
/// None here: if the scheduler is (or gets) disposed of before the fiber
/// starts, [`RemoteFiber::join`] returns [`ErrorKind::Inactive`].
///
/// # Examples
///
/// ```
/// fuseau::block_on(|| {
///     let handle = fuseau::Scheduler::current().handle();
///     // Another thread spawns onto this scheduler…
///     let remote = std::thread::spawn(move || fuseau::spawn_from_anywhere(&handle, || Ok(6 * 7)))
///         .join()
///         .unwrap();
///     // …and the result can be joined here (or from any thread).
///     assert_eq!(remote.join()?, 42);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn spawn_from_anywhere<T, F>(handle: &SchedulerHandle, f: F) -> RemoteFiber<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let shared = Arc::new(Shared::new());
    let mut pending = Pending {
        shared: shared.clone(),
        f: Some(f),
    };
    let inbox = handle.inbox.clone();
    let run = Message::Run(Box::new(move || {
        let f = pending.f.take().expect("a remote spawn runs once");
        let shared = pending.shared.clone();
        start(shared, f);
    }));
    // Refused (the scheduler is inactive): dropping the closure completes
    // the fiber with `Inactive`.
    drop(inbox.send(run));
    RemoteFiber { shared, inbox }
}

/// On the scheduler's thread: spawn the fiber and arrange for its result to
/// be sent back when it is done.
fn start<T: Send + 'static>(shared: Arc<Shared<T>>, f: impl FnOnce() -> Result<T> + 'static) {
    let Some(sched) = current_sched() else {
        shared.complete(Err(inactive()));
        return;
    };
    // A refused spawn drops `f`, and with it user data whose destructor may
    // panic: the slot must be completed all the same (rule 6).
    let spawned = catch_unwind(AssertUnwindSafe(|| {
        Builder::new().spawn_on(&Scheduler::borrowed(sched), f)
    }));
    let fiber = match spawned {
        Ok(Ok(fiber)) => fiber,
        Ok(Err(e)) => {
            shared.complete(Err(e));
            return;
        }
        Err(payload) => {
            shared.complete(Err(Error::from_panic(payload)));
            return;
        }
    };
    let cancel_requested = {
        let mut state = shared.lock();
        state.fiber = Some((fiber.slab_key(), fiber.id()));
        state.cancel_requested
    };
    if cancel_requested {
        fiber.cancel();
    }
    let any = fiber.any();
    any.on_done(Box::new(move || {
        // Never started because the scheduler was disposed of first (a
        // spawn that arrived in its last iterations): `Inactive`, as if it
        // had arrived after.
        let h = fiber.header();
        if !h.started() && h.cancel_origin() == Some(Origin::Scheduler) {
            shared.complete(Err(inactive()));
        } else if let Some(result) = fiber.result_if_done() {
            shared.complete(result);
        }
    }));
}

impl<T: Send + 'static> RemoteFiber<T> {
    /// Waits until the fiber is done and returns its result.
    ///
    /// Inside a fiber, the fiber suspends; on any other thread, the thread
    /// blocks.
    ///
    /// # Cancellation
    ///
    /// Inside a fiber, a cancellation point for the caller: cancelled before
    /// the call or while waiting, it returns the caller's cancellation error
    /// (the remote fiber keeps running; its result is dropped). As with
    /// [`Fiber::join`](crate::Fiber::join), if the fiber finished before the
    /// caller resumed, its result is returned.
    ///
    /// # Errors
    ///
    /// The fiber's failure; [`ErrorKind::Inactive`] if its scheduler was
    /// disposed of before it ran; the caller's cancellation; and
    /// [`ErrorKind::Other`] when called outside a fiber on the scheduler's
    /// own thread, where blocking would deadlock, or after
    /// [`poll_join`](RemoteFiber::poll_join) took the result.
    pub fn join(self) -> Result<T> {
        self.shared.check_taken("RemoteFiber::join")?;
        if let Some(cancelled_before) = with_current(|me| me.header().is_cancelled()) {
            let joined = wait_for(
                JoinEvent {
                    shared: &self.shared,
                },
                "RemoteFiber::join",
            );
            if joined.is_err() && !cancelled_before {
                // Cancelled while waiting, but the result arrived before the
                // caller resumed: as with `Fiber::join`, it is returned, not
                // dropped. (If `joined` is the fiber's own error, the slot
                // is empty now.)
                if let Some(result) = self.shared.try_take() {
                    return result;
                }
            }
            return joined;
        }
        // A result that is there already is returned on any thread, also on
        // the scheduler's own (after it was disposed of, say).
        if let Some(result) = self.shared.try_take() {
            return result;
        }
        if self.inbox.is_scheduler_thread() {
            return Err(Error::new(
                ErrorKind::Other,
                "RemoteFiber::join: blocking the scheduler's own thread outside a fiber would deadlock",
            ));
        }
        self.shared.wait_blocking()
    }

    /// For futures that wait for the fiber, from any thread: its result once
    /// it is done, else `Pending`, and `cx`'s waker is woken when it is done.
    /// Never blocks; not a cancellation point. After it returned `Ready`, the
    /// result is gone: polling again (or `join`) gives an
    /// [`ErrorKind::Other`] error, and [`is_done`](RemoteFiber::is_done)
    /// stays `true`.
    pub fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Err(e) = self.shared.check_taken("RemoteFiber::poll_join") {
            return Poll::Ready(Err(e));
        }
        if let Some(result) = self.shared.try_take() {
            return Poll::Ready(result);
        }
        if self.shared.register(cx.waker().clone()) {
            return Poll::Pending;
        }
        match self.shared.try_take() {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }

    /// `true` once the fiber is done (or will never run); it stays `true`
    /// once the result was taken.
    pub fn is_done(&self) -> bool {
        self.shared.is_done()
    }

    /// Cancels the fiber, from any thread. Takes effect on the scheduler's
    /// thread, soon after (before the fiber starts, if it has not yet).
    /// Never blocks.
    pub fn cancel(&self) {
        let fiber = {
            let mut state = self.shared.lock();
            state.cancel_requested = true;
            state.fiber
        };
        if let Some((key, id)) = fiber {
            // Refused only if the scheduler is inactive: its fibers are
            // cancelled already.
            drop(self.inbox.send(Message::Cancel { key, id }));
        }
    }
}

struct JoinEvent<'a, T> {
    shared: &'a Arc<Shared<T>>,
}

impl<T> Event for JoinEvent<'_, T> {
    type Output = T;

    fn poll(&mut self) -> Option<Result<T>> {
        self.shared.try_take()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        if !self.shared.register(wakeup.to_waker()) {
            wakeup.wake();
        }
        CancelHandle::dummy()
    }
}

impl<T> fmt::Debug for RemoteFiber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("RemoteFiber")
            .field("fiber", &state.fiber.map(|(_, id)| id))
            .field("done", &state.result.is_some())
            .finish()
    }
}
