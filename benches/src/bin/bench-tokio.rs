//! Tokio's side of the suite: a current-thread runtime with a `LocalSet`
//! and `spawn_local` tasks, the fair single-thread peer of fuseau; for the
//! workloads on several cores (W10, W6m), Tokio's multi-thread runtime and
//! `tokio::spawn`. See `benches/README.md`.

use std::cell::Cell;
use std::hint::black_box;
use std::io::{BufReader, BufWriter};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuseau_bench::{
    announce_port, cpu_time, localhost, ns_per, report, report_w1, report_w4, report_w5,
    report_w6_server, report_w9, rss_bytes, w10, w8, Args, EchoParams, W1_ROUNDS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{Receiver, Sender};
use tokio::task::{spawn_blocking, spawn_local, yield_now, LocalSet};
use tokio_util::io::SyncIoBridge;

fn main() {
    let args = Args::parse();
    // On several threads: the multi-thread runtime.
    match args.workload.as_str() {
        "W10" => return w10(args.param(0), args.param(1), args.param(2) as usize),
        "W6m" | "W6a" => return w6m(EchoParams::of(&args), args.param(3) as usize),
        "W3s" => return w3s(args.param(0) as usize, args.param(1)),
        "W3a" => return w3a(args.param(0) as usize, args.param(1)),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    LocalSet::new().block_on(&runtime, async move {
        match args.workload.as_str() {
            "W1" => w1(args.param(0)).await,
            "W2" => w2(args.param(0)).await,
            "W3" => w3(args.param(0) as usize, args.param(1)).await,
            "W4" => w4(args.param(0), Duration::from_millis(args.param(1))).await,
            "W5" | "W5x" | "W5m" => w5(args.param(0)).await,
            "W6" => w6(EchoParams::of(&args)).await,
            "W7" => w7(args.param(0)).await,
            "W7o" => w7o(args.param(0)).await,
            "W8" => w8(args.param(0), args.param(1)).await,
            "W9" => w9(args.param(0), args.param(1), args.param(2) as usize).await,
            other => panic!("unknown workload {other}"),
        }
    });
}

/// Spawn `n` tasks, then join them all.
async fn w1(n: u64) {
    let mut rounds = Vec::new();
    for _ in 0..W1_ROUNDS {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n).map(|i| spawn_local(async move { i })).collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.expect("task");
        }
        rounds.push(start.elapsed());
        black_box(sum);
    }
    report_w1(&rounds, n);
}

/// Two tasks yield to each other, `n` yields in all.
async fn w2(n: u64) {
    let start = Instant::now();
    let task = move || async move {
        for _ in 0..n / 2 {
            yield_now().await;
        }
    };
    let a = spawn_local(task());
    let b = spawn_local(task());
    a.await.expect("a");
    b.await.expect("b");
    report(&[("ns_per_yield", ns_per(start.elapsed(), n / 2 * 2))]);
}

/// One producer, one consumer, `n` u64 through a bounded channel.
async fn w3(capacity: usize, n: u64) {
    let start = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let producer = spawn_local(produce(n, tx));
    let consumer = spawn_local(consume(rx));
    producer.await.expect("producer");
    let sum = consumer.await.expect("consumer");
    report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
    assert_eq!(sum, n * (n - 1) / 2);
}

/// W3's producer: sends `0..n`, then drops the sender (closing).
async fn produce(n: u64, tx: Sender<u64>) {
    for i in 0..n {
        tx.send(i).await.expect("send");
    }
}

/// W3's consumer: the sum of what it receives until the channel is closed.
async fn consume(mut rx: Receiver<u64>) -> u64 {
    let mut sum = 0u64;
    while let Some(x) = rx.recv().await {
        sum = sum.wrapping_add(x);
    }
    sum
}

/// W3s: a producer task and a consumer task on a multi-thread runtime of 2
/// workers (`tokio::spawn`), `n` u64 through `tokio::sync::mpsc`. Tokio
/// decides where each task runs, and moves them: a task woken by a worker
/// goes to that worker's LIFO slot, so after the first wake-up both run on
/// one worker (measured: the consumer ran on the producer's thread for all
/// of 1 000 000 messages) and the workload is a one-thread channel.
fn w3s(capacity: usize, n: u64) {
    let runtime = multi_thread(2);
    runtime.block_on(async {
        let start = Instant::now();
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        let producer = tokio::spawn(produce(n, tx));
        let consumer = tokio::spawn(consume(rx));
        producer.await.expect("producer");
        let sum = consumer.await.expect("consumer");
        report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
        assert_eq!(sum, n * (n - 1) / 2);
    });
}

/// W3a: a producer task and a consumer task kept on two threads, each
/// thread a current-thread runtime, `n` u64 through `tokio::sync::mpsc`.
fn w3a(capacity: usize, n: u64) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (producer_rt, consumer_rt) = (current_thread(), current_thread());
    let start = Instant::now();
    let producer = std::thread::spawn(move || producer_rt.block_on(produce(n, tx)));
    let consumer = std::thread::spawn(move || consumer_rt.block_on(consume(rx)));
    producer.join().expect("producer");
    let sum = consumer.join().expect("consumer");
    report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
    assert_eq!(sum, n * (n - 1) / 2);
}

/// `n` tasks each sleep once for `d`.
async fn w4(n: u64, d: Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..n).map(|_| spawn_local(tokio::time::sleep(d))).collect();
    for t in tasks {
        t.await.expect("task");
    }
    report_w4(start.elapsed(), d);
}

/// `n` tasks each blocked in `recv` on a channel of its own: RSS growth per
/// task, then the time to drop every sender and await every task.
async fn w5(n: u64) {
    let before = rss_bytes();
    let started = Rc::new(Cell::new(0u64));
    let mut senders = Vec::with_capacity(n as usize);
    let mut tasks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1);
        let started = started.clone();
        tasks.push(spawn_local(async move {
            started.set(started.get() + 1);
            assert!(rx.recv().await.is_none(), "expected the channel closed");
        }));
        senders.push(tx);
    }
    while started.get() < n {
        yield_now().await;
    }
    let suspended = rss_bytes();
    let start = Instant::now();
    drop(senders);
    for t in tasks {
        t.await.expect("task");
    }
    report_w5(before, suspended, start.elapsed(), n);
}

/// The echo server: a `TcpListener` accepting `p.connections`
/// connections, each served by a task sending back whatever has arrived,
/// until every one has closed.
async fn w6(p: EchoParams) {
    serve_echo(p, |stream| spawn_local(echo(stream))).await;
}

/// The echo server on a multi-thread runtime of `workers` workers: as W6,
/// the listener in the `block_on` future (as `#[tokio::main]` runs it),
/// each connection a `tokio::spawn`ed task.
fn w6m(p: EchoParams, workers: usize) {
    multi_thread(workers).block_on(serve_echo(p, |stream| tokio::spawn(echo(stream))));
}

/// W6's server: accepts `p.connections` connections, each served by a task
/// that `spawn` starts, and reports once every one has closed.
async fn serve_echo(p: EchoParams, spawn: impl Fn(TcpStream) -> tokio::task::JoinHandle<u64>) {
    let cpu = cpu_time();
    let listener = TcpListener::bind(localhost(0)).await.expect("bind");
    announce_port(listener.local_addr().expect("local_addr"));
    let mut connections = Vec::new();
    for _ in 0..p.connections {
        let (stream, _) = listener.accept().await.expect("accept");
        connections.push(spawn(stream));
    }
    let mut echoed = 0;
    for c in connections {
        echoed += c.await.expect("connection");
    }
    report_w6_server(p, cpu_time() - cpu, echoed);
}

/// Sends back whatever arrives on `stream` until the peer closes; returns
/// how many bytes that was.
async fn echo(mut stream: TcpStream) -> u64 {
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 8 * 1024];
    let mut echoed = 0;
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            return echoed;
        }
        stream.write_all(&buf[..n]).await.expect("write");
        echoed += n as u64;
    }
}

/// Tokio's multi-thread runtime with `workers` worker threads.
fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// CPU-bound requests: `requests` tasks each hashing the same `bytes`
/// bytes, spawned on a multi-thread runtime of 1 worker, then of
/// `workers`, and all awaited.
fn w10(requests: u64, bytes: u64, workers: usize) {
    let data: Arc<[u8]> = w10::data(bytes).into();
    let (one, one_time) = w10_on(1, requests, &data);
    let (many, many_time) = w10_on(workers, requests, &data);
    w10::check(&[&one, &many], &data);
    w10::report_times(workers, one_time, many_time);
}

/// W10 on a multi-thread runtime of `workers` workers: every request
/// spawned (`tokio::spawn` from the `block_on` future), then every task
/// awaited in order; the results and the time it took (the runtime's
/// start-up and shutdown excluded).
fn w10_on(workers: usize, requests: u64, data: &Arc<[u8]>) -> (Vec<u64>, Duration) {
    let runtime = multi_thread(workers);
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..requests)
            .map(|i| {
                let data = data.clone();
                tokio::spawn(async move { w10::request(i, &data) })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for t in tasks {
            results.push(t.await.expect("task"));
        }
        (results, start.elapsed())
    })
}

/// serde_json over TCP, the Tokio way to run a synchronous crate on async
/// sockets: every connection's side (server and client) runs in
/// `spawn_blocking` on a `SyncIoBridge` of the socket's halves (buffered:
/// serde_json reads byte by byte and writes in pieces).
async fn w8(connections: u64, messages: u64) {
    let listener = TcpListener::bind(localhost(0)).await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let server = spawn_local(async move {
        let mut handlers = Vec::new();
        for _ in 0..connections {
            let (stream, _) = listener.accept().await.expect("accept");
            handlers.push(blocking(stream, w8::serve));
        }
        for h in handlers {
            h.await.expect("handler").expect("serve");
        }
    });
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..connections {
        let stream = TcpStream::connect(addr).await.expect("connect");
        clients.push(blocking(stream, move |input, output| {
            w8::client(c, messages, input, output)
        }));
    }
    let mut total = 0;
    for c in clients {
        total += c.await.expect("client").expect("client");
    }
    w8::report(start.elapsed(), connections, messages, total);
    server.await.expect("server");
}

/// Runs `f` on `stream`'s halves, as buffered `std::io` streams through
/// `SyncIoBridge`, in `spawn_blocking`.
fn blocking<T: Send + 'static>(
    stream: TcpStream,
    f: impl FnOnce(BufReader<SyncIoBridge<OwnedReadHalf>>, BufWriter<SyncIoBridge<OwnedWriteHalf>>) -> T
        + Send
        + 'static,
) -> tokio::task::JoinHandle<T> {
    stream.set_nodelay(true).expect("nodelay");
    let (read, write) = stream.into_split();
    let (read, write) = (SyncIoBridge::new(read), SyncIoBridge::new(write));
    spawn_blocking(move || f(BufReader::new(read), BufWriter::new(write)))
}

/// A task awaits `tokio::task::yield_now()` `n` times.
async fn w7(n: u64) {
    let task = spawn_local(async move {
        let start = Instant::now();
        for _ in 0..n {
            yield_now().await;
        }
        start.elapsed()
    });
    let elapsed = task.await.expect("task");
    report(&[("ns_per_await", ns_per(elapsed, n))]);
}

/// A task sends a oneshot sender to another task, which completes it; the
/// first awaits the oneshot, `n` times.
async fn w7o(n: u64) {
    let (req_tx, mut req_rx) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<u64>>();
    let server = spawn_local(async move {
        let mut i = 0;
        while let Some(reply) = req_rx.recv().await {
            let _ = reply.send(i);
            i += 1;
        }
    });
    let client = spawn_local(async move {
        let start = Instant::now();
        let mut sum = 0u64;
        for _ in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel();
            req_tx.send(tx).expect("server gone");
            sum += rx.await.expect("no reply");
        }
        black_box(sum);
        start.elapsed()
    });
    let elapsed = client.await.expect("client");
    server.await.expect("server");
    report(&[("ns_per_await", ns_per(elapsed, n))]);
}

/// Sends `v` on whichever of two channels takes it first, trying `x` first
/// (`biased`, as fuseau's `select` polls its branches in order). A losing
/// `send` sends nothing.
async fn send_either(x: &Sender<u64>, y: &Sender<u64>, v: u64) {
    tokio::select! {
        biased;
        r = x.send(v) => r.expect("send"),
        r = y.send(v) => r.expect("send"),
    }
}

/// Receives from whichever of two channels has a value first, trying `a`
/// first. A losing `recv` takes nothing.
async fn recv_either(a: &mut Receiver<u64>, b: &mut Receiver<u64>) -> u64 {
    tokio::select! {
        biased;
        Some(v) = a.recv() => v,
        Some(v) = b.recv() => v,
        else => panic!("both inputs closed"),
    }
}

/// The channel chain (see `bench-fuseau`'s `w9`): the same topology with
/// `spawn_local` tasks and `tokio::sync::mpsc` bounded channels.
async fn w9(stages: u64, values: u64, capacity: usize) {
    let start = Instant::now();
    let (first_a, mut rx_a) = tokio::sync::mpsc::channel::<u64>(capacity);
    let (first_b, mut rx_b) = tokio::sync::mpsc::channel::<u64>(capacity);
    let mut tasks = Vec::new();
    for _ in 0..stages {
        let (oa, next_a) = tokio::sync::mpsc::channel::<u64>(capacity);
        let (ob, next_b) = tokio::sync::mpsc::channel::<u64>(capacity);
        let (mut ia, mut ib) = (rx_a, rx_b);
        tasks.push(spawn_local(async move {
            for _ in 0..values {
                let v = recv_either(&mut ia, &mut ib).await;
                if v % 2 == 0 {
                    send_either(&oa, &ob, v + 1).await;
                } else {
                    send_either(&ob, &oa, v + 1).await;
                }
            }
        }));
        (rx_a, rx_b) = (next_a, next_b);
    }
    let source = spawn_local(async move {
        for v in 0..values {
            if v % 2 == 0 {
                send_either(&first_a, &first_b, v).await;
            } else {
                send_either(&first_b, &first_a, v).await;
            }
        }
    });
    let mut total = 0u64;
    for _ in 0..values {
        total += recv_either(&mut rx_a, &mut rx_b).await;
    }
    let elapsed = start.elapsed();
    source.await.expect("source");
    for t in tasks {
        t.await.expect("stage");
    }
    report_w9(elapsed, stages, values, total);
}
