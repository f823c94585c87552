//! W6's (and W6m's, W6a's) load generator, the same for every system: called
//! as `bench-load W6 <connections> <round trips> <message bytes> <port>` (W6m
//! and W6a have the server's thread count before the port; the port is always the
//! last argument), it
//! opens every connection to the echo server on `127.0.0.1:<port>` at once
//! and, on each, writes a message and reads it back whole (checked),
//! `round trips` times. Tokio, current-thread runtime, one task per
//! connection. Prints `RESULT rt_per_s=…` (round trips over all
//! connections per second of wall time, connecting included). The driver
//! pins it to another core than the server's. See `benches/README.md`.

use std::time::Instant;

use fuseau_bench::{localhost, report, Args, EchoParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args = Args::parse();
    let p = EchoParams::of(&args);
    let port = args.params.last().and_then(|&p| u16::try_from(p).ok());
    let port = port.expect("the port, last");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    local.block_on(&runtime, async move {
        let clients: Vec<_> = (0..p.connections)
            .map(|c| tokio::task::spawn_local(client(port, c, p)))
            .collect();
        for c in clients {
            c.await.expect("client panicked");
        }
    });
    let elapsed = start.elapsed();
    report(&[("rt_per_s", p.total() as f64 / elapsed.as_secs_f64())]);
}

/// Connection `c`: `p.round_trips` round trips of `p.message` bytes, each
/// echo checked.
async fn client(port: u16, c: u64, p: EchoParams) {
    let mut stream = TcpStream::connect(localhost(port)).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut message = vec![0u8; p.message as usize];
    let mut reply = vec![0u8; p.message as usize];
    for i in 0..p.round_trips {
        message.fill((c + i) as u8);
        stream.write_all(&message).await.expect("write");
        stream.read_exact(&mut reply).await.expect("read");
        assert_eq!(reply, message, "the echo differs");
    }
}
