//! Direct-style fibers with structured concurrency.
//!
//! A fiber is a function with its own stack. It runs plain, sequential Rust
//! (no `async`, no `.await`), and when it waits (for a timer, another fiber,
//! a channel, a socket) it *suspends*: its stack is set aside and the thread
//! runs other fibers. Thousands of fibers share one thread.
//!
//! This crate is the core: fibers, the scheduler, cancellation, timers,
//! fiber-local storage. It depends on no async runtime; an [`EventLoop`]
//! drives it. `fuseau_tokio` runs it on Tokio, with sockets and interop with
//! futures; [`block_on`] runs it on a plain thread.
//!
//! # A tour
//!
//! [`spawn`] starts a fiber as a child of the running one; [`Fiber::join`]
//! waits for its result. A fiber's body returns a [`Result`]; errors and
//! panics become an [`Error`] with a [`kind`](Error::kind).
//!
//! ```
//! use std::time::Duration;
//!
//! let total = fuseau::block_on(|| {
//!     let a = fuseau::spawn(|| {
//!         fuseau::sleep(Duration::from_millis(2))?;
//!         Ok(40)
//!     });
//!     let b = fuseau::spawn(|| Ok(2));
//!     Ok(a.join()? + b.join()?)
//! })?;
//! assert_eq!(total, 42);
//! # Ok::<(), fuseau::Error>(())
//! ```
//!
//! ## Structure
//!
//! Fibers form a tree. Cancelling (or failing) a fiber cancels its
//! children; a child that fails cancels its parent with the child's error
//! (unless spawned with
//! [`propagate_cancel_to_parent(false)`](Builder::propagate_cancel_to_parent));
//! and a fiber is done only when its children are. So a fiber's result
//! accounts for everything it started, and nothing outlives the fiber that
//! started it.
//!
//! ```
//! use std::time::Duration;
//!
//! let result = fuseau::block_on(|| {
//!     // This child fails; its parent (the main fiber) is cancelled with its
//!     // error while sleeping, and the sibling is cancelled too.
//!     fuseau::spawn(|| Err::<(), _>(fuseau::Error::from("disk on fire")));
//!     let sibling = fuseau::spawn(|| fuseau::sleep(Duration::from_secs(3600)));
//!     fuseau::sleep(Duration::from_secs(3600))?;
//!     sibling.join()
//! });
//! assert_eq!(result.unwrap_err().message(), "disk on fire");
//! ```
//!
//! ## Borrowing: fiber scopes
//!
//! [`spawn`] needs a `'static` closure, since a child may outlive the code
//! that spawned it. [`scope`] opens a scope whose members
//! ([`Scope::spawn`]) may borrow the caller's data, because it returns only
//! once every member is done, on every path; a failing member cancels the
//! rest and fails the scope. [`both`], [`all`] and [`race`] are built on it.
//!
//! ```
//! let mut totals = [0u64; 3];
//! let rows = [vec![1, 2], vec![3], vec![4, 5, 6]];
//! fuseau::block_on(|| {
//!     fuseau::scope(|s| {
//!         for (row, total) in rows.iter().zip(totals.iter_mut()) {
//!             s.spawn(move || {
//!                 *total = row.iter().sum();
//!                 Ok(())
//!             });
//!         }
//!         Ok(())
//!     })
//! })?;
//! assert_eq!(totals, [3, 3, 15]);
//! # Ok::<(), fuseau::Error>(())
//! ```
//!
//! ## Cancellation
//!
//! Cancellation is cooperative (the [`guide`] lists every cancellation
//! point and what each does). It is delivered at *suspension points*:
//! every call that can wait ([`Fiber::join`], [`yield_now`], [`sleep`],
//! channel operations, I/O …) is one, and says so in its docs under
//! "Cancellation". A suspended fiber is woken at once when it is cancelled;
//! the suspension point returns `Err` with kind
//! [`Cancelled`](ErrorKind::Cancelled) (or [`Timeout`](ErrorKind::Timeout)
//! for [`cancel_after`]), which `?` passes up. Cancellation is sticky: every
//! later suspension point fails too. Code between suspension points runs
//! undisturbed, and nothing is unwound behind the user's back. Cleanup that
//! must wait (flush a buffer, say goodbye to a peer) runs in a [`shield`],
//! which holds the cancellation back until it returns ([`shield_for`]
//! bounds it in time). To bound a piece of work in time without
//! cancelling the fiber, run it in [`with_timeout`] or [`with_deadline`]:
//! only the body (and the fibers it spawned) is cut short, with `Timeout`.
//!
//! ## Waiting for the first of several things
//!
//! [`select!`] waits for the first of several channel operations or events,
//! with no allocation; each branch sees its own operation's result.
//!
//! ```
//! use std::time::Duration;
//!
//! fuseau::block_on(|| {
//!     let jobs = fuseau::Chan::<u32>::new();
//!     let outcome = fuseau::select! {
//!         recv(jobs) -> job => format!("job {}", job?),
//!         ev(fuseau::ev_timeout(Duration::from_millis(1))) -> t => {
//!             assert!(t.unwrap_err().is_timeout());
//!             "idle".to_string()
//!         }
//!     };
//!     assert_eq!(outcome, "idle");
//!     Ok(())
//! })?;
//! # Ok::<(), fuseau::Error>(())
//! ```
//!
//! [`select`](crate::select()) does the same for a set of branches built at run time.
//!
//! ## Sharing state between fibers
//!
//! [`sync`] has a fiber's [`Mutex`](sync::Mutex), [`RwLock`](sync::RwLock),
//! [`Semaphore`](sync::Semaphore), [`Notify`](sync::Notify),
//! [`Barrier`](sync::Barrier) and [`OnceCell`](sync::OnceCell) for the
//! fibers of one scheduler: waiting on them suspends the fiber, not the
//! thread; waiters are served in FIFO order, and a cancelled waiter takes
//! nothing with it.
//!
//! ## Scheduling
//!
//! Fibers of a scheduler run on its thread, one at a time, in FIFO order:
//! [`spawn`] queues the new fiber and the caller keeps running until it
//! suspends; a woken fiber is queued, never switched to directly. So a
//! program's interleaving is deterministic. Fibers never move to another
//! thread (the handles are `!Send`); [`SchedulerHandle`] and
//! [`Wakeup::to_waker`] reach a scheduler from other threads, and a
//! [`SharedChan`] carries values between fibers of different threads (and
//! plain threads, which block on it where fibers suspend).
//!
//! ## Panics and teardown
//!
//! A panic in a fiber is caught at the fiber's boundary and becomes its
//! [`ErrorKind::Panicked`] error, with the message and (with
//! `RUST_BACKTRACE=1`) the backtrace of the panic. When a scheduler is
//! disposed of, every fiber is cancelled and every suspended stack is
//! unwound, so destructors run.
//!
//! ## Stacks
//!
//! Each fiber gets a stack from a per-scheduler pool when it first runs
//! ([`Config::stack_size`], [`Builder::stack_size`]); a guard page below each
//! stack turns an overflow into a fault instead of memory corruption. An
//! overflow aborts the process with a message naming the fiber, its id and
//! its stack size, and how to choose a bigger stack (as Rust does for a
//! thread's stack). Deep recursion needs a bigger stack.
//!
//! Stacks are slots of a few large shared mappings. On Linux 6.13 and later
//! each guard page is a guard marker (`MADV_GUARD_INSTALL`), which costs no
//! mapping, so the number of live fibers is limited by memory, not by
//! `vm.max_map_count`; older kernels get an `mprotect`ed page per stack (two
//! mappings each; the environment variable `FUSEAU_STACK_GUARD=mprotect`
//! forces this fallback). A suspended fiber costs the stack pages it touched
//! (one 4 KiB page for most) and its record.
//!
//! ## Fairness
//!
//! A fiber runs until it waits. One whose suspension points never have to
//! wait (an always-ready channel, ready futures) yields anyway after 128 of
//! them in a row, so that timers, I/O, other fibers and other threads get
//! their turn; see the [guide].
//!
//! ## Inside
//!
//! The modules form layers, each using only those below it, so the source
//! reads from the bottom up: errors, stacks and the context switch; a
//! scheduler's inbox and the fiber record (`task`: one state word, every
//! transition in one file, the scheduler reached through one trait); the
//! scheduler (the running fiber known from the switch itself, the run loop,
//! teardown); then what fibers use (handles, events, channels, time,
//! fiber-local storage); then [`block_on`]. The module headers state the
//! ownership rules and the invariants that the few `unsafe` blocks rely on.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, unreachable_pub, clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

// The layers, from the bottom (each module imports only from the layers
// below it; `../shared/tools/module-cycles` checks it):
// L0: errors, ids, the stack pool, the context switch, prefetch hints,
//     timers, the event loop trait, cross-thread primitives (and the claim
//     word built on them).
mod claim;
mod erase;
mod error;
mod event_loop;
mod id;
mod overflow;
mod prefetch;
mod stack;
mod std_sync;
mod switch;
mod timer;
// L1: a scheduler's inbox (what other threads touch); the fiber record.
mod inbox;
mod task;
// L2: the scheduler (context, run queue, timers, teardown).
mod scheduler;
// L3: what fibers use: handles, cancellation, events and select, channels,
//     time, fiber-local storage, remote fibers, pools, sync primitives,
//     shields and deadline scopes, fiber scopes and the combinators on
//     them.
mod cancel;
mod chan;
mod combinators;
mod event;
mod fiber;
pub mod guide;
mod local;
#[cfg(all(test, loom))]
mod loom_tests;
mod pool;
mod remote;
mod scope;
mod shared_chan;
mod shield;
pub mod sync;
pub mod time;
// L4: running a scheduler on a plain thread; tests that use every layer.
mod block_on;
#[cfg(test)]
mod wakeup_tests;

pub use block_on::{block_on, block_on_with};
pub use cancel::{with_cancel_callback, CancelHandle};
pub use chan::{Chan, RecvEvent, SendEvent, TryRecvError, TrySendError};
pub use combinators::{all, all_limited, both, race};
pub use error::{Error, ErrorKind, Result};
pub use event::{
    await_event, ev_future, ev_future_pinned, select, Event, FutureEvent, PinnedFutureEvent, When,
};
pub use event_loop::{EventLoop, Unpark};
pub use fiber::{in_fiber, spawn, spawn_as_child_of, AnyFiber, AsFiber, Builder, Fiber};
pub use id::FiberId;
pub use local::FiberLocal;
pub use pool::{BufPool, ResourcePool};
pub use remote::{spawn_from_anywhere, RemoteFiber};
pub use scheduler::{
    checkpoint, schedule_micro_task, yield_now, Config, Iteration, Scheduler, SchedulerHandle,
};
pub use scope::{scope, Scope, ScopedFiber};
pub use shared_chan::{SharedChan, SharedRecvEvent, SharedSendEvent};
pub use shield::{shield, shield_for, with_deadline, with_timeout};
pub use task::Wakeup;
pub use time::{cancel_after, ev_deadline, ev_timeout, sleep, TimeoutEvent};

/// What the [`select!`] macro expands to, and hooks for fuseau's own
/// tests; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::event::{select_index, DynBranch, SelectBranch};

    /// For `fuseau_tokio::main`: a runner's body with the lifetime of its
    /// borrows erased. Its safety contract is the `erase` module's.
    pub use crate::erase::body as erase_body;

    /// For `fuseau_tokio`'s driver: the guard that disposes of a runner's
    /// scheduler, which `erase_body`'s contract relies on.
    pub use crate::block_on::DisposeOnDrop;

    /// How this process makes stack guard pages: `"MADV_GUARD_INSTALL"` or
    /// `"mprotect"`.
    pub fn stack_guard_kind() -> &'static str {
        crate::stack::guard_kind()
    }
}
