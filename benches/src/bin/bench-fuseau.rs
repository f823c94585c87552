//! fuseau's side of the suite: fibers on `fuseau_tokio::main` (a
//! current-thread Tokio runtime with a `LocalSet`), and, for the workloads
//! on several cores (W10, W6m), on a `fuseau_tokio::Runtime` (one such
//! scheduler per thread) driven from the plain main thread. See
//! `benches/README.md`.

use std::cell::Cell;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuseau_bench::{
    announce_port, cpu_time, localhost, ns_per, report, report_w1, report_w4, report_w5,
    report_w6_server, report_w9, rss_bytes, w10, w6_server_metrics, w8, Args, EchoParams,
    W1_ROUNDS,
};
use fuseau_tokio::iostream::{In, Out};
use fuseau_tokio::net::{TcpListener, TcpServer, TcpStream};
use fuseau_tokio::{
    await_future, spawn, yield_now, Chan, Error, ErrorKind, Result, Runtime, SharedChan,
};

fn main() -> Result<()> {
    let args = Args::parse();
    // On several threads: a `Runtime`, from the plain main thread.
    match args.workload.as_str() {
        "W10" => return w10(args.param(0), args.param(1), args.param(2) as usize),
        "W6m" => return w6m(EchoParams::of(&args), args.param(3) as usize),
        "W6a" => return w6a(EchoParams::of(&args), args.param(3) as usize),
        "W3s" | "W3a" => return w3s(args.param(0) as usize, args.param(1)),
        _ => {}
    }
    fuseau_tokio::main(move || match args.workload.as_str() {
        "W1" => w1(args.param(0)),
        "W2" => w2(args.param(0)),
        "W3" => w3(args.param(0) as usize, args.param(1)),
        "W4" => w4(args.param(0), Duration::from_millis(args.param(1))),
        "W5" | "W5x" | "W5m" => w5(args.param(0)),
        "W6" => w6(EchoParams::of(&args)),
        "W7" => w7(args.param(0)),
        "W7o" => w7o(args.param(0)),
        "W8" => w8(args.param(0), args.param(1)),
        "W9" => w9(args.param(0), args.param(1), args.param(2) as usize),
        other => Err(Error::from(format!("unknown workload {other}"))),
    })
}

/// Spawn `n` fibers, then join them all.
fn w1(n: u64) -> Result<()> {
    let mut rounds = Vec::new();
    for _ in 0..W1_ROUNDS {
        let start = Instant::now();
        let fibers: Vec<_> = (0..n).map(|i| spawn(move || Ok(i))).collect();
        let mut sum = 0;
        for f in fibers {
            sum += f.join()?;
        }
        rounds.push(start.elapsed());
        black_box(sum);
    }
    report_w1(&rounds, n);
    Ok(())
}

/// Two fibers yield to each other, `n` yields in all.
fn w2(n: u64) -> Result<()> {
    let start = Instant::now();
    let a = spawn(move || (0..n / 2).try_for_each(|_| yield_now()));
    let b = spawn(move || (0..n / 2).try_for_each(|_| yield_now()));
    a.join()?;
    b.join()?;
    let elapsed = start.elapsed();
    report(&[
        ("ns_per_yield", ns_per(elapsed, n / 2 * 2)),
        ("switch_floor_ns_per_yield", switch_floor(n)),
    ]);
    Ok(())
}

/// The floor under W2 for any runtime on corosensei: two bare coroutines
/// resumed alternately from a loop, `n` suspensions in all, with no
/// scheduler. What fuseau's `yield_now` costs above it is bookkeeping (run
/// queue, cancellation checks, the current fiber, the coop budget).
fn switch_floor(n: u64) -> f64 {
    use corosensei::{Coroutine, CoroutineResult};
    let yielder = move |y: &corosensei::Yielder<(), ()>, ()| {
        for _ in 0..n / 2 {
            y.suspend(());
        }
    };
    let mut a = Coroutine::new(yielder);
    let mut b = Coroutine::new(yielder);
    let start = Instant::now();
    loop {
        let a_done = matches!(a.resume(()), CoroutineResult::Return(()));
        let b_done = matches!(b.resume(()), CoroutineResult::Return(()));
        if a_done && b_done {
            break;
        }
    }
    // The two final resumes (that return) are not suspensions.
    ns_per(start.elapsed(), n / 2 * 2)
}

/// One producer, one consumer, `n` u64 through a bounded channel.
fn w3(capacity: usize, n: u64) -> Result<()> {
    let start = Instant::now();
    let chan = Chan::bounded(capacity);
    let tx = chan.clone();
    let producer = spawn(move || produce(n, |i| tx.send(i), || tx.close()));
    let consumer = spawn(move || consume(|| chan.recv()));
    producer.join()?;
    let sum = consumer.join()?;
    report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
    assert_eq!(sum, n * (n - 1) / 2);
    Ok(())
}

/// W3's producer: sends `0..n`, then closes the channel.
fn produce(n: u64, send: impl Fn(u64) -> Result<()>, close: impl FnOnce()) -> Result<()> {
    for i in 0..n {
        send(i)?;
    }
    close();
    Ok(())
}

/// W3's consumer: the sum of what it receives until the channel is closed.
fn consume(recv: impl Fn() -> Result<u64>) -> Result<u64> {
    let mut sum = 0u64;
    loop {
        match recv() {
            Ok(x) => sum = sum.wrapping_add(x),
            Err(e) if e.kind() == ErrorKind::Closed => return Ok(sum),
            Err(e) => return Err(e),
        }
    }
}

/// W3 across threads (W3s, W3a): a producer fiber on thread 0 of a
/// 2-thread `Runtime` and a consumer fiber on thread 1, `n` u64 through a
/// `SharedChan`.
fn w3s(capacity: usize, n: u64) -> Result<()> {
    let runtime = Runtime::new(2)?;
    let start = Instant::now();
    let chan = SharedChan::bounded(capacity);
    let tx = chan.clone();
    let producer = runtime.spawn_on(0, move || produce(n, |i| tx.send(i), || tx.close()));
    let consumer = runtime.spawn_on(1, move || consume(|| chan.recv()));
    producer.join()?;
    let sum = consumer.join()?;
    report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
    assert_eq!(sum, n * (n - 1) / 2);
    runtime.shutdown();
    Ok(())
}

/// `n` fibers each sleep once for `d`.
fn w4(n: u64, d: Duration) -> Result<()> {
    let start = Instant::now();
    let fibers: Vec<_> = (0..n)
        .map(|_| spawn(move || fuseau_tokio::sleep(d)))
        .collect();
    for f in fibers {
        f.join()?;
    }
    report_w4(start.elapsed(), d);
    Ok(())
}

/// `n` fibers each blocked in `recv` on a channel of its own: RSS growth
/// per fiber, then the time to close every channel and join every fiber.
fn w5(n: u64) -> Result<()> {
    let before = rss_bytes();
    let started = Rc::new(Cell::new(0u64));
    let mut chans = Vec::with_capacity(n as usize);
    let mut fibers = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let chan = Chan::<u64>::new();
        let (c, started) = (chan.clone(), started.clone());
        fibers.push(spawn(move || {
            started.set(started.get() + 1);
            match c.recv() {
                Err(e) if e.kind() == ErrorKind::Closed => Ok(()),
                other => Err(Error::from(format!("expected Closed, got {other:?}"))),
            }
        }));
        chans.push(chan);
    }
    while started.get() < n {
        yield_now()?;
    }
    let suspended = rss_bytes();
    let start = Instant::now();
    for c in &chans {
        c.close();
    }
    for f in fibers {
        f.join()?;
    }
    drop(chans);
    report_w5(before, suspended, start.elapsed(), n);
    Ok(())
}

/// The echo server: a `TcpServer`, each connection a fiber sending back
/// whatever has arrived, until `p.connections` connections have closed.
fn w6(p: EchoParams) -> Result<()> {
    let cpu = cpu_time();
    let listener = TcpListener::bind(localhost(0))?;
    announce_port(listener.local_addr()?);
    let mut connections = Vec::new();
    for _ in 0..p.connections {
        let (stream, _) = listener.accept()?;
        connections.push(spawn(move || echo_stream(&stream)));
    }
    let mut echoed = 0;
    for c in connections {
        echoed += c.join()?;
    }
    report_w6_server(p, cpu_time() - cpu, echoed);
    Ok(())
}

/// Sends back whatever arrives on `stream` until the peer closes; returns
/// how many bytes that was. The same loop as Tokio's W6 server (an 8 KiB
/// buffer, `read` then `write_all`), on the std-shaped `TcpStream`.
fn echo_stream(mut stream: &TcpStream) -> Result<u64> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 8 * 1024];
    let mut echoed = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(echoed);
        }
        stream.write_all(&buf[..n])?;
        echoed += n as u64;
    }
}

/// CPU-bound requests: `requests` fibers each hashing the same `bytes`
/// bytes, spawned on a 1-thread `Runtime`, then on a `threads`-thread one,
/// and all joined.
fn w10(requests: u64, bytes: u64, threads: usize) -> Result<()> {
    let data: Arc<[u8]> = w10::data(bytes).into();
    let (one, one_time) = w10_on(1, requests, &data)?;
    let (many, many_time) = w10_on(threads, requests, &data)?;
    w10::check(&[&one, &many], &data);
    w10::report_times(threads, one_time, many_time);
    Ok(())
}

/// W10 on a `Runtime` of `threads` threads: every request spawned (placed
/// on the least-loaded thread), then every fiber joined from this plain
/// thread; the results in request order and the time it took (the
/// runtime's start-up and shutdown excluded).
fn w10_on(threads: usize, requests: u64, data: &Arc<[u8]>) -> Result<(Vec<u64>, Duration)> {
    let runtime = Runtime::new(threads)?;
    let start = Instant::now();
    let fibers: Vec<_> = (0..requests)
        .map(|i| {
            let data = data.clone();
            runtime.spawn(move || Ok(w10::request(i, &data)))
        })
        .collect();
    let results = fibers
        .into_iter()
        .map(|f| f.join())
        .collect::<Result<Vec<_>>>()?;
    let elapsed = start.elapsed();
    runtime.shutdown();
    Ok((results, elapsed))
}

/// Sends back whatever arrives on `input` until the peer closes; returns
/// how many bytes that was.
fn echo(input: &mut In, output: &mut Out) -> Result<u64> {
    let mut echoed = 0;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(echoed);
        }
        let n = chunk.len();
        output.write_all(chunk)?;
        output.flush()?;
        input.consume(n);
        echoed += n as u64;
    }
}

/// The echo server on a `Runtime` of `threads` threads: a
/// `RuntimeTcpServer` (a listener per thread, `SO_REUSEPORT`), each
/// connection a fiber on the thread that accepted it, as in W6; this plain
/// thread waits until `p.connections` connections have closed. Besides
/// W6's figures, it reports how many connections the busiest thread served
/// (the kernel spreads them among the listeners; `connections / threads`
/// is an even spread).
fn w6m(p: EchoParams, threads: usize) -> Result<()> {
    let runtime = Runtime::new(threads)?;
    // Each closed connection: the thread that served it, the bytes echoed.
    let (done, closed) = std::sync::mpsc::channel::<(usize, u64)>();
    let cpu = cpu_time();
    let server = TcpServer::establish_on(
        &runtime.handle(),
        localhost(0),
        move |_peer, mut input, mut output| {
            let echoed = echo(&mut input, &mut output)?;
            let thread = Runtime::current_thread().expect("a runtime thread");
            done.send((thread, echoed))
                .map_err(|_| Error::from("W6m: the main thread is gone"))
        },
    )?;
    announce_port(server.local_addr());
    let (echoed, busiest) = tally(&closed, p.connections, threads)?;
    let cpu = cpu_time() - cpu;
    server.shutdown()?;
    runtime.shutdown();
    report_w6m(p, cpu, echoed, busiest);
    Ok(())
}

/// Waits until `connections` connections have closed, each reported on
/// `closed` with the thread that served it and the bytes it echoed; the
/// bytes in all, and how many connections the busiest thread served.
fn tally(
    closed: &std::sync::mpsc::Receiver<(usize, u64)>,
    connections: u64,
    threads: usize,
) -> Result<(u64, u64)> {
    let mut echoed = 0;
    let mut per_thread = vec![0u64; threads];
    for _ in 0..connections {
        let (thread, bytes) = closed
            .recv()
            .map_err(|_| Error::from("every connection handler is gone"))?;
        echoed += bytes;
        per_thread[thread] += 1;
    }
    Ok((echoed, per_thread.into_iter().max().unwrap_or(0)))
}

/// W6's server figures, and how many connections the busiest thread served.
fn report_w6m(p: EchoParams, cpu: Duration, echoed: u64, busiest: u64) {
    let mut metrics = w6_server_metrics(p, cpu, echoed);
    metrics.push(("busiest_thread_conns", busiest as f64));
    report(&metrics);
}

/// W6m's other design for a server on every thread (issue 11: measure
/// both): one acceptor fiber on thread 0 that hands each accepted socket
/// (`into_std`) to the least-loaded thread (`RuntimeHandle::spawn`), where a
/// fiber registers it with that thread's reactor (`from_std`) and echoes.
fn w6a(p: EchoParams, threads: usize) -> Result<()> {
    let runtime = Runtime::new(threads)?;
    let handle = runtime.handle();
    let (done, closed) = std::sync::mpsc::channel::<(usize, u64)>();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let cpu = cpu_time();
    let acceptor = runtime.spawn_on(0, move || -> Result<()> {
        let listener = await_future(tokio::net::TcpListener::bind(localhost(0)))??;
        port_tx
            .send(listener.local_addr()?)
            .map_err(|_| Error::from("W6a: the main thread is gone"))?;
        loop {
            let (stream, _peer) = await_future(listener.accept())??;
            stream.set_nodelay(true)?;
            let stream = stream.into_std()?;
            let done = done.clone();
            drop(handle.spawn(move || {
                let stream = tokio::net::TcpStream::from_std(stream)?;
                let (mut input, mut output) = fuseau_tokio::iostream::tcp(stream);
                let echoed = echo(&mut input, &mut output)?;
                let thread = Runtime::current_thread().expect("a runtime thread");
                done.send((thread, echoed))
                    .map_err(|_| Error::from("W6a: the main thread is gone"))
            }));
        }
    });
    let addr = port_rx
        .recv()
        .map_err(|_| Error::from("W6a: the acceptor failed"))?;
    announce_port(addr);
    let (echoed, busiest) = tally(&closed, p.connections, threads)?;
    let cpu = cpu_time() - cpu;
    acceptor.cancel();
    runtime.shutdown();
    report_w6m(p, cpu, echoed, busiest);
    Ok(())
}

/// serde_json over TCP: a `TcpServer` answering in a fiber per connection,
/// and `connections` client fibers, all on fuseau's `std::io` streams.
fn w8(connections: u64, messages: u64) -> Result<()> {
    let listener = TcpListener::bind(localhost(0))?;
    let addr = listener.local_addr()?;
    let server = spawn(move || {
        let handlers: Vec<_> = (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept()?;
                Ok(spawn(move || {
                    Ok(w8::serve(BufReader::new(&stream), BufWriter::new(&stream))?)
                }))
            })
            .collect::<Result<_>>()?;
        handlers.into_iter().try_for_each(|h| h.join())
    });
    let start = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|c| {
            spawn(move || {
                let stream = TcpStream::connect(addr)?;
                Ok(w8::client(
                    c,
                    messages,
                    BufReader::new(&stream),
                    BufWriter::new(&stream),
                )?)
            })
        })
        .collect();
    let mut total = 0;
    for c in clients {
        total += c.join()?;
    }
    w8::report(start.elapsed(), connections, messages, total);
    server.join()
}

/// A fiber awaits `tokio::task::yield_now()` `n` times: a Tokio future that
/// is pending once and completes after one wake.
fn w7(n: u64) -> Result<()> {
    let start = Instant::now();
    for _ in 0..n {
        await_future(tokio::task::yield_now())?;
    }
    report(&[("ns_per_await", ns_per(start.elapsed(), n))]);
    Ok(())
}

/// A fiber sends a oneshot sender to a Tokio task, which completes it;
/// the fiber awaits the oneshot, `n` times.
fn w7o(n: u64) -> Result<()> {
    let (req_tx, mut req_rx) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<u64>>();
    let server = tokio::task::spawn_local(async move {
        let mut i = 0;
        while let Some(reply) = req_rx.recv().await {
            let _ = reply.send(i);
            i += 1;
        }
    });
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        let (tx, rx) = tokio::sync::oneshot::channel();
        req_tx.send(tx).map_err(|_| Error::from("server gone"))?;
        sum += await_future(rx)?.map_err(|_| Error::from("no reply"))?;
    }
    let elapsed = start.elapsed();
    drop(req_tx);
    await_future(server)?.map_err(|_| Error::from("server panicked"))?;
    black_box(sum);
    report(&[("ns_per_await", ns_per(elapsed, n))]);
    Ok(())
}

/// Sends `v` on whichever of two channels takes it first, trying `x` first
/// (`select!`: biased, no allocation; the losing send sends nothing).
fn send_either(x: &Chan<u64>, y: &Chan<u64>, v: u64) -> Result<()> {
    fuseau_tokio::select! {
        send(x, v) -> sent => sent,
        send(y, v) -> sent => sent,
    }
}

/// Receives from whichever of two channels has a value first, trying `a`
/// first (`select!`: biased, no allocation; the losing receive takes
/// nothing).
fn recv_either(a: &Chan<u64>, b: &Chan<u64>) -> Result<u64> {
    fuseau_tokio::select! {
        recv(a) -> v => v,
        recv(b) -> v => v,
    }
}

/// The channel chain: `stages` fibers, stage `s` reading from either of its
/// two input channels and writing `v + 1` to either of its two outputs
/// (the first tried is chosen by the parity of `v`); a source sends
/// `0..values` into the first pair, a sink sums what leaves the last pair.
fn w9(stages: u64, values: u64, capacity: usize) -> Result<()> {
    let start = Instant::now();
    let pair = || {
        (
            Chan::<u64>::bounded(capacity),
            Chan::<u64>::bounded(capacity),
        )
    };
    let first = pair();
    let mut inputs = first.clone();
    let mut fibers = Vec::new();
    for _ in 0..stages {
        let outputs = pair();
        let ((ia, ib), (oa, ob)) = (inputs, outputs.clone());
        fibers.push(spawn(move || {
            for _ in 0..values {
                let v = recv_either(&ia, &ib)?;
                if v % 2 == 0 {
                    send_either(&oa, &ob, v + 1)?;
                } else {
                    send_either(&ob, &oa, v + 1)?;
                }
            }
            Ok(())
        }));
        inputs = outputs;
    }
    let source = spawn(move || {
        let (a, b) = first;
        (0..values).try_for_each(|v| {
            if v % 2 == 0 {
                send_either(&a, &b, v)
            } else {
                send_either(&b, &a, v)
            }
        })
    });
    let (a, b) = inputs;
    let mut total = 0u64;
    for _ in 0..values {
        total += recv_either(&a, &b)?;
    }
    let elapsed = start.elapsed();
    source.join()?;
    for f in fibers {
        f.join()?;
    }
    report_w9(elapsed, stages, values, total);
    Ok(())
}
