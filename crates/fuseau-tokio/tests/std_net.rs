//! The std-shaped sockets of `fuseau_tokio::net` (`TcpStream`,
//! `TcpListener`, `UdpSocket`, `UnixStream`, `UnixListener`) on real sockets
//! on 127.0.0.1: std's behaviour and errors, clones shared by a reader and a
//! writer fiber, timeouts on Tokio's paused clock, the three cases of
//! cancellation of every call that waits, and calls outside a fiber.

mod bounded;
mod common;

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, ErrorKind as IoKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;

use common::{cancellable, full_listener, hours, localhost, ms, Log};
use fuseau_tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use fuseau_tokio::{AnyFiber, Error, ErrorKind, Result};

/// A connected pair: `(client, server)`.
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(localhost())?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// The fiber's error an `io::Error` carries (as `?` in a fiber sees it).
fn fiber_error(e: io::Error) -> Error {
    Error::from(e)
}

fn assert_cancelled(e: io::Error) {
    assert_eq!(e.kind(), IoKind::Other, "{e:?}");
    let e = fiber_error(e);
    assert!(e.is_cancelled(), "{e:?}");
}

/// Runs `f` as the main fiber of a current-thread runtime whose clock is
/// paused (Tokio advances it whenever nothing else can run), under the
/// watchdog.
fn paused<T: 'static>(f: impl FnOnce() -> Result<T> + 'static) -> Result<T> {
    bounded::with_watchdog("paused", bounded::LIMIT, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, fuseau_tokio::run(f))
    })
}

/// Writes into `stream` until a write would wait longer than a moment (its
/// buffers, and the peer's, are full); returns how many bytes went in.
fn fill(stream: &TcpStream) -> io::Result<usize> {
    let before = stream.write_timeout()?;
    stream.set_write_timeout(Some(ms(20)))?;
    let chunk = [7u8; 64 * 1024];
    let mut total = 0;
    let result = loop {
        match (&*stream).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == IoKind::WouldBlock => break Ok(total),
            Err(e) => break Err(e),
        }
    };
    stream.set_write_timeout(before)?;
    result
}

/// Reads until end of file, returning the count.
fn count_to_end(mut stream: &TcpStream) -> io::Result<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

fn socket_path(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("fuseau-std-net-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

// ------------------------------------------------------------------- TCP

#[test]
#[cfg_attr(miri, ignore)]
fn lines_echo_over_tcp_with_bufreader_and_write_all() {
    bounded::main(|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = fuseau_tokio::spawn(move || {
            let (stream, peer) = listener.accept()?;
            assert_eq!(stream.peer_addr()?, peer);
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                (&stream).write_all(line.as_bytes())?;
                line.clear();
            }
            Ok(())
        });
        let mut client = TcpStream::connect(addr)?;
        let mut reader = BufReader::new(client.try_clone()?);
        for i in 0..100 {
            client.write_all(format!("line {i}\n").as_bytes())?;
            let mut echo = String::new();
            reader.read_line(&mut echo)?;
            assert_eq!(echo, format!("line {i}\n"));
        }
        client.shutdown(Shutdown::Write)?;
        let mut rest = String::new();
        reader.read_to_string(&mut rest)?;
        assert_eq!(rest, "");
        server.join()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_reader_fiber_and_a_writer_fiber_share_one_connection() {
    const SIZE: usize = 4 << 20;
    bounded::main(|| {
        let listener = TcpListener::bind(localhost())?;
        let addr = listener.local_addr()?;
        // An echo server: its own reader and writer share `&TcpStream`.
        let server = fuseau_tokio::spawn(move || {
            let (stream, _) = listener.accept()?;
            io::copy(&mut &stream, &mut &stream)?;
            stream.shutdown(Shutdown::Write)?;
            Ok(())
        });
        // The client writes and reads at once (writing everything first
        // would fill both ways' buffers and stall): a writer fiber on a
        // clone, and a reader fiber on a shared reference.
        let stream = Rc::new(TcpStream::connect(addr)?);
        let writer_half = stream.try_clone()?;
        let writer = fuseau_tokio::spawn(move || {
            let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
            let mut writer_half = writer_half;
            writer_half.write_all(&data)?;
            writer_half.shutdown(Shutdown::Write)?;
            Ok(())
        });
        let s = stream.clone();
        let reader = fuseau_tokio::spawn(move || {
            let mut got = Vec::with_capacity(SIZE);
            (&*s).read_to_end(&mut got)?;
            Ok(got)
        });
        let got = reader.join()?;
        writer.join()?;
        server.join()?;
        assert_eq!(got.len(), SIZE);
        assert!(
            got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
            "the data changed on the way"
        );
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn connect_takes_address_strings_tuples_and_host_names() {
    bounded::main(|| {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let port = addr.port();
        let by_string = TcpStream::connect(format!("127.0.0.1:{port}"))?;
        let by_str = TcpStream::connect(format!("127.0.0.1:{port}").as_str())?;
        let by_tuple = TcpStream::connect(("127.0.0.1", port))?;
        // A name: resolved on Tokio's blocking pool.
        let by_name = TcpStream::connect(("localhost", port))?;
        let by_addr = TcpStream::connect(addr)?;
        for client in [by_string, by_str, by_tuple, by_name, by_addr] {
            let (server, peer) = listener.accept()?;
            assert_eq!(client.peer_addr()?, addr);
            assert_eq!(client.local_addr()?, peer);
            assert_eq!(server.local_addr()?, addr);
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn connect_timeout_connects_refuses_zero_and_times_out() {
    bounded::main(|| {
        let listener = TcpListener::bind(localhost())?;
        let addr = listener.local_addr()?;
        let stream = TcpStream::connect_timeout(&addr, hours(1))?;
        assert_eq!(stream.peer_addr()?, addr);
        let e = TcpStream::connect_timeout(&addr, std::time::Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), IoKind::InvalidInput);
        // A listener with a full accept queue: Linux drops the SYN, and the
        // connection is never established.
        let (full, _held) = full_listener()?;
        let e = TcpStream::connect_timeout(&full.local_addr()?, ms(50)).unwrap_err();
        assert_eq!(e.kind(), IoKind::TimedOut, "{e:?}");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_refused_connection_is_connection_refused() {
    bounded::main(|| {
        // A port that was free a moment ago, with nobody listening.
        let port = std::net::TcpListener::bind(localhost())?
            .local_addr()?
            .port();
        let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(e.kind(), IoKind::ConnectionRefused, "{e:?}");
        let e = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), hours(1)).unwrap_err();
        assert_eq!(e.kind(), IoKind::ConnectionRefused, "{e:?}");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn addresses_that_do_not_resolve_fail_as_std_does() {
    bounded::main(|| {
        // Not an address at all: refused before any lookup.
        for bad in ["nonsense", "127.0.0.1", "host:notaport"] {
            let e = TcpStream::connect(bad).unwrap_err();
            assert_eq!(e.kind(), IoKind::InvalidInput, "{bad}: {e:?}");
            assert_eq!(
                e.kind(),
                std::net::TcpStream::connect(bad).unwrap_err().kind()
            );
        }
        // An unknown host (`.invalid` never resolves, RFC 2606): whatever
        // std says here (the resolver answers locally, at once).
        let ours = TcpStream::connect("name.invalid:80").unwrap_err();
        let std = std::net::TcpStream::connect("name.invalid:80").unwrap_err();
        assert_eq!(ours.kind(), std.kind(), "{ours:?} / {std:?}");
        assert_eq!(ours.to_string(), std.to_string());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_reset_peer_is_connection_reset_on_read_and_fails_writes() {
    bounded::main(|| {
        let (client, server) = tcp_pair()?;
        (&client).write_all(b"ping")?;
        let mut buf = [0; 4];
        (&server).read_exact(&mut buf)?;
        // Closing with a zero linger sends a reset.
        let server = server.into_tokio()?;
        server.set_zero_linger()?;
        drop(server);
        let e = (&client).read(&mut [0; 16]).unwrap_err();
        assert_eq!(e.kind(), IoKind::ConnectionReset, "{e:?}");
        let e = (&client).write_all(b"anyone?").unwrap_err();
        assert!(
            matches!(e.kind(), IoKind::BrokenPipe | IoKind::ConnectionReset),
            "{e:?}"
        );
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn shutdown_write_gives_the_peer_end_of_file_and_the_other_way_still_works() {
    bounded::main(|| {
        let (client, server) = tcp_pair()?;
        (&client).write_all(b"request")?;
        client.shutdown(Shutdown::Write)?;
        let mut request = String::new();
        (&server).read_to_string(&mut request)?;
        assert_eq!(request, "request");
        (&server).write_all(b"reply")?;
        server.shutdown(Shutdown::Both)?;
        let mut reply = String::new();
        (&client).read_to_string(&mut reply)?;
        assert_eq!(reply, "reply");
        // Writing after a shutdown of the writing side fails.
        let e = (&client).write(b"more").unwrap_err();
        assert_eq!(e.kind(), IoKind::BrokenPipe, "{e:?}");
        // A reader waiting when its side is shut down wakes up with end of
        // file.
        let (a, _b) = tcp_pair()?;
        let a = Rc::new(a);
        let a2 = a.clone();
        let reader = fuseau_tokio::spawn(move || Ok((&*a2).read(&mut [0; 8])?));
        fuseau_tokio::yield_now()?;
        a.shutdown(Shutdown::Read)?;
        assert_eq!(reader.join()?, 0);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn peek_options_and_conversions_behave_as_std() {
    bounded::main(|| {
        let (client, server) = tcp_pair()?;
        (&client).write_all(b"peeked")?;
        let mut buf = [0; 6];
        assert_eq!(server.peek(&mut buf)?, 6);
        assert_eq!(server.peek(&mut buf[..3])?, 3);
        (&server).read_exact(&mut buf)?;
        assert_eq!(&buf, b"peeked");
        // Empty reads and writes complete at once.
        assert_eq!((&server).read(&mut [])?, 0);
        assert_eq!((&server).write(&[])?, 0);
        client.set_nodelay(true)?;
        assert!(client.nodelay()?);
        client.set_nodelay(false)?;
        assert!(!client.nodelay()?);
        client.set_ttl(33)?;
        assert_eq!(client.ttl()?, 33);
        assert!(client.take_error()?.is_none());
        // Timeouts: std's rules, shared by the clones.
        assert_eq!(client.read_timeout()?, None);
        let e = client
            .set_read_timeout(Some(std::time::Duration::ZERO))
            .unwrap_err();
        assert_eq!(e.kind(), IoKind::InvalidInput);
        let e = client
            .set_write_timeout(Some(std::time::Duration::ZERO))
            .unwrap_err();
        assert_eq!(e.kind(), IoKind::InvalidInput);
        let clone = client.try_clone()?;
        client.set_read_timeout(Some(ms(5)))?;
        clone.set_write_timeout(Some(ms(6)))?;
        assert_eq!(clone.read_timeout()?, Some(ms(5)));
        assert_eq!(client.write_timeout()?, Some(ms(6)));
        // The Tokio stream only once no clone shares it.
        let e = client.into_tokio().unwrap_err();
        assert_eq!(e.kind(), IoKind::ResourceBusy);
        // To std and back: blocking again, then registered again.
        let std_stream = clone.into_std()?;
        std_stream.set_read_timeout(Some(hours(1)))?;
        (&server).write_all(b"to std")?;
        let mut got = [0; 6];
        (&std_stream).read_exact(&mut got)?;
        assert_eq!(&got, b"to std");
        let back = TcpStream::from_std(std_stream)?;
        assert_eq!(back.read_timeout()?, None, "timeouts are not carried over");
        (&server).write_all(b"and back")?;
        let mut got = [0; 8];
        (&back).read_exact(&mut got)?;
        assert_eq!(&got, b"and back");
        let tokio_stream: tokio::net::TcpStream = back.into_tokio()?;
        let back = TcpStream::from(tokio_stream);
        assert_eq!(back.peer_addr()?, server.local_addr()?);
        // Listeners too.
        let listener = TcpListener::bind(localhost())?;
        listener.set_ttl(99)?;
        assert_eq!(listener.ttl()?, 99);
        let addr = listener.local_addr()?;
        let std_listener = listener.into_std()?;
        let listener = TcpListener::from_std(std_listener)?;
        let other = listener.try_clone()?;
        assert_eq!(other.local_addr()?, addr);
        assert_eq!(
            listener.into_tokio().unwrap_err().kind(),
            IoKind::ResourceBusy
        );
        let listener = TcpListener::from(other.into_tokio()?);
        let client = TcpStream::connect(addr)?;
        assert_eq!(listener.accept()?.1, client.local_addr()?);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn incoming_yields_connections_and_ends_after_the_fibers_cancellation() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let listener = Rc::new(TcpListener::bind(localhost())?);
        let addr = listener.local_addr()?;
        let lst = listener.clone();
        let l2 = l.clone();
        let server = cancellable(move || {
            for stream in lst.incoming() {
                match stream {
                    Ok(stream) => {
                        let mut line = String::new();
                        BufReader::new(&stream).read_line(&mut line)?;
                        l2.push(format!("served {}", line.trim_end()));
                    }
                    // std's way: skip failed connections. The fiber's
                    // cancellation ends the loop instead of repeating.
                    Err(e) => l2.push(format!("error: {:?}", fiber_error(e).kind())),
                }
            }
            l2.push("incoming ended");
            Ok(())
        });
        for i in 0..3 {
            let mut client = TcpStream::connect(addr)?;
            writeln!(client, "{i}")?;
            // Wait until served: end of file once the server drops it.
            client.read_to_end(&mut Vec::new())?;
        }
        server.cancel();
        // The loop saw the cancellation once, and ended: `Ok(())`.
        server.join()?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "served 0",
            "served 1",
            "served 2",
            "error: Cancelled",
            "incoming ended"
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_stream_serves_fibers_of_another_thread_of_a_runtime() {
    let runtime = fuseau_tokio::Runtime::new(2).unwrap();
    let handle = runtime.handle();
    bounded::with_watchdog("runtime", bounded::LIMIT, || {
        runtime.block_on(move || {
            // Created (and registered) on this thread…
            let (client, server) = tcp_pair()?;
            let me = fuseau_tokio::Runtime::current_thread().expect("on the runtime");
            let other = 1 - me;
            // …and used by a fiber of the other thread.
            let echo = handle.spawn_on(other, move || {
                assert_eq!(fuseau_tokio::Runtime::current_thread(), Some(other));
                let mut line = String::new();
                BufReader::new(&server).read_line(&mut line)?;
                (&server).write_all(line.to_uppercase().as_bytes())?;
                Ok(())
            });
            fuseau_tokio::sleep(ms(5))?;
            (&client).write_all(b"across threads\n")?;
            let mut reply = String::new();
            BufReader::new(&client).read_line(&mut reply)?;
            assert_eq!(reply, "ACROSS THREADS\n");
            echo.join()
        })
    })
    .unwrap();
    runtime.shutdown();
}

// ---------------------------------------------------------------- timeouts

#[test]
#[cfg_attr(miri, ignore)]
fn read_timeouts_are_would_block_on_the_paused_clock() {
    paused(|| {
        let (client, server) = tcp_pair()?;
        client.set_read_timeout(Some(hours(1)))?;
        let start = tokio::time::Instant::now();
        let e = (&client).read(&mut [0; 16]).unwrap_err();
        assert_eq!(e.kind(), IoKind::WouldBlock, "{e:?}");
        assert!(start.elapsed() >= hours(1), "{:?}", start.elapsed());
        // A clone has the same timeout (std's are per socket), for peeks too.
        let clone = client.try_clone()?;
        let e = clone.peek(&mut [0; 16]).unwrap_err();
        assert_eq!(e.kind(), IoKind::WouldBlock, "{e:?}");
        // Data that comes in time is read.
        let s = Rc::new(server);
        let s2 = s.clone();
        let writer = fuseau_tokio::spawn(move || {
            fuseau_tokio::sleep(ms(30 * 60 * 1000))?;
            (&*s2).write_all(b"in time")?;
            Ok(())
        });
        let mut buf = [0; 7];
        (&client).read_exact(&mut buf)?;
        assert_eq!(&buf, b"in time");
        writer.join()?;
        // Without a timeout, a read waits as long as it takes.
        client.set_read_timeout(None)?;
        let writer = fuseau_tokio::spawn(move || {
            fuseau_tokio::sleep(hours(5))?;
            (&*s).write_all(b"late")?;
            Ok(())
        });
        let mut buf = [0; 4];
        (&client).read_exact(&mut buf)?;
        assert_eq!(&buf, b"late");
        writer.join()?;
        // UDP and Unix-domain sockets time out alike.
        let udp = UdpSocket::bind(localhost())?;
        udp.set_read_timeout(Some(hours(1)))?;
        assert_eq!(
            udp.recv_from(&mut [0; 8]).unwrap_err().kind(),
            IoKind::WouldBlock
        );
        assert_eq!(
            udp.peek_from(&mut [0; 8]).unwrap_err().kind(),
            IoKind::WouldBlock
        );
        let (a, _b) = UnixStream::pair()?;
        a.set_read_timeout(Some(hours(1)))?;
        assert_eq!(
            (&a).read(&mut [0; 8]).unwrap_err().kind(),
            IoKind::WouldBlock
        );
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_timeouts_are_would_block_and_write_nothing() {
    paused(|| {
        let (client, server) = tcp_pair()?;
        client.set_write_timeout(Some(hours(1)))?;
        let mut written = 0;
        let chunk = [1u8; 64 * 1024];
        let start = tokio::time::Instant::now();
        let e = loop {
            match (&client).write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), IoKind::WouldBlock, "{e:?}");
        assert!(start.elapsed() >= hours(1), "{:?}", start.elapsed());
        // The write that timed out wrote nothing.
        client.shutdown(Shutdown::Write)?;
        assert_eq!(count_to_end(&server)?, written);
        // Unix-domain streams alike.
        let (a, _b) = UnixStream::pair()?;
        a.set_write_timeout(Some(hours(1)))?;
        let e = loop {
            if let Err(e) = (&a).write(&chunk) {
                break e;
            }
        };
        assert_eq!(e.kind(), IoKind::WouldBlock, "{e:?}");
        Ok(())
    })
    .unwrap();
}

// --------------------------------------------------------------------- UDP

#[test]
#[cfg_attr(miri, ignore)]
fn udp_send_to_recv_from_and_connected_send_recv() {
    bounded::main(|| {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind(("127.0.0.1", 0))?;
        let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
        // A receiver fiber waits; the datagram wakes it.
        let b = Rc::new(b);
        let b2 = b.clone();
        let receiver = fuseau_tokio::spawn(move || {
            let mut buf = [0; 64];
            let (n, from) = b2.recv_from(&mut buf)?;
            Ok((buf[..n].to_vec(), from))
        });
        fuseau_tokio::yield_now()?;
        assert_eq!(a.send_to(b"hello", b_addr)?, 5);
        assert_eq!(receiver.join()?, (b"hello".to_vec(), a_addr));
        // By address string; peek leaves the datagram queued.
        a.send_to(b"by string", format!("127.0.0.1:{}", b_addr.port()))?;
        let mut buf = [0; 64];
        assert_eq!(b.peek_from(&mut buf)?, (9, a_addr));
        assert_eq!(b.recv_from(&mut buf)?, (9, a_addr));
        assert_eq!(&buf[..9], b"by string");
        // A datagram longer than the buffer is cut short.
        a.send_to(b"0123456789", b_addr)?;
        let mut small = [0; 4];
        assert_eq!(b.recv_from(&mut small)?, (4, a_addr));
        assert_eq!(&small, b"0123");
        // Connected sockets.
        assert_eq!(a.peer_addr().unwrap_err().kind(), IoKind::NotConnected);
        a.connect(b_addr)?;
        b.connect(("127.0.0.1", a_addr.port()))?;
        assert_eq!(a.peer_addr()?, b_addr);
        assert_eq!(a.send(b"connected")?, 9);
        assert_eq!(b.peek(&mut buf)?, 9);
        assert_eq!(b.recv(&mut buf)?, 9);
        assert_eq!(&buf[..9], b"connected");
        // A clone shares the socket; options as std.
        let a2 = a.try_clone()?;
        a2.send(b"clone")?;
        assert_eq!(b.recv(&mut buf)?, 5);
        a.set_broadcast(true)?;
        assert!(a2.broadcast()?);
        a.set_ttl(12)?;
        assert_eq!(a.ttl()?, 12);
        assert!(a.take_error()?.is_none());
        // An address that resolves to nothing: std's `InvalidInput`.
        let e = a.send_to(b"x", "nonsense").unwrap_err();
        assert_eq!(e.kind(), IoKind::InvalidInput);
        // Conversions.
        drop(a2);
        let std_a = a.into_std()?;
        let a = UdpSocket::from_std(std_a)?;
        let a = UdpSocket::from(a.into_tokio()?);
        assert_eq!(a.local_addr()?, a_addr);
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------------- Unix domain

#[test]
#[cfg_attr(miri, ignore)]
fn unix_streams_listeners_and_pairs() {
    let path = socket_path("unix");
    let p = path.clone();
    bounded::main(move || {
        let listener = UnixListener::bind(&p)?;
        assert_eq!(listener.local_addr()?.as_pathname(), Some(p.as_path()));
        let server = fuseau_tokio::spawn(move || {
            for stream in listener.incoming().take(2) {
                let stream = stream?;
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line)?;
                (&stream).write_all(line.to_uppercase().as_bytes())?;
            }
            let (_, peer) = listener.accept()?;
            assert!(peer.is_unnamed());
            Ok(())
        });
        for text in ["one\n", "two\n"] {
            let mut client = UnixStream::connect(&p)?;
            assert_eq!(client.peer_addr()?.as_pathname(), Some(p.as_path()));
            assert!(client.local_addr()?.is_unnamed());
            client.write_all(text.as_bytes())?;
            let mut reply = String::new();
            BufReader::new(&client).read_line(&mut reply)?;
            assert_eq!(reply, text.to_uppercase());
        }
        let _last = UnixStream::connect(&p)?;
        server.join()?;
        // A pair, a clone per direction, half-closes.
        let (a, b) = UnixStream::pair()?;
        let a_writer = a.try_clone()?;
        let writer = fuseau_tokio::spawn(move || {
            (&a_writer).write_all(&[9u8; 1 << 20])?;
            a_writer.shutdown(Shutdown::Write)?;
            Ok(())
        });
        let mut got = Vec::new();
        (&b).read_to_end(&mut got)?;
        assert_eq!(got, vec![9u8; 1 << 20]);
        writer.join()?;
        (&b).write_all(b"back")?;
        drop(b);
        let mut back = String::new();
        (&a).read_to_string(&mut back)?;
        assert_eq!(back, "back");
        // Conversions.
        assert!(a.take_error()?.is_none());
        let a = UnixStream::from_std(a.into_std()?)?;
        let _a = UnixStream::from(a.into_tokio()?);
        // Nobody there: std's errors.
        let e = UnixStream::connect(socket_path("nobody")).unwrap_err();
        assert_eq!(e.kind(), IoKind::NotFound, "{e:?}");
        std::fs::remove_file(&p)?;
        Ok(())
    })
    .unwrap();
    let _ = std::fs::remove_file(&path);
}

// ------------------------------------------------------------ cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_before_while_and_after() {
    bounded::main(|| {
        let (client, server) = tcp_pair()?;
        let server = Rc::new(server);
        // Before the call: nothing is read.
        (&client).write_all(b"abc")?;
        let s = server.clone();
        let reader = cancellable(move || {
            AnyFiber::current().cancel();
            assert_cancelled((&*s).read(&mut [0; 16]).unwrap_err());
            Ok(())
        });
        reader.join()?;
        let mut buf = [0; 3];
        (&*server).read_exact(&mut buf)?;
        assert_eq!(&buf, b"abc");
        // While waiting: it wakes at once, and nothing is lost.
        let s = server.clone();
        let reader = cancellable(move || {
            let e = (&*s).read(&mut [0; 16]).unwrap_err();
            Err::<(), _>(fiber_error(e))
        });
        fuseau_tokio::yield_now()?;
        reader.cancel();
        assert!(reader.join().unwrap_err().is_cancelled());
        (&client).write_all(b"later")?;
        let mut buf = [0; 5];
        (&*server).read_exact(&mut buf)?;
        assert_eq!(&buf, b"later");
        // After it completed: the bytes are kept; the next read fails.
        let s = server.clone();
        let reader = cancellable(move || {
            let mut buf = [0; 16];
            let n = (&*s).read(&mut buf)?;
            AnyFiber::current().cancel();
            assert_cancelled((&*s).read(&mut [0; 16]).unwrap_err());
            Ok(buf[..n].to_vec())
        });
        fuseau_tokio::yield_now()?;
        (&client).write_all(b"xyz")?;
        assert_eq!(reader.join()?, b"xyz");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_before_while_and_after() {
    bounded::main(|| {
        // Before the call: nothing is written.
        let (client, server) = tcp_pair()?;
        let client = Rc::new(client);
        let c = client.clone();
        let writer = cancellable(move || {
            AnyFiber::current().cancel();
            assert_cancelled((&*c).write(b"never").unwrap_err());
            Ok(())
        });
        writer.join()?;
        (&*client).write_all(b"first")?;
        client.shutdown(Shutdown::Write)?;
        let mut got = String::new();
        (&server).read_to_string(&mut got)?;
        assert_eq!(got, "first");

        // While waiting (the peer does not read: the buffers fill up): it
        // wakes at once, and writes nothing more. Every byte the writer
        // reports reaches the peer, and no other.
        let (client, server) = tcp_pair()?;
        let filled = fill(&client)?;
        let written = Rc::new(Cell::new(0usize));
        let client = Rc::new(client);
        let (c, w) = (client.clone(), written.clone());
        let writer = cancellable(move || {
            let chunk = [7u8; 64 * 1024];
            loop {
                match (&*c).write(&chunk) {
                    Ok(n) => w.set(w.get() + n),
                    Err(e) => return Err::<(), _>(fiber_error(e)),
                }
            }
        });
        fuseau_tokio::sleep(ms(20))?;
        writer.cancel();
        assert!(writer.join().unwrap_err().is_cancelled());
        client.shutdown(Shutdown::Write)?;
        assert_eq!(count_to_end(&server)?, filled + written.get());

        // After it completed: the write is kept; the next one fails.
        let (client, server) = tcp_pair()?;
        let writer = cancellable(move || {
            let n = (&client).write(b"kept")?;
            AnyFiber::current().cancel();
            assert_cancelled((&client).write(b"lost").unwrap_err());
            Ok(n)
        });
        assert_eq!(writer.join()?, 4);
        let mut got = String::new();
        (&server).read_to_string(&mut got)?;
        assert_eq!(got, "kept");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn connect_cancelled_before_while_and_after() {
    bounded::main(|| {
        let listener = TcpListener::bind(localhost())?;
        let addr = listener.local_addr()?;
        // Before the call: no connection is made (the next one accepted is
        // a later one).
        let client = cancellable(move || {
            AnyFiber::current().cancel();
            assert_cancelled(TcpStream::connect(addr).unwrap_err());
            assert_cancelled(TcpStream::connect_timeout(&addr, hours(1)).unwrap_err());
            Ok(())
        });
        client.join()?;
        let later = TcpStream::connect(addr)?;
        assert_eq!(listener.accept()?.1, later.local_addr()?);
        // While connecting (to a listener whose accept queue is full): it
        // wakes at once.
        let (full, _held) = full_listener()?;
        let full_addr = full.local_addr()?;
        for timeout in [None, Some(hours(1))] {
            let client = cancellable(move || {
                let e = match timeout {
                    None => TcpStream::connect(full_addr).unwrap_err(),
                    Some(t) => TcpStream::connect_timeout(&full_addr, t).unwrap_err(),
                };
                Err::<(), _>(fiber_error(e))
            });
            fuseau_tokio::sleep(ms(10))?;
            client.cancel();
            assert!(client.join().unwrap_err().is_cancelled());
        }
        // After it completed: the stream is kept (and works where no
        // waiting is needed); the next call that may wait fails.
        let client = cancellable(move || {
            let stream = TcpStream::connect(addr)?;
            AnyFiber::current().cancel();
            assert_eq!(stream.peer_addr()?, addr);
            assert_cancelled((&stream).write(b"x").unwrap_err());
            assert_cancelled(TcpStream::connect(addr).unwrap_err());
            Ok(stream.local_addr()?)
        });
        let local = client.join()?;
        assert_eq!(listener.accept()?.1, local);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn accept_cancelled_before_while_and_after() {
    bounded::main(|| {
        let listener = Rc::new(TcpListener::bind(localhost())?);
        let addr = listener.local_addr()?;
        // Before the call: the pending connection stays queued.
        let client = TcpStream::connect(addr)?;
        let lst = listener.clone();
        let acceptor = cancellable(move || {
            AnyFiber::current().cancel();
            assert_cancelled(lst.accept().unwrap_err());
            Ok(())
        });
        acceptor.join()?;
        assert_eq!(listener.accept()?.1, client.local_addr()?);
        // While waiting: it wakes at once; the listener still works.
        let lst = listener.clone();
        let acceptor = cancellable(move || Err::<(), _>(fiber_error(lst.accept().unwrap_err())));
        fuseau_tokio::yield_now()?;
        acceptor.cancel();
        assert!(acceptor.join().unwrap_err().is_cancelled());
        let client = TcpStream::connect(addr)?;
        assert_eq!(listener.accept()?.1, client.local_addr()?);
        // After it completed: the connection is kept; the next accept fails.
        let lst = listener.clone();
        let acceptor = cancellable(move || {
            let (stream, peer) = lst.accept()?;
            AnyFiber::current().cancel();
            assert_cancelled(lst.accept().unwrap_err());
            assert_eq!(stream.peer_addr()?, peer);
            Ok(peer)
        });
        fuseau_tokio::yield_now()?;
        let client = TcpStream::connect(addr)?;
        assert_eq!(acceptor.join()?, client.local_addr()?);
        // Unix-domain listeners alike (while waiting).
        let path = socket_path("accept");
        let unix = Rc::new(UnixListener::bind(&path)?);
        let u = unix.clone();
        let acceptor = cancellable(move || Err::<(), _>(fiber_error(u.accept().unwrap_err())));
        fuseau_tokio::yield_now()?;
        acceptor.cancel();
        assert!(acceptor.join().unwrap_err().is_cancelled());
        let _client = UnixStream::connect(&path)?;
        unix.accept()?;
        std::fs::remove_file(&path)?;
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn recv_from_cancelled_before_while_and_after() {
    bounded::main(|| {
        let sender = UdpSocket::bind(localhost())?;
        let receiver = Rc::new(UdpSocket::bind(localhost())?);
        let to = receiver.local_addr()?;
        // Before the call: the datagram stays queued.
        sender.send_to(b"queued", to)?;
        let r = receiver.clone();
        let fiber = cancellable(move || {
            AnyFiber::current().cancel();
            assert_cancelled(r.recv_from(&mut [0; 16]).unwrap_err());
            Ok(())
        });
        fiber.join()?;
        let mut buf = [0; 16];
        assert_eq!(receiver.recv_from(&mut buf)?.0, 6);
        assert_eq!(&buf[..6], b"queued");
        // While waiting: it wakes at once; the next datagram is not lost.
        let r = receiver.clone();
        let fiber =
            cancellable(move || Err::<(), _>(fiber_error(r.recv_from(&mut [0; 16]).unwrap_err())));
        fuseau_tokio::yield_now()?;
        fiber.cancel();
        assert!(fiber.join().unwrap_err().is_cancelled());
        sender.send_to(b"next", to)?;
        assert_eq!(receiver.recv_from(&mut buf)?.0, 4);
        assert_eq!(&buf[..4], b"next");
        // After it completed: the datagram is kept; the next call fails.
        let r = receiver.clone();
        let fiber = cancellable(move || {
            let mut buf = [0; 16];
            let (n, from) = r.recv_from(&mut buf)?;
            AnyFiber::current().cancel();
            assert_cancelled(r.recv_from(&mut [0; 16]).unwrap_err());
            assert_cancelled(r.send_to(b"x", from).unwrap_err());
            Ok(buf[..n].to_vec())
        });
        fuseau_tokio::yield_now()?;
        sender.send_to(b"got it", to)?;
        assert_eq!(fiber.join()?, b"got it");
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------- outside a fiber

fn assert_not_in_fiber(e: io::Error) {
    let e = fiber_error(e);
    assert_eq!(e.kind(), ErrorKind::NotInFiber, "{e:?}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn outside_a_fiber_calls_fail_with_not_in_fiber_instead_of_blocking() {
    // No runtime at all.
    assert_not_in_fiber(TcpStream::connect("127.0.0.1:1").unwrap_err());
    assert_not_in_fiber(TcpListener::bind(localhost()).unwrap_err());
    assert_not_in_fiber(UdpSocket::bind(localhost()).unwrap_err());
    assert_not_in_fiber(UnixStream::connect("/nonexistent").unwrap_err());
    assert_not_in_fiber(UnixStream::pair().unwrap_err());
    assert_not_in_fiber(UnixListener::bind(socket_path("outside")).unwrap_err());
    let std_listener = std::net::TcpListener::bind(localhost()).unwrap();
    let std_stream = std::net::TcpStream::connect(std_listener.local_addr().unwrap()).unwrap();
    assert_not_in_fiber(TcpStream::from_std(std_stream).unwrap_err());
    assert_not_in_fiber(TcpListener::from_std(std_listener).unwrap_err());
    // Sockets made in a fiber, used from a plain thread (no fiber there):
    // every call that may wait fails at once, even with data waiting.
    bounded::main(|| {
        let (client, server) = tcp_pair()?;
        let listener = TcpListener::bind(localhost())?;
        let udp = UdpSocket::bind(localhost())?;
        let (a, _b) = UnixStream::pair()?;
        (&client).write_all(b"data")?;
        let thread = std::thread::spawn(move || {
            assert_not_in_fiber((&server).read(&mut [0; 4]).unwrap_err());
            assert_not_in_fiber(server.peek(&mut [0; 4]).unwrap_err());
            assert_not_in_fiber((&server).write(b"x").unwrap_err());
            assert_not_in_fiber(listener.accept().unwrap_err());
            assert_not_in_fiber(listener.incoming().next().unwrap().unwrap_err());
            assert_not_in_fiber(udp.recv_from(&mut [0; 4]).unwrap_err());
            assert_not_in_fiber(udp.send_to(b"x", "127.0.0.1:9").unwrap_err());
            assert_not_in_fiber((&a).read(&mut [0; 4]).unwrap_err());
            // Calls that do not wait work anywhere.
            assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
            server.set_nodelay(true).unwrap();
            server.shutdown(Shutdown::Both).unwrap();
        });
        fuseau_tokio::await_future(tokio::task::spawn_blocking(move || thread.join()))?
            .unwrap()
            .unwrap();
        Ok(())
    })
    .unwrap();
}

#[test]
fn the_socket_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
    send_sync::<UdpSocket>();
    send_sync::<UnixStream>();
    send_sync::<UnixListener>();
    send_sync::<fuseau_tokio::net::Incoming<'static>>();
    send_sync::<fuseau_tokio::net::UnixIncoming<'static>>();
    // And they are what std-shaped code expects.
    fn read_write<T: Read + Write>() {}
    read_write::<TcpStream>();
    read_write::<&TcpStream>();
    read_write::<UnixStream>();
    read_write::<&UnixStream>();
    fn fd<T: std::os::fd::AsFd + std::os::fd::AsRawFd>() {}
    fd::<TcpStream>();
    fd::<TcpListener>();
    fd::<UdpSocket>();
    fd::<UnixStream>();
    fd::<UnixListener>();
    let _: fn(SocketAddr) -> io::Result<TcpStream> = TcpStream::connect;
}
