//! [`OnceCell`]: a value initialised once, by one fiber at a time.
//!
//! The *turn* to initialise is held by at most one caller at a time
//! (`initializing`); the others wait in FIFO order. A turn that ends without
//! a value (the initialiser failed, panicked or was cancelled) is handed to
//! the first waiter, or given up if none waits. Once the value is set,
//! every waiter is woken and finds it.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::waiters::{unregister_handle, Waiters};
use crate::cancel::{CancelHandle, Unregister};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{wait_for, Event};
use crate::id::FiberId;
use crate::scheduler::context::with_current;
use crate::task::Wakeup;

/// A cell that is written once, for the fibers of one scheduler: the
/// fiber's `OnceCell`, whose initialiser may wait (sleep, receive, do I/O).
///
/// [`get_or_try_init`](OnceCell::get_or_try_init) runs one initialiser at
/// a time: fibers that come while it runs wait for it, and all get its
/// value. If it fails, panics or is cancelled, the first waiter (FIFO)
/// runs its own initialiser next, and so on.
///
/// `!Send` and `!Sync`, like [`Chan`](crate::Chan): for the fibers of one
/// scheduler; share it with an `Rc`.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use fuseau::sync::OnceCell;
///
/// fuseau::block_on(|| {
///     let config = Rc::new(OnceCell::new());
///     let loads = Rc::new(Cell::new(0));
///     let fibers: Vec<_> = (0..3)
///         .map(|_| {
///             let (config, loads) = (config.clone(), loads.clone());
///             fuseau::spawn(move || {
///                 let value = config.get_or_try_init(|| {
///                     loads.set(loads.get() + 1);
///                     fuseau::sleep(Duration::from_millis(1))?; // "loading"
///                     Ok(String::from("loaded"))
///                 })?;
///                 Ok(value.clone())
///             })
///         })
///         .collect();
///     for f in fibers {
///         assert_eq!(f.join()?, "loaded");
///     }
///     assert_eq!(loads.get(), 1); // one initialiser ran; the others waited
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::sync::OnceCell<u32>>();
/// ```
pub struct OnceCell<T> {
    value: std::cell::OnceCell<T>,
    state: Rc<RefCell<InitState>>,
}

struct InitState {
    /// The value is set.
    done: bool,
    /// A caller holds the turn to initialise (or it was handed to a
    /// waiter that has not taken it yet).
    initializing: bool,
    /// The fiber that holds the turn, if it runs in a fiber and has taken
    /// it (to catch an initialiser that waits for itself).
    initializer: Option<FiberId>,
    waiters: Waiters<()>,
}

impl InitState {
    /// The turn ends without a value: to the first waiter, or given up.
    fn pass_turn(&mut self) {
        self.initializer = None;
        if self.waiters.hand_to_first(()).is_none() {
            self.initializing = false;
        }
    }
}

impl Unregister for RefCell<InitState> {
    fn unregister(&self, id: u64) {
        self.borrow_mut().waiters.remove(id);
    }
}

fn current_fiber() -> Option<FiberId> {
    with_current(|task| task.header().id)
}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub fn new() -> OnceCell<T> {
        OnceCell {
            value: std::cell::OnceCell::new(),
            state: Rc::new(RefCell::new(InitState {
                done: false,
                initializing: false,
                initializer: None,
                waiters: Waiters::new(),
            })),
        }
    }

    /// The value, if it is set. Never blocks.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// The value, through a unique borrow, if it is set.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut()
    }

    /// `true` once the value is set.
    pub fn initialized(&self) -> bool {
        self.value.get().is_some()
    }

    /// Sets the value if it is not set and no initialiser is running.
    /// Never blocks; not a cancellation point. Fibers waiting for a value
    /// are woken by a successful initialiser, not by `set` (none waits
    /// while no initialiser runs).
    ///
    /// # Errors
    ///
    /// `Err(value)` if the cell holds a value or an initialiser is running
    /// (or about to run).
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = fuseau::sync::OnceCell::new();
    /// assert_eq!(cell.set(1), Ok(()));
    /// assert_eq!(cell.set(2), Err(2));
    /// assert_eq!(cell.get(), Some(&1));
    /// ```
    pub fn set(&self, value: T) -> std::result::Result<(), T> {
        let mut state = self.state.borrow_mut();
        if state.done || state.initializing {
            return Err(value);
        }
        state.done = true;
        drop(state);
        self.value.set(value)
    }

    /// The value, initialised by `f` if it is not set yet, as
    /// [`get_or_try_init`](OnceCell::get_or_try_init) with an initialiser
    /// that cannot fail (it may still wait, but cannot return an error).
    ///
    /// # Cancellation
    ///
    /// As [`get_or_try_init`](OnceCell::get_or_try_init).
    ///
    /// # Errors
    ///
    /// As [`get_or_try_init`](OnceCell::get_or_try_init).
    ///
    /// # Panics
    ///
    /// If `f` panics (the turn passes to the next waiter first).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = fuseau::block_on(|| {
    ///     let cell = fuseau::sync::OnceCell::new();
    ///     cell.get_or_init(|| 5).copied()
    /// })?;
    /// assert_eq!(v, 5);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> Result<&T> {
        self.init_with("OnceCell::get_or_init", || Ok(f()))
    }

    /// The value, initialised by `f` if it is not set yet.
    ///
    /// If the value is set, it is returned. Else, if no initialiser runs,
    /// this call runs `f` (which may wait); if another one runs, this call
    /// waits for it (in FIFO order with the other waiters). When `f`
    /// returns `Ok(v)`, `v` is stored and every waiter gets it. When `f`
    /// fails (or panics, or is cancelled), nothing is stored, the error is
    /// returned (the panic goes on), and the first waiter runs its own
    /// initialiser next.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (also when the value is set). Cancelled before
    /// the call, or while it waits for another initialiser, it returns the
    /// error and leaves the queue. Cancelled after the turn to initialise
    /// was handed to it but before it ran again, it runs `f`, whose first
    /// cancellation point fails, and the turn passes on. Cancelled while
    /// `f` runs, it is `f`'s business: its error passes the turn on.
    ///
    /// # Errors
    ///
    /// `f`'s error; the fiber's cancellation;
    /// [`ErrorKind::NotInFiber`] if it would wait outside a fiber;
    /// [`ErrorKind::Other`] if `f` itself asks for the cell's value (it
    /// would wait for itself forever).
    ///
    /// # Panics
    ///
    /// If `f` panics (the turn passes to the next waiter first).
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau::block_on(|| {
    ///     let cell = fuseau::sync::OnceCell::new();
    ///     let e = cell.get_or_try_init(|| Err(fuseau::Error::from("not yet")));
    ///     assert_eq!(e.unwrap_err().message(), "not yet");
    ///     assert_eq!(*cell.get_or_try_init(|| Ok(3))?, 3); // the next try
    ///     assert_eq!(*cell.get_or_try_init(|| Ok(4))?, 3); // set once
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn get_or_try_init(&self, f: impl FnOnce() -> Result<T>) -> Result<&T> {
        self.init_with("OnceCell::get_or_try_init", f)
    }

    fn init_with(&self, call: &'static str, f: impl FnOnce() -> Result<T>) -> Result<&T> {
        let turn = wait_for(
            TurnEvent {
                state: &self.state,
                id: None,
                call,
            },
            call,
        )?;
        if let Turn::Done = turn {
            return Ok(self.value.get().expect("done: the value is set"));
        }
        // Our turn: a failure, a panic or a cancellation passes it on.
        let turn = HeldTurn { state: &self.state };
        let value = f()?;
        std::mem::forget(turn);
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.done = true;
            state.initializing = false;
            state.initializer = None;
            state.waiters.take_all()
        };
        if self.value.set(value).is_err() {
            unreachable!("only the holder of the turn sets the value");
        }
        for waiter in waiters {
            waiter.wakeup.wake();
        }
        Ok(self.value.get().expect("set above"))
    }

    /// The value, if it is set.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        OnceCell::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("OnceCell")
            .field("value", &self.value.get())
            .field("initializing", &state.initializing)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The turn to initialise, held while the initialiser runs; dropped (the
/// initialiser failed or unwinds), it passes the turn on.
struct HeldTurn<'a> {
    state: &'a RefCell<InitState>,
}

impl Drop for HeldTurn<'_> {
    fn drop(&mut self) {
        self.state.borrow_mut().pass_turn();
    }
}

/// What a caller of `get_or_try_init` finds.
enum Turn {
    /// The value is set.
    Done,
    /// It holds the turn to initialise.
    Mine,
}

/// Waits for the value or for the turn to initialise.
struct TurnEvent<'a> {
    state: &'a Rc<RefCell<InitState>>,
    id: Option<u64>,
    call: &'static str,
}

impl Event for TurnEvent<'_> {
    type Output = Turn;

    fn poll(&mut self) -> Option<Result<Turn>> {
        let mut state = self.state.borrow_mut();
        let me = current_fiber();
        if let Some(id) = self.id.take() {
            if state.waiters.take_handed(id).is_some() {
                state.initializer = me;
                return Some(Ok(Turn::Mine));
            }
        }
        if state.done {
            return Some(Ok(Turn::Done));
        }
        if !state.initializing {
            state.initializing = true;
            state.initializer = me;
            return Some(Ok(Turn::Mine));
        }
        if me.is_some() && state.initializer == me {
            return Some(Err(Error::new(
                ErrorKind::Other,
                format!(
                    "{}: called from the cell's own initialiser, which would wait for itself",
                    self.call
                ),
            )));
        }
        None
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let id = self.state.borrow_mut().waiters.push(wakeup, ());
        self.id = Some(id);
        unregister_handle(self.state, id)
    }
}

impl Drop for TurnEvent<'_> {
    /// A turn handed over but never taken passes on.
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut state = self.state.borrow_mut();
            if state.waiters.take_handed(id).is_some() {
                state.pass_turn();
            }
        }
    }
}
