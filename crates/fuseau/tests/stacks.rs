//! Fiber stacks: pooling and reuse, sizes, and failure to get one.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{Counter, Sim, HOUR};
use fuseau::{Builder, Config, ErrorKind, Iteration};

/// The address of a local variable of the running fiber: where its stack is.
fn stack_address() -> fuseau::Result<usize> {
    let local = 0u8;
    Ok(std::hint::black_box(&local) as *const u8 as usize)
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_finished_fibers_stack_is_reused_by_the_next() {
    let sim = Sim::new();
    let first = sim.block_on(stack_address).unwrap();
    assert_eq!(sim.sched.n_pooled_stacks(), 1);
    let second = sim.block_on(stack_address).unwrap();
    assert_eq!(first, second, "the same stack, from the pool");
    assert_eq!(sim.sched.n_pooled_stacks(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn sequential_fibers_need_one_stack() {
    let sim = Sim::new();
    let main = sim.spawn(|| {
        let sched = fuseau::Scheduler::current();
        let mut addresses = std::collections::HashSet::new();
        for i in 0..2_000u32 {
            let child = fuseau::spawn(stack_address);
            addresses.insert(child.join()?);
            assert!(sched.n_pooled_stacks() <= 1, "at step {i}");
            assert_eq!(sched.n_fibers(), 1);
        }
        Ok(addresses.len())
    });
    sim.run_until(|| main.is_done());
    assert_eq!(main.join().unwrap(), 1, "every child ran on the same stack");
    assert_eq!(sim.sched.n_tasks_since_beginning(), 2_001);
}

#[test]
#[cfg_attr(miri, ignore)]
fn suspended_fibers_keep_their_stacks_and_give_them_back() {
    let sim = Sim::with_config(Config::new().stack_pool_size(16));
    let sleepers: Vec<_> = (0..10)
        .map(|_| sim.spawn(|| fuseau::sleep(common::ms(5))))
        .collect();
    sim.run_until_idle();
    assert_eq!(
        sim.sched.n_pooled_stacks(),
        0,
        "each sleeper holds its stack"
    );
    sim.run_until(|| sleepers.iter().all(|f| f.is_done()));
    assert_eq!(sim.sched.n_pooled_stacks(), 10);
    // Five new sleepers take five of them.
    let more: Vec<_> = (0..5).map(|_| sim.spawn(|| fuseau::sleep(HOUR))).collect();
    sim.run_until_idle();
    assert_eq!(sim.sched.n_pooled_stacks(), 5);
    drop(more);
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_pool_keeps_at_most_its_configured_size() {
    for pool in [0, 3] {
        let sim = Sim::with_config(Config::new().stack_pool_size(pool));
        let fibers: Vec<_> = (0..20)
            .map(|_| sim.spawn(|| fuseau::sleep(common::ms(1))))
            .collect();
        sim.run_until(|| fibers.iter().all(|f| f.is_done()));
        assert_eq!(sim.sched.n_pooled_stacks(), pool);
        for f in fibers {
            f.join().unwrap();
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_that_has_not_started_holds_no_stack() {
    let sim = Sim::new();
    sim.block_on(stack_address).unwrap();
    assert_eq!(sim.sched.n_pooled_stacks(), 1);
    // Far more fibers than `vm.max_map_count` would allow stacks for.
    let fibers: Vec<_> = (0..40_000).map(|_| sim.spawn(|| Ok(()))).collect();
    assert_eq!(sim.sched.n_fibers(), 40_000);
    assert_eq!(sim.sched.n_pooled_stacks(), 1, "spawning took no stack");
    let ran = Counter::new();
    for f in &fibers {
        assert!(!f.is_done());
    }
    sim.run_until(|| fibers.iter().all(|f| f.is_done()));
    for f in fibers {
        f.join().unwrap();
        ran.incr();
    }
    assert_eq!(ran.get(), 40_000);
    assert_eq!(sim.sched.n_pooled_stacks(), 1, "they ran one after another");
}

#[test]
#[cfg_attr(miri, ignore)]
fn builder_stack_size_gives_room_for_deep_recursion() {
    fn recurse(n: usize) -> usize {
        let frame = [n as u8; 1024];
        std::hint::black_box(&frame);
        if n == 0 {
            0
        } else {
            std::hint::black_box(recurse(n - 1)) + 1
        }
    }
    let sim = Sim::new();
    // About 2 MiB of frames: far more than the default stack.
    let depth = 2_000;
    assert!(depth * 1024 > Config::DEFAULT_STACK_SIZE);
    let result = sim.block_on(move || {
        let child = Builder::new()
            .stack_size(16 << 20)
            .spawn(move || Ok(recurse(depth)));
        child.join()
    });
    assert_eq!(result.unwrap(), depth);
}

#[test]
#[cfg_attr(miri, ignore)]
fn config_stack_size_is_the_default() {
    let config = Config::new().stack_size(512 * 1024);
    assert_eq!(config.get_stack_size(), 512 * 1024);
    assert_eq!(
        Config::default().get_stack_size(),
        Config::DEFAULT_STACK_SIZE
    );
    let sim = Sim::with_config(Config::new().stack_size(64 * 1024));
    sim.block_on(|| {
        // Fibers of two sizes: pooled separately.
        fuseau::spawn(|| Ok(())).join()?;
        Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| Ok(()))
            .join()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(sim.sched.n_pooled_stacks(), 3);
}

/// A stack size past the maximum (1 GiB) is refused before any mapping,
/// with an error that says the size is impossible (not a mapping limit).
fn assert_clear_stack_error(e: &fuseau::Error) {
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(e.message().contains("impossible"), "{e}");
    assert!(e.message().contains("stack_size"), "{e}");
    assert!(!e.message().contains("max_map_count"), "{e}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_impossible_stack_is_a_clear_error() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = Builder::new()
            .propagate_cancel_to_parent(false)
            .stack_size(1 << 47)
            .spawn(|| Ok("never"));
        let e = child.join().unwrap_err();
        assert_clear_stack_error(&e);
        // The scheduler is fine: more fibers run.
        fuseau::spawn(|| Ok(1)).join()
    });
    assert_eq!(result.unwrap(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_impossible_stack_fails_the_parent_by_default() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        Builder::new().stack_size(1 << 47).spawn(|| Ok(()));
        fuseau::sleep(HOUR)
    });
    assert_clear_stack_error(&result.unwrap_err());
    assert_eq!(sim.elapsed(), common::ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn absurd_stack_sizes_fail_cleanly() {
    for size in [usize::MAX, usize::MAX - 4096, isize::MAX as usize, 1 << 62] {
        let sim = Sim::new();
        let f = Builder::new()
            .stack_size(size)
            .spawn_on(&sim.sched, || Ok(()))
            .unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| sim.run_until_idle()));
        assert!(outcome.is_ok(), "size {size:#x}: run_iteration unwound");
        let e = f.join().unwrap_err();
        assert_clear_stack_error(&e);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_with_uses_the_config() {
    let result = fuseau::block_on_with(Config::new().stack_size(1 << 47), || Ok(()));
    assert_clear_stack_error(&result.unwrap_err());
}

#[test]
#[cfg_attr(miri, ignore)]
fn surplus_stacks_are_unmapped_a_batch_at_a_time_once_idle() {
    let config = Config::new().stack_pool_size(4).budget(1_000);
    let sim = Sim::with_config(config);
    let fibers: Vec<_> = (0..200)
        .map(|_| sim.spawn(|| fuseau::sleep(common::ms(1))))
        .collect();
    sim.run_until_idle();
    assert_eq!(
        sim.sched.n_pooled_stacks(),
        0,
        "each sleeper holds its stack"
    );
    sim.advance(common::ms(1));
    let mut pooled = Vec::new();
    loop {
        let iteration = sim.sched.run_iteration();
        pooled.push(sim.sched.n_pooled_stacks());
        if let Iteration::Idle { .. } = iteration {
            break;
        }
    }
    assert!(fibers.iter().all(|f| f.is_done()));
    // All 200 finish in the first iteration and give their stacks back;
    // then each idle iteration unmaps 64 of the surplus and reports itself
    // busy until the pool is down to its size.
    assert_eq!(pooled, [200 - 64, 200 - 128, 200 - 192, 4]);
}
