//! `signal::ctrl_c`: a child process (this test binary again, in a child
//! mode chosen by an environment variable) waits for Ctrl-C in two fibers
//! and gets `SIGINT` from the parent; the cancellation cases before and
//! while waiting run in-process (which installs Tokio's `SIGINT` handler in
//! this test process: harmless here), the one after success in the child.

mod bounded;
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::Log;
use fuseau_tokio::signal::ctrl_c;
use fuseau_tokio::{AnyFiber, Builder, ErrorKind};

/// Set in the child's environment: the test then plays the child.
const CHILD: &str = "FUSEAU_TOKIO_SIGNAL_CHILD";
const CHILD_TEST: &str = "ctrl_c_returns_when_the_process_gets_sigint";

#[test]
#[cfg_attr(miri, ignore)]
fn ctrl_c_returns_when_the_process_gets_sigint() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    bounded::with_watchdog(CHILD_TEST, bounded::LIMIT, || {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the child ended before it waited:\n{seen}");
            seen.push_str(&line);
            // (libtest's "test … ... " may start the line.)
            if line.trim_end().ends_with("child: waiting") {
                break;
            }
        }
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -INT failed: {status:?}");
        stdout.read_to_string(&mut seen).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the child failed: {:?}\nstdout:\n{seen}\nstderr:\n{stderr}",
            output.status
        );
        for expected in [
            "child: 0: ctrl_c returned",
            "child: 1: ctrl_c returned",
            "child: 0: then cancelled",
            "child: 1: then cancelled",
            "child: done",
        ] {
            assert!(
                seen.lines().any(|l| l.trim_end().ends_with(expected)),
                "no {expected:?} in:\n{seen}"
            );
        }
    });
}

/// The child: two fibers wait for Ctrl-C; once both wait, says so; each,
/// woken, reports, then (cancelled after its success) fails its next wait.
fn child() {
    bounded::main(|| {
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                fuseau_tokio::spawn(move || {
                    ctrl_c()?;
                    println!("child: {i}: ctrl_c returned");
                    AnyFiber::current().cancel();
                    let e = ctrl_c().unwrap_err();
                    assert!(e.is_cancelled());
                    println!("child: {i}: then cancelled");
                    Ok(())
                })
            })
            .collect();
        // Both waiters ran up to their wait: the handler is installed.
        fuseau_tokio::yield_now()?;
        println!("child: waiting");
        for waiter in waiters {
            waiter.join()?;
        }
        println!("child: done");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn ctrl_c_cancelled_before_the_call_returns_at_once() {
    bounded::main(|| {
        let fiber = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            AnyFiber::current().cancel();
            ctrl_c()
        });
        assert!(fiber.join().unwrap_err().is_cancelled());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn ctrl_c_cancelled_while_waiting_returns_at_once() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let l2 = l.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                l2.push("waiting");
                let e = ctrl_c().unwrap_err();
                l2.push(format!("ctrl_c: {:?}", e.kind()));
                Err::<(), _>(e)
            });
        fuseau_tokio::yield_now()?;
        l.push("cancel");
        fiber.cancel();
        assert!(fiber.join().unwrap_err().is_cancelled());
        // A deadline cancels it the same way, as a timeout.
        let fiber = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            fuseau_tokio::cancel_after(common::ms(5))?;
            ctrl_c()
        });
        assert!(fiber.join().unwrap_err().is_timeout());
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["waiting", "cancel", "ctrl_c: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn outside_a_fiber_ctrl_c_is_not_in_fiber() {
    let e = ctrl_c().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.to_string().contains("ctrl_c"), "{e}");
    let e = fuseau_tokio::block_on(ctrl_c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.to_string().contains("Tokio runtime"), "{e}");
}
