//! The `select!` macro: biased order, each branch's own failure, waiting
//! and being handed a value, losing branches taking no effect, the three
//! cancellation cases, `NotInFiber`, control flow (`?`, `break`, `continue`,
//! `return`) in branch bodies, the syntax (block bodies, commas, patterns,
//! many branches, borrowed locals), rendezvous channels, no allocation, and
//! a stress of two producers and a selecting consumer.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use common::{ms, waiters, Counter, Guard, Log, Sim, Slot, HOUR};
use fuseau::{
    ev_future, ev_timeout, AnyFiber, AsFiber, Chan, ErrorKind, Result, TimeoutEvent, TryRecvError,
};

// ------------------------------------------------- counting allocations

/// The system allocator, counting the allocations of each thread (the
/// tests run on several threads; fibers run on the thread of their
/// scheduler).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the thread-local may be gone while the thread exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations made by this thread so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counting touches only a const-initialized thread-local `Cell`, which
// never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

// ---------------------------------------------------------------- helpers

fn cancel_self() {
    AnyFiber::current().cancel();
}

fn kind<T>(r: &Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(fuseau::Error::kind)
}

fn go(f: impl FnOnce() -> Result<()> + 'static) {
    drop(fuseau::spawn(f));
}

// ------------------------------------------------------------- biased order

#[test]
#[cfg_attr(miri, ignore)]
fn two_ready_receives_the_first_written_wins_and_the_other_keeps_its_value() {
    let sim = Sim::new();
    sim.block_on(|| {
        let (a, b) = (Chan::<u32>::new(), Chan::<u32>::new());
        a.send(1)?;
        b.send(2)?;
        let got = fuseau::select! {
            recv(a) -> v => ("a", v?),
            recv(b) -> v => ("b", v?),
        };
        assert_eq!(got, ("a", 1));
        assert_eq!((a.len(), b.len()), (0, 1), "b kept its value");
        // Both ready again, in the other order: b is written first.
        a.send(3)?;
        let got = fuseau::select! {
            recv(b) -> v => ("b", v?),
            recv(a) -> v => ("a", v?),
        };
        assert_eq!(got, ("b", 2));
        assert_eq!((a.len(), b.len()), (1, 0), "a kept its value");
        // Always the first while it stays ready: no fairness.
        b.send(4)?;
        a.send(5)?;
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(fuseau::select! {
                recv(a) -> v => v?,
                recv(b) -> v => v?,
            });
        }
        assert_eq!(order, [3, 5, 4], "a drained first");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_ready_send_and_a_ready_receive_the_first_written_wins() {
    let sim = Sim::new();
    sim.block_on(|| {
        let room: Chan<u32> = Chan::bounded(1);
        let full: Chan<u32> = Chan::new();
        full.send(10)?;
        // The send first: it sends, the receive takes nothing.
        let which = fuseau::select! {
            send(room, 1) -> r => { r?; "send" }
            recv(full) -> v => { v?; "recv" }
        };
        assert_eq!(which, "send");
        assert_eq!((room.len(), full.len()), (1, 1));
        assert_eq!(room.try_recv(), Ok(1));
        // The receive first: it receives, the send sends nothing.
        let which = fuseau::select! {
            recv(full) -> v => { assert_eq!(v?, 10); "recv" }
            send(room, 2) -> r => { r?; "send" }
        };
        assert_eq!(which, "recv");
        assert_eq!((room.len(), full.len()), (0, 0));
        assert_eq!(
            room.try_recv(),
            Err(TryRecvError::Empty),
            "nothing was sent"
        );
        Ok(())
    })
    .unwrap();
}

/// Every operand (channel, value, event) is evaluated once, in the order
/// written, before anything is tried: the value of a send that loses (or
/// is never tried) is still computed, then dropped.
#[test]
#[cfg_attr(miri, ignore)]
fn operands_are_evaluated_once_in_order() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        let (a, b) = (Chan::<u32>::new(), Chan::<u32>::new());
        a.send(1)?;
        let chan = |name: &str, c: &Chan<u32>| {
            l.push(format!("chan {name}"));
            c.clone()
        };
        let value = |v: u32| {
            l.push(format!("value {v}"));
            v
        };
        let got = fuseau::select! {
            recv(chan("a", &a)) -> v => v?,
            send(chan("b", &b), value(2)) -> r => { r?; 0 }
            ev({ l.push("event"); ev_timeout(HOUR) }) -> t => { t?; 0 }
        };
        assert_eq!(got, 1);
        assert!(b.is_empty());
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["chan a", "chan b", "value 2", "event"]);
}

// ------------------------------------------------------------ own failures

#[test]
#[cfg_attr(miri, ignore)]
fn each_branch_sees_its_own_failure() {
    let sim = Sim::new();
    let drops = Counter::new();
    let d = drops.clone();
    sim.block_on(move || {
        let closed: Chan<u32> = Chan::new();
        closed.close();
        let ready: Chan<u32> = Chan::new();
        ready.send(7)?;
        // A closed receive, written first, wins with its error; the ready
        // channel keeps its value.
        let got = fuseau::select! {
            recv(closed) -> v => ("closed", v),
            recv(ready) -> v => ("ready", v),
        };
        assert_eq!(got.0, "closed");
        assert!(got.1.unwrap_err().is_closed());
        assert_eq!(ready.len(), 1);
        // Written second, it loses to the ready one.
        let got = fuseau::select! {
            recv(ready) -> v => ("ready", v),
            recv(closed) -> v => ("closed", v),
        };
        assert_eq!((got.0, got.1?), ("ready", 7));
        // A send on a closed channel: its branch gets `Closed`, and the
        // value is dropped, unsent.
        let closed_guards: Chan<Guard> = Chan::new();
        closed_guards.close();
        let never: Chan<u32> = Chan::new();
        let e = fuseau::select! {
            recv(never) -> _ => unreachable!("never has a value"),
            send(closed_guards, d.guard()) -> r => r.unwrap_err(),
        };
        assert!(e.is_closed(), "{e}");
        assert_eq!(d.get(), 1, "the value was dropped");
        // A timeout is an error of the timeout's branch only: the other
        // branch is not called, and its channel is left as it was.
        let start = fuseau::time::now();
        let got = fuseau::select! {
            recv(never) -> v => ("never", v),
            ev(ev_timeout(ms(5))) -> t => ("timeout", t.map(|()| 0)),
        };
        assert_eq!(got.0, "timeout");
        assert!(got.1.unwrap_err().is_timeout());
        assert_eq!(fuseau::time::now() - start, ms(5));
        assert_eq!(waiters(&never), (0, 0));
        // A channel closed while the select waits: the waiting branch is
        // woken with `Closed`.
        let (c, c1) = {
            let c: Chan<u32> = Chan::bounded(0);
            (c.clone(), c)
        };
        go(move || {
            fuseau::sleep(ms(1))?;
            c1.close();
            Ok(())
        });
        let got = fuseau::select! {
            recv(never) -> v => ("never", v),
            recv(c) -> v => ("c", v),
            ev(ev_timeout(HOUR)) -> t => ("timeout", t.map(|()| 0)),
        };
        assert_eq!(got.0, "c");
        assert!(got.1.unwrap_err().is_closed());
        Ok(())
    })
    .unwrap();
    assert_eq!(drops.get(), 1);
    assert_eq!(sim.run_until_idle(), None, "no timer left armed");
}

// ---------------------------------------------------------------- waiting

#[test]
#[cfg_attr(miri, ignore)]
fn a_waiting_select_is_handed_a_value_sent_by_another_fiber() {
    for capacity in [0, 1, 4] {
        let sim = Sim::new();
        let (a, b): (Chan<u32>, Chan<u32>) = (Chan::bounded(capacity), Chan::bounded(capacity));
        let (a1, b1) = (a.clone(), b.clone());
        let fiber = sim.spawn(move || {
            Ok(fuseau::select! {
                recv(a1) -> v => ("a", v?),
                recv(b1) -> v => ("b", v?),
            })
        });
        sim.run_until_idle();
        assert!(!fiber.is_done(), "nothing to take: it waits");
        assert_eq!((waiters(&a), waiters(&b)), ((0, 1), (0, 1)));
        // A rendezvous send succeeds only because the select waits.
        b.try_send(9).unwrap();
        assert!(b.is_empty(), "handed over, not buffered");
        // The wait was claimed by b: a sender on a must not reach it.
        if capacity == 0 {
            assert!(a.try_send(1).is_err(), "a no longer has a receiver");
        }
        sim.run_until_idle();
        assert_eq!(fiber.join().unwrap(), ("b", 9));
        assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
        assert!(a.is_empty() && b.is_empty());
    }
}

/// The same, the sender a sibling fiber that sends later (virtual time),
/// in a loop: every value arrives, in order, none lost.
#[test]
#[cfg_attr(miri, ignore)]
fn values_sent_later_all_arrive_through_the_wait() {
    let sim = Sim::new();
    let got = sim
        .block_on(|| {
            let (a, b): (Chan<u32>, Chan<u32>) = (Chan::bounded(0), Chan::bounded(2));
            let (a1, b1) = (a.clone(), b.clone());
            go(move || {
                for i in 0..20 {
                    fuseau::sleep(ms(1))?;
                    if i % 3 == 0 {
                        a1.send(i)?;
                    } else {
                        b1.send(i)?;
                    }
                }
                a1.close();
                b1.close();
                Ok(())
            });
            let mut got = Vec::new();
            let (mut a_open, mut b_open) = (true, true);
            while a_open || b_open {
                let never = Chan::new();
                let (ra, rb) = (
                    if a_open { a.clone() } else { never.clone() },
                    if b_open { b.clone() } else { never.clone() },
                );
                fuseau::select! {
                    recv(ra) -> v => match v {
                        Ok(v) => got.push(v),
                        Err(e) if e.is_closed() => a_open = false,
                        Err(e) => return Err(e),
                    },
                    recv(rb) -> v => match v {
                        Ok(v) => got.push(v),
                        Err(e) if e.is_closed() => b_open = false,
                        Err(e) => return Err(e),
                    },
                }
            }
            Ok(got)
        })
        .unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(sim.elapsed(), ms(20));
}

/// Woken by a timeout-less send while a timer is armed: the timer is
/// disarmed when the select returns.
#[test]
#[cfg_attr(miri, ignore)]
fn a_value_wins_over_a_later_timeout_and_the_timer_is_disarmed() {
    let sim = Sim::new();
    let c: Chan<u32> = Chan::bounded(0);
    let c1 = c.clone();
    let fiber = sim.spawn(move || {
        Ok(fuseau::select! {
            ev(ev_timeout(HOUR)) -> t => t.map(|()| 0),
            recv(c1) -> v => v,
        })
    });
    assert!(sim.run_until_idle().is_some(), "the timer is armed");
    c.try_send(5).unwrap();
    assert_eq!(sim.run_until_idle(), None, "the timer is gone");
    assert_eq!(fiber.join().unwrap().unwrap(), 5);
    assert_eq!(sim.elapsed(), ms(0));
}

// ----------------------------------------------------- losing branches

#[test]
#[cfg_attr(miri, ignore)]
fn a_losing_send_sends_nothing_and_its_value_is_dropped() {
    let sim = Sim::new();
    let drops = Counter::new();
    let d = drops.clone();
    let room: Chan<Guard> = Chan::bounded(4);
    let r = room.clone();
    sim.block_on(move || {
        let ready: Chan<u32> = Chan::new();
        ready.send(3)?;
        // Ready too, but written second.
        let got = fuseau::select! {
            recv(ready) -> v => v?,
            send(r, d.guard()) -> _ => unreachable!("the receive was first"),
        };
        assert_eq!(got, 3);
        assert_eq!(d.get(), 1, "dropped by the time select! is done");
        assert!(r.is_empty(), "nothing sent");
        // Also when the send waited, registered in a full channel, and a
        // receive won through the wait.
        let full: Chan<Guard> = Chan::bounded(1);
        full.send(d.guard())?;
        let inp: Chan<u32> = Chan::bounded(0);
        let (f, i) = (full.clone(), inp.clone());
        go(move || {
            fuseau::sleep(ms(1))?;
            assert_eq!(waiters(&f), (1, 0), "the send branch waits on f");
            i.send(4)?;
            // The send branch was claimed by the receive: taking the
            // buffered value, and freeing room, does not move it in.
            drop(f.try_recv().map_err(|_| fuseau::Error::from("empty"))?);
            Ok(())
        });
        let got = fuseau::select! {
            send(full, d.guard()) -> _ => None,
            recv(inp) -> v => Some(v?),
        };
        assert_eq!(got, Some(4));
        fuseau::sleep(ms(1))?;
        assert_eq!(full.try_recv().err(), Some(TryRecvError::Empty));
        assert_eq!(waiters(&full), (0, 0));
        assert_eq!(d.get(), 3, "the buffered value and the losing one");
        Ok(())
    })
    .unwrap();
    assert!(room.is_empty());
    assert_eq!(drops.get(), 3);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_losing_receive_takes_nothing() {
    let sim = Sim::new();
    sim.block_on(|| {
        // Ready, but written after a ready send.
        let ready: Chan<u32> = Chan::new();
        ready.send(1)?;
        let room: Chan<u32> = Chan::bounded(1);
        fuseau::select! {
            send(room, 2) -> r => r?,
            recv(ready) -> _ => unreachable!("the send was first"),
        }
        assert_eq!((ready.len(), room.len()), (1, 1));
        // Waiting on two rendezvous channels, b wins: a's registration is
        // gone, so a later sender on a finds nobody.
        let (a, b): (Chan<u32>, Chan<u32>) = (Chan::bounded(0), Chan::bounded(0));
        let (a1, b1) = (a.clone(), b.clone());
        go(move || {
            fuseau::yield_now()?;
            b1.send(5)?;
            assert!(a1.try_send(6).is_err(), "a's receive is not waiting");
            Ok(())
        });
        let got = fuseau::select! {
            recv(a) -> v => ("a", v?),
            recv(b) -> v => ("b", v?),
        };
        assert_eq!(got, ("b", 5));
        fuseau::yield_now()?;
        assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
        Ok(())
    })
    .unwrap();
}

// ----------------------------------------------------------- cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_before_the_call_the_first_branch_gets_the_error_and_nothing_happens() {
    let sim = Sim::new();
    let drops = Counter::new();
    let log = Log::new();
    let ready: Chan<u32> = Chan::new();
    ready.try_send(1).unwrap();
    let room: Chan<Guard> = Chan::new();
    let (r, o, d, l) = (ready.clone(), room.clone(), drops.clone(), log.clone());
    sim.block_on(move || {
        cancel_self();
        // The first branch is ready, and still gets the cancellation.
        fuseau::select! {
            recv(r) -> v => l.push(format!("recv {:?}", kind(&v))),
            send(o, d.guard()) -> s => l.push(format!("send {:?}", kind(&s))),
        }
        // The first branch is the send.
        fuseau::select! {
            send(o, d.guard()) -> s => l.push(format!("send {:?}", kind(&s))),
            recv(r) -> v => l.push(format!("recv {:?}", kind(&v))),
        }
        // Nothing ready at all: no wait.
        let never: Chan<u32> = Chan::new();
        fuseau::select! {
            ev(ev_timeout(HOUR)) -> t => l.push(format!("timeout {:?}", kind(&t))),
            recv(never) -> v => l.push(format!("never {:?}", kind(&v))),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "recv Some(Cancelled)",
            "send Some(Cancelled)",
            "timeout Some(Cancelled)"
        ]
    );
    assert_eq!(ready.len(), 1, "the ready value was not taken");
    assert!(room.is_empty(), "nothing was sent");
    assert_eq!(drops.get(), 2, "the unsent values were dropped");
    assert_eq!(sim.elapsed(), ms(0));
    assert_eq!(sim.run_until_idle(), None, "no timer armed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_while_waiting_the_first_branch_gets_the_error_at_once() {
    let sim = Sim::new();
    let drops = Counter::new();
    let a: Chan<u32> = Chan::bounded(0);
    let b: Chan<Guard> = Chan::bounded(0);
    let (a1, b1, d) = (a.clone(), b.clone(), drops.clone());
    let fiber = sim.spawn(move || {
        let got = fuseau::select! {
            recv(a1) -> v => ("a", kind(&v)),
            send(b1, d.guard()) -> s => ("b", kind(&s)),
            ev(ev_timeout(HOUR)) -> t => ("timeout", kind(&t)),
        };
        // Sticky: the next suspension point fails too.
        Ok((got, kind(&fuseau::yield_now())))
    });
    assert!(sim.run_until_idle().is_some(), "the timeout is armed");
    assert_eq!((waiters(&a), waiters(&b)), ((0, 1), (1, 0)));
    fiber.cancel();
    assert_eq!(
        sim.run_until_idle(),
        None,
        "woken at once; the timer is gone"
    );
    assert_eq!(sim.elapsed(), ms(0));
    assert_eq!(
        fiber.join().unwrap(),
        (
            ("a", Some(ErrorKind::Cancelled)),
            Some(ErrorKind::Cancelled)
        )
    );
    assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
    assert_eq!(drops.get(), 1, "the value of the send branch was dropped");
    assert_eq!(b.try_recv().err(), Some(TryRecvError::Empty));
}

/// Cancelled by a sibling holding its handle, while it waits.
#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_by_a_sibling_while_waiting() {
    let sim = Sim::new();
    let got = sim
        .block_on(|| {
            let (a, b): (Chan<u32>, Chan<u32>) = (Chan::new(), Chan::bounded(0));
            let (a1, b1) = (a.clone(), b.clone());
            let waiter = fuseau::spawn(move || {
                Ok(fuseau::select! {
                    send(b1, 1) -> s => ("b", kind(&s)),
                    recv(a1) -> v => ("a", kind(&v)),
                })
            });
            let handle = waiter.as_any_fiber();
            go(move || {
                fuseau::sleep(ms(3))?;
                handle.cancel();
                Ok(())
            });
            let got = waiter.join()?;
            assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
            assert!(b.try_recv().is_err(), "nothing was sent");
            Ok(got)
        })
        .unwrap();
    assert_eq!(got, ("b", Some(ErrorKind::Cancelled)));
    assert_eq!(sim.elapsed(), ms(3));
}

/// `cancel_after`'s deadline passes while it waits: the first branch gets
/// the `Timeout` (the fiber's cancellation), not the branch of an
/// `ev_timeout` that has not expired.
#[test]
#[cfg_attr(miri, ignore)]
fn a_cancel_after_deadline_while_waiting_goes_to_the_first_branch() {
    let sim = Sim::new();
    let got = sim
        .block_on(|| {
            fuseau::cancel_after(ms(10))?;
            let never: Chan<u32> = Chan::new();
            Ok(fuseau::select! {
                recv(never) -> v => ("never", v.map_err(|e| e.kind())),
                ev(ev_timeout(HOUR)) -> t => ("timeout", t.map(|()| 0).map_err(|e| e.kind())),
            })
        })
        .unwrap();
    assert_eq!(got, ("never", Err(ErrorKind::Timeout)));
    assert_eq!(sim.elapsed(), ms(10));
}

/// Handed a value, then cancelled before it ran (or cancelled, then
/// handed a value): the value is delivered to its branch, not lost; the
/// cancellation shows at the next suspension point.
#[test]
#[cfg_attr(miri, ignore)]
fn a_value_handed_over_before_the_cancellation_is_delivered() {
    for cancel_first in [false, true] {
        let sim = Sim::new();
        let a: Chan<u32> = Chan::bounded(0);
        let a1 = a.clone();
        let fiber = sim.spawn(move || {
            let never: Chan<u32> = Chan::new();
            let got = fuseau::select! {
                recv(never) -> v => ("never", v.map_err(|e| e.kind())),
                recv(a1) -> v => ("a", v.map_err(|e| e.kind())),
            };
            Ok((got, kind(&fuseau::yield_now())))
        });
        sim.run_until_idle();
        if cancel_first {
            fiber.cancel();
            a.try_send(8).unwrap();
        } else {
            a.try_send(8).unwrap();
            fiber.cancel();
        }
        sim.run_until_idle();
        assert_eq!(
            fiber.join().unwrap(),
            (("a", Ok(8)), Some(ErrorKind::Cancelled)),
            "cancel_first: {cancel_first}"
        );
        assert_eq!(a.try_recv().err(), Some(TryRecvError::Empty));
    }
}

/// The same for a send: a receiver took the value (claiming the select)
/// before the cancellation reached the fiber; the send branch runs with
/// `Ok`.
#[test]
#[cfg_attr(miri, ignore)]
fn a_send_taken_before_the_cancellation_is_reported_sent() {
    let sim = Sim::new();
    let b: Chan<u32> = Chan::bounded(0);
    let never: Chan<u32> = Chan::bounded(0);
    let (b1, n1) = (b.clone(), never.clone());
    let fiber = sim.spawn(move || {
        Ok(fuseau::select! {
            recv(n1) -> v => ("never", v.map_err(|e| e.kind())),
            send(b1, 2) -> s => ("b", s.map(|()| 0).map_err(|e| e.kind())),
        })
    });
    sim.run_until_idle();
    assert_eq!(b.try_recv(), Ok(2));
    assert!(never.try_send(1).is_err(), "the select was claimed by b");
    fiber.cancel();
    sim.run_until_idle();
    assert_eq!(fiber.join().unwrap(), ("b", Ok(0)));
}

// ------------------------------------------------------------ not in fiber

#[test]
fn outside_a_fiber_the_first_branch_gets_not_in_fiber() {
    let ready: Chan<u32> = Chan::new();
    ready.try_send(1).unwrap();
    let room: Chan<u32> = Chan::new();
    // Even with ready branches: nothing is tried.
    let got = fuseau::select! {
        send(room, 2) -> s => ("send", s.map(|()| 0)),
        recv(ready) -> v => ("recv", v),
    };
    assert_eq!(got.0, "send");
    let e = got.1.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.message().contains("select!"), "{e}");
    assert_eq!((ready.len(), room.len()), (1, 0));
}

#[test]
#[cfg_attr(miri, ignore)]
fn in_a_micro_task_the_first_branch_gets_not_in_fiber() {
    let sim = Sim::new();
    let got: Slot<Option<ErrorKind>> = Slot::new();
    let g = got.clone();
    sim.block_on(move || {
        drop(fuseau::schedule_micro_task(move || {
            let ready: Chan<u32> = Chan::new();
            ready.try_send(1).unwrap();
            g.put(fuseau::select! {
                recv(ready) -> v => kind(&v),
            });
        }));
        fuseau::yield_now()
    })
    .unwrap();
    assert_eq!(got.take(), Some(ErrorKind::NotInFiber));
}

// ----------------------------------------------------------- control flow

/// `?` and `return` in a branch leave the enclosing function.
fn take_even(c: &Chan<u32>, stop: &Chan<()>) -> Result<Option<u32>> {
    loop {
        fuseau::select! {
            recv(stop) -> s => {
                s?;
                return Ok(None);
            }
            recv(c) -> v => {
                let v = v?;
                if v % 2 == 1 {
                    continue;
                }
                return Ok(Some(v));
            }
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn question_mark_return_and_continue_in_branches_act_on_the_enclosing_code() {
    let sim = Sim::new();
    sim.block_on(|| {
        let c: Chan<u32> = Chan::new();
        let stop: Chan<()> = Chan::new();
        for v in [1, 3, 4, 5] {
            c.send(v)?;
        }
        assert_eq!(take_even(&c, &stop)?, Some(4), "1 and 3 skipped");
        assert_eq!(c.len(), 1);
        stop.send(())?;
        assert_eq!(take_even(&c, &stop)?, None, "stop is first");
        c.close();
        // 5 is odd, then the channel is closed: `?` returns the error.
        let e = take_even(&c, &stop).unwrap_err();
        assert!(e.is_closed(), "{e}");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn break_in_a_branch_leaves_the_loop_with_a_value() {
    let sim = Sim::new();
    let got = sim
        .block_on(|| {
            let (data, done): (Chan<u32>, Chan<&'static str>) = (Chan::bounded(8), Chan::new());
            for v in 1..=5 {
                data.send(v)?;
            }
            done.send("done")?;
            let mut sum = 0;
            let mut rounds = 0;
            let reason = loop {
                rounds += 1;
                fuseau::select! {
                    recv(data) -> v => sum += v?,
                    recv(done) -> why => break why?,
                }
            };
            // `break`, `continue` on the inner loop, and a labelled `break`
            // out of both loops, from inside the select.
            let (mut outer_rounds, mut inner_rounds) = (0, 0);
            'outer: for round in 0.. {
                assert!(round < 3, "'outer was left");
                outer_rounds += 1;
                loop {
                    inner_rounds += 1;
                    data.send(inner_rounds)?;
                    fuseau::select! {
                        recv(data) -> v => match v? {
                            7 => break 'outer,
                            v if v % 3 == 0 => break,
                            _ => continue,
                        },
                        recv(done) -> _ => unreachable!("done is empty"),
                    }
                }
            }
            Ok((reason, sum, rounds, outer_rounds, inner_rounds))
        })
        .unwrap();
    assert_eq!(got, ("done", 15, 6, 3, 7));
}

// ------------------------------------------------------------------ syntax

#[test]
#[cfg_attr(miri, ignore)]
fn block_bodies_with_and_without_commas() {
    let sim = Sim::new();
    sim.block_on(|| {
        let (a, b, c) = (Chan::<u32>::new(), Chan::<u32>::new(), Chan::<u32>::new());
        c.send(3)?;
        // Blocks without commas, the last an expression without one.
        let got = fuseau::select! {
            recv(a) -> v => { v? }
            recv(b) -> v => { v? + 100 }
            recv(c) -> v => v? + 1000
        };
        assert_eq!(got, 1003);
        // Blocks with commas, a trailing comma after the last.
        b.send(2)?;
        let got = fuseau::select! {
            recv(a) -> v => { v? },
            recv(b) -> v => { v? + 100 },
            recv(c) -> v => { v? + 1000 },
        };
        assert_eq!(got, 102);
        // Mixed; the last a block with no comma.
        a.send(1)?;
        let got = fuseau::select! {
            recv(a) -> v => v?,
            recv(b) -> v => { v? + 100 }
            recv(c) -> v => v? + 1000,
            ev(ev_timeout(HOUR)) -> t => { t?; 0 }
        };
        assert_eq!(got, 1);
        // Bodies that are `if`, `match`, blocks with statements.
        a.send(4)?;
        let got = fuseau::select! {
            recv(a) -> v => if v? % 2 == 0 { "even" } else { "odd" },
            recv(b) -> v => match v {
                Ok(_) => "b",
                Err(_) => "b failed",
            },
        };
        assert_eq!(got, "even");
        // One branch; a statement (unit bodies) followed by more code; a
        // local initialized by the body.
        a.send(5)?;
        let seen: u32;
        fuseau::select! { recv(a) -> v => seen = v? }
        fuseau::select! {
            send(a, 6) -> r => { r?; }
        };
        assert_eq!((seen, a.try_recv()), (5, Ok(6)));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn branch_patterns() {
    let sim = Sim::new();
    sim.block_on(|| {
        let c: Chan<u32> = Chan::new();
        c.send(1)?;
        // `_`: the outcome is ignored (and dropped).
        let got = fuseau::select! { recv(c) -> _ => "taken" };
        assert_eq!((got, c.len()), ("taken", 0));
        // `mut v`.
        c.send(2)?;
        let got = fuseau::select! {
            recv(c) -> mut v => {
                if let Ok(v) = &mut v {
                    *v *= 10;
                }
                v?
            }
        };
        assert_eq!(got, 20);
        // An irrefutable or-pattern naming both outcomes (in parentheses,
        // as a `let` wants it).
        c.send(3)?;
        fuseau::select! { recv(c) -> (Ok(_) | Err(_)) => {} }
        assert!(c.is_empty());
        // `ref v`.
        c.send(4)?;
        let got = fuseau::select! { recv(c) -> ref v => v.as_ref().map(|v| v + 1).ok() };
        assert_eq!(got, Some(5));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn six_branches() {
    let sim = Sim::new();
    sim.block_on(|| {
        let chans: Vec<Chan<u32>> = (0..4).map(|_| Chan::bounded(1)).collect();
        let out: Chan<u32> = Chan::bounded(1);
        out.send(0)?; // full: the send branch is not ready
        let pick = |chans: &[Chan<u32>], out: &Chan<u32>| -> Result<(usize, u32)> {
            Ok(fuseau::select! {
                recv(chans[0]) -> v => (0, v?),
                recv(chans[1]) -> v => (1, v?),
                send(out, 99) -> r => { r?; (2, 99) }
                recv(chans[2]) -> v => (3, v?),
                ev(ev_timeout(HOUR)) -> t => { t?; unreachable!("an hour later") }
                recv(chans[3]) -> v => (5, v?),
            })
        };
        chans[3].send(30)?;
        assert_eq!(pick(&chans, &out)?, (5, 30), "only the last is ready");
        chans[2].send(20)?;
        chans[3].send(31)?;
        assert_eq!(pick(&chans, &out)?, (3, 20), "the earlier of two");
        assert_eq!(chans[3].len(), 1);
        out.try_recv().unwrap();
        assert_eq!(
            pick(&chans, &out)?,
            (2, 99),
            "the send, now that out has room"
        );
        chans[1].send(10)?;
        assert_eq!(pick(&chans, &out)?, (1, 10));
        assert_eq!(out.try_recv(), Ok(99), "the losing send sent nothing more");
        assert_eq!(pick(&chans, &out)?, (2, 99));
        assert_eq!(pick(&chans, &out)?, (5, 31));
        // None ready but the (full) send: the fiber waits, and a receiver
        // freeing room lets the send through the wait.
        let o = out.clone();
        go(move || {
            fuseau::sleep(ms(2))?;
            assert_eq!(o.recv()?, 99);
            Ok(())
        });
        assert_eq!(pick(&chans, &out)?, (2, 99));
        assert_eq!(out.try_recv(), Ok(99));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn rendezvous_channels() {
    let sim = Sim::new();
    let got = sim
        .block_on(|| {
            let (ping, pong): (Chan<u32>, Chan<u32>) = (Chan::bounded(0), Chan::bounded(0));
            // Each side has a channel of its own that nobody else uses.
            let never: Chan<u32> = Chan::bounded(0);
            let (pi, po, nv) = (ping.clone(), pong.clone(), Chan::bounded(0));
            // The echo: waits in a select! for a ping, answers with a
            // select! send (a receiver is waiting: it completes at once, or
            // waits for one).
            go(move || loop {
                let v = fuseau::select! {
                    recv(nv) -> _ => unreachable!("never"),
                    recv(pi) -> v => match v {
                        Ok(v) => v,
                        Err(e) if e.is_closed() => break Ok(()),
                        Err(e) => break Err(e),
                    },
                };
                fuseau::select! {
                    send(nv, 0) -> _ => unreachable!("nobody receives on never"),
                    send(po, v * 2) -> r => r?,
                }
            });
            let mut got = Vec::new();
            for i in 0..50 {
                fuseau::select! {
                    send(never, 0) -> _ => unreachable!("nobody receives on never"),
                    send(ping, i) -> r => r?,
                }
                got.push(fuseau::select! {
                    recv(never) -> _ => unreachable!("never"),
                    recv(pong) -> v => v?,
                });
                assert!(
                    ping.is_empty() && pong.is_empty(),
                    "rendezvous: nothing buffered"
                );
            }
            ping.close();
            assert_eq!(waiters(&never), (0, 0));
            Ok(got)
        })
        .unwrap();
    assert_eq!(got, (0..50).map(|i| i * 2).collect::<Vec<_>>());
}

/// Bodies borrow (and mutate) locals; channels, values and events can be
/// expressions over locals, and an event may borrow them (`ev(&mut e)`, a
/// future borrowing a local).
#[test]
#[cfg_attr(miri, ignore)]
fn branches_borrow_locals() {
    let sim = Sim::new();
    sim.block_on(|| {
        let chans = [Chan::<usize>::bounded(1), Chan::bounded(1)];
        let words = ["a", "bb", "ccc"];
        let mut total = 0;
        let mut seen: Vec<&str> = Vec::new();
        let mut deadline: TimeoutEvent = ev_timeout(HOUR);
        chans[1].send(2)?;
        for _ in 0..3 {
            fuseau::select! {
                recv(chans[0]) -> v => total += v?,
                recv(&chans[1]) -> v => {
                    let v = v?;
                    total += v;
                    seen.push(words[v]);
                }
                send(chans[0], words.len() + seen.len()) -> r => r?,
                ev(&mut deadline) -> t => t?,
            }
        }
        // Round 1: chans[1] gives 2 ("ccc"); round 2: send 3 + 1 into
        // chans[0]; round 3: receive it.
        assert_eq!((total, seen.as_slice()), (6, ["ccc"].as_slice()));
        // The same deadline event, reused: still an hour away.
        let got = fuseau::select! {
            ev(ev_future(async { words.len() + total })) -> n => n?,
            ev(&mut deadline) -> t => { t?; 0 }
        };
        assert_eq!(got, 9);
        Ok(())
    })
    .unwrap();
}

/// A `select!` in a branch of a `select!`.
#[test]
#[cfg_attr(miri, ignore)]
fn nested_selects() {
    let sim = Sim::new();
    sim.block_on(|| {
        let (a, b, c) = (Chan::<u32>::new(), Chan::<u32>::new(), Chan::<u32>::new());
        a.send(1)?;
        c.send(3)?;
        let got = fuseau::select! {
            recv(a) -> v => {
                let v = v?;
                fuseau::select! {
                    recv(b) -> w => v * 10 + w?,
                    recv(c) -> w => v * 100 + w?,
                }
            }
            recv(b) -> v => v?,
        };
        assert_eq!(got, 103);
        Ok(())
    })
    .unwrap();
}

// ------------------------------------- losing branches, before the body

/// The losing branches are gone (their send values dropped, their futures
/// dropped) before the winning body runs, as with `tokio::select!`.
#[test]
#[cfg_attr(miri, ignore)]
fn a_losing_send_value_is_dropped_before_the_body_runs() {
    let sim = Sim::new();
    let drops = Counter::new();
    let d = drops.clone();
    let in_body = sim
        .block_on(move || {
            let ready: Chan<u32> = Chan::new();
            ready.send(1)?;
            let room: Chan<Guard> = Chan::new();
            Ok(fuseau::select! {
                recv(ready) -> _ => d.get(),
                send(room, d.guard()) -> _ => unreachable!("the receive was first"),
            })
        })
        .unwrap();
    assert_eq!(drops.get(), 1, "dropped in the end");
    assert_eq!(in_body, 1, "the losing value is still alive in the body");
}

/// A lock of the Tokio kind (`tokio::sync::Mutex`, `Semaphore`): FIFO,
/// and `release` hands the lock to the first queued acquirer, whose future
/// owns it from then on, polled or not; an acquire future dropped holding
/// it passes it on.
#[derive(Clone, Default)]
struct FifoLock(Rc<RefCell<LockState>>);

#[derive(Default)]
struct LockState {
    held: bool,
    next_ticket: u64,
    queue: VecDeque<(u64, Waker)>,
    granted: Option<u64>,
}

impl FifoLock {
    fn acquire(&self) -> Acquire {
        Acquire {
            lock: self.clone(),
            ticket: None,
            done: false,
        }
    }

    fn release(&self) {
        let next = {
            let mut state = self.0.borrow_mut();
            match state.queue.pop_front() {
                Some((ticket, waker)) => {
                    state.granted = Some(ticket);
                    Some(waker)
                }
                None => {
                    state.held = false;
                    None
                }
            }
        };
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

struct LockGuard(FifoLock);

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

struct Acquire {
    lock: FifoLock,
    ticket: Option<u64>,
    done: bool,
}

impl Future for Acquire {
    type Output = LockGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let this = &mut *self;
        let mut state = this.lock.0.borrow_mut();
        match this.ticket {
            None if !state.held => state.held = true,
            Some(ticket) if state.granted == Some(ticket) => state.granted = None,
            None => {
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.queue.push_back((ticket, cx.waker().clone()));
                this.ticket = Some(ticket);
                return Poll::Pending;
            }
            Some(ticket) => {
                if let Some(entry) = state.queue.iter_mut().find(|(t, _)| *t == ticket) {
                    entry.1 = cx.waker().clone();
                }
                return Poll::Pending;
            }
        }
        this.done = true;
        Poll::Ready(LockGuard(this.lock.clone()))
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let (Some(ticket), false) = (self.ticket, self.done) else {
            return;
        };
        let granted = {
            let mut state = self.lock.0.borrow_mut();
            if state.granted == Some(ticket) {
                state.granted = None;
                true
            } else {
                state.queue.retain(|(t, _)| *t != ticket);
                false
            }
        };
        if granted {
            self.lock.release(); // pass it on
        }
    }
}

/// The lock works as intended with `await_event` and the function form.
#[test]
#[cfg_attr(miri, ignore)]
fn the_fifo_lock_with_select_the_function() {
    let sim = Sim::new();
    sim.block_on(|| {
        let lock = FifoLock::default();
        let c: Chan<u32> = Chan::bounded(0);
        let guard = fuseau::await_event(ev_future(lock.acquire()))?;
        let c1 = c.clone();
        go(move || {
            fuseau::yield_now()?;
            c1.send(1)?;
            drop(guard);
            Ok(())
        });
        let got = fuseau::select(vec![
            fuseau::When::new(ev_future(lock.acquire()), |_| 0),
            fuseau::When::new(c.ev_recv(), |v| v),
        ])?;
        assert_eq!(got, 1);
        fuseau::yield_now()?; // the guard is released, to the losing future
        let _guard = fuseau::await_event(ev_future(lock.acquire()))?;
        Ok(())
    })
    .unwrap();
}

/// A losing `ev_future` that acquires a Tokio-style (hand-over) lock is
/// dropped before the body runs: were it still queued, the holder's release
/// would hand the lock to it, and a body that takes the lock would wait for
/// itself (a deadlock: the simulation would panic).
#[test]
#[cfg_attr(miri, ignore)]
fn a_losing_future_is_dropped_before_the_body_runs() {
    let sim = Sim::new();
    sim.block_on(|| {
        let lock = FifoLock::default();
        let c: Chan<u32> = Chan::bounded(0);
        let guard = fuseau::await_event(ev_future(lock.acquire()))?;
        let c1 = c.clone();
        go(move || {
            fuseau::yield_now()?;
            c1.send(1)?; // the receive wins...
            drop(guard); // ... and the lock goes to the first queued
            Ok(())
        });
        fuseau::select! {
            ev(ev_future(lock.acquire())) -> _ => unreachable!("the lock is held"),
            recv(c) -> v => {
                assert_eq!(v?, 1);
                fuseau::yield_now()?; // the holder releases
                let _guard = fuseau::await_event(ev_future(lock.acquire()))?;
            }
        }
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------------- allocation

/// Once the channels have their buffers, a `select!` allocates nothing:
/// neither when a branch is ready at once, nor when the fiber waits on
/// channels (its slots are recycled, its registrations are not boxed).
#[test]
#[cfg_attr(miri, ignore)]
fn a_select_allocates_nothing() {
    const ROUNDS: u32 = 1_000;
    const WARM_UP: u32 = 10;
    let sim = Sim::new();
    let counts = sim
        .block_on(|| {
            let (a, b): (Chan<u32>, Chan<u32>) = (Chan::bounded(4), Chan::bounded(4));
            let round = |i: u32| -> Result<u32> {
                let got = fuseau::select! {
                    recv(a) -> v => v?,
                    send(b, i) -> r => { r?; i + 1 }
                    ev(ev_timeout(HOUR)) -> t => { t?; 0 }
                };
                assert_eq!(b.try_recv(), Ok(i));
                Ok(got)
            };
            round(0)?; // warm-up: b's buffer
            let before = allocations();
            for i in 0..ROUNDS {
                assert_eq!(round(i)?, i + 1);
            }
            let ready = allocations() - before;
            // Waiting: a ping-pong over rendezvous channels, both sides
            // waiting in a select!.
            let (ping, pong): (Chan<u32>, Chan<u32>) = (Chan::bounded(0), Chan::bounded(0));
            // Each side has a channel of its own that nobody else uses.
            let never: Chan<u32> = Chan::bounded(0);
            let (pi, po, nv) = (ping.clone(), pong.clone(), Chan::bounded(0));
            go(move || {
                for _ in 0..ROUNDS {
                    let v = fuseau::select! {
                        recv(nv) -> v => v?,
                        recv(pi) -> v => v?,
                    };
                    fuseau::select! {
                        send(nv, 0) -> r => r?,
                        send(po, v) -> r => r?,
                    }
                }
                Ok(())
            });
            let exchange = |i: u32| -> Result<()> {
                fuseau::select! {
                    send(never, 0) -> r => r?,
                    send(ping, i) -> r => r?,
                }
                let v = fuseau::select! {
                    recv(never) -> v => v?,
                    recv(pong) -> v => v?,
                };
                assert_eq!(v, i);
                Ok(())
            };
            // Warm-up: slots, waiter queues, the echo's stack.
            for i in 0..WARM_UP {
                exchange(i)?;
            }
            let before = allocations();
            for i in WARM_UP..ROUNDS {
                exchange(i)?;
            }
            let waiting = allocations() - before;
            Ok((ready, waiting))
        })
        .unwrap();
    assert_eq!(counts, (0, 0), "(ready, waiting) allocations");
}

// ------------------------------------------------------------------ stress

/// Two producers, each sending to whichever of two bounded channels takes
/// its value first (preferring one or the other by turns), and a consumer
/// taking from whichever has a value: every value arrives once, the values
/// of one producer on one channel in order, and nothing is left behind.
#[test]
#[cfg_attr(miri, ignore)]
fn two_producers_and_a_selecting_consumer() {
    const PER_PRODUCER: u64 = 5_000;
    const TAG: u64 = 1_000_000;
    for (ca, cb) in [(0, 0), (1, 0), (0, 3), (2, 5), (64, 64)] {
        let sim = Sim::new();
        let (a, b): (Chan<u64>, Chan<u64>) = (Chan::bounded(ca), Chan::bounded(cb));
        let (a1, b1) = (a.clone(), b.clone());
        let (total, per_channel) = sim
            .block_on(move || {
                for p in 0..2 {
                    let (a, b) = (a1.clone(), b1.clone());
                    go(move || {
                        for i in 0..PER_PRODUCER {
                            let v = p * TAG + i;
                            let (x, y) = if (p + i / 3) % 2 == 0 {
                                (&a, &b)
                            } else {
                                (&b, &a)
                            };
                            fuseau::select! {
                                send(x, v) -> r => r?,
                                send(y, v) -> r => r?,
                            }
                            if i % 11 == 0 {
                                fuseau::yield_now()?;
                            }
                        }
                        Ok(())
                    });
                }
                let mut total = 0;
                let mut per_channel = [0; 2];
                // The last value seen per (producer, channel).
                let mut last = [[None::<u64>; 2]; 2];
                for _ in 0..2 * PER_PRODUCER {
                    let (from, v) = fuseau::select! {
                        recv(a1) -> v => (0, v?),
                        recv(b1) -> v => (1, v?),
                    };
                    let (p, i) = ((v / TAG) as usize, v % TAG);
                    if let Some(prev) = last[p][from] {
                        assert!(prev < i, "producer {p} on channel {from}: {prev} then {i}");
                    }
                    last[p][from] = Some(i);
                    total += v;
                    per_channel[from] += 1;
                }
                fuseau::yield_now()?;
                for c in [&a1, &b1] {
                    assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
                    assert_eq!(waiters(c), (0, 0));
                }
                Ok((total, per_channel))
            })
            .unwrap();
        let expected: u64 = (0..2)
            .map(|p| (0..PER_PRODUCER).map(|i| p * TAG + i).sum::<u64>())
            .sum();
        assert_eq!(total, expected, "capacities ({ca}, {cb})");
        assert_eq!(per_channel.iter().sum::<u64>(), 2 * PER_PRODUCER);
        assert!(
            per_channel.iter().all(|&n| n > 0),
            "capacities ({ca}, {cb}): both channels carried values: {per_channel:?}"
        );
        assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
        assert_eq!(sim.sched.n_fibers(), 0);
    }
}
