//! The primitives shared between threads, swapped for loom's when the crate
//! is model-checked (`RUSTFLAGS="--cfg loom"`), so that loom explores every
//! interleaving of the code that uses them.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicUsize, Ordering},
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

/// A channel's buffer, shared by threads: crossbeam's lock-free
/// `ArrayQueue` (bounded, its room allocated up front) or `SegQueue`
/// (unbounded), nothing for a rendezvous (capacity 0). A capacity whose
/// room would take more than 1 MiB (`Buffer::MAX_PREALLOCATED`) keeps its
/// values in a mutex-protected `VecDeque` that grows as needed (room for
/// `usize::MAX` values cannot be allocated up front, and a large room
/// mostly unused is memory wasted), and so does every buffer under loom,
/// where it
/// stands for the lock-free queues: they are proven; loom checks the
/// protocol [`SharedChan`](crate::SharedChan) builds on them.
///
/// Every operation is linearizable; the callers order their own atomics
/// around them with `SeqCst` fences.
pub(crate) struct Buffer<T> {
    kind: BufferKind<T>,
}

enum BufferKind<T> {
    Rendezvous,
    #[cfg(not(loom))]
    Bounded(crossbeam_queue::ArrayQueue<T>),
    #[cfg(not(loom))]
    Unbounded(crossbeam_queue::SegQueue<T>),
    Locked {
        queue: Mutex<std::collections::VecDeque<T>>,
        capacity: usize,
    },
}

impl<T> Buffer<T> {
    /// The most bytes of room allocated up front: 1 MiB (65 536 slots of
    /// a `u64`, whose slot is the value and a stamp word).
    #[cfg(not(loom))]
    pub(crate) const MAX_PREALLOCATED: usize = 1 << 20;

    /// `true` if room for `capacity` values is allocated up front.
    #[cfg(not(loom))]
    fn preallocated(capacity: usize) -> bool {
        let slot = std::mem::size_of::<T>() + std::mem::size_of::<usize>();
        capacity
            .checked_mul(slot)
            .is_some_and(|bytes| bytes <= Self::MAX_PREALLOCATED)
    }

    /// A buffer of `capacity` values; `None` for no limit.
    pub(crate) fn new(capacity: Option<usize>) -> Buffer<T> {
        let kind = match capacity {
            Some(0) => BufferKind::Rendezvous,
            #[cfg(not(loom))]
            Some(n) if Self::preallocated(n) => {
                BufferKind::Bounded(crossbeam_queue::ArrayQueue::new(n))
            }
            #[cfg(not(loom))]
            None => BufferKind::Unbounded(crossbeam_queue::SegQueue::new()),
            _ => BufferKind::Locked {
                queue: Mutex::new(std::collections::VecDeque::new()),
                capacity: capacity.unwrap_or(usize::MAX),
            },
        };
        Buffer { kind }
    }

    /// Appends `value`, or gives it back if the buffer is full.
    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        match &self.kind {
            BufferKind::Rendezvous => Err(value),
            #[cfg(not(loom))]
            BufferKind::Bounded(q) => q.push(value),
            #[cfg(not(loom))]
            BufferKind::Unbounded(q) => {
                q.push(value);
                Ok(())
            }
            BufferKind::Locked { queue, capacity } => {
                let mut q = lock(queue);
                if q.len() >= *capacity {
                    return Err(value);
                }
                q.push_back(value);
                Ok(())
            }
        }
    }

    pub(crate) fn pop(&self) -> Option<T> {
        match &self.kind {
            BufferKind::Rendezvous => None,
            #[cfg(not(loom))]
            BufferKind::Bounded(q) => q.pop(),
            #[cfg(not(loom))]
            BufferKind::Unbounded(q) => q.pop(),
            BufferKind::Locked { queue, .. } => lock(queue).pop_front(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.kind {
            BufferKind::Rendezvous => 0,
            #[cfg(not(loom))]
            BufferKind::Bounded(q) => q.len(),
            #[cfg(not(loom))]
            BufferKind::Unbounded(q) => q.len(),
            BufferKind::Locked { queue, .. } => lock(queue).len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` if a push would fail now (always, for a rendezvous).
    pub(crate) fn is_full(&self) -> bool {
        match &self.kind {
            BufferKind::Rendezvous => true,
            #[cfg(not(loom))]
            BufferKind::Bounded(q) => q.is_full(),
            #[cfg(not(loom))]
            BufferKind::Unbounded(_) => false,
            BufferKind::Locked { queue, capacity } => lock(queue).len() >= *capacity,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn lock_free<T>(buffer: &Buffer<T>) -> bool {
        matches!(
            buffer.kind,
            BufferKind::Bounded(_) | BufferKind::Unbounded(_)
        )
    }

    #[test]
    fn room_up_to_a_mebibyte_is_allocated_up_front() {
        assert!(lock_free(&Buffer::<u64>::new(Some(1))));
        assert!(
            lock_free(&Buffer::<u64>::new(Some(1 << 16))),
            "16 bytes a slot"
        );
        assert!(!lock_free(&Buffer::<u64>::new(Some((1 << 16) + 1))));
        assert!(!lock_free(&Buffer::<u64>::new(Some(usize::MAX))));
        assert!(lock_free(&Buffer::<[u8; 4088]>::new(Some(256))));
        assert!(!lock_free(&Buffer::<[u8; 4088]>::new(Some(257))));
        assert!(lock_free(&Buffer::<u64>::new(None)), "unbounded");
        assert!(matches!(
            Buffer::<u64>::new(Some(0)).kind,
            BufferKind::Rendezvous
        ));
    }

    #[test]
    fn every_kind_is_a_bounded_fifo() {
        for capacity in [Some(0), Some(2), Some(1 << 17), None] {
            let buffer = Buffer::new(capacity);
            let room = capacity.map_or(3, |c| c.min(3));
            for i in 0..room {
                assert_eq!(buffer.push(i), Ok(()), "{capacity:?}");
            }
            if capacity.is_some_and(|c| c <= 3) {
                assert!(buffer.is_full());
                assert_eq!(buffer.push(9), Err(9));
            }
            assert_eq!(buffer.len(), room);
            assert_eq!(buffer.is_empty(), room == 0);
            for i in 0..room {
                assert_eq!(buffer.pop(), Some(i));
            }
            assert_eq!(buffer.pop(), None);
        }
    }
}
