//! The event loop a scheduler runs on.
//!
//! An [`EventLoop`] provides the clock and a thread-safe way to interrupt
//! its wait. Its driver calls [`Scheduler::run_iteration`](crate::Scheduler::run_iteration) in a loop:
//! after [`Iteration::Busy`](crate::Iteration::Busy) it polls its I/O without blocking, after
//! [`Iteration::Idle`](crate::Iteration::Idle) it waits for I/O, an unpark, or the deadline.
//! `fuseau_tokio` is the driver for Tokio; [`block_on`](crate::block_on) is
//! the one for plain threads.

use std::sync::Arc;
use std::thread::Thread;
use std::time::Instant;

/// What a scheduler needs from the event loop that drives it.
pub trait EventLoop {
    /// The loop's clock: timers and deadlines are measured against it.
    fn now(&self) -> Instant;

    /// A handle whose [`unpark`](Unpark::unpark) interrupts the loop's wait,
    /// from any thread, so that it calls
    /// [`run_iteration`](crate::Scheduler::run_iteration) again. An unpark that
    /// happens before the wait must make the wait return at once.
    fn unparker(&self) -> Arc<dyn Unpark>;
}

/// Interrupts an event loop's wait; see [`EventLoop::unparker`].
pub trait Unpark: Send + Sync + 'static {
    /// Makes the loop's current or next wait return.
    fn unpark(&self);
}

impl Unpark for Thread {
    fn unpark(&self) {
        Thread::unpark(self);
    }
}
