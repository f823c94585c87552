//! Synchronous crates that nobody here wrote, driven over fuseau's
//! std-shaped sockets in fibers of one thread: TLS (rustls's `StreamOwned`,
//! a certificate from rcgen), WebSocket (tungstenite), and Tokio's own
//! sockets on the other end of a connection, both ways.
//!
//! Each scenario runs its server and its client as fibers of one scheduler
//! (and the examples `ws_echo` and `tls_client` do the same): a call that
//! blocked the thread instead of suspending the fiber would deadlock.

mod common;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../examples/ws_echo.rs"]
mod ws_echo;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;

use fuseau_tokio::net::{TcpListener, TcpStream};
use fuseau_tokio::{await_future, spawn, Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A server and a client TLS configuration that trust one self-signed
/// certificate for `localhost`, made by rcgen.
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a self-signed certificate");
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("the server's certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("a root");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn tls_error(e: rustls::Error) -> Error {
    Error::other(e)
}

#[test]
fn tls_client_and_server_with_rustls_stream_owned() {
    let (server_config, client_config) = tls_configs();
    let greeted = fuseau_tokio::main(move || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = spawn(move || {
            let mut served = Vec::new();
            for _ in 0..3 {
                let (stream, _) = listener.accept()?;
                let conn =
                    rustls::ServerConnection::new(server_config.clone()).map_err(tls_error)?;
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut name = String::new();
                BufReader::new(&mut tls).read_line(&mut name)?;
                write!(tls, "hello, {}", name)?;
                tls.conn.send_close_notify();
                tls.flush()?;
                served.push(name.trim_end().to_string());
            }
            Ok(served)
        });
        let clients: Vec<_> = (0..3)
            .map(|c| {
                let config = client_config.clone();
                spawn(move || {
                    let stream = TcpStream::connect(("localhost", addr.port()))?;
                    let name = "localhost".try_into().expect("a server name");
                    let conn = rustls::ClientConnection::new(config, name).map_err(tls_error)?;
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    writeln!(tls, "client {c}")?;
                    tls.flush()?;
                    let mut reply = String::new();
                    tls.read_to_string(&mut reply)?; // until close_notify
                    Ok(reply)
                })
            })
            .collect();
        let replies = clients
            .into_iter()
            .map(|c| c.join())
            .collect::<Result<Vec<_>>>()?;
        let mut served = server.join()?;
        served.sort();
        Ok((replies, served))
    });
    let (replies, served) = greeted.unwrap();
    assert_eq!(
        replies,
        [
            "hello, client 0\n",
            "hello, client 1\n",
            "hello, client 2\n"
        ]
    );
    assert_eq!(served, ["client 0", "client 1", "client 2"]);
}

#[test]
fn tls_handshake_with_an_untrusted_certificate_fails_on_both_sides() {
    let (server_config, _) = tls_configs();
    // The client trusts another certificate than the server's.
    let (_, client_config) = tls_configs();
    let outcome = fuseau_tokio::main(move || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = spawn(move || {
            let (stream, _) = listener.accept()?;
            let conn = rustls::ServerConnection::new(server_config).map_err(tls_error)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            Ok(tls.read(&mut [0u8; 16]).map_err(|e| e.kind()))
        });
        let client = spawn(move || {
            let stream = TcpStream::connect(addr)?;
            let name = "localhost".try_into().expect("a server name");
            let conn = rustls::ClientConnection::new(client_config, name).map_err(tls_error)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            Ok(tls.write_all(b"secret").map_err(|e| e.kind()))
        });
        Ok((client.join()?, server.join()?))
    });
    let (client, server) = outcome.unwrap();
    assert_eq!(client, Err(std::io::ErrorKind::InvalidData));
    assert!(server.is_err(), "the server saw {server:?}");
}

#[test]
fn websocket_echo_with_tungstenite() {
    use tungstenite::Message;
    let echoed = fuseau_tokio::main(|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        // The server: the example's, on tungstenite's server side.
        let server = spawn(move || ws_echo::serve(listener.accept()?.0));
        let client = spawn(move || {
            let stream = TcpStream::connect(addr)?;
            let (mut ws, response) = tungstenite::client(format!("ws://{addr}/echo"), stream)
                .map_err(|e| Error::other(e.to_string()))?;
            assert_eq!(response.status(), 101);
            let mut replies = Vec::new();
            for i in 0..20 {
                ws.send(Message::text(format!("message {i}")))
                    .map_err(Error::other)?;
                let reply = ws.read().map_err(Error::other)?;
                replies.push(reply.into_text().map_err(Error::other)?.to_string());
            }
            ws.send(Message::binary(vec![0u8, 1, 2, 255]))
                .map_err(Error::other)?;
            let binary = ws.read().map_err(Error::other)?.into_data();
            ws.close(None).map_err(Error::other)?;
            loop {
                match ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::ConnectionClosed) => break,
                    Err(e) => return Err(Error::other(e)),
                }
            }
            Ok((replies, binary.to_vec()))
        });
        let (replies, binary) = client.join()?;
        Ok((replies, binary, server.join()?))
    });
    let (replies, binary, server_echoed) = echoed.unwrap();
    let expected: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
    assert_eq!(replies, expected);
    assert_eq!(binary, [0, 1, 2, 255]);
    assert_eq!(server_echoed, 21);
}

#[test]
fn a_tokio_client_talks_to_a_fiber_listener() {
    let lines = fuseau_tokio::main(|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        // The client is a Tokio task on the same thread, in async style.
        let client = tokio::task::spawn_local(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(b"from tokio\n").await?;
            let mut reply = String::new();
            tokio::io::BufReader::new(&mut stream)
                .read_line(&mut reply)
                .await?;
            Ok::<_, std::io::Error>(reply)
        });
        let (stream, _) = listener.accept()?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        (&stream).write_all(format!("fiber got {line}").as_bytes())?;
        let reply = await_future(client)?.map_err(Error::other)??;
        Ok((line, reply))
    });
    let (line, reply) = lines.unwrap();
    assert_eq!(line, "from tokio\n");
    assert_eq!(reply, "fiber got from tokio\n");
}

#[test]
fn a_fiber_client_talks_to_a_tokio_listener() {
    let lines = fuseau_tokio::main(|| {
        let listener = await_future(tokio::net::TcpListener::bind("127.0.0.1:0"))??;
        let addr = listener.local_addr()?;
        let server = tokio::task::spawn_local(async move {
            let (mut stream, _) = listener.accept().await?;
            let (read, mut write) = stream.split();
            let mut line = String::new();
            tokio::io::BufReader::new(read).read_line(&mut line).await?;
            write
                .write_all(format!("tokio got {line}").as_bytes())
                .await?;
            Ok::<_, std::io::Error>(line)
        });
        let mut stream = TcpStream::connect(addr)?;
        stream.write_all(b"from a fiber\n")?;
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply)?;
        let line = await_future(server)?.map_err(Error::other)??;
        Ok((line, reply))
    });
    let (line, reply) = lines.unwrap();
    assert_eq!(line, "from a fiber\n");
    assert_eq!(reply, "tokio got from a fiber\n");
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_websocket_example_echoes_every_message() {
    let Some(binary) = common::example_binary("ws_echo") else {
        eprintln!("the ws_echo example was not built; skipping");
        return;
    };
    let output = common::run_example(&binary, &[]);
    let expected: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .flat_map(|name| (0..2).map(move |i| format!("{name} got back: {name} #{i}")))
        .collect();
    assert_eq!(output.lines().collect::<Vec<_>>(), expected);
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_tls_client_example_greets_over_tls() {
    let Some(binary) = common::example_binary("tls_client") else {
        eprintln!("the tls_client example was not built; skipping");
        return;
    };
    let output = common::run_example(&binary, &[]);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 3, "{output}");
    for (line, name) in lines.iter().zip(["alice", "bob", "carol"]) {
        assert!(
            line.starts_with(&format!("{name}: hello, {name} (over TLS")),
            "{line}"
        );
    }
}
