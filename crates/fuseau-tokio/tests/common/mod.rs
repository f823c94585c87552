//! Helpers shared by the integration tests: an ordered log, drop counters,
//! temporary directories, test data, and the three cases of cancellation.

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

/// A directory of its own under the system's temporary directory (named
/// after this process and `name`), removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("fuseau-tokio-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` bytes of a pattern that does not repeat at any power of two.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Asserts that `got` is `expected`, without printing either (they are
/// large).
pub fn assert_same_bytes(got: &[u8], expected: &[u8]) {
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the data changed on the way");
}

/// A command that runs this test binary again, for its one test `test`,
/// with the environment variable `child` set (the test then plays the
/// child).
pub fn this_test_as_child(test: &str, child: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(child, "1");
    command
}

/// Sends `signal` (as `kill` names it: `INT`, `9` …) to process `pid`.
pub fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed: {status:?}");
}

// ------------------------------------------------- the cases of cancellation

/// A fiber running `f` whose failure does not fail its parent (it is to be
/// cancelled).
pub fn cancellable<T: 'static>(
    f: impl FnOnce() -> fuseau_tokio::Result<T> + 'static,
) -> fuseau_tokio::Fiber<T> {
    fuseau_tokio::Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn(f)
}

/// Asserts that `result` failed as cancelled (an `io::Error` seen as `?`
/// in a fiber sees it).
pub fn assert_cancelled<T, E: Into<fuseau_tokio::Error>>(result: Result<T, E>) {
    let Err(e) = result else {
        panic!("the call succeeded though cancelled")
    };
    let e = e.into();
    assert!(e.is_cancelled(), "{e:?}");
}

/// Asserts that `fiber` ends failing as cancelled.
pub fn assert_joins_cancelled<T>(fiber: fuseau_tokio::Fiber<T>) {
    assert_cancelled(fiber.join());
}

/// Cancelled before the call: runs `call` in a fiber that cancels itself
/// first, and asserts that it fails as cancelled (`call` may make several
/// calls: the first that may wait must fail so, and `?` pass it on).
pub fn cancelled_before<T: 'static, E: Into<fuseau_tokio::Error> + 'static>(
    call: impl FnOnce() -> Result<T, E> + 'static,
) {
    assert_joins_cancelled(cancellable(move || {
        fuseau_tokio::AnyFiber::current().cancel();
        call().map_err(Into::into)
    }));
}

/// Cancelled while waiting: runs `call` in a fiber; once `until_waiting`
/// (which makes sure that the call waits) returns, cancels the fiber, and
/// asserts that the call fails as cancelled at once. Returns what
/// `until_waiting` returned.
pub fn cancel_while_waiting<T: 'static, E: Into<fuseau_tokio::Error> + 'static, R>(
    call: impl FnOnce() -> Result<T, E> + 'static,
    until_waiting: impl FnOnce() -> fuseau_tokio::Result<R>,
) -> fuseau_tokio::Result<R> {
    let fiber = cancellable(move || call().map_err(Into::into));
    let waiting = until_waiting()?;
    fiber.cancel();
    assert_joins_cancelled(fiber);
    Ok(waiting)
}

/// [`cancel_while_waiting`], with a transcript in `log`: `what` when the
/// call starts, `cancel` when it is cancelled, and `what: kind` when it
/// fails, with the kind of its error.
pub fn cancel_logged_while_waiting<T: 'static, E: Into<fuseau_tokio::Error> + 'static, R>(
    log: &Log,
    what: &'static str,
    call: impl FnOnce() -> Result<T, E> + 'static,
    until_waiting: impl FnOnce() -> fuseau_tokio::Result<R>,
) -> fuseau_tokio::Result<R> {
    let l = log.clone();
    cancel_while_waiting(
        move || {
            l.push(what);
            call().map_err(|e| {
                let e = e.into();
                l.push(format!("{what}: {:?}", e.kind()));
                e
            })
        },
        || {
            let waiting = until_waiting()?;
            log.push("cancel");
            Ok(waiting)
        },
    )
}

/// Cancelled after the call completed: cancels the running fiber (whose
/// last call returned), and asserts that its next call that may wait,
/// `next`, fails as cancelled.
pub fn cancel_then_next_fails<T, E: Into<fuseau_tokio::Error>>(
    next: impl FnOnce() -> Result<T, E>,
) {
    fuseau_tokio::AnyFiber::current().cancel();
    assert_cancelled(next());
}
