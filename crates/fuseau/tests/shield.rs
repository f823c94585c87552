//! `shield` and `shield_for`: cleanup that waits although the fiber is
//! cancelled, the held cancellation delivered after, time limits, nesting,
//! children, disposal and panics. Virtual time (`Sim`), ordered logs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use common::{ms, note, Counter, Log, Sim, HOUR};
use fuseau::{shield, shield_for, Chan, ErrorKind, Fiber, Result};

/// Cleanup that sleeps 10ms, then receives one value from `data`.
fn cleanup(log: &Log, data: &Chan<u32>) -> Result<u32> {
    fuseau::sleep(ms(10))?;
    log.push("slept");
    let v = data.recv()?;
    log.push(format!("received {v}"));
    Ok(v)
}

/// A root fiber that sends `v` on `data` at `at` of virtual time.
fn send_at(sim: &Sim, data: &Chan<u32>, at: Duration, v: u32) {
    let data = data.clone();
    sim.spawn(move || {
        fuseau::sleep(at)?;
        data.send(v)
    });
}

/// A fresh simulation and log, and a root fiber running `body` with the log.
fn spawn_logged<T: 'static>(body: impl FnOnce(Log) -> Result<T> + 'static) -> (Sim, Log, Fiber<T>) {
    let (sim, log) = (Sim::new(), Log::new());
    let l = log.clone();
    let worker = sim.spawn(move || body(l));
    (sim, log, worker)
}

/// Runs until `worker` waits, cancels it, then runs until it has ended.
fn cancel_when_idle<T>(sim: &Sim, worker: &Fiber<T>) {
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
}

/// Checks the log, the virtual time elapsed and that `worker` failed as
/// `kind`.
fn assert_ended<T: std::fmt::Debug>(
    sim: &Sim,
    log: &Log,
    worker: Fiber<T>,
    expected: &[&str],
    elapsed: Duration,
    kind: ErrorKind,
) {
    assert_eq!(log.take(), expected);
    assert_eq!(sim.elapsed(), elapsed);
    assert_eq!(worker.join().unwrap_err().kind(), kind);
}

/// Runs `body` in a fresh simulation, expecting `value` after `elapsed`.
fn block_on_expect<T: PartialEq + std::fmt::Debug + 'static>(
    body: impl FnOnce() -> Result<T> + 'static,
    value: T,
    elapsed: Duration,
) {
    let sim = Sim::new();
    assert_eq!(sim.block_on(body).unwrap(), value);
    assert_eq!(sim.elapsed(), elapsed);
}

#[test]
fn cleanup_runs_in_a_fiber_cancelled_before_the_shield() {
    let (gate, data) = (Chan::<()>::new(), Chan::<u32>::bounded(0));
    let (g, d) = (gate.clone(), data.clone());
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let e = g.recv().unwrap_err();
        l.push(format!("recv: {:?}", e.kind()));
        let v = shield(|| cleanup(&l, &d))?;
        l.push(format!("shield returned {v}"));
        note(&l, "yield after", fuseau::yield_now())
    });
    sim.run_until_idle();
    worker.cancel();
    send_at(&sim, &data, ms(25), 7);
    sim.run_until(|| worker.is_done());
    let expected = [
        "recv: Cancelled",
        "slept",
        "received 7",
        "shield returned 7",
        "yield after: Cancelled",
    ];
    // The cleanup really waited.
    assert_ended(&sim, &log, worker, &expected, ms(25), ErrorKind::Cancelled);
}

#[test]
fn cleanup_runs_in_a_fiber_cancelled_during_the_shield() {
    let data = Chan::<u32>::bounded(0);
    let d = data.clone();
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let v = shield(|| cleanup(&l, &d))?;
        l.push(format!("shield returned {v}"));
        l.push("between: not a suspension point");
        note(&l, "checkpoint after", fuseau::checkpoint())
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
    let body = || {
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
    };
    block_on_expect(body, 5, ms(5));
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
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        shield(|| {
            shield(|| {
                fuseau::sleep(ms(10))?;
                l.push("inner slept");
                Ok(())
            })?;
            l.push("inner ended");
            note(&l, "outer sleep", fuseau::sleep(ms(10)))
        })?;
        note(&l, "after", fuseau::sleep(ms(10)))
    });
    cancel_when_idle(&sim, &worker);
    let expected = [
        "inner slept",
        "inner ended",
        "outer sleep: ok",
        "after: Cancelled",
    ];
    assert_ended(&sim, &log, worker, &expected, ms(20), ErrorKind::Cancelled);
}

#[test]
fn shield_for_cuts_the_body_short_without_cancelling_the_fiber() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<u32> {
        let never = Chan::<u32>::new();
        let r = shield_for(ms(5), || {
            fuseau::sleep(ms(3))?;
            l.push("first sleep");
            let r = note(&l, "second sleep", fuseau::sleep(ms(3))); // interrupted at 5ms
                                                                    // Every later suspension point of the body fails too.
            let _ = note(&l, "yield in body", fuseau::yield_now());
            let _ = note(&l, "recv in body", never.recv());
            r
        });
        let r = note(&l, "shield_for", r);
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
    assert_eq!(
        log.take(),
        [
            "first sleep",
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
    let body = || {
        let v = shield_for(ms(5), || {
            fuseau::sleep(ms(1))?;
            Ok(2)
        })?;
        // Past the old limit: nothing interrupts this.
        fuseau::sleep(ms(20))?;
        fuseau::yield_now()?;
        // A zero limit fails every suspension point of its body at once.
        let e = shield_for(Duration::ZERO, fuseau::checkpoint).unwrap_err();
        assert!(e.is_timeout());
        // No limit outlives its shield_for.
        fuseau::checkpoint()?;
        Ok(v)
    };
    block_on_expect(body, 2, ms(21));
}

#[test]
fn a_held_cancellation_is_delivered_after_an_expired_shield_for() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let _ = note(&l, "shield_for", shield_for(ms(8), || fuseau::sleep(HOUR)));
        note(&l, "then", fuseau::yield_now())
    });
    cancel_when_idle(&sim, &worker);
    let expected = ["shield_for: Timeout", "then: Cancelled"];
    assert_ended(&sim, &log, worker, &expected, ms(8), ErrorKind::Cancelled);
}

#[test]
fn nested_limits_an_inner_one_cuts_only_its_own_body_and_an_inner_shield_holds_the_outer_one() {
    // As in Trio, a shield holds what is outside it: the outer limit's
    // expiry, like a cancellation, waits until the inner shield has ended,
    // then cuts the outer body short at its next suspension point.
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let r = shield_for(ms(10), || {
            let _ = note(&l, "inner", shield_for(ms(2), || fuseau::sleep(HOUR)));
            fuseau::sleep(ms(3))?; // the outer limit still holds
            l.push("outer body goes on");
            let _ = note(&l, "nested plain shield", shield(|| fuseau::sleep(ms(20))));
            note(&l, "after it", fuseau::yield_now())
        });
        let _ = note(&l, "outer", r);
        Ok(())
    });
    sim.run_until(|| worker.is_done());
    worker.join().unwrap();
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
    let (sim, log, parent) = spawn_logged(move |l| -> Result<()> {
        let lc = l.clone();
        let child = fuseau::spawn(move || -> Result<()> {
            shield(|| {
                fuseau::sleep(ms(10))?;
                lc.push("child cleanup done");
                Ok(())
            })?;
            note(&lc, "child after shield", fuseau::yield_now())
        });
        note(&l, "parent join", child.join())
    });
    cancel_when_idle(&sim, &parent);
    let expected = [
        "parent join: Cancelled",
        "child cleanup done",
        "child after shield: Cancelled",
    ];
    // The parent completed after its child.
    assert_ended(&sim, &log, parent, &expected, ms(10), ErrorKind::Cancelled);
}

#[test]
fn children_spawned_inside_a_shield_are_held_with_it() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let lb = l.clone();
        let before = fuseau::spawn(move || note(&lb, "child spawned before", fuseau::sleep(HOUR)));
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
            let lingering =
                fuseau::spawn(move || note(&ll, "lingering child", fuseau::sleep(HOUR)));
            fuseau::sleep(ms(5))?;
            l.push("shield ends");
            Ok(lingering)
        });
        let lingering = r?;
        let _ = note(&l, "joined the lingering child", lingering.join());
        drop(before);
        fuseau::checkpoint()
    });
    cancel_when_idle(&sim, &worker);
    let expected = [
        "child spawned before: Cancelled",
        "helper joined: 42",
        "shield ends",
        // The join fails (the fiber is cancelled) after yielding once,
        // during which the child, cancelled as the shield ended, runs.
        "lingering child: Cancelled",
        "joined the lingering child: Cancelled",
    ];
    assert_ended(&sim, &log, worker, &expected, ms(15), ErrorKind::Cancelled);
}

#[test]
fn children_spawned_inside_a_shield_become_ordinary_when_it_ends() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let ll = l.clone();
        let child = shield(|| {
            Ok(fuseau::spawn(move || {
                note(&ll, "child", fuseau::sleep(HOUR))
            }))
        })?;
        note(&l, "join", child.join())
    });
    // No cancellation during the shield; now one reaches both at once.
    cancel_when_idle(&sim, &worker);
    let expected = ["join: Cancelled", "child: Cancelled"];
    assert_ended(&sim, &log, worker, &expected, ms(0), ErrorKind::Cancelled);
}

#[test]
fn cancel_callbacks_wait_for_the_end_of_the_shield() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
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
    cancel_when_idle(&sim, &worker);
    assert_eq!(
        log.take(),
        ["cleanup done", "callback: Cancelled", "shield returned"]
    );
}

#[test]
fn a_cancel_after_deadline_during_a_shield_is_held_and_delivered_after() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        fuseau::cancel_after(ms(5))?;
        shield(|| {
            fuseau::sleep(ms(10))?; // the deadline passes meanwhile
            l.push("slept");
            fuseau::cancel_after(ms(1))?; // armed inside: held too
            fuseau::sleep(ms(10))?;
            l.push("slept again");
            Ok(())
        })?;
        note(&l, "after", fuseau::sleep(ms(10)))
    });
    sim.run_until(|| worker.is_done());
    let expected = ["slept", "slept again", "after: Timeout"];
    assert_ended(&sim, &log, worker, &expected, ms(20), ErrorKind::Timeout);
}

#[test]
fn a_panic_inside_a_shield_ends_it() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            shield(|| -> Result<()> {
                shield(|| -> Result<()> {
                    fuseau::cancel_after(Duration::ZERO)?; // cancelled, held
                    fuseau::sleep(ms(1))?;
                    panic!("boom");
                })
            })
        }));
        l.push(format!("panicked: {}", panicked.is_err()));
        // No shield leaked: the held cancellation is delivered.
        note(&l, "sleep after", fuseau::sleep(ms(1)))
    });
    sim.run_until(|| worker.is_done());
    let expected = ["panicked: true", "sleep after: Timeout"];
    assert_ended(&sim, &log, worker, &expected, ms(1), ErrorKind::Timeout);
}

#[test]
fn a_panic_inside_shield_for_disarms_its_limit() {
    let body = || {
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            shield_for(ms(2), || -> Result<()> { panic!("boom") })
        }));
        assert!(panicked.is_err());
        fuseau::sleep(ms(10))?; // past the limit: not interrupted
        Ok(())
    };
    block_on_expect(body, (), ms(10));
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
    for fiber in [waiting, stubborn, limited] {
        assert!(fiber.join().unwrap_err().is_cancelled());
    }
}

#[test]
fn shield_for_in_a_fiber_cancelled_before_runs_its_body_within_the_limit() {
    let (sim, log, worker) = spawn_logged(move |l| -> Result<()> {
        let e = fuseau::sleep(HOUR).unwrap_err(); // cancelled here
        l.push(format!("before: {:?}", e.kind()));
        let v = shield_for(ms(10), || {
            fuseau::sleep(ms(4))?;
            Ok(9)
        })?;
        l.push(format!("shield_for returned {v}"));
        // Cancelled after the body succeeded: delivered here, not above.
        note(&l, "after", fuseau::sleep(ms(1)))
    });
    cancel_when_idle(&sim, &worker);
    let expected = [
        "before: Cancelled",
        "shield_for returned 9",
        "after: Cancelled",
    ];
    assert_ended(&sim, &log, worker, &expected, ms(4), ErrorKind::Cancelled);
}
