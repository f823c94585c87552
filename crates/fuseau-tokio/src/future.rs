//! Crossing between fibers and futures: a fiber waits on any future with
//! [`await_future`]; Tokio code waits on a fiber with [`spawn_as_future`].

use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use fuseau::{
    await_event, ev_future_pinned, spawn_from_anywhere, AnyFiber, AsFiber, Builder, Error,
    ErrorKind, Fiber, RemoteFiber, Result, SchedulerHandle,
};

use crate::runtime::{current_scheduler, require_fiber};

/// Waits, from a fiber, for `future` to complete, and returns its output.
///
/// The future is polled from the fiber, on the scheduler's thread and inside
/// Tokio's runtime, so it may be any future: Tokio's sockets, timers,
/// channels and `JoinHandle`s, or futures of other crates, `Send` or not.
/// Its waker may be woken from any thread; waking it queues the fiber.
///
/// # Cancellation
///
/// A cancellation point: if the fiber is cancelled before the call or while
/// it waits, the future is dropped at once (so the operation it stands for
/// is abandoned, as when a Tokio future is dropped) and the cancellation
/// error is returned.
///
/// # Errors
///
/// The fiber's cancellation; [`ErrorKind::NotInFiber`] outside a fiber.
///
/// # Examples
///
/// ```
/// fuseau_tokio::main(|| {
///     let (tx, rx) = tokio::sync::oneshot::channel();
///     tokio::task::spawn_local(async move { tx.send("from Tokio").unwrap() });
///     let got = fuseau_tokio::await_future(rx)?.unwrap();
///     assert_eq!(got, "from Tokio");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn await_future<F: Future>(future: F) -> Result<F::Output> {
    require_fiber("fuseau_tokio::await_future")?;
    await_event(ev_future_pinned(pin!(future)))
}

/// Spawns a fiber running `f`, and returns a future of its result, for
/// Tokio code to `.await`. Shorthand for
/// [`FutureBuilder::new().spawn(f)`](FutureBuilder::spawn).
///
/// Called from a fiber, the new fiber is its child; from a Tokio task on
/// the thread of a running [`run`](crate::run) or [`main`](crate::main), it
/// is a root fiber of that scheduler. Dropping the future cancels the fiber;
/// [`FiberFuture::detach`] keeps it running.
///
/// # Errors
///
/// The future resolves to the fiber's failure (as [`Fiber::join`]), or to
/// why it could not be spawned (see [`FutureBuilder::spawn`]). A fiber that
/// awaits the future of a fiber it runs in, its own or an ancestor's (which
/// would wait forever), gets [`ErrorKind::Other`] at once; see
/// [`FiberFuture`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fuseau_tokio::main(|| {
///     let task = tokio::task::spawn_local(async {
///         // Tokio code waits for a fiber:
///         fuseau_tokio::spawn_as_future(|| {
///             fuseau_tokio::sleep(Duration::from_millis(1))?;
///             Ok(21 * 2)
///         })
///         .await
///     });
///     let answer = fuseau_tokio::await_future(task)?.expect("the task did not panic")?;
///     assert_eq!(answer, 42);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn spawn_as_future<T: 'static>(f: impl FnOnce() -> Result<T> + 'static) -> FiberFuture<T> {
    FutureBuilder::new().spawn(f)
}

/// Options for [`spawn_as_future`], builder-style: a parent, a name, and
/// whether failures propagate to the parent.
#[derive(Debug, Default)]
pub struct FutureBuilder {
    builder: Builder,
    parent: Option<AnyFiber>,
}

impl FutureBuilder {
    /// Default options (see [`Builder::new`]); the parent is the running
    /// fiber, if any.
    pub fn new() -> FutureBuilder {
        FutureBuilder::default()
    }

    /// Spawns the fiber as a child of `parent` (see
    /// [`Builder::spawn_as_child_of`]).
    pub fn parent<P: AsFiber + ?Sized>(mut self, parent: &P) -> FutureBuilder {
        self.parent = Some(parent.as_any_fiber());
        self
    }

    /// Names the fiber.
    pub fn name(mut self, name: impl Into<String>) -> FutureBuilder {
        self.builder = self.builder.name(name);
        self
    }

    /// Whether the fiber's failure cancels its parent (default `true`).
    pub fn propagate_cancel_to_parent(mut self, propagate: bool) -> FutureBuilder {
        self.builder = self.builder.propagate_cancel_to_parent(propagate);
        self
    }

    /// The size of the fiber's stack.
    pub fn stack_size(mut self, bytes: usize) -> FutureBuilder {
        self.builder = self.builder.stack_size(bytes);
        self
    }

    /// Spawns the fiber and returns a future of its result. Never blocks.
    ///
    /// # Errors
    ///
    /// If the fiber cannot be spawned (no scheduler on this thread, the
    /// scheduler was disposed of, the parent is done), the future resolves
    /// to that error: [`ErrorKind::NotInFiber`], [`ErrorKind::Inactive`] or
    /// [`ErrorKind::Other`]. Otherwise it resolves as described at
    /// [`FiberFuture`].
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> Result<T> + 'static) -> FiberFuture<T> {
        let spawned = match (&self.parent, AnyFiber::try_current(), current_scheduler()) {
            (Some(parent), _, _) => self.builder.try_spawn_as_child_of(parent, f),
            (None, Ok(_), _) => self.builder.try_spawn(f),
            (None, Err(_), Some(sched)) => self.builder.spawn_on(&sched, f),
            (None, Err(_), None) => Err(Error::new(
                ErrorKind::NotInFiber,
                "spawn_as_future: no fuseau scheduler runs on this thread \
                 (call it from a fiber, or a Tokio task inside fuseau_tokio::run or main)",
            )),
        };
        match spawned {
            Ok(fiber) => FiberFuture {
                fiber: Some(fiber),
                error: None,
            },
            Err(e) => FiberFuture {
                fiber: None,
                error: Some(e),
            },
        }
    }
}

/// A future of a fiber's result (see [`spawn_as_future`]).
///
/// Resolves to what [`Fiber::join`] returns. Dropping it before it resolves
/// cancels the fiber; [`detach`](FiberFuture::detach) lets the fiber run on
/// without anyone waiting. Thread-bound (`!Send`), like the fiber.
///
/// # Errors
///
/// The fiber's failure (its body's error, a panic as
/// [`ErrorKind::Panicked`], the failure of a child, or its cancellation),
/// or why it could not be spawned (see [`FutureBuilder::spawn`]).
///
/// Polled from inside the awaited fiber or one of its descendants (a fiber
/// that passes its own future, or an ancestor's, to
/// [`await_future`]), it resolves at once to an [`ErrorKind::Other`]
/// error instead of waiting forever, as [`Fiber::join`] does for a fiber
/// that joins itself or an ancestor. The fiber is then neither waited for
/// nor cancelled: it runs on, as if the future were
/// [`detach`](FiberFuture::detach)ed.
#[must_use = "dropping the future cancels the fiber; use .detach() to keep it running"]
pub struct FiberFuture<T: 'static> {
    fiber: Option<Fiber<T>>,
    /// Why the fiber could not be spawned, returned by the first poll.
    error: Option<Error>,
}

impl<T: 'static> FiberFuture<T> {
    /// A handle to the fiber (`None` if it could not be spawned, or the
    /// future has resolved).
    pub fn fiber(&self) -> Option<AnyFiber> {
        self.fiber.as_ref().map(Fiber::any)
    }

    /// Lets the fiber run on, with nobody waiting for its result.
    pub fn detach(mut self) {
        self.fiber.take();
    }
}

impl<T: 'static> Future for FiberFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        if let Some(e) = this.error.take() {
            return Poll::Ready(Err(e));
        }
        let fiber = this
            .fiber
            .as_ref()
            .expect("FiberFuture polled after it resolved");
        let awaited = fiber.any();
        // A fiber that waits for itself or an ancestor to be done would wait
        // forever (and its ancestors with it), as `Fiber::join` refuses too.
        // Checked before registering the waker; `in_fiber` first, so that
        // Tokio tasks pay no more than a thread-local read.
        if fuseau::in_fiber()
            && AnyFiber::try_current().is_ok_and(|current| awaited.contains(&current))
        {
            // Resolved: the handle is released, the fiber is not cancelled.
            this.fiber = None;
            return Poll::Ready(Err(Error::new(
                ErrorKind::Other,
                "FiberFuture: a fiber cannot await its own future or an ancestor's \
                 (it would wait forever)",
            )));
        }
        if awaited.poll_done(cx).is_pending() {
            return Poll::Pending;
        }
        let fiber = this.fiber.take().expect("checked above");
        Poll::Ready(fiber.join())
    }
}

impl<T: 'static> Drop for FiberFuture<T> {
    fn drop(&mut self) {
        if let Some(fiber) = self.fiber.take() {
            fiber.cancel();
        }
    }
}

impl<T: 'static> fmt::Debug for FiberFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberFuture")
            .field("fiber", &self.fiber)
            .field("error", &self.error)
            .finish()
    }
}

/// Spawns `f` as a fiber on the scheduler of `handle`, from any thread, and
/// returns a `Send` future of its result: for Tokio code on other threads
/// (a multi-threaded runtime, say) to `.await` a fiber. The fiber runs on
/// the scheduler's thread, as with [`spawn_from_anywhere`](fuseau::spawn_from_anywhere).
/// Dropping the future cancels the fiber; [`RemoteFiberFuture::detach`]
/// keeps it running.
///
/// # Examples
///
/// ```
/// fuseau_tokio::main(|| {
///     let handle = fuseau_tokio::Scheduler::current().handle();
///     // A multi-threaded runtime elsewhere awaits a fiber of this scheduler.
///     let other = std::thread::spawn(move || {
///         let runtime = tokio::runtime::Runtime::new().unwrap();
///         runtime.block_on(async move {
///             tokio::spawn(fuseau_tokio::spawn_as_future_from_anywhere(&handle, || Ok(6 * 7)))
///                 .await
///                 .unwrap()
///         })
///     });
///     // Let the scheduler run the remote fiber while the thread waits.
///     while !other.is_finished() {
///         fuseau_tokio::sleep(std::time::Duration::from_millis(1))?;
///     }
///     assert_eq!(other.join().unwrap()?, 42);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn spawn_as_future_from_anywhere<T, F>(handle: &SchedulerHandle, f: F) -> RemoteFiberFuture<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    RemoteFiberFuture {
        fiber: Some(spawn_from_anywhere(handle, f)),
    }
}

/// The `Send` future of [`spawn_as_future_from_anywhere`]: resolves to the
/// fiber's result ([`ErrorKind::Inactive`] if its scheduler was disposed of
/// before it ran). Dropping it before it resolves cancels the fiber.
#[must_use = "dropping the future cancels the fiber; use .detach() to keep it running"]
pub struct RemoteFiberFuture<T: Send + 'static> {
    fiber: Option<RemoteFiber<T>>,
}

impl<T: Send + 'static> RemoteFiberFuture<T> {
    /// Lets the fiber run on, with nobody waiting for its result.
    pub fn detach(mut self) {
        self.fiber.take();
    }
}

impl<T: Send + 'static> Future for RemoteFiberFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        let fiber = this
            .fiber
            .as_ref()
            .expect("RemoteFiberFuture polled after it resolved");
        let result = std::task::ready!(fiber.poll_join(cx));
        this.fiber = None;
        Poll::Ready(result)
    }
}

impl<T: Send + 'static> Drop for RemoteFiberFuture<T> {
    fn drop(&mut self) {
        if let Some(fiber) = self.fiber.take() {
            fiber.cancel();
        }
    }
}

impl<T: Send + 'static> fmt::Debug for RemoteFiberFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteFiberFuture")
            .field("fiber", &self.fiber)
            .finish()
    }
}
