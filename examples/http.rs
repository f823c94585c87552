//! hyper, used from fibers in direct style: an HTTP/1 server whose request
//! handlers are fibers, and clients that are fibers too.
//!
//! hyper drives each connection in a Tokio task (`spawn_local`), as usual;
//! its service turns every request into a fiber with
//! [`FutureBuilder`](fuseau_tokio::FutureBuilder), so a handler is plain
//! sequential code that may sleep, read the request body or call other
//! services without `async`. The handler fibers are children of the server's
//! fiber: shutting the server down cancels the requests in flight. If hyper
//! drops a request (its client went away), the fiber is cancelled too.
//!
//! ```text
//! cargo run --example http
//! ```

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use fuseau_tokio::{await_future, AnyFiber, Builder, Error, Fiber, FutureBuilder, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

thread_local! {
    /// How many handler fibers were cancelled (by a shutdown, or by hyper
    /// dropping their request).
    static CANCELLED_HANDLERS: Cell<usize> = const { Cell::new(0) };
}

/// How many request handlers on this thread were cancelled so far.
pub fn cancelled_handlers() -> usize {
    CANCELLED_HANDLERS.with(Cell::get)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response
}

/// A request handler: runs in a fiber of its own, in direct style.
fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>> {
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/") => {
            let me = AnyFiber::current();
            Ok(text(
                StatusCode::OK,
                format!("hello from the fiber named {:?}", me.name().unwrap_or("?")),
            ))
        }
        (Method::GET, p) if p.starts_with("/sleep/") => {
            let ms: u64 = p["/sleep/".len()..].parse().map_err(Error::other)?;
            // A fiber's sleep: no `.await`, and a cancellation point.
            if let Err(e) = fuseau_tokio::sleep(Duration::from_millis(ms)) {
                CANCELLED_HANDLERS.with(|c| c.set(c.get() + 1));
                return Err(e);
            }
            Ok(text(StatusCode::OK, format!("slept {ms} ms in a fiber")))
        }
        (Method::POST, "/sum") => {
            // The body, read by hyper's connection task, awaited here.
            let body = await_future(request.into_body().collect())?
                .map_err(Error::other)?
                .to_bytes();
            match serde_json::from_slice::<Vec<i64>>(&body) {
                Ok(numbers) => {
                    let sum: i64 = numbers.iter().sum();
                    let reply = serde_json::json!({ "count": numbers.len(), "sum": sum });
                    Ok(text(StatusCode::OK, reply.to_string()))
                }
                Err(e) => Ok(text(StatusCode::BAD_REQUEST, format!("bad JSON: {e}"))),
            }
        }
        _ => Ok(text(StatusCode::NOT_FOUND, format!("no route for {path}"))),
    }
}

/// A running HTTP server.
pub struct Server {
    addr: SocketAddr,
    acceptor: Fiber<()>,
}

impl Server {
    /// Listens on `127.0.0.1`, on a free port, from the calling fiber; the
    /// server's fiber is a child of the caller.
    pub fn start() -> Result<Server> {
        let listener = await_future(TcpListener::bind("127.0.0.1:0"))??;
        let addr = listener.local_addr()?;
        let acceptor = Builder::new()
            .name("http server")
            .spawn(move || -> Result<()> {
                let server_fiber = AnyFiber::current();
                loop {
                    let (stream, _) = await_future(listener.accept())??;
                    let server_fiber = server_fiber.clone();
                    // hyper drives the connection in a Tokio task…
                    tokio::task::spawn_local(async move {
                        let service = service_fn(move |request| {
                            // …and each request runs in a fiber, a child of
                            // the server's fiber whose failure stays its own.
                            FutureBuilder::new()
                                .parent(&server_fiber)
                                .name("request handler")
                                .propagate_cancel_to_parent(false)
                                .spawn(move || handle(request))
                        });
                        let connection =
                            http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = connection.await {
                            eprintln!("http: a connection failed: {e}");
                        }
                    });
                }
            });
        Ok(Server { addr, acceptor })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and cancels the requests in flight; returns once
    /// their fibers are done.
    pub fn shutdown(self) -> Result<()> {
        self.acceptor.cancel();
        match self.acceptor.join() {
            Err(e) if e.is_cancelled() => Ok(()),
            other => other,
        }
    }
}

/// A hyper client request, from a fiber: `(status, body)`.
pub fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &str,
) -> Result<(StatusCode, String)> {
    let stream = await_future(TcpStream::connect(addr))??;
    let (mut sender, connection) =
        await_future(hyper::client::conn::http1::handshake(TokioIo::new(stream)))?
            .map_err(Error::other)?;
    // The client's connection is driven by a Tokio task too.
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(Error::other)?;
    let response = await_future(sender.send_request(request))?.map_err(Error::other)?;
    let status = response.status();
    let body = await_future(response.into_body().collect())?
        .map_err(Error::other)?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A raw HTTP/1.1 GET over a blocking `std::net::TcpStream`, from a plain
/// thread: `(status line, body)`.
pub fn raw_get_from_a_thread(addr: SocketAddr, path: &str) -> Result<(String, String)> {
    let path = path.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })();
        let _ = tx.send(result);
    });
    // The fiber waits for the thread without blocking the event loop.
    let response = await_future(rx)?.map_err(Error::other)??;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Starts the server, sends it requests from fibers (with hyper's client)
/// and from a thread (raw HTTP/1.1), and shuts it down. Returns what was
/// seen, one line per exchange, the same every run.
pub fn demo() -> Result<Vec<String>> {
    let server = Server::start()?;
    let addr = server.addr();
    let mut lines = Vec::new();
    for (method, path, body) in [
        (Method::GET, "/", ""),
        (Method::GET, "/sleep/20", ""),
        (Method::POST, "/sum", "[1, 2, 3, 36]"),
        (Method::POST, "/sum", "[1, 2,"),
        (Method::GET, "/missing", ""),
    ] {
        let (status, reply) = request(addr, method.clone(), path, body)?;
        lines.push(format!("{method} {path} -> {status}: {reply}"));
    }
    // Many requests at once: each client is a fiber, and so is each
    // handler; they all sleep at the same time.
    let clients: Vec<_> = (0..20)
        .map(|i| {
            fuseau_tokio::spawn(move || {
                request(addr, Method::GET, &format!("/sleep/{}", 10 + i % 3), "")
            })
        })
        .collect();
    let mut ok = 0;
    for client in clients {
        let (status, _) = client.join()?;
        ok += usize::from(status == StatusCode::OK);
    }
    lines.push(format!("20 concurrent GET /sleep/..: {ok} × 200 OK"));
    let (status, body) = raw_get_from_a_thread(addr, "/")?;
    lines.push(format!("raw GET / from a std thread -> {status}: {body}"));
    server.shutdown()?;
    lines.push("the server is shut down".to_owned());
    Ok(lines)
}

#[allow(dead_code)] // Not called when a test includes this file.
fn main() -> Result<()> {
    for line in fuseau_tokio::main(demo)? {
        println!("{line}");
    }
    Ok(())
}
