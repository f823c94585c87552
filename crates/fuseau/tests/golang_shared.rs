//! Go's channel tests (as in `golang.rs`), on `SharedChan`, with the
//! goroutines spread over several scheduler threads, so that producers and
//! consumers mostly run on different threads. Where a test is the same as
//! in `golang.rs` but for the channel type and where goroutines run, its
//! body is shared, in `common/chans.rs`.
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

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::chans::{self, recv_opt, waiters, Goroutines, Spawn, PRIMES};
use common::select_now;
use common::with_watchdog;
use fuseau::{
    spawn_from_anywhere, ErrorKind, RemoteFiber, Result, Scheduler, SchedulerHandle, SharedChan,
    TryRecvError, TrySendError, When,
};

/// How many scheduler threads the goroutines are spread over.
const THREADS: usize = 2;

fn make<T: Send + 'static>(cap: usize) -> SharedChan<T> {
    SharedChan::bounded(cap)
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

impl Goroutines for Go {
    type Chan<T: Send + 'static> = SharedChan<T>;
}

impl<A: Send + 'static> Spawn<A> for Go {
    /// `go f(args)`, with [`Go::go`]: on the next thread.
    fn go(&self, args: A, f: fn(A) -> Result<()>) {
        Go::go(self, move || f(args));
    }
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
    run(|go| chans::fifo_synch(&go, N));
}

// ------------------------------------------------------- goroutines.go

#[test]
#[cfg_attr(miri, ignore)]
fn goroutines_daisy_chain() {
    const N: usize = 1_000;
    let result = run(|go| chans::daisy_chain(&go, N));
    assert_eq!(result, N as i32 + 1);
}

// ----------------------------------------------------- doubleselect.go

#[test]
#[cfg_attr(miri, ignore)]
fn doubleselect() {
    const ITERATIONS: i32 = 3_000;
    let seen = run(|go| chans::doubleselect(&go, ITERATIONS));
    assert_eq!(seen, (0..ITERATIONS).collect::<HashSet<_>>());
}

// ---------------------------------------------------------- nonblock.go

/// Non-blocking sends and receives against a goroutine on another thread
/// that blocks on the other end.
#[test]
#[cfg_attr(miri, ignore)]
fn nonblock() {
    const MAX_TRIES: usize = 200_000;
    run(|go| {
        for buffer in 0..2 {
            chans::nonblock(&go, buffer, MAX_TRIES, pause)?;
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
    run(|_go| chans::select_go::<SharedChan<u32>>());
}

// ----------------------------------------------------------- select2.go

#[test]
#[cfg_attr(miri, ignore)]
fn select2_no_waiter_build_up() {
    const N: usize = 5_000;
    let (c, dummy) = run(|go| chans::select2(&go, N));
    chans::assert_select2_left_nothing(&c, &dummy);
}

// ----------------------------------------------------------- select3.go

/// select3.go: which operations block, which never do. Each runs in a
/// fiber on a scheduler driven by hand; after it is idle, the fiber must
/// (not) be done.
#[test]
#[cfg_attr(miri, ignore)]
fn select3_blocking_and_non_blocking_operations() {
    chans::select3::<SharedChan<i32>>();
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
        chans::select4(&c1, &c)
    });
}

// ----------------------------------------------------------- select6.go

/// Issue 2075: a select that lost must not leave its registration on a
/// channel, where it would steal a later value.
#[test]
#[cfg_attr(miri, ignore)]
fn select6_a_losing_branch_steals_nothing() {
    run(|go| chans::select6(&go));
}

// ----------------------------------------------------------- select7.go

#[test]
#[cfg_attr(miri, ignore)]
fn select7_every_mix_of_plain_and_select_ends() {
    type Recv = fn(SharedChan<i32>) -> Result<()>;

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

    run(|go| {
        for send in chans::select7_senders::<SharedChan<i32>>() {
            for recv in chans::select7_receivers() {
                let (c, done) = start(&go, recv);
                send(&c)?;
                done.recv()?;
            }
        }
        Ok(())
    });
}

// ------------------------------------------------------------ sieve1.go

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
    assert_eq!(take_primes(PRIMES.len(), chans::sieve1), PRIMES);
}

// ------------------------------------------------------------ sieve2.go

#[test]
#[cfg_attr(miri, ignore)]
fn sieve2() {
    assert_eq!(take_primes(PRIMES.len(), chans::sieve2), PRIMES);
    assert_eq!(take_primes(300, chans::sieve2), chans::first_300_primes());
}

// ---------------------------------------------------------- zerosize.go

#[test]
#[cfg_attr(miri, ignore)]
fn zerosize() {
    run(|go| chans::zerosize(&go));
}

// -------------------------------------------------------- closedchan.go

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan() {
    run(|go| {
        // Filled and closed on another thread.
        chans::closedchan(|| {
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
        })
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn closedchan_close_wakes_every_blocked_sender_and_receiver() {
    let (first, second, full) = run(|go| {
        let results = SharedChan::<String>::new();
        let (empty, full) = chans::empty_and_full::<SharedChan<i32>>();
        for i in 0..3 {
            let (e, r) = (empty.clone(), results.clone());
            go.go(move || r.send(chans::report_recv(&e, i)));
            let (f, r) = (full.clone(), results.clone());
            go.go(move || r.send(chans::report_send(&f, i)));
            let (e, f, r) = (empty.clone(), full.clone(), results.clone());
            go.go(move || r.send(chans::report_select(&e, &f, i)));
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
    chans::assert_full_drains(&full);
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
            let c = chans::filled::<SharedChan<i32>>(cap);
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
            let c = chans::closed_full_chan_drains::<SharedChan<i32>>(cap);
            chans::assert_closed_and_drained(&c)?;

            // Closing unblocks a receive.
            let c = make::<i32>(cap);
            let got = make::<bool>(1);
            let (c1, g) = (c.clone(), got.clone());
            go.go(move || g.send(recv_opt(&c1)?.is_none()));
            wait_until("the receiver blocks", || waiters(&c) == (0, 1))?;
            c.close();
            assert!(got.recv()?, "cap={cap}");

            // Many values arrive uncorrupted, in order; twice.
            chans::many_values_in_order(&go, cap, MESSAGES)?;
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
                chans::nonblock_recv_ready(&c1);
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
    run(|go| chans::nonblock_select_race(&go));
}

/// Selects that both send and receive on one channel, on two threads: on
/// a rendezvous channel a select never matches itself, and every value
/// sent is received exactly once.
#[test]
#[cfg_attr(miri, ignore)]
fn chan_test_self_select() {
    const N: u32 = 1_000;
    for cap in [0, 10] {
        let (sent, received, c) = run(move |go| {
            let c = make::<(u32, u32)>(cap);
            let sent = Arc::new(Mutex::new(Vec::new()));
            let received = Arc::new(Mutex::new(Vec::new()));
            let done = make::<()>(2);
            for p in 0..2u32 {
                let (c, sent, received, d) =
                    (c.clone(), sent.clone(), received.clone(), done.clone());
                go.go(move || {
                    chans::self_select_goroutine(
                        &c,
                        p,
                        N,
                        cap,
                        |v| sent.lock().unwrap().push(v),
                        |v| received.lock().unwrap().push(v),
                    )?;
                    d.send(())
                });
            }
            done.recv()?;
            done.recv()?;
            let received = std::mem::take(&mut *received.lock().unwrap());
            let sent = std::mem::take(&mut *sent.lock().unwrap());
            Ok((sent, received, c))
        });
        chans::check_self_select(sent, received, &c, cap, N);
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
            chans::select_recv_from_each(&cs, N)?;
            d.send(())
        });
        let (cs, d) = (c.clone(), done.clone());
        go.go(move || {
            chans::select_send_to_each(&cs, N)?;
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
    let (n, s, expect) = run(move |go| {
        let q = make::<u64>(NWORK * 3);
        let r = make::<u64>(NWORK * 3);
        let workers_left = Arc::new(AtomicUsize::new(NWORK));
        for w in 0..NWORK {
            let (q, r, left) = (q.clone(), r.clone(), workers_left.clone());
            go.go(move || {
                chans::multi_consumer_worker(&q, &r, w)?;
                // The last worker closes the results.
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    r.close();
                }
                Ok(())
            });
        }
        let (q1, expected) = (q.clone(), make::<u64>(1));
        let e = expected.clone();
        go.go(move || e.send(chans::multi_consumer_producer(&q1, NITER)?));
        let (n, s) = chans::count_and_sum(&r)?;
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
        go.go(move || chans::select_duplicate_channel(&c1, &d1, &e1));
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
