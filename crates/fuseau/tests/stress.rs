//! Many fibers: spawning and joining at scale, counters, steady memory.

mod common;

use common::{ms, Counter, Log, Sim};
use fuseau::Scheduler;

#[test]
#[cfg_attr(miri, ignore)]
fn a_hundred_thousand_fibers_spawned_then_joined() {
    const N: u64 = 100_000;
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let sched = Scheduler::current();
        let fibers: Vec<_> = (0..N).map(|i| fuseau::spawn(move || Ok(i))).collect();
        assert_eq!(sched.n_fibers() as u64, N + 1);
        let mut sum = 0;
        for f in fibers {
            sum += f.join()?;
        }
        assert_eq!(sched.n_fibers(), 1);
        Ok(sum)
    });
    assert_eq!(result.unwrap(), N * (N - 1) / 2);
    assert_eq!(sim.sched.n_tasks_since_beginning(), N + 1);
    assert_eq!(sim.sched.n_fibers(), 0);
    assert!(sim.sched.n_pooled_stacks() <= 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_hundred_thousand_fibers_with_block_on() {
    const N: u64 = 100_000;
    let result = fuseau::block_on(|| {
        let fibers: Vec<_> = (0..N).map(|i| fuseau::spawn(move || Ok(i % 7))).collect();
        fibers
            .into_iter()
            .map(|f| f.join())
            .sum::<fuseau::Result<u64>>()
    });
    assert_eq!(result.unwrap(), (0..N).map(|i| i % 7).sum::<u64>());
}

#[test]
#[cfg_attr(miri, ignore)]
fn n_tasks_since_beginning_counts_every_spawn() {
    let sim = Sim::new();
    assert_eq!(sim.sched.n_tasks_since_beginning(), 0);
    sim.block_on(|| {
        let sched = Scheduler::current();
        assert_eq!(sched.n_tasks_since_beginning(), 1);
        fuseau::spawn(|| Ok(())).join()?;
        let nested = fuseau::spawn(|| fuseau::spawn(|| Ok(())).join());
        nested.join()?;
        // A fiber cancelled before it ran counts too.
        let cancelled = fuseau::spawn(|| Ok(()));
        cancelled.cancel();
        assert!(cancelled.join().unwrap_err().is_cancelled());
        assert_eq!(sched.n_tasks_since_beginning(), 5);
        Ok(())
    })
    .unwrap();
    assert_eq!(sim.sched.n_tasks_since_beginning(), 5);
}

#[test]
#[cfg_attr(miri, ignore)]
fn waves_of_fibers_leave_nothing_behind() {
    let sim = Sim::new();
    let bodies = Counter::new();
    for wave in 0..20u64 {
        let b = bodies.clone();
        let result = sim.block_on(move || {
            let fibers: Vec<_> = (0..500u64)
                .map(|i| {
                    let b = b.clone();
                    fuseau::spawn(move || {
                        let _guard = b.guard();
                        if i % 3 == 0 {
                            fuseau::sleep(ms(i % 10))?;
                        } else {
                            fuseau::yield_now()?;
                        }
                        Ok(i)
                    })
                })
                .collect();
            let mut total = 0;
            for f in fibers {
                total += f.join()?;
            }
            Ok(total)
        });
        assert_eq!(result.unwrap(), 500 * 499 / 2, "wave {wave}");
        assert_eq!(sim.sched.n_fibers(), 0);
    }
    assert_eq!(bodies.get(), 20 * 500);
    assert!(sim.sched.n_pooled_stacks() <= 501);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_pipeline_of_fibers_passing_a_token() {
    // Each fiber waits (join) on the previous one and adds one: a long
    // chain of wake-ups through the run queue.
    const N: usize = 5_000;
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let mut previous = fuseau::spawn(|| Ok(0usize));
        for _ in 0..N {
            let p = previous;
            previous = fuseau::spawn(move || Ok(p.join()? + 1));
        }
        previous.join()
    });
    assert_eq!(result.unwrap(), N);
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_timers_fire_in_order() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        // Deadlines in a scrambled order, each unique.
        let fibers: Vec<_> = (0..1_000u64)
            .map(|i| (i * 7919) % 1_000)
            .map(|d| {
                let l = l.clone();
                fuseau::spawn(move || {
                    fuseau::sleep(ms(d))?;
                    l.push(d.to_string());
                    Ok(())
                })
            })
            .collect();
        for f in fibers {
            f.join()?;
        }
        Ok(())
    })
    .unwrap();
    let expected: Vec<String> = (0..1_000u64).map(|d| d.to_string()).collect();
    assert_eq!(log.take(), expected);
    assert_eq!(sim.elapsed(), ms(999));
}
