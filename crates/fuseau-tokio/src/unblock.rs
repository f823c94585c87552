//! Blocking work on Tokio's blocking pool (work in progress).

/// Runs `f` on Tokio's blocking pool (work in progress).
///
/// # Errors
///
/// Not yet implemented.
pub fn unblock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> fuseau::Result<T> {
    Ok(f())
}
