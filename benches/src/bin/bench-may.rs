//! may's side of the suite: stackful coroutines with one worker thread
//! (`may::config().set_workers(1)`). See `benches/README.md`.
//!
//! may has no bounded channel; W3 builds one from `may::sync::mpsc` and a
//! `may::sync::Semphore` holding the free slots (the usual construction).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuseau_bench::{ns_per, report, report_w1, report_w4, report_w5, rss_bytes, Args, W1_ROUNDS};
use may::coroutine::yield_now;
use may::go;

fn main() {
    let args = Args::parse();
    // A panic in a coroutine (e.g. may failing to allocate a stack) leaves
    // the joining thread waiting forever: exit instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    may::config().set_workers(1);
    let main = go!(move || match args.workload.as_str() {
        "W1" => w1(args.param(0)),
        "W2" => w2(args.param(0)),
        "W3" => w3(args.param(0) as usize, args.param(1)),
        "W4" => w4(args.param(0), Duration::from_millis(args.param(1))),
        "W5" | "W5x" => w5(args.param(0)),
        other => panic!("unknown workload {other}"),
    });
    main.join().expect("the benchmark coroutine panicked");
}

/// Spawn `n` coroutines, then join them all.
fn w1(n: u64) {
    let mut rounds = Vec::new();
    for _ in 0..W1_ROUNDS {
        let start = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| go!(move || i)).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.join().expect("coroutine");
        }
        rounds.push(start.elapsed());
        black_box(sum);
    }
    report_w1(&rounds, n);
}

/// Two coroutines yield to each other, `n` yields in all.
fn w2(n: u64) {
    let start = Instant::now();
    let a = go!(move || (0..n / 2).for_each(|_| yield_now()));
    let b = go!(move || (0..n / 2).for_each(|_| yield_now()));
    a.join().expect("a");
    b.join().expect("b");
    report(&[("ns_per_yield", ns_per(start.elapsed(), n / 2 * 2))]);
}

/// One producer, one consumer, `n` u64 through a channel bounded to
/// `capacity` by a semaphore of free slots.
fn w3(capacity: usize, n: u64) {
    let start = Instant::now();
    let (tx, rx) = may::sync::mpsc::channel::<u64>();
    let slots = Arc::new(may::sync::Semphore::new(capacity));
    let free = slots.clone();
    let producer = go!(move || {
        for i in 0..n {
            slots.wait();
            tx.send(i).expect("send");
        }
    });
    let consumer = go!(move || {
        let mut sum = 0u64;
        while let Ok(x) = rx.recv() {
            free.post();
            sum = sum.wrapping_add(x);
        }
        sum
    });
    producer.join().expect("producer");
    let sum = consumer.join().expect("consumer");
    report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
    assert_eq!(sum, n * (n - 1) / 2);
}

/// `n` coroutines each sleep once for `d`.
fn w4(n: u64, d: Duration) {
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| go!(move || may::coroutine::sleep(d)))
        .collect();
    for h in handles {
        h.join().expect("coroutine");
    }
    report_w4(start.elapsed(), d);
}

/// `n` coroutines each blocked in `recv` on a channel of its own: RSS
/// growth per coroutine, then the time to drop every sender and join every
/// coroutine.
fn w5(n: u64) {
    let before = rss_bytes();
    // Each coroutine reports on this channel that it started. (A `yield_now`
    // loop polling a counter, as on the other systems, never finished here:
    // 20 s of CPU with n = 1 000.)
    let (started_tx, started_rx) = may::sync::mpsc::channel::<()>();
    let mut senders = Vec::with_capacity(n as usize);
    let mut handles = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, rx) = may::sync::mpsc::channel::<u64>();
        let started = started_tx.clone();
        handles.push(go!(move || {
            started.send(()).expect("started");
            assert!(rx.recv().is_err(), "expected the channel closed");
        }));
        senders.push(tx);
    }
    for _ in 0..n {
        started_rx.recv().expect("started");
    }
    let suspended = rss_bytes();
    let start = Instant::now();
    drop(senders);
    for h in handles {
        h.join().expect("coroutine");
    }
    report_w5(before, suspended, start.elapsed(), n);
}
