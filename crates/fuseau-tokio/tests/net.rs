//! `net::{TcpServer, TcpClient, UnixServer, UnixClient}` on real sockets on
//! 127.0.0.1: many clients, large transfers, resets, half-closed
//! connections, failing handlers, shutdown, and cancellation of
//! `with_connect`.

mod bounded;
mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{echo, full_listener, localhost, ms, DropCounter, Log};
use fuseau_tokio::iostream;
use fuseau_tokio::net::{ServerBuilder, TcpClient, TcpServer, UnixClient, UnixServer};
use fuseau_tokio::{await_future, AnyFiber, Builder, Error, ErrorKind, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn echo_server() -> Result<TcpServer> {
    TcpServer::establish(localhost(), |_peer, input, output| echo(input, output))
}

/// Sleeps a millisecond at a time until `cond` holds (at most ten seconds).
fn wait_until(what: &str, cond: impl Fn() -> bool) -> Result<()> {
    for _ in 0..10_000 {
        if cond() {
            return Ok(());
        }
        fuseau_tokio::sleep(ms(1))?;
    }
    panic!("timed out waiting for {what}");
}

/// The byte at offset `i` of the large transfers.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// What the `on_error` callback of a server saw: `(peer, error)`.
type Reports = Arc<Mutex<Vec<(String, Error)>>>;

fn reporting(reports: &Reports) -> ServerBuilder {
    let r = reports.clone();
    ServerBuilder::new()
        .on_error(move |peer, e| r.lock().unwrap().push((peer.to_owned(), e.clone())))
}

// ------------------------------------------------------------------ serving

#[test]
#[cfg_attr(miri, ignore)]
fn a_hundred_concurrent_clients_each_do_round_trips() {
    const FIBER_CLIENTS: usize = 100;
    const TOKIO_CLIENTS: usize = 10;
    const ROUND_TRIPS: usize = 10;
    let total = bounded::main(|| {
        let server = echo_server()?;
        let addr = server.local_addr();
        let fibers: Vec<_> = (0..FIBER_CLIENTS)
            .map(|c| {
                fuseau_tokio::spawn(move || {
                    TcpClient::with_connect(addr, |input, output| {
                        let mut reply = [0u8; 64];
                        for i in 0..ROUND_TRIPS {
                            let mut message = [0u8; 64];
                            let text = format!("client {c} message {i}");
                            message[..text.len()].copy_from_slice(text.as_bytes());
                            output.write_all(&message)?;
                            output.flush()?;
                            input.read_exact(&mut reply)?;
                            assert_eq!(reply, message);
                        }
                        Ok::<_, io::Error>(ROUND_TRIPS)
                    })?
                    .map_err(Error::from)
                })
            })
            .collect();
        // Plain Tokio tasks are clients of the same server.
        let tasks: Vec<_> = (0..TOKIO_CLIENTS)
            .map(|c| {
                tokio::task::spawn_local(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    let mut reply = [0u8; 32];
                    for i in 0..ROUND_TRIPS {
                        let mut message = [b'.'; 32];
                        let text = format!("task {c} message {i}");
                        message[..text.len()].copy_from_slice(text.as_bytes());
                        stream.write_all(&message).await?;
                        stream.read_exact(&mut reply).await?;
                        assert_eq!(reply, message);
                    }
                    Ok::<_, io::Error>(ROUND_TRIPS)
                })
            })
            .collect();
        let mut total = 0;
        for fiber in fibers {
            total += fiber.join()?;
        }
        for task in tasks {
            total += await_future(task)?.expect("the task did not panic")?;
        }
        server.shutdown()?;
        Ok(total)
    })
    .unwrap();
    assert_eq!(total, (FIBER_CLIENTS + TOKIO_CLIENTS) * ROUND_TRIPS);
}

#[test]
#[cfg_attr(miri, ignore)]
fn thirty_two_mebibytes_each_way_arrive_intact() {
    const SIZE: u64 = 32 << 20;
    bounded::main(|| {
        let server = TcpServer::establish(localhost(), |_peer, mut input, mut output| {
            let copied = io::copy(&mut input, &mut output)?;
            assert_eq!(copied, SIZE);
            output.close()
        })?;
        let stream = await_future(TcpStream::connect(server.local_addr()))??;
        let (mut input, mut output) = iostream::tcp(stream);
        // Sending and receiving at once: the echo would fill both ways'
        // buffers if the client only wrote.
        let writer = fuseau_tokio::spawn(move || {
            let mut chunk = vec![0u8; 100_000];
            let mut sent = 0;
            while sent < SIZE {
                let n = chunk.len().min((SIZE - sent) as usize);
                for (j, b) in chunk[..n].iter_mut().enumerate() {
                    *b = pattern(sent + j as u64);
                }
                output.write_all(&chunk[..n])?;
                sent += n as u64;
            }
            // The server reads end of file, and finishes its echo.
            output.close()
        });
        let mut received = 0u64;
        let mut buf = vec![0u8; 50_000];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            for (j, &b) in buf[..n].iter().enumerate() {
                if b != pattern(received + j as u64) {
                    panic!("byte {} differs", received + j as u64);
                }
            }
            received += n as u64;
        }
        writer.join()?;
        assert_eq!(received, SIZE);
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_half_closed_connection_still_gets_its_reply() {
    bounded::main(|| {
        let server = TcpServer::establish(localhost(), |_peer, mut input, mut output| {
            let mut request = Vec::new();
            input.read_to_end(&mut request)?;
            let sum: u64 = request.iter().map(|&b| u64::from(b)).sum();
            write!(output, "got {} bytes summing to {sum}", request.len())?;
            output.close()
        })?;
        let stream = await_future(TcpStream::connect(server.local_addr()))??;
        let (mut input, mut output) = iostream::tcp(stream);
        output.write_all(&[3u8; 100_000])?;
        // Only the writing side closes: the reply still comes in.
        output.close()?;
        let mut reply = String::new();
        input.read_to_string(&mut reply)?;
        assert_eq!(reply, "got 100000 bytes summing to 300000");
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_peer_reset_is_connection_reset_and_the_server_goes_on() {
    let seen: Rc<RefCell<Vec<io::ErrorKind>>> = Rc::default();
    let reports: Reports = Arc::default();
    let (s, r) = (seen.clone(), reports.clone());
    bounded::main(move || {
        let server =
            reporting(&r).establish_tcp(localhost(), move |_peer, mut input, mut output| {
                let mut buf = [0u8; 1024];
                loop {
                    match input.read(&mut buf) {
                        Ok(0) => return output.close(),
                        Ok(n) => {
                            output.write_all(&buf[..n])?;
                            output.flush()?;
                        }
                        Err(e) => {
                            s.borrow_mut().push(e.kind());
                            return Err(e.into());
                        }
                    }
                }
            })?;
        let addr = server.local_addr();
        // A client that is surely being served, then resets.
        let mut stream = await_future(TcpStream::connect(addr))??;
        await_future(stream.write_all(b"ping"))??;
        let mut reply = [0u8; 4];
        await_future(stream.read_exact(&mut reply))??;
        assert_eq!(&reply, b"ping");
        stream.set_zero_linger()?;
        drop(stream);
        wait_until("the reset to be reported", || !r.lock().unwrap().is_empty())?;
        // The server still serves others.
        let reply = TcpClient::with_connect(addr, |input, output| {
            output.write_all(b"still there?\n")?;
            output.flush()?;
            let mut line = String::new();
            input.read_line(&mut line)?;
            Ok::<_, io::Error>(line)
        })??;
        assert_eq!(reply, "still there?\n");
        server.shutdown()
    })
    .unwrap();
    // (The second connection may see the shutdown's cancellation too.)
    assert_eq!(seen.borrow()[0], io::ErrorKind::ConnectionReset);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    let (peer, e) = &reports[0];
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(
        io::Error::from(e.clone()).kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn failing_and_panicking_handlers_are_reported_and_lose_only_their_connection() {
    let reports: Reports = Arc::default();
    let r = reports.clone();
    bounded::main(move || {
        let server = reporting(&r).establish_tcp(localhost(), |_peer, mut input, mut output| {
            let mut line = String::new();
            input.read_line(&mut line)?;
            match line.trim_end() {
                "fail" => return Err(Error::from("asked to fail")),
                "panic" => panic!("asked to panic"),
                _ => {}
            }
            // Otherwise: an echo of lines.
            loop {
                output.write_all(line.as_bytes())?;
                output.flush()?;
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return output.close();
                }
            }
        })?;
        let addr = server.local_addr();
        // A steady connection, open throughout.
        let stream = await_future(TcpStream::connect(addr))??;
        let (mut input, mut output) = iostream::tcp(stream);
        let mut round_trip = |text: &str| -> Result<String> {
            writeln!(output, "{text}")?;
            output.flush()?;
            let mut line = String::new();
            input.read_line(&mut line)?;
            Ok(line)
        };
        assert_eq!(round_trip("hello")?, "hello\n");
        for request in ["fail", "panic"] {
            let rest = TcpClient::with_connect(addr, |input, output| {
                writeln!(output, "{request}")?;
                output.flush()?;
                let mut rest = String::new();
                input.read_to_string(&mut rest)?;
                Ok::<_, io::Error>(rest)
            })??;
            assert_eq!(rest, "", "the {request}ing handler's connection ends");
        }
        wait_until("two reports", || r.lock().unwrap().len() == 2)?;
        assert_eq!(round_trip("still here")?, "still here\n");
        server.shutdown()
    })
    .unwrap();
    let reports = reports.lock().unwrap();
    let summary: Vec<_> = reports
        .iter()
        .map(|(_, e)| (e.kind(), e.message().to_owned()))
        .collect();
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert_eq!(summary[0], (ErrorKind::Other, "asked to fail".to_owned()));
    assert_eq!(summary[1].0, ErrorKind::Panicked, "{summary:?}");
    assert!(summary[1].1.contains("asked to panic"), "{summary:?}");
    assert!(reports
        .iter()
        .all(|(peer, _)| peer.starts_with("127.0.0.1:")));
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_cancels_live_connections_and_returns_when_they_are_done() {
    const CONNECTIONS: usize = 5;
    let reports: Reports = Arc::default();
    let r = reports.clone();
    bounded::main(move || {
        let waiting = Rc::new(Cell::new(0));
        let handlers_dropped = DropCounter::new();
        let (w, d) = (waiting.clone(), handlers_dropped.clone());
        let server =
            reporting(&r).establish_tcp(localhost(), move |_peer, mut input, _output| {
                let _guard = d.guard();
                w.set(w.get() + 1);
                let mut line = String::new();
                // Waits for a line that never comes.
                input.read_line(&mut line)?;
                unreachable!("the clients send nothing");
            })?;
        let addr = server.local_addr();
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(await_future(TcpStream::connect(addr))??);
        }
        wait_until("all handlers to wait", || waiting.get() == CONNECTIONS)?;
        server.shutdown()?;
        // Every handler is done (its stack unwound) when shutdown returns.
        assert_eq!(handlers_dropped.dropped(), CONNECTIONS);
        for mut client in clients {
            let n = await_future(client.read(&mut [0u8; 8]))??;
            assert_eq!(n, 0, "the server closed the connection");
        }
        // And nobody listens any more.
        let e = await_future(TcpStream::connect(addr))?.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        Ok(())
    })
    .unwrap();
    assert!(
        reports.lock().unwrap().is_empty(),
        "cancellations are not failures"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_called_by_a_cancelled_fiber_returns_its_cancellation() {
    bounded::main(|| {
        let server = echo_server()?;
        let addr = server.local_addr();
        let caller = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                server.shutdown()
            });
        let e = caller.join().unwrap_err();
        assert!(e.is_cancelled(), "{e:?}");
        // The server's fibers, cancelled all the same, finish by themselves.
        fuseau_tokio::sleep(ms(5))?;
        let e = await_future(TcpStream::connect(addr))?.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_the_establishing_fiber_stops_the_server() {
    bounded::main(|| {
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let owner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let server = echo_server()?;
                addr_tx.send(server.local_addr()).unwrap();
                fuseau_tokio::sleep(Duration::from_secs(3600))?;
                server.shutdown()
            });
        let addr = await_future(addr_rx)?.unwrap();
        let reply = TcpClient::with_connect(addr, |input, output| {
            output.write_all(b"x")?;
            output.flush()?;
            let mut b = [0u8; 1];
            input.read_exact(&mut b)?;
            Ok::<_, io::Error>(b[0])
        })??;
        assert_eq!(reply, b'x');
        owner.cancel();
        assert!(owner.join().unwrap_err().is_cancelled());
        let e = await_future(TcpStream::connect(addr))?.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn establish_errors() {
    let e = TcpServer::establish(localhost(), |_, _, _| Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    let e = TcpClient::with_connect(localhost(), |_, _| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    bounded::main(|| {
        let server = echo_server()?;
        let e = TcpServer::establish(server.local_addr(), |_, _, _| Ok(())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::AddrInUse);
        server.shutdown()
    })
    .unwrap();
}

// --------------------------------------------------------------- Unix domain

#[test]
#[cfg_attr(miri, ignore)]
fn unix_server_and_clients() {
    let path = std::env::temp_dir().join(format!("fuseau-net-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    let replies = bounded::main(move || {
        let server = UnixServer::establish(&p, echo)?;
        assert_eq!(server.path(), p);
        // The path is taken.
        assert_eq!(
            UnixServer::establish(&p, echo).unwrap_err().kind(),
            ErrorKind::Io
        );
        let clients: Vec<_> = (0..10)
            .map(|i| {
                let p = p.clone();
                fuseau_tokio::spawn(move || {
                    UnixClient::with_connect(&p, |input, output| {
                        writeln!(output, "unix client {i}")?;
                        output.flush()?;
                        let mut line = String::new();
                        input.read_line(&mut line)?;
                        Ok::<_, io::Error>(line)
                    })?
                    .map_err(Error::from)
                })
            })
            .collect();
        let replies = clients
            .into_iter()
            .map(|c| c.join())
            .collect::<Result<Vec<_>>>()?;
        server.shutdown()?;
        Ok(replies)
    })
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    let expected: Vec<_> = (0..10).map(|i| format!("unix client {i}\n")).collect();
    assert_eq!(replies, expected);
}

// --------------------------------------------- with_connect and cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn with_connect_cancelled_before_the_call_does_not_connect() {
    bounded::main(|| {
        let listener = await_future(tokio::net::TcpListener::bind(localhost()))??;
        let addr = listener.local_addr()?;
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                TcpClient::with_connect(addr, |_, _| r.set(true))
            });
        assert!(client.join().unwrap_err().is_cancelled());
        assert!(!ran.get());
        // The first connection the listener sees is this probe's.
        let mut probe = await_future(TcpStream::connect(addr))??;
        await_future(probe.write_all(b"P"))??;
        let (mut first, _) = await_future(listener.accept())??;
        let mut b = [0u8; 1];
        await_future(first.read_exact(&mut b))??;
        assert_eq!(&b, b"P");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_connect_cancelled_while_connecting_wakes_at_once() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (listener, _held) = full_listener()?;
        let addr = listener.local_addr()?;
        let ran = Rc::new(Cell::new(false));
        let (r, l2) = (ran.clone(), l.clone());
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                l2.push("connecting");
                let e = TcpClient::with_connect(addr, |_, _| r.set(true)).unwrap_err();
                l2.push(format!("with_connect: {:?}", e.kind()));
                Err::<(), _>(e)
            });
        fuseau_tokio::sleep(ms(20))?;
        l.push("cancel");
        client.cancel();
        assert!(client.join().unwrap_err().is_cancelled());
        assert!(!ran.get());
        // A deadline works the same way, as a timeout.
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                fuseau_tokio::cancel_after(ms(10))?;
                TcpClient::with_connect(addr, |_, _| ())
            });
        assert_eq!(client.join().unwrap_err().kind(), ErrorKind::Timeout);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["connecting", "cancel", "with_connect: Cancelled"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_connect_cancelled_after_it_returned_keeps_its_result() {
    bounded::main(|| {
        let server = echo_server()?;
        let addr = server.local_addr();
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let got = TcpClient::with_connect(addr, |input, output| {
                    output.write_all(b"ok")?;
                    output.flush()?;
                    let mut b = [0u8; 2];
                    input.read_exact(&mut b)?;
                    Ok::<_, io::Error>(b)
                })??;
                AnyFiber::current().cancel();
                assert!(fuseau_tokio::yield_now().unwrap_err().is_cancelled());
                Ok(got)
            });
        assert_eq!(&client.join()?, b"ok");
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_connect_cancelled_inside_its_closure() {
    bounded::main(|| {
        // A server that never answers.
        let server = TcpServer::establish(localhost(), |_peer, mut input, _output| {
            let mut sink = Vec::new();
            input.read_to_end(&mut sink)?;
            Ok(())
        })?;
        let addr = server.local_addr();
        let inner = Rc::new(RefCell::new(None));
        let i = inner.clone();
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                TcpClient::with_connect(addr, |input, output| {
                    output.write_all(b"question")?;
                    output.flush()?;
                    let e = input.read(&mut [0u8; 8]).unwrap_err();
                    *i.borrow_mut() = Some(e.kind());
                    Err::<(), _>(e)
                })
            });
        fuseau_tokio::sleep(ms(5))?;
        client.cancel();
        // The closure saw the cancellation as `Other`; closing the
        // connection afterwards is a cancellation point too.
        assert!(client.join().unwrap_err().is_cancelled());
        assert_eq!(*inner.borrow(), Some(io::ErrorKind::Other));
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_connect_to_a_closed_port_is_refused() {
    bounded::main(|| {
        let addr = {
            let listener = std::net::TcpListener::bind(localhost())?;
            listener.local_addr()?
        };
        let e = TcpClient::with_connect(addr, |_, _| ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::ConnectionRefused);
        Ok(())
    })
    .unwrap();
}
