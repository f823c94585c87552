//! Fiber scopes: fibers that borrow from the stack of the fiber that
//! started them ([`scope`], [`Scope`], [`ScopedFiber`]).
//!
//! [`spawn`](crate::spawn) needs a `'static` closure: a child may outlive
//! the code that spawned it (until its parent is done), so it cannot borrow
//! that code's locals. [`scope`] runs a closure that spawns *members*
//! ([`Scope::spawn`]) and returns only once every member is done, so the
//! members may borrow anything that outlives the scope: the caller's
//! locals, by shared or by mutable reference (a different part each, as
//! `split_at_mut` gives them). It is `std::thread::scope` for fibers, with
//! the failure rules of a Trio nursery: a member that fails cancels the
//! rest of the scope, and the scope returns the failure.
//!
//! # Soundness
//!
//! A member's closure borrows for `'scope`, and runs as a fiber whose body
//! must be `'static`: its lifetime is erased (the crate's `erase` module,
//! whose invariant is that an erased body is never touched once its
//! borrows end). Everything the members borrow outlives the call of
//! [`scope`], so the invariant holds if `scope` returns or unwinds only
//! after each member's body has returned, or was dropped without running,
//! or its stack was leaked never to be resumed. That is so on every path:
//!
//! 1. **`scope` is a function, not a guard.** The caller never holds a
//!    value whose drop ends the scope: [`Scope`] is only lent to the
//!    closure (`&'scope Scope`), and the closure's `'scope` is chosen by
//!    `scope` (a higher-ranked lifetime), so neither the `Scope` nor a
//!    [`ScopedFiber`] can leave the closure. `mem::forget` of a
//!    `ScopedFiber` forgets a handle: `scope` does not wait through the
//!    handles but through the fiber tree (every member is a child of the
//!    calling fiber, marked with the scope's number), which no handle can
//!    take a member out of.
//! 2. **Every exit waits.** The closure runs under `catch_unwind`; whether
//!    it returns `Ok`, returns `Err` or panics, `scope` then waits until
//!    every member is done, in a [`shield`](crate::shield) so that no
//!    cancellation can cut that wait short (an error or panic of the body
//!    cancels the members first, so the wait ends). Only then does it
//!    return, or resume the panic.
//! 3. **A forced unwind** (the scheduler's disposal unwinds the stacks of
//!    fibers that did not return) is the one exit where waiting is
//!    impossible: an unwinding stack cannot suspend. The disposal unwinds
//!    children before their parents (`scheduler::teardown`), and a member
//!    is a child of the fiber that runs `scope`, so by the time that
//!    fiber's stack unwinds through `scope`, every member is finished. As
//!    a last line of defence, `scope`'s exit guard *abandons* any member
//!    that is not (`task::abandon`): one that never ran is dropped, a
//!    suspended one has its stack leaked, never to run again. A build
//!    with `panic = "abort"` leaks every suspended stack at disposal.
//! 4. **Nothing escapes the thread.** `Scope` and `ScopedFiber` are
//!    `!Send` and `!Sync`: a member runs on the scheduler of the fiber
//!    that opened the scope, which is on this thread and cannot be
//!    disposed of while that fiber runs `scope` (the disposal finishes its
//!    fibers first, as above).
//! 5. **Where waiting is refused**, `scope` refuses to start: in a cancel
//!    callback, and while the thread unwinds a panic (a destructor).
//!
//! A scope cannot be a future or an `async` block for the same reason
//! scoped async tasks cannot be sound (tokio#3162): a future can be
//! forgotten half-way, with its borrows still in use.

use std::cell::{Cell, OnceCell};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::erase;
use crate::error::{Error, ErrorKind, Result};
use crate::fiber::{wait_done, AnyFiber, Builder, Fiber};
use crate::id::FiberId;
use crate::scheduler::context::with_fiber;
use crate::shield::shield;
use crate::sync::Semaphore;
use crate::task::{abandon, Origin, Task};

/// Runs `f` with a [`Scope`] whose members (fibers spawned with
/// [`Scope::spawn`]) may borrow from the caller's stack; returns once
/// `f` has returned and every member is done.
///
/// Members are children of the calling fiber, run on its scheduler, and
/// are queued in FIFO order like any spawn. `scope` waits for the members
/// that are still running when `f` returns, on every way out of `f`.
///
/// # Semantics
///
/// - **Failure**: a member fails when it returns an error or panics
///   (except the cancellation it received from outside: from its handle,
///   the scope or the fiber). The first failure *fails the scope*: the
///   other members are cancelled (their suspension points fail with a
///   `Cancelled` error whose [`source`](std::error::Error::source) is the
///   failure), and so is the rest of `f` (its suspension points fail the
///   same way, until it returns); `scope` then waits for the members and
///   returns the failure. The calling fiber itself is not cancelled. A
///   member spawned with [`Scope::spawn_with`] and
///   [`propagate_cancel_to_parent(false)`](Builder::propagate_cancel_to_parent)
///   does not fail the scope: its failure shows only in its `join`.
/// - **The body's result**: if `f` returns an error, or panics, the scope
///   fails the same way (the members are cancelled and awaited) and
///   `scope` returns that error, or resumes the panic. If it returns
///   `Ok`, `scope` returns it once the members are done, unless the scope
///   failed meanwhile, or a member was cut short by the fiber's
///   cancellation or the expiry of an enclosing deadline scope: then the
///   error. So `Ok` means that the body and every member succeeded (or
///   were cancelled through their own handles).
/// - **Which error**: the first failure, in time: a member's error, or the
///   body's own.
/// - **The fiber cancelled**: the members are its children and are
///   cancelled with it (at once, like any child), and `f`'s suspension
///   points fail; `scope` waits for the members all the same. In a
///   [`shield`](crate::shield), the members started inside it are held
///   with it, as any child.
/// - **Deadlines**: inside [`with_timeout`](crate::with_timeout), an
///   expiry cancels the members as it does `f`. A deadline scope inside
///   `f` does not cancel members spawned inside it (they belong to the
///   scope, not to the deadline scope).
/// - **Plain children** spawned in `f` with [`spawn`](crate::spawn) are
///   not members: `scope` does not wait for them, and their failure fails
///   the fiber as usual; but they are cancelled when the scope fails, as
///   the children started in a deadline scope are when it expires.
/// - **Scheduler teardown** finishes the members before the fiber that
///   runs `scope`.
///
/// # Cancellation
///
/// Not a cancellation point itself: `f` runs in a cancelled fiber too (its
/// suspension points fail). The wait for the members at the end cannot be
/// interrupted: a cancellation that arrives then cancels the members, and
/// `scope` returns once they are done (with the cancellation, if one was
/// cut short by it).
///
/// # Errors
///
/// The scope's failure, or `f`'s error, as above;
/// [`ErrorKind::NotInFiber`] outside a fiber (then `f` does not run);
/// [`ErrorKind::Other`] in a cancel callback or while the thread unwinds a
/// panic, where a fiber cannot wait (then `f` does not run).
///
/// # Panics
///
/// A panic of `f` is resumed once the members are done. A member's panic
/// is its failure, not a panic of `scope`.
///
/// # Examples
///
/// Members borrow the caller's data, shared and mutably:
///
/// ```
/// let words = vec!["fiber", "scope", "borrow"];
/// let mut lengths = vec![0; words.len()];
/// fuseau::block_on(|| {
///     fuseau::scope(|s| {
///         for (word, length) in words.iter().zip(lengths.iter_mut()) {
///             s.spawn(move || {
///                 fuseau::yield_now()?;
///                 *length = word.len();
///                 Ok(())
///             });
///         }
///         Ok(())
///     })
/// })?;
/// assert_eq!(lengths, [5, 5, 6]);
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// A failing member cancels the others, and fails the scope:
///
/// ```
/// use std::time::Duration;
///
/// fuseau::block_on(|| {
///     let r = fuseau::scope(|s| {
///         let slow = s.spawn(|| fuseau::sleep(Duration::from_secs(3600)));
///         s.spawn(|| Err::<(), _>(fuseau::Error::from("bad input")));
///         slow.join()
///     });
///     assert_eq!(r.unwrap_err().message(), "bad input");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// A member cannot borrow what the scope's closure owns, since that is
/// dropped before the members are done:
///
/// ```compile_fail
/// fuseau::block_on(|| {
///     fuseau::scope(|s| {
///         let local = String::from("dropped at the end of the closure");
///         s.spawn(|| Ok(local.len()));
///         Ok(())
///     })
/// });
/// ```
///
/// and no handle outlives the scope:
///
/// ```compile_fail
/// fuseau::block_on(|| {
///     let escaped = fuseau::scope(|s| Ok(s.spawn(|| Ok(1))))?;
///     escaped.join()
/// });
/// ```
pub fn scope<'env, F, T>(f: F) -> Result<T>
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> Result<T>,
{
    with_fiber("fuseau::scope", |me| {
        if let Some(e) = me.waits_refused() {
            return Err(e);
        }
        let number = me.enter_fiber_scope();
        let scope = Scope {
            owner: me.to_rc(),
            number,
            cut_short: Rc::new(Cell::new(None)),
            slots: Slots::default(),
            scope: PhantomData,
            env: PhantomData,
        };
        // Declared after `scope`, so dropped before it: the members that
        // the guard abandons (if any) release their slots into it.
        let exit = Exit { me, number };
        let body = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        let fired = match &body {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.clone()),
            Err(_) => Some(Error::new(
                ErrorKind::Panicked,
                "the body of a fuseau::scope panicked",
            )),
        };
        if let Some(e) = fired {
            me.fail_fiber_scope(number, e);
        }
        wait_for_members(me, number);
        let failure = exit.finish();
        match body {
            Err(payload) => resume_unwind(payload),
            Ok(Err(e)) => Err(failure.unwrap_or(e)),
            Ok(Ok(value)) => match failure.or_else(|| scope.cut_short(me)) {
                Some(e) => Err(e),
                None => Ok(value),
            },
        }
    })
}

/// Waits, shielded, until every member of `me`'s fiber scope `number` is
/// done, members spawned meanwhile included. Returns early only if `me`'s
/// stack is being force-unwound (it cannot suspend then; see the module's
/// soundness argument, point 3).
fn wait_for_members(me: &Task, number: u64) {
    let _ = shield(|| loop {
        let members = me.scope_members(number);
        if members.is_empty() {
            return Ok(());
        }
        for member in &members {
            if me.header().is_unwinding() {
                return Err(Error::cancelled());
            }
            wait_done(me, member)?;
        }
    });
}

/// Ends a fiber scope, on every path: abandons the members that are not
/// finished (only if the stack is force-unwound; see the module's
/// soundness argument), then leaves the scope.
struct Exit<'a> {
    me: &'a Task,
    number: u64,
}

impl Exit<'_> {
    /// Ends the scope; returns the error it failed with, if it did.
    fn finish(self) -> Option<Error> {
        let me = self.me;
        let number = self.number;
        std::mem::forget(self);
        end(me, number)
    }
}

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        end(self.me, self.number);
    }
}

fn end(me: &Task, number: u64) -> Option<Error> {
    for member in me.scope_members(number) {
        abandon(
            &member,
            Error::new(
                ErrorKind::Cancelled,
                "abandoned: its fuseau::scope ended while it had not finished",
            ),
        );
    }
    me.exit_fiber_scope(number)
}

/// A fiber scope: spawns fibers that may borrow anything that outlives
/// the scope ([`Scope::spawn`]). Lent by [`scope`] to its closure.
///
/// `'scope` is the scope's own lifetime (members may borrow for it);
/// `'env` is that of what they borrow from outside the scope.
/// `!Send` and `!Sync`: members run on the scheduler of the fiber that
/// opened the scope, and only code on its thread spawns them.
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<fuseau::Scope<'static, 'static>>();
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    /// The fiber running `scope`: the members' parent.
    owner: Rc<Task>,
    /// The scope's number among the owner's limits (`task::tree`).
    number: u64,
    /// The first member's cancellation that came from the fiber or an
    /// enclosing deadline (set when the member is done).
    cut_short: Rc<Cell<Option<Error>>>,
    slots: Slots,
    // Invariant in both lifetimes, as `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a member running `f`: a child of the fiber that opened the
    /// scope (whichever fiber calls this), which [`scope`] waits for. `f`
    /// may borrow anything that outlives the scope.
    ///
    /// The member is queued behind the ready fibers; the caller keeps
    /// running until it suspends. If the scope has a
    /// [limit](Scope::set_limit) and that many members are running, this
    /// waits, in FIFO order with other spawners, until one of them
    /// returns.
    ///
    /// # Cancellation
    ///
    /// Without a limit, not a cancellation point: in a cancelled fiber, or
    /// a failed scope, the member is cancelled at once and its body never
    /// runs. With a limit, a cancellation point: cancelled before the call
    /// or while it waits for a slot, it spawns nothing and returns a
    /// handle whose `join` gives the cancellation (`f` is dropped, never
    /// run); it takes no slot with it.
    ///
    /// # Panics
    ///
    /// Never: a spawn the scheduler refuses (it is being disposed of)
    /// gives a member that failed with [`ErrorKind::Inactive`], its body
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut counts = [0u32; 2];
    /// let (left, right) = counts.split_at_mut(1);
    /// fuseau::block_on(|| {
    ///     fuseau::scope(|s| {
    ///         let a = s.spawn(|| { left[0] += 1; Ok("left") });
    ///         let b = s.spawn(|| { right[0] += 2; Ok("right") });
    ///         assert_eq!((a.join()?, b.join()?), ("left", "right"));
    ///         Ok(())
    ///     })
    /// })?;
    /// assert_eq!(counts, [1, 2]);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn spawn<T, F>(&'scope self, f: F) -> ScopedFiber<'scope, T>
    where
        F: FnOnce() -> Result<T> + 'scope,
        T: 'scope,
    {
        self.spawn_with(Builder::new(), f)
    }

    /// [`spawn`](Scope::spawn) with options: the [`Builder`]'s name and
    /// stack size; with
    /// [`propagate_cancel_to_parent(false)`](Builder::propagate_cancel_to_parent),
    /// the member's failure does not fail the scope (it shows only in its
    /// [`join`](ScopedFiber::join)). [`scope`] waits for it all the same.
    ///
    /// # Cancellation
    ///
    /// As [`spawn`](Scope::spawn).
    ///
    /// # Panics
    ///
    /// Never (as [`spawn`](Scope::spawn)).
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau::block_on(|| {
    ///     fuseau::scope(|s| {
    ///         let tolerated = s.spawn_with(
    ///             fuseau::Builder::new().name("probe").propagate_cancel_to_parent(false),
    ///             || Err::<(), _>(fuseau::Error::from("unreachable host")),
    ///         );
    ///         assert_eq!(tolerated.name(), Some("probe"));
    ///         assert!(tolerated.join().is_err()); // the scope goes on
    ///         Ok(())
    ///     })
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn spawn_with<T, F>(&'scope self, builder: Builder, f: F) -> ScopedFiber<'scope, T>
    where
        F: FnOnce() -> Result<T> + 'scope,
        T: 'scope,
    {
        match self.slots.take() {
            Ok(slot) => self.start(builder, slot, f),
            Err(e) => {
                drop(f);
                ScopedFiber::new(builder.failed(e), Rc::new(Cell::new(None)))
            }
        }
    }

    /// Spawns a member as [`spawn`](Scope::spawn) does if the scope's
    /// [limit](Scope::set_limit) leaves a slot free now (always, without a
    /// limit); otherwise gives `f` back. Never waits (Go's
    /// `errgroup.TryGo`).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Errors
    ///
    /// `Err(f)` when every slot is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau::block_on(|| {
    ///     fuseau::scope(|s| {
    ///         s.set_limit(1);
    ///         let first = s.try_spawn(|| Ok(1)).ok().expect("a free slot");
    ///         assert!(s.try_spawn(|| Ok(2)).is_err()); // the one slot is taken
    ///         assert_eq!(first.join()?, 1);
    ///         assert!(s.try_spawn(|| Ok(3)).is_ok());
    ///         Ok(())
    ///     })
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn try_spawn<T, F>(&'scope self, f: F) -> std::result::Result<ScopedFiber<'scope, T>, F>
    where
        F: FnOnce() -> Result<T> + 'scope,
        T: 'scope,
    {
        match self.slots.try_take() {
            Some(slot) => Ok(self.start(Builder::new(), slot, f)),
            None => Err(f),
        }
    }

    /// Caps how many members may run at once (Go's `errgroup.SetLimit`):
    /// from now on, [`spawn`](Scope::spawn) waits while `limit` members
    /// are running (a member's slot is free once its body returns), and
    /// [`try_spawn`](Scope::try_spawn) gives its closure back. Members
    /// already running count; lowering the limit below them stops no one,
    /// it only delays later spawns. Limits above
    /// [`Semaphore::MAX_PERMITS`] count as that.
    ///
    /// A member that spawns into its own scope while holding a slot can
    /// wait forever if every slot is held that way: spawn from the scope's
    /// body (or from fibers that hold no slot) when a limit is set.
    ///
    /// Never blocks; not a cancellation point.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (no member could ever run).
    ///
    /// # Examples
    ///
    /// At most two of ten downloads at a time:
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    ///
    /// let (running, most) = (Cell::new(0), Cell::new(0));
    /// fuseau::block_on(|| {
    ///     fuseau::scope(|s| {
    ///         s.set_limit(2);
    ///         for _ in 0..10 {
    ///             s.spawn(|| {
    ///                 running.set(running.get() + 1);
    ///                 most.set(most.get().max(running.get()));
    ///                 fuseau::sleep(Duration::from_millis(1))?;
    ///                 running.set(running.get() - 1);
    ///                 Ok(())
    ///             });
    ///         }
    ///         Ok(())
    ///     })
    /// })?;
    /// assert_eq!(most.get(), 2);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn set_limit(&self, limit: usize) {
        assert!(limit > 0, "Scope::set_limit: the limit must be at least 1");
        self.slots.set_limit(limit.min(Semaphore::MAX_PERMITS));
    }

    /// The limit set by [`set_limit`](Scope::set_limit), if any.
    pub fn limit(&self) -> Option<usize> {
        self.slots.limit.get()
    }

    /// How many members are running: spawned, and their body has not
    /// returned yet.
    pub fn running(&self) -> usize {
        self.slots.running.get()
    }

    fn start<T, F>(
        &'scope self,
        builder: Builder,
        slot: Slot<'scope>,
        f: F,
    ) -> ScopedFiber<'scope, T>
    where
        F: FnOnce() -> Result<T> + 'scope,
        T: 'scope,
    {
        let output = Rc::new(Cell::new(None));
        let out = output.clone();
        let body = move || {
            // Held until the body returns or unwinds, or is dropped unrun.
            let _slot = slot;
            out.set(Some(f()?));
            Ok(())
        };
        // SAFETY: the body runs only as a member of this scope, which
        // `scope` does not leave before the member is done or abandoned,
        // on every path (the module's soundness argument); a refused spawn
        // drops it here, at once.
        let body = unsafe { erase::body(body) };
        let fiber = builder.spawn_member(&self.owner, self.number, body);
        self.watch(&fiber);
        ScopedFiber::new(fiber, output)
    }

    /// Records, when `member` is done, whether the fiber's cancellation or
    /// an enclosing deadline cut it short.
    fn watch(&self, member: &Fiber<()>) {
        let any = member.any();
        if any.is_done() {
            return;
        }
        let cut_short = self.cut_short.clone();
        let task = any.task.clone();
        any.on_done(Box::new(move || {
            let h = task.header();
            if h.cancel_origin() != Some(Origin::Parent) {
                return;
            }
            if let Some(e) = h.failure().filter(Error::is_cancellation) {
                let first = cut_short.take().unwrap_or(e);
                cut_short.set(Some(first));
            }
        }));
    }

    /// The error to return for a body that returned `Ok` but whose members
    /// were cut short: the fiber's pending cancellation (or expired
    /// deadline), else the member's error.
    fn cut_short(&self, me: &Task) -> Option<Error> {
        let e = self.cut_short.take()?;
        Some(me.cancelled().err().unwrap_or(e))
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("fiber", &self.owner.header().id)
            .field("running", &self.slots.running.get())
            .field("limit", &self.slots.limit.get())
            .finish()
    }
}

/// The members' slots: how many run, and the limit on it
/// ([`Scope::set_limit`]).
#[derive(Default)]
struct Slots {
    limit: Cell<Option<usize>>,
    /// Members whose body has not returned (nor been dropped).
    running: Cell<usize>,
    /// With a limit: the free slots, as permits (made on the first
    /// `set_limit`). Permits are taken with `forget` and given back by
    /// hand, so that a limit can change while members run.
    free: OnceCell<Semaphore>,
    /// Slots to take back from members as they return, before giving
    /// permits back: what lowering the limit could not take at once.
    debt: Cell<usize>,
}

impl Slots {
    /// A slot for a new member, waiting for one if the limit is reached.
    fn take(&self) -> Result<Slot<'_>> {
        if let Some(free) = self.free.get() {
            free.acquire()?.forget();
        }
        Ok(self.taken())
    }

    /// A slot for a new member, if one is free now.
    fn try_take(&self) -> Option<Slot<'_>> {
        if let Some(free) = self.free.get() {
            free.try_acquire().ok()?.forget();
        }
        Some(self.taken())
    }

    fn taken(&self) -> Slot<'_> {
        self.running.set(self.running.get() + 1);
        Slot(self)
    }

    /// Sets the limit: free permits = `limit` − running, less what is owed.
    fn set_limit(&self, limit: usize) {
        let free = self.free.get_or_init(|| Semaphore::new(0));
        self.limit.set(Some(limit));
        let have = free.available_permits() as i128 - self.debt.get() as i128;
        let want = limit as i128 - self.running.get() as i128;
        let mut delta = want - have;
        if delta > 0 {
            let repaid = (self.debt.get() as i128).min(delta);
            self.debt.set(self.debt.get() - repaid as usize);
            delta -= repaid;
            free.add_permits(delta as usize);
        } else if delta < 0 {
            let owed = (-delta) as usize;
            let now = owed.min(free.available_permits());
            if now > 0 {
                if let Ok(permits) = free.try_acquire_many(now) {
                    permits.forget();
                }
            }
            self.debt.set(self.debt.get() + owed - now);
        }
    }
}

/// A member's slot, held by its body; given back when the body returns or
/// is dropped.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let slots = self.0;
        slots.running.set(slots.running.get() - 1);
        if let Some(free) = slots.free.get() {
            match slots.debt.get() {
                0 => free.add_permits(1),
                owed => slots.debt.set(owed - 1),
            }
        }
    }
}

/// A member of a [`Scope`], whose body returns `T`.
///
/// Like [`Fiber`], but it cannot outlive the scope, and `T` may borrow
/// (`T: 'scope`). Dropping it does not stop the member (the scope still
/// waits for it); its value is dropped then. Thread-bound (`!Send`).
pub struct ScopedFiber<'scope, T> {
    fiber: Fiber<()>,
    output: Rc<Cell<Option<T>>>,
    scope: PhantomData<&'scope ()>,
}

impl<'scope, T> ScopedFiber<'scope, T> {
    fn new(fiber: Fiber<()>, output: Rc<Cell<Option<T>>>) -> ScopedFiber<'scope, T> {
        ScopedFiber {
            fiber,
            output,
            scope: PhantomData,
        }
    }

    /// Waits until the member is done and returns its result, as
    /// [`Fiber::join`] does.
    ///
    /// # Cancellation
    ///
    /// A cancellation point for the caller, as [`Fiber::join`]: cancelled
    /// before or during the wait, it returns the caller's cancellation and
    /// the member runs on ([`scope`] still waits for it); if the member
    /// finished before the caller resumed, its result is returned.
    ///
    /// # Errors
    ///
    /// The member's failure (its error, a panic as
    /// [`ErrorKind::Panicked`], or its cancellation), or the caller's
    /// cancellation. A joined failure still failed the scope (unless the
    /// member was spawned not to).
    pub fn join(self) -> Result<T> {
        let ScopedFiber { fiber, output, .. } = self;
        fiber.join()?;
        Ok(output
            .take()
            .expect("a member that succeeded left its value"))
    }

    /// The member's id.
    pub fn id(&self) -> FiberId {
        self.fiber.id()
    }

    /// The member's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.fiber.name()
    }

    /// `true` once the member's body has returned and its children are
    /// done.
    pub fn is_done(&self) -> bool {
        self.fiber.is_done()
    }

    /// `true` once the member was cancelled (even if it is done).
    pub fn is_cancelled(&self) -> bool {
        self.fiber.is_cancelled()
    }

    /// Cancels the member (and its descendants); see
    /// [`AnyFiber::cancel`]. Its resulting `Cancelled` error does not fail
    /// the scope. Never blocks; not a cancellation point.
    pub fn cancel(&self) {
        self.fiber.cancel();
    }

    /// A cloneable, untyped handle to the member (it may outlive the
    /// scope: it only names the fiber).
    pub fn any(&self) -> AnyFiber {
        self.fiber.any()
    }
}

impl<T> fmt::Debug for ScopedFiber<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedFiber")
            .field("fiber", &self.fiber)
            .finish()
    }
}
