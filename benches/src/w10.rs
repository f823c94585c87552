//! W10: CPU-bound requests on every core. The request is written once here;
//! each system only spawns `requests` of them on a 1-thread and on a
//! 2-thread runtime and joins them all.
//!
//! A request hashes one shared, read-only buffer of pseudo-random bytes
//! with 64-bit FNV-1a, one byte at a time, from a starting state of its own
//! (so no two requests compute the same thing). FNV-1a is a chain of
//! dependent multiplications: it cannot be vectorised, and on a buffer that
//! fits in a core's L2 cache (1 MiB here) it is bound by the core, not by
//! memory, so two cores should do the work in half the time.

use std::time::Duration;

use crate::{ms, report};

/// FNV-1a's 64-bit offset basis.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The buffer every request hashes: `bytes` bytes of xorshift64, the same
/// in every process.
pub fn data(bytes: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Request `i`: FNV-1a of `data` from a starting state that depends on `i`.
pub fn request(i: u64, data: &[u8]) -> u64 {
    data.iter().fold(
        FNV_BASIS ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME),
    )
}

/// Checks what the runs returned: each of `runs` must hold one hash per
/// request, in request order, all the same; and a sample of them (the
/// first, the last and 14 between) must be what [`request`] computes here,
/// on the calling thread, after the timed runs. Every result is used, so no
/// request can be optimised away.
///
/// # Panics
///
/// If a result is missing or wrong.
pub fn check(runs: &[&[u64]], data: &[u8]) {
    let first = runs[0];
    assert!(runs.iter().all(|r| *r == first), "W10: the runs disagree");
    let n = first.len();
    assert!(n > 0, "W10: no requests");
    for k in 0..16 {
        let i = k * (n - 1) / 15;
        assert_eq!(
            first[i],
            request(i as u64, data),
            "W10: request {i} is wrong"
        );
    }
}

/// Reports W10: the wall time of all the requests on one thread and on
/// `threads` (spawning, running and joining them all; runtime start-up and
/// shutdown excluded), as `wall_ms_1t` and `wall_ms_<threads>t`, and the
/// speed-up (one thread's time over `threads` threads'), as
/// `speedup_<threads>t`.
pub fn report_times(threads: usize, one: Duration, many: Duration) {
    let (wall, speedup) = (format!("wall_ms_{threads}t"), format!("speedup_{threads}t"));
    report(&[
        ("wall_ms_1t", ms(one)),
        (&wall, ms(many)),
        (&speedup, one.as_secs_f64() / many.as_secs_f64()),
    ]);
}

/// Reports W10 for a system measured on `threads` threads only (may: its
/// worker count is fixed for the life of the process).
pub fn report_threads_only(threads: usize, many: Duration) {
    report(&[(&format!("wall_ms_{threads}t"), ms(many))]);
}
