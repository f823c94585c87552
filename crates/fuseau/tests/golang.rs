//! Go's channel tests, rewritten for fibers (as crossbeam-channel's
//! `tests/golang.rs` rewrites them for threads).
//!
//! Sources: `test/chan/*.go`, `test/closedchan.go` and
//! `src/runtime/chan_test.go` of <https://github.com/golang/go>,
//! Copyright (c) 2009 The Go Authors, BSD-style license
//! (<https://golang.org/LICENSE>).
//!
//! Translation: a goroutine is a fiber (`go` below, or `Fibers` in the
//! bodies shared with `golang_shared.rs`, in `common/chans.rs`);
//! `make(chan T, n)` is `Chan::bounded(n)`; `v, ok := <-c` is `recv_opt`;
//! a `select` with a `default` case is `select_now` (a zero timeout polled
//! last); a `nil` channel in a `select` is a branch left out. Go panics
//! where fuseau returns `Err(Closed)` (sending on a closed channel) or does
//! nothing (closing twice). Everything runs on the virtual-clock scheduler,
//! so runs are deterministic; "let the other goroutines run" is a
//! `yield_now` or `run_until_idle`.
//!
//! Not ported: `TestSelectFairness` and `TestPseudoRandomSend`, which check
//! that Go's `select` picks among ready cases at random; fuseau's `select`
//! polls its branches in order, by design, and the first ready one wins.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use common::chans::{self, Fibers, PRIMES};
use common::{recv_opt, select_now, waiters, Sim};
use fuseau::{select, Chan, Result, TryRecvError, TrySendError, When};

/// Go's `go f()`: a fiber whose handle is not kept (the spawner still waits
/// for it, as its parent, and fails if it fails).
fn go(f: impl FnOnce() -> Result<()> + 'static) {
    drop(fuseau::spawn(f));
}

fn make<T: 'static>(cap: usize) -> Chan<T> {
    Chan::bounded(cap)
}

// ------------------------------------------------------------- fifo.go

#[test]
#[cfg_attr(miri, ignore)]
fn fifo_asynch() {
    const N: i32 = 10;
    Sim::new()
        .block_on(|| {
            let ch = make::<i32>(N as usize);
            for i in 0..N {
                ch.send(i)?;
            }
            assert_eq!(ch.len(), N as usize);
            for i in 0..N {
                assert_eq!(ch.recv()?, i, "bad receive");
            }
            Ok(())
        })
        .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn fifo_synch() {
    const N: i32 = 100;
    Sim::new()
        .block_on(|| chans::fifo_synch(&Fibers, N))
        .unwrap();
}

// ------------------------------------------------------- goroutines.go

#[test]
#[cfg_attr(miri, ignore)]
fn goroutines_daisy_chain() {
    const N: usize = 1_000;
    let result = Sim::new().block_on(|| chans::daisy_chain(&Fibers, N));
    assert_eq!(result.unwrap(), N as i32 + 1);
}

// ----------------------------------------------------- doubleselect.go

#[test]
#[cfg_attr(miri, ignore)]
fn doubleselect() {
    const ITERATIONS: i32 = 5_000;
    let seen = Sim::new()
        .block_on(|| chans::doubleselect(&Fibers, ITERATIONS))
        .unwrap();
    assert_eq!(seen, (0..ITERATIONS).collect::<HashSet<_>>());
}

// ---------------------------------------------------------- nonblock.go

#[test]
#[cfg_attr(miri, ignore)]
fn nonblock() {
    const MAX_TRIES: usize = 100;
    Sim::new()
        .block_on(|| {
            for buffer in 0..2 {
                let tries = chans::nonblock(&Fibers, buffer, MAX_TRIES, fuseau::yield_now)?;
                // Deterministic scheduling: with a rendezvous channel the
                // first try fails (the new fiber has not run, so nobody
                // waits yet) and the second succeeds; with a buffer, the
                // send succeeds at once, and the receive once the sender
                // has run.
                let expected = if buffer == 0 { (1, 1) } else { (0, 0) };
                for t in tries {
                    assert_eq!(t, expected, "buffer={buffer}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn nonblock_rendezvous_try_send_needs_a_waiting_receiver() {
    let sim = Sim::new();
    let c = make::<u32>(0);
    // Outside any fiber: no receiver, no room.
    assert!(matches!(c.try_send(1), Err(TrySendError::Full(1))));
    let got = Rc::new(Cell::new(None));
    let (c1, g) = (c.clone(), got.clone());
    let receiver = sim.spawn(move || {
        g.set(Some(c1.recv()?));
        Ok(())
    });
    assert!(matches!(c.try_send(2), Err(TrySendError::Full(2))));
    sim.run_until_idle();
    assert_eq!(waiters(&c), (0, 1), "the receiver waits");
    c.try_send(3).unwrap();
    assert_eq!(waiters(&c), (0, 0));
    assert!(c.is_empty(), "handed over, not buffered");
    // Nobody waits any more.
    assert!(matches!(c.try_send(4), Err(TrySendError::Full(4))));
    sim.run_until_idle();
    assert_eq!(got.get(), Some(3));
    receiver.join().unwrap();
    // And a waiting sender is what try_recv needs.
    let c2 = c.clone();
    let sender = sim.spawn(move || c2.send(5));
    assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    sim.run_until_idle();
    assert_eq!(waiters(&c), (1, 0));
    assert_eq!(c.try_recv(), Ok(5));
    assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    sim.run_until_idle();
    sender.join().unwrap();
}

// ------------------------------------------------------------ select.go

#[test]
#[cfg_attr(miri, ignore)]
fn select_go() {
    Sim::new().block_on(chans::select_go::<Chan<u32>>).unwrap();
}

// ----------------------------------------------------------- select2.go

#[test]
#[cfg_attr(miri, ignore)]
fn select2_no_waiter_build_up() {
    const N: usize = 20_000;
    let (c, dummy) = Sim::new().block_on(|| chans::select2(&Fibers, N)).unwrap();
    chans::assert_select2_left_nothing(&c, &dummy);
}

// ----------------------------------------------------------- select3.go

/// select3.go: which operations block, which never do. Each runs in a
/// fiber; after the scheduler is idle, it must (not) be done.
#[test]
#[cfg_attr(miri, ignore)]
fn select3_blocking_and_non_blocking_operations() {
    // Empty select (Go's `select {}`, and a select over nil channels only).
    chans::check_blocks("empty select", true, || select::<()>(vec![]));
    chans::select3::<Chan<i32>>();
}

// ----------------------------------------------------------- select4.go

#[test]
#[cfg_attr(miri, ignore)]
fn select4_ready_branch_wins_over_an_earlier_empty_one() {
    Sim::new()
        .block_on(|| {
            let c = make::<i32>(1);
            let c1 = make::<i32>(0);
            c.send(42)?;
            chans::select4(&c1, &c)
        })
        .unwrap();
}

// ----------------------------------------------------------- select6.go

/// Issue 2075: a select that lost must not leave its registration on a
/// channel, where it would steal a later value.
#[test]
#[cfg_attr(miri, ignore)]
fn select6_a_losing_branch_steals_nothing() {
    Sim::new().block_on(|| chans::select6(&Fibers)).unwrap();
}

// ----------------------------------------------------------- select7.go

#[test]
#[cfg_attr(miri, ignore)]
fn select7_every_mix_of_plain_and_select_ends() {
    type Recv = fn(Chan<i32>) -> Result<()>;

    /// The receiving fiber, blocked (it ran first).
    fn start(recv: Recv) -> Result<Chan<i32>> {
        let c = make::<i32>(1);
        let c1 = c.clone();
        go(move || recv(c1));
        fuseau::yield_now()?;
        Ok(c)
    }

    for send in chans::select7_senders::<Chan<i32>>() {
        for recv in chans::select7_receivers() {
            Sim::new().block_on(move || send(&start(recv)?)).unwrap();
        }
    }
}

// ------------------------------------------------------------ sieve1.go

/// Runs an endless prime generator in a fiber, takes the first primes from
/// `out`, then cancels the generator and all it started.
fn take_primes(n: usize, sieve: impl FnOnce(Chan<u64>) -> Result<()> + 'static) -> Vec<u64> {
    let sim = Sim::new();
    let result = sim.block_on(move || {
        let out = make::<u64>(1);
        let o = out.clone();
        let generator = fuseau::spawn(move || sieve(o));
        let primes = (0..n).map(|_| out.recv()).collect::<Result<Vec<_>>>()?;
        generator.cancel();
        // Its body may have returned already (its stages run on).
        if let Err(e) = generator.join() {
            assert!(e.is_cancelled(), "{e}");
        }
        Ok(primes)
    });
    assert_eq!(sim.sched.n_fibers(), 0, "every stage was cancelled");
    result.unwrap()
}

#[test]
#[cfg_attr(miri, ignore)]
fn sieve1() {
    let primes = take_primes(PRIMES.len(), |out| chans::sieve1(Fibers, out));
    assert_eq!(primes, PRIMES);
}

// ------------------------------------------------------------ sieve2.go

#[test]
#[cfg_attr(miri, ignore)]
fn sieve2() {
    let sieve = |out| chans::sieve2(Fibers, out);
    assert_eq!(take_primes(PRIMES.len(), sieve), PRIMES);
    // Further on too.
    assert_eq!(take_primes(300, sieve), chans::first_300_primes());
}

// ---------------------------------------------------------- zerosize.go

#[test]
#[cfg_attr(miri, ignore)]
fn zerosize() {
    Sim::new().block_on(|| chans::zerosize(&Fibers)).unwrap();
}

// -------------------------------------------------------- closedchan.go

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan() {
    Sim::new()
        .block_on(|| {
            chans::closedchan(|| {
                let c = make::<i32>(2);
                c.send(1)?;
                c.close();
                Ok(c)
            })
        })
        .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan_close_wakes_every_blocked_sender_and_receiver() {
    let sim = Sim::new();
    let results: Rc<RefCell<Vec<String>>> = Rc::default();
    // Receivers on an empty rendezvous channel, senders on a full one.
    let (empty, full) = chans::empty_and_full::<Chan<i32>>();
    for i in 0..3 {
        let (e, r) = (empty.clone(), results.clone());
        sim.spawn(move || {
            let got = chans::report_recv(&e, i);
            r.borrow_mut().push(got);
            Ok(())
        });
        let (f, r) = (full.clone(), results.clone());
        sim.spawn(move || {
            let got = chans::report_send(&f, i);
            r.borrow_mut().push(got);
            Ok(())
        });
        // A select that waits on both.
        let (e, f, r) = (empty.clone(), full.clone(), results.clone());
        sim.spawn(move || {
            let got = chans::report_select(&e, &f, i);
            r.borrow_mut().push(got);
            Ok(())
        });
    }
    sim.run_until_idle();
    assert!(results.borrow().is_empty(), "all blocked");
    assert_eq!(waiters(&empty), (0, 6));
    assert_eq!(waiters(&full), (6, 0));
    empty.close();
    sim.run_until_idle();
    assert_eq!(
        results.take(),
        [
            "recv 0: Err(Closed)",
            "select 0: Err(Closed)",
            "recv 1: Err(Closed)",
            "select 1: Err(Closed)",
            "recv 2: Err(Closed)",
            "select 2: Err(Closed)",
        ],
        "woken in the order they blocked; a select on a closed channel fails"
    );
    assert_eq!(waiters(&empty), (0, 0));
    assert_eq!(
        waiters(&full),
        (3, 0),
        "the selects' registrations are gone"
    );
    full.close();
    sim.run_until_idle();
    assert_eq!(
        results.take(),
        [
            "send 0: Err(Closed)",
            "send 1: Err(Closed)",
            "send 2: Err(Closed)"
        ]
    );
    assert_eq!(waiters(&full), (0, 0));
    // The buffered values are still there, then Closed.
    chans::assert_full_drains(&full);
    assert_eq!(sim.sched.n_fibers(), 0);
}

// ------------------------------------------------- runtime/chan_test.go

/// TestChan, for capacities 0 to 19.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_chan() {
    const N: usize = 20;
    const MESSAGES: i32 = 100;
    for cap in 0..N {
        // Receiving from an empty channel blocks.
        let sim = Sim::new();
        let c = make::<i32>(cap);
        let received = Rc::new(Cell::new(0));
        for _ in 0..2 {
            let (c, r) = (c.clone(), received.clone());
            sim.spawn(move || {
                c.recv()?;
                r.set(r.get() + 1);
                Ok(())
            });
        }
        sim.run_until_idle();
        assert_eq!(received.get(), 0, "cap={cap}");
        // A non-blocking receive does not block.
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
        sim.block_on({
            let c = c.clone();
            move || {
                assert!(select_now(vec![When::new(c.ev_recv(), drop)])?.is_none());
                c.send(0)?;
                c.send(0)
            }
        })
        .unwrap();
        sim.run_until_idle();
        assert_eq!(received.get(), 2, "cap={cap}");

        // Sending to a full channel blocks.
        let c = chans::filled::<Chan<i32>>(cap);
        let sent = Rc::new(Cell::new(false));
        let (c1, s) = (c.clone(), sent.clone());
        sim.spawn(move || {
            c1.send(0)?;
            s.set(true);
            Ok(())
        });
        sim.run_until_idle();
        assert!(!sent.get(), "cap={cap}");
        // A non-blocking send does not block.
        assert!(matches!(c.try_send(0), Err(TrySendError::Full(0))));
        let c1 = c.clone();
        let none = sim.block_on(move || select_now(vec![When::new(c1.ev_send(0), drop)]));
        assert!(none.unwrap().is_none());
        assert!(!sent.get());
        // The first value (for a rendezvous, the blocked sender's).
        assert_eq!(c.try_recv(), Ok(0));
        sim.run_until_idle();
        assert!(sent.get(), "cap={cap}");

        // Receiving from a closed channel: the values, then Closed.
        let c = chans::closed_full_chan_drains::<Chan<i32>>(cap);
        sim.block_on(move || chans::assert_closed_and_drained(&c))
            .unwrap();

        // Closing unblocks a receive.
        let c = make::<i32>(cap);
        let c1 = c.clone();
        let waiting = sim.spawn(move || Ok(recv_opt(&c1)?.is_none()));
        sim.run_until_idle();
        assert!(!waiting.is_done());
        c.close();
        sim.run_until_idle();
        assert!(waiting.join().unwrap(), "cap={cap}");

        // Many values arrive uncorrupted, in order; twice.
        sim.block_on(move || chans::many_values_in_order(&Fibers, cap, MESSAGES))
            .unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_nonblock_recv_race() {
    Sim::new()
        .block_on(|| {
            for _ in 0..100 {
                let c = make::<i32>(1);
                c.send(1)?;
                let c1 = c.clone();
                let t = fuseau::spawn(move || {
                    chans::nonblock_recv_ready(&c1);
                    Ok(())
                });
                c.close();
                recv_opt(&c)?;
                t.join()?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_nonblock_select_race() {
    Sim::new()
        .block_on(|| chans::nonblock_select_race(&Fibers))
        .unwrap();
}

/// A select that both sends and receives on one channel: on a rendezvous
/// channel it never matches itself, and every value sent is received
/// exactly once.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_self_select() {
    const N: u32 = 1_000;
    for cap in [0, 10] {
        let sim = Sim::new();
        let c = make::<(u32, u32)>(cap);
        let sent: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
        let received: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
        let fibers: Vec<_> = (0..2u32)
            .map(|p| {
                let (c, sent, received) = (c.clone(), sent.clone(), received.clone());
                sim.spawn(move || {
                    chans::self_select_goroutine(
                        &c,
                        p,
                        N,
                        cap,
                        |v| sent.borrow_mut().push(v),
                        |v| received.borrow_mut().push(v),
                    )
                })
            })
            .collect();
        sim.run_until(|| fibers.iter().all(|f| f.is_done()));
        for f in fibers {
            f.join().unwrap();
        }
        chans::check_self_select(sent.take(), received.take(), &c, cap, N);
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_select_stress() {
    const N: usize = 1_000;
    Sim::new()
        .block_on(|| {
            let c = [make::<i32>(0), make(0), make(2), make(3)];
            // 4 fibers send N values on each channel, 4 receive N from each;
            // one more sends N values on each in a single select, and one
            // receives N from each in a single select.
            for ck in &c {
                let tx = ck.clone();
                go(move || (0..N).try_for_each(|_| tx.send(0)));
                let rx = ck.clone();
                go(move || (0..N).try_for_each(|_| rx.recv().map(drop)));
            }
            let cs = c.clone();
            go(move || chans::select_recv_from_each(&cs, N));
            let cs = c.clone();
            go(move || chans::select_send_to_each(&cs, N));
            Ok(c)
        })
        .map(|c| {
            for ci in &c {
                assert!(ci.is_empty());
                assert_eq!(waiters(ci), (0, 0));
            }
        })
        .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_multi_consumer() {
    const NWORK: usize = 23;
    const NITER: usize = 20_000;
    let (n, s, expect) = Sim::new()
        .block_on(move || {
            let q = make::<u64>(NWORK * 3);
            let r = make::<u64>(NWORK * 3);
            let workers: Vec<_> = (0..NWORK)
                .map(|w| {
                    let (q, r) = (q.clone(), r.clone());
                    fuseau::spawn(move || chans::multi_consumer_worker(&q, &r, w))
                })
                .collect();
            let (q1, r1) = (q.clone(), r.clone());
            let producer = fuseau::spawn(move || {
                let expect = chans::multi_consumer_producer(&q1, NITER)?;
                for w in workers {
                    w.join()?;
                }
                r1.close();
                Ok(expect)
            });
            let (n, s) = chans::count_and_sum(&r)?;
            Ok((n, s, producer.join()?))
        })
        .unwrap();
    assert_eq!(n, NITER);
    assert_eq!(s, expect);
}

/// A fiber queued on the same channel several times (a select over it and
/// others) is handed at most one value.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_select_duplicate_channel() {
    let sim = Sim::new();
    let (c, d, e) = (make::<i32>(0), make::<i32>(0), make::<i32>(0));
    let (c1, d1, e1) = (c.clone(), d.clone(), e.clone());
    sim.spawn(move || chans::select_duplicate_channel(&c1, &d1, &e1));
    sim.run_until_idle();
    assert_eq!(waiters(&c), (0, 2));
    let c1 = c.clone();
    let late = sim.spawn(move || c1.recv());
    sim.run_until_idle();
    assert_eq!(waiters(&c), (0, 3));
    let (c2, d2, e2) = (c.clone(), d.clone(), e.clone());
    sim.block_on(move || {
        d2.send(7)?;
        assert_eq!(e2.recv()?, 9);
        c2.send(8)
    })
    .unwrap();
    sim.run_until_idle();
    assert_eq!(
        late.join().unwrap(),
        8,
        "the select's stale entries were skipped"
    );
    assert_eq!(waiters(&c), (0, 0));
}
