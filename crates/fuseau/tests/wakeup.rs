//! Wake-ups through the public API: `block_on`'s parking event loop, timers,
//! and `SchedulerHandle` on other threads.
//!
//! Waking a fiber with `Wakeup::to_waker` from another thread needs a fiber
//! parked on a `Wakeup`, which the public API cannot do yet (there is no
//! `Event`/`select`); those cases are unit tests in `src/event.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{ms, Sim};
use fuseau::Scheduler;

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_serves_timers_that_are_already_due() {
    let n = fuseau::block_on(|| {
        let mut n = 0;
        for _ in 0..2_000 {
            fuseau::sleep(Duration::ZERO)?;
            n += 1;
        }
        Ok(n)
    });
    assert_eq!(n.unwrap(), 2_000);
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_parks_until_the_next_timer() {
    let start = Instant::now();
    let result = fuseau::block_on(|| {
        let fibers: Vec<_> = (1..=5u64)
            .map(|i| fuseau::spawn(move || fuseau::sleep(ms(i)).map(|()| i)))
            .collect();
        fibers
            .into_iter()
            .map(|f| f.join())
            .sum::<fuseau::Result<u64>>()
    });
    assert_eq!(result.unwrap(), 15);
    assert!(start.elapsed() >= ms(5), "the timers really waited");
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_until_a_past_deadline_returns_after_a_yield() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let past = fuseau::time::now();
        fuseau::sleep(ms(10))?;
        fuseau::time::sleep_until(past)?;
        fuseau::time::sleep_until(fuseau::time::now() + ms(5))?;
        Ok(())
    });
    result.unwrap();
    assert_eq!(sim.elapsed(), ms(15));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_scheduler_handle_reports_disposal_to_other_threads() {
    let sim = Sim::new();
    let handle = sim.spawn(|| Ok(Scheduler::current().handle()));
    sim.run_until_idle();
    let handle = handle.join().unwrap();
    let h = handle.clone();
    assert!(std::thread::spawn(move || h.is_active()).join().unwrap());
    sim.sched.dispose();
    let h = handle.clone();
    assert!(!std::thread::spawn(move || h.is_active()).join().unwrap());
    assert!(format!("{handle:?}").contains("false"));
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_can_run_on_many_threads_at_once() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                fuseau::block_on(move || {
                    let fibers: Vec<_> = (0..1_000u64)
                        .map(|i| {
                            fuseau::spawn(move || {
                                fuseau::yield_now()?;
                                Ok(i * t)
                            })
                        })
                        .collect();
                    fibers
                        .into_iter()
                        .map(|f| f.join())
                        .sum::<fuseau::Result<u64>>()
                })
            })
        })
        .collect();
    for (t, th) in threads.into_iter().enumerate() {
        let t = t as u64;
        assert_eq!(th.join().unwrap().unwrap(), t * 999 * 1_000 / 2);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_scheduler_can_be_driven_from_inside_a_fiber_of_another() {
    let result = fuseau::block_on(|| {
        let inner = Sim::new();
        let outer_id = fuseau::AnyFiber::current().id();
        let r = inner.block_on(move || {
            // The inner scheduler's fiber, not the outer one.
            assert_ne!(fuseau::AnyFiber::current().id(), outer_id);
            fuseau::sleep(ms(50))?;
            Ok(6)
        })?;
        // Back in the outer fiber.
        assert_eq!(fuseau::AnyFiber::current().id(), outer_id);
        assert_eq!(inner.elapsed(), ms(50));
        fuseau::yield_now()?;
        Ok(r * 7)
    });
    assert_eq!(result.unwrap(), 42);
}

#[test]
#[cfg_attr(miri, ignore)]
fn timers_are_served_while_fibers_keep_yielding() {
    use std::cell::Cell;
    use std::rc::Rc;
    let result = fuseau::block_on(|| {
        let woke = Rc::new(Cell::new(false));
        let w = woke.clone();
        let sleeper = fuseau::spawn(move || {
            fuseau::sleep(ms(2))?;
            w.set(true);
            Ok(())
        });
        let mut spins = 0u64;
        while !woke.get() {
            fuseau::yield_now()?;
            spins += 1;
        }
        sleeper.join()?;
        Ok(spins)
    });
    assert!(result.unwrap() > 0);
}
