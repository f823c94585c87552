//! Shared helpers of the integration tests: a scheduler driven by a *virtual
//! clock* (deterministic time), drop counters and ordered logs.

#![allow(dead_code)]

pub(crate) mod chans;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuseau::{Builder, Config, EventLoop, Fiber, Iteration, Result, Scheduler, Unpark};

/// An event loop whose clock only moves when the test says so.
struct VirtualLoop {
    clock: Rc<Cell<Instant>>,
}

struct NoUnpark;

impl Unpark for NoUnpark {
    fn unpark(&self) {}
}

impl EventLoop for VirtualLoop {
    fn now(&self) -> Instant {
        self.clock.get()
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        Arc::new(NoUnpark)
    }
}

/// How many iterations a driving loop may run before the test is declared
/// stuck (a livelock would otherwise hang the test suite).
const MAX_ITERATIONS: usize = 10_000_000;

/// A scheduler on a virtual clock, driven by hand.
pub(crate) struct Sim {
    pub(crate) sched: Scheduler,
    clock: Rc<Cell<Instant>>,
    start: Instant,
}

impl Sim {
    pub(crate) fn new() -> Sim {
        Sim::with_config(Config::new())
    }

    pub(crate) fn with_config(config: Config) -> Sim {
        let start = Instant::now();
        let clock = Rc::new(Cell::new(start));
        let sched = Scheduler::new(
            VirtualLoop {
                clock: clock.clone(),
            },
            config,
        );
        Sim {
            sched,
            clock,
            start,
        }
    }

    /// Virtual time elapsed since the simulation started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.clock.get() - self.start
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.clock.set(self.clock.get() + by);
    }

    /// Spawns a root fiber (no parent).
    pub(crate) fn spawn<T: 'static>(&self, f: impl FnOnce() -> Result<T> + 'static) -> Fiber<T> {
        Builder::new()
            .spawn_on(&self.sched, f)
            .expect("spawn on an active scheduler")
    }

    /// Runs iterations until nothing is ready; does not move the clock.
    /// Returns the next timer deadline.
    pub(crate) fn run_until_idle(&self) -> Option<Instant> {
        for _ in 0..MAX_ITERATIONS {
            match self.sched.run_iteration() {
                Iteration::Busy => {}
                Iteration::Idle { deadline } => return deadline,
            }
        }
        panic!("the scheduler never became idle (livelock?)");
    }

    /// Runs at most `n` iterations, fewer if the scheduler becomes idle;
    /// does not move the clock.
    pub(crate) fn run_iterations(&self, n: usize) {
        for _ in 0..n {
            if let Iteration::Idle { .. } = self.sched.run_iteration() {
                return;
            }
        }
    }

    /// Runs until `done()`, jumping the clock to each next deadline when
    /// nothing is ready. Panics on a deadlock (nothing ready, no timer).
    pub(crate) fn run_until(&self, done: impl Fn() -> bool) {
        for _ in 0..MAX_ITERATIONS {
            let iteration = self.sched.run_iteration();
            if done() {
                return;
            }
            match iteration {
                Iteration::Busy => {}
                Iteration::Idle {
                    deadline: Some(deadline),
                } => {
                    if deadline > self.clock.get() {
                        self.clock.set(deadline);
                    }
                }
                Iteration::Idle { deadline: None } => {
                    panic!("deadlock: nothing is ready and no timer is armed")
                }
            }
        }
        panic!("the condition never became true (livelock?)");
    }

    /// Runs `f` as a root fiber until it (and its descendants) are done, and
    /// returns its result.
    pub(crate) fn block_on<T: 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + 'static,
    ) -> Result<T> {
        let main = self.spawn(f);
        self.run_until(|| main.is_done());
        main.join()
    }
}

/// Counts drops of the [`Guard`]s it hands out. `Send` (atomic), so that
/// guards may cross threads, in a `SharedChan` say.
#[derive(Clone, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub(crate) fn new() -> Counter {
        Counter::default()
    }

    pub(crate) fn guard(&self) -> Guard {
        Guard(self.0.clone())
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub(crate) fn incr(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Increments its counter when dropped.
pub(crate) struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An ordered transcript of events.
#[derive(Clone, Default)]
pub(crate) struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub(crate) fn new() -> Log {
        Log::default()
    }

    pub(crate) fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    pub(crate) fn take(&self) -> Vec<String> {
        self.0.take()
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// A slot to pass a value (typically a `Fiber` handle) into a fiber that
/// was spawned before the value existed.
pub(crate) struct Slot<T>(Rc<RefCell<Option<T>>>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Slot<T> {
        Slot(self.0.clone())
    }
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot(Rc::new(RefCell::new(None)))
    }

    pub(crate) fn put(&self, value: T) {
        *self.0.borrow_mut() = Some(value);
    }

    pub(crate) fn take(&self) -> T {
        self.0.borrow_mut().take().expect("the slot is filled")
    }
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(crate) fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

pub(crate) const HOUR: Duration = Duration::from_secs(3600);

/// `Chan::recv` as Go's `v, ok := <-c`: `Ok(None)` once the channel is
/// closed and drained; other errors (cancellation) pass through.
pub(crate) fn recv_opt<T: 'static>(chan: &fuseau::Chan<T>) -> Result<Option<T>> {
    match chan.recv() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_closed() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A `select` with Go's `default` case: `Ok(None)` if no branch is ready
/// right now. (A zero timeout, polled last, fails at once.)
pub(crate) fn select_now<R>(mut branches: Vec<fuseau::When<'_, R>>) -> Result<Option<R>> {
    branches.push(fuseau::When::new(
        fuseau::ev_timeout(Duration::ZERO),
        |()| -> R { unreachable!("a timeout event never succeeds") },
    ));
    match fuseau::select(branches) {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.is_timeout() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Counts blocked senders and receivers of a channel, from its `Debug`
/// output (the only place they are observable).
pub(crate) fn waiters<T>(chan: &fuseau::Chan<T>) -> (usize, usize) {
    waiters_of(&format!("{chan:?}"))
}

/// Blocked senders and receivers, from the `Debug` output of a channel
/// (`Chan` or `SharedChan`).
pub(crate) fn waiters_of(text: &str) -> (usize, usize) {
    let field = |name: &str| -> usize {
        let start = text
            .find(name)
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            + name.len()
            + 2;
        text[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad {name} in {text}"))
    };
    (field("blocked_senders"), field("blocked_receivers"))
}

/// Runs the test `name` of the current test binary alone in a child process,
/// with the environment variables `envs` set; returns its output and its
/// stderr as text. (For what can only be observed from outside: a process
/// that dies, or a setting read once per process.)
pub(crate) fn run_test_in_child(
    name: &str,
    envs: &[(&str, &str)],
) -> (std::process::Output, String) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

/// Runs `f`, and aborts the test binary if it takes longer than two
/// minutes (a lost wake-up would otherwise stall the suite). A safety net
/// only: nothing asserts on how long anything takes.
pub(crate) fn with_watchdog<R>(f: impl FnOnce() -> R) -> R {
    const LIMIT: Duration = Duration::from_secs(120);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !d.load(std::sync::atomic::Ordering::Acquire) {
            if start.elapsed() > LIMIT {
                eprintln!("the test hung for {LIMIT:?} (a lost wake-up?)");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let r = f();
    done.store(true, std::sync::atomic::Ordering::Release);
    r
}

/// `"ok"` or the error's kind, for logs.
pub(crate) fn outcome<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// Logs `"{label}: {outcome}"` of `r`, then hands `r` back.
pub(crate) fn note<T>(log: &Log, label: &str, r: Result<T>) -> Result<T> {
    log.push(format!("{label}: {}", outcome(&r)));
    r
}
