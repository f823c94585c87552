//! The suite's driver: runs the system binaries (`bench-fuseau`,
//! `bench-tokio`, `bench-may`, `bench-threads`, built beside it, and
//! `bench-go`, which it builds from `benches/go/bench.go` when `go` is
//! installed) as child processes, interleaved (A B C A B C …), pinned to one
//! core (two for the workloads on several threads: W3s, W3a, W6m, W6a,
//! W10), and summarises each metric as median [min–max] with the ratio
//! fuseau/peer computed run by run.
//! For W6, W6m and W6a the system binary is an echo server, driven by the shared
//! load generator `bench-load` pinned to the next core when there is one.
//!
//! Usage: `cargo run --release -p fuseau-bench -- [--quick] [--runs N]
//! [--only W1,W3]`. See `benches/README.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One workload: its name, what it does, its parameters (the same for every
/// system) and the systems that implement it.
struct Workload {
    name: &'static str,
    what: &'static str,
    params: &'static [u64],
    systems: &'static [&'static str],
    /// Whether the system binary is a server driven by the shared load
    /// generator (`bench-load`) instead of running the whole workload.
    served: bool,
    /// How many CPUs the system process is pinned to: CPUs `0..cpus` (as
    /// many of them as the machine has). 1 for every workload but those
    /// that measure several threads. The load generator of a served
    /// workload goes on the next CPU (see [`Pinning`]).
    cpus: usize,
    /// With `--quick`, how many measured runs, without a warm-up, when
    /// fewer than the suite's: for a long workload (W5m, seconds per run
    /// and system) that a quick look needs only once. `None`: the suite's
    /// warm-up and runs.
    quick_runs: Option<usize>,
}

/// Every system; Go only when `go` is installed (see [`build_go`]).
const ALL: &[&str] = &["fuseau", "tokio", "may", "go"];

/// The systems of the workloads on several threads (W10, W6m): Tokio's peer
/// there is its multi-thread runtime; Go has no such workloads.
const MULTI: &[&str] = &["fuseau", "tokio", "may"];

/// The systems of the channel workloads across threads (W3s, W3a): plain
/// threads with crossbeam-channel are the peer with no runtime.
const ACROSS: &[&str] = &["fuseau", "tokio", "threads"];

/// The binaries Cargo builds: the Rust systems and W6's load generator.
const RUST_BINS: &[&str] = &["fuseau", "tokio", "may", "threads", "load"];

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "W1",
        what: "spawn + join 100 000 tasks (cold: first round in a fresh process; warm: mean of 3 more)",
        params: &[100_000],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W2",
        what: "two tasks yielding to each other, 1 000 000 yields in all",
        params: &[1_000_000],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W3",
        what: "bounded channel, capacity 64, 1 producer 1 consumer, 1 000 000 u64",
        params: &[64, 1_000_000],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W3s",
        what: "W3 across threads on CPUs 0-1: producer and consumer 1 000 000 u64 through a channel of capacity 64 (fuseau: SharedChan, fibers on threads 0 and 1 of a Runtime; Tokio: mpsc, tasks on a multi-thread runtime of 2 workers, which runs both on one worker; threads: crossbeam-channel between 2 threads)",
        params: &[64, 1_000_000],
        systems: ACROSS,
        served: false,
        cpus: 2,
        quick_runs: None,
    },
    Workload {
        name: "W3a",
        what: "W3s with every system's two tasks on two threads (Tokio: mpsc between 2 current-thread runtimes, one per thread; fuseau and threads as in W3s)",
        params: &[64, 1_000_000],
        systems: ACROSS,
        served: false,
        cpus: 2,
        quick_runs: None,
    },
    Workload {
        name: "W4",
        what: "10 000 tasks each sleeping 10 ms once (wall time, overhead over 10 ms)",
        params: &[10_000, 10],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W5",
        what: "30 000 tasks each suspended in recv on a channel of its own: RSS bytes per task, then close/drop every sender and join all (release ns per task)",
        params: &[30_000],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W5x",
        what: "W5 with 100 000 tasks (past the default vm.max_map_count for systems with a guarded mmap per stack)",
        params: &[100_000],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W5m",
        what: "W5 with 1 000 000 tasks",
        params: &[1_000_000],
        systems: ALL,
        served: false,
        cpus: 1,
        quick_runs: Some(1),
    },
    Workload {
        name: "W6",
        what: "TCP echo on 127.0.0.1: the system's server on CPU 0, the shared load generator on CPU 1, 50 connections × 2 000 round trips of 64 bytes",
        params: &[50, 2_000, 64],
        systems: ALL,
        served: true,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W6m",
        what: "TCP echo as W6 with the server on 2 threads (fuseau: Runtime + TcpServer::establish_on; Tokio: multi-thread runtime, 2 workers; may: 2 workers), 50 connections × 2 000 round trips of 64 bytes",
        params: &[50, 2_000, 64, 2],
        systems: MULTI,
        served: true,
        cpus: 2,
        quick_runs: None,
    },
    Workload {
        name: "W6a",
        what: "W6m with fuseau's other design for a server on every thread: one acceptor fiber handing each socket to the least-loaded thread (RuntimeHandle::spawn), against the same Tokio server",
        params: &[50, 2_000, 64, 2],
        systems: &["fuseau", "tokio"],
        served: true,
        cpus: 2,
        quick_runs: None,
    },
    Workload {
        name: "W7",
        what: "await a Tokio future pending once (tokio::task::yield_now), 200 000 times: fiber vs Tokio task",
        params: &[200_000],
        systems: &["fuseau", "tokio"],
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W7o",
        what: "await a oneshot completed by another Tokio task, 200 000 times: fiber vs Tokio task",
        params: &[200_000],
        systems: &["fuseau", "tokio"],
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W8",
        what: "serde_json streaming over TCP on 127.0.0.1 in one process: 50 connections × 1 000 requests, each answered before the next",
        params: &[50, 1_000],
        systems: &["fuseau", "tokio", "may"],
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W9",
        what: "channel chain: 300 stages, each select-receiving from 2 bounded channels (capacity 4) and select-sending to 2, 3 000 values (900 000 forwards)",
        params: &[300, 3_000, 4],
        systems: &["fuseau", "tokio", "go"],
        served: false,
        cpus: 1,
        quick_runs: None,
    },
    Workload {
        name: "W10",
        what: "CPU-bound requests on CPUs 0-1: 1 000 tasks each hashing 1 MiB (FNV-1a), all joined, on 1 thread then on 2 (fuseau: Runtime; Tokio: multi-thread runtime; may: 2 workers only)",
        params: &[1_000, 1 << 20, 2],
        systems: MULTI,
        served: false,
        cpus: 2,
        quick_runs: None,
    },
];

struct Options {
    warmups: usize,
    runs: usize,
    quick: bool,
    only: Option<Vec<String>>,
}

fn parse_options() -> Options {
    let mut o = Options {
        warmups: 1,
        runs: 5,
        quick: false,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.runs = 3;
            }
            "--runs" => o.runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--only" => {
                o.only = Some(
                    args.next()
                        .expect("--only W1,W2")
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "-h" | "--help" => {
                println!("usage: bench [--quick] [--runs N] [--only W1,W3,...]");
                std::process::exit(0);
            }
            other => panic!("unknown option {other} (try --help)"),
        }
    }
    o
}

/// The outcome of one run of one system: its metrics, or why it failed.
type RunResult = Result<BTreeMap<String, f64>, String>;

fn run_one(bin_dir: &Path, taskset: bool, system: &str, w: &Workload) -> RunResult {
    let bin = bin_dir.join(format!("bench-{system}"));
    let pinning = Pinning::of(w);
    let mut cmd = pinned(&bin, &pinning.system, taskset);
    cmd.arg(w.name).args(w.params.iter().map(u64::to_string));
    let cannot_run = |e: std::io::Error| format!("cannot run {}: {e}", bin.display());
    if w.served {
        let server = Proc::spawn(cmd).map_err(cannot_run)?;
        return run_served(bin_dir, taskset, &pinning.load, server, w);
    }
    parse_result(
        &Proc::spawn(cmd)
            .and_then(Proc::finish)
            .map_err(cannot_run)?,
    )
}

/// A served workload (W6, W6m): `server`, a system binary, announces its
/// port with a line `PORT <port>`; the shared load generator (`bench-load`,
/// given the workload's parameters and the port), pinned to `load_cpus`,
/// drives it; the metrics of both are merged.
fn run_served(
    bin_dir: &Path,
    taskset: bool,
    load_cpus: &[usize],
    server: Proc,
    w: &Workload,
) -> RunResult {
    let Some(port) = server.wait_line("PORT ") else {
        // The server failed (or hung) before listening: its error.
        return parse_result(&server.finish().map_err(|e| e.to_string())?);
    };
    let bin = bin_dir.join("bench-load");
    let mut cmd = pinned(&bin, load_cpus, taskset);
    cmd.arg(w.name)
        .args(w.params.iter().map(u64::to_string))
        .arg(port.trim());
    let load = Proc::spawn(cmd)
        .and_then(Proc::finish)
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))
        .and_then(|out| parse_result(&out));
    // A server whose load failed would wait for connections until its
    // deadline: stop it now.
    let server = if load.is_ok() {
        server.finish()
    } else {
        server.kill()
    };
    let server = server
        .map_err(|e| e.to_string())
        .and_then(|out| parse_result(&out));
    match (server, load) {
        (Ok(mut metrics), Ok(load)) => {
            metrics.extend(load);
            Ok(metrics)
        }
        (Ok(_), Err(e)) => Err(format!("load generator: {e}")),
        (Err(e), Ok(_)) => Err(e),
        (Err(s), Err(l)) => Err(format!("{s}; load generator: {l}")),
    }
}

/// The metrics of a finished run, from its `RESULT` line, or why it failed
/// (the first line of its standard error that is not a thread's panic
/// header, and its exit status).
fn parse_result(out: &Output) -> RunResult {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT "));
    match (out.status.success(), line) {
        (true, Some(line)) => line
            .split_whitespace()
            .map(|kv| {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("bad field {kv}"))?;
                let v = v.parse().map_err(|_| format!("bad value {kv}"))?;
                Ok((k.to_owned(), v))
            })
            .collect(),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .find(|l| !l.trim().is_empty() && !l.starts_with("thread "))
                .unwrap_or("no output");
            Err(format!("{} ({})", why.trim(), out.status))
        }
    }
}

/// The longest one run of one system (or of the load generator) may take
/// before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running child process: its standard output arrives line by line, its
/// standard error is collected; it is killed at its deadline.
struct Proc {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: JoinHandle<Vec<u8>>,
    deadline: Instant,
}

impl Proc {
    /// Starts `cmd`, to be killed after [`RUN_TIMEOUT`].
    fn spawn(mut cmd: Command) -> std::io::Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Drain the pipes on threads so that a chatty child cannot block.
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (lines, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        Ok(Proc {
            child,
            stdout,
            stderr,
            deadline: Instant::now() + RUN_TIMEOUT,
        })
    }

    /// Waits for a line of output starting with `prefix` and returns the
    /// rest of it; `None` if the process ends or its deadline passes first
    /// (the lines before it are dropped).
    fn wait_line(&self, prefix: &str) -> Option<String> {
        loop {
            let left = self.deadline.checked_duration_since(Instant::now())?;
            let line = self.stdout.recv_timeout(left).ok()?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.to_owned());
            }
        }
    }

    /// Waits for the process to end, or kills it at its deadline.
    fn finish(self) -> std::io::Result<Output> {
        self.wait(format!("timed out after {RUN_TIMEOUT:?}"))
    }

    /// Kills the process now.
    fn kill(mut self) -> std::io::Result<Output> {
        self.deadline = Instant::now();
        self.wait("killed: the load generator failed".to_owned())
    }

    /// Waits until the process ends or its deadline, when it is killed and
    /// `why` heads its standard error.
    fn wait(mut self, why: String) -> std::io::Result<Output> {
        let mut stderr = Vec::new();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= self.deadline {
                self.child.kill()?;
                stderr = format!("{why}\n").into_bytes();
                break self.child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        stderr.extend(self.stderr.join().unwrap_or_default());
        let stdout: String = self.stdout.iter().map(|l| l + "\n").collect();
        Ok(Output {
            status,
            stdout: stdout.into_bytes(),
            stderr,
        })
    }
}

/// Where the processes of one run of a workload go: the CPUs of the system
/// process, and those of the load generator (served workloads).
struct Pinning {
    system: Vec<usize>,
    load: Vec<usize>,
}

impl Pinning {
    /// The system on CPUs `0..w.cpus`, as many as the machine has (at least
    /// CPU 0); the load generator on the next CPU, CPU `w.cpus`, or, when
    /// the machine has no such CPU, on the system's CPUs, sharing them.
    /// W6 (1 CPU) on two cores: server on CPU 0, load on CPU 1. W6m (2 CPUs)
    /// on two cores: both on CPUs 0-1; on three or more, load on CPU 2.
    fn of(w: &Workload) -> Pinning {
        let cores = cores();
        let system: Vec<usize> = (0..w.cpus.clamp(1, cores)).collect();
        let load = if cores > w.cpus {
            vec![w.cpus]
        } else {
            system.clone()
        };
        Pinning { system, load }
    }
}

/// The number of CPUs this process may use (1 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A CPU set in `taskset -c` form: `0`, `0-1`, `0,2`.
fn cpu_list(cpus: &[usize]) -> String {
    match cpus {
        [first, .., last] if last - first + 1 == cpus.len() => format!("{first}-{last}"),
        _ => cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// "CPU 0", "CPUs 0-1".
fn cpu_words(cpus: &[usize]) -> String {
    let s = if cpus.len() == 1 { "" } else { "s" };
    format!("CPU{s} {}", cpu_list(cpus))
}

/// A command running `bin` pinned to `cpus`: with `taskset` if it is
/// installed, else with `sched_setaffinity` in the child.
fn pinned(bin: &Path, cpus: &[usize], taskset: bool) -> Command {
    if taskset {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpu_list(cpus)).arg(bin);
        c
    } else {
        let mut c = Command::new(bin);
        pin_child(&mut c, cpus.to_vec());
        c
    }
}

/// Pins the child to `cpus` with `sched_setaffinity` (used when `taskset`
/// is not installed).
fn pin_child(cmd: &mut Command, cpus: Vec<usize>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (sched_setaffinity) on a local set;
    // `cpus` was allocated before the fork, and is only read.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in &cpus {
                libc::CPU_SET(cpu, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Builds Go's side of the suite (`benches/go/bench.go`) into
/// `bin_dir/bench-go` when `go` is installed; whether it is there.
fn build_go(bin_dir: &Path) -> bool {
    let installed = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        return false;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("go/bench.go");
    let built = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(bin_dir.join("bench-go"))
        .arg(source)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("building benches/go/bench.go failed: no Go column");
    }
    built
}

fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("-c")
        .arg("0")
        .arg("true")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// CPU model, core count and kernel, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// Median, min and max of a non-empty sample.
fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// Two decimals for the small figures (speed-ups, µs per round trip), one
/// for the others.
fn fmt_stats((median, min, max): (f64, f64, f64)) -> String {
    let p = if median.abs() < 10.0 { 2 } else { 1 };
    format!("{median:.p$} [{min:.p$}–{max:.p$}]")
}

fn main() {
    let opts = parse_options();
    let bin_dir: PathBuf = std::env::current_exe()
        .expect("current_exe")
        .parent()
        .expect("bin dir")
        .to_owned();
    if cfg!(debug_assertions) {
        eprintln!("warning: the driver was built without --release; so, likely, were the systems");
    }
    // `cargo run` builds only the driver: when run through it, have Cargo
    // bring the system binaries up to date too (a no-op when they are), so
    // that no figure comes from a stale binary.
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "fuseau-bench", "--bins"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let ok = build.status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("building the system binaries failed");
            std::process::exit(2);
        }
    }
    for system in RUST_BINS {
        let bin = bin_dir.join(format!("bench-{system}"));
        if !bin.exists() {
            eprintln!(
                "{} is missing: build the suite with `cargo build --release -p fuseau-bench` \
                 (or run it with `cargo run --release -p fuseau-bench`, which builds every binary)",
                bin.display()
            );
            std::process::exit(2);
        }
    }
    let go = build_go(&bin_dir);
    let taskset = has_taskset();
    println!(
        "fuseau bench: {} warm-up + {} runs per workload, systems interleaved, pinned to CPU 0 \
         unless a workload says otherwise ({})",
        opts.warmups,
        opts.runs,
        if taskset {
            "taskset -c"
        } else {
            "sched_setaffinity"
        }
    );
    println!("machine: {}", machine());
    if !go {
        println!("go is not installed (or bench.go failed to build): no Go column");
    }
    let mut csv = String::from("workload,system,metric,median,min,max\n");
    for w in WORKLOADS {
        if let Some(only) = &opts.only {
            if !only.iter().any(|o| o == w.name) {
                continue;
            }
        }
        println!("\n{}: {}", w.name, w.what);
        if w.served || w.cpus > 1 {
            let pinning = Pinning::of(w);
            let system = cpu_words(&pinning.system);
            if w.served {
                let load = cpu_words(&pinning.load);
                println!("  (server on {system}, load generator on {load})");
            } else {
                println!("  (on {system})");
            }
        }
        let (warmups, runs) = match w.quick_runs {
            Some(n) if opts.quick && n < opts.runs => {
                let s = if n == 1 { "" } else { "s" };
                println!("  (--quick: {n} run{s}, no warm-up)");
                (0, n)
            }
            _ => (opts.warmups, opts.runs),
        };
        let systems: Vec<&str> = w
            .systems
            .iter()
            .copied()
            .filter(|s| *s != "go" || go)
            .collect();
        // results[system] = one entry per measured run.
        let mut results: BTreeMap<&str, Vec<RunResult>> = BTreeMap::new();
        for i in 0..warmups + runs {
            for system in &systems {
                let r = run_one(&bin_dir, taskset, system, w);
                if i >= warmups {
                    results.entry(system).or_default().push(r);
                }
            }
        }
        // Metric names, from any run that succeeded.
        let Some(first) = results.values().flatten().find_map(|r| r.as_ref().ok()) else {
            println!("  every system failed: {:?}", results);
            continue;
        };
        let metrics: Vec<String> = first.keys().cloned().collect();
        for metric in &metrics {
            println!("  {metric}");
            let mut per_system: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
            for system in &systems {
                let runs = &results[system];
                let values: Vec<Option<f64>> = runs
                    .iter()
                    .map(|r| r.as_ref().ok().and_then(|m| m.get(metric).copied()))
                    .collect();
                let ok: Vec<f64> = values.iter().flatten().copied().collect();
                let all_ran = runs.iter().all(Result::is_ok);
                if ok.is_empty() && all_ran {
                    // A metric only some systems report (fuseau's switch
                    // floor, say): nothing to show for this one.
                } else if ok.len() == values.len() {
                    let s = stats(&ok);
                    println!("    {system:<8} {}", fmt_stats(s));
                    let _ = writeln!(
                        csv,
                        "{},{system},{metric},{:.3},{:.3},{:.3}",
                        w.name, s.0, s.1, s.2
                    );
                } else {
                    let why = runs
                        .iter()
                        .find_map(|r| r.as_ref().err().cloned())
                        .unwrap_or_else(|| format!("no metric {metric}"));
                    println!("    {system:<8} FAILED: {why}");
                    let _ = writeln!(csv, "{},{system},{metric},FAILED,,", w.name);
                }
                per_system.insert(system, values);
            }
            for peer in systems.iter().filter(|s| **s != "fuseau") {
                // The ratio of each run to its peer in the same round.
                let ratios: Option<Vec<f64>> = per_system["fuseau"]
                    .iter()
                    .zip(&per_system[peer])
                    .map(|(f, p)| Some(f.as_ref()? / p.as_ref()?))
                    .collect();
                if let Some(ratios) = ratios.filter(|r| !r.is_empty()) {
                    let (m, lo, hi) = stats(&ratios);
                    println!("    fuseau/{peer:<6} {m:.2}× [{lo:.2}–{hi:.2}]");
                    let _ = writeln!(
                        csv,
                        "{},fuseau/{peer},{metric},{m:.3},{lo:.3},{hi:.3}",
                        w.name
                    );
                }
            }
        }
    }
    if opts.quick {
        println!("\n{csv}");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    // A partial run (--only) does not overwrite the full results.
    let path = dir.join(if opts.only.is_some() {
        "latest-partial.csv"
    } else {
        "latest.csv"
    });
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &csv)) {
        Ok(()) => println!("results written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    let plot = path.with_extension("svg");
    let title = format!("fuseau against its peers: {}", machine());
    match fuseau_bench::plot::render(&csv, &plot, &title) {
        Ok(()) => println!("plot written to {}", plot.display()),
        Err(e) => eprintln!("cannot plot {}: {e}", plot.display()),
    }
}
