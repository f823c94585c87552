//! Direct-style fibers with structured concurrency, on Tokio.
//!
//! Fibers are functions with their own stacks: plain, sequential Rust that
//! suspends instead of blocking, so thousands of them share one thread. This
//! crate runs them on Tokio's event loop: Tokio's timers wake them, fibers
//! can use `tokio::task::spawn_local`, and Tokio code runs beside them.
//!
//! It re-exports the whole of the core crate, [`fuseau`]: fibers,
//! structured concurrency, cancellation, timers, fiber-local storage. The
//! entry points are [`main`] (a program's own runtime, on one thread),
//! [`run`] (inside a runtime you built) and [`Runtime`] (a scheduler on each
//! of several threads, for every core).
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
//! unchanged here, and [`fuseau::guide`] for every cancellation point.
//!
//! ## Scopes, races and deadlines
//!
//! [`scope`] runs fibers that borrow the caller's data and returns once all
//! are done; [`race`], [`both`] and [`all`] are built on it, and
//! [`with_timeout`] bounds any of them without cancelling the fiber. Here
//! two "mirrors" (Tokio futures) race under a deadline; the loser is
//! cancelled, and its future dropped, before `race` returns:
//!
//! ```
//! use std::time::Duration;
//!
//! fuseau_tokio::main(|| {
//!     let path = String::from("/index.html"); // borrowed by both contenders
//!     let fetch = |mirror: &'static str, ms: u64| {
//!         let path = &path;
//!         move || {
//!             fuseau_tokio::await_future(tokio::time::sleep(Duration::from_millis(ms)))?;
//!             Ok(format!("{path} from {mirror}"))
//!         }
//!     };
//!     let page = fuseau_tokio::with_timeout(Duration::from_secs(5), || {
//!         fuseau_tokio::race([fetch("slow", 200), fetch("fast", 1)])
//!     })?;
//!     assert_eq!(page, "/index.html from fast");
//!     Ok(())
//! })?;
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! ## Fibers and futures
//!
//! A fiber waits on any future with [`await_future`] (Tokio's sockets,
//! timers, channels, `JoinHandle`s, other crates' futures); Tokio code waits
//! on a fiber with [`spawn_as_future`] (or, from other threads,
//! [`spawn_as_future_from_anywhere`]). Cancelling the fiber drops the future
//! it awaits; dropping a [`FiberFuture`] cancels its fiber.
//!
//! ```
//! fuseau_tokio::main(|| {
//!     let (tx, rx) = tokio::sync::oneshot::channel();
//!     // A Tokio task that awaits a fiber…
//!     let task = tokio::task::spawn_local(async move {
//!         let n = fuseau_tokio::spawn_as_future(|| Ok(40)).await?;
//!         tx.send(n + 2).unwrap();
//!         Ok::<_, fuseau_tokio::Error>(())
//!     });
//!     // …and a fiber that awaits Tokio futures, in direct style.
//!     assert_eq!(fuseau_tokio::await_future(rx)?.unwrap(), 42);
//!     fuseau_tokio::await_future(task)?.unwrap()
//! })?;
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! ## Every core
//!
//! [`main`] runs every fiber on one thread, in a deterministic order. A
//! [`Runtime`] runs a scheduler on each of several threads: [`Runtime::spawn`]
//! places a fiber on the least-loaded thread, where it stays (fibers never
//! move); what crosses threads is `Send`, and comes back through a
//! [`RemoteFiber`]. [`net::TcpServer::establish_on`] serves on every thread;
//! with the std-shaped listener, a fiber on each thread binds one with
//! [`net::ServerBuilder::bind_tcp`] and `SO_REUSEPORT`.
//!
//! ```
//! let runtime = fuseau_tokio::Runtime::new(2)?;
//! let handle = runtime.handle();
//! let total = runtime.block_on(move || {
//!     // From a fiber, onto the runtime: joining suspends, it does not block.
//!     let parts: Vec<_> = (0..8u64).map(|i| handle.spawn(move || Ok(i * i))).collect();
//!     parts.into_iter().map(|p| p.join()).sum::<fuseau_tokio::Result<u64>>()
//! })?;
//! assert_eq!(total, 140);
//! runtime.shutdown();
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! ## Synchronous I/O, the `std` way
//!
//! [`net`] has sockets shaped like `std`'s ([`net::TcpStream`],
//! [`net::TcpListener`], [`net::UdpSocket`], [`net::UnixStream`],
//! [`net::UnixListener`]): the same methods, `std::io::Result`, `Read` and
//! `Write`, but a call that would block suspends the fiber, not the thread.
//! So synchronous crates (serde_json, rustls's `StreamOwned`, tungstenite …)
//! run on network streams in fibers. [`fs`], [`process`] and [`signal`] do
//! the same for files, child processes and Ctrl-C, and [`unblock`] runs any
//! other blocking call on Tokio's blocking pool while the fiber waits.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use fuseau_tokio::net::{TcpListener, TcpStream};
//!
//! fuseau_tokio::main(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = fuseau_tokio::spawn(move || {
//!         let (stream, _peer) = listener.accept()?;
//!         // Plain std::io: count the lines, answer once the peer is done.
//!         let n = BufReader::new(&stream).lines().count();
//!         writeln!(&stream, "{n} lines")?;
//!         Ok(())
//!     });
//!     let mut stream = TcpStream::connect(addr)?;
//!     stream.write_all(b"one\ntwo\nthree\n")?;
//!     stream.shutdown(std::net::Shutdown::Write)?; // the server sees end of file
//!     let mut reply = String::new();
//!     BufReader::new(&stream).read_line(&mut reply)?;
//!     assert_eq!(reply, "3 lines\n");
//!     // Blocking work that has no fiber-aware form: on Tokio's pool.
//!     let digits = fuseau_tokio::unblock(|| (1..=20u64).product::<u64>().to_string())?;
//!     assert_eq!(digits, "2432902008176640000");
//!     server.join()
//! })?;
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! [`iostream::In`] and [`iostream::Out`] give the same `Read`/`BufRead`
//! and `Write` over any Tokio `AsyncRead`/`AsyncWrite`; [`net`] also has
//! callback servers (a fiber per connection, given an `In`/`Out` pair);
//! [`io`] has reads and writes on raw non-blocking descriptors, and the
//! events [`ev_read`] and [`ev_write`] for [`select`](select()).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, unreachable_pub, clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

pub mod fs;
mod future;
pub mod io;
pub mod iostream;
pub mod net;
pub mod process;
mod runtime;
pub mod signal;
mod unblock;

pub use fuseau::*;
pub use future::{
    await_future, spawn_as_future, spawn_as_future_from_anywhere, FiberFuture, FutureBuilder,
    RemoteFiberFuture,
};
pub use io::{ev_read, ev_write, ReadEvent, WriteEvent};
pub use runtime::{main, main_with, run, run_with, Runtime, RuntimeBuilder, RuntimeHandle};
pub use unblock::unblock;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
