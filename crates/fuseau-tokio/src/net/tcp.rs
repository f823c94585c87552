//! [`TcpStream`] and [`TcpListener`], shaped like `std::net`'s, for fibers.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::ToSocketAddrs;

use super::{as_fd, next_incoming, require_tokio, shutdown, stream_read_write, unshare, Shared};
use crate::future::await_future;
use crate::runtime::require_fiber;

/// A TCP connection, shaped like [`std::net::TcpStream`]: [`Read`](io::Read)
/// and [`Write`](io::Write) (for `&TcpStream` too), whose calls suspend the
/// fiber instead of blocking the thread.
///
/// Clones ([`try_clone`](TcpStream::try_clone)) share the socket, so that a
/// reader fiber and a writer fiber can work on one connection; the socket
/// closes when the last clone is dropped. `Send + Sync`, like std's. See the
/// [module docs](crate::net) for how it works, its errors and its
/// cancellation.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use fuseau_tokio::net::{TcpListener, TcpStream};
///
/// fuseau_tokio::main(|| {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     let server = fuseau_tokio::spawn(move || {
///         let (mut stream, _peer) = listener.accept()?;
///         stream.write_all(b"hello")?;
///         Ok(())
///     });
///     let mut stream = TcpStream::connect(addr)?;
///     let mut reply = String::new();
///     stream.read_to_string(&mut reply)?;
///     assert_eq!(reply, "hello");
///     server.join()
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct TcpStream {
    shared: Arc<Shared<tokio::net::TcpStream>>,
}

stream_read_write!(TcpStream);
as_fd!(TcpStream, shared.io);

impl TcpStream {
    /// Opens a connection to `addr`, suspending the fiber until it is
    /// established. `addr` is anything Tokio resolves
    /// ([`tokio::net::ToSocketAddrs`]): a [`SocketAddr`], `"127.0.0.1:80"`,
    /// `"example.com:80"`, `("example.com", 80)` …; names are resolved on
    /// Tokio's blocking pool, without blocking the thread. If the name
    /// resolves to several addresses, each is tried in turn, as std does.
    ///
    /// # Errors
    ///
    /// As std's: the last address's error (`ConnectionRefused` when nobody
    /// listens …), the resolver's error for a name that does not resolve
    /// (`InvalidInput` for a string that is no address); the fiber's
    /// cancellation; `NotInFiber` outside a fiber (see the
    /// [module docs](crate::net#cancellation)).
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before the call, it does nothing;
    /// while it waits, the half-open socket is closed (and a resolution in
    /// progress runs on, its result dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::net::{TcpListener, TcpStream};
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let port = listener.local_addr()?.port();
    ///     let stream = TcpStream::connect(("localhost", port))?;
    ///     assert_eq!(stream.peer_addr()?.port(), port);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        const CALL: &str = "fuseau_tokio::net::TcpStream::connect";
        require_fiber(CALL)?;
        require_tokio(CALL)?;
        let stream = await_future(tokio::net::TcpStream::connect(addr))??;
        Ok(TcpStream::from(stream))
    }

    /// Opens a connection to `addr`, giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if the connection is not established in time (on
    /// Tokio's clock); `InvalidInput` for a zero `timeout`, as std; as
    /// [`connect`](TcpStream::connect) otherwise.
    ///
    /// # Cancellation
    ///
    /// As [`connect`](TcpStream::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use fuseau_tokio::net::{TcpListener, TcpStream};
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    ///     assert_eq!(stream.peer_addr()?, addr);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        const CALL: &str = "fuseau_tokio::net::TcpStream::connect_timeout";
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        require_fiber(CALL)?;
        require_tokio(CALL)?;
        let connect = tokio::net::TcpStream::connect(*addr);
        match await_future(tokio::time::timeout(timeout, connect))? {
            Ok(stream) => Ok(TcpStream::from(stream?)),
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            )),
        }
    }

    /// A second handle to the connection, sharing the socket, its
    /// registration and its timeouts: a reader fiber and a writer fiber
    /// can each hold one. Unlike std's, it opens no new descriptor.
    ///
    /// # Errors
    ///
    /// None: it always succeeds (`io::Result` as std's).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use fuseau_tokio::net::TcpStream;
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (server, _) = listener.accept()?;
    ///     // The server echoes in a fiber, with a reader and a writer handle.
    ///     let mut reader = server.try_clone()?;
    ///     let mut writer = server;
    ///     let echo = fuseau_tokio::spawn(move || {
    ///         std::io::copy(&mut reader, &mut writer)?;
    ///         Ok(())
    ///     });
    ///     client.write_all(b"ping")?;
    ///     let mut reply = [0; 4];
    ///     client.read_exact(&mut reply)?;
    ///     assert_eq!(&reply, b"ping");
    ///     drop(client);
    ///     echo.join()
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            shared: self.shared.clone(),
        })
    }

    /// Shuts down the reading, writing or both halves of the connection
    /// (for every clone): after `Shutdown::Write` the peer reads end of
    /// file; after `Shutdown::Read` reads return `Ok(0)`. A fiber waiting
    /// to read or write on a half that is shut down wakes up.
    ///
    /// # Errors
    ///
    /// The system's, as std's (`NotConnected` …).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it does not wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::Shutdown;
    /// use fuseau_tokio::net::{TcpListener, TcpStream};
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (mut server, _) = listener.accept()?;
    ///     client.write_all(b"request")?;
    ///     client.shutdown(Shutdown::Write)?;
    ///     let mut request = String::new();
    ///     server.read_to_string(&mut request)?; // ends: the client shut down
    ///     assert_eq!(request, "request");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        shutdown(&self.shared.io, how)
    }

    /// Receives data without removing it from the socket's queue: the next
    /// read returns it again. Waits as [`read`](io::Read::read) does (with
    /// the read timeout).
    ///
    /// # Errors
    ///
    /// As a read: the system's, `WouldBlock` on a timeout, the fiber's
    /// cancellation, `NotInFiber` outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point, as a read.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use fuseau_tokio::net::{TcpListener, TcpStream};
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let mut client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (mut server, _) = listener.accept()?;
    ///     client.write_all(b"abc")?;
    ///     let mut buf = [0; 3];
    ///     assert_eq!(server.peek(&mut buf)?, 3);
    ///     server.read_exact(&mut buf)?; // the same bytes again
    ///     assert_eq!(&buf, b"abc");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.read("fuseau_tokio::net::TcpStream::peek", |s| {
            s.try_io(Interest::READABLE, || {
                let (n, _) = rustix::net::recv(s.as_fd(), &mut *buf, rustix::net::RecvFlags::PEEK)?;
                Ok(n)
            })
        })
    }

    /// The address of the remote end.
    ///
    /// # Errors
    ///
    /// The system's (`NotConnected` once the peer is gone on some systems).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.shared.io.peer_addr()
    }

    /// The address of the local end.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     let (_, peer) = listener.accept()?;
    ///     assert_eq!(stream.local_addr()?, peer);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.io.local_addr()
    }

    /// Sets `TCP_NODELAY` (no Nagle delay for small writes).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     stream.set_nodelay(true)?;
    ///     assert!(stream.nodelay()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.shared.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set; see
    /// [`set_nodelay`](TcpStream::set_nodelay).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`set_nodelay`](TcpStream::set_nodelay).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.shared.io.nodelay()
    }

    /// Bounds how long each read (and [`peek`](TcpStream::peek)) may wait;
    /// `None` (the default) waits as long as it takes. Shared by the clones,
    /// as std's timeouts are per socket.
    ///
    /// A read that times out reads nothing and fails with `WouldBlock`, as
    /// std's do on Unix. The time is Tokio's clock (paused test time
    /// applies).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Duration;
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let mut stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     stream.set_read_timeout(Some(Duration::from_millis(10)))?;
    ///     assert_eq!(stream.read_timeout()?, Some(Duration::from_millis(10)));
    ///     // Nobody writes: the read times out.
    ///     let e = stream.read(&mut [0; 8]).unwrap_err();
    ///     assert_eq!(e.kind(), ErrorKind::WouldBlock);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.shared.set_read_timeout(timeout)
    }

    /// Bounds how long each write may wait (for room in the socket's
    /// buffer), as [`set_read_timeout`](TcpStream::set_read_timeout) does
    /// for reads. A write that times out writes nothing and fails with
    /// `WouldBlock`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as std.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    ///     assert_eq!(stream.write_timeout()?, Some(Duration::from_secs(1)));
    ///     assert!(stream.set_write_timeout(Some(Duration::ZERO)).is_err());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.shared.set_write_timeout(timeout)
    }

    /// The read timeout; see [`set_read_timeout`](TcpStream::set_read_timeout).
    ///
    /// # Errors
    ///
    /// None (`io::Result` as std's).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`set_read_timeout`](TcpStream::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.shared.read_timeout())
    }

    /// The write timeout; see
    /// [`set_write_timeout`](TcpStream::set_write_timeout).
    ///
    /// # Errors
    ///
    /// None (`io::Result` as std's).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`set_write_timeout`](TcpStream::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.shared.write_timeout())
    }

    /// Sets the IP time-to-live of outgoing packets (`IP_TTL`).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     stream.set_ttl(42)?;
    ///     assert_eq!(stream.ttl()?, 42);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.shared.io.set_ttl(ttl)
    }

    /// The IP time-to-live; see [`set_ttl`](TcpStream::set_ttl).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`set_ttl`](TcpStream::set_ttl).
    pub fn ttl(&self) -> io::Result<u32> {
        self.shared.io.ttl()
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any.
    ///
    /// # Errors
    ///
    /// If the option cannot be read.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     assert!(stream.take_error()?.is_none());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.shared.io.take_error()
    }

    /// Adopts a connected std stream: sets it non-blocking and registers it
    /// with the reactor of this thread's Tokio runtime.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or registered; `NotInFiber` where
    /// no Tokio runtime is entered (outside [`main`](crate::main),
    /// [`run`](crate::run), a [`Runtime`](crate::Runtime) …).
    ///
    /// # Panics
    ///
    /// In a Tokio runtime built without its I/O driver (as Tokio's
    /// `from_std`); the runtimes of this crate have it.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    ///     let stream = fuseau_tokio::net::TcpStream::from_std(std_stream)?;
    ///     assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        require_tokio("fuseau_tokio::net::TcpStream::from_std")?;
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from(tokio::net::TcpStream::from_std(stream)?))
    }

    /// The std stream, deregistered from the reactor and in blocking mode
    /// again (as std's streams start). The timeouts set here are not
    /// carried over.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if other clones of the stream are alive (the stream
    /// is then dropped: drop the clones first); the system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     let std_stream: std::net::TcpStream = stream.into_std()?;
    ///     assert_eq!(std_stream.peer_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let stream = self.into_tokio()?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    /// The Tokio stream, for async code (it stays registered with the same
    /// reactor). The timeouts set here are not carried over.
    /// [`From<tokio::net::TcpStream>`](#impl-From<TcpStream>-for-TcpStream)
    /// converts the other way.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if other clones of the stream are alive (the stream
    /// is then dropped: drop the clones first).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     let mut stream = stream.into_tokio()?;
    ///     fuseau_tokio::await_future(stream.write_all(b"from async code"))??;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_tokio(self) -> io::Result<tokio::net::TcpStream> {
        Shared::into_io(self.shared, "fuseau_tokio::net::TcpStream::into_tokio")
    }
}

impl From<tokio::net::TcpStream> for TcpStream {
    /// Wraps a Tokio stream (already registered with its reactor), with no
    /// timeouts.
    fn from(stream: tokio::net::TcpStream) -> TcpStream {
        TcpStream {
            shared: Shared::new(stream),
        }
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.shared.io.as_fd()).finish()
    }
}

/// A TCP listener, shaped like [`std::net::TcpListener`]:
/// [`accept`](TcpListener::accept) suspends the fiber until a connection
/// comes. `Send + Sync`; several fibers may accept on one listener (share a
/// reference, or [`try_clone`](TcpListener::try_clone) it).
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use fuseau_tokio::net::{TcpListener, TcpStream};
///
/// fuseau_tokio::main(|| {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     // An echo server of lines, for two clients, one at a time.
///     let server = fuseau_tokio::spawn(move || {
///         for stream in listener.incoming().take(2) {
///             let stream = stream?;
///             let mut line = String::new();
///             BufReader::new(&stream).read_line(&mut line)?;
///             (&stream).write_all(line.as_bytes())?;
///         }
///         Ok(())
///     });
///     for text in ["one\n", "two\n"] {
///         let mut stream = TcpStream::connect(addr)?;
///         stream.write_all(text.as_bytes())?;
///         let mut echo = String::new();
///         BufReader::new(stream).read_line(&mut echo)?;
///         assert_eq!(echo, text);
///     }
///     server.join()
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct TcpListener {
    io: Arc<tokio::net::TcpListener>,
}

as_fd!(TcpListener, io);

impl TcpListener {
    /// Creates a listener bound to `addr` (port 0 picks a free port; see
    /// [`local_addr`](TcpListener::local_addr)), with `SO_REUSEADDR` set, as
    /// std's. `addr` is anything Tokio resolves, as for
    /// [`TcpStream::connect`]; with several addresses, the first that can
    /// be bound is.
    ///
    /// # Errors
    ///
    /// The system's (`AddrInUse` …), the resolver's; the fiber's
    /// cancellation; `NotInFiber` outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (resolving a name waits): cancelled before or
    /// during the call, it binds nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     assert_ne!(listener.local_addr()?.port(), 0);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        const CALL: &str = "fuseau_tokio::net::TcpListener::bind";
        require_fiber(CALL)?;
        require_tokio(CALL)?;
        let listener = await_future(tokio::net::TcpListener::bind(addr))??;
        Ok(TcpListener::from(listener))
    }

    /// Waits for a connection and returns it with the peer's address. The
    /// new stream is registered with the reactor of this thread.
    ///
    /// # Errors
    ///
    /// The system's (a connection reset before it was accepted, out of
    /// descriptors …); the fiber's cancellation; `NotInFiber` outside a
    /// fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before or while it waits, it accepts
    /// nothing (a pending connection stays queued for the next accept).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::net::{TcpListener, TcpStream};
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = TcpListener::bind("127.0.0.1:0")?;
    ///     let client = TcpStream::connect(listener.local_addr()?)?;
    ///     let (server, peer) = listener.accept()?;
    ///     assert_eq!(peer, client.local_addr()?);
    ///     assert_eq!(server.peer_addr()?, peer);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        require_fiber("fuseau_tokio::net::TcpListener::accept")?;
        let (stream, peer) = await_future(self.io.accept())??;
        Ok((TcpStream::from(stream), peer))
    }

    /// An iterator of accepted connections: each `next` is an
    /// [`accept`](TcpListener::accept), without the peer's address. Like
    /// std's, it yields errors (and goes on after them), except that it
    /// ends after an error of the fiber (its cancellation, or
    /// `NotInFiber`), which every later accept would repeat.
    ///
    /// # Errors
    ///
    /// Each item: as [`accept`](TcpListener::accept).
    ///
    /// # Cancellation
    ///
    /// Each `next` is a cancellation point, as
    /// [`accept`](TcpListener::accept).
    ///
    /// # Examples
    ///
    /// See [`TcpListener`].
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            finished: false,
        }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`bind`](TcpListener::bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Sets the IP time-to-live of the accepted connections' packets.
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     listener.set_ttl(100)?;
    ///     assert_eq!(listener.ttl()?, 100);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.set_ttl(ttl)
    }

    /// The IP time-to-live; see [`set_ttl`](TcpListener::set_ttl).
    ///
    /// # Errors
    ///
    /// The system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`set_ttl`](TcpListener::set_ttl).
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.ttl()
    }

    /// A second handle to the listener, sharing the socket (no new
    /// descriptor): for acceptor fibers on other threads, say.
    ///
    /// # Errors
    ///
    /// None: it always succeeds (`io::Result` as std's).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let other = listener.try_clone()?;
    ///     assert_eq!(other.local_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: self.io.clone(),
        })
    }

    /// Adopts a bound std listener: sets it non-blocking and registers it
    /// with the reactor of this thread's Tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::from_std`].
    ///
    /// # Panics
    ///
    /// As [`TcpStream::from_std`].
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = std_listener.local_addr()?;
    ///     let listener = fuseau_tokio::net::TcpListener::from_std(std_listener)?;
    ///     assert_eq!(listener.local_addr()?, addr);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        require_tokio("fuseau_tokio::net::TcpListener::from_std")?;
        listener.set_nonblocking(true)?;
        Ok(TcpListener::from(tokio::net::TcpListener::from_std(
            listener,
        )?))
    }

    /// The std listener, deregistered from the reactor and in blocking mode
    /// again.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::into_std`].
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = listener.local_addr()?;
    ///     assert_eq!(listener.into_std()?.local_addr()?, addr);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let listener = self.into_tokio()?.into_std()?;
        listener.set_nonblocking(false)?;
        Ok(listener)
    }

    /// The Tokio listener, for async code.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if other clones of the listener are alive.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let listener: tokio::net::TcpListener = listener.into_tokio()?;
    ///     let addr = listener.local_addr()?;
    ///     let client = tokio::task::spawn_local(tokio::net::TcpStream::connect(addr));
    ///     fuseau_tokio::await_future(listener.accept())??;
    ///     fuseau_tokio::await_future(client)?.expect("the task did not panic")?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_tokio(self) -> io::Result<tokio::net::TcpListener> {
        unshare(self.io, "fuseau_tokio::net::TcpListener::into_tokio")
    }
}

impl From<tokio::net::TcpListener> for TcpListener {
    /// Wraps a Tokio listener (already registered with its reactor).
    fn from(listener: tokio::net::TcpListener) -> TcpListener {
        TcpListener {
            io: Arc::new(listener),
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.io.as_fd()).finish()
    }
}

/// The connections a [`TcpListener`] accepts, from
/// [`TcpListener::incoming`]: each `next` waits for one (a cancellation point,
/// as [`TcpListener::accept`]).
///
/// # Examples
///
/// See [`TcpListener`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    finished: bool,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        next_incoming(&mut self.finished, || {
            self.listener.accept().map(|(stream, _)| stream)
        })
    }
}
