//! The primitives shared between threads, swapped for loom's when the crate
//! is model-checked (`RUSTFLAGS="--cfg loom"`), so that loom explores every
//! interleaving of the code that uses them.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};

/// Locks `mutex`, ignoring poisoning: every critical section in this crate
/// leaves its data consistent at each step (no user code runs under these
/// locks), so a panic elsewhere cannot leave it half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A multi-producer, single-consumer queue: crossbeam's lock-free
/// `SegQueue`, or a mutex-protected `VecDeque` under loom (crossbeam's
/// queue is proven; loom checks the protocol built on top of it).
pub(crate) struct Queue<T> {
    #[cfg(not(loom))]
    inner: crossbeam_queue::SegQueue<T>,
    #[cfg(loom)]
    inner: Mutex<std::collections::VecDeque<T>>,
}

impl<T> Queue<T> {
    pub(crate) fn new() -> Queue<T> {
        Queue {
            inner: Default::default(),
        }
    }

    pub(crate) fn push(&self, value: T) {
        #[cfg(not(loom))]
        self.inner.push(value);
        #[cfg(loom)]
        lock(&self.inner).push_back(value);
    }

    /// `true` if nothing is queued (a cheaper check than a `pop` that finds
    /// nothing). A push that races with it is seen by the next check.
    pub(crate) fn is_empty(&self) -> bool {
        #[cfg(not(loom))]
        return self.inner.is_empty();
        #[cfg(loom)]
        return lock(&self.inner).is_empty();
    }

    pub(crate) fn pop(&self) -> Option<T> {
        #[cfg(not(loom))]
        return self.inner.pop();
        #[cfg(loom)]
        return lock(&self.inner).pop_front();
    }
}
