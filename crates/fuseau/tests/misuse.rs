//! Misuse gets a clear error or a panic naming the call, never a hang or
//! undefined behaviour.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{ms, Log, Sim, Slot};
use fuseau::{AnyFiber, Builder, Error, ErrorKind, Fiber, FiberLocal, Scheduler};

fn assert_not_in_fiber<T: std::fmt::Debug>(result: fuseau::Result<T>, call: &str) {
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber, "{call}: {e}");
    assert!(e.message().contains(call), "{call}: {e}");
}

#[test]
fn fiber_only_calls_outside_a_fiber_return_not_in_fiber() {
    assert_not_in_fiber(fuseau::yield_now(), "yield_now");
    assert_not_in_fiber(fuseau::sleep(ms(1)), "sleep");
    assert_not_in_fiber(
        fuseau::time::sleep_until(std::time::Instant::now()),
        "sleep_until",
    );
    assert_not_in_fiber(fuseau::cancel_after(ms(1)), "cancel_after");
    assert_not_in_fiber(Scheduler::try_current(), "Scheduler::current");
    assert_not_in_fiber(AnyFiber::try_current(), "AnyFiber::current");
    assert_not_in_fiber(fuseau::schedule_micro_task(|| ()), "schedule_micro_task");
    assert_not_in_fiber(Builder::new().try_spawn(|| Ok(())), "spawn");
}

#[test]
#[cfg_attr(miri, ignore)]
fn fiber_only_calls_between_iterations_return_not_in_fiber() {
    // A scheduler exists on this thread, but no fiber runs.
    let sim = Sim::new();
    let f = sim.spawn(|| fuseau::sleep(ms(5)));
    sim.run_until_idle();
    assert_not_in_fiber(fuseau::yield_now(), "yield_now");
    assert_not_in_fiber(Scheduler::try_current(), "Scheduler::current");
    assert_not_in_fiber(Builder::new().try_spawn(|| Ok(())), "spawn");
    sim.run_until(|| f.is_done());
}

#[test]
#[should_panic(expected = "fuseau::spawn")]
fn spawn_outside_a_fiber_panics() {
    let _ = fuseau::spawn(|| Ok(()));
}

#[test]
#[should_panic(expected = "Scheduler::current")]
fn scheduler_current_outside_a_fiber_panics() {
    let _ = Scheduler::current();
}

#[test]
#[should_panic(expected = "AnyFiber::current")]
fn any_fiber_current_outside_a_fiber_panics() {
    let _ = AnyFiber::current();
}

static LOCAL: FiberLocal<u8> = FiberLocal::new(|| 0);

#[test]
#[should_panic(expected = "FiberLocal::get")]
fn fiber_local_get_outside_a_fiber_panics() {
    let _ = LOCAL.get();
}

#[test]
#[should_panic(expected = "FiberLocal::set")]
fn fiber_local_set_outside_a_fiber_panics() {
    LOCAL.set(1);
}

#[test]
#[should_panic(expected = "FiberLocal::with_value")]
fn fiber_local_with_value_outside_a_fiber_panics() {
    LOCAL.with_value(1, || ());
}

#[test]
#[should_panic(expected = "with_cancel_callback")]
fn with_cancel_callback_outside_a_fiber_panics() {
    fuseau::with_cancel_callback(|_| (), || ());
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_outside_a_fiber_needs_a_finished_fiber() {
    let sim = Sim::new();
    let ok = sim.spawn(|| Ok(42));
    let failed = sim.spawn(|| Err::<(), _>(Error::from("nope")));
    let slow = sim.spawn(|| fuseau::sleep(ms(10)));
    sim.run_until_idle();
    assert_eq!(ok.join().unwrap(), 42);
    assert_eq!(failed.join().unwrap_err().message(), "nope");
    let slow_any = slow.any();
    assert_not_in_fiber(slow.join(), "Fiber::join");
    // The fiber is unaffected.
    sim.run_until(|| slow_any.is_done());
    assert!(!slow_any.is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_joining_itself_gets_an_error() {
    let sim = Sim::new();
    let me: Slot<Fiber<()>> = Slot::new();
    let m = me.clone();
    let outcome: Slot<Error> = Slot::new();
    let o = outcome.clone();
    let f = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn_on(&sim.sched, move || {
            fuseau::yield_now()?;
            let myself = m.take();
            o.put(myself.join().unwrap_err());
            Ok(())
        })
        .unwrap();
    let id = f.id();
    me.put(f);
    sim.run_until_idle();
    let e = outcome.take();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.message().contains("join"), "{e}");
    assert_eq!(sim.sched.n_fibers(), 0, "fiber {id:?} finished: no hang");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_joining_an_ancestor_gets_an_error() {
    let sim = Sim::new();
    let root_slot: Slot<Fiber<()>> = Slot::new();
    let parent_slot: Slot<Fiber<()>> = Slot::new();
    let log = Log::new();
    let (rs, ps, l) = (root_slot.clone(), parent_slot.clone(), log.clone());
    let root = sim.spawn(move || {
        let ps2 = ps.clone();
        let parent = fuseau::spawn(move || {
            fuseau::spawn(move || {
                fuseau::yield_now()?;
                for (name, ancestor) in [("parent", ps2.take()), ("grandparent", rs.take())] {
                    let e = ancestor.join().unwrap_err();
                    l.push(format!("{name}: {:?}", e.kind()));
                }
                Ok(())
            });
            Ok(())
        });
        ps.put(parent);
        Ok(())
    });
    let watch = root.any();
    root_slot.put(root);
    sim.run_until_idle();
    assert_eq!(log.take(), ["parent: Other", "grandparent: Other"]);
    assert!(watch.is_done(), "no hang");
    assert!(!watch.is_cancelled(), "joining failed, nothing else did");
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn run_iteration_from_inside_a_fiber_panics_in_that_fiber() {
    let sim = Sim::new();
    let sched = sim.sched.clone();
    let f = sim.spawn(move || {
        sched.run_iteration();
        Ok(())
    });
    sim.run_until(|| f.is_done());
    let e = f.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.message().contains("run_iteration"), "{e}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn micro_tasks_are_not_fibers() {
    let sim = Sim::new();
    let checked = Rc::new(Cell::new(false));
    let c = checked.clone();
    let root_slot: Slot<Fiber<u8>> = Slot::new();
    let rs = root_slot.clone();
    sim.block_on(move || {
        fuseau::schedule_micro_task(move || {
            assert_eq!(
                fuseau::yield_now().unwrap_err().kind(),
                ErrorKind::NotInFiber
            );
            assert!(AnyFiber::try_current().is_err());
            assert!(
                Scheduler::try_current().is_ok(),
                "but the scheduler is known"
            );
            // A fiber spawned here has no parent.
            rs.put(fuseau::spawn(|| {
                fuseau::sleep(ms(5))?;
                Ok(3)
            }));
            c.set(true);
        })?;
        fuseau::yield_now()?;
        Ok(())
    })
    .unwrap();
    assert!(checked.get());
    // The main fiber did not wait for the parentless fiber.
    let root = root_slot.take();
    assert!(!root.is_done());
    sim.run_until(|| root.is_done());
    assert_eq!(root.join().unwrap(), 3);
}
