//! The FIFO queue of waiting fibers that every primitive of this module
//! uses, and the record of what was handed to them.
//!
//! # Handing over
//!
//! A primitive that gives something to a waiter (a permit, a notification,
//! a turn to initialise) first [claims](Wakeup::claim) the waiter's wait:
//! only one branch of a wait can be claimed, so what is handed over is
//! reported by that branch and by no other. On success the waiter leaves the
//! queue and its id goes to the *handed* list, where its event finds it when
//! it polls. An event dropped while its id is still in that list (never
//! polled after it was handed something) gives it back to the primitive, so
//! nothing handed over is lost. A waiter that cannot be claimed (its wait
//! ended, or another branch won) is dropped from the queue and gets nothing.
//!
//! Every primitive keeps its state in an `Rc<RefCell<_>>`, so that a
//! registration's [`CancelHandle`] removes its waiter through a `Weak` with
//! no allocation (as `Chan` does).

use std::collections::VecDeque;

use crate::cancel::{CancelHandle, Unregister};
use crate::task::Wakeup;

/// A fiber waiting in a queue, with what it asks for.
pub(super) struct Waiter<R> {
    pub(super) id: u64,
    pub(super) wakeup: Wakeup,
    pub(super) request: R,
}

/// Waiting fibers in FIFO order, and those handed what they waited for.
pub(super) struct Waiters<R> {
    queue: VecDeque<Waiter<R>>,
    next_id: u64,
    /// Ids of waiters that were handed something, with what they were
    /// handed, until their events poll it out (or give it back on drop).
    handed: Vec<(u64, R)>,
}

impl<R> Waiters<R> {
    pub(super) const fn new() -> Waiters<R> {
        Waiters {
            queue: VecDeque::new(),
            next_id: 0,
            handed: Vec::new(),
        }
    }

    /// Queues a waiter at the back; returns its id.
    pub(super) fn push(&mut self, wakeup: Wakeup, request: R) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.queue.capacity() == 0 {
            // Most primitives have few waiters at a time: room for one
            // first, not the four a `VecDeque` would allocate.
            self.queue.reserve_exact(1);
        }
        self.queue.push_back(Waiter {
            id,
            wakeup,
            request,
        });
        id
    }

    /// Removes waiter `id`; `true` if it was still queued.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        match self.queue.iter().position(|w| w.id == id) {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }

    pub(super) fn front(&self) -> Option<&Waiter<R>> {
        self.queue.front()
    }

    pub(super) fn pop_front(&mut self) -> Option<Waiter<R>> {
        self.queue.pop_front()
    }

    /// Takes every queued waiter, in order.
    pub(super) fn take_all(&mut self) -> VecDeque<Waiter<R>> {
        std::mem::take(&mut self.queue)
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Claims the first waiter that can be claimed, dropping those that
    /// cannot, and records `what` as handed to it; returns its id, or
    /// `None` (with `what` dropped) if no waiter could be claimed.
    pub(super) fn hand_to_first(&mut self, what: R) -> Option<u64> {
        while let Some(waiter) = self.queue.pop_front() {
            if waiter.wakeup.claim() {
                self.handed.push((waiter.id, what));
                return Some(waiter.id);
            }
        }
        None
    }

    /// Records `what` as handed to waiter `id` (claimed and dequeued by the
    /// caller).
    pub(super) fn hand(&mut self, id: u64, what: R) {
        self.handed.push((id, what));
    }

    /// What was handed to waiter `id`, if anything (taken out of the list).
    pub(super) fn take_handed(&mut self, id: u64) -> Option<R> {
        let i = self.handed.iter().position(|(h, _)| *h == id)?;
        Some(self.handed.swap_remove(i).1)
    }
}

/// A handle that removes waiter `id` from the queue of `state` (which
/// implements [`Unregister`]), if the state still exists.
pub(super) fn unregister_handle<S: Unregister + 'static>(
    state: &std::rc::Rc<S>,
    id: u64,
) -> CancelHandle {
    let weak: std::rc::Weak<dyn Unregister> = std::rc::Rc::downgrade(state) as _;
    CancelHandle::unregister(weak, id)
}
