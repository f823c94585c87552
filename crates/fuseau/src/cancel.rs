//! Cancellation helpers: [`CancelHandle`] and [`with_cancel_callback`].
//!
//! Cancellation itself is part of every fiber (see [`AnyFiber::cancel`](crate::AnyFiber::cancel)
//! and the crate docs): cooperative, delivered at suspension points, sticky.

use std::fmt;
use std::rc::Weak;

use crate::error::Error;
use crate::scheduler::context::with_current;
use crate::task::Header;

/// Undoes a registration (a timer, a waiter in a queue …) when cancelled.
///
/// Dropping it without calling [`cancel`](CancelHandle::cancel) leaves the
/// registration in place.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
///
/// let undone = Rc::new(Cell::new(false));
/// let u = undone.clone();
/// let handle = fuseau::CancelHandle::new(move || u.set(true));
/// handle.cancel();
/// assert!(undone.get());
/// fuseau::CancelHandle::dummy().cancel(); // does nothing
/// ```
#[must_use = "dropping a CancelHandle does not cancel; call .cancel()"]
pub struct CancelHandle {
    undo: Undo,
}

/// What a [`CancelHandle`] undoes.
enum Undo {
    Nothing,
    Closure(Box<dyn FnOnce()>),
    /// `Unregister::unregister(token)` on a registry, if it still exists:
    /// the crate's own events (channel waiters) use it, so that a wait
    /// costs no allocation for its handle.
    Registry(Weak<dyn Unregister>, u64),
}

/// A registry of waiters that a [`CancelHandle`] can remove one from.
pub(crate) trait Unregister {
    /// Removes the registration `token` (if it is still there).
    fn unregister(&self, token: u64);
}

impl CancelHandle {
    /// A handle that runs `cancel` when cancelled.
    pub fn new(cancel: impl FnOnce() + 'static) -> CancelHandle {
        CancelHandle {
            undo: Undo::Closure(Box::new(cancel)),
        }
    }

    /// A handle with nothing to undo.
    pub fn dummy() -> CancelHandle {
        CancelHandle {
            undo: Undo::Nothing,
        }
    }

    /// A handle that removes registration `token` from `registry`, unless
    /// the registry is gone by then. Allocates nothing.
    pub(crate) fn unregister(registry: Weak<dyn Unregister>, token: u64) -> CancelHandle {
        CancelHandle {
            undo: Undo::Registry(registry, token),
        }
    }

    /// Undoes the registration.
    pub fn cancel(self) {
        match self.undo {
            Undo::Nothing => {}
            Undo::Closure(cancel) => cancel(),
            Undo::Registry(registry, token) => {
                if let Some(registry) = registry.upgrade() {
                    registry.unregister(token);
                }
            }
        }
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("dummy", &matches!(self.undo, Undo::Nothing))
            .finish()
    }
}

/// Runs `f`; if the running fiber is cancelled while `f` runs, `callback`
/// runs once, with the cancellation error, at the moment of cancellation
/// (on whatever code cancels: another fiber, a timer, the scheduler), once
/// the whole subtree being cancelled is marked. If the fiber is already
/// cancelled, `callback` runs at once. When `f` returns (or unwinds), the
/// callback is removed. Scopes nest; inner callbacks run first. A callback
/// that panics fails the fiber with
/// [`ErrorKind::Panicked`](crate::ErrorKind::Panicked).
///
/// A callback **cannot wait**: it runs on the stack of whatever cancels,
/// which must not be paused by it ([`AnyFiber::cancel`](crate::AnyFiber::cancel)
/// returns at once), so every suspension point called from it fails at once
/// with [`ErrorKind::Other`](crate::ErrorKind::Other). Use it to signal
/// (close a channel, cancel a future, set a flag), not to clean up at
/// length.
///
/// Not a cancellation point itself.
///
/// # Panics
///
/// Outside a fiber, naming `with_cancel_callback`.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
///
/// let seen = Rc::new(RefCell::new(None));
/// let s = seen.clone();
/// let result = fuseau::block_on(move || {
///     fuseau::cancel_after(Duration::from_millis(1))?;
///     fuseau::with_cancel_callback(
///         move |e| *s.borrow_mut() = Some(e.kind()),
///         || fuseau::sleep(Duration::from_secs(60)),
///     )
/// });
/// assert!(result.unwrap_err().is_timeout());
/// assert_eq!(*seen.borrow(), Some(fuseau::ErrorKind::Timeout));
/// ```
pub fn with_cancel_callback<R>(
    callback: impl FnOnce(&Error) + 'static,
    f: impl FnOnce() -> R,
) -> R {
    struct Remove<'a> {
        header: &'a Header,
        token: u64,
    }
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            drop(self.header.remove_callback(self.token));
        }
    }
    let ran = with_current(move |me| {
        let header = me.header();
        if let Some(e) = header.cancel_error() {
            crate::task::forbid_waits(|| callback(&e));
            return f();
        }
        let token = header.add_callback(Box::new(callback));
        let _remove = Remove { header, token };
        f()
    });
    ran.unwrap_or_else(|| panic!("with_cancel_callback must be called from inside a fiber"))
}
