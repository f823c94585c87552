//! `shield` and `shield_for`: cleanup that waits although the fiber is
//! cancelled, the held cancellation delivered after, time limits, nesting,
//! children, disposal and panics. Virtual time (`Sim`), ordered logs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{ms, Counter, Log, Sim, HOUR};
use fuseau::{shield, shield_for, Chan, ErrorKind, Result};

/// `"ok"` or the error's kind, for logs.
fn outcome<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// Cleanup that sleeps 10ms, then receives one value from `data`.
fn cleanup(log: &Log, data: &Chan<u32>) -> Result<u32> {
    fuseau::sleep(ms(10))?;
    log.push("slept");
    let v = data.recv()?;
    log.push(format!("received {v}"));
    Ok(v)
}

/// A root fiber that sends `v` on `data` at `at` of virtual time.
fn send_at(sim: &Sim, data: &Chan<u32>, at: std::time::Duration, v: u32) {
    let data = data.clone();
    sim.spawn(move || {
        fuseau::sleep(at)?;
        data.send(v)
    });
}

#[test]
fn cleanup_runs_in_a_fiber_cancelled_before_the_shield() {
    let sim = Sim::new();
    let log = Log::new();
    let (gate, data) = (Chan::<()>::new(), Chan::<u32>::bounded(0));
    let (l, g, d) = (log.clone(), gate.clone(), data.clone());
    let worker = sim.spawn(move || -> Result<()> {
        let e = g.recv().unwrap_err();
        l.push(format!("recv: {:?}", e.kind()));
        let v = shield(|| cleanup(&l, &d))?;
        l.push(format!("shield returned {v}"));
        let r = fuseau::yield_now();
        l.push(format!("yield after: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    worker.cancel();
    send_at(&sim, &data, ms(25), 7);
    sim.run_until(|| worker.is_done());
    let log = log.take();
    assert_eq!(log[0], "recv: Cancelled");
    assert_eq!(
        &log[1..],
        [
            "slept",
            "received 7",
            "shield returned 7",
            "yield after: Cancelled"
        ]
    );
    assert_eq!(sim.elapsed(), ms(25), "the cleanup really waited");
    assert!(worker.join().unwrap_err().is_cancelled());
}

#[test]
fn cleanup_runs_in_a_fiber_cancelled_during_the_shield() {
    let sim = Sim::new();
    let log = Log::new();
    let data = Chan::<u32>::bounded(0);
    let (l, d) = (log.clone(), data.clone());
    let worker = sim.spawn(move || -> Result<()> {
        let v = shield(|| cleanup(&l, &d))?;
        l.push(format!("shield returned {v}"));
        l.push("between: not a suspension point");
        let r = fuseau::checkpoint();
        l.push(format!("checkpoint after: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    // Cancelled while asleep in the shield: not woken.
    worker.cancel();
    assert!(worker.is_cancelled());
    sim.run_until_idle();
    assert!(log.snapshot().is_empty(), "woken by the cancellation");
    sim.advance(ms(10));
    sim.run_until_idle();
    assert_eq!(log.snapshot().len(), 1, "the sleep completed");
    // Cancelled again while receiving: still not woken.
    worker.cancel();
    sim.run_until_idle();
    assert_eq!(log.snapshot().len(), 1);
    send_at(&sim, &data, ms(5), 3);
    sim.run_until(|| worker.is_done());
    assert_eq!(
        &log.take()[1..],
        [
            "received 3",
            "shield returned 3",
            "between: not a suspension point",
            "checkpoint after: Cancelled"
        ]
    );
    assert!(worker.join().unwrap_err().is_cancelled());
}

#[test]
fn a_shield_without_cancellation_changes_nothing() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let v = shield(|| {
            fuseau::sleep(ms(3))?;
            fuseau::yield_now()?;
            Ok(5)
        })?;
        assert_eq!(v, 5);
        let e = shield(|| -> Result<()> { Err(fuseau::Error::new(ErrorKind::Other, "mine")) })
            .unwrap_err();
        assert_eq!(e.message(), "mine", "the body's error passes through");
        fuseau::yield_now()?;
        fuseau::sleep(ms(2))?;
        Ok(v)
    });
    assert_eq!(r.unwrap(), 5);
    assert_eq!(sim.elapsed(), ms(5));
}

#[test]
fn outside_a_fiber_shield_is_not_in_fiber_and_does_not_run() {
    let mut ran = false;
    let e = shield(|| {
        ran = true;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    let e = shield_for(ms(1), || {
        ran = true;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(!ran);
}

#[test]
fn nested_shields_hold_until_the_outermost_ends() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        shield(|| {
            shield(|| {
                fuseau::sleep(ms(10))?;
                l.push("inner slept");
                Ok(())
            })?;
            l.push("inner ended");
            let r = fuseau::sleep(ms(10));
            l.push(format!("outer sleep: {}", outcome(&r)));
            r
        })?;
        let r = fuseau::sleep(ms(10));
        l.push(format!("after: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(
        log.take(),
        [
            "inner slept",
            "inner ended",
            "outer sleep: ok",
            "after: Cancelled"
        ]
    );
    assert_eq!(sim.elapsed(), ms(20));
    assert!(worker.join().unwrap_err().is_cancelled());
}

#[test]
fn shield_for_cuts_the_body_short_without_cancelling_the_fiber() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<u32> {
        let never = Chan::<u32>::new();
        let r = shield_for(ms(5), || {
            fuseau::sleep(ms(3))?;
            l.push("first sleep");
            let r = fuseau::sleep(ms(3)); // interrupted at 5ms
            l.push(format!("second sleep: {}", outcome(&r)));
            // Every later suspension point of the body fails too.
            let again = fuseau::yield_now();
            l.push(format!("yield in body: {}", outcome(&again)));
            let again = never.recv();
            l.push(format!("recv in body: {}", outcome(&again)));
            r
        });
        l.push(format!("shield_for: {}", outcome(&r)));
        assert_eq!(
            r.unwrap_err().message(),
            "the time limit of a fuseau::shield_for expired"
        );
        fuseau::yield_now()?;
        fuseau::sleep(ms(10))?;
        l.push("fiber goes on");
        Ok(1)
    });
    sim.run_until(|| worker.is_done());
    let log = log.take();
    assert_eq!(log[0], "first sleep");
    assert_eq!(
        &log[1..],
        [
            "second sleep: Timeout",
            "yield in body: Timeout",
            "recv in body: Timeout",
            "shield_for: Timeout",
            "fiber goes on"
        ]
    );
    assert_eq!(sim.elapsed(), ms(15));
    assert!(!worker.is_cancelled());
    assert_eq!(worker.join().unwrap(), 1);
}

#[test]
fn shield_for_interrupts_a_wait_in_progress_and_undoes_it() {
    let sim = Sim::new();
    let chan = Chan::<u32>::bounded(0);
    let c = chan.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let e = shield_for(ms(4), || c.recv()).unwrap_err();
        assert!(e.is_timeout());
        Ok(())
    });
    sim.run_until_idle();
    assert_eq!(common::waiters(&chan), (0, 1));
    sim.run_until(|| worker.is_done());
    assert_eq!(
        common::waiters(&chan),
        (0, 0),
        "the receiver left the queue"
    );
    assert_eq!(sim.elapsed(), ms(4));
    worker.join().unwrap();
}

#[test]
fn a_shield_for_that_ends_in_time_is_disarmed() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let v = shield_for(ms(5), || {
            fuseau::sleep(ms(1))?;
            Ok(2)
        })?;
        // Past the old limit: nothing interrupts this.
        fuseau::sleep(ms(20))?;
        fuseau::yield_now()?;
        // A zero limit fails every suspension point of its body at once.
        let e = shield_for(std::time::Duration::ZERO, fuseau::checkpoint).unwrap_err();
        assert!(e.is_timeout());
        // No limit outlives its shield_for.
        fuseau::checkpoint()?;
        Ok(v)
    });
    assert_eq!(r.unwrap(), 2);
    assert_eq!(sim.elapsed(), ms(21));
}

#[test]
fn a_held_cancellation_is_delivered_after_an_expired_shield_for() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let r = shield_for(ms(8), || fuseau::sleep(HOUR));
        l.push(format!("shield_for: {}", outcome(&r)));
        let r = fuseau::yield_now();
        l.push(format!("then: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(log.take(), ["shield_for: Timeout", "then: Cancelled"]);
    assert_eq!(sim.elapsed(), ms(8));
    assert!(worker.join().unwrap_err().is_cancelled());
}

#[test]
fn nested_limits_an_inner_one_cuts_only_its_own_body_and_an_inner_shield_holds_the_outer_one() {
    // As in Trio, a shield holds what is outside it: the outer limit's
    // expiry, like a cancellation, waits until the inner shield has ended,
    // then cuts the outer body short at its next suspension point.
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let r = shield_for(ms(10), || {
            let inner = shield_for(ms(2), || fuseau::sleep(HOUR));
            l.push(format!("inner: {}", outcome(&inner)));
            fuseau::sleep(ms(3))?; // the outer limit still holds
            l.push("outer body goes on");
            let held = shield(|| fuseau::sleep(ms(20)));
            l.push(format!("nested plain shield: {}", outcome(&held)));
            let after = fuseau::yield_now();
            l.push(format!("after it: {}", outcome(&after)));
            after
        });
        l.push(format!("outer: {}", outcome(&r)));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "inner: Timeout",
            "outer body goes on",
            "nested plain shield: ok",
            "after it: Timeout",
            "outer: Timeout"
        ]
    );
    assert_eq!(sim.elapsed(), ms(25));
}

#[test]
fn a_parents_cancellation_reaching_a_shielded_child_is_held() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let parent = sim.spawn(move || -> Result<()> {
        let lc = l.clone();
        let child = fuseau::spawn(move || -> Result<()> {
            shield(|| {
                fuseau::sleep(ms(10))?;
                lc.push("child cleanup done");
                Ok(())
            })?;
            let r = fuseau::yield_now();
            lc.push(format!("child after shield: {}", outcome(&r)));
            r
        });
        let r = child.join();
        l.push(format!("parent join: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    parent.cancel();
    sim.run_until(|| parent.is_done());
    assert_eq!(
        log.take(),
        [
            "parent join: Cancelled",
            "child cleanup done",
            "child after shield: Cancelled"
        ]
    );
    assert_eq!(
        sim.elapsed(),
        ms(10),
        "the parent completed after its child"
    );
    assert!(parent.join().unwrap_err().is_cancelled());
}

#[test]
fn children_spawned_inside_a_shield_are_held_with_it() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let lb = l.clone();
        let before = fuseau::spawn(move || -> Result<()> {
            let r = fuseau::sleep(HOUR);
            lb.push(format!("child spawned before: {}", outcome(&r)));
            r
        });
        let r = shield(|| {
            fuseau::sleep(ms(5))?; // cancelled meanwhile
                                   // Spawned in a cancelled fiber, inside the shield: it runs.
            let helper = fuseau::spawn(|| {
                fuseau::sleep(ms(5))?;
                Ok(40)
            });
            let v = helper.join()? + 2;
            l.push(format!("helper joined: {v}"));
            // Cancelled when the shield ends, not before.
            let ll = l.clone();
            let lingering = fuseau::spawn(move || -> Result<()> {
                let r = fuseau::sleep(HOUR);
                ll.push(format!("lingering child: {}", outcome(&r)));
                r
            });
            fuseau::sleep(ms(5))?;
            l.push("shield ends");
            Ok(lingering)
        });
        let lingering = r?;
        let r = lingering.join();
        l.push(format!("joined the lingering child: {}", outcome(&r)));
        drop(before);
        fuseau::checkpoint()
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(
        log.take(),
        [
            "child spawned before: Cancelled",
            "helper joined: 42",
            "shield ends",
            // The join fails (the fiber is cancelled) after yielding once,
            // during which the child, cancelled as the shield ended, runs.
            "lingering child: Cancelled",
            "joined the lingering child: Cancelled"
        ]
    );
    assert_eq!(sim.elapsed(), ms(15));
    assert!(worker.join().unwrap_err().is_cancelled());
}

#[test]
fn children_spawned_inside_a_shield_become_ordinary_when_it_ends() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let ll = l.clone();
        let child = shield(|| {
            Ok(fuseau::spawn(move || -> Result<()> {
                let r = fuseau::sleep(HOUR);
                ll.push(format!("child: {}", outcome(&r)));
                r
            }))
        })?;
        let r = child.join();
        l.push(format!("join: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    // No cancellation during the shield; now one reaches both at once.
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(log.take(), ["join: Cancelled", "child: Cancelled"]);
    assert_eq!(sim.elapsed(), ms(0));
}

#[test]
fn cancel_callbacks_wait_for_the_end_of_the_shield() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let lc = l.clone();
        fuseau::with_cancel_callback(
            move |e| lc.push(format!("callback: {:?}", e.kind())),
            || {
                shield(|| {
                    fuseau::sleep(ms(10))?;
                    l.push("cleanup done");
                    Ok(())
                })?;
                l.push("shield returned");
                fuseau::yield_now()
            },
        )
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(
        log.take(),
        ["cleanup done", "callback: Cancelled", "shield returned"]
    );
}

#[test]
fn a_cancel_after_deadline_during_a_shield_is_held_and_delivered_after() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        fuseau::cancel_after(ms(5))?;
        shield(|| {
            fuseau::sleep(ms(10))?; // the deadline passes meanwhile
            l.push("slept");
            fuseau::cancel_after(ms(1))?; // armed inside: held too
            fuseau::sleep(ms(10))?;
            l.push("slept again");
            Ok(())
        })?;
        let r = fuseau::sleep(ms(10));
        l.push(format!("after: {}", outcome(&r)));
        r
    });
    sim.run_until(|| worker.is_done());
    assert_eq!(log.take(), ["slept", "slept again", "after: Timeout"]);
    assert_eq!(sim.elapsed(), ms(20));
    assert!(worker.join().unwrap_err().is_timeout());
}

#[test]
fn a_panic_inside_a_shield_ends_it() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            shield(|| -> Result<()> {
                shield(|| -> Result<()> {
                    fuseau::cancel_after(std::time::Duration::ZERO)?; // cancelled, held
                    fuseau::sleep(ms(1))?;
                    panic!("boom");
                })
            })
        }));
        l.push(format!("panicked: {}", panicked.is_err()));
        // No shield leaked: the held cancellation is delivered.
        let r = fuseau::sleep(ms(1));
        l.push(format!("sleep after: {}", outcome(&r)));
        r
    });
    sim.run_until(|| worker.is_done());
    assert_eq!(log.take(), ["panicked: true", "sleep after: Timeout"]);
    assert!(worker.join().unwrap_err().is_timeout());
    assert_eq!(sim.elapsed(), ms(1));
}

#[test]
fn a_panic_inside_shield_for_disarms_its_limit() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            shield_for(ms(2), || -> Result<()> { panic!("boom") })
        }));
        assert!(panicked.is_err());
        fuseau::sleep(ms(10))?; // past the limit: not interrupted
        Ok(())
    });
    r.unwrap();
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
fn disposal_unwinds_fibers_inside_shields() {
    let sim = Sim::new();
    let guards = Counter::new();
    let g = guards.clone();
    let waiting = sim.spawn(move || -> Result<()> {
        let _guard = g.guard();
        let never = Chan::<u32>::new();
        shield(|| {
            let _guard = g.guard();
            never.recv()?;
            Ok(())
        })
    });
    let g = guards.clone();
    let stubborn = sim.spawn(move || -> Result<()> {
        let _guard = g.guard();
        shield(|| -> Result<()> {
            let _guard = g.guard();
            loop {
                let _ = fuseau::yield_now();
                let _ = fuseau::sleep(HOUR);
            }
        })
    });
    let g = guards.clone();
    let limited = sim.spawn(move || -> Result<()> {
        let _guard = g.guard();
        shield_for(HOUR, || {
            let _guard = g.guard();
            fuseau::sleep(HOUR)
        })
    });
    sim.run_until_idle();
    waiting.cancel();
    sim.run_until_idle();
    assert_eq!(guards.get(), 0);
    sim.sched.dispose();
    assert_eq!(guards.get(), 6, "every stack was unwound");
    assert_eq!(sim.sched.n_fibers(), 0);
    assert!(waiting.join().unwrap_err().is_cancelled());
    assert!(stubborn.join().unwrap_err().is_cancelled());
    assert!(limited.join().unwrap_err().is_cancelled());
}

#[test]
fn shield_for_in_a_fiber_cancelled_before_runs_its_body_within_the_limit() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || -> Result<()> {
        let e = fuseau::sleep(HOUR).unwrap_err(); // cancelled here
        l.push(format!("before: {:?}", e.kind()));
        let v = shield_for(ms(10), || {
            fuseau::sleep(ms(4))?;
            Ok(9)
        })?;
        l.push(format!("shield_for returned {v}"));
        // Cancelled after the body succeeded: delivered here, not above.
        let r = fuseau::sleep(ms(1));
        l.push(format!("after: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(
        log.take(),
        [
            "before: Cancelled",
            "shield_for returned 9",
            "after: Cancelled"
        ]
    );
    assert_eq!(sim.elapsed(), ms(4));
    assert!(worker.join().unwrap_err().is_cancelled());
}
