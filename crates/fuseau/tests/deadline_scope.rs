//! Deadline scopes, `with_timeout` and `with_deadline`: only the body is
//! cut short (with `Timeout`), children spawned inside are cancelled,
//! nesting, real cancellation, zero and past deadlines, panics. Virtual
//! time (`Sim`), ordered logs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use common::{ms, note, outcome, Log, Sim, HOUR};
use fuseau::{with_deadline, with_timeout, Chan, ErrorKind, Result};

/// Runs `body` with a log as the root fiber of a fresh simulation, checks
/// that it succeeded, and returns the simulation and what was logged.
fn run_logged<T: std::fmt::Debug + 'static>(
    body: impl FnOnce(Log) -> Result<T> + 'static,
) -> (Sim, Vec<String>) {
    let (sim, log) = (Sim::new(), Log::new());
    let l = log.clone();
    let r = sim.block_on(move || body(l));
    assert!(r.is_ok(), "the fiber failed: {r:?}");
    (sim, log.take())
}

/// Like [`run_logged`], also checking the log and the virtual time elapsed.
fn expect_run(
    body: impl FnOnce(Log) -> Result<()> + 'static,
    expected: &[&str],
    elapsed: Duration,
) {
    let (sim, log) = run_logged(body);
    assert_eq!(log, expected);
    assert_eq!(sim.elapsed(), elapsed);
}

/// Spawns `body` with a log, cancels it once it waits, runs it to its end;
/// returns what was logged and the fiber's result.
fn cancel_logged<T: 'static>(
    body: impl FnOnce(Log) -> Result<T> + 'static,
) -> (Vec<String>, Result<T>) {
    let (sim, log) = (Sim::new(), Log::new());
    let l = log.clone();
    let worker = sim.spawn(move || body(l));
    sim.run_until_idle();
    worker.cancel();
    sim.run_until(|| worker.is_done());
    (log.take(), worker.join())
}

#[test]
fn a_body_that_sleeps_past_the_deadline_gets_timeout_and_the_fiber_runs_on() {
    let body = |l: Log| {
        let r = with_timeout(ms(50), || {
            fuseau::sleep(ms(10))?;
            l.push("slept 10");
            let r = note(&l, "long sleep", fuseau::sleep(HOUR));
            // Every later suspension point of the body fails too.
            let _ = note(&l, "again", fuseau::yield_now());
            r
        });
        let e = r.unwrap_err();
        l.push(format!("scope: {:?} {}", e.kind(), e.message()));
        fuseau::sleep(ms(5))?;
        l.push("slept after");
        Ok(())
    };
    let expected = [
        "slept 10",
        "long sleep: Timeout",
        "again: Timeout",
        "scope: Timeout fuseau::with_timeout(50ms) expired",
        "slept after",
    ];
    expect_run(body, &expected, ms(55));
}

#[test]
fn a_body_finishing_in_time_is_unaffected_and_the_timer_is_disarmed() {
    let body = |l: Log| {
        let v = with_timeout(ms(50), || {
            fuseau::sleep(ms(10))?;
            Ok(3)
        })?;
        l.push(format!("value {v}"));
        // Past the scope's deadline: nothing fires any more.
        fuseau::sleep(ms(100))?;
        l.push("slept past the old deadline");
        Ok(())
    };
    let (sim, log) = run_logged(body);
    assert_eq!(log, ["value 3", "slept past the old deadline"]);
    assert_eq!(sim.elapsed(), ms(110));
    // No timer is left behind.
    assert_eq!(sim.run_until_idle(), None);
}

#[test]
fn children_spawned_inside_are_cancelled_with_timeout_those_before_are_not() {
    let body = |l: Log| {
        let lb = l.clone();
        let before = fuseau::spawn(move || {
            fuseau::sleep(ms(100))?;
            lb.push("before finished");
            Ok(1)
        });
        let (l2, l3) = (l.clone(), l.clone());
        let inside = with_timeout(ms(20), move || {
            let child = fuseau::spawn(move || note(&l2, "inside child", fuseau::sleep(HOUR)));
            note(&l3, "body", fuseau::sleep(HOUR)).map(|()| child)
        });
        l.push(format!("scope: {}", outcome(&inside)));
        l.push(format!("before: {}", before.join()?));
        Ok(())
    };
    // The child's Timeout does not fail the parent (checked by run_logged).
    let (_, log) = run_logged(body);
    assert_eq!(
        log,
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
    run_logged(|_| {
        let child = with_timeout(ms(5), || {
            let _ = fuseau::sleep(HOUR); // expired, ignored
            Ok(fuseau::spawn(|| fuseau::sleep(ms(1))))
        })?;
        let e = child.join().unwrap_err();
        assert_eq!(e.message(), "fuseau::with_timeout(5ms) expired");
        Ok(())
    });
}

#[test]
fn children_spawned_inside_that_outlive_a_scope_in_time_become_ordinary() {
    run_logged(|_| {
        let child = with_timeout(ms(5), || Ok(fuseau::spawn(|| fuseau::sleep(ms(50)))))?;
        // A later scope's expiry does not reach it either.
        let _ = with_timeout(ms(10), || fuseau::sleep(HOUR));
        child.join()
    });
}

#[test]
fn nested_the_inner_fires_first_and_the_outer_body_continues() {
    let body = |l: Log| {
        let outer = with_timeout(ms(100), || {
            let inner = with_timeout(ms(10), || fuseau::sleep(HOUR));
            let e = inner.unwrap_err();
            l.push(format!("inner: {}", e.message()));
            fuseau::sleep(ms(20))?;
            l.push("outer body slept");
            Ok(())
        });
        let _ = note(&l, "outer", outer);
        Ok(())
    };
    let expected = [
        "inner: fuseau::with_timeout(10ms) expired",
        "outer body slept",
        "outer: ok",
    ];
    expect_run(body, &expected, ms(30));
}

#[test]
fn nested_the_outer_fires_first_and_cuts_the_inner_body_short() {
    let body = |l: Log| {
        let outer = with_timeout(ms(10), || {
            let inner = with_timeout(ms(100), || fuseau::sleep(HOUR));
            let e = inner.unwrap_err();
            l.push(format!("inner: {}", e.message()));
            Err::<(), _>(e)
        });
        let e = outer.unwrap_err();
        l.push(format!("outer: {:?} {}", e.kind(), e.message()));
        Ok(())
    };
    let expected = [
        "inner: fuseau::with_timeout(10ms) expired",
        "outer: Timeout fuseau::with_timeout(10ms) expired",
    ];
    expect_run(body, &expected, ms(10));
}

#[test]
fn a_real_cancellation_during_the_scope_is_cancelled_not_timeout() {
    let (log, r) = cancel_logged(|l| {
        let r = note(&l, "scope", with_timeout(HOUR, || fuseau::sleep(HOUR)));
        let _ = note(&l, "after", fuseau::yield_now());
        r
    });
    assert_eq!(log, ["scope: Cancelled", "after: Cancelled"]);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
fn a_fiber_cancelled_before_the_scope_fails_its_first_suspension_point() {
    let gate: Chan<()> = Chan::new();
    let (log, _) = cancel_logged(move |l| {
        let _ = note(&l, "recv", gate.recv());
        let r = with_timeout(HOUR, || {
            l.push("body runs");
            fuseau::yield_now()
        });
        note(&l, "scope", r)
    });
    assert_eq!(log, ["recv: Cancelled", "body runs", "scope: Cancelled"]);
}

#[test]
fn zero_timeout_and_past_deadline_fail_the_first_suspension_point() {
    let body = |l: Log| {
        let zero = with_timeout(Duration::ZERO, || {
            l.push("zero body runs");
            fuseau::yield_now()
        });
        let _ = note(&l, "zero", zero);
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
    };
    let expected = [
        "zero body runs",
        "zero: Timeout",
        "past: Timeout",
        "fiber runs on",
    ];
    expect_run(body, &expected, ms(5));
}

#[test]
fn with_deadline_uses_the_schedulers_clock() {
    let body = |l: Log| {
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
    };
    let expected = ["tick 7ms", "tick 14ms", "tick 21ms", "tick 28ms"];
    expect_run(body, &expected, ms(30));
}

#[test]
fn a_wait_inside_a_scope_undoes_its_registration_on_expiry() {
    run_logged(|_| {
        let ch: Chan<u32> = Chan::bounded(0);
        let r = with_timeout(ms(5), || ch.recv());
        assert!(r.unwrap_err().is_timeout());
        // The receiver left the queue: a sender finds nobody.
        assert!(ch.try_send(1).is_err());
        Ok(())
    });
}

#[test]
fn a_panic_in_the_body_ends_the_scope() {
    let (_, log) = run_logged(|l| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            with_timeout(ms(5), || -> Result<()> { panic!("boom") })
        }));
        assert!(caught.is_err());
        // The scope is gone: its deadline passes without effect.
        fuseau::sleep(ms(20))?;
        l.push("slept past the deadline");
        Ok(())
    });
    assert_eq!(log, ["slept past the deadline"]);
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
    let body = |l: Log| {
        let r = with_timeout(ms(5), || {
            let work = note(&l, "work", fuseau::sleep(HOUR));
            let _ = note(&l, "cleanup", fuseau::shield(|| fuseau::sleep(ms(10))));
            let _ = note(&l, "after the cleanup", fuseau::yield_now());
            work
        });
        let _ = note(&l, "scope", r);
        fuseau::sleep(ms(1))?;
        l.push("the fiber runs on");
        Ok(())
    };
    let expected = [
        "work: Timeout",
        "cleanup: ok",
        "after the cleanup: Timeout",
        "scope: Timeout",
        "the fiber runs on",
    ];
    expect_run(body, &expected, ms(16));
}
