//! `TcpServer::establish_on`: a server on every thread of a `Runtime`.
//! Clients are plain threads with `std::net`, bounded by socket timeouts.

use std::io::{BufRead, BufReader, ErrorKind as IoKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuseau_tokio::net::{ServerBuilder, TcpServer};
use fuseau_tokio::{ErrorKind, Runtime};

const PATIENCE: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Counts drops: how a test sees that a connection's fiber was unwound.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An upper-casing line server that records which thread served each
/// connection.
fn upper_server(
    runtime: &Runtime,
    served_on: Arc<Mutex<Vec<usize>>>,
) -> fuseau_tokio::net::RuntimeTcpServer {
    TcpServer::establish_on(
        &runtime.handle(),
        localhost(),
        move |_peer, input, mut output| {
            served_on
                .lock()
                .unwrap()
                .push(Runtime::current_thread().expect("on a runtime thread"));
            for line in input.lines() {
                writeln!(output, "{}", line?.to_uppercase())?;
                output.flush()?;
            }
            output.close()
        },
    )
    .unwrap()
}

/// Forty clients on plain threads, each three lines and their answers
/// (`reply` of the line) on a connection of its own.
fn forty_clients(addr: SocketAddr, reply: fn(&str) -> String) {
    let clients: Vec<_> = (0..40)
        .map(|c| {
            std::thread::spawn(move || {
                let stream = connect(addr);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                for i in 0..3 {
                    let sent = format!("client {c} line {i}");
                    writeln!(writer, "{sent}").unwrap();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    assert_eq!(line, reply(&sent) + "\n");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

/// Forty connections were served, some on each of the two threads.
fn assert_both_threads_served(served_on: &Mutex<Vec<usize>>) {
    let served_on = served_on.lock().unwrap();
    assert_eq!(served_on.len(), 40);
    assert!(
        served_on.contains(&0) && served_on.contains(&1),
        "{served_on:?}"
    );
}

/// Forty connections, each a few round trips: every answer right, and both
/// threads served some (the kernel hashes connections over the two
/// `SO_REUSEPORT` listeners; all forty on one has odds of 2 in 2^40).
#[test]
fn connections_are_served_on_every_thread() {
    let runtime = Runtime::new(2).unwrap();
    let served_on = Arc::new(Mutex::new(Vec::new()));
    let server = upper_server(&runtime, served_on.clone());
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    forty_clients(addr, str::to_uppercase);
    server.shutdown().unwrap();
    assert_both_threads_served(&served_on);
}

/// `shutdown` stops every listener and cancels every live connection: the
/// connections' fibers are unwound (guards dropped), their sockets closed
/// (clients read end of file), and nothing listens any more.
#[test]
fn shutdown_cancels_the_connections_of_every_thread() {
    let runtime = Runtime::new(2).unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let server = {
        let (dropped, started) = (dropped.clone(), started.clone());
        TcpServer::establish_on(
            &runtime.handle(),
            localhost(),
            move |_peer, mut input, _output| {
                let _guard = Guard(dropped.clone());
                started.fetch_add(1, Ordering::SeqCst);
                // Waits for a byte that never comes: only the shutdown ends it.
                let mut byte = [0u8];
                input.read_exact(&mut byte)?;
                Ok(())
            },
        )
        .unwrap()
    };
    let addr = server.local_addr();
    let mut clients: Vec<_> = (0..10).map(|_| connect(addr)).collect();
    let start = Instant::now();
    while started.load(Ordering::SeqCst) < 10 {
        assert!(start.elapsed() < PATIENCE, "connections not served");
        std::thread::sleep(Duration::from_millis(1));
    }
    server.shutdown().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
    for client in &mut clients {
        let mut rest = Vec::new();
        // End of file, or a reset: either way, closed.
        match client.read_to_end(&mut rest) {
            Ok(0) => {}
            Err(e) if e.kind() == IoKind::ConnectionReset => {}
            other => panic!("expected a closed connection, got {other:?}"),
        }
    }
    let refused = TcpStream::connect_timeout(&addr, PATIENCE).unwrap_err();
    assert_eq!(refused.kind(), IoKind::ConnectionRefused);
}

/// An address in use (by a listener without `SO_REUSEPORT`) fails the
/// whole server, with the error std would give.
#[test]
fn an_address_in_use_is_an_error() {
    let runtime = Runtime::new(2).unwrap();
    let taken = TcpListener::bind(localhost()).unwrap();
    let e = TcpServer::establish_on(&runtime.handle(), taken.local_addr().unwrap(), |_, _, _| {
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), IoKind::AddrInUse);
    // The runtime is fine: nothing was left half-started.
    assert_eq!(runtime.block_on(|| Ok(1)).unwrap(), 1);
}

/// Established from a fiber of the runtime itself (the fiber suspends
/// while the threads bind), with a builder's options; a failing handler is
/// reported to `on_error` on its thread, and the server goes on.
#[test]
fn established_from_a_fiber_with_a_builder() {
    let runtime = Runtime::new(2).unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let handle = runtime.handle();
    let server = {
        let reports = reports.clone();
        runtime
            .block_on(move || {
                ServerBuilder::new()
                    .backlog(16)
                    .on_error(move |_peer, e| reports.lock().unwrap().push(e.message().to_owned()))
                    .establish_tcp_on(&handle, localhost(), |_peer, input, mut output| {
                        let mut line = String::new();
                        BufReader::new(input).read_line(&mut line)?;
                        if line.starts_with("fail") {
                            return Err(fuseau_tokio::Error::new(
                                ErrorKind::Other,
                                "asked to fail",
                            ));
                        }
                        output.write_all(line.as_bytes())?;
                        output.close()
                    })
            })
            .unwrap()
    };
    let addr = server.local_addr();
    let mut failing = connect(addr);
    failing.write_all(b"fail\n").unwrap();
    let mut rest = Vec::new();
    let _ = failing.read_to_end(&mut rest);
    let mut ok = connect(addr);
    ok.write_all(b"echo\n").unwrap();
    let mut line = String::new();
    BufReader::new(ok).read_line(&mut line).unwrap();
    assert_eq!(line, "echo\n");
    server.shutdown().unwrap();
    assert_eq!(*reports.lock().unwrap(), ["asked to fail"]);
}

/// Dropping the server stops it too; so does shutting the runtime down.
#[test]
fn dropping_the_server_or_the_runtime_stops_it() {
    let runtime = Runtime::new(2).unwrap();
    let server = upper_server(&runtime, Arc::default());
    let addr = server.local_addr();
    drop(server);
    let start = Instant::now();
    // The listeners close once the cancellation reached each thread.
    while TcpStream::connect_timeout(&addr, PATIENCE).is_ok() {
        assert!(start.elapsed() < PATIENCE, "still listening");
        std::thread::sleep(Duration::from_millis(1));
    }
    let server = upper_server(&runtime, Arc::default());
    let addr = server.local_addr();
    runtime.shutdown();
    let refused = TcpStream::connect_timeout(&addr, PATIENCE).unwrap_err();
    assert_eq!(refused.kind(), IoKind::ConnectionRefused);
    // Its hosts were cancelled with the runtime: shutting it down now is
    // no error.
    server.shutdown().unwrap();
}

/// A std-shaped line-echo server on `thread`: a listener from
/// `ServerBuilder::bind_tcp` (with `SO_REUSEPORT`), a fiber per connection
/// that records its thread. Returns the server fiber and the bound address.
fn std_shaped_server(
    runtime: &Runtime,
    thread: usize,
    addr: SocketAddr,
    served_on: Arc<Mutex<Vec<usize>>>,
) -> (fuseau_tokio::RemoteFiber<()>, SocketAddr) {
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let server = runtime.spawn_on(thread, move || {
        let listener = ServerBuilder::new().reuse_port(true).bind_tcp(addr)?;
        bound_tx.send(listener.local_addr()?).unwrap();
        for stream in listener.incoming() {
            let stream = stream?;
            let served_on = served_on.clone();
            fuseau_tokio::spawn(move || {
                served_on
                    .lock()
                    .unwrap()
                    .push(Runtime::current_thread().unwrap());
                let mut writer = &stream;
                for line in BufReader::new(&stream).lines() {
                    writeln!(writer, "{}", line?)?;
                }
                Ok(())
            });
        }
        Ok(())
    });
    (server, bound_rx.recv_timeout(PATIENCE).expect("bound"))
}

/// `ServerBuilder::bind_tcp` with `SO_REUSEPORT`: std-shaped listeners on
/// both threads of a runtime share one address, and the kernel spreads
/// forty connections over them (all on one thread: odds of 2 in 2^40).
/// Shutting the runtime down cancels the listeners and the connections.
#[test]
fn std_shaped_listeners_serve_on_every_thread() {
    let runtime = Runtime::new(2).unwrap();
    let served_on = Arc::new(Mutex::new(Vec::new()));
    let (_first, addr) = std_shaped_server(&runtime, 0, localhost(), served_on.clone());
    let (_second, again) = std_shaped_server(&runtime, 1, addr, served_on.clone());
    assert_eq!(again, addr);
    forty_clients(addr, str::to_string);
    runtime.shutdown();
    assert_both_threads_served(&served_on);
    let refused = TcpStream::connect_timeout(&addr, PATIENCE).unwrap_err();
    assert_eq!(refused.kind(), IoKind::ConnectionRefused);
}

/// Without `SO_REUSEPORT` a second listener on the address is refused as
/// std refuses it; outside a fiber, `bind_tcp` is `NotInFiber`.
#[test]
fn bind_tcp_without_reuse_port_or_outside_a_fiber_is_an_error() {
    let runtime = Runtime::new(1).unwrap();
    let refused = runtime
        .block_on(|| {
            let first = ServerBuilder::new().bind_tcp(localhost())?;
            let second = ServerBuilder::new().bind_tcp(first.local_addr()?);
            Ok(second.map(drop).unwrap_err().kind())
        })
        .unwrap();
    assert_eq!(refused, IoKind::AddrInUse);
    let e = ServerBuilder::new().bind_tcp(localhost()).unwrap_err();
    assert_eq!(fuseau_tokio::Error::from(e).kind(), ErrorKind::NotInFiber);
}
