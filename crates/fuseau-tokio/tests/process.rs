//! `fuseau_tokio::process`: commands, children and their pipes as fiber
//! streams, the three cases of cancellation for every call that waits, and
//! what happens to the process when a wait is cancelled.

mod bounded;
mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;

use common::{
    assert_cancelled, assert_same_bytes, cancel_logged_while_waiting, cancel_then_next_fails,
    cancel_while_waiting, cancellable, cancelled_before, ms, pattern, Log, TempDir,
};
use fuseau_tokio::process::{Child, ChildStdout, Command};
use fuseau_tokio::ErrorKind;

// ------------------------------------------------------------ helpers

/// The fiber error an `io::Error` of this module carries.
fn kind(e: io::Error) -> ErrorKind {
    fuseau_tokio::Error::from(e).kind()
}

/// A fresh, empty directory for one test, removed when dropped.
fn scratch(name: &str) -> TempDir {
    TempDir::new(&format!("process-{name}"))
}

/// Runs `body` as the main fiber (under the watchdog), given the path of a
/// pidfile for [`sleeper`] in a directory of its own (named after `name`).
fn main_with_pidfile(name: &str, body: impl FnOnce(PathBuf) -> fuseau_tokio::Result<()> + 'static) {
    let dir = scratch(name);
    let pidfile = dir.join("pid");
    bounded::main(move || body(pidfile)).unwrap();
}

/// The state letter of process `pid` (`R`, `S`, `Z` …), or `None` once it
/// is gone (reaped).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.chars().next()
}

fn running(pid: u32) -> bool {
    matches!(state(pid), Some(s) if s != 'Z')
}

/// Sleeps (the fiber) until `done()`, for at most about 20 s; false if it
/// never was. No assertion on how long it took.
fn eventually(mut done: impl FnMut() -> bool) -> fuseau_tokio::Result<bool> {
    for _ in 0..2000 {
        if done() {
            return Ok(true);
        }
        fuseau_tokio::sleep(ms(10))?;
    }
    Ok(done())
}

/// A shell command that writes its pid to `pidfile`, then becomes
/// `sleep 60` (same pid).
fn sleeper(pidfile: &Path) -> Command {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!(
            "echo $$ > {}.tmp && mv {0}.tmp {0} && exec sleep 60",
            pidfile.display()
        ),
    ]);
    command
}

/// Waits until `pidfile` is written, and returns the pid in it.
fn pid_in(pidfile: &Path) -> fuseau_tokio::Result<u32> {
    let mut pid = None;
    let found = eventually(|| {
        pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })?;
    assert!(found, "the child never wrote {}", pidfile.display());
    Ok(pid.unwrap())
}

/// Waits until process `pid` is gone (killed and reaped).
fn assert_gone(pid: u32) -> fuseau_tokio::Result<()> {
    assert!(
        eventually(|| state(pid).is_none())?,
        "process {pid} still exists: {:?}",
        state(pid)
    );
    Ok(())
}

/// Checks that process `pid` was not killed (for a while: a kill would have
/// come by then), then kills it.
fn assert_runs_on_then_kill(pid: u32, why: &str) -> fuseau_tokio::Result<()> {
    fuseau_tokio::sleep(ms(20))?;
    assert!(running(pid), "{why}");
    common::kill("9", pid);
    assert_gone(pid)
}

/// Runs `call`, which starts [`sleeper`] with `pidfile`, in a fiber;
/// cancels it once the child runs and the call waits for it, and asserts
/// that the call fails as cancelled. Returns the child's pid.
fn cancel_once_started<T: 'static, E: Into<fuseau_tokio::Error> + 'static>(
    pidfile: &Path,
    call: impl FnOnce() -> Result<T, E> + 'static,
) -> fuseau_tokio::Result<u32> {
    cancel_while_waiting(call, || {
        let pid = pid_in(pidfile)?;
        fuseau_tokio::yield_now()?;
        Ok(pid)
    })
}

/// A stream that a test and a fiber it cancels both use.
fn shared<T>(stream: T) -> Rc<RefCell<T>> {
    Rc::new(RefCell::new(stream))
}

/// Closes `child`'s stdin, reads what `stdout` has up to its end, and
/// checks that the child (`cat`) succeeds.
fn close_and_read_to_end(
    child: &mut Child,
    stdout: &RefCell<ChildStdout>,
) -> fuseau_tokio::Result<Vec<u8>> {
    drop(child.stdin.take());
    let mut got = Vec::new();
    stdout.borrow_mut().read_to_end(&mut got)?;
    assert!(child.wait()?.success());
    Ok(got)
}

fn cat() -> io::Result<Child> {
    Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
}

// ------------------------------------------------------------ status, output

#[test]
#[cfg_attr(miri, ignore)]
fn status_gives_the_exit_code() {
    bounded::main(|| {
        let t = Command::new("true").status()?;
        assert!(t.success());
        assert_eq!(t.code(), Some(0));
        let f = Command::new("false").status()?;
        assert!(!f.success());
        assert_eq!(f.code(), Some(1));
        let mut seven = Command::new("sh");
        seven.args(["-c", "exit 7"]);
        assert_eq!(seven.status()?.code(), Some(7));
        // A command runs as often as wanted.
        assert_eq!(seven.status()?.code(), Some(7));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_closes_piped_streams_instead_of_hanging() {
    bounded::main(|| {
        // Nobody could write to this stdin: `cat` must read end of file.
        let status = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .status()?;
        assert!(status.success());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn output_collects_stdout_stderr_and_the_code() {
    bounded::main(|| {
        let echo = Command::new("echo").arg("hello world").output()?;
        assert!(echo.status.success());
        assert_eq!(echo.stdout, b"hello world\n");
        assert_eq!(echo.stderr, b"");

        let both = Command::new("sh")
            .args(["-c", "printf 'to out'; printf 'to err' >&2; exit 3"])
            .output()?;
        assert_eq!(both.status.code(), Some(3));
        assert_eq!(both.stdout, b"to out");
        assert_eq!(both.stderr, b"to err");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn output_reads_both_streams_as_they_come() {
    bounded::main(|| {
        // 1 MiB on each stream, far more than a pipe holds: reading one
        // after the other would deadlock.
        let out = Command::new("sh")
            .args([
                "-c",
                "head -c 1048576 /dev/zero & head -c 1048576 /dev/zero >&2; wait",
            ])
            .output()?;
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1 << 20);
        assert_eq!(out.stderr.len(), 1 << 20);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn output_applies_std_defaults_only_to_streams_not_set() {
    bounded::main(|| {
        // stdin defaults to null for output: `cat` ends at once.
        let cat = Command::new("cat").output()?;
        assert!(cat.status.success());
        assert_eq!(cat.stdout, b"");

        // A stream set by the caller is kept (here: discarded).
        let mut quiet = Command::new("sh");
        quiet
            .args(["-c", "echo out; echo err >&2"])
            .stdout(Stdio::null());
        let out = quiet.output()?;
        assert_eq!(out.stdout, b"");
        assert_eq!(out.stderr, b"err\n");

        // After output, spawn still inherits what was not set: no pipes.
        let mut echo = Command::new("echo");
        echo.arg("x").stdout(Stdio::null());
        assert_eq!(echo.output()?.stdout, b"");
        let mut plain = Command::new("true");
        assert!(plain.output()?.status.success());
        let mut child = plain.spawn()?;
        assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
        assert!(child.wait()?.success());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_missing_program_is_not_found_as_in_std() {
    bounded::main(|| {
        let missing = "fuseau-no-such-program-anywhere";
        let std_kind = std::process::Command::new(missing)
            .status()
            .unwrap_err()
            .kind();
        assert_eq!(std_kind, io::ErrorKind::NotFound);
        assert_eq!(Command::new(missing).status().unwrap_err().kind(), std_kind);
        assert_eq!(Command::new(missing).output().unwrap_err().kind(), std_kind);
        assert_eq!(Command::new(missing).spawn().unwrap_err().kind(), std_kind);
        // And `?` in a fiber turns it into an Io error.
        let e = fuseau_tokio::Error::from(Command::new(missing).status().unwrap_err());
        assert_eq!(e.kind(), ErrorKind::Io);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn env_and_current_dir_reach_the_process() {
    let dir = scratch("env");
    let d = dir.path().to_owned();
    bounded::main(move || {
        let out = Command::new("sh")
            .args([
                "-c",
                "printf '%s|%s|%s|%s' \"$ONE\" \"$TWO\" \"$THREE\" \"${GONE-unset}\"",
            ])
            .env("ONE", "1")
            .envs([("TWO", "2"), ("THREE", "3")])
            .env("GONE", "here")
            .env_remove("GONE")
            .output()?;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1|2|3|unset");

        let out = Command::new("/usr/bin/env")
            .env("BEFORE", "cleared")
            .env_clear()
            .env("ONLY", "me")
            .output()?;
        assert_eq!(out.stdout, b"ONLY=me\n");

        let out = Command::new("sh")
            .args(["-c", "pwd -P"])
            .current_dir(&d)
            .output()?;
        let expected = format!("{}\n", d.canonicalize()?.display());
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        Ok(())
    })
    .unwrap();
}

#[test]
fn command_debug_is_std_s() {
    let mut command = Command::new("echo");
    command.arg("a b");
    assert_eq!(
        format!("{command:?}"),
        format!("{:?}", std::process::Command::new("echo").arg("a b"))
    );
    assert_eq!(command.as_std().get_program(), "echo");
}

// ------------------------------------------------------------ spawn, pipes

#[test]
#[cfg_attr(miri, ignore)]
fn a_megabyte_streams_through_cat_between_two_fibers_of_one_thread() {
    bounded::main(|| {
        let mut child = cat()?;
        let data = pattern(1 << 20);
        let expected = data.clone();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // Both fibers run on this thread: a write or read that blocked the
        // thread would deadlock (cat stops reading once its output is full).
        let writer = fuseau_tokio::spawn(move || {
            for chunk in data.chunks(10_000) {
                stdin.write_all(chunk)?;
            }
            Ok(()) // dropping stdin: cat reads end of file
        });
        let reader = fuseau_tokio::spawn(move || {
            let mut got = Vec::new();
            stdout.read_to_end(&mut got)?;
            Ok(got)
        });
        writer.join()?;
        let got = reader.join()?;
        assert!(child.wait()?.success());
        assert_same_bytes(&got, &expected);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn wait_with_output_collects_the_pipes_still_there() {
    bounded::main(|| {
        let child = Command::new("sh")
            .args(["-c", "printf out; printf err >&2; exit 4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(out.stdout, b"out");
        assert_eq!(out.stderr, b"err");

        // stdin still there is closed first (cat ends), a taken stream
        // comes back empty.
        let mut child = cat()?;
        child.stdin.as_mut().unwrap().write_all(b"echoed")?;
        let out = child.wait_with_output()?;
        assert!(out.status.success());
        assert_eq!(out.stdout, b"echoed");

        let mut child = Command::new("echo").stdout(Stdio::piped()).spawn()?;
        let mut taken = child.stdout.take().unwrap();
        let out = child.wait_with_output()?;
        assert_eq!(out.stdout, b"");
        let mut rest = Vec::new();
        taken.read_to_end(&mut rest)?;
        assert_eq!(rest, b"\n");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn kill_kills_and_killing_an_exited_process_is_ok() {
    bounded::main(|| {
        let mut child = Command::new("sleep").arg("60").spawn()?;
        let pid = child.id();
        assert!(running(pid));
        assert_eq!(child.try_wait()?, None);
        child.kill()?;
        let status = child.wait()?;
        assert_eq!(status.signal(), Some(9));
        assert_eq!(state(pid), None, "wait reaps");
        assert_eq!(child.id(), pid, "the id stays");
        child.kill()?;
        assert_eq!(child.try_wait()?, Some(status));

        // Exited but not yet waited for: kill is fine too.
        let mut child = Command::new("true").spawn()?;
        assert!(eventually(|| state(child.id()) == Some('Z'))?);
        child.kill()?;
        assert!(child.wait()?.success());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn one_child_s_stdout_feeds_another_s_stdin() {
    bounded::main(|| {
        let mut echo = Command::new("echo")
            .arg("shout")
            .stdout(Stdio::piped())
            .spawn()?;
        let pipe = Stdio::try_from(echo.stdout.take().unwrap())?;
        let out = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(pipe)
            .output()?;
        assert_eq!(out.stdout, b"SHOUT\n");
        assert!(echo.wait()?.success());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_child_kills_it_only_with_kill_on_drop() {
    bounded::main(|| {
        let child = Command::new("sleep").arg("60").kill_on_drop(true).spawn()?;
        let pid = child.id();
        drop(child);
        // Killed, and reaped by Tokio in the background: no zombie.
        assert_gone(pid)?;

        let child = Command::new("sleep").arg("60").spawn()?;
        let pid = child.id();
        drop(child);
        assert_runs_on_then_kill(pid, "a dropped child was killed")
    })
    .unwrap();
}

// ------------------------------------------------------------ cancellation: status, output

#[test]
#[cfg_attr(miri, ignore)]
fn status_cancelled_before_the_call_starts_nothing() {
    let dir = scratch("status-before");
    let marker = dir.join("marker");
    let m = marker.clone();
    bounded::main(move || {
        cancelled_before(move || {
            assert_cancelled(Command::new("touch").arg(&m).status());
            Command::new("touch").arg(&m).output()
        });
        // Anything it had started would have finished by now.
        assert!(Command::new("true").status()?.success());
        Ok(())
    })
    .unwrap();
    assert!(!marker.exists(), "a cancelled status started its process");
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_cancelled_while_waiting_returns_at_once_and_kills_the_child() {
    let log = Log::new();
    let l = log.clone();
    main_with_pidfile("status-while", move |pidfile| {
        let p = pidfile.clone();
        let pid = cancel_logged_while_waiting(
            &l,
            "status",
            move || sleeper(&p).status(),
            || {
                let pid = pid_in(&pidfile)?;
                assert!(running(pid));
                Ok(pid)
            },
        )?;
        assert_gone(pid)
    });
    assert_eq!(log.take(), ["status", "cancel", "status: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_cancelled_after_it_completed_keeps_the_status() {
    bounded::main(|| {
        let fiber = cancellable(|| {
            let status = Command::new("sh").args(["-c", "exit 5"]).status()?;
            cancel_then_next_fails(|| Command::new("true").status());
            Ok(status)
        });
        assert_eq!(fiber.join()?.code(), Some(5));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn output_cancelled_while_waiting_kills_the_child() {
    main_with_pidfile("output-while", move |pidfile| {
        let p = pidfile.clone();
        let pid = cancel_once_started(&pidfile, move || sleeper(&p).output())?;
        assert_gone(pid)
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_kills_on_cancellation_even_without_kill_on_drop_and_keeps_the_setting() {
    main_with_pidfile("status-setting", move |pidfile| {
        let command = shared(sleeper(&pidfile));
        command.borrow_mut().kill_on_drop(false);
        let c = command.clone();
        let pid = cancel_once_started(&pidfile, move || c.borrow_mut().status())?;
        assert_gone(pid)?;
        // The command's own setting is unchanged: a spawned child that is
        // dropped runs on.
        std::fs::remove_file(&pidfile)?;
        drop(command.borrow_mut().spawn()?);
        let pid = pid_in(&pidfile)?;
        assert_runs_on_then_kill(pid, "kill_on_drop(false) was not restored")
    });
}

// ------------------------------------------------------------ cancellation: Child::wait

#[test]
#[cfg_attr(miri, ignore)]
fn wait_cancelled_before_the_call_leaves_stdin_open() {
    bounded::main(|| {
        let child = shared(cat()?);
        let c = child.clone();
        cancelled_before(move || c.borrow_mut().wait());
        let mut child = Rc::try_unwrap(child).ok().unwrap().into_inner();
        // stdin is still there, and open: cat echoes it.
        child.stdin.as_mut().unwrap().write_all(b"still open")?;
        let out = child.wait_with_output()?;
        assert!(out.status.success());
        assert_eq!(out.stdout, b"still open");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn wait_cancelled_while_waiting_returns_at_once_and_leaves_the_child_running() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let child = shared(Command::new("sleep").arg("60").spawn()?);
        let pid = child.borrow().id();
        let c = child.clone();
        cancel_logged_while_waiting(
            &l,
            "wait",
            move || c.borrow_mut().wait(),
            fuseau_tokio::yield_now,
        )?;
        // The Child is the caller's still: the process runs, and can be
        // waited for again.
        let mut child = child.borrow_mut();
        assert!(running(pid));
        assert_eq!(child.try_wait()?, None);
        child.kill()?;
        assert_eq!(child.wait()?.signal(), Some(9));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["wait", "cancel", "wait: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn wait_cancelled_after_it_completed_keeps_the_status() {
    bounded::main(|| {
        let fiber = cancellable(|| {
            let mut child = Command::new("sh").args(["-c", "exit 6"]).spawn()?;
            let status = child.wait()?;
            cancel_then_next_fails(|| child.wait());
            // The status is kept (and try_wait, which never waits, gives it).
            assert_eq!(child.try_wait()?, Some(status));
            Ok(status)
        });
        assert_eq!(fiber.join()?.code(), Some(6));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn wait_with_output_cancelled_drops_the_child_as_kill_on_drop_says() {
    main_with_pidfile("wait-with-output", move |pidfile| {
        for kill_on_drop in [true, false] {
            let _ = std::fs::remove_file(&pidfile);
            let child = sleeper(&pidfile)
                .stdout(Stdio::piped())
                .kill_on_drop(kill_on_drop)
                .spawn()?;
            let pid = cancel_once_started(&pidfile, move || child.wait_with_output())?;
            if kill_on_drop {
                assert_gone(pid)?;
            } else {
                assert_runs_on_then_kill(pid, "killed without kill_on_drop")?;
            }
        }
        Ok(())
    });
}

// ------------------------------------------------------------ cancellation: pipes

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_before_the_call_reads_nothing() {
    bounded::main(|| {
        let mut child = cat()?;
        child.stdin.as_mut().unwrap().write_all(b"abc")?;
        let stdout = shared(child.stdout.take().unwrap());
        let s = stdout.clone();
        cancelled_before(move || s.borrow_mut().read(&mut [0; 16]));
        assert_eq!(close_and_read_to_end(&mut child, &stdout)?, b"abc");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_while_waiting_returns_at_once_and_loses_nothing() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let mut child = cat()?;
        let stdout = shared(child.stdout.take().unwrap());
        let s = stdout.clone();
        cancel_logged_while_waiting(
            &l,
            "read",
            move || s.borrow_mut().read(&mut [0; 16]),
            fuseau_tokio::yield_now,
        )?;
        // What comes afterwards is all there for the next reader.
        child.stdin.as_mut().unwrap().write_all(b"later")?;
        assert_eq!(close_and_read_to_end(&mut child, &stdout)?, b"later");
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["read", "cancel", "read: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_after_it_completed_keeps_its_bytes() {
    bounded::main(|| {
        let mut child = cat()?;
        let mut stdout = child.stdout.take().unwrap();
        let fiber = cancellable(move || {
            let mut buf = [0; 16];
            let n = stdout.read(&mut buf)?;
            cancel_then_next_fails(|| stdout.read(&mut [0; 16]));
            Ok(buf[..n].to_vec())
        });
        fuseau_tokio::yield_now()?;
        child.stdin.as_mut().unwrap().write_all(b"xyz")?;
        assert_eq!(fiber.join()?, b"xyz");
        child.kill()?;
        child.wait()?;
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_before_the_call_writes_nothing() {
    bounded::main(|| {
        let mut child = cat()?;
        let mut stdin = child.stdin.take().unwrap();
        cancelled_before(move || stdin.write(b"never")); // drops stdin
        let out = child.wait_with_output()?;
        assert_eq!(out.stdout, b"", "the cancelled write sent data");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_while_waiting_returns_at_once_and_writes_nothing_more() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        // Nobody reads cat's output: its pipes fill, and the writer waits.
        let mut child = cat()?;
        let mut stdin = child.stdin.take().unwrap();
        let written = Rc::new(Cell::new(0usize));
        let w = written.clone();
        // Writes until an error, then drops stdin: cat reads end of file.
        let write = move || -> io::Result<()> {
            let chunk = vec![7u8; 64 * 1024];
            loop {
                w.set(w.get() + stdin.write(&chunk)?);
            }
        };
        cancel_logged_while_waiting(&l, "write", write, || {
            // Cat's pipes fill up; then the writer waits and makes no
            // progress.
            let mut last = 0;
            let full = eventually(|| {
                let now = written.get();
                let stalled = now > 0 && now == last;
                last = now;
                stalled
            })?;
            assert!(full, "the pipes never filled");
            Ok(())
        })?;
        // Everything that came out was counted: the cancelled write wrote
        // nothing.
        let out = child.wait_with_output()?;
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), written.get());
        assert!(out.stdout.iter().all(|&b| b == 7));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["write", "cancel", "write: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_after_it_completed_keeps_its_bytes() {
    bounded::main(|| {
        let mut child = cat()?;
        let mut stdin = child.stdin.take().unwrap();
        let fiber = cancellable(move || {
            let n = stdin.write(b"kept")?;
            cancel_then_next_fails(|| stdin.write(b"lost"));
            stdin.flush()?; // nothing buffered: not a cancellation point
            Ok(n)
        });
        assert_eq!(fiber.join()?, 4);
        let out = child.wait_with_output()?;
        assert_eq!(out.stdout, b"kept");
        Ok(())
    })
    .unwrap();
}

// ------------------------------------------------------------ outside a fiber

#[test]
fn outside_a_fiber_the_calls_fail_instead_of_blocking() {
    let e = Command::new("sleep").arg("60").status().unwrap_err();
    assert_eq!(kind(e), ErrorKind::NotInFiber);
    let e = Command::new("sleep").arg("60").output().unwrap_err();
    assert_eq!(kind(e), ErrorKind::NotInFiber);
    let e = Command::new("sleep").arg("60").spawn().unwrap_err();
    assert_eq!(kind(e), ErrorKind::NotInFiber);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_tokio_task_beside_the_fibers_gets_errors_not_a_hang() {
    bounded::main(|| {
        let mut child = cat()?;
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let task = tokio::task::spawn_local(async move {
            // Not a fiber: nothing here may wait.
            let read = stdout.read(&mut [0; 16]).map_err(kind);
            let write = stdin.write(b"x").map_err(kind);
            let wait = child.wait().map_err(kind);
            (read, write, wait, child, stdin)
        });
        let (read, write, wait, mut child, stdin) = fuseau_tokio::await_future(task)?.unwrap();
        assert_eq!(read.unwrap_err(), ErrorKind::NotInFiber);
        assert_eq!(write.unwrap_err(), ErrorKind::NotInFiber);
        assert_eq!(wait.unwrap_err(), ErrorKind::NotInFiber);
        // Back in a fiber, the child works as before.
        assert_eq!(child.try_wait()?, None);
        drop(stdin);
        assert!(child.wait()?.success());
        Ok(())
    })
    .unwrap();
}

#[test]
fn the_types_are_send_and_sync_as_std_s() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Command>();
    send_sync::<Child>();
    send_sync::<fuseau_tokio::process::ChildStdin>();
    send_sync::<ChildStdout>();
    send_sync::<fuseau_tokio::process::ChildStderr>();
}
