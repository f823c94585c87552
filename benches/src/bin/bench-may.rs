//! may's side of the suite: stackful coroutines with one worker thread
//! (`may::config().set_workers(1)`), or as many as the workload's thread
//! count for the workloads on several cores (W10, W6m). See
//! `benches/README.md`.
//!
//! may has no bounded channel; W3 builds one from `may::sync::mpsc` and a
//! `may::sync::Semphore` holding the free slots (the usual construction).

use std::hint::black_box;
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuseau_bench::{
    announce_port, cpu_time, localhost, ns_per, report, report_w1, report_w4, report_w5,
    report_w6_server, rss_bytes, w10, w8, Args, EchoParams, W1_ROUNDS,
};
use may::coroutine::{yield_now, JoinHandle};
use may::go;
use may::net::{TcpListener, TcpStream};

fn main() {
    let args = Args::parse();
    // A panic in a coroutine (e.g. may failing to allocate a stack) leaves
    // the joining thread waiting forever: exit instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    // may's worker count is fixed once it has started: one process, one
    // count.
    let workers = match args.workload.as_str() {
        "W10" => args.param(2) as usize,
        "W6m" => args.param(3) as usize,
        _ => 1,
    };
    may::config().set_workers(workers);
    let main = go!(move || match args.workload.as_str() {
        "W1" => w1(args.param(0)),
        "W2" => w2(args.param(0)),
        "W3" => w3(args.param(0) as usize, args.param(1)),
        "W4" => w4(args.param(0), Duration::from_millis(args.param(1))),
        "W5" | "W5x" | "W5m" => w5(args.param(0)),
        "W6" | "W6m" => w6(EchoParams::of(&args)),
        "W8" => w8(args.param(0), args.param(1)),
        "W10" => w10(args.param(0), args.param(1), workers),
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

/// CPU-bound requests: `requests` coroutines each hashing the same `bytes`
/// bytes, on the process's `workers` workers, all joined. (No 1-worker
/// run: may's worker count cannot change in a process.)
fn w10(requests: u64, bytes: u64, workers: usize) {
    let data: Arc<[u8]> = w10::data(bytes).into();
    let start = Instant::now();
    let handles: Vec<_> = (0..requests)
        .map(|i| {
            let data = data.clone();
            go!(move || w10::request(i, &data))
        })
        .collect();
    let results: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().expect("coroutine"))
        .collect();
    let elapsed = start.elapsed();
    w10::check(&[&results], &data);
    w10::report_threads_only(workers, elapsed);
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

/// The echo server: a `may::net::TcpListener` accepting `p.connections`
/// connections, each served by a coroutine sending back whatever has
/// arrived, until every one has closed.
fn w6(p: EchoParams) {
    let cpu = cpu_time();
    let listener = TcpListener::bind(localhost(0)).expect("bind");
    announce_port(listener.local_addr().expect("local_addr"));
    let connections: Vec<_> = listener
        .incoming()
        .take(p.connections as usize)
        .map(|stream| {
            let stream = stream.expect("accept");
            go!(move || echo(stream))
        })
        .collect();
    let echoed: u64 = connections
        .into_iter()
        .map(|c| c.join().expect("connection"))
        .sum();
    report_w6_server(p, cpu_time() - cpu, echoed);
}

/// Sends back whatever arrives on `stream` until the peer closes; returns
/// how many bytes that was.
fn echo(mut stream: TcpStream) -> u64 {
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 8 * 1024];
    let mut echoed = 0;
    loop {
        let n = stream.read(&mut buf).expect("read");
        if n == 0 {
            return echoed;
        }
        stream.write_all(&buf[..n]).expect("write");
        echoed += n as u64;
    }
}

/// serde_json over TCP: may's sockets implement `std::io`, so serde_json
/// runs on them directly (buffered: it reads byte by byte and writes in
/// pieces), a coroutine per connection's side.
fn w8(connections: u64, messages: u64) {
    let listener = TcpListener::bind(localhost(0)).expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = go!(move || {
        let handlers: Vec<_> = listener
            .incoming()
            .take(connections as usize)
            .map(|stream| buffered(stream.expect("accept"), w8::serve))
            .collect();
        for h in handlers {
            h.join().expect("handler").expect("serve");
        }
    });
    let start = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|c| {
            let stream = TcpStream::connect(addr).expect("connect");
            buffered(stream, move |input, output| {
                w8::client(c, messages, input, output)
            })
        })
        .collect();
    let total = clients
        .into_iter()
        .map(|c| c.join().expect("client").expect("client"))
        .sum();
    w8::report(start.elapsed(), connections, messages, total);
    server.join().expect("server");
}

/// Runs `f` in a coroutine on `stream`, buffered both ways.
fn buffered<T: Send + 'static>(
    stream: TcpStream,
    f: impl FnOnce(BufReader<TcpStream>, BufWriter<TcpStream>) -> T + Send + 'static,
) -> JoinHandle<T> {
    stream.set_nodelay(true).expect("nodelay");
    let write = stream.try_clone().expect("try_clone");
    go!(move || f(BufReader::new(stream), BufWriter::new(write)))
}
