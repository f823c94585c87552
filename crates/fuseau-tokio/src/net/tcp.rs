//! [`TcpStream`] and [`TcpListener`], shaped like `std::net`'s, for fibers.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::ToSocketAddrs;

use super::common::{await_io, listener, shutdown, std_socket, stream_read_write, Shared};

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
        let connect = tokio::net::TcpStream::connect(addr);
        await_io("fuseau_tokio::net::TcpStream::connect", connect).map(TcpStream::from)
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
        let connect = tokio::net::TcpStream::connect(*addr);
        // The timer is made in the fiber, once Tokio's runtime is known.
        match await_io(CALL, async {
            Ok(tokio::time::timeout(timeout, connect).await)
        })? {
            Ok(stream) => Ok(TcpStream::from(stream?)),
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            )),
        }
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
        let call = "fuseau_tokio::net::TcpStream::peek";
        self.shared.wait(Interest::READABLE, call, |s| {
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
}

// What `TcpStream` has in common with the other socket types (see `common::std_socket!`).
std_socket! {
    TcpStream(stream: tokio::net::TcpStream, std::net::TcpStream);
    debug("addr": local_addr, "peer": peer_addr);
    try_clone:
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

    from_std:
    /// ```
    /// use tokio::io::AsyncWriteExt;
    ///
    /// fuseau_tokio::main(|| {
    ///     let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    ///     let stream = fuseau_tokio::net::TcpStream::from_std(std_stream)?;
    ///     assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    ///     // Back to std, and to Tokio for async code.
    ///     let std_stream: std::net::TcpStream = stream.into_std()?;
    ///     let stream = fuseau_tokio::net::TcpStream::from_std(std_stream)?;
    ///     let mut stream: tokio::net::TcpStream = stream.into_tokio()?;
    ///     fuseau_tokio::await_future(stream.write_all(b"from async code"))??;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    timeouts:
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
    ///     stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    ///     assert_eq!(stream.write_timeout()?, Some(Duration::from_secs(1)));
    ///     assert!(stream.set_write_timeout(Some(Duration::ZERO)).is_err());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    ttl:
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

    take_error:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let stream = fuseau_tokio::net::TcpStream::connect(listener.local_addr()?)?;
    ///     assert!(stream.take_error()?.is_none());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
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
    shared: Arc<Shared<tokio::net::TcpListener, ()>>,
}

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
        let bind = tokio::net::TcpListener::bind(addr);
        await_io("fuseau_tokio::net::TcpListener::bind", bind).map(TcpListener::from)
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
        self.shared.io.local_addr()
    }
}

// `accept` and `incoming`, as for the other listener (see `common::listener!`).
listener! {
    TcpListener accepts TcpStream from SocketAddr, incoming: Incoming;
    accept:
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
}

// What `TcpListener` has in common with the other socket types (see `common::std_socket!`).
std_socket! {
    TcpListener(listener: tokio::net::TcpListener, std::net::TcpListener);
    debug("addr": local_addr);
    try_clone:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let other = listener.try_clone()?;
    ///     assert_eq!(other.local_addr()?, listener.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    from_std:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    ///     let addr = std_listener.local_addr()?;
    ///     let listener = fuseau_tokio::net::TcpListener::from_std(std_listener)?;
    ///     assert_eq!(listener.local_addr()?, addr);
    ///     // Back to std, and to Tokio for async code.
    ///     let std_listener: std::net::TcpListener = listener.into_std()?;
    ///     let listener = fuseau_tokio::net::TcpListener::from_std(std_listener)?;
    ///     let listener: tokio::net::TcpListener = listener.into_tokio()?;
    ///     let client = tokio::task::spawn_local(tokio::net::TcpStream::connect(addr));
    ///     fuseau_tokio::await_future(listener.accept())??;
    ///     fuseau_tokio::await_future(client)?.expect("the task did not panic")?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    ttl:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let listener = fuseau_tokio::net::TcpListener::bind("127.0.0.1:0")?;
    ///     listener.set_ttl(100)?;
    ///     assert_eq!(listener.ttl()?, 100);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
}
