//! Channels between threads: [`SharedChan`], for fibers of any schedulers
//! and plain threads.
//!
//! # Design
//!
//! Two paths, as in crossbeam-channel and Go's `hchan`:
//!
//! * **The fast path**, while nobody waits: values go through a lock-free
//!   [`Buffer`] (crossbeam's `ArrayQueue`, or `SegQueue` when unbounded)
//!   with no lock at all. Between a producer and a consumer on two cores
//!   that is what keeps the channel's cost at the buffer's, instead of a
//!   mutex's cache line moving between the cores on every operation.
//! * **The slow path**, Go's `hchan`: a mutex over the two FIFO queues of
//!   waiters ([`State`]). A waiting receiver is handed a value directly by
//!   the operation that makes one available; a waiting sender's value is
//!   taken directly by a receiver (or moved into the buffer when room frees
//!   up). A rendezvous channel (capacity 0) has no buffer and always takes
//!   this path.
//!
//! The fast path runs only while the *gate* is zero: the number of queued
//! waiters and of values parked beside the buffer (below), republished at
//! the end of every critical section. An operation that cannot complete at
//! once, or that finds the gate up, takes the lock.
//!
//! Handing over completes the waiter's wait, which may be one branch of a
//! `select` whose other branches other threads (or this one) may complete
//! too. So every waiter carries the [claim word](crate::claim) of its wait,
//! and handing over starts with a CAS of that word: only one branch of a
//! wait can be claimed, whatever thread claims it, and the fiber reads which
//! one when its wait ends. A waiter whose word cannot be claimed (its wait
//! ended, or another branch won) is skipped.
//!
//! # Races between the paths
//!
//! A fast operation checks the gate, then works on the buffer: it may be a
//! *straggler* that saw the gate down just before a waiter raised it. The
//! protocol makes stragglers harmless:
//!
//! 1. **No lost wake-up (Dekker's pattern).** A waiter raises the gate
//!    (publishes its entry), then a `SeqCst` fence, then checks again
//!    whether it must wait; a fast operation changes the buffer, then a
//!    `SeqCst` barrier, then reads the gate. So either the waiter sees the
//!    change (and does not wait), or the fast operation sees the gate up
//!    and *settles* the channel under the lock: hands buffered values to
//!    waiting receivers, moves waiting senders' values into free room.
//!    A receive's barrier is a fence. A send's is the `SeqCst`
//!    `fetch_sub` that ends it (rule 4), one barrier fewer: a registering
//!    receiver reads that word (`SeqCst`) before it looks at the buffer,
//!    so either it reads the `fetch_sub` or later (and, synchronized with
//!    it, sees the value pushed before it), or its read comes first in the
//!    single total order of `SeqCst` operations, after its own raising of
//!    the gate, which the send's read of the gate then sees.
//! 2. **A claim comes before the value it hands.** Settling claims a
//!    receiver first, then pops the value for it: a value popped is never
//!    left without an owner (a lock-free queue cannot take a value back at
//!    its front). If a straggler emptied the buffer in between, the
//!    receiver's claim is empty: it polls again and waits again, as after
//!    a spurious wake-up, and nothing was taken from anybody.
//! 3. **Overflow.** A waiting sender's value is claimed, then pushed into
//!    the room a receive freed; if a straggling send took that room first,
//!    the value goes to `overflow`, the logical tail of the buffer, which
//!    keeps the gate up until it drains into the buffer.
//! 4. **Close.** A fast send counts itself in flight, in the word that
//!    also holds the closed flag, from its check of the flag to the end of
//!    its push (one `fetch_add`, one `fetch_sub`: the word's modification
//!    order puts each send wholly before or after the close). A receiver
//!    reports `Closed` only when it reads the flag with nothing in flight,
//!    and then finds the buffer empty; a send in flight at the close
//!    settles once its value is in, which wakes the receivers. So no
//!    receiver sees `Closed` and then a value, and a send that returned
//!    `Ok` is received.
//!
//! Values are FIFO: per channel, through `head` (values put back by a
//! receive event dropped unpolled), the buffer, then `overflow`. Blocked
//! senders and receivers are served FIFO. Operations racing each other have
//! no order between them, as with any channel.
//!
//! # Ownership rules (the slow path)
//!
//! 1. Everything in [`State`] is read and written under its mutex only, and
//!    no user code runs under it: values are dropped, and waiters woken,
//!    after it is released ([`Locked`] wakes them when it unlocks).
//! 2. A waiter's entry is added by its owner (a fiber's event, or a blocked
//!    thread) and removed either by its owner (unregistration) or, for a
//!    receiver, by whoever finds its word not waiting any more, or by
//!    `close`; or by the claimer that claimed it, in the same critical
//!    section as the claim. So an entry that is not in its queue any more
//!    was claimed, or (receivers only) was dropped unclaimed, and its owner
//!    finds out from the claim word.
//! 3. A sender's value stays in its entry until the entry is removed: a
//!    claimer takes it, the owner takes it back. `close` leaves senders'
//!    entries in place (it wakes them, and they take their values back and
//!    fail with `Closed`), so a value never leaves an entry unclaimed.
//! 4. A value handed to a receiver goes, in the critical section of the
//!    claim, to `handed`, under the receiver's entry id; the receiver (its
//!    event's `poll`, or the blocked thread) takes it from there. An event
//!    dropped with a value still there puts it back at the front of the
//!    channel (`head`).
//! 5. Receivers wait only while the channel is empty, senders only while it
//!    is full (for a rendezvous: always, until a receiver comes). A fiber
//!    polls and registers in two steps, so its registration checks again,
//!    after raising the gate, whether it would have to wait: if not, it
//!    wakes itself instead of waiting (its wait then polls again).
//! 6. Fibers are woken through their `Waker` (the claim word holds it): on
//!    another thread it goes through the scheduler's inbox, and the fiber's
//!    record is never touched from another thread. A blocked plain thread
//!    waits on a mutex and condition variable of its own.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Wake, Waker};

use crossbeam_utils::CachePadded;

use crate::cancel::{CancelHandle, Unregister};
use crate::chan::{closed, send_outcome, TryRecvError, TrySendError};
use crate::claim::Claim;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::scheduler::context::in_fiber;
use crate::std_sync::{fence, lock, AtomicUsize, Buffer, Condvar, Mutex, MutexGuard, Ordering};
use crate::task::{scheduler_on_this_thread, Wakeup};
/// A channel between fibers of any schedulers (and threads), as in Go.
///
/// [`Chan`](crate::Chan)'s methods and events, with the same semantics,
/// for fibers on different threads and for plain threads: `SharedChan` is
/// `Send + Sync` (for `T: Send`), and cloning it is cheap (another handle to
/// the same channel, for another thread). `SharedChan::new()` is unbounded;
/// `SharedChan::bounded(n)` holds at most `n` values, and
/// `SharedChan::bounded(0)` is a rendezvous: a send completes only when a
/// receiver takes the value. Blocked senders and blocked receivers are
/// served in FIFO order, whatever thread they are on.
///
/// In a fiber, a blocking [`send`](SharedChan::send) or
/// [`recv`](SharedChan::recv) suspends the fiber (never its thread), and
/// [`ev_send`](SharedChan::ev_send) and [`ev_recv`](SharedChan::ev_recv)
/// mix freely with other events in [`select`](crate::select()) and
/// [`select!`](crate::select!). Outside a fiber, `send` and `recv` block the
/// calling thread until they can complete (where [`Chan`](crate::Chan)
/// returns [`ErrorKind::NotInFiber`]), and are woken by fibers of any
/// scheduler and by other threads; on a thread that runs a scheduler they
/// refuse to block outside its fibers (they would stall them) and return
/// an [`ErrorKind::Other`] error instead.
///
/// While nobody waits, a send or a receive is one operation on a lock-free
/// queue (crossbeam's); an operation that must wait, or that finds someone
/// waiting, takes a mutex, and a cross-thread wake-up is a message through
/// the scheduler's inbox. Between fibers of one thread, prefer
/// [`Chan`](crate::Chan), which needs no atomics.
///
/// # Examples
///
/// Fibers on two threads, each running its own scheduler:
///
/// ```
/// use fuseau::SharedChan;
///
/// let chan = SharedChan::bounded(4);
/// let tx = chan.clone();
/// let producer = std::thread::spawn(move || {
///     fuseau::block_on(move || {
///         for i in 1..=100u64 {
///             tx.send(i)?; // suspends this fiber while the channel is full
///         }
///         tx.close();
///         Ok(())
///     })
/// });
/// let sum = fuseau::block_on(move || {
///     let mut sum = 0;
///     loop {
///         match chan.recv() {
///             Ok(v) => sum += v,
///             Err(e) if e.is_closed() => return Ok(sum), // closed and drained
///             Err(e) => return Err(e),
///         }
///     }
/// })?;
/// producer.join().unwrap()?;
/// assert_eq!(sum, 5050);
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// A plain thread blocks where a fiber suspends:
///
/// ```
/// let requests = fuseau::SharedChan::<u32>::new();
/// let replies = fuseau::SharedChan::bounded(0);
/// let (rq, rp) = (requests.clone(), replies.clone());
/// let server = std::thread::spawn(move || {
///     fuseau::block_on(move || {
///         while let Ok(n) = rq.recv() {
///             rp.send(n * 2)?;
///         }
///         Ok(())
///     })
/// });
/// requests.send(21)?; // this thread is no fiber: it blocks if it must
/// assert_eq!(replies.recv()?, 42);
/// requests.close();
/// server.join().unwrap()?;
/// # Ok::<(), fuseau::Error>(())
/// ```
pub struct SharedChan<T> {
    inner: Arc<Inner<T>>,
}

/// A channel, shared by its handles.
struct Inner<T> {
    /// Queued waiters plus values in `head` and `overflow`: the fast paths
    /// run only while it is 0. Written under the lock only ([`Locked`]),
    /// read by anyone.
    gate: CachePadded<AtomicUsize>,
    /// [`CLOSED`], set once under the lock by `close`, plus [`IN_FLIGHT`]
    /// for each fast send between its check of the flag and the end of its
    /// push (close rule 4 of the module docs). One word, so that a send's
    /// check and a close are ordered by the word's modification order.
    sending: CachePadded<AtomicUsize>,
    /// `None` for no limit.
    capacity: Option<usize>,
    buffer: Buffer<T>,
    state: Mutex<State<T>>,
}

/// The flag of [`Inner::sending`].
const CLOSED: usize = 1;
/// One fast send in flight, in [`Inner::sending`].
const IN_FLIGHT: usize = 2;

/// The slow path's state (ownership rules in the module docs).
struct State<T> {
    receivers: VecDeque<Waiter<T>>,
    senders: VecDeque<Waiter<T>>,
    /// Values handed to claimed receivers, by entry id, until they take
    /// them (rule 4).
    handed: Vec<(u64, T)>,
    /// Values put back by receive events dropped unpolled: the front of the
    /// channel, before the buffer (they may exceed its capacity).
    head: VecDeque<T>,
    /// Values of claimed senders that found their room taken by a
    /// straggling send: the tail of the channel, after the buffer.
    overflow: VecDeque<T>,
    next_id: u64,
}

/// A waiter's entry in a queue: its wait's claim word and the branch to
/// claim it for; for a sender, the value it offers (rule 3).
struct Waiter<T> {
    id: u64,
    claim: Arc<Claim>,
    branch: u32,
    value: Option<T>,
}

impl<T> State<T> {
    fn new() -> State<T> {
        State {
            receivers: VecDeque::new(),
            senders: VecDeque::new(),
            handed: Vec::new(),
            head: VecDeque::new(),
            overflow: VecDeque::new(),
            next_id: 0,
        }
    }

    /// What keeps the fast paths shut.
    fn gate(&self) -> usize {
        self.receivers.len() + self.senders.len() + self.head.len() + self.overflow.len()
    }

    /// Queues a waiter (rule 2); its entry id.
    fn push_waiter(
        &mut self,
        receiving: bool,
        claim: Arc<Claim>,
        branch: u32,
        value: Option<T>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let queue = if receiving {
            &mut self.receivers
        } else {
            &mut self.senders
        };
        queue.push_back(Waiter {
            id,
            claim,
            branch,
            value,
        });
        id
    }

    /// Removes a waiter's entry, if it is still queued.
    fn remove_waiter(&mut self, receiving: bool, id: u64) -> Option<Waiter<T>> {
        let queue = if receiving {
            &mut self.receivers
        } else {
            &mut self.senders
        };
        let i = queue.iter().position(|w| w.id == id)?;
        queue.remove(i)
    }

    /// Takes the value handed to receiver entry `id`, if there is one.
    fn take_handed(&mut self, id: u64) -> Option<T> {
        let i = self.handed.iter().position(|(h, _)| *h == id)?;
        Some(self.handed.swap_remove(i).1)
    }

    /// Takes the value of the first waiting sender whose wait can be
    /// claimed, with its claim (to wake). Senders that cannot be claimed
    /// stay: their owners take their values back (rule 3).
    fn take_from_sender(&mut self) -> Option<(T, Arc<Claim>)> {
        let i = self
            .senders
            .iter()
            .position(|s| s.claim.try_claim(s.branch))?;
        let sender = self.senders.remove(i).expect("found above");
        let value = sender.value.expect("a queued sender holds its value");
        Some((value, sender.claim))
    }

    /// The first receiver whose wait can be claimed, claimed; receivers
    /// that cannot be claimed are dropped on the way (rule 2).
    fn claim_receiver(&mut self) -> Option<Waiter<T>> {
        while let Some(receiver) = self.receivers.pop_front() {
            if receiver.claim.try_claim(receiver.branch) {
                return Some(receiver);
            }
        }
        None
    }
}

/// The state under the lock, with the channel it belongs to. Dropping it
/// republishes the gate, unlocks, then wakes the waiters the critical
/// section completed (rule 1).
struct Locked<'a, T> {
    state: Option<MutexGuard<'a, State<T>>>,
    inner: &'a Inner<T>,
    woken: Vec<Arc<Claim>>,
}

impl<T> Deref for Locked<'_, T> {
    type Target = State<T>;

    fn deref(&self) -> &State<T> {
        self.state.as_ref().expect("locked until dropped")
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        self.state.as_mut().expect("locked until dropped")
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        self.publish();
        drop(self.state.take());
        for claim in self.woken.drain(..) {
            claim.wake();
        }
    }
}

impl<T> Locked<'_, T> {
    /// Republishes the gate (only when it changes: readers on other cores
    /// keep their copy of the line).
    fn publish(&self) {
        let gate = self.gate();
        if self.inner.gate.load(Ordering::Relaxed) != gate {
            self.inner.gate.store(gate, Ordering::SeqCst);
        }
    }

    fn closed(&self) -> bool {
        self.inner.closed()
    }

    /// Brings the channel back to its invariants after fast operations that
    /// raced the waiters (rules 1 to 4 of "Races between the paths"):
    /// `overflow` drains into the buffer; buffered values go to waiting
    /// receivers; waiting senders' values fill free room; once closed,
    /// receivers left waiting are woken (to see `Closed`).
    fn settle(&mut self) {
        let buffer = &self.inner.buffer;
        loop {
            let mut progress = false;
            while let Some(value) = self.overflow.pop_front() {
                if let Err(value) = buffer.push(value) {
                    self.overflow.push_front(value);
                    break;
                }
            }
            while !self.receivers.is_empty() && (!self.head.is_empty() || !buffer.is_empty()) {
                let Some(receiver) = self.claim_receiver() else {
                    break;
                };
                // Claimed first, then the value (rule 2): none, if a
                // straggler took the last one meanwhile.
                let value = self.head.pop_front().or_else(|| buffer.pop());
                if let Some(value) = value {
                    self.handed.push((receiver.id, value));
                }
                self.woken.push(receiver.claim);
                progress = true;
            }
            while !self.closed()
                && self.overflow.is_empty()
                && !buffer.is_full()
                && !self.senders.is_empty()
            {
                let Some((value, claim)) = self.take_from_sender() else {
                    break;
                };
                if let Err(value) = buffer.push(value) {
                    self.overflow.push_back(value); // rule 3
                }
                self.woken.push(claim);
                progress = true;
            }
            if !progress {
                break;
            }
        }
        if self.closed() {
            let receivers = std::mem::take(&mut self.receivers);
            self.woken.extend(receivers.into_iter().map(|r| r.claim));
        }
    }

    /// Sends without waiting (the slow path).
    fn try_send(&mut self, value: T) -> std::result::Result<(), TrySendError<T>> {
        self.settle();
        if self.closed() {
            return Err(TrySendError::Closed(value));
        }
        // Receivers wait only while the channel is empty: hand it over.
        if let Some(receiver) = self.claim_receiver() {
            self.handed.push((receiver.id, value));
            self.woken.push(receiver.claim);
            return Ok(());
        }
        // Settled, room means no sender waits before us (it would have
        // filled it): entries left queued are of waits that are over, which
        // their owners will take out. This must agree with `send_ready`, or
        // a sender would be told both "ready" and "full", and spin.
        if !self.overflow.is_empty() {
            return Err(TrySendError::Full(value));
        }
        self.inner.buffer.push(value).map_err(TrySendError::Full)
    }

    /// Receives without waiting (the slow path).
    fn try_recv(&mut self) -> std::result::Result<T, TryRecvError> {
        self.settle();
        let buffer = &self.inner.buffer;
        if let Some(value) = self
            .head
            .pop_front()
            .or_else(|| buffer.pop())
            .or_else(|| self.overflow.pop_front())
        {
            self.settle(); // room freed up: a waiting sender's value moves in
            return Ok(value);
        }
        let sending = self.inner.sending.load(Ordering::SeqCst);
        if sending & CLOSED == 0 {
            // A rendezvous: take it from a waiting sender.
            return match self.take_from_sender() {
                Some((value, claim)) => {
                    self.woken.push(claim);
                    Ok(value)
                }
                None => Err(TryRecvError::Empty),
            };
        }
        // Closed: drained only once no send is in flight (close rule 4),
        // and then the buffer must be looked at again.
        if sending != CLOSED {
            return Err(TryRecvError::Empty);
        }
        buffer.pop().ok_or(TryRecvError::Closed)
    }

    /// `true` if a receiver of the wait of `claim` need not wait (rule 5):
    /// a value is there, the channel is closed with no send in flight, or
    /// (open) a sender of another wait waits. Agrees with `try_recv`.
    fn recv_ready(&self, claim: &Arc<Claim>) -> bool {
        // `sending` first: the fast send's half of rule 1 is its
        // `fetch_sub` after the push.
        let sending = self.inner.sending.load(Ordering::SeqCst);
        !self.inner.buffer.is_empty()
            || !self.head.is_empty()
            || !self.overflow.is_empty()
            || sending == CLOSED
            || (sending & CLOSED == 0
                && self
                    .senders
                    .iter()
                    .any(|s| !Arc::ptr_eq(&s.claim, claim) && s.claim.is_waiting()))
    }

    /// `true` if a sender of the wait of `claim` need not wait (rule 5).
    /// Agrees with `try_send`.
    fn send_ready(&self, claim: &Arc<Claim>) -> bool {
        self.closed()
            || (self.overflow.is_empty() && !self.inner.buffer.is_full())
            || self
                .receivers
                .iter()
                .any(|r| !Arc::ptr_eq(&r.claim, claim) && r.claim.is_waiting())
    }

    /// Puts back a value that was handed to a receiver that never took it:
    /// to the next waiting receiver, else at the front of the channel.
    fn put_back(&mut self, value: T) {
        match self.claim_receiver() {
            Some(receiver) => {
                self.handed.push((receiver.id, value));
                self.woken.push(receiver.claim);
            }
            None => self.head.push_front(value),
        }
    }
}

impl<T> Inner<T> {
    fn closed(&self) -> bool {
        self.sending.load(Ordering::SeqCst) & CLOSED != 0
    }

    fn lock(&self) -> Locked<'_, T> {
        Locked {
            state: Some(lock(&self.state)),
            inner: self,
            woken: Vec::new(),
        }
    }

    /// The fast send: `Err` gives the value back for the slow path (the
    /// gate is up, the channel closed or full).
    fn send_fast(&self, value: T) -> std::result::Result<(), T> {
        if self.gate.load(Ordering::SeqCst) != 0 {
            return Err(value);
        }
        if self.sending.fetch_add(IN_FLIGHT, Ordering::SeqCst) & CLOSED != 0 {
            self.sending.fetch_sub(IN_FLIGHT, Ordering::SeqCst);
            return Err(value);
        }
        let pushed = self.buffer.push(value);
        // Also the barrier of rule 1: no fence needed after it.
        let sending = self.sending.fetch_sub(IN_FLIGHT, Ordering::SeqCst);
        if pushed.is_ok() {
            // A straggler (rule 1), or a send in flight at a close (rule 4).
            if self.gate.load(Ordering::SeqCst) != 0 || sending & CLOSED != 0 {
                self.lock().settle();
            }
        }
        pushed
    }

    /// The fast receive: `None` if the gate is up or the buffer empty.
    fn recv_fast(&self) -> Option<T> {
        if self.gate.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let value = self.buffer.pop()?;
        // A straggler: a sender may have queued for the room (rule 1).
        fence(Ordering::SeqCst);
        if self.gate.load(Ordering::SeqCst) != 0 {
            self.lock().settle();
        }
        Some(value)
    }

    fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        match self.send_fast(value) {
            Ok(()) => Ok(()),
            Err(value) => self.lock().try_send(value),
        }
    }

    fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        match self.recv_fast() {
            Some(value) => Ok(value),
            None => self.lock().try_recv(),
        }
    }
}

impl<T> Clone for SharedChan<T> {
    fn clone(&self) -> Self {
        SharedChan {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> Default for SharedChan<T> {
    fn default() -> Self {
        SharedChan::new()
    }
}

impl<T: Send + 'static> SharedChan<T> {
    /// An unbounded channel: `send` never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::new();
    /// for i in 0..1000 {
    ///     chan.send(i)?; // never waits, from a fiber or a thread
    /// }
    /// assert_eq!(chan.len(), 1000);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn new() -> SharedChan<T> {
        SharedChan::with_capacity(None)
    }

    /// A channel that holds at most `capacity` values; `send` waits while
    /// it is full. `bounded(0)` is a rendezvous channel: a send waits until
    /// a receiver takes the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau::{SharedChan, TrySendError};
    ///
    /// let chan = SharedChan::bounded(1);
    /// chan.try_send(1).unwrap();
    /// assert!(matches!(chan.try_send(2), Err(TrySendError::Full(2))));
    ///
    /// // A rendezvous: nobody waits to receive, so nothing can be sent now.
    /// let rendezvous = SharedChan::bounded(0);
    /// assert!(matches!(rendezvous.try_send(3), Err(TrySendError::Full(3))));
    /// ```
    pub fn bounded(capacity: usize) -> SharedChan<T> {
        SharedChan::with_capacity(Some(capacity))
    }

    fn with_capacity(capacity: Option<usize>) -> SharedChan<T> {
        SharedChan {
            inner: Arc::new(Inner {
                gate: CachePadded::new(AtomicUsize::new(0)),
                sending: CachePadded::new(AtomicUsize::new(0)),
                capacity,
                buffer: Buffer::new(capacity),
                state: Mutex::new(State::new()),
            }),
        }
    }

    /// Sends `value`, waiting while a bounded channel is full (for a
    /// rendezvous: until a receiver takes it). In a fiber, the fiber
    /// suspends; outside a fiber, the calling thread blocks. Thread-safe.
    ///
    /// # Cancellation
    ///
    /// In a fiber, a cancellation point. If the fiber is cancelled before
    /// or while waiting, the value is dropped, unsent, and the error
    /// returned; if a receiver (on any thread) took it first, the send
    /// succeeded and returns `Ok`. A blocked thread cannot be cancelled.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] if the channel is (or gets) closed before the
    /// value is taken; the fiber's cancellation; [`ErrorKind::Other`] if it
    /// would block, outside a fiber, a thread that runs a scheduler (its
    /// fibers would stall: call it from a fiber there).
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::bounded(0);
    /// let rx = chan.clone();
    /// let receiver = std::thread::spawn(move || rx.recv());
    /// chan.send("hello")?; // blocks this thread until the receiver takes it
    /// assert_eq!(receiver.join().unwrap()?, "hello");
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn send(&self, value: T) -> Result<()> {
        if in_fiber() {
            wait_for(SendOp::new(self, value), "SharedChan::send")
        } else {
            self.send_blocking(value)
        }
    }

    /// Receives a value, waiting until one is there. In a fiber, the fiber
    /// suspends; outside a fiber, the calling thread blocks. Thread-safe.
    ///
    /// # Cancellation
    ///
    /// In a fiber, a cancellation point. If the fiber is cancelled before
    /// or while waiting, no value is taken; if a sender (on any thread)
    /// handed over a value first, it is returned. A blocked thread cannot
    /// be cancelled.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] once the channel is closed *and* drained; the
    /// fiber's cancellation; [`ErrorKind::Other`] if it would block, outside
    /// a fiber, a thread that runs a scheduler.
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::new();
    /// let tx = chan.clone();
    /// std::thread::spawn(move || fuseau::block_on(move || tx.send(7)));
    /// assert_eq!(chan.recv()?, 7); // blocks this thread until it arrives
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T> {
        if in_fiber() {
            wait_for(RecvOp::new(self), "SharedChan::recv")
        } else {
            self.recv_blocking()
        }
    }

    /// Sends `value` if that needs no waiting: a receiver waits (on any
    /// thread), or the buffer has room. Never blocks; not a cancellation
    /// point. Thread-safe.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau::{SharedChan, TrySendError};
    ///
    /// let chan = SharedChan::bounded(1);
    /// assert_eq!(chan.try_send(1), Ok(()));
    /// assert_eq!(chan.try_send(2), Err(TrySendError::Full(2)));
    /// chan.close();
    /// assert_eq!(chan.try_send(3), Err(TrySendError::Closed(3)));
    /// ```
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        self.inner.try_send(value)
    }

    /// Receives a value if one is ready: buffered, or offered by a waiting
    /// sender (on any thread). Never blocks; not a cancellation point.
    /// Thread-safe.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Closed`] once the channel
    /// is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau::{SharedChan, TryRecvError};
    ///
    /// let chan = SharedChan::new();
    /// assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    /// chan.send(1)?;
    /// chan.close();
    /// assert_eq!(chan.try_recv(), Ok(1));
    /// assert_eq!(chan.try_recv(), Err(TryRecvError::Closed));
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        self.inner.try_recv()
    }

    /// Closes the channel: sends fail from now on; receivers get the values
    /// still buffered, then [`ErrorKind::Closed`]. Every blocked sender and
    /// receiver, on every thread, is woken (senders fail with `Closed`,
    /// their values dropped). Idempotent; never blocks. Thread-safe.
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::<u32>::new();
    /// let rx = chan.clone();
    /// let receiver = std::thread::spawn(move || rx.recv());
    /// chan.close(); // wakes the receiver if it is blocked already
    /// assert!(receiver.join().unwrap().unwrap_err().is_closed());
    /// assert!(chan.is_closed());
    /// ```
    pub fn close(&self) {
        let mut locked = self.inner.lock();
        if self.inner.sending.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED != 0 {
            return;
        }
        // Senders stay queued, holding their values (rule 3); woken, they
        // take them back.
        let senders: Vec<Arc<Claim>> = locked.senders.iter().map(|s| s.claim.clone()).collect();
        locked.woken.extend(senders);
        // Receivers are woken (after those handed what is buffered).
        locked.settle();
    }

    /// `true` once [`close`](SharedChan::close) was called. Thread-safe.
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::<()>::new();
    /// assert!(!chan.is_closed());
    /// chan.clone().close();
    /// assert!(chan.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closed()
    }

    /// How many values are buffered (not counting those of blocked senders
    /// of a full or rendezvous channel). Thread-safe; other threads may
    /// change it at any moment.
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::bounded(2);
    /// chan.try_send('a').unwrap();
    /// assert_eq!(chan.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        let locked = self.inner.lock();
        locked.head.len() + self.inner.buffer.len() + locked.overflow.len()
    }

    /// `true` if no value is buffered. Thread-safe.
    ///
    /// # Examples
    ///
    /// ```
    /// let chan = fuseau::SharedChan::<u8>::new();
    /// assert!(chan.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An event that sends `value`, for [`select`](crate::select()) and
    /// [`select!`](crate::select!) (in a fiber). Until the event completes,
    /// the value stays with the event: if another branch wins, it is
    /// dropped with the event, unsent.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau::{select, SharedChan, When};
    ///
    /// fuseau::block_on(|| {
    ///     let full = SharedChan::bounded(1);
    ///     full.send(0)?;
    ///     let roomy = SharedChan::bounded(1);
    ///     let which = select(vec![
    ///         When::new(full.ev_send(1), |()| "full"),
    ///         When::new(roomy.ev_send(2), |()| "roomy"),
    ///     ])?;
    ///     assert_eq!(which, "roomy");
    ///     assert_eq!((full.len(), roomy.try_recv()), (1, Ok(2)));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_send(&self, value: T) -> SharedSendEvent<T> {
        SharedSendEvent(SendOp::new(self.clone(), value))
    }

    /// An event that receives a value, for [`select`](crate::select()) and
    /// [`select!`](crate::select!) (in a fiber).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fuseau::{Chan, SharedChan};
    ///
    /// fuseau::block_on(|| {
    ///     let local = Chan::<u32>::new();
    ///     let shared = SharedChan::new();
    ///     let tx = shared.clone();
    ///     std::thread::spawn(move || tx.send(5));
    ///     let got = fuseau::select! {
    ///         recv(local) -> v => v?,
    ///         recv(shared) -> v => v? * 10,
    ///         ev(fuseau::ev_timeout(Duration::from_secs(60))) -> t => {
    ///             t?;
    ///             unreachable!("ev_timeout only fails")
    ///         }
    ///     };
    ///     assert_eq!(got, 50);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_recv(&self) -> SharedRecvEvent<T> {
        SharedRecvEvent(RecvOp::new(self.clone()))
    }

    /// `Err` if the calling thread must not block (it runs a scheduler).
    fn check_may_block(call: &str) -> Result<()> {
        if scheduler_on_this_thread() {
            return Err(Error::new(
                ErrorKind::Other,
                format!(
                    "{call}: blocking, outside a fiber, a thread that runs a scheduler would \
                     stall its fibers (call it from a fiber)"
                ),
            ));
        }
        Ok(())
    }

    /// `send` outside a fiber: blocks the thread.
    fn send_blocking(&self, mut value: T) -> Result<()> {
        let parker = Arc::new(Parker::new());
        let waker = Waker::from(parker.clone());
        loop {
            match self.inner.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => {
                    drop(v);
                    return Err(closed());
                }
                Err(TrySendError::Full(v)) => value = v,
            }
            if let Err(e) = Self::check_may_block("SharedChan::send") {
                drop(value);
                return Err(e);
            }
            let claim = Arc::new(Claim::new(waker.clone()));
            let id = match self.register(false, claim.clone(), 0, Some(value)) {
                Ok(id) => id,
                Err(v) => {
                    // Ready after all (rule 5): try again.
                    value = v.expect("a sender's value comes back");
                    continue;
                }
            };
            parker.park();
            if claim.end().is_some() {
                return Ok(()); // A receiver took the value.
            }
            // Woken by `close`: take the value back (rule 3) and try again.
            value = self
                .unregister(false, id)
                .expect("an unclaimed sender's value stays queued");
        }
    }

    /// `recv` outside a fiber: blocks the thread.
    fn recv_blocking(&self) -> Result<T> {
        let parker = Arc::new(Parker::new());
        let waker = Waker::from(parker.clone());
        loop {
            match self.inner.try_recv() {
                Ok(value) => return Ok(value),
                Err(TryRecvError::Closed) => return Err(closed()),
                Err(TryRecvError::Empty) => {}
            }
            Self::check_may_block("SharedChan::recv")?;
            let claim = Arc::new(Claim::new(waker.clone()));
            let Ok(id) = self.register(true, claim.clone(), 0, None) else {
                continue; // Ready after all (rule 5).
            };
            parker.park();
            if claim.end().is_some() {
                if let Some(value) = self.take_handed(id) {
                    return Ok(value);
                }
                // An empty claim: a straggler took the value ("Races
                // between the paths", rule 2). Try again.
            }
            // Or woken by `close`: try again.
            self.unregister(true, id);
        }
    }
}

/// The wait protocol of the events (and the loom models of it, which drive
/// it with no fiber: `loom_tests.rs`).
impl<T: Send + 'static> SharedChan<T> {
    /// Queues a waiter of the wait of `claim`, for branch `branch`, with
    /// the value it offers if it sends; its entry id. The value back if it
    /// need not wait after all (rule 5), or if the wait is over already.
    pub(crate) fn register(
        &self,
        receiving: bool,
        claim: Arc<Claim>,
        branch: u32,
        value: Option<T>,
    ) -> std::result::Result<u64, Option<T>> {
        let mut locked = self.inner.lock();
        locked.settle();
        if !claim.is_waiting() {
            return Err(value);
        }
        let id = locked.push_waiter(receiving, claim.clone(), branch, value);
        // The gate up before looking again ("Races between the paths",
        // rule 1): a fast operation after this point sees it.
        locked.publish();
        fence(Ordering::SeqCst);
        let ready = if receiving {
            locked.recv_ready(&claim)
        } else {
            locked.send_ready(&claim)
        };
        if ready {
            let entry = locked.remove_waiter(receiving, id).expect("queued above");
            return Err(entry.value);
        }
        Ok(id)
    }

    /// Removes a waiter's entry if it is still queued (its wait is over),
    /// and gives a sender's value back; `None` for a sender whose value a
    /// receiver took (rule 2).
    pub(crate) fn unregister(&self, receiving: bool, id: u64) -> Option<T> {
        let entry = self.inner.lock().remove_waiter(receiving, id);
        entry.and_then(|e| e.value)
    }

    /// The value handed to receiver entry `id`, if one was (rule 4).
    pub(crate) fn take_handed(&self, id: u64) -> Option<T> {
        self.inner.lock().take_handed(id)
    }
}

/// Where a blocked thread waits to be woken (rule 6): a flag under a mutex,
/// and a condition variable (`std::thread::park` would consume, or be
/// consumed by, unparks that are not ours).
struct Parker {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Parker {
    fn new() -> Parker {
        Parker {
            woken: Mutex::new(false),
            cond: Condvar::new(),
        }
    }

    /// Waits until woken, and consumes the wake-up.
    fn park(&self) {
        let mut woken = lock(&self.woken);
        while !*woken {
            woken = self.cond.wait(woken).unwrap_or_else(|e| e.into_inner());
        }
        *woken = false;
    }
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *lock(&self.woken) = true;
        self.cond.notify_one();
    }
}

impl<T> fmt::Debug for SharedChan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Blocked: entries whose waits may still be claimed (an entry stays
        // queued after its wait ended until its owner takes it out).
        let blocked =
            |queue: &VecDeque<Waiter<T>>| queue.iter().filter(|w| w.claim.is_waiting()).count();
        let (len, senders, receivers) = {
            let locked = self.inner.lock();
            let len = locked.head.len() + self.inner.buffer.len() + locked.overflow.len();
            (len, blocked(&locked.senders), blocked(&locked.receivers))
        };
        f.debug_struct("SharedChan")
            .field("len", &len)
            .field("capacity", &self.inner.capacity)
            .field("closed", &self.inner.closed())
            .field("blocked_senders", &senders)
            .field("blocked_receivers", &receivers)
            .finish()
    }
}

/// What undoes an event's registration (`CancelHandle::unregister`, with
/// the entry id as token): the channel, and where a sender's value comes
/// back. One per event, made at its first wait.
struct Registration<T> {
    chan: SharedChan<T>,
    receiving: bool,
    /// A sender's value, back from its entry.
    returned: Cell<Option<T>>,
}

impl<T: Send + 'static> Unregister for Registration<T> {
    fn unregister(&self, id: u64) {
        if let Some(value) = self.chan.unregister(self.receiving, id) {
            let before = self.returned.replace(Some(value));
            debug_assert!(before.is_none(), "one registration at a time");
            drop(before);
        }
    }
}

fn registration<T: Send + 'static>(
    slot: &mut Option<Rc<Registration<T>>>,
    chan: &SharedChan<T>,
    receiving: bool,
) -> Rc<Registration<T>> {
    slot.get_or_insert_with(|| {
        Rc::new(Registration {
            chan: chan.clone(),
            receiving,
            returned: Cell::new(None),
        })
    })
    .clone()
}

fn unregister_handle<T: Send + 'static>(
    registration: &Rc<Registration<T>>,
    id: u64,
) -> CancelHandle {
    let registry: Weak<dyn Unregister> = Rc::downgrade(registration) as Weak<Registration<T>>;
    CancelHandle::unregister(registry, id)
}

/// The event of [`SharedChan::ev_send`]: resolves to `Ok(())` once the
/// value is sent, or `Err(Closed)`. Thread-bound (`!Send`), as events are:
/// the fiber that waits for it makes it.
///
/// # Examples
///
/// ```
/// fuseau::block_on(|| {
///     let chan = fuseau::SharedChan::bounded(1);
///     let sent = fuseau::select! {
///         send(chan, 'x') -> r => r.is_ok(),
///     };
///     assert!(sent);
///     assert_eq!(chan.try_recv(), Ok('x'));
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// The event stays on its thread (the channel is what crosses threads):
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(fuseau::SharedChan::new().ev_send(1));
/// ```
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct SharedSendEvent<T: Send + 'static>(SendOp<SharedChan<T>, T>);

/// A send, on a channel it owns (the public event) or borrows (`send`,
/// which so touches no reference count: the count shares the channel's
/// cache line with its lock, which the other side's thread wants too).
struct SendOp<C: Borrow<SharedChan<T>>, T: Send + 'static> {
    chan: C,
    /// The value, while it is not queued.
    value: Option<T>,
    registration: Option<Rc<Registration<T>>>,
    /// The id of the last entry queued, until the event learns its fate.
    queued: Option<u64>,
}

impl<C: Borrow<SharedChan<T>>, T: Send + 'static> SendOp<C, T> {
    fn new(chan: C, value: T) -> Self {
        SendOp {
            chan,
            value: Some(value),
            registration: None,
            queued: None,
        }
    }

    /// The value to send, wherever it is; `None` if a receiver took it.
    fn take_value(&mut self) -> Option<T> {
        if let Some(value) = self.value.take() {
            return Some(value);
        }
        let id = self.queued.take()?;
        let registration = self.registration.as_ref()?;
        if let Some(value) = registration.returned.take() {
            return Some(value); // Unregistered: it came back.
        }
        // Still queued (an event driven by hand), or taken by a receiver.
        self.chan.borrow().unregister(false, id)
    }
}

impl<T: Send + 'static> Event for SharedSendEvent<T> {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        self.0.poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.0.wait(wakeup)
    }
}

impl<C: Borrow<SharedChan<T>>, T: Send + 'static> Event for SendOp<C, T> {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        let Some(value) = self.take_value() else {
            // A receiver claimed our wait and took the value.
            return Some(Ok(()));
        };
        send_outcome(self.chan.borrow().try_send(value), &mut self.value)
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let (claim, branch) = wakeup.shared_claim();
        let registration = registration(&mut self.registration, self.chan.borrow(), false);
        let Some(value) = self.take_value() else {
            wakeup.wake(); // Sent already: `poll` says so.
            return CancelHandle::dummy();
        };
        let id = match self
            .chan
            .borrow()
            .register(false, claim, branch, Some(value))
        {
            Ok(id) => id,
            Err(value) => {
                // Ready after all (rule 5), or the wait is over: no waiting.
                self.value = value;
                wakeup.wake();
                return CancelHandle::dummy();
            }
        };
        self.queued = Some(id);
        unregister_handle(&registration, id)
    }
}

impl<C: Borrow<SharedChan<T>>, T: Send + 'static> Drop for SendOp<C, T> {
    /// An unsent value is dropped here, with no lock held.
    fn drop(&mut self) {
        if self.queued.is_some() {
            drop(self.take_value());
        }
    }
}

/// The event of [`SharedChan::ev_recv`]: resolves to the value, or
/// `Err(Closed)` once the channel is closed and drained. Thread-bound
/// (`!Send`), as events are.
///
/// # Examples
///
/// ```
/// fuseau::block_on(|| {
///     let chan = fuseau::SharedChan::new();
///     chan.send(3)?;
///     let got = fuseau::await_event(chan.ev_recv())?;
///     assert_eq!(got, 3);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// The event stays on its thread (the channel is what crosses threads):
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(fuseau::SharedChan::<u32>::new().ev_recv());
/// ```
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct SharedRecvEvent<T: Send + 'static>(RecvOp<SharedChan<T>, T>);

/// A receive, on a channel it owns or borrows (as [`SendOp`]).
struct RecvOp<C: Borrow<SharedChan<T>>, T: Send + 'static> {
    chan: C,
    registration: Option<Rc<Registration<T>>>,
    /// The id of the last entry queued, until the event learns its fate.
    queued: Option<u64>,
}

impl<C: Borrow<SharedChan<T>>, T: Send + 'static> RecvOp<C, T> {
    fn new(chan: C) -> Self {
        RecvOp {
            chan,
            registration: None,
            queued: None,
        }
    }
}

impl<T: Send + 'static> Event for SharedRecvEvent<T> {
    type Output = T;

    fn poll(&mut self) -> Option<Result<T>> {
        self.0.poll()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.0.wait(wakeup)
    }
}

impl<C: Borrow<SharedChan<T>>, T: Send + 'static> Event for RecvOp<C, T> {
    type Output = T;

    fn poll(&mut self) -> Option<Result<T>> {
        let inner = &self.chan.borrow().inner;
        let result = match self.queued.take() {
            None => inner.try_recv(),
            Some(id) => {
                let mut locked = inner.lock();
                // A sender claimed our wait and handed us a value (rule 4).
                if let Some(value) = locked.take_handed(id) {
                    return Some(Ok(value));
                }
                // An empty claim (a straggler took the value), or still
                // queued (an event driven by hand).
                drop(locked.remove_waiter(true, id));
                locked.try_recv()
            }
        };
        match result {
            Ok(value) => Some(Ok(value)),
            Err(TryRecvError::Closed) => Some(Err(closed())),
            Err(TryRecvError::Empty) => None,
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let (claim, branch) = wakeup.shared_claim();
        let registration = registration(&mut self.registration, self.chan.borrow(), true);
        // (`poll` ran before, and took what was handed to an earlier entry.)
        let Ok(id) = self.chan.borrow().register(true, claim, branch, None) else {
            // Ready after all (rule 5), or the wait is over: no waiting.
            wakeup.wake();
            return CancelHandle::dummy();
        };
        self.queued = Some(id);
        unregister_handle(&registration, id)
    }
}

impl<C: Borrow<SharedChan<T>>, T: Send + 'static> Drop for RecvOp<C, T> {
    /// A value handed over to this event but never polled out (an event
    /// that lost after all, or driven by hand) goes back to the channel
    /// rather than being lost (rule 4).
    fn drop(&mut self) {
        let Some(id) = self.queued.take() else {
            return;
        };
        let mut locked = self.chan.borrow().inner.lock();
        drop(locked.remove_waiter(true, id));
        if let Some(value) = locked.take_handed(id) {
            locked.put_back(value);
        }
    }
}

impl<T: Send + 'static> fmt::Debug for SharedSendEvent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSendEvent").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> fmt::Debug for SharedRecvEvent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRecvEvent").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::scheduler::context::with_current;

    fn waiting() -> Arc<Claim> {
        Arc::new(Claim::new(Waker::noop().clone()))
    }

    /// Registers a waiter that must wait.
    fn queue<T: Send + 'static>(
        chan: &SharedChan<T>,
        receiving: bool,
        claim: &Arc<Claim>,
        branch: u32,
        value: Option<T>,
    ) -> u64 {
        chan.register(receiving, claim.clone(), branch, value)
            .unwrap_or_else(|_| panic!("it must wait"))
    }

    #[test]
    fn receivers_are_served_in_order_and_waits_that_are_over_skipped() {
        let chan = SharedChan::<u32>::bounded(0);
        let (over, first, second) = (waiting(), waiting(), waiting());
        let ids = [
            queue(&chan, true, &over, 0, None),
            queue(&chan, true, &first, 3, None),
            queue(&chan, true, &second, 0, None),
        ];
        over.end();
        assert_eq!(chan.try_send(10), Ok(()));
        assert_eq!(first.claimed_branch(), Some(3), "the first live one");
        assert_eq!(waiters(&chan), (0, 1), "the ended one was dropped");
        assert_eq!(chan.try_send(11), Ok(()));
        assert_eq!(chan.try_send(12), Err(TrySendError::Full(12)));
        assert_eq!(chan.take_handed(ids[1]), Some(10));
        assert_eq!(chan.take_handed(ids[2]), Some(11));
        assert_eq!(chan.take_handed(ids[0]), None);
        assert_eq!(chan.len(), 0, "a rendezvous buffers nothing");
    }

    #[test]
    fn senders_are_served_in_order_and_an_unclaimed_value_stays_queued() {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(0).unwrap();
        let (over, live) = (waiting(), waiting());
        let dead_id = queue(&chan, false, &over, 0, Some(1));
        queue(&chan, false, &live, 1, Some(2));
        over.end(); // its wait ended before anyone took the value
                    // The buffered value first; the live sender's value moves in.
        assert_eq!(chan.try_recv(), Ok(0));
        assert_eq!(live.claimed_branch(), Some(1));
        assert_eq!(chan.len(), 1);
        // The ended sender's value stays for its owner to take back.
        assert_eq!(waiters(&chan), (1, 0));
        assert_eq!(chan.unregister(false, dead_id), Some(1));
        assert_eq!(chan.try_recv(), Ok(2));
        assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn closed_receivers_drain_and_never_take_from_senders() {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(1).unwrap();
        let sender = waiting();
        queue(&chan, false, &sender, 0, Some(2));
        chan.close();
        assert_eq!(chan.try_recv(), Ok(1));
        assert_eq!(chan.try_recv(), Err(TryRecvError::Closed));
        assert!(sender.is_waiting(), "a closed channel takes nothing more");
        assert_eq!(chan.try_send(3), Err(TrySendError::Closed(3)));
    }

    /// A sender's entry stays queued after its wait ended (another branch
    /// won) until its owner takes it out: meanwhile the channel is not full
    /// because of it. `register` and `try_send` must agree on that, or a
    /// sender is told "ready" and "full" in turn and spins (the model test
    /// `chan_model.rs` found it).
    #[test]
    fn a_sender_entry_of_a_wait_that_is_over_does_not_fill_the_channel() {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(0).unwrap();
        let over = waiting();
        let id = queue(&chan, false, &over, 0, Some(1));
        assert!(over.try_claim(1), "another branch of its select won");
        assert_eq!(chan.try_recv(), Ok(0), "room frees up");
        assert_eq!(chan.register(false, waiting(), 0, Some(2)), Err(Some(2)));
        assert_eq!(chan.try_send(2), Ok(()));
        assert_eq!(
            chan.unregister(false, id),
            Some(1),
            "its owner takes it back"
        );
        assert_eq!(chan.try_recv(), Ok(2));
    }

    #[test]
    fn the_fast_paths_run_only_while_nobody_waits() {
        let chan = SharedChan::<u32>::bounded(2);
        assert_eq!(chan.inner.send_fast(1), Ok(()));
        assert_eq!(chan.inner.recv_fast(), Some(1));
        let receiver = waiting();
        let id = queue(&chan, true, &receiver, 0, None);
        assert_eq!(chan.inner.gate.load(Ordering::SeqCst), 1);
        assert_eq!(chan.inner.send_fast(2), Err(2), "the gate is up");
        // The slow path hands it over.
        assert_eq!(chan.try_send(2), Ok(()));
        assert_eq!(chan.inner.gate.load(Ordering::SeqCst), 0);
        assert_eq!(chan.take_handed(id), Some(2));
        assert_eq!(chan.inner.send_fast(3), Ok(()));
    }

    #[test]
    fn settling_hands_a_stragglers_value_to_the_first_receiver() {
        let chan = SharedChan::<u32>::bounded(2);
        let (first, second) = (waiting(), waiting());
        let ids = [
            queue(&chan, true, &first, 0, None),
            queue(&chan, true, &second, 0, None),
        ];
        // A send that saw the gate down before the receivers raised it.
        chan.inner.buffer.push(7).unwrap();
        chan.inner.lock().settle();
        assert_eq!(first.claimed_branch(), Some(0));
        assert!(second.is_waiting());
        assert_eq!(chan.take_handed(ids[0]), Some(7));
        assert_eq!(waiters(&chan), (0, 1));
        assert_eq!(chan.unregister(true, ids[1]), None);
    }

    #[test]
    fn settling_fills_the_room_a_straggler_freed() {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(0).unwrap();
        let sender = waiting();
        queue(&chan, false, &sender, 0, Some(1));
        // A receive that saw the gate down before the sender raised it.
        assert_eq!(chan.inner.buffer.pop(), Some(0));
        chan.inner.lock().settle();
        assert_eq!(sender.claimed_branch(), Some(0));
        assert_eq!(chan.try_recv(), Ok(1));
    }

    #[test]
    fn overflow_is_the_tail_of_the_channel() {
        let chan = SharedChan::<u32>::bounded(1);
        chan.inner.lock().overflow.push_back(2);
        chan.inner.buffer.push(1).unwrap();
        assert_eq!(chan.inner.recv_fast(), None, "the gate is up");
        assert_eq!(chan.len(), 2);
        assert_eq!(chan.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(chan.try_recv(), Ok(1));
        assert_eq!(chan.inner.gate.load(Ordering::SeqCst), 0, "drained in");
        assert_eq!(chan.try_recv(), Ok(2));
    }

    #[test]
    fn no_closed_while_a_send_is_in_flight() {
        let chan = SharedChan::<u32>::bounded(1);
        // A fast send between its check of `closed` and its push.
        chan.inner.sending.fetch_add(IN_FLIGHT, Ordering::SeqCst);
        chan.close();
        assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
        let receiver = waiting();
        let id = queue(&chan, true, &receiver, 0, None);
        // Its push lands, and it settles (as `send_fast` does).
        chan.inner.buffer.push(5).unwrap();
        chan.inner.sending.fetch_sub(IN_FLIGHT, Ordering::SeqCst);
        chan.inner.lock().settle();
        assert_eq!(receiver.claimed_branch(), Some(0));
        assert_eq!(chan.take_handed(id), Some(5));
        assert_eq!(chan.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn a_registration_does_not_wait_on_its_own_wait() {
        let chan = SharedChan::<u32>::bounded(0);
        let me = waiting();
        let sending = chan.register(false, me.clone(), 0, Some(1)).unwrap();
        // The same select also receives: its own offer does not count.
        let receiving = chan.register(true, me.clone(), 1, None).unwrap();
        // Another wait's offer makes a receiver ready.
        assert_eq!(chan.register(true, waiting(), 0, None), Err(None));
        // A wait that is over registers nothing.
        let over = waiting();
        over.end();
        assert_eq!(chan.register(false, over, 0, Some(4)), Err(Some(4)));
        assert_eq!(chan.unregister(false, sending), Some(1));
        assert_eq!(chan.unregister(true, receiving), None);
        assert_eq!(chan.unregister(true, receiving), None, "idempotent");
        assert_eq!(waiters(&chan), (0, 0));
    }

    fn waiters<T: Send + 'static>(chan: &SharedChan<T>) -> (usize, usize) {
        let locked = chan.inner.lock();
        (locked.senders.len(), locked.receivers.len())
    }

    #[test]
    fn a_value_handed_to_an_event_dropped_unpolled_goes_back() {
        crate::block_on(|| {
            let chan = SharedChan::<u32>::bounded(0);
            let mut event = chan.ev_recv();
            assert!(event.poll().is_none());
            let epoch = with_current(|me| {
                me.begin_wait();
                let handle = event.wait(Wakeup::new(me, 0));
                // A sender hands the value over (claiming the wait)...
                assert_eq!(chan.try_send(5), Ok(()));
                handle.cancel();
                me.epoch()
            })
            .unwrap();
            // ...but the event is dropped without being polled (driven by
            // hand): the value goes back to the channel.
            drop(event);
            assert_eq!(
                with_current(|me| me.end_wait(epoch)).unwrap(),
                Some(0),
                "the wait was claimed"
            );
            assert_eq!(chan.try_recv(), Ok(5));
            // Ending it again changes nothing.
            assert_eq!(with_current(|me| me.end_wait(epoch)).unwrap(), Some(0));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_send_event_dropped_while_queued_drops_its_value_unsent() {
        crate::block_on(|| {
            let chan = SharedChan::<String>::bounded(0);
            let mut event = chan.ev_send("unsent".to_string());
            assert!(event.poll().is_none());
            let epoch = with_current(|me| {
                me.begin_wait();
                drop(event.wait(Wakeup::new(me, 0))); // never cancelled
                me.epoch()
            })
            .unwrap();
            assert_eq!(waiters(&chan), (1, 0));
            drop(event);
            assert_eq!(waiters(&chan), (0, 0), "the entry left with the event");
            assert_eq!(with_current(|me| me.end_wait(epoch)).unwrap(), None);
            assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
            Ok(())
        })
        .unwrap();
    }
}
