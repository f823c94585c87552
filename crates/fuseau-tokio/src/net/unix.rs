//! [`UnixStream`] and [`UnixListener`], shaped like
//! `std::os::unix::net`'s, for fibers.
//!
//! Addresses are std's [`std::os::unix::net::SocketAddr`] (Tokio's
//! converts to it without loss).

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{as_fd, next_incoming, require_tokio, shutdown, stream_read_write, unshare, Shared};
use crate::future::await_future;
use crate::runtime::require_fiber;

/// A Unix-domain stream socket, shaped like
/// [`std::os::unix::net::UnixStream`]: [`Read`](io::Read) and
/// [`Write`](io::Write) (for `&UnixStream` too), whose calls suspend the
/// fiber instead of blocking the thread.
///
/// As [`TcpStream`](super::TcpStream): clones share the socket and its
/// timeouts; `Send + Sync`. See the [module docs](crate::net) for how it
/// works, its errors and its cancellation.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use fuseau_tokio::net::UnixStream;
///
/// fuseau_tokio::main(|| {
///     let (mut a, mut b) = UnixStream::pair()?;
///     let writer = fuseau_tokio::spawn(move || {
///         b.write_all(b"across the pair")?;
///         Ok(())
///     }); // `b` is dropped when the fiber ends: `a` reads end of file.
///     let mut got = String::new();
///     a.read_to_string(&mut got)?;
///     assert_eq!(got, "across the pair");
///     writer.join()
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct UnixStream {
    shared: Arc<Shared<tokio::net::UnixStream>>,
}

stream_read_write!(UnixStream);
as_fd!(UnixStream, shared.io);

impl UnixStream {
    /// Connects to the socket at `path` (on Linux, a path starting with a
    /// NUL byte names an abstract socket), suspending the fiber until the
    /// connection is established.
    ///
    /// # Errors
    ///
    /// The system's, as std's (`NotFound` if nothing is at `path`,
    /// `ConnectionRefused` if nobody listens there); the fiber's
    /// cancellation; `NotInFiber` outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before the call it does nothing;
    /// while it waits, the half-open socket is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use fuseau_tokio::net::{UnixListener, UnixStream};
    ///
    /// let name = format!("fuseau-doc-connect-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let listener = UnixListener::bind(&path)?;
    ///     let mut client = UnixStream::connect(&path)?;
    ///     let (mut server, _) = listener.accept()?;
    ///     client.write_all(b"hi")?;
    ///     let mut buf = [0; 2];
    ///     server.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"hi");
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        const CALL: &str = "fuseau_tokio::net::UnixStream::connect";
        require_fiber(CALL)?;
        require_tokio(CALL)?;
        let stream = await_future(tokio::net::UnixStream::connect(path))??;
        Ok(UnixStream::from(stream))
    }

    /// A pair of connected, unnamed sockets, registered with the reactor of
    /// this thread's Tokio runtime.
    ///
    /// # Errors
    ///
    /// The system's; `NotInFiber` where no Tokio runtime is entered
    /// (outside [`main`](crate::main), [`run`](crate::run), a
    /// [`Runtime`](crate::Runtime) …).
    ///
    /// # Panics
    ///
    /// In a Tokio runtime built without its I/O driver; the runtimes of
    /// this crate have it.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it does not wait.
    ///
    /// # Examples
    ///
    /// See [`UnixStream`].
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        require_tokio("fuseau_tokio::net::UnixStream::pair")?;
        let (a, b) = tokio::net::UnixStream::pair()?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
    }

    /// A second handle to the connection, sharing the socket, its
    /// registration and its timeouts (no new descriptor); see
    /// [`TcpStream::try_clone`](super::TcpStream::try_clone).
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
    ///
    /// fuseau_tokio::main(|| {
    ///     let (a, mut b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     let mut a_reader = a.try_clone()?;
    ///     (&a).write_all(b"a to b")?;
    ///     b.write_all(b"b to a")?;
    ///     let mut buf = [0; 6];
    ///     a_reader.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"b to a");
    ///     b.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"a to b");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            shared: self.shared.clone(),
        })
    }

    /// Shuts down the reading, writing or both halves of the connection;
    /// see [`TcpStream::shutdown`](super::TcpStream::shutdown).
    ///
    /// # Errors
    ///
    /// The system's, as std's.
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
    ///
    /// fuseau_tokio::main(|| {
    ///     let (mut a, mut b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     a.write_all(b"done")?;
    ///     a.shutdown(Shutdown::Write)?;
    ///     let mut got = String::new();
    ///     b.read_to_string(&mut got)?;
    ///     assert_eq!(got, "done");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        shutdown(&self.shared.io, how)
    }

    /// The address of the local end (unnamed for a
    /// [`connect`](UnixStream::connect)ed or [`pair`](UnixStream::pair)ed
    /// socket), as std's `SocketAddr`.
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
    ///     let (a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     assert!(a.local_addr()?.is_unnamed());
    ///     assert!(a.peer_addr()?.is_unnamed());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.io.local_addr()?.into())
    }

    /// The address of the remote end (the listener's path for a
    /// [`connect`](UnixStream::connect)ed socket), as std's `SocketAddr`.
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
    /// See [`local_addr`](UnixStream::local_addr).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.io.peer_addr()?.into())
    }

    /// Bounds how long each read may wait; see
    /// [`TcpStream::set_read_timeout`](super::TcpStream::set_read_timeout).
    /// A read that times out fails with `WouldBlock`. Shared by the clones.
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
    ///     let (mut a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     a.set_read_timeout(Some(Duration::from_millis(10)))?;
    ///     assert_eq!(a.read_timeout()?, Some(Duration::from_millis(10)));
    ///     assert_eq!(a.read(&mut [0; 4]).unwrap_err().kind(), ErrorKind::WouldBlock);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.shared.set_read_timeout(timeout)
    }

    /// Bounds how long each write may wait; see
    /// [`TcpStream::set_write_timeout`](super::TcpStream::set_write_timeout).
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
    ///     let (a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     a.set_write_timeout(Some(Duration::from_secs(1)))?;
    ///     assert_eq!(a.write_timeout()?, Some(Duration::from_secs(1)));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.shared.set_write_timeout(timeout)
    }

    /// The read timeout; see
    /// [`set_read_timeout`](UnixStream::set_read_timeout).
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
    /// See [`set_read_timeout`](UnixStream::set_read_timeout).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.shared.read_timeout())
    }

    /// The write timeout; see
    /// [`set_write_timeout`](UnixStream::set_write_timeout).
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
    /// See [`set_write_timeout`](UnixStream::set_write_timeout).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.shared.write_timeout())
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
    ///     let (a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     assert!(a.take_error()?.is_none());
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
    /// As [`TcpStream::from_std`](super::TcpStream::from_std).
    ///
    /// # Panics
    ///
    /// As [`TcpStream::from_std`](super::TcpStream::from_std).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// fuseau_tokio::main(|| {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    ///     let mut a = fuseau_tokio::net::UnixStream::from_std(a)?;
    ///     b.write_all(b"from std")?;
    ///     let mut buf = [0; 8];
    ///     a.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"from std");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        require_tokio("fuseau_tokio::net::UnixStream::from_std")?;
        stream.set_nonblocking(true)?;
        Ok(UnixStream::from(tokio::net::UnixStream::from_std(stream)?))
    }

    /// The std stream, deregistered from the reactor and in blocking mode
    /// again. The timeouts set here are not carried over.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::into_std`](super::TcpStream::into_std).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let (a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     let a: std::os::unix::net::UnixStream = a.into_std()?;
    ///     assert!(a.peer_addr()?.is_unnamed());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let stream = self.into_tokio()?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    /// The Tokio stream, for async code. The timeouts set here are not
    /// carried over.
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
    ///     let (a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     let mut a = a.into_tokio()?;
    ///     fuseau_tokio::await_future(a.write_all(b"from async code"))??;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_tokio(self) -> io::Result<tokio::net::UnixStream> {
        Shared::into_io(self.shared, "fuseau_tokio::net::UnixStream::into_tokio")
    }
}

impl From<tokio::net::UnixStream> for UnixStream {
    /// Wraps a Tokio stream (already registered with its reactor), with no
    /// timeouts.
    fn from(stream: tokio::net::UnixStream) -> UnixStream {
        UnixStream {
            shared: Shared::new(stream),
        }
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixStream");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.shared.io.as_fd()).finish()
    }
}

/// A Unix-domain listener, shaped like
/// [`std::os::unix::net::UnixListener`]: [`accept`](UnixListener::accept)
/// suspends the fiber until a connection comes. `Send + Sync`.
///
/// The socket file is not removed when the listener is dropped (as std).
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use fuseau_tokio::net::{UnixListener, UnixStream};
///
/// let name = format!("fuseau-doc-listener-{}.sock", std::process::id());
/// let path = std::env::temp_dir().join(name);
/// # let _ = std::fs::remove_file(&path);
/// fuseau_tokio::main(move || {
///     let listener = UnixListener::bind(&path)?;
///     let server = fuseau_tokio::spawn(move || {
///         for stream in listener.incoming().take(3) {
///             stream?.write_all(b"welcome")?;
///         }
///         Ok(())
///     });
///     for _ in 0..3 {
///         let mut greeting = String::new();
///         UnixStream::connect(&path)?.read_to_string(&mut greeting)?;
///         assert_eq!(greeting, "welcome");
///     }
///     server.join()?;
///     std::fs::remove_file(&path)?;
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct UnixListener {
    io: Arc<tokio::net::UnixListener>,
}

as_fd!(UnixListener, io);

impl UnixListener {
    /// Creates a listener bound to `path` (which must not exist; on Linux,
    /// a path starting with a NUL byte names an abstract socket),
    /// registered with the reactor of this thread's Tokio runtime.
    ///
    /// # Errors
    ///
    /// The system's (`AddrInUse` if `path` exists …); `NotInFiber` where
    /// no Tokio runtime is entered.
    ///
    /// # Panics
    ///
    /// In a Tokio runtime built without its I/O driver; the runtimes of
    /// this crate have it.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it does not wait.
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        require_tokio("fuseau_tokio::net::UnixListener::bind")?;
        Ok(UnixListener::from(tokio::net::UnixListener::bind(path)?))
    }

    /// Waits for a connection and returns it with the peer's address
    /// (usually unnamed). The new stream is registered with the reactor of
    /// this thread.
    ///
    /// # Errors
    ///
    /// The system's; the fiber's cancellation; `NotInFiber` outside a
    /// fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before or while it waits, it accepts
    /// nothing (a pending connection stays queued).
    ///
    /// # Examples
    ///
    /// See [`UnixStream::connect`].
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        require_fiber("fuseau_tokio::net::UnixListener::accept")?;
        let (stream, peer) = await_future(self.io.accept())??;
        Ok((UnixStream::from(stream), peer.into()))
    }

    /// An iterator of accepted connections, as
    /// [`TcpListener::incoming`](super::TcpListener::incoming): it ends
    /// after an error of the fiber (its cancellation, or `NotInFiber`).
    ///
    /// # Errors
    ///
    /// Each item: as [`accept`](UnixListener::accept).
    ///
    /// # Cancellation
    ///
    /// Each `next` is a cancellation point, as
    /// [`accept`](UnixListener::accept).
    ///
    /// # Examples
    ///
    /// See [`UnixListener`].
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming {
            listener: self,
            finished: false,
        }
    }

    /// The address the listener is bound to, as std's `SocketAddr`.
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
    /// use fuseau_tokio::net::UnixListener;
    ///
    /// let name = format!("fuseau-doc-addr-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let listener = UnixListener::bind(&path)?;
    ///     assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.io.local_addr()?.into())
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
    /// let name = format!("fuseau-doc-err-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let listener = fuseau_tokio::net::UnixListener::bind(&path)?;
    ///     assert!(listener.take_error()?.is_none());
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.take_error()
    }

    /// A second handle to the listener, sharing the socket (no new
    /// descriptor).
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
    /// let name = format!("fuseau-doc-clone-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let listener = fuseau_tokio::net::UnixListener::bind(&path)?;
    ///     let other = listener.try_clone()?;
    ///     assert_eq!(other.local_addr()?.as_pathname(), Some(path.as_path()));
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: self.io.clone(),
        })
    }

    /// Adopts a bound std listener: sets it non-blocking and registers it
    /// with the reactor of this thread's Tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::from_std`](super::TcpStream::from_std).
    ///
    /// # Panics
    ///
    /// As [`TcpStream::from_std`](super::TcpStream::from_std).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("fuseau-doc-std-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    ///     let listener = fuseau_tokio::net::UnixListener::from_std(std_listener)?;
    ///     let std_again = listener.into_std()?;
    ///     assert_eq!(std_again.local_addr()?.as_pathname(), Some(path.as_path()));
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        require_tokio("fuseau_tokio::net::UnixListener::from_std")?;
        listener.set_nonblocking(true)?;
        Ok(UnixListener::from(tokio::net::UnixListener::from_std(
            listener,
        )?))
    }

    /// The std listener, deregistered from the reactor and in blocking mode
    /// again.
    ///
    /// # Errors
    ///
    /// As [`TcpStream::into_std`](super::TcpStream::into_std).
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// See [`from_std`](UnixListener::from_std).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
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
    /// let name = format!("fuseau-doc-tokio-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let listener = fuseau_tokio::net::UnixListener::bind(&path)?;
    ///     let listener: tokio::net::UnixListener = listener.into_tokio()?;
    ///     let client = tokio::task::spawn_local(tokio::net::UnixStream::connect(path.clone()));
    ///     fuseau_tokio::await_future(listener.accept())??;
    ///     fuseau_tokio::await_future(client)?.expect("the task did not panic")?;
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn into_tokio(self) -> io::Result<tokio::net::UnixListener> {
        unshare(self.io, "fuseau_tokio::net::UnixListener::into_tokio")
    }
}

impl From<tokio::net::UnixListener> for UnixListener {
    /// Wraps a Tokio listener (already registered with its reactor).
    fn from(listener: tokio::net::UnixListener) -> UnixListener {
        UnixListener {
            io: Arc::new(listener),
        }
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixListener");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        d.field("fd", &self.io.as_fd()).finish()
    }
}

/// The connections a [`UnixListener`] accepts, from
/// [`UnixListener::incoming`]: each `next` waits for one (a cancellation point,
/// as [`UnixListener::accept`]).
///
/// # Examples
///
/// See [`UnixListener`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
    finished: bool,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        next_incoming(&mut self.finished, || {
            self.listener.accept().map(|(stream, _)| stream)
        })
    }
}
