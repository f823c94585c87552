//! Running fuseau's scheduler on Tokio's event loop: on one thread
//! ([`main`], [`run`]), or on several ([`Runtime`], in `threads.rs`).
//!
//! The driver is one future, polled by Tokio: it runs a scheduler iteration,
//! then hands control back to Tokio: with [`tokio::task::yield_now`] when
//! fibers are still ready (so that Tokio's I/O and timers are polled between
//! batches of fibers, and a fiber that yields in a loop cannot starve them),
//! or by waiting for an unpark or the next fiber timer when none are (a
//! timer already due counts as ready work).
//! Fiber timers use one Tokio [`Sleep`](tokio::time::Sleep), reset to the
//! earliest deadline, and Tokio's clock, so paused test time applies.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use atomic_waker::AtomicWaker;
use fuseau::__private::DisposeOnDrop;
use fuseau::{Builder, Config, EventLoop, Iteration, Result, Scheduler, Unpark};

mod threads;

pub use threads::{Runtime, RuntimeBuilder, RuntimeHandle};

/// Tokio as a fuseau [`EventLoop`].
struct TokioLoop {
    unpark: Arc<TokioUnpark>,
}

/// Wakes the driver task: a flag (so that an unpark that comes before the
/// driver waits is not lost) and the driver's waker.
#[derive(Default)]
struct TokioUnpark {
    unparked: AtomicBool,
    driver: AtomicWaker,
}

impl Unpark for TokioUnpark {
    fn unpark(&self) {
        self.unparked.store(true, Ordering::Release);
        self.driver.wake();
    }
}

impl TokioUnpark {
    /// Waits until the next unpark (or returns at once if one came since the
    /// last wait). The flag is checked again after registering the waker,
    /// so an unpark between the two checks is seen.
    async fn parked(&self) {
        poll_fn(|cx| {
            if self.unparked.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.driver.register(cx.waker());
            if self.unparked.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl EventLoop for TokioLoop {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }
}

/// Runs `f` as the main fiber on a new current-thread Tokio runtime (with a
/// [`LocalSet`](tokio::task::LocalSet), so fibers may call
/// [`tokio::task::spawn_local`]) and returns when the main fiber and all its
/// descendants are done, with the main fiber's result. The scheduler is then
/// disposed of, and the runtime shut down: Tokio tasks still pending (from
/// `spawn_local` or `tokio::spawn`) are dropped, as when any Tokio runtime
/// shuts down.
///
/// Every fiber runs on the calling thread, in a deterministic order. To use
/// several cores, build a [`Runtime`] instead: a scheduler per thread, each
/// fiber placed on one thread for its whole life, with `Send` bounds on what
/// crosses threads.
///
/// `f` may borrow from the caller (it need not be `'static`), as the body
/// of [`std::thread::scope`] may: `main` returns, or unwinds, only after
/// the scheduler is disposed of, so after every fiber has finished or been
/// unwound. [`run`] cannot offer this: a future can be leaked half-way,
/// and with it fibers that still hold the borrows.
///
/// # Errors
///
/// The main fiber's error, or an [`Io`](fuseau::ErrorKind::Io) error if the
/// runtime cannot be built.
///
/// # Panics
///
/// If called from inside a Tokio runtime (Tokio forbids nesting `block_on`);
/// use [`run`] there.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let answer = fuseau_tokio::main(|| {
///     let child = fuseau_tokio::spawn(|| {
///         fuseau_tokio::sleep(Duration::from_millis(1))?;
///         Ok(42)
///     });
///     child.join()
/// })?;
/// assert_eq!(answer, 42);
///
/// // The body may borrow from the caller's stack.
/// let mut lines = Vec::new();
/// fuseau_tokio::main(|| {
///     fuseau_tokio::sleep(Duration::from_millis(1))?;
///     lines.push(format!("the answer was {answer}"));
///     Ok(())
/// })?;
/// assert_eq!(lines, ["the answer was 42"]);
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn main<T: 'static>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    main_with(Config::default(), f)
}

/// [`main`] with a scheduler [`Config`] (stack size, stack pool, budget).
///
/// # Errors
///
/// As [`main`].
///
/// # Panics
///
/// As [`main`].
pub fn main_with<T: 'static>(config: Config, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    // SAFETY: the body runs in the scheduler of the `run_with` future below,
    // a task of `local`. That future disposes of its scheduler when it
    // completes or is dropped (`DisposeOnDrop`), and it does one or the
    // other before this function returns or unwinds: `block_on` returns
    // only once the task is done, and `local` (declared after `runtime`, so
    // dropped first) drops any task left when it is dropped. Nothing else
    // can hold the future: it never leaves this function. This is the
    // contract of `fuseau::__private::erase_body` (core's `erase` module).
    let f = unsafe { fuseau::__private::erase_body(f) };
    // The driver runs as a task of the LocalSet, not as its main future: a
    // wake-up from another local task (a Tokio future a fiber awaits) then
    // schedules it within the same LocalSet tick, instead of making Tokio
    // leave `run_until` and poll its I/O driver first (measured: about 3×
    // faster `await_future` round trips, benches W7o).
    local.block_on(&runtime, async move {
        tokio::task::spawn_local(run_with(config, f))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    })
}

/// The `async` form of [`main`], for code already inside a Tokio runtime:
/// runs `f` as the main fiber of a new scheduler on the current thread and
/// resolves when it and all its descendants are done.
///
/// The future is `!Send`: run it with [`LocalSet::run_until`](tokio::task::LocalSet::run_until),
/// [`LocalSet::block_on`](tokio::task::LocalSet::block_on) or
/// [`spawn_local`](tokio::task::spawn_local) (on a current-thread runtime,
/// `block_on` works too, but then fibers cannot use `spawn_local`). It
/// neither replaces nor shuts down the runtime, and may be run several
/// times, or several at once, on one thread. Dropping the future before it
/// is done disposes of the scheduler: every fiber is cancelled and unwound.
///
/// Unlike [`main`], `run` needs a `'static` body: a future can be leaked
/// (`std::mem::forget`) before it is done, and with it the fibers, which
/// could then outlive anything the body borrowed (the reason scoped async
/// tasks cannot be sound, tokio#3162).
///
/// ```compile_fail
/// let name = String::from("borrowed");
/// // error: the closure may outlive `name`
/// let _future = fuseau_tokio::run(|| {
///     println!("{name}");
///     Ok(())
/// });
/// ```
///
/// For the lowest latency between fibers and Tokio tasks, run it as a
/// `spawn_local` task of the `LocalSet` (as [`main`] does) rather than as
/// the `LocalSet`'s main future: wake-ups from other local tasks then reach
/// it without a turn of Tokio's I/O driver.
///
/// # Errors
///
/// The main fiber's error.
///
/// # Panics
///
/// When a fiber arms a timer ([`sleep`](fuseau::sleep),
/// [`cancel_after`](fuseau::cancel_after) …) on a runtime built without
/// Tokio's time driver ([`enable_time`](tokio::runtime::Builder::enable_time)),
/// as [`tokio::time::sleep`] does. Fibers that arm no timer need none.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let local = tokio::task::LocalSet::new();
/// let n = local.block_on(&runtime, async {
///     let first = fuseau_tokio::run(|| Ok(1)).await?;
///     let second = fuseau_tokio::run(|| Ok(2)).await?;
///     Ok::<_, fuseau_tokio::Error>(first + second)
/// })?;
/// assert_eq!(n, 3);
/// # Ok(())
/// # }
/// ```
pub async fn run<T: 'static>(f: impl FnOnce() -> Result<T> + 'static) -> Result<T> {
    run_with(Config::default(), f).await
}

/// [`run`] with a scheduler [`Config`].
///
/// # Errors
///
/// The main fiber's error.
///
/// # Panics
///
/// As [`run`].
pub async fn run_with<T: 'static>(
    config: Config,
    f: impl FnOnce() -> Result<T> + 'static,
) -> Result<T> {
    let unpark = Arc::new(TokioUnpark::default());
    // Disposed of when the driver is done or dropped.
    let sched = DisposeOnDrop(Scheduler::new(
        TokioLoop {
            unpark: unpark.clone(),
        },
        config,
    ));
    let sched = &sched.0;
    let _running = Running::enter(sched);
    let main = Builder::new().name("main").spawn_on(sched, f)?;
    // Created on first use, so that a runtime without a time driver can run
    // fibers that never arm a timer.
    let mut timer = pin!(None::<tokio::time::Sleep>);
    loop {
        let iteration = sched.run_iteration();
        if main.is_done() {
            break;
        }
        match iteration {
            Iteration::Busy => tokio::task::yield_now().await,
            Iteration::Idle { deadline: None } => unpark.parked().await,
            Iteration::Idle {
                deadline: Some(deadline),
            } => {
                let deadline = tokio::time::Instant::from_std(deadline);
                // A timer that is already due (`sleep(Duration::ZERO)`, a
                // deadline in the past) counts as ready work: Tokio's timer
                // wheel would round it up to its next millisecond tick.
                if deadline <= tokio::time::Instant::now() {
                    tokio::task::yield_now().await;
                    continue;
                }
                match timer.as_mut().as_pin_mut() {
                    None => timer.set(Some(tokio::time::sleep_until(deadline))),
                    Some(sleep) if sleep.deadline() != deadline => sleep.reset(deadline),
                    Some(_) => {}
                }
                let sleep = timer
                    .as_mut()
                    .as_pin_mut()
                    .expect("the timer was set above");
                tokio::select! {
                    biased;
                    () = unpark.parked() => {}
                    () = sleep => {}
                }
            }
        }
    }
    sched.dispose();
    main.join()
}

thread_local! {
    /// The schedulers of the `run`s alive on this thread, innermost last,
    /// each with its [`Running`] guard's token: how Tokio tasks beside the
    /// fibers find a scheduler to spawn on.
    static RUNNING: RefCell<Vec<(u64, Scheduler)>> = const { RefCell::new(Vec::new()) };
    /// The token of the next [`Running`] guard on this thread.
    static NEXT_TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// Registers a `run`'s scheduler for the lifetime of the guard. Declared
/// after `DisposeOnDrop`, so it is dropped (and the handle released) first.
///
/// Several `run`s may be alive at once on one thread (tasks of one
/// `LocalSet`) and finish in any order, so the guard removes its own entry,
/// found by its token, not the innermost one.
struct Running {
    token: u64,
}

impl Running {
    fn enter(sched: &Scheduler) -> Running {
        let token = NEXT_TOKEN.with(|next| {
            let token = next.get();
            next.set(token + 1);
            token
        });
        RUNNING.with(|r| r.borrow_mut().push((token, sched.clone())));
        Running { token }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let entry = RUNNING.with(|r| {
            let mut running = r.borrow_mut();
            let at = running
                .iter()
                .rposition(|(token, _)| *token == self.token)?;
            Some(running.remove(at))
        });
        // Released outside the borrow of `RUNNING`.
        drop(entry);
    }
}

/// The scheduler of the running fiber, or else of the innermost `run` on
/// this thread.
pub(crate) fn current_scheduler() -> Option<Scheduler> {
    Scheduler::try_current()
        .ok()
        .or_else(|| RUNNING.with(|r| r.borrow().last().map(|(_, sched)| sched.clone())))
}

/// `Err(NotInFiber)` naming `call`, unless a fiber is running.
pub(crate) fn require_fiber(call: &str) -> Result<()> {
    if fuseau::in_fiber() {
        Ok(())
    } else {
        Err(fuseau::Error::new(
            fuseau::ErrorKind::NotInFiber,
            format!("{call} must be called from inside a fiber"),
        ))
    }
}
