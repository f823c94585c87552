//! `both`, `all`, `all_limited` and `race`: results and their order,
//! borrowed inputs, failure and cancellation of the rest, panics, the
//! caller's cancellation (before, while waiting, after success), deadlines,
//! and a large input. Virtual time (`Sim`), ordered logs, drop counters.

mod common;

use std::cell::{Cell, RefCell};
use std::error::Error as _;

use common::{ms, note, outcome, with_watchdog, Counter, Log, Sim, Slot, HOUR};
use fuseau::{AnyFiber, Error, ErrorKind, Fiber, Result};

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

/// A closure that sleeps `d` then returns `v` (or fails with `v` as
/// message, when `fail`).
fn after<T: 'static>(d: std::time::Duration, v: T) -> impl FnOnce() -> Result<T> {
    move || {
        fuseau::sleep(d)?;
        Ok(v)
    }
}

fn fail_after<T>(d: std::time::Duration, msg: &'static str) -> impl FnOnce() -> Result<T> {
    move || {
        fuseau::sleep(d)?;
        Err(Error::from(msg))
    }
}

/// Spawns `body` as a root fiber, runs until it waits, cancels it, and
/// runs until it is done.
fn cancel_while_waiting<T: 'static>(
    sim: &Sim,
    body: impl FnOnce() -> Result<T> + 'static,
) -> Fiber<T> {
    let worker = sim.spawn(body);
    sim.run_until_idle();
    assert!(!worker.is_done());
    worker.cancel();
    sim.run_until(|| worker.is_done());
    worker
}

/// Runs `body` in a root fiber that is cancelled before `body` starts;
/// returns `body`'s result, having checked that the fiber's next
/// suspension point fails.
fn run_cancelled<T: 'static>(body: impl FnOnce() -> Result<T> + 'static) -> Result<T> {
    let sim = Sim::new();
    sim.block_on(|| {
        AnyFiber::current().cancel();
        let r = body();
        assert!(fuseau::yield_now().unwrap_err().is_cancelled());
        Ok(r)
    })
    .expect("the fiber returns body's result")
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
    let sim = Sim::new();
    let (drops, log) = (Counter::new(), Log::new());
    let (d, l) = (drops.clone(), log.clone());
    let worker = cancel_while_waiting(&sim, move || {
        let (g1, g2) = (d.guard(), d.guard());
        let r = fuseau::both(
            move || {
                let _g = g1;
                fuseau::sleep(HOUR)
            },
            move || {
                let _g = g2;
                fuseau::sleep(HOUR)
            },
        );
        l.push(format!("both: {}, drops {}", outcome(&r), d.get()));
        r
    });
    assert!(worker.join().unwrap_err().is_cancelled());
    assert_eq!(log.take(), ["both: Cancelled, drops 2"]);
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
    let ran = std::rc::Rc::new(Cell::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let r = run_cancelled(move || {
        fuseau::both(
            move || {
                r1.set(r1.get() + 1);
                Ok(())
            },
            move || {
                r2.set(r2.get() + 1);
                Ok(())
            },
        )
    });
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(ran.get(), 0, "no closure runs in a cancelled fiber");
}

#[test]
fn both_cancelled_after_success_keeps_the_result() {
    let sim = Sim::new();
    let me = Slot::<AnyFiber>::new();
    let m = me.clone();
    let worker = sim.spawn(move || {
        let caller = m.take();
        let r = fuseau::both(after(ms(1), 1), || {
            fuseau::sleep(ms(2))?;
            caller.cancel(); // the caller, once this closure succeeds
            Ok(2)
        });
        assert_eq!(r.unwrap(), (1, 2));
        fuseau::yield_now() // the next suspension point fails
    });
    me.put(worker.any());
    sim.run_until(|| worker.is_done());
    assert!(worker.join().unwrap_err().is_cancelled());
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
    let (sim, log, drops) = (Sim::new(), Log::new(), Counter::new());
    let (l, d) = (log.clone(), drops.clone());
    let r = sim.block_on(move || {
        let r = fuseau::all((0..N).map(|i| {
            let (guard, l) = (d.guard(), &l);
            move || {
                let _guard = guard;
                if i == 2 {
                    fuseau::sleep(ms(1))?;
                    return Err(Error::from("boom"));
                }
                sleep_logged(l, &format!("{i}"), HOUR)
            }
        }));
        l.push(format!("all: {}, drops {}", outcome(&r), d.get()));
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
        let drops = Counter::new();
        let d = drops.clone();
        let r = sim.block_on(move || {
            fuseau::all((0..N).map(|i| {
                let guard = d.guard();
                move || {
                    let _guard = guard;
                    if i == N - 1 {
                        return Err(Error::from("last one fails"));
                    }
                    fuseau::sleep(HOUR)
                }
            }))
        });
        assert_eq!(r.unwrap_err().message(), "last one fails");
        assert_eq!(drops.get(), N);
        assert_eq!(sim.elapsed(), ms(0));
    });
}

#[test]
fn all_caller_cancelled_while_waiting() {
    let sim = Sim::new();
    let (drops, log) = (Counter::new(), Log::new());
    let (d, l) = (drops.clone(), log.clone());
    let worker = cancel_while_waiting(&sim, move || {
        let r = fuseau::all((0..4).map(|_| {
            let guard = d.guard();
            move || {
                let _guard = guard;
                fuseau::sleep(HOUR)
            }
        }));
        l.push(format!("all: {}, drops {}", outcome(&r), d.get()));
        r
    });
    assert!(worker.join().unwrap_err().is_cancelled());
    assert_eq!(log.take(), ["all: Cancelled, drops 4"]);
}

#[test]
fn all_cancelled_before_the_call() {
    let (ran, drops) = (std::rc::Rc::new(Cell::new(0)), Counter::new());
    let (r, d) = (ran.clone(), drops.clone());
    let result = run_cancelled(move || {
        fuseau::all((0..3).map(|_| {
            let (ran, guard) = (r.clone(), d.guard());
            move || {
                let _guard = guard;
                ran.set(ran.get() + 1);
                Ok(())
            }
        }))
    });
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!(ran.get(), 0, "no closure runs in a cancelled fiber");
    assert_eq!(drops.get(), 3, "every closure is dropped");
}

#[test]
fn all_cancelled_after_success_keeps_the_results() {
    let sim = Sim::new();
    let me = Slot::<AnyFiber>::new();
    let m = me.clone();
    let worker = sim.spawn(move || {
        let caller = m.take();
        let caller = &caller;
        let r = fuseau::all((1..=3u64).map(|i| {
            move || {
                fuseau::sleep(ms(i))?;
                if i == 3 {
                    caller.cancel(); // once the last one succeeds
                }
                Ok(i)
            }
        }));
        assert_eq!(r.unwrap(), [1, 2, 3]);
        fuseau::yield_now()
    });
    me.put(worker.any());
    sim.run_until(|| worker.is_done());
    assert!(worker.join().unwrap_err().is_cancelled());
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
    let sim = Sim::new();
    let (ran, drops) = (std::rc::Rc::new(Cell::new(0)), Counter::new());
    let (r, d) = (ran.clone(), drops.clone());
    let result = sim.block_on(move || {
        fuseau::all_limited(
            2,
            (0..10).map(|i| {
                let (ran, guard) = (r.clone(), d.guard());
                move || {
                    let _guard = guard;
                    ran.set(ran.get() + 1);
                    fuseau::sleep(ms(1))?;
                    if i == 2 {
                        return Err(Error::from("third fails"));
                    }
                    Ok(i)
                }
            }),
        )
    });
    assert_eq!(result.unwrap_err().message(), "third fails");
    assert_eq!(ran.get(), 4, "0 and 1, then 2 and 3; 2 fails");
    assert_eq!(drops.get(), 10, "the others are dropped unrun");
}

#[test]
fn all_limited_caller_cancelled_while_waiting() {
    let sim = Sim::new();
    let (ran, drops) = (std::rc::Rc::new(Cell::new(0)), Counter::new());
    let (r, d) = (ran.clone(), drops.clone());
    let worker = cancel_while_waiting(&sim, move || {
        fuseau::all_limited(
            1,
            (0..5).map(|_| {
                let (ran, guard) = (r.clone(), d.guard());
                move || {
                    let _guard = guard;
                    ran.set(ran.get() + 1);
                    fuseau::sleep(HOUR)
                }
            }),
        )
    });
    assert!(worker.join().unwrap_err().is_cancelled());
    assert_eq!((ran.get(), drops.get()), (1, 5));
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
    let (sim, drops) = (Sim::new(), Counter::new());
    let d = drops.clone();
    let r = sim.block_on(move || {
        let cleanups = RefCell::new(Vec::new());
        let winner = fuseau::race([("a", 30u64), ("b", 10), ("c", 20)].map(|(name, t)| {
            let (guard, cleanups) = (d.guard(), &cleanups);
            move || {
                let _guard = guard;
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
            }
        }))?;
        assert_eq!(d.get(), 3, "every closure is done and dropped");
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
    let (sim, drops) = (Sim::new(), Counter::new());
    let d = drops.clone();
    let r = sim.block_on(move || {
        let r = fuseau::with_timeout(ms(5), || {
            fuseau::race((0..3).map(|_| {
                let guard = d.guard();
                move || {
                    let _guard = guard;
                    fuseau::sleep(HOUR)
                }
            }))
        });
        assert_eq!(d.get(), 3);
        fuseau::yield_now()?; // the fiber itself is not cancelled
        r
    });
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(sim.elapsed(), ms(5));
}

#[test]
fn race_caller_cancelled_while_waiting() {
    let sim = Sim::new();
    let (drops, log) = (Counter::new(), Log::new());
    let (d, l) = (drops.clone(), log.clone());
    let worker = cancel_while_waiting(&sim, move || {
        let r = fuseau::race((0..3).map(|_| {
            let guard = d.guard();
            move || {
                let _guard = guard;
                fuseau::sleep(HOUR)
            }
        }));
        l.push(format!("race: {}, drops {}", outcome(&r), d.get()));
        r
    });
    assert!(worker.join().unwrap_err().is_cancelled());
    assert_eq!(log.take(), ["race: Cancelled, drops 3"]);
}

#[test]
fn race_cancelled_before_the_call() {
    let (ran, drops) = (std::rc::Rc::new(Cell::new(0)), Counter::new());
    let (r, d) = (ran.clone(), drops.clone());
    let result = run_cancelled(move || {
        fuseau::race((0..3).map(|_| {
            let (ran, guard) = (r.clone(), d.guard());
            move || {
                let _guard = guard;
                ran.set(ran.get() + 1);
                Ok(())
            }
        }))
    });
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!(ran.get(), 0, "no closure runs in a cancelled fiber");
    assert_eq!(drops.get(), 3);
}

#[test]
fn race_cancelled_by_the_winner_keeps_its_value() {
    let sim = Sim::new();
    let me = Slot::<AnyFiber>::new();
    let m = me.clone();
    let worker = sim.spawn(move || {
        let caller = m.take();
        let caller = &caller;
        let r = fuseau::race((1..=3u64).map(|i| {
            move || {
                fuseau::sleep(ms(i))?;
                caller.cancel(); // the winner cancels the caller, then wins
                Ok(i)
            }
        }));
        assert_eq!(r.unwrap(), 1);
        fuseau::yield_now()
    });
    me.put(worker.any());
    sim.run_until(|| worker.is_done());
    assert!(worker.join().unwrap_err().is_cancelled());
}

#[test]
fn race_won_at_once_while_the_others_never_start() {
    let (sim, ran) = (Sim::new(), std::rc::Rc::new(Cell::new(0)));
    let me = Slot::<AnyFiber>::new();
    let (m, r) = (me.clone(), ran.clone());
    let worker = sim.spawn(move || {
        let caller = m.take();
        let caller = &caller;
        let v = fuseau::race((0..3).map(|i| {
            let ran = r.clone();
            move || {
                ran.set(ran.get() + 1);
                // The first to run wins without waiting, and cancels the
                // caller: the other two are cancelled before they start.
                caller.cancel();
                Ok(i)
            }
        }));
        assert_eq!(v.unwrap(), 0);
        fuseau::yield_now()
    });
    me.put(worker.any());
    sim.run_until(|| worker.is_done());
    assert!(worker.join().unwrap_err().is_cancelled());
    assert_eq!(ran.get(), 1);
}
