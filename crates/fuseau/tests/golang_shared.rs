//! Go's channel tests (as in `golang.rs`), on `SharedChan`, with the
//! goroutines spread over several scheduler threads, so that producers and
//! consumers mostly run on different threads.
//!
//! Sources: `test/chan/*.go`, `test/closedchan.go` and
//! `src/runtime/chan_test.go` of <https://github.com/golang/go>,
//! Copyright (c) 2009 The Go Authors, BSD-style license
//! (<https://golang.org/LICENSE>).
//!
//! Translation, besides `golang.rs`'s: `make(chan T, n)` is
//! `SharedChan::bounded(n)`; `go f()` spawns a fiber on the next of
//! [`THREADS`] scheduler threads, round robin (the main goroutine runs on
//! the first one), with `spawn_from_anywhere`. Interleavings across threads
//! are not deterministic, so where `golang.rs` checks an exact transcript,
//! this file checks what must hold in every interleaving; "the other
//! goroutine blocked" is observed (blocked senders and receivers in the
//! channel's `Debug` output) rather than assumed. A goroutine that fails
//! aborts the test binary, as a panicking goroutine ends a Go program; a
//! lost wake-up shows as a hang, which a watchdog turns into an abort.
//!
//! `select3.go` (which operations block) runs on one scheduler driven by
//! hand, as in `golang.rs`: whether an operation blocks does not depend on
//! where the other end is.

mod common;

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{select_now, Sim};
use fuseau::{
    select, spawn_from_anywhere, ErrorKind, RemoteFiber, Result, Scheduler, SchedulerHandle,
    SharedChan, TryRecvError, TrySendError, When,
};

/// How many scheduler threads the goroutines are spread over.
const THREADS: usize = 2;

fn make<T: Send + 'static>(cap: usize) -> SharedChan<T> {
    SharedChan::bounded(cap)
}

/// `v, ok := <-c`.
fn recv_opt<T: Send + 'static>(chan: &SharedChan<T>) -> Result<Option<T>> {
    match chan.recv() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_closed() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Blocked senders and receivers of a channel.
fn waiters<T>(chan: &SharedChan<T>) -> (usize, usize) {
    common::waiters_of(&format!("{chan:?}"))
}

/// A short pause of the running fiber, for loops that wait for another
/// thread (each bounded in count).
fn pause() -> Result<()> {
    fuseau::sleep(Duration::from_micros(50))
}

/// Suspends the running fiber until `cond` holds (other threads get
/// there). Bounded: fails after about a minute.
fn wait_until(what: &str, cond: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        pause()?;
    }
    Ok(())
}

/// The goroutines of one test: where to spawn them, and their handles.
#[derive(Clone)]
struct Go(Arc<GoInner>);

struct GoInner {
    threads: Vec<SchedulerHandle>,
    next: AtomicUsize,
    spawned: Mutex<Vec<RemoteFiber<()>>>,
}

impl Go {
    /// `go f()`: on the next thread. A goroutine that fails (other than by
    /// its cancellation at the end of the test) aborts the test binary.
    fn go(&self, f: impl FnOnce() -> Result<()> + Send + 'static) {
        let thread = self.0.next.fetch_add(1, Ordering::Relaxed) % THREADS;
        let fiber = spawn_from_anywhere(&self.0.threads[thread], move || {
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Err(e)) if !e.is_cancelled() => {
                    eprintln!("a goroutine failed: {e}");
                    std::process::abort();
                }
                Ok(result) => result,
                Err(_) => {
                    eprintln!("a goroutine panicked (message above)");
                    std::process::abort();
                }
            }
        });
        self.0.spawned.lock().unwrap().push(fiber);
    }
}

/// Runs `main` as the main goroutine on the first of [`THREADS`] new
/// scheduler threads, and returns its result once it is done; then every
/// goroutine still running (blocked forever, as Go allows) is cancelled and
/// the threads end.
fn run<R: Send + 'static>(main: impl FnOnce(Go) -> Result<R> + Send + 'static) -> R {
    with_watchdog(move || {
        let stop = SharedChan::<()>::new();
        let (handles_tx, handles_rx) = mpsc::channel();
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (stop, handles_tx) = (stop.clone(), handles_tx.clone());
                thread::spawn(move || {
                    fuseau::block_on(move || {
                        handles_tx.send(Scheduler::current().handle()).unwrap();
                        // Until the test is over; then the scheduler's
                        // disposal cancels the goroutines left.
                        let _ = stop.recv();
                        Ok(())
                    })
                })
            })
            .collect();
        let go = Go(Arc::new(GoInner {
            threads: (0..THREADS).map(|_| handles_rx.recv().unwrap()).collect(),
            next: AtomicUsize::new(1),
            spawned: Mutex::new(Vec::new()),
        }));
        let g = go.clone();
        let result = spawn_from_anywhere(&go.0.threads[0], move || main(g)).join();
        stop.close();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        for fiber in go.0.spawned.lock().unwrap().drain(..) {
            if let Err(e) = fiber.join() {
                assert!(
                    e.is_cancelled() || e.kind() == ErrorKind::Inactive,
                    "a goroutine failed: {e}"
                );
            }
        }
        result.unwrap()
    })
}

/// Aborts the test binary if `f` takes longer than two minutes (a lost
/// wake-up would otherwise stall the suite). Nothing asserts on time.
fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    const LIMIT: Duration = Duration::from_secs(120);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    thread::spawn(move || {
        let start = Instant::now();
        while !d.load(Ordering::Acquire) {
            if start.elapsed() > LIMIT {
                eprintln!("the test hung for {LIMIT:?} (a lost wake-up?)");
                std::process::abort();
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let r = f();
    done.store(true, Ordering::Release);
    r
}

// ------------------------------------------------------------- fifo.go

#[test]
#[cfg_attr(miri, ignore)]
fn fifo_asynch() {
    const N: i32 = 10;
    run(|go| {
        let ch = make::<i32>(N as usize);
        let (c, done) = (ch.clone(), make::<bool>(0));
        let d = done.clone();
        go.go(move || {
            for i in 0..N {
                c.send(i)?;
            }
            d.send(true)
        });
        done.recv()?;
        assert_eq!(ch.len(), N as usize);
        for i in 0..N {
            assert_eq!(ch.recv()?, i, "bad receive");
        }
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn fifo_synch() {
    const N: i32 = 100;

    fn chain(
        ch: SharedChan<i32>,
        val: i32,
        inp: SharedChan<i32>,
        out: SharedChan<i32>,
    ) -> Result<()> {
        inp.recv()?;
        let got = ch.recv()?;
        assert_eq!(got, val, "synch fifo out of order");
        out.send(1)
    }

    run(|go| {
        let ch = make::<i32>(0);
        let mut inp = make::<i32>(0);
        let start = inp.clone();
        for i in 0..N {
            let out = make::<i32>(0);
            let (ch, inp2, out2) = (ch.clone(), inp.clone(), out.clone());
            go.go(move || chain(ch, i, inp2, out2));
            inp = out;
        }
        start.send(0)?;
        for i in 0..N {
            ch.send(i)?;
        }
        inp.recv()?;
        Ok(())
    });
}

// ------------------------------------------------------- goroutines.go

#[test]
#[cfg_attr(miri, ignore)]
fn goroutines_daisy_chain() {
    const N: usize = 1_000;
    let result = run(|go| {
        let leftmost = make::<i32>(0);
        let mut left = leftmost.clone();
        let mut right = leftmost.clone();
        for _ in 0..N {
            right = make::<i32>(0);
            let (l, r) = (left.clone(), right.clone());
            go.go(move || l.send(1 + r.recv()?));
            left = right.clone();
        }
        go.go(move || right.send(1));
        leftmost.recv()
    });
    assert_eq!(result, N as i32 + 1);
}

// ----------------------------------------------------- doubleselect.go

#[test]
#[cfg_attr(miri, ignore)]
fn doubleselect() {
    const ITERATIONS: i32 = 3_000;

    fn sender(n: i32, c: [SharedChan<i32>; 4]) -> Result<()> {
        for i in 0..n {
            select(c.iter().map(|c| When::new(c.ev_send(i), |()| ())).collect())?;
        }
        for c in &c {
            c.close();
        }
        Ok(())
    }

    fn mux(out: SharedChan<i32>, inp: SharedChan<i32>, done: SharedChan<bool>) -> Result<()> {
        while let Some(v) = recv_opt(&inp)? {
            out.send(v)?;
        }
        done.send(true)
    }

    let seen = run(|go| {
        let c: [SharedChan<i32>; 4] = std::array::from_fn(|_| make(0));
        let done = make::<bool>(0);
        let cmux = make::<i32>(0);
        let cs = c.clone();
        go.go(move || sender(ITERATIONS, cs));
        for ci in &c {
            let (out, inp, done) = (cmux.clone(), ci.clone(), done.clone());
            go.go(move || mux(out, inp, done));
        }
        let (d, m) = (done.clone(), cmux.clone());
        go.go(move || {
            for _ in 0..4 {
                d.recv()?;
            }
            m.close();
            Ok(())
        });
        let mut seen = HashSet::new();
        while let Some(v) = recv_opt(&cmux)? {
            assert!(seen.insert(v), "got duplicate value for {v}");
        }
        Ok(seen)
    });
    assert_eq!(seen, (0..ITERATIONS).collect::<HashSet<_>>());
}

// ---------------------------------------------------------- nonblock.go

/// nonblock.go, for one value type: non-blocking sends and receives
/// against a goroutine (on another thread) that blocks on the other end.
fn nonblock_case<T: Clone + PartialEq + std::fmt::Debug + Send + 'static>(
    go: &Go,
    buffer: usize,
    to_send: T,
    to_receive: T,
) -> Result<()> {
    const MAX_TRIES: usize = 200_000;
    let c = make::<T>(buffer);
    let sync = make::<bool>(0);

    assert!(select_now(vec![When::new(c.ev_recv(), |_| ())])?.is_none());
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Empty);

    let (c1, s1, expected) = (c.clone(), sync.clone(), to_send.clone());
    go.go(move || {
        assert_eq!(c1.recv()?, expected, "receiver got a wrong value");
        s1.send(true)
    });
    let mut tries = 0;
    while select_now(vec![When::new(c.ev_send(to_send.clone()), |()| ())])?.is_none() {
        tries += 1;
        assert!(tries <= MAX_TRIES, "receiver buffer={buffer}");
        pause()?;
    }
    sync.recv()?;

    let (c2, s2, value) = (c.clone(), sync.clone(), to_receive.clone());
    go.go(move || {
        c2.send(value)?;
        s2.send(true)
    });
    if buffer > 0 {
        sync.recv()?;
    }
    let mut tries = 0;
    loop {
        match c.try_recv() {
            Ok(v) => {
                assert_eq!(v, to_receive, "sender value");
                break;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Closed) => panic!("the channel is not closed"),
        }
        tries += 1;
        assert!(tries <= MAX_TRIES, "sender buffer={buffer}");
        pause()?;
    }
    if buffer == 0 {
        sync.recv()?;
    }
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore)]
fn nonblock() {
    run(|go| {
        for buffer in 0..2 {
            nonblock_case::<i32>(&go, buffer, 123, 234)?;
            nonblock_case::<i64>(&go, buffer, 123_456, 234_567)?;
            nonblock_case::<bool>(&go, buffer, true, true)?;
            nonblock_case::<String>(&go, buffer, "hello".into(), "hello again".into())?;
        }
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn nonblock_rendezvous_try_send_needs_a_waiting_receiver() {
    run(|go| {
        let c = make::<u32>(0);
        assert!(matches!(c.try_send(1), Err(TrySendError::Full(1))));
        let got = make::<u32>(1);
        let (c1, g) = (c.clone(), got.clone());
        go.go(move || g.send(c1.recv()?));
        wait_until("the receiver waits", || waiters(&c) == (0, 1))?;
        c.try_send(3).unwrap();
        assert_eq!(waiters(&c), (0, 0));
        assert!(c.is_empty(), "handed over, not buffered");
        assert!(matches!(c.try_send(4), Err(TrySendError::Full(4))));
        assert_eq!(got.recv()?, 3);
        // And a waiting sender is what try_recv needs.
        let c2 = c.clone();
        go.go(move || c2.send(5));
        wait_until("the sender waits", || waiters(&c) == (1, 0))?;
        assert_eq!(c.try_recv(), Ok(5));
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
        Ok(())
    });
}

// ------------------------------------------------------------ select.go

#[test]
#[cfg_attr(miri, ignore)]
fn select_go() {
    run(|_go| {
        let shift = Rc::new(Cell::new(0u32));
        let counter = Rc::new(Cell::new(0u32));
        let get_value = {
            let (shift, counter) = (shift.clone(), counter.clone());
            move || {
                counter.set(counter.get() + 1);
                1u32 << shift.get()
            }
        };
        let send =
            |mut a: Option<SharedChan<u32>>, mut b: Option<SharedChan<u32>>| -> Result<u32> {
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
    });
}

// ----------------------------------------------------------- select2.go

#[test]
#[cfg_attr(miri, ignore)]
fn select2_no_waiter_build_up() {
    const N: usize = 5_000;
    let (c, dummy) = run(|go| {
        let c = SharedChan::<i32>::new();
        let dummy = SharedChan::<i32>::new();
        for _round in 0..2 {
            let c2 = c.clone();
            go.go(move || {
                for _ in 0..N {
                    c2.send(1)?;
                    fuseau::yield_now()?;
                }
                Ok(())
            });
            for _ in 0..N {
                select(vec![
                    When::new(c.ev_recv(), |_| ()),
                    When::new(dummy.ev_recv(), |_| panic!("dummy")),
                ])?;
                // The losing branch's registration was undone.
                assert_eq!(waiters(&dummy), (0, 0));
            }
        }
        Ok((c, dummy))
    });
    assert_eq!(
        format!("{dummy:?}"),
        format!("{:?}", SharedChan::<i32>::new())
    );
    assert_eq!(waiters(&c), (0, 0));
}

// ----------------------------------------------------------- select3.go

/// select3.go: which operations block, which never do. Each runs in a
/// fiber on a scheduler driven by hand; after it is idle, the fiber must
/// (not) be done.
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

    check("recv from unbuffered", true, || {
        make::<i32>(0).recv().map(drop)
    });
    check("send to unbuffered", true, || make::<i32>(0).send(7));
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
    run(|go| {
        let c = make::<i32>(1);
        let c1 = make::<i32>(0);
        let (tx, done) = (c.clone(), make::<()>(0));
        let d = done.clone();
        go.go(move || {
            tx.send(42)?;
            d.send(())
        });
        done.recv()?;
        let v = select(vec![
            When::new(c1.ev_recv(), |_| panic!("BUG")),
            When::new(c.ev_recv(), |v| v),
        ])?;
        assert_eq!(v, 42);
        Ok(())
    });
}

// ----------------------------------------------------------- select6.go

/// Issue 2075: a select that lost must not leave its registration on a
/// channel, where it would steal a later value.
#[test]
#[cfg_attr(miri, ignore)]
fn select6_a_losing_branch_steals_nothing() {
    run(|go| {
        let c1 = make::<bool>(0);
        let c2 = make::<bool>(0);
        let c3 = make::<bool>(0);
        let c = c1.clone();
        go.go(move || c.recv().map(drop));
        let (a, b, d) = (c1.clone(), c2.clone(), c3.clone());
        go.go(move || {
            select(vec![
                When::new(a.ev_recv(), |_| panic!("dummy")),
                When::new(b.ev_recv(), |_| ()),
            ])?;
            d.send(true)?;
            a.recv().map(drop)
        });
        let c = c2.clone();
        go.go(move || c.send(true));
        c3.recv()?;
        c1.send(true)?;
        c1.send(true)?;
        Ok(())
    });
}

// ----------------------------------------------------------- select7.go

#[test]
#[cfg_attr(miri, ignore)]
fn select7_every_mix_of_plain_and_select_ends() {
    type Recv = fn(SharedChan<i32>) -> Result<()>;
    type Send = fn(&Go, Recv) -> Result<()>;

    fn recv1(c: SharedChan<i32>) -> Result<()> {
        assert_eq!(c.recv()?, 1);
        Ok(())
    }
    fn recv2(c: SharedChan<i32>) -> Result<()> {
        select(vec![When::new(c.ev_recv(), |v| assert_eq!(v, 1))])
    }
    fn recv3(c: SharedChan<i32>) -> Result<()> {
        let c2 = make::<i32>(1);
        select(vec![
            When::new(c.ev_recv(), |v| assert_eq!(v, 1)),
            When::new(c2.ev_recv(), |_| panic!("c2 is empty")),
        ])
    }
    /// The receiving goroutine, and a channel that says when it is done.
    fn start(go: &Go, recv: Recv) -> (SharedChan<i32>, SharedChan<()>) {
        let c = make::<i32>(1);
        let done = make::<()>(1);
        let (c1, d) = (c.clone(), done.clone());
        go.go(move || {
            recv(c1)?;
            d.send(())
        });
        (c, done)
    }
    fn send1(go: &Go, recv: Recv) -> Result<()> {
        let (c, done) = start(go, recv);
        c.send(1)?;
        done.recv()
    }
    fn send2(go: &Go, recv: Recv) -> Result<()> {
        let (c, done) = start(go, recv);
        select(vec![When::new(c.ev_send(1), |()| ())])?;
        done.recv()
    }
    fn send3(go: &Go, recv: Recv) -> Result<()> {
        let (c, done) = start(go, recv);
        let c2 = make::<i32>(1);
        c2.send(0)?; // full: the select can only send on c
        select(vec![
            When::new(c.ev_send(1), |()| ()),
            When::new(c2.ev_send(1), |()| panic!("c2 is full")),
        ])?;
        done.recv()
    }

    run(|go| {
        let sends: [Send; 3] = [send1, send2, send3];
        let recvs: [Recv; 3] = [recv1, recv2, recv3];
        for send in sends {
            for recv in recvs {
                send(&go, recv)?;
            }
        }
        Ok(())
    });
}

// ------------------------------------------------------------ sieve1.go

const PRIMES: [u64; 25] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

/// Runs an endless prime generator, takes the first primes from `out`;
/// the generator's goroutines are cancelled at the end of the test.
fn take_primes(n: usize, sieve: fn(Go, SharedChan<u64>) -> Result<()>) -> Vec<u64> {
    run(move |go| {
        let out = make::<u64>(1);
        let (o, g) = (out.clone(), go.clone());
        go.go(move || sieve(g, o));
        (0..n).map(|_| out.recv()).collect::<Result<Vec<_>>>()
    })
}

#[test]
#[cfg_attr(miri, ignore)]
fn sieve1() {
    fn generate(ch: SharedChan<u64>) -> Result<()> {
        for i in 2.. {
            ch.send(i)?;
        }
        Ok(())
    }
    fn filter(inp: SharedChan<u64>, out: SharedChan<u64>, prime: u64) -> Result<()> {
        while let Some(i) = recv_opt(&inp)? {
            if i % prime != 0 {
                out.send(i)?;
            }
        }
        Ok(())
    }
    fn sieve(go: Go, primes: SharedChan<u64>) -> Result<()> {
        let mut ch = make::<u64>(1);
        let c = ch.clone();
        go.go(move || generate(c));
        loop {
            let prime = ch.recv()?;
            primes.send(prime)?;
            let ch1 = make::<u64>(1);
            let (i, o) = (ch.clone(), ch1.clone());
            go.go(move || filter(i, o, prime));
            ch = ch1;
        }
    }
    assert_eq!(take_primes(PRIMES.len(), sieve), PRIMES);
}

// ------------------------------------------------------------ sieve2.go

/// sieve2.go (see `golang.rs`): merged channels of multiples, and a
/// feedback loop through a buffering proxy that selects between taking a
/// value and handing one on.
#[test]
#[cfg_attr(miri, ignore)]
fn sieve2() {
    fn odds(go: &Go) -> SharedChan<u64> {
        let out = make::<u64>(10);
        let o = out.clone();
        go.go(move || (5..).step_by(2).try_for_each(|n| o.send(n)));
        out
    }
    fn multiples(go: &Go, p: u64) -> SharedChan<u64> {
        let out = make::<u64>(10);
        let o = out.clone();
        go.go(move || {
            (p * p..)
                .step_by(2 * p as usize)
                .try_for_each(|n| o.send(n))
        });
        out
    }
    fn send_proxy(go: &Go, out: SharedChan<u64>) -> SharedChan<u64> {
        let proxy = make::<u64>(10);
        let p = proxy.clone();
        go.go(move || {
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
    fn sieve(go: Go, out: SharedChan<u64>) -> Result<()> {
        out.send(2)?;
        out.send(3)?;
        let composites = make::<u64>(50);
        let primes = make::<u64>(10);
        primes.send(3)?;

        let (pr, co, g) = (primes.clone(), composites.clone(), go.clone());
        go.go(move || {
            fn pop_push(
                heap: &mut BinaryHeap<Reverse<(u64, usize)>>,
                chans: &[SharedChan<u64>],
            ) -> Result<u64> {
                let Reverse((head, i)) = heap.pop().expect("the heap is not empty");
                heap.push(Reverse((chans[i].recv()?, i)));
                Ok(head)
            }
            let mut chans: Vec<SharedChan<u64>> = Vec::new();
            let mut heap = BinaryHeap::new();
            let mut min = 15;
            loop {
                let m = multiples(&g, pr.recv()?);
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

        let (o, g) = (out.clone(), go.clone());
        go.go(move || {
            let primes = send_proxy(&g, primes);
            let candidates = odds(&g);
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
    run(|go| {
        for cap in [0, 1, 3] {
            let a = make::<ZeroSize>(cap);
            let b = make::<[u8; 0]>(cap);
            let (a1, b1) = (a.clone(), b.clone());
            go.go(move || {
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
        let unbounded = SharedChan::new();
        for _ in 0..1_000 {
            unbounded.send(())?;
        }
        assert_eq!(unbounded.len(), 1_000);
        Ok(())
    });
}

// -------------------------------------------------------- closedchan.go

/// Every receive fails with `Closed`, at once, again and again, in every
/// form; so does every send.
fn assert_closed_and_drained(c: &SharedChan<i32>) -> Result<()> {
    for _ in 0..3 {
        assert!(c.recv().unwrap_err().is_closed());
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
        let e = select(vec![When::new(c.ev_recv(), |_| ())]).unwrap_err();
        assert!(e.is_closed());
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
    run(|go| {
        let c = make::<i32>(0);
        c.close();
        assert_closed_and_drained(&c)?;
        // Filled and closed on another thread.
        let closed_async = || -> Result<SharedChan<i32>> {
            let c = make::<i32>(2);
            let (c1, done) = (c.clone(), make::<()>(0));
            let d = done.clone();
            go.go(move || {
                c1.send(1)?;
                c1.close();
                d.send(())
            });
            done.recv()?;
            Ok(c)
        };
        let c = closed_async()?;
        assert_eq!(c.len(), 1);
        assert_eq!(c.recv()?, 1);
        assert_closed_and_drained(&c)?;
        let c = closed_async()?;
        assert_eq!(c.try_recv(), Ok(1));
        assert_closed_and_drained(&c)?;
        let c = closed_async()?;
        assert_eq!(select(vec![When::new(c.ev_recv(), |v| v)])?, 1);
        assert_closed_and_drained(&c)?;
        let c = SharedChan::new();
        for i in 0..5 {
            c.send(i)?;
        }
        c.close();
        for i in 0..5 {
            assert_eq!(c.recv()?, i);
        }
        assert_closed_and_drained(&c)?;
        c.close();
        assert_closed_and_drained(&c)?;
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan_close_wakes_every_blocked_sender_and_receiver() {
    let (first, second, full) = run(|go| {
        let results = SharedChan::<String>::new();
        let empty = make::<i32>(0);
        let full = make::<i32>(2);
        full.try_send(10).unwrap();
        full.try_send(11).unwrap();
        for i in 0..3 {
            let (e, r) = (empty.clone(), results.clone());
            go.go(move || {
                let got = e.recv().map_err(|e| e.kind());
                r.send(format!("recv {i}: {got:?}"))
            });
            let (f, r) = (full.clone(), results.clone());
            go.go(move || {
                let got = f.send(20 + i).map_err(|e| e.kind());
                r.send(format!("send {i}: {got:?}"))
            });
            let (e, f, r) = (empty.clone(), full.clone(), results.clone());
            go.go(move || {
                let got = select(vec![
                    When::new(e.ev_recv(), |v| format!("got {v}")),
                    When::new(f.ev_send(30 + i), |()| "sent".to_string()),
                ]);
                r.send(format!("select {i}: {:?}", got.map_err(|e| e.kind())))
            });
        }
        wait_until("all blocked", || {
            waiters(&empty) == (0, 6) && waiters(&full) == (6, 0)
        })?;
        assert!(results.is_empty(), "all blocked");
        empty.close();
        let mut first: Vec<String> = (0..6).map(|_| results.recv()).collect::<Result<_>>()?;
        first.sort();
        wait_until("the selects left", || waiters(&full) == (3, 0))?;
        assert_eq!(waiters(&empty), (0, 0));
        full.close();
        let mut second: Vec<String> = (0..3).map(|_| results.recv()).collect::<Result<_>>()?;
        second.sort();
        assert_eq!(waiters(&full), (0, 0));
        Ok((first, second, full))
    });
    assert_eq!(
        first,
        [
            "recv 0: Err(Closed)",
            "recv 1: Err(Closed)",
            "recv 2: Err(Closed)",
            "select 0: Err(Closed)",
            "select 1: Err(Closed)",
            "select 2: Err(Closed)",
        ]
    );
    assert_eq!(
        second,
        [
            "send 0: Err(Closed)",
            "send 1: Err(Closed)",
            "send 2: Err(Closed)"
        ]
    );
    assert_eq!(full.try_recv(), Ok(10));
    assert_eq!(full.try_recv(), Ok(11));
    assert_eq!(full.try_recv(), Err(TryRecvError::Closed));
}

// ------------------------------------------------- runtime/chan_test.go

/// TestChan, for capacities 0 to 19.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_chan() {
    const N: usize = 20;
    const MESSAGES: i32 = 100;
    run(|go| {
        for cap in 0..N {
            // Receiving from an empty channel blocks.
            let c = make::<i32>(cap);
            let done = make::<()>(2);
            for _ in 0..2 {
                let (c, d) = (c.clone(), done.clone());
                go.go(move || {
                    c.recv()?;
                    d.send(())
                });
            }
            wait_until("two receivers block", || waiters(&c) == (0, 2))?;
            assert!(done.is_empty(), "cap={cap}");
            assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
            assert!(select_now(vec![When::new(c.ev_recv(), drop)])?.is_none());
            c.send(0)?;
            c.send(0)?;
            done.recv()?;
            done.recv()?;

            // Sending to a full channel blocks.
            let c = make::<i32>(cap);
            for i in 0..cap {
                c.try_send(i as i32).unwrap();
            }
            let (c1, d) = (c.clone(), done.clone());
            go.go(move || {
                c1.send(0)?;
                d.send(())
            });
            wait_until("the sender blocks", || waiters(&c) == (1, 0))?;
            assert!(done.is_empty(), "cap={cap}");
            assert!(matches!(c.try_send(0), Err(TrySendError::Full(0))));
            assert!(select_now(vec![When::new(c.ev_send(0), drop)])?.is_none());
            assert_eq!(c.try_recv(), Ok(0));
            done.recv()?;

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
            assert_closed_and_drained(&c)?;

            // Closing unblocks a receive.
            let c = make::<i32>(cap);
            let got = make::<bool>(1);
            let (c1, g) = (c.clone(), got.clone());
            go.go(move || g.send(recv_opt(&c1)?.is_none()));
            wait_until("the receiver blocks", || waiters(&c) == (0, 1))?;
            c.close();
            assert!(got.recv()?, "cap={cap}");

            // Many values arrive uncorrupted, in order; twice.
            let c = make::<i32>(cap);
            for _ in 0..2 {
                let c1 = c.clone();
                go.go(move || (0..MESSAGES).try_for_each(|i| c1.send(i)));
                for i in 0..MESSAGES {
                    assert_eq!(c.recv()?, i, "cap={cap}");
                }
            }
        }
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_nonblock_recv_race() {
    run(|go| {
        let done = make::<()>(1);
        for _ in 0..100 {
            let c = make::<i32>(1);
            c.send(1)?;
            let (c1, d) = (c.clone(), done.clone());
            go.go(move || {
                match select_now(vec![When::new(c1.ev_recv(), |v| v)]) {
                    Ok(got) => assert!(got.is_some(), "chan is not ready"),
                    Err(e) => assert!(e.is_closed(), "{e}"),
                }
                d.send(())
            });
            c.close();
            recv_opt(&c)?;
            done.recv()?;
        }
        Ok(())
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_nonblock_select_race() {
    run(|go| {
        let done = make::<bool>(1);
        for rendezvous in [false, true] {
            for _ in 0..100 {
                let c1 = make::<i32>(1);
                let c2 = make::<i32>(if rendezvous { 0 } else { 1 });
                c1.send(1)?;
                let (a, b, d) = (c1.clone(), c2.clone(), done.clone());
                go.go(move || {
                    let got = select_now(vec![
                        When::new(a.ev_recv(), drop),
                        When::new(b.ev_recv(), drop),
                    ]);
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
    });
}

/// Selects that both send and receive on one channel, on two threads: on
/// a rendezvous channel a select never matches itself, and every value
/// sent is received exactly once.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_self_select() {
    const N: u32 = 1_000;
    for cap in [0, 10] {
        let (sent, received, leftover) = run(move |go| {
            let c = make::<(u32, u32)>(cap);
            let sent = Arc::new(Mutex::new(Vec::new()));
            let received = Arc::new(Mutex::new(Vec::new()));
            let done = make::<()>(2);
            for p in 0..2u32 {
                let (c, sent, received, d) =
                    (c.clone(), sent.clone(), received.clone(), done.clone());
                go.go(move || {
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
                            None => sent.lock().unwrap().push(value),
                            Some(v) => {
                                if cap == 0 {
                                    assert_ne!(v.0, p, "self receive");
                                }
                                received.lock().unwrap().push(v);
                            }
                        }
                    }
                    d.send(())
                });
            }
            done.recv()?;
            done.recv()?;
            let received = std::mem::take(&mut *received.lock().unwrap());
            let sent = std::mem::take(&mut *sent.lock().unwrap());
            Ok((sent, received, c))
        });
        let (mut sent, mut received, c) = (sent, received, leftover);
        assert_eq!(sent.len() + received.len(), 2 * N as usize, "cap={cap}");
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
    let c = run(|go| {
        let c = [make::<i32>(0), make(0), make(2), make(3)];
        let done = make::<()>(10);
        for ck in &c {
            let (tx, d) = (ck.clone(), done.clone());
            go.go(move || {
                (0..N).try_for_each(|_| tx.send(0))?;
                d.send(())
            });
            let (rx, d) = (ck.clone(), done.clone());
            go.go(move || {
                (0..N).try_for_each(|_| rx.recv().map(drop))?;
                d.send(())
            });
        }
        let (cs, d) = (c.clone(), done.clone());
        go.go(move || {
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
            d.send(())
        });
        let (cs, d) = (c.clone(), done.clone());
        go.go(move || {
            let mut n = [0; 4];
            for _ in 0..4 * N {
                let branches = (0..4)
                    .filter(|&i| n[i] < N)
                    .map(|i| When::new(cs[i].ev_send(0), move |()| i))
                    .collect();
                n[select(branches)?] += 1;
            }
            assert_eq!(n, [N; 4]);
            d.send(())
        });
        for _ in 0..10 {
            done.recv()?;
        }
        Ok(c)
    });
    for ci in &c {
        assert!(ci.is_empty());
        assert_eq!(waiters(ci), (0, 0));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_multi_consumer() {
    const NWORK: usize = 23;
    const NITER: usize = 20_000;
    let pn = [2, 3, 7, 11, 13, 17, 19, 23, 27, 31];
    let (n, s, expect) = run(move |go| {
        let q = make::<u64>(NWORK * 3);
        let r = make::<u64>(NWORK * 3);
        let workers_left = Arc::new(AtomicUsize::new(NWORK));
        for w in 0..NWORK {
            let (q, r, left) = (q.clone(), r.clone(), workers_left.clone());
            go.go(move || {
                while let Some(v) = recv_opt(&q)? {
                    if pn[w % pn.len()] == v {
                        fuseau::yield_now()?;
                    }
                    r.send(v)?;
                }
                // The last worker closes the results.
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    r.close();
                }
                Ok(())
            });
        }
        let (q1, expected) = (q.clone(), make::<u64>(1));
        let e = expected.clone();
        go.go(move || {
            let mut expect = 0;
            for i in 0..NITER {
                let v = pn[i % pn.len()];
                expect += v;
                q1.send(v)?;
            }
            q1.close();
            e.send(expect)
        });
        let (mut n, mut s) = (0, 0);
        while let Some(v) = recv_opt(&r)? {
            n += 1;
            s += v;
        }
        Ok((n, s, expected.recv()?))
    });
    assert_eq!(n, NITER);
    assert_eq!(s, expect);
}

/// A goroutine queued on the same channel several times (a select over it
/// and others) is handed at most one value.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_select_duplicate_channel() {
    run(|go| {
        let (c, d, e) = (make::<i32>(0), make::<i32>(0), make::<i32>(0));
        let (c1, d1, e1) = (c.clone(), d.clone(), e.clone());
        go.go(move || {
            let got = select(vec![
                When::new(c1.ev_recv(), |v| ('c', v)),
                When::new(d1.ev_recv(), |v| ('d', v)),
                When::new(e1.ev_recv(), |v| ('e', v)),
                When::new(c1.ev_recv(), |v| ('C', v)),
            ])?;
            assert_eq!(got, ('d', 7));
            e1.send(9)
        });
        wait_until("the select waits", || waiters(&c) == (0, 2))?;
        let (c1, late) = (c.clone(), make::<i32>(1));
        let l = late.clone();
        go.go(move || l.send(c1.recv()?));
        wait_until("the late receiver waits", || waiters(&c) == (0, 3))?;
        d.send(7)?;
        assert_eq!(e.recv()?, 9);
        c.send(8)?;
        assert_eq!(late.recv()?, 8, "the select's stale entries were skipped");
        assert_eq!(waiters(&c), (0, 0));
        Ok(())
    });
}
