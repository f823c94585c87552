//! Suspension points inside destructors that run while a fiber unwinds.
//!
//! A fiber unwinding a panic must never suspend: other fibers would then run
//! while the thread counts as panicking (`std::thread::panicking()` is true,
//! and every mutex guard they drop poisons its mutex). So `sleep`,
//! `yield_now`, `Chan::recv` … fail at once with kind `Other` there. While
//! the scheduler force-unwinds a fiber at disposal, the same calls return the
//! fiber's cancellation error.

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ms, Counter, Sim, HOUR};
use fuseau::{select, When};
use fuseau::{Builder, Chan, Error, ErrorKind, Result};

/// What each suspension point returned inside a destructor.
type Outcomes = Rc<RefCell<Vec<(&'static str, std::result::Result<(), Error>)>>>;

/// Calls every kind of suspension point when dropped, and records what each
/// returned (and whether the thread was panicking then).
struct WaitOnDrop {
    outcomes: Outcomes,
    panicking: Rc<Cell<Option<bool>>>,
    empty: Chan<u32>,
    full: Chan<u32>,
    sleeper: Option<fuseau::Fiber<()>>,
}

impl Drop for WaitOnDrop {
    fn drop(&mut self) {
        self.panicking.set(Some(std::thread::panicking()));
        let mut out = self.outcomes.borrow_mut();
        out.push(("sleep", fuseau::sleep(HOUR)));
        out.push(("sleep(0)", fuseau::sleep(Duration::ZERO)));
        out.push(("yield_now", fuseau::yield_now()));
        out.push(("recv", self.empty.recv().map(drop)));
        out.push(("send", self.full.send(99)));
        out.push((
            "select",
            select(vec![
                When::new(self.empty.ev_recv(), drop),
                When::new(fuseau::ev_timeout(HOUR), |()| ()),
            ]),
        ));
        if let Some(sleeper) = self.sleeper.take() {
            out.push(("join", sleeper.join()));
        }
    }
}

struct Probe {
    outcomes: Outcomes,
    panicking: Rc<Cell<Option<bool>>>,
    empty: Chan<u32>,
    full: Chan<u32>,
}

impl Probe {
    fn new() -> Probe {
        let full = Chan::bounded(1);
        full.try_send(1).unwrap();
        Probe {
            outcomes: Rc::default(),
            panicking: Rc::default(),
            empty: Chan::new(),
            full,
        }
    }

    fn guard(&self, sleeper: Option<fuseau::Fiber<()>>) -> WaitOnDrop {
        WaitOnDrop {
            outcomes: self.outcomes.clone(),
            panicking: self.panicking.clone(),
            empty: self.empty.clone(),
            full: self.full.clone(),
            sleeper,
        }
    }

    fn outcomes(&self) -> Vec<(&'static str, std::result::Result<(), Error>)> {
        self.outcomes.take()
    }
}

/// Yields in a loop until `stop`, recording whether it ever ran while the
/// thread was panicking, and whether a mutex it locks got poisoned.
#[derive(Clone, Default)]
struct Watcher {
    stop: Rc<Cell<bool>>,
    seen_panicking: Rc<Cell<bool>>,
    poisoned: Rc<Cell<bool>>,
}

impl Watcher {
    fn spawn(&self, sim: &Sim) -> fuseau::Fiber<usize> {
        let w = self.clone();
        sim.spawn(move || w.run())
    }

    fn run(&self) -> Result<usize> {
        let mutex = std::sync::Mutex::new(0);
        let mut rounds = 0;
        while !self.stop.get() {
            if std::thread::panicking() {
                self.seen_panicking.set(true);
            }
            *mutex.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            if mutex.is_poisoned() {
                self.poisoned.set(true);
            }
            rounds += 1;
            fuseau::yield_now()?;
        }
        Ok(rounds)
    }

    /// Stops the watcher and checks what it saw.
    fn finish(&self, sim: &Sim, fiber: fuseau::Fiber<usize>) {
        self.stop.set(true);
        sim.run_until(|| fiber.is_done());
        assert!(fiber.join().unwrap() > 0, "the watcher never ran");
        assert!(
            !self.seen_panicking.get(),
            "another fiber ran while the thread was panicking"
        );
        assert!(!self.poisoned.get(), "another fiber's mutex was poisoned");
    }
}

/// Runs iterations without moving the clock until `done()`; panics if that
/// takes more than a few thousand (a fiber that suspended in a destructor
/// waits for an hour of virtual time that never passes).
fn run_without_time(sim: &Sim, what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        sim.sched.run_iteration();
    }
    panic!("{what} never finished: it suspended");
}

#[test]
#[cfg_attr(miri, ignore)]
fn waiting_in_a_destructor_while_unwinding_a_panic_fails_at_once() {
    let sim = Sim::new();
    let probe = Probe::new();
    let watcher = Watcher::default();
    let watching = watcher.spawn(&sim);
    let sleeper = sim.spawn(|| fuseau::sleep(HOUR));
    let guard = probe.guard(Some(sleeper));
    let panicker = sim.spawn(move || -> Result<()> {
        let _guard = guard;
        fuseau::yield_now()?;
        panic!("boom {}", 7);
    });
    run_without_time(&sim, "the panicking fiber", || panicker.is_done());
    assert_eq!(probe.panicking.get(), Some(true));

    let outcomes = probe.outcomes();
    let names: Vec<_> = outcomes.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "sleep",
            "sleep(0)",
            "yield_now",
            "recv",
            "send",
            "select",
            "join"
        ]
    );
    for (name, outcome) in outcomes {
        let e = outcome.expect_err(name);
        assert_eq!(e.kind(), ErrorKind::Other, "{name}: {e:?}");
    }
    // The send that failed sent nothing; the channels are as they were.
    assert_eq!(probe.full.len(), 1);
    assert_eq!(probe.empty.len(), 0);

    // The panic, not the destructor's errors, is the fiber's result.
    let e = panicker.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "boom 7");

    watcher.finish(&sim, watching);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_value_waiting_in_a_channel_is_not_lost_by_a_recv_while_unwinding() {
    let sim = Sim::new();
    let chan = Chan::new();
    chan.try_send(5u32).unwrap();
    let got = Rc::new(RefCell::new(None));
    struct RecvOnDrop(Chan<u32>, Rc<RefCell<Option<Result<u32>>>>);
    impl Drop for RecvOnDrop {
        fn drop(&mut self) {
            *self.1.borrow_mut() = Some(self.0.recv());
        }
    }
    let guard = RecvOnDrop(chan.clone(), got.clone());
    let panicker = sim.spawn(move || -> Result<()> {
        let _guard = guard;
        panic!("boom");
    });
    sim.run_until(|| panicker.is_done());
    assert!(panicker.join().unwrap_err().is_panic());
    // Either the value was handed over, or it is still in the channel.
    match got.take().expect("the destructor ran") {
        Ok(v) => {
            assert_eq!(v, 5);
            assert!(chan.is_empty());
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Other, "{e:?}");
            assert_eq!(chan.try_recv().unwrap(), 5);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_caught_inside_the_fiber_does_not_stop_later_waits() {
    let sim = Sim::new();
    let probe = Probe::new();
    let guard = probe.guard(None);
    let fiber = sim.spawn(move || {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = guard;
            panic!("caught");
        }));
        assert!(caught.is_err());
        // The unwinding is over: waiting works again.
        fuseau::sleep(ms(10))?;
        fuseau::yield_now()?;
        Ok(std::thread::panicking())
    });
    sim.run_until(|| fiber.is_done());
    assert!(!fiber.join().unwrap(), "still panicking after the catch");
    assert_eq!(sim.elapsed(), ms(10));
    for (name, outcome) in probe.outcomes() {
        assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Other, "{name}");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn during_a_forced_unwind_at_dispose_waits_return_the_cancellation() {
    let sim = Sim::new();
    let probe = Probe::new();
    let guard = probe.guard(None);
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    // Ignores its cancellation, so only a forced unwind can end it.
    let stubborn = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn_on(&sim.sched, move || -> Result<()> {
            let _guard = guard;
            s.set(true);
            loop {
                let _ = fuseau::sleep(HOUR);
                let _ = fuseau::yield_now();
            }
        })
        .unwrap();
    sim.run_until_idle();
    assert!(started.get());
    assert!(probe.outcomes().is_empty());

    sim.sched.dispose();
    assert!(stubborn.is_done());
    assert_eq!(
        probe.panicking.get(),
        Some(true),
        "the guard was dropped by the forced unwind"
    );
    let result = stubborn.join().unwrap_err();
    assert_eq!(result.kind(), ErrorKind::Cancelled);
    let outcomes = probe.outcomes();
    assert_eq!(outcomes.len(), 6, "{outcomes:?}");
    for (name, outcome) in outcomes {
        let e = outcome.expect_err(name);
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{name}: {e:?}");
        assert!(
            e.ptr_eq(&result),
            "{name}: not the fiber's own cancellation: {e:?} vs {result:?}"
        );
    }
    assert_eq!(probe.full.len(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancelled_fiber_unwinding_a_panic_gets_its_cancellation_without_yielding() {
    let sim = Sim::new();
    let probe = Probe::new();
    let guard = probe.guard(None);
    let victim = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn_on(&sim.sched, move || -> Result<()> {
            let _guard = guard;
            let _ = fuseau::sleep(HOUR);
            panic!("after cancellation");
        })
        .unwrap();
    sim.run_until_idle();
    let watcher = Watcher::default();
    let watching = watcher.spawn(&sim);
    victim.cancel();
    run_without_time(&sim, "the cancelled fiber", || victim.is_done());
    let e = victim.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    for (name, outcome) in probe.outcomes() {
        let e = outcome.expect_err(name);
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{name}: {e:?}");
    }
    watcher.finish(&sim, watching);
}

/// Aborts the test binary if `f` takes longer than a minute: a teardown that
/// never ends would otherwise stall the test suite.
fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !d.load(Ordering::Acquire) {
            if start.elapsed() > Duration::from_secs(60) {
                eprintln!("the test hung; aborting");
                std::process::abort();
            }
            std::thread::sleep(ms(20));
        }
    });
    let r = f();
    done.store(true, Ordering::Release);
    r
}

/// A panic outside the fibers drops the scheduler: it is torn down while
/// the thread panics, and its fibers run then. That panic is not theirs: a
/// cancelled fiber that ignores its errors in a loop still yields at every
/// suspension point (or the teardown would never end), and the guards on
/// its stack are unwound.
#[test]
#[cfg_attr(miri, ignore)]
fn a_scheduler_torn_down_while_its_thread_panics_still_ends_stubborn_fibers() {
    with_watchdog(|| {
        let sim = Sim::new();
        let guards = Counter::new();
        let mut fibers = Vec::new();
        for _ in 0..3 {
            let guard = guards.guard();
            fibers.push(sim.spawn(move || -> Result<()> {
                let _guard = guard;
                loop {
                    let _ = fuseau::sleep(HOUR);
                    let _ = fuseau::yield_now();
                }
            }));
        }
        let guard = guards.guard();
        fibers.push(sim.spawn(move || {
            let _guard = guard;
            fuseau::sleep(HOUR)
        }));
        sim.run_until_idle();
        let outcome = catch_unwind(AssertUnwindSafe(move || {
            let _sim = sim;
            panic!("outside the fibers");
        }));
        assert!(outcome.is_err());
        assert_eq!(guards.get(), 4);
        for fiber in fibers {
            assert!(fiber.is_done());
            assert_eq!(fiber.join().unwrap_err().kind(), ErrorKind::Cancelled);
        }
    });
}
