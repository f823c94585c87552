//! Running closures concurrently and waiting for all of them ([`both`],
//! [`all`], [`all_limited`]) or for the first success ([`race`]).
//!
//! Each closure runs in its own fiber, a member of a [`scope`] that the
//! combinator opens and closes, so everything [`scope`] promises holds:
//! the closures may borrow the caller's data (shared, or mutably a
//! different part each), nothing they start outlives the call, the calling
//! fiber's cancellation cancels them, and the call returns only once every
//! one of them is done, on every path.
//!
//! # Semantics
//!
//! - **Order**: the closures are spawned in input order, as
//!   [`Scope::spawn`](crate::Scope::spawn) does (queued in FIFO order
//!   behind the ready fibers; the first starts once the caller suspends to
//!   wait for them). [`both`] and [`all`] give the results in input order,
//!   whatever order the closures finish in.
//! - **Failure** ([`both`], [`all`]): a closure fails when it returns an
//!   error or panics. The first failure (in time) cancels the others
//!   (their suspension points fail with a `Cancelled` error whose
//!   [`source`](std::error::Error::source) is the failure); once they are
//!   done, the call returns that failure. Later failures are dropped.
//! - **First success** ([`race`]): a failure is only a loss. The first
//!   closure to succeed wins: the others are cancelled (with a plain
//!   `Cancelled` error), and `race` returns the winner's value once they
//!   are done; a later success is dropped. If every closure fails, `race`
//!   returns the last failure to arrive.
//! - **Panics**: a closure's panic is its failure, an error of kind
//!   [`Panicked`](crate::ErrorKind::Panicked); it never panics the caller.
//! - **Cancellation of the caller**: the closures' fibers are the caller's
//!   children, so they are cancelled with it; the call waits for them
//!   (that wait is not interrupted) and returns the cancellation. A
//!   deadline scope ([`with_timeout`](crate::with_timeout)) around the
//!   call cuts it short the same way, with
//!   [`Timeout`](crate::ErrorKind::Timeout).
//!
//! # Compared with
//!
//! - Trio's nursery and Kotlin's `coroutineScope { awaitAll(..) }` are
//!   [`all`]: the first failure cancels the siblings and is raised once
//!   they are done. Eio's `Fiber.both`/`Fiber.all` are [`both`]/[`all`].
//! - `futures::join!`/`try_join!` poll futures in one task and drop the
//!   others on the first error; here the closures are fibers, cancelled
//!   and *awaited*, so their cleanup (which may wait, in a
//!   [`shield`](crate::shield)) has run when the call returns.
//! - `futures::future::select_ok` is [`race`], except that the losers are
//!   not merely dropped: they are cancelled and finished before `race`
//!   returns (Trio's "happy eyeballs" pattern). Eio's `Fiber.first` and
//!   Kotlin's `select` with cancellation of the rest are close relatives;
//!   unlike Eio's `first`, a failure does not end a `race`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! let (sum, fastest) = fuseau::block_on(|| {
//!     let parts = [1, 2, 3, 4];
//!     let (left, right) = fuseau::both(
//!         || Ok(parts[..2].iter().sum::<i32>()),
//!         || Ok(parts[2..].iter().sum::<i32>()),
//!     )?;
//!     let fastest = fuseau::race([3u64, 1, 2].map(|d| {
//!         move || {
//!             fuseau::sleep(Duration::from_millis(d))?;
//!             Ok(d)
//!         }
//!     }))?;
//!     Ok((left + right, fastest))
//! })?;
//! assert_eq!((sum, fastest), (10, 1));
//! # Ok::<(), fuseau::Error>(())
//! ```

use std::cell::Cell;

use crate::error::{Error, ErrorKind, Result};
use crate::fiber::Builder;
use crate::scheduler::context::with_fiber;
use crate::scope::scope;
use crate::sync::Notify;

/// Runs `f` and `g` concurrently, each in its own fiber, and returns both
/// results once both have succeeded; the first to fail cancels the other.
///
/// `f` and `g` may borrow from the caller (they are members of a
/// [`scope`]), and so may their results. `f` is spawned first, then `g`;
/// both start once the caller suspends to wait for them.
///
/// # Errors
///
/// The first failure in time: `f`'s or `g`'s error, or its panic as an
/// error of kind [`Panicked`](ErrorKind::Panicked); the other closure is
/// cancelled (its suspension points fail with a `Cancelled` error whose
/// [`source`](std::error::Error::source) is the failure) and has finished
/// when `both` returns. The caller's cancellation, as below.
/// [`ErrorKind::NotInFiber`] outside a fiber, and [`ErrorKind::Other`] in a
/// cancel callback or while the thread unwinds a panic, as [`scope`] (then
/// neither closure runs).
///
/// # Panics
///
/// Never because of `f` or `g`: their panics are their failures.
///
/// # Cancellation
///
/// Waits for the closures without being interrupted (as [`scope`] does).
/// - Cancelled before the call: neither closure runs (their fibers are
///   cancelled before they start); `both` returns the cancellation.
/// - Cancelled while waiting: both closures are cancelled (they are the
///   caller's children) and awaited; `both` returns the cancellation,
///   unless both closures succeeded all the same (they ignored it), in
///   which case it returns their results and the caller's next suspension
///   point fails.
/// - Cancelled once both succeeded: the results are returned; the next
///   suspension point fails.
///
/// # Examples
///
/// Each closure fills its own half of a buffer:
///
/// ```
/// let mut buf = [0u8; 4];
/// let (head, tail) = buf.split_at_mut(2);
/// let lens = fuseau::block_on(|| {
///     fuseau::both(
///         || { head.fill(1); fuseau::yield_now()?; Ok(head.len()) },
///         || { tail.fill(2); Ok(tail.len()) },
///     )
/// })?;
/// assert_eq!(lens, (2, 2));
/// assert_eq!(buf, [1, 1, 2, 2]);
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// The first failure cancels the other closure:
///
/// ```
/// use std::time::Duration;
///
/// let e = fuseau::block_on(|| {
///     fuseau::both(
///         || fuseau::sleep(Duration::from_secs(3600)),
///         || Err::<(), _>(fuseau::Error::from("no route")),
///     )
/// })
/// .unwrap_err();
/// assert_eq!(e.message(), "no route");
/// ```
pub fn both<'a, A, B>(
    f: impl FnOnce() -> Result<A> + 'a,
    g: impl FnOnce() -> Result<B> + 'a,
) -> Result<(A, B)>
where
    A: 'a,
    B: 'a,
{
    let (a, b) = (Cell::new(None), Cell::new(None));
    scope(|s| {
        s.spawn(|| {
            a.set(Some(f()?));
            Ok(())
        });
        s.spawn(|| {
            b.set(Some(g()?));
            Ok(())
        });
        Ok(())
    })?;
    match (a.into_inner(), b.into_inner()) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(did_not_run("fuseau::both")),
    }
}

/// Runs every closure of `fs` concurrently, each in its own fiber, and
/// returns their results in input order once all have succeeded; the
/// first to fail cancels the rest.
///
/// The closures may borrow from the caller (they are members of a
/// [`scope`]), and so may their results. They are spawned in input order
/// and start once the caller suspends to wait for them. Without a limit,
/// every closure runs at once; [`all_limited`] caps how many run at a
/// time. Costs one fiber per closure, and time linear in their number.
///
/// # Errors
///
/// The first failure in time: a closure's error, or its panic as an error
/// of kind [`Panicked`](ErrorKind::Panicked); the other closures are
/// cancelled (their suspension points fail with a `Cancelled` error whose
/// [`source`](std::error::Error::source) is the failure) and have finished
/// when `all` returns. Later failures are dropped. The caller's
/// cancellation, as below. [`ErrorKind::NotInFiber`] outside a fiber, and
/// [`ErrorKind::Other`] in a cancel callback or while the thread unwinds a
/// panic, as [`scope`] (then no closure runs). An empty `fs` gives
/// `Ok(vec![])` (in a fiber).
///
/// # Panics
///
/// Never because of a closure: its panic is its failure.
///
/// # Cancellation
///
/// Waits for the closures without being interrupted (as [`scope`] does).
/// - Cancelled before the call: no closure runs; `all` returns the
///   cancellation.
/// - Cancelled while waiting: the closures are cancelled and awaited;
///   `all` returns the cancellation, unless every closure succeeded all
///   the same (then their results, and the next suspension point fails).
/// - Cancelled once all succeeded: the results are returned; the next
///   suspension point fails.
///
/// # Examples
///
/// Results come in input order, not in the order the closures finish:
///
/// ```
/// use std::time::Duration;
///
/// let names = ["slow", "fast", "medium"];
/// let delays = [30u64, 10, 20];
/// let tagged = fuseau::block_on(|| {
///     fuseau::all(names.iter().zip(delays).map(|(name, ms)| {
///         move || {
///             fuseau::sleep(Duration::from_millis(ms))?;
///             Ok(format!("{name}: {ms}ms"))
///         }
///     }))
/// })?;
/// assert_eq!(tagged, ["slow: 30ms", "fast: 10ms", "medium: 20ms"]);
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// The first failure cancels the rest:
///
/// ```
/// use std::time::Duration;
///
/// let e = fuseau::block_on(|| {
///     fuseau::all((0..10u64).map(|i| {
///         move || {
///             fuseau::sleep(Duration::from_millis(i))?;
///             if i == 3 {
///                 return Err(fuseau::Error::from("item 3 is corrupt"));
///             }
///             fuseau::sleep(Duration::from_secs(3600)) // cancelled at 3ms
///         }
///     }))
/// })
/// .unwrap_err();
/// assert_eq!(e.message(), "item 3 is corrupt");
/// ```
pub fn all<'a, T, F, I>(fs: I) -> Result<Vec<T>>
where
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T> + 'a,
    T: 'a,
{
    run_all(None, fs)
}

/// [`all`], with at most `limit` closures running at a time: the others
/// start, in input order, as running ones return (Go's `errgroup` with
/// `SetLimit`; built on [`Scope::set_limit`](crate::Scope::set_limit)).
///
/// For a long list of jobs that should not all run at once (requests to
/// one server, files to open). Only the running closures have a fiber; the
/// rest wait as closures.
///
/// # Errors
///
/// As [`all`]. After the first failure, the closures not started yet
/// never run (they are dropped).
///
/// # Panics
///
/// If `limit` is 0 (nothing could ever run). Never because of a closure:
/// its panic is its failure.
///
/// # Cancellation
///
/// As [`all`]; the closures not started when the caller is cancelled (or
/// a closure fails) never run.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::time::Duration;
///
/// let (running, most) = (Cell::new(0), Cell::new(0));
/// let squares = fuseau::block_on(|| {
///     fuseau::all_limited(3, (1..=10u64).map(|i| {
///         let (running, most) = (&running, &most);
///         move || {
///             running.set(running.get() + 1);
///             most.set(most.get().max(running.get()));
///             fuseau::sleep(Duration::from_millis(i))?;
///             running.set(running.get() - 1);
///             Ok(i * i)
///         }
///     }))
/// })?;
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// assert_eq!(most.get(), 3);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn all_limited<'a, T, F, I>(limit: usize, fs: I) -> Result<Vec<T>>
where
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T> + 'a,
    T: 'a,
{
    assert!(
        limit > 0,
        "fuseau::all_limited: the limit must be at least 1"
    );
    run_all(Some(limit), fs)
}

fn run_all<'a, T, F, I>(limit: Option<usize>, fs: I) -> Result<Vec<T>>
where
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T> + 'a,
    T: 'a,
{
    let fs: Vec<F> = fs.into_iter().collect();
    let slots: Vec<Cell<Option<T>>> = fs.iter().map(|_| Cell::new(None)).collect();
    scope(|s| {
        if let Some(limit) = limit {
            s.set_limit(limit);
        }
        for (f, slot) in fs.into_iter().zip(&slots) {
            let member = s.spawn(move || {
                slot.set(Some(f()?));
                Ok(())
            });
            // With a limit, a spawn refused (the caller cancelled, or the
            // scope failed, while it waited for a slot) gives a member
            // that is already done: stop spawning.
            if limit.is_some() && member.is_done() {
                return member.join();
            }
        }
        Ok(())
    })?;
    slots
        .into_iter()
        .map(|slot| slot.into_inner().ok_or_else(|| did_not_run("fuseau::all")))
        .collect()
}

/// The error for a closure that did not run although its scope returned
/// `Ok` (a spawn refused without failing the scope): the fiber's
/// cancellation if it is cancelled, else a `Cancelled` error naming `what`.
fn did_not_run(what: &'static str) -> Error {
    let fallback = || {
        Error::new(
            ErrorKind::Cancelled,
            format!("{what}: a closure did not run"),
        )
    };
    with_fiber(what, |me| me.cancelled())
        .err()
        .unwrap_or_else(fallback)
}

/// Runs every closure of `fs` concurrently, each in its own fiber, and
/// returns the value of the first to succeed; the others are cancelled,
/// and finished before `race` returns.
///
/// The closures may borrow from the caller (they are members of a
/// [`scope`]), and so may their results. They are spawned in input order
/// and start once the caller suspends to wait for them. A closure's
/// failure does not end the race: it just loses. Once one succeeds, the
/// others are cancelled (their suspension points fail with a plain
/// `Cancelled` error), and `race` waits until they are done, so that their
/// cleanup has run when it returns; a success that arrives meanwhile is
/// dropped. A closure that ignores its cancellation delays the return,
/// never the result.
///
/// For a time limit, nest it in [`with_timeout`](crate::with_timeout)
/// (example below): the expiry cancels every closure, and `race` returns
/// the [`Timeout`](ErrorKind::Timeout).
///
/// # Errors
///
/// If every closure fails, the last failure to arrive (in time): an error,
/// or a panic as an error of kind [`Panicked`](ErrorKind::Panicked). An
/// empty `fs` gives an error of kind [`ErrorKind::Other`] (a race with no
/// contender has no winner). The caller's cancellation, as below.
/// [`ErrorKind::NotInFiber`] outside a fiber, and [`ErrorKind::Other`] in a
/// cancel callback or while the thread unwinds a panic, as [`scope`] (then
/// no closure runs).
///
/// # Panics
///
/// Never because of a closure: its panic is its failure.
///
/// # Cancellation
///
/// A cancellation point while it waits for a winner; the wait for the
/// losers after it is not interrupted.
/// - Cancelled before the call: no closure runs; `race` returns the
///   cancellation.
/// - Cancelled while waiting for a winner: `race` returns the
///   cancellation; the closures are cancelled (they are the caller's
///   children) and awaited before it returns. If a closure had succeeded
///   before the caller resumed, its value is returned instead.
/// - Cancelled once a closure has won: the value is returned (the losers
///   are awaited all the same); the next suspension point fails.
///
/// # Examples
///
/// The first success wins; a failure before it does not stop the race,
/// and the losers' cleanup has run when `race` returns:
///
/// ```
/// use std::cell::Cell;
/// use std::time::Duration;
///
/// let cleaned = Cell::new(0);
/// let mirror = fuseau::block_on(|| {
///     fuseau::race([("down", 1u64), ("far", 50), ("near", 10)].map(|(name, ms)| {
///         let cleaned = &cleaned;
///         move || {
///             if name == "down" {
///                 return Err(fuseau::Error::from("connection refused"));
///             }
///             let r = fuseau::sleep(Duration::from_millis(ms));
///             cleaned.set(cleaned.get() + 1);
///             r.map(|()| name)
///         }
///     }))
/// })?;
/// assert_eq!(mirror, "near");
/// assert_eq!(cleaned.get(), 2); // "far" was cancelled, and has cleaned up
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// With a deadline:
///
/// ```
/// use std::time::Duration;
///
/// let r = fuseau::block_on(|| {
///     fuseau::with_timeout(Duration::from_millis(5), || {
///         fuseau::race([100u64, 200].map(|ms| {
///             move || fuseau::sleep(Duration::from_millis(ms)).map(|()| ms)
///         }))
///     })
/// });
/// assert!(r.unwrap_err().is_timeout());
/// ```
pub fn race<'a, T, F, I>(fs: I) -> Result<T>
where
    I: IntoIterator<Item = F>,
    F: FnOnce() -> Result<T> + 'a,
    T: 'a,
{
    let race = Race {
        notify: Notify::new(),
        winner: Cell::new(None),
        won: Cell::new(false),
        finished: Cell::new(0),
        last: Cell::new(None),
    };
    let outcome = scope(|s| {
        let members: Vec<_> = fs
            .into_iter()
            .enumerate()
            .map(|(index, f)| {
                let contender = Contender {
                    race: &race,
                    index,
                    pending: true,
                };
                s.spawn_with(
                    Builder::new().propagate_cancel_to_parent(false),
                    move || contender.run(f),
                )
            })
            .collect();
        if members.is_empty() {
            return Err(Error::new(
                ErrorKind::Other,
                "fuseau::race: no contenders (a race of nothing has no winner)",
            ));
        }
        // The caller's cancellation, once a wait was interrupted by it: a
        // winner that reported before the caller resumed still wins.
        let mut interrupted = None;
        loop {
            if race.won.get() {
                break;
            }
            if let Some(e) = interrupted {
                return Err(e);
            }
            if race.finished.get() == members.len() {
                return match race.last.take() {
                    Some(Loss::Error(e)) => Err(e),
                    // Its body unwound or was dropped unrun: its fiber's
                    // failure (or the caller's cancellation) says why.
                    Some(Loss::Gone(index)) => match members.into_iter().nth(index) {
                        Some(member) => member.join().and_then(|()| Err(lost())),
                        None => Err(lost()),
                    },
                    None => Err(lost()),
                };
            }
            interrupted = race.notify.notified().err();
        }
        for member in &members {
            member.cancel();
        }
        Ok(())
    });
    // A winner wins, even if the scope reports the caller's cancellation
    // (contenders that it cancelled before they started).
    match (race.winner.take(), outcome) {
        (Some(value), _) => Ok(value),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(lost()),
    }
}

fn lost() -> Error {
    Error::new(
        ErrorKind::Cancelled,
        "fuseau::race: every contender was lost",
    )
}

/// What the contenders of a [`race`] report to its caller. Contenders
/// write it without waiting (not a cancellation point), so that each
/// reports once, even when cancelled; the caller reads it between waits.
struct Race<T> {
    /// Notified on every report.
    notify: Notify,
    /// The first success's value (taken once `scope` returns).
    winner: Cell<Option<T>>,
    /// Set by the first success, and never reset.
    won: Cell<bool>,
    /// How many contenders have reported.
    finished: Cell<usize>,
    /// The last failure reported.
    last: Cell<Option<Loss>>,
}

/// A contender's failure.
enum Loss {
    Error(Error),
    /// The contender's body panicked (unwound) or was dropped before it
    /// ran; its fiber's failure says why.
    Gone(usize),
}

/// One contender of a [`race`]: reports its result, or, if dropped
/// without reporting (its body unwound or never ran), that it is gone.
struct Contender<'r, T> {
    race: &'r Race<T>,
    index: usize,
    pending: bool,
}

impl<T> Contender<'_, T> {
    fn run(mut self, f: impl FnOnce() -> Result<T>) -> Result<()> {
        let result = f();
        self.pending = false;
        let race = self.race;
        match result {
            Ok(value) if !race.won.get() => {
                race.won.set(true);
                race.winner.set(Some(value));
            }
            Ok(_) => {}
            Err(e) => race.last.set(Some(Loss::Error(e))),
        }
        race.report();
        // A loss is reported to the race, not to the scope.
        Ok(())
    }
}

impl<T> Race<T> {
    fn report(&self) {
        self.finished.set(self.finished.get() + 1);
        self.notify.notify_one();
    }
}

impl<T> Drop for Contender<'_, T> {
    fn drop(&mut self) {
        if self.pending {
            self.race.last.set(Some(Loss::Gone(self.index)));
            self.race.report();
        }
    }
}
