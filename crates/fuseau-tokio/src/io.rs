//! I/O on raw file descriptors through Tokio's reactor: [`read`],
//! [`write_once`], [`write()`], and the events [`ev_read`] and [`ev_write`]
//! for [`select`](fuseau::select()).
//!
//! The descriptors are borrowed and must be in non-blocking mode. Each
//! operation first tries the system call; only if it would block does it
//! register a duplicate of the descriptor with Tokio's reactor (for the
//! duration of the wait) and suspend the fiber until the descriptor is
//! ready. Registering a duplicate, not the descriptor itself, lets several
//! fibers wait on one descriptor at once (a reader and a writer of one
//! socket), and lets a descriptor that Tokio already watches (a Tokio
//! socket's) be used here too; a wait holds one more descriptor open.
//! `EINTR` is retried; `EAGAIN` suspends; every other error is
//! returned as an [`Io`](fuseau::ErrorKind::Io) error (a peer reset is
//! `ConnectionReset`, a read at end of file returns `Ok(0)`).
//!
//! # Safety invariant
//!
//! The one `unsafe` operation here registers a descriptor with Tokio's
//! reactor, which requires the descriptor to stay open, and to stay the same
//! open file, for as long as the registration lives. The registered
//! descriptor is a duplicate owned by the registration (an
//! `AsyncFd<OwnedFd>`), closed only when the registration is dropped.

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll, Waker};

use fuseau::{await_event, CancelHandle, Error, Event, Result, Wakeup};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::runtime::require_fiber;

/// Reads at most `buf.len()` bytes from `fd` into `buf`, suspending the
/// fiber until `fd` is readable. Returns how many bytes were read; `0` at
/// end of file (or for an empty `buf`).
///
/// # Cancellation
///
/// A cancellation point: cancelled before or while waiting, it reads
/// nothing and returns the cancellation error.
///
/// # Errors
///
/// [`ErrorKind::Io`](fuseau::ErrorKind::Io) for system errors (see the module docs), the fiber's
/// cancellation, [`ErrorKind::NotInFiber`](fuseau::ErrorKind::NotInFiber) outside a fiber.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
///
/// fuseau_tokio::main(|| {
///     let (a, b) = UnixStream::pair()?;
///     a.set_nonblocking(true)?;
///     b.set_nonblocking(true)?;
///     let writer = fuseau_tokio::spawn(move || fuseau_tokio::io::write(b.as_fd(), b"ping"));
///     let mut buf = [0; 16];
///     let n = fuseau_tokio::io::read(a.as_fd(), &mut buf)?;
///     assert_eq!(&buf[..n], b"ping");
///     writer.join()
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    require_fiber("fuseau_tokio::io::read")?;
    await_event(ev_read(fd, buf))
}

/// Writes at most `buf.len()` bytes of `buf` to `fd` (one successful system
/// call), suspending the fiber until `fd` is writable. Returns how many
/// bytes were written.
///
/// # Cancellation
///
/// As [`read`]: cancelled before or while waiting, it writes nothing.
///
/// # Errors
///
/// As [`read`]; writing to a socket whose peer is gone gives a
/// `BrokenPipe` or `ConnectionReset` [`Io`](fuseau::ErrorKind::Io) error.
pub fn write_once(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize> {
    require_fiber("fuseau_tokio::io::write_once")?;
    await_event(ev_write(fd, buf))
}

/// Writes all of `buf` to `fd`, suspending as often as needed.
///
/// # Cancellation
///
/// A cancellation point at every wait: cancelled while waiting, it returns
/// the cancellation error, and a prefix of `buf` may have been written.
///
/// # Errors
///
/// As [`write_once`]; a write that makes no progress (`Ok(0)`) is a
/// `WriteZero` [`Io`](fuseau::ErrorKind::Io) error.
pub fn write(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    require_fiber("fuseau_tokio::io::write")?;
    while !buf.is_empty() {
        let n = await_event(ev_write(fd, buf))?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero).into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// An event that reads into `buf` from the non-blocking `fd` once it is
/// readable; its value is the number of bytes read. See [`read`].
pub fn ev_read<'a>(fd: BorrowedFd<'a>, buf: &'a mut [u8]) -> ReadEvent<'a> {
    ReadEvent {
        io: FdIo::new(fd, Interest::READABLE),
        buf,
    }
}

/// An event that writes (part of) `buf` to the non-blocking `fd` once it is
/// writable; its value is the number of bytes written. See [`write_once`].
pub fn ev_write<'a>(fd: BorrowedFd<'a>, buf: &'a [u8]) -> WriteEvent<'a> {
    WriteEvent {
        io: FdIo::new(fd, Interest::WRITABLE),
        buf,
    }
}

/// The event of [`ev_read`].
pub struct ReadEvent<'a> {
    io: FdIo<'a>,
    buf: &'a mut [u8],
}

/// The event of [`ev_write`].
pub struct WriteEvent<'a> {
    io: FdIo<'a>,
    buf: &'a [u8],
}

impl Event for ReadEvent<'_> {
    type Output = usize;

    fn poll(&mut self) -> Option<Result<usize>> {
        let buf = &mut *self.buf;
        self.io.poll(|fd| rustix::io::read(fd, &mut *buf))
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.io.wait(wakeup)
    }
}

impl Event for WriteEvent<'_> {
    type Output = usize;

    fn poll(&mut self) -> Option<Result<usize>> {
        let buf = self.buf;
        self.io.poll(|fd| rustix::io::write(fd, buf))
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.io.wait(wakeup)
    }
}

impl fmt::Debug for ReadEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadEvent")
            .field("fd", &self.io.fd)
            .field("len", &self.buf.len())
            .finish()
    }
}

impl fmt::Debug for WriteEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteEvent")
            .field("fd", &self.io.fd)
            .field("len", &self.buf.len())
            .finish()
    }
}

/// The part shared by reads and writes: try the system call, and when it
/// would block, wait for readiness through Tokio.
///
/// The I/O itself only ever happens in `poll`, never in `wait`: an event
/// that lost a `select` must have taken no effect, so `wait` only registers
/// and wakes. Once registered, `poll` does the I/O under Tokio's readiness
/// guard and clears the readiness only when the call would block (Tokio's
/// own order, which cannot miss a readiness event).
struct FdIo<'a> {
    fd: BorrowedFd<'a>,
    interest: Interest,
    /// A duplicate of `fd`, registered with Tokio's reactor while the event
    /// waits; dropping it deregisters and closes the duplicate.
    registration: Option<AsyncFd<OwnedFd>>,
    /// Why registering failed, returned by the next `poll`.
    failed: Option<io::Error>,
}

impl<'a> FdIo<'a> {
    fn new(fd: BorrowedFd<'a>, interest: Interest) -> FdIo<'a> {
        FdIo {
            fd,
            interest,
            registration: None,
            failed: None,
        }
    }

    /// Runs `op` until it does not fail with `EINTR`.
    fn attempt(
        fd: BorrowedFd<'_>,
        mut op: impl FnMut(BorrowedFd<'_>) -> rustix::io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            match op(fd) {
                Err(rustix::io::Errno::INTR) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    fn poll_ready<'r>(
        &self,
        registration: &'r AsyncFd<OwnedFd>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<tokio::io::unix::AsyncFdReadyGuard<'r, OwnedFd>>> {
        if self.interest.is_readable() {
            registration.poll_read_ready(cx)
        } else {
            registration.poll_write_ready(cx)
        }
    }

    fn poll(
        &mut self,
        mut op: impl FnMut(BorrowedFd<'_>) -> rustix::io::Result<usize>,
    ) -> Option<Result<usize>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e.into()));
        }
        let fd = self.fd;
        let outcome = match &self.registration {
            // Not registered yet: just try.
            None => Self::attempt(fd, op),
            Some(registration) => {
                let mut cx = Context::from_waker(Waker::noop());
                match self.poll_ready(registration, &mut cx) {
                    Poll::Pending => return None,
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Ready(Ok(mut guard)) => {
                        match guard.try_io(|_| Self::attempt(fd, &mut op)) {
                            Ok(outcome) => outcome,
                            Err(_would_block) => return None,
                        }
                    }
                }
            }
        };
        match outcome {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            outcome => Some(outcome.map_err(Error::from)),
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        if self.registration.is_none() {
            let registered = tokio::runtime::Handle::try_current()
                .map_err(|_| {
                    io::Error::other(
                        "fuseau_tokio::io needs a Tokio runtime (use fuseau_tokio::main or run)",
                    )
                })
                .and_then(|_| rustix::io::fcntl_dupfd_cloexec(self.fd, 0).map_err(io::Error::from))
                .and_then(|dup| {
                    // SAFETY: by the module's invariant: the registration
                    // owns `dup`, which stays open and unchanged until the
                    // registration is dropped.
                    unsafe { AsyncFd::register_with_interest(dup, self.interest) }
                        .map_err(io::Error::from)
                });
            match registered {
                Ok(registration) => self.registration = Some(registration),
                Err(e) => {
                    self.failed = Some(e);
                    wakeup.wake();
                    return CancelHandle::dummy();
                }
            }
        }
        let registration = self.registration.as_ref().expect("registered above");
        let waker = wakeup.to_waker();
        if self
            .poll_ready(registration, &mut Context::from_waker(&waker))
            .is_ready()
        {
            // Ready (or failed): `poll` does the I/O, or returns the error.
            wakeup.wake();
        }
        CancelHandle::dummy()
    }
}
