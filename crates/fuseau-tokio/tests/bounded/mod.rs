//! Time bounds for tests that could hang: a lost wake-up or a missing end
//! of file shows as a hang, which must fail the run instead of stalling it.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any one test may take before the binary is aborted.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f`; aborts the whole test binary (with a message naming `what`)
/// if it takes longer than `limit`.
pub fn with_watchdog<R>(what: &str, limit: Duration, f: impl FnOnce() -> R) -> R {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let what = what.to_owned();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !d.load(Ordering::Acquire) {
            if start.elapsed() > limit {
                eprintln!("{what}: hung for {limit:?}; aborting");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let r = f();
    done.store(true, Ordering::Release);
    r
}

/// [`fuseau_tokio::main`] under a watchdog of [`LIMIT`].
pub fn main<T: 'static>(
    f: impl FnOnce() -> fuseau_tokio::Result<T> + 'static,
) -> fuseau_tokio::Result<T> {
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    with_watchdog(&name, LIMIT, || fuseau_tokio::main(f))
}
