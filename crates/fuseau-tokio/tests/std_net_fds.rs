//! No descriptor leaks from the std-shaped sockets of `fuseau_tokio::net`:
//! the number of open fds of the process is the same before and after each
//! scenario (connections, clones, resets, refusals, timeouts,
//! cancellations, conversions, UDP and Unix-domain sockets).
//!
//! Exactly one `#[test]` in this binary, so that no other test opens or
//! closes descriptors at the same time; the scenarios run one after the
//! other.

mod bounded;
mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use common::{full_listener, localhost, ms};
use fuseau_tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use fuseau_tokio::{Builder, Error, Result};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn cancellable<T: 'static>(f: impl FnOnce() -> Result<T> + 'static) -> fuseau_tokio::Fiber<T> {
    Builder::new().propagate_cancel_to_parent(false).spawn(f)
}

fn echo_connections() -> Result<()> {
    let listener = TcpListener::bind(localhost())?;
    let addr = listener.local_addr()?;
    let server = cancellable(move || {
        for stream in listener.incoming() {
            let stream = stream?;
            fuseau_tokio::spawn(move || {
                io::copy(&mut &stream, &mut &stream)?;
                Ok(())
            });
        }
        Ok(())
    });
    let clients: Vec<_> = (0..20)
        .map(|c| {
            fuseau_tokio::spawn(move || {
                let stream = TcpStream::connect(("localhost", addr.port()))?;
                let reader = stream.try_clone()?;
                writeln!(&stream, "client {c}")?;
                stream.shutdown(Shutdown::Write)?;
                let mut reply = String::new();
                BufReader::new(reader).read_line(&mut reply)?;
                Ok(reply)
            })
        })
        .collect();
    for (c, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join()?, format!("client {c}\n"));
    }
    server.cancel();
    assert!(server.join().unwrap_err().is_cancelled());
    Ok(())
}

fn failed_connections() -> Result<()> {
    // Refused.
    let port = std::net::TcpListener::bind(localhost())?
        .local_addr()?
        .port();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // Unresolvable.
    assert!(TcpStream::connect("nonsense").is_err());
    assert!(TcpStream::connect("name.invalid:80").is_err());
    // Timed out, and cancelled while connecting.
    let (full, held) = full_listener()?;
    let addr = full.local_addr()?;
    assert!(TcpStream::connect_timeout(&addr, ms(20)).is_err());
    let client = cancellable(move || Ok(TcpStream::connect(addr)?));
    fuseau_tokio::sleep(ms(10))?;
    client.cancel();
    assert!(client.join().unwrap_err().is_cancelled());
    drop((full, held));
    Ok(())
}

fn resets_and_shutdowns() -> Result<()> {
    let listener = TcpListener::bind(localhost())?;
    for _ in 0..5 {
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        (&client).write_all(b"ping")?;
        (&server).read_exact(&mut [0; 4])?;
        let server = server.into_tokio()?;
        server.set_zero_linger()?;
        drop(server);
        assert!((&client).read(&mut [0; 4]).is_err());
    }
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    client.shutdown(Shutdown::Both)?;
    assert_eq!((&server).read(&mut [0; 4])?, 0);
    Ok(())
}

fn cancelled_waits() -> Result<()> {
    let listener = Rc::new(TcpListener::bind(localhost())?);
    let l = listener.clone();
    let acceptor = cancellable(move || Ok(l.accept()?));
    fuseau_tokio::yield_now()?;
    acceptor.cancel();
    assert!(acceptor.join().unwrap_err().is_cancelled());
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    // A read and a write (the peer does not read), both waiting at once on
    // one connection through clones.
    let reader_half = client.try_clone()?;
    let reader = cancellable(move || Ok((&reader_half).read(&mut [0; 16])?));
    let writer = cancellable::<()>(move || loop {
        let _written = (&client).write(&[1u8; 64 * 1024])?;
    });
    fuseau_tokio::sleep(ms(20))?;
    reader.cancel();
    writer.cancel();
    assert!(reader.join().unwrap_err().is_cancelled());
    assert!(writer.join().unwrap_err().is_cancelled());
    drop(server);
    // Timeouts.
    let (a, _b) = UnixStream::pair()?;
    a.set_read_timeout(Some(ms(1)))?;
    assert!((&a).read(&mut [0; 4]).is_err());
    Ok(())
}

fn udp_sockets() -> Result<()> {
    let a = UdpSocket::bind(localhost())?;
    let b = Rc::new(UdpSocket::bind(localhost())?);
    a.connect(b.local_addr()?)?;
    a.send(b"one")?;
    assert_eq!(b.recv_from(&mut [0; 8])?.0, 3);
    let b2 = b.clone();
    let receiver = cancellable(move || Ok(b2.recv_from(&mut [0; 8])?));
    fuseau_tokio::yield_now()?;
    receiver.cancel();
    assert!(receiver.join().unwrap_err().is_cancelled());
    let clone = a.try_clone()?;
    clone.send(b"two")?;
    Ok(())
}

fn unix_domain() -> Result<()> {
    let path = std::env::temp_dir().join(format!("fuseau-std-net-fds-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let p = path.clone();
    let clients = fuseau_tokio::spawn(move || {
        for i in 0..5 {
            let mut stream = UnixStream::connect(&p)?;
            write!(stream, "{i}")?;
        }
        Ok(())
    });
    for stream in listener.incoming().take(5) {
        let mut text = String::new();
        stream?.read_to_string(&mut text)?;
    }
    clients.join()?;
    drop(listener);
    std::fs::remove_file(&path)?;
    let (a, b) = UnixStream::pair()?;
    let _a2 = a.try_clone()?;
    drop(b);
    assert_eq!((&a).read(&mut [0; 4])?, 0);
    Ok(())
}

fn conversions() -> Result<()> {
    let listener = TcpListener::from_std(std::net::TcpListener::bind(localhost())?)?;
    let addr = listener.local_addr()?;
    let client = TcpStream::from_std(std::net::TcpStream::connect(addr)?)?;
    let (server, _) = listener.accept()?;
    // Refused while a clone lives: the handle is dropped, the socket stays.
    let clone = client.try_clone()?;
    assert!(clone.into_std().is_err());
    let std_client = client.into_std()?;
    let tokio_server = server.into_tokio()?;
    let listener = listener.into_std()?;
    drop((std_client, tokio_server, listener));
    let udp = UdpSocket::from_std(std::net::UdpSocket::bind(localhost())?)?;
    drop(udp.into_tokio()?);
    let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    drop(UnixStream::from_std(a)?.into_std()?);
    Ok(())
}

fn outside_fibers() -> Result<()> {
    let (client, server) = {
        let listener = TcpListener::bind(localhost())?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        (client, listener.accept()?.0)
    };
    let thread = std::thread::spawn(move || {
        assert!((&server).read(&mut [0; 4]).is_err());
        assert!(TcpStream::connect("127.0.0.1:1").is_err());
        assert!(UnixStream::pair().is_err());
        drop(server);
    });
    fuseau_tokio::await_future(tokio::task::spawn_blocking(move || thread.join()))?
        .expect("the task did not panic")
        .expect("the thread did not panic");
    drop(client);
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore)]
fn std_shaped_sockets_leak_no_descriptors() {
    type Scenario = fn() -> Result<()>;
    let scenarios: [(&str, Scenario); 8] = [
        ("echo connections", echo_connections),
        ("failed connections", failed_connections),
        ("resets and shutdowns", resets_and_shutdowns),
        ("cancelled waits", cancelled_waits),
        ("udp sockets", udp_sockets),
        ("unix domain", unix_domain),
        ("conversions", conversions),
        ("outside fibers", outside_fibers),
    ];
    // Warm up what the process opens once (Tokio's signal driver keeps a
    // process-wide pipe from the first runtime on), and Tokio's blocking
    // pool (name resolution).
    bounded::main(|| {
        let _ = TcpStream::connect(("localhost", 1));
        Ok(())
    })
    .unwrap();
    let mut leaks = Vec::new();
    for (name, scenario) in scenarios {
        let before = open_fds();
        bounded::main(scenario).unwrap_or_else(|e: Error| panic!("{name}: {e:?}"));
        // Give a moment to anything closing on another thread (nothing
        // should), then count.
        std::thread::sleep(Duration::from_millis(5));
        let after = open_fds();
        if before != after {
            leaks.push(format!("{name}: {before} fds before, {after} after"));
        }
    }
    assert!(leaks.is_empty(), "descriptors leaked: {leaks:#?}");
}
