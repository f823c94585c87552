//! Runs `examples/http.rs` (hyper with fiber handlers): its demo in this
//! process, the cancellation of handlers whose request goes away, and (when
//! Cargo has built it, as `cargo test` does) the example binary itself.
//!
//! One `#[test]`, so that the descriptor count it checks is not disturbed by
//! other tests of this binary.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../examples/http.rs"]
mod http_example;

mod bounded;
mod common;

use std::time::Duration;

use fuseau_tokio::{Builder, ErrorKind};
use http_example::{cancelled_handlers, request, Server};
use hyper::Method;

const EXPECTED: [&str; 8] = [
    r#"GET / -> 200 OK: hello from the fiber named "request handler""#,
    "GET /sleep/20 -> 200 OK: slept 20 ms in a fiber",
    r#"POST /sum -> 200 OK: {"count":4,"sum":42}"#,
    "POST /sum -> 400 Bad Request: bad JSON: EOF while parsing a value at line 1 column 6",
    "GET /missing -> 404 Not Found: no route for /missing",
    "20 concurrent GET /sleep/..: 20 × 200 OK",
    r#"raw GET / from a std thread -> HTTP/1.1 200 OK: hello from the fiber named "request handler""#,
    "the server is shut down",
];

/// The open descriptors, each with what it is (`readlink` of its entry in
/// `/proc/self/fd`), so that a leak says what leaked (the test compares
/// their number, as before; the list is for the message).
fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some(format!(
                "{} -> {}",
                entry.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    fds.sort();
    fds
}

/// Waits (a millisecond at a time, at most ten seconds) until `n` handlers
/// were cancelled.
fn wait_for_cancelled_handlers(n: usize) -> fuseau_tokio::Result<()> {
    for _ in 0..10_000 {
        if cancelled_handlers() >= n {
            return Ok(());
        }
        fuseau_tokio::sleep(Duration::from_millis(1))?;
    }
    panic!(
        "{n} handlers were not cancelled; {} were",
        cancelled_handlers()
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_http_example_serves_requests_from_fiber_handlers() {
    // The demo, with no descriptor left behind. A first runtime opens
    // descriptors that live as long as the process (Tokio's signal
    // driver's): a warm-up counts them in.
    bounded::main(|| Ok(())).unwrap();
    let before = open_fds();
    let lines = bounded::main(http_example::demo).unwrap();
    assert_eq!(lines, EXPECTED);
    let after = open_fds();
    assert_eq!(
        after.len(),
        before.len(),
        "descriptors leaked: before {before:#?}, after {after:#?}"
    );

    bounded::main(|| {
        let server = Server::start()?;
        let addr = server.addr();
        // A client that goes away: hyper drops the request's future, and
        // with it cancels the handler's fiber.
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || request(addr, Method::GET, "/sleep/3600000", ""));
        fuseau_tokio::sleep(Duration::from_millis(20))?;
        client.cancel();
        assert!(client.join().unwrap_err().is_cancelled());
        wait_for_cancelled_handlers(1)?;
        // A shutdown cancels the requests in flight, and returns once their
        // fibers are done; their clients see the connection fail.
        let client = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || request(addr, Method::GET, "/sleep/3600000", ""));
        fuseau_tokio::sleep(Duration::from_millis(20))?;
        server.shutdown()?;
        assert_eq!(cancelled_handlers(), 2);
        let e = client.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Other, "{e:?}");
        Ok(())
    })
    .unwrap();

    // The binary: exits 0 by itself, with the same output every time.
    let Some(binary) = common::example_binary("http") else {
        eprintln!("the http example was not built; skipping its binary");
        return;
    };
    let run = || common::run_example(&binary, &[]);
    let first = run();
    assert_eq!(first.lines().collect::<Vec<_>>(), EXPECTED);
    assert_eq!(first, run());
}
