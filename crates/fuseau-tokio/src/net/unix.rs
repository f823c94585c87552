//! [`UnixStream`] and [`UnixListener`], shaped like
//! `std::os::unix::net`'s, for fibers.
//!
//! Addresses are std's [`std::os::unix::net::SocketAddr`] (Tokio's
//! converts to it without loss).

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::common::{
    await_io, listener, require_tokio, shutdown, std_socket, stream_read_write, Shared,
};

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
        let connect = tokio::net::UnixStream::connect(path);
        await_io("fuseau_tokio::net::UnixStream::connect", connect).map(UnixStream::from)
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
}

// What `UnixStream` has in common with the other socket types (see `common::std_socket!`).
std_socket! {
    UnixStream(stream: tokio::net::UnixStream, std::os::unix::net::UnixStream);
    debug("local": local_addr, "peer": peer_addr);
    try_clone:
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

    from_std:
    /// ```
    /// use std::io::{Read, Write};
    /// use tokio::io::AsyncWriteExt;
    ///
    /// fuseau_tokio::main(|| {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    ///     let mut a = fuseau_tokio::net::UnixStream::from_std(a)?;
    ///     b.write_all(b"from std")?;
    ///     let mut buf = [0; 8];
    ///     a.read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"from std");
    ///     // Back to std, and to Tokio for async code.
    ///     let a: std::os::unix::net::UnixStream = a.into_std()?;
    ///     assert!(a.peer_addr()?.is_unnamed());
    ///     let a = fuseau_tokio::net::UnixStream::from_std(a)?;
    ///     let mut a: tokio::net::UnixStream = a.into_tokio()?;
    ///     fuseau_tokio::await_future(a.write_all(b"from async code"))??;
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
    ///     let (mut a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     a.set_read_timeout(Some(Duration::from_millis(10)))?;
    ///     assert_eq!(a.read_timeout()?, Some(Duration::from_millis(10)));
    ///     assert_eq!(a.read(&mut [0; 4]).unwrap_err().kind(), ErrorKind::WouldBlock);
    ///     a.set_write_timeout(Some(Duration::from_secs(1)))?;
    ///     assert_eq!(a.write_timeout()?, Some(Duration::from_secs(1)));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    take_error:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let (a, _b) = fuseau_tokio::net::UnixStream::pair()?;
    ///     assert!(a.take_error()?.is_none());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
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
    shared: Arc<Shared<tokio::net::UnixListener, ()>>,
}

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
        Ok(self.shared.io.local_addr()?.into())
    }
}

// `accept` and `incoming`, as for the other listener (see `common::listener!`).
listener! {
    UnixListener accepts UnixStream from SocketAddr, incoming: UnixIncoming;
    accept:
    /// See [`UnixStream::connect`].
}

// What `UnixListener` has in common with the other socket types (see `common::std_socket!`).
std_socket! {
    UnixListener(listener: tokio::net::UnixListener, std::os::unix::net::UnixListener);
    debug("local": local_addr);
    try_clone:
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

    from_std:
    /// ```
    /// let name = format!("fuseau-doc-std-{}.sock", std::process::id());
    /// let path = std::env::temp_dir().join(name);
    /// # let _ = std::fs::remove_file(&path);
    /// fuseau_tokio::main(move || {
    ///     let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    ///     let listener = fuseau_tokio::net::UnixListener::from_std(std_listener)?;
    ///     // Back to std, and to Tokio for async code.
    ///     let std_listener = listener.into_std()?;
    ///     assert_eq!(std_listener.local_addr()?.as_pathname(), Some(path.as_path()));
    ///     let listener = fuseau_tokio::net::UnixListener::from_std(std_listener)?;
    ///     let listener: tokio::net::UnixListener = listener.into_tokio()?;
    ///     let client = tokio::task::spawn_local(tokio::net::UnixStream::connect(path.clone()));
    ///     fuseau_tokio::await_future(listener.accept())??;
    ///     fuseau_tokio::await_future(client)?.expect("the task did not panic")?;
    ///     std::fs::remove_file(&path)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    take_error:
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
}
