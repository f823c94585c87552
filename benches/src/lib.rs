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

/// The process's CPU time so far, user + system, all threads
/// (`getrusage(RUSAGE_SELF)`).
///
/// # Panics
///
/// If `getrusage` fails.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes a `rusage` into the zeroed one it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(
            libc::getrusage(libc::RUSAGE_SELF, &mut usage),
            0,
            "getrusage"
        );
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// A numeric field of `/proc/self/status` (e.g. `VmHWM`, in KiB, or
/// `Threads`).
///
/// # Panics
///
/// If `/proc/self/status` cannot be read or has no such field.
pub fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("/proc/self/status: no {field}"))
}

/// W6's parameters, as the driver passes them: `connections`,
/// `round_trips` per connection, `message` bytes per round trip.
#[derive(Debug, Clone, Copy)]
pub struct EchoParams {
    /// Connections the load generator opens, all at once.
    pub connections: u64,
    /// Round trips per connection.
    pub round_trips: u64,
    /// Bytes per message.
    pub message: u64,
}

impl EchoParams {
    /// W6's parameters from a system binary's arguments.
    pub fn of(args: &Args) -> EchoParams {
        EchoParams {
            connections: args.param(0),
            round_trips: args.param(1),
            message: args.param(2),
        }
    }

    /// Round trips over all connections.
    pub fn total(&self) -> u64 {
        self.connections * self.round_trips
    }
}

/// `127.0.0.1:port`, the only address the suite uses (servers listen on
/// port 0: a port the system picks).
pub fn localhost(port: u16) -> std::net::SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Tells the driver which port a W6 server listens on (the line
/// `PORT <port>`, before it serves).
pub fn announce_port(addr: std::net::SocketAddr) {
    println!("PORT {}", addr.port());
}

/// Reports a W6 server's figures once every connection has closed: its
/// CPU time per round trip (`cpu`, measured from before it announced its
/// port) and its peak RSS.
///
/// # Panics
///
/// If the server did not echo exactly the bytes the load generator sends.
pub fn report_w6_server(p: EchoParams, cpu: Duration, echoed: u64) {
    report(&w6_server_metrics(p, cpu, echoed));
}

/// A W6 server's figures, as [`report_w6_server`] reports them, for a
/// server that reports more.
///
/// # Panics
///
/// If the server did not echo exactly the bytes the load generator sends.
pub fn w6_server_metrics(p: EchoParams, cpu: Duration, echoed: u64) -> Vec<(&'static str, f64)> {
    assert_eq!(echoed, p.total() * p.message, "W6: wrong byte count");
    vec![
        (
            "server_cpu_us_per_rt",
            cpu.as_secs_f64() * 1e6 / p.total() as f64,
        ),
        ("server_peak_rss_kib", proc_status("VmHWM") as f64),
    ]
}

pub mod plot;
pub mod w10;
pub mod w8;
