//! The one error type of fuseau: [`Error`], its [`ErrorKind`], and [`Result`].
//!
//! An `Error` is cheap to clone (one `Arc`), so the same failure can be handed
//! to a fiber, to its joiner and to its parent without copying. It converts to
//! and from [`std::io::Error`] without losing anything: an `Error` that went
//! through an `io::Error` (for instance out of a `std::io::Read` impl) comes
//! back as the same `Error`.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::borrow::Cow;
use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::{Arc, Once};

/// A specialized [`Result`](std::result::Result) whose error is fuseau's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form a program can match on.
///
/// # Examples
///
/// ```
/// use fuseau::{Error, ErrorKind};
///
/// let e = Error::timeout();
/// assert_eq!(e.kind(), ErrorKind::Timeout);
/// assert!(e.is_cancellation());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The fiber was cancelled (by its parent, by a handle, or by a failing
    /// child) and a suspension point noticed it.
    Cancelled,
    /// The fiber was cancelled by a deadline ([`cancel_after`](crate::cancel_after)),
    /// or a timeout event fired.
    Timeout,
    /// The channel or resource was closed.
    Closed,
    /// The scheduler was disposed of; nothing more can run on it.
    Inactive,
    /// The fiber's body panicked. The error carries the panic message and,
    /// when `RUST_BACKTRACE` is set, the backtrace of the panic.
    Panicked,
    /// A call that only makes sense inside a fiber was made outside one.
    NotInFiber,
    /// An operating-system I/O error; [`Error::source`](std::error::Error::source)
    /// is the original [`io::Error`].
    Io,
    /// Anything else: user errors converted with [`Error::other`] or `From`.
    Other,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Closed => "closed",
            ErrorKind::Inactive => "scheduler is inactive",
            ErrorKind::Panicked => "panicked",
            ErrorKind::NotInFiber => "not in a fiber",
            ErrorKind::Io => "I/O error",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The error of every fallible fuseau operation, and of failed fibers.
///
/// It has a [`kind`](Error::kind), a message, an optional backtrace (for
/// panics) and an optional source. Cloning is cheap: clones share one
/// allocation. It is `Send + Sync`, so it can cross into Tokio tasks and
/// other threads.
///
/// # Examples
///
/// ```
/// use fuseau::{Error, ErrorKind};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
/// let e = Error::from(io);
/// assert_eq!(e.kind(), ErrorKind::Io);
///
/// // Through `io::Error` and back: the same error comes out.
/// let back = Error::from(std::io::Error::from(e.clone()));
/// assert!(back.ptr_eq(&e));
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    backtrace: Option<Backtrace>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    fn build(
        kind: ErrorKind,
        message: Cow<'static, str>,
        backtrace: Option<Backtrace>,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error {
            inner: Arc::new(Inner {
                kind,
                message,
                backtrace,
                source,
            }),
        }
    }

    /// An error of the given kind with a message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Error {
        Error::build(kind, message.into(), None, None)
    }

    /// An error of the given kind whose message is `message` and whose
    /// [`source`](std::error::Error::source) is `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error::build(kind, message.into(), None, Some(source.into()))
    }

    /// Wraps any error as kind [`ErrorKind::Other`]; the message is the
    /// source's `Display`.
    pub fn other(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Error {
        let source = source.into();
        Error::build(
            ErrorKind::Other,
            source.to_string().into(),
            None,
            Some(source),
        )
    }

    /// A plain [`ErrorKind::Cancelled`] error.
    pub fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "")
    }

    /// A plain [`ErrorKind::Timeout`] error.
    pub fn timeout() -> Error {
        Error::new(ErrorKind::Timeout, "")
    }

    /// The error a child sees when its parent is cancelled or fails with
    /// `cause`: cancellations are passed down as they are; any other failure
    /// becomes a [`Cancelled`](ErrorKind::Cancelled) error whose source is
    /// `cause`.
    pub(crate) fn passed_to_child(cause: &Error) -> Error {
        if cause.is_cancellation() {
            cause.clone()
        } else {
            Error::with_source(
                ErrorKind::Cancelled,
                "the parent fiber failed",
                cause.clone(),
            )
        }
    }

    /// Turns a panic payload caught at a fiber boundary into an error,
    /// with the backtrace recorded by fuseau's panic hook, if any.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Error {
        let message: Cow<'static, str> = if let Some(s) = payload.downcast_ref::<&'static str>() {
            Cow::Borrowed(s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Cow::Owned(s.clone())
        } else if let Some(e) = payload.downcast_ref::<Error>() {
            Cow::Owned(e.to_string())
        } else {
            Cow::Borrowed("Box<dyn Any>")
        };
        let backtrace = LAST_PANIC_BACKTRACE.with(|b| b.borrow_mut().take());
        Error::build(ErrorKind::Panicked, message, backtrace, None)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the kind (empty for plain `cancelled()`/`timeout()`).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The backtrace captured where the error arose, if one was captured.
    ///
    /// Panics inside fibers record their backtrace when `RUST_BACKTRACE` (or
    /// `RUST_LIB_BACKTRACE`) asks for one, as `std` does.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        self.inner.backtrace.as_ref()
    }

    /// `true` for [`ErrorKind::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// `true` for [`ErrorKind::Timeout`].
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// `true` for either way of being cancelled: [`Cancelled`](ErrorKind::Cancelled)
    /// or [`Timeout`](ErrorKind::Timeout).
    pub fn is_cancellation(&self) -> bool {
        matches!(self.kind(), ErrorKind::Cancelled | ErrorKind::Timeout)
    }

    /// `true` for [`ErrorKind::Closed`].
    pub fn is_closed(&self) -> bool {
        self.kind() == ErrorKind::Closed
    }

    /// `true` for [`ErrorKind::Panicked`].
    pub fn is_panic(&self) -> bool {
        self.kind() == ErrorKind::Panicked
    }

    /// `true` if both are clones of one error.
    pub fn ptr_eq(&self, other: &Error) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Display for Error {
    /// The kind, then the message: `timed out`, `panicked: boom`,
    /// `I/O error: connection reset`. Errors of kind
    /// [`Other`](ErrorKind::Other) show their message alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind(), self.message()) {
            (kind, "") => f.write_str(kind.describe()),
            (ErrorKind::Other, message) => f.write_str(message),
            (kind, message) => write!(f, "{}: {}", kind.describe(), message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind())
            .field("message", &self.message());
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()?;
        if let Some(bt) = &self.inner.backtrace {
            write!(f, "\n\nBacktrace:\n{bt}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<io::Error> for Error {
    /// An `io::Error` that wraps a fuseau `Error` gives that error back;
    /// any other becomes an [`ErrorKind::Io`] error with it as source.
    fn from(e: io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        Error::build(ErrorKind::Io, e.to_string().into(), None, Some(Box::new(e)))
    }
}

impl From<Error> for io::Error {
    /// The `io::Error` wraps the `Error` (so converting back gives it again).
    /// Its kind is the original one for [`ErrorKind::Io`] errors, and
    /// [`io::ErrorKind::Other`] for everything else, cancellation included:
    /// never `Interrupted`, which `read_exact` and `write_all` would retry.
    fn from(e: Error) -> io::Error {
        let kind = e
            .inner
            .source
            .as_deref()
            .and_then(|s| s.downcast_ref::<io::Error>())
            .filter(|_| e.kind() == ErrorKind::Io)
            .map_or(io::ErrorKind::Other, io::Error::kind);
        io::Error::new(kind, e)
    }
}

impl From<&'static str> for Error {
    /// An [`ErrorKind::Other`] error with this message.
    fn from(message: &'static str) -> Error {
        Error::new(ErrorKind::Other, message)
    }
}

impl From<String> for Error {
    /// An [`ErrorKind::Other`] error with this message.
    fn from(message: String) -> Error {
        Error::new(ErrorKind::Other, message)
    }
}

impl From<Box<dyn StdError + Send + Sync>> for Error {
    /// Same as [`Error::other`].
    fn from(e: Box<dyn StdError + Send + Sync>) -> Error {
        Error::other(e)
    }
}

thread_local! {
    /// The backtrace of the last panic raised inside a fiber on this thread,
    /// recorded by the hook below and taken by [`Error::from_panic`].
    static LAST_PANIC_BACKTRACE: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that records, for panics raised
/// inside a fiber (`in_fiber` says when), the backtrace of the panic site,
/// then calls the hook that was there before. Without it the backtrace would
/// be the one of the fiber boundary where the panic is caught, which says
/// nothing useful.
pub(crate) fn install_panic_hook(in_fiber: fn() -> bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if in_fiber() {
                let bt = Backtrace::capture();
                if bt.status() == BacktraceStatus::Captured {
                    LAST_PANIC_BACKTRACE.with(|b| *b.borrow_mut() = Some(bt));
                }
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_identity_and_kind() {
        let e = Error::from(io::Error::new(io::ErrorKind::BrokenPipe, "pipe"));
        assert_eq!(e.kind(), ErrorKind::Io);
        let io_err = io::Error::from(e.clone());
        assert_eq!(io_err.kind(), io::ErrorKind::BrokenPipe);
        assert!(Error::from(io_err).ptr_eq(&e));
    }

    #[test]
    fn cancellation_is_never_interrupted() {
        for e in [Error::cancelled(), Error::timeout()] {
            let io_err = io::Error::from(e);
            assert_eq!(io_err.kind(), io::ErrorKind::Other);
        }
    }

    #[test]
    fn display_and_source() {
        let cause = Error::new(ErrorKind::Other, "disk full");
        let child = Error::passed_to_child(&cause);
        assert!(child.is_cancelled());
        assert_eq!(child.to_string(), "cancelled: the parent fiber failed");
        assert_eq!(child.source().unwrap().to_string(), "disk full");
        assert!(Error::passed_to_child(&Error::timeout()).is_timeout());
        assert_eq!(Error::cancelled().to_string(), "cancelled");
    }

    #[test]
    fn panic_payloads() {
        assert_eq!(Error::from_panic(Box::new("boom")).message(), "boom");
        assert_eq!(
            Error::from_panic(Box::new(String::from("x"))).message(),
            "x"
        );
        assert_eq!(Error::from_panic(Box::new(3u8)).message(), "Box<dyn Any>");
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static + Clone + StdError>() {}
        check::<Error>();
    }
}
