//! Fd I/O from fibers on socketpairs: `io::read`, `io::write_once`,
//! `io::write`, and the events `ev_read`/`ev_write` in `select`, with the
//! three cases of cancellation.

mod bounded;
mod common;

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use common::{
    assert_same_bytes, cancel_logged_while_waiting, cancel_then_next_fails, cancellable,
    cancelled_before, drain, fill, hours, ms, pattern, socket_pair, Log,
};
use fuseau_tokio::{ev_read, ev_timeout, ev_write, io as fio, select, ErrorKind, When};

#[test]
#[cfg_attr(miri, ignore)]
fn a_megabyte_goes_through_a_socketpair_intact() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let data = pattern(1 << 20);
        let expected = data.clone();
        let writer = fuseau_tokio::spawn(move || {
            fio::write(b.as_fd(), &data)?;
            // Dropping `b` closes it: the reader gets end of file.
            Ok(())
        });
        let mut got = Vec::new();
        let mut buf = vec![0u8; 10_000];
        loop {
            let n = fio::read(a.as_fd(), &mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.join()?;
        assert_same_bytes(&got, &expected);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_once_writes_what_fits_and_a_closed_peer_is_an_io_error() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let n = fio::write_once(a.as_fd(), &vec![1u8; 8 << 20])?;
        assert!(n > 0 && n < 8 << 20, "{n}");
        assert_eq!(drain(&b).len(), n);
        // Empty reads and writes complete at once.
        assert_eq!(fio::read(a.as_fd(), &mut [])?, 0);
        assert_eq!(fio::write_once(a.as_fd(), &[])?, 0);
        drop(b);
        let e = fio::write(a.as_fd(), b"anyone?").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        let io_err = io::Error::from(e);
        assert!(
            matches!(
                io_err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{io_err:?}"
        );
        assert_eq!(fio::read(a.as_fd(), &mut [0; 8])?, 0, "end of file");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn outside_a_fiber_fd_io_is_not_in_fiber() {
    let (a, _b) = socket_pair();
    let e = fio::read(a.as_fd(), &mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.to_string().contains("io::read"), "{e}");
    let e = fio::write(a.as_fd(), b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
}

// ------------------------------------------------------------ cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_before_the_call_reads_nothing() {
    bounded::main(|| {
        let (a, mut b) = socket_pair();
        b.write_all(b"abc").unwrap();
        let a2 = a.try_clone()?;
        cancelled_before(move || fio::read(a2.as_fd(), &mut [0; 16]));
        let mut buf = [0; 16];
        assert_eq!(fio::read(a.as_fd(), &mut buf)?, 3);
        assert_eq!(&buf[..3], b"abc");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_while_waiting_wakes_at_once_and_unregisters() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (a, mut b) = socket_pair();
        let a2 = a.try_clone()?;
        cancel_logged_while_waiting(
            &l,
            "read",
            move || fio::read(a2.as_fd(), &mut [0; 16]),
            fuseau_tokio::yield_now,
        )?;
        // The waiting read left no registration behind: the descriptor can
        // be waited on again, and nothing was consumed.
        let reader = fuseau_tokio::spawn(move || {
            let mut buf = [0; 16];
            let n = fio::read(a.as_fd(), &mut buf)?;
            Ok(buf[..n].to_vec())
        });
        fuseau_tokio::sleep(ms(1))?;
        b.write_all(b"later").unwrap();
        assert_eq!(reader.join()?, b"later");
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["read", "cancel", "read: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_after_it_completed_keeps_its_bytes() {
    bounded::main(|| {
        let (a, mut b) = socket_pair();
        let reader = cancellable(move || {
            let mut buf = [0; 16];
            let n = fio::read(a.as_fd(), &mut buf)?;
            cancel_then_next_fails(|| fio::read(a.as_fd(), &mut [0; 16]));
            Ok(buf[..n].to_vec())
        });
        fuseau_tokio::yield_now()?;
        b.write_all(b"xyz").unwrap();
        assert_eq!(reader.join()?, b"xyz");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_before_the_call_writes_nothing() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        cancelled_before(move || fio::write(a.as_fd(), b"never"));
        assert_eq!(drain(&b), b"", "the cancelled write sent data");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_while_waiting_wakes_at_once_and_writes_nothing_more() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (a, b) = socket_pair();
        let filled = fill(&a, 7);
        cancel_logged_while_waiting(
            &l,
            "write",
            move || fio::write(a.as_fd(), b"more"),
            fuseau_tokio::yield_now,
        )?;
        let got = drain(&b);
        assert_eq!(got.len(), filled, "the cancelled write went through");
        assert!(got.iter().all(|&x| x == 7));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["write", "cancel", "write: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_write_that_waited_completes_when_the_peer_reads() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let filled = fill(&a, 7);
        let writer = fuseau_tokio::spawn(move || {
            fio::write(a.as_fd(), b"tail")?;
            // After success, the cancellation shows at the next wait.
            cancel_then_next_fails(|| fio::write(a.as_fd(), b"no"));
            Ok(())
        });
        let mut got = Vec::new();
        while got.len() < filled + 4 {
            fuseau_tokio::sleep(ms(1))?;
            got.extend(drain(&b));
        }
        writer.join()?;
        assert_eq!(got.len(), filled + 4);
        assert_eq!(&got[filled..], b"tail");
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------------------ select

#[test]
#[cfg_attr(miri, ignore)]
fn select_over_ev_read_and_ev_timeout() {
    bounded::main(|| {
        let (a, mut b) = socket_pair();
        let mut buf = [0u8; 16];
        // Nothing to read: the timeout wins, as an error.
        let e = select(vec![
            When::new(ev_read(a.as_fd(), &mut buf), |n| format!("read {n}")),
            When::new(ev_timeout(ms(5)), |()| "timeout".to_string()),
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        // Data that arrives before the deadline wins.
        let writer = {
            let b2 = b.try_clone()?;
            fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(2))?;
                fio::write(b2.as_fd(), b"hi")
            })
        };
        let got = select(vec![
            When::new(ev_timeout(hours(1)), |()| 0),
            When::new(ev_read(a.as_fd(), &mut buf), |n| n),
        ])?;
        writer.join()?;
        assert_eq!(&buf[..got], b"hi");
        // Both ready: branches are polled in order, and the losing read
        // takes nothing.
        b.write_all(b"kept")?;
        let e = select(vec![
            When::new(ev_timeout(Duration::ZERO), |()| 0),
            When::new(ev_read(a.as_fd(), &mut buf), |n| n),
        ])
        .unwrap_err();
        assert!(e.is_timeout());
        let n = fio::read(a.as_fd(), &mut buf)?;
        assert_eq!(&buf[..n], b"kept");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_reads_from_whichever_socket_is_ready_first() {
    bounded::main(|| {
        let (a1, b1) = socket_pair();
        let (a2, b2) = socket_pair();
        let writer = fuseau_tokio::spawn(move || {
            fuseau_tokio::sleep(ms(2))?;
            fio::write(b2.as_fd(), b"second socket")?;
            fuseau_tokio::sleep(ms(2))?;
            fio::write(b1.as_fd(), b"first socket")
        });
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut buf1 = [0u8; 32];
            let mut buf2 = [0u8; 32];
            let which = select(vec![
                When::new(ev_read(a1.as_fd(), &mut buf1), |n| (1, n)),
                When::new(ev_read(a2.as_fd(), &mut buf2), |n| (2, n)),
                When::new(ev_timeout(hours(1)), |()| (0, 0)),
            ])?;
            let text = match which {
                (1, n) => String::from_utf8_lossy(&buf1[..n]).into_owned(),
                (2, n) => String::from_utf8_lossy(&buf2[..n]).into_owned(),
                _ => unreachable!(),
            };
            got.push(text);
        }
        writer.join()?;
        assert_eq!(got, ["second socket", "first socket"]);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_over_ev_write_waits_for_room() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let filled = fill(&a, 7);
        // Full: the write cannot go, the timeout wins and nothing is sent.
        let e = select(vec![
            When::new(ev_write(a.as_fd(), b"more"), |n| n),
            When::new(ev_timeout(ms(3)), |()| 0),
        ])
        .unwrap_err();
        assert!(e.is_timeout());
        // A reader makes room: the write goes.
        let reader = fuseau_tokio::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while got.len() < filled + 4 {
                let n = fio::read(b.as_fd(), &mut buf)?;
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
                // Read slowly at first, so the writer really waits.
                if got.len() < 4096 {
                    fuseau_tokio::sleep(ms(1))?;
                }
            }
            Ok(got)
        });
        let mut sent = 0;
        while sent < 4 {
            sent += select(vec![
                When::new(ev_write(a.as_fd(), &b"more"[sent..]), |n| n),
                When::new(ev_timeout(hours(1)), |()| 0),
            ])?;
        }
        let got = reader.join()?;
        assert!(got.ends_with(b"more"));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_reader_and_a_writer_wait_on_the_same_descriptor_at_once() {
    // Full duplex on one socket: one fiber waits to read from `a` while
    // another waits to write to it; both waits register `a`.
    let got = bounded::main(|| {
        let (a, b) = socket_pair();
        let a = Rc::new(a);
        let a2 = a.clone();
        let reader = fuseau_tokio::spawn(move || {
            let mut buf = [0u8; 16];
            let n = fio::read(a.as_fd(), &mut buf)?;
            Ok(buf[..n].to_vec())
        });
        let writer = fuseau_tokio::spawn(move || {
            // More than the socket holds: this waits for the peer to read.
            fio::write(a2.as_fd(), &vec![5u8; 4 << 20])
        });
        let peer = fuseau_tokio::spawn(move || {
            let mut received = 0;
            let mut buf = vec![0u8; 65536];
            fuseau_tokio::sleep(ms(5))?;
            fio::write(b.as_fd(), b"reply")?;
            while received < 4 << 20 {
                let n = fio::read(b.as_fd(), &mut buf)?;
                assert!(n > 0);
                received += n;
            }
            Ok(received)
        });
        writer.join()?;
        assert_eq!(peer.join()?, 4 << 20);
        reader.join()
    })
    .unwrap();
    assert_eq!(got, b"reply");
}

#[test]
#[cfg_attr(miri, ignore)]
fn fd_io_works_on_the_descriptor_of_a_tokio_socket() {
    bounded::main(|| {
        let (a, b) = socket_pair();
        let a = tokio::net::UnixStream::from_std(a)?;
        let writer = fuseau_tokio::spawn(move || {
            fuseau_tokio::sleep(ms(2))?;
            fio::write(b.as_fd(), b"to a Tokio socket")
        });
        // `a` is registered with Tokio already; the wait here works anyway.
        let mut buf = [0u8; 32];
        let n = fio::read(a.as_fd(), &mut buf)?;
        assert_eq!(&buf[..n], b"to a Tokio socket");
        writer.join()
    })
    .unwrap();
}
