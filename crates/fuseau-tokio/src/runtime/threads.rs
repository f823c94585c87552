//! [`Runtime`]: one scheduler per thread, on every core.
//!
//! Fibers never move between threads: their stacks hold thread-locals and
//! `!Send` data. So, as in actix-rt, glommio and monoio, a runtime is
//! thread-per-core: `n` OS threads, each running a current-thread Tokio
//! runtime with a `LocalSet` and a fuseau scheduler (exactly what
//! [`main`](crate::main) runs on one thread). Work is *placed* on a thread
//! when it is spawned and stays there; threads talk through `Send` values:
//! [`RemoteFiber`]s, [`SharedChan`](fuseau::SharedChan)s, Tokio's channels.
//!
//! # How a worker thread lives
//!
//! Each thread runs [`main_with`](crate::main_with) with a *host* fiber that
//! reports the scheduler's [`SchedulerHandle`] to [`RuntimeBuilder::build`],
//! then waits for the runtime's stop signal. Fibers spawned on the runtime
//! are remote spawns ([`spawn_from_anywhere`]): root fibers of that
//! scheduler, not children of the host. When the stop signal comes, the host
//! returns, and `main_with` disposes of the scheduler as it always does:
//! every fiber still alive is cancelled and its stack unwound, then the
//! thread's Tokio runtime shuts down. [`Runtime::shutdown`] (or dropping the
//! runtime) signals every thread, then joins them.
//!
//! # Placement
//!
//! A thread's load is the larger of two counts: the fibers placed on it by
//! the runtime whose bodies have not returned (counted here, exactly and at
//! once, so that a burst of spawns spreads out before any scheduler has
//! looked at its inbox), and the fibers its scheduler had alive at the end
//! of its last iteration besides the host ([`SchedulerHandle::n_fibers`]: it
//! also counts the local children those fibers spawned, a little late).
//! [`RuntimeHandle::spawn`] picks the thread with the lowest load; ties go
//! round-robin.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use fuseau::{
    await_event, spawn_from_anywhere, CancelHandle, Config, Error, ErrorKind, Event, RemoteFiber,
    Result, Scheduler, SchedulerHandle, Wakeup,
};

/// A pool of threads, each running its own fuseau scheduler on a
/// current-thread Tokio runtime: fibers on every core.
///
/// [`spawn`](Runtime::spawn) places a fiber on the least-loaded thread,
/// where it stays until it is done; inside, it uses everything fuseau and
/// Tokio offer on one thread as before ([`spawn`](fuseau::spawn) makes
/// local children, [`await_future`](crate::await_future) awaits any future,
/// `tokio::task::spawn_local` works). Results come back through the
/// [`RemoteFiber`] handle, joinable from a fiber (which suspends) or a plain
/// thread (which blocks).
///
/// # When to use a `Runtime` rather than [`main`](crate::main)
///
/// `main` runs every fiber on the calling thread: one core, deterministic
/// order, no `Send` bounds. A `Runtime` uses several cores; what crosses
/// threads must be `Send` (the closures given to `spawn`, their results,
/// channels between threads such as [`SharedChan`](fuseau::SharedChan)),
/// and the order between fibers of different threads is not deterministic.
/// Use it for servers and CPU-heavy work that should scale with the cores.
///
/// # Shutdown
///
/// [`shutdown`](Runtime::shutdown), or dropping the runtime, cancels every
/// fiber on every thread, unwinds their stacks (destructors run, sockets
/// close), and joins the threads. A [`RemoteFiber`] whose fiber was
/// cancelled so returns `Err(Cancelled)`; one spawned after the shutdown
/// returns `Err(Inactive)`.
///
/// # Examples
///
/// ```
/// use fuseau_tokio::Runtime;
///
/// let runtime = Runtime::new(2)?;
/// let fibers: Vec<_> = (0..4u64)
///     .map(|i| runtime.spawn(move || Ok((0..1_000_000u64).map(|x| x ^ i).sum::<u64>())))
///     .collect();
/// let sums = fibers.into_iter().map(|f| f.join()).collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(sums.len(), 4);
/// // `block_on` spawns and waits, from a plain thread.
/// assert_eq!(runtime.block_on(|| Ok(6 * 7))?, 42);
/// runtime.shutdown();
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
pub struct Runtime {
    handle: RuntimeHandle,
    threads: Vec<JoinHandle<()>>,
}

thread_local! {
    /// On a runtime's worker thread, its index (`Runtime::current_thread`).
    static THREAD_INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// A `Clone + Send + Sync` handle to a [`Runtime`]: spawns fibers on it from
/// anywhere, including from its own fibers.
///
/// A handle may outlive its runtime: fibers spawned through it then return
/// `Err(Inactive)` when joined.
#[derive(Clone)]
pub struct RuntimeHandle {
    shared: Arc<Shared>,
}

/// What the runtime and its handles share.
struct Shared {
    workers: Vec<Worker>,
    /// Where the next search for the least-loaded thread starts, so that
    /// ties go round-robin.
    next: AtomicUsize,
    stop: Arc<Stop>,
}

/// One thread, as other threads see it.
struct Worker {
    sched: SchedulerHandle,
    /// Fibers placed on this thread whose bodies have not returned.
    placed: AtomicUsize,
}

/// Options of a [`Runtime`], builder-style: from [`Runtime::builder`].
///
/// # Examples
///
/// ```
/// let runtime = fuseau_tokio::Runtime::builder()
///     .threads(2)
///     .config(fuseau_tokio::Config::new().stack_size(64 * 1024))
///     .thread_name("worker")
///     .build()?;
/// assert_eq!(runtime.threads(), 2);
/// # Ok::<(), fuseau_tokio::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    threads: usize,
    config: Config,
    thread_name: String,
}

impl RuntimeBuilder {
    /// The number of threads (default: [`std::thread::available_parallelism`],
    /// or 1 if that is unknown).
    pub fn threads(mut self, threads: usize) -> RuntimeBuilder {
        self.threads = threads;
        self
    }

    /// The [`Config`] of every thread's scheduler (stack size, stack pool,
    /// budget). Each thread has its own stack pool of that size.
    pub fn config(mut self, config: Config) -> RuntimeBuilder {
        self.config = config;
        self
    }

    /// The threads' name prefix: thread `i` is named `"{prefix}-{i}"`
    /// (default `"fuseau"`).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> RuntimeBuilder {
        self.thread_name = prefix.into();
        self
    }

    /// Starts the threads and returns once each has its scheduler running.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] for zero threads; [`ErrorKind::Io`] if a thread
    /// or a thread's Tokio runtime cannot be made (the threads already
    /// started are then stopped and joined).
    pub fn build(self) -> Result<Runtime> {
        if self.threads == 0 {
            return Err(Error::new(
                ErrorKind::Other,
                "a fuseau_tokio::Runtime needs at least one thread",
            ));
        }
        let stop = Arc::new(Stop::default());
        let mut threads = Vec::with_capacity(self.threads);
        let mut workers = Vec::with_capacity(self.threads);
        let mut failure = None;
        for index in 0..self.threads {
            match start_thread(index, &self, &stop) {
                Ok((thread, sched)) => {
                    threads.push(thread);
                    workers.push(Worker {
                        sched,
                        placed: AtomicUsize::new(0),
                    });
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let runtime = Runtime {
            handle: RuntimeHandle {
                shared: Arc::new(Shared {
                    workers,
                    next: AtomicUsize::new(0),
                    stop,
                }),
            },
            threads,
        };
        match failure {
            // Dropping the runtime stops and joins what did start.
            Some(e) => Err(e),
            None => Ok(runtime),
        }
    }
}

/// Starts worker thread `index` and waits for its scheduler's handle.
fn start_thread(
    index: usize,
    options: &RuntimeBuilder,
    stop: &Arc<Stop>,
) -> Result<(JoinHandle<()>, SchedulerHandle)> {
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<SchedulerHandle>>(1);
    let config = options.config.clone();
    let stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("{}-{index}", options.thread_name))
        .spawn(move || {
            THREAD_INDEX.set(Some(index));
            let failed = ready_tx.clone();
            let result = crate::main_with(config, move || {
                let _ = ready_tx.send(Ok(Scheduler::current().handle()));
                drop(ready_tx);
                // The host fiber: nothing else to do than wait for the stop
                // (its cancellation, at disposal, ends the wait too).
                await_event(StopEvent { stop })
            });
            // `main_with` failed before the host ran (no Tokio runtime):
            // report it. After a report, the receiver is gone and this
            // send fails, which is fine.
            if let Err(e) = result {
                let _ = failed.send(Err(e));
            }
        })?;
    match ready_rx.recv() {
        Ok(Ok(sched)) => Ok((thread, sched)),
        Ok(Err(e)) => {
            drop(thread.join());
            Err(e)
        }
        // The thread died before reporting (it panicked).
        Err(_) => {
            let message = match thread.join() {
                Err(payload) => panic_message(&*payload),
                Ok(()) => "it ended".to_owned(),
            };
            Err(Error::new(
                ErrorKind::Other,
                format!("fuseau_tokio::Runtime: worker thread {index} failed to start: {message}"),
            ))
        }
    }
}

/// The message of a panic payload, as the panic hook would print it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (
        payload.downcast_ref::<&str>(),
        payload.downcast_ref::<String>(),
    ) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_owned(),
    }
}

impl Default for RuntimeBuilder {
    fn default() -> RuntimeBuilder {
        RuntimeBuilder {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            config: Config::default(),
            thread_name: "fuseau".to_owned(),
        }
    }
}

impl Runtime {
    /// A runtime of `threads` threads with the default [`Config`]; see
    /// [`Runtime::builder`] for the options.
    ///
    /// # Errors
    ///
    /// As [`RuntimeBuilder::build`].
    pub fn new(threads: usize) -> Result<Runtime> {
        Runtime::builder().threads(threads).build()
    }

    /// A builder with the defaults: one thread per available core, the
    /// default [`Config`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Spawns `f` as a fiber on the least-loaded thread; see
    /// [`RuntimeHandle::spawn`].
    pub fn spawn<T, F>(&self, f: F) -> RemoteFiber<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// Spawns `f` as a fiber on thread `thread`; see
    /// [`RuntimeHandle::spawn_on`].
    ///
    /// # Panics
    ///
    /// If `thread >= self.threads()`.
    pub fn spawn_on<T, F>(&self, thread: usize, f: F) -> RemoteFiber<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.handle.spawn_on(thread, f)
    }

    /// Runs `f` as a fiber on the least-loaded thread and waits for its
    /// result: from a plain thread it blocks; from a fiber it suspends.
    ///
    /// # Errors
    ///
    /// The fiber's error; `Err(Inactive)` if the runtime is shut down.
    ///
    /// # Cancellation
    ///
    /// Called from a fiber, a cancellation point (as [`RemoteFiber::join`]);
    /// cancelling the caller does not cancel the spawned fiber.
    ///
    /// # Panics
    ///
    /// Not itself; but do not call it from a Tokio task outside a fiber:
    /// blocking would stall that Tokio thread.
    pub fn block_on<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.spawn(f).join()
    }

    /// A handle for spawning from elsewhere (`Clone + Send + Sync`).
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// How many threads (and so schedulers) the runtime has.
    pub fn threads(&self) -> usize {
        self.handle.threads()
    }

    /// The index (`0..threads()`) of the runtime thread the caller runs on:
    /// `Some` in a runtime's fibers (and anything else on its threads),
    /// `None` elsewhere. A fiber never moves, so the answer stays the same
    /// for the whole life of a fiber.
    ///
    /// ```
    /// let runtime = fuseau_tokio::Runtime::new(2)?;
    /// assert_eq!(fuseau_tokio::Runtime::current_thread(), None);
    /// let on = runtime.spawn_on(1, || Ok(fuseau_tokio::Runtime::current_thread())).join()?;
    /// assert_eq!(on, Some(1));
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn current_thread() -> Option<usize> {
        THREAD_INDEX.get()
    }

    /// Cancels every fiber on every thread, unwinds them, and joins the
    /// threads. Dropping the runtime does the same.
    ///
    /// Called from one of the runtime's own fibers, it cannot join that
    /// fiber's thread: it signals every thread, joins the others, and
    /// leaves that one to finish by itself (it does, once the caller's
    /// fiber is unwound).
    ///
    /// # Panics
    ///
    /// If a worker thread panicked (a bug: panics in fibers are caught and
    /// become the fiber's error), the panic is resumed here.
    pub fn shutdown(mut self) {
        if let Some(payload) = self.stop_and_join() {
            std::panic::resume_unwind(payload);
        }
    }

    /// Signals the stop, joins every thread but the caller's own, and gives
    /// back the first worker panic, if any.
    fn stop_and_join(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self.handle.shared.stop.signal();
        let me = std::thread::current().id();
        let mut panic = None;
        for thread in self.threads.drain(..) {
            if thread.thread().id() == me {
                continue;
            }
            if let Err(payload) = thread.join() {
                panic.get_or_insert(payload);
            }
        }
        panic
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // A worker panic is not resumed here: a panic in `drop` during an
        // unwind would abort. (`shutdown` resumes it.)
        drop(self.stop_and_join());
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("threads", &self.threads())
            .finish_non_exhaustive()
    }
}

impl RuntimeHandle {
    /// Spawns `f` as a fiber on the least-loaded thread and returns at once.
    /// A thread's load is the larger of: the fibers placed on it whose
    /// bodies have not returned (counted at once), and the fibers its
    /// scheduler had alive at the end of its last iteration (which counts
    /// their local children too); ties go round-robin. The fiber is a
    /// root fiber of that thread's scheduler: it stays on that thread, and
    /// its local children too.
    ///
    /// Join the [`RemoteFiber`] from a fiber or a plain thread; cancel it
    /// with [`RemoteFiber::cancel`], which cancels the fiber on its thread.
    /// After [`Runtime::shutdown`], the fiber never runs and joining it
    /// returns `Err(Inactive)`.
    ///
    /// Not a cancellation point; never blocks.
    ///
    /// # Examples
    ///
    /// From a fiber of the runtime, onto the runtime:
    ///
    /// ```
    /// let runtime = fuseau_tokio::Runtime::new(2)?;
    /// let handle = runtime.handle();
    /// let n = runtime.block_on(move || {
    ///     let helpers: Vec<_> = (0..4).map(|i| handle.spawn(move || Ok(i * 10))).collect();
    ///     // Joining from a fiber suspends it, not its thread.
    ///     helpers.into_iter().map(|h| h.join()).sum::<fuseau_tokio::Result<i32>>()
    /// })?;
    /// assert_eq!(n, 60);
    /// # Ok::<(), fuseau_tokio::Error>(())
    /// ```
    pub fn spawn<T, F>(&self, f: F) -> RemoteFiber<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.spawn_on(self.least_loaded(), f)
    }

    /// Spawns `f` as a fiber on thread `thread` (`0..threads()`), as
    /// [`spawn`](RuntimeHandle::spawn) does on the thread it picks.
    ///
    /// # Panics
    ///
    /// If `thread >= self.threads()`.
    pub fn spawn_on<T, F>(&self, thread: usize, f: F) -> RemoteFiber<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let threads = self.threads();
        let worker = self.shared.workers.get(thread).unwrap_or_else(|| {
            panic!("RuntimeHandle::spawn_on: thread {thread} of a runtime of {threads}")
        });
        worker.placed.fetch_add(1, Ordering::Relaxed);
        // Counted until the body returns or unwinds, or until the closure
        // is dropped unrun (a runtime shut down).
        let placed = Placed {
            shared: self.shared.clone(),
            thread,
        };
        spawn_from_anywhere(&worker.sched, move || {
            let _placed = placed;
            f()
        })
    }

    /// How many threads the runtime has.
    pub fn threads(&self) -> usize {
        self.shared.workers.len()
    }

    /// The thread with the lowest load; the search starts one thread further
    /// each time, so that ties go round-robin.
    fn least_loaded(&self) -> usize {
        let workers = &self.shared.workers;
        let start = self.shared.next.fetch_add(1, Ordering::Relaxed) % workers.len();
        (start..workers.len())
            .chain(0..start)
            .min_by_key(|&i| workers[i].load())
            .expect("a runtime has at least one thread")
    }
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("threads", &self.threads())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// The thread's load (module docs, "Placement").
    fn load(&self) -> usize {
        let placed = self.placed.load(Ordering::Relaxed);
        // Minus the host fiber.
        placed.max(self.sched.n_fibers().saturating_sub(1))
    }
}

/// A fiber placed on a thread whose body has not returned (see
/// [`Worker::placed`]).
struct Placed {
    shared: Arc<Shared>,
    thread: usize,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.shared.workers[self.thread]
            .placed
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The runtime's stop signal: a flag and the waker of every host fiber.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    hosts: std::sync::Mutex<Vec<std::task::Waker>>,
}

impl Stop {
    fn signal(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        for host in hosts.iter() {
            host.wake_by_ref();
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// What a host fiber waits for: the stop signal.
struct StopEvent {
    stop: Arc<Stop>,
}

impl Event for StopEvent {
    type Output = ();

    fn poll(&mut self) -> Option<Result<()>> {
        self.stop.is_stopped().then_some(Ok(()))
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.stop
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(wakeup.to_waker());
        // A signal between `poll` and the registration above did not see
        // this waker: check again (the flag is stored before the wakers are
        // read, both `SeqCst`, under the lock).
        if self.stop.is_stopped() {
            wakeup.wake();
        }
        CancelHandle::dummy()
    }
}
