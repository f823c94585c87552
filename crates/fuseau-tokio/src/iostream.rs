//! Byte streams for fibers: [`In`] implements [`std::io::Read`] and
//! [`BufRead`], [`Out`] implements [`std::io::Write`], over Tokio sockets,
//! any Tokio `AsyncRead`/`AsyncWrite`, or raw file descriptors.
//!
//! Inside a fiber, their blocking calls suspend the fiber instead of the
//! thread, so synchronous crates (`serde_json::from_reader`, `flate2`, `csv`,
//! `tar` …) run on network streams without blocking anything.
//!
//! # Cancellation
//!
//! Every read and write that waits is a cancellation point. Cancellation
//! comes out as an [`io::Error`] of kind [`Other`](io::ErrorKind::Other)
//! wrapping the fiber's [`Error`](fuseau::Error) (never `Interrupted`, which `read_exact`
//! and `write_all` would retry); `Error::from(io_error)` gives the fiber's
//! error back, so `?` in a fiber body passes it up unchanged.
//!
//! # Safety invariant
//!
//! The one `unsafe` operation registers an owned descriptor with Tokio's
//! reactor ([`In::of_fd`], [`Out::of_fd`]); the registration owns the
//! `OwnedFd`, which stays open and unchanged until the registration is
//! dropped, as Tokio requires.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use fuseau::Result;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::future::await_future;

/// The default buffer size of [`In`] and [`Out`]: 8 KiB, as `std`'s.
pub const DEFAULT_BUF_SIZE: usize = 8 * 1024;

/// Splits a Tokio TCP stream into a buffered input and output.
///
/// Dropping (or [closing](Out::close)) the `Out` shuts down the writing
/// half, so the peer reads end of file; the socket closes when both are
/// dropped.
pub fn tcp(stream: TcpStream) -> (In, Out) {
    let (read, write) = stream.into_split();
    (In::new(read), Out::new(write))
}

/// Splits a Tokio Unix-domain stream into a buffered input and output, as
/// [`tcp`] does.
pub fn unix(stream: UnixStream) -> (In, Out) {
    let (read, write) = stream.into_split();
    (In::new(read), Out::new(write))
}

/// A buffered byte input for fibers: [`Read`] + [`BufRead`].
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, Write};
///
/// fuseau_tokio::main(|| {
///     let (a, b) = std::os::unix::net::UnixStream::pair()?;
///     a.set_nonblocking(true)?;
///     b.set_nonblocking(true)?;
///     let (a, b) = (tokio::net::UnixStream::from_std(a)?, tokio::net::UnixStream::from_std(b)?);
///     let (input, _) = fuseau_tokio::iostream::unix(a);
///     let (_, mut output) = fuseau_tokio::iostream::unix(b);
///     fuseau_tokio::spawn(move || {
///         output.write_all(b"first line\nsecond line\n")?;
///         output.close()
///     });
///     let lines: Vec<String> = input.lines().collect::<std::io::Result<_>>()?;
///     assert_eq!(lines, ["first line", "second line"]);
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct In {
    source: Box<dyn AsyncRead + Unpin>,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
}

impl In {
    /// A buffered input over any Tokio reader, with a
    /// [`DEFAULT_BUF_SIZE`] buffer.
    pub fn new(source: impl AsyncRead + Unpin + 'static) -> In {
        In::with_capacity(DEFAULT_BUF_SIZE, source)
    }

    /// A buffered input with a buffer of `capacity` bytes (at least 1).
    pub fn with_capacity(capacity: usize, source: impl AsyncRead + Unpin + 'static) -> In {
        In {
            source: Box::new(source),
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            pos: 0,
            filled: 0,
        }
    }

    /// A buffered input reading from a file descriptor (a socket, a pipe, a
    /// terminal …), which is set to non-blocking mode and registered with
    /// Tokio's reactor.
    ///
    /// # Errors
    ///
    /// If the descriptor cannot be made non-blocking or registered (regular
    /// files cannot: read them with `std::fs`).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn of_fd(fd: OwnedFd) -> Result<In> {
        Ok(In::new(FdStream::new(fd, Interest::READABLE)?))
    }
}

/// Reads once from `source` into `out`, suspending the fiber until the
/// source is ready: how many bytes, `0` at end of file (or for an empty
/// `out`). A cancellation point (a cancelled read reads nothing). For the
/// unbuffered streams of the crate too (`process`).
pub(crate) fn read_once(source: &mut (dyn AsyncRead + Unpin), out: &mut [u8]) -> io::Result<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    let result = await_future(poll_fn(|cx| {
        let mut read_buf = ReadBuf::new(&mut *out);
        ready!(Pin::new(&mut *source).poll_read(cx, &mut read_buf))?;
        Poll::Ready(Ok::<_, io::Error>(read_buf.filled().len()))
    }));
    result?
}

/// Writes once from `data` to `sink`, suspending the fiber until the sink
/// takes something: how many bytes. A cancellation point (a cancelled write
/// writes nothing).
pub(crate) fn write_once(sink: &mut (dyn AsyncWrite + Unpin), data: &[u8]) -> io::Result<usize> {
    await_future(poll_fn(|cx| Pin::new(&mut *sink).poll_write(cx, data)))?
}

impl Read for In {
    /// Reads into `out`: from the buffer if it holds anything, else from
    /// the source (directly, bypassing the buffer, for reads at least as
    /// large as it).
    ///
    /// # Errors
    ///
    /// The source's errors, and the fiber's cancellation (see the module
    /// docs); `Other` wrapping `NotInFiber` outside a fiber if it would wait.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.filled && out.len() >= self.buf.len() {
            return read_once(&mut *self.source, out);
        }
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for In {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.filled {
            self.filled = read_once(&mut *self.source, &mut self.buf)?;
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.filled);
    }
}

impl fmt::Debug for In {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("In")
            .field("buffered", &(self.filled - self.pos))
            .field("capacity", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// A buffered byte output for fibers: [`Write`].
///
/// Writes are buffered; the buffer is written out when full, on
/// [`flush`](Write::flush), on [`close`](Out::close), and, as a last resort,
/// when the `Out` is dropped (where errors cannot be reported, and a
/// cancelled or panicking fiber cannot wait: call `close` or `flush` to be
/// sure the data left).
pub struct Out {
    sink: Box<dyn AsyncWrite + Unpin>,
    buf: Vec<u8>,
    capacity: usize,
    /// Shutting down has begun: dropping must not flush any more.
    closed: bool,
    /// The writing side is shut down (a second shutdown does nothing).
    shut_down: bool,
}

impl Out {
    /// A buffered output over any Tokio writer, with a [`DEFAULT_BUF_SIZE`]
    /// buffer.
    pub fn new(sink: impl AsyncWrite + Unpin + 'static) -> Out {
        Out::with_capacity(DEFAULT_BUF_SIZE, sink)
    }

    /// A buffered output with a buffer of `capacity` bytes.
    pub fn with_capacity(capacity: usize, sink: impl AsyncWrite + Unpin + 'static) -> Out {
        Out {
            sink: Box::new(sink),
            buf: Vec::with_capacity(capacity),
            capacity,
            closed: false,
            shut_down: false,
        }
    }

    /// A buffered output writing to a file descriptor, which is set to
    /// non-blocking mode and registered with Tokio's reactor.
    ///
    /// # Errors
    ///
    /// As [`In::of_fd`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn of_fd(fd: OwnedFd) -> Result<Out> {
        Ok(Out::new(FdStream::new(fd, Interest::WRITABLE)?))
    }

    /// Flushes the buffer and shuts down the writing side (the peer of a
    /// socket reads end of file), consuming the output.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (see the module docs).
    ///
    /// # Errors
    ///
    /// The sink's errors; the fiber's cancellation.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    /// Like [`close`](Out::close), through a reference: flushes and shuts
    /// down the writing side, for a half-close while the input is still
    /// read (as [`TcpClient::with_connect`](crate::net::TcpClient::with_connect)
    /// hands out `&mut Out`). Writing afterwards fails; shutting down again
    /// does nothing.
    ///
    /// # Cancellation
    ///
    /// A cancellation point (see the module docs).
    ///
    /// # Errors
    ///
    /// The sink's errors; the fiber's cancellation.
    pub fn shutdown(&mut self) -> Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.closed = true;
        self.flush()?;
        let sink = &mut self.sink;
        await_future(poll_fn(|cx| Pin::new(&mut **sink).poll_shutdown(cx)))??;
        self.shut_down = true;
        Ok(())
    }

    fn write_sink(sink: &mut (dyn AsyncWrite + Unpin), mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let written = write_once(&mut *sink, data)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[written..];
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = Out::write_sink(&mut *self.sink, &self.buf);
        // On error the buffer is dropped too: what part of it went out is
        // unknown, and writing it again could duplicate data.
        self.buf.clear();
        result
    }
}

impl Write for Out {
    /// Buffers `data` (or, for data at least as large as the buffer, writes
    /// it straight out after the buffer). Always takes all of `data`.
    ///
    /// # Errors
    ///
    /// The sink's errors, and the fiber's cancellation (see the module docs);
    /// `BrokenPipe` after [`shutdown`](Out::shutdown) (the data would
    /// otherwise sit in the buffer, never sent, and nothing would fail).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.shut_down {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write to an Out that was shut down",
            ));
        }
        if self.buf.len() + data.len() > self.capacity {
            self.flush_buf()?;
        }
        if data.len() >= self.capacity {
            Out::write_sink(&mut *self.sink, data)?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        let sink = &mut self.sink;
        await_future(poll_fn(|cx| Pin::new(&mut **sink).poll_flush(cx)))??;
        Ok(())
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        // Best effort: see the type's docs. Not while the fiber unwinds a
        // panic: it must not suspend then, or other fibers would run while
        // the thread counts as panicking (and poison their mutexes).
        if !self.closed && !std::thread::panicking() {
            let _ = self.flush_buf();
        }
    }
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Out")
            .field("buffered", &self.buf.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// An owned descriptor registered with Tokio, as a Tokio reader or writer.
struct FdStream {
    fd: AsyncFd<OwnedFd>,
}

impl FdStream {
    fn new(fd: OwnedFd, interest: Interest) -> io::Result<FdStream> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        // SAFETY: the registration takes ownership of `fd`, so it stays open
        // and unchanged for as long as the registration lives (the module's
        // invariant).
        let fd = unsafe { AsyncFd::register_with_interest(fd, interest) }?;
        Ok(FdStream { fd })
    }

    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut(&OwnedFd) -> rustix::io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let mut guard = if interest.is_readable() {
                ready!(self.fd.poll_read_ready(cx))?
            } else {
                ready!(self.fd.poll_write_ready(cx))?
            };
            match guard.try_io(|fd| loop {
                match op(fd.get_ref()) {
                    Err(rustix::io::Errno::INTR) => continue,
                    other => return other.map_err(io::Error::from),
                }
            }) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncRead for FdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        let n = ready!(self.poll_io(cx, Interest::READABLE, |fd| rustix::io::read(
            fd,
            &mut *unfilled
        )))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Interest::WRITABLE, |fd| rustix::io::write(fd, data))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A socket's peer must read end of file now, even while another
        // descriptor of the socket (an `In` on a duplicate) keeps it open.
        // Other files (pipes, terminals) end when their last fd closes.
        match rustix::net::shutdown(self.fd.get_ref(), rustix::net::Shutdown::Write) {
            Ok(()) | Err(rustix::io::Errno::NOTSOCK) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }
}
