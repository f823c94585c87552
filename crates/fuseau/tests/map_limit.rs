//! The process-wide limit on memory mappings (Linux's `vm.max_map_count`):
//! alone in its test binary, since hitting it affects every thread.

mod common;

use common::{Sim, HOUR};
use fuseau::{Builder, Config, ErrorKind};

/// More sleeping fibers than guarded stacks the kernel allows: the ones
/// that get no stack fail with a clear error, and nothing crashes.
#[test]
#[cfg_attr(miri, ignore)]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn running_out_of_mappings_fails_fibers_cleanly() {
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530);
    if limit > 200_000 {
        eprintln!("vm.max_map_count is {limit}: too high to reach in a test, skipped");
        return;
    }
    // Two mappings per guarded stack: this is more than can exist at once.
    let n = limit / 2 + 1_000;
    let sim = Sim::with_config(Config::new().stack_size(16 * 1024).stack_pool_size(0));
    let fibers: Vec<_> = (0..n)
        .map(|_| {
            Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn_on(&sim.sched, || fuseau::sleep(HOUR))
                .unwrap()
        })
        .collect();
    sim.run_until_idle();
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
