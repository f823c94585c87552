//! Panics are caught at the fiber boundary, become `ErrorKind::Panicked`,
//! propagate like errors, and never unwind through the scheduler.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{ms, Counter, Sim, HOUR};
use fuseau::{Builder, ErrorKind, FiberLocal};

/// Panics when dropped (unless the thread is already panicking).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_becomes_a_panicked_error_with_its_message() {
    let result = fuseau::block_on(|| -> fuseau::Result<()> { panic!("boom {}", 7) });
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.is_panic());
    assert_eq!(e.message(), "boom 7");
    assert_eq!(e.to_string(), "panicked: boom 7");

    let e = fuseau::block_on(|| -> fuseau::Result<()> { panic!("static str") }).unwrap_err();
    assert_eq!(e.message(), "static str");

    let e =
        fuseau::block_on(|| -> fuseau::Result<()> { std::panic::panic_any(42u32) }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "Box<dyn Any>");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_never_escapes_block_on() {
    let outcome = catch_unwind(|| {
        fuseau::block_on(|| {
            fuseau::spawn(|| -> fuseau::Result<()> { panic!("child") });
            fuseau::sleep(HOUR)
        })
    });
    let result = outcome.expect("block_on did not unwind");
    assert_eq!(result.unwrap_err().message(), "child");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_grandchild_panic_propagates_to_the_main_fiber() {
    let sim = Sim::new();
    let unwound = Counter::new();
    let u = unwound.clone();
    let result = sim.block_on(move || {
        let u2 = u.clone();
        let child = fuseau::spawn(move || {
            let _guard = u2.guard();
            fuseau::spawn(|| -> fuseau::Result<()> {
                fuseau::sleep(ms(2))?;
                panic!("deep boom")
            });
            fuseau::sleep(HOUR)
        });
        let _guard = u.guard();
        child.join()
    });
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "deep boom");
    assert_eq!(
        unwound.get(),
        2,
        "both ancestors returned and dropped their guards"
    );
    assert_eq!(sim.elapsed(), ms(2));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_with_propagation_off_only_reaches_the_joiner() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(|| -> fuseau::Result<()> { panic!("contained") });
        let e = child.join().unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Panicked, "contained"));
        fuseau::yield_now()?;
        Ok("survived")
    });
    assert_eq!(result.unwrap(), "survived");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_never_escapes_run_iteration() {
    let sim = Sim::new();
    let fibers: Vec<_> = (0..10)
        .map(|i| {
            sim.spawn(move || -> fuseau::Result<()> {
                if i % 2 == 0 {
                    fuseau::yield_now()?;
                }
                panic!("fiber {i}")
            })
        })
        .collect();
    let outcome = catch_unwind(AssertUnwindSafe(|| sim.run_until_idle()));
    assert!(outcome.is_ok(), "run_iteration did not unwind");
    for (i, f) in fibers.into_iter().enumerate() {
        assert_eq!(f.join().unwrap_err().message(), format!("fiber {i}"));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_micro_task_fails_the_fiber_that_scheduled_it() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let scheduler = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            fuseau::schedule_micro_task(|| panic!("micro-task exploded"))?;
            // Woken by its failure, which is its cancellation error too.
            let e = fuseau::sleep(HOUR).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked);
            Ok(())
        });
        let e = scheduler.join().unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Panicked, "micro-task exploded")
        );
        Ok(())
    });
    result.unwrap();
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_micro_task_of_the_main_fiber_fails_block_on() {
    let result = fuseau::block_on(|| {
        fuseau::schedule_micro_task(|| panic!("micro"))?;
        fuseau::sleep(HOUR)
    });
    let e = result.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Panicked, "micro"));
}

static NOISY: FiberLocal<Option<std::rc::Rc<PanicOnDrop>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_in_the_drop_of_a_fiber_local_fails_the_fiber() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            NOISY.set(Some(std::rc::Rc::new(PanicOnDrop("local dropped"))));
            Ok(5)
        });
        let e = child.join().unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Panicked, "local dropped")
        );
        Ok(())
    });
    result.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_body_panic_wins_over_a_panic_in_a_fiber_local_drop() {
    let sim = Sim::new();
    let f = sim.spawn(|| -> fuseau::Result<()> {
        NOISY.set(Some(std::rc::Rc::new(PanicOnDrop("local dropped"))));
        panic!("body")
    });
    sim.run_until(|| f.is_done());
    assert_eq!(f.join().unwrap_err().message(), "body");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_dropping_the_body_of_a_fiber_that_never_ran_fails_it() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let noisy = PanicOnDrop("body dropped");
        let child = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let _noisy = &noisy;
                Ok(())
            });
        child.cancel();
        let e = child.join().unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (ErrorKind::Panicked, "body dropped")
        );
        Ok(())
    });
    result.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_dropping_a_body_whose_stack_cannot_be_had_is_caught() {
    let sim = Sim::new();
    let child = Builder::new()
        .propagate_cancel_to_parent(false)
        .stack_size(1 << 47)
        .spawn_on(&sim.sched, {
            let noisy = PanicOnDrop("body dropped");
            move || {
                let _noisy = &noisy;
                Ok(())
            }
        })
        .unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| sim.run_until_idle()));
    assert!(outcome.is_ok(), "run_iteration did not unwind");
    let e = child.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "body dropped");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_dropping_an_unjoined_result_does_not_escape_run_iteration() {
    let sim = Sim::new();
    let f = sim.spawn(|| Ok(PanicOnDrop("result dropped")));
    drop(f); // nobody will ever join it
    let outcome = catch_unwind(AssertUnwindSafe(|| sim.run_until_idle()));
    assert!(outcome.is_ok(), "run_iteration did not unwind");
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_may_catch_a_panic_itself() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let caught = catch_unwind(|| panic!("inner"));
        assert!(caught.is_err());
        fuseau::yield_now()?;
        Ok("caught")
    });
    assert_eq!(result.unwrap(), "caught");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_dropping_a_detached_result_fails_the_fiber_and_its_parent() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        drop(fuseau::spawn(|| {
            fuseau::yield_now()?;
            Ok(PanicOnDrop("detached result dropped"))
        }));
        fuseau::sleep(HOUR)
    });
    let e = result.unwrap_err();
    assert_eq!(
        (e.kind(), e.message()),
        (ErrorKind::Panicked, "detached result dropped")
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_result_of_a_fiber_is_dropped_with_its_last_reader() {
    let sim = Sim::new();
    let dropped = Counter::new();
    let d = dropped.clone();
    sim.block_on(move || {
        // Joined: the caller owns the value.
        let g = d.guard();
        let value = fuseau::spawn(move || Ok(g)).join()?;
        assert_eq!(d.get(), 0);
        drop(value);
        assert_eq!(d.get(), 1);
        // Handle dropped after the fiber finished: dropped with the handle.
        let g = d.guard();
        let done = fuseau::spawn(move || Ok(g));
        fuseau::yield_now()?;
        assert!(done.is_done());
        assert_eq!(d.get(), 1);
        drop(done);
        assert_eq!(d.get(), 2);
        // Handle dropped before: dropped as the body returns.
        let g = d.guard();
        let any = fuseau::spawn(move || Ok(g)).any();
        assert_eq!(d.get(), 2);
        fuseau::yield_now()?;
        assert!(any.is_done());
        assert_eq!(d.get(), 3);
        Ok(())
    })
    .unwrap();
}
