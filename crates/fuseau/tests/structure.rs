//! Structured concurrency: the fiber tree, cancellation down, failure up,
//! completion only after the children.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{ms, Counter, Log, Sim, Slot, HOUR};
use fuseau::{AnyFiber, Builder, Error, ErrorKind, Fiber};

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_is_done_only_when_its_children_are() {
    let sim = Sim::new();
    let child_slot: Slot<AnyFiber> = Slot::new();
    let cs = child_slot.clone();
    let parent = sim.spawn(move || {
        let child = fuseau::spawn(|| fuseau::sleep(ms(10)));
        cs.put(child.any());
        Ok(7)
    });
    sim.run_until_idle();
    let child = child_slot.take();
    assert!(
        !parent.is_done(),
        "the body returned but a child still sleeps"
    );
    assert!(!child.is_done());
    assert!(!parent.is_cancelled());
    assert_eq!(sim.sched.n_fibers(), 2);
    sim.run_until(|| parent.is_done());
    assert!(child.is_done());
    assert_eq!(sim.elapsed(), ms(10));
    assert_eq!(parent.join().unwrap(), 7);
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_a_parent_cancels_its_descendants() {
    let sim = Sim::new();
    let child_slot: Slot<Fiber<()>> = Slot::new();
    let grandchild_slot: Slot<Fiber<()>> = Slot::new();
    let finished = Counter::new();
    let (cs, gs, f) = (
        child_slot.clone(),
        grandchild_slot.clone(),
        finished.clone(),
    );
    let parent = sim.spawn(move || {
        let guard = f.guard();
        let f2 = f.clone();
        let child = fuseau::spawn(move || {
            let guard = f2.guard();
            let f3 = f2.clone();
            let grandchild = fuseau::spawn(move || {
                let _guard = f3.guard();
                fuseau::sleep(HOUR)
            });
            gs.put(grandchild);
            let r = fuseau::sleep(HOUR);
            drop(guard);
            r
        });
        cs.put(child);
        let r = fuseau::sleep(HOUR);
        drop(guard);
        r
    });
    sim.run_until_idle();
    assert_eq!(sim.sched.n_fibers(), 3);
    parent.cancel();
    assert!(parent.is_cancelled());
    let child = child_slot.take();
    let grandchild = grandchild_slot.take();
    assert!(child.is_cancelled() && grandchild.is_cancelled());
    sim.run_until(|| parent.is_done());
    assert_eq!(sim.elapsed(), ms(0), "nobody waited for a timer");
    assert_eq!(finished.get(), 3);
    assert!(child.is_done() && grandchild.is_done());
    assert_eq!(grandchild.join().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(child.join().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(parent.join().unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_failing_child_cancels_its_parent_with_its_error() {
    let sim = Sim::new();
    let original: Slot<Error> = Slot::new();
    let seen_by_parent: Slot<Error> = Slot::new();
    let sibling_slot: Slot<Fiber<()>> = Slot::new();
    let (o, p, s) = (
        original.clone(),
        seen_by_parent.clone(),
        sibling_slot.clone(),
    );
    let result = sim.block_on(move || {
        fuseau::spawn(move || {
            fuseau::sleep(ms(5))?;
            let e = Error::from("disk on fire");
            o.put(e.clone());
            Err::<(), _>(e)
        });
        let sibling = fuseau::spawn(|| fuseau::sleep(HOUR));
        let e = fuseau::sleep(HOUR).unwrap_err();
        p.put(e.clone());
        s.put(sibling);
        // Joining is a suspension point: the cancelled parent gets its own
        // cancellation (the child's error), not the sibling's result.
        let sibling = fuseau::spawn(|| Ok(()));
        assert!(sibling.join().unwrap_err().ptr_eq(&e));
        // The parent "handles" the error, but it failed all the same.
        Ok(())
    });
    let original = original.take();
    let e = result.unwrap_err();
    assert!(
        e.ptr_eq(&original),
        "the parent fails with the child's error itself"
    );
    assert_eq!(e.kind(), ErrorKind::Other);
    assert_eq!(e.message(), "disk on fire");
    assert!(seen_by_parent.take().ptr_eq(&original));
    let sibling_error = sibling_slot.take().join().unwrap_err();
    assert_eq!(sibling_error.kind(), ErrorKind::Cancelled);
    let cause = std::error::Error::source(&sibling_error).expect("the cause is kept");
    assert_eq!(cause.to_string(), original.to_string());
    assert_eq!(sim.elapsed(), ms(5));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_joined_failing_child_gives_the_same_error_to_join_and_to_the_parent() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = fuseau::spawn(|| {
            fuseau::yield_now()?;
            Err::<u32, _>(Error::new(ErrorKind::Closed, "pipe"))
        });
        let e = child.join().unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Closed, "pipe"));
        // The parent was cancelled with the same error: sticky.
        let again = fuseau::yield_now().unwrap_err();
        assert!(again.ptr_eq(&e));
        Ok(())
    });
    let e = result.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Closed, "pipe"));
}

#[test]
#[cfg_attr(miri, ignore)]
fn failure_propagates_through_every_ancestor() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = fuseau::spawn(|| {
            let grandchild = fuseau::spawn(|| {
                fuseau::spawn(|| -> fuseau::Result<()> {
                    fuseau::sleep(ms(1))?;
                    Err(Error::new(ErrorKind::Io, "deep"))
                });
                fuseau::sleep(HOUR)
            });
            grandchild.join()
        });
        child.join()
    });
    let e = result.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Io, "deep"));
    assert_eq!(sim.elapsed(), ms(1));
}

#[test]
#[cfg_attr(miri, ignore)]
fn propagate_cancel_to_parent_false_keeps_the_failure_for_the_joiner() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let result = sim.block_on(move || {
        let child = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(|| Err::<(), _>(Error::from("bad input")));
        fuseau::sleep(ms(10))?;
        l.push("parent slept");
        assert!(child.is_done());
        let e = child.join().unwrap_err();
        assert_eq!(e.message(), "bad input");
        fuseau::yield_now()?;
        Ok(42)
    });
    assert_eq!(result.unwrap(), 42);
    assert_eq!(log.take(), ["parent slept"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_child_failing_after_the_parent_body_returned_fails_the_parent() {
    let sim = Sim::new();
    let parent = sim.spawn(|| {
        fuseau::spawn(|| {
            fuseau::sleep(ms(10))?;
            Err::<(), _>(Error::from("late"))
        });
        Ok(1)
    });
    sim.run_until_idle();
    assert!(!parent.is_done());
    sim.run_until(|| parent.is_done());
    assert_eq!(parent.join().unwrap_err().message(), "late");
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_as_child_of_attaches_to_the_given_fiber() {
    let sim = Sim::new();
    let adopter_slot: Slot<AnyFiber> = Slot::new();
    let a = adopter_slot.clone();
    let adopter = sim.spawn(move || {
        a.put(AnyFiber::current());
        fuseau::sleep(HOUR)
    });
    sim.run_until_idle();
    let adopter_any = adopter_slot.take();
    let spawner = sim.spawn(move || {
        let adopted = fuseau::spawn_as_child_of(&adopter_any, || {
            fuseau::sleep(ms(10))?;
            Err::<(), _>(Error::from("adopted child failed"))
        });
        // The spawner is not the parent: it does not wait for the child.
        Ok(adopted)
    });
    sim.run_until_idle();
    assert!(
        spawner.is_done(),
        "the spawner does not wait for the adopted child"
    );
    let adopted = spawner.join().unwrap();
    assert!(!adopted.is_done());
    sim.run_until(|| adopter.is_done());
    assert_eq!(
        adopted.join().unwrap_err().message(),
        "adopted child failed"
    );
    // The failure went to the adopter, not to the spawner.
    assert_eq!(
        adopter.join().unwrap_err().message(),
        "adopted child failed"
    );
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_as_child_of_is_cancelled_with_the_adopter() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let adopter = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(|| fuseau::sleep(HOUR));
        let adopted = Builder::new()
            .name("adopted")
            .spawn_as_child_of(&adopter, || fuseau::sleep(HOUR));
        fuseau::yield_now()?;
        adopter.cancel();
        assert!(adopted.is_cancelled());
        assert!(adopted.join().unwrap_err().is_cancelled());
        assert!(adopter.join().unwrap_err().is_cancelled());
        Ok(())
    });
    result.unwrap();
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
#[should_panic(expected = "fuseau::spawn_as_child_of")]
fn spawn_as_child_of_a_done_fiber_panics() {
    let sim = Sim::new();
    let done = sim.spawn(|| Ok(()));
    sim.run_until_idle();
    assert!(done.is_done());
    let _ = fuseau::spawn_as_child_of(&done, || Ok(()));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_child_spawned_by_a_cancelled_fiber_never_runs_its_body() {
    let sim = Sim::new();
    let ran = Rc::new(Cell::new(false));
    let dropped = Counter::new();
    let (r, d) = (ran.clone(), dropped.clone());
    let result = sim.block_on(move || {
        let parent = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let guard = d.guard();
                let child = fuseau::spawn(move || {
                    let _guard = guard;
                    r.set(true);
                    Ok(())
                });
                assert!(child.is_cancelled(), "born cancelled");
                Ok(child)
            });
        // Cancelled by a handle (its own), the parent still returned Ok.
        let child = parent.join()?;
        assert!(child.is_done());
        assert!(child.join().unwrap_err().is_cancelled());
        Ok(())
    });
    result.unwrap();
    assert!(!ran.get());
    assert_eq!(dropped.get(), 1, "the body was dropped without running");
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_a_child_by_handle_does_not_fail_the_parent() {
    let sim = Sim::new();
    let grandchild_slot: Slot<Fiber<()>> = Slot::new();
    let gs = grandchild_slot.clone();
    let result = sim.block_on(move || {
        let child = fuseau::spawn(move || {
            gs.put(fuseau::spawn(|| fuseau::sleep(HOUR)));
            fuseau::sleep(HOUR)
        });
        fuseau::yield_now()?;
        child.cancel();
        child.cancel(); // twice: nothing more happens
        let e = child.join().unwrap_err();
        assert!(e.is_cancelled());
        // The parent is not cancelled: its suspension points still work.
        fuseau::yield_now()?;
        fuseau::sleep(ms(3))?;
        assert!(!AnyFiber::current().is_cancelled());
        Ok("parent fine")
    });
    assert_eq!(result.unwrap(), "parent fine");
    let grandchild = grandchild_slot.take();
    assert!(grandchild.is_cancelled());
    assert!(grandchild.join().unwrap_err().is_cancelled());
    assert_eq!(sim.elapsed(), ms(3));
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_a_done_fiber_does_nothing() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = fuseau::spawn(|| Ok(5));
        fuseau::yield_now()?;
        assert!(child.is_done());
        child.cancel();
        assert!(!child.is_cancelled());
        child.join()
    });
    assert_eq!(result.unwrap(), 5);
}

/// Builds a chain of `depth` nested fibers whose bodies return at once
/// (they hold no stack), with a sleeper at the bottom, then cancels the root.
#[test]
#[cfg_attr(miri, ignore)]
fn a_deep_chain_of_finishing_fibers_is_cancelled_without_overflow() {
    const DEPTH: usize = 10_000;
    fn nest(depth: usize, bodies: Counter) -> fuseau::Result<()> {
        bodies.incr();
        if depth == 0 {
            return fuseau::sleep(HOUR);
        }
        fuseau::spawn(move || nest(depth - 1, bodies));
        Ok(())
    }
    let sim = Sim::new();
    let bodies = Counter::new();
    let b = bodies.clone();
    let root = sim.spawn(move || nest(DEPTH, b));
    sim.run_until_idle();
    assert_eq!(bodies.get(), DEPTH + 1);
    assert_eq!(sim.sched.n_fibers(), DEPTH + 1);
    assert!(!root.is_done());
    root.cancel();
    sim.run_until(|| root.is_done());
    assert_eq!(sim.sched.n_fibers(), 0);
    assert_eq!(sim.elapsed(), ms(0));
    // The root's body had returned Ok before the cancellation; only the
    // cancellation of its descendants followed, which does not fail it.
    assert!(root.is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_failure_at_the_bottom_of_a_deep_chain_reaches_the_root() {
    const DEPTH: usize = 10_000;
    fn nest(depth: usize) -> fuseau::Result<()> {
        if depth == 0 {
            fuseau::sleep(ms(1))?;
            return Err(Error::from("bottom"));
        }
        fuseau::spawn(move || nest(depth - 1));
        Ok(())
    }
    let sim = Sim::new();
    let root = sim.spawn(|| nest(DEPTH));
    sim.run_until(|| root.is_done());
    assert_eq!(root.join().unwrap_err().message(), "bottom");
    assert_eq!(sim.sched.n_fibers(), 0);
}

/// A chain of fibers each suspended in `join` on its child: cancelling the
/// root wakes them all, and unwinding the chain does not recurse.
#[test]
#[cfg_attr(miri, ignore)]
fn a_deep_chain_of_joining_fibers_is_cancelled_and_completes() {
    const DEPTH: usize = 10_000;
    fn nest(depth: usize, guards: Counter) -> fuseau::Result<()> {
        let _guard = guards.guard();
        if depth == 0 {
            return fuseau::sleep(HOUR);
        }
        let g = guards.clone();
        fuseau::spawn(move || nest(depth - 1, g)).join()
    }
    let sim = Sim::new();
    let guards = Counter::new();
    let g = guards.clone();
    let root = sim.spawn(move || nest(DEPTH, g));
    sim.run_until_idle();
    assert_eq!(sim.sched.n_fibers(), DEPTH + 1);
    root.cancel();
    sim.run_until(|| root.is_done());
    assert!(root.join().unwrap_err().is_cancelled());
    assert_eq!(guards.get(), DEPTH + 1);
    assert_eq!(sim.sched.n_fibers(), 0);
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_as_child_of_a_fiber_that_has_not_run_yet() {
    let sim = Sim::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let adopter = sim.spawn(move || {
        r.set(true);
        Ok(())
    });
    // Adopted from outside any fiber, before the adopter ran: the adopter
    // runs first (FIFO), returns, then waits for the child and takes its
    // failure.
    let child = Builder::new().spawn_as_child_of(&adopter, || {
        fuseau::yield_now()?;
        Err::<(), _>(Error::from("adopted failure"))
    });
    assert!(!ran.get());
    sim.run_until_idle();
    assert!(ran.get());
    assert_eq!(child.join().unwrap_err().message(), "adopted failure");
    assert_eq!(adopter.join().unwrap_err().message(), "adopted failure");
}
