//! Go's channel tests, rewritten for fibers (as crossbeam-channel's
//! `tests/golang.rs` rewrites them for threads).
//!
//! Sources: `test/chan/*.go`, `test/closedchan.go` and
//! `src/runtime/chan_test.go` of <https://github.com/golang/go>,
//! Copyright (c) 2009 The Go Authors, BSD-style license
//! (<https://golang.org/LICENSE>).
//!
//! Translation: a goroutine is a fiber (`go` below); `make(chan T, n)` is
//! `Chan::bounded(n)`; `v, ok := <-c` is `recv_opt`; a `select` with a
//! `default` case is `select_now` (a zero timeout polled last); a `nil`
//! channel in a `select` is a branch left out. Go panics where fuseau
//! returns `Err(Closed)` (sending on a closed channel) or does nothing
//! (closing twice). Everything runs on the virtual-clock scheduler, so runs
//! are deterministic; "let the other goroutines run" is a `yield_now` or
//! `run_until_idle`.
//!
//! Not ported: `TestSelectFairness` and `TestPseudoRandomSend`, which check
//! that Go's `select` picks among ready cases at random; fuseau's `select`
//! polls its branches in order, by design, and the first ready one wins.

mod common;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::rc::Rc;

use common::{recv_opt, select_now, waiters, Sim};
use fuseau::{select, Chan, ErrorKind, Result, TryRecvError, TrySendError, When};

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

    fn chain(ch: Chan<i32>, val: i32, inp: Chan<i32>, out: Chan<i32>) -> Result<()> {
        inp.recv()?;
        let got = ch.recv()?;
        assert_eq!(got, val, "synch fifo out of order");
        out.send(1)
    }

    Sim::new()
        .block_on(|| {
            let ch = make::<i32>(0);
            let mut inp = make::<i32>(0);
            let start = inp.clone();
            for i in 0..N {
                let out = make::<i32>(0);
                let (ch, inp2, out2) = (ch.clone(), inp.clone(), out.clone());
                go(move || chain(ch, i, inp2, out2));
                inp = out;
            }
            start.send(0)?;
            for i in 0..N {
                ch.send(i)?;
            }
            inp.recv()?;
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------------------- goroutines.go

#[test]
#[cfg_attr(miri, ignore)]
fn goroutines_daisy_chain() {
    const N: usize = 1_000;
    let result = Sim::new().block_on(|| {
        let leftmost = make::<i32>(0);
        let mut left = leftmost.clone();
        let mut right = leftmost.clone();
        for _ in 0..N {
            right = make::<i32>(0);
            let (l, r) = (left.clone(), right.clone());
            go(move || l.send(1 + r.recv()?));
            left = right.clone();
        }
        go(move || right.send(1));
        leftmost.recv()
    });
    assert_eq!(result.unwrap(), N as i32 + 1);
}

// ----------------------------------------------------- doubleselect.go

#[test]
#[cfg_attr(miri, ignore)]
fn doubleselect() {
    const ITERATIONS: i32 = 5_000;

    // Sends 0..n, each on whichever of the channels can take it.
    fn sender(n: i32, c: [Chan<i32>; 4]) -> Result<()> {
        for i in 0..n {
            select(c.iter().map(|c| When::new(c.ev_send(i), |()| ())).collect())?;
        }
        for c in &c {
            c.close();
        }
        Ok(())
    }

    // Forwards `inp` to `out` until `inp` is closed.
    fn mux(out: Chan<i32>, inp: Chan<i32>, done: Chan<bool>) -> Result<()> {
        while let Some(v) = recv_opt(&inp)? {
            out.send(v)?;
        }
        done.send(true)
    }

    let seen = Sim::new()
        .block_on(|| {
            let c: [Chan<i32>; 4] = std::array::from_fn(|_| make(0));
            let done = make::<bool>(0);
            let cmux = make::<i32>(0);
            let cs = c.clone();
            go(move || sender(ITERATIONS, cs));
            for ci in &c {
                let (out, inp, done) = (cmux.clone(), ci.clone(), done.clone());
                go(move || mux(out, inp, done));
            }
            let (d, m) = (done.clone(), cmux.clone());
            go(move || {
                for _ in 0..4 {
                    d.recv()?;
                }
                m.close();
                Ok(())
            });
            // The receiver.
            let mut seen = HashSet::new();
            while let Some(v) = recv_opt(&cmux)? {
                assert!(seen.insert(v), "got duplicate value for {v}");
            }
            Ok(seen)
        })
        .unwrap();
    assert_eq!(seen, (0..ITERATIONS).collect::<HashSet<_>>());
}

// ---------------------------------------------------------- nonblock.go

/// nonblock.go, for one value type: non-blocking sends and receives (Go's
/// `select` with `default`) against a goroutine that blocks on the other
/// end. `attempts` counts the non-blocking tries that failed.
fn nonblock_case<T: Clone + PartialEq + std::fmt::Debug + 'static>(
    buffer: usize,
    to_send: T,
    to_receive: T,
) -> Result<(usize, usize)> {
    const MAX_TRIES: usize = 100;
    let c = make::<T>(buffer);
    let sync = make::<bool>(0);

    // Nothing to receive: a non-blocking receive falls through.
    assert!(select_now(vec![When::new(c.ev_recv(), |_| ())])?.is_none());
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Empty);

    // A receiver blocks on c; try sending until it (or the buffer) takes it.
    let (c1, s1, expected) = (c.clone(), sync.clone(), to_send.clone());
    go(move || {
        assert_eq!(c1.recv()?, expected, "receiver got a wrong value");
        s1.send(true)
    });
    let mut send_failures = 0;
    loop {
        if select_now(vec![When::new(c.ev_send(to_send.clone()), |()| ())])?.is_some() {
            break;
        }
        send_failures += 1;
        assert!(send_failures <= MAX_TRIES, "receiver buffer={buffer}");
        fuseau::yield_now()?;
    }
    sync.recv()?;

    // A sender blocks on c; try receiving until its value is there.
    let (c2, s2, value) = (c.clone(), sync.clone(), to_receive.clone());
    go(move || {
        c2.send(value)?;
        s2.send(true)
    });
    if buffer > 0 {
        sync.recv()?;
    }
    let mut recv_failures = 0;
    loop {
        match c.try_recv() {
            Ok(v) => {
                assert_eq!(v, to_receive, "sender value");
                break;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Closed) => panic!("the channel is not closed"),
        }
        recv_failures += 1;
        assert!(recv_failures <= MAX_TRIES, "sender buffer={buffer}");
        fuseau::yield_now()?;
    }
    if buffer == 0 {
        sync.recv()?;
    }
    Ok((send_failures, recv_failures))
}

#[test]
#[cfg_attr(miri, ignore)]
fn nonblock() {
    Sim::new()
        .block_on(|| {
            for buffer in 0..2 {
                let tries = [
                    nonblock_case::<i32>(buffer, 123, 234)?,
                    nonblock_case::<i64>(buffer, 123_456, 234_567)?,
                    nonblock_case::<bool>(buffer, true, true)?,
                    nonblock_case::<String>(buffer, "hello".into(), "hello again".into())?,
                ];
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
    Sim::new()
        .block_on(|| {
            let shift = Rc::new(Cell::new(0u32));
            let counter = Rc::new(Cell::new(0u32));
            let get_value = {
                let (shift, counter) = (shift.clone(), counter.clone());
                move || {
                    counter.set(counter.get() + 1);
                    1u32 << shift.get()
                }
            };
            // Sends on a and b (a nil channel is a branch left out) until
            // neither can take a value; returns how many sends happened.
            let send = |mut a: Option<Chan<u32>>, mut b: Option<Chan<u32>>| -> Result<u32> {
                let mut i = 0;
                loop {
                    let (v1, v2) = (get_value(), get_value());
                    let mut branches = Vec::new();
                    if let Some(a) = &a {
                        branches.push(When::new(a.ev_send(v1), |()| 'a'));
                    }
                    if let Some(b) = &b {
                        branches.push(When::new(b.ev_send(v2), |()| 'b'));
                    }
                    match select_now(branches)? {
                        Some('a') => a = None,
                        Some(_) => b = None,
                        None => break,
                    }
                    i += 1;
                    shift.set(shift.get() + 1);
                }
                Ok(i)
            };
            let a = make::<u32>(1);
            let b = make::<u32>(1);
            assert_eq!(send(Some(a.clone()), Some(b.clone()))?, 2);
            let (av, bv) = (a.recv()?, b.recv()?);
            assert_eq!(av | bv, 3, "bad values");
            assert_eq!(send(Some(a.clone()), None)?, 1);
            assert_eq!(counter.get(), 10);
            Ok(())
        })
        .unwrap();
}

// ----------------------------------------------------------- select2.go

#[test]
#[cfg_attr(miri, ignore)]
fn select2_no_waiter_build_up() {
    const N: usize = 20_000;
    let sim = Sim::new();
    let c = Chan::<i32>::new();
    let dummy = Chan::<i32>::new();
    let (c1, d1) = (c.clone(), dummy.clone());
    sim.block_on(move || {
        for _round in 0..2 {
            let c2 = c1.clone();
            go(move || {
                for _ in 0..N {
                    c2.send(1)?;
                    // Let the receiver wait again before the next value.
                    fuseau::yield_now()?;
                }
                Ok(())
            });
            for _ in 0..N {
                select(vec![
                    When::new(c1.ev_recv(), |_| ()),
                    When::new(d1.ev_recv(), |_| panic!("dummy")),
                ])?;
                // The losing branch's registration was undone.
                assert_eq!(waiters(&d1), (0, 0));
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(format!("{dummy:?}"), format!("{:?}", Chan::<i32>::new()));
    assert_eq!(waiters(&c), (0, 0));
}

// ----------------------------------------------------------- select3.go

/// select3.go: which operations block, which never do. Each runs in a
/// fiber; after the scheduler is idle, it must (not) be done.
#[test]
#[cfg_attr(miri, ignore)]
fn select3_blocking_and_non_blocking_operations() {
    fn check(name: &str, blocks: bool, op: impl FnOnce() -> Result<()> + 'static) {
        let sim = Sim::new();
        let fiber = sim.spawn(op);
        sim.run_until_idle();
        assert_eq!(!fiber.is_done(), blocks, "{name}");
        fiber.cancel();
        sim.run_until_idle();
        assert!(fiber.is_done(), "{name}: cancelled, it is woken at once");
        let result = fiber.join();
        if blocks {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled, "{name}");
        }
    }
    let closed = make::<i32>(0);
    closed.close();

    // Empty select (Go's `select {}`, and a select over nil channels only).
    check("empty select", true, || select::<()>(vec![]));
    // Unbuffered channels.
    check("recv from unbuffered", true, || {
        make::<i32>(0).recv().map(drop)
    });
    check("send to unbuffered", true, || make::<i32>(0).send(7));
    // Buffered channels.
    check("recv from empty buffered", true, || {
        make::<i32>(1).recv().map(drop)
    });
    check("send to buffered with room", false, || {
        make::<i32>(1).send(7)
    });
    check("send to full buffered", true, || {
        let c = make::<i32>(1);
        c.send(7)?;
        c.send(7)
    });
    check("recv from buffered with a value", false, || {
        let c = make::<i32>(1);
        c.send(7)?;
        assert_eq!(c.recv()?, 7);
        Ok(())
    });
    // Closed channels never block.
    let c = closed.clone();
    check("recv from closed", false, move || {
        assert!(c.recv().unwrap_err().is_closed());
        Ok(())
    });
    let c = closed.clone();
    check("send to closed", false, move || {
        assert!(c.send(7).unwrap_err().is_closed());
        Ok(())
    });
    let c = closed.clone();
    check("select recv from closed", false, move || {
        let e = select(vec![When::new(c.ev_recv(), |_| ())]).unwrap_err();
        assert!(e.is_closed());
        Ok(())
    });
    // A select blocks while none of its branches is ready.
    check("select over two empty channels", true, || {
        let (a, b) = (make::<i32>(0), make::<i32>(4));
        select(vec![
            When::new(a.ev_recv(), drop),
            When::new(b.ev_recv(), drop),
        ])
    });
    check("select with one ready branch", false, || {
        let (a, b) = (make::<i32>(0), make::<i32>(4));
        b.send(1)?;
        select(vec![
            When::new(a.ev_recv(), |_| panic!("a is empty")),
            When::new(b.ev_recv(), |v| assert_eq!(v, 1)),
        ])
    });
    check("select send with room", false, || {
        let (a, b) = (make::<i32>(0), make::<i32>(4));
        select(vec![
            When::new(a.ev_send(1), |()| panic!("nobody receives on a")),
            When::new(b.ev_send(2), |()| ()),
        ])?;
        assert_eq!(b.try_recv(), Ok(2));
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
        Ok(())
    });
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
            let v = select(vec![
                When::new(c1.ev_recv(), |_| panic!("BUG")),
                When::new(c.ev_recv(), |v| v),
            ])?;
            assert_eq!(v, 42);
            Ok(())
        })
        .unwrap();
}

// ----------------------------------------------------------- select6.go

/// Issue 2075: a select that lost must not leave its registration on a
/// channel, where it would steal a later value.
#[test]
#[cfg_attr(miri, ignore)]
fn select6_a_losing_branch_steals_nothing() {
    Sim::new()
        .block_on(|| {
            let c1 = make::<bool>(0);
            let c2 = make::<bool>(0);
            let c3 = make::<bool>(0);
            let c = c1.clone();
            go(move || c.recv().map(drop));
            let (a, b, d) = (c1.clone(), c2.clone(), c3.clone());
            go(move || {
                select(vec![
                    When::new(a.ev_recv(), |_| panic!("dummy")),
                    When::new(b.ev_recv(), |_| ()),
                ])?;
                d.send(true)?;
                a.recv().map(drop)
            });
            let c = c2.clone();
            go(move || c.send(true));
            c3.recv()?;
            c1.send(true)?;
            c1.send(true)?;
            Ok(())
        })
        .unwrap();
}

// ----------------------------------------------------------- select7.go

#[test]
#[cfg_attr(miri, ignore)]
fn select7_every_mix_of_plain_and_select_ends() {
    type Recv = fn(Chan<i32>) -> Result<()>;
    type Send = fn(Recv) -> Result<()>;

    fn recv1(c: Chan<i32>) -> Result<()> {
        assert_eq!(c.recv()?, 1);
        Ok(())
    }
    fn recv2(c: Chan<i32>) -> Result<()> {
        select(vec![When::new(c.ev_recv(), |v| assert_eq!(v, 1))])
    }
    fn recv3(c: Chan<i32>) -> Result<()> {
        let c2 = make::<i32>(1);
        select(vec![
            When::new(c.ev_recv(), |v| assert_eq!(v, 1)),
            When::new(c2.ev_recv(), |_| panic!("c2 is empty")),
        ])
    }
    fn start(recv: Recv) -> Result<Chan<i32>> {
        let c = make::<i32>(1);
        let c1 = c.clone();
        go(move || recv(c1));
        fuseau::yield_now()?;
        Ok(c)
    }
    fn send1(recv: Recv) -> Result<()> {
        start(recv)?.send(1)
    }
    fn send2(recv: Recv) -> Result<()> {
        let c = start(recv)?;
        select(vec![When::new(c.ev_send(1), |()| ())])
    }
    fn send3(recv: Recv) -> Result<()> {
        let c = start(recv)?;
        let c2 = make::<i32>(1);
        c2.send(0)?; // full: the select can only send on c
        select(vec![
            When::new(c.ev_send(1), |()| ()),
            When::new(c2.ev_send(1), |()| panic!("c2 is full")),
        ])
    }

    let sends: [Send; 3] = [send1, send2, send3];
    let recvs: [Recv; 3] = [recv1, recv2, recv3];
    for send in sends {
        for recv in recvs {
            Sim::new().block_on(move || send(recv)).unwrap();
        }
    }
}

// ------------------------------------------------------------ sieve1.go

const PRIMES: [u64; 25] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

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
    fn generate(ch: Chan<u64>) -> Result<()> {
        for i in 2.. {
            ch.send(i)?;
        }
        Ok(())
    }
    fn filter(inp: Chan<u64>, out: Chan<u64>, prime: u64) -> Result<()> {
        while let Some(i) = recv_opt(&inp)? {
            if i % prime != 0 {
                out.send(i)?;
            }
        }
        Ok(())
    }
    fn sieve(primes: Chan<u64>) -> Result<()> {
        let mut ch = make::<u64>(1);
        let c = ch.clone();
        go(move || generate(c));
        loop {
            let prime = ch.recv()?;
            primes.send(prime)?;
            let ch1 = make::<u64>(1);
            let (i, o) = (ch.clone(), ch1.clone());
            go(move || filter(i, o, prime));
            ch = ch1;
        }
    }
    assert_eq!(take_primes(PRIMES.len(), sieve), PRIMES);
}

// ------------------------------------------------------------ sieve2.go

/// sieve2.go: odd candidates, with the composites produced in increasing
/// order by merging channels of multiples of each prime (a heap of
/// "peeked" channels), and a feedback loop through a buffering proxy that
/// `select`s between taking a value and handing one on.
#[test]
#[cfg_attr(miri, ignore)]
fn sieve2() {
    /// Odd numbers from 5.
    fn odds() -> Chan<u64> {
        let out = make::<u64>(10);
        let o = out.clone();
        go(move || (5..).step_by(2).try_for_each(|n| o.send(n)));
        out
    }
    /// Odd multiples of the prime `p`, from `p * p`.
    fn multiples(p: u64) -> Chan<u64> {
        let out = make::<u64>(10);
        let o = out.clone();
        go(move || {
            (p * p..)
                .step_by(2 * p as usize)
                .try_for_each(|n| o.send(n))
        });
        out
    }
    /// A channel whose values are passed on to `out`, buffered without
    /// bound, so that sending to it never blocks.
    fn send_proxy(out: Chan<u64>) -> Chan<u64> {
        let proxy = make::<u64>(10);
        let p = proxy.clone();
        go(move || {
            let mut buffer = VecDeque::new();
            loop {
                let mut branches = vec![When::new(p.ev_recv(), Some)];
                if let Some(&e) = buffer.front() {
                    branches.push(When::new(out.ev_send(e), |()| None));
                }
                match select(branches)? {
                    Some(e) => buffer.push_back(e),
                    None => drop(buffer.pop_front()),
                }
            }
        });
        proxy
    }
    fn sieve(out: Chan<u64>) -> Result<()> {
        out.send(2)?;
        out.send(3)?;
        // The composites to be eliminated, in increasing order.
        let composites = make::<u64>(50);
        // The feedback loop.
        let primes = make::<u64>(10);
        primes.send(3)?;

        // Merge the channels of multiples of `primes` into `composites`.
        let (pr, co) = (primes.clone(), composites.clone());
        go(move || {
            /// Takes the smallest head, and peeks at the next value of
            /// its channel.
            fn pop_push(
                heap: &mut BinaryHeap<Reverse<(u64, usize)>>,
                chans: &[Chan<u64>],
            ) -> Result<u64> {
                let Reverse((head, i)) = heap.pop().expect("the heap is not empty");
                heap.push(Reverse((chans[i].recv()?, i)));
                Ok(head)
            }
            let mut chans: Vec<Chan<u64>> = Vec::new();
            let mut heap = BinaryHeap::new();
            let mut min = 15;
            loop {
                let m = multiples(pr.recv()?);
                let head = m.recv()?;
                while min < head {
                    co.send(min)?;
                    min = pop_push(&mut heap, &chans)?;
                }
                while min == head {
                    min = pop_push(&mut heap, &chans)?;
                }
                co.send(head)?;
                heap.push(Reverse((m.recv()?, chans.len())));
                chans.push(m);
            }
        });

        // Sieve the composites out of the candidates.
        let o = out.clone();
        go(move || {
            // Only primes up to sqrt(the nth prime) are needed, so the
            // merger receives from `primes` much more slowly than this
            // fiber sends to it: without the proxy's buffering, this
            // fiber would block, and deadlock.
            let primes = send_proxy(primes);
            let candidates = odds();
            let mut p = candidates.recv()?;
            loop {
                let c = composites.recv()?;
                while p < c {
                    primes.send(p)?;
                    o.send(p)?;
                    p = candidates.recv()?;
                }
                if p == c {
                    p = candidates.recv()?;
                }
            }
        });
        Ok(())
    }
    assert_eq!(take_primes(PRIMES.len(), sieve), PRIMES);
    // Further on too.
    let many = take_primes(300, sieve);
    let expected: Vec<u64> = (2..)
        .filter(|n: &u64| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .take(300)
        .collect();
    assert_eq!(many, expected);
}

// ---------------------------------------------------------- zerosize.go

#[test]
#[cfg_attr(miri, ignore)]
fn zerosize() {
    struct ZeroSize;
    Sim::new()
        .block_on(|| {
            for cap in [0, 1, 3] {
                let a = make::<ZeroSize>(cap);
                let b = make::<[u8; 0]>(cap);
                let (a1, b1) = (a.clone(), b.clone());
                go(move || {
                    for _ in 0..10 {
                        a1.send(ZeroSize)?;
                        b1.send([])?;
                    }
                    a1.close();
                    b1.close();
                    Ok(())
                });
                let mut n = 0;
                while recv_opt(&a)?.is_some() {
                    assert_eq!(recv_opt(&b)?, Some([]));
                    n += 1;
                }
                assert_eq!(n, 10);
                assert!(b.recv().unwrap_err().is_closed());
            }
            let unbounded = Chan::new();
            for _ in 0..1_000 {
                unbounded.send(())?;
            }
            assert_eq!(unbounded.len(), 1_000);
            Ok(())
        })
        .unwrap();
}

// -------------------------------------------------------- closedchan.go

/// A channel that is closed and drained: every receive fails with
/// `Closed`, at once, again and again, in every form.
fn assert_closed_and_drained(c: &Chan<i32>) -> Result<()> {
    for _ in 0..3 {
        assert!(c.recv().unwrap_err().is_closed());
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
        let e = select(vec![When::new(c.ev_recv(), |_| ())]).unwrap_err();
        assert!(e.is_closed());
        // Sends fail too, and give the value back.
        assert!(c.send(1).unwrap_err().is_closed());
        assert!(matches!(c.try_send(2), Err(TrySendError::Closed(2))));
        let e = select(vec![When::new(c.ev_send(3), |()| ())]).unwrap_err();
        assert!(e.is_closed());
        assert!(c.is_closed());
        assert!(c.is_empty());
    }
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan() {
    Sim::new()
        .block_on(|| {
            // Synchronous.
            let c = make::<i32>(0);
            c.close();
            assert_closed_and_drained(&c)?;
            // Asynchronous: the buffered value first, with recv...
            let closed_async = || -> Result<Chan<i32>> {
                let c = make::<i32>(2);
                c.send(1)?;
                c.close();
                Ok(c)
            };
            let c = closed_async()?;
            assert_eq!(c.len(), 1);
            assert_eq!(c.recv()?, 1);
            assert_closed_and_drained(&c)?;
            // ... with try_recv ...
            let c = closed_async()?;
            assert_eq!(c.try_recv(), Ok(1));
            assert_closed_and_drained(&c)?;
            // ... and with select.
            let c = closed_async()?;
            assert_eq!(select(vec![When::new(c.ev_recv(), |v| v)])?, 1);
            assert_closed_and_drained(&c)?;
            // Unbounded, with several values.
            let c = Chan::new();
            for i in 0..5 {
                c.send(i)?;
            }
            c.close();
            for i in 0..5 {
                assert_eq!(c.recv()?, i);
            }
            assert_closed_and_drained(&c)?;
            // Closing twice is harmless (Go panics).
            c.close();
            assert_closed_and_drained(&c)?;
            Ok(())
        })
        .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan_close_wakes_every_blocked_sender_and_receiver() {
    let sim = Sim::new();
    let results: Rc<RefCell<Vec<String>>> = Rc::default();
    // Receivers on an empty rendezvous channel, senders on a full one.
    let empty = make::<i32>(0);
    let full = make::<i32>(2);
    full.try_send(10).unwrap();
    full.try_send(11).unwrap();
    for i in 0..3 {
        let (e, r) = (empty.clone(), results.clone());
        sim.spawn(move || {
            let got = e.recv();
            r.borrow_mut()
                .push(format!("recv {i}: {:?}", got.map_err(|e| e.kind())));
            Ok(())
        });
        let (f, r) = (full.clone(), results.clone());
        sim.spawn(move || {
            let got = f.send(20 + i);
            r.borrow_mut()
                .push(format!("send {i}: {:?}", got.map_err(|e| e.kind())));
            Ok(())
        });
        // A select that waits on both.
        let (e, f, r) = (empty.clone(), full.clone(), results.clone());
        sim.spawn(move || {
            let got = select(vec![
                When::new(e.ev_recv(), |v| format!("got {v}")),
                When::new(f.ev_send(30 + i), |()| "sent".to_string()),
            ]);
            r.borrow_mut()
                .push(format!("select {i}: {:?}", got.map_err(|e| e.kind())));
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
    assert_eq!(full.try_recv(), Ok(10));
    assert_eq!(full.try_recv(), Ok(11));
    assert_eq!(full.try_recv(), Err(TryRecvError::Closed));
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
        let c = make::<i32>(cap);
        for i in 0..cap {
            c.try_send(i as i32).unwrap();
        }
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
        let c = make::<i32>(cap);
        for i in 0..cap {
            c.try_send(i as i32).unwrap();
        }
        c.close();
        for i in 0..cap {
            assert_eq!(c.try_recv(), Ok(i as i32));
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
        sim.block_on(move || assert_closed_and_drained(&c)).unwrap();

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
        let c = make::<i32>(cap);
        sim.block_on(move || {
            for _ in 0..2 {
                let c1 = c.clone();
                go(move || (0..MESSAGES).try_for_each(|i| c1.send(i)));
                for i in 0..MESSAGES {
                    assert_eq!(c.recv()?, i, "cap={cap}");
                }
            }
            Ok(())
        })
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
                    // A closed channel is ready too (with an error).
                    match select_now(vec![When::new(c1.ev_recv(), |v| v)]) {
                        Ok(got) => assert!(got.is_some(), "chan is not ready"),
                        Err(e) => assert!(e.is_closed(), "{e}"),
                    }
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
        .block_on(|| {
            let done = make::<bool>(1);
            for rendezvous in [false, true] {
                for _ in 0..100 {
                    let c1 = make::<i32>(1);
                    let c2 = make::<i32>(if rendezvous { 0 } else { 1 });
                    c1.send(1)?;
                    let (a, b, d) = (c1.clone(), c2.clone(), done.clone());
                    go(move || {
                        let got = select_now(vec![
                            When::new(a.ev_recv(), drop),
                            When::new(b.ev_recv(), drop),
                        ]);
                        // With c2 closed, its branch is "ready" with an error.
                        let ready = match got {
                            Ok(r) => r.is_some(),
                            Err(e) if e.is_closed() => true,
                            Err(e) => return Err(e),
                        };
                        d.send(ready)
                    });
                    if rendezvous {
                        c2.close();
                    } else {
                        c2.send(1)?;
                    }
                    let _ = select_now(vec![When::new(c1.ev_recv(), drop)]);
                    assert!(done.recv()?, "no chan is ready");
                }
            }
            Ok(())
        })
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
                    for i in 0..N {
                        let value = (p, i);
                        let send = When::new(c.ev_send(value), |()| None);
                        let recv = When::new(c.ev_recv(), Some);
                        let branches = if p == 0 || i % 2 == 0 {
                            vec![send, recv]
                        } else {
                            vec![recv, send]
                        };
                        match select(branches)? {
                            None => sent.borrow_mut().push(value),
                            Some(v) => {
                                if cap == 0 {
                                    assert_ne!(v.0, p, "self receive");
                                }
                                received.borrow_mut().push(v);
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        sim.run_until(|| fibers.iter().all(|f| f.is_done()));
        for f in fibers {
            f.join().unwrap();
        }
        let mut sent = sent.take();
        let mut received = received.take();
        assert_eq!(sent.len() + received.len(), 2 * N as usize);
        while let Ok(v) = c.try_recv() {
            received.push(v);
        }
        sent.sort_unstable();
        received.sort_unstable();
        assert_eq!(
            sent, received,
            "cap={cap}: each value received exactly once"
        );
        if cap == 0 {
            assert_eq!(sent.len(), N as usize, "every select paired with another");
        }
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
            go(move || {
                let mut n = [0; 4];
                for _ in 0..4 * N {
                    let branches = [3, 2, 0, 1]
                        .into_iter()
                        .filter(|&i| n[i] < N)
                        .map(|i| When::new(cs[i].ev_recv(), move |_| i))
                        .collect();
                    n[select(branches)?] += 1;
                }
                assert_eq!(n, [N; 4]);
                Ok(())
            });
            let cs = c.clone();
            go(move || {
                let mut n = [0; 4];
                for _ in 0..4 * N {
                    let branches = (0..4)
                        .filter(|&i| n[i] < N)
                        .map(|i| When::new(cs[i].ev_send(0), move |()| i))
                        .collect();
                    n[select(branches)?] += 1;
                }
                assert_eq!(n, [N; 4]);
                Ok(())
            });
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
    let pn = [2, 3, 7, 11, 13, 17, 19, 23, 27, 31];
    let (n, s, expect) = Sim::new()
        .block_on(move || {
            let q = make::<u64>(NWORK * 3);
            let r = make::<u64>(NWORK * 3);
            let workers: Vec<_> = (0..NWORK)
                .map(|w| {
                    let (q, r) = (q.clone(), r.clone());
                    fuseau::spawn(move || {
                        while let Some(v) = recv_opt(&q)? {
                            // Mix things up a little.
                            if pn[w % pn.len()] == v {
                                fuseau::yield_now()?;
                            }
                            r.send(v)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            let (q1, r1) = (q.clone(), r.clone());
            let producer = fuseau::spawn(move || {
                let mut expect = 0;
                for i in 0..NITER {
                    let v = pn[i % pn.len()];
                    expect += v;
                    q1.send(v)?;
                }
                q1.close();
                for w in workers {
                    w.join()?;
                }
                r1.close();
                Ok(expect)
            });
            let (mut n, mut s) = (0, 0);
            while let Some(v) = recv_opt(&r)? {
                n += 1;
                s += v;
            }
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
    sim.spawn(move || {
        let got = select(vec![
            When::new(c1.ev_recv(), |v| ('c', v)),
            When::new(d1.ev_recv(), |v| ('d', v)),
            When::new(e1.ev_recv(), |v| ('e', v)),
            When::new(c1.ev_recv(), |v| ('C', v)),
        ])?;
        assert_eq!(got, ('d', 7));
        e1.send(9)
    });
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
