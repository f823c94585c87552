//! `both`, `all`, `all_limited` and `race`: results and their order,
//! borrowed inputs, failure and cancellation of the rest, panics, the
//! caller's cancellation (before, while waiting, after success), deadlines,
//! and a large input. Virtual time (`Sim`), ordered logs, drop counters.

mod common;

use std::cell::{Cell, RefCell};
use std::error::Error as _;

use common::{ms, note, outcome, with_watchdog, Counter, Log, Sim, HOUR};
use fuseau::{AnyFiber, Error, ErrorKind, Result};

/// Sleeps `d`, logging how the sleep ended (and the error's source, if
/// any), and passes the sleep's result on.
fn sleep_logged(log: &Log, label: &str, d: std::time::Duration) -> Result<()> {
    let r = fuseau::sleep(d);
    if let Err(e) = &r {
        if let Some(source) = e.source() {
            log.push(format!("{label}: {:?} ({source})", e.kind()));
            return r;
        }
    }
    note(log, label, r)
}

/// A closure that sleeps `d` then returns `v`.
fn after<T: 'static>(d: std::time::Duration, v: T) -> impl FnOnce() -> Result<T> {
    move || {
        fuseau::sleep(d)?;
        Ok(v)
    }
}

/// A closure that sleeps `d` then fails with `msg` as message.
fn fail_after<T>(d: std::time::Duration, msg: &'static str) -> impl FnOnce() -> Result<T> {
    move || {
        fuseau::sleep(d)?;
        Err(Error::from(msg))
    }
}

/// Counts how many of the closures it makes ran, and how many were
/// dropped.
#[derive(Clone, Default)]
struct Probe {
    ran: Counter,
    drops: Counter,
}

impl Probe {
    /// `body` as a counted closure: it holds a drop guard, and counts a
    /// run when it starts.
    fn task<T>(&self, body: impl FnOnce() -> Result<T>) -> impl FnOnce() -> Result<T> {
        let (ran, guard) = (self.ran.clone(), self.drops.guard());
        move || {
            let _guard = guard;
            ran.incr();
            body()
        }
    }

    fn ran(&self) -> usize {
        self.ran.get()
    }

    fn dropped(&self) -> usize {
        self.drops.get()
    }
}

/// Runs `body` in a root fiber, handing it the fiber's own handle (to
/// cancel it before or during the call under test); returns what `body`
/// returns, having checked that the fiber ends cancelled: its next
/// suspension point fails.
fn run_to_be_cancelled<R: 'static>(body: impl FnOnce(&AnyFiber) -> R + 'static) -> R {
    let sim = Sim::new();
    sim.block_on(|| {
        let r = body(&AnyFiber::current());
        assert!(fuseau::yield_now().unwrap_err().is_cancelled());
        Ok(r)
    })
    .expect("the fiber returns body's result")
}

/// Calls `call` with a fresh probe in a root fiber cancelled before the
/// call; checks that the call fails cancelled, and returns the probe.
fn call_cancelled_before<T: 'static>(call: impl FnOnce(&Probe) -> Result<T> + 'static) -> Probe {
    let probe = Probe::default();
    let p = probe.clone();
    let r = run_to_be_cancelled(move |me| {
        me.cancel();
        call(&p)
    });
    assert!(matches!(&r, Err(e) if e.is_cancelled()));
    probe
}

/// Spawns a root fiber that calls `call` with a fresh probe, runs until
/// it waits, cancels it, and runs until it is done; checks that it ended
/// cancelled. Returns the fiber's log (`"{label}: {outcome}, drops {n}"`
/// as the call returned) and the probe.
fn cancel_while_waiting<T: 'static>(
    label: &'static str,
    call: impl FnOnce(&Probe) -> Result<T> + 'static,
) -> (Vec<String>, Probe) {
    let (sim, log, probe) = (Sim::new(), Log::new(), Probe::default());
    let (l, p) = (log.clone(), probe.clone());
    let worker = sim.spawn(move || {
        let r = call(&p);
        l.push(format!("{label}: {}, drops {}", outcome(&r), p.dropped()));
        r
    });
    sim.run_until_idle();
    assert!(!worker.is_done());
    worker.cancel();
    sim.run_until(|| worker.is_done());
    assert!(matches!(worker.join(), Err(e) if e.is_cancelled()));
    (log.take(), probe)
}

// ---------------------------------------------------------------- both

#[test]
fn both_gives_results_in_order() {
    let sim = Sim::new();
    let r = sim.block_on(|| fuseau::both(after(ms(20), "slow"), after(ms(10), 1)));
    assert_eq!(r.unwrap(), ("slow", 1));
    assert_eq!(sim.elapsed(), ms(20));
}

#[test]
fn both_borrows_shared_and_mutable_parts() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let words = ["a".to_string(), "bb".to_string()];
        let mut counts = [0usize; 2];
        let (left, right) = counts.split_at_mut(1);
        let (x, y) = fuseau::both(
            || {
                fuseau::yield_now()?;
                left[0] = words[0].len();
                Ok(words[0].as_str()) // borrows `words`
            },
            || {
                right[0] = words[1].len();
                Ok(&words[1])
            },
        )?;
        assert_eq!((x, y.as_str()), ("a", "bb"));
        assert_eq!(counts, [1, 2]);
        Ok(())
    });
    r.unwrap();
}

#[test]
fn both_first_failure_cancels_the_other() {
    let (sim, log) = (Sim::new(), Log::new());
    let l = log.clone();
    let r = sim.block_on(move || {
        let r = fuseau::both(
            || sleep_logged(&l, "f", HOUR),
            fail_after::<()>(ms(10), "boom"),
        );
        l.push(format!("both: {}", outcome(&r)));
        r
    });
    let e = r.unwrap_err();
    assert_eq!(e.message(), "boom");
    assert_eq!(log.take(), ["f: Cancelled (boom)", "both: Other"]);
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
fn both_panic_is_a_panicked_error() {
    let sim = Sim::new();
    let r =
        sim.block_on(|| fuseau::both(after(ms(5), 1), || -> Result<()> { panic!("bad closure") }));
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "bad closure");
}

#[test]
fn both_caller_cancelled_while_waiting() {
    let (log, _) = cancel_while_waiting("both", |p| {
        fuseau::both(
            p.task(|| fuseau::sleep(HOUR)),
            p.task(|| fuseau::sleep(HOUR)),
        )
    });
    assert_eq!(log, ["both: Cancelled, drops 2"]);
}

#[test]
fn both_caller_goes_on_after_an_error() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let e = fuseau::both(fail_after::<()>(ms(1), "no"), after(HOUR, ())).unwrap_err();
        assert_eq!(e.message(), "no");
        fuseau::sleep(ms(5))?; // the fiber itself is not cancelled
        Ok("went on")
    });
    assert_eq!(r.unwrap(), "went on");
    assert_eq!(sim.elapsed(), ms(6));
}

#[test]
fn both_cancelled_before_the_call() {
    let probe = call_cancelled_before(|p| fuseau::both(p.task(|| Ok(())), p.task(|| Ok(()))));
    assert_eq!(probe.ran(), 0, "no closure runs in a cancelled fiber");
    assert_eq!(probe.dropped(), 2, "both closures are dropped");
}

#[test]
fn both_cancelled_after_success_keeps_the_result() {
    let r = run_to_be_cancelled(|caller| {
        fuseau::both(after(ms(1), 1), || {
            fuseau::sleep(ms(2))?;
            caller.cancel(); // the caller, once this closure succeeds
            Ok(2)
        })
    });
    assert_eq!(r.unwrap(), (1, 2));
}

// ----------------------------------------------------------------- all

#[test]
fn all_keeps_input_order() {
    let sim = Sim::new();
    let r = sim.block_on(|| fuseau::all([30, 10, 20, 0].map(|d| after(ms(d), d))));
    assert_eq!(r.unwrap(), [30, 10, 20, 0]);
    assert_eq!(sim.elapsed(), ms(30));
}

#[test]
fn all_of_nothing_is_empty() {
    let sim = Sim::new();
    let r = sim.block_on(|| fuseau::all(Vec::<fn() -> Result<u8>>::new()));
    assert_eq!(r.unwrap(), Vec::<u8>::new());
}

#[test]
fn all_borrows_and_mutates() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let mut cells = vec![0u32; 4];
        let factor = 3;
        let out = fuseau::all(cells.iter_mut().enumerate().map(|(i, c)| {
            let factor = &factor;
            move || {
                fuseau::sleep(ms(4 - i as u64))?;
                let c = c; // moved in: the closure is `FnOnce`
                *c = i as u32 * factor;
                Ok(&*c)
            }
        }))?;
        assert_eq!(out, [&0, &3, &6, &9]);
        assert_eq!(cells, [0, 3, 6, 9]);
        Ok(())
    });
    r.unwrap();
}

#[test]
fn all_first_failure_wins_over_later_ones() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let later = || -> Result<()> {
            // Cancelled at 5ms, it fails with an error of its own.
            let _ = fuseau::sleep(ms(10));
            Err(Error::from("second"))
        };
        let list: Vec<Box<dyn FnOnce() -> Result<()>>> = vec![
            Box::new(later),
            Box::new(after(HOUR, ())),
            Box::new(fail_after(ms(5), "first")),
        ];
        fuseau::all(list)
    });
    assert_eq!(r.unwrap_err().message(), "first");
    assert_eq!(sim.elapsed(), ms(5));
}

#[test]
fn all_cancels_the_rest_and_waits_for_them() {
    const N: usize = 5;
    let (sim, log, probe) = (Sim::new(), Log::new(), Probe::default());
    let (l, p) = (log.clone(), probe.clone());
    let r = sim.block_on(move || {
        let r = fuseau::all((0..N).map(|i| {
            let l = &l;
            p.task(move || {
                if i == 2 {
                    fuseau::sleep(ms(1))?;
                    return Err(Error::from("boom"));
                }
                sleep_logged(l, &format!("{i}"), HOUR)
            })
        }));
        l.push(format!("all: {}, drops {}", outcome(&r), p.dropped()));
        r
    });
    assert_eq!(r.unwrap_err().message(), "boom");
    let mut entries = log.take();
    assert_eq!(entries.pop().unwrap(), format!("all: Other, drops {N}"));
    entries.sort();
    assert_eq!(
        entries,
        [
            "0: Cancelled (boom)",
            "1: Cancelled (boom)",
            "3: Cancelled (boom)",
            "4: Cancelled (boom)"
        ]
    );
    assert_eq!(sim.elapsed(), ms(1));
}

#[test]
fn all_panic_is_a_panicked_error() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        fuseau::all((0..3).map(|i| {
            move || -> Result<i32> {
                fuseau::yield_now()?;
                assert_ne!(i, 1, "closure {i} panics");
                fuseau::sleep(HOUR)?;
                Ok(i)
            }
        }))
    });
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.message().contains("closure 1 panics"), "{e}");
}

#[test]
fn all_of_ten_thousand() {
    const N: usize = 10_000;
    with_watchdog(|| {
        let sim = Sim::new();
        let r = sim.block_on(|| {
            fuseau::all((0..N).map(|i| {
                move || {
                    fuseau::yield_now()?; // all alive at once
                    Ok(i)
                }
            }))
        });
        assert!(r.unwrap().into_iter().eq(0..N));
        // And the first failure among as many cancels all the rest.
        let probe = Probe::default();
        let p = probe.clone();
        let r = sim.block_on(move || {
            fuseau::all((0..N).map(|i| {
                p.task(move || {
                    if i == N - 1 {
                        return Err(Error::from("last one fails"));
                    }
                    fuseau::sleep(HOUR)
                })
            }))
        });
        assert_eq!(r.unwrap_err().message(), "last one fails");
        assert_eq!(probe.dropped(), N);
        assert_eq!(sim.elapsed(), ms(0));
    });
}

#[test]
fn all_caller_cancelled_while_waiting() {
    let (log, _) = cancel_while_waiting("all", |p| {
        fuseau::all((0..4).map(|_| p.task(|| fuseau::sleep(HOUR))))
    });
    assert_eq!(log, ["all: Cancelled, drops 4"]);
}

#[test]
fn all_cancelled_before_the_call() {
    let probe = call_cancelled_before(|p| fuseau::all((0..3).map(|_| p.task(|| Ok(())))));
    assert_eq!(probe.ran(), 0, "no closure runs in a cancelled fiber");
    assert_eq!(probe.dropped(), 3, "every closure is dropped");
}

#[test]
fn all_cancelled_after_success_keeps_the_results() {
    let r = run_to_be_cancelled(|caller| {
        fuseau::all((1..=3u64).map(|i| {
            move || {
                fuseau::sleep(ms(i))?;
                if i == 3 {
                    caller.cancel(); // once the last one succeeds
                }
                Ok(i)
            }
        }))
    });
    assert_eq!(r.unwrap(), [1, 2, 3]);
}

#[test]
fn all_limited_caps_and_orders() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let (running, most) = (Cell::new(0), Cell::new(0));
        let out = fuseau::all_limited(
            2,
            [30u64, 10, 20, 5, 1].map(|d| {
                let (running, most) = (&running, &most);
                move || {
                    running.set(running.get() + 1);
                    most.set(most.get().max(running.get()));
                    fuseau::sleep(ms(d))?;
                    running.set(running.get() - 1);
                    Ok(d)
                }
            }),
        )?;
        assert_eq!(most.get(), 2);
        Ok(out)
    });
    assert_eq!(r.unwrap(), [30, 10, 20, 5, 1]);
    // 30 and 10; 20 from 10 to 30; then 5 and 1 from 30: done at 35.
    assert_eq!(sim.elapsed(), ms(35));
}

#[test]
fn all_limited_failure_stops_the_rest_from_starting() {
    let (sim, probe) = (Sim::new(), Probe::default());
    let p = probe.clone();
    let result = sim.block_on(move || {
        fuseau::all_limited(
            2,
            (0..10).map(|i| {
                p.task(move || {
                    fuseau::sleep(ms(1))?;
                    if i == 2 {
                        return Err(Error::from("third fails"));
                    }
                    Ok(i)
                })
            }),
        )
    });
    assert_eq!(result.unwrap_err().message(), "third fails");
    assert_eq!(probe.ran(), 4, "0 and 1, then 2 and 3; 2 fails");
    assert_eq!(probe.dropped(), 10, "the others are dropped unrun");
}

#[test]
fn all_limited_caller_cancelled_while_waiting() {
    let (log, probe) = cancel_while_waiting("all_limited", |p| {
        fuseau::all_limited(1, (0..5).map(|_| p.task(|| fuseau::sleep(HOUR))))
    });
    assert_eq!(log, ["all_limited: Cancelled, drops 5"]);
    assert_eq!((probe.ran(), probe.dropped()), (1, 5));
}

// ---------------------------------------------------------------- race

#[test]
fn race_first_success_wins() {
    let sim = Sim::new();
    let r = sim.block_on(|| fuseau::race([30u64, 10, 20].map(|d| after(ms(d), d))));
    assert_eq!(r.unwrap(), 10);
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
fn race_losers_are_cancelled_and_finished_before_it_returns() {
    let sim = Sim::new();
    let r = sim.block_on(move || {
        let (probe, cleanups) = (Probe::default(), RefCell::new(Vec::new()));
        let winner = fuseau::race([("a", 30u64), ("b", 10), ("c", 20)].map(|(name, t)| {
            let cleanups = &cleanups;
            probe.task(move || {
                let r = fuseau::sleep(ms(t));
                // Cleanup that waits, and writes to borrowed data.
                fuseau::shield(|| {
                    fuseau::sleep(ms(5))?;
                    cleanups
                        .borrow_mut()
                        .push(format!("{name}: {}", outcome(&r)));
                    Ok(())
                })?;
                r.map(|()| name)
            })
        }))?;
        assert_eq!(probe.dropped(), 3, "every closure is done and dropped");
        let mut cleanups = cleanups.into_inner();
        cleanups.sort();
        assert_eq!(cleanups, ["a: Cancelled", "b: ok", "c: Cancelled"]);
        Ok(winner)
    });
    assert_eq!(r.unwrap(), "b");
    assert_eq!(
        sim.elapsed(),
        ms(20),
        "b wins at 10ms, cleanups take 5ms each"
    );
}

#[test]
fn race_failure_before_success_does_not_stop_it() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        let list: Vec<Box<dyn FnOnce() -> Result<&'static str>>> = vec![
            Box::new(fail_after(ms(1), "refused")),
            Box::new(after(ms(10), "ok")),
            Box::new(|| panic!("crashed")),
        ];
        fuseau::race(list)
    });
    assert_eq!(r.unwrap(), "ok");
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
fn race_all_failed_gives_the_last_error() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        fuseau::race([
            fail_after::<()>(ms(10), "10"),
            fail_after(ms(30), "30"),
            fail_after(ms(20), "20"),
        ])
    });
    assert_eq!(r.unwrap_err().message(), "30");
}

#[test]
fn race_all_failed_last_one_panicked() {
    let sim = Sim::new();
    let r = sim.block_on(|| {
        fuseau::race((0..3u64).map(|i| {
            move || -> Result<()> {
                fuseau::sleep(ms(i))?;
                assert_ne!(i, 2, "contender {i} panics");
                Err(Error::from("lost"))
            }
        }))
    });
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.message().contains("contender 2 panics"), "{e}");
}

#[test]
fn race_second_success_is_dropped() {
    let (sim, drops) = (Sim::new(), Counter::new());
    let d = drops.clone();
    let r = sim.block_on(move || {
        let v = fuseau::race((1..=2u64).map(|i| {
            let d = d.clone();
            move || {
                // Ignores its cancellation: succeeds all the same.
                fuseau::shield(|| fuseau::sleep(ms(i)))?;
                Ok((i, d.guard()))
            }
        }))?;
        assert_eq!(d.get(), 1, "the second value was dropped");
        Ok(v.0)
    });
    assert_eq!(r.unwrap(), 1);
    assert_eq!(drops.get(), 2);
}

#[test]
fn race_of_nothing_is_an_error() {
    let sim = Sim::new();
    let r = sim.block_on(|| fuseau::race(Vec::<fn() -> Result<u8>>::new()));
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.message().contains("fuseau::race"), "{e}");
}

#[test]
fn race_in_a_deadline_scope_times_out() {
    let (sim, probe) = (Sim::new(), Probe::default());
    let p = probe.clone();
    let r = sim.block_on(move || {
        let r = fuseau::with_timeout(ms(5), || {
            fuseau::race((0..3).map(|_| p.task(|| fuseau::sleep(HOUR))))
        });
        assert_eq!(p.dropped(), 3);
        fuseau::yield_now()?; // the fiber itself is not cancelled
        r
    });
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(sim.elapsed(), ms(5));
}

#[test]
fn race_caller_cancelled_while_waiting() {
    let (log, _) = cancel_while_waiting("race", |p| {
        fuseau::race((0..3).map(|_| p.task(|| fuseau::sleep(HOUR))))
    });
    assert_eq!(log, ["race: Cancelled, drops 3"]);
}

#[test]
fn race_cancelled_before_the_call() {
    let probe = call_cancelled_before(|p| fuseau::race((0..3).map(|_| p.task(|| Ok(())))));
    assert_eq!(probe.ran(), 0, "no closure runs in a cancelled fiber");
    assert_eq!(probe.dropped(), 3);
}

#[test]
fn race_cancelled_by_the_winner_keeps_its_value() {
    let r = run_to_be_cancelled(|caller| {
        fuseau::race((1..=3u64).map(|i| {
            move || {
                fuseau::sleep(ms(i))?;
                caller.cancel(); // the winner cancels the caller, then wins
                Ok(i)
            }
        }))
    });
    assert_eq!(r.unwrap(), 1);
}

#[test]
fn race_won_at_once_while_the_others_never_start() {
    let probe = Probe::default();
    let p = probe.clone();
    let v = run_to_be_cancelled(move |caller| {
        fuseau::race((0..3).map(|i| {
            p.task(move || {
                // The first to run wins without waiting, and cancels the
                // caller: the other two are cancelled before they start.
                caller.cancel();
                Ok(i)
            })
        }))
    });
    assert_eq!(v.unwrap(), 0);
    assert_eq!(probe.ran(), 1);
}
