//! FIFO scheduling: exact interleavings, compared to expected transcripts.

mod common;

use common::{ms, Log, Sim, HOUR};
use fuseau::{Config, Iteration};

fn strings(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|s| s.to_string()).collect()
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_queues_and_the_spawner_keeps_running() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        l.push("m1");
        let la = l.clone();
        let a = fuseau::spawn(move || {
            la.push("A");
            Ok(())
        });
        let lb = l.clone();
        let b = fuseau::spawn(move || {
            lb.push("B1");
            fuseau::yield_now()?;
            lb.push("B2");
            Ok(())
        });
        l.push("m2");
        fuseau::yield_now()?;
        l.push("m3");
        a.join()?;
        b.join()?;
        l.push("m4");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        strings(&["m1", "m2", "A", "B1", "m3", "B2", "m4"])
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn yield_now_goes_to_the_back_of_the_queue() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let fibers: Vec<_> = ["A", "B", "C"]
            .into_iter()
            .map(|name| {
                let l = l.clone();
                fuseau::spawn(move || {
                    for i in 1..=3 {
                        l.push(format!("{name}{i}"));
                        fuseau::yield_now()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for f in fibers {
            f.join()?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        strings(&["A1", "B1", "C1", "A2", "B2", "C2", "A3", "B3", "C3"])
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn sleepers_wake_in_deadline_order_then_arming_order() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let fibers: Vec<_> = [("A", 30), ("B", 10), ("C", 20), ("D", 10), ("E", 0)]
            .into_iter()
            .map(|(name, d)| {
                let l = l.clone();
                fuseau::spawn(move || {
                    fuseau::sleep(ms(d))?;
                    l.push(name);
                    Ok(())
                })
            })
            .collect();
        for f in fibers {
            f.join()?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), strings(&["E", "B", "D", "C", "A"]));
    assert_eq!(sim.elapsed(), ms(30));
}

#[test]
#[cfg_attr(miri, ignore)]
fn woken_fibers_run_in_wake_order() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let spawn_sleeper = |name: &'static str| {
            let l = l.clone();
            fuseau::spawn(move || {
                let r = fuseau::sleep(HOUR);
                l.push(format!("{name} {}", r.is_err()));
                r
            })
        };
        let a = spawn_sleeper("A");
        let b = spawn_sleeper("B");
        let c = spawn_sleeper("C");
        fuseau::yield_now()?; // all three are asleep now
        l.push("cancel");
        b.cancel();
        c.cancel();
        a.cancel();
        // The joins fail: the children were cancelled on purpose.
        for f in [a, b, c] {
            assert!(f.join().unwrap_err().is_cancelled());
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        strings(&["cancel", "B true", "C true", "A true"])
    );
    assert_eq!(sim.elapsed(), ms(0), "no timer had to fire");
}

#[test]
#[cfg_attr(miri, ignore)]
fn joiners_wake_in_completion_order() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let targets: Vec<_> = [30, 10, 20]
            .into_iter()
            .map(|d| fuseau::spawn(move || fuseau::sleep(ms(d)).map(|()| d)))
            .collect();
        let joiners: Vec<_> = targets
            .into_iter()
            .map(|t| {
                let l = l.clone();
                fuseau::spawn(move || {
                    let d = t.join()?;
                    l.push(format!("joined {d}"));
                    Ok(())
                })
            })
            .collect();
        for j in joiners {
            j.join()?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        strings(&["joined 10", "joined 20", "joined 30"])
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn micro_tasks_run_after_the_fiber_suspends_and_before_the_next_fiber() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let la = l.clone();
        let a = fuseau::spawn(move || {
            la.push("A");
            Ok(())
        });
        let lm = l.clone();
        fuseau::schedule_micro_task(move || lm.push("micro 1"))?;
        let lm = l.clone();
        fuseau::schedule_micro_task(move || {
            lm.push("micro 2");
            // A micro-task may queue another; it runs in the same batch.
            let lm2 = lm.clone();
            fuseau::schedule_micro_task(move || lm2.push("micro 3")).unwrap();
        })?;
        l.push("main before yield");
        fuseau::yield_now()?;
        l.push("main after yield");
        a.join()
    })
    .unwrap();
    assert_eq!(
        log.take(),
        strings(&[
            "main before yield",
            "micro 1",
            "micro 2",
            "micro 3",
            "A",
            "main after yield"
        ])
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_run_of_a_program_is_deterministic() {
    fn program() -> Vec<String> {
        let sim = Sim::new();
        let log = Log::new();
        let l = log.clone();
        sim.block_on(move || {
            let mut fibers = Vec::new();
            for i in 0..20u64 {
                let l = l.clone();
                fibers.push(fuseau::spawn(move || {
                    for step in 0..(i % 4) {
                        l.push(format!("{i}.{step}"));
                        if i % 3 == 0 {
                            fuseau::sleep(ms(i % 5))?;
                        } else {
                            fuseau::yield_now()?;
                        }
                    }
                    Ok(())
                }));
            }
            for f in fibers {
                f.join()?;
            }
            Ok(())
        })
        .unwrap();
        log.take()
    }
    let first = program();
    assert!(first.len() > 20);
    for _ in 0..3 {
        assert_eq!(program(), first);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn run_iteration_respects_the_budget() {
    let sim = Sim::with_config(Config::new().budget(2));
    let log = Log::new();
    for name in ["A", "B", "C", "D", "E"] {
        let l = log.clone();
        sim.spawn(move || {
            l.push(name);
            Ok(())
        });
    }
    assert_eq!(sim.sched.run_iteration(), Iteration::Busy);
    assert_eq!(log.snapshot(), strings(&["A", "B"]));
    assert_eq!(sim.sched.run_iteration(), Iteration::Busy);
    assert_eq!(log.snapshot(), strings(&["A", "B", "C", "D"]));
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle { deadline: None }
    );
    assert_eq!(log.take(), strings(&["A", "B", "C", "D", "E"]));
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn idle_reports_the_next_deadline() {
    let sim = Sim::new();
    let start = sim.sched.now();
    let f = sim.spawn(|| fuseau::sleep(ms(250)));
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle {
            deadline: Some(start + ms(250))
        }
    );
    assert!(!f.is_done());
    sim.advance(ms(249));
    sim.run_until_idle();
    assert!(!f.is_done(), "the timer is not due yet");
    sim.advance(ms(1));
    assert_eq!(
        sim.sched.run_iteration(),
        Iteration::Idle { deadline: None }
    );
    assert!(f.is_done());
    f.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn fiber_ids_grow_with_spawning_order() {
    let sim = Sim::new();
    sim.block_on(|| {
        let me = fuseau::AnyFiber::current();
        let a = fuseau::spawn(|| Ok(()));
        let b = fuseau::spawn(|| Ok(()));
        assert!(me.id() < a.id() && a.id() < b.id());
        assert_eq!(a.any(), a.any());
        assert_ne!(a.any(), b.any());
        assert_eq!(me.name(), None);
        let named = fuseau::Builder::new().name("worker").spawn(|| Ok(()));
        assert_eq!(named.name(), Some("worker"));
        assert_eq!(named.any().name(), Some("worker"));
        assert!(format!("{named:?}").contains("worker"));
        a.join()?;
        b.join()?;
        named.join()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn block_on_runs_fibers_in_fifo_order_too() {
    let log = Log::new();
    let l = log.clone();
    fuseau::block_on(move || {
        let la = l.clone();
        let a = fuseau::spawn(move || {
            la.push("A");
            Ok(())
        });
        l.push("main");
        fuseau::sleep(ms(1))?;
        l.push("main woke");
        a.join()
    })
    .unwrap();
    assert_eq!(log.take(), strings(&["main", "A", "main woke"]));
}
