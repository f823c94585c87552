//! W8: a synchronous crate (serde_json, streaming reader and writer) on
//! sockets. The protocol is written once here, over `std::io`; each system
//! only supplies the streams (fuseau's fiber streams, Tokio's
//! `SyncIoBridge` in `spawn_blocking`, may's coroutine sockets).
//!
//! A client sends `messages` [`Request`]s on its connection, one at a time,
//! each followed by a flush, and reads the [`Response`] to each before
//! sending the next; the server answers each request as it parses it.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proc_status;

/// What a client sends.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The message's number on its connection.
    pub id: u64,
    /// The connection's number.
    pub a: u64,
    /// Added to `a` by the server.
    pub b: u64,
    /// A short string, whose length the server returns.
    pub name: String,
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// The request's `id`.
    pub id: u64,
    /// `a + b`.
    pub sum: u64,
    /// The length of the request's `name`.
    pub name_len: u64,
}

/// Serves one connection: answers every request until the client closes
/// its side.
///
/// # Errors
///
/// I/O and JSON errors.
pub fn serve(input: impl Read, mut output: impl Write) -> io::Result<()> {
    let requests = serde_json::Deserializer::from_reader(input).into_iter::<Request>();
    for request in requests {
        let request = request?;
        let response = Response {
            id: request.id,
            sum: request.a + request.b,
            name_len: request.name.len() as u64,
        };
        serde_json::to_writer(&mut output, &response)?;
        output.flush()?;
    }
    Ok(())
}

/// Client `conn`'s side: `messages` requests, each answer checked.
/// Returns the sum of the answers' `sum`s.
///
/// # Errors
///
/// I/O and JSON errors, and a wrong or missing answer (`InvalidData`).
pub fn client(
    conn: u64,
    messages: u64,
    input: impl Read,
    mut output: impl Write,
) -> io::Result<u64> {
    let mut responses = serde_json::Deserializer::from_reader(input).into_iter::<Response>();
    let mut total = 0;
    for id in 0..messages {
        let request = Request {
            id,
            a: conn,
            b: id,
            name: format!("connection {conn} message {id}"),
        };
        serde_json::to_writer(&mut output, &request)?;
        output.flush()?;
        let response = responses
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))??;
        if response.id != id || response.name_len != request.name.len() as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong response"));
        }
        total += response.sum;
    }
    Ok(total)
}

/// Checks W8's total (the sum every client returned) and reports requests
/// answered per second and the process's thread count (`Threads` of
/// `/proc/self/status`, read when this is called: after the clients are
/// done, before the server stops, so every thread the workload started is
/// still there; idle threads of Tokio's blocking pool live 10 s).
///
/// # Panics
///
/// If the total is wrong.
pub fn report(elapsed: Duration, connections: u64, messages: u64, total: u64) {
    let expected = connections * (connections - 1) / 2 * messages
        + connections * (messages * (messages - 1) / 2);
    assert_eq!(total, expected, "W8: wrong total");
    crate::report(&[
        (
            "msgs_per_s",
            (connections * messages) as f64 / elapsed.as_secs_f64(),
        ),
        ("threads", proc_status("Threads") as f64),
    ]);
}
