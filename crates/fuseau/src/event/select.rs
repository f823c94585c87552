//! [`select`](crate::select()) over a dynamic set of [`When`] branches, and the machinery of
//! the [`select!`](crate::select!) macro (a set known when the code is
//! written, kept on the fiber's stack: no allocation).

use std::fmt;

use super::{wait_on, Event, Waitable};
use crate::cancel::CancelHandle;
use crate::error::{Error, Result};
use crate::scheduler::context::with_fiber;
use crate::task::{Task, Wakeup};

/// A branch of a [`select`](crate::select()): an event, and what to do with its value.
#[must_use = "a branch does nothing until it is passed to select"]
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
/// # Allocation
///
/// Each [`When`] is boxed when it is made (the branches are a dynamic set);
/// `select` itself allocates nothing. The [`select!`](crate::select!) macro,
/// for a set of branches known when the code is written, allocates nothing
/// at all.
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
    with_fiber("select", |me| wait_on(me, &mut branches[..])?)
}

impl<R> Waitable for [When<'_, R>] {
    type Output = Result<R>;

    fn poll(&mut self) -> Option<Result<R>> {
        self.iter_mut().find_map(|b| b.branch.poll())
    }

    fn poll_claimed(&mut self, branch: usize) -> Option<Result<R>> {
        self[branch].branch.poll()
    }

    fn register(&mut self, me: &Task) {
        for (i, b) in self.iter_mut().enumerate() {
            b.branch.wait(Wakeup::new(me, i));
        }
    }

    fn unregister(&mut self) {
        for b in self {
            b.branch.unregister();
        }
    }
}

/// A branch of [`select!`](crate::select!): an event and, once it completed,
/// its outcome. Lives on the fiber's stack, in the macro's expansion.
#[doc(hidden)]
pub struct SelectBranch<E: Event> {
    event: E,
    outcome: Option<Result<E::Output>>,
    registration: Option<CancelHandle>,
}

impl<E: Event> SelectBranch<E> {
    pub fn new(event: E) -> SelectBranch<E> {
        SelectBranch {
            event,
            outcome: None,
            registration: None,
        }
    }

    /// The outcome of the branch that won (or the wait's own error, given
    /// to the first branch).
    pub fn take(&mut self, error: Option<Error>) -> Result<E::Output> {
        match error {
            Some(e) => Err(e),
            None => self
                .outcome
                .take()
                .expect("select!: the winning branch has its outcome"),
        }
    }
}

/// A [`SelectBranch`] with its event's type erased, so that the branches of
/// one `select!` fit in one array on the stack.
#[doc(hidden)]
pub trait DynBranch {
    /// Polls the event; `true` (the outcome kept) if it completed.
    fn poll_branch(&mut self) -> bool;
    fn wait_branch(&mut self, wakeup: Wakeup);
    fn unregister_branch(&mut self);
}

impl<E: Event> DynBranch for SelectBranch<E> {
    fn poll_branch(&mut self) -> bool {
        self.outcome = self.event.poll();
        self.outcome.is_some()
    }

    fn wait_branch(&mut self, wakeup: Wakeup) {
        self.registration = Some(self.event.wait(wakeup));
    }

    fn unregister_branch(&mut self) {
        if let Some(handle) = self.registration.take() {
            handle.cancel();
        }
    }
}

impl Waitable for [&mut dyn DynBranch] {
    type Output = usize;

    fn poll(&mut self) -> Option<usize> {
        self.iter_mut().position(|b| b.poll_branch())
    }

    fn poll_claimed(&mut self, branch: usize) -> Option<usize> {
        self[branch].poll_branch().then_some(branch)
    }

    fn register(&mut self, me: &Task) {
        for (i, b) in self.iter_mut().enumerate() {
            b.wait_branch(Wakeup::new(me, i));
        }
    }

    fn unregister(&mut self) {
        for b in self.iter_mut() {
            b.unregister_branch();
        }
    }
}

/// The wait of [`select!`](crate::select!): the index of the branch that
/// completed (its outcome kept in it), or the wait's own error (the
/// fiber's cancellation, or `NotInFiber` outside a fiber).
#[doc(hidden)]
pub fn select_index(branches: &mut [&mut dyn DynBranch]) -> Result<usize> {
    with_fiber("select!", |me| wait_on(me, branches))
}

/// Waits for the first of several operations, with no allocation: a biased
/// select over channel operations and events, known when the code is
/// written.
///
/// Branches, separated by commas (optional after a block):
///
/// - `recv(chan) -> v => expr`: receives from `chan` (anything with an
///   `ev_recv` method: [`Chan`](crate::Chan), [`SharedChan`](crate::SharedChan));
/// - `send(chan, value) -> r => expr`: sends `value` on `chan` (`ev_send`);
/// - `ev(event) -> v => expr`: waits for any [`Event`]
///   ([`ev_timeout`](crate::ev_timeout), [`ev_future`](crate::ev_future) …).
///
/// `v` (or `r`) is an irrefutable pattern (usually a name, or `_`) bound to
/// that operation's [`Result`]: its value, or its own failure (a closed
/// channel, a timeout), so each branch sees what went wrong with it. The
/// macro evaluates to the chosen branch's `expr`; `?`, `return`, `break` and
/// `continue` in it act on the code around the macro. Every operation is
/// evaluated once, in the order written, and every branch (the losers'
/// values and futures included) is dropped before the winner's `expr` runs.
///
/// **Biased**: the branches are tried in the order written, and the first
/// that is ready wins. If none is, the fiber waits for all of them; the
/// first to complete wins. The losing operations take no effect: a losing
/// `send` sends nothing (its value is dropped), a losing `recv` takes
/// nothing.
///
/// # Cancellation
///
/// A cancellation point: if the fiber is cancelled before or while it
/// waits, no operation takes effect and the **first** branch runs with the
/// cancellation error (unless a branch completed by being handed a value
/// first: it runs with that value). Outside a fiber, the first branch runs
/// with [`NotInFiber`](crate::ErrorKind::NotInFiber).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use fuseau::Chan;
///
/// fuseau::block_on(|| {
///     let numbers: Chan<u32> = Chan::bounded(1);
///     let words = Chan::new();
///     words.send("hello")?;
///     let got = fuseau::select! {
///         recv(numbers) -> n => n?.to_string(),
///         recv(words) -> w => w?.to_uppercase(),
///         ev(fuseau::ev_timeout(Duration::from_secs(1))) -> t => {
///             t?;
///             unreachable!("ev_timeout only fails")
///         }
///     };
///     assert_eq!(got, "HELLO");
///     // A send loses to a ready receive, and sends nothing.
///     let which = fuseau::select! {
///         recv(words) -> _ => "recv",
///         send(numbers, 7) -> _ => "send",
///     };
///     assert_eq!((which, numbers.len()), ("send", 1));
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
#[macro_export]
macro_rules! select {
    ($($branches:tt)+) => {
        $crate::__select_parse!([] $($branches)+)
    };
}

/// Parses the branches of `select!` into `[event, pattern, body]` triples.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    ([$($parsed:tt)*]) => {
        $crate::__select_build!([$($parsed)*] [] [0usize])
    };
    ([$($parsed:tt)*] , $($rest:tt)*) => {
        $crate::__select_parse!([$($parsed)*] $($rest)*)
    };
    ([$($parsed:tt)*] recv($chan:expr) -> $v:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!([$($parsed)* [($chan).ev_recv(), $v, $body]] $($rest)*)
    };
    ([$($parsed:tt)*] recv($chan:expr) -> $v:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!([$($parsed)* [($chan).ev_recv(), $v, $body]] $($($rest)*)?)
    };
    ([$($parsed:tt)*] send($chan:expr, $value:expr) -> $v:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!([$($parsed)* [($chan).ev_send($value), $v, $body]] $($rest)*)
    };
    ([$($parsed:tt)*] send($chan:expr, $value:expr) -> $v:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!([$($parsed)* [($chan).ev_send($value), $v, $body]] $($($rest)*)?)
    };
    ([$($parsed:tt)*] ev($event:expr) -> $v:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!([$($parsed)* [$event, $v, $body]] $($rest)*)
    };
    ([$($parsed:tt)*] ev($event:expr) -> $v:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!([$($parsed)* [$event, $v, $body]] $($($rest)*)?)
    };
}

/// Builds the branches of `select!` on the stack (one `__branch` binding
/// per expansion step, kept apart by hygiene), waits, and runs the winner.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_build {
    ([[$event:expr, $v:pat, $body:expr] $($rest:tt)*] [$($built:tt)*] [$index:expr]) => {{
        let mut __branch = $crate::__private::SelectBranch::new($event);
        $crate::__select_build!([$($rest)*] [$($built)* [__branch, $v, $body, $index]] [$index + 1usize])
    }};
    ([] [$([$branch:ident, $v:pat, $body:expr, $index:expr])+] [$count:expr]) => {{
        let __outcome = {
            let mut __set = [$(&mut $branch as &mut dyn $crate::__private::DynBranch),+];
            $crate::__private::select_index(&mut __set)
        };
        let (__won, mut __error) = match __outcome {
            ::core::result::Result::Ok(won) => (won, ::core::option::Option::None),
            ::core::result::Result::Err(e) => (0usize, ::core::option::Option::Some(e)),
        };
        // Every branch is dropped here, before any body runs: a losing
        // operation (a send's value, a future queued for a lock) must not
        // outlive the select.
        $(
            let $branch = {
                let mut __dropped_here = $branch;
                if __won == $index {
                    ::core::option::Option::Some(__dropped_here.take(__error.take()))
                } else {
                    ::core::option::Option::None
                }
            };
        )+
        $(
            if let ::core::option::Option::Some(__outcome) = $branch {
                let $v = __outcome;
                $body
            } else
        )+
        {
            ::core::unreachable!("select!: no branch has this index")
        }
    }};
}
