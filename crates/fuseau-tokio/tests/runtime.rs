//! `Runtime`: one scheduler per thread. Placement, fibers that never move,
//! shutdown that unwinds every thread, cancellation across threads.
//!
//! Every wait here is bounded: loops give up after a few seconds (a failed
//! assertion, never a hang), and nothing asserts on speed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use fuseau_tokio::{ErrorKind, Result, Runtime};

const PATIENCE: Duration = Duration::from_secs(10);

/// Counts drops: how a test sees that a fiber's stack was unwound.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (bounded) until `cond` holds, on a plain thread.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Parks a fiber "for ever" (until cancelled).
fn park() -> Result<()> {
    fuseau_tokio::sleep(Duration::from_secs(3600))
}

#[test]
fn spawn_join_and_block_on_from_a_plain_thread() {
    let runtime = Runtime::new(2).unwrap();
    assert_eq!(runtime.threads(), 2);
    let fibers: Vec<_> = (0..10u32)
        .map(|i| runtime.spawn(move || Ok(i * i)))
        .collect();
    let squares: Vec<u32> = fibers.into_iter().map(|f| f.join().unwrap()).collect();
    assert_eq!(squares, (0..10).map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(runtime.block_on(|| Ok("done")).unwrap(), "done");
    let e = runtime
        .block_on(|| Err::<(), _>(fuseau_tokio::Error::new(ErrorKind::Closed, "no")))
        .unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Closed, "no"));
    runtime.shutdown();
}

#[test]
fn zero_threads_is_an_error() {
    let e = Runtime::new(0).unwrap_err();
    assert!(e.message().contains("at least one thread"), "{e}");
}

#[test]
fn threads_are_named_and_indexed() {
    let runtime = Runtime::builder()
        .threads(3)
        .thread_name("rt-test")
        .build()
        .unwrap();
    for i in 0..3 {
        let (name, index) = runtime
            .spawn_on(i, || {
                let name = std::thread::current().name().map(str::to_owned);
                Ok((name, Runtime::current_thread()))
            })
            .join()
            .unwrap();
        assert_eq!(name.as_deref(), Some(&*format!("rt-test-{i}")));
        assert_eq!(index, Some(i));
    }
    assert_eq!(Runtime::current_thread(), None);
}

#[test]
#[should_panic(expected = "RuntimeHandle::spawn_on: thread 2 of a runtime of 2")]
fn spawn_on_a_thread_out_of_range_panics() {
    let runtime = Runtime::new(2).unwrap();
    drop(runtime.spawn_on(2, || Ok(())));
}

/// Two fibers placed on a runtime of two threads land on different threads
/// (the second sees the first queued there), and run at the same time: each
/// waits, bounded, for the other to have started, which two fibers on one
/// thread could never both do without suspending.
#[test]
fn placement_spreads_fibers_that_then_run_in_parallel() {
    let runtime = Runtime::new(2).unwrap();
    let started = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let fibers: Vec<_> = (0..2)
        .map(|me| {
            let started = started.clone();
            runtime.spawn(move || {
                started[me].store(true, Ordering::SeqCst);
                let start = Instant::now();
                // Spins without suspending: only a fiber on another thread
                // can set the other flag meanwhile.
                while !started[1 - me].load(Ordering::SeqCst) {
                    if start.elapsed() > PATIENCE {
                        return Ok(None);
                    }
                    std::hint::spin_loop();
                }
                Ok(Runtime::current_thread())
            })
        })
        .collect();
    let threads: Vec<_> = fibers.into_iter().map(|f| f.join().unwrap()).collect();
    assert!(threads.iter().all(Option::is_some), "{threads:?}");
    assert_ne!(threads[0], threads[1]);
}

/// Many long-lived fibers spread evenly: the least-loaded thread gets each.
#[test]
fn least_loaded_placement_balances_live_fibers() {
    let runtime = Runtime::new(2).unwrap();
    let per_thread = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let fibers: Vec<_> = (0..20)
        .map(|_| {
            let per_thread = per_thread.clone();
            runtime.spawn(move || {
                let me = Runtime::current_thread().expect("on a runtime thread");
                per_thread[me].fetch_add(1, Ordering::SeqCst);
                park()
            })
        })
        .collect();
    eventually("every fiber started", || {
        per_thread
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .sum::<usize>()
            == 20
    });
    assert_eq!(per_thread[0].load(Ordering::SeqCst), 10);
    assert_eq!(per_thread[1].load(Ordering::SeqCst), 10);
    runtime.shutdown();
    for f in fibers {
        assert!(f.join().unwrap_err().is_cancellation());
    }
}

/// A fiber stays on its thread across every kind of suspension, and so do
/// its local children.
#[test]
fn fibers_never_move_between_threads() {
    let runtime = Runtime::new(2).unwrap();
    let fibers: Vec<_> = (0..8)
        .map(|_| {
            runtime.spawn(|| {
                let home: ThreadId = std::thread::current().id();
                let mut seen = vec![home];
                for i in 0..20 {
                    match i % 4 {
                        0 => fuseau_tokio::yield_now()?,
                        1 => fuseau_tokio::sleep(Duration::from_millis(1))?,
                        2 => fuseau_tokio::await_future(tokio::task::yield_now())?,
                        _ => {
                            let child = fuseau_tokio::spawn(|| {
                                fuseau_tokio::yield_now()?;
                                Ok(std::thread::current().id())
                            });
                            seen.push(child.join()?);
                        }
                    }
                    seen.push(std::thread::current().id());
                }
                Ok(seen.iter().all(|&t| t == home))
            })
        })
        .collect();
    for f in fibers {
        assert!(f.join().unwrap());
    }
}

/// `shutdown` cancels the fibers of every thread and unwinds their stacks,
/// then returns with every thread joined.
#[test]
fn shutdown_unwinds_every_fiber_on_every_thread() {
    let runtime = Runtime::new(2).unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let threads_seen = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let fibers: Vec<_> = (0..2)
        .flat_map(|thread| {
            (0..5).map({
                let (dropped, threads_seen, started) =
                    (dropped.clone(), threads_seen.clone(), started.clone());
                let runtime = &runtime;
                move |_| {
                    let (dropped, threads_seen, started) =
                        (dropped.clone(), threads_seen.clone(), started.clone());
                    runtime.spawn_on(thread, move || {
                        let _guard = Guard(dropped);
                        // A local child, parked too: unwound as well.
                        let child_guard = Guard(Arc::new(AtomicUsize::new(0)));
                        let _child = fuseau_tokio::spawn(move || {
                            let _g = child_guard;
                            park()
                        });
                        threads_seen.lock().unwrap().push(Runtime::current_thread());
                        started.fetch_add(1, Ordering::SeqCst);
                        park()
                    })
                }
            })
        })
        .collect();
    eventually("all fibers started", || {
        started.load(Ordering::SeqCst) == 10
    });
    runtime.shutdown();
    assert_eq!(dropped.load(Ordering::SeqCst), 10, "every stack unwound");
    let mut seen = threads_seen.lock().unwrap().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, [Some(0), Some(1)]);
    for f in fibers {
        let e = f.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    }
}

#[test]
fn dropping_the_runtime_shuts_it_down() {
    let runtime = Runtime::new(2).unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let fiber = {
        let (dropped, started) = (dropped.clone(), started.clone());
        runtime.spawn(move || {
            let _guard = Guard(dropped);
            started.store(true, Ordering::SeqCst);
            park()
        })
    };
    eventually("the fiber started", || started.load(Ordering::SeqCst));
    let handle = runtime.handle();
    drop(runtime);
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "its stack was unwound");
    assert_eq!(fiber.join().unwrap_err().kind(), ErrorKind::Cancelled);
    // A handle that outlives its runtime spawns nothing.
    let e = handle.spawn(|| Ok(1)).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inactive, "{e}");
}

/// Cancelling a `RemoteFiber` from a plain thread cancels the fiber on its
/// own thread, where its cancel callback runs.
#[test]
fn cancelling_a_remote_fiber_cancels_it_on_its_thread() {
    let runtime = Runtime::new(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let fiber = runtime.spawn_on(1, move || {
        let here = Runtime::current_thread();
        fuseau_tokio::with_cancel_callback(
            move |e| {
                let _ = tx.send((e.kind(), Runtime::current_thread(), here));
            },
            || {
                park()?;
                Ok(())
            },
        )
    });
    // Cancelled while suspended.
    std::thread::sleep(Duration::from_millis(5));
    fiber.cancel();
    let (kind, callback_thread, fiber_thread) = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(kind, ErrorKind::Cancelled);
    assert_eq!((callback_thread, fiber_thread), (Some(1), Some(1)));
    assert!(fiber.join().unwrap_err().is_cancellation());
}

/// The three cancellation cases of `RemoteFiber::join` on a runtime, for a
/// joiner that is itself a fiber of another thread.
#[test]
fn joining_across_threads_from_a_fiber() {
    let runtime = Runtime::new(2).unwrap();
    let handle = runtime.handle();
    // Success: a fiber on thread 0 joins one on thread 1.
    let n = runtime
        .spawn_on(0, {
            let handle = handle.clone();
            move || handle.spawn_on(1, || Ok(7)).join()
        })
        .join()
        .unwrap();
    assert_eq!(n, 7);
    // The joiner cancelled while suspended: its join returns the error, and
    // the joined fiber runs on (it is not the joiner's child).
    let finished = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Barrier::new(2));
    let joiner = runtime.spawn_on(0, {
        let (handle, finished, gate) = (handle.clone(), finished.clone(), gate.clone());
        move || {
            let other = handle.spawn_on(1, move || {
                gate.wait();
                finished.store(true, Ordering::SeqCst);
                Ok(1)
            });
            other.join()
        }
    });
    std::thread::sleep(Duration::from_millis(5));
    joiner.cancel();
    assert!(joiner.join().unwrap_err().is_cancellation());
    gate.wait();
    eventually("the joined fiber finished", || {
        finished.load(Ordering::SeqCst)
    });
    // Cancelled before joining: the join fails at once.
    let e = runtime
        .spawn_on(0, {
            let handle = handle.clone();
            move || {
                let other = handle.spawn_on(1, || Ok(1));
                fuseau_tokio::cancel_after(Duration::ZERO)?;
                fuseau_tokio::yield_now().ok();
                other.join()
            }
        })
        .join()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

/// Dropping the runtime from one of its own fibers cannot join that
/// fiber's thread: it stops every thread, joins the others, and returns.
#[test]
fn dropping_the_runtime_from_its_own_fiber_does_not_deadlock() {
    let runtime = Arc::new(Mutex::new(Some(Runtime::new(2).unwrap())));
    let handle = runtime.lock().unwrap().as_ref().unwrap().handle();
    let (tx, rx) = mpsc::channel();
    let _fiber = handle.spawn({
        let runtime = runtime.clone();
        move || {
            let owned = runtime.lock().unwrap().take();
            drop(owned);
            let _ = tx.send(());
            Ok(())
        }
    });
    rx.recv_timeout(PATIENCE).expect("the drop returned");
    let e = handle.spawn(|| Ok(())).join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inactive);
}

/// A fiber that panics fails alone: the thread and its other fibers go on.
#[test]
fn a_panicking_fiber_does_not_take_its_thread_down() {
    let runtime = Runtime::new(1).unwrap();
    let e = runtime
        .spawn(|| -> Result<()> { panic!("boom") })
        .join()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(runtime.block_on(|| Ok(5)).unwrap(), 5);
    runtime.shutdown();
}

/// Tokio on a runtime thread: `spawn_local` and Tokio's own types work from
/// fibers, as under `main`.
#[test]
fn tokio_works_inside_runtime_fibers() {
    let runtime = Runtime::new(2).unwrap();
    let n = runtime
        .block_on(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx.send(41);
            });
            Ok(fuseau_tokio::await_future(rx)?.unwrap() + 1)
        })
        .unwrap();
    assert_eq!(n, 42);
}
