//! Disposing of a scheduler: every fiber is cancelled, every suspended stack
//! unwound, every destructor run exactly once; nothing runs afterwards.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{Counter, Guard, Sim, Slot, HOUR};
use fuseau::{AnyFiber, Builder, Config, ErrorKind, Fiber, FiberLocal, Iteration, Scheduler};

const N: usize = 3_000;

/// `N` fibers asleep for an hour and a chain of `N` fibers each waiting on
/// the next (the last asleep), every one holding a guard on its stack.
fn populate(sim: &Sim, guards: &Counter) -> Vec<Fiber<()>> {
    let mut handles = Vec::new();
    for _ in 0..N {
        let guard = guards.guard();
        handles.push(sim.spawn(move || {
            let _guard = guard;
            fuseau::sleep(HOUR)
        }));
    }
    fn chain(n: usize, guards: Counter) -> fuseau::Result<()> {
        let _guard = guards.guard();
        if n == 1 {
            return fuseau::sleep(HOUR);
        }
        fuseau::spawn(move || chain(n - 1, guards)).join()
    }
    let g = guards.clone();
    handles.push(sim.spawn(move || chain(N, g)));
    sim.run_until_idle();
    assert_eq!(sim.sched.n_fibers(), 2 * N);
    assert_eq!(guards.get(), 0);
    handles
}

#[test]
#[cfg_attr(miri, ignore)]
fn dispose_unwinds_thousands_of_suspended_fibers() {
    let sim = Sim::new();
    let guards = Counter::new();
    let handles = populate(&sim, &guards);
    let handle = sim.sched.handle();
    assert!(handle.is_active());
    sim.sched.dispose();
    assert_eq!(guards.get(), 2 * N, "every destructor ran exactly once");
    assert_eq!(sim.sched.n_fibers(), 0);
    assert!(!sim.sched.active());
    assert!(!handle.is_active());
    for f in handles {
        assert!(f.is_done());
        let e = f.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
    }
    // Idempotent, and nothing runs any more.
    sim.sched.dispose();
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle { deadline: None }
    );
    assert_eq!(guards.get(), 2 * N);
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_scheduler_disposes_of_it() {
    let sim = Sim::new();
    let guards = Counter::new();
    let handles = populate(&sim, &guards);
    drop(sim);
    assert_eq!(guards.get(), 2 * N);
    for f in handles {
        assert!(f.is_done());
        assert!(f.join().unwrap_err().is_cancelled());
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn dispose_from_inside_a_fiber_cancels_everything() {
    let guards = Counter::new();
    let g = guards.clone();
    let result = fuseau::block_on(move || {
        for _ in 0..100 {
            let guard = g.guard();
            fuseau::spawn(move || {
                let _guard = guard;
                fuseau::sleep(HOUR)
            });
        }
        fuseau::yield_now()?;
        let sched = fuseau::Scheduler::current();
        sched.dispose();
        assert!(!sched.active());
        // Spawning is refused from now on.
        let refused = Builder::new().try_spawn(|| Ok(())).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Inactive);
        assert_eq!(
            fuseau::schedule_micro_task(|| ()).unwrap_err().kind(),
            ErrorKind::Inactive
        );
        fuseau::sleep(HOUR)
    });
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(e.message(), "the scheduler was disposed of");
    assert_eq!(guards.get(), 100);
}

#[test]
#[cfg_attr(miri, ignore)]
fn dispose_from_inside_a_fiber_of_a_hand_driven_scheduler() {
    let sim = Sim::new();
    let guards = Counter::new();
    let g = guards.clone();
    let disposer = sim.spawn(move || {
        let _guard = g.guard();
        for _ in 0..10 {
            let g = g.clone();
            fuseau::spawn(move || {
                let _guard = g.guard();
                fuseau::sleep(HOUR)
            });
        }
        fuseau::yield_now()?;
        Scheduler::current().dispose();
        Ok(())
    });
    sim.run_until_idle();
    assert!(disposer.is_done());
    assert!(!sim.sched.active());
    assert_eq!(
        guards.get(),
        11,
        "the cancelled fibers returned by themselves"
    );
    assert_eq!(sim.sched.n_fibers(), 0);
    // The disposer itself returned Ok; it was cancelled by the scheduler,
    // which is not its failure.
    disposer.join().unwrap();
    sim.sched.dispose();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_ignoring_its_cancellation_is_force_unwound() {
    let sim = Sim::new();
    let guards = Counter::new();
    let spins = Rc::new(Cell::new(0u64));
    let (g, s) = (guards.clone(), spins.clone());
    let stubborn = sim.spawn(move || -> fuseau::Result<()> {
        let _guard = g.guard();
        loop {
            let _ = fuseau::yield_now();
            s.set(s.get() + 1);
        }
    });
    let g = guards.clone();
    let sleepy_stubborn = sim.spawn(move || -> fuseau::Result<()> {
        let _guard = g.guard();
        loop {
            let _ = fuseau::sleep(HOUR);
        }
    });
    for _ in 0..5 {
        assert_eq!(sim.sched.run_iteration(), Iteration::Busy);
    }
    sim.sched.dispose();
    assert_eq!(guards.get(), 2);
    assert_eq!(sim.sched.n_fibers(), 0);
    assert!(spins.get() > 0);
    assert!(stubborn.join().unwrap_err().is_cancelled());
    assert!(sleepy_stubborn.join().unwrap_err().is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_unwinds_a_stubborn_root_fiber_at_the_end() {
    let guards = Counter::new();
    let g = guards.clone();
    let result = fuseau::block_on(move || {
        // Spawned from a micro-task, the fiber has no parent: the main
        // fiber does not wait for it, and block_on disposes of it.
        fuseau::schedule_micro_task(move || {
            fuseau::spawn(move || -> fuseau::Result<()> {
                let _guard = g.guard();
                loop {
                    let _ = fuseau::yield_now();
                }
            });
        })?;
        fuseau::yield_now()?;
        fuseau::yield_now()?;
        Ok("main done")
    });
    assert_eq!(result.unwrap(), "main done");
    assert_eq!(guards.get(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn fibers_that_never_started_have_their_bodies_dropped() {
    let sim = Sim::new();
    let guards = Counter::new();
    let ran = Rc::new(Cell::new(false));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let guard = guards.guard();
            let ran = ran.clone();
            sim.spawn(move || {
                let _guard = guard;
                ran.set(true);
                Ok(())
            })
        })
        .collect();
    sim.sched.dispose();
    assert!(!ran.get());
    assert_eq!(guards.get(), 100);
    for f in handles {
        assert!(f.join().unwrap_err().is_cancelled());
    }
}

static LOCAL_GUARD: FiberLocal<Option<Rc<Guard>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn fiber_local_values_of_unwound_fibers_are_dropped_by_dispose() {
    let sim = Sim::new();
    let guards = Counter::new();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let g = guards.clone();
            sim.spawn(move || {
                LOCAL_GUARD.set(Some(Rc::new(g.guard())));
                if i % 2 == 0 {
                    fuseau::sleep(HOUR) // cancelled, returns by itself
                } else {
                    loop {
                        let _ = fuseau::yield_now(); // force-unwound
                    }
                }
            })
        })
        .collect();
    sim.run_iterations(3);
    sim.sched.dispose();
    // The handles are still held: the values must not wait for them.
    assert_eq!(guards.get(), 50);
    drop(handles);
    assert_eq!(guards.get(), 50);
}

#[test]
#[cfg_attr(miri, ignore)]
fn destructors_may_use_fiber_calls_while_being_force_unwound() {
    struct Polite(Rc<Cell<Option<ErrorKind>>>);
    impl Drop for Polite {
        fn drop(&mut self) {
            // A suspension point during a forced unwind must not suspend.
            let e = fuseau::sleep(HOUR).unwrap_err();
            let y = fuseau::yield_now().unwrap_err();
            assert_eq!(e.kind(), y.kind());
            self.0.set(Some(e.kind()));
        }
    }
    let sim = Sim::new();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let f = sim.spawn(move || -> fuseau::Result<()> {
        let _polite = Polite(s);
        loop {
            let _ = fuseau::yield_now();
        }
    });
    sim.run_iterations(2);
    sim.sched.dispose();
    assert_eq!(seen.get(), Some(ErrorKind::Cancelled));
    assert!(f.is_done());
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_finishing_parent_with_suspended_children_is_torn_down() {
    let sim = Sim::new();
    let guards = Counter::new();
    let g = guards.clone();
    let parent = sim.spawn(move || {
        for _ in 0..10 {
            let g = g.clone();
            fuseau::spawn(move || -> fuseau::Result<()> {
                let _guard = g.guard();
                loop {
                    let _ = fuseau::sleep(HOUR);
                }
            });
        }
        Ok(())
    });
    sim.run_until_idle();
    assert!(!parent.is_done());
    drop(sim);
    assert_eq!(guards.get(), 10);
    assert!(parent.is_done());
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawning_on_a_disposed_scheduler_is_inactive() {
    let sim = Sim::new();
    sim.sched.dispose();
    assert!(!sim.sched.active());
    let dropped = Counter::new();
    let guard = dropped.guard();
    let e = Builder::new()
        .spawn_on(&sim.sched, move || {
            let _guard = guard;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inactive);
    assert_eq!(dropped.get(), 1, "the refused body was dropped");
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawning_from_a_fiber_during_disposal_is_inactive() {
    let sim = Sim::new();
    let outcome: Slot<ErrorKind> = Slot::new();
    let o = outcome.clone();
    let f = sim.spawn(move || {
        let _ = fuseau::sleep(HOUR);
        // Woken by the disposal.
        o.put(Builder::new().try_spawn(|| Ok(())).unwrap_err().kind());
        Ok(())
    });
    sim.run_until_idle();
    sim.sched.dispose();
    assert_eq!(outcome.take(), ErrorKind::Inactive);
    f.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_scheduler_with_a_small_pool_tears_down_cleanly() {
    let sim = Sim::with_config(Config::new().stack_pool_size(2).stack_size(64 * 1024));
    let guards = Counter::new();
    for _ in 0..200 {
        let guard = guards.guard();
        sim.spawn(move || {
            let _guard = guard;
            fuseau::sleep(HOUR)
        });
    }
    sim.run_until_idle();
    assert_eq!(sim.sched.n_pooled_stacks(), 0);
    sim.sched.dispose();
    assert_eq!(guards.get(), 200);
    assert_eq!(
        sim.sched.n_pooled_stacks(),
        0,
        "a disposed scheduler keeps no stack: every slab is unmapped"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn any_fiber_handles_outlive_the_scheduler() {
    let sim = Sim::new();
    let slot: Slot<AnyFiber> = Slot::new();
    let s = slot.clone();
    sim.spawn(move || {
        s.put(AnyFiber::current());
        fuseau::sleep(HOUR)
    });
    sim.run_until_idle();
    let any = slot.take();
    drop(sim);
    assert!(any.is_done());
    assert!(any.is_cancelled());
    any.cancel(); // does nothing, does not crash
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_scheduler_disposes_of_it_even_if_its_fibers_hold_it() {
    let sim = Sim::new();
    let guards = Counter::new();
    for i in 0..10 {
        let guard = guards.guard();
        sim.spawn(move || {
            let _guard = guard;
            // A handle to its own scheduler on a suspended fiber's stack, or
            // in its fiber-local storage, must not keep the scheduler alive.
            let sched = Scheduler::current();
            if i % 2 == 0 {
                SCHED.set(Some(sched.clone()));
            }
            fuseau::sleep(HOUR)?;
            drop(sched);
            Ok(())
        });
    }
    sim.run_until_idle();
    drop(sim);
    assert_eq!(guards.get(), 10);
}

static SCHED: FiberLocal<Option<Scheduler>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn clones_of_the_scheduler_keep_it_running() {
    let sim = Sim::new();
    let guards = Counter::new();
    let guard = guards.guard();
    let sleeper = sim.spawn(move || {
        let _guard = guard;
        for _ in 0..3 {
            fuseau::yield_now()?;
        }
        Ok(())
    });
    let clone = sim.sched.clone();
    drop(sim);
    assert!(
        clone.active(),
        "another handle from Scheduler::new is alive"
    );
    assert_eq!(guards.get(), 0);
    for _ in 0..10 {
        clone.run_iteration();
    }
    assert!(sleeper.is_done());
    sleeper.join().unwrap();
    assert_eq!(guards.get(), 1);
    drop(clone);
}

struct StuckInDrop(#[allow(dead_code)] Guard);

impl Drop for StuckInDrop {
    fn drop(&mut self) {
        loop {
            let _ = fuseau::yield_now();
        }
    }
}

static STUCK: FiberLocal<Option<Rc<StuckInDrop>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_stuck_in_the_destructor_of_a_fiber_local_is_unwound() {
    let sim = Sim::new();
    let guards = Counter::new();
    let g = guards.clone();
    let f = sim.spawn(move || {
        STUCK.set(Some(Rc::new(StuckInDrop(g.guard()))));
        Ok(5) // the body returns; the value's destructor never does
    });
    sim.run_iterations(3);
    assert!(!f.is_done());
    assert_eq!(guards.get(), 0);
    sim.sched.dispose();
    assert_eq!(guards.get(), 1);
    assert!(f.join().unwrap_err().is_cancelled());
}
