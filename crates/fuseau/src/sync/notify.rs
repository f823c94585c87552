//! [`Notify`]: wakes waiting fibers, one or all, with one stored permit
//! (Tokio's `Notify`, for fibers).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::waiters::{unregister_handle, Waiters};
use crate::cancel::{CancelHandle, Unregister};
use crate::error::Result;
use crate::event::{wait_for, Event};
use crate::task::Wakeup;

/// Notifies fibers of one scheduler that something happened.
///
/// [`notify_one`](Notify::notify_one) wakes the fiber that has waited
/// longest in [`notified`](Notify::notified); if none waits, it stores a
/// single permit, which the next `notified` consumes without waiting
/// (several calls with nobody waiting still store one permit).
/// [`notify_all`](Notify::notify_all) wakes every fiber waiting at that
/// moment, and stores nothing. As Tokio's `Notify`.
///
/// `!Send` and `!Sync`, like [`Chan`](crate::Chan): for the fibers of one
/// scheduler; share it with an `Rc`.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use fuseau::sync::Notify;
///
/// fuseau::block_on(|| {
///     let ready = Rc::new(Notify::new());
///     let data = Rc::new(Cell::new(0));
///     let consumer = {
///         let (ready, data) = (ready.clone(), data.clone());
///         fuseau::spawn(move || {
///             ready.notified()?; // waits for the producer
///             Ok(data.get())
///         })
///     };
///     fuseau::yield_now()?; // the consumer is waiting now
///     data.set(42);
///     ready.notify_one();
///     assert_eq!(consumer.join()?, 42);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::sync::Notify>();
/// ```
pub struct Notify {
    state: Rc<RefCell<NotifyState>>,
}

struct NotifyState {
    permit: bool,
    /// What a waiter was handed: `true` for a `notify_one` (passed on if
    /// its event is dropped without taking it), `false` for `notify_all`.
    waiters: Waiters<bool>,
}

impl NotifyState {
    fn notify_one(&mut self) {
        if self.waiters.hand_to_first(true).is_none() {
            self.permit = true;
        }
    }
}

impl Unregister for RefCell<NotifyState> {
    fn unregister(&self, id: u64) {
        self.borrow_mut().waiters.remove(id);
    }
}

impl Notify {
    /// A `Notify` with no permit stored.
    pub fn new() -> Notify {
        Notify {
            state: Rc::new(RefCell::new(NotifyState {
                permit: false,
                waiters: Waiters::new(),
            })),
        }
    }

    /// Waits for a notification: consumes the stored permit if there is
    /// one, else waits for [`notify_one`](Notify::notify_one) (served in
    /// FIFO order) or [`notify_all`](Notify::notify_all).
    ///
    /// # Cancellation
    ///
    /// A cancellation point (also when a permit is stored, which it then
    /// leaves stored). Cancelled before the call or while waiting, it
    /// consumes nothing and leaves the queue: a later `notify_one` goes to
    /// the next waiter. If a notification was handed over before the fiber
    /// ran again, it returns `Ok` (the next cancellation point fails).
    ///
    /// # Errors
    ///
    /// The fiber's cancellation; [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber)
    /// if it would wait outside a fiber (a stored permit is consumed outside
    /// one too).
    ///
    /// # Examples
    ///
    /// ```
    /// let n = fuseau::sync::Notify::new();
    /// n.notify_one(); // nobody waits: a permit is stored
    /// fuseau::block_on(move || n.notified())?; // consumed without waiting
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn notified(&self) -> Result<()> {
        wait_for(self.ev_notified(), "Notify::notified")
    }

    /// Wakes the fiber that has waited longest in
    /// [`notified`](Notify::notified); stores a permit if none waits. Never
    /// blocks; not a cancellation point.
    pub fn notify_one(&self) {
        self.state.borrow_mut().notify_one();
    }

    /// Wakes every fiber waiting in [`notified`](Notify::notified) now.
    /// Stores no permit, and does not consume one. Never blocks; not a
    /// cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    ///
    /// fuseau::block_on(|| {
    ///     let go = Rc::new(fuseau::sync::Notify::new());
    ///     let waiters: Vec<_> = (0..3)
    ///         .map(|_| {
    ///             let go = go.clone();
    ///             fuseau::spawn(move || go.notified())
    ///         })
    ///         .collect();
    ///     fuseau::yield_now()?;
    ///     go.notify_all();
    ///     for w in waiters {
    ///         w.join()?;
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn notify_all(&self) {
        let mut state = self.state.borrow_mut();
        for waiter in state.waiters.take_all() {
            if waiter.wakeup.claim() {
                state.waiters.hand(waiter.id, false);
            }
        }
    }

    /// An event that waits for a notification (see
    /// [`select`](crate::select())), as [`notified`](Notify::notified).
    /// Dropped after a `notify_one` was handed to it but before it
    /// completed, it passes the notification on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let got = fuseau::block_on(|| {
    ///     let n = fuseau::sync::Notify::new();
    ///     fuseau::select! {
    ///         ev(n.ev_notified()) -> r => r.map(|()| "notified"),
    ///         ev(fuseau::ev_timeout(Duration::from_millis(1))) -> _t => Ok("quiet"),
    ///     }
    /// })?;
    /// assert_eq!(got, "quiet");
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    #[must_use = "an event does nothing until it is waited for (await_event, select)"]
    pub fn ev_notified(&self) -> NotifiedEvent<'_> {
        NotifiedEvent {
            notify: self,
            id: None,
        }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Notify")
            .field("permit", &state.permit)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The event of [`Notify::ev_notified`]: resolves to `()` once notified.
#[must_use = "an event does nothing until it is waited for (await_event, select)"]
pub struct NotifiedEvent<'a> {
    notify: &'a Notify,
    /// The id of this event's last registration in the queue.
    id: Option<u64>,
}

impl Event for NotifiedEvent<'_> {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        let mut state = self.notify.state.borrow_mut();
        if let Some(id) = self.id.take() {
            if state.waiters.take_handed(id).is_some() {
                return Some(Ok(()));
            }
        }
        if std::mem::take(&mut state.permit) {
            return Some(Ok(()));
        }
        None
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let id = self.notify.state.borrow_mut().waiters.push(wakeup, false);
        self.id = Some(id);
        unregister_handle(&self.notify.state, id)
    }
}

impl Drop for NotifiedEvent<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut state = self.notify.state.borrow_mut();
            if state.waiters.take_handed(id) == Some(true) {
                state.notify_one();
            }
        }
    }
}

impl fmt::Debug for NotifiedEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifiedEvent").finish_non_exhaustive()
    }
}
