//! A TLS client in direct style: rustls's `StreamOwned`, a synchronous
//! `Read + Write` wrapper, over fuseau's std-shaped `TcpStream`. The code
//! is the same as with `std::net::TcpStream`, but waiting suspends the
//! fiber, so one thread serves many connections.
//!
//! With no network here, the program also runs the server: a TLS server
//! fiber with a self-signed certificate for `localhost` (made by rcgen),
//! which the clients trust.
//!
//! ```text
//! cargo run --example tls_client
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;

use fuseau_tokio::net::{TcpListener, TcpStream};
use fuseau_tokio::{Error, Result};

/// A TLS server configuration with a fresh self-signed certificate for
/// `localhost`, and a client configuration that trusts it.
fn configs() -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).map_err(Error::other)?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(Error::other)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).map_err(Error::other)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server), Arc::new(client)))
}

/// The client: one request line, then the reply until the server closes.
fn fetch(config: Arc<rustls::ClientConfig>, port: u16, name: &str) -> Result<String> {
    let stream = TcpStream::connect(("localhost", port))?;
    let server_name = "localhost".try_into().map_err(Error::other)?;
    let conn = rustls::ClientConnection::new(config, server_name).map_err(Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    writeln!(tls, "GREET {name}")?;
    tls.flush()?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply)?; // until the server's close_notify
    let suite = tls
        .conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    Ok(format!("{} (over {suite})", reply.trim_end()))
}

/// The server: answers `connections` clients, each in a fiber.
fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    connections: usize,
) -> Result<()> {
    let mut fibers = Vec::new();
    for _ in 0..connections {
        let (stream, _) = listener.accept()?;
        let config = config.clone();
        fibers.push(fuseau_tokio::spawn(move || {
            let conn = rustls::ServerConnection::new(config).map_err(Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let mut request = String::new();
            BufReader::new(&mut tls).read_line(&mut request)?;
            let name = request.trim_end().trim_start_matches("GREET ");
            writeln!(tls, "hello, {name}")?;
            tls.conn.send_close_notify();
            tls.flush()?;
            Ok(())
        }));
    }
    fibers.into_iter().try_for_each(|f| f.join())
}

fn main() -> Result<()> {
    fuseau_tokio::main(|| {
        let (server_config, client_config) = configs()?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let names = ["alice", "bob", "carol"];
        let server = fuseau_tokio::spawn(move || serve(listener, server_config, names.len()));
        let clients: Vec<_> = names
            .into_iter()
            .map(|name| {
                let config = client_config.clone();
                fuseau_tokio::spawn(move || fetch(config, port, name))
            })
            .collect();
        for (name, client) in names.into_iter().zip(clients) {
            println!("{name}: {}", client.join()?);
        }
        server.join()
    })
}
