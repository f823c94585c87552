//! [`Mutex`]: a FIFO lock for fibers, a [`Semaphore`] of one permit around
//! a `RefCell` (the permit makes the `RefCell`'s borrow always succeed).

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::semaphore::{AcquireEvent, Semaphore, SemaphorePermit, TryAcquireError};
use crate::cancel::CancelHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::task::Wakeup;

/// A mutual-exclusion lock for the fibers of one scheduler: a fiber that
/// waits for it suspends, and the thread runs other fibers meanwhile.
///
/// Waiters get the lock in FIFO order: unlocking hands it directly to the
/// first waiter, so no fiber can barge in ahead of those already waiting.
/// The lock is released when the [`MutexGuard`] is dropped, also when a
/// panic unwinds (there is no poisoning: the next holder sees the data as
/// the panicking fiber left it, as with Tokio's mutex).
///
/// Like [`Chan`](crate::Chan), a `Mutex` belongs to the fibers of one
/// scheduler: it is `!Send` and `!Sync` (no atomics, no thread ever blocks
/// on it). Share it with an `Rc`. A fiber that locks a mutex it already
/// holds waits for itself: a deadlock, which only its cancellation ends.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use fuseau::sync::Mutex;
///
/// let total = fuseau::block_on(|| {
///     let counter = Rc::new(Mutex::new(0));
///     let fibers: Vec<_> = (0..10)
///         .map(|_| {
///             let counter = counter.clone();
///             fuseau::spawn(move || {
///                 let mut n = counter.lock()?;
///                 let seen = *n;
///                 fuseau::yield_now()?; // others run, and wait for the lock
///                 *n = seen + 1;
///                 Ok(())
///             })
///         })
///         .collect();
///     for f in fibers {
///         f.join()?;
///     }
///     let n = *counter.lock()?;
///     Ok(n)
/// })?;
/// assert_eq!(total, 10);
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::sync::Mutex<u32>>();
/// ```
pub struct Mutex<T: ?Sized> {
    sem: Semaphore,
    value: RefCell<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::new(1),
            value: RefCell::new(value),
        }
    }

    /// The value (no lock needed: the mutex is owned).
    ///
    /// ```
    /// assert_eq!(fuseau::sync::Mutex::new(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting (in FIFO order) until it is free.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (also when the mutex is free). Cancelled before
    /// the call or while waiting, it does not take the lock and leaves the
    /// queue; the next waiter is served. If the lock was handed over before
    /// the fiber ran again, it returns the guard (the next cancellation
    /// point fails, and dropping the guard passes the lock on).
    ///
    /// # Errors
    ///
    /// The fiber's cancellation; [`ErrorKind::NotInFiber`] if it would wait
    /// outside a fiber (a free mutex is locked outside one too).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = fuseau::block_on(|| {
    ///     let m = fuseau::sync::Mutex::new(vec![1]);
    ///     m.lock()?.push(2);
    ///     Ok(m.into_inner())
    /// })?;
    /// assert_eq!(v, [1, 2]);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn lock(&self) -> Result<MutexGuard<'_, T>> {
        wait_for(self.ev_lock(), "Mutex::lock")
    }

    /// Locks the mutex if it is free. Never blocks; not a cancellation
    /// point.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] ("the mutex is locked") if it is locked (or
    /// handed to a waiter that has not run yet).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = fuseau::sync::Mutex::new(1);
    /// let guard = m.try_lock()?;
    /// assert!(m.try_lock().is_err());
    /// drop(guard);
    /// assert_eq!(*m.try_lock()?, 1);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>> {
        match self.sem.try_acquire() {
            Ok(permit) => Ok(self.guard(permit)),
            Err(TryAcquireError::NoPermits) => {
                Err(Error::new(ErrorKind::Other, "the mutex is locked"))
            }
            Err(TryAcquireError::Closed) => unreachable!("a mutex's semaphore is never closed"),
        }
    }

    /// The value, through a unique borrow of the mutex (no lock needed).
    ///
    /// ```
    /// let mut m = fuseau::sync::Mutex::new(1);
    /// *m.get_mut() += 1;
    /// assert_eq!(m.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// An event that locks the mutex (see [`select`](crate::select())); its
    /// output is the guard. Dropped after the lock was handed to it but
    /// before it gave out the guard, it passes the lock on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// fuseau::block_on(|| {
    ///     let m = fuseau::sync::Mutex::new(0);
    ///     let _held = m.lock()?;
    ///     let got = fuseau::select! {
    ///         ev(m.ev_lock()) -> g => g.map(|_| "locked"),
    ///         ev(fuseau::ev_timeout(Duration::from_millis(1))) -> _t => Ok("busy"),
    ///     }?;
    ///     assert_eq!(got, "busy");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_lock(&self) -> LockEvent<'_, T> {
        LockEvent {
            mutex: self,
            acquire: self.sem.ev_acquire(),
        }
    }

    fn guard<'a>(&'a self, permit: SemaphorePermit<'a>) -> MutexGuard<'a, T> {
        MutexGuard {
            // Never fails: the permit excludes every other guard.
            value: self.value.borrow_mut(),
            _permit: permit,
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.value.try_borrow() {
            Ok(value) => d.field("data", &&*value),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// The lock of a [`Mutex`], held while this lives: derefs to the value.
/// Dropping it (also when a panic unwinds) unlocks the mutex, handing it
/// to the first waiter.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    // Declared first: the borrow ends before the permit goes back.
    value: RefMut<'a, T>,
    _permit: SemaphorePermit<'a>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The event of [`Mutex::ev_lock`]: resolves to the guard.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct LockEvent<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    acquire: AcquireEvent<'a>,
}

impl<'a, T: ?Sized> Event for LockEvent<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(&mut self) -> Option<Result<MutexGuard<'a, T>>> {
        let permit = self.acquire.poll()?;
        Some(permit.map(|p| self.mutex.guard(p)))
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.acquire.wait(wakeup)
    }
}

impl<T: ?Sized> fmt::Debug for LockEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockEvent").finish_non_exhaustive()
    }
}
