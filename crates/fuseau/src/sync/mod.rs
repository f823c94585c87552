//! Synchronisation between the fibers of one scheduler: [`Mutex`],
//! [`RwLock`], [`Semaphore`], [`Notify`], [`Barrier`] and [`OnceCell`].
//!
//! They are the fiber counterparts of `std::sync`'s and Tokio's: a fiber
//! that has to wait for one *suspends*, and the thread runs other fibers
//! meanwhile. Like [`Chan`](crate::Chan), they belong to the fibers of one
//! scheduler (one thread): they are `!Send` and `!Sync`, use no atomics,
//! and are shared between fibers with an `Rc` (or by reference). Across
//! threads, use `std::sync` or a [`SharedChan`](crate::SharedChan).
//!
//! # What they guarantee
//!
//! - **FIFO**: waiters are served in the order they started waiting. A
//!   released lock or permit is *handed* to the first waiter, so nobody
//!   barges in ahead of it; a [`Semaphore`] request at the head of the
//!   queue holds back smaller ones behind it (no starvation of big
//!   requests), and an [`RwLock`] writer holds back the readers that come
//!   after it (no writer starvation).
//! - **Cancellation-safe**: every call that can wait is a cancellation
//!   point (see the [guide](crate::guide)). A fiber cancelled before the
//!   call or while waiting takes nothing and leaves the queue, and the
//!   next waiter is served as if it had never asked. A fiber cancelled
//!   after the resource was handed to it (before it ran again) gets it,
//!   and its next cancellation point fails: what was handed over is never
//!   lost, and is passed on when the guard is dropped.
//! - **Guards release on drop**, also when a panic unwinds (there is no
//!   poisoning).
//! - **Events**: [`Mutex::ev_lock`], [`Semaphore::ev_acquire`] and
//!   [`Notify::ev_notified`] wait inside a [`select`](crate::select()) or
//!   [`select!`](crate::select!), for instance with a timeout.
//!
//! Outside a fiber, a call that would wait returns
//! [`ErrorKind::NotInFiber`](crate::ErrorKind::NotInFiber); one that need
//! not wait (a free mutex) succeeds.
//!
//! # Examples
//!
//! ```
//! use std::{rc::Rc, time::Duration};
//! use fuseau::sync::Mutex;
//!
//! fuseau::block_on(|| {
//!     let log = Rc::new(Mutex::new(Vec::new()));
//!     let writers: Vec<_> = (0..3)
//!         .map(|i| {
//!             let log = log.clone();
//!             fuseau::spawn(move || {
//!                 let mut log = log.lock()?; // FIFO: 0, 1, 2
//!                 fuseau::sleep(Duration::from_millis(1))?; // held while asleep
//!                 log.push(i);
//!                 Ok(())
//!             })
//!         })
//!         .collect();
//!     for w in writers {
//!         w.join()?;
//!     }
//!     assert_eq!(*log.lock()?, [0, 1, 2]);
//!     Ok(())
//! })?;
//! # Ok::<(), fuseau::Error>(())
//! ```

mod barrier;
mod mutex;
mod notify;
mod once_cell;
mod rwlock;
mod semaphore;
mod waiters;

pub use barrier::Barrier;
pub use mutex::{LockEvent, Mutex, MutexGuard};
pub use notify::{NotifiedEvent, Notify};
pub use once_cell::OnceCell;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{AcquireEvent, Semaphore, SemaphorePermit, TryAcquireError};
