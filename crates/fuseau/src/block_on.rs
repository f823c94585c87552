//! [`block_on`]: run fibers on a plain thread, with no async runtime.

use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::Instant;

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
/// # Ok::<(), fuseau::Error>(())
/// ```
pub fn block_on<T: 'static>(f: impl FnOnce() -> Result<T> + 'static) -> Result<T> {
    block_on_with(Config::default(), f)
}

/// [`block_on`] with a [`Config`].
///
/// # Errors
///
/// The main fiber's error.
pub fn block_on_with<T: 'static>(
    config: Config,
    f: impl FnOnce() -> Result<T> + 'static,
) -> Result<T> {
    let sched = Scheduler::new(
        ThreadLoop {
            thread: thread::current(),
        },
        config,
    );
    let main = Builder::new().name("main").spawn_on(&sched, f)?;
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
