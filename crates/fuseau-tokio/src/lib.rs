//! Direct-style fibers with structured concurrency, on Tokio.
//!
//! Fibers are functions with their own stacks: plain, sequential Rust that
//! suspends instead of blocking, so thousands of them share one thread. This
//! crate runs them on Tokio's event loop: Tokio's timers wake them, fibers
//! can use `tokio::task::spawn_local`, and Tokio code runs beside them.
//!
//! It re-exports the whole of the core crate, [`fuseau`]: fibers,
//! structured concurrency, cancellation, timers, fiber-local storage. The
//! entry points are [`main`] (a program's own runtime) and [`run`] (inside a
//! runtime you built).
//!
//! # A tour
//!
//! ```
//! use std::time::Duration;
//!
//! fuseau_tokio::main(|| {
//!     // Children run concurrently; `join` waits for one.
//!     let slow = fuseau_tokio::spawn(|| {
//!         fuseau_tokio::sleep(Duration::from_millis(20))?;
//!         Ok("slow")
//!     });
//!     let fast = fuseau_tokio::spawn(|| Ok("fast"));
//!     assert_eq!(fast.join()?, "fast");
//!     assert_eq!(slow.join()?, "slow");
//!
//!     // A deadline cancels the fiber: its suspension points return
//!     // `Err(Timeout)`, and `?` passes it up in the ordinary way. This
//!     // child opted out of failing its parent, so only `join` sees it.
//!     let sleeper = fuseau_tokio::Builder::new()
//!         .propagate_cancel_to_parent(false)
//!         .spawn(|| {
//!             fuseau_tokio::cancel_after(Duration::from_millis(5))?;
//!             fuseau_tokio::sleep(Duration::from_secs(3600))
//!         });
//!     assert!(sleeper.join().unwrap_err().is_timeout());
//!     Ok(())
//! })?;
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! A child's failure cancels its parent unless it opted out with
//! [`Builder::propagate_cancel_to_parent`]; see the [`fuseau`] crate docs
//! for the rules of structure, cancellation and scheduling, which apply
//! unchanged here.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, unreachable_pub, clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

mod future;
pub mod io;
pub mod iostream;
pub mod net;
mod runtime;

pub use fuseau::*;
pub use future::{
    await_future, spawn_as_future, spawn_as_future_from_anywhere, FiberFuture, FutureBuilder,
    RemoteFiberFuture,
};
pub use io::{ev_read, ev_write, ReadEvent, WriteEvent};
pub use runtime::{main, main_with, run, run_with};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
