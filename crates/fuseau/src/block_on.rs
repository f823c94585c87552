//! [`block_on`]: run fibers on a plain thread, with no async runtime.

use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::Instant;

use crate::erase;
use crate::error::Result;
use crate::event_loop::{EventLoop, Unpark};
use crate::fiber::Builder;
use crate::scheduler::{Config, Iteration, Scheduler};

/// The event loop of [`block_on`]: the system clock, and thread parking.
struct ThreadLoop {
    thread: Thread,
}

impl EventLoop for ThreadLoop {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        Arc::new(self.thread.clone())
    }
}

/// Runs `f` as the main fiber of a new scheduler on this thread, with no
/// async runtime: timers are served by parking the thread. Returns when the
/// main fiber and all its descendants are done, with the main fiber's
/// result; then the scheduler is disposed of (other fibers, spawned from
/// other threads, are cancelled and unwound).
///
/// `f` may borrow from the caller (it need not be `'static`): `block_on`
/// returns, or unwinds, only after its scheduler is disposed of, and so
/// after every fiber has finished or been unwound; nothing that `f`
/// borrows can reach a fiber that outlives it (`spawn` takes `'static`
/// closures). The argument is in the `erase` module of the source.
///
/// For programs that need sockets or Tokio, use `fuseau_tokio::main`.
///
/// # Errors
///
/// The main fiber's error.
///
/// # Examples
///
/// ```
/// let sum = fuseau::block_on(|| {
///     let fibers: Vec<_> = (1..=10).map(|i| fuseau::spawn(move || Ok(i))).collect();
///     fibers.into_iter().map(|f| f.join()).sum::<fuseau::Result<u64>>()
/// })?;
/// assert_eq!(sum, 55);
///
/// // The body may borrow from the caller, mutably too.
/// let mut log = Vec::new();
/// fuseau::block_on(|| {
///     log.push("in a fiber");
///     fuseau::yield_now()?;
///     log.push("after a yield");
///     Ok(())
/// })?;
/// assert_eq!(log, ["in a fiber", "after a yield"]);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn block_on<T: 'static>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    block_on_with(Config::default(), f)
}

/// [`block_on`] with a [`Config`].
///
/// # Errors
///
/// The main fiber's error.
pub fn block_on_with<T: 'static>(config: Config, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let sched = DisposeOnDrop(Scheduler::new(
        ThreadLoop {
            thread: thread::current(),
        },
        config,
    ));
    let sched = &sched.0;
    // SAFETY: `sched` is disposed of before this function returns or
    // unwinds (`DisposeOnDrop`), and the body is either spawned on it or
    // dropped by the failed spawn, before `f`'s borrows end (see `erase`).
    let f = unsafe { erase::body(f) };
    let main = Builder::new().name("main").spawn_on(sched, f)?;
    loop {
        let iteration = sched.run_iteration();
        if main.is_done() {
            break;
        }
        if let Iteration::Idle { deadline } = iteration {
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if deadline > now {
                        thread::park_timeout(deadline - now);
                    }
                }
                None => thread::park(),
            }
        }
    }
    sched.dispose();
    main.join()
}

/// Disposes of the scheduler when dropped: when a runner (`block_on`, and
/// the bridge's driver) returns or unwinds, the guarantee `erase::body`
/// relies on.
///
/// Dropping the last [`Scheduler`] disposes of it too, but a fiber (or the
/// user) may hold a clone: a fiber's stack then keeps the scheduler alive,
/// which keeps the fiber alive, and nothing would ever be unwound.
pub struct DisposeOnDrop(pub Scheduler);

impl Drop for DisposeOnDrop {
    fn drop(&mut self) {
        self.0.dispose();
    }
}
