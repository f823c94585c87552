//! A guide to cancellation points (checkpoints).
//!
//! Cancellation in fuseau is cooperative: cancelling a fiber
//! ([`AnyFiber::cancel`](crate::AnyFiber::cancel), a parent's
//! cancellation or failure, a child's failure, [`cancel_after`](crate::cancel_after),
//! a scheduler's disposal) only *marks* it. The fiber notices at its next
//! **cancellation point**: a call that can wait. As in Trio, *every* call
//! that can wait is one, whether or not it actually waits this time, so a
//! loop that waits on anything is always cancellable.
//!
//! # What happens at a cancellation point
//!
//! - **Cancelled before the call**: the call does not do its work; it yields
//!   to the scheduler once (so a loop that ignores the error cannot starve
//!   the others) and returns `Err(e)`, where `e` is the cancellation error
//!   (`e.is_cancellation()`: kind [`Cancelled`](crate::ErrorKind::Cancelled),
//!   or [`Timeout`](crate::ErrorKind::Timeout) for a deadline).
//! - **Cancelled while waiting**: the fiber is woken at once, whatever it
//!   waited for; the call undoes its registration and returns `Err(e)`.
//! - **Cancelled after the operation completed** but before the fiber ran
//!   again: the call returns its success (a value handed over is never lost);
//!   the *next* cancellation point fails.
//!
//! - **The coop budget**: a fiber's 129th cancellation point in a row that
//!   did not have to wait (an always-ready channel, ready futures, a
//!   readable socket) yields first, so that other fibers, due timers, the
//!   event loop's I/O and other threads' messages get their turn (Tokio's
//!   coop budget, 128 too). A cancellation that arrives during that turn is
//!   returned as if the call had waited: the call does not do its work.
//!   The count starts again whenever the fiber really waits, so programs
//!   that wait are scheduled exactly as before.
//!
//! Cancellation is sticky: once cancelled, every later cancellation point
//! fails. Code between cancellation points runs undisturbed, and nothing is
//! unwound behind the fiber's back: the error comes out as an ordinary `Err`,
//! and `?` carries it up. Cleanup in `Drop` runs as usual.
//!
//! # The cancellation points
//!
//! | call | cancelled while waiting |
//! | --- | --- |
//! | [`yield_now`](crate::yield_now) | returns the error after its turn |
//! | [`checkpoint`](crate::checkpoint) | never waits: returns the error at once |
//! | [`sleep`](crate::sleep), [`time::sleep_until`](crate::time::sleep_until) | the timer is disarmed |
//! | [`Fiber::join`](crate::Fiber::join) | the joined fiber runs on (if it is a child, it is cancelled with the caller) |
//! | [`RemoteFiber::join`](crate::RemoteFiber::join) (in a fiber) | the remote fiber runs on |
//! | [`select`](crate::select()), [`await_event`](crate::await_event) | every registration is undone; losing events take no effect |
//! | [`select!`](crate::select!) | as `select`; the first branch runs with the error |
//! | [`Chan::send`](crate::Chan::send) | the value is dropped, unsent |
//! | [`Chan::recv`](crate::Chan::recv) | nothing is taken |
//! | [`SharedChan::send`](crate::SharedChan::send) (in a fiber) | the value is dropped, unsent |
//! | [`SharedChan::recv`](crate::SharedChan::recv) (in a fiber) | nothing is taken |
//! | [`sync::Mutex::lock`](crate::sync::Mutex::lock), [`sync::RwLock::read`](crate::sync::RwLock::read)/[`write`](crate::sync::RwLock::write) | the waiter leaves the queue without the lock; the next waiter is served |
//! | [`sync::Semaphore::acquire`](crate::sync::Semaphore::acquire), [`acquire_many`](crate::sync::Semaphore::acquire_many) | the waiter leaves the queue without permits (permits handed to it pass on) |
//! | [`sync::Notify::notified`](crate::sync::Notify::notified) | a notification handed to it passes on to the next waiter, or is stored |
//! | [`sync::Barrier::wait`](crate::sync::Barrier::wait) | the fiber's arrival is withdrawn |
//! | [`sync::OnceCell::get_or_init`](crate::sync::OnceCell::get_or_init), [`get_or_try_init`](crate::sync::OnceCell::get_or_try_init) | a waiter leaves; a cancelled initialiser passes the turn to the next waiter |
//! | `fuseau_tokio::await_future` | the future is dropped |
//! | `fuseau_tokio::io::{read, write_once, write}` | nothing more is read or written |
//! | `Read`/`Write` of `fuseau_tokio::iostream::{In, Out}` | an `io::Error` of kind `Other` wrapping the fiber's error (never `Interrupted`) |
//! | `fuseau_tokio::net::TcpClient::with_connect`, `TcpServer::shutdown` | the connection attempt is dropped |
//! | `fuseau_tokio::net::{TcpStream, TcpListener, UdpSocket, UnixStream, UnixListener}`: `connect`, `accept`, `Read`/`Write`, `send`/`recv` … | nothing is transferred (data stays in the socket); an `io::Error` of kind `Other` wrapping the fiber's error; a cancelled connect closes its socket |
//! | `fuseau_tokio::unblock` | returns at once; a queued closure never starts, a running one finishes and its result is dropped |
//! | `fuseau_tokio::fs` calls, `File`'s `Read`/`Write`/`Seek` | returns at once; the operation may still complete on Tokio's blocking pool (a `File` keeps the bytes of a cancelled read for the next one; see `fuseau_tokio::fs`) |
//! | `fuseau_tokio::process`: `Command::status`, `output` | the child is killed |
//! | `fuseau_tokio::process`: `Child::wait`, pipe reads and writes | the child runs on; nothing is transferred |
//! | `fuseau_tokio::signal::ctrl_c` | stops waiting |
//! | any of the above inside [`shield`](crate::shield) (not a cancellation point itself) | not woken: the fiber's cancellation is held until its outermost shield ends, then delivered at its next suspension point (children spawned inside are held with it; disposal force-unwinds a shielded fiber that does not return) |
//! | any of the above inside [`shield_for`](crate::shield_for) | as `shield`; when the time limit expires, woken: fails with `Timeout`, as does every later one of the body (the fiber is not cancelled by it) |
//! | [`Scope::spawn`](crate::Scope::spawn) at the scope's [limit](crate::Scope::set_limit) (without a limit, not a cancellation point) | spawns nothing: the closure is dropped unrun, its handle's `join` gives the cancellation, no slot is taken |
//! | [`ScopedFiber::join`](crate::ScopedFiber::join) | as `Fiber::join`: the member runs on (its scope still waits for it) |
//! | any of the above inside [`scope`](crate::scope) (not a cancellation point itself) | as usual when the fiber is cancelled (its members are cancelled with it); when the scope fails (a member failed, or the body returned an error or panicked), woken: fails with `Cancelled` whose source is the failure, as does every later one of the body, and the other members are cancelled with it. The wait for the members at the scope's end is shielded: a cancellation then cancels the members and the wait goes on until they are done |
//! | any of the above inside [`with_timeout`](crate::with_timeout), [`with_deadline`](crate::with_deadline) (not cancellation points themselves) | as usual when the fiber is cancelled (`Cancelled`); when the deadline passes, woken: fails with `Timeout` (its message names the deadline; the earliest of nested scopes wins), as does every later one of the body, and the fibers spawned inside the body are cancelled with it; the fiber is not cancelled |
//!
//! Not cancellation points (they never wait): [`spawn`](crate::spawn) and the
//! [`Builder`](crate::Builder) methods, `try_send`/`try_recv`, `close`, the
//! `try_*` calls of [`sync`](crate::sync), `notify_one`/`notify_all`,
//! `add_permits`, [`Scope::try_spawn`](crate::Scope::try_spawn) and
//! [`Scope::set_limit`](crate::Scope::set_limit),
//! [`cancel_after`](crate::cancel_after), [`with_cancel_callback`](crate::with_cancel_callback),
//! fiber-local storage, pools, and [`AnyFiber::cancel`](crate::AnyFiber::cancel).
//!
//! # Reacting to cancellation
//!
//! - Let it propagate: `?` is almost always right.
//! - Run something at the moment of cancellation:
//!   [`with_cancel_callback`](crate::with_cancel_callback). The callback
//!   runs on the canceller's stack once the whole subtree is marked, and
//!   cannot wait: its suspension points fail at once.
//! - Bound a wait without cancelling the fiber: [`select`](crate::select())
//!   with [`ev_timeout`](crate::ev_timeout).
//! - Stop a child without failing yourself: cancel it through its handle; a
//!   child that returns the `Cancelled` error it was given does not fail its
//!   parent. A child whose *own* deadline expired, or that failed, does.
//!
//! ```
//! use std::time::Duration;
//!
//! let result = fuseau::block_on(|| {
//!     let worker = fuseau::spawn(|| -> fuseau::Result<()> {
//!         loop {
//!             // Each sleep is a cancellation point: the loop ends with `?`.
//!             fuseau::sleep(Duration::from_millis(1))?;
//!         }
//!     });
//!     fuseau::sleep(Duration::from_millis(5))?;
//!     worker.cancel();
//!     let e = worker.join().unwrap_err();
//!     assert!(e.is_cancelled());
//!     Ok(())
//! });
//! assert!(result.is_ok(), "cancelling a child through its handle does not fail the parent");
//! ```
