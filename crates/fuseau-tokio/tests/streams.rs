//! `iostream::{In, Out}`: `std::io` traits over Tokio streams and raw fds,
//! cancellation inside them, and synchronous crates (serde_json) on them.

mod bounded;
mod common;

use std::io::{self, BufRead, Read, Write};
use std::os::fd::OwnedFd;

use common::{ms, Log};
use fuseau_tokio::iostream::{self, In, Out};
use fuseau_tokio::{await_future, AnyFiber, Builder, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// A connected pair of Tokio Unix streams (inside a runtime).
fn unix_pair() -> (UnixStream, UnixStream) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (
        UnixStream::from_std(a).unwrap(),
        UnixStream::from_std(b).unwrap(),
    )
}

// ------------------------------------------------------------ cancellation

/// Checks that `e` is the fiber's cancellation, wrapped as `Other`, and that
/// converting it back gives the very error the fiber's next suspension
/// point returns.
fn check_wrapped_cancellation(e: io::Error) -> Error {
    assert_eq!(e.kind(), io::ErrorKind::Other, "{e:?}");
    assert_ne!(e.kind(), io::ErrorKind::Interrupted);
    let back = Error::from(e);
    assert_eq!(back.kind(), ErrorKind::Cancelled);
    let next = fuseau_tokio::yield_now().unwrap_err();
    assert!(
        back.ptr_eq(&next),
        "{back:?} is not the fiber's error {next:?}"
    );
    back
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_a_read_exact_gives_the_fibers_error_as_other() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (a, b) = unix_pair();
        let (mut input, _) = iostream::unix(a);
        let (_, mut output) = iostream::unix(b);
        // Half the bytes arrive, then nothing: read_exact must not retry
        // after the cancellation (as it would an `Interrupted`).
        output.write_all(b"12345")?;
        output.flush()?;
        let l2 = l.clone();
        let reader = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let mut buf = [0u8; 10];
                l2.push("read_exact");
                let e = input.read_exact(&mut buf).unwrap_err();
                l2.push("read_exact failed");
                let e = check_wrapped_cancellation(e);
                Err::<(), _>(e)
            });
        fuseau_tokio::sleep(ms(1))?;
        l.push("cancel");
        reader.cancel();
        let e = reader.join().unwrap_err();
        assert!(e.is_cancelled());
        drop(output);
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["read_exact", "cancel", "read_exact failed"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_a_write_all_gives_the_fibers_error_as_other() {
    bounded::main(|| {
        let (a, b) = unix_pair();
        let (_, mut output) = iostream::unix(a);
        let writer = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                // Nobody reads: this fills the socket and waits.
                let e = output.write_all(&vec![0u8; 16 << 20]).unwrap_err();
                check_wrapped_cancellation(e);
                // `?` passes the cancellation up unchanged.
                output.flush()?;
                Ok(())
            });
        fuseau_tokio::sleep(ms(2))?;
        writer.cancel();
        assert!(writer.join().unwrap_err().is_cancelled());
        drop(b);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_read_cancelled_before_the_call_fails_at_once_but_buffered_data_is_served() {
    bounded::main(|| {
        let (a, b) = unix_pair();
        let (mut input, _) = iostream::unix(a);
        let (_, mut output) = iostream::unix(b);
        output.write_all(b"line one\nline two\n")?;
        output.flush()?;
        let reader = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let mut line = String::new();
                input.read_line(&mut line)?;
                AnyFiber::current().cancel();
                // Already buffered: no wait, so no cancellation point.
                let mut second = String::new();
                input.read_line(&mut second)?;
                assert_eq!(second, "line two\n");
                // The buffer is empty now: this would wait.
                let e = input.read(&mut [0u8; 4]).unwrap_err();
                check_wrapped_cancellation(e);
                Ok(line)
            });
        assert_eq!(reader.join()?, "line one\n");
        drop(output);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_timeout_inside_read_is_other_wrapping_timeout() {
    bounded::main(|| {
        let (a, _b) = unix_pair();
        let (mut input, _) = iostream::unix(a);
        let reader = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                fuseau_tokio::cancel_after(ms(3))?;
                let e = input.read(&mut [0u8; 4]).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::Other);
                Err::<(), _>(Error::from(e))
            });
        assert_eq!(reader.join().unwrap_err().kind(), ErrorKind::Timeout);
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------------ buffering

#[test]
#[cfg_attr(miri, ignore)]
fn lines_longer_than_a_tiny_buffer() {
    bounded::main(|| {
        let (a, b) = unix_pair();
        let (read_half, _) = a.into_split();
        let (_, write_half) = b.into_split();
        let mut input = In::with_capacity(3, read_half);
        let mut output = Out::with_capacity(5, write_half);
        let writer = fuseau_tokio::spawn(move || {
            for i in 0..50 {
                writeln!(output, "line number {i} {}", "x".repeat(i))?;
                if i % 7 == 0 {
                    output.flush()?;
                    fuseau_tokio::yield_now()?;
                }
            }
            output.close()
        });
        let mut n = 0;
        for (i, line) in (&mut input).lines().enumerate() {
            assert_eq!(line?, format!("line number {i} {}", "x".repeat(i)));
            n += 1;
        }
        assert_eq!(n, 50);
        writer.join()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_an_out_flushes_what_it_buffered() {
    bounded::main(|| {
        let (a, b) = unix_pair();
        let (mut input, _) = iostream::unix(a);
        let (_, mut output) = iostream::unix(b);
        output.write_all(b"buffered, never flushed")?;
        drop(output);
        let mut got = String::new();
        input.read_to_string(&mut got)?;
        assert_eq!(got, "buffered, never flushed");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn of_fd_streams_over_a_socketpair_and_close_half_closes() {
    bounded::main(|| {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        // One socket, two descriptors: one to read, one to write.
        let a_read = OwnedFd::from(a.try_clone()?);
        let mut a_in = In::of_fd(a_read)?;
        let mut a_out = Out::of_fd(OwnedFd::from(a))?;
        let mut b_in = In::of_fd(OwnedFd::from(b.try_clone()?))?;
        let mut b_out = Out::of_fd(OwnedFd::from(b))?;
        let peer = fuseau_tokio::spawn(move || {
            // Reads until end of file, then answers on the same socket.
            let mut request = String::new();
            b_in.read_to_string(&mut request)?;
            write!(b_out, "got {} bytes", request.len())?;
            b_out.close()
        });
        a_out.write_all(b"hello over raw fds")?;
        a_out.close()?;
        let mut reply = String::new();
        a_in.read_to_string(&mut reply)?;
        assert_eq!(reply, "got 18 bytes");
        peer.join()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn of_fd_refuses_a_regular_file() {
    bounded::main(|| {
        let file = std::fs::File::open("/proc/self/status")?;
        let e = In::of_fd(OwnedFd::from(file)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        Ok(())
    })
    .unwrap();
}

// -------------------------------------------------------- serde_json on TCP

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Request {
    id: u32,
    words: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Reply {
    id: u32,
    joined: String,
    count: usize,
}

#[test]
#[cfg_attr(miri, ignore)]
fn serde_json_streams_values_over_tcp_inside_fibers() {
    const CLIENTS: u32 = 5;
    const REQUESTS: u32 = 20;
    bounded::main(|| {
        let listener = await_future(TcpListener::bind("127.0.0.1:0"))??;
        let addr = listener.local_addr()?;
        // The server: each connection is a fiber that reads a stream of
        // JSON values and answers each with one.
        let server = Builder::new().propagate_cancel_to_parent(false).spawn(
            move || -> fuseau_tokio::Result<()> {
                loop {
                    let (stream, _) = await_future(listener.accept())??;
                    fuseau_tokio::spawn(move || {
                        let (input, mut output) = iostream::tcp(stream);
                        let values =
                            serde_json::Deserializer::from_reader(input).into_iter::<Request>();
                        for request in values {
                            let request = request.map_err(io::Error::from)?;
                            let reply = Reply {
                                id: request.id,
                                joined: request.words.join(" "),
                                count: request.words.len(),
                            };
                            serde_json::to_writer(&mut output, &reply).map_err(io::Error::from)?;
                            output.flush()?;
                        }
                        output.close()
                    });
                }
            },
        );
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                fuseau_tokio::spawn(move || {
                    let stream = await_future(TcpStream::connect(addr))??;
                    let (mut input, mut output) = iostream::tcp(stream);
                    let mut replies =
                        serde_json::Deserializer::from_reader(&mut input).into_iter::<Reply>();
                    for i in 0..REQUESTS {
                        let words: Vec<String> =
                            (0..=i % 4).map(|w| format!("c{c}r{i}w{w}")).collect();
                        let request = Request {
                            id: c * 1000 + i,
                            words: words.clone(),
                        };
                        serde_json::to_writer(&mut output, &request).map_err(io::Error::from)?;
                        output.flush()?;
                        let reply = replies.next().expect("a reply").map_err(io::Error::from)?;
                        assert_eq!(
                            reply,
                            Reply {
                                id: c * 1000 + i,
                                joined: words.join(" "),
                                count: words.len()
                            }
                        );
                    }
                    output.close()?;
                    assert!(
                        replies.next().is_none(),
                        "the server closed after the last reply"
                    );
                    Ok(REQUESTS)
                })
            })
            .collect();
        let total: u32 = clients
            .into_iter()
            .map(|c| c.join())
            .sum::<fuseau_tokio::Result<u32>>()?;
        assert_eq!(total, CLIENTS * REQUESTS);
        server.cancel();
        assert!(server.join().unwrap_err().is_cancelled());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_bad_json_value_is_reported_and_the_connection_ends() {
    bounded::main(|| {
        let (a, b) = unix_pair();
        let (input, _) = iostream::unix(a);
        let (_, mut output) = iostream::unix(b);
        let reader = fuseau_tokio::spawn(move || {
            let mut values = serde_json::Deserializer::from_reader(input).into_iter::<u32>();
            let first = values.next().unwrap().map_err(io::Error::from)?;
            let second = values.next().unwrap();
            Ok((first, second.is_err()))
        });
        output.write_all(b"17 {oops")?;
        output.flush()?;
        fuseau_tokio::sleep(ms(1))?;
        drop(output);
        assert_eq!(reader.join()?, (17, true));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_out_dropped_by_a_panic_does_not_suspend_mid_unwind() {
    // Suspending a fiber in the middle of a panic's unwinding would leave
    // the thread "panicking" while other fibers run: a mutex guard dropped
    // in plain code elsewhere would poison its mutex.
    let (seen_panicking, poisoned) = bounded::main(|| {
        let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        // Fill the socket (nobody reads `b`), so that a flush must wait.
        let chunk = [0u8; 4096];
        while a.write(&chunk).is_ok() {}
        let (_, mut output) = iostream::unix(UnixStream::from_std(a)?);
        let panicker = Builder::new().propagate_cancel_to_parent(false).spawn(
            move || -> fuseau_tokio::Result<()> {
                output.write_all(b"buffered")?;
                panic!("boom"); // Unwinding drops `output`, which flushes.
            },
        );
        fuseau_tokio::yield_now()?;
        let seen_panicking = std::thread::panicking();
        let mutex = std::sync::Mutex::new(());
        drop(mutex.lock().unwrap());
        panicker.cancel();
        assert_eq!(panicker.join().unwrap_err().kind(), ErrorKind::Panicked);
        drop(b);
        Ok((seen_panicking, mutex.is_poisoned()))
    })
    .unwrap();
    assert!(
        !seen_panicking,
        "another fiber ran while the thread was panicking"
    );
    assert!(!poisoned);
}
