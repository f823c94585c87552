//! An echo server and its clients, in one program, in direct style: each
//! connection is a fiber running plain `std::io` code, on Tokio's sockets.
//!
//! ```text
//! cargo run --example echo                  # a few clients, their replies
//! cargo run --example echo -- --load 100 1000
//!                                           # 100 connections × 1000 round
//!                                           # trips of 64 bytes, timed
//! ```

use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fuseau_tokio::net::{TcpClient, TcpServer};
use fuseau_tokio::{Error, Result};

/// The size of one message in `--load` mode.
pub const MESSAGE: usize = 64;

/// Starts an echo server on `127.0.0.1`, on a free port: every byte a
/// client sends comes back, until the client closes its side.
pub fn start_server() -> Result<TcpServer> {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    TcpServer::establish(addr, |_peer, mut input, mut output| {
        loop {
            // Whatever has arrived goes straight back.
            let chunk = input.fill_buf()?;
            if chunk.is_empty() {
                break; // The client closed its side.
            }
            let n = chunk.len();
            output.write_all(chunk)?;
            output.flush()?;
            input.consume(n);
        }
        output.close()
    })
}

/// The default mode: three clients, each a fiber, send two lines each and
/// read them back. Returns what they saw, in client order (the same output
/// every run, whichever finishes first).
pub fn demo() -> Result<Vec<String>> {
    let server = start_server()?;
    let addr = server.local_addr();
    let clients: Vec<_> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| {
            fuseau_tokio::spawn(move || {
                TcpClient::with_connect(addr, |input, output| {
                    let mut seen = Vec::new();
                    for greeting in ["hello", "goodbye"] {
                        writeln!(output, "{greeting} from {name}")?;
                        output.flush()?;
                        let mut line = String::new();
                        input.read_line(&mut line)?;
                        seen.push(format!("{name} got back: {}", line.trim_end()));
                    }
                    Ok::<_, std::io::Error>(seen)
                })?
                .map_err(Error::from)
            })
        })
        .collect();
    let mut lines = Vec::new();
    for client in clients {
        lines.extend(client.join()?);
    }
    server.shutdown()?;
    lines.push("the server is shut down".to_owned());
    Ok(lines)
}

/// What [`load`] measured.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    /// Round trips completed, over all connections.
    pub round_trips: u64,
    /// How long they took.
    pub elapsed: Duration,
}

/// `connections` client fibers, each doing `round_trips` round trips of
/// [`MESSAGE`] bytes with the echo server, all at once.
pub fn load(connections: usize, round_trips: usize) -> Result<LoadReport> {
    let server = start_server()?;
    let addr = server.local_addr();
    let start = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|c| {
            fuseau_tokio::spawn(move || {
                TcpClient::with_connect(addr, |input, output| {
                    let mut message = [0u8; MESSAGE];
                    let mut reply = [0u8; MESSAGE];
                    for i in 0..round_trips {
                        message.fill((c + i) as u8);
                        output.write_all(&message)?;
                        output.flush()?;
                        input.read_exact(&mut reply)?;
                        if reply != message {
                            return Err(std::io::Error::other("the echo differs"));
                        }
                    }
                    Ok(round_trips as u64)
                })?
                .map_err(Error::from)
            })
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.join()?;
    }
    let elapsed = start.elapsed();
    server.shutdown()?;
    Ok(LoadReport {
        round_trips: total,
        elapsed,
    })
}

fn parse_arg(args: &[String], i: usize, default: usize) -> Result<usize> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| Error::from(format!("not a number: {s:?}"))),
    }
}

/// Runs the program with command-line arguments `args` (without the
/// program's name).
pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        None => fuseau_tokio::main(|| {
            for line in demo()? {
                println!("{line}");
            }
            Ok(())
        }),
        Some("--load") => {
            let connections = parse_arg(args, 1, 100)?;
            let round_trips = parse_arg(args, 2, 1000)?;
            let report = fuseau_tokio::main(move || load(connections, round_trips))?;
            let seconds = report.elapsed.as_secs_f64();
            println!(
                "{connections} connections × {round_trips} round trips of {MESSAGE} bytes: \
                 {} round trips in {seconds:.3} s, {:.0} round trips/s",
                report.round_trips,
                report.round_trips as f64 / seconds.max(1e-9),
            );
            Ok(())
        }
        Some(other) => Err(Error::from(format!(
            "unknown argument {other:?}; usage: echo [--load [connections] [round-trips]]"
        ))),
    }
}

#[allow(dead_code)] // Not called when a test includes this file.
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    run(&args)
}
