//! Fibers: spawning them ([`spawn`], [`Builder`]) and the handles to them
//! ([`Fiber`], [`AnyFiber`], [`FiberId`]).

use std::fmt;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use crate::error::{Error, ErrorKind, Result};
use crate::id::FiberId;
use crate::scheduler::context::{current_task, not_in_fiber, with_current, with_sched};
use crate::scheduler::{inactive, SchedInner, Scheduler};
use crate::task::{self, Header, Options, Origin, Output, SchedLink, Task, Wakeup};

/// `true` while a fiber runs on this thread (the calls that need one
/// would not fail with [`ErrorKind::NotInFiber`]). Never blocks.
///
/// ```
/// assert!(!fuseau::in_fiber());
/// assert!(fuseau::block_on(|| Ok(fuseau::in_fiber()))?);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn in_fiber() -> bool {
    crate::scheduler::context::in_fiber()
}

/// Options for a new fiber, builder-style.
///
/// # Examples
///
/// ```
/// fuseau::block_on(|| {
///     let worker = fuseau::Builder::new()
///         .name("worker")
///         .propagate_cancel_to_parent(false)
///         .stack_size(64 * 1024)
///         .spawn(|| Err::<(), _>(fuseau::Error::from("bad input")));
///     assert_eq!(worker.name(), Some("worker"));
///     // The failure does not cancel the parent: it only shows in `join`.
///     assert_eq!(worker.join().unwrap_err().message(), "bad input");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    name: Option<String>,
    propagate: bool,
    stack_size: Option<usize>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Default options: no name, failures propagate to the parent, the
    /// scheduler's default stack size.
    pub fn new() -> Builder {
        Builder {
            name: None,
            propagate: true,
            stack_size: None,
        }
    }

    /// Names the fiber (shown by `Debug` and [`Fiber::name`]).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Whether the fiber's failure cancels its parent (default `true`).
    /// With `false`, the failure is only seen by whoever joins the fiber.
    pub fn propagate_cancel_to_parent(mut self, propagate: bool) -> Builder {
        self.propagate = propagate;
        self
    }

    /// The size of the fiber's stack, in bytes (a guard page is added). A
    /// size over 1 GiB is refused before any memory is mapped: the fiber
    /// fails at once with an [`ErrorKind::Other`] error that says so.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns a fiber running `f`, as a child of the running fiber.
    ///
    /// The fiber is queued behind the ready fibers; the caller keeps running
    /// until it suspends. Not a cancellation point: spawning from a cancelled
    /// fiber gives a child that is already cancelled (its body never runs).
    ///
    /// # Panics
    ///
    /// Outside a scheduler, or if the scheduler was disposed of; see
    /// [`Builder::try_spawn`]. Not while the thread
    /// unwinds a panic (a destructor run by the scheduler's disposal, which
    /// force-unwinds the fibers' stacks, that spawns cleanup work): a panic
    /// then would abort the process, so this returns a fiber that already
    /// failed with the error instead (its body never runs).
    pub fn spawn<T: 'static>(self, f: impl FnOnce() -> Result<T> + 'static) -> Fiber<T> {
        match self.try_spawn_inner(f) {
            Ok(fiber) => fiber,
            Err(Refused {
                error,
                body,
                builder,
            }) if std::thread::panicking() => Fiber::failed(builder.options(0), body, error),
            Err(Refused { error, .. }) => panic!("fuseau::spawn: {error}"),
        }
    }

    /// Like [`Builder::spawn`], returning an error instead of panicking.
    ///
    /// Called from a micro-task (not a fiber), the new fiber has no parent.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotInFiber`] outside a scheduler, [`ErrorKind::Inactive`]
    /// if it was disposed of.
    pub fn try_spawn<T: 'static>(
        self,
        f: impl FnOnce() -> Result<T> + 'static,
    ) -> Result<Fiber<T>> {
        self.try_spawn_inner(f).map_err(|r| r.error)
    }

    /// `try_spawn`, giving the body back on failure.
    fn try_spawn_inner<T: 'static, F: FnOnce() -> Result<T> + 'static>(
        self,
        f: F,
    ) -> std::result::Result<Fiber<T>, Refused<F>> {
        let Some(sched) = with_sched(Rc::clone) else {
            return Err(Refused {
                error: not_in_fiber("fuseau::spawn"),
                body: f,
                builder: self,
            });
        };
        let parent = current_task();
        let link = parent.as_deref().map(Link::Child);
        self.spawn_inner(&sched, link, f)
    }

    /// Spawns a fiber running `f` as a child of `parent` (on `parent`'s
    /// scheduler) rather than of the running fiber: it is cancelled with
    /// `parent`, and its failure goes to `parent`. Callable outside any
    /// fiber (from a Tokio task on the scheduler's thread, say).
    ///
    /// # Panics
    ///
    /// If `parent` is done, or its scheduler was disposed of; see
    /// [`Builder::try_spawn_as_child_of`].
    pub fn spawn_as_child_of<T: 'static, P: AsFiber + ?Sized>(
        self,
        parent: &P,
        f: impl FnOnce() -> Result<T> + 'static,
    ) -> Fiber<T> {
        self.try_spawn_as_child_of(parent, f)
            .unwrap_or_else(|e| panic!("fuseau::spawn_as_child_of: {e}"))
    }

    /// Like [`Builder::spawn_as_child_of`], returning an error instead of
    /// panicking.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] if `parent` is done (it cannot take children any
    /// more), [`ErrorKind::Inactive`] if its scheduler was disposed of.
    pub fn try_spawn_as_child_of<T: 'static, P: AsFiber + ?Sized>(
        self,
        parent: &P,
        f: impl FnOnce() -> Result<T> + 'static,
    ) -> Result<Fiber<T>> {
        let parent = parent.as_any_fiber().task;
        if parent.header().is_done() {
            return Err(Error::new(
                ErrorKind::Other,
                format!("the parent fiber {} is done", parent.header().id),
            ));
        }
        let sched = scheduler_of(&parent)?;
        self.spawn_inner(&sched, Some(Link::Child(&parent)), f)
            .map_err(|r| r.error)
    }

    /// Spawns a member of `owner`'s fiber scope number `scope`
    /// (`crate::scope`): a child of `owner`, whichever fiber spawns it,
    /// whose failure fails the scope instead of `owner` (unless the builder
    /// says not to propagate it). Never panics: a refused spawn gives a
    /// fiber that failed with the reason, its body dropped.
    pub(crate) fn spawn_member(
        self,
        owner: &Task,
        scope: u64,
        f: impl FnOnce() -> Result<()> + 'static,
    ) -> Fiber<()> {
        let refused = match scheduler_of(owner) {
            Ok(sched) => {
                let fails_scope = self.propagate;
                let builder = self.propagate_cancel_to_parent(false);
                let link = Link::Member {
                    owner,
                    scope,
                    fails_scope,
                };
                match builder.spawn_inner(&sched, Some(link), f) {
                    Ok(fiber) => return fiber,
                    Err(refused) => refused,
                }
            }
            Err(error) => Refused {
                error,
                body: f,
                builder: self,
            },
        };
        Fiber::failed(refused.builder.options(0), refused.body, refused.error)
    }

    /// A fiber that failed with `error` without ever running: a spawn
    /// refused before it started.
    pub(crate) fn failed(self, error: Error) -> Fiber<()> {
        Fiber::failed(self.options(0), || Ok(()), error)
    }

    /// Spawns a fiber with no parent on `sched`; callable outside any fiber
    /// (on the scheduler's thread). This is how drivers start the main fiber.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Inactive`] if `sched` was disposed of.
    pub fn spawn_on<T: 'static>(
        self,
        sched: &Scheduler,
        f: impl FnOnce() -> Result<T> + 'static,
    ) -> Result<Fiber<T>> {
        self.spawn_inner(&sched.inner, None, f).map_err(|r| r.error)
    }

    fn options(self, default_stack_size: usize) -> Options {
        Options {
            name: self.name,
            stack_size: self.stack_size.unwrap_or(default_stack_size),
            propagate: self.propagate,
        }
    }

    fn spawn_inner<T: 'static, F: FnOnce() -> Result<T> + 'static>(
        self,
        sched: &Rc<SchedInner>,
        link: Option<Link<'_>>,
        f: F,
    ) -> std::result::Result<Fiber<T>, Refused<F>> {
        if !sched.is_active() {
            return Err(Refused {
                error: inactive(),
                body: f,
                builder: self,
            });
        }
        let options = self.options(sched.config().get_stack_size());
        let typed = Task::new(sched.link.clone(), options, f);
        let task: Rc<Task> = typed.clone();
        if let Some(link) = &link {
            // Inheritable fiber-locals, cloned here, in the caller: a panicking
            // `Clone` unwinds before the child is registered or linked.
            crate::local::inherit(link.parent().header(), task.header());
        }
        sched.register(&task);
        match link {
            Some(Link::Child(parent)) => task::link(parent, &task),
            Some(Link::Member {
                owner,
                scope,
                fails_scope,
            }) => task::link_member(owner, &task, scope, fails_scope),
            None => {}
        }
        task.make_ready();
        Ok(Fiber { task: typed })
    }
}

/// The scheduler `task` belongs to, while it is not disposed of.
fn scheduler_of(task: &Task) -> Result<Rc<SchedInner>> {
    task.header()
        .sched()
        .and_then(|s| s.into_any().downcast::<SchedInner>().ok())
        .ok_or_else(inactive)
}

/// Where a new fiber goes in the tree.
enum Link<'a> {
    /// A child of this fiber.
    Child(&'a Task),
    /// A member of `owner`'s fiber scope number `scope`.
    Member {
        owner: &'a Task,
        scope: u64,
        fails_scope: bool,
    },
}

impl Link<'_> {
    fn parent(&self) -> &Task {
        match self {
            Link::Child(parent) => parent,
            Link::Member { owner, .. } => owner,
        }
    }
}

/// A spawn that was refused: why, and what it was given back.
struct Refused<F> {
    error: Error,
    body: F,
    builder: Builder,
}

/// Spawns a fiber running `f`, as a child of the running fiber; shorthand
/// for [`Builder::new().spawn(f)`](Builder::spawn).
///
/// `spawn` returns at once; the new fiber runs after the fibers already
/// ready, in FIFO order, once the caller suspends. If the child fails, its
/// parent is cancelled with the child's error; if the parent is cancelled,
/// so is the child; the parent is done only once its children are.
///
/// Not a cancellation point.
///
/// # Panics
///
/// Outside a scheduler, or if the scheduler was disposed of (see
/// [`Builder::try_spawn`]).
///
/// # Examples
///
/// ```
/// fuseau::block_on(|| {
///     let child = fuseau::spawn(|| Ok(6 * 7));
///     assert_eq!(child.join()?, 42);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn spawn<T: 'static>(f: impl FnOnce() -> Result<T> + 'static) -> Fiber<T> {
    Builder::new().spawn(f)
}

/// Spawns a fiber as a child of `parent`; shorthand for
/// [`Builder::spawn_as_child_of`].
///
/// # Panics
///
/// If `parent` is done, or its scheduler was disposed of.
pub fn spawn_as_child_of<T: 'static, P: AsFiber + ?Sized>(
    parent: &P,
    f: impl FnOnce() -> Result<T> + 'static,
) -> Fiber<T> {
    Builder::new().spawn_as_child_of(parent, f)
}

/// A running (or finished) fiber whose body returns `T`.
///
/// Dropping it does not stop the fiber; the fiber's value, which nobody can
/// take any more, is dropped then (or, if the body has not returned yet, as
/// it returns, on the fiber's stack). It is not `Clone`: its value can be
/// taken once, by [`join`](Fiber::join); [`any`](Fiber::any) gives
/// cloneable, untyped handles. It is thread-bound (`!Send`).
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::Fiber<()>>();
/// ```
pub struct Fiber<T: 'static> {
    task: Rc<Task<dyn Output<T>>>,
}

impl<T: 'static> Fiber<T> {
    fn core(&self) -> &Header {
        self.task.header()
    }

    /// A fiber that failed with `error` before it could be spawned; its
    /// body is dropped, never run.
    fn failed<F: FnOnce() -> Result<T> + 'static>(
        options: Options,
        f: F,
        error: Error,
    ) -> Fiber<T> {
        let typed = Task::new(SchedLink::new(Weak::<SchedInner>::new()), options, f);
        task::never_run(&*typed, error);
        Fiber { task: typed }
    }

    /// The fiber's id.
    pub fn id(&self) -> FiberId {
        self.core().id
    }

    /// The fiber's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.core().name()
    }

    /// `true` once the body has returned and all children are done.
    pub fn is_done(&self) -> bool {
        self.core().is_done()
    }

    /// `true` once the fiber was cancelled (even if it is done).
    pub fn is_cancelled(&self) -> bool {
        self.core().is_cancelled()
    }

    /// Cancels the fiber; see [`AnyFiber::cancel`].
    pub fn cancel(&self) {
        self.any().cancel();
    }

    /// A cloneable, untyped handle to the same fiber.
    pub fn any(&self) -> AnyFiber {
        AnyFiber {
            task: self.task.clone(),
        }
    }

    /// Waits until the fiber is done and returns its result: the body's
    /// value, or the error it failed with (its body's error, a panic as
    /// [`ErrorKind::Panicked`], the failure of a child, or its
    /// cancellation).
    ///
    /// # Cancellation
    ///
    /// A cancellation point for the *caller*: if the caller is cancelled
    /// before or during the wait, this returns the caller's cancellation
    /// error and the joined fiber keeps running (if it is the caller's
    /// child, it is cancelled too, by the usual rule). If the joined fiber
    /// finished before the caller resumed, its result is returned.
    ///
    /// # Errors
    ///
    /// The fiber's failure, or the caller's cancellation. Outside a fiber,
    /// [`ErrorKind::NotInFiber`] unless the fiber is already done. A fiber
    /// that joins itself or one of its ancestors (which would wait forever)
    /// gets [`ErrorKind::Other`].
    pub fn join(self) -> Result<T> {
        let target: &Task = &*self.task;
        let waited = with_current(|me| {
            me.checkpoint()?;
            wait_done(me, target)?;
            Ok::<(), Error>(())
        });
        match waited {
            Some(waited) => waited?,
            None if !target.header().is_done() => {
                return Err(not_in_fiber("Fiber::join on an unfinished fiber"));
            }
            None => {}
        }
        self.result_if_done().expect("the joined fiber is done")
    }

    /// The fiber's result, if it is done; never waits.
    pub(crate) fn result_if_done(self) -> Option<Result<T>> {
        let core = self.task.header();
        if !core.is_done() {
            return None;
        }
        if let Some(e) = core.failure() {
            return Some(Err(e));
        }
        Some(Ok(self
            .task
            .body()
            .take_output()
            .expect("a fiber done without failure has its value")))
    }

    /// The fiber's record (for remote fibers).
    pub(crate) fn header(&self) -> &Header {
        self.task.header()
    }

    /// The fiber's key in its scheduler's slab (for remote messages).
    pub(crate) fn slab_key(&self) -> usize {
        self.core().slab_key()
    }
}

/// `true` if `fiber` is `me` or one of `me`'s ancestors: `me` waiting for
/// it to be done would wait forever.
pub(crate) fn is_self_or_ancestor(me: &Task, fiber: &Task) -> bool {
    if std::ptr::addr_eq(me, fiber) {
        return true;
    }
    let mut ancestor = me.header().parent();
    while let Some(a) = ancestor {
        if std::ptr::addr_eq(Rc::as_ptr(&a), fiber) {
            return true;
        }
        ancestor = a.header().parent();
    }
    false
}

/// Suspends `me` until `target` is done (at once if it is), or `me` is
/// cancelled.
pub(crate) fn wait_done(me: &Task, target: &Task) -> Result<()> {
    if is_self_or_ancestor(me, target) {
        return Err(Error::new(
            ErrorKind::Other,
            "Fiber::join: a fiber cannot join itself or one of its ancestors (it would wait forever)",
        ));
    }
    while !target.header().is_done() {
        me.begin_wait();
        target.header().add_joiner(Wakeup::new(me, 0));
        me.park();
        if target.header().is_done() {
            return Ok(());
        }
        // Cancelled, or woken for nothing: in both cases this wait's
        // registration is stale.
        target.header().remove_joiner(me);
        me.cancelled()?;
    }
    Ok(())
}

impl<T: 'static> Drop for Fiber<T> {
    fn drop(&mut self) {
        self.task.release_output();
    }
}

impl<T: 'static> fmt::Debug for Fiber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_fiber(self.core(), "Fiber", f)
    }
}

fn debug_fiber(core: &Header, type_name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(type_name)
        .field("id", &core.id)
        .field("name", &core.name())
        .field("state", &core.stage())
        .field("cancelled", &core.is_cancelled())
        .field("children", &core.n_children())
        .finish()
}

/// A cloneable, untyped handle to a fiber: for cancelling it and asking
/// about it. Thread-bound (`!Send`).
#[derive(Clone)]
pub struct AnyFiber {
    pub(crate) task: Rc<Task>,
}

impl AnyFiber {
    /// The running fiber.
    ///
    /// # Panics
    ///
    /// Outside a fiber; see [`AnyFiber::try_current`].
    pub fn current() -> AnyFiber {
        AnyFiber::try_current().expect("AnyFiber::current")
    }

    /// The running fiber.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotInFiber`] outside a fiber.
    pub fn try_current() -> Result<AnyFiber> {
        current_task()
            .map(|task| AnyFiber { task })
            .ok_or_else(|| not_in_fiber("AnyFiber::current"))
    }

    /// The fiber's parent, while the fiber is not done (a done fiber is
    /// unlinked from its parent); `None` for a root fiber.
    pub fn parent(&self) -> Option<AnyFiber> {
        self.task.header().parent().map(|task| AnyFiber { task })
    }

    /// `true` if `other` is this fiber or one of its descendants.
    ///
    /// A fiber that waits for itself or an ancestor to be done (awaiting
    /// the future of a fiber it runs in, say) waits forever: use this to
    /// refuse such a wait. Not a cancellation point.
    pub fn contains(&self, other: &AnyFiber) -> bool {
        is_self_or_ancestor(&other.task, &self.task)
    }

    /// The fiber's id.
    pub fn id(&self) -> FiberId {
        self.task.header().id
    }

    /// The fiber's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.task.header().name()
    }

    /// `true` once the body has returned and all children are done.
    pub fn is_done(&self) -> bool {
        self.task.header().is_done()
    }

    /// `true` once the fiber was cancelled (even if it is done).
    pub fn is_cancelled(&self) -> bool {
        self.task.header().is_cancelled()
    }

    /// For futures that wait for the fiber: `Ready` once it is done,
    /// otherwise `Pending`, and `cx`'s waker is woken when it is done. Never
    /// blocks; not a cancellation point. Polling again with the same waker
    /// does not register it twice.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::poll_fn;
    ///
    /// fuseau::block_on(|| {
    ///     let child = fuseau::spawn(|| Ok(()));
    ///     let any = child.any();
    ///     fuseau::await_event(fuseau::ev_future(poll_fn(|cx| any.poll_done(cx))))?;
    ///     assert!(child.is_done());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        let core = self.task.header();
        if core.is_done() {
            return Poll::Ready(());
        }
        core.add_done_waker(cx.waker());
        Poll::Pending
    }

    /// Runs `hook` when the fiber is done (it must not be done yet).
    pub(crate) fn on_done(&self, hook: Box<dyn FnOnce()>) {
        self.task.header().set_on_done(hook);
    }

    /// Cancels the fiber with a plain [`ErrorKind::Cancelled`] error, and
    /// with it all its descendants.
    ///
    /// The fiber is woken at once if it is suspended; its suspension points
    /// return the error from now on. A fiber that has not started yet never
    /// runs its body. Cancelling a done fiber, or one cancelled before, does
    /// nothing (the first cancellation wins). A fiber that then returns this
    /// `Cancelled` error does not fail its parent: it was stopped on
    /// purpose. Returns at once; never blocks: the fibers' cancel callbacks
    /// ([`with_cancel_callback`](crate::with_cancel_callback)) run here,
    /// and cannot wait.
    pub fn cancel(&self) {
        task::cancel(&self.task, Error::cancelled(), Origin::Handle);
    }
}

impl fmt::Debug for AnyFiber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_fiber(self.task.header(), "AnyFiber", f)
    }
}

impl PartialEq for AnyFiber {
    fn eq(&self, other: &AnyFiber) -> bool {
        self.id() == other.id()
    }
}

impl Eq for AnyFiber {}

/// Things that name a fiber: [`Fiber`] and [`AnyFiber`].
pub trait AsFiber: sealed::Sealed {
    /// An untyped handle to the fiber.
    fn as_any_fiber(&self) -> AnyFiber;
}

impl<T: 'static> AsFiber for Fiber<T> {
    fn as_any_fiber(&self) -> AnyFiber {
        self.any()
    }
}

impl AsFiber for AnyFiber {
    fn as_any_fiber(&self) -> AnyFiber {
        self.clone()
    }
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for super::Fiber<T> {}
    impl Sealed for super::AnyFiber {}
}
