//! A WebSocket echo server in direct style: tungstenite, a synchronous
//! crate, on fuseau's std-shaped `TcpListener`/`TcpStream`. Each connection
//! is a fiber running tungstenite's blocking API; waiting suspends the
//! fiber, never the thread.
//!
//! ```text
//! cargo run --example ws_echo                      # the server and three clients, then exit
//! cargo run --example ws_echo -- --serve 127.0.0.1:9001
//!                                                  # serve until interrupted (Ctrl-C)
//! ```

use std::net::SocketAddr;

use fuseau_tokio::net::{TcpListener, TcpStream};
use fuseau_tokio::{Builder, Error, Fiber, Result};
use tungstenite::Message;

/// Serves one WebSocket connection: every text or binary message comes
/// back, until the client closes. Returns how many messages it echoed.
/// (`pub` for `crates/fuseau-tokio/tests/sync_crates.rs`, which serves its
/// own client with it.)
pub fn serve(stream: TcpStream) -> Result<u64> {
    let mut ws = tungstenite::accept(stream).map_err(|e| Error::other(e.to_string()))?;
    let mut echoed = 0;
    loop {
        match ws.read() {
            Ok(message) if message.is_text() || message.is_binary() => {
                ws.send(message).map_err(Error::other)?;
                echoed += 1;
            }
            // Pings are answered, and a close replied to, by tungstenite.
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Ok(echoed),
            Err(e) => return Err(Error::other(e)),
        }
    }
}

/// Accepts connections on `listener` for ever, a fiber per connection.
fn accept_loop(listener: TcpListener) -> Result<()> {
    for stream in listener.incoming() {
        let stream = stream?;
        let peer = stream.peer_addr()?;
        Builder::new()
            .name(format!("ws {peer}"))
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                if let Err(e) = serve(stream) {
                    eprintln!("{peer}: {e}");
                }
                Ok(())
            });
    }
    Ok(())
}

/// A client: connects, sends `count` messages and prints each echo.
fn client(addr: SocketAddr, name: &str, count: usize) -> Result<Vec<String>> {
    let stream = TcpStream::connect(addr)?;
    let (mut ws, _response) = tungstenite::client(format!("ws://{addr}/"), stream)
        .map_err(|e| Error::other(e.to_string()))?;
    let mut seen = Vec::new();
    for i in 0..count {
        ws.send(Message::text(format!("{name} #{i}")))
            .map_err(Error::other)?;
        let reply = ws.read().map_err(Error::other)?;
        seen.push(format!(
            "{name} got back: {}",
            reply.to_text().map_err(Error::other)?
        ));
    }
    ws.close(None).map_err(Error::other)?;
    // Read until the server's close reply.
    while ws.read().is_ok() {}
    Ok(seen)
}

/// The server and three client fibers on one thread; their output in
/// client order (the same on every run).
pub fn demo() -> Result<Vec<String>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server: Fiber<()> = fuseau_tokio::spawn(move || accept_loop(listener));
    let clients: Vec<_> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| fuseau_tokio::spawn(move || client(addr, name, 2)))
        .collect();
    let mut lines = Vec::new();
    for c in clients {
        lines.extend(c.join()?);
    }
    server.cancel();
    Ok(lines)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    fuseau_tokio::main(move || match args.as_slice() {
        [] => {
            for line in demo()? {
                println!("{line}");
            }
            Ok(())
        }
        [flag, addr] if flag == "--serve" => {
            let listener = TcpListener::bind(addr.as_str())?;
            println!("serving WebSocket echo on ws://{}", listener.local_addr()?);
            let server = fuseau_tokio::spawn(move || accept_loop(listener));
            fuseau_tokio::signal::ctrl_c()?;
            server.cancel();
            Ok(())
        }
        _ => Err(Error::from("usage: ws_echo [--serve ADDR]")),
    })
}
