//! Events, `select`, and wake-ups: how a fiber waits for things.
//!
//! An [`Event`] is something a fiber can wait for: a channel operation, a
//! timeout, a future. [`await_event`] waits for one; [`select`] waits for
//! the first of several.
//!
//! A [`Wakeup`] names one fiber and one of its waits. Calling
//! [`wake`](Wakeup::wake) queues the fiber; it never switches to it. A
//! wake-up for a wait that has ended (the fiber was woken by something else,
//! or cancelled) does nothing, so a registration that was not removed in time
//! cannot wake the fiber in the middle of a later, unrelated wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Weak as ArcWeak};
use std::task::{Context, Poll, Wake, Waker};

use crate::cancel::CancelHandle;
use crate::error::Result;
use crate::fiber::FiberId;
use crate::remote::Remote;
use crate::scheduler::{current_task, not_in_fiber, require_task, wake_on_this_thread};
use crate::task::{self, FiberCore, State, Task};

/// Wakes a fiber that waits (thread-bound; see [`Wakeup::to_waker`] for
/// other threads).
///
/// Cheap to clone: all clones wake the same wait.
#[derive(Clone)]
pub struct Wakeup {
    task: Rc<Task>,
    epoch: u64,
    /// Which branch of a `select` this wake-up was given to.
    branch: usize,
}

impl Wakeup {
    /// A wake-up for the current wait of `task` (the running fiber).
    pub(crate) fn for_task(task: &Rc<Task>) -> Wakeup {
        Wakeup::for_branch(task, 0)
    }

    /// A wake-up for branch `branch` of the current wait of `task`.
    pub(crate) fn for_branch(task: &Rc<Task>, branch: usize) -> Wakeup {
        Wakeup {
            task: task.clone(),
            epoch: task.core().epoch(),
            branch,
        }
    }

    pub(crate) fn is_for(&self, task: &Rc<Task>) -> bool {
        Rc::ptr_eq(&self.task, task)
    }

    /// Queues the fiber if it is still in the wait this wake-up belongs to.
    /// Idempotent. Must be called on the fiber's thread (the type is `!Send`).
    pub fn wake(&self) {
        FiberCore::wake(&self.task, self.epoch);
    }

    /// Claims the wait for this wake-up's branch and wakes the fiber;
    /// `false` if the wait is over or another branch claimed it first.
    ///
    /// An event that completes by handing something over to the waiting
    /// fiber (a channel giving it a value, or taking the value it offers)
    /// must claim first and hand over only on `true`: the fiber's
    /// [`select`] then reports this branch, whatever else became ready, so
    /// nothing handed over is lost or reported undone. Must be called on the
    /// fiber's thread.
    pub fn claim(&self) -> bool {
        FiberCore::claim(&self.task, self.epoch, self.branch)
    }

    /// The id of the fiber this wakes.
    pub fn fiber_id(&self) -> FiberId {
        self.task.core().id
    }

    /// A [`Waker`] that may be sent to, and woken from, any thread. Woken
    /// on the scheduler's own thread (by a Tokio task, say), it wakes the
    /// fiber at once, as [`wake`](Wakeup::wake) would, and unparks the event
    /// loop if the scheduler is not running; woken from another thread, it
    /// sends a message to the scheduler and unparks its event loop, and the
    /// scheduler then wakes the fiber. A waker outliving its scheduler does
    /// nothing.
    pub fn to_waker(&self) -> Waker {
        let core = self.task.core();
        // The fiber keeps the `Arc` of its last waker: when nobody else
        // holds it any more (the usual case once a wait is over), the next
        // wait reuses it instead of allocating.
        let mut cached = core.waker_cache.take();
        match cached.as_mut().and_then(Arc::get_mut) {
            Some(unused) => unused.epoch = self.epoch,
            None => {
                let remote = core
                    .sched
                    .upgrade()
                    .map_or_else(ArcWeak::new, |s| Arc::downgrade(s.remote()));
                cached = Some(Arc::new(RemoteWakeup {
                    remote,
                    key: core.slab_key.get(),
                    id: core.id,
                    epoch: self.epoch,
                }));
            }
        }
        let waker = cached.clone().map(Waker::from);
        core.waker_cache.set(cached);
        waker.expect("set above")
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

pub(crate) struct RemoteWakeup {
    remote: ArcWeak<Remote>,
    key: usize,
    id: FiberId,
    epoch: u64,
}

impl Wake for RemoteWakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(remote) = self.remote.upgrade() {
            if !wake_on_this_thread(&remote, self.key, self.id, self.epoch) {
                remote.wake(self.key, self.id, self.epoch);
            }
        }
    }
}

/// Something a fiber can wait for, alone or in a [`select`].
///
/// The protocol, as in crossbeam's select: [`poll`](Event::poll) tries to
/// complete the event without waiting; if it cannot, [`wait`](Event::wait)
/// registers the fiber's [`Wakeup`] with whatever will make the event ready,
/// and returns a [`CancelHandle`] that undoes the registration. `select`
/// always undoes every registration once the fiber wakes, whatever woke it,
/// and then polls again.
///
/// An event that completes by *handing* something to the waiter (a channel
/// passing a value) must first [`claim`](Wakeup::claim) the wake-up: a wait
/// can be claimed by one branch only, and `select` then reports that branch.
/// Events that merely become ready (a timer) call [`wake`](Wakeup::wake).
pub trait Event {
    /// What the event resolves to.
    type Output;

    /// Completes the event if it is ready: `Some(Ok(value))`, or
    /// `Some(Err(e))` if it failed; `None` if it is not ready.
    fn poll(&mut self) -> Option<Result<Self::Output>>;

    /// Registers `wakeup` to be woken (or claimed) when the event may have
    /// become ready. Called only after `poll` returned `None`, with no other
    /// code running in between.
    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle;
}

impl<E: Event + ?Sized> Event for &mut E {
    type Output = E::Output;

    fn poll(&mut self) -> Option<Result<E::Output>> {
        (**self).poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        (**self).wait(wakeup)
    }
}

impl<E: Event + ?Sized> Event for Box<E> {
    type Output = E::Output;

    fn poll(&mut self) -> Option<Result<E::Output>> {
        (**self).poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        (**self).wait(wakeup)
    }
}

/// A branch of a [`select`]: an event, and what to do with its value.
pub struct When<'a, R> {
    branch: Box<dyn Branch<R> + 'a>,
}

trait Branch<R> {
    fn poll(&mut self) -> Option<Result<R>>;
    /// Registers the branch's event; the branch keeps the handle.
    fn wait(&mut self, wakeup: Wakeup);
    /// Undoes the registration of the last `wait`, if any.
    fn unregister(&mut self);
}

struct WhenImpl<E, F> {
    event: E,
    f: Option<F>,
    /// Kept in the branch (already boxed) so that waiting allocates nothing
    /// more.
    registration: Option<CancelHandle>,
}

impl<E: Event, R, F: FnOnce(E::Output) -> R> Branch<R> for WhenImpl<E, F> {
    fn poll(&mut self) -> Option<Result<R>> {
        let ready = self.event.poll()?;
        let f = self.f.take().expect("a select branch completes once");
        Some(ready.map(f))
    }

    fn wait(&mut self, wakeup: Wakeup) {
        self.registration = Some(self.event.wait(wakeup));
    }

    fn unregister(&mut self) {
        if let Some(handle) = self.registration.take() {
            handle.cancel();
        }
    }
}

impl<'a, R> When<'a, R> {
    /// A branch that, if `event` wins the select, calls `f` with its value.
    pub fn new<E, F>(event: E, f: F) -> When<'a, R>
    where
        E: Event + 'a,
        F: FnOnce(E::Output) -> R + 'a,
    {
        When {
            branch: Box::new(WhenImpl {
                event,
                f: Some(f),
                registration: None,
            }),
        }
    }
}

impl<R> fmt::Debug for When<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("When").finish_non_exhaustive()
    }
}

/// Waits for the first of several events.
///
/// Branches are polled in order; the first that is ready wins, and its
/// function is called with the event's value; an event that resolves to an
/// error makes `select` return that error. If none is ready, the fiber
/// suspends on all of them; when it wakes, every registration is undone and
/// the branches are polled again (a branch that completed by claiming the
/// wait, like a channel handing over a value, wins). Events of the losing
/// branches are dropped without taking effect: a losing `ev_send` sends
/// nothing, a losing `ev_recv` takes nothing.
///
/// # Cancellation
///
/// A cancellation point: if the fiber is cancelled before the call or while
/// it waits, this returns the cancellation error, unless a branch had
/// already completed by claiming the wait (its value is returned, not lost).
///
/// # Errors
///
/// The error of the winning event, the fiber's cancellation, or
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber) outside a fiber.
/// An empty `select` waits until cancelled.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fuseau::{select, Chan, When};
///
/// fuseau::block_on(|| {
///     let numbers = Chan::new();
///     let words = Chan::new();
///     words.send("hello")?;
///     let got = select(vec![
///         When::new(numbers.ev_recv(), |n: u32| n.to_string()),
///         When::new(words.ev_recv(), |w: &str| w.to_uppercase()),
///         When::new(fuseau::ev_timeout(Duration::from_secs(1)), |()| "timeout".into()),
///     ])?;
///     assert_eq!(got, "HELLO");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn select<R>(mut branches: Vec<When<'_, R>>) -> Result<R> {
    let me = require_task("select")?;
    task::checkpoint(&me)?;
    loop {
        for branch in &mut branches {
            if let Some(result) = branch.branch.poll() {
                return result;
            }
        }
        let registrations = Registrations::new(&me, &mut branches[..]);
        for (i, b) in registrations.registered.iter_mut().enumerate() {
            b.branch.wait(Wakeup::for_branch(&me, i));
        }
        let claimed = registrations.park();
        if let Some(result) = claimed.and_then(|i| branches[i].branch.poll()) {
            return result;
        }
        if let Some(e) = me.core().cancel_error() {
            return Err(e);
        }
    }
}

/// Waits for `event`: [`select`] with one branch, without the boxing.
///
/// # Cancellation
///
/// A cancellation point, as [`select`]: cancelled before the call or while
/// waiting, it returns the cancellation error, unless the event completed
/// by claiming the wait first.
///
/// # Errors
///
/// The event's error or the fiber's cancellation. Outside a fiber, an event
/// that is ready completes; one that would wait gives
/// [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let e = fuseau::block_on(|| {
///     fuseau::await_event(fuseau::ev_timeout(Duration::from_millis(1)))
/// });
/// assert!(e.unwrap_err().is_timeout());
/// ```
pub fn await_event<E: Event>(event: E) -> Result<E::Output> {
    wait_for(event, "await_event")
}

/// [`await_event`] naming `call` in its `NotInFiber` error.
pub(crate) fn wait_for<E: Event>(mut event: E, call: &str) -> Result<E::Output> {
    let Some(me) = current_task() else {
        return event.poll().unwrap_or_else(|| Err(not_in_fiber(call)));
    };
    task::checkpoint(&me)?;
    loop {
        if let Some(result) = event.poll() {
            return result;
        }
        let mut handle = None;
        let registration = Registrations::new(&me, &mut handle);
        *registration.registered = Some(event.wait(Wakeup::for_task(&me)));
        let claimed = registration.park();
        if claimed.is_some() {
            if let Some(result) = event.poll() {
                return result;
            }
        }
        if let Some(e) = me.core().cancel_error() {
            return Err(e);
        }
    }
}

/// The registrations of one wait of a fiber (`me`), undone when dropped:
/// on every path, so also when an event's `wait` panics (a bug in a
/// hand-written event) and the fiber catches the panic and goes on. A
/// registration left behind would belong to the fiber's *current* wait: in
/// its next wait (a `sleep`, say), a channel could claim it and hand over a
/// value that nobody receives, and wake the fiber spuriously.
struct Registrations<'a, U: Registered + ?Sized> {
    me: &'a Rc<Task>,
    registered: &'a mut U,
    /// The wait is still open: it never got to `park`, which ends it.
    open: bool,
}

/// Where the registrations of one wait are kept: the branches of a
/// `select`, or the one handle of a single event.
trait Registered {
    /// Undoes every registration made so far.
    fn undo(&mut self);
}

impl<R> Registered for [When<'_, R>] {
    fn undo(&mut self) {
        for b in self {
            b.branch.unregister();
        }
    }
}

impl Registered for Option<CancelHandle> {
    fn undo(&mut self) {
        if let Some(handle) = self.take() {
            handle.cancel();
        }
    }
}

impl<'a, U: Registered + ?Sized> Registrations<'a, U> {
    fn new(me: &'a Rc<Task>, registered: &'a mut U) -> Registrations<'a, U> {
        Registrations {
            me,
            registered,
            open: true,
        }
    }

    /// Suspends until a wake-up, a claim or a cancellation, then undoes
    /// every registration; returns the branch that claimed the wait.
    fn park(mut self) -> Option<usize> {
        let claimed = task::park(self.me);
        self.open = false;
        claimed
    }
}

impl<U: Registered + ?Sized> Drop for Registrations<'_, U> {
    fn drop(&mut self) {
        self.registered.undo();
        let core = self.me.core();
        // Unwinding out of a registration: end the wait, so that whatever
        // an event did to it (a wake-up, a claim) does not carry over to
        // the next one. (Not while the scheduler force-unwinds the stack:
        // the fiber is finished then.)
        if self.open && !core.unwinding.get() && core.state.get() == State::Running {
            // A wake-up while running is remembered, so `park` returns at
            // once, without suspending, and ends the wait.
            Wakeup::for_task(self.me).wake();
            task::park(self.me);
        }
    }
}

/// An [`Event`] that completes when a [`Future`] does; see [`ev_future`].
pub struct FutureEvent<F: Future> {
    poller: Poller<Pin<Box<F>>>,
}

/// An [`Event`] that completes when a pinned [`Future`] it borrows does;
/// see [`ev_future_pinned`].
pub struct PinnedFutureEvent<'a, F: Future + ?Sized> {
    poller: Poller<Pin<&'a mut F>>,
}

/// Polls a future (an `Unpin` handle to one) as an event.
struct Poller<P: Future + Unpin> {
    future: P,
    /// The waker of the current wait; polls outside a wait use a no-op one
    /// (the wait that follows polls again with the real one).
    waker: Option<Waker>,
    /// The wait (fiber, epoch) whose waker the last `poll` used: `wait`
    /// for that same wait need not poll again.
    polled_for: Option<(FiberId, u64)>,
    /// The output, if the future completed during `wait`.
    ready: Option<P::Output>,
    done: bool,
}

/// Makes any [`Future`] an [`Event`] (for [`select`] and [`await_event`]):
/// the future is polled from the fiber, with a [`Waker`] that may be woken
/// from any thread. Dropping the event drops the future. The future is
/// boxed (pinned on the heap); [`ev_future_pinned`] borrows one pinned
/// elsewhere instead.
///
/// The future runs on the fiber's thread, inside whatever runtime drives the
/// scheduler: under `fuseau_tokio` it may use Tokio's sockets and timers;
/// under [`block_on`](crate::block_on), only runtime-independent futures.
///
/// # Examples
///
/// ```
/// use std::future::ready;
///
/// let n = fuseau::block_on(|| fuseau::await_event(fuseau::ev_future(ready(7))))?;
/// assert_eq!(n, 7);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn ev_future<F: Future>(future: F) -> FutureEvent<F> {
    FutureEvent {
        poller: Poller::new(Box::pin(future)),
    }
}

/// [`ev_future`] for a future pinned by the caller (on the fiber's stack
/// with [`std::pin::pin!`], say): no allocation. The future stays with the
/// caller, who may poll it again after the event, if it did not complete.
///
/// # Examples
///
/// ```
/// use std::future::ready;
/// use std::pin::pin;
///
/// let n = fuseau::block_on(|| {
///     let future = pin!(ready(7));
///     fuseau::await_event(fuseau::ev_future_pinned(future))
/// })?;
/// assert_eq!(n, 7);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn ev_future_pinned<F: Future + ?Sized>(future: Pin<&mut F>) -> PinnedFutureEvent<'_, F> {
    PinnedFutureEvent {
        poller: Poller::new(future),
    }
}

impl<P: Future + Unpin> Poller<P> {
    fn new(future: P) -> Poller<P> {
        Poller {
            future,
            waker: None,
            polled_for: None,
            ready: None,
            done: false,
        }
    }

    fn poll_future(&mut self, waker: &Waker) -> Option<P::Output> {
        if self.done {
            return None;
        }
        match Pin::new(&mut self.future).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(output) => {
                self.done = true;
                Some(output)
            }
            Poll::Pending => None,
        }
    }

    fn poll(&mut self) -> Option<Result<P::Output>> {
        if let Some(output) = self.ready.take() {
            return Some(Ok(output));
        }
        // The first poll inside a fiber uses the waker of the fiber's
        // current wait, so that if the future is pending, the `wait` that
        // follows has nothing left to do. Later polls (after a wake-up)
        // reuse the waker they have: usually the future is ready by then,
        // and a pending one is polled again by `wait` with a fresh waker.
        self.polled_for = None;
        let waker = match self.waker.take() {
            Some(waker) => waker,
            None => match current_task() {
                Some(me) => {
                    let wakeup = Wakeup::for_task(&me);
                    self.polled_for = Some((wakeup.fiber_id(), wakeup.epoch));
                    wakeup.to_waker()
                }
                None => Waker::noop().clone(),
            },
        };
        let output = self.poll_future(&waker);
        self.waker = Some(waker);
        output.map(Ok)
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        if self.polled_for.take() != Some((wakeup.fiber_id(), wakeup.epoch)) {
            self.waker = None;
            let waker = wakeup.to_waker();
            if let Some(output) = self.poll_future(&waker) {
                self.ready = Some(output);
                wakeup.wake();
            }
            self.waker = Some(waker);
        }
        CancelHandle::dummy()
    }
}

impl<F: Future> Event for FutureEvent<F> {
    type Output = F::Output;

    fn poll(&mut self) -> Option<Result<F::Output>> {
        self.poller.poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.poller.wait(wakeup)
    }
}

impl<F: Future + ?Sized> Event for PinnedFutureEvent<'_, F> {
    type Output = F::Output;

    fn poll(&mut self) -> Option<Result<F::Output>> {
        self.poller.poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.poller.wait(wakeup)
    }
}

impl<F: Future> fmt::Debug for FutureEvent<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutureEvent")
            .field("done", &self.poller.done)
            .finish_non_exhaustive()
    }
}

impl<F: Future + ?Sized> fmt::Debug for PinnedFutureEvent<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedFutureEvent")
            .field("done", &self.poller.done)
            .finish_non_exhaustive()
    }
}

/// Wake-ups need a fiber to wait on one, which the public API does not offer
/// yet (no `Event`/`select`): these tests park fibers with the crate's
/// internals.
#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::event_loop::{EventLoop, Unpark};
    use crate::scheduler::{current_task, Config, Iteration, Scheduler};
    use crate::{task, Builder};

    /// Parks the running fiber until a wake-up of its current wait, after
    /// handing that wait's `Wakeup` to `register`.
    fn wait(register: impl FnOnce(Wakeup)) {
        let me = current_task().expect("in a fiber");
        register(Wakeup::for_task(&me));
        task::park(&me);
    }

    /// Aborts the test binary if `f` takes longer than `limit`: a lost
    /// wake-up shows as a hang, which must not stall the test suite.
    fn with_watchdog<R>(limit: Duration, f: impl FnOnce() -> R) -> R {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !d.load(Ordering::Acquire) {
                if start.elapsed() > limit {
                    eprintln!("a wake-up was lost: the test hung for {limit:?}");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = f();
        done.store(true, Ordering::Release);
        r
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn wakers_woken_from_another_thread_are_never_lost() {
        const ROUNDS: usize = 10_000;
        let (tx, rx) = mpsc::channel::<Waker>();
        let helper = std::thread::spawn(move || {
            let mut n = 0;
            for waker in rx {
                if n % 3 == 0 {
                    // Sometimes late, so the scheduler thread really parks.
                    std::thread::yield_now();
                }
                waker.wake();
                n += 1;
            }
            n
        });
        let rounds = with_watchdog(Duration::from_secs(60), move || {
            crate::block_on(move || {
                for _ in 0..ROUNDS {
                    wait(|w| tx.send(w.to_waker()).unwrap());
                }
                Ok(ROUNDS)
            })
        });
        assert_eq!(rounds.unwrap(), ROUNDS);
        assert_eq!(helper.join().unwrap(), ROUNDS);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn many_fibers_woken_from_other_threads() {
        const FIBERS: usize = 50;
        const ROUNDS: usize = 100;
        let (tx, rx) = mpsc::channel::<Waker>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let helpers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || loop {
                    let next = rx.lock().unwrap().recv();
                    match next {
                        // Duplicates of one wake-up wake once.
                        Ok(waker) => {
                            waker.wake_by_ref();
                            waker.wake();
                        }
                        Err(_) => return,
                    }
                })
            })
            .collect();
        let total = with_watchdog(Duration::from_secs(60), move || {
            crate::block_on(move || {
                let fibers: Vec<_> = (0..FIBERS)
                    .map(|_| {
                        let tx = tx.clone();
                        crate::spawn(move || {
                            for _ in 0..ROUNDS {
                                wait(|w| tx.send(w.to_waker()).unwrap());
                            }
                            Ok(ROUNDS)
                        })
                    })
                    .collect();
                drop(tx);
                fibers
                    .into_iter()
                    .map(|f| f.join())
                    .sum::<crate::Result<usize>>()
            })
        });
        assert_eq!(total.unwrap(), FIBERS * ROUNDS);
        for h in helpers {
            h.join().unwrap();
        }
    }

    /// A clock that never moves and an unpark that does nothing: the test
    /// drives the scheduler by hand.
    struct Manual;

    struct NoUnpark;

    impl Unpark for NoUnpark {
        fn unpark(&self) {}
    }

    impl EventLoop for Manual {
        fn now(&self) -> Instant {
            thread_local!(static T0: Instant = Instant::now());
            T0.with(|t| *t)
        }

        fn unparker(&self) -> Arc<dyn Unpark> {
            Arc::new(NoUnpark)
        }
    }

    fn run_until_idle(sched: &Scheduler) {
        while sched.run_iteration() == Iteration::Busy {}
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_stale_wake_up_does_not_wake_a_later_wait() {
        let sched = Scheduler::new(Manual, Config::new());
        let wakers: Rc<RefCell<Vec<Waker>>> = Rc::default();
        let locals: Rc<RefCell<Vec<Wakeup>>> = Rc::default();
        let resumed = Rc::new(Cell::new(0));
        let (w, l, r) = (wakers.clone(), locals.clone(), resumed.clone());
        let fiber = Builder::new()
            .spawn_on(&sched, move || {
                for _ in 0..3 {
                    wait(|wakeup| {
                        w.borrow_mut().push(wakeup.to_waker());
                        l.borrow_mut().push(wakeup);
                    });
                    r.set(r.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 0);
        // Wait 1, woken from "another thread" (through the inbox).
        wakers.borrow()[0].wake_by_ref();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 1);
        // Wait 2 is not woken by wait 1's waker, nor its local wake-up.
        wakers.borrow()[0].wake_by_ref();
        locals.borrow()[0].wake();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 1, "a stale wake-up woke a later wait");
        // Its own local wake-up does.
        locals.borrow()[1].wake();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 2);
        // Wait 3: woken twice, resumes once.
        wakers.borrow()[2].wake_by_ref();
        wakers.borrow()[2].wake_by_ref();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 3);
        assert!(fiber.is_done());
        fiber.join().unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_wake_up_while_running_is_remembered() {
        let sched = Scheduler::new(Manual, Config::new());
        let f = Builder::new()
            .spawn_on(&sched, || {
                // Woken before it suspends: the park returns at once.
                wait(|w| w.wake());
                Ok(())
            })
            .unwrap();
        assert_eq!(sched.run_iteration(), Iteration::Idle { deadline: None });
        assert!(f.is_done());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_fiber_reuses_its_waker_only_once_nobody_holds_it() {
        with_watchdog(Duration::from_secs(60), || {
            crate::block_on(|| {
                let me = current_task().unwrap();
                let first = Wakeup::for_task(&me).to_waker();
                let address = first.data();
                first.wake_by_ref();
                task::park(&me); // ends the wait: a new epoch
                drop(first);
                let reused = Wakeup::for_task(&me).to_waker();
                assert_eq!(reused.data(), address, "an unused waker is reused");
                let fresh = Wakeup::for_task(&me).to_waker();
                assert_ne!(fresh.data(), address, "a waker someone holds is kept");
                // The reused waker carries the new wait's epoch: if it kept
                // the old one, this wake-up would be stale and park would
                // never return.
                reused.wake_by_ref();
                task::park(&me);
                Ok(())
            })
        })
        .unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn wakers_of_finished_fibers_do_nothing() {
        let sched = Scheduler::new(Manual, Config::new());
        let old: Rc<RefCell<Vec<(Wakeup, Waker)>>> = Rc::default();
        let o = old.clone();
        let first = Builder::new()
            .spawn_on(&sched, move || {
                let me = current_task().unwrap();
                let w = Wakeup::for_task(&me);
                o.borrow_mut().push((w.clone(), w.to_waker()));
                Ok(())
            })
            .unwrap();
        run_until_idle(&sched);
        assert!(first.is_done());
        // A new fiber takes the finished one's slot in the scheduler.
        let resumed = Rc::new(Cell::new(false));
        let r = resumed.clone();
        let second = Builder::new()
            .spawn_on(&sched, move || {
                wait(|_| ());
                r.set(true);
                Ok(())
            })
            .unwrap();
        run_until_idle(&sched);
        let (wakeup, waker) = old.borrow_mut().pop().unwrap();
        waker.wake_by_ref();
        wakeup.wake();
        run_until_idle(&sched);
        assert!(!resumed.get(), "woken by another fiber's waker");
        assert_eq!(wakeup.fiber_id(), first.id());
        // Teardown unwinds the waiting fiber; the stale waker stays inert,
        // also once the scheduler is gone.
        drop(sched);
        assert!(second.is_done());
        waker.wake();
    }
}
