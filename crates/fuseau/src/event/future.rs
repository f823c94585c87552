//! Futures as events: [`ev_future`] and [`ev_future_pinned`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::Event;
use crate::cancel::CancelHandle;
use crate::error::Result;
use crate::id::FiberId;
use crate::scheduler::context::with_current;
use crate::task::Wakeup;

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

/// Makes any [`Future`] an [`Event`] (for [`select`](crate::select()) and [`await_event`](crate::await_event)):
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
            None => with_current(|me| {
                self.polled_for = Some((me.header().id, me.epoch()));
                me.waker()
            })
            .unwrap_or_else(|| Waker::noop().clone()),
        };
        let output = self.poll_future(&waker);
        self.waker = Some(waker);
        output.map(Ok)
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        if self.polled_for.take() != Some((wakeup.fiber_id(), wakeup.epoch())) {
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
