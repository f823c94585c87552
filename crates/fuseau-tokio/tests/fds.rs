//! No descriptor leaks: the number of open fds of the process is the same
//! before and after each socket scenario (servers, clients, resets,
//! shutdowns, cancellations, fd I/O).
//!
//! Exactly one `#[test]` in this binary, so that no other test opens or
//! closes descriptors at the same time; the scenarios run one after the
//! other.

mod bounded;
mod common;

use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use common::{echo, full_listener, localhost, ms};
use fuseau_tokio::iostream::{self, In, Out};
use fuseau_tokio::net::{ServerBuilder, TcpClient, TcpServer, UnixClient, UnixServer};
use fuseau_tokio::{await_future, io as fio, AnyFiber, Builder, Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn round_trip(input: &mut In, output: &mut Out, text: &str) -> io::Result<String> {
    writeln!(output, "{text}")?;
    output.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line)
}

fn echo_clients() -> Result<()> {
    let server = TcpServer::establish(localhost(), |_, i, o| echo(i, o))?;
    let addr = server.local_addr();
    let clients: Vec<_> = (0..20)
        .map(|c| {
            fuseau_tokio::spawn(move || {
                TcpClient::with_connect(addr, |i, o| round_trip(i, o, &format!("client {c}")))?
                    .map_err(Error::from)
            })
        })
        .collect();
    for (c, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join()?, format!("client {c}\n"));
    }
    server.shutdown()
}

fn peer_reset() -> Result<()> {
    let server = ServerBuilder::new()
        .on_error(|_, _| {})
        .establish_tcp(localhost(), |_, i, o| echo(i, o))?;
    let mut stream = await_future(TcpStream::connect(server.local_addr()))??;
    await_future(stream.write_all(b"ping"))??;
    await_future(stream.read_exact(&mut [0u8; 4]))??;
    stream.set_zero_linger()?;
    drop(stream);
    fuseau_tokio::sleep(ms(5))?;
    server.shutdown()
}

fn shutdown_with_live_connections() -> Result<()> {
    let server = TcpServer::establish(localhost(), |_, i, o| echo(i, o))?;
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(await_future(TcpStream::connect(server.local_addr()))??);
    }
    fuseau_tokio::sleep(ms(5))?;
    server.shutdown()?;
    for mut client in clients {
        assert_eq!(await_future(client.read(&mut [0u8; 4]))??, 0);
    }
    Ok(())
}

fn failing_handlers() -> Result<()> {
    let server = ServerBuilder::new().on_error(|_, _| {}).establish_tcp(
        localhost(),
        |_, mut input, _| {
            let mut line = String::new();
            input.read_line(&mut line)?;
            if line == "panic\n" {
                panic!("asked to panic");
            }
            Err(Error::from("asked to fail"))
        },
    )?;
    for request in ["fail", "panic"] {
        TcpClient::with_connect(server.local_addr(), |input, output| {
            writeln!(output, "{request}")?;
            output.flush()?;
            input.read_to_end(&mut Vec::new())
        })??;
    }
    server.shutdown()
}

fn connect_cancellations() -> Result<()> {
    // Before the call.
    let client = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
        AnyFiber::current().cancel();
        TcpClient::with_connect(localhost(), |_, _| ())
    });
    assert!(client.join().unwrap_err().is_cancelled());
    // While connecting: to a listener whose accept queue is full.
    let (listener, _held) = full_listener()?;
    let addr = listener.local_addr()?;
    let client = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn(move || TcpClient::with_connect(addr, |_, _| ()));
    fuseau_tokio::sleep(ms(10))?;
    client.cancel();
    assert!(client.join().unwrap_err().is_cancelled());
    // Inside the closure.
    let server = TcpServer::establish(localhost(), |_, i, o| echo(i, o))?;
    let addr = server.local_addr();
    let client = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn(move || TcpClient::with_connect(addr, |input, _| input.read(&mut [0u8; 4])));
    fuseau_tokio::sleep(ms(5))?;
    client.cancel();
    assert!(client.join().unwrap_err().is_cancelled());
    server.shutdown()
}

fn unix_domain() -> Result<()> {
    let path = std::env::temp_dir().join(format!("fuseau-fds-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = UnixServer::establish(&path, echo)?;
    for c in 0..5 {
        let reply =
            UnixClient::with_connect(&path, |i, o| round_trip(i, o, &format!("unix {c}")))??;
        assert_eq!(reply, format!("unix {c}\n"));
    }
    server.shutdown()?;
    std::fs::remove_file(&path)?;
    Ok(())
}

fn fd_io_and_streams() -> Result<()> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    // A read cancelled while waiting.
    let a2 = a.try_clone()?;
    let reader = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn(move || fio::read(a2.as_fd(), &mut [0u8; 4]));
    fuseau_tokio::sleep(ms(2))?;
    reader.cancel();
    assert!(reader.join().unwrap_err().is_cancelled());
    fio::write(b.as_fd(), b"data")?;
    let mut buf = [0u8; 4];
    assert_eq!(fio::read(a.as_fd(), &mut buf)?, 4);
    // Streams over owned descriptors.
    let mut input = In::of_fd(OwnedFd::from(a.try_clone()?))?;
    let mut output = Out::of_fd(OwnedFd::from(b))?;
    output.write_all(b"over raw fds\n")?;
    output.close()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    assert_eq!(line, "over raw fds\n");
    drop(input);
    drop(a);
    // Tokio streams split in two.
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let (mut input, _a_out) = iostream::unix(tokio::net::UnixStream::from_std(a)?);
    let (_b_in, mut output) = iostream::unix(tokio::net::UnixStream::from_std(b)?);
    output.write_all(b"x")?;
    output.close()?;
    input.read_to_end(&mut Vec::new())?;
    Ok(())
}

/// A burst of live fibers: their stacks' slots are carved in batches, whose
/// guard pages are installed through a pidfd of the process (closed after
/// each batch).
fn fiber_burst() -> Result<()> {
    let fibers: Vec<_> = (0..1_000)
        .map(|_| fuseau_tokio::spawn(|| fuseau_tokio::sleep(ms(1))))
        .collect();
    for f in fibers {
        f.join()?;
    }
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore)]
fn socket_scenarios_leak_no_descriptors() {
    type Scenario = fn() -> Result<()>;
    let scenarios: [(&str, Scenario); 8] = [
        ("fiber burst", fiber_burst),
        ("echo clients", echo_clients),
        ("peer reset", peer_reset),
        (
            "shutdown with live connections",
            shutdown_with_live_connections,
        ),
        ("failing handlers", failing_handlers),
        ("connect cancellations", connect_cancellations),
        ("unix domain", unix_domain),
        ("fd io and streams", fd_io_and_streams),
    ];
    // Warm up whatever the process opens once (none expected, but this
    // makes the counts independent of first-use effects).
    bounded::main(|| Ok(())).unwrap();
    let mut leaks = Vec::new();
    for (name, scenario) in scenarios {
        let before = open_fds();
        bounded::main(scenario).unwrap_or_else(|e| panic!("{name}: {e:?}"));
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
