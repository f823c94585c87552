//! Shared helpers of the fuseau benchmark suite.
//!
//! The suite has one binary per system (`bench-fuseau`, `bench-tokio`,
//! `bench-may`), so that each system runs in its own process, and a driver
//! (`bench`) that runs them interleaved and summarises. A system binary is
//! called as `bench-<system> <workload> <param>...` and prints one line
//! `RESULT <metric>=<value> ...`; the driver chooses the parameters, so every
//! system gets the same ones. See `benches/README.md`.

use std::time::Duration;

/// The workload name and its integer parameters, from the command line.
#[derive(Debug)]
pub struct Args {
    /// The workload, e.g. `W1`.
    pub workload: String,
    /// Its parameters, in the order the driver passes them.
    pub params: Vec<u64>,
}

impl Args {
    /// Parses `argv[1..]`: a workload name followed by integers.
    ///
    /// # Panics
    ///
    /// If the workload is missing or a parameter is not an integer.
    pub fn parse() -> Args {
        let mut it = std::env::args().skip(1);
        let workload = it
            .next()
            .expect("usage: bench-<system> <workload> <param>...");
        let params = it
            .map(|p| p.parse().unwrap_or_else(|_| panic!("not an integer: {p}")))
            .collect();
        Args { workload, params }
    }

    /// Parameter `i`.
    ///
    /// # Panics
    ///
    /// If there is no such parameter.
    pub fn param(&self, i: usize) -> u64 {
        *self
            .params
            .get(i)
            .unwrap_or_else(|| panic!("{}: missing parameter {i}", self.workload))
    }
}

/// Nanoseconds per operation.
pub fn ns_per(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints the one machine-readable result line the driver parses.
pub fn report(metrics: &[(&str, f64)]) {
    let fields: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
    println!("RESULT {}", fields.join(" "));
}

/// How many rounds W1 runs in one process: the first is "cold" (fresh
/// runtime, no pooled stacks or task memory), the others are "warm" and
/// reported as their mean.
pub const W1_ROUNDS: usize = 4;

/// Reports W1's cold (first round) and warm (mean of the later rounds)
/// ns per task.
pub fn report_w1(rounds: &[Duration], n: u64) {
    let cold = ns_per(rounds[0], n);
    let warm: f64 =
        rounds[1..].iter().map(|d| ns_per(*d, n)).sum::<f64>() / (rounds.len() - 1) as f64;
    report(&[("cold_ns_per_task", cold), ("warm_ns_per_task", warm)]);
}

/// Reports W4's wall time and its overhead over the sleep itself.
pub fn report_w4(wall: Duration, sleep: Duration) {
    report(&[("wall_ms", ms(wall)), ("overhead_ms", ms(wall) - ms(sleep))]);
}

/// Checks W9's total (what the sink summed: every value `0..values` plus
/// one per stage it crossed) and reports messages forwarded per second
/// across all stages, and ns per forward.
///
/// # Panics
///
/// If the total is wrong: a value was lost, duplicated or skipped a stage.
pub fn report_w9(elapsed: Duration, stages: u64, values: u64, total: u64) {
    let expected = values * (values - 1) / 2 + values * stages;
    assert_eq!(total, expected, "W9: wrong total");
    let events = stages * values;
    report(&[
        ("events_per_s", events as f64 / elapsed.as_secs_f64()),
        ("ns_per_event", ns_per(elapsed, events)),
    ]);
}

/// The process's resident set size in bytes (`/proc/self/statm`, second
/// field, times the page size).
///
/// # Panics
///
/// If `/proc/self/statm` cannot be read or parsed.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm: resident pages");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

/// Reports W5: RSS growth per suspended task, and the time to release
/// them all per task.
pub fn report_w5(rss_before: u64, rss_suspended: u64, release: Duration, n: u64) {
    report(&[
        (
            "rss_bytes_per_task",
            rss_suspended.saturating_sub(rss_before) as f64 / n as f64,
        ),
        ("release_ns_per_task", ns_per(release, n)),
    ]);
}
