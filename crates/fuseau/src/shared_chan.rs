//! Channels between threads: [`SharedChan`], for fibers of any schedulers
//! and plain threads.
//!
//! # Design
//!
//! Go's `hchan`: one mutex over the state (a ring buffer and two FIFO
//! queues of waiters), no lock-free structure of our own. A waiting
//! receiver is handed a value directly by the sender that comes along; a
//! waiting sender's value is taken directly by a receiver (or moved into the
//! buffer when room frees up).
//!
//! Handing over completes the waiter's wait, which may be one branch of a
//! `select` whose other branches other threads (or this one) may complete
//! too. So every waiter carries the [claim word](crate::claim) of its wait,
//! and handing over starts with a CAS of that word: only one branch of a
//! wait can be claimed, whatever thread claims it, and the fiber reads which
//! one when its wait ends. A waiter whose word cannot be claimed (its wait
//! ended, or another branch won) is skipped.
//!
//! # Ownership rules
//!
//! 1. Everything in [`State`] is read and written under its mutex only, and
//!    no user code runs under it: values are dropped, and waiters woken,
//!    after it is released.
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
//!    channel.
//! 5. Receivers wait only while the buffer is empty, senders only while it
//!    is full (for a rendezvous: always, until a receiver comes). A fiber
//!    polls and registers under two different locks, so its registration
//!    checks again, under the lock, whether it would have to wait: if not,
//!    it wakes itself instead of waiting (its wait then polls again).
//! 6. Fibers are woken through their `Waker` (the claim word holds it): on
//!    another thread it goes through the scheduler's inbox, and the fiber's
//!    record is never touched from another thread. A blocked plain thread
//!    waits on a mutex and condition variable of its own.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::cancel::{CancelHandle, Unregister};
use crate::chan::{closed, send_outcome, TryRecvError, TrySendError};
use crate::claim::Claim;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::scheduler::context::in_fiber;
use crate::std_sync::{lock, Condvar, Mutex};
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
/// It costs a mutex per operation and a message through the scheduler's
/// inbox per cross-thread wake-up: between fibers of one thread, prefer
/// [`Chan`](crate::Chan).
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
    state: Arc<Mutex<State<T>>>,
}

struct State<T> {
    buffer: VecDeque<T>,
    /// How many values the buffer may hold; [`UNBOUNDED`] for no limit.
    capacity: usize,
    closed: bool,
    receivers: VecDeque<Waiter<T>>,
    senders: VecDeque<Waiter<T>>,
    /// Values handed to claimed receivers, by entry id, until they take
    /// them (rule 4).
    handed: Vec<(u64, T)>,
    next_id: u64,
}

/// The capacity of an unbounded channel (as in `chan.rs`).
const UNBOUNDED: usize = usize::MAX;

/// A waiter's entry in a queue: its wait's claim word and the branch to
/// claim it for; for a sender, the value it offers (rule 3).
struct Waiter<T> {
    id: u64,
    claim: Arc<Claim>,
    branch: u32,
    value: Option<T>,
}

impl<T> State<T> {
    fn new(capacity: usize) -> State<T> {
        State {
            buffer: VecDeque::new(),
            capacity,
            closed: false,
            receivers: VecDeque::new(),
            senders: VecDeque::new(),
            handed: Vec::new(),
            next_id: 0,
        }
    }

    /// Hands `value` to the first waiting receiver whose wait can be
    /// claimed, and returns its claim (to wake once the lock is released);
    /// else gives `value` back. Receivers that cannot be claimed are
    /// dropped on the way (rule 2).
    fn hand_to_receiver(&mut self, value: T) -> std::result::Result<Arc<Claim>, T> {
        while let Some(receiver) = self.receivers.pop_front() {
            if receiver.claim.try_claim(receiver.branch) {
                self.handed.push((receiver.id, value));
                return Ok(receiver.claim);
            }
        }
        Err(value)
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

    /// Sends without waiting; the claim of a receiver that was handed the
    /// value, to wake.
    fn try_send(
        &mut self,
        value: T,
    ) -> (std::result::Result<(), TrySendError<T>>, Option<Arc<Claim>>) {
        if self.closed {
            return (Err(TrySendError::Closed(value)), None);
        }
        let value = match self.hand_to_receiver(value) {
            Ok(claim) => return (Ok(()), Some(claim)),
            Err(value) => value,
        };
        if self.buffer.len() < self.capacity {
            self.buffer.push_back(value);
            (Ok(()), None)
        } else {
            (Err(TrySendError::Full(value)), None)
        }
    }

    /// Receives without waiting; the claim of a sender whose value was
    /// taken, to wake.
    fn try_recv(&mut self) -> (std::result::Result<T, TryRecvError>, Option<Arc<Claim>>) {
        if let Some(value) = self.buffer.pop_front() {
            // Room freed up: the first waiting sender's value moves in.
            let mut woken = None;
            if !self.closed && self.buffer.len() < self.capacity {
                if let Some((v, claim)) = self.take_from_sender() {
                    self.buffer.push_back(v);
                    woken = Some(claim);
                }
            }
            return (Ok(value), woken);
        }
        if !self.closed {
            if let Some((value, claim)) = self.take_from_sender() {
                return (Ok(value), Some(claim));
            }
            return (Err(TryRecvError::Empty), None);
        }
        (Err(TryRecvError::Closed), None)
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

    /// Puts back a value that was handed to a receiver that never took it:
    /// to the next waiting receiver, else at the front of the buffer.
    fn put_back(&mut self, value: T) -> Option<Arc<Claim>> {
        match self.hand_to_receiver(value) {
            Ok(claim) => Some(claim),
            Err(value) => {
                self.buffer.push_front(value);
                None
            }
        }
    }

    /// `true` if a receiver of the wait of `claim` need not wait (rule 5):
    /// a value is there, a sender of another wait waits, or the channel is
    /// closed.
    fn recv_ready(&self, claim: &Arc<Claim>) -> bool {
        !self.buffer.is_empty()
            || self.closed
            || self
                .senders
                .iter()
                .any(|s| !Arc::ptr_eq(&s.claim, claim) && s.claim.is_waiting())
    }

    /// `true` if a sender of the wait of `claim` need not wait (rule 5).
    fn send_ready(&self, claim: &Arc<Claim>) -> bool {
        self.closed
            || self.buffer.len() < self.capacity
            || self
                .receivers
                .iter()
                .any(|r| !Arc::ptr_eq(&r.claim, claim) && r.claim.is_waiting())
    }
}

/// Wakes the waiter a channel operation completed, if it did.
fn wake(woken: Option<Arc<Claim>>) {
    if let Some(claim) = woken {
        claim.wake();
    }
}

impl<T> Clone for SharedChan<T> {
    fn clone(&self) -> Self {
        SharedChan {
            state: self.state.clone(),
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
        SharedChan::with_capacity(UNBOUNDED)
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
        SharedChan::with_capacity(capacity)
    }

    fn with_capacity(capacity: usize) -> SharedChan<T> {
        SharedChan {
            state: Arc::new(Mutex::new(State::new(capacity))),
        }
    }

    fn lock(&self) -> crate::std_sync::MutexGuard<'_, State<T>> {
        lock(&self.state)
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
        let (result, woken) = self.lock().try_send(value);
        wake(woken);
        result
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
        let (result, woken) = self.lock().try_recv();
        wake(woken);
        result
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
        let (receivers, senders) = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            state.closed = true;
            // Senders stay queued, holding their values (rule 3).
            let senders: Vec<Arc<Claim>> = state.senders.iter().map(|s| s.claim.clone()).collect();
            (std::mem::take(&mut state.receivers), senders)
        };
        for receiver in receivers {
            receiver.claim.wake();
        }
        for claim in senders {
            claim.wake();
        }
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
        self.lock().closed
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
        self.lock().buffer.len()
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
            let claim = Arc::new(Claim::new(waker.clone()));
            let id = {
                let mut state = self.lock();
                match state.try_send(value) {
                    (Ok(()), woken) => {
                        drop(state);
                        wake(woken);
                        return Ok(());
                    }
                    (Err(TrySendError::Closed(v)), _) => {
                        drop(state);
                        drop(v);
                        return Err(closed());
                    }
                    (Err(TrySendError::Full(v)), _) => {
                        if let Err(e) = Self::check_may_block("SharedChan::send") {
                            drop(state);
                            drop(v);
                            return Err(e);
                        }
                        state.push_waiter(false, claim.clone(), 0, Some(v))
                    }
                }
            };
            parker.park();
            if claim.end().is_some() {
                return Ok(()); // A receiver took the value.
            }
            // Woken by `close`: take the value back (rule 3) and try again.
            let entry = self.unregister(false, id);
            value = entry.expect("an unclaimed sender's value stays queued");
        }
    }

    /// `recv` outside a fiber: blocks the thread.
    fn recv_blocking(&self) -> Result<T> {
        let parker = Arc::new(Parker::new());
        let waker = Waker::from(parker.clone());
        loop {
            let claim = Arc::new(Claim::new(waker.clone()));
            let id = {
                let mut state = self.lock();
                match state.try_recv() {
                    (Ok(value), woken) => {
                        drop(state);
                        wake(woken);
                        return Ok(value);
                    }
                    (Err(TryRecvError::Closed), _) => return Err(closed()),
                    (Err(TryRecvError::Empty), _) => {
                        Self::check_may_block("SharedChan::recv")?;
                        state.push_waiter(true, claim.clone(), 0, None)
                    }
                }
            };
            parker.park();
            if claim.end().is_some() {
                let value = self.take_handed(id);
                return Ok(value.expect("a claimed receiver was handed a value"));
            }
            // Woken by `close`: try again.
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
        let mut state = self.lock();
        let ready = if receiving {
            state.recv_ready(&claim)
        } else {
            state.send_ready(&claim)
        };
        if ready || !claim.is_waiting() {
            return Err(value);
        }
        Ok(state.push_waiter(receiving, claim, branch, value))
    }

    /// Removes a waiter's entry if it is still queued (its wait is over),
    /// and gives a sender's value back; `None` for a sender whose value a
    /// receiver took (rule 2).
    pub(crate) fn unregister(&self, receiving: bool, id: u64) -> Option<T> {
        let entry = self.lock().remove_waiter(receiving, id);
        entry.and_then(|e| e.value)
    }

    /// The value handed to receiver entry `id`, if one was (rule 4).
    pub(crate) fn take_handed(&self, id: u64) -> Option<T> {
        self.lock().take_handed(id)
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
        let state = lock(&self.state);
        f.debug_struct("SharedChan")
            .field("len", &state.buffer.len())
            .field(
                "capacity",
                &(state.capacity != UNBOUNDED).then_some(state.capacity),
            )
            .field("closed", &state.closed)
            .field("blocked_senders", &state.senders.len())
            .field("blocked_receivers", &state.receivers.len())
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
        let (result, woken) = {
            let mut state = self.chan.borrow().lock();
            if let Some(id) = self.queued.take() {
                // A sender claimed our wait and handed us a value (rule 4).
                if let Some(value) = state.take_handed(id) {
                    return Some(Ok(value));
                }
                // Still queued (an event driven by hand).
                drop(state.remove_waiter(true, id));
            }
            state.try_recv()
        };
        wake(woken);
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
        let (entry, woken) = {
            let mut state = self.chan.borrow().lock();
            let entry = state.remove_waiter(true, id);
            let woken = state.take_handed(id).and_then(|v| state.put_back(v));
            (entry, woken)
        };
        drop(entry);
        wake(woken);
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

    #[test]
    fn receivers_are_served_in_order_and_waits_that_are_over_skipped() {
        let mut state = State::<u32>::new(0);
        let over = waiting();
        over.end();
        let (first, second) = (waiting(), waiting());
        let ids = [
            state.push_waiter(true, over.clone(), 0, None),
            state.push_waiter(true, first.clone(), 3, None),
            state.push_waiter(true, second.clone(), 0, None),
        ];
        let (sent, woken) = state.try_send(10);
        assert!(sent.is_ok());
        assert!(Arc::ptr_eq(&woken.unwrap(), &first), "the first live one");
        assert_eq!(first.claimed_branch(), Some(3));
        assert_eq!(state.receivers.len(), 1, "the ended one was dropped");
        assert!(state.try_send(11).0.is_ok());
        assert_eq!(state.try_send(12).0, Err(TrySendError::Full(12)));
        assert_eq!(state.take_handed(ids[1]), Some(10));
        assert_eq!(state.take_handed(ids[2]), Some(11));
        assert_eq!(state.take_handed(ids[0]), None);
        assert!(state.buffer.is_empty(), "a rendezvous buffers nothing");
    }

    #[test]
    fn senders_are_served_in_order_and_an_unclaimed_value_stays_queued() {
        let mut state = State::<u32>::new(1);
        state.buffer.push_back(0);
        let over = waiting();
        let live = waiting();
        let dead_id = state.push_waiter(false, over.clone(), 0, Some(1));
        state.push_waiter(false, live.clone(), 1, Some(2));
        over.end(); // its wait ended before anyone took the value
                    // The buffered value first; the live sender's value moves in.
        let (got, woken) = state.try_recv();
        assert_eq!(got, Ok(0));
        assert!(Arc::ptr_eq(&woken.unwrap(), &live));
        assert_eq!(state.buffer, [2]);
        // The ended sender's value stays for its owner to take back.
        assert_eq!(state.senders.len(), 1);
        assert_eq!(state.remove_waiter(false, dead_id).unwrap().value, Some(1));
        assert_eq!(state.try_recv().0, Ok(2));
        assert_eq!(state.try_recv().0, Err(TryRecvError::Empty));
    }

    #[test]
    fn closed_receivers_drain_and_never_take_from_senders() {
        let mut state = State::<u32>::new(1);
        state.buffer.push_back(1);
        let sender = waiting();
        state.push_waiter(false, sender.clone(), 0, Some(2));
        state.closed = true;
        assert_eq!(state.try_recv().0, Ok(1));
        assert_eq!(state.try_recv().0, Err(TryRecvError::Closed));
        assert!(sender.is_waiting(), "a closed channel takes nothing more");
        assert_eq!(state.try_send(3).0, Err(TrySendError::Closed(3)));
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
        let state = chan.lock();
        (state.senders.len(), state.receivers.len())
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
