//! [`Semaphore`]: a FIFO counting semaphore for fibers; the [`Mutex`] and
//! the [`RwLock`] are built on it.
//!
//! Invariant: a fiber waits only while its request cannot be served in
//! order: the queue is empty or its head asks for more permits than are
//! available. Every change that could serve the head (permits released or
//! added, the head leaving the queue) runs [`SemState::serve`].
//!
//! [`Mutex`]: super::Mutex
//! [`RwLock`]: super::RwLock

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::waiters::{unregister_handle, Waiters};
use crate::cancel::{CancelHandle, Unregister};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::task::Wakeup;

/// A counting semaphore for the fibers of one scheduler.
///
/// It holds a number of permits; [`acquire`](Semaphore::acquire) takes one
/// (suspending the fiber until one is available), and the
/// [`SemaphorePermit`] gives it back when dropped. Waiters are served in
/// strict FIFO order: a big [`acquire_many`](Semaphore::acquire_many) at
/// the head of the queue holds back smaller requests behind it, even when
/// there would be enough permits for them (as Tokio's semaphore), so a big
/// request is never starved.
///
/// Like [`Chan`](crate::Chan), a semaphore belongs to the fibers of one
/// scheduler: it is `!Send` and `!Sync`; share it between fibers with an
/// `Rc` (or by reference, where the fibers may borrow it).
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use fuseau::sync::Semaphore;
///
/// fuseau::block_on(|| {
///     let sem = Rc::new(Semaphore::new(2));
///     let busy = Rc::new(Cell::new(0));
///     let most = Rc::new(Cell::new(0));
///     let workers: Vec<_> = (0..5)
///         .map(|_| {
///             let (sem, busy, most) = (sem.clone(), busy.clone(), most.clone());
///             fuseau::spawn(move || {
///                 let _permit = sem.acquire()?; // at most 2 at a time
///                 busy.set(busy.get() + 1);
///                 most.set(most.get().max(busy.get()));
///                 fuseau::sleep(Duration::from_millis(1))?;
///                 busy.set(busy.get() - 1);
///                 Ok(())
///             })
///         })
///         .collect();
///     for w in workers {
///         w.join()?;
///     }
///     assert_eq!(most.get(), 2);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::sync::Semaphore>();
/// ```
pub struct Semaphore {
    state: Rc<RefCell<SemState>>,
}

struct SemState {
    permits: usize,
    closed: bool,
    /// Each waiter asks for a number of permits.
    waiters: Waiters<usize>,
}

impl SemState {
    /// Hands permits to the waiters at the head of the queue while there
    /// are enough for the head's request (FIFO: a head that asks for more
    /// holds back everyone behind it).
    fn serve(&mut self) {
        while let Some(head) = self.waiters.front() {
            let n = head.request;
            if n > self.permits {
                break;
            }
            let head = self.waiters.pop_front().expect("front exists");
            if head.wakeup.claim() {
                self.permits -= n;
                self.waiters.hand(head.id, n);
            }
        }
    }

    fn release(&mut self, n: usize) {
        self.permits = self
            .permits
            .checked_add(n)
            .filter(|&p| p <= Semaphore::MAX_PERMITS)
            .unwrap_or_else(|| panic!("Semaphore: more than Semaphore::MAX_PERMITS permits"));
        self.serve();
    }

    fn try_acquire(&mut self, n: usize) -> std::result::Result<(), TryAcquireError> {
        if self.closed {
            Err(TryAcquireError::Closed)
        } else if self.waiters.is_empty() && self.permits >= n {
            self.permits -= n;
            Ok(())
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }
}

impl Unregister for RefCell<SemState> {
    fn unregister(&self, id: u64) {
        let mut state = self.borrow_mut();
        // The head leaving may let those behind it through.
        if state.waiters.remove(id) {
            state.serve();
        }
    }
}

/// Why [`Semaphore::try_acquire`] did not acquire.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryAcquireError {
    /// The semaphore is closed.
    Closed,
    /// Not enough permits are available, or other fibers are waiting for
    /// them first.
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("the semaphore is closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}

impl std::error::Error for TryAcquireError {}

impl From<TryAcquireError> for Error {
    fn from(e: TryAcquireError) -> Error {
        match e {
            TryAcquireError::Closed => closed(),
            TryAcquireError::NoPermits => Error::new(ErrorKind::Other, "no permits available"),
        }
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the semaphore is closed")
}

impl Semaphore {
    /// The most permits a semaphore can hold (as Tokio's, `usize::MAX >> 3`).
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    pub fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= Semaphore::MAX_PERMITS,
            "Semaphore::new: more than Semaphore::MAX_PERMITS permits"
        );
        Semaphore {
            state: Rc::new(RefCell::new(SemState {
                permits,
                closed: false,
                waiters: Waiters::new(),
            })),
        }
    }

    /// How many permits are available now: neither held nor handed to a
    /// waiter. While the waiter at the head of the queue asks for more than
    /// this, they stay unused (FIFO).
    pub fn available_permits(&self) -> usize {
        self.state.borrow().permits
    }

    /// Adds `n` permits, and serves waiters (in order) that can be served
    /// now. Never blocks; not a cancellation point.
    ///
    /// # Panics
    ///
    /// If the semaphore would hold more than
    /// [`MAX_PERMITS`](Semaphore::MAX_PERMITS) permits.
    pub fn add_permits(&self, n: usize) {
        self.state.borrow_mut().release(n);
    }

    /// Acquires one permit, waiting until it is this fiber's turn and one
    /// is available. Same as [`acquire_many(1)`](Semaphore::acquire_many).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled before the call or while waiting, it
    /// takes no permit and leaves the queue, and the waiters behind it are
    /// served as if it had never asked. If the permit was handed over
    /// before the fiber ran again, it returns the permit (the next
    /// cancellation point fails).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] if the semaphore is (or gets) closed before a
    /// permit is handed over; the fiber's cancellation;
    /// [`ErrorKind::NotInFiber`] if it would wait outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau::block_on(|| {
    ///     let sem = fuseau::sync::Semaphore::new(1);
    ///     let permit = sem.acquire()?;
    ///     assert_eq!(sem.available_permits(), 0);
    ///     drop(permit);
    ///     assert_eq!(sem.available_permits(), 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<SemaphorePermit<'_>> {
        wait_for(self.ev_acquire_many(1), "Semaphore::acquire")
    }

    /// Acquires `n` permits at once, waiting until it is this fiber's turn
    /// and `n` are available. While it waits at the head of the queue, it
    /// holds back every request behind it. `n == 0` succeeds without
    /// waiting (still a cancellation point).
    ///
    /// # Cancellation
    ///
    /// As [`acquire`](Semaphore::acquire): all or nothing; a cancelled
    /// waiter takes no permit.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Semaphore::acquire); and [`ErrorKind::Other`] if `n`
    /// exceeds [`MAX_PERMITS`](Semaphore::MAX_PERMITS) (it could never be
    /// served).
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau::block_on(|| {
    ///     let sem = fuseau::sync::Semaphore::new(5);
    ///     let permit = sem.acquire_many(3)?;
    ///     assert_eq!((permit.num_permits(), sem.available_permits()), (3, 2));
    ///     drop(permit);
    ///     assert_eq!(sem.available_permits(), 5);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>> {
        wait_for(self.ev_acquire_many(n), "Semaphore::acquire_many")
    }

    /// Acquires one permit if one is available and no fiber waits for
    /// permits first. Never blocks; not a cancellation point.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau::sync::{Semaphore, TryAcquireError};
    ///
    /// let sem = Semaphore::new(1);
    /// let permit = sem.try_acquire()?;
    /// assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    /// drop(permit);
    /// assert!(sem.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire(&self) -> std::result::Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Acquires `n` permits if they are available and no fiber waits for
    /// permits first. Never blocks; not a cancellation point.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
    pub fn try_acquire_many(
        &self,
        n: usize,
    ) -> std::result::Result<SemaphorePermit<'_>, TryAcquireError> {
        self.state.borrow_mut().try_acquire(n)?;
        Ok(SemaphorePermit { sem: self, n })
    }

    /// Closes the semaphore: every waiting fiber is woken and fails with
    /// [`ErrorKind::Closed`], and so does every later acquisition. Permits
    /// already held (or handed to a waiter) stay valid and are returned as
    /// usual. Idempotent; never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = fuseau::block_on(|| {
    ///     let sem = fuseau::sync::Semaphore::new(1);
    ///     sem.close();
    ///     sem.acquire().map(drop)
    /// })
    /// .unwrap_err();
    /// assert!(e.is_closed());
    /// ```
    pub fn close(&self) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.closed = true;
            state.waiters.take_all()
        };
        for waiter in waiters {
            waiter.wakeup.wake();
        }
    }

    /// `true` once [`close`](Semaphore::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// An event that acquires one permit (see [`select`](crate::select())).
    /// Its output is the permit.
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_acquire(&self) -> AcquireEvent<'_> {
        self.ev_acquire_many(1)
    }

    /// An event that acquires `n` permits at once (see
    /// [`select`](crate::select())).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fuseau::sync::Semaphore;
    ///
    /// fuseau::block_on(|| {
    ///     let sem = Semaphore::new(1);
    ///     let _held = sem.acquire()?;
    ///     let got = fuseau::select! {
    ///         ev(sem.ev_acquire_many(1)) -> p => p.map(|_| "permit"),
    ///         ev(fuseau::ev_timeout(Duration::from_millis(1))) -> _t => Ok("timed out"),
    ///     }?;
    ///     assert_eq!(got, "timed out");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_acquire_many(&self, n: usize) -> AcquireEvent<'_> {
        AcquireEvent {
            sem: self,
            n,
            id: None,
        }
    }

    /// Gives back `n` permits (a permit dropped, or handed to an event that
    /// never took it).
    fn release(&self, n: usize) {
        if n > 0 {
            self.state.borrow_mut().release(n);
        }
    }
}

impl Default for Semaphore {
    /// A semaphore with no permits.
    fn default() -> Self {
        Semaphore::new(0)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Semaphore")
            .field("permits", &state.permits)
            .field("closed", &state.closed)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// Permits acquired from a [`Semaphore`]; dropping it gives them back (also
/// when a panic unwinds), and the next waiters are served.
#[must_use = "dropping the permit gives it back at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Keeps the permits out of the semaphore for good (they are not given
    /// back on drop).
    ///
    /// ```
    /// let sem = fuseau::sync::Semaphore::new(2);
    /// sem.try_acquire()?.forget();
    /// assert_eq!(sem.available_permits(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.n);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

/// The event of [`Semaphore::ev_acquire`] and
/// [`Semaphore::ev_acquire_many`]: resolves to the permits, or
/// `Err(Closed)`. Dropped after permits were handed to it but before it
/// gave them out, it gives them back.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct AcquireEvent<'a> {
    sem: &'a Semaphore,
    n: usize,
    /// The id of this event's last registration in the queue.
    id: Option<u64>,
}

impl<'a> AcquireEvent<'a> {
    fn permit(&self) -> SemaphorePermit<'a> {
        SemaphorePermit {
            sem: self.sem,
            n: self.n,
        }
    }
}

impl<'a> Event for AcquireEvent<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(&mut self) -> Option<Result<SemaphorePermit<'a>>> {
        let mut state = self.sem.state.borrow_mut();
        // Handed over while registered (our registration is undone by now).
        if let Some(id) = self.id.take() {
            if state.waiters.take_handed(id).is_some() {
                drop(state);
                return Some(Ok(self.permit()));
            }
        }
        if self.n > Semaphore::MAX_PERMITS {
            return Some(Err(Error::new(
                ErrorKind::Other,
                "Semaphore::acquire_many: more than Semaphore::MAX_PERMITS permits asked for",
            )));
        }
        match state.try_acquire(self.n) {
            Ok(()) => {
                drop(state);
                Some(Ok(self.permit()))
            }
            Err(TryAcquireError::Closed) => Some(Err(closed())),
            Err(TryAcquireError::NoPermits) => None,
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let id = self.sem.state.borrow_mut().waiters.push(wakeup, self.n);
        self.id = Some(id);
        unregister_handle(&self.sem.state, id)
    }
}

impl Drop for AcquireEvent<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let handed = self.sem.state.borrow_mut().waiters.take_handed(id);
            if let Some(n) = handed {
                self.sem.release(n);
            }
        }
    }
}

impl fmt::Debug for AcquireEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireEvent")
            .field("permits", &self.n)
            .finish_non_exhaustive()
    }
}
