//! `spawn_as_future_from_anywhere` / `RemoteFiberFuture` (a `Send` future of
//! a fiber, for Tokio code on other threads), `RemoteFiber::poll_join`, and
//! errors that keep their identity (and a panic's backtrace) on the way
//! through Tokio and back.

mod bounded;
mod common;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{hours, ms};
use fuseau_tokio::{
    await_future, spawn_as_future, spawn_as_future_from_anywhere, spawn_from_anywhere, Config,
    Error, ErrorKind, EventLoop, RemoteFiberFuture, Result, Scheduler, SchedulerHandle, Unpark,
};
use tokio::sync::oneshot;
use tokio::task::spawn_local;

fn multi_threaded_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the future `make(handle)` makes as a `tokio::spawn`ed task (so it
/// must be `Send`: that this compiles is part of the tests) on a
/// multi-threaded runtime of a new thread, where `handle` is the handle of
/// the calling fiber's scheduler; the calling fiber waits (suspended, so
/// the scheduler keeps running fibers) for its output. A panic of the task
/// is passed on.
fn on_other_runtime<F, Fut>(make: F) -> Result<Fut::Output>
where
    F: FnOnce(SchedulerHandle) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let handle = Scheduler::current().handle();
    let (tx, rx) = oneshot::channel();
    let thread = std::thread::spawn(move || {
        let runtime = multi_threaded_runtime();
        match runtime.block_on(async move { tokio::spawn(make(handle)).await }) {
            Ok(output) => {
                let _ = tx.send(output);
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    });
    match await_future(rx)? {
        Ok(output) => {
            thread.join().unwrap();
            Ok(output)
        }
        Err(_) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread ended without sending"),
        },
    }
}

/// Counts its drops; `Send`, so remote closures may own one.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

impl Drops {
    fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Suspends the calling fiber until `cond()` holds.
fn wait_until(mut cond: impl FnMut() -> bool) -> Result<()> {
    while !cond() {
        fuseau_tokio::sleep(ms(1))?;
    }
    Ok(())
}

// ------------------------------------------- spawn_as_future_from_anywhere

#[test]
fn a_remote_fiber_future_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RemoteFiberFuture<u64>>();
    assert_send_sync::<RemoteFiberFuture<Vec<String>>>();
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_fibers_awaited_at_once_from_a_multi_threaded_runtime() {
    const N: usize = 200;
    bounded::main(|| {
        let scheduler_thread = std::thread::current().id();
        let started = Arc::new(AtomicUsize::new(0));
        let results = on_other_runtime(move |handle| async move {
            let tasks: Vec<_> = (0..N)
                .map(|i| {
                    let started = started.clone();
                    tokio::spawn(spawn_as_future_from_anywhere(&handle, move || {
                        // All of them are alive at once: each waits for the
                        // others to start.
                        started.fetch_add(1, Ordering::SeqCst);
                        wait_until(|| started.load(Ordering::SeqCst) == N)?;
                        // A Tokio future, awaited on the scheduler's thread.
                        await_future(tokio::time::sleep(ms(i as u64 % 3)))?;
                        Ok((i * 2, std::thread::current().id()))
                    }))
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("the task did not panic"));
            }
            results
        })?;
        assert_eq!(results.len(), N);
        for (i, result) in results.into_iter().enumerate() {
            let (value, thread) = result?;
            assert_eq!(value, i * 2);
            assert_eq!(
                thread, scheduler_thread,
                "fibers run on their scheduler's thread"
            );
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_future_before_the_fiber_starts_means_the_body_never_runs() {
    bounded::main(|| {
        let sched = Scheduler::current();
        let spawned_before = sched.n_tasks_since_beginning();
        let fibers_before = sched.n_fibers();
        let handle = sched.handle();
        let ran = Arc::new(AtomicBool::new(false));
        let drops = Drops::default();
        let (r, d) = (ran.clone(), drops.clone());
        // This fiber blocks its thread (so the scheduler cannot run) until
        // the other thread has spawned the fibers and dropped their futures:
        // they wait in the scheduler's inbox all along.
        std::thread::spawn(move || {
            multi_threaded_runtime().block_on(async move {
                let body = |r: Arc<AtomicBool>, token: DropToken| {
                    move || {
                        let _token = token;
                        r.store(true, Ordering::SeqCst);
                        Ok(())
                    }
                };
                // Never polled.
                drop(spawn_as_future_from_anywhere(
                    &handle,
                    body(r.clone(), d.token()),
                ));
                // Polled (pending: the scheduler is blocked), then dropped.
                let polled = tokio::time::timeout(
                    ms(5),
                    spawn_as_future_from_anywhere(&handle, body(r.clone(), d.token())),
                )
                .await;
                assert!(
                    polled.is_err(),
                    "the fiber ran while its scheduler was blocked"
                );
                // Polled from a spawned task that is then aborted.
                let task = tokio::spawn(spawn_as_future_from_anywhere(&handle, body(r, d.token())));
                tokio::task::yield_now().await;
                task.abort();
                assert!(task.await.unwrap_err().is_cancelled());
            });
        })
        .join()
        .unwrap();
        // Now the scheduler sees the spawns: each fiber is spawned
        // cancelled, and ends without running its body.
        wait_until(|| {
            sched.n_tasks_since_beginning() == spawned_before + 3
                && sched.n_fibers() == fibers_before
        })?;
        assert!(!ran.load(Ordering::SeqCst), "a body ran");
        assert_eq!(drops.get(), 3, "every closure was dropped");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_future_while_the_fiber_waits_cancels_it_and_unwinds_its_stack() {
    bounded::main(|| {
        let drops = Drops::default();
        let outcome = Arc::new(Mutex::new(None));
        let (d, o) = (drops.clone(), outcome.clone());
        on_other_runtime(move |handle| async move {
            let (started_tx, started_rx) = oneshot::channel();
            let mut future = spawn_as_future_from_anywhere(&handle, move || {
                let _token = d.token();
                started_tx.send(()).unwrap();
                let slept = fuseau_tokio::sleep(hours(1));
                *o.lock().unwrap() = Some(slept.as_ref().map_err(Error::kind).copied());
                slept
            });
            tokio::select! {
                _ = &mut future => panic!("the fiber finished"),
                started = started_rx => started.unwrap(),
            }
            assert!(format!("{future:?}").starts_with("RemoteFiberFuture"));
            drop(future);
        })?;
        wait_until(|| drops.get() == 1)?;
        assert_eq!(*outcome.lock().unwrap(), Some(Err(ErrorKind::Cancelled)));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_the_future_after_the_fiber_finished_changes_nothing() {
    bounded::main(|| {
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let next = on_other_runtime(move |handle| async move {
            let (done_tx, done_rx) = oneshot::channel();
            let future = spawn_as_future_from_anywhere(&handle, move || {
                done_tx.send(()).unwrap();
                // No suspension point after this: a cancel arriving now
                // cannot change the outcome either.
                f.store(true, Ordering::SeqCst);
                Ok(5)
            });
            done_rx.await.unwrap();
            tokio::time::sleep(ms(10)).await;
            drop(future);
            // The next fiber probably reuses the finished one's slot: the
            // stale cancel must not touch it.
            let next = spawn_as_future_from_anywhere(&handle, || {
                fuseau_tokio::sleep(ms(20))?;
                Ok("next")
            });
            // And a future awaited to the end is simply done.
            assert_eq!(spawn_as_future_from_anywhere(&handle, || Ok(6)).await?, 6);
            next.await
        })?;
        assert_eq!(next?, "next");
        assert!(finished.load(Ordering::SeqCst));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_detached_future_lets_the_fiber_run_to_the_end() {
    bounded::main(|| {
        let drops = Drops::default();
        let d = drops.clone();
        let slept = on_other_runtime(move |handle| async move {
            let (tx, rx) = oneshot::channel();
            spawn_as_future_from_anywhere(&handle, move || {
                let _token = d.token();
                let slept = fuseau_tokio::sleep(ms(10));
                tx.send(slept.as_ref().map_err(Error::kind).copied())
                    .unwrap();
                slept
            })
            .detach();
            rx.await.unwrap()
        })?;
        assert_eq!(slept, Ok(()), "the detached fiber was not cancelled");
        wait_until(|| drops.get() == 1)?;
        Ok(())
    })
    .unwrap();
}

/// An event loop that never runs anything: a scheduler driven by hand.
struct IdleLoop;

struct NoUnpark;

impl Unpark for NoUnpark {
    fn unpark(&self) {}
}

impl EventLoop for IdleLoop {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        Arc::new(NoUnpark)
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_whose_scheduler_was_disposed_of_before_it_ran_is_inactive() {
    bounded::with_watchdog("inactive", bounded::LIMIT, || {
        // Disposed of while the spawn waits in its inbox.
        let sched = Scheduler::new(IdleLoop, Config::new());
        let handle = sched.handle();
        let ran = Arc::new(AtomicBool::new(false));
        let drops = Drops::default();
        let (r, d) = (ran.clone(), drops.clone());
        let (spawned_tx, spawned_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            multi_threaded_runtime().block_on(async move {
                let token = d.token();
                let future = spawn_as_future_from_anywhere(&handle, move || {
                    let _token = token;
                    r.store(true, Ordering::SeqCst);
                    Ok(1)
                });
                spawned_tx.send(()).unwrap();
                tokio::spawn(future).await.unwrap()
            })
        });
        spawned_rx.recv().unwrap();
        sched.dispose();
        let e = thread.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Inactive, "{e:?}");
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(drops.get(), 1);

        // Spawned after the scheduler (of a `main` that returned) is gone.
        let handle = bounded::main(|| Ok(Scheduler::current().handle())).unwrap();
        assert!(!handle.is_active());
        let token = drops.token();
        let r = ran.clone();
        let result = multi_threaded_runtime().block_on(async move {
            tokio::spawn(spawn_as_future_from_anywhere(&handle, move || {
                let _token = token;
                r.store(true, Ordering::SeqCst);
                Ok(2)
            }))
            .await
            .unwrap()
        });
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Inactive);
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(drops.get(), 2);
    });
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_future_whose_fiber_waits_when_main_returns_resolves_to_the_cancellation() {
    bounded::with_watchdog("disposed while waiting", bounded::LIMIT, || {
        let drops = Drops::default();
        let d = drops.clone();
        let thread = fuseau_tokio::main(move || {
            let handle = Scheduler::current().handle();
            let (started_tx, started_rx) = oneshot::channel();
            let thread = std::thread::spawn(move || {
                multi_threaded_runtime().block_on(async move {
                    tokio::spawn(spawn_as_future_from_anywhere(&handle, move || {
                        let _token = d.token();
                        started_tx.send(()).unwrap();
                        fuseau_tokio::sleep(hours(1))
                    }))
                    .await
                    .unwrap()
                })
            });
            await_future(started_rx)?.unwrap();
            // The remote fiber is a root, not a child of main: main returns,
            // and the scheduler is disposed of under it.
            Ok(thread)
        })
        .unwrap();
        let e = thread.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{e:?}");
        assert_eq!(drops.get(), 1);
    });
}

// ------------------------------------------------------ RemoteFiber::poll_join

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn poll_join_registers_a_waker_once_however_often_it_is_polled() {
    bounded::main(|| {
        let handle = Scheduler::current().handle();
        let (go_tx, go_rx) = oneshot::channel::<u32>();
        let (polled_tx, polled_rx) = oneshot::channel();
        let first = Arc::new(CountingWaker::default());
        let second = Arc::new(CountingWaker::default());
        let (w1, w2) = (first.clone(), second.clone());
        let thread = std::thread::spawn(move || {
            let remote = spawn_from_anywhere(&handle, move || Ok(await_future(go_rx)?.unwrap()));
            let first = Waker::from(w1);
            let second = Waker::from(w2);
            for _ in 0..10 {
                // The same waker, and clones of it.
                assert!(remote
                    .poll_join(&mut Context::from_waker(&first))
                    .is_pending());
                let clone = first.clone();
                assert!(remote
                    .poll_join(&mut Context::from_waker(&clone))
                    .is_pending());
            }
            for _ in 0..3 {
                // Another one is registered too.
                assert!(remote
                    .poll_join(&mut Context::from_waker(&second))
                    .is_pending());
            }
            polled_tx.send(()).unwrap();
            remote
        });
        await_future(polled_rx)?.unwrap();
        assert_eq!((first.count(), second.count()), (0, 0));
        go_tx.send(7).unwrap();
        // The wakers are woken on this thread, when the fiber is done, all
        // in one go: once one is seen, all are.
        wait_until(|| first.count() > 0)?;
        fuseau_tokio::yield_now()?;
        assert_eq!(first.count(), 1, "woken once per distinct waker");
        assert_eq!(second.count(), 1);
        let remote = thread.join().unwrap();
        assert!(remote.is_done());
        let done = Waker::from(Arc::new(CountingWaker::default()));
        let result = remote.poll_join(&mut Context::from_waker(&done));
        assert!(matches!(result, Poll::Ready(Ok(7))), "{result:?}");
        Ok(())
    })
    .unwrap();
}

// ------------------------------------- errors keep their identity in Tokio

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_error_comes_back_from_tokio_as_the_same_error() {
    bounded::main(|| {
        let original = Error::new(ErrorKind::Other, "disk on fire");

        // Fiber → FiberFuture → a Tokio task → back to a fiber.
        let e = original.clone();
        let task = spawn_local(async move { spawn_as_future(move || Err::<(), _>(e)).await });
        let back = await_future(task)?.unwrap().unwrap_err();
        assert!(back.ptr_eq(&original), "{back:?}");

        // Through an io::Error inside Tokio, as Tokio APIs would carry it.
        let e = original.clone();
        let task = spawn_local(async move {
            let io: std::io::Result<()> = spawn_as_future(move || Err::<(), _>(e))
                .await
                .map_err(std::io::Error::from);
            io
        });
        let io = await_future(task)?.unwrap().unwrap_err();
        assert_eq!(io.kind(), std::io::ErrorKind::Other);
        assert!(Error::from(io).ptr_eq(&original));

        // An Io error keeps its io::ErrorKind on the way.
        let reset = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let e = reset.clone();
        let task = spawn_local(async move {
            spawn_as_future(move || Err::<(), _>(e))
                .await
                .map_err(std::io::Error::from)
        });
        let io = await_future(task)?.unwrap().unwrap_err();
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(Error::from(io).ptr_eq(&reset));

        // Across threads: a fiber of this scheduler awaited on another
        // runtime, the error sent back here.
        let e = original.clone();
        let back = on_other_runtime(move |handle| async move {
            spawn_as_future_from_anywhere(&handle, move || Err::<(), _>(e)).await
        })?;
        assert!(back.unwrap_err().ptr_eq(&original));
        Ok(())
    })
    .unwrap();
}

/// Asks for backtraces (as `RUST_BACKTRACE=1` would) before the first one
/// is captured in this process; `true` if they are captured.
fn backtraces_enabled() -> bool {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            std::env::set_var("RUST_BACKTRACE", "1");
        }
    });
    std::backtrace::Backtrace::capture().status() == std::backtrace::BacktraceStatus::Captured
}

fn check_backtrace(e: &Error, enabled: bool) {
    match e.backtrace() {
        Some(backtrace) => {
            let text = backtrace.to_string();
            assert!(
                text.contains("remote_future"),
                "the backtrace does not show the panic site: {text}"
            );
        }
        None if enabled => panic!("backtraces are enabled, but the error has none: {e:?}"),
        None => eprintln!("backtraces are not captured here: not checked"),
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_comes_back_from_tokio_with_its_message_and_backtrace() {
    let enabled = backtraces_enabled();
    bounded::main(move || {
        // Fiber → FiberFuture → a Tokio task → back to a fiber.
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let task = spawn_local(async move {
            let e = spawn_as_future(|| -> Result<()> { panic!("kaboom {}", 7) })
                .await
                .unwrap_err();
            *s.borrow_mut() = Some(e.clone());
            Err::<(), _>(e)
        });
        let back = await_future(task)?.unwrap().unwrap_err();
        let seen = seen.take().unwrap();
        assert!(back.ptr_eq(&seen));
        assert_eq!(back.kind(), ErrorKind::Panicked);
        assert_eq!(back.message(), "kaboom 7");
        check_backtrace(&back, enabled);

        // Across threads, and through an io::Error on the way back.
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let io = on_other_runtime(move |handle| async move {
            let e = spawn_as_future_from_anywhere(&handle, || -> Result<()> {
                panic!("remote kaboom")
            })
            .await
            .unwrap_err();
            *s.lock().unwrap() = Some(e.clone());
            std::io::Error::from(e)
        })?;
        let back = Error::from(io);
        assert!(back.ptr_eq(seen.lock().unwrap().as_ref().unwrap()));
        assert_eq!(back.kind(), ErrorKind::Panicked);
        assert_eq!(back.message(), "remote kaboom");
        check_backtrace(&back, enabled);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_remote_fiber_future_resolves_even_when_awaited_after_a_long_time() {
    // Completed long before the first poll: the result waits in the slot.
    bounded::main(|| {
        let value = on_other_runtime(|handle| async move {
            let (done_tx, done_rx) = oneshot::channel();
            let future = spawn_as_future_from_anywhere(&handle, move || {
                let _ = done_tx.send(());
                Ok(String::from("kept"))
            });
            done_rx.await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            future.await
        })?;
        assert_eq!(value?, "kept");
        Ok(())
    })
    .unwrap();
}
