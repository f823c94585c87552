//! A scheduler's inbox: the one part of a scheduler that other threads touch.
//!
//! # Ownership rules
//!
//! 1. Other threads reach a scheduler only through its [`Inbox`], shared by
//!    `Arc`: they push messages to a lock-free queue, then unpark its event
//!    loop. The scheduler drains the inbox in every iteration, after every
//!    wait, so a message pushed before an unpark is never missed. (A waker
//!    woken on the scheduler's own thread skips the inbox and queues the
//!    fiber directly: `task::waker`.)
//! 2. A message that names a fiber identifies it by slab key *and* id, so one
//!    for a fiber that is gone, or whose slot was reused, does nothing.
//! 3. Spawns and cancels are pushed under the `gate` lock, and only while it
//!    says the scheduler is active; disposal closes the gate, then drains the
//!    inbox for the last time. So no spawn is left in the inbox unseen: it
//!    either runs, or is dropped, and dropping a spawn completes its
//!    `RemoteFiber` with `Inactive` (see `remote.rs`). Wake-ups skip the gate
//!    (they are frequent, and one that is lost after disposal changes
//!    nothing); a sender that sees the scheduler inactive drops what is left
//!    in the inbox.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::event_loop::Unpark;
use crate::id::FiberId;
use crate::std_sync::{lock, AtomicBool, Mutex, Ordering, Queue};

/// The part of a scheduler that other threads may touch.
pub(crate) struct Inbox {
    queue: Queue<Message>,
    unpark: Arc<dyn Unpark>,
    /// `true` while spawns and cancels are accepted (rule 3).
    gate: Mutex<bool>,
    /// A lock-free copy of `gate`, for wake-ups and `is_active`.
    active: AtomicBool,
    /// The scheduler's thread (see [`thread_token`]).
    thread: usize,
    /// How many fibers the scheduler had alive at the end of its last
    /// iteration: a figure for other threads that place work
    /// (`SchedulerHandle::n_fibers`), not part of any protocol, so a plain
    /// `std` atomic, stored and loaded `Relaxed`.
    n_fibers: AtomicUsize,
}

pub(crate) enum Message {
    /// Wake the fiber at this slab key, if it still has this id and waits
    /// on this epoch.
    Wake { key: usize, id: FiberId, epoch: u64 },
    /// Cancel the fiber at this slab key, if it still has this id.
    Cancel { key: usize, id: FiberId },
    /// Run this on the scheduler's thread (remote spawns).
    Run(Box<dyn FnOnce() + Send>),
}

/// A number that tells threads apart, cheaper to get than
/// `thread::current().id()`: the address of a thread-local, unique among
/// live threads. (A thread that ended may leave its number to a new one;
/// a scheduler is disposed of before its thread ends, which makes its
/// inbox inactive, so that reuse cannot confuse it.)
pub(crate) fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

impl Inbox {
    /// The inbox of a scheduler on the current thread.
    pub(crate) fn new(unpark: Arc<dyn Unpark>) -> Inbox {
        Inbox {
            queue: Queue::new(),
            unpark,
            gate: Mutex::new(true),
            active: AtomicBool::new(true),
            thread: thread_token(),
            n_fibers: AtomicUsize::new(0),
        }
    }

    /// Publishes the scheduler's number of live fibers, on its thread.
    pub(crate) fn set_n_fibers(&self, n: usize) {
        self.n_fibers.store(n, Ordering::Relaxed);
    }

    /// The number last published by [`set_n_fibers`](Inbox::set_n_fibers).
    pub(crate) fn n_fibers(&self) -> usize {
        self.n_fibers.load(Ordering::Relaxed)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// `true` on the scheduler's own thread.
    pub(crate) fn is_scheduler_thread(&self) -> bool {
        thread_token() == self.thread
    }

    /// Asks the scheduler to wake a fiber's wait; from any thread.
    pub(crate) fn wake(&self, key: usize, id: FiberId, epoch: u64) {
        self.queue.push(Message::Wake { key, id, epoch });
        if self.is_active() {
            self.unpark.unpark();
        } else {
            self.discard();
        }
    }

    /// Sends a spawn or a cancel (rule 3). If the scheduler is inactive the
    /// message comes back, for the caller to drop.
    pub(crate) fn send(&self, message: Message) -> std::result::Result<(), Message> {
        let gate = lock(&self.gate);
        if !*gate {
            return Err(message);
        }
        self.queue.push(message);
        drop(gate);
        self.unpark.unpark();
        Ok(())
    }

    /// `true` if a message waits (a hint: a push may be under way).
    pub(crate) fn has_messages(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next message, on the scheduler's thread.
    pub(crate) fn pop(&self) -> Option<Message> {
        if self.queue.is_empty() {
            return None;
        }
        self.queue.pop()
    }

    /// Refuses spawns and cancels from now on (disposal).
    pub(crate) fn close(&self) {
        *lock(&self.gate) = false;
        self.active.store(false, Ordering::Release);
    }

    /// Drops every queued message (after `close`).
    pub(crate) fn discard(&self) {
        while let Some(message) = self.queue.pop() {
            drop(message);
        }
    }

    pub(crate) fn unpark(&self) {
        self.unpark.unpark();
    }
}
