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

use common::{ms, Log};
use fuseau_tokio::process::{Child, ChildStdout, Command};
use fuseau_tokio::{AnyFiber, Builder, ErrorKind};

// ------------------------------------------------------------ helpers

/// The fiber error an `io::Error` of this module carries.
fn kind(e: io::Error) -> ErrorKind {
    fuseau_tokio::Error::from(e).kind()
}

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuseau-process-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let d = dir.clone();
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
    std::fs::remove_dir_all(&dir).unwrap();
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
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
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
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the data changed on the way");
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
        fuseau_tokio::sleep(ms(20))?;
        assert!(running(pid), "a dropped child was killed");
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        assert_gone(pid)
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
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = Command::new("touch").arg(&m).status().unwrap_err();
                assert_eq!(kind(e), ErrorKind::Cancelled);
                let e = Command::new("touch").arg(&m).output().unwrap_err();
                assert_eq!(kind(e), ErrorKind::Cancelled);
                Ok(())
            });
        fiber.join()?;
        // Anything it had started would have finished by now.
        assert!(Command::new("true").status()?.success());
        Ok(())
    })
    .unwrap();
    assert!(!marker.exists(), "a cancelled status started its process");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_cancelled_while_waiting_returns_at_once_and_kills_the_child() {
    let dir = scratch("status-while");
    let pidfile = dir.join("pid");
    let p = pidfile.clone();
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let l2 = l.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                l2.push("status");
                let e = sleeper(&p).status().unwrap_err();
                l2.push(format!("status: {:?}", kind(e)));
                Ok(())
            });
        let pid = pid_in(&pidfile)?;
        assert!(running(pid));
        l.push("cancel");
        fiber.cancel();
        fiber.join()?;
        assert_gone(pid)
    })
    .unwrap();
    assert_eq!(log.take(), ["status", "cancel", "status: Cancelled"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_cancelled_after_it_completed_keeps_the_status() {
    bounded::main(|| {
        let fiber = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            let status = Command::new("sh").args(["-c", "exit 5"]).status()?;
            AnyFiber::current().cancel();
            let next = Command::new("true").status().unwrap_err();
            assert_eq!(kind(next), ErrorKind::Cancelled);
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
    let dir = scratch("output-while");
    let pidfile = dir.join("pid");
    let p = pidfile.clone();
    bounded::main(move || {
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let e = sleeper(&p).output().unwrap_err();
                Err::<(), _>(fuseau_tokio::Error::from(e))
            });
        let pid = pid_in(&pidfile)?;
        fiber.cancel();
        assert!(fiber.join().unwrap_err().is_cancelled());
        assert_gone(pid)
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn status_kills_on_cancellation_even_without_kill_on_drop_and_keeps_the_setting() {
    let dir = scratch("status-setting");
    let pidfile = dir.join("pid");
    let p = pidfile.clone();
    bounded::main(move || {
        let command = Rc::new(RefCell::new(sleeper(&p)));
        command.borrow_mut().kill_on_drop(false);
        let c = command.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || c.borrow_mut().status().map(|_| ()).map_err(Into::into));
        let pid = pid_in(&pidfile)?;
        fiber.cancel();
        assert!(fiber.join().unwrap_err().is_cancelled());
        assert_gone(pid)?;
        // The command's own setting is unchanged: a spawned child that is
        // dropped runs on.
        std::fs::remove_file(&pidfile)?;
        drop(command.borrow_mut().spawn()?);
        let pid = pid_in(&pidfile)?;
        fuseau_tokio::sleep(ms(20))?;
        assert!(running(pid), "kill_on_drop(false) was not restored");
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        assert_gone(pid)
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------ cancellation: Child::wait

#[test]
#[cfg_attr(miri, ignore)]
fn wait_cancelled_before_the_call_leaves_stdin_open() {
    bounded::main(|| {
        let child = Rc::new(RefCell::new(cat()?));
        let c = child.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = c.borrow_mut().wait().unwrap_err();
                assert_eq!(kind(e), ErrorKind::Cancelled);
                Ok(())
            });
        fiber.join()?;
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
        let child = Rc::new(RefCell::new(Command::new("sleep").arg("60").spawn()?));
        let pid = child.borrow().id();
        let c = child.clone();
        let l2 = l.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                l2.push("wait");
                let e = c.borrow_mut().wait().unwrap_err();
                l2.push(format!("wait: {:?}", kind(e)));
                Ok(())
            });
        fuseau_tokio::yield_now()?;
        l.push("cancel");
        fiber.cancel();
        fiber.join()?;
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
        let fiber = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            let mut child = Command::new("sh").args(["-c", "exit 6"]).spawn()?;
            let status = child.wait()?;
            AnyFiber::current().cancel();
            assert_eq!(kind(child.wait().unwrap_err()), ErrorKind::Cancelled);
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
    let dir = scratch("wait-with-output");
    let pidfile = dir.join("pid");
    let p = pidfile.clone();
    bounded::main(move || {
        for kill_on_drop in [true, false] {
            let _ = std::fs::remove_file(&p);
            let child = sleeper(&p)
                .stdout(Stdio::piped())
                .kill_on_drop(kill_on_drop)
                .spawn()?;
            let fiber = Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(move || child.wait_with_output().map(|_| ()).map_err(Into::into));
            let pid = pid_in(&p)?;
            fuseau_tokio::yield_now()?;
            fiber.cancel();
            assert!(fiber.join().unwrap_err().is_cancelled());
            if kill_on_drop {
                assert_gone(pid)?;
            } else {
                fuseau_tokio::sleep(ms(20))?;
                assert!(running(pid), "killed without kill_on_drop");
                std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()?;
                assert_gone(pid)?;
            }
        }
        Ok(())
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------ cancellation: pipes

#[test]
#[cfg_attr(miri, ignore)]
fn read_cancelled_before_the_call_reads_nothing() {
    bounded::main(|| {
        let mut child = cat()?;
        child.stdin.as_mut().unwrap().write_all(b"abc")?;
        let stdout = Rc::new(RefCell::new(child.stdout.take().unwrap()));
        let s = stdout.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = s.borrow_mut().read(&mut [0; 16]).unwrap_err();
                assert_eq!(kind(e), ErrorKind::Cancelled);
                Ok(())
            });
        fiber.join()?;
        drop(child.stdin.take());
        let mut got = Vec::new();
        stdout.borrow_mut().read_to_end(&mut got)?;
        assert_eq!(got, b"abc");
        assert!(child.wait()?.success());
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
        let stdout: Rc<RefCell<ChildStdout>> = Rc::new(RefCell::new(child.stdout.take().unwrap()));
        let s = stdout.clone();
        let l2 = l.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                l2.push("read");
                let e = s.borrow_mut().read(&mut [0; 16]).unwrap_err();
                l2.push(format!("read: {:?}", kind(e)));
                Ok(())
            });
        fuseau_tokio::yield_now()?;
        l.push("cancel");
        fiber.cancel();
        fiber.join()?;
        // What comes afterwards is all there for the next reader.
        child.stdin.as_mut().unwrap().write_all(b"later")?;
        drop(child.stdin.take());
        let mut got = Vec::new();
        stdout.borrow_mut().read_to_end(&mut got)?;
        assert_eq!(got, b"later");
        assert!(child.wait()?.success());
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
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let mut buf = [0; 16];
                let n = stdout.read(&mut buf)?;
                AnyFiber::current().cancel();
                assert_eq!(
                    kind(stdout.read(&mut [0; 16]).unwrap_err()),
                    ErrorKind::Cancelled
                );
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
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let e = stdin.write(b"never").unwrap_err();
                assert_eq!(kind(e), ErrorKind::Cancelled);
                Ok(()) // drops stdin
            });
        fiber.join()?;
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
        let l2 = l.clone();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let chunk = vec![7u8; 64 * 1024];
                l2.push("writing");
                loop {
                    match stdin.write(&chunk) {
                        Ok(n) => w.set(w.get() + n),
                        Err(e) => {
                            l2.push(format!("write: {:?}", kind(e)));
                            return Ok(()); // drops stdin: cat reads end of file
                        }
                    }
                }
            });
        // Cat's pipes fill up; then the writer waits and makes no progress.
        let mut last = 0;
        let full = eventually(|| {
            let now = written.get();
            let stalled = now > 0 && now == last;
            last = now;
            stalled
        })?;
        assert!(full, "the pipes never filled");
        l.push("cancel");
        fiber.cancel();
        fiber.join()?;
        // Everything that came out was counted: the cancelled write wrote
        // nothing.
        let out = child.wait_with_output()?;
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), written.get());
        assert!(out.stdout.iter().all(|&b| b == 7));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["writing", "cancel", "write: Cancelled"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn write_cancelled_after_it_completed_keeps_its_bytes() {
    bounded::main(|| {
        let mut child = cat()?;
        let mut stdin = child.stdin.take().unwrap();
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let n = stdin.write(b"kept")?;
                AnyFiber::current().cancel();
                assert_eq!(
                    kind(stdin.write(b"lost").unwrap_err()),
                    ErrorKind::Cancelled
                );
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
