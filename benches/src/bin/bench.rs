//! The suite's driver: runs the system binaries (`bench-fuseau`,
//! `bench-tokio`, `bench-may`, built beside it) as child processes,
//! interleaved (A B C A B C …), pinned to one core, and summarises each
//! metric as median [min–max] with the ratio fuseau/peer computed run by run.
//!
//! Usage: `cargo run --release -p fuseau-bench -- [--quick] [--runs N]
//! [--only W1,W3]`. See `benches/README.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One workload: its name, what it does, its parameters (the same for every
/// system) and the systems that implement it.
struct Workload {
    name: &'static str,
    what: &'static str,
    params: &'static [u64],
    systems: &'static [&'static str],
}

const ALL: &[&str] = &["fuseau", "tokio", "may"];

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "W1",
        what: "spawn + join 100 000 tasks (cold: first round in a fresh process; warm: mean of 3 more)",
        params: &[100_000],
        systems: ALL,
    },
    Workload {
        name: "W2",
        what: "two tasks yielding to each other, 1 000 000 yields in all",
        params: &[1_000_000],
        systems: ALL,
    },
    Workload {
        name: "W3",
        what: "bounded channel, capacity 64, 1 producer 1 consumer, 1 000 000 u64",
        params: &[64, 1_000_000],
        systems: ALL,
    },
    Workload {
        name: "W4",
        what: "10 000 tasks each sleeping 10 ms once (wall time, overhead over 10 ms)",
        params: &[10_000, 10],
        systems: ALL,
    },
    Workload {
        name: "W5",
        what: "30 000 tasks each suspended in recv on a channel of its own: RSS bytes per task, then close/drop every sender and join all (release ns per task)",
        params: &[30_000],
        systems: ALL,
    },
    Workload {
        name: "W5x",
        what: "W5 with 100 000 tasks (past the default vm.max_map_count for systems with a guarded mmap per stack)",
        params: &[100_000],
        systems: ALL,
    },
    Workload {
        name: "W7",
        what: "await a Tokio future pending once (tokio::task::yield_now), 200 000 times: fiber vs Tokio task",
        params: &[200_000],
        systems: &["fuseau", "tokio"],
    },
    Workload {
        name: "W7o",
        what: "await a oneshot completed by another Tokio task, 200 000 times: fiber vs Tokio task",
        params: &[200_000],
        systems: &["fuseau", "tokio"],
    },
    Workload {
        name: "W9",
        what: "channel chain: 300 stages, each select-receiving from 2 bounded channels (capacity 4) and select-sending to 2, 3 000 values (900 000 forwards)",
        params: &[300, 3_000, 4],
        systems: &["fuseau", "tokio"],
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
    let mut cmd = if taskset {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(&bin);
        c
    } else {
        let mut c = Command::new(&bin);
        pin_child_to_cpu0(&mut c);
        c
    };
    cmd.arg(w.name).args(w.params.iter().map(u64::to_string));
    let out = output_with_timeout(cmd, RUN_TIMEOUT)
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
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

/// The longest one run of one system may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion, or kills it after `timeout`.
fn output_with_timeout(mut cmd: Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Drain the pipes on threads so that a chatty child cannot block.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill()?;
            let status = child.wait()?;
            let mut stderr = format!("timed out after {timeout:?}\n").into_bytes();
            stderr.extend(err_thread.join().unwrap_or_default());
            return Ok(Output {
                status,
                stdout: out_thread.join().unwrap_or_default(),
                stderr,
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    })
}

/// Pins the child to CPU 0 with `sched_setaffinity` (used when `taskset`
/// is not installed).
fn pin_child_to_cpu0(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (sched_setaffinity) on a local set.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
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

fn fmt_stats((median, min, max): (f64, f64, f64)) -> String {
    format!("{median:.1} [{min:.1}–{max:.1}]")
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
    for system in ALL {
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
    let taskset = has_taskset();
    println!(
        "fuseau bench: {} warm-up + {} runs per workload, systems interleaved, pinned to CPU 0 ({})",
        opts.warmups,
        opts.runs,
        if taskset {
            "taskset -c 0"
        } else {
            "sched_setaffinity"
        }
    );
    println!("machine: {}", machine());
    let mut csv = String::from("workload,system,metric,median,min,max\n");
    for w in WORKLOADS {
        if let Some(only) = &opts.only {
            if !only.iter().any(|o| o == w.name) {
                continue;
            }
        }
        println!("\n{}: {}", w.name, w.what);
        // results[system] = one entry per measured run.
        let mut results: BTreeMap<&str, Vec<RunResult>> = BTreeMap::new();
        for i in 0..opts.warmups + opts.runs {
            for system in w.systems {
                let r = run_one(&bin_dir, taskset, system, w);
                if i >= opts.warmups {
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
            for system in w.systems {
                let runs = &results[system];
                let values: Vec<Option<f64>> = runs
                    .iter()
                    .map(|r| r.as_ref().ok().and_then(|m| m.get(metric).copied()))
                    .collect();
                let ok: Vec<f64> = values.iter().flatten().copied().collect();
                if ok.len() == values.len() {
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
            for peer in w.systems.iter().filter(|s| **s != "fuseau") {
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
}
