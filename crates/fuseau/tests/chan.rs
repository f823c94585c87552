//! `Chan`: waiters served in FIFO order, the three cancellation cases of
//! `send` and `recv`, values handed over at the moment of a cancellation,
//! closing, the `try_` operations and their errors, use outside a fiber,
//! and teardown.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{waiters, Counter, Guard, Log, Sim};
use fuseau::{AnyFiber, Chan, Error, ErrorKind, TryRecvError, TrySendError};

fn cancel_self() {
    AnyFiber::current().cancel();
}

fn kind<T>(r: &fuseau::Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(Error::kind)
}

// ------------------------------------------------------------ FIFO order

#[test]
#[cfg_attr(miri, ignore)]
fn blocked_receivers_are_served_in_fifo_order() {
    for capacity in [None, Some(0), Some(1), Some(3)] {
        let sim = Sim::new();
        let log = Log::new();
        let chan: Chan<u32> = capacity.map_or_else(Chan::new, Chan::bounded);
        for r in 0..5 {
            let (c, l) = (chan.clone(), log.clone());
            sim.spawn(move || {
                let v = c.recv()?;
                l.push(format!("r{r} got {v}"));
                Ok(())
            });
        }
        sim.run_until_idle();
        assert_eq!(waiters(&chan), (0, 5));
        for v in 0..5 {
            chan.try_send(v).unwrap();
        }
        assert!(chan.is_empty(), "handed to the waiting receivers directly");
        sim.run_until_idle();
        assert_eq!(
            log.take(),
            ["r0 got 0", "r1 got 1", "r2 got 2", "r3 got 3", "r4 got 4"],
            "{capacity:?}"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn blocked_senders_are_served_in_fifo_order() {
    for capacity in [0, 1, 3] {
        let sim = Sim::new();
        let log = Log::new();
        let chan = Chan::bounded(capacity);
        for i in 0..capacity as u32 {
            chan.try_send(100 + i).unwrap();
        }
        for s in 0..5u32 {
            let (c, l) = (chan.clone(), log.clone());
            sim.spawn(move || {
                c.send(s)?;
                l.push(format!("s{s} sent"));
                Ok(())
            });
        }
        sim.run_until_idle();
        assert_eq!(waiters(&chan), (5, 0));
        let got: Vec<u32> = (0..capacity + 5)
            .map(|_| chan.try_recv().unwrap())
            .collect();
        let expected: Vec<u32> = (100..100 + capacity as u32).chain(0..5).collect();
        assert_eq!(got, expected, "capacity {capacity}");
        sim.run_until_idle();
        assert_eq!(
            log.take(),
            ["s0 sent", "s1 sent", "s2 sent", "s3 sent", "s4 sent"]
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancelled_waiter_leaves_the_queue_and_the_others_keep_their_turn() {
    let sim = Sim::new();
    let log = Log::new();
    let chan = Chan::bounded(0);
    let receivers: Vec<_> = (0..4)
        .map(|r| {
            let (c, l) = (chan.clone(), log.clone());
            sim.spawn(move || {
                let got = c.recv();
                l.push(format!("r{r}: {:?}", got.as_ref().map_err(Error::kind)));
                got.map(drop)
            })
        })
        .collect();
    sim.run_until_idle();
    receivers[1].cancel();
    sim.run_until_idle();
    assert_eq!(log.take(), ["r1: Err(Cancelled)"]);
    assert_eq!(waiters(&chan), (0, 3), "its registration is gone");
    for v in 0..3 {
        chan.try_send(v).unwrap();
    }
    sim.run_until_idle();
    assert_eq!(log.take(), ["r0: Ok(0)", "r2: Ok(1)", "r3: Ok(2)"]);
}

// ------------------------------------------------- cancellation: recv

#[test]
#[cfg_attr(miri, ignore)]
fn recv_when_cancelled_before_the_call_fails_and_takes_nothing() {
    let sim = Sim::new();
    let chan = Chan::new();
    chan.try_send(1).unwrap();
    let c = chan.clone();
    let result = sim.block_on(move || {
        cancel_self();
        let e = c.recv().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        // Not a cancellation point: still works.
        assert_eq!(c.try_recv(), Ok(1));
        c.try_send(2).unwrap();
        Ok(())
    });
    result.unwrap(); // cancelled, but the body returned Ok
    assert_eq!(chan.try_recv(), Ok(2));
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_when_cancelled_while_waiting_wakes_at_once() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let c = chan.clone();
    let fiber = sim.spawn(move || c.recv());
    sim.run_until_idle();
    assert_eq!(waiters(&chan), (0, 1));
    fiber.cancel();
    assert_eq!(sim.run_until_idle(), None, "no timer involved");
    assert!(fiber.is_done());
    assert_eq!(kind(&fiber.join()), Some(ErrorKind::Cancelled));
    assert_eq!(waiters(&chan), (0, 0));
    // A later value is not lost to the cancelled receiver.
    assert!(matches!(chan.try_send(7), Err(TrySendError::Full(7))));
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_handed_a_value_then_cancelled_returns_the_value() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let c = chan.clone();
    let fiber = sim.spawn(move || {
        let v = c.recv();
        // Cancelled after success: the next suspension point fails.
        let next = fuseau::yield_now();
        Ok((v?, kind(&next)))
    });
    sim.run_until_idle();
    chan.try_send(5).unwrap(); // claims the receiver and hands it over
    fiber.cancel(); // before the receiver ran
    sim.run_until_idle();
    let (v, next) = fiber.join().unwrap();
    assert_eq!(v, 5, "the value handed over is not lost");
    assert_eq!(next, Some(ErrorKind::Cancelled));
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_cancelled_then_handed_a_value_before_it_ran_returns_the_value() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let c = chan.clone();
    let fiber = sim.spawn(move || {
        let v = c.recv();
        Ok((v?, kind(&fuseau::yield_now())))
    });
    sim.run_until_idle();
    fiber.cancel(); // queued, but has not run yet...
    chan.try_send(6).unwrap(); // ... so it can still be handed a value
    sim.run_until_idle();
    assert_eq!(fiber.join().unwrap(), (6, Some(ErrorKind::Cancelled)));
    assert!(chan.is_empty());
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_woken_and_cancelled_does_not_swallow_a_later_value() {
    // The receiver's registration is gone once it has run: the next value
    // goes to the next receiver.
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::new();
    let (c1, c2) = (chan.clone(), chan.clone());
    let first = sim.spawn(move || c1.recv());
    let second = sim.spawn(move || c2.recv());
    sim.run_until_idle();
    first.cancel();
    sim.run_until_idle();
    chan.try_send(9).unwrap();
    sim.run_until_idle();
    assert!(first.join().unwrap_err().is_cancelled());
    assert_eq!(second.join().unwrap(), 9);
}

// ------------------------------------------------- cancellation: send

#[test]
#[cfg_attr(miri, ignore)]
fn send_when_cancelled_before_the_call_fails_and_sends_nothing() {
    for capacity in [None, Some(0), Some(4)] {
        let sim = Sim::new();
        let drops = Counter::new();
        let chan: Chan<Guard> = capacity.map_or_else(Chan::new, Chan::bounded);
        let (c, d) = (chan.clone(), drops.clone());
        let result = sim.block_on(move || {
            cancel_self();
            // Even though the channel has room.
            let e = c.send(d.guard()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Cancelled);
            assert_eq!(d.get(), 1, "the value was dropped, unsent");
            Ok(())
        });
        result.unwrap();
        assert!(chan.is_empty());
        assert_eq!(drops.get(), 1);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn send_when_cancelled_while_waiting_wakes_at_once_and_drops_the_value() {
    for capacity in [0, 2] {
        let sim = Sim::new();
        let drops = Counter::new();
        let chan: Chan<Guard> = Chan::bounded(capacity);
        for _ in 0..capacity {
            chan.try_send(drops.guard()).unwrap();
        }
        let (c, d) = (chan.clone(), drops.clone());
        let fiber = sim.spawn(move || c.send(d.guard()));
        sim.run_until_idle();
        assert_eq!(waiters(&chan), (1, 0));
        fiber.cancel();
        assert_eq!(sim.run_until_idle(), None);
        assert_eq!(kind(&fiber.join()), Some(ErrorKind::Cancelled));
        assert_eq!(drops.get(), 1, "the unsent value was dropped");
        assert_eq!(waiters(&chan), (0, 0));
        assert_eq!(chan.len(), capacity, "nothing was added");
        drop(chan);
        assert_eq!(drops.get(), capacity + 1);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn send_taken_by_a_receiver_then_cancelled_returns_ok() {
    for capacity in [0, 1] {
        let sim = Sim::new();
        let chan: Chan<u32> = Chan::bounded(capacity);
        if capacity == 1 {
            chan.try_send(1).unwrap();
        }
        let c = chan.clone();
        let fiber = sim.spawn(move || {
            let sent = c.send(2);
            Ok((kind(&sent), kind(&fuseau::yield_now())))
        });
        sim.run_until_idle();
        // For the rendezvous, the receiver takes the value; for the full
        // channel, taking the buffered value moves it in.
        let first = chan.try_recv().unwrap();
        assert_eq!(first, if capacity == 0 { 2 } else { 1 });
        fiber.cancel();
        sim.run_until_idle();
        assert_eq!(
            fiber.join().unwrap(),
            (None, Some(ErrorKind::Cancelled)),
            "the send succeeded; the next suspension point fails"
        );
        if capacity == 1 {
            assert_eq!(chan.try_recv(), Ok(2));
        }
        assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    }
}

// ---------------------------------------------------------------- close

#[test]
#[cfg_attr(miri, ignore)]
fn close_wakes_blocked_senders_with_closed_and_drops_their_values() {
    let sim = Sim::new();
    let drops = Counter::new();
    let chan: Chan<Guard> = Chan::bounded(1);
    chan.try_send(drops.guard()).unwrap();
    let fibers: Vec<_> = (0..3)
        .map(|_| {
            let (c, d) = (chan.clone(), drops.clone());
            sim.spawn(move || c.send(d.guard()))
        })
        .collect();
    sim.run_until_idle();
    assert_eq!(waiters(&chan), (3, 0));
    chan.close();
    assert_eq!(waiters(&chan), (0, 0), "close empties the queues at once");
    sim.run_until_idle();
    for f in fibers {
        assert_eq!(kind(&f.join()), Some(ErrorKind::Closed));
    }
    assert_eq!(drops.get(), 3);
    // The buffered value is still there.
    assert_eq!(chan.len(), 1);
    drop(chan.try_recv().unwrap());
    assert_eq!(chan.try_recv().err(), Some(TryRecvError::Closed));
    assert_eq!(drops.get(), 4);
}

#[test]
#[cfg_attr(miri, ignore)]
fn close_wakes_blocked_receivers_with_closed() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::new();
    let fibers: Vec<_> = (0..3)
        .map(|_| {
            let c = chan.clone();
            sim.spawn(move || c.recv())
        })
        .collect();
    sim.run_until_idle();
    chan.close();
    assert!(chan.is_closed());
    sim.run_until_idle();
    for f in fibers {
        assert_eq!(kind(&f.join()), Some(ErrorKind::Closed));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_value_handed_over_before_close_is_still_received() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let c = chan.clone();
    let fiber = sim.spawn(move || c.recv());
    sim.run_until_idle();
    chan.try_send(3).unwrap();
    chan.close();
    sim.run_until_idle();
    assert_eq!(fiber.join().unwrap(), 3);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_sender_taken_before_close_succeeded() {
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let c = chan.clone();
    let fiber = sim.spawn(move || c.send(4));
    sim.run_until_idle();
    assert_eq!(chan.try_recv(), Ok(4));
    chan.close();
    sim.run_until_idle();
    fiber.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn close_is_idempotent_and_visible_through_every_clone() {
    let a: Chan<u32> = Chan::bounded(2);
    let b = a.clone();
    a.try_send(1).unwrap();
    assert!(!b.is_closed());
    b.close();
    b.close();
    assert!(a.is_closed());
    assert_eq!(a.len(), 1);
    assert!(!a.is_empty());
    assert_eq!(b.try_recv(), Ok(1));
    assert!(a.is_empty());
    assert_eq!(a.try_recv(), Err(TryRecvError::Closed));
}

// --------------------------------------------------------- try_ and errors

#[test]
#[cfg_attr(miri, ignore)]
fn try_send_and_try_recv_on_every_kind_of_channel() {
    // Unbounded: never full.
    let c = Chan::new();
    for i in 0..1_000 {
        c.try_send(i).unwrap();
    }
    assert_eq!(c.len(), 1_000);
    // Bounded: full at capacity, room again after a receive.
    let c = Chan::bounded(2);
    c.try_send(1).unwrap();
    c.try_send(2).unwrap();
    assert_eq!(c.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(c.try_recv(), Ok(1));
    c.try_send(3).unwrap();
    assert_eq!(c.len(), 2);
    // Rendezvous: always full without a waiting receiver.
    let c = Chan::bounded(0);
    assert_eq!(c.try_send(1), Err(TrySendError::Full(1)));
    assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(c.len(), 0);
    c.close();
    assert_eq!(c.try_send(1), Err(TrySendError::Closed(1)));
    assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
}

#[test]
#[cfg_attr(miri, ignore)]
fn try_errors_give_back_the_value_and_convert_to_errors() {
    let full = TrySendError::Full(String::from("x"));
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert_eq!(full.to_string(), "sending on a full channel");
    assert_eq!(full.clone().into_inner(), "x");
    assert_eq!(Error::from(full).kind(), ErrorKind::Other);
    let closed = TrySendError::Closed(String::from("y"));
    assert_eq!(closed.to_string(), "sending on a closed channel");
    assert_eq!(closed.clone().into_inner(), "y");
    assert!(Error::from(closed).is_closed());
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty channel"
    );
    assert_eq!(Error::from(TryRecvError::Empty).kind(), ErrorKind::Other);
    assert!(Error::from(TryRecvError::Closed).is_closed());
    // `?` in a fiber body.
    let r = fuseau::block_on(|| {
        let c: Chan<u32> = Chan::bounded(0);
        c.try_send(1)?;
        Ok(())
    });
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Other);
}

#[test]
#[cfg_attr(miri, ignore)]
fn blocking_operations_outside_a_fiber_work_when_ready_and_fail_otherwise() {
    let c = Chan::bounded(1);
    c.send(1).unwrap();
    assert_eq!(c.send(2).unwrap_err().kind(), ErrorKind::NotInFiber);
    assert!(c.send(2).unwrap_err().message().contains("Chan::send"));
    assert_eq!(c.recv().unwrap(), 1);
    let e = c.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.message().contains("Chan::recv"), "{e}");
    c.close();
    assert!(c.recv().unwrap_err().is_closed());
    assert!(c.send(3).unwrap_err().is_closed());
}

#[test]
#[cfg_attr(miri, ignore)]
fn debug_shows_the_state() {
    let sim = Sim::new();
    let c: Chan<u32> = Chan::bounded(1);
    c.try_send(1).unwrap();
    let c1 = c.clone();
    let _sender = sim.spawn(move || c1.send(2));
    sim.run_until_idle();
    assert_eq!(
        format!("{c:?}"),
        "Chan { len: 1, capacity: Some(1), closed: false, blocked_senders: 1, blocked_receivers: 0 }"
    );
    c.close();
    assert_eq!(
        format!("{c:?}"),
        "Chan { len: 1, capacity: Some(1), closed: true, blocked_senders: 0, blocked_receivers: 0 }"
    );
    assert_eq!(
        format!("{:?}", Chan::<()>::default()),
        "Chan { len: 0, capacity: None, closed: false, blocked_senders: 0, blocked_receivers: 0 }"
    );
}

// ------------------------------------------------------------- teardown

#[test]
#[cfg_attr(miri, ignore)]
fn teardown_unblocks_waiters_and_drops_unsent_values() {
    let drops = Counter::new();
    let chan: Chan<Guard> = Chan::bounded(0);
    let other: Chan<Guard> = Chan::new();
    {
        let sim = Sim::new();
        for _ in 0..3 {
            let (c, d) = (chan.clone(), drops.clone());
            sim.spawn(move || c.send(d.guard()));
            let c = other.clone();
            sim.spawn(move || c.recv().map(drop));
        }
        // Fibers that ignore their cancellation and keep trying.
        let (c, d) = (chan.clone(), drops.clone());
        sim.spawn::<()>(move || loop {
            let _ = c.send(d.guard());
        });
        sim.run_until_idle();
        assert_eq!(waiters(&chan), (4, 0));
        assert_eq!(waiters(&other), (0, 3));
        // The channels outlive the scheduler.
    }
    assert_eq!(waiters(&chan), (0, 0), "no registration outlives its fiber");
    assert_eq!(waiters(&other), (0, 0));
    assert!(drops.get() >= 4);
    assert!(chan.is_empty());
    let made = drops.get();
    drop(chan);
    assert_eq!(drops.get(), made, "nothing was left in the channel");
    // A channel whose fibers are gone still works.
    other.try_send(Counter::new().guard()).unwrap();
    assert_eq!(other.len(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn send_and_recv_fail_with_cancelled_in_a_loop_without_starving_others() {
    // A loop that ignores the error of its cancelled send yields each time,
    // so the others still run.
    let sim = Sim::new();
    let chan: Chan<u32> = Chan::bounded(0);
    let c = chan.clone();
    let spinner = sim.spawn(move || {
        cancel_self();
        let mut n = 0;
        while n < 1_000 {
            assert!(c.send(1).unwrap_err().is_cancelled());
            assert!(c.recv().unwrap_err().is_cancelled());
            n += 1;
        }
        Ok(n)
    });
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let other = sim.spawn(move || {
        for _ in 0..100 {
            t.set(t.get() + 1);
            fuseau::yield_now()?;
        }
        Ok(())
    });
    sim.run_until(|| other.is_done());
    assert_eq!(ticks.get(), 100);
    assert!(!spinner.is_done(), "they took turns");
    sim.run_until_idle();
    // Cancellation alone does not fail a fiber whose body returns Ok.
    assert_eq!(spinner.join().unwrap(), 1_000);
}
