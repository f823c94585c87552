//! `SharedChan`: a channel between fibers of different schedulers (on
//! different threads) and plain threads.
//!
//! Where the order of events matters, the fibers run on a scheduler driven
//! by hand on the test thread (`Sim`), and other threads do their part
//! between two steps (joined before the next step), so the transcript is
//! deterministic. Elsewhere fibers run on `block_on` schedulers on threads
//! of their own, and only totals are checked. A lost wake-up shows as a
//! hang: those tests run under a watchdog that aborts the test binary.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::chans::{recv_opt, waiters};
use common::with_watchdog;
use common::{ms, Sim, Slot, HOUR};
use fuseau::{
    select, Chan, ErrorKind, Fiber, Result, SharedChan, SharedRecvEvent, SharedSendEvent,
    TryRecvError, TrySendError, When,
};

/// Runs `f` as the main fiber of a scheduler on a new thread.
fn on_thread<R: Send + 'static>(
    f: impl FnOnce() -> Result<R> + Send + 'static,
) -> thread::JoinHandle<Result<R>> {
    thread::spawn(move || fuseau::block_on(f))
}

/// Runs `f` on a new plain thread (no scheduler) and waits for it.
fn plain<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    thread::spawn(f).join().unwrap()
}

/// A value that counts its drops, to prove that none is lost or
/// duplicated (a duplicate would be a double drop).
struct Counted {
    id: u64,
    drops: Arc<AtomicUsize>,
}

impl Counted {
    fn new(id: u64, drops: &Arc<AtomicUsize>) -> Counted {
        Counted {
            id,
            drops: drops.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn drops() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn count(drops: &Arc<AtomicUsize>) -> usize {
    drops.load(Ordering::SeqCst)
}

/// What an echo (see [`echo`]) returns: how many values came, and their
/// sum.
type EchoResult = Result<(u64, u64)>;

/// Sends `f(v)` on `tx` for each value `v` received from `rx`, until `rx`
/// is closed; then closes `tx`.
fn echo(rx: &SharedChan<u64>, tx: &SharedChan<u64>, f: fn(u64) -> u64) -> EchoResult {
    let (mut n, mut sum) = (0, 0);
    while let Some(v) = recv_opt(rx)? {
        sum += v;
        tx.send(f(v))?;
        n += 1;
    }
    tx.close();
    Ok((n, sum))
}

/// Starts an echo of `f` on a thread of its own, with `spawn` (a plain
/// thread, or a scheduler's with [`on_thread`]), over two new channels of
/// capacity `cap`; returns the channel to it, the channel from it, and its
/// thread.
fn start_echo(
    cap: usize,
    f: fn(u64) -> u64,
    spawn: fn(Box<dyn FnOnce() -> EchoResult + Send>) -> thread::JoinHandle<EchoResult>,
) -> (
    SharedChan<u64>,
    SharedChan<u64>,
    thread::JoinHandle<EchoResult>,
) {
    let to_echo = SharedChan::bounded(cap);
    let from_echo = SharedChan::bounded(cap);
    let (rx, tx) = (to_echo.clone(), from_echo.clone());
    let thread = spawn(Box::new(move || echo(&rx, &tx, f)));
    (to_echo, from_echo, thread)
}

/// A scheduler driven by hand, a rendezvous `SharedChan`, and a local
/// `Chan` of capacity `local_cap`.
fn sim_shared_and_local(local_cap: usize) -> (Sim, SharedChan<u32>, Chan<u32>) {
    (Sim::new(), SharedChan::bounded(0), Chan::bounded(local_cap))
}

/// A fiber on `sim`, blocked sending a `Counted` (id 1) on a new
/// rendezvous channel: returns the channel, the fiber, and the counter of
/// the value's drops.
fn blocked_sender(sim: &Sim) -> (SharedChan<Counted>, Fiber<()>, Arc<AtomicUsize>) {
    let dropped = drops();
    let chan = SharedChan::bounded(0);
    let (c, d) = (chan.clone(), dropped.clone());
    let sender = sim.spawn(move || c.send(Counted::new(1, &d)));
    sim.run_until_idle();
    (chan, sender, dropped)
}

/// A fiber on `sim`, blocked receiving on a new rendezvous channel:
/// returns the channel and the fiber.
fn blocked_receiver<T: Send + 'static>(sim: &Sim) -> (SharedChan<T>, Fiber<T>) {
    let chan = SharedChan::bounded(0);
    let c = chan.clone();
    let receiver = sim.spawn(move || c.recv());
    sim.run_until_idle();
    (chan, receiver)
}

/// Cancels `fiber` (a fiber on `sim`), and runs `sim` until it is idle.
fn cancel<T>(sim: &Sim, fiber: &Fiber<T>) {
    fiber.cancel();
    sim.run_until_idle();
}

// ------------------------------------------------------------- basics

#[test]
fn it_is_send_and_sync_and_its_events_are_not() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedChan<u32>>();
    send_sync::<SharedChan<Box<dyn std::any::Any + Send>>>();
    let chan = SharedChan::<u32>::new();
    let text = format!("{:?} {:?}", chan.ev_recv(), chan.ev_send(1));
    assert_eq!(text, "SharedRecvEvent { .. } SharedSendEvent { .. }");
    // The events stay with the fiber that makes them (`compile_fail`
    // doctests on both types pin it); only the channel crosses threads.
    let _: Option<SharedRecvEvent<u32>> = None;
    let _: Option<SharedSendEvent<u32>> = None;
}

#[test]
fn non_blocking_operations_anywhere() {
    let chan = SharedChan::bounded(2);
    assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    chan.try_send(1).unwrap();
    chan.try_send(2).unwrap();
    assert_eq!(chan.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!((chan.len(), chan.is_empty()), (2, false));
    let other = chan.clone();
    assert_eq!(plain(move || other.try_recv()), Ok(1));
    chan.close();
    chan.close(); // idempotent
    assert!(chan.is_closed());
    assert_eq!(chan.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(chan.try_recv(), Ok(2), "drained after close");
    assert_eq!(chan.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(
        format!("{chan:?}"),
        "SharedChan { len: 0, capacity: Some(2), closed: true, blocked_senders: 0, \
         blocked_receivers: 0 }"
    );
}

// ------------------------------------------------------ plain threads

#[test]
#[cfg_attr(miri, ignore)]
fn plain_threads_block_in_both_directions() {
    with_watchdog(|| {
        for cap in [0, 1, 3] {
            let (ping, pong, echo) = start_echo(cap, |v| v + 1, thread::spawn);
            for i in 0..200 {
                ping.send(i).unwrap();
                assert_eq!(pong.recv().unwrap(), i + 1, "cap={cap}");
            }
            ping.close();
            assert!(pong.recv().unwrap_err().is_closed());
            assert_eq!(echo.join().unwrap().unwrap().0, 200);
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_plain_thread_and_a_fiber_in_both_directions() {
    with_watchdog(|| {
        for cap in [0, 1, 16] {
            let (to_fiber, to_thread, fiber_side) = start_echo(cap, |v| v * 2, on_thread);
            // The test thread is a plain thread: it blocks.
            let mut back = 0u64;
            for i in 0..300u64 {
                to_fiber.send(i).unwrap();
                back += to_thread.recv().unwrap();
            }
            to_fiber.close();
            assert!(to_thread.recv().unwrap_err().is_closed());
            assert_eq!(fiber_side.join().unwrap().unwrap().1, 299 * 300 / 2);
            assert_eq!(back, 299 * 300, "cap={cap}");
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn blocking_outside_a_fiber_on_a_scheduler_thread_is_refused() {
    let sim = Sim::new();
    let chan = SharedChan::<u32>::bounded(0);
    let e = chan.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.message().contains("SharedChan::recv"), "{e}");
    let e = chan.send(1).unwrap_err();
    assert!(e.message().contains("SharedChan::send"), "{e}");
    // What needs no waiting works there too.
    let buffered = SharedChan::bounded(1);
    buffered.send(5).unwrap();
    assert_eq!(buffered.recv().unwrap(), 5);
    drop(sim);
    // With no scheduler left on the thread, it blocks again.
    let tx = chan.clone();
    let sender = thread::spawn(move || tx.send(9));
    assert_eq!(chan.recv().unwrap(), 9);
    sender.join().unwrap().unwrap();
}

// ----------------------------------------------- fibers on two threads

#[test]
#[cfg_attr(miri, ignore)]
fn fibers_on_two_schedulers_exchange_values_in_order() {
    const N: u64 = 2_000;
    with_watchdog(|| {
        for cap in [0, 1, 64, usize::MAX] {
            let chan = SharedChan::bounded(cap);
            let tx = chan.clone();
            let producer = on_thread(move || {
                // Two fibers on the producing side, taking turns.
                let a = {
                    let tx = tx.clone();
                    fuseau::spawn(move || (0..N).step_by(2).try_for_each(|i| tx.send(i)))
                };
                a.join()?;
                (1..N).step_by(2).try_for_each(|i| tx.send(i))?;
                tx.close();
                Ok(())
            });
            let consumer = on_thread(move || {
                let mut got = Vec::new();
                while let Some(v) = recv_opt(&chan)? {
                    got.push(v);
                }
                Ok(got)
            });
            producer.join().unwrap().unwrap();
            let got = consumer.join().unwrap().unwrap();
            let expected: Vec<u64> = (0..N).step_by(2).chain((1..N).step_by(2)).collect();
            assert_eq!(got, expected, "cap={cap}");
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn rendezvous_across_threads_hands_over_directly() {
    with_watchdog(|| {
        let chan = SharedChan::bounded(0);
        let (tx, observed) = (chan.clone(), chan.clone());
        let sender = on_thread(move || {
            for i in 0..500u32 {
                tx.send(i)?;
                // Nothing is ever buffered on a rendezvous channel.
                assert!(observed.is_empty());
            }
            Ok(())
        });
        let receiver = on_thread(move || {
            let mut expected = 0;
            while expected < 500 {
                assert_eq!(chan.recv()?, expected);
                assert!(chan.is_empty());
                expected += 1;
            }
            Ok(())
        });
        sender.join().unwrap().unwrap();
        receiver.join().unwrap().unwrap();
    });
}

// ---------------------------------------------- FIFO, deterministically

#[test]
#[cfg_attr(miri, ignore)]
fn blocked_receivers_are_served_in_fifo_order() {
    let sim = Sim::new();
    let chan = SharedChan::<u32>::bounded(0);
    let got = Arc::new(Mutex::new(Vec::new()));
    for r in 0..3 {
        let (c, g) = (chan.clone(), got.clone());
        sim.spawn(move || {
            let v = c.recv()?;
            g.lock().unwrap().push((r, v));
            Ok(())
        });
    }
    sim.run_until_idle();
    assert_eq!(waiters(&chan), (0, 3));
    // Another thread sends three values: each goes to the receiver that
    // waited longest.
    let tx = chan.clone();
    plain(move || (10..13).for_each(|v| tx.send(v).unwrap()));
    assert_eq!(waiters(&chan), (0, 0));
    sim.run_until_idle();
    assert_eq!(*got.lock().unwrap(), [(0, 10), (1, 11), (2, 12)]);
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn blocked_senders_are_served_in_fifo_order() {
    for cap in [0, 2] {
        let sim = Sim::new();
        let chan = SharedChan::<u32>::bounded(cap);
        for v in 0..cap as u32 {
            chan.try_send(100 + v).unwrap();
        }
        for s in 0..3 {
            let c = chan.clone();
            sim.spawn(move || c.send(s));
        }
        sim.run_until_idle();
        assert_eq!(waiters(&chan), (3, 0), "cap={cap}");
        let rx = chan.clone();
        let got = plain(move || (0..cap + 3).map(|_| rx.recv().unwrap()).collect::<Vec<_>>());
        let mut expected: Vec<u32> = (0..cap as u32).map(|v| 100 + v).collect();
        expected.extend([0, 1, 2]);
        assert_eq!(got, expected, "cap={cap}");
        sim.run_until_idle();
        assert_eq!(sim.sched.n_fibers(), 0, "every sender was woken");
    }
}

// --------------------------------------------------------------- close

#[test]
#[cfg_attr(miri, ignore)]
fn close_from_another_thread_wakes_every_blocked_fiber() {
    let sim = Sim::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let empty = SharedChan::<u32>::bounded(0);
    let full = SharedChan::<u32>::bounded(1);
    full.try_send(7).unwrap();
    for i in 0..2 {
        let (e, l) = (empty.clone(), log.clone());
        sim.spawn(move || {
            let r = e.recv().map_err(|e| e.kind());
            l.lock().unwrap().push(format!("recv {i}: {r:?}"));
            Ok(())
        });
        let (f, l) = (full.clone(), log.clone());
        sim.spawn(move || {
            let r = f.send(i).map_err(|e| e.kind());
            l.lock().unwrap().push(format!("send {i}: {r:?}"));
            Ok(())
        });
    }
    sim.run_until_idle();
    assert_eq!((waiters(&empty), waiters(&full)), ((0, 2), (2, 0)));
    let (e, f) = (empty.clone(), full.clone());
    plain(move || {
        e.close();
        f.close();
    });
    sim.run_until_idle();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "recv 0: Err(Closed)",
            "recv 1: Err(Closed)",
            "send 0: Err(Closed)",
            "send 1: Err(Closed)"
        ],
        "woken in the order they were closed, then blocked"
    );
    assert_eq!((waiters(&empty), waiters(&full)), ((0, 0), (0, 0)));
    // The buffered value is still there, then Closed.
    assert_eq!(full.try_recv(), Ok(7));
    assert_eq!(full.try_recv(), Err(TryRecvError::Closed));
}

/// Polls `cond` until it holds (other threads get there), for at most a
/// minute.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        thread::sleep(ms(1));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn close_from_a_fiber_wakes_blocked_threads() {
    with_watchdog(|| {
        let empty = SharedChan::<u32>::bounded(0);
        let full = SharedChan::<u32>::bounded(1);
        full.try_send(1).unwrap();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let c = empty.clone();
                thread::spawn(move || c.recv())
            })
            .collect();
        let f = full.clone();
        let sender = thread::spawn(move || f.send(2));
        wait_until("all blocked", || {
            waiters(&empty) == (0, 2) && waiters(&full) == (1, 0)
        });
        let (e, f) = (empty.clone(), full.clone());
        on_thread(move || {
            e.close();
            f.close();
            Ok(())
        })
        .join()
        .unwrap()
        .unwrap();
        for r in receivers {
            assert!(r.join().unwrap().unwrap_err().is_closed());
        }
        assert!(sender.join().unwrap().unwrap_err().is_closed());
        assert_eq!(full.recv().unwrap(), 1, "buffered values are still there");
        assert!(full.recv().unwrap_err().is_closed());
    });
}

// -------------------------------------------------------------- select

#[test]
#[cfg_attr(miri, ignore)]
fn select_mixes_shared_and_local_channels() {
    let (sim, shared, local) = sim_shared_and_local(0);
    let outcome = Slot::new();

    // Blocked on both; a value arrives from another thread.
    let (s, l, o) = (shared.clone(), local.clone(), outcome.clone());
    sim.spawn(move || {
        o.put(select(vec![
            When::new(l.ev_recv(), |v| ("local", v)),
            When::new(s.ev_recv(), |v| ("shared", v)),
            When::new(fuseau::ev_timeout(HOUR), |()| ("timeout", 0)),
        ])?);
        Ok(())
    });
    sim.run_until_idle();
    assert_eq!(waiters(&shared), (0, 1));
    let tx = shared.clone();
    plain(move || tx.send(5).unwrap());
    sim.run_until_idle();
    assert_eq!(outcome.take(), ("shared", 5));
    assert_eq!(common::waiters(&local), (0, 0), "the losing branch left");

    // Blocked on both; a local fiber sends: the shared branch takes
    // nothing afterwards.
    let (s, l, o) = (shared.clone(), local.clone(), outcome.clone());
    sim.spawn(move || {
        o.put(fuseau::select! {
            recv(s) -> v => ("shared", v?),
            recv(l) -> v => ("local", v?),
        });
        Ok(())
    });
    sim.run_until_idle();
    let l = local.clone();
    sim.spawn(move || l.send(6));
    sim.run_until_idle();
    assert_eq!(outcome.take(), ("local", 6));
    assert_eq!(waiters(&shared), (0, 0));
    assert_eq!(
        shared.try_send(7),
        Err(TrySendError::Full(7)),
        "nobody waits"
    );

    // A losing send sends nothing, on either kind of channel.
    let (s, l, o) = (shared.clone(), local.clone(), outcome.clone());
    sim.spawn(move || {
        o.put(fuseau::select! {
            send(s, 1) -> r => { r?; ("shared", 1) },
            send(l, 2) -> r => { r?; ("local", 2) },
        });
        Ok(())
    });
    sim.run_until_idle();
    assert_eq!(waiters(&shared), (1, 0));
    let rx = shared.clone();
    assert_eq!(plain(move || rx.recv().unwrap()), 1);
    sim.run_until_idle();
    assert_eq!(outcome.take(), ("shared", 1));
    assert_eq!(common::waiters(&local), (0, 0));
    assert_eq!(local.try_recv(), Err(TryRecvError::Empty));

    // A timeout wins when nothing comes; nothing is taken afterwards.
    let (s, timed_out) = (shared.clone(), Slot::new());
    let t = timed_out.clone();
    sim.spawn(move || {
        let r = select(vec![
            When::new(s.ev_recv(), |v| ("shared", v)),
            When::new(fuseau::ev_timeout(ms(5)), |()| ("timeout", 0)),
        ]);
        t.put(r.unwrap_err().is_timeout());
        Ok(())
    });
    sim.run_until_idle();
    sim.advance(ms(5));
    sim.run_until_idle();
    assert!(timed_out.take());
    assert_eq!(waiters(&shared), (0, 0));
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn exactly_one_branch_wins_when_both_shared_branches_are_completed_at_once() {
    // Two threads each hand a value to one of the two branches of a
    // select, at about the same time: one branch wins, the other value is
    // left in its channel (a try_send that finds nobody), never lost.
    with_watchdog(|| {
        for round in 0..200 {
            let a = SharedChan::<u32>::bounded(0);
            let b = SharedChan::<u32>::bounded(0);
            let (ra, rb) = (a.clone(), b.clone());
            let selecting = on_thread(move || {
                select(vec![
                    When::new(ra.ev_recv(), |v| ('a', v)),
                    When::new(rb.ev_recv(), |v| ('b', v)),
                ])
            });
            while waiters(&a) != (0, 1) || waiters(&b) != (0, 1) {
                thread::yield_now();
            }
            let senders: Vec<_> = [(a.clone(), 1), (b.clone(), 2)]
                .into_iter()
                .map(|(c, v)| thread::spawn(move || c.try_send(v)))
                .collect();
            let sent: Vec<bool> = senders
                .into_iter()
                .map(|t| t.join().unwrap().is_ok())
                .collect();
            let (branch, v) = selecting.join().unwrap().unwrap();
            assert_eq!(sent.iter().filter(|s| **s).count(), 1, "round {round}");
            assert_eq!(sent, [branch == 'a', branch == 'b'], "round {round}");
            assert_eq!(v, if branch == 'a' { 1 } else { 2 });
            assert_eq!((waiters(&a), waiters(&b)), ((0, 0), (0, 0)));
        }
    });
}

/// An event whose `wait` itself waits (on a local gate), as a future
/// polled by `ev_future` may: the select's other registrations stay in
/// place meanwhile. Ready once the gate opened.
struct WaitsInWait {
    gate: Chan<()>,
    opened: bool,
}

impl fuseau::Event for WaitsInWait {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        self.opened.then_some(Ok(()))
    }

    fn wait(&mut self, wakeup: fuseau::Wakeup) -> fuseau::CancelHandle {
        self.opened = self.gate.recv().is_ok();
        wakeup.wake();
        fuseau::CancelHandle::dummy()
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_branch_claimed_from_another_thread_during_a_nested_wait_wins() {
    let (sim, shared, local) = sim_shared_and_local(1);
    let gate = Chan::<()>::bounded(0);
    let (l, s, g) = (local.clone(), shared.clone(), gate.clone());
    let selecting = sim.spawn(move || {
        select(vec![
            When::new(l.ev_recv(), |_| "local"),
            When::new(s.ev_send(8), |()| "sent"),
            When::new(
                WaitsInWait {
                    gate: g,
                    opened: false,
                },
                |()| "gate",
            ),
        ])
    });
    sim.run_until_idle();
    // The select's receive and send are registered, and the fiber waits
    // in the third branch's registration, for the gate.
    assert_eq!(waiters(&shared), (1, 0));
    // Meanwhile a value arrives on the local channel (buffered: the
    // select's wait is not the fiber's current one)...
    let l = local.clone();
    sim.spawn(move || l.send(1));
    sim.run_until_idle();
    assert_eq!(local.len(), 1);
    // ...and another thread takes the select's value.
    let rx = shared.clone();
    assert_eq!(plain(move || rx.try_recv()), Ok(8), "taken from the select");
    let g = gate.clone();
    sim.spawn(move || g.send(()));
    sim.run_until_idle();
    // When the select looks again, the local branch is ready and comes
    // first; but the send was claimed (and done) before: it is reported,
    // and the local value is left alone.
    assert_eq!(selecting.join().unwrap(), "sent");
    assert_eq!(local.try_recv(), Ok(1));
    assert_eq!(waiters(&shared), (0, 0));
}

// -------------------------------------------------------- cancellation

/// A fiber on `sim` that waits on a local gate, then (cancelled or not)
/// runs `op`, recording its result.
fn after_gate<R: Send + 'static>(
    sim: &Sim,
    op: impl FnOnce() -> Result<R> + 'static,
) -> (fuseau::Fiber<()>, Chan<()>, Slot<Result<R>>) {
    let gate = Chan::<()>::bounded(0);
    let result = Slot::new();
    let (g, r) = (gate.clone(), result.clone());
    let fiber = sim.spawn(move || {
        let _ = g.recv(); // fails once cancelled
        r.put(op());
        Ok(())
    });
    sim.run_until_idle();
    (fiber, gate, result)
}

#[test]
#[cfg_attr(miri, ignore)]
fn send_cancelled_before_it_sends_nothing() {
    let sim = Sim::new();
    let dropped = drops();
    let chan = SharedChan::bounded(1);
    let (c, d) = (chan.clone(), dropped.clone());
    let (fiber, _gate, result) = after_gate(&sim, move || c.send(Counted::new(1, &d)));
    cancel(&sim, &fiber);
    assert!(result.take().unwrap_err().is_cancelled());
    assert!(chan.is_empty(), "nothing sent, though there was room");
    assert_eq!(count(&dropped), 1, "the value was dropped, unsent");
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_cancelled_before_it_takes_nothing() {
    let sim = Sim::new();
    let chan = SharedChan::bounded(1);
    chan.try_send(4).unwrap();
    let c = chan.clone();
    let (fiber, _gate, result) = after_gate(&sim, move || c.recv());
    cancel(&sim, &fiber);
    assert!(result.take().unwrap_err().is_cancelled());
    assert_eq!(chan.try_recv(), Ok(4), "the value is still there");
}

#[test]
#[cfg_attr(miri, ignore)]
fn send_cancelled_while_suspended_sends_nothing() {
    let sim = Sim::new();
    let (chan, sender, dropped) = blocked_sender(&sim);
    assert_eq!(waiters(&chan), (1, 0));
    cancel(&sim, &sender);
    assert!(sender.join().unwrap_err().is_cancelled());
    assert_eq!(count(&dropped), 1, "dropped, unsent");
    assert_eq!(waiters(&chan), (0, 0));
    let rx = chan.clone();
    assert!(plain(move || rx.try_recv().is_err()), "nothing to take");
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_cancelled_while_suspended_takes_nothing() {
    let sim = Sim::new();
    let (chan, receiver) = blocked_receiver::<u32>(&sim);
    assert_eq!(waiters(&chan), (0, 1));
    cancel(&sim, &receiver);
    assert!(receiver.join().unwrap_err().is_cancelled());
    assert_eq!(waiters(&chan), (0, 0));
    let tx = chan.clone();
    assert_eq!(plain(move || tx.try_send(1)), Err(TrySendError::Full(1)));
}

#[test]
#[cfg_attr(miri, ignore)]
fn send_cancelled_after_a_thread_took_the_value_succeeds() {
    let sim = Sim::new();
    let (chan, sender, dropped) = blocked_sender(&sim);
    // Another thread takes the value (it blocks until it has it)…
    let rx = chan.clone();
    let got = plain(move || rx.recv().unwrap());
    assert_eq!(got.id, 1);
    drop(got);
    // …then, before the sender runs again, it is cancelled: its send
    // completed first, so it returns Ok.
    cancel(&sim, &sender);
    assert_eq!(sender.join().map_err(|e| e.kind()), Ok(()));
    assert_eq!(count(&dropped), 1, "delivered once, dropped once");
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_cancelled_after_a_thread_handed_it_a_value_returns_it() {
    let sim = Sim::new();
    let (chan, receiver) = blocked_receiver::<Counted>(&sim);
    let dropped = drops();
    let (tx, d) = (chan.clone(), dropped.clone());
    // The receiver waits: a try_send hands it the value.
    plain(move || assert!(tx.try_send(Counted::new(9, &d)).is_ok()));
    cancel(&sim, &receiver);
    let got = receiver.join().unwrap();
    assert_eq!(got.id, 9);
    assert_eq!(count(&dropped), 0);
    drop(got);
    assert_eq!(count(&dropped), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_select_cancelled_after_a_shared_branch_completed_reports_it() {
    let (sim, shared, local) = sim_shared_and_local(0);
    let (s, l) = (shared.clone(), local.clone());
    let selecting = sim.spawn(move || {
        select(vec![
            When::new(l.ev_recv(), |v| ('l', v)),
            When::new(s.ev_send(3), |()| ('s', 3)),
        ])
    });
    sim.run_until_idle();
    let rx = shared.clone();
    assert_eq!(plain(move || rx.recv().unwrap()), 3);
    // A local sender comes too late: the select was claimed already.
    let l = local.clone();
    let late = sim.spawn(move || l.send(4));
    cancel(&sim, &selecting);
    assert_eq!(selecting.join().unwrap(), ('s', 3));
    assert!(!late.is_done(), "the local value was not taken");
    cancel(&sim, &late);
    assert!(late.join().unwrap_err().is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore)]
fn disposing_a_scheduler_unwinds_its_fibers_blocked_on_a_shared_chan() {
    let sim = Sim::new();
    // The sender's handle is dropped: that does not stop it.
    let (outbox, _, dropped) = blocked_sender(&sim);
    let inbox = SharedChan::<Counted>::bounded(0);
    let i = inbox.clone();
    sim.spawn(move || {
        let local = Chan::<Counted>::bounded(0);
        fuseau::select! {
            recv(local) -> v => v.map(drop),
            recv(i) -> v => v.map(drop),
        }
    });
    sim.run_until_idle();
    assert_eq!((waiters(&outbox), waiters(&inbox)), ((1, 0), (0, 1)));
    drop(sim);
    assert_eq!(
        (waiters(&outbox), waiters(&inbox)),
        ((0, 0), (0, 0)),
        "every registration undone"
    );
    assert_eq!(count(&dropped), 1, "the unsent value dropped once");
    // The channels work on, between other threads.
    let tx = inbox.clone();
    let sender = thread::spawn(move || tx.send(Counted::new(2, &drops())));
    assert_eq!(inbox.recv().unwrap().id, 2);
    sender.join().unwrap().unwrap();
    assert!(outbox.try_recv().is_err(), "nothing was sent");
}

// -------------------------------------------- nothing lost, nothing twice

#[test]
#[cfg_attr(miri, ignore)]
fn every_value_is_dropped_exactly_once() {
    const N: u64 = 2_000;
    with_watchdog(|| {
        for cap in [0, 1, 8] {
            let dropped = drops();
            let received = Arc::new(AtomicUsize::new(0));
            let chan = SharedChan::bounded(cap);
            // Senders on one thread: some give up (a timeout), some are
            // cancelled; a receiver on another thread, also giving up now
            // and then; values left over when the channel is dropped.
            let (tx, d) = (chan.clone(), dropped.clone());
            let senders = on_thread(move || {
                let mut sent = 0u64;
                for i in 0..N {
                    let value = Counted::new(i, &d);
                    if i % 5 == 0 {
                        let r = fuseau::select! {
                            send(tx, value) -> r => r.map(|()| true),
                            ev(fuseau::ev_timeout(Duration::ZERO)) -> _t => Ok(false),
                        };
                        sent += u64::from(r?);
                    } else {
                        tx.send(value)?;
                        sent += 1;
                    }
                }
                // A sender cancelled while it may be blocked (or done).
                let (tx2, d2) = (tx.clone(), d.clone());
                let doomed_sent = Arc::new(AtomicBool::new(false));
                let ds = doomed_sent.clone();
                let doomed = fuseau::spawn(move || {
                    tx2.send(Counted::new(u64::MAX, &d2))?;
                    ds.store(true, Ordering::SeqCst);
                    Ok(())
                });
                fuseau::yield_now()?;
                doomed.cancel();
                let _ = doomed.join();
                tx.close();
                Ok(sent + u64::from(doomed_sent.load(Ordering::SeqCst)))
            });
            let (rx, r) = (chan.clone(), received.clone());
            let receiver = on_thread(move || {
                let mut last = None;
                loop {
                    let got = fuseau::select! {
                        recv(rx) -> v => v.map(Some),
                        ev(fuseau::ev_timeout(Duration::ZERO)) -> _t => Ok(None),
                    };
                    match got {
                        Ok(Some(v)) => {
                            if let Some(last) = last {
                                assert!(v.id > last, "out of order");
                            }
                            last = Some(v.id);
                            r.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(None) => fuseau::yield_now()?,
                        Err(e) if e.is_closed() => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            });
            let sent = senders.join().unwrap().unwrap();
            receiver.join().unwrap().unwrap();
            assert_eq!(received.load(Ordering::SeqCst) as u64, sent, "cap={cap}");
            drop(chan);
            // Every value made (N, and the cancelled fiber's) was dropped
            // exactly once, sent or not.
            assert_eq!(count(&dropped) as u64, N + 1, "cap={cap}");
        }
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn values_buffered_when_the_channel_is_dropped_are_dropped() {
    let dropped = drops();
    let chan = SharedChan::new();
    for i in 0..5 {
        chan.send(Counted::new(i, &dropped)).unwrap();
    }
    let other = chan.clone();
    plain(move || drop(other));
    assert_eq!(count(&dropped), 0);
    drop(chan);
    assert_eq!(count(&dropped), 5);
}

// -------------------------------------------------------------- stress

/// 4 producers and 4 consumers on three threads (two schedulers with fibers,
/// and plain threads), through one channel, some of them in selects with
/// local channels and timeouts: every value arrives exactly once, and each
/// consumer gets each producer's values in the order they were sent. Every
/// kind of buffer: rendezvous, lock-free bounded (small and large),
/// lock-free unbounded, and the mutex-protected one of huge capacities.
#[test]
#[cfg_attr(miri, ignore)]
fn stress_many_producers_and_consumers_on_three_threads() {
    const PER_PRODUCER: u64 = 5_000;
    with_watchdog(|| {
        for cap in [Some(0), Some(1), Some(32), Some(64), None, Some(1 << 20)] {
            let chan = match cap {
                Some(cap) => SharedChan::<u64>::bounded(cap),
                None => SharedChan::new(),
            };
            let seen = Arc::new(Mutex::new(Vec::new()));
            let consume = |chan: SharedChan<u64>, seen: Arc<Mutex<Vec<u64>>>, selecting: bool| {
                move || -> Result<()> {
                    let local = Chan::<u64>::new();
                    let mut mine = Vec::new();
                    loop {
                        let got = if selecting {
                            fuseau::select! {
                                recv(local) -> v => v,
                                recv(chan) -> v => v,
                                ev(fuseau::ev_timeout(ms(1))) -> _t => continue,
                            }
                        } else {
                            chan.recv()
                        };
                        match got {
                            Ok(v) => mine.push(v),
                            Err(e) if e.is_closed() => break,
                            Err(e) => return Err(e),
                        }
                    }
                    // FIFO per producer, as one consumer sees it.
                    let mut last = [None; 4];
                    for &v in &mine {
                        let p = (v / PER_PRODUCER) as usize;
                        assert!(last[p] < Some(v), "{v} after {:?}", last[p]);
                        last[p] = Some(v);
                    }
                    seen.lock().unwrap().extend(mine);
                    Ok(())
                }
            };
            // The last producer to finish closes the channel.
            let left = Arc::new(AtomicUsize::new(4));
            let produce = |chan: SharedChan<u64>, p: u64, selecting: bool| {
                let left = left.clone();
                move || -> Result<()> {
                    let local = Chan::<u64>::bounded(0);
                    for i in 0..PER_PRODUCER {
                        let v = p * PER_PRODUCER + i;
                        if selecting && i % 2 == 0 {
                            fuseau::select! {
                                send(local, u64::MAX) -> _r => unreachable!("nobody receives"),
                                send(chan, v) -> r => r?,
                            }
                        } else {
                            chan.send(v)?;
                        }
                    }
                    if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        chan.close();
                    }
                    Ok(())
                }
            };
            // Thread A: two producers and a consumer, as fibers.
            let (c, s) = (chan.clone(), seen.clone());
            let (p0, p1) = (produce(c.clone(), 0, false), produce(c.clone(), 1, true));
            let c0 = consume(c, s, true);
            let a = on_thread(move || {
                let fibers = [fuseau::spawn(p0), fuseau::spawn(p1)];
                let consumer = fuseau::spawn(c0);
                for f in fibers {
                    f.join()?;
                }
                consumer.join()
            });
            // Thread B: a producer and two consumers, as fibers.
            let (c, s) = (chan.clone(), seen.clone());
            let p2 = produce(c.clone(), 2, true);
            let (c1, c2) = (consume(c.clone(), s.clone(), false), consume(c, s, true));
            let b = on_thread(move || {
                let consumers = [fuseau::spawn(c1), fuseau::spawn(c2)];
                fuseau::spawn(p2).join()?;
                for f in consumers {
                    f.join()?;
                }
                Ok(())
            });
            // Plain threads: a producer and a consumer.
            let p3 = thread::spawn(produce(chan.clone(), 3, false));
            let c3 = thread::spawn(consume(chan.clone(), seen.clone(), false));
            p3.join().unwrap().unwrap();
            a.join().unwrap().unwrap();
            b.join().unwrap().unwrap();
            c3.join().unwrap().unwrap();
            let mut seen = std::mem::take(&mut *seen.lock().unwrap());
            seen.sort_unstable();
            assert_eq!(seen.len() as u64, 4 * PER_PRODUCER, "cap={cap:?}");
            assert!(
                seen.iter().copied().eq(0..4 * PER_PRODUCER),
                "cap={cap:?}: every value exactly once"
            );
        }
    });
}
