//! [`RwLock`]: a FIFO reader-writer lock for fibers, a [`Semaphore`] of
//! [`MAX_READERS`] permits around a `RefCell` (a reader takes one permit, a
//! writer all of them), as Tokio's `RwLock`.

use std::cell::{Ref, RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::semaphore::{Semaphore, SemaphorePermit, TryAcquireError};
use crate::error::{Error, ErrorKind, Result};
use crate::event::wait_for;

/// How many readers may hold the lock at once (a writer takes them all).
const MAX_READERS: usize = 1 << 30;

/// A reader-writer lock for the fibers of one scheduler: any number of
/// readers, or one writer.
///
/// **Fair, in FIFO order**: requests are served in the order they came. A
/// writer waits until the readers before it are done, and readers that come
/// after a waiting writer wait behind it, even while other readers hold the
/// lock; so a stream of readers can never starve a writer (nor writers the
/// readers). Consecutive readers at the head of the queue get the lock
/// together.
///
/// The guards release the lock when dropped, also when a panic unwinds (no
/// poisoning). `!Send` and `!Sync`, like [`Chan`](crate::Chan): for the
/// fibers of one scheduler; share it with an `Rc`. A fiber that asks for
/// the lock while it holds it in a conflicting mode waits for itself (a
/// deadlock that only its cancellation ends).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use fuseau::sync::RwLock;
///
/// fuseau::block_on(|| {
///     let config = Rc::new(RwLock::new(String::from("v1")));
///     let reader = {
///         let config = config.clone();
///         fuseau::spawn(move || {
///             let a = config.read()?;
///             let b = config.read()?; // readers share the lock
///             Ok(format!("{a} {b}"))
///         })
///     };
///     assert_eq!(reader.join()?, "v1 v1");
///     config.write()?.push_str("+patch");
///     assert_eq!(*config.read()?, "v1+patch");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::sync::RwLock<u32>>();
/// ```
pub struct RwLock<T: ?Sized> {
    sem: Semaphore,
    value: RefCell<T>,
}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::new(MAX_READERS),
            value: RefCell::new(value),
        }
    }

    /// The value (no lock needed: the lock is owned).
    ///
    /// ```
    /// assert_eq!(fuseau::sync::RwLock::new(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting (in FIFO order) until no writer holds the
    /// lock or waits before this call.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (also when the lock is free). Cancelled before
    /// the call or while waiting, it takes nothing and leaves the queue;
    /// those behind it are served. If the lock was handed over before the
    /// fiber ran again, it returns the guard (the next cancellation point
    /// fails).
    ///
    /// # Errors
    ///
    /// The fiber's cancellation; [`ErrorKind::NotInFiber`] if it would wait
    /// outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = fuseau::sync::RwLock::new(5);
    /// let n = fuseau::block_on(move || Ok(*lock.read()? + 1))?;
    /// assert_eq!(n, 6);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>> {
        let permit = wait_for(self.sem.ev_acquire_many(1), "RwLock::read")?;
        Ok(self.read_guard(permit))
    }

    /// Locks for writing, waiting (in FIFO order) until no reader or writer
    /// holds the lock.
    ///
    /// # Cancellation
    ///
    /// As [`read`](RwLock::read); a writer cancelled while waiting lets the
    /// readers queued behind it through.
    ///
    /// # Errors
    ///
    /// The fiber's cancellation; [`ErrorKind::NotInFiber`] if it would wait
    /// outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = fuseau::block_on(|| {
    ///     let lock = fuseau::sync::RwLock::new(5);
    ///     *lock.write()? += 1;
    ///     Ok(lock.into_inner())
    /// })?;
    /// assert_eq!(n, 6);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>> {
        let permit = wait_for(self.sem.ev_acquire_many(MAX_READERS), "RwLock::write")?;
        Ok(self.write_guard(permit))
    }

    /// Locks for reading if no writer holds the lock or waits for it.
    /// Never blocks; not a cancellation point.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] ("the lock is held by a writer") otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = fuseau::sync::RwLock::new(1);
    /// let r = lock.try_read()?;
    /// assert!(lock.try_read().is_ok() && lock.try_write().is_err());
    /// drop(r);
    /// assert!(lock.try_write().is_ok());
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>> {
        match self.sem.try_acquire_many(1) {
            Ok(permit) => Ok(self.read_guard(permit)),
            Err(e) => Err(busy(e, "the lock is held by a writer")),
        }
    }

    /// Locks for writing if nobody holds the lock or waits for it. Never
    /// blocks; not a cancellation point.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] ("the lock is held") otherwise.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>> {
        match self.sem.try_acquire_many(MAX_READERS) {
            Ok(permit) => Ok(self.write_guard(permit)),
            Err(e) => Err(busy(e, "the lock is held")),
        }
    }

    /// The value, through a unique borrow of the lock (no lock needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn read_guard<'a>(&'a self, permit: SemaphorePermit<'a>) -> RwLockReadGuard<'a, T> {
        RwLockReadGuard {
            // Never fails: a read permit excludes a writer's guard.
            value: self.value.borrow(),
            _permit: permit,
        }
    }

    fn write_guard<'a>(&'a self, permit: SemaphorePermit<'a>) -> RwLockWriteGuard<'a, T> {
        RwLockWriteGuard {
            // Never fails: a write permit excludes every other guard.
            value: self.value.borrow_mut(),
            _permit: permit,
        }
    }
}

fn busy(e: TryAcquireError, message: &'static str) -> Error {
    match e {
        TryAcquireError::NoPermits => Error::new(ErrorKind::Other, message),
        TryAcquireError::Closed => unreachable!("a lock's semaphore is never closed"),
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.value.try_borrow() {
            Ok(value) => d.field("data", &&*value),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// A shared lock of a [`RwLock`]: derefs to the value; dropping it (also
/// when a panic unwinds) releases it.
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    value: Ref<'a, T>,
    _permit: SemaphorePermit<'a>,
}

/// The exclusive lock of a [`RwLock`]: derefs (mutably) to the value;
/// dropping it (also when a panic unwinds) releases it.
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    value: RefMut<'a, T>,
    _permit: SemaphorePermit<'a>,
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
