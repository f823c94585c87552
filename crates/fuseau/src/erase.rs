//! Fiber bodies that borrow from their caller's stack.
//!
//! A fiber needs a `'static` body. Two kinds of call take a body that may
//! borrow (a `FnOnce() -> Result<T> + 'a`) and run it as a fiber all the
//! same: the runners ([`block_on`](crate::block_on), `fuseau_tokio::main`),
//! and the members of a fiber scope ([`scope`](crate::scope)). They box
//! the body and erase its lifetime with [`body`], the one `unsafe`
//! operation here.
//!
//! # Safety invariant
//!
//! The erased body, and everything it captured, must never be touched
//! after `'a` ends: by then the body has returned or been dropped (its
//! stack unwound), or its stack is leaked and will never be resumed. Each
//! caller guarantees it by being a *function* (not a guard, not a future)
//! that returns or unwinds only after that is so, on every path.
//!
//! ## Runners
//!
//! A runner returns (or unwinds) only after the scheduler it spawned the
//! body on is disposed of, on every path (a guard disposes of it while
//! unwinding):
//!
//! 1. Disposal cancels every fiber of the scheduler and unwinds every
//!    suspended stack (or, where unwinding is impossible, leaks the stack:
//!    a leaked stack is never resumed, so what it holds is never touched).
//!    A fiber that never started is dropped, closure and all. So after
//!    disposal, no code of the body runs, and its captures have been
//!    dropped or will never be touched.
//! 2. A disposed scheduler runs nothing more: `run_iteration` returns at
//!    once, spawns are refused, wake-ups and messages from other threads
//!    are dropped. A `Scheduler` handle that a fiber smuggled out (into a
//!    thread-local, say) can therefore not resume anything either.
//! 3. Nothing the body borrows can escape into something that outlives
//!    the runner: `spawn`, `spawn_local` and the remote spawns require
//!    `'static` closures and futures, and the runner's result `T` is
//!    `'static`.
//!
//! A runner that is a *future* (`fuseau_tokio::run`) cannot give this
//! guarantee: a future can be leaked (`mem::forget`) half-way, and with it
//! a scheduler whose fibers still hold the borrows. So `run` keeps its
//! `'static` bound, as `tokio::spawn` does, and as scoped async tasks
//! cannot be sound (tokio#3162).
//!
//! ## Fiber scopes
//!
//! `scope` returns or unwinds only after every member it spawned is done
//! or abandoned; the argument is in the `scope` module.

use crate::error::Result;

/// Boxes `f` and erases its lifetime.
///
/// # Safety
///
/// The caller must uphold the module's invariant: the returned body runs
/// (if at all) as a fiber that is done, or whose stack is leaked and never
/// resumed, before `'a` ends, on every path; and it is dropped before `'a`
/// ends if it is never spawned.
pub unsafe fn body<'a, T: 'static>(
    f: impl FnOnce() -> Result<T> + 'a,
) -> Box<dyn FnOnce() -> Result<T>> {
    let boxed: Box<dyn FnOnce() -> Result<T> + 'a> = Box::new(f);
    // SAFETY: only the lifetime bound of the trait object changes (same
    // layout, same vtable); the caller guarantees that the body is never
    // touched once `'a` has ended (see the module's invariant).
    unsafe {
        std::mem::transmute::<Box<dyn FnOnce() -> Result<T> + 'a>, Box<dyn FnOnce() -> Result<T>>>(
            boxed,
        )
    }
}
