//! Deadline scopes, `with_timeout` and `with_deadline`: only the body is
//! cut short (with `Timeout`), children spawned inside are cancelled,
//! nesting, real cancellation, zero and past deadlines, panics. Virtual
//! time (`Sim`), ordered logs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::{ms, Log, Sim, HOUR};
use fuseau::{with_deadline, with_timeout, Chan, ErrorKind, Result};

/// `"ok"` or the error's kind, for logs.
fn outcome<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

#[test]
fn a_body_that_sleeps_past_the_deadline_gets_timeout_and_the_fiber_runs_on() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let r = with_timeout(ms(50), || {
            fuseau::sleep(ms(10))?;
            l.push("slept 10");
            let r = fuseau::sleep(HOUR);
            l.push(format!("long sleep: {}", outcome(&r)));
            // Every later suspension point of the body fails too.
            let again = fuseau::yield_now();
            l.push(format!("again: {}", outcome(&again)));
            r
        });
        let e = r.unwrap_err();
        l.push(format!("scope: {:?} {}", e.kind(), e.message()));
        fuseau::sleep(ms(5))?;
        l.push("slept after");
        Ok(())
    });
    assert!(r.is_ok());
    assert_eq!(
        log.take(),
        [
            "slept 10",
            "long sleep: Timeout",
            "again: Timeout",
            "scope: Timeout fuseau::with_timeout(50ms) expired",
            "slept after"
        ]
    );
    assert_eq!(sim.elapsed(), ms(55));
}

#[test]
fn a_body_finishing_in_time_is_unaffected_and_the_timer_is_disarmed() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let v = with_timeout(ms(50), || {
            fuseau::sleep(ms(10))?;
            Ok(3)
        })?;
        l.push(format!("value {v}"));
        // Past the scope's deadline: nothing fires any more.
        fuseau::sleep(ms(100))?;
        l.push("slept past the old deadline");
        Ok(())
    });
    assert!(r.is_ok());
    assert_eq!(log.take(), ["value 3", "slept past the old deadline"]);
    assert_eq!(sim.elapsed(), ms(110));
    // No timer is left behind.
    assert_eq!(sim.run_until_idle(), None);
}

#[test]
fn children_spawned_inside_are_cancelled_with_timeout_those_before_are_not() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let lb = l.clone();
        let before = fuseau::spawn(move || {
            fuseau::sleep(ms(100))?;
            lb.push("before finished");
            Ok(1)
        });
        let (l2, l3) = (l.clone(), l.clone());
        let inside = with_timeout(ms(20), move || {
            let child = fuseau::spawn(move || {
                let r = fuseau::sleep(HOUR);
                l2.push(format!("inside child: {}", outcome(&r)));
                r
            });
            let r = fuseau::sleep(HOUR);
            l3.push(format!("body: {}", outcome(&r)));
            r.map(|()| child)
        });
        l.push(format!("scope: {}", outcome(&inside)));
        l.push(format!("before: {}", before.join()?));
        Ok(())
    });
    assert!(
        r.is_ok(),
        "the child's Timeout does not fail the parent: {r:?}"
    );
    assert_eq!(
        log.take(),
        [
            "inside child: Timeout",
            "body: Timeout",
            "scope: Timeout",
            "before finished",
            "before: 1"
        ]
    );
}

#[test]
fn a_child_spawned_inside_after_the_expiry_is_cancelled_at_once() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let child = with_timeout(ms(5), || {
            let _ = fuseau::sleep(HOUR); // expired, ignored
            Ok(fuseau::spawn(|| fuseau::sleep(ms(1))))
        })?;
        let e = child.join().unwrap_err();
        assert_eq!(e.message(), "fuseau::with_timeout(5ms) expired");
        Ok(())
    });
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn children_spawned_inside_that_outlive_a_scope_in_time_become_ordinary() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let child = with_timeout(ms(5), || Ok(fuseau::spawn(|| fuseau::sleep(ms(50)))))?;
        // A later scope's expiry does not reach it either.
        let _ = with_timeout(ms(10), || fuseau::sleep(HOUR));
        child.join()
    });
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn nested_the_inner_fires_first_and_the_outer_body_continues() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let outer = with_timeout(ms(100), || {
            let inner = with_timeout(ms(10), || fuseau::sleep(HOUR));
            let e = inner.unwrap_err();
            l.push(format!("inner: {}", e.message()));
            fuseau::sleep(ms(20))?;
            l.push("outer body slept");
            Ok(())
        });
        l.push(format!("outer: {}", outcome(&outer)));
        Ok(())
    });
    assert!(r.is_ok());
    assert_eq!(
        log.take(),
        [
            "inner: fuseau::with_timeout(10ms) expired",
            "outer body slept",
            "outer: ok"
        ]
    );
    assert_eq!(sim.elapsed(), ms(30));
}

#[test]
fn nested_the_outer_fires_first_and_cuts_the_inner_body_short() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let outer = with_timeout(ms(10), || {
            let inner = with_timeout(ms(100), || fuseau::sleep(HOUR));
            let e = inner.unwrap_err();
            l.push(format!("inner: {}", e.message()));
            Err::<(), _>(e)
        });
        let e = outer.unwrap_err();
        l.push(format!("outer: {:?} {}", e.kind(), e.message()));
        Ok(())
    });
    assert!(r.is_ok());
    assert_eq!(
        log.take(),
        [
            "inner: fuseau::with_timeout(10ms) expired",
            "outer: Timeout fuseau::with_timeout(10ms) expired"
        ]
    );
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
fn a_real_cancellation_during_the_scope_is_cancelled_not_timeout() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let worker = sim.spawn(move || {
        let r = with_timeout(HOUR, || fuseau::sleep(HOUR));
        l.push(format!("scope: {}", outcome(&r)));
        let after = fuseau::yield_now();
        l.push(format!("after: {}", outcome(&after)));
        r
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(log.take(), ["scope: Cancelled", "after: Cancelled"]);
    assert_eq!(worker.join().unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
fn a_fiber_cancelled_before_the_scope_fails_its_first_suspension_point() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let gate: Chan<()> = Chan::new();
    let worker = sim.spawn(move || {
        let first = gate.recv();
        l.push(format!("recv: {}", outcome(&first)));
        let r = with_timeout(HOUR, || {
            l.push("body runs");
            fuseau::yield_now()
        });
        l.push(format!("scope: {}", outcome(&r)));
        r
    });
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert_eq!(
        log.take(),
        ["recv: Cancelled", "body runs", "scope: Cancelled"]
    );
}

#[test]
fn zero_timeout_and_past_deadline_fail_the_first_suspension_point() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let zero = with_timeout(std::time::Duration::ZERO, || {
            l.push("zero body runs");
            fuseau::yield_now()
        });
        l.push(format!("zero: {}", outcome(&zero)));
        fuseau::sleep(ms(5))?;
        let past = fuseau::time::now() - ms(1);
        let r = with_deadline(past, fuseau::yield_now);
        let e = r.unwrap_err();
        assert_eq!(
            e.message(),
            format!("fuseau::with_deadline({past:?}) expired")
        );
        l.push(format!("past: {:?}", e.kind()));
        fuseau::yield_now()?;
        l.push("fiber runs on");
        Ok(())
    });
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        log.take(),
        [
            "zero body runs",
            "zero: Timeout",
            "past: Timeout",
            "fiber runs on"
        ]
    );
}

#[test]
fn with_deadline_uses_the_schedulers_clock() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let deadline = fuseau::time::now() + ms(30);
        let r: Result<()> = with_deadline(deadline, || loop {
            fuseau::sleep(ms(7))?;
            l.push(format!(
                "tick {:?}",
                fuseau::time::now() - (deadline - ms(30))
            ));
        });
        let e: fuseau::Error = r.unwrap_err();
        assert!(e.is_timeout());
        Ok(())
    });
    assert!(r.is_ok());
    assert_eq!(
        log.take(),
        ["tick 7ms", "tick 14ms", "tick 21ms", "tick 28ms"]
    );
    assert_eq!(sim.elapsed(), ms(30));
}

#[test]
fn a_wait_inside_a_scope_undoes_its_registration_on_expiry() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let ch: Chan<u32> = Chan::bounded(0);
        let r = with_timeout(ms(5), || ch.recv());
        assert!(r.unwrap_err().is_timeout());
        // The receiver left the queue: a sender finds nobody.
        assert!(ch.try_send(1).is_err());
        Ok(())
    });
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn a_panic_in_the_body_ends_the_scope() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    let r = sim.block_on(move || {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            with_timeout(ms(5), || -> Result<()> { panic!("boom") })
        }));
        assert!(caught.is_err());
        // The scope is gone: its deadline passes without effect.
        fuseau::sleep(ms(20))?;
        l.push("slept past the deadline");
        Ok(())
    });
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(log.take(), ["slept past the deadline"]);
}

#[test]
fn outside_a_fiber_it_is_not_in_fiber() {
    let e = with_timeout(ms(1), || Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    let e = with_deadline(std::time::Instant::now(), || Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
}

#[test]
fn a_shield_inside_a_scope_lets_cleanup_finish_after_the_deadline() {
    // Trio's pattern: a deadline scope whose body, once cut short, cleans
    // up in a shield; the cleanup may wait, the expired deadline holds off
    // until the shield ends, then cuts the body short again.
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let r = with_timeout(ms(5), || {
            let work = fuseau::sleep(HOUR);
            l.push(format!("work: {}", outcome(&work)));
            let cleanup = fuseau::shield(|| fuseau::sleep(ms(10)));
            l.push(format!("cleanup: {}", outcome(&cleanup)));
            let after = fuseau::yield_now();
            l.push(format!("after the cleanup: {}", outcome(&after)));
            work
        });
        l.push(format!("scope: {}", outcome(&r)));
        fuseau::sleep(ms(1))?;
        l.push("the fiber runs on");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "work: Timeout",
            "cleanup: ok",
            "after the cleanup: Timeout",
            "scope: Timeout",
            "the fiber runs on"
        ]
    );
    assert_eq!(sim.elapsed(), ms(16));
}
