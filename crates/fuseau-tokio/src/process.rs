//! Child processes in direct style, mirroring [`std::process`].
//!
//! A [`Command`] builds and starts a process, as `std`'s does;
//! [`status`](Command::status), [`output`](Command::output) and
//! [`Child::wait`] suspend the fiber, not the thread, until the process
//! exits. A [`Child`]'s pipes are fiber streams: [`ChildStdin`] implements
//! [`Write`], [`ChildStdout`] and [`ChildStderr`] implement [`Read`], and a
//! call that would block suspends the fiber, so one thread can feed a
//! process and read its output at the same time, from two fibers.
//!
//! Built on [`tokio::process`]; the API speaks `std`'s types ([`Stdio`],
//! [`ExitStatus`], [`Output`]) and returns [`io::Result`]s.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::process::Stdio;
//!
//! use fuseau_tokio::process::Command;
//!
//! fuseau_tokio::main(|| {
//!     let status = Command::new("sh").args(["-c", "exit 3"]).status()?;
//!     assert_eq!(status.code(), Some(3));
//!
//!     let mut child = Command::new("tr")
//!         .arg("a-z")
//!         .arg("A-Z")
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let mut stdin = child.stdin.take().unwrap();
//!     // A fiber writes while this one reads: neither blocks the thread.
//!     let writer = fuseau_tokio::spawn(move || {
//!         stdin.write_all(b"hello, fibers\n")?;
//!         Ok(()) // dropping `stdin` closes it: `tr` sees end of file
//!     });
//!     let mut shouted = String::new();
//!     child.stdout.take().unwrap().read_to_string(&mut shouted)?;
//!     writer.join()?;
//!     assert!(child.wait()?.success());
//!     assert_eq!(shouted, "HELLO, FIBERS\n");
//!     Ok(())
//! })?;
//! # Ok::<(), fuseau_tokio::Error>(())
//! ```
//!
//! # Cancellation
//!
//! Every call that may wait is a cancellation point: [`Command::status`],
//! [`Command::output`], [`Child::wait`], [`Child::wait_with_output`], and
//! the reads and writes of the pipes. Cancelled before the call, it returns
//! the cancellation error and does nothing (it starts no process, closes no
//! pipe, reads or writes nothing); cancelled while it waits, it returns the
//! cancellation error at once; cancelled after it completed, its result is
//! kept and the next such call fails. As in [`iostream`](crate::iostream),
//! the cancellation error is an [`io::Error`] of kind
//! [`Other`](io::ErrorKind::Other) wrapping the fiber's
//! [`Error`](fuseau::Error) (never `Interrupted`, which `read_exact` and
//! `write_all` retry); `fuseau_tokio::Error::from(io_error)` gives it back,
//! so `?` in a fiber passes it up unchanged.
//!
//! What happens to the process when a wait is cancelled:
//!
//! - [`Command::status`] and [`Command::output`] own the process, which
//!   nobody else can reach: cancelled while waiting, they kill it (`SIGKILL`)
//!   before returning, whatever [`Command::kill_on_drop`] says.
//! - [`Child::wait`] leaves it running: the [`Child`] is the caller's, who
//!   may wait again, [`kill`](Child::kill) it, or drop it.
//! - [`Child::wait_with_output`] consumes the [`Child`]: cancelled, it drops
//!   it, with the effect of dropping a `Child` (below).
//! - Dropping a [`Child`] lets the process run on, as in `std`, unless
//!   [`Command::kill_on_drop`] was set, which kills it.
//!
//! # Zombies
//!
//! A process whose [`Child`] is dropped before it was waited for is not left
//! a zombie: Tokio reaps such orphans in the background (best effort, when
//! its driver next runs after the process exited, so while the runtime
//! runs). [`wait`](Child::wait) or [`try_wait`](Child::try_wait) reap at
//! once.
//!
//! # Outside a fiber
//!
//! The calls that may wait, and [`Command::spawn`] (which registers the
//! process with the fiber's Tokio runtime), return an error of kind
//! [`NotInFiber`](fuseau::ErrorKind::NotInFiber) (wrapped in an
//! [`io::Error`] as above) outside a fiber: they never block the thread.
//! [`Child::id`], [`Child::try_wait`] and [`Child::kill`] do not wait and
//! work anywhere.

use std::ffi::OsStr;
use std::fmt;
use std::future::ready;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use crate::future::await_future;
use crate::iostream::{read_once, write_once};
use crate::runtime::require_fiber;

/// Returns `call`'s `NotInFiber` error outside a fiber, or the fiber's
/// cancellation error if it was cancelled; never waits.
fn checkpoint(call: &str) -> io::Result<()> {
    require_fiber(call)?;
    await_future(ready(()))?;
    Ok(())
}

/// A process builder, as [`std::process::Command`]: the program, its
/// arguments, environment, working directory and standard streams, then
/// [`spawn`](Command::spawn), [`status`](Command::status) or
/// [`output`](Command::output) to run it (as often as wanted).
///
/// The builder methods take and return `&mut Command`, as `std`'s, so calls
/// chain on a temporary. See the [module docs](self) for cancellation.
///
/// # Examples
///
/// ```
/// use fuseau_tokio::process::Command;
///
/// fuseau_tokio::main(|| {
///     let output = Command::new("echo").arg("hello").output()?;
///     assert!(output.status.success());
///     assert_eq!(output.stdout, b"hello\n");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct Command {
    inner: tokio::process::Command,
    /// Whether the caller set stdin, stdout or stderr: [`Command::output`]
    /// applies `std`'s defaults for it (null, piped, piped) to the others
    /// only.
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl Command {
    /// A command for running `program`, with no arguments, this process's
    /// environment and working directory, and inherited standard streams
    /// (for [`spawn`](Command::spawn) and [`status`](Command::status);
    /// [`output`](Command::output) captures stdout and stderr by default).
    ///
    /// `program` is looked up in `PATH` unless it is a path, as in `std`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     assert!(Command::new("true").status()?.success());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command {
            inner: tokio::process::Command::new(program),
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }

    /// Adds an argument, passed as it is (no shell interprets it).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("echo").arg("two words").output()?;
    ///     assert_eq!(out.stdout, b"two words\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds several arguments, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("echo").args(["a", "b", "c"]).output()?;
    ///     assert_eq!(out.stdout, b"a b c\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the process (on top of the
    /// inherited environment, unless [`env_clear`](Command::env_clear)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("sh")
    ///         .args(["-c", "printf %s \"$GREETING\""])
    ///         .env("GREETING", "bonjour")
    ///         .output()?;
    ///     assert_eq!(out.stdout, b"bonjour");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn env<K, V>(&mut self, key: K, val: V) -> &mut Command
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.env(key, val);
        self
    }

    /// Sets several environment variables, as [`env`](Command::env).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("sh")
    ///         .args(["-c", "printf '%s %s' \"$A\" \"$B\""])
    ///         .envs([("A", "1"), ("B", "2")])
    ///         .output()?;
    ///     assert_eq!(out.stdout, b"1 2");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the process's environment
    /// (inherited or set earlier).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("sh")
    ///         .args(["-c", "printf %s \"${GONE-unset}\""])
    ///         .env("GONE", "here")
    ///         .env_remove("GONE")
    ///         .output()?;
    ///     assert_eq!(out.stdout, b"unset");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Clears the environment: the process sees only the variables set
    /// afterwards (not even `PATH`, so a program given by name is then looked
    /// up in the default path, as in `std`).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("/usr/bin/env").env_clear().env("ONLY", "me").output()?;
    ///     assert_eq!(out.stdout, b"ONLY=me\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the process's working directory. As in `std`, a relative
    /// program path is interpreted in a platform-specific way: give an
    /// absolute path, or a name looked up in `PATH`.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("pwd").current_dir("/").output()?;
    ///     assert_eq!(out.stdout, b"/\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets the process's standard input: [`Stdio::piped`] makes
    /// [`Child::stdin`] a [`ChildStdin`]. The default is
    /// [`Stdio::inherit`] for [`spawn`](Command::spawn) and
    /// [`status`](Command::status), [`Stdio::null`] for
    /// [`output`](Command::output), as in `std`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Stdio;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     // `cat` reads an empty input and ends at once.
    ///     let status = Command::new("cat").stdin(Stdio::null()).status()?;
    ///     assert!(status.success());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the process's standard output: [`Stdio::piped`] makes
    /// [`Child::stdout`] a [`ChildStdout`]. The default is
    /// [`Stdio::inherit`] for [`spawn`](Command::spawn) and
    /// [`status`](Command::status), [`Stdio::piped`] (captured) for
    /// [`output`](Command::output), as in `std`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Stdio;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("echo").arg("lost").stdout(Stdio::null()).output()?;
    ///     assert!(out.stdout.is_empty());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the process's standard error: [`Stdio::piped`] makes
    /// [`Child::stderr`] a [`ChildStderr`]. Defaults as for
    /// [`stdout`](Command::stdout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Stdio;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("sh")
    ///         .args(["-c", "echo oops >&2"])
    ///         .stderr(Stdio::null())
    ///         .output()?;
    ///     assert!(out.stderr.is_empty());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Whether dropping a [`Child`] spawned from this command kills the
    /// process (`SIGKILL`) if it still runs. The default is `false`
    /// (Tokio's, and `std`'s behaviour): the process runs on, and Tokio
    /// reaps it when it exits (see the [module docs](self#zombies)).
    ///
    /// This concerns [`spawn`](Command::spawn)ed children, including one
    /// dropped by a cancelled [`Child::wait_with_output`].
    /// [`status`](Command::status) and [`output`](Command::output) kill
    /// their process when cancelled whatever this says.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let child = Command::new("sleep").arg("60").kill_on_drop(true).spawn()?;
    ///     drop(child); // `sleep` is killed (and reaped by Tokio)
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.inner.kill_on_drop(kill_on_drop);
        self
    }

    /// The underlying `std` command, to read its settings
    /// ([`get_program`](std::process::Command::get_program),
    /// [`get_args`](std::process::Command::get_args) …).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// let mut command = Command::new("ls");
    /// command.arg("-l");
    /// assert_eq!(command.as_std().get_program(), "ls");
    /// assert_eq!(command.as_std().get_args().collect::<Vec<_>>(), ["-l"]);
    /// ```
    pub fn as_std(&self) -> &std::process::Command {
        self.inner.as_std()
    }

    /// The underlying `std` command, for settings this type does not offer
    /// (Unix's `CommandExt`: `uid`, `gid`, `process_group`, `arg0` …).
    ///
    /// Set the standard streams with [`stdin`](Command::stdin),
    /// [`stdout`](Command::stdout) and [`stderr`](Command::stderr), not
    /// through this: [`output`](Command::output) would not know they were
    /// set, and would apply its defaults over them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::process::CommandExt;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let mut command = Command::new("sh");
    ///     command.args(["-c", "printf %s \"$0\""]);
    ///     command.as_std_mut().arg0("renamed");
    ///     assert_eq!(command.output()?.stdout, b"renamed");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        self.inner.as_std_mut()
    }

    /// Starts the process and returns a handle to it, with its piped
    /// streams (see [`stdin`](Command::stdin) …). Streams not set are
    /// inherited.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it does not wait for the process (starting
    /// it takes one `fork`/`exec` on this thread, as in `std`), and a
    /// cancelled fiber may still spawn (its next wait fails).
    ///
    /// # Errors
    ///
    /// As [`std::process::Command::spawn`]: a missing program is
    /// [`NotFound`](io::ErrorKind::NotFound), one that may not be run
    /// [`PermissionDenied`](io::ErrorKind::PermissionDenied); the process
    /// limit gives `WouldBlock`. Outside a fiber,
    /// [`NotInFiber`](fuseau::ErrorKind::NotInFiber) (see the
    /// [module docs](self#outside-a-fiber)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use std::process::Stdio;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let mut child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
    ///     let mut out = String::new();
    ///     child.stdout.take().unwrap().read_to_string(&mut out)?;
    ///     assert!(child.wait()?.success());
    ///     assert_eq!(out, "hi\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        require_fiber("fuseau_tokio::process::Command::spawn")?;
        Child::new(self.inner.spawn()?)
    }

    /// Spawns the process with Tokio's kill-on-drop set, whatever the
    /// caller chose, for [`status`](Command::status) and
    /// [`output`](Command::output), which own it: when they are cancelled,
    /// dropping it kills it.
    fn spawn_owned(&mut self) -> io::Result<tokio::process::Child> {
        let kill_on_drop = self.inner.get_kill_on_drop();
        self.inner.kill_on_drop(true);
        let child = self.inner.spawn();
        self.inner.kill_on_drop(kill_on_drop);
        child
    }

    /// Runs the process to completion and returns its exit status. The
    /// streams not set are inherited; piped ones are closed at once (the
    /// process reads end of file, and its writes fail).
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled before the call, it starts nothing.
    /// Cancelled while the process runs, it kills the process (`SIGKILL`;
    /// Tokio reaps it) and returns the cancellation error at once. Cancelled
    /// after the process exited, it returns the status; the fiber's next
    /// wait fails.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) (a missing program is
    /// [`NotFound`](io::ErrorKind::NotFound)); an error waiting for the
    /// process; the fiber's cancellation (see the [module docs](self)).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     assert_eq!(Command::new("true").status()?.code(), Some(0));
    ///     assert_eq!(Command::new("false").status()?.code(), Some(1));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        checkpoint("fuseau_tokio::process::Command::status")?;
        let mut child = self.spawn_owned()?;
        // Nobody could serve these pipes: closing them spares the process a
        // wait that would never end.
        drop(child.stdin.take());
        drop(child.stdout.take());
        drop(child.stderr.take());
        // Cancelled, `child` is dropped on the way out, which kills it.
        await_future(child.wait())?
    }

    /// Runs the process to completion, collecting its standard output and
    /// error, and returns them with its exit status.
    ///
    /// As in `std`, stdout and stderr are captured unless they were set
    /// (one set to [`Stdio::inherit`] or [`Stdio::null`] comes back empty),
    /// and stdin is [`Stdio::null`] unless it was set. Both outputs are read
    /// as they come, so a process that writes much to both does not stall.
    ///
    /// # Cancellation
    ///
    /// As [`status`](Command::status): cancelled while the process runs, it
    /// kills it, drops what it had collected, and returns the cancellation
    /// error at once.
    ///
    /// # Errors
    ///
    /// As [`status`](Command::status); errors reading the pipes.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let out = Command::new("sh")
    ///         .args(["-c", "printf out; printf err >&2; exit 3"])
    ///         .output()?;
    ///     assert_eq!(out.status.code(), Some(3));
    ///     assert_eq!(out.stdout, b"out");
    ///     assert_eq!(out.stderr, b"err");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn output(&mut self) -> io::Result<Output> {
        checkpoint("fuseau_tokio::process::Command::output")?;
        if !self.stdin_set {
            self.inner.stdin(Stdio::null());
        }
        if !self.stdout_set {
            self.inner.stdout(Stdio::piped());
        }
        if !self.stderr_set {
            self.inner.stderr(Stdio::piped());
        }
        let child = self.spawn_owned();
        // Back to what `spawn` and `status` use for the streams not set.
        if !self.stdin_set {
            self.inner.stdin(Stdio::inherit());
        }
        if !self.stdout_set {
            self.inner.stdout(Stdio::inherit());
        }
        if !self.stderr_set {
            self.inner.stderr(Stdio::inherit());
        }
        // Cancelled, the future, which owns the child, is dropped: that
        // kills it.
        await_future(child?.wait_with_output())?
    }
}

impl fmt::Debug for Command {
    /// As `std`'s: the program and its arguments, quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.inner.as_std(), f)
    }
}

/// A running (or exited) child process, as [`std::process::Child`]: its
/// id, its piped standard streams, and ways to wait for it and to kill it.
///
/// Dropping a `Child` neither waits for the process nor kills it (unless
/// [`Command::kill_on_drop`] was set); Tokio reaps it once it exits (see the
/// [module docs](self#zombies)).
///
/// # Examples
///
/// ```
/// use fuseau_tokio::process::Command;
///
/// fuseau_tokio::main(|| {
///     let mut child = Command::new("sleep").arg("60").spawn()?;
///     assert!(child.try_wait()?.is_none());
///     child.kill()?;
///     let status = child.wait()?;
///     assert!(!status.success());
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
#[derive(Debug)]
pub struct Child {
    /// The process's standard input, if it was [`Stdio::piped`]. Take it
    /// (`child.stdin.take()`) to write from another fiber, and drop it to
    /// close it; [`wait`](Child::wait) closes it too.
    pub stdin: Option<ChildStdin>,
    /// The process's standard output, if it was [`Stdio::piped`].
    pub stdout: Option<ChildStdout>,
    /// The process's standard error, if it was [`Stdio::piped`].
    pub stderr: Option<ChildStderr>,
    inner: tokio::process::Child,
    id: u32,
}

impl Child {
    fn new(mut inner: tokio::process::Child) -> io::Result<Child> {
        let id = inner
            .id()
            .ok_or_else(|| io::Error::other("a child process that was just spawned has no id"))?;
        Ok(Child {
            stdin: inner.stdin.take().map(|inner| ChildStdin { inner }),
            stdout: inner.stdout.take().map(|inner| ChildStdout { inner }),
            stderr: inner.stderr.take().map(|inner| ChildStderr { inner }),
            inner,
            id,
        })
    }

    /// The process's id, as the operating system knows it. It stays the
    /// same after the process exited (when the system may give it to
    /// another process).
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let mut child = Command::new("true").spawn()?;
    ///     assert!(child.id() > 0);
    ///     child.wait()?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits for the process to exit, and returns its exit status. Closes
    /// [`stdin`](Child::stdin) first, if it is there, so that a process
    /// waiting for its input does not wait forever. Once it returned a
    /// status, later calls return the same one.
    ///
    /// # Cancellation
    ///
    /// A cancellation point. Cancelled before the call, it does nothing
    /// (stdin stays open). Cancelled while waiting, it returns the
    /// cancellation error at once and leaves the process running: the
    /// `Child` is still the caller's, to wait for again, kill or drop.
    /// Cancelled after the process exited, it returns the status.
    ///
    /// # Errors
    ///
    /// An error waiting for the process; the fiber's cancellation;
    /// [`NotInFiber`](fuseau::ErrorKind::NotInFiber) outside a fiber.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn()?;
    ///     assert_eq!(child.wait()?.code(), Some(7));
    ///     assert_eq!(child.wait()?.code(), Some(7));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        checkpoint("fuseau_tokio::process::Child::wait")?;
        drop(self.stdin.take());
        await_future(self.inner.wait())?
    }

    /// The exit status, if the process has exited (reaping it), or `None`
    /// if it still runs. Never waits; does not close stdin.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it never waits.
    ///
    /// # Errors
    ///
    /// An error asking the system about the process.
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let mut child = Command::new("sleep").arg("60").spawn()?;
    ///     assert_eq!(child.try_wait()?, None);
    ///     child.kill()?;
    ///     child.wait()?;
    ///     assert!(child.try_wait()?.is_some());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Kills the process (`SIGKILL`), as `std`'s `kill`: it does not wait
    /// for it to exit ([`wait`](Child::wait) for that). Killing a process
    /// that already exited does nothing and returns `Ok(())`.
    ///
    /// # Cancellation
    ///
    /// Not a cancellation point: it never waits.
    ///
    /// # Errors
    ///
    /// An error sending the signal.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let mut child = Command::new("sleep").arg("60").spawn()?;
    ///     child.kill()?;
    ///     assert_eq!(child.wait()?.signal(), Some(9));
    ///     child.kill()?; // already gone: nothing to do
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.start_kill()
    }

    /// Waits for the process to exit while collecting what it writes to
    /// [`stdout`](Child::stdout) and [`stderr`](Child::stderr) (those still
    /// there; one taken or not piped comes back empty), and returns both
    /// with the exit status. Closes [`stdin`](Child::stdin) first, as
    /// [`wait`](Child::wait) does.
    ///
    /// # Cancellation
    ///
    /// A cancellation point. It consumes the `Child`: cancelled before the
    /// call or while waiting, it drops it, and what it had collected, and
    /// returns the cancellation error at once; the process is killed only
    /// if [`Command::kill_on_drop`] was set, as when a `Child` is dropped.
    /// Cancelled after the process exited, it returns the output.
    ///
    /// # Errors
    ///
    /// As [`wait`](Child::wait); errors reading the pipes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::process::Stdio;
    ///
    /// use fuseau_tokio::process::Command;
    ///
    /// fuseau_tokio::main(|| {
    ///     let child = Command::new("echo").arg("done").stdout(Stdio::piped()).spawn()?;
    ///     let out = child.wait_with_output()?;
    ///     assert!(out.status.success());
    ///     assert_eq!(out.stdout, b"done\n");
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn wait_with_output(self) -> io::Result<Output> {
        checkpoint("fuseau_tokio::process::Child::wait_with_output")?;
        let Child {
            stdin,
            stdout,
            stderr,
            mut inner,
            id: _,
        } = self;
        inner.stdin = stdin.map(|s| s.inner);
        inner.stdout = stdout.map(|s| s.inner);
        inner.stderr = stderr.map(|s| s.inner);
        await_future(inner.wait_with_output())?
    }
}

/// A child process's standard input: a [`Write`] whose calls suspend the
/// fiber while the pipe is full. Dropping it closes the pipe (the process
/// reads end of file).
///
/// Unbuffered, as `std`'s: each [`write`](Write::write) is one write to the
/// pipe (wrap it in a [`BufWriter`](std::io::BufWriter) for many small
/// writes), and [`flush`](Write::flush) does nothing.
///
/// # Cancellation
///
/// A write is a cancellation point: cancelled before it or while it waits,
/// it writes nothing and returns the cancellation error (see the
/// [module docs](self#cancellation)); `write_all`, cancelled, may have
/// written a prefix of its data. Outside a fiber, a write returns a
/// [`NotInFiber`](fuseau::ErrorKind::NotInFiber) error.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::process::Stdio;
///
/// use fuseau_tokio::process::Command;
///
/// fuseau_tokio::main(|| {
///     let mut child = Command::new("wc")
///         .arg("-l")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let mut stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"one\ntwo\n")?;
///     drop(stdin);
///     let out = child.wait_with_output()?;
///     assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
#[derive(Debug)]
pub struct ChildStdin {
    inner: tokio::process::ChildStdin,
}

impl Write for ChildStdin {
    /// Writes as much of `data` as the pipe takes at once, waiting until it
    /// takes something; returns how much. An empty `data` returns `Ok(0)`
    /// at once.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` once the process closed its input (or exited); the
    /// fiber's cancellation; `NotInFiber` outside a fiber.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        write_once(&mut self.inner, data)
    }

    /// Does nothing: nothing is buffered. Not a cancellation point.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A child process's standard output: a [`Read`] whose calls suspend the
/// fiber until the process writes (or closes it).
///
/// Unbuffered, as `std`'s: wrap it in a [`BufReader`](std::io::BufReader)
/// for lines.
///
/// # Cancellation
///
/// A read is a cancellation point: cancelled before it or while it waits,
/// it reads nothing (no data is lost: the next read gets it) and returns
/// the cancellation error (see the [module docs](self#cancellation)).
/// Outside a fiber, a read returns a
/// [`NotInFiber`](fuseau::ErrorKind::NotInFiber) error.
///
/// # Examples
///
/// ```
/// use std::io::{BufRead, BufReader};
/// use std::process::Stdio;
///
/// use fuseau_tokio::process::Command;
///
/// fuseau_tokio::main(|| {
///     let mut child = Command::new("printf")
///         .arg("a\\nb\\n")
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let stdout = BufReader::new(child.stdout.take().unwrap());
///     let lines = stdout.lines().collect::<std::io::Result<Vec<_>>>()?;
///     assert_eq!(lines, ["a", "b"]);
///     child.wait()?;
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
#[derive(Debug)]
pub struct ChildStdout {
    inner: tokio::process::ChildStdout,
}

impl Read for ChildStdout {
    /// Reads what the process wrote, at most `out.len()` bytes, waiting
    /// until there is something; `Ok(0)` at end of file (or for an empty
    /// `out`, at once).
    ///
    /// # Errors
    ///
    /// Errors reading the pipe; the fiber's cancellation; `NotInFiber`
    /// outside a fiber.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_once(&mut self.inner, out)
    }
}

/// A child process's standard error: a [`Read`], as [`ChildStdout`].
///
/// # Cancellation
///
/// As [`ChildStdout`].
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::process::Stdio;
///
/// use fuseau_tokio::process::Command;
///
/// fuseau_tokio::main(|| {
///     let mut child = Command::new("sh")
///         .args(["-c", "echo warning >&2"])
///         .stderr(Stdio::piped())
///         .spawn()?;
///     let mut err = String::new();
///     child.stderr.take().unwrap().read_to_string(&mut err)?;
///     child.wait()?;
///     assert_eq!(err, "warning\n");
///     Ok(())
/// })?;
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
#[derive(Debug)]
pub struct ChildStderr {
    inner: tokio::process::ChildStderr,
}

impl Read for ChildStderr {
    /// As [`ChildStdout`]'s `read`.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_once(&mut self.inner, out)
    }
}

macro_rules! pipe_traits {
    ($pipe:ident) => {
        impl AsFd for $pipe {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl AsRawFd for $pipe {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }

        impl TryFrom<$pipe> for Stdio {
            type Error = io::Error;

            /// The pipe, to be another process's stream (`a | b`): it leaves
            /// Tokio's reactor and is set back to blocking mode, as the other
            /// process expects.
            ///
            /// # Errors
            ///
            /// If the pipe cannot be set to blocking mode.
            fn try_from(pipe: $pipe) -> io::Result<Stdio> {
                pipe.inner.try_into()
            }
        }
    };
}

pipe_traits!(ChildStdin);
pipe_traits!(ChildStdout);
pipe_traits!(ChildStderr);
