//! Fibers at scale: how many can be alive at once, under Linux's limit on
//! memory mappings (`vm.max_map_count`, 65 530 by default). Alone in its
//! test binary, since hitting the limit affects every thread.
//!
//! With guard markers (`MADV_GUARD_INSTALL`, Linux 6.13) stacks share
//! mappings and the limit does not apply; with the `mprotect` fallback each
//! stack takes two mappings, and the fibers past the limit fail cleanly.
//! The fallback is tested in a child process that forces it
//! (`FUSEAU_STACK_GUARD=mprotect`).

mod common;

use common::{Sim, HOUR};
use fuseau::{Builder, Config, ErrorKind};

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530)
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

/// Spawns `n` fibers that sleep for an hour on a virtual clock, runs them
/// until they all suspended, and returns them with the scheduler.
fn sleepers(n: usize, config: Config) -> (Sim, Vec<fuseau::Fiber<()>>) {
    let sim = Sim::with_config(config);
    let fibers = (0..n)
        .map(|_| {
            Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn_on(&sim.sched, || fuseau::sleep(HOUR))
                .unwrap()
        })
        .collect();
    sim.run_until_idle();
    (sim, fibers)
}

/// 100 000 live fibers with the default stack size, on a stock kernel.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_hundred_thousand_fibers_live_at_once() {
    if fuseau::__private::stack_guard_kind() == "mprotect" {
        eprintln!("no MADV_GUARD_INSTALL here (Linux < 6.13): the fallback test covers this");
        return;
    }
    const N: usize = 100_000;
    let before = mappings();
    let (sim, fibers) = sleepers(N, Config::new());
    assert_eq!(sim.sched.n_fibers(), N);
    let done = fibers.iter().filter(|f| f.is_done()).count();
    assert_eq!(done, 0, "every fiber got a stack and sleeps");
    let added = mappings().saturating_sub(before);
    assert!(
        added < 1_000,
        "{N} stacks took {added} new mappings: they should share a few"
    );
    assert!(N > max_map_count() / 2 || max_map_count() > 200_000);
    sim.sched.dispose();
    for f in fibers {
        assert_eq!(f.join().unwrap_err().kind(), ErrorKind::Cancelled);
    }
}

/// Runs the test `name` of this binary in a child process with the
/// `mprotect` fallback forced; returns its stderr.
fn run_child_with_fallback(name: &str) -> String {
    let (out, stderr) = common::run_test_in_child(
        name,
        &[
            ("FUSEAU_STACK_GUARD", "mprotect"),
            ("FUSEAU_MAP_LIMIT_CHILD", "1"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {name} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran {name}: {stdout}"
    );
    stderr
}

fn in_child() -> bool {
    std::env::var_os("FUSEAU_MAP_LIMIT_CHILD").is_some()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn fallback_guards_take_mappings_and_run_out_cleanly() {
    let stderr = run_child_with_fallback("child_runs_out_of_mappings");
    assert!(stderr.contains("guard kind: mprotect"), "{stderr}");
}

/// In the child: with `mprotect` guards, more sleeping fibers than the
/// limit allows. The ones that get no stack fail with a clear error, and
/// nothing crashes.
#[test]
fn child_runs_out_of_mappings() {
    if !in_child() {
        return;
    }
    let kind = fuseau::__private::stack_guard_kind();
    eprintln!("guard kind: {kind}");
    assert_eq!(kind, "mprotect");
    let limit = max_map_count();
    if limit > 200_000 {
        eprintln!("vm.max_map_count is {limit}: too high to reach in a test, skipped");
        return;
    }
    // Two mappings per guarded stack: this is more than can exist at once.
    let n = limit / 2 + 1_000;
    let before = mappings();
    let (sim, fibers) = sleepers(n, Config::new().stack_size(16 * 1024).stack_pool_size(0));
    assert!(mappings() - before > limit / 4, "each guard split its slab");
    let failed: Vec<_> = fibers
        .iter()
        .filter(|f| f.is_done())
        .map(|f| f.id())
        .collect();
    assert!(!failed.is_empty(), "some fibers could not get a stack");
    assert!(failed.len() < n, "most did");
    sim.sched.dispose();
    let mut io_errors = 0;
    for f in fibers {
        let e = f.join().unwrap_err();
        if e.kind() == ErrorKind::Io {
            assert!(e.message().contains("max_map_count"), "{e}");
            io_errors += 1;
        } else {
            assert_eq!(e.kind(), ErrorKind::Cancelled);
        }
    }
    assert_eq!(io_errors, failed.len());
    // The stacks are released: fibers run again.
    let sim = Sim::new();
    assert_eq!(sim.block_on(|| Ok(7)).unwrap(), 7);
}
