//! Servers and clients in direct style: [`TcpServer`], [`TcpClient`] and
//! their Unix-domain twins [`UnixServer`], [`UnixClient`].
//!
//! A server accepts connections in a fiber of its own, and runs the handler
//! of each connection in a fiber too, with the connection as an
//! [`In`]/[`Out`] pair. A handler that fails or panics only loses its own
//! connection: the failure is reported (to the `on_error` callback, by
//! default to standard error) and the server goes on.
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
use tokio::net::{TcpSocket, TcpStream, UnixListener, UnixStream};

use crate::future::await_future;
use crate::iostream::{self, In, Out};
use crate::runtime::require_fiber;

mod threads;

pub use threads::RuntimeTcpServer;

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
    /// [`establish_tcp_on`](ServerBuilder::establish_tcp_on) always sets it.
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
        let listener = socket.listen(self.backlog)?;
        let local_addr = listener.local_addr()?;
        let nodelay = self.nodelay;
        let acceptor = serve(
            format!("tcp server {local_addr}"),
            move || {
                let (stream, peer) = await_future(listener.accept())??;
                stream.set_nodelay(nodelay)?;
                let (input, output) = iostream::tcp(stream);
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
                let (stream, _) = await_future(listener.accept())??;
                let (input, output) = iostream::unix(stream);
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
        let stream = await_future(TcpStream::connect(addr))??;
        stream.set_nodelay(true)?;
        let (input, output) = iostream::tcp(stream);
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
        let stream = await_future(UnixStream::connect(path.as_ref()))??;
        let (input, output) = iostream::unix(stream);
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
