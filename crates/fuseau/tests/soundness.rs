//! Regression tests for the soundness holes of the old core (issue 9):
//! teardown under another fiber's identity, spawning while a disposal
//! unwinds, user code under a borrow.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::Sim;
use fuseau::{Builder, ErrorKind, FiberLocal, Scheduler};

const HOUR: Duration = Duration::from_secs(3600);

/// The scenario of the review: a scheduler with a custom event loop, one
/// of its fibers holding a non-owner `Scheduler::current()` handle while it
/// sleeps, and the last owner dropped inside a fiber of *another*
/// scheduler. The sleeping fiber must be cancelled and unwound as itself:
/// its `sleep` returns the cancellation, never `Ok`, and the outer fiber
/// goes on undisturbed.
#[test]
#[cfg_attr(miri, ignore)]
fn the_last_owner_dropped_inside_another_schedulers_fiber() {
    let inner = Sim::new();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s = seen.clone();
    let _sleeper = inner.spawn(move || {
        let me = Scheduler::current(); // not an owner
        let slept = fuseau::sleep(HOUR);
        s.borrow_mut().push(format!(
            "inner sleep: {:?}, in its own scheduler: {}",
            slept.as_ref().map_err(|e| e.kind()),
            !me.active()
        ));
        drop(me);
        slept
    });
    inner.run_until_idle();
    assert!(seen.borrow().is_empty(), "the inner fiber sleeps");
    let s = seen.clone();
    let outer = fuseau::block_on(move || {
        let outer_id = fuseau::AnyFiber::current().id();
        // The last owner of the inner scheduler goes, inside this fiber.
        drop(inner);
        // Still this fiber, still able to wait.
        assert_eq!(fuseau::AnyFiber::current().id(), outer_id);
        fuseau::sleep(Duration::from_millis(1))?;
        s.borrow_mut().push("outer went on".into());
        Ok(())
    });
    outer.unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            "inner sleep: Err(Cancelled), in its own scheduler: true",
            "outer went on"
        ]
    );
}

/// The same, with the inner fiber ignoring its cancellation, so that the
/// disposal force-unwinds its stack (still inside its own scheduler's
/// context).
#[test]
#[cfg_attr(miri, ignore)]
fn a_forced_unwind_from_another_schedulers_fiber_runs_as_the_unwound_fiber() {
    struct Witness(Rc<RefCell<Vec<String>>>);
    impl Drop for Witness {
        fn drop(&mut self) {
            let waited = fuseau::yield_now();
            self.0.borrow_mut().push(format!(
                "dropped in a fiber: {}, wait: {:?}",
                fuseau::in_fiber(),
                waited.map_err(|e| e.kind())
            ));
        }
    }
    let inner = Sim::new();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s = seen.clone();
    let _stubborn = inner.spawn(move || -> fuseau::Result<()> {
        let _witness = Witness(s);
        loop {
            let _ = fuseau::sleep(HOUR); // ignores its cancellation
        }
    });
    inner.run_until_idle();
    fuseau::block_on(move || {
        drop(inner);
        fuseau::yield_now()
    })
    .unwrap();
    // The destructor ran during the forced unwind, on the unwound fiber's
    // stack: it is in a fiber, and its wait fails at once (it unwinds).
    assert_eq!(
        *seen.borrow(),
        ["dropped in a fiber: true, wait: Err(Cancelled)"]
    );
}

/// A destructor that spawns cleanup work while the disposal force-unwinds
/// its fiber used to panic inside the unwind, which aborts the process.
#[test]
#[cfg_attr(miri, ignore)]
fn spawning_while_a_disposal_unwinds_gives_a_failed_fiber_not_an_abort() {
    struct SpawnsOnDrop(Rc<RefCell<Vec<fuseau::Fiber<&'static str>>>>);
    impl Drop for SpawnsOnDrop {
        fn drop(&mut self) {
            self.0.borrow_mut().push(fuseau::spawn(|| Ok("cleaned")));
        }
    }
    let sim = Sim::new();
    let spawned: Rc<RefCell<Vec<fuseau::Fiber<&'static str>>>> = Rc::default();
    let s = spawned.clone();
    let _stubborn = sim.spawn(move || -> fuseau::Result<()> {
        let _guard = SpawnsOnDrop(s);
        loop {
            let _ = fuseau::sleep(HOUR);
        }
    });
    sim.run_until_idle();
    sim.sched.dispose();
    let cleanup = spawned.borrow_mut().pop().expect("the destructor ran");
    assert!(cleanup.is_done());
    assert_eq!(cleanup.join().unwrap_err().kind(), ErrorKind::Inactive);
}

/// `try_spawn` in the same place reports the error it always did.
#[test]
#[cfg_attr(miri, ignore)]
fn try_spawn_on_a_disposed_scheduler_is_inactive() {
    let sim = Sim::new();
    let result = Rc::new(Cell::new(None));
    let r = result.clone();
    let _f = sim.spawn(move || {
        fuseau::Scheduler::current().dispose();
        r.set(Some(
            Builder::new()
                .try_spawn(|| Ok(()))
                .map(drop)
                .map_err(|e| e.kind()),
        ));
        Ok(())
    });
    sim.run_until_idle();
    assert_eq!(result.get(), Some(Err(ErrorKind::Inactive)));
}

/// A `Clone` (user code) that touches fiber-local storage while
/// `FiberLocal::get` clones a value: no borrow is held, so no panic.
#[test]
#[cfg_attr(miri, ignore)]
fn a_clone_may_use_fiber_locals() {
    static COUNT: FiberLocal<u32> = FiberLocal::new(|| 0);
    static VALUE: FiberLocal<Counted> = FiberLocal::new(|| Counted(0));
    struct Counted(u32);
    impl Clone for Counted {
        fn clone(&self) -> Counted {
            COUNT.set(COUNT.get() + 1);
            VALUE.set(Counted(self.0 + 100)); // replaces the value being cloned
            Counted(self.0)
        }
    }
    let (clones, first, second) = fuseau::block_on(|| {
        VALUE.set(Counted(1));
        let first = VALUE.get().0;
        let second = VALUE.get().0;
        Ok((COUNT.get(), first, second))
    })
    .unwrap();
    assert_eq!((clones, first, second), (2, 1, 101));
}

/// An `init` that uses fiber-local storage, including its own key.
#[test]
#[cfg_attr(miri, ignore)]
fn an_init_may_use_fiber_locals() {
    static OTHER: FiberLocal<u32> = FiberLocal::new(|| 7);
    static DERIVED: FiberLocal<u32> = FiberLocal::new(|| OTHER.get() * 6);
    let v = fuseau::block_on(|| Ok(DERIVED.get())).unwrap();
    assert_eq!(v, 42);
}
