//! `select`, `await_event` and the events: stress (a long chain of selecting
//! stages; many selects that leave nothing behind), the three cancellation
//! cases, claimed branches winning, losing branches taking no effect,
//! timeouts and deadlines, futures woken from other threads, custom events,
//! errors.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{ms, waiters, Counter, Guard, Log, Sim, HOUR};
use fuseau::{
    await_event, ev_deadline, ev_future, ev_future_pinned, ev_timeout, select, AnyFiber,
    CancelHandle, Chan, Error, ErrorKind, Event, Result, TryRecvError, Wakeup, When,
};

fn cancel_self() {
    AnyFiber::current().cancel();
}

fn kind<T>(r: &Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(Error::kind)
}

fn go(f: impl FnOnce() -> Result<()> + 'static) {
    drop(fuseau::spawn(f));
}

// ---------------------------------------------------------------- stress

/// Hundreds of stages, each taking values from either of two inputs and
/// passing them on, incremented, to either of two outputs: every value
/// crosses every stage once.
#[test]
#[cfg_attr(miri, ignore)]
fn a_chain_of_300_selecting_stages() {
    const STAGES: u64 = 300;
    const VALUES: u64 = 100;
    let sim = Sim::new();
    let (total, per_output) = sim
        .block_on(|| {
            let capacities = [0, 1, 2, 0, 3];
            let make = |i: u64| Chan::<u64>::bounded(capacities[i as usize % capacities.len()]);
            let first = (make(0), make(1));
            let mut inputs = first.clone();
            for s in 0..STAGES {
                let outputs = (make(s + 2), make(s + 3));
                let ((ia, ib), (oa, ob)) = (inputs.clone(), outputs.clone());
                go(move || {
                    for _ in 0..VALUES {
                        let v = select(vec![
                            When::new(ia.ev_recv(), |v| v),
                            When::new(ib.ev_recv(), |v| v),
                        ])?;
                        // Prefer one output or the other, by origin.
                        let (x, y) = if v / 1_000 % 2 == 0 {
                            (&oa, &ob)
                        } else {
                            (&ob, &oa)
                        };
                        select(vec![
                            When::new(x.ev_send(v + 1), |()| ()),
                            When::new(y.ev_send(v + 1), |()| ()),
                        ])?;
                    }
                    Ok(())
                });
                inputs = outputs;
            }
            let (a, b) = first;
            go(move || {
                for v in 0..VALUES {
                    select(vec![
                        When::new(a.ev_send(v * 1_000), |()| ()),
                        When::new(b.ev_send(v * 1_000), |()| ()),
                    ])?;
                }
                Ok(())
            });
            let (a, b) = inputs;
            let (mut total, mut per_output) = (0, [0; 2]);
            for _ in 0..VALUES {
                let (i, v) = select(vec![
                    When::new(a.ev_recv(), |v| (0, v)),
                    When::new(b.ev_recv(), |v| (1, v)),
                ])?;
                assert_eq!(v % 1_000, STAGES, "the value crossed every stage once");
                total += v;
                per_output[i] += 1;
            }
            for c in [&a, &b] {
                assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
                assert_eq!(waiters(c), (0, 0));
            }
            Ok((total, per_output))
        })
        .unwrap();
    assert_eq!(total, (0..VALUES).map(|v| v * 1_000 + STAGES).sum::<u64>());
    assert!(per_output.iter().all(|&n| n > 0), "both paths were used");
    assert_eq!(sim.sched.n_fibers(), 0);
}

/// A select that waits 100 000 times on channels that never fire (and a
/// deadline that never comes) plus one that does: the registrations on the
/// idle channels are undone every time, so their queues stay empty, and no
/// timer is left behind.
#[test]
#[cfg_attr(miri, ignore)]
fn many_selects_leave_no_registration_behind() {
    const N: u32 = 100_000;
    let sim = Sim::new();
    let never_recv: Chan<u32> = Chan::new();
    let never_send: Chan<u32> = Chan::bounded(0);
    let fire: Chan<u32> = Chan::bounded(0);
    let (nr, ns, f) = (never_recv.clone(), never_send.clone(), fire.clone());
    sim.block_on(move || {
        let f2 = f.clone();
        go(move || {
            for i in 0..N {
                // The select is waiting: it really registered.
                assert_eq!(waiters(&f2), (0, 1));
                f2.send(i)?;
                fuseau::yield_now()?;
            }
            Ok(())
        });
        let far = ev_deadline(fuseau::time::now() + HOUR);
        for i in 0..N {
            let v = select(vec![
                When::new(nr.ev_recv(), |_| unreachable!("never has a value")),
                When::new(ns.ev_send(i), |()| unreachable!("never has a receiver")),
                When::new(far, |()| unreachable!("never succeeds")),
                When::new(f.ev_recv(), |v| v),
            ])?;
            assert_eq!(v, i);
            if i % 1_000 == 0 {
                assert_eq!(waiters(&nr), (0, 0));
                assert_eq!(waiters(&ns), (0, 0));
            }
        }
        Ok(())
    })
    .unwrap();
    for c in [&never_recv, &never_send, &fire] {
        assert_eq!(waiters(c), (0, 0));
    }
    assert_eq!(sim.run_until_idle(), None, "no timer left armed");
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

// ------------------------------------------------------- cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn select_when_cancelled_before_the_call_fails_and_takes_no_effect() {
    let sim = Sim::new();
    let drops = Counter::new();
    let ready: Chan<u32> = Chan::new();
    ready.try_send(1).unwrap();
    let room: Chan<Guard> = Chan::new();
    let called = Rc::new(Cell::new(false));
    let (r, o, d, c) = (ready.clone(), room.clone(), drops.clone(), called.clone());
    sim.block_on(move || {
        cancel_self();
        let e = select(vec![
            When::new(r.ev_recv(), |_| c.set(true)),
            When::new(o.ev_send(d.guard()), |()| c.set(true)),
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        Ok(())
    })
    .unwrap();
    assert!(!called.get());
    assert_eq!(ready.len(), 1, "the ready value was not taken");
    assert!(room.is_empty(), "nothing was sent");
    assert_eq!(drops.get(), 1, "the unsent value was dropped");
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_when_cancelled_while_waiting_wakes_at_once_and_undoes_everything() {
    let sim = Sim::new();
    let drops = Counter::new();
    let a: Chan<u32> = Chan::bounded(0);
    let b: Chan<Guard> = Chan::bounded(0);
    let (a1, b1, d) = (a.clone(), b.clone(), drops.clone());
    let fiber = sim.spawn(move || {
        select(vec![
            When::new(a1.ev_recv(), drop),
            When::new(b1.ev_send(d.guard()), |()| ()),
            When::new(ev_timeout(HOUR), |()| ()),
        ])
    });
    let deadline = sim.run_until_idle();
    assert!(deadline.is_some(), "the timeout is armed");
    assert_eq!((waiters(&a), waiters(&b)), ((0, 1), (1, 0)));
    fiber.cancel();
    assert_eq!(
        sim.run_until_idle(),
        None,
        "woken at once; the timer is gone"
    );
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert_eq!(kind(&fiber.join()), Some(ErrorKind::Cancelled));
    assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
    assert_eq!(drops.get(), 1, "the value of the send branch was dropped");
    assert_eq!(b.try_recv().err(), Some(TryRecvError::Empty));
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_claimed_then_cancelled_returns_the_branch_and_the_next_point_fails() {
    let sim = Sim::new();
    let log = Log::new();
    let a: Chan<u32> = Chan::bounded(0);
    let b: Chan<u32> = Chan::bounded(0);
    let (a1, b1, l) = (a.clone(), b.clone(), log.clone());
    let fiber = sim.spawn(move || {
        let got = select(vec![
            When::new(a1.ev_recv(), |v| format!("a {v}")),
            When::new(b1.ev_send(2), |()| "sent on b".to_string()),
        ]);
        l.push(format!("{got:?}"));
        l.push(format!("{:?}", kind(&fuseau::yield_now())));
        got.map(drop)
    });
    sim.run_until_idle();
    // A receiver on b takes the select's value (claiming the select)...
    assert_eq!(b.try_recv(), Ok(2));
    // ... so a sender on a must not hand it anything.
    assert!(a.try_send(1).is_err());
    fiber.cancel();
    sim.run_until_idle();
    fiber.join().unwrap();
    assert_eq!(log.take(), ["Ok(\"sent on b\")", "Some(Cancelled)"]);
    assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_cancelled_then_claimed_before_it_ran_returns_the_value() {
    let sim = Sim::new();
    let a: Chan<u32> = Chan::bounded(0);
    let a1 = a.clone();
    let fiber = sim.spawn(move || {
        let never: Chan<u32> = Chan::new();
        let v = select(vec![
            When::new(never.ev_recv(), |v| v),
            When::new(a1.ev_recv(), |v| v),
        ]);
        Ok((v?, kind(&fuseau::yield_now())))
    });
    sim.run_until_idle();
    fiber.cancel();
    a.try_send(8).unwrap();
    sim.run_until_idle();
    assert_eq!(fiber.join().unwrap(), (8, Some(ErrorKind::Cancelled)));
}

// ------------------------------------------------ claims, losing branches

#[test]
#[cfg_attr(miri, ignore)]
fn a_losing_send_branch_sends_nothing() {
    for capacity in [0, 1] {
        let sim = Sim::new();
        let drops = Counter::new();
        let out: Chan<Guard> = Chan::bounded(capacity);
        let mut buffered = 0;
        if capacity == 1 {
            out.try_send(drops.guard()).unwrap(); // full
            buffered = 1;
        }
        let inp: Chan<u32> = Chan::bounded(0);
        let (o, i, d) = (out.clone(), inp.clone(), drops.clone());
        let fiber = sim.spawn(move || {
            select(vec![
                When::new(o.ev_send(d.guard()), |()| None),
                When::new(i.ev_recv(), Some),
            ])
        });
        sim.run_until_idle();
        // The receive branch wins...
        inp.try_send(5).unwrap();
        // ... and before the fiber runs, the send branch is still queued,
        // but claimed: a receiver skips it (and, for the buffered channel,
        // freeing room does not move its value in).
        assert_eq!(waiters(&out), (1, 0));
        for _ in 0..buffered {
            drop(out.try_recv().unwrap());
        }
        assert_eq!(out.try_recv().err(), Some(TryRecvError::Empty));
        assert_eq!(out.len(), 0);
        sim.run_until_idle();
        assert_eq!(fiber.join().unwrap(), Some(5));
        assert_eq!(drops.get(), buffered + 1, "the losing value was dropped");
        assert_eq!(waiters(&out), (0, 0));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_claimed_branch_wins_over_a_timeout_that_expired_too() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let c: Chan<u32> = Chan::bounded(0);
        let c1 = c.clone();
        // Its timer is armed first, so it fires first at the same instant.
        go(move || {
            fuseau::sleep(ms(10))?;
            c1.try_send(3).map_err(Error::from)
        });
        fuseau::yield_now()?;
        select(vec![
            When::new(c.ev_recv(), Some),
            When::new(ev_timeout(ms(10)), |()| None),
        ])
    });
    assert_eq!(result.unwrap(), Some(3));
    assert_eq!(sim.elapsed(), ms(10));
}

#[test]
#[cfg_attr(miri, ignore)]
fn only_the_winning_function_is_called_with_the_value() {
    let sim = Sim::new();
    let drops = Counter::new();
    let log = Log::new();
    let (d, l) = (drops.clone(), log.clone());
    let got = sim.block_on(move || {
        let (a, b, c) = (Chan::new(), Chan::new(), Chan::<String>::new());
        b.send(7u32)?;
        c.send("later".to_string())?;
        let branch = |name: &'static str, g: Guard| {
            let l = l.clone();
            move |v: u32| {
                let _g = g;
                l.push(format!("{name} called with {v}"));
                v * 10
            }
        };
        let got = select(vec![
            When::new(a.ev_recv(), branch("a", d.guard())),
            When::new(b.ev_recv(), branch("b", d.guard())),
            When::new(c.ev_recv(), |s: String| s.len() as u32),
        ])?;
        assert_eq!(d.get(), 2, "both closures are gone, called or not");
        assert_eq!(c.len(), 1, "the later branch took nothing");
        Ok(got)
    });
    assert_eq!(got.unwrap(), 70);
    assert_eq!(log.take(), ["b called with 7"]);
    assert_eq!(drops.get(), 2);
}

// ---------------------------------------------------------------- errors

#[test]
#[cfg_attr(miri, ignore)]
fn an_event_error_is_the_select_error() {
    let sim = Sim::new();
    sim.block_on(|| {
        let called = Rc::new(Cell::new(0));
        let closed: Chan<u32> = Chan::new();
        closed.close();
        let ready: Chan<u32> = Chan::new();
        ready.send(1)?;
        // Branches are polled in order: the failing one comes first.
        let c = called.clone();
        let e = select(vec![
            When::new(closed.ev_recv(), |_| c.set(c.get() + 1)),
            When::new(ready.ev_recv(), |_| c.set(c.get() + 1)),
        ])
        .unwrap_err();
        assert!(e.is_closed());
        assert_eq!(called.get(), 0);
        assert_eq!(ready.len(), 1);
        // In the other order, the value.
        let v = select(vec![
            When::new(ready.ev_recv(), |v| v),
            When::new(closed.ev_recv(), |v| v),
        ])?;
        assert_eq!(v, 1);
        // An error that happens while waiting: a custom event fails.
        let flag = Flag::new();
        let f = flag.clone();
        go(move || {
            f.fire(Err(Error::from("boom")));
            Ok(())
        });
        let c = called.clone();
        let never: Chan<u32> = Chan::new();
        let e = select(vec![
            When::new(never.ev_recv(), |_| c.set(c.get() + 1)),
            When::new(flag.event(), |_| c.set(c.get() + 1)),
        ])
        .unwrap_err();
        assert_eq!(e.message(), "boom");
        assert_eq!(called.get(), 0);
        assert_eq!(flag.registered(), 0);
        // A timeout is an error too.
        let e = select(vec![
            When::new(never.ev_recv(), |_| ()),
            When::new(ev_timeout(ms(1)), |()| ()),
        ])
        .unwrap_err();
        assert!(e.is_timeout());
        assert_eq!(waiters(&never), (0, 0));
        Ok(())
    })
    .unwrap();
}

// ---------------------------------------------------------- empty select

#[test]
#[cfg_attr(miri, ignore)]
fn an_empty_select_waits_until_cancelled() {
    let sim = Sim::new();
    let fiber = sim.spawn(|| select::<u32>(vec![]));
    assert_eq!(sim.run_until_idle(), None);
    sim.advance(HOUR);
    assert_eq!(sim.run_until_idle(), None);
    assert!(!fiber.is_done());
    fiber.cancel();
    sim.run_until_idle();
    assert_eq!(kind(&fiber.join()), Some(ErrorKind::Cancelled));
    // With a deadline, it fails with Timeout.
    let result = sim.block_on(|| {
        fuseau::cancel_after(ms(25))?;
        select::<()>(vec![])
    });
    assert!(result.unwrap_err().is_timeout());
    assert_eq!(sim.elapsed(), HOUR + ms(25));
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_and_await_event_outside_a_fiber() {
    let e = select::<()>(vec![]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.message().contains("select"), "{e}");
    // await_event completes a ready event, and names itself otherwise.
    let c = Chan::new();
    c.try_send(3).unwrap();
    assert_eq!(await_event(c.ev_recv()).unwrap(), 3);
    let e = await_event(c.ev_recv()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.message().contains("await_event"), "{e}");
    assert_eq!(await_event(ev_future(std::future::ready(4))).unwrap(), 4);
    assert!(await_event(ev_timeout(Duration::ZERO))
        .unwrap_err()
        .is_timeout());
}

// ----------------------------------------------------- timeouts, deadlines

#[test]
#[cfg_attr(miri, ignore)]
fn ev_timeout_counts_from_its_creation_and_ev_deadline_is_an_instant() {
    let sim = Sim::new();
    sim.block_on(|| {
        let start = fuseau::time::now();
        let since = move || fuseau::time::now() - start;
        let deadline = ev_deadline(start + ms(10));
        let early = ev_timeout(ms(10)); // due at 10 ms
        fuseau::sleep(ms(4))?;
        let late = ev_timeout(ms(10)); // due at 14 ms
        assert!(await_event(deadline).unwrap_err().is_timeout());
        assert_eq!(since(), ms(10));
        assert!(await_event(early).unwrap_err().is_timeout());
        assert_eq!(since(), ms(10), "already due");
        assert!(await_event(late).unwrap_err().is_timeout());
        assert_eq!(since(), ms(14));
        // Past deadlines and zero timeouts fail at once.
        assert!(await_event(ev_deadline(start)).unwrap_err().is_timeout());
        assert!(await_event(ev_timeout(Duration::ZERO))
            .unwrap_err()
            .is_timeout());
        assert_eq!(since(), ms(14));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_shared_deadline_does_not_stretch_but_fresh_timeouts_do() {
    let sim = Sim::new();
    let (with_deadline, with_timeouts) = sim
        .block_on(|| {
            let ticks: Chan<u32> = Chan::new();
            let t = ticks.clone();
            // A value every 3 ms, 10 times.
            go(move || {
                for i in 0..10 {
                    fuseau::sleep(ms(3))?;
                    t.send(i)?;
                }
                Ok(())
            });
            // Everything that comes within 10 ms of the start.
            let deadline = ev_deadline(fuseau::time::now() + ms(10));
            let mut with_deadline = Vec::new();
            while let Ok(v) = select(vec![
                When::new(ticks.ev_recv(), |v| v),
                When::new(deadline, |()| unreachable!()),
            ]) {
                with_deadline.push(v);
            }
            // Everything that comes at most 5 ms after the previous one:
            // until the ticks stop.
            let mut with_timeouts = Vec::new();
            while let Ok(v) = select(vec![
                When::new(ticks.ev_recv(), |v| v),
                When::new(ev_timeout(ms(5)), |()| unreachable!()),
            ]) {
                with_timeouts.push(v);
            }
            Ok((with_deadline, with_timeouts))
        })
        .unwrap();
    assert_eq!(with_deadline, [0, 1, 2]);
    assert_eq!(with_timeouts, [3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(sim.elapsed(), ms(35));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_timeout_too_far_to_represent_never_fires() {
    let sim = Sim::new();
    let fiber = sim.spawn(|| await_event(ev_timeout(Duration::MAX)));
    assert_eq!(sim.run_until_idle(), None, "no timer is armed");
    assert!(!fiber.is_done());
    fiber.cancel();
    sim.run_until_idle();
    assert!(fiber.join().unwrap_err().is_cancelled());
}

// ------------------------------------------------------------ await_event

/// A hand-written event: ready once fired; counts its registrations.
#[derive(Clone)]
struct Flag(Rc<FlagState>);

struct FlagState {
    value: RefCell<Option<Result<u32>>>,
    waiter: RefCell<Option<Wakeup>>,
    registered: Cell<usize>,
    waits: Cell<usize>,
}

struct FlagEvent(Rc<FlagState>);

impl Flag {
    fn new() -> Flag {
        Flag(Rc::new(FlagState {
            value: RefCell::new(None),
            waiter: RefCell::new(None),
            registered: Cell::new(0),
            waits: Cell::new(0),
        }))
    }

    fn event(&self) -> FlagEvent {
        FlagEvent(self.0.clone())
    }

    fn fire(&self, value: Result<u32>) {
        *self.0.value.borrow_mut() = Some(value);
        let waiter = self.0.waiter.borrow().clone();
        if let Some(w) = waiter {
            w.wake();
        }
    }

    fn registered(&self) -> usize {
        self.0.registered.get()
    }

    fn waits(&self) -> usize {
        self.0.waits.get()
    }
}

impl Event for FlagEvent {
    type Output = u32;

    fn poll(&mut self) -> Option<Result<u32>> {
        self.0.value.borrow_mut().take()
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        let state = &self.0;
        state.registered.set(state.registered.get() + 1);
        state.waits.set(state.waits.get() + 1);
        *state.waiter.borrow_mut() = Some(wakeup);
        let state = state.clone();
        CancelHandle::new(move || {
            state.registered.set(state.registered.get() - 1);
            state.waiter.borrow_mut().take();
        })
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn await_event_waits_for_a_custom_event_and_undoes_its_registration() {
    let sim = Sim::new();
    let flag = Flag::new();
    let f = flag.clone();
    let fiber = sim.spawn(move || await_event(f.event()));
    sim.run_until_idle();
    assert_eq!(flag.registered(), 1);
    assert!(!fiber.is_done());
    // A stale or spurious wake-up (here: a wake without a value) makes it
    // poll again and wait again, registering anew.
    let w = flag.0.waiter.borrow().clone().unwrap();
    assert_eq!(w.fiber_id(), fiber.id());
    w.wake();
    sim.run_until_idle();
    assert_eq!(flag.waits(), 2);
    assert_eq!(flag.registered(), 1);
    // The old wake-up is stale now.
    w.wake();
    sim.run_until_idle();
    assert_eq!(flag.waits(), 2);
    flag.fire(Ok(11));
    sim.run_until_idle();
    assert_eq!(fiber.join().unwrap(), 11);
    assert_eq!(flag.registered(), 0);
    // Cancelled while waiting: unregistered too.
    let f = flag.clone();
    let fiber = sim.spawn(move || await_event(f.event()));
    sim.run_until_idle();
    assert_eq!(flag.registered(), 1);
    fiber.cancel();
    sim.run_until_idle();
    assert!(fiber.join().unwrap_err().is_cancelled());
    assert_eq!(flag.registered(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn await_event_on_channel_events_and_boxed_or_borrowed_events() {
    let sim = Sim::new();
    sim.block_on(|| {
        let c: Chan<u32> = Chan::bounded(0);
        let c1 = c.clone();
        go(move || await_event(c1.ev_send(1)));
        assert_eq!(await_event(c.ev_recv())?, 1);
        // Boxed events, and events by reference.
        let c1 = c.clone();
        go(move || c1.send(2));
        let boxed: Box<dyn Event<Output = u32>> = Box::new(c.ev_recv());
        assert_eq!(await_event(boxed)?, 2);
        let c1 = c.clone();
        go(move || c1.send(3));
        let mut ev = c.ev_recv();
        assert_eq!(select(vec![When::new(&mut ev, |v| v)])?, 3);
        drop(ev);
        // The cancellation cases, as select.
        let c1 = c.clone();
        go(move || {
            cancel_self();
            assert!(await_event(c1.ev_send(4)).unwrap_err().is_cancelled());
            Ok(())
        });
        fuseau::yield_now()?;
        fuseau::yield_now()?;
        assert_eq!(
            c.try_recv().err(),
            Some(TryRecvError::Empty),
            "nothing sent"
        );
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------------- ev_future

/// A future that waits until a counter, advanced by another thread,
/// reaches its target. Its waker is replaced on every poll.
struct AtLeast {
    shared: Arc<Shared>,
    target: u64,
    _guard: Option<Guard>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<(u64, Option<Waker>)>,
    requested: AtomicU64,
}

impl Future for AtLeast {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut state = self.shared.state.lock().unwrap();
        if state.0 >= self.target {
            Poll::Ready(state.0)
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Runs `f` on its own thread; fails the test if it takes more than a
/// minute (a lost wake-up shows as a hang).
fn with_time_limit<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(60))
        .expect("a wake-up was lost: no progress for a minute")
}

#[test]
#[cfg_attr(miri, ignore)]
fn ev_future_woken_from_another_thread_many_times_loses_nothing() {
    const ROUNDS: u64 = 2_000;
    let rounds = with_time_limit(|| {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let waker_thread = std::thread::spawn(move || {
            for i in 1..=ROUNDS {
                // Wait until the fiber asks (so that it often really waits).
                while s.requested.load(Ordering::Acquire) < i {
                    std::thread::yield_now();
                }
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
                let waker = {
                    let mut state = s.state.lock().unwrap();
                    state.0 = i;
                    state.1.take()
                };
                if let Some(w) = waker {
                    // Several times: duplicates wake once.
                    w.wake_by_ref();
                    w.wake_by_ref();
                    w.wake();
                }
            }
        });
        let result = fuseau::block_on(move || {
            let never: Chan<u32> = Chan::new();
            let mut n = 0;
            for k in 1..=ROUNDS {
                shared.requested.store(k, Ordering::Release);
                let future = AtLeast {
                    shared: shared.clone(),
                    target: k,
                    _guard: None,
                };
                // Alone, or in a select.
                let got = if k % 2 == 0 {
                    await_event(ev_future(future))?
                } else {
                    select(vec![
                        When::new(never.ev_recv(), |_| unreachable!()),
                        When::new(ev_future(future), |v| v),
                    ])?
                };
                assert_eq!(got, k);
                n += 1;
            }
            Ok(n)
        });
        waker_thread.join().unwrap();
        result
    });
    assert_eq!(rounds.unwrap(), ROUNDS);
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_fibers_on_futures_woken_from_other_threads() {
    const FIBERS: u64 = 20;
    const ROUNDS: u64 = 100;
    let total = with_time_limit(|| {
        let shareds: Vec<Arc<Shared>> = (0..FIBERS).map(|_| Arc::default()).collect();
        let threads: Vec<_> = shareds
            .chunks(FIBERS as usize / 2)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                std::thread::spawn(move || {
                    for i in 1..=ROUNDS {
                        for s in &chunk {
                            while s.requested.load(Ordering::Acquire) < i {
                                std::thread::yield_now();
                            }
                            let waker = {
                                let mut state = s.state.lock().unwrap();
                                state.0 = i;
                                state.1.take()
                            };
                            if let Some(w) = waker {
                                w.wake();
                            }
                        }
                    }
                })
            })
            .collect();
        let result = fuseau::block_on(move || {
            let fibers: Vec<_> = shareds
                .into_iter()
                .map(|shared| {
                    fuseau::spawn(move || {
                        let mut sum = 0;
                        for k in 1..=ROUNDS {
                            shared.requested.store(k, Ordering::Release);
                            sum += await_event(ev_future(AtLeast {
                                shared: shared.clone(),
                                target: k,
                                _guard: None,
                            }))?;
                        }
                        Ok(sum)
                    })
                })
                .collect();
            fibers.into_iter().map(|f| f.join()).sum::<Result<u64>>()
        });
        for t in threads {
            t.join().unwrap();
        }
        result
    });
    assert_eq!(total.unwrap(), FIBERS * ROUNDS * (ROUNDS + 1) / 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_losing_or_cancelled_future_is_dropped() {
    let sim = Sim::new();
    let drops = Counter::new();
    let d = drops.clone();
    sim.block_on(move || {
        let pending = |d: &Counter| AtLeast {
            shared: Arc::default(),
            target: 1,
            _guard: Some(d.guard()),
        };
        // Loses to a ready channel.
        let c = Chan::new();
        c.send(1u64)?;
        let v = select(vec![
            When::new(ev_future(pending(&d)), |v| v),
            When::new(c.ev_recv(), |v| v + 100),
        ])?;
        assert_eq!(v, 101);
        assert_eq!(d.get(), 1);
        // Cancelled while waiting.
        let d2 = d.clone();
        let waiting = fuseau::spawn(move || await_event(ev_future(pending(&d2))));
        fuseau::yield_now()?;
        assert_eq!(d.get(), 1, "still waiting");
        waiting.cancel();
        assert!(waiting.join().unwrap_err().is_cancelled());
        assert_eq!(d.get(), 2);
        // Times out.
        let e = select(vec![
            When::new(ev_future(pending(&d)), |v| v),
            When::new(ev_timeout(ms(3)), |()| 0),
        ])
        .unwrap_err();
        assert!(e.is_timeout());
        assert_eq!(d.get(), 3);
        Ok(())
    })
    .unwrap();
    assert_eq!(drops.get(), 3);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_pinned_future_that_loses_stays_with_its_owner() {
    let sim = Sim::new();
    let drops = Counter::new();
    let d = drops.clone();
    sim.block_on(move || {
        let shared = Arc::<Shared>::default();
        let mut future = std::pin::pin!(AtLeast {
            shared: shared.clone(),
            target: 1,
            _guard: Some(d.guard()),
        });
        // Loses to a timeout: the future is not dropped, only the event.
        let e = select(vec![
            When::new(ev_future_pinned(future.as_mut()), |v| v),
            When::new(ev_timeout(ms(1)), |()| 0),
        ])
        .unwrap_err();
        assert!(e.is_timeout());
        assert_eq!(d.get(), 0, "the future stays with its owner");
        // Completed from another fiber, then awaited again.
        let s = shared.clone();
        fuseau::spawn(move || {
            fuseau::sleep(ms(1))?;
            let waker = {
                let mut state = s.state.lock().unwrap();
                state.0 = 5;
                state.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
            Ok(())
        });
        assert_eq!(await_event(ev_future_pinned(future.as_mut()))?, 5);
        Ok(())
    })
    .unwrap();
    assert_eq!(drops.get(), 1, "dropped once, by its owner");
}

// --------------------------------------------- registrations on every path

/// An event whose registration panics (a bug in a hand-written event).
struct PanicsInWait;

impl Event for PanicsInWait {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        None
    }

    fn wait(&mut self, _: Wakeup) -> CancelHandle {
        panic!("wait failed");
    }
}

/// A `select` whose later branch panics while registering undoes the
/// registrations of the earlier ones: a fiber that catches the panic and
/// goes on neither leaves a stale waiter in a channel (which would swallow
/// a value sent later) nor gets woken, in a later wait, by one.
#[test]
#[cfg_attr(miri, ignore)]
fn registrations_are_undone_when_a_branch_panics_while_registering() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let other: Chan<u32> = Chan::bounded(0);
    let (c, o) = (chan.clone(), other.clone());
    let fiber = sim.spawn(move || {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            select(vec![
                When::new(c.ev_recv(), drop),
                When::new(PanicsInWait, drop),
            ])
        }));
        assert!(caught.is_err());
        assert_eq!(waiters(&c), (0, 0), "the registration on c was undone");
        // Later waits work as usual.
        fuseau::sleep(ms(5))?;
        o.recv()
    });
    sim.run_until_idle();
    // Nobody waits on `chan`: a rendezvous send must fail, not vanish.
    assert!(chan.try_send(1).is_err(), "a stale waiter took the value");
    sim.run_until(|| waiters(&other) == (0, 1));
    assert_eq!(sim.elapsed(), ms(5));
    other.try_send(2).unwrap();
    sim.run_until_idle();
    assert_eq!(fiber.join().unwrap(), 2);
}

/// Pending on its first poll, ready on the next.
struct ReadyOnSecondPoll(bool);

impl Future for ReadyOnSecondPoll {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// ... and the wait is over: a wake-up given during the failed
/// registration (a future found ready while registering) does not cut the
/// fiber's next wait short.
#[test]
#[cfg_attr(miri, ignore)]
fn a_wake_up_during_a_failed_registration_does_not_carry_over() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            select(vec![
                When::new(ev_future(ReadyOnSecondPoll(false)), drop),
                When::new(PanicsInWait, drop),
            ])
        }));
        assert!(caught.is_err());
        let start = fuseau::time::now();
        fuseau::sleep(ms(5))?;
        Ok(fuseau::time::now() - start)
    });
    assert_eq!(result.unwrap(), ms(5));
}

/// A branch function that panics fails the fiber like any panic; the
/// select has undone its registrations before calling it.
#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_branch_function_leaves_nothing_behind() {
    let sim = Sim::new();
    let (a, b): (Chan<u32>, Chan<u32>) = (Chan::bounded(0), Chan::bounded(0));
    let (a1, b1) = (a.clone(), b.clone());
    let fiber = sim.spawn(move || {
        select(vec![
            When::new(a1.ev_recv(), |_| ()),
            When::new(b1.ev_recv(), |v| panic!("branch b got {v}")),
        ])
    });
    sim.run_until_idle();
    b.try_send(4).unwrap();
    sim.run_until_idle();
    let e = fiber.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.message().contains("branch b got 4"), "{e}");
    assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
    assert!(a.try_send(1).is_err(), "nobody waits on a any more");
}
