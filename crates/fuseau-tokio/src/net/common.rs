//! What the std-shaped sockets ([`TcpStream`](super::TcpStream),
//! [`TcpListener`](super::TcpListener), [`UdpSocket`](super::UdpSocket),
//! [`UnixStream`](super::UnixStream), [`UnixListener`](super::UnixListener))
//! have in common, written once: the state their clones share, the wait for
//! readiness with std's timeouts, and macros that give each type the public
//! methods and trait impls that are the same for all (with their docs; the
//! examples, which need a socket of the type, come from the invocation).
//!
//! Each type is a struct with one field, `shared: Arc<Shared<…>>`, over its
//! Tokio socket.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fuseau::{Error, ErrorKind};
use tokio::io::Interest;

use crate::future::await_future;
use crate::runtime::require_fiber;

/// What the clones of a std-shaped socket share: the Tokio socket (one
/// registration with a reactor) and, on the types that have them, std's
/// per-socket timeouts (`T` is `()` for the listeners).
pub(super) struct Shared<S, T = Timeouts> {
    pub(super) io: S,
    pub(super) timeouts: T,
}

/// std's timeouts of a socket: how long a read, and a write, may wait.
#[derive(Default)]
pub(super) struct Timeouts {
    pub(super) read: Timeout,
    pub(super) write: Timeout,
}

/// A timeout of a socket; `None`, the default, waits as long as it takes.
/// In nanoseconds, `0` for `None` (a zero timeout is refused), saturated
/// at `u64::MAX` (584 years): read on every call, so no lock.
#[derive(Default)]
pub(super) struct Timeout(AtomicU64);

impl Timeout {
    pub(super) fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Sets the timeout, refusing zero as std does.
    pub(super) fn set(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let nanos = timeout.map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        self.0.store(nanos, Ordering::Relaxed);
        Ok(())
    }
}

impl<S, T: Default> Shared<S, T> {
    pub(super) fn new(io: S) -> Arc<Shared<S, T>> {
        Arc::new(Shared {
            io,
            timeouts: T::default(),
        })
    }

    /// The Tokio socket, if no clone shares it any more (for `into_tokio`);
    /// `ResourceBusy` naming `call` if one does.
    pub(super) fn into_io(shared: Arc<Shared<S, T>>, call: &str) -> io::Result<S> {
        match Arc::try_unwrap(shared) {
            Ok(shared) => Ok(shared.io),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{call}: other clones of the socket are alive"),
            )),
        }
    }
}

/// A Tokio socket whose readiness a fiber can wait for (Tokio's
/// `TcpStream`, `UnixStream` and `UdpSocket`), for [`Shared::wait`].
pub(super) trait Readiness: AsFd {
    /// Resolves once the socket is ready for `interest` (Tokio's `ready`).
    async fn ready_for(&self, interest: Interest) -> io::Result<()>;

    /// Runs `f` if Tokio believes the socket ready for `interest`, and
    /// clears that readiness if `f` fails with `WouldBlock` (Tokio's
    /// `try_io`); `WouldBlock` without running `f` if it is not ready.
    fn try_io_for<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>)
        -> io::Result<R>;
}

/// Implements [`Readiness`] for Tokio socket types, with their `ready`
/// and `try_io`.
macro_rules! readiness {
    ($($ty:ty),*) => {$(
        impl Readiness for $ty {
            async fn ready_for(&self, interest: Interest) -> io::Result<()> {
                self.ready(interest).await.map(drop)
            }

            fn try_io_for<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                self.try_io(interest, f)
            }
        }
    )*};
}

/// A stream read (`read(2)`) that, as Tokio's own `poll_read` does, takes
/// a short read as the sign that the socket's buffer is drained and clears
/// the socket's read readiness: the next read then waits for the reactor
/// at once, instead of first failing with `EAGAIN` (a system call saved
/// per message in a request-response exchange). Tokio's `try_read` keeps
/// the readiness until a read fails.
pub(super) fn read_draining<S: Readiness>(socket: &S, buf: &mut [u8]) -> io::Result<usize> {
    let len = buf.len();
    let mut short = None;
    let result = socket.try_io_for(Interest::READABLE, || {
        let n = rustix::io::read(socket.as_fd(), &mut *buf)?;
        if n > 0 && n < len {
            // Not a failure: the bytes are in `buf`. `WouldBlock` only
            // tells Tokio to clear the readiness.
            short = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => result,
    }
}

readiness!(
    tokio::net::TcpStream,
    tokio::net::UnixStream,
    tokio::net::UdpSocket
);

impl<S: Readiness> Shared<S> {
    /// Runs `attempt` (a non-blocking operation on the socket: one of
    /// Tokio's `try_*` calls) until it does not return `WouldBlock`,
    /// suspending the fiber until the socket is ready for `interest` in
    /// between: `READABLE` for a read (or receive, or peek), bounded by the
    /// read timeout, `WRITABLE` for a write (or send), bounded by the write
    /// timeout. A call that times out fails (in all) with `WouldBlock`, as
    /// std's do on Unix. `call` names the operation in errors.
    ///
    /// The first attempt is made at once (after the fiber's cancellation
    /// check): no wait, and one system call, when the socket is ready.
    pub(super) fn wait<R>(
        &self,
        interest: Interest,
        call: &'static str,
        mut attempt: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        require_fiber(call)?;
        // The first attempt without entering the wait machinery: when the
        // socket is ready this is the whole call (the checkpoint makes it
        // a cancellation point, and counts it toward the coop budget).
        fuseau::checkpoint()?;
        match attempt(&self.io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        let io = async {
            loop {
                match attempt(&self.io) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.io.ready_for(interest).await?;
                    }
                    done => return done,
                }
            }
        };
        let timeout = if interest.is_writable() {
            &self.timeouts.write
        } else {
            &self.timeouts.read
        };
        let Some(limit) = timeout.get() else {
            return await_future(io)?;
        };
        // Tokio's timers need its runtime (which a fiber of
        // `fuseau::block_on` lacks): an error rather than Tokio's panic.
        require_tokio(call)?;
        await_future(tokio::time::timeout(limit, io))?.unwrap_or_else(|_elapsed| {
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{call} timed out"),
            ))
        })
    }
}

/// `Err(NotInFiber)` naming `call` unless a Tokio runtime is entered on
/// this thread (sockets are registered with its reactor).
pub(super) fn require_tokio(call: &str) -> io::Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::new(
            ErrorKind::NotInFiber,
            format!("{call} must be called from a fiber, or inside a Tokio runtime"),
        )
        .into()),
    }
}

/// Runs `future` (a Tokio connect, bind or resolution, which needs the
/// fiber and the Tokio runtime) to its end, suspending the fiber. `call`
/// names the operation in errors.
pub(super) fn await_io<R>(
    call: &'static str,
    future: impl Future<Output = io::Result<R>>,
) -> io::Result<R> {
    require_fiber(call)?;
    require_tokio(call)?;
    await_future(future)?
}

/// `shutdown(2)` for a socket, with std's argument.
pub(super) fn shutdown(socket: &impl AsFd, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => rustix::net::Shutdown::Read,
        Shutdown::Write => rustix::net::Shutdown::Write,
        Shutdown::Both => rustix::net::Shutdown::Both,
    };
    Ok(rustix::net::shutdown(socket, how)?)
}

/// The next item of an `incoming()` iterator: what `accept` returned, or
/// `None` once `accept` failed with an error of the fiber (its
/// cancellation, or `NotInFiber`), which every later call would repeat:
/// a loop that skips failed connections would otherwise spin forever.
pub(super) fn next_incoming<T>(
    finished: &mut bool,
    accept: impl FnOnce() -> io::Result<T>,
) -> Option<io::Result<T>> {
    if *finished {
        return None;
    }
    let accepted = accept();
    if let Err(e) = &accepted {
        *finished = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
            .is_some_and(|e| e.kind() != ErrorKind::Io);
    }
    Some(accepted)
}

/// The public methods and trait impls that are the same for several
/// std-shaped socket types, written once with their docs; the doc examples,
/// which need a socket of the type, are given as `///` lines after the name
/// of the method they go with (the methods without one point to it).
///
/// Every type `$ty` gets `try_clone`, `from_std`, `into_std` and
/// `into_tokio` (the last two shown in `from_std`'s example),
/// `From<$tokio>` (`$arg` names the argument of `from_std` and `from`),
/// `AsFd`, `AsRawFd`, and `Debug` (its name, the `$getter`s that succeed as
/// `$field`s, its descriptor). The optional sections add std's read and
/// write timeouts (for a `Shared` with `Timeouts`), `set_ttl` and `ttl`,
/// and `take_error`.
macro_rules! std_socket {
    (
        $ty:ident($arg:ident: $tokio:ty, $std:ty);
        debug($($field:literal: $getter:ident),*);
        try_clone: $(#[doc = $clone_example:literal])*
        from_std: $(#[doc = $std_example:literal])*
        $(timeouts: $(#[doc = $timeouts_example:literal])*)?
        $(ttl: $(#[doc = $ttl_example:literal])*)?
        $(take_error: $(#[doc = $error_example:literal])*)?
    ) => {
        impl $ty {
            /// A second handle to the socket, sharing it, its registration
            /// with the reactor and (on a stream or a UDP socket) its
            /// timeouts: a reader fiber and a writer fiber, or acceptor
            /// fibers on several threads, can each hold one. Unlike std's,
            /// it opens no new descriptor; the socket closes when the last
            /// handle is dropped.
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
            $(#[doc = $clone_example])*
            pub fn try_clone(&self) -> std::io::Result<$ty> {
                Ok($ty {
                    shared: self.shared.clone(),
                })
            }

            /// Adopts a std socket (a connected stream, a bound listener or
            /// UDP socket): sets it non-blocking and registers it with the
            /// reactor of this thread's Tokio runtime.
            ///
            /// # Errors
            ///
            /// If it cannot be made non-blocking or registered;
            /// `NotInFiber` where no Tokio runtime is entered (outside
            /// [`main`](crate::main), [`run`](crate::run), a
            /// [`Runtime`](crate::Runtime) …).
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
            $(#[doc = $std_example])*
            pub fn from_std($arg: $std) -> std::io::Result<$ty> {
                $crate::net::common::require_tokio(concat!(
                    "fuseau_tokio::net::",
                    stringify!($ty),
                    "::from_std"
                ))?;
                $arg.set_nonblocking(true)?;
                Ok($ty::from(<$tokio>::from_std($arg)?))
            }

            /// The std socket, deregistered from the reactor and in
            /// blocking mode again (as std's sockets start). The read and
            /// write timeouts of a stream or a UDP socket are not carried
            /// over.
            ///
            /// # Errors
            ///
            /// `ResourceBusy` if other clones of the socket are alive (the
            /// socket is then dropped: drop the clones first); the
            /// system's.
            ///
            /// # Cancellation
            ///
            /// Not a cancellation point.
            ///
            /// # Examples
            ///
            /// See [`from_std`](Self::from_std).
            pub fn into_std(self) -> std::io::Result<$std> {
                let socket = self.into_tokio()?.into_std()?;
                socket.set_nonblocking(false)?;
                Ok(socket)
            }

            /// The Tokio socket, for async code (it stays registered with
            /// the same reactor); `From` converts the other way. The read
            /// and write timeouts of a stream or a UDP socket are not
            /// carried over.
            ///
            /// # Errors
            ///
            /// `ResourceBusy` if other clones of the socket are alive (the
            /// socket is then dropped: drop the clones first).
            ///
            /// # Cancellation
            ///
            /// Not a cancellation point.
            ///
            /// # Examples
            ///
            /// See [`from_std`](Self::from_std).
            pub fn into_tokio(self) -> std::io::Result<$tokio> {
                $crate::net::common::Shared::into_io(
                    self.shared,
                    concat!("fuseau_tokio::net::", stringify!($ty), "::into_tokio"),
                )
            }
        }

        impl From<$tokio> for $ty {
            /// Wraps a Tokio socket (already registered with its reactor),
            /// with no timeouts.
            fn from($arg: $tokio) -> $ty {
                $ty {
                    shared: $crate::net::common::Shared::new($arg),
                }
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.shared.io.as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.shared.io.as_raw_fd()
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($ty));
                $(
                    if let Ok(value) = self.$getter() {
                        d.field($field, &value);
                    }
                )*
                d.field("fd", &std::os::fd::AsFd::as_fd(self)).finish()
            }
        }

        $($crate::net::common::std_socket!(@timeouts $ty $(#[doc = $timeouts_example])*);)?
        $($crate::net::common::std_socket!(@ttl $ty $(#[doc = $ttl_example])*);)?
        $($crate::net::common::std_socket!(@take_error $ty $(#[doc = $error_example])*);)?
    };
    (@timeouts $ty:ident $(#[doc = $example:literal])*) => {
        impl $ty {
            /// Bounds how long each read (or receive) and each peek may
            /// wait; `None` (the default) waits as long as it takes. Shared
            /// by the clones, as std's timeouts are per socket.
            ///
            /// A read that times out reads nothing and fails with
            /// `WouldBlock`, as std's do on Unix. The time is Tokio's clock
            /// (paused test time applies).
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
            $(#[doc = $example])*
            pub fn set_read_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.shared.timeouts.read.set(timeout)
            }

            /// Bounds how long each write (or send) may wait for room in
            /// the socket's buffer, as
            /// [`set_read_timeout`](Self::set_read_timeout) does for reads.
            /// A write that times out writes nothing and fails with
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
            /// See [`set_read_timeout`](Self::set_read_timeout).
            pub fn set_write_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.shared.timeouts.write.set(timeout)
            }

            /// The read timeout; see
            /// [`set_read_timeout`](Self::set_read_timeout).
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
            /// See [`set_read_timeout`](Self::set_read_timeout).
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.shared.timeouts.read.get())
            }

            /// The write timeout; see
            /// [`set_write_timeout`](Self::set_write_timeout).
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
            /// See [`set_read_timeout`](Self::set_read_timeout).
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.shared.timeouts.write.get())
            }
        }
    };
    (@ttl $ty:ident $(#[doc = $example:literal])*) => {
        impl $ty {
            /// Sets the IP time-to-live (`IP_TTL`) of the packets the
            /// socket sends (on a listener, of the connections it accepts).
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
            $(#[doc = $example])*
            pub fn set_ttl(&self, ttl: u32) -> std::io::Result<()> {
                self.shared.io.set_ttl(ttl)
            }

            /// The IP time-to-live; see [`set_ttl`](Self::set_ttl).
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
            /// See [`set_ttl`](Self::set_ttl).
            pub fn ttl(&self) -> std::io::Result<u32> {
                self.shared.io.ttl()
            }
        }
    };
    (@take_error $ty:ident $(#[doc = $example:literal])*) => {
        impl $ty {
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
            $(#[doc = $example])*
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.shared.io.take_error()
            }
        }
    };
}
pub(super) use std_socket;

/// A listener type `$ty`'s `accept` (of `$stream`s, with the peer's
/// `$addr`) and `incoming`, and `incoming`'s iterator `$incoming`, with
/// the doc example of `accept` given.
macro_rules! listener {
    (
        $ty:ident accepts $stream:ident from $addr:ty, incoming: $incoming:ident;
        accept: $(#[doc = $example:literal])*
    ) => {
        impl $ty {
            /// Waits for a connection and returns it with the peer's
            /// address (usually unnamed, for a Unix-domain socket). The new
            /// stream is registered with the reactor of this thread.
            ///
            /// # Errors
            ///
            /// The system's (a connection reset before it was accepted,
            /// out of descriptors …); the fiber's cancellation;
            /// `NotInFiber` outside a fiber.
            ///
            /// # Cancellation
            ///
            /// A cancellation point: cancelled before or while it waits, it
            /// accepts nothing (a pending connection stays queued for the
            /// next accept).
            ///
            /// # Examples
            ///
            $(#[doc = $example])*
            pub fn accept(&self) -> std::io::Result<($stream, $addr)> {
                $crate::runtime::require_fiber(concat!(
                    "fuseau_tokio::net::",
                    stringify!($ty),
                    "::accept"
                ))?;
                let (stream, peer) = $crate::future::await_future(self.shared.io.accept())??;
                Ok(($stream::from(stream), <$addr>::from(peer)))
            }

            /// An iterator of accepted connections: each `next` is an
            /// [`accept`](Self::accept), without the peer's address. Like
            /// std's, it yields errors (and goes on after them), except
            /// that it ends after an error of the fiber (its cancellation,
            /// or `NotInFiber`), which every later accept would repeat.
            ///
            /// # Errors
            ///
            /// Each item: as [`accept`](Self::accept).
            ///
            /// # Cancellation
            ///
            /// Each `next` is a cancellation point, as
            /// [`accept`](Self::accept).
            ///
            /// # Examples
            ///
            #[doc = concat!("See [`", stringify!($ty), "`].")]
            pub fn incoming(&self) -> $incoming<'_> {
                $incoming {
                    listener: self,
                    finished: false,
                }
            }
        }

        #[doc = concat!(
            "The connections a [`", stringify!($ty), "`] accepts, from [`",
            stringify!($ty), "::incoming`]: each `next` waits for one (a ",
            "cancellation point, as [`", stringify!($ty), "::accept`])."
        )]
        ///
        /// # Examples
        ///
        #[doc = concat!("See [`", stringify!($ty), "`].")]
        #[derive(Debug)]
        pub struct $incoming<'a> {
            listener: &'a $ty,
            finished: bool,
        }

        impl Iterator for $incoming<'_> {
            type Item = std::io::Result<$stream>;

            fn next(&mut self) -> Option<std::io::Result<$stream>> {
                $crate::net::common::next_incoming(&mut self.finished, || {
                    self.listener.accept().map(|(stream, _)| stream)
                })
            }
        }
    };
}
pub(super) use listener;

/// `Read` and `Write` for a std-shaped stream type (over a Tokio stream
/// with `try_read`, `try_write` and their vectored forms) and for
/// references to it. Empty buffers complete at once (a zero-length read or
/// write has nothing to wait for).
macro_rules! stream_read_write {
    ($ty:ident) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if buf.is_empty() {
                    return Ok(0);
                }
                self.shared.wait(
                    tokio::io::Interest::READABLE,
                    concat!("fuseau_tokio::net::", stringify!($ty), "::read"),
                    |s| $crate::net::common::read_draining(s, buf),
                )
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                if bufs.iter().all(|b| b.is_empty()) {
                    return Ok(0);
                }
                self.shared.wait(
                    tokio::io::Interest::READABLE,
                    concat!("fuseau_tokio::net::", stringify!($ty), "::read_vectored"),
                    |s| s.try_read_vectored(bufs),
                )
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if buf.is_empty() {
                    return Ok(0);
                }
                self.shared.wait(
                    tokio::io::Interest::WRITABLE,
                    concat!("fuseau_tokio::net::", stringify!($ty), "::write"),
                    |s| s.try_write(buf),
                )
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                if bufs.iter().all(|b| b.is_empty()) {
                    return Ok(0);
                }
                self.shared.wait(
                    tokio::io::Interest::WRITABLE,
                    concat!("fuseau_tokio::net::", stringify!($ty), "::write_vectored"),
                    |s| s.try_write_vectored(bufs),
                )
            }

            /// Does nothing: writes are not buffered.
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                (&*self).flush()
            }
        }
    };
}
pub(super) use stream_read_write;
