//! [`Barrier`]: fibers wait until `n` of them have arrived.
//!
//! Invariant: the fibers that have arrived in the current generation are
//! exactly the queued waiters (a waiter that leaves the queue, cancelled,
//! withdraws its arrival); the `n`th arrival releases them all at once and
//! starts the next generation.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::waiters::{unregister_handle, Waiters};
use crate::cancel::{CancelHandle, Unregister};
use crate::error::Result;
use crate::event::{wait_for, Event};
use crate::task::Wakeup;

/// Lets fibers of one scheduler wait until `n` of them have called
/// [`wait`](Barrier::wait); then all of them go on, and the barrier is
/// ready for the next round (a new *generation*).
///
/// Exactly one fiber of each generation, the last to arrive, is the
/// *leader*: its `wait` returns `Ok(true)`, the others' `Ok(false)`.
///
/// `!Send` and `!Sync`, like [`Chan`](crate::Chan): for the fibers of one
/// scheduler; share it with an `Rc`.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use fuseau::sync::Barrier;
///
/// fuseau::block_on(|| {
///     let barrier = Rc::new(Barrier::new(3));
///     let fibers: Vec<_> = (0..3)
///         .map(|_| {
///             let barrier = barrier.clone();
///             fuseau::spawn(move || barrier.wait())
///         })
///         .collect();
///     let mut leaders = 0;
///     for f in fibers {
///         leaders += usize::from(f.join()?);
///     }
///     assert_eq!(leaders, 1);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<fuseau::sync::Barrier>();
/// ```
pub struct Barrier {
    n: usize,
    state: Rc<RefCell<BarrierState>>,
}

struct BarrierState {
    /// The fibers of the current generation that have arrived.
    waiters: Waiters<()>,
    generation: u64,
}

impl Unregister for RefCell<BarrierState> {
    fn unregister(&self, id: u64) {
        self.borrow_mut().waiters.remove(id);
    }
}

impl Barrier {
    /// A barrier for `n` fibers. `Barrier::new(0)` behaves as
    /// `Barrier::new(1)` (as Tokio's): every `wait` returns at once, as its
    /// generation's leader.
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n: n.max(1),
            state: Rc::new(RefCell::new(BarrierState {
                waiters: Waiters::new(),
                generation: 0,
            })),
        }
    }

    /// Arrives at the barrier and waits until `n` fibers of this generation
    /// have arrived. Returns `Ok(true)` in the last fiber to arrive (the
    /// leader, which does not wait), `Ok(false)` in the others.
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled before the call, the fiber does not
    /// arrive. Cancelled while waiting, it withdraws its arrival: the
    /// generation then needs one more fiber. Cancelled after its generation
    /// was complete but before it ran again, it returns `Ok(false)` (the
    /// next cancellation point fails).
    ///
    /// # Errors
    ///
    /// The fiber's cancellation; [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber)
    /// if it would wait outside a fiber (the leader's call, which does not
    /// wait, works outside one).
    ///
    /// # Examples
    ///
    /// ```
    /// let barrier = fuseau::sync::Barrier::new(1);
    /// assert!(fuseau::block_on(move || barrier.wait())?);
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub fn wait(&self) -> Result<bool> {
        wait_for(
            ArriveEvent {
                barrier: self,
                id: None,
            },
            "Barrier::wait",
        )
    }

    /// How many generations have been completed so far.
    pub fn generation(&self) -> u64 {
        self.state.borrow().generation
    }

    /// How many fibers have arrived (and wait) in the current generation.
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiters.len()
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .field("waiting", &state.waiters.len())
            .field("generation", &state.generation)
            .finish()
    }
}

/// One fiber's arrival: registered, it counts as arrived.
struct ArriveEvent<'a> {
    barrier: &'a Barrier,
    id: Option<u64>,
}

impl Event for ArriveEvent<'_> {
    type Output = bool;

    fn poll(&mut self) -> Option<Result<bool>> {
        let mut state = self.barrier.state.borrow_mut();
        if let Some(id) = self.id.take() {
            if state.waiters.take_handed(id).is_some() {
                return Some(Ok(false));
            }
        }
        if state.waiters.len() + 1 < self.barrier.n {
            return None;
        }
        // The last to arrive: release the generation.
        state.generation += 1;
        for waiter in state.waiters.take_all() {
            // Always claimed: a waiter leaves the queue before its wait
            // ends (`wait_for` undoes its registration first), and the
            // wait has no other branch that could win.
            if waiter.wakeup.claim() {
                state.waiters.hand(waiter.id, ());
            }
        }
        Some(Ok(true))
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let id = self.barrier.state.borrow_mut().waiters.push(wakeup, ());
        self.id = Some(id);
        unregister_handle(&self.barrier.state, id)
    }
}

impl Drop for ArriveEvent<'_> {
    fn drop(&mut self) {
        // A release handed over but never polled out (not possible through
        // `wait_for`, which polls a claimed event): nothing to pass on.
        if let Some(id) = self.id {
            self.barrier.state.borrow_mut().waiters.take_handed(id);
        }
    }
}
