//! The coop budget: a fiber whose suspension points never have to wait (an
//! always-ready channel, ready futures) still yields after a budget of
//! them, so other fibers, timers and other threads' messages get their
//! turn. Deterministic: a virtual clock, and progress counted in
//! suspension points, never in time.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Sim;
use fuseau::{await_event, ev_future, spawn_from_anywhere, yield_now, AsFiber, Chan, Result};

/// Tokio's budget, and ours: suspension points in a row that did not wait.
const BUDGET: u64 = 128;
/// A cap on every busy loop, so a starving test fails instead of hanging.
const CAP: u64 = 1_000_000;

/// Passes two suspension points that never wait (a send and a receive on
/// a channel with room); returns the spinner's step counter afterwards.
fn ready_round_trip(chan: &Chan<u64>, steps: &Cell<u64>) -> Result<()> {
    chan.send(steps.get())?;
    chan.recv()?;
    steps.set(steps.get() + 2);
    assert!(steps.get() < CAP, "the other side never ran");
    Ok(())
}

/// Runs a spinner, which calls `step` (suspension points that never wait,
/// counting them in the counter it is given) until an observer fiber has
/// taken `turns` turns, each a `yield_now`; returns the spinner's count
/// at the start of each of the observer's turns.
fn observe_spinner(turns: usize, step: impl Fn(&Cell<u64>) -> Result<()> + 'static) -> Vec<u64> {
    let sim = Sim::new();
    let steps = Rc::new(Cell::new(0u64));
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let (s, log) = (steps.clone(), seen.clone());
    let observer = sim.spawn(move || {
        for _ in 0..turns {
            log.borrow_mut().push(s.get());
            yield_now()?;
        }
        Ok(())
    });
    let o = observer.as_any_fiber();
    let spinner = sim.spawn(move || {
        while !o.is_done() {
            step(&steps)?;
        }
        Ok(())
    });
    sim.run_until(|| spinner.is_done());
    spinner.join().unwrap();
    seen.take()
}

#[test]
fn a_fiber_on_an_always_ready_channel_lets_the_others_run() {
    let chan = Chan::bounded(1);
    let seen = observe_spinner(20, move |steps| ready_round_trip(&chan, steps));
    assert_eq!(seen.len(), 20, "{seen:?}");
    for pair in seen.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap > 0, "the busy fiber ran between the observer's turns");
        // Counted per round trip (two suspension points), so the turn's
        // last one may be cut in half by the yield.
        assert!(
            gap <= BUDGET + 2,
            "it passed {gap} suspension points in one turn"
        );
    }
}

#[test]
fn a_fiber_awaiting_ready_futures_lets_the_others_run() {
    let sim = Sim::new();
    let polls = Rc::new(Cell::new(0u64));
    let p = polls.clone();
    let other_ran = Rc::new(Cell::new(false));
    let o = other_ran.clone();
    // The busy fiber runs first.
    let spinner = sim.spawn(move || {
        while !o.get() {
            await_event(ev_future(std::future::ready(())))?;
            p.set(p.get() + 1);
            assert!(p.get() < CAP, "the other fiber never ran");
        }
        Ok(())
    });
    sim.spawn(move || {
        other_ran.set(true);
        Ok(())
    });
    sim.run_until(|| spinner.is_done());
    spinner.join().unwrap();
    // A budget of them, then the one that yielded, which completes after
    // the other fiber ran.
    assert!(
        polls.get() <= BUDGET + 1,
        "{} ready futures before the other ran",
        polls.get()
    );
}

/// A sleeper next to a busy fiber wakes when its timer is due: each
/// scheduler iteration is one virtual millisecond here, and the busy fiber
/// ends an iteration after each budget.
#[test]
fn a_sleeper_wakes_on_time_beside_a_busy_fiber() {
    let sim = Sim::new();
    let woke_at = Rc::new(Cell::new(None));
    let (w, clock) = (woke_at.clone(), Rc::new(Cell::new(Duration::ZERO)));
    let c = clock.clone();
    let sleeper = sim.spawn(move || {
        fuseau::sleep(Duration::from_millis(20))?;
        w.set(Some(c.get()));
        Ok(())
    });
    let steps = Rc::new(Cell::new(0u64));
    let (s, sl) = (steps.clone(), sleeper.as_any_fiber());
    let spinner = sim.spawn(move || {
        let chan = Chan::bounded(1);
        while !sl.is_done() {
            ready_round_trip(&chan, &s)?;
        }
        Ok(())
    });
    while !spinner.is_done() {
        sim.sched.run_iteration();
        sim.advance(Duration::from_millis(1));
        clock.set(sim.elapsed());
        assert!(
            sim.elapsed() < Duration::from_secs(10),
            "the sleeper never woke"
        );
    }
    let woke = woke_at.get().expect("the sleeper woke");
    assert!(woke <= Duration::from_millis(21), "it woke at {woke:?}");
    assert!(steps.get() <= 22 * BUDGET, "{} steps ran", steps.get());
}

/// A message from another thread (here a remote spawn) waits for at most
/// one budget of a busy fiber: the scheduler takes its messages in when
/// the busy fiber yields, and queues what they wake ahead of it.
#[test]
fn a_message_from_another_thread_waits_for_at_most_one_budget() {
    let sim = Sim::new();
    let handle = sim.sched.handle();
    let steps = Rc::new(Cell::new(0u64));
    let sent_at = Rc::new(Cell::new(0u64));
    let arrived = Arc::new(AtomicBool::new(false));
    let (s, sent, a) = (steps.clone(), sent_at.clone(), arrived.clone());
    let spinner = sim.spawn(move || {
        let chan = Chan::bounded(1);
        while !a.load(Ordering::SeqCst) {
            ready_round_trip(&chan, &s)?;
            if s.get() == 1_000 {
                // Halfway through a budget, another thread spawns a fiber
                // here; the spinner goes on at once.
                sent.set(s.get());
                let (handle, a) = (handle.clone(), a.clone());
                std::thread::spawn(move || {
                    spawn_from_anywhere(&handle, move || {
                        a.store(true, Ordering::SeqCst);
                        Ok(())
                    });
                })
                .join()
                .unwrap();
            }
        }
        Ok(s.get())
    });
    sim.run_until(|| spinner.is_done());
    let stopped = spinner.join().unwrap();
    let waited = stopped - sent_at.get();
    assert!(
        waited <= BUDGET,
        "the message waited {waited} suspension points"
    );
}

/// A fiber that waits now and then keeps its FIFO turn: the budget only
/// counts suspension points in a row that did not wait.
#[test]
fn fibers_that_wait_keep_their_fifo_order() {
    let sim = Sim::new();
    let log = Rc::new(std::cell::RefCell::new(Vec::new()));
    for name in ["a", "b", "c"] {
        let log = log.clone();
        sim.spawn(move || {
            for round in 0..3 {
                for _ in 0..100 {
                    // Ready, under the budget: no yield in between.
                    await_event(ev_future(std::future::ready(())))?;
                }
                log.borrow_mut().push(format!("{name}{round}"));
                yield_now()?;
            }
            Ok(())
        });
    }
    sim.run_until_idle();
    assert_eq!(
        log.take(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
}

/// Cancelled while it waits for its turn after a budget, a busy fiber's
/// suspension point returns the cancellation, and nothing is lost: the
/// operation it was about to do is not done.
#[test]
fn a_busy_fiber_cancelled_at_its_forced_yield_loses_nothing() {
    let sim = Sim::new();
    let chan = Chan::bounded(1);
    let c = chan.clone();
    let sent = Rc::new(Cell::new(0u64));
    let received = Rc::new(Cell::new(0u64));
    let (s, r) = (sent.clone(), received.clone());
    let spinner = fuseau::Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn_on(&sim.sched, move || -> Result<()> {
            loop {
                c.send(s.get())?;
                s.set(s.get() + 1);
                c.recv()?;
                r.set(r.get() + 1);
                assert!(s.get() < CAP);
            }
        })
        .unwrap();
    let target = spinner.as_any_fiber();
    sim.spawn(move || {
        // Runs when the spinner yielded its first budget.
        target.cancel();
        Ok(())
    });
    sim.run_until(|| spinner.is_done());
    let e = spinner.join().unwrap_err();
    assert_eq!(e.kind(), fuseau::ErrorKind::Cancelled);
    assert!(sent.get() >= BUDGET / 2, "it ran a whole budget first");
    assert_eq!(
        chan.len() as u64,
        sent.get() - received.get(),
        "every value sent is either received or still in the channel"
    );
}

#[test]
fn a_loop_of_checkpoints_yields_after_the_budget() {
    let seen = observe_spinner(5, |steps| {
        fuseau::checkpoint()?;
        steps.set(steps.get() + 1);
        assert!(steps.get() < CAP, "the observer never ran");
        Ok(())
    });
    assert_eq!(seen.len(), 5, "{seen:?}");
    // The spinner passes a budget of checkpoints between two turns of the
    // observer: the 129th yields (and counts once it resumes).
    for pair in seen.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((BUDGET..=BUDGET + 1).contains(&gap), "{seen:?}");
    }
}

#[test]
fn a_checkpoint_fails_once_the_fiber_is_cancelled_and_outside_a_fiber() {
    let sim = Sim::new();
    let outcomes = Rc::new(std::cell::RefCell::new(Vec::new()));
    let o = outcomes.clone();
    let fiber = sim.spawn(move || {
        o.borrow_mut().push(fuseau::checkpoint().is_ok());
        let never = Chan::<u8>::new();
        let _ = never.recv(); // cancelled while waiting here; ignored
        let after = fuseau::checkpoint();
        o.borrow_mut().push(after.is_ok());
        after
    });
    sim.run_until(|| outcomes.borrow().len() == 1);
    fiber.cancel();
    sim.run_until(|| fiber.is_done());
    assert!(fiber.join().unwrap_err().is_cancelled());
    assert_eq!(*outcomes.borrow(), [true, false]);
    let e = fuseau::checkpoint().unwrap_err();
    assert_eq!(e.kind(), fuseau::ErrorKind::NotInFiber);
}
