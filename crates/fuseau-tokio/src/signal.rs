//! Signals from fibers: [`ctrl_c`] suspends a fiber until the process gets
//! `SIGINT` (Ctrl-C at a terminal), through Tokio's signal handling.
//!
//! As with [`tokio::signal`], the first wait installs a process-wide
//! handler for the signal that stays for the life of the process: from
//! then on, `SIGINT` no longer kills the process, even when no fiber is
//! waiting; a program that waits for Ctrl-C once should exit (or shut down
//! its fibers) when it comes. Every fiber (and Tokio task) waiting when the
//! signal arrives is woken, on every thread of every runtime.

use fuseau::Result;

use crate::future::await_future;
use crate::unblock::require_tokio;

/// Waits until the process receives `SIGINT` (Ctrl-C), as
/// [`tokio::signal::ctrl_c`]; the fiber suspends, not the thread.
///
/// Only a signal that arrives after the call began counts: one that came
/// earlier is not remembered, as in Tokio (so call it before the moment a
/// Ctrl-C must not be missed, in a fiber of its own if need be). The first
/// call installs the process-wide handler (see the [module docs](self)).
///
/// # Errors
///
/// - an [`Io`](fuseau::ErrorKind::Io) error if the handler cannot be
///   installed;
/// - the fiber's cancellation;
/// - [`NotInFiber`](fuseau::ErrorKind::NotInFiber) outside a fiber, and
///   [`Other`](fuseau::ErrorKind::Other) in a fiber without a Tokio
///   runtime (a plain [`block_on`](fuseau::block_on)).
///
/// # Cancellation
///
/// A cancellation point. Cancelled before the call, it returns the
/// cancellation error at once (and installs no handler). Cancelled while it
/// waits, it returns the cancellation error at once and stops waiting (the
/// handler stays installed). Cancelled after a `SIGINT` woke it, the call
/// has returned `Ok(())`; the fiber's next cancellation point fails.
///
/// # Examples
///
/// A server that runs until Ctrl-C (here, a fiber standing in for the
/// server, and a deadline standing in for the user):
///
/// ```
/// use std::time::Duration;
///
/// fuseau_tokio::main(|| {
///     let server = fuseau_tokio::spawn(|| -> fuseau_tokio::Result<()> {
///         loop {
///             fuseau_tokio::sleep(Duration::from_millis(1))?; // serving
///         }
///     });
///     let waiter = fuseau_tokio::Builder::new()
///         .propagate_cancel_to_parent(false)
///         .spawn(|| {
///             fuseau_tokio::cancel_after(Duration::from_millis(20))?;
///             fuseau_tokio::signal::ctrl_c()
///         });
///     match waiter.join() {
///         Ok(()) => println!("Ctrl-C: shutting down"),
///         Err(e) if e.is_timeout() => println!("no Ctrl-C in 20 ms: shutting down anyway"),
///         Err(e) => return Err(e),
///     }
///     server.cancel();
///     assert!(server.join().unwrap_err().is_cancelled());
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn ctrl_c() -> Result<()> {
    require_tokio("fuseau_tokio::signal::ctrl_c")?;
    await_future(tokio::signal::ctrl_c())??;
    Ok(())
}
