//! Half-close with `Out::shutdown`, empty reads on `In`, `ev_read`/`ev_write`
//! that lose a `select` taking no effect, and fd I/O outside a Tokio runtime.

mod bounded;
mod common;

use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc;

use common::{drain, fill, localhost, ms, socket_pair};
use fuseau_tokio::iostream::{self, In, Out};
use fuseau_tokio::net::{TcpClient, TcpServer};
use fuseau_tokio::{
    await_future, ev_future, ev_read, ev_write, io as fio, select, CancelHandle, Error, ErrorKind,
    Event, Result, Wakeup, When,
};

// ------------------------------------------------- Out::shutdown (half-close)

/// Echoes until end of file, then sends a trailer and closes.
fn echo_then_trailer(mut input: In, mut output: Out) -> Result<()> {
    io::copy(&mut input, &mut output)?;
    output.write_all(b"-- end of reply\n")?;
    output.close()
}

#[test]
#[cfg_attr(miri, ignore)]
fn half_close_inside_with_connect_then_read_the_whole_reply() {
    bounded::main(|| {
        let server = TcpServer::establish(localhost(), |_peer, input, output| {
            echo_then_trailer(input, output)
        })?;
        let request: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let sent = request.clone();
        let reply = TcpClient::with_connect(server.local_addr(), move |input, output| {
            output.write_all(&sent)?;
            // Flushes what is buffered, then the server reads end of file.
            output.shutdown()?;
            // A second shutdown does nothing.
            output.shutdown()?;
            let mut reply = Vec::new();
            input.read_to_end(&mut reply)?;
            Ok::<_, Error>(reply)
        })??;
        let mut expected = request;
        expected.extend_from_slice(b"-- end of reply\n");
        assert_eq!(reply, expected);
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_line_protocol_with_half_close_and_buffered_reads() {
    bounded::main(|| {
        let server = TcpServer::establish(localhost(), |_peer, input, mut output| {
            // Counts lines until end of file, then answers.
            let lines = input.lines().count();
            writeln!(output, "{lines} lines")?;
            output.close()
        })?;
        let answer = TcpClient::with_connect(server.local_addr(), |input, output| {
            for i in 0..100 {
                writeln!(output, "line {i}")?;
            }
            output.shutdown()?;
            let mut answer = String::new();
            input.read_line(&mut answer)?;
            // And nothing after it.
            assert_eq!(input.fill_buf()?.len(), 0);
            Ok::<_, Error>(answer)
        })??;
        assert_eq!(answer, "100 lines\n");
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn writing_after_shutdown_fails_and_sends_nothing() {
    bounded::main(|| {
        let server = TcpServer::establish(localhost(), |_peer, input, output| {
            echo_then_trailer(input, output)
        })?;
        let (reply, late) = TcpClient::with_connect(server.local_addr(), |input, output| {
            output.write_all(b"early\n")?;
            output.shutdown()?;
            // However it is written, it fails (at the latest when flushed)
            // instead of vanishing.
            let late = output.write_all(b"late\n").and_then(|()| output.flush());
            let mut reply = Vec::new();
            input.read_to_end(&mut reply)?;
            Ok::<_, Error>((reply, late))
        })??;
        assert_eq!(reply, b"early\n-- end of reply\n");
        assert!(late.is_err(), "a write after shutdown succeeded");
        server.shutdown()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_write_after_shutdown_without_a_flush_is_an_error_too() {
    bounded::main(|| {
        let server = TcpServer::establish(localhost(), |_peer, input, output| {
            echo_then_trailer(input, output)
        })?;
        let late = TcpClient::with_connect(server.local_addr(), |input, output| {
            output.shutdown()?;
            // Small enough to be buffered: the error cannot wait for a
            // flush that `with_connect` (which only closes) never does.
            let late = output.write(b"late\n");
            let mut reply = Vec::new();
            input.read_to_end(&mut reply)?;
            assert_eq!(reply, b"-- end of reply\n");
            Ok::<_, Error>(late)
        })??;
        assert!(late.is_err(), "a write after shutdown succeeded");
        server.shutdown()
    })
    .unwrap();
}

// ------------------------------------------------------- In::read(&mut [])

#[test]
#[cfg_attr(miri, ignore)]
fn reading_into_an_empty_buffer_returns_zero_at_once() {
    bounded::main(|| {
        let (a, b) = tokio::net::UnixStream::pair()?;
        let (mut input, _a_out) = iostream::unix(a);
        let (_b_in, mut output) = iostream::unix(b);
        // Nothing to read, and the peer is open: a read that waited would
        // wait forever (and the watchdog would fail the test).
        assert_eq!(input.read(&mut [])?, 0);
        // Outside a fiber (a Tokio task), where a wait would be an error:
        // no wait is attempted.
        let task = tokio::task::spawn_local(async move {
            let n = input.read(&mut []);
            (input, n)
        });
        let (mut input, n) = await_future(task)?.unwrap();
        assert_eq!(n?, 0);

        // With data buffered, nothing is consumed.
        output.write_all(b"abc")?;
        output.flush()?;
        let mut one = [0u8; 1];
        input.read_exact(&mut one)?;
        assert_eq!(&one, b"a");
        assert_eq!(input.read(&mut [])?, 0);
        let mut rest = [0u8; 2];
        input.read_exact(&mut rest)?;
        assert_eq!(&rest, b"bc");

        // At end of file, too.
        output.close()?;
        assert_eq!(input.read(&mut [])?, 0);
        assert_eq!(input.read(&mut [0u8; 8])?, 0);
        Ok(())
    })
    .unwrap();
}

// ---------------------------------------- ev_read / ev_write losing a select

/// An event that, the second time it is polled, takes away what the first
/// wait made ready (so the polls of later branches find nothing, though
/// Tokio saw the descriptor ready), and, the second time it waits, makes
/// the descriptor ready again and itself ready: it then wins the `select`
/// over a later `ev_read`/`ev_write` branch whose descriptor is ready.
struct Saboteur<'a> {
    /// Makes the descriptor ready (writes to the peer, or drains it).
    make_ready: Box<dyn FnMut() + 'a>,
    /// Makes it not ready again behind Tokio's back.
    take_away: Box<dyn FnMut() + 'a>,
    polls: usize,
    waits: usize,
}

impl Event for Saboteur<'_> {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        self.polls += 1;
        match self.polls {
            1 => None,
            2 => {
                (self.take_away)();
                None
            }
            _ if self.waits >= 2 => Some(Ok(())),
            _ => None,
        }
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.waits += 1;
        (self.make_ready)();
        if self.waits >= 2 {
            wakeup.wake();
        }
        // The first time, the descriptor's readiness wakes the fiber.
        CancelHandle::dummy()
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_ev_read_that_loses_a_select_reads_nothing_even_when_ready() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let mut stolen = Vec::new();
        let mut buf = [0u8; 64];
        let mut sent = 0u8;
        let won = select(vec![
            When::new(
                Saboteur {
                    make_ready: Box::new(|| {
                        sent += 1;
                        (&b).write_all(&[sent; 8]).unwrap();
                    }),
                    take_away: Box::new(|| stolen.extend(drain(&a))),
                    polls: 0,
                    waits: 0,
                },
                |()| "saboteur",
            ),
            When::new(ev_read(a.as_fd(), &mut buf), |_| "ev_read"),
        ])?;
        assert_eq!(won, "saboteur");
        assert_eq!(stolen, [1; 8]);
        assert_eq!(buf, [0; 64], "the losing ev_read read into its buffer");
        // What the second wait sent is still there.
        let mut rest = [0u8; 64];
        let n = fio::read(a.as_fd(), &mut rest)?;
        assert_eq!(&rest[..n], [2; 8]);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_ev_write_that_loses_a_select_writes_nothing_even_when_ready() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let mut filler = fill(&a, 7);
        let mut drained = 0;
        let won = select(vec![
            When::new(
                Saboteur {
                    make_ready: Box::new(|| drained += drain(&b).len()),
                    take_away: Box::new(|| filler += fill(&a, 7)),
                    polls: 0,
                    waits: 0,
                },
                |()| "saboteur",
            ),
            When::new(ev_write(a.as_fd(), &[0xEE; 16]), |_| "ev_write"),
        ])?;
        assert_eq!(won, "saboteur");
        let rest = drain(&b);
        assert!(!rest.contains(&0xEE), "the losing ev_write wrote its bytes");
        assert_eq!(drained + rest.len(), filler);
        Ok(())
    })
    .unwrap();
}

/// A pause of a few microseconds, varying with `round` (none in some), so
/// that races between two actions of another thread go either way.
fn pause(round: usize) {
    let micros = [0, 0, 10, 50, 200, 1000][round / 2 % 6];
    if micros > 0 {
        std::thread::sleep(std::time::Duration::from_micros(micros));
    }
}

/// Data and a competing future become ready from another thread at about
/// the same time, in either order, while the fiber waits in a `select`:
/// whichever branch wins, no byte is lost or read twice.
#[test]
#[cfg_attr(miri, ignore)]
fn racing_an_ev_read_against_a_future_from_another_thread_loses_no_bytes() {
    const ROUNDS: usize = 200;
    bounded::main(|| {
        let mut wins = [0usize; 2];
        for round in 0..ROUNDS {
            let (a, b) = socket_pair();
            b.set_nonblocking(false)?;
            let payload: Vec<u8> = (0..16).map(|i| (round * 16 + i) as u8 | 1).collect();
            let p = payload.clone();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let other = std::thread::spawn(move || {
                go_rx.recv().unwrap();
                if round % 2 == 0 {
                    (&b).write_all(&p).unwrap();
                    pause(round);
                    let _ = tx.send(());
                } else {
                    let _ = tx.send(());
                    pause(round);
                    (&b).write_all(&p).unwrap();
                }
                b
            });
            go_tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            let won = select(vec![
                When::new(ev_future(rx), |_| None),
                When::new(ev_read(a.as_fd(), &mut buf), Some),
            ])?;
            let mut got = Vec::new();
            match won {
                Some(n) => {
                    wins[1] += 1;
                    got.extend_from_slice(&buf[..n]);
                }
                None => {
                    wins[0] += 1;
                    assert_eq!(buf, [0; 64], "round {round}: the losing ev_read read");
                }
            }
            let mut more = [0u8; 64];
            while got.len() < payload.len() {
                let n = fio::read(a.as_fd(), &mut more)?;
                assert!(n > 0, "round {round}: end of file before the payload");
                got.extend_from_slice(&more[..n]);
            }
            assert_eq!(got, payload, "round {round}");
            drop(other.join().unwrap());
            assert_eq!(fio::read(a.as_fd(), &mut more)?, 0, "round {round}");
        }
        eprintln!("future won {} times, ev_read {} times", wins[0], wins[1]);
        Ok(())
    })
    .unwrap();
}

/// As above for writes: another thread makes room in a full socket and
/// completes a competing future; a losing `ev_write` wrote nothing.
#[test]
#[cfg_attr(miri, ignore)]
fn racing_an_ev_write_against_a_future_from_another_thread_writes_once_at_most() {
    const ROUNDS: usize = 100;
    bounded::main(|| {
        let mut wins = [0usize; 2];
        for round in 0..ROUNDS {
            let (a, b) = socket_pair();
            let filler = fill(&a, 7);
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let other = std::thread::spawn(move || {
                go_rx.recv().unwrap();
                let mut drained = Vec::new();
                if round % 2 == 0 {
                    drained.extend(drain(&b));
                    pause(round);
                    let _ = tx.send(());
                } else {
                    let _ = tx.send(());
                    pause(round);
                    drained.extend(drain(&b));
                }
                // Then read the rest, up to end of file.
                b.set_nonblocking(false).unwrap();
                (&b).read_to_end(&mut drained).unwrap();
                drained
            });
            go_tx.send(()).unwrap();
            let payload = [0xEE; 16];
            let won = select(vec![
                When::new(ev_future(rx), |_| None),
                When::new(ev_write(a.as_fd(), &payload), Some),
            ])?;
            wins[usize::from(won.is_some())] += 1;
            let written = match won {
                Some(n) => {
                    assert!(n > 0);
                    n
                }
                None => 0,
            };
            drop(a);
            let drained = other.join().unwrap();
            assert_eq!(drained.len(), filler + written, "round {round}");
            assert_eq!(
                drained.iter().filter(|&&x| x == 0xEE).count(),
                written,
                "round {round}"
            );
        }
        eprintln!("future won {} times, ev_write {} times", wins[0], wins[1]);
        Ok(())
    })
    .unwrap();
}

// --------------------------------------------- fd I/O outside a Tokio runtime

fn assert_needs_tokio(e: &Error) {
    assert!(
        matches!(e.kind(), ErrorKind::Io | ErrorKind::Other),
        "{e:?}"
    );
    assert!(e.to_string().contains("Tokio runtime"), "{e}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn fd_io_that_would_wait_outside_a_tokio_runtime_is_an_error() {
    bounded::with_watchdog("fd io outside tokio", bounded::LIMIT, || {
        // The core's scheduler on a plain thread: fibers, but no Tokio.
        fuseau_tokio::block_on(|| {
            let (a, b) = socket_pair();
            let mut buf = [0u8; 16];
            let e = fio::read(a.as_fd(), &mut buf).unwrap_err();
            assert_needs_tokio(&e);

            // Nothing was read, nothing is broken: what is there is read
            // without waiting, so without Tokio.
            (&b).write_all(b"ping")?;
            let n = fio::read(a.as_fd(), &mut buf)?;
            assert_eq!(&buf[..n], b"ping");

            // Writes that would wait, and events in a select.
            fill(&a, 1);
            let e = fio::write(a.as_fd(), b"more").unwrap_err();
            assert_needs_tokio(&e);
            let e = fio::write_once(a.as_fd(), b"more").unwrap_err();
            assert_needs_tokio(&e);
            let (c, _d) = socket_pair();
            let e = select(vec![
                When::new(ev_read(c.as_fd(), &mut buf), |_| ()),
                When::new(fuseau_tokio::ev_timeout(ms(10_000)), |()| ()),
            ])
            .unwrap_err();
            assert_needs_tokio(&e);

            // The fiber is fine afterwards.
            fuseau_tokio::sleep(ms(1))?;
            Ok(())
        })
        .unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn fd_io_outside_a_tokio_runtime_does_not_panic_the_fiber() {
    let result = bounded::with_watchdog("fd io outside tokio", bounded::LIMIT, || {
        fuseau::block_on(|| {
            let (a, _b) = socket_pair();
            fio::read(a.as_fd(), &mut [0u8; 4])
        })
    });
    let e = result.unwrap_err();
    assert_ne!(e.kind(), ErrorKind::Panicked, "{e:?}");
    assert_needs_tokio(&e);
}

// ------------------------------------------- a run dropped by a Tokio panic

/// A panic in the Tokio code that drives a `run` drops the run while the
/// thread panics: its scheduler is torn down then. A fiber that ignores its
/// cancellation in a loop must still be ended (and its stack unwound), not
/// spin forever because the thread counts as panicking.
#[test]
#[cfg_attr(miri, ignore)]
fn a_run_dropped_by_a_panic_still_ends_fibers_that_ignore_their_cancellation() {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    struct Guard(Rc<Cell<usize>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    bounded::with_watchdog("a run dropped by a panic", bounded::LIMIT, || {
        let dropped = Rc::new(Cell::new(0));
        let d = dropped.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            local.block_on(&runtime, async move {
                let (started_tx, started_rx) = tokio::sync::oneshot::channel();
                let run = fuseau_tokio::run(move || {
                    let guard = Guard(d.clone());
                    fuseau_tokio::spawn(move || -> Result<()> {
                        let _guard = guard;
                        loop {
                            let _ = fuseau_tokio::sleep(common::hours(1));
                            let _ = fuseau_tokio::yield_now();
                        }
                    });
                    let _guard = Guard(d);
                    started_tx.send(()).unwrap();
                    fuseau_tokio::sleep(common::hours(1))
                });
                tokio::pin!(run);
                tokio::select! {
                    _ = &mut run => unreachable!("the run ended"),
                    started = started_rx => started.unwrap(),
                }
                panic!("a panic in the Tokio code that drives the run");
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(dropped.get(), 2, "both fibers' stacks were unwound");
    });
}
