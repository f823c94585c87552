//! Networking for fibers: sockets shaped like `std`'s ([`TcpStream`],
//! [`TcpListener`], [`UdpSocket`], [`UnixStream`], [`UnixListener`]), and
//! servers and clients with callbacks ([`TcpServer`], [`TcpClient`],
//! [`UnixServer`], [`UnixClient`]).
//!
//! # Sockets shaped like `std`'s
//!
//! The socket types here have the methods of their namesakes in
//! [`std::net`] and [`std::os::unix::net`], return [`std::io::Result`], and
//! the streams implement [`Read`](std::io::Read) and
//! [`Write`](std::io::Write) (for `&TcpStream` too). Replace
//! `std::net::TcpStream` with [`TcpStream`] and synchronous code (rustls's
//! `StreamOwned`, tungstenite's `WebSocket<S>`, any `Read + Write` protocol
//! crate) runs unchanged in a fiber: every call that would block suspends
//! the fiber, not the thread.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use fuseau_tokio::net::{TcpListener, TcpStream};
//!
//! fuseau_tokio::main(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     // A server fiber answers one line with its length.
//!     let server = fuseau_tokio::spawn(move || {
//!         let (stream, _peer) = listener.accept()?;
//!         let mut line = String::new();
//!         BufReader::new(&stream).read_line(&mut line)?;
//!         (&stream).write_all(format!("{} bytes\n", line.len()).as_bytes())?;
//!         Ok(())
//!     });
//!     // A client fiber (this one): plain std::io code.
//!     let mut stream = TcpStream::connect(addr)?;
//!     stream.write_all(b"hello\n")?;
//!     let mut reply = String::new();
//!     BufReader::new(&stream).read_line(&mut reply)?;
//!     assert_eq!(reply, "6 bytes\n");
//!     server.join()
//! })?;
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! | `std` | `fuseau_tokio::net` |
//! | --- | --- |
//! | `std::net::TcpStream::connect(addr)` | [`TcpStream::connect`]`(addr)`: `addr` is a [`tokio::net::ToSocketAddrs`] (`SocketAddr`, `"host:port"`, `(&str, u16)` …); names are resolved on Tokio's blocking pool |
//! | `TcpStream::connect_timeout(&addr, t)` | [`TcpStream::connect_timeout`] |
//! | `Read`, `Write` for `TcpStream` and `&TcpStream` | the same |
//! | `stream.try_clone()` | [`TcpStream::try_clone`]: the clones share one socket (and descriptor) |
//! | `shutdown`, `peer_addr`, `local_addr`, `peek`, `set_nodelay`/`nodelay`, `set_ttl`/`ttl`, `take_error` | the same names on [`TcpStream`] |
//! | `set_read_timeout`/`set_write_timeout` (and getters) | the same: a call that times out returns `WouldBlock`, as std does on Unix |
//! | `set_nonblocking` | none: a call that would block suspends the fiber |
//! | `std::net::TcpListener::bind(addr)` | [`TcpListener::bind`] |
//! | `listener.accept()`, `incoming()`, `local_addr()`, `set_ttl`/`ttl` | [`TcpListener::accept`], [`TcpListener::incoming`] … |
//! | `std::net::UdpSocket::bind(addr)` | [`UdpSocket::bind`] |
//! | `send_to`, `recv_from`, `peek_from`, `connect`, `send`, `recv`, `peek` | the same names on [`UdpSocket`] |
//! | `local_addr`, `peer_addr`, `set_broadcast`/`broadcast`, `set_ttl`/`ttl`, timeouts, `try_clone` | the same names on [`UdpSocket`] |
//! | `std::os::unix::net::UnixStream::connect(path)`, `pair()` | [`UnixStream::connect`], [`UnixStream::pair`] |
//! | `Read`, `Write`, `try_clone`, `shutdown`, `local_addr`, `peer_addr`, timeouts | the same on [`UnixStream`] |
//! | `std::os::unix::net::UnixListener::bind(path)`, `accept`, `incoming`, `local_addr` | the same on [`UnixListener`] |
//! | a std socket | `from_std` (the socket is made non-blocking and registered) |
//! | back to std | `into_std` (in blocking mode again, as std's sockets start) |
//! | a Tokio socket, for async code | `From<tokio::net::…>`, `into_tokio` |
//!
//! ## How they work
//!
//! - **One registration.** Each socket is a Tokio socket, registered with
//!   the reactor of the thread that creates it, once. The types are
//!   `Send + Sync`, like std's: a socket may move to (or be shared with)
//!   fibers of other threads, whose wake-ups then come from the reactor of
//!   the thread that created it, which must keep running.
//! - **Try first.** A read or write is first tried (one system call when
//!   the data or the room is there); only if it would block does the fiber
//!   wait for the socket to be ready, and try again.
//! - **Clones share.** [`TcpStream::try_clone`] (and the others) never
//!   fails: the clones share the socket, its registration and its timeouts
//!   (std's timeouts are per socket too). A reader fiber and a writer fiber
//!   can each hold a clone, or share a `&TcpStream`. The socket closes when
//!   the last clone is dropped.
//! - **Timeouts.** `set_read_timeout`/`set_write_timeout` bound each call
//!   that waits, on Tokio's clock (so paused test time applies). A call that
//!   times out returns an error of kind
//!   [`WouldBlock`](std::io::ErrorKind::WouldBlock) and transfers nothing;
//!   `Some(Duration::ZERO)` is refused with `InvalidInput`, as in std.
//!   [`TcpStream::connect_timeout`] fails with `TimedOut`, as std's.
//! - **Errors** are the system's, as std's: a refused connection is
//!   `ConnectionRefused`, a reset peer `ConnectionReset` (or `BrokenPipe`
//!   on a write, as the system says), an address that does not resolve the
//!   error std gives for it (`InvalidInput` for a string that is no
//!   address, the resolver's error for an unknown name).
//!
//! ## Cancellation
//!
//! Every call that may wait (connect, bind with a name to resolve, accept,
//! read, write, send, receive, peek) is a cancellation point, as every
//! suspension point of a fiber. If the fiber is cancelled before the call,
//! or while it waits, the call transfers nothing and returns the
//! cancellation as an [`io::Error`](std::io::Error) of kind
//! [`Other`](std::io::ErrorKind::Other) wrapping the fiber's
//! [`Error`] (never `Interrupted`, which `read_exact` and
//! `write_all` would retry; `fuseau_tokio::Error::from(io_error)` gives the
//! fiber's error back, so `?` in a fiber body passes it up unchanged). Data
//! not read stays in the socket for the next reader. A call that completed
//! keeps its result even if the fiber was cancelled meanwhile; the next
//! call fails. A connect that is cancelled closes its half-open socket.
//! (A `write_all` cancelled between two writes has written a prefix, as
//! with any error.)
//!
//! Calls that do not wait (`local_addr`, `set_nodelay`, `shutdown`,
//! `try_clone` …, and reads and writes of empty buffers) are not
//! cancellation points.
//!
//! Outside a fiber, every call that may wait fails at once with an error
//! wrapping [`ErrorKind::NotInFiber`], without blocking the thread (even if
//! it would not have had to wait). Creating a socket without waiting
//! ([`UnixStream::pair`], [`UnixListener::bind`], `from_std`) needs a Tokio
//! runtime (inside [`main`](crate::main), [`run`](crate::run) or a
//! [`Runtime`](crate::Runtime), or any Tokio runtime); without one it fails
//! the same way.
//!
//! # Servers and clients with callbacks
//!
//! [`TcpServer`], [`TcpClient`] and their Unix-domain twins [`UnixServer`],
//! [`UnixClient`] hand each connection to a function as an [`In`]/[`Out`]
//! pair (buffered, and usable with any Tokio `AsyncRead`/`AsyncWrite`).
//!
//! A server accepts connections in a fiber of its own, and runs the handler
//! of each connection in a fiber too. A handler that fails or panics only
//! loses its own connection: the failure is reported (to the `on_error`
//! callback, by default to standard error) and the server goes on.
//!
//! The server's fibers are children of the fiber that established it, so
//! that fiber is not done until the server is [shut down](TcpServer::shutdown),
//! and cancelling it stops the server.
//!
//! On a [`Runtime`](crate::Runtime), [`TcpServer::establish_on`] serves on
//! every thread: a listener per thread (`SO_REUSEPORT`), each connection a
//! fiber of the thread that accepted it ([`RuntimeTcpServer`]).

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use fuseau::{Builder, Error, ErrorKind, Fiber, Result};
use tokio::net::TcpSocket;

use crate::iostream::{self, In, Out};
use crate::runtime::require_fiber;

mod common;
mod tcp;
mod threads;
mod udp;
mod unix;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use threads::RuntimeTcpServer;
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};

/// Where a server reports handler failures: shared with every thread a
/// [`RuntimeTcpServer`] serves on, hence `Send + Sync`.
type Report = Arc<dyn Fn(&str, &Error) + Send + Sync>;

/// Options of a server, builder-style: listen backlog, `TCP_NODELAY`,
/// `SO_REUSEPORT`, and where handler failures are reported. `Send + Sync`,
/// so one builder can set up a server on every thread of a [`Runtime`].
///
/// [`Runtime`]: crate::Runtime
#[derive(Clone)]
pub struct ServerBuilder {
    backlog: u32,
    nodelay: bool,
    reuse_port: bool,
    on_error: Report,
}

impl Default for ServerBuilder {
    fn default() -> ServerBuilder {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    /// Defaults: backlog 1024, `TCP_NODELAY` on, failures reported to
    /// standard error.
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            backlog: 1024,
            nodelay: true,
            reuse_port: false,
            on_error: Arc::new(|peer, e| eprintln!("fuseau: connection {peer} failed: {e}")),
        }
    }

    /// The listen backlog (pending connections the kernel queues).
    pub fn backlog(mut self, backlog: u32) -> ServerBuilder {
        self.backlog = backlog;
        self
    }

    /// Whether accepted TCP connections get `TCP_NODELAY` (default on, as
    /// request/response protocols want).
    pub fn nodelay(mut self, nodelay: bool) -> ServerBuilder {
        self.nodelay = nodelay;
        self
    }

    /// Whether TCP listeners set `SO_REUSEPORT` (default off), so that
    /// several listeners (other processes, other threads) may bind the same
    /// address and the kernel spreads incoming connections among them.
    /// [`establish_tcp_on`](ServerBuilder::establish_tcp_on) always sets it;
    /// [`bind_tcp`](ServerBuilder::bind_tcp) sets it as asked.
    pub fn reuse_port(mut self, reuse_port: bool) -> ServerBuilder {
        self.reuse_port = reuse_port;
        self
    }

    /// Called with the peer and the error when a connection's handler fails
    /// or panics (not when it is cancelled by a shutdown). Called on the
    /// thread of the failed connection.
    pub fn on_error(
        mut self,
        report: impl Fn(&str, &Error) + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.on_error = Arc::new(report);
        self
    }

    /// Listens on `addr` and serves each connection with
    /// `handler(peer, input, output)` in a fiber of its own. See
    /// [`TcpServer::establish`].
    ///
    /// # Errors
    ///
    /// If the socket cannot be created or bound; [`ErrorKind::NotInFiber`]
    /// outside a fiber.
    pub fn establish_tcp(
        self,
        addr: SocketAddr,
        handler: impl Fn(SocketAddr, In, Out) -> Result<()> + 'static,
    ) -> Result<TcpServer> {
        require_fiber("TcpServer::establish")?;
        let listener = self.bind(addr)?;
        let local_addr = listener.local_addr()?;
        let nodelay = self.nodelay;
        let acceptor = serve(
            format!("tcp server {local_addr}"),
            move || {
                let (stream, peer) = listener.accept()?;
                stream.set_nodelay(nodelay)?;
                let (input, output) = iostream::tcp(stream.into_tokio()?);
                Ok((peer, input, output))
            },
            Rc::new(handler),
            self.on_error,
        );
        Ok(TcpServer {
            local_addr,
            acceptor,
        })
    }

    /// Binds a std-shaped [`TcpListener`] to `addr` with this builder's
    /// listen backlog and `SO_REUSEPORT` setting (and `SO_REUSEADDR`, as
    /// [`TcpListener::bind`]); `nodelay` and `on_error` are for the servers
    /// of `establish_*`. With [`reuse_port(true)`](ServerBuilder::reuse_port)
    /// a fiber on each thread of a [`Runtime`](crate::Runtime) can bind the
    /// same address, and the kernel spreads incoming connections among the
    /// listeners: the std-shaped way to serve on every thread (below).
    ///
    /// # Errors
    ///
    /// If the socket cannot be created or bound (`AddrInUse` where another
    /// socket holds the address without `SO_REUSEPORT`); `NotInFiber`
    /// (wrapped in the `io::Error`) outside a fiber, or where no Tokio
    /// runtime is entered (the listener is registered with the thread's
    /// reactor).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it never waits.
    ///
    /// # Examples
    ///
    /// A std-shaped server on both threads of a runtime. The first thread
    /// binds port 0 and reports the port it got; the second binds that port.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::SocketAddr;
    /// use fuseau_tokio::net::{ServerBuilder, TcpStream};
    ///
    /// /// Serves on `thread`, echoing each connection's bytes until it closes.
    /// fn serve(runtime: &fuseau_tokio::Runtime, thread: usize, addr: SocketAddr)
    ///     -> fuseau_tokio::Result<(fuseau_tokio::RemoteFiber<()>, SocketAddr)>
    /// {
    ///     let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    ///     let server = runtime.spawn_on(thread, move || {
    ///         let listener = ServerBuilder::new().reuse_port(true).bind_tcp(addr)?;
    ///         bound_tx.send(listener.local_addr()?).unwrap();
    ///         for stream in listener.incoming() {
    ///             let mut stream = stream?;
    ///             fuseau_tokio::spawn(move || {
    ///                 let mut buf = [0; 64];
    ///                 loop {
    ///                     match stream.read(&mut buf)? {
    ///                         0 => return Ok(()),
    ///                         n => stream.write_all(&buf[..n])?,
    ///                     }
    ///                 }
    ///             });
    ///         }
    ///         Ok(())
    ///     });
    ///     let bound = bound_rx.recv().expect("the listener is bound");
    ///     Ok((server, bound))
    /// }
    ///
    /// let runtime = fuseau_tokio::Runtime::new(2)?;
    /// let (first, addr) = serve(&runtime, 0, "127.0.0.1:0".parse().unwrap())?;
    /// let (second, _) = serve(&runtime, 1, addr)?;
    /// let reply = runtime.block_on(move || {
    ///     let mut stream = TcpStream::connect(addr)?;
    ///     stream.write_all(b"ping")?;
    ///     let mut reply = [0; 4];
    ///     stream.read_exact(&mut reply)?;
    ///     Ok(reply)
    /// })?;
    /// assert_eq!(&reply, b"ping");
    /// first.cancel();
    /// second.cancel();
    /// runtime.shutdown();
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn bind_tcp(self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        require_fiber("ServerBuilder::bind_tcp")?;
        common::require_tokio("ServerBuilder::bind_tcp")?;
        self.bind(addr)
    }

    /// `bind_tcp` without the checks (the caller made them).
    fn bind(&self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if self.reuse_port {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        Ok(TcpListener::from(socket.listen(self.backlog)?))
    }

    /// Listens on the Unix-domain socket `path` (which must not exist) and
    /// serves each connection with `handler(input, output)`. See
    /// [`UnixServer::establish`].
    ///
    /// # Errors
    ///
    /// If the socket cannot be created or bound; [`ErrorKind::NotInFiber`]
    /// outside a fiber.
    pub fn establish_unix(
        self,
        path: impl AsRef<Path>,
        handler: impl Fn(In, Out) -> Result<()> + 'static,
    ) -> Result<UnixServer> {
        require_fiber("UnixServer::establish")?;
        let path = path.as_ref().to_path_buf();
        let listener = UnixListener::bind(&path)?;
        let acceptor = serve(
            format!("unix server {}", path.display()),
            move || {
                let (stream, _) = listener.accept()?;
                let (input, output) = iostream::unix(stream.into_tokio()?);
                Ok(((), input, output))
            },
            Rc::new(move |(), input, output| handler(input, output)),
            self.on_error,
        );
        Ok(UnixServer { path, acceptor })
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("backlog", &self.backlog)
            .field("nodelay", &self.nodelay)
            .finish_non_exhaustive()
    }
}

/// Spawns the acceptor fiber: it accepts with `accept` and spawns a
/// connection fiber (its child, not propagating failures) per connection.
fn serve<P: fmt::Debug + Clone + 'static>(
    name: String,
    accept: impl Fn() -> Result<(P, In, Out)> + 'static,
    handler: Rc<dyn Fn(P, In, Out) -> Result<()>>,
    on_error: Report,
) -> Fiber<()> {
    Builder::new().name(name).spawn(move || loop {
        let (peer, input, output) = match accept() {
            Ok(accepted) => accepted,
            Err(e) if e.is_cancellation() => return Err(e),
            // A failed accept (a connection reset before it was accepted,
            // or out of descriptors) is reported; the server goes on after
            // a pause, so that a persistent error cannot spin.
            Err(e) => {
                on_error("(accept)", &e);
                fuseau::sleep(std::time::Duration::from_millis(10))?;
                continue;
            }
        };
        let handler = handler.clone();
        let on_error = on_error.clone();
        let label = format!("{peer:?}");
        Builder::new()
            .name(label.clone())
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| handler(peer, input, output)))
                    .unwrap_or_else(|payload| {
                        // A panic is reported here (the fiber's boundary,
                        // which turns it into the fiber's error, is past
                        // this closure), then goes on unwinding.
                        if let Some(e) = panic_error(&*payload) {
                            on_error(&label, &e);
                        }
                        resume_unwind(payload)
                    });
                if let Err(e) = &result {
                    if !e.is_cancellation() {
                        on_error(&label, e);
                    }
                }
                result
            });
    })
}

/// The error to report for a handler's panic with `payload`; `None` for
/// the scheduler's forced unwinding of a cancelled fiber at teardown (a
/// payload that is not a panic message), which is no failure.
fn panic_error(payload: &(dyn Any + Send)) -> Option<Error> {
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if fuseau::AnyFiber::current().is_cancelled() {
        return None;
    } else {
        "Box<dyn Any>".to_owned()
    };
    Some(Error::new(ErrorKind::Panicked, message))
}

/// Cancels the acceptor (and so every connection) and waits until all are
/// done.
fn shut_down(acceptor: Fiber<()>) -> Result<()> {
    acceptor.cancel();
    match acceptor.join() {
        // The acceptor's cancellation, by this call, is the normal end; the
        // caller's own cancellation is its error (the server's fibers may
        // not be done yet).
        Err(e) if e.is_cancelled() && !caller_is_cancelled() => Ok(()),
        other => other,
    }
}

fn caller_is_cancelled() -> bool {
    fuseau::AnyFiber::try_current().is_ok_and(|me| me.is_cancelled())
}

/// A TCP server whose connections are served by fibers.
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, Write};
///
/// fuseau_tokio::main(|| {
///     // An echo server: each connection is a fiber running plain std::io code.
///     let server = fuseau_tokio::net::TcpServer::establish(
///         "127.0.0.1:0".parse().unwrap(),
///         |_peer, mut input, mut output| {
///             let mut line = String::new();
///             while input.read_line(&mut line)? > 0 {
///                 output.write_all(line.as_bytes())?;
///                 output.flush()?;
///                 line.clear();
///             }
///             Ok(())
///         },
///     )?;
///     let reply = fuseau_tokio::net::TcpClient::with_connect(server.local_addr(), |input, output| {
///         output.write_all(b"hello\n")?;
///         output.flush()?;
///         let mut line = String::new();
///         input.read_line(&mut line)?;
///         Ok::<_, std::io::Error>(line)
///     })??;
///     assert_eq!(reply, "hello\n");
///     server.shutdown()
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct TcpServer {
    local_addr: SocketAddr,
    acceptor: Fiber<()>,
}

impl TcpServer {
    /// Listens on `addr` (port 0 picks a free port; see
    /// [`local_addr`](TcpServer::local_addr)) and serves each connection
    /// with `handler(peer, input, output)` in a fiber of its own, with
    /// default options ([`ServerBuilder`] for others). Returns at once; the
    /// server runs until [`shutdown`](TcpServer::shutdown) or until the
    /// establishing fiber is cancelled.
    ///
    /// Not a cancellation point.
    ///
    /// # Errors
    ///
    /// If the socket cannot be created or bound (address in use …);
    /// [`ErrorKind::NotInFiber`] outside a fiber.
    pub fn establish(
        addr: SocketAddr,
        handler: impl Fn(SocketAddr, In, Out) -> Result<()> + 'static,
    ) -> Result<TcpServer> {
        ServerBuilder::new().establish_tcp(addr, handler)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, cancels every connection's fiber, and returns when
    /// they are all done (their sockets closed).
    ///
    /// # Cancellation
    ///
    /// A cancellation point: if the calling fiber is cancelled while it
    /// waits, this returns its cancellation error (the server's fibers,
    /// being cancelled, finish on their own).
    ///
    /// # Errors
    ///
    /// The caller's cancellation; [`ErrorKind::NotInFiber`] outside a fiber.
    pub fn shutdown(self) -> Result<()> {
        shut_down(self.acceptor)
    }
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// A Unix-domain socket server whose connections are served by fibers; see
/// [`TcpServer`].
pub struct UnixServer {
    path: std::path::PathBuf,
    acceptor: Fiber<()>,
}

impl UnixServer {
    /// Listens on `path` and serves each connection with
    /// `handler(input, output)` in a fiber of its own. The socket file is
    /// not removed by [`shutdown`](UnixServer::shutdown).
    ///
    /// # Errors
    ///
    /// As [`TcpServer::establish`].
    pub fn establish(
        path: impl AsRef<Path>,
        handler: impl Fn(In, Out) -> Result<()> + 'static,
    ) -> Result<UnixServer> {
        ServerBuilder::new().establish_unix(path, handler)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// As [`TcpServer::shutdown`].
    ///
    /// # Errors
    ///
    /// As [`TcpServer::shutdown`].
    pub fn shutdown(self) -> Result<()> {
        shut_down(self.acceptor)
    }
}

impl fmt::Debug for UnixServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Connecting to TCP servers from fibers.
#[derive(Debug)]
pub struct TcpClient(());

impl TcpClient {
    /// Connects to `addr` (suspending the fiber, not the thread), runs `f`
    /// with the connection, flushes and closes it, and returns what `f`
    /// returned. The socket is closed however `f` ends, panics included.
    /// The connection has `TCP_NODELAY` set.
    ///
    /// # Cancellation
    ///
    /// Connecting, and every read and write inside `f`, are cancellation
    /// points.
    ///
    /// # Errors
    ///
    /// If the connection fails (refused, unreachable …) or the final flush
    /// fails; the fiber's cancellation; [`ErrorKind::NotInFiber`] outside a
    /// fiber.
    pub fn with_connect<R>(addr: SocketAddr, f: impl FnOnce(&mut In, &mut Out) -> R) -> Result<R> {
        require_fiber("TcpClient::with_connect")?;
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let (input, output) = iostream::tcp(stream.into_tokio()?);
        run_client(input, output, f)
    }
}

/// Connecting to Unix-domain servers from fibers.
#[derive(Debug)]
pub struct UnixClient(());

impl UnixClient {
    /// Connects to the socket at `path` and runs `f` with the connection,
    /// as [`TcpClient::with_connect`].
    ///
    /// # Cancellation
    ///
    /// As [`TcpClient::with_connect`].
    ///
    /// # Errors
    ///
    /// As [`TcpClient::with_connect`].
    pub fn with_connect<R>(
        path: impl AsRef<Path>,
        f: impl FnOnce(&mut In, &mut Out) -> R,
    ) -> Result<R> {
        require_fiber("UnixClient::with_connect")?;
        let stream = UnixStream::connect(path)?;
        let (input, output) = iostream::unix(stream.into_tokio()?);
        run_client(input, output, f)
    }
}

fn run_client<R>(
    mut input: In,
    mut output: Out,
    f: impl FnOnce(&mut In, &mut Out) -> R,
) -> Result<R> {
    let result = f(&mut input, &mut output);
    output.close()?;
    drop(input);
    Ok(result)
}
