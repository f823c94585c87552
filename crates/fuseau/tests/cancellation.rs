//! Cancellation at every suspension point (`join`, `sleep`, `yield_now`):
//! before the call, while suspended, after success; stickiness; deadlines;
//! cancel callbacks.

mod common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use common::{ms, Log, Sim, Slot, HOUR};
use fuseau::{AnyFiber, Builder, Error, ErrorKind, Fiber, Iteration};

fn cancel_self() {
    AnyFiber::current().cancel();
}

// ---------------------------------------------------------------- join

#[test]
#[cfg_attr(miri, ignore)]
fn join_when_cancelled_before_the_call_fails_at_once() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        // Not a child of the joiner: it keeps running.
        let target = Builder::new().spawn(|| fuseau::sleep(ms(10)).map(|()| "target"));
        let target_any = target.any();
        let joiner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                cancel_self();
                let e = target.join().unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Cancelled);
                Ok(fuseau::time::now())
            });
        let start = fuseau::time::now();
        let joined_at = joiner.join()?;
        assert_eq!(joined_at, start, "the join returned without waiting");
        assert!(!target_any.is_done());
        assert!(!target_any.is_cancelled(), "the joined fiber keeps running");
        fuseau::sleep(ms(10))?;
        assert!(target_any.is_done());
        Ok(())
    });
    result.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_when_cancelled_while_waiting_returns_promptly() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let result = sim.block_on(move || {
        let target = fuseau::spawn(|| fuseau::sleep(HOUR));
        let target_any = target.any();
        let joiner = fuseau::spawn(move || {
            let r = target.join();
            l.push(format!(
                "join returned {:?}",
                r.as_ref().map_err(Error::kind)
            ));
            r
        });
        fuseau::yield_now()?; // the joiner waits now
        joiner.cancel();
        assert_eq!(joiner.join().unwrap_err().kind(), ErrorKind::Cancelled);
        assert!(
            !target_any.is_done(),
            "the target is not the joiner's child"
        );
        target_any.cancel();
        Ok(())
    });
    result.unwrap();
    assert_eq!(log.take(), ["join returned Err(Cancelled)"]);
    assert_eq!(
        sim.elapsed(),
        ms(0),
        "woken by the cancellation, not a timer"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_cancelled_while_waiting_on_its_own_child_cancels_the_child() {
    let sim = Sim::new();
    let child_slot: Slot<AnyFiber> = Slot::new();
    let cs = child_slot.clone();
    let parent = sim.spawn(move || {
        let child = fuseau::spawn(|| fuseau::sleep(HOUR));
        cs.put(child.any());
        child.join()
    });
    sim.run_until_idle();
    parent.cancel();
    let child = child_slot.take();
    assert!(child.is_cancelled());
    sim.run_until(|| parent.is_done());
    assert!(child.is_done());
    assert!(parent.join().unwrap_err().is_cancelled());
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_cancelled_after_the_target_finished_returns_the_value() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let result = sim.block_on(move || {
        let target = fuseau::spawn(|| {
            fuseau::yield_now()?;
            Ok(42)
        });
        let lj = l.clone();
        let joiner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let v = target.join();
                lj.push(format!("join -> {v:?}"));
                let after = fuseau::yield_now();
                lj.push(format!("yield -> {:?}", after.map_err(|e| e.kind())));
                v
            });
        let joiner_any = joiner.any();
        let lk = l.clone();
        // Queue (after main suspends): target, joiner, canceller. The target
        // yields, the joiner waits, the canceller yields; the target
        // finishes and wakes the joiner; the canceller then cancels the
        // joiner, which is already queued with its join complete.
        let canceller = fuseau::spawn(move || {
            fuseau::yield_now()?;
            lk.push("cancel joiner");
            joiner_any.cancel();
            Ok(())
        });
        canceller.join()?;
        let v = joiner.join()?;
        Ok(v)
    });
    // The join succeeded: the cancellation came after the target finished.
    // Its result is what `joiner.join()` gives here.
    assert_eq!(result.unwrap(), 42);
    assert_eq!(
        log.take(),
        ["cancel joiner", "join -> Ok(42)", "yield -> Err(Cancelled)"]
    );
}

// ---------------------------------------------------------------- sleep

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_when_cancelled_before_the_call_fails_at_once() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        cancel_self();
        let e = fuseau::sleep(HOUR).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        Ok(())
    });
    // It returned Ok, but it was cancelled by a handle: no failure.
    result.unwrap();
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_when_cancelled_while_sleeping_wakes_at_once() {
    let sim = Sim::new();
    let sleeper = sim.spawn(|| fuseau::sleep(HOUR));
    sim.run_until_idle();
    assert_eq!(sim.elapsed(), ms(0));
    sleeper.cancel();
    // One iteration is enough: the sleeper was queued by the cancellation.
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle { deadline: None },
        "the sleep's timer was disarmed"
    );
    assert!(sleeper.is_done());
    assert_eq!(sleeper.join().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(sim.elapsed(), ms(0), "the clock did not move");
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleep_whose_timer_fired_before_the_cancellation_succeeds() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let result = sim.block_on(move || {
        let lc = l.clone();
        let ls = l.clone();
        let slot: Slot<AnyFiber> = Slot::new();
        let s = slot.clone();
        // Armed first, fires first: it cancels the sleeper, whose own timer
        // (same deadline, armed second) has fired too but which has not run.
        let canceller = fuseau::spawn(move || {
            fuseau::sleep(ms(10))?;
            lc.push("cancel sleeper");
            s.take().cancel();
            Ok(())
        });
        let sleeper = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let r = fuseau::sleep(ms(10));
                ls.push(format!("sleep -> {:?}", r.as_ref().map_err(Error::kind)));
                let after = fuseau::sleep(ms(10));
                ls.push(format!("sleep again -> {:?}", after.map_err(|e| e.kind())));
                r
            });
        slot.put(sleeper.any());
        canceller.join()?;
        sleeper.join()
    });
    result.unwrap();
    assert_eq!(
        log.take(),
        [
            "cancel sleeper",
            "sleep -> Ok(())",
            "sleep again -> Err(Cancelled)"
        ]
    );
    assert_eq!(sim.elapsed(), ms(10));
}

// ---------------------------------------------------------------- yield_now

#[test]
#[cfg_attr(miri, ignore)]
fn yield_when_cancelled_before_the_call_fails() {
    let sim = Sim::new();
    sim.block_on(|| {
        cancel_self();
        assert_eq!(
            fuseau::yield_now().unwrap_err().kind(),
            ErrorKind::Cancelled
        );
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn yield_when_cancelled_while_waiting_for_its_turn_fails() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let slot: Slot<AnyFiber> = Slot::new();
        let s = slot.clone();
        let la = l.clone();
        let a = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                la.push("A yields");
                let r = fuseau::yield_now();
                la.push(format!("A yield -> {:?}", r.as_ref().map_err(Error::kind)));
                r
            });
        s.put(a.any());
        let lb = l.clone();
        let slot_b = slot.clone();
        let b = fuseau::spawn(move || {
            lb.push("B cancels A");
            slot_b.take().cancel();
            Ok(())
        });
        b.join()?;
        assert!(a.join().unwrap_err().is_cancelled());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["A yields", "B cancels A", "A yield -> Err(Cancelled)"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancellation_after_a_successful_yield_fails_the_next_suspension_point() {
    let sim = Sim::new();
    sim.block_on(|| {
        fuseau::yield_now()?;
        cancel_self();
        let errors = [
            fuseau::yield_now().unwrap_err(),
            fuseau::sleep(ms(1)).unwrap_err(),
            fuseau::spawn(|| Ok(())).join().unwrap_err(),
            fuseau::yield_now().unwrap_err(),
        ];
        for e in &errors {
            assert_eq!(e.kind(), ErrorKind::Cancelled);
            assert!(e.ptr_eq(&errors[0]), "always the same error");
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancellation_is_not_delivered_between_suspension_points() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let me = AnyFiber::current();
        me.cancel();
        // Plain code keeps running: nothing is unwound.
        let mut total = 0u64;
        for i in 0..1000 {
            total += i;
        }
        assert!(me.is_cancelled());
        Ok(total)
    });
    assert_eq!(result.unwrap(), 499_500);
}

// ---------------------------------------------------------------- cancel_after

#[test]
#[cfg_attr(miri, ignore)]
fn cancel_after_times_out_a_sleep_at_the_deadline() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        fuseau::cancel_after(ms(25))?;
        fuseau::sleep(HOUR)
    });
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.is_timeout() && e.is_cancellation());
    assert_eq!(sim.elapsed(), ms(25));
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_earliest_deadline_wins() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        fuseau::cancel_after(ms(30))?;
        fuseau::cancel_after(ms(5))?;
        fuseau::cancel_after(ms(20))?;
        fuseau::sleep(HOUR)
    });
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(sim.elapsed(), ms(5));
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_first_cancellation_wins() {
    let sim = Sim::new();
    // A handle cancellation before the deadline: Cancelled, for good.
    let stop = Rc::new(Cell::new(false));
    let st = stop.clone();
    let early = sim.spawn(move || {
        fuseau::cancel_after(ms(10))?;
        let first = fuseau::sleep(HOUR).unwrap_err();
        // Stay alive (ignoring the cancellation) while the deadline passes.
        while !st.get() {
            let again = fuseau::yield_now().unwrap_err();
            assert!(again.ptr_eq(&first));
        }
        Err::<(), _>(first)
    });
    sim.run_until_idle();
    early.cancel();
    for _ in 0..3 {
        assert_eq!(sim.sched.run_iteration(), Iteration::Busy);
    }
    sim.advance(ms(20));
    for _ in 0..3 {
        assert_eq!(sim.sched.run_iteration(), Iteration::Busy);
    }
    stop.set(true);
    sim.run_until(|| early.is_done());
    assert_eq!(early.join().unwrap_err().kind(), ErrorKind::Cancelled);

    // A deadline before a handle cancellation: Timeout, for good.
    let sim = Sim::new();
    let late = sim.spawn(|| {
        fuseau::cancel_after(ms(10))?;
        let first = fuseau::sleep(HOUR).unwrap_err();
        AnyFiber::current().cancel();
        let second = fuseau::yield_now().unwrap_err();
        assert!(second.ptr_eq(&first));
        Err::<(), _>(second)
    });
    sim.run_until(|| late.is_done());
    assert_eq!(late.join().unwrap_err().kind(), ErrorKind::Timeout);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_deadline_is_disarmed_when_the_fiber_is_done() {
    let sim = Sim::new();
    let f = sim.spawn(|| {
        fuseau::cancel_after(HOUR)?;
        fuseau::sleep(ms(1))
    });
    sim.run_until(|| f.is_done());
    f.join().unwrap();
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle { deadline: None },
        "no timer is left behind"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_deadline_cancels_the_children_with_timeout() {
    let sim = Sim::new();
    let child_slot: Slot<Fiber<()>> = Slot::new();
    let cs = child_slot.clone();
    let result = sim.block_on(move || {
        fuseau::cancel_after(ms(7))?;
        let child = fuseau::spawn(|| fuseau::sleep(HOUR));
        cs.put(child);
        fuseau::sleep(HOUR)
    });
    assert!(result.unwrap_err().is_timeout());
    let child_error = child_slot.take().join().unwrap_err();
    assert_eq!(child_error.kind(), ErrorKind::Timeout);
    assert_eq!(sim.elapsed(), ms(7));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_child_that_times_out_fails_its_parent_with_timeout() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        fuseau::spawn(|| {
            fuseau::cancel_after(ms(3))?;
            fuseau::sleep(HOUR)
        });
        fuseau::sleep(HOUR)
    });
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(sim.elapsed(), ms(3));
}

// ---------------------------------------------------------------- callbacks

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancel_callback_runs_once_at_the_moment_of_cancellation() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let lc = l.clone();
        let child = fuseau::spawn(move || {
            let lcb = lc.clone();
            let r = fuseau::with_cancel_callback(
                move |e| lcb.push(format!("callback {:?}", e.kind())),
                || fuseau::sleep(HOUR),
            );
            lc.push("scope returned");
            r
        });
        fuseau::yield_now()?;
        l.push("cancelling");
        child.cancel();
        l.push("cancel returned");
        child.cancel();
        let _ = child.join();
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "cancelling",
            "callback Cancelled",
            "cancel returned",
            "scope returned"
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancel_callback_is_removed_when_its_scope_ends() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let lc = l.clone();
        let child = fuseau::spawn(move || {
            let lcb = lc.clone();
            fuseau::with_cancel_callback(
                move |_| lcb.push("stale callback"),
                || Ok::<(), Error>(()),
            )?;
            // And when the scope unwinds.
            let lcb = lc.clone();
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                fuseau::with_cancel_callback(
                    move |_| lcb.push("unwound callback"),
                    || panic!("scope unwinds"),
                )
            }));
            assert!(unwound.is_err());
            lc.push("scope over");
            fuseau::sleep(HOUR)
        });
        fuseau::yield_now()?;
        child.cancel();
        assert!(child.join().unwrap_err().is_cancelled());
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["scope over"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancel_callbacks_nest_innermost_first() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let result = sim.block_on(move || {
        let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
        fuseau::cancel_after(ms(1))?;
        fuseau::with_cancel_callback(
            move |e| l1.push(format!("outer {:?}", e.kind())),
            || {
                fuseau::with_cancel_callback(
                    move |_| l2.push("middle"),
                    || {
                        fuseau::with_cancel_callback(
                            move |_| l3.push("inner"),
                            || fuseau::sleep(HOUR),
                        )
                    },
                )
            },
        )
    });
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(log.take(), ["inner", "middle", "outer Timeout"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancel_callback_runs_at_once_if_already_cancelled() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        cancel_self();
        let (lc, lf) = (l.clone(), l.clone());
        fuseau::with_cancel_callback(
            move |e| lc.push(format!("callback {:?}", e.kind())),
            move || lf.push("scope body"),
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["callback Cancelled", "scope body"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancel_callback_sees_the_parents_failure_as_a_cancellation() {
    let sim = Sim::new();
    let seen: Slot<Error> = Slot::new();
    let s = seen.clone();
    let result = sim.block_on(move || {
        fuseau::spawn(move || {
            fuseau::with_cancel_callback(move |e| s.put(e.clone()), || fuseau::sleep(HOUR))
        });
        fuseau::yield_now()?;
        Err::<(), _>(Error::from("parent failed"))
    });
    assert_eq!(result.unwrap_err().message(), "parent failed");
    let e = seen.take();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(
        std::error::Error::source(&e).unwrap().to_string(),
        "parent failed"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_cancel_callback_fails_its_fiber() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            fuseau::with_cancel_callback(|_| panic!("callback exploded"), || fuseau::sleep(HOUR))
        });
        fuseau::yield_now()?;
        child.cancel(); // the panic is caught: the canceller is unharmed
        let e = child.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.message(), "callback exploded");
        fuseau::yield_now()?;
        Ok(())
    });
    result.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleeping_for_ever_can_be_cancelled() {
    let sim = Sim::new();
    let f = sim.spawn(|| fuseau::sleep(std::time::Duration::MAX));
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle { deadline: None },
        "no representable deadline: no timer"
    );
    f.cancel();
    sim.run_until(|| f.is_done());
    assert!(f.join().unwrap_err().is_cancelled());
    // A deadline too far to represent never fires either.
    let sim = Sim::new();
    let result = sim.block_on(|| {
        fuseau::cancel_after(std::time::Duration::MAX)?;
        fuseau::sleep(ms(1))?;
        Ok("no timeout")
    });
    assert_eq!(result.unwrap(), "no timeout");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_zero_deadline_interrupts_a_yielding_loop() {
    let sim = Sim::new();
    let result = sim.block_on(|| -> fuseau::Result<()> {
        fuseau::cancel_after(std::time::Duration::ZERO)?;
        let mut spins = 0u64;
        loop {
            fuseau::yield_now()?;
            spins += 1;
            assert!(spins < 1_000_000, "the deadline never fired");
        }
    });
    assert!(result.unwrap_err().is_timeout());
}
