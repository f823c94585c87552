//! `unblock`: work on Tokio's blocking pool while the fiber's thread runs
//! other fibers; panics as errors; the three cases of cancellation, and a
//! closure still queued behind a busy pool.

mod bounded;
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use common::{
    cancel_logged_while_waiting, cancel_then_next_fails, cancel_while_waiting, cancelled_before,
    Log,
};
use fuseau_tokio::{await_future, unblock, ErrorKind};

/// Whether a closure given to the pool ran.
#[derive(Clone, Default)]
struct Ran(Arc<AtomicBool>);

impl Ran {
    /// A closure that records that it ran.
    fn closure(&self) -> impl FnOnce() + Send + 'static {
        let ran = self.0.clone();
        move || ran.store(true, Ordering::SeqCst)
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Checks that `call`, given a closure for the pool, fails with `kind` and
/// a message that says `says`, and that the closure never ran.
fn assert_fails_and_runs_nothing(
    kind: ErrorKind,
    says: &str,
    call: impl FnOnce(Box<dyn FnOnce() + Send>) -> fuseau_tokio::Result<()>,
) {
    let ran = Ran::default();
    let e = call(Box::new(ran.closure())).unwrap_err();
    assert_eq!(e.kind(), kind);
    assert!(e.to_string().contains(says), "{e}");
    assert!(!ran.get());
}

/// Work for the pool that says when it started, then blocks its thread
/// until released: the work, the news that it started, and the release.
fn blocking_work() -> (
    impl FnOnce() + Send + 'static,
    tokio::sync::oneshot::Receiver<()>,
    mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let work = move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    };
    (work, started_rx, release_tx)
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_result_comes_back() {
    bounded::main(|| {
        assert_eq!(unblock(|| 6 * 7)?, 42);
        let owned = String::from("moved in");
        assert_eq!(unblock(move || owned + " and out")?, "moved in and out");
        // The closure runs on another thread, not the fiber's.
        let here = std::thread::current().id();
        assert_ne!(unblock(|| std::thread::current().id())?, here);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_thread_runs_other_fibers_while_the_work_blocks() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (tx, rx) = mpsc::channel::<u32>();
        let l2 = l.clone();
        let worker = fuseau_tokio::spawn(move || {
            l2.push("unblock");
            // Blocks its pool thread until the parent, a fiber of the same
            // thread as this one, sends: only possible if this thread was
            // not blocked.
            let n = unblock(move || rx.recv().unwrap() * 2)?;
            l2.push(format!("got {n}"));
            Ok(n)
        });
        fuseau_tokio::yield_now()?;
        l.push("feed");
        tx.send(21).unwrap();
        assert_eq!(worker.join()?, 42);
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["unblock", "feed", "got 42"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn several_closures_run_at_once_on_the_pool() {
    bounded::main(|| {
        // Each closure waits for all four at a barrier: they must run
        // concurrently, or none would return.
        let barrier = Arc::new(Barrier::new(4));
        let fibers: Vec<_> = (0..4)
            .map(|i| {
                let b = barrier.clone();
                fuseau_tokio::spawn(move || {
                    unblock(move || {
                        b.wait();
                        i
                    })
                })
            })
            .collect();
        let got: Vec<i32> = fibers
            .into_iter()
            .map(|f| f.join())
            .collect::<fuseau_tokio::Result<_>>()?;
        assert_eq!(got, [0, 1, 2, 3]);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_in_the_closure_is_a_panicked_error_of_the_call() {
    bounded::main(|| {
        let e = unblock(|| -> u8 { panic!("static boom") }).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.message(), "static boom");
        let n = 7;
        let e = unblock(move || -> u8 { panic!("formatted boom {n}") }).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.message(), "formatted boom 7");
        // The fiber did not unwind: it goes on, and so does the pool.
        assert_eq!(unblock(|| 1)?, 1);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn outside_a_fiber_it_is_not_in_fiber_and_runs_nothing() {
    assert_fails_and_runs_nothing(ErrorKind::NotInFiber, "unblock", unblock);
}

#[test]
#[cfg_attr(miri, ignore)]
fn in_a_fiber_without_tokio_it_is_an_error_and_runs_nothing() {
    assert_fails_and_runs_nothing(ErrorKind::Other, "Tokio runtime", |closure| {
        fuseau_tokio::block_on(move || unblock(closure))
    });
}

// ------------------------------------------------------------ cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_before_the_call_the_closure_never_runs() {
    let ran = Ran::default();
    let closure = ran.closure();
    bounded::main(move || {
        cancelled_before(move || unblock(closure));
        Ok(())
    })
    .unwrap();
    // The runtime is gone, and with it the pool: nothing can run any more.
    assert!(!ran.get());
}

/// A result whose drop is reported on a channel (from the pool thread
/// that drops it).
#[derive(Debug)]
struct Reported(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Reported {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_while_waiting_it_returns_at_once_and_the_work_runs_on() {
    let log = Log::new();
    let l = log.clone();
    let finished = Ran::default();
    let finish = finished.closure();
    bounded::main(move || {
        let (work, started, release) = blocking_work();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
        let call = move || {
            unblock(move || {
                work();
                finish();
                Reported(Some(dropped_tx))
            })
        };
        // Returns while the closure is still blocked (it waits for the
        // release, sent only after the join).
        let until_started = || {
            await_future(started)?.unwrap();
            Ok(())
        };
        cancel_logged_while_waiting(&l, "unblock", call, until_started)?;
        l.push("joined");
        release.send(()).unwrap();
        // The closure ran to its end; its result was dropped, unseen.
        await_future(dropped_rx)?.unwrap();
        l.push("result dropped");
        Ok(())
    })
    .unwrap();
    assert!(finished.get());
    assert_eq!(
        log.take(),
        [
            "unblock",
            "cancel",
            "unblock: Cancelled",
            "joined",
            "result dropped"
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_while_queued_behind_a_busy_pool_the_closure_never_runs() {
    let ran = Ran::default();
    let closure = ran.closure();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    bounded::with_watchdog("queued", bounded::LIMIT, || {
        local.block_on(
            &runtime,
            fuseau_tokio::run(move || {
                let (work, started, release) = blocking_work();
                // Takes the pool's only thread.
                let blocker = fuseau_tokio::spawn(move || unblock(work));
                await_future(started)?.unwrap();
                // The queued fiber hands its closure to the pool and waits.
                cancel_while_waiting(move || unblock(closure), fuseau_tokio::yield_now)?;
                release.send(()).unwrap();
                blocker.join()
            }),
        )
    })
    .unwrap();
    // Dropping the runtime waits for its pool threads: whatever was going to
    // run has run.
    drop(runtime);
    assert!(!ran.get(), "the aborted closure ran");
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_after_it_returned_the_value_is_kept() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    bounded::main(move || {
        let fiber = fuseau_tokio::spawn(move || {
            let c2 = c.clone();
            let n = unblock(move || c2.fetch_add(1, Ordering::SeqCst) + 41)?;
            // The next call fails, without running its closure.
            cancel_then_next_fails(|| unblock(move || c.fetch_add(1, Ordering::SeqCst)));
            Ok(n)
        });
        assert_eq!(fiber.join()?, 41);
        Ok(())
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn it_works_on_every_thread_of_a_runtime() {
    let runtime = fuseau_tokio::Runtime::new(2).unwrap();
    bounded::with_watchdog("runtime", bounded::LIMIT, || {
        for thread in 0..2 {
            let n = runtime
                .spawn_on(thread, move || unblock(move || thread * 10))
                .join()
                .unwrap();
            assert_eq!(n, thread * 10);
        }
    });
    runtime.shutdown();
}
