//! `signal::ctrl_c`: a child process (this test binary again, in a child
//! mode chosen by an environment variable) waits for Ctrl-C in two fibers
//! and gets `SIGINT` from the parent; the cancellation cases before and
//! while waiting run in-process (which installs Tokio's `SIGINT` handler in
//! this test process: harmless here), the one after success in the child.

mod bounded;
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use common::{
    cancel_logged_while_waiting, cancel_then_next_fails, cancellable, cancelled_before, Log,
};
use fuseau_tokio::signal::ctrl_c;
use fuseau_tokio::ErrorKind;

/// Set in the child's environment: the test then plays the child.
const CHILD: &str = "FUSEAU_TOKIO_SIGNAL_CHILD";
const CHILD_TEST: &str = "ctrl_c_returns_when_the_process_gets_sigint";

/// Whether the child's output `line` says `what` (libtest's "test … ... "
/// may start the line).
fn says(line: &str, what: &str) -> bool {
    line.trim_end().ends_with(what)
}

#[test]
#[cfg_attr(miri, ignore)]
fn ctrl_c_returns_when_the_process_gets_sigint() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    bounded::with_watchdog(CHILD_TEST, bounded::LIMIT, || {
        let mut child = common::this_test_as_child(CHILD_TEST, CHILD)
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
            if says(&line, "child: waiting") {
                break;
            }
        }
        common::kill("INT", child.id());
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
                seen.lines().any(|line| says(line, expected)),
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
                    cancel_then_next_fails(ctrl_c);
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
        cancelled_before(ctrl_c);
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
        cancel_logged_while_waiting(&l, "ctrl_c", ctrl_c, fuseau_tokio::yield_now)?;
        // A deadline cancels it the same way, as a timeout.
        let fiber = cancellable(|| {
            fuseau_tokio::cancel_after(common::ms(5))?;
            ctrl_c()
        });
        assert!(fiber.join().unwrap_err().is_timeout());
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["ctrl_c", "cancel", "ctrl_c: Cancelled"]);
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
