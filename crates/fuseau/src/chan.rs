//! Channels between fibers of one scheduler: [`Chan`].
//!
//! # How values move
//!
//! A channel has a buffer (unbounded, bounded, or none for a rendezvous) and
//! two queues of waiting fibers. A waiting receiver is handed a value
//! directly by the sender that comes along; a waiting sender's value is taken
//! directly by a receiver (or moved into the buffer when room frees up).
//!
//! A waiter may be part of a [`select`](crate::select()) with other branches,
//! so handing it a value first *claims* its wait ([`Wakeup::claim`]): only
//! one branch of a wait can be claimed, and the select then reports that
//! branch. A waiter that cannot be claimed (its wait ended, or another
//! branch won) is skipped and dropped. So a value is never both delivered
//! and reported unsent, and never delivered twice.
//!
//! Invariant: receivers wait only while the buffer is empty, and senders
//! only while it is full (for a rendezvous: always, until a receiver comes).

use std::cell::{Cell, RefCell};
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
    closed: bool,
    receivers: VecDeque<Waiter<T>>,
    senders: VecDeque<Waiter<T>>,
    next_waiter: u64,
    /// The slot of a finished event, for the next one to wait with: a
    /// channel waited on in a loop allocates its slot once. (One, not a
    /// list: keeping it must not allocate either.)
    free_slot: Option<Slot<T>>,
}

/// The capacity of an unbounded channel: `buffer.len() < UNBOUNDED` always
/// holds, so the bounded check serves both kinds.
const UNBOUNDED: usize = usize::MAX;

/// A fiber waiting on the channel. For a receiver, `slot` is where a sender
/// puts the value; for a sender, it holds the value to take.
struct Waiter<T> {
    id: u64,
    wakeup: Wakeup,
    slot: Slot<T>,
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
        while let Some(receiver) = self.receivers.pop_front() {
            if receiver.wakeup.claim() {
                receiver.slot.set(Some(value));
                return Ok(());
            }
        }
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
            if let Some(v) = self.claim_sender() {
                self.buffer.push_back(v);
            }
            return Ok(value);
        }
        if let Some(v) = self.claim_sender() {
            return Ok(v);
        }
        if self.closed {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    fn claim_sender(&mut self) -> Option<T> {
        while let Some(sender) = self.senders.pop_front() {
            if sender.wakeup.claim() {
                return sender.slot.take();
            }
        }
        None
    }

    fn add_waiter(&mut self, receiving: bool, wakeup: Wakeup, slot: Slot<T>) -> u64 {
        let id = self.next_waiter;
        self.next_waiter += 1;
        let queue = if receiving {
            &mut self.receivers
        } else {
            &mut self.senders
        };
        if queue.capacity() == 0 {
            // Most channels have one waiter at a time (often a fiber blocked
            // on a channel of its own): start with room for one, not the
            // four a `VecDeque` would allocate.
            queue.reserve_exact(1);
        }
        queue.push_back(Waiter { id, wakeup, slot });
        id
    }

    fn remove_waiter(&mut self, receiving: bool, id: u64) {
        let queue = if receiving {
            &mut self.receivers
        } else {
            &mut self.senders
        };
        if let Some(i) = queue.iter().position(|w| w.id == id) {
            queue.remove(i);
        }
    }
}

/// A registration's token: the waiter's id, and which queue it is in (the
/// low bit).
impl<T> Unregister for RefCell<State<T>> {
    fn unregister(&self, token: u64) {
        self.borrow_mut().remove_waiter(token & 1 == 1, token >> 1);
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
                closed: false,
                receivers: VecDeque::new(),
                senders: VecDeque::new(),
                next_waiter: 0,
                free_slot: None,
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

    /// A slot for an event to wait with: the free one, or a new one.
    fn slot(&self) -> Slot<T> {
        let free = self.state.borrow_mut().free_slot.take();
        free.unwrap_or_default()
    }

    /// Keeps the (empty) slot of a finished event for reuse, if nobody else
    /// holds it and no slot is kept yet.
    fn recycle(&self, slot: Slot<T>) {
        if Rc::strong_count(&slot) == 1 {
            let mut state = self.state.borrow_mut();
            if state.free_slot.is_none() {
                state.free_slot = Some(slot);
            }
        }
    }

    /// Queues a waiter; the handle removes it again.
    fn add_waiter(&self, receiving: bool, wakeup: Wakeup, slot: Slot<T>) -> CancelHandle {
        let id = self.state.borrow_mut().add_waiter(receiving, wakeup, slot);
        let registry: Weak<RefCell<State<T>>> = Rc::downgrade(&self.state);
        CancelHandle::unregister(registry, id << 1 | u64::from(receiving))
    }

    /// Closes the channel: sends fail from now on; receivers get the values
    /// still buffered, then [`ErrorKind::Closed`]. Every blocked sender and
    /// receiver is woken (senders with `Closed`, their values dropped).
    /// Idempotent; never blocks.
    pub fn close(&self) {
        let (receivers, senders) = {
            let mut state = self.state.borrow_mut();
            state.closed = true;
            (
                std::mem::take(&mut state.receivers),
                std::mem::take(&mut state.senders),
            )
        };
        for waiter in receivers.into_iter().chain(senders) {
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
            shared: None,
        }
    }

    /// An event that receives a value (see [`select`](crate::select())).
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_recv(&self) -> RecvEvent<T> {
        RecvEvent {
            chan: self.clone(),
            shared: None,
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
            .field("blocked_senders", &state.senders.len())
            .field("blocked_receivers", &state.receivers.len())
            .finish()
    }
}

/// The event of [`Chan::ev_send`]: resolves to `Ok(())` once the value is
/// sent, or `Err(Closed)`.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct SendEvent<T: 'static> {
    chan: Chan<T>,
    /// The value, while no waiting receiver can reach it.
    value: Option<T>,
    /// Where the value waits while the event is registered, shared with the
    /// channel's queue of senders; allocated at the first wait only, so an
    /// event that completes at once allocates nothing.
    shared: Option<Slot<T>>,
}

/// A value handed between a waiting fiber's event and the channel.
type Slot<T> = Rc<Cell<Option<T>>>;

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

/// Takes the value out of an event's slot, if it has one with a value.
fn take_from<T>(shared: &Option<Slot<T>>) -> Option<T> {
    shared.as_ref().and_then(|slot| slot.take())
}

impl<T: 'static> Event for SendEvent<T> {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        let value = self.value.take().or_else(|| take_from(&self.shared));
        let Some(value) = value else {
            // A receiver claimed our registration and took the value.
            return Some(Ok(()));
        };
        send_outcome(self.chan.try_send(value), &mut self.value)
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        if self.shared.is_none() {
            self.shared = Some(self.chan.slot());
        }
        let slot = self.shared.clone().expect("set above");
        slot.set(self.value.take());
        self.chan.add_waiter(false, wakeup, slot)
    }
}

/// The event of [`Chan::ev_recv`]: resolves to the value, or `Err(Closed)`
/// once the channel is closed and drained.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct RecvEvent<T: 'static> {
    chan: Chan<T>,
    /// Where a sender that claims our registration puts the value, shared
    /// with the channel's queue of receivers; allocated at the first wait.
    shared: Option<Slot<T>>,
}

impl<T: 'static> Drop for RecvEvent<T> {
    /// A value handed over to this event but never polled out (only
    /// possible when the event is driven by hand, not by `select`) goes
    /// back to the front of the channel rather than being lost.
    fn drop(&mut self) {
        if let Some(value) = take_from(&self.shared) {
            self.chan.state.borrow_mut().buffer.push_front(value);
        }
        if let Some(slot) = self.shared.take() {
            self.chan.recycle(slot);
        }
    }
}

impl<T: 'static> Drop for SendEvent<T> {
    /// An unsent value is dropped here, with no borrow held; the slot is
    /// kept for reuse.
    fn drop(&mut self) {
        drop(take_from(&self.shared));
        if let Some(slot) = self.shared.take() {
            self.chan.recycle(slot);
        }
    }
}

impl<T: 'static> Event for RecvEvent<T> {
    type Output = T;

    fn poll(&mut self) -> Option<Result<T>> {
        if let Some(value) = take_from(&self.shared) {
            return Some(Ok(value));
        }
        match self.chan.try_recv() {
            Ok(value) => Some(Ok(value)),
            Err(TryRecvError::Closed) => Some(Err(closed())),
            Err(TryRecvError::Empty) => None,
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        if self.shared.is_none() {
            self.shared = Some(self.chan.slot());
        }
        let slot = self.shared.clone().expect("set above");
        self.chan.add_waiter(true, wakeup, slot)
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
