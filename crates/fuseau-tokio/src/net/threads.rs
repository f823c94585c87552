//! Servers on every thread of a [`Runtime`](crate::Runtime):
//! [`RuntimeTcpServer`].
//!
//! Each thread of the runtime runs a [`TcpServer`] of its own: a listener
//! bound to the same address with `SO_REUSEPORT`, so the kernel spreads
//! incoming connections among the threads, and each connection is served by
//! a fiber on the thread that accepted it (no hand-over between threads).
//! The first thread binds the address asked for (port 0 picks a free port);
//! the others bind the address it got.
//!
//! (With the std-shaped types, the same is a fiber per thread that binds a
//! listener with [`ServerBuilder::bind_tcp`] and `SO_REUSEPORT`, then
//! accepts as with `std::net::TcpListener`: see its example.)
//!
//! Each thread's server lives in a *host* fiber, a root fiber placed on that
//! thread (`RuntimeHandle::spawn_on`): the listener's acceptor and the
//! connection fibers are its descendants, so cancelling the host (a
//! shutdown) stops the listener and cancels every connection of the thread,
//! and joining it waits until they are all done.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use fuseau::{Error, ErrorKind, RemoteFiber, Result};

use super::{ServerBuilder, TcpServer};
use crate::future::await_future;
use crate::iostream::{In, Out};
use crate::RuntimeHandle;

/// A TCP server on every thread of a [`Runtime`](crate::Runtime); from
/// [`TcpServer::establish_on`] or [`ServerBuilder::establish_tcp_on`].
/// `Send + Sync`: it may be shut down from any thread or fiber.
///
/// Dropping it without [`shutdown`](RuntimeTcpServer::shutdown) stops it
/// too (every thread's listener and connections are cancelled), without
/// waiting for the connections to finish.
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, Write};
///
/// let runtime = fuseau_tokio::Runtime::new(2)?;
/// let server = fuseau_tokio::net::TcpServer::establish_on(
///     &runtime.handle(),
///     "127.0.0.1:0".parse().unwrap(),
///     |_peer, input, mut output| {
///         // Each connection: a fiber on one of the runtime's threads.
///         for line in input.lines() {
///             writeln!(output, "{}", line?.to_uppercase())?;
///         }
///         output.close()
///     },
/// )?;
/// let addr = server.local_addr();
/// let reply = runtime.block_on(move || {
///     fuseau_tokio::net::TcpClient::with_connect(addr, |input, output| {
///         output.write_all(b"hello\n")?;
///         output.shutdown()?;
///         let mut line = String::new();
///         input.read_line(&mut line)?;
///         Ok::<_, fuseau_tokio::Error>(line)
///     })?
/// })?;
/// assert_eq!(reply, "HELLO\n");
/// server.shutdown()?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct RuntimeTcpServer {
    local_addr: SocketAddr,
    /// The host fiber of each thread's server.
    hosts: Vec<RemoteFiber<()>>,
}

impl TcpServer {
    /// Listens on `addr` on every thread of `runtime` and serves each
    /// connection with `handler(peer, input, output)` in a fiber of the
    /// thread that accepted it, with default options ([`ServerBuilder`] for
    /// others; see [`ServerBuilder::establish_tcp_on`]).
    ///
    /// # Errors
    ///
    /// As [`ServerBuilder::establish_tcp_on`].
    pub fn establish_on(
        runtime: &RuntimeHandle,
        addr: SocketAddr,
        handler: impl Fn(SocketAddr, In, Out) -> Result<()> + Send + Sync + 'static,
    ) -> Result<RuntimeTcpServer> {
        ServerBuilder::new().establish_tcp_on(runtime, addr, handler)
    }
}

impl ServerBuilder {
    /// Listens on `addr` on every thread of `runtime` (one `SO_REUSEPORT`
    /// listener per thread; the kernel spreads connections among them) and
    /// serves each connection with `handler(peer, input, output)` in a fiber
    /// of the thread that accepted it. Returns once every thread listens.
    ///
    /// May be called from a plain thread (it blocks until every thread
    /// listens) or from a fiber (it suspends), on the runtime or elsewhere.
    ///
    /// # Cancellation
    ///
    /// From a fiber, a cancellation point while it waits for the threads:
    /// the listeners started so far are then stopped.
    ///
    /// # Errors
    ///
    /// If a listener cannot be created or bound (address in use …; the
    /// listeners already started are stopped); `Err(Inactive)` if the
    /// runtime is shut down; the caller's cancellation.
    ///
    /// # Panics
    ///
    /// Called from a Tokio task outside a fiber (where blocking the thread
    /// is not allowed), as [`tokio::sync::oneshot::Receiver::blocking_recv`].
    pub fn establish_tcp_on(
        self,
        runtime: &RuntimeHandle,
        addr: SocketAddr,
        handler: impl Fn(SocketAddr, In, Out) -> Result<()> + Send + Sync + 'static,
    ) -> Result<RuntimeTcpServer> {
        let builder = self.reuse_port(true);
        let handler = Arc::new(handler);
        let mut server = RuntimeTcpServer {
            local_addr: addr,
            hosts: Vec::with_capacity(runtime.threads()),
        };
        // On failure, dropping `server` stops the hosts started so far.
        for thread in 0..runtime.threads() {
            let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
            let (builder, handler, addr) = (builder.clone(), handler.clone(), server.local_addr);
            let host = runtime.spawn_on(thread, move || {
                let listening = builder.establish_tcp(addr, move |peer, input, output| {
                    handler(peer, input, output)
                });
                let server = match listening {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                let _ = bound_tx.send(Ok(server.local_addr()));
                // Serves until cancelled (a shutdown): the acceptor and the
                // connections are this fiber's descendants.
                server.acceptor.join()
            });
            server.hosts.push(host);
            let bound = if fuseau::in_fiber() {
                await_future(bound_rx)?
            } else {
                bound_rx.blocking_recv()
            };
            server.local_addr = match bound {
                Ok(bound) => bound?,
                // The host was dropped unrun: the runtime is shut down.
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Inactive,
                        "ServerBuilder::establish_tcp_on: the runtime is shut down",
                    ))
                }
            };
        }
        Ok(server)
    }
}

impl RuntimeTcpServer {
    /// The address every thread listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops every thread's listener, cancels every connection's fiber, and
    /// returns when they are all done (their sockets closed). From a plain
    /// thread it blocks; from a fiber it suspends.
    ///
    /// # Cancellation
    ///
    /// From a fiber, a cancellation point: if the caller is cancelled while
    /// it waits, this returns its cancellation error (the server's fibers,
    /// being cancelled, finish on their own).
    ///
    /// # Errors
    ///
    /// The caller's cancellation; the first error a thread's server failed
    /// with, if one failed before the shutdown.
    pub fn shutdown(mut self) -> Result<()> {
        let hosts = std::mem::take(&mut self.hosts);
        for host in &hosts {
            host.cancel();
        }
        let mut result = Ok(());
        for host in hosts {
            match host.join() {
                Ok(()) => {}
                // The cancellation by this call is the normal end.
                Err(e) if e.kind() == ErrorKind::Cancelled && !super::caller_is_cancelled() => {}
                Err(e) if e.kind() == ErrorKind::Inactive => {}
                Err(e) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }
}

impl Drop for RuntimeTcpServer {
    fn drop(&mut self) {
        for host in &self.hosts {
            host.cancel();
        }
    }
}

impl fmt::Debug for RuntimeTcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeTcpServer")
            .field("local_addr", &self.local_addr)
            .field("threads", &self.hosts.len())
            .finish()
    }
}
