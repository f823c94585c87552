//! [`UdpSocket`], shaped like `std::net`'s, for fibers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::Interest;
use tokio::net::ToSocketAddrs;

use super::common::{await_io, std_socket, Shared};
use crate::future::await_future;
use crate::runtime::require_fiber;

/// A UDP socket, shaped like [`std::net::UdpSocket`], whose receives (and
/// sends, when the buffer is full) suspend the fiber instead of blocking
/// the thread.
///
/// Clones ([`try_clone`](UdpSocket::try_clone)) share the socket and its
/// timeouts. `Send + Sync`, like std's. See the [module docs](crate::net)
/// for how it works, its errors and its cancellation.
///
/// # Examples
///
/// ```
/// use fuseau_tokio::net::UdpSocket;
///
/// fuseau_tokio::main(|| {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"ping", b.local_addr()?)?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf)?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct UdpSocket {
    shared: Arc<Shared<tokio::net::UdpSocket>>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (port 0 picks a free port). `addr`
    /// is anything Tokio resolves ([`tokio::net::ToSocketAddrs`]); with
    /// several addresses, the first that can be bound is.
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
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     assert_ne!(socket.local_addr()?.port(), 0);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let bind = tokio::net::UdpSocket::bind(addr);
        await_io("fuseau_tokio::net::UdpSocket::bind", bind).map(UdpSocket::from)
    }

    /// Sends a datagram to `addr` (the first address it resolves to, as
    /// std), waiting (with the write timeout) if the send buffer is full.
    /// Returns how many bytes were sent.
    ///
    /// # Errors
    ///
    /// The system's; `InvalidInput` if `addr` resolves to no address, the
    /// resolver's; `WouldBlock` on a timeout; the fiber's cancellation;
    /// `NotInFiber` outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before or while it waits (to resolve
    /// `addr`, or for room), it sends nothing.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        const CALL: &str = "fuseau_tokio::net::UdpSocket::send_to";
        require_fiber(CALL)?;
        let target = await_future(tokio::net::lookup_host(addr))??
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
            })?;
        self.shared
            .wait(Interest::WRITABLE, CALL, |s| s.try_send_to(buf, target))
    }

    /// Waits for a datagram and receives it into `buf`; returns its length
    /// and sender. A datagram longer than `buf` is cut short (the rest is
    /// lost), as std.
    ///
    /// # Errors
    ///
    /// The system's; `WouldBlock` on a timeout (see
    /// [`set_read_timeout`](UdpSocket::set_read_timeout)); the fiber's
    /// cancellation; `NotInFiber` outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before or while it waits, it
    /// receives nothing (the next datagram stays queued).
    ///
    /// # Examples
    ///
    /// See [`UdpSocket`].
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.shared.wait(
            Interest::READABLE,
            "fuseau_tokio::net::UdpSocket::recv_from",
            |s| s.try_recv_from(buf),
        )
    }

    /// As [`recv_from`](UdpSocket::recv_from), but leaves the datagram
    /// queued: the next receive returns it again.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    ///
    /// # Cancellation
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::net::UdpSocket;
    ///
    /// fuseau_tokio::main(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0")?;
    ///     let b = UdpSocket::bind("127.0.0.1:0")?;
    ///     a.send_to(b"hi", b.local_addr()?)?;
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.peek_from(&mut buf)?, (2, a.local_addr()?));
    ///     assert_eq!(b.recv_from(&mut buf)?, (2, a.local_addr()?));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.shared.wait(
            Interest::READABLE,
            "fuseau_tokio::net::UdpSocket::peek_from",
            |s| s.try_peek_from(buf),
        )
    }

    /// Connects the socket to `addr`: [`send`](UdpSocket::send) sends
    /// there, and [`recv`](UdpSocket::recv) receives only from there. With
    /// several addresses, the first that works is used.
    ///
    /// # Errors
    ///
    /// The system's, the resolver's; the fiber's cancellation;
    /// `NotInFiber` outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (resolving a name waits): cancelled before or
    /// during the call, the socket may or may not be connected.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::net::UdpSocket;
    ///
    /// fuseau_tokio::main(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0")?;
    ///     let b = UdpSocket::bind("127.0.0.1:0")?;
    ///     a.connect(b.local_addr()?)?;
    ///     b.connect(a.local_addr()?)?;
    ///     a.send(b"over a connected socket")?;
    ///     let mut buf = [0; 64];
    ///     let n = b.recv(&mut buf)?;
    ///     assert_eq!(&buf[..n], b"over a connected socket");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        await_io(
            "fuseau_tokio::net::UdpSocket::connect",
            self.shared.io.connect(addr),
        )
    }

    /// Sends a datagram to the connected peer, waiting (with the write
    /// timeout) if the send buffer is full.
    ///
    /// # Errors
    ///
    /// The system's (`NotConnected` if not [connected](UdpSocket::connect);
    /// `ConnectionRefused` after an earlier datagram was refused);
    /// `WouldBlock` on a timeout; the fiber's cancellation; `NotInFiber`
    /// outside a fiber.
    ///
    /// # Cancellation
    ///
    /// A cancellation point: cancelled before or while it waits, it sends
    /// nothing.
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.shared.wait(
            Interest::WRITABLE,
            "fuseau_tokio::net::UdpSocket::send",
            |s| s.try_send(buf),
        )
    }

    /// Waits for a datagram from the connected peer and receives it into
    /// `buf`; returns its length.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](UdpSocket::recv_from); `ConnectionRefused` if a
    /// datagram sent earlier was refused.
    ///
    /// # Cancellation
    ///
    /// As [`recv_from`](UdpSocket::recv_from).
    ///
    /// # Examples
    ///
    /// See [`connect`](UdpSocket::connect).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.wait(
            Interest::READABLE,
            "fuseau_tokio::net::UdpSocket::recv",
            |s| s.try_recv(buf),
        )
    }

    /// As [`recv`](UdpSocket::recv), but leaves the datagram queued.
    ///
    /// # Errors
    ///
    /// As [`recv`](UdpSocket::recv).
    ///
    /// # Cancellation
    ///
    /// As [`recv`](UdpSocket::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::net::UdpSocket;
    ///
    /// fuseau_tokio::main(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0")?;
    ///     let b = UdpSocket::bind("127.0.0.1:0")?;
    ///     b.connect(a.local_addr()?)?;
    ///     a.send_to(b"again", b.local_addr()?)?;
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.peek(&mut buf)?, 5);
    ///     assert_eq!(b.recv(&mut buf)?, 5);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.wait(
            Interest::READABLE,
            "fuseau_tokio::net::UdpSocket::peek",
            |s| s.try_peek(buf),
        )
    }

    /// The address the socket is bound to.
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
    /// See [`bind`](UdpSocket::bind).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.io.local_addr()
    }

    /// The address the socket is [connected](UdpSocket::connect) to.
    ///
    /// # Errors
    ///
    /// `NotConnected` if it is not connected; the system's.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    ///
    /// fuseau_tokio::main(|| {
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     assert!(socket.peer_addr().is_err());
    ///     let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    ///     socket.connect(peer)?;
    ///     assert_eq!(socket.peer_addr()?, peer);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.shared.io.peer_addr()
    }

    /// Sets `SO_BROADCAST`: whether datagrams may be sent to a broadcast
    /// address.
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
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     socket.set_broadcast(true)?;
    ///     assert!(socket.broadcast()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.shared.io.set_broadcast(broadcast)
    }

    /// Whether `SO_BROADCAST` is set; see
    /// [`set_broadcast`](UdpSocket::set_broadcast).
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
    /// See [`set_broadcast`](UdpSocket::set_broadcast).
    pub fn broadcast(&self) -> io::Result<bool> {
        self.shared.io.broadcast()
    }
}

// What `UdpSocket` has in common with the other socket types (see `common::std_socket!`).
std_socket! {
    UdpSocket(socket: tokio::net::UdpSocket, std::net::UdpSocket);
    debug("addr": local_addr);
    try_clone:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     let other = socket.try_clone()?;
    ///     assert_eq!(other.local_addr()?, socket.local_addr()?);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    from_std:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     let addr = std_socket.local_addr()?;
    ///     let socket = fuseau_tokio::net::UdpSocket::from_std(std_socket)?;
    ///     assert_eq!(socket.local_addr()?, addr);
    ///     // Back to std, and to Tokio for async code.
    ///     let std_socket: std::net::UdpSocket = socket.into_std()?;
    ///     let socket = fuseau_tokio::net::UdpSocket::from_std(std_socket)?;
    ///     let socket: tokio::net::UdpSocket = socket.into_tokio()?;
    ///     fuseau_tokio::await_future(socket.send_to(b"to myself", addr))??;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    timeouts:
    /// ```
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    ///
    /// fuseau_tokio::main(|| {
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     socket.set_read_timeout(Some(Duration::from_millis(10)))?;
    ///     assert_eq!(socket.read_timeout()?, Some(Duration::from_millis(10)));
    ///     let e = socket.recv_from(&mut [0; 8]).unwrap_err();
    ///     assert_eq!(e.kind(), ErrorKind::WouldBlock);
    ///     socket.set_write_timeout(Some(Duration::from_secs(1)))?;
    ///     assert_eq!(socket.write_timeout()?, Some(Duration::from_secs(1)));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    ttl:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     socket.set_ttl(7)?;
    ///     assert_eq!(socket.ttl()?, 7);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```

    take_error:
    /// ```
    /// fuseau_tokio::main(|| {
    ///     let socket = fuseau_tokio::net::UdpSocket::bind("127.0.0.1:0")?;
    ///     assert!(socket.take_error()?.is_none());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
}
