//! Helpers shared by the integration tests: an ordered log and drop counters.

#![allow(dead_code, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// An ordered transcript that fibers and Tokio tasks append to; tests
/// compare it with the expected one.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    pub fn take(&self) -> Vec<String> {
        self.0.take()
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// Counts how many [`Guard`]s it handed out were dropped.
#[derive(Clone, Default)]
pub struct DropCounter(Rc<Cell<usize>>);

impl DropCounter {
    pub fn new() -> DropCounter {
        DropCounter::default()
    }

    pub fn guard(&self) -> Guard {
        Guard(self.0.clone())
    }

    pub fn dropped(&self) -> usize {
        self.0.get()
    }
}

/// Increments its [`DropCounter`] when dropped.
pub struct Guard(Rc<Cell<usize>>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn hours(n: u64) -> Duration {
    Duration::from_secs(3600 * n)
}

/// The example `name` as cargo built it (`target/<profile>/examples/<name>`,
/// beside this test binary's `deps` directory), if it was built.
pub fn example_binary(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe
        .parent()?
        .parent()?
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

/// Runs an example binary with `args`, asserts that it exits with 0, and
/// returns its standard output.
pub fn run_example(binary: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(binary)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An address on the loopback interface with a free port.
pub fn localhost() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// A connection handler that echoes everything until end of file, then
/// closes its output.
pub fn echo(
    mut input: fuseau_tokio::iostream::In,
    mut output: fuseau_tokio::iostream::Out,
) -> fuseau_tokio::Result<()> {
    use std::io::{BufRead, Write};
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return output.close();
        }
        let n = chunk.len();
        output.write_all(chunk)?;
        output.flush()?;
        input.consume(n);
    }
}

/// A connected pair of non-blocking Unix-domain sockets.
pub fn socket_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Writes `byte`s into the non-blocking `s` until its buffers are full;
/// returns how many bytes went in.
pub fn fill(mut s: &std::os::unix::net::UnixStream, byte: u8) -> usize {
    use std::io::Write;
    let chunk = [byte; 4096];
    let mut total = 0;
    loop {
        match s.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Reads everything the non-blocking `s` has now.
pub fn drain(mut s: &std::os::unix::net::UnixStream) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A listener whose accept queue is full, so that connecting to it hangs
/// (Linux drops the SYN). Returns the listener and the connections that
/// filled it (keep them alive).
pub fn full_listener() -> fuseau_tokio::Result<(tokio::net::TcpListener, Vec<tokio::net::TcpStream>)>
{
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(localhost())?;
    let listener = socket.listen(1)?;
    let addr = listener.local_addr()?;
    let mut held = Vec::new();
    for _ in 0..16 {
        match fuseau_tokio::await_future(tokio::time::timeout(
            ms(200),
            tokio::net::TcpStream::connect(addr),
        ))? {
            Ok(stream) => held.push(stream?),
            Err(_elapsed) => return Ok((listener, held)),
        }
    }
    panic!("could not fill the accept queue");
}
