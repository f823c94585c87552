//! Fiber-local storage: one value per fiber.

mod common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use common::{Counter, Guard, Log, Sim};
use fuseau::{AnyFiber, FiberId, FiberLocal};

thread_local! {
    /// How many times `counted_init` ran on this thread (each test runs on
    /// its own thread).
    static INIT_CALLS: Cell<usize> = const { Cell::new(0) };
}

fn counted_init() -> u32 {
    INIT_CALLS.with(|c| c.set(c.get() + 1));
    100
}

static COUNTED: FiberLocal<u32> = FiberLocal::new(counted_init);
static NUMBER: FiberLocal<u32> = FiberLocal::new(|| 0);
static NAME: FiberLocal<String> = FiberLocal::new(|| String::from("anonymous"));
static GUARD: FiberLocal<Option<Rc<Guard>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn each_fiber_has_its_own_value() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let fibers: Vec<_> = (1..=3u32)
            .map(|i| {
                let l = l.clone();
                fuseau::spawn(move || {
                    NUMBER.set(i);
                    NAME.set(format!("fiber {i}"));
                    fuseau::yield_now()?;
                    l.push(format!("{} has {}", NAME.get(), NUMBER.get()));
                    NUMBER.set(NUMBER.get() * 10);
                    fuseau::yield_now()?;
                    Ok(NUMBER.get())
                })
            })
            .collect();
        let values = fibers
            .into_iter()
            .map(|f| f.join())
            .collect::<fuseau::Result<Vec<_>>>()?;
        assert_eq!(values, [10, 20, 30]);
        assert_eq!(NUMBER.get(), 0, "the main fiber's own value");
        assert_eq!(NAME.get(), "anonymous");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["fiber 1 has 1", "fiber 2 has 2", "fiber 3 has 3"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn init_runs_on_first_use_once_per_fiber() {
    let sim = Sim::new();
    sim.block_on(|| {
        assert_eq!(INIT_CALLS.with(Cell::get), 0);
        assert_eq!(COUNTED.get(), 100);
        assert_eq!(COUNTED.get(), 100);
        assert_eq!(INIT_CALLS.with(Cell::get), 1, "once in this fiber");
        fuseau::spawn(|| Ok(COUNTED.get())).join()?;
        assert_eq!(INIT_CALLS.with(Cell::get), 2, "once more in the child");
        fuseau::spawn(|| Ok(())).join()?;
        assert_eq!(
            INIT_CALLS.with(Cell::get),
            2,
            "not in a fiber that never uses it"
        );
        fuseau::spawn(|| {
            COUNTED.set(5);
            Ok(COUNTED.get())
        })
        .join()?;
        assert_eq!(INIT_CALLS.with(Cell::get), 2, "not when set before use");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn values_are_not_inherited_by_children() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        NUMBER.set(7);
        let child = fuseau::spawn(|| {
            let seen = NUMBER.get();
            NUMBER.set(8);
            Ok(seen)
        });
        assert_eq!(child.join()?, 0);
        Ok(NUMBER.get())
    });
    assert_eq!(result.unwrap(), 7, "the child's set did not leak either");
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_value_sets_for_a_scope_and_restores() {
    let sim = Sim::new();
    sim.block_on(|| {
        NUMBER.set(1);
        let inner = NUMBER.with_value(2, || {
            let nested = NUMBER.with_value(3, || NUMBER.get());
            assert_eq!(nested, 3);
            // Suspending inside the scope keeps the value.
            fuseau::yield_now().unwrap();
            NUMBER.get()
        });
        assert_eq!(inner, 2);
        assert_eq!(NUMBER.get(), 1);
        // Restored on panic too.
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            NUMBER.with_value(9, || panic!("inside with_value"))
        }));
        assert!(unwound.is_err());
        assert_eq!(NUMBER.get(), 1);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_value_on_an_unset_key_restores_the_initial_state() {
    let sim = Sim::new();
    sim.block_on(|| {
        let inside = COUNTED.with_value(1, || COUNTED.get());
        assert_eq!(inside, 1);
        assert_eq!(INIT_CALLS.with(Cell::get), 0);
        // Unset again: the first real use runs init.
        assert_eq!(COUNTED.get(), 100);
        assert_eq!(INIT_CALLS.with(Cell::get), 1);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn values_are_dropped_when_the_body_returns() {
    let sim = Sim::new();
    let dropped = Counter::new();
    let d = dropped.clone();
    sim.block_on(move || {
        for outcome in 0..3 {
            let before = d.get();
            let g = d.guard();
            let child = fuseau::Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(move || -> fuseau::Result<()> {
                    GUARD.set(Some(Rc::new(g)));
                    match outcome {
                        0 => Ok(()),
                        1 => Err(fuseau::Error::from("failed")),
                        _ => panic!("panicked"),
                    }
                });
            let waiter = fuseau::spawn(fuseau::yield_now);
            waiter.join()?;
            // The child's body returned: its value is gone, although the
            // handle to the child is still alive.
            assert!(child.is_done());
            assert_eq!(d.get(), before + 1, "outcome {outcome}");
            let _ = child.join();
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(dropped.get(), 3);
}

thread_local! {
    static DROPPED_IN: Cell<Option<FiberId>> = const { Cell::new(None) };
}

struct RecordsItsFiber;

impl Drop for RecordsItsFiber {
    fn drop(&mut self) {
        let fiber = AnyFiber::try_current().expect("dropped on the fiber");
        DROPPED_IN.with(|d| d.set(Some(fiber.id())));
    }
}

static RECORDER: FiberLocal<Option<Rc<RecordsItsFiber>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn values_are_dropped_on_their_own_fiber() {
    let sim = Sim::new();
    sim.block_on(|| {
        let child = fuseau::spawn(|| {
            RECORDER.set(Some(Rc::new(RecordsItsFiber)));
            Ok(AnyFiber::current().id())
        });
        let id = child.join()?;
        assert_eq!(DROPPED_IN.with(Cell::get), Some(id));
        Ok(())
    })
    .unwrap();
}

static DERIVED: FiberLocal<u32> = FiberLocal::new(|| NUMBER.get() + 1);

#[test]
#[cfg_attr(miri, ignore)]
fn init_may_use_other_fiber_locals() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        NUMBER.set(41);
        Ok(DERIVED.get())
    });
    assert_eq!(result.unwrap(), 42);
}

#[test]
fn debug_does_not_need_a_fiber() {
    let text = format!("{NUMBER:?}");
    assert!(text.starts_with("FiberLocal"), "{text}");
}
