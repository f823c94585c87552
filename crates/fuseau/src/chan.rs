//! Channels between fibers of one scheduler: [`Chan`].
//!
//! # How values move
//!
//! A channel has a buffer (unbounded, bounded, or none for a rendezvous) and
//! one FIFO queue of waiting fibers, `waiters`: senders and receivers
//! together, in the order they registered. A waiting receiver is handed a
//! value directly by the sender that comes along; a waiting sender's value
//! is taken directly by a receiver (or moved into the buffer when room frees
//! up).
//!
//! A waiter may be part of a [`select`](crate::select()) with other branches,
//! so handing it a value first *claims* its wait ([`Wakeup::claim`]): only
//! one branch of a wait can be claimed, and the select then reports that
//! branch. So a value is never both delivered and reported unsent, and
//! never delivered twice.
//!
//! Where a value lives while a fiber waits: in `parked`, a side queue of
//! values under the token of the event they belong to. So an entry of
//! `waiters` is a token and a [`Wakeup`] (40 bytes), whatever `T` is, and
//! nothing is allocated per wait but the queues' own room:
//!
//! - a waiting **sender** parks its value (its offer) under its token when
//!   it registers. A receiver that claims the entry removes it and takes
//!   the offer: the send event then finds nothing parked for it, which
//!   means "sent". An entry removed unclaimed (its registration undone when
//!   the wait ends, a scan that found its wait over, or `close`) leaves the
//!   offer parked, for the event to take back (or drop, unsent);
//! - a value for a waiting **receiver** is parked under the receiver's
//!   token when a sender claims the entry (and removes it); the receive
//!   event takes it from there when it polls, or puts it back at the front
//!   of the buffer if it is dropped first.
//!
//! Tokens carry the kind bit, so a sender's offer and a value handed to a
//! receiver are never confused. `parked` is boxed and made when a first
//! value is parked (and kept): an idle channel, or one with only receivers
//! waiting and nothing handed to them yet, pays one pointer for it.
//!
//! Invariants:
//!
//! - receivers wait only while the buffer is empty, and senders only while
//!   it is full (for a rendezvous: always, until a receiver comes). So both
//!   kinds wait at the same time only when one `select` waits on sending
//!   and receiving on the same channel: a scan for one kind skips (and
//!   leaves) the entries of the other.
//! - `receivers` counts the receivers' entries in `waiters` (the rest are
//!   senders'), so that a send skips the scan when no receiver waits, and a
//!   receive when no sender does: a full channel with many blocked senders
//!   costs a send nothing.
//! - tokens (`id << 1 | receiving`, ids counted up and never reused) are
//!   pushed in increasing order and entries are only ever removed, so
//!   `waiters` is sorted by token: removing an entry by token is a binary
//!   search.
//! - a sender's entry in `waiters` always has its offer in `parked`; an
//!   offer leaves `parked` only to the receiver that claimed the entry
//!   (which removes it), or back to its owner (whose entry is removed
//!   then, if it is still queued).
//! - an entry in `waiters` belongs to a registration that is not undone
//!   yet. A scan that meets one that cannot be claimed (its wait is over,
//!   or another branch won, and its owner has not run since) removes it:
//!   a sender's offer stays parked for its owner to take back.
//! - the values of each kind are in `parked` in token order: offers are
//!   parked as their senders register (tokens counted up), and values
//!   handed to receivers as the receivers are claimed, always the first
//!   one queued. So a search for a token stops at the first value of the
//!   same kind under a later token: a send event whose offer was taken
//!   (the common case: served in order) finds the next sender's offer at
//!   the front and stops there, and a receiver's claim or a receive event
//!   finds its value at the front or near it. No search goes through the
//!   offers of many blocked senders.
//! - values are dropped, and fibers woken by `close`, with no borrow of the
//!   state held: user `Drop` code may use the channel.
//! - after `close`, no sender's value is delivered: `close` takes every
//!   entry out (senders' offers stay parked for their events to take
//!   back), and a receive takes no value from a sender's entry registered
//!   later.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::cancel::{CancelHandle, Unregister};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::task::Wakeup;

/// A channel between fibers (of one thread), as in Go.
///
/// `Chan::new()` is unbounded; `Chan::bounded(n)` holds at most `n` values,
/// and `Chan::bounded(0)` is a rendezvous: a send completes only when a
/// receiver takes the value. Cloning is cheap and gives another handle to the
/// same channel. Blocked senders and receivers are served in FIFO order.
/// Thread-bound (`!Send`).
///
/// # Examples
///
/// ```
/// use fuseau::Chan;
///
/// let squares = fuseau::block_on(|| {
///     let chan = Chan::bounded(2);
///     let tx = chan.clone();
///     fuseau::spawn(move || {
///         for i in 1..=4u32 {
///             tx.send(i * i)?; // waits while the channel is full
///         }
///         tx.close();
///         Ok(())
///     });
///     let mut got = Vec::new();
///     loop {
///         match chan.recv() {
///             Ok(v) => got.push(v),
///             Err(e) if e.is_closed() => break, // closed and drained
///             Err(e) => return Err(e),
///         }
///     }
///     Ok(got)
/// })?;
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # Ok::<(), fuseau::Error>(())
/// ```
pub struct Chan<T> {
    state: Rc<RefCell<State<T>>>,
}

struct State<T> {
    buffer: VecDeque<T>,
    /// How many values the buffer may hold; [`UNBOUNDED`] for no limit. A
    /// plain `usize` rather than an `Option` (no tag: 8 bytes less per
    /// channel): no buffer can hold `usize::MAX` values anyway.
    capacity: usize,
    /// Waiting senders and receivers, in registration order (and so sorted
    /// by token).
    waiters: VecDeque<Waiter>,
    /// Values parked under the token of the event they belong to: the
    /// offers of waiting senders (or of senders whose entries were removed
    /// unclaimed, until they take them back), and values handed to claimed
    /// receivers. Each kind in token order. Made on first use, and boxed:
    /// an idle channel pays one pointer for it, not a `VecDeque`'s four
    /// words.
    #[allow(clippy::box_collection)]
    parked: Option<Box<VecDeque<(u64, T)>>>,
    /// The id of the next waiter.
    next_id: u64,
    /// How many of `waiters` are receivers. A `u32` keeps the state small
    /// (every waiter is a fiber's wait, with a stack of its own: there are
    /// never 2^32 of them).
    receivers: u32,
    closed: bool,
}

/// The capacity of an unbounded channel: `buffer.len() < UNBOUNDED` always
/// holds, so the bounded check serves both kinds.
const UNBOUNDED: usize = usize::MAX;

/// A fiber waiting on the channel (a sender's value is in `parked`, under
/// the same token).
struct Waiter {
    /// `id << 1 | receiving`: the entry's key, and its kind.
    token: u64,
    wakeup: Wakeup,
}

impl Waiter {
    fn receiving(&self) -> bool {
        self.token & 1 == 1
    }
}

/// Why [`Chan::try_send`] did not send; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// A bounded channel is full (for a rendezvous: no receiver is waiting).
    Full(T),
    /// The channel is closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> From<TrySendError<T>> for Error {
    fn from(e: TrySendError<T>) -> Error {
        match e {
            TrySendError::Full(_) => Error::new(ErrorKind::Other, "the channel is full"),
            TrySendError::Closed(_) => closed(),
        }
    }
}

/// Why [`Chan::try_recv`] did not receive.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// No value is ready.
    Empty,
    /// The channel is closed and drained.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Closed => f.write_str("receiving on a closed channel"),
        }
    }
}

impl std::error::Error for TryRecvError {}

impl From<TryRecvError> for Error {
    fn from(e: TryRecvError) -> Error {
        match e {
            TryRecvError::Empty => Error::new(ErrorKind::Other, "the channel is empty"),
            TryRecvError::Closed => closed(),
        }
    }
}

pub(crate) fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the channel is closed")
}

impl<T> Clone for Chan<T> {
    fn clone(&self) -> Self {
        Chan {
            state: self.state.clone(),
        }
    }
}

impl<T: 'static> Default for Chan<T> {
    fn default() -> Self {
        Chan::new()
    }
}

impl<T> State<T> {
    fn try_send(&mut self, value: T) -> std::result::Result<(), TrySendError<T>> {
        if self.closed {
            return Err(TrySendError::Closed(value));
        }
        let value = match self.hand_to_receiver(value) {
            Ok(()) => return Ok(()),
            Err(value) => value,
        };
        if self.buffer.len() < self.capacity {
            self.buffer.push_back(value);
            Ok(())
        } else {
            Err(TrySendError::Full(value))
        }
    }

    fn try_recv(&mut self) -> std::result::Result<T, TryRecvError> {
        if let Some(value) = self.buffer.pop_front() {
            // Room freed up: the first waiting sender's value moves in.
            if let Some(v) = self.take_from_sender() {
                self.buffer.push_back(v);
            }
            return Ok(value);
        }
        if let Some(v) = self.take_from_sender() {
            return Ok(v);
        }
        if self.closed {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Hands `value` to the first waiting receiver whose wait can be
    /// claimed (its entry removed, the value parked under its token); else
    /// gives `value` back. Receivers that cannot be claimed are dropped on
    /// the way; senders' entries are skipped.
    fn hand_to_receiver(&mut self, value: T) -> std::result::Result<(), T> {
        let mut from = 0;
        while self.receivers > 0 {
            let Some(i) = self.waiters.range(from..).position(Waiter::receiving) else {
                break; // unreachable: `receivers` counts them
            };
            let i = from + i;
            let claimed = self.waiters[i].wakeup.claim();
            let receiver = self.waiters.remove(i).expect("found above");
            self.receivers -= 1;
            if claimed {
                self.park(receiver.token, value);
                return Ok(());
            }
            from = i;
        }
        Err(value)
    }

    /// Takes the offer of the first waiting sender whose wait can be
    /// claimed (removing its entry). Senders that cannot be claimed are
    /// removed on the way, their offers left parked for their owners to
    /// take back; receivers' entries are skipped. Nothing after `close`.
    fn take_from_sender(&mut self) -> Option<T> {
        if self.closed {
            return None;
        }
        let mut from = 0;
        while self.waiters.len() > self.receivers as usize {
            let i = from + self.waiters.range(from..).position(|w| !w.receiving())?;
            let claimed = self.waiters[i].wakeup.claim();
            let sender = self.waiters.remove(i).expect("found above");
            if claimed {
                let offer = self.take_parked(sender.token);
                debug_assert!(offer.is_some(), "a queued sender's offer is parked");
                return offer;
            }
            from = i;
        }
        None
    }

    /// Queues a waiter (a sender with its offer, parked under its token; a
    /// receiver with `None`); its token.
    fn add_waiter(&mut self, wakeup: Wakeup, offer: Option<T>) -> u64 {
        let receiving = offer.is_none();
        let token = self.next_id << 1 | u64::from(receiving);
        self.next_id += 1;
        if self.waiters.capacity() == 0 {
            // Most channels have one waiter at a time (often a fiber blocked
            // on a channel of its own): start with room for one, not the
            // four a `VecDeque` would allocate.
            self.waiters.reserve_exact(1);
        }
        self.waiters.push_back(Waiter { token, wakeup });
        self.receivers += u32::from(receiving);
        if let Some(offer) = offer {
            self.park(token, offer);
        }
        token
    }

    /// Removes entry `token`, if it is still queued.
    fn remove_waiter(&mut self, token: u64) -> Option<Waiter> {
        let i = self
            .waiters
            .binary_search_by_key(&token, |w| w.token)
            .ok()?;
        let waiter = self.waiters.remove(i)?;
        self.receivers -= u32::from(waiter.receiving());
        Some(waiter)
    }

    /// `true` if entry `token` is still queued.
    fn is_queued(&self, token: u64) -> bool {
        self.waiters
            .binary_search_by_key(&token, |w| w.token)
            .is_ok()
    }

    /// Parks `value` under `token` (at the back: tokens of its kind are
    /// parked in increasing order).
    fn park(&mut self, token: u64, value: T) {
        let parked = self.parked.get_or_insert_with(Box::default);
        debug_assert!(
            parked
                .iter()
                .rev()
                .find(|(t, _)| t & 1 == token & 1)
                .is_none_or(|(t, _)| *t < token),
            "values of one kind are parked in token order"
        );
        if parked.capacity() == 0 {
            // As for `waiters`: most channels park one value at a time.
            parked.reserve_exact(1);
        }
        parked.push_back((token, value));
    }

    /// Takes the value parked under `token`, if there is one. The values
    /// of its kind are in token order, so the search (from the front) stops
    /// at the first one under a later token: usually the first value of
    /// its kind.
    fn take_parked(&mut self, token: u64) -> Option<T> {
        let parked = self.parked.as_deref_mut()?;
        let kind = token & 1;
        let i = parked
            .iter()
            .position(|&(t, _)| t & 1 == kind && t >= token)?;
        if parked[i].0 != token {
            return None;
        }
        parked.remove(i).map(|(_, value)| value)
    }

    /// A sender's offer back from its registration `token` (its entry
    /// removed if it is still queued). `None` if a receiver claimed the
    /// entry and took the offer: it was sent.
    fn take_back(&mut self, token: u64) -> Option<T> {
        // Nothing parked: a receiver took it and removed the entry.
        let offer = self.take_parked(token)?;
        // A sender's entry holds no value: dropping it here drops none.
        drop(self.remove_waiter(token));
        Some(offer)
    }
}

/// A registration's token is its entry's (`id << 1 | receiving`). A
/// sender's entry removed here leaves its offer parked, for the event to
/// take back when it polls (or drop, if it is dropped).
impl<T> Unregister for RefCell<State<T>> {
    fn unregister(&self, token: u64) {
        // An entry holds no value: dropping it here drops none.
        drop(self.borrow_mut().remove_waiter(token));
    }
}

impl<T: 'static> Chan<T> {
    /// An unbounded channel: `send` never waits.
    pub fn new() -> Chan<T> {
        Chan::with_capacity(UNBOUNDED)
    }

    /// A channel that holds at most `capacity` values; `send` waits while
    /// it is full. `bounded(0)` is a rendezvous channel.
    pub fn bounded(capacity: usize) -> Chan<T> {
        // `bounded(usize::MAX)` is unbounded indeed.
        Chan::with_capacity(capacity)
    }

    fn with_capacity(capacity: usize) -> Chan<T> {
        Chan {
            state: Rc::new(RefCell::new(State {
                buffer: VecDeque::new(),
                capacity,
                waiters: VecDeque::new(),
                parked: None,
                next_id: 0,
                receivers: 0,
                closed: false,
            })),
        }
    }

    /// Sends `value`, waiting while a bounded channel is full (for a
    /// rendezvous: until a receiver takes it).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. If the fiber is cancelled before or while
    /// waiting, the value is dropped, unsent, and the error returned; if a
    /// receiver took it first, the send succeeded and returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] if the channel is (or gets) closed before the
    /// value is taken; the fiber's cancellation;
    /// [`ErrorKind::NotInFiber`] if it would wait outside a fiber.
    pub fn send(&self, value: T) -> Result<()> {
        wait_for(self.ev_send(value), "Chan::send")
    }

    /// Receives a value, waiting until one is there.
    ///
    /// # Cancellation
    ///
    /// A cancellation point. If the fiber is cancelled before or while
    /// waiting, no value is taken; if a sender handed over a value first, it
    /// is returned.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] once the channel is closed *and* drained; the
    /// fiber's cancellation; [`ErrorKind::NotInFiber`] if it would wait
    /// outside a fiber.
    pub fn recv(&self) -> Result<T> {
        wait_for(self.ev_recv(), "Chan::recv")
    }

    /// Sends `value` if that needs no waiting. Never blocks; not a
    /// cancellation point.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the value.
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        self.state.borrow_mut().try_send(value)
    }

    /// Receives a value if one is ready. Never blocks; not a cancellation
    /// point.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], or [`TryRecvError::Closed`] once the channel
    /// is closed and drained.
    pub fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
        self.state.borrow_mut().try_recv()
    }

    /// Queues a waiter; its token, and the handle that removes it again.
    fn add_waiter(&self, wakeup: Wakeup, offer: Option<T>) -> (u64, CancelHandle) {
        let token = self.state.borrow_mut().add_waiter(wakeup, offer);
        let registry: Weak<RefCell<State<T>>> = Rc::downgrade(&self.state);
        (token, CancelHandle::unregister(registry, token))
    }

    /// Closes the channel: sends fail from now on; receivers get the values
    /// still buffered, then [`ErrorKind::Closed`]. Every blocked sender and
    /// receiver is woken (senders with `Closed`, their values dropped).
    /// Idempotent; never blocks.
    pub fn close(&self) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.closed = true;
            state.receivers = 0;
            // Senders' offers stay parked for their events, which take them
            // back and fail with `Closed` when they poll (or drop them,
            // unsent).
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            waiter.wakeup.wake();
        }
    }

    /// `true` once [`close`](Chan::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// How many values are buffered (not counting those of blocked senders
    /// of a full or rendezvous channel).
    pub fn len(&self) -> usize {
        self.state.borrow().buffer.len()
    }

    /// `true` if no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An event that sends `value` (see [`select`](crate::select())). Until
    /// the event completes, the value stays with the event: if another
    /// branch wins, it is dropped with the event, unsent.
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_send(&self, value: T) -> SendEvent<T> {
        SendEvent {
            chan: self.clone(),
            value: Some(value),
            registered: None,
        }
    }

    /// An event that receives a value (see [`select`](crate::select())).
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_recv(&self) -> RecvEvent<T> {
        RecvEvent {
            chan: self.clone(),
            registered: None,
        }
    }
}

impl<T> fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Chan")
            .field("len", &state.buffer.len())
            .field(
                "capacity",
                &(state.capacity != UNBOUNDED).then_some(state.capacity),
            )
            .field("closed", &state.closed)
            .field(
                "blocked_senders",
                &(state.waiters.len() - state.receivers as usize),
            )
            .field("blocked_receivers", &(state.receivers as usize))
            .finish()
    }
}

/// The event of [`Chan::ev_send`]: resolves to `Ok(())` once the value is
/// sent, or `Err(Closed)`.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct SendEvent<T: 'static> {
    chan: Chan<T>,
    /// The value, while the event holds it (not registered).
    value: Option<T>,
    /// The token of the event's last registration, until the event learns
    /// its fate: the value is parked under it (the entry is queued, or was
    /// removed unclaimed), or gone (a receiver claimed the entry and took
    /// it: sent).
    registered: Option<u64>,
}

/// What a send event's `poll` makes of a `try_send`: sent, failed with
/// `Closed`, or not yet (`None`); a value not sent goes back to `value`.
pub(crate) fn send_outcome<T>(
    attempt: std::result::Result<(), TrySendError<T>>,
    value: &mut Option<T>,
) -> Option<Result<()>> {
    match attempt {
        Ok(()) => Some(Ok(())),
        Err(TrySendError::Closed(v)) => {
            *value = Some(v);
            Some(Err(closed()))
        }
        Err(TrySendError::Full(v)) => {
            *value = Some(v);
            None
        }
    }
}

impl<T: 'static> SendEvent<T> {
    /// The value back from the event's registration, unless a receiver
    /// took it (`None`: sent). Forgets the registration.
    fn take_back(&mut self) -> Option<T> {
        let token = self.registered.take()?;
        self.chan.state.borrow_mut().take_back(token)
    }
}

impl<T: 'static> Event for SendEvent<T> {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        let value = match self.value.take() {
            Some(value) => value,
            None => match self.take_back() {
                Some(value) => value,
                // A receiver claimed our registration and took the value.
                None => return Some(Ok(())),
            },
        };
        send_outcome(self.chan.try_send(value), &mut self.value)
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        // `poll` took the value back already, unless the event is driven by
        // hand and registered again without its registration undone.
        let Some(value) = self.value.take().or_else(|| self.take_back()) else {
            // Sent already: the next `poll` says so.
            wakeup.wake();
            return CancelHandle::dummy();
        };
        let (token, handle) = self.chan.add_waiter(wakeup, Some(value));
        self.registered = Some(token);
        handle
    }
}

/// The event of [`Chan::ev_recv`]: resolves to the value, or `Err(Closed)`
/// once the channel is closed and drained.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct RecvEvent<T: 'static> {
    chan: Chan<T>,
    /// The token of the event's last registration, until the event learns
    /// its fate: a sender that claims the entry parks the value under it.
    registered: Option<u64>,
}

impl<T: 'static> RecvEvent<T> {
    /// Forgets the event's registration: its entry is removed if it is
    /// still queued, and a value handed to it goes back to the front of the
    /// channel rather than being lost.
    fn release(&mut self) {
        let Some(token) = self.registered.take() else {
            return;
        };
        let mut state = self.chan.state.borrow_mut();
        // A receiver's entry holds no value: dropping it here drops none.
        drop(state.remove_waiter(token));
        if let Some(value) = state.take_parked(token) {
            state.buffer.push_front(value);
        }
    }
}

impl<T: 'static> Drop for RecvEvent<T> {
    /// A value handed over to this event but never polled out (only
    /// possible when the event is driven by hand, not by `select`) goes
    /// back to the front of the channel rather than being lost.
    fn drop(&mut self) {
        self.release();
    }
}

impl<T: 'static> Drop for SendEvent<T> {
    /// An unsent value is dropped here, with no borrow held.
    fn drop(&mut self) {
        drop(self.take_back());
    }
}

impl<T: 'static> Event for RecvEvent<T> {
    type Output = T;

    fn poll(&mut self) -> Option<Result<T>> {
        if let Some(token) = self.registered {
            let mut state = self.chan.state.borrow_mut();
            if let Some(value) = state.take_parked(token) {
                self.registered = None;
                return Some(Ok(value));
            }
            // Undone (as `select` always does before it polls): nothing can
            // be handed to it any more.
            if !state.is_queued(token) {
                self.registered = None;
            }
        }
        match self.chan.try_recv() {
            Ok(value) => Some(Ok(value)),
            Err(TryRecvError::Closed) => Some(Err(closed())),
            Err(TryRecvError::Empty) => None,
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        // Only an event driven by hand is still registered here.
        self.release();
        let (token, handle) = self.chan.add_waiter(wakeup, None);
        self.registered = Some(token);
        handle
    }
}

impl<T: 'static> fmt::Debug for SendEvent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendEvent").finish_non_exhaustive()
    }
}

impl<T: 'static> fmt::Debug for RecvEvent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvEvent").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::{block_on, spawn, yield_now};

    /// Lets every other ready fiber run until it blocks.
    fn settle() {
        for _ in 0..4 {
            yield_now().expect("not cancelled");
        }
    }

    /// A value that counts its drops.
    #[derive(Debug)]
    struct Counted {
        n: u32,
        drops: Rc<Cell<u32>>,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    fn counted(n: u32, drops: &Rc<Cell<u32>>) -> Counted {
        Counted {
            n,
            drops: drops.clone(),
        }
    }

    /// (entries queued, of which receivers, values parked)
    fn queues<T>(chan: &Chan<T>) -> (usize, u32, usize) {
        let state = chan.state.borrow();
        let parked = state.parked.as_ref().map_or(0, |p| p.len());
        (state.waiters.len(), state.receivers, parked)
    }

    /// Drives an event by hand: registers it and, once woken, first yields
    /// (so that others woken after it run first) when `yield_first`, or
    /// drops it unpolled otherwise.
    struct ByHand<E> {
        inner: Option<E>,
        registered: bool,
        yield_first: bool,
    }

    impl<E: Event> Event for ByHand<E> {
        type Output = Option<E::Output>;

        fn poll(&mut self) -> Option<Result<Option<E::Output>>> {
            if self.registered && !self.yield_first {
                self.inner = None;
                return Some(Ok(None));
            }
            if self.registered {
                yield_now().expect("not cancelled");
            }
            let ready = self.inner.as_mut().expect("not dropped").poll()?;
            Some(ready.map(Some))
        }

        fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
            self.registered = true;
            self.inner.as_mut().expect("not dropped").wait(wakeup)
        }
    }

    fn by_hand<E: Event>(event: E, yield_first: bool) -> ByHand<E> {
        ByHand {
            inner: Some(event),
            registered: false,
            yield_first,
        }
    }

    #[test]
    fn the_state_and_a_waiter_stay_small() {
        // The `Rc` allocation: two counts, then the `RefCell`.
        assert!(std::mem::size_of::<RefCell<State<u64>>>() + 16 <= 120);
        assert!(std::mem::size_of::<Waiter>() <= 40);
    }

    /// A fiber in a `select!` on both ends of the rendezvous `chan`, once
    /// both its registrations are queued (its offer parked). It returns
    /// `None` if its send won, or the value its receive got.
    fn select_on_both_ends(
        chan: &Chan<Counted>,
        drops: &Rc<Cell<u32>>,
    ) -> crate::Fiber<Option<u32>> {
        let (c, d) = (chan.clone(), drops.clone());
        let both = spawn(move || {
            Ok(crate::select! {
                send(c, counted(1, &d)) -> r => { r?; None },
                recv(c) -> v => Some(v?.n),
            })
        });
        settle();
        assert_eq!(
            queues(chan),
            (2, 1, 1),
            "both kinds queued, the offer parked"
        );
        both
    }

    #[test]
    fn a_select_on_both_ends_of_a_rendezvous_gives_its_value_to_a_receiver() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(0);
            let both = select_on_both_ends(&chan, &drops);
            assert_eq!(chan.recv()?.n, 1, "its send is received");
            settle();
            assert_eq!(both.join()?, None, "its send won");
            assert_eq!(queues(&chan), (0, 0, 0), "its receive is undone");
            assert_eq!(drops.get(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_select_on_both_ends_of_a_rendezvous_receives_from_a_sender() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(0);
            let both = select_on_both_ends(&chan, &drops);
            chan.send(counted(2, &drops))?;
            settle();
            assert_eq!(both.join()?, Some(2), "its receive got the value");
            assert_eq!(queues(&chan), (0, 0, 0), "its send is undone");
            assert_eq!(drops.get(), 2, "the unsent value dropped, once");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_sender_whose_wait_ended_unclaimed_is_skipped_not_lost() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(0);
            let other: Chan<u32> = Chan::new();
            let (c, o, d) = (chan.clone(), other.clone(), drops.clone());
            let sender = spawn(move || {
                let mut send = c.ev_send(counted(7, &d));
                let first = crate::select! {
                    ev(&mut send) -> r => { r?; 0 },
                    recv(o) -> v => v?,
                };
                // The value comes back to the event, which sends it now.
                crate::await_event(&mut send)?;
                Ok(first)
            });
            settle();
            assert_eq!(queues(&chan), (1, 0, 1), "its offer parked");
            // The other branch wins; the sender has not run since.
            other.try_send(3).unwrap();
            assert_eq!(chan.try_recv().unwrap_err(), TryRecvError::Empty);
            assert_eq!(queues(&chan), (0, 0, 1), "its offer left parked");
            assert_eq!(drops.get(), 0, "not dropped");
            let receiver = {
                let c = chan.clone();
                spawn(move || Ok(c.recv()?.n))
            };
            settle();
            assert_eq!(sender.join()?, 3);
            assert_eq!(receiver.join()?, 7, "sent once it came back");
            assert_eq!(queues(&chan), (0, 0, 0));
            assert_eq!(drops.get(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn values_handed_to_receivers_polled_out_of_order_go_to_the_first_registered() {
        block_on(|| {
            let chan: Chan<u32> = Chan::new();
            let (c1, c2) = (chan.clone(), chan.clone());
            // The first to register yields before it polls: the second
            // polls its value first.
            let first = spawn(move || crate::await_event(by_hand(c1.ev_recv(), true)));
            let second = spawn(move || c2.recv());
            settle();
            assert_eq!(queues(&chan), (2, 2, 0));
            chan.try_send(10).unwrap();
            chan.try_send(20).unwrap();
            assert_eq!(queues(&chan), (0, 0, 2));
            settle();
            assert_eq!(first.join()?, Some(10));
            assert_eq!(second.join()?, 20);
            assert_eq!(queues(&chan), (0, 0, 0));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn close_gives_every_blocked_sender_its_value_back() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(1);
            chan.try_send(counted(0, &drops)).unwrap();
            let senders: Vec<_> = (1..=3)
                .map(|n| {
                    let (c, d) = (chan.clone(), drops.clone());
                    // Its outcome as its value: a failed child would
                    // cancel this fiber.
                    spawn(move || Ok(c.send(counted(n, &d)).map_err(|e| e.kind())))
                })
                .collect();
            settle();
            assert_eq!(queues(&chan), (3, 0, 3), "their offers parked");
            chan.close();
            assert_eq!(queues(&chan), (0, 0, 3), "values back with their owners");
            assert_eq!(drops.get(), 0);
            settle();
            for sender in senders {
                assert_eq!(sender.join()?, Err(ErrorKind::Closed));
            }
            assert_eq!(drops.get(), 3, "each unsent value dropped once");
            assert_eq!(queues(&chan), (0, 0, 0));
            assert_eq!(chan.try_recv()?.n, 0, "the buffer drains");
            assert_eq!(chan.try_recv().unwrap_err(), TryRecvError::Closed);
            assert_eq!(drops.get(), 4);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_receive_dropped_with_a_handed_value_puts_it_back_in_front() {
        block_on(|| {
            let chan: Chan<u32> = Chan::new();
            let c = chan.clone();
            let dropper = spawn(move || crate::await_event(by_hand(c.ev_recv(), false)));
            settle();
            chan.try_send(1).unwrap(); // handed to the dropper
            chan.try_send(2).unwrap(); // buffered
            assert_eq!(queues(&chan), (0, 0, 1));
            settle();
            assert_eq!(dropper.join()?, None, "dropped unpolled");
            assert_eq!(queues(&chan), (0, 0, 0));
            assert_eq!(chan.try_recv(), Ok(1));
            assert_eq!(chan.try_recv(), Ok(2));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn many_blocked_senders_are_served_in_order_with_their_values() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(2);
            let senders: Vec<_> = (0..20)
                .map(|n| {
                    let (c, d) = (chan.clone(), drops.clone());
                    spawn(move || c.send(counted(n, &d)))
                })
                .collect();
            settle();
            assert_eq!(chan.len(), 2);
            assert_eq!(
                queues(&chan),
                (18, 0, 18),
                "the others blocked, offers parked"
            );
            for n in 0..20 {
                assert_eq!(chan.try_recv().unwrap().n, n, "in order");
                // Each receive moves the first blocked sender's offer in.
                assert_eq!(chan.len(), 2.min(19 - n as usize));
                assert_eq!(queues(&chan).2, 18usize.saturating_sub(n as usize + 1));
            }
            assert_eq!(drops.get(), 20, "each value dropped once, by the receiver");
            settle();
            for sender in senders {
                sender.join()?;
            }
            assert_eq!(queues(&chan), (0, 0, 0));
            assert_eq!(drops.get(), 20);
            Ok(())
        })
        .unwrap();
    }

    /// On a rendezvous: two receivers handed a value each, not polled yet
    /// (they yield first), then `senders` blocked behind them: two values
    /// handed and `senders` offers parked, in that order. The receivers'
    /// and the senders' fibers, in that order (a sender's outcome as its
    /// value: a failed child would cancel the test's fiber).
    #[allow(clippy::type_complexity)]
    fn handed_then_offered(
        chan: &Chan<Counted>,
        drops: &Rc<Cell<u32>>,
        senders: u32,
    ) -> (
        Vec<crate::Fiber<Option<u32>>>,
        Vec<crate::Fiber<std::result::Result<(), ErrorKind>>>,
    ) {
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let c = chan.clone();
                spawn(move || Ok(crate::await_event(by_hand(c.ev_recv(), true))?.map(|v| v.n)))
            })
            .collect();
        settle();
        assert_eq!(queues(chan), (2, 2, 0));
        chan.try_send(counted(1, drops)).unwrap();
        chan.try_send(counted(2, drops)).unwrap();
        assert_eq!(queues(chan), (0, 0, 2), "handed, not polled yet");
        let senders: Vec<_> = (0..senders)
            .map(|n| {
                let (c, d) = (chan.clone(), drops.clone());
                spawn(move || Ok(c.send(counted(10 + n, &d)).map_err(|e| e.kind())))
            })
            .collect();
        // The receivers yield before they poll; the senders block.
        yield_now().expect("not cancelled");
        (receivers, senders)
    }

    #[test]
    fn a_claimed_senders_offer_is_found_behind_values_handed_to_receivers() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(0);
            let (receivers, senders) = handed_then_offered(&chan, &drops, 2);
            assert_eq!(queues(&chan), (2, 0, 4), "two handed values, two offers");
            assert_eq!(chan.try_recv()?.n, 10, "the first offer, behind them");
            assert_eq!(queues(&chan), (1, 0, 3));
            assert_eq!(chan.try_recv()?.n, 11);
            assert_eq!(queues(&chan), (0, 0, 2), "the handed values stay");
            assert_eq!(drops.get(), 2);
            settle();
            for (receiver, n) in receivers.into_iter().zip(1..) {
                assert_eq!(receiver.join()?, Some(n));
            }
            for sender in senders {
                assert_eq!(sender.join()?, Ok(()), "sent");
            }
            assert_eq!(queues(&chan), (0, 0, 0));
            assert_eq!(drops.get(), 4, "each value dropped once");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn close_with_blocked_senders_and_values_handed_to_receivers() {
        block_on(|| {
            let drops = Rc::new(Cell::new(0));
            let chan: Chan<Counted> = Chan::bounded(0);
            let (receivers, senders) = handed_then_offered(&chan, &drops, 3);
            assert_eq!(queues(&chan), (3, 0, 5));
            chan.close();
            assert_eq!(queues(&chan), (0, 0, 5), "every value still parked");
            assert_eq!(drops.get(), 0);
            settle();
            for (receiver, n) in receivers.into_iter().zip(1..) {
                assert_eq!(receiver.join()?, Some(n), "handed before the close");
            }
            for sender in senders {
                assert_eq!(sender.join()?, Err(ErrorKind::Closed));
            }
            assert_eq!(queues(&chan), (0, 0, 0));
            assert_eq!(drops.get(), 5, "each value dropped once");
            assert_eq!(chan.try_recv().unwrap_err(), TryRecvError::Closed);
            Ok(())
        })
        .unwrap();
    }
}
