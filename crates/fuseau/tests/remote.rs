//! `spawn_from_anywhere` and `RemoteFiber`: spawning onto a scheduler from
//! other threads, joining from fibers (which suspend) and from threads
//! (which block), cancelling from anywhere, and what disposal does to remote
//! spawns.
//!
//! A lost wake-up shows as a hang: the tests that depend on other threads
//! run under a watchdog that aborts the test binary instead.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{ms, with_watchdog, Sim, HOUR};
use fuseau::{
    spawn_from_anywhere, AnyFiber, Builder, Error, ErrorKind, RemoteFiber, Result, Scheduler,
    SchedulerHandle,
};

/// Receives from a std channel inside a fiber without blocking the
/// scheduler's thread: polls, sleeping a little in between. `None` once
/// every sender is gone.
fn recv_in_fiber<T>(rx: &mpsc::Receiver<T>) -> Result<Option<T>> {
    loop {
        match rx.try_recv() {
            Ok(value) => return Ok(Some(value)),
            Err(mpsc::TryRecvError::Disconnected) => return Ok(None),
            Err(mpsc::TryRecvError::Empty) => fuseau::sleep(ms(1))?,
        }
    }
}

/// Suspends the running fiber until `flag` is set (by another thread).
fn wait_flag(flag: &AtomicBool) -> Result<()> {
    while !flag.load(Ordering::Acquire) {
        fuseau::sleep(ms(1))?;
    }
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawns_from_many_threads_all_arrive() {
    const THREADS: usize = 8;
    const SPAWNS: usize = 200;
    let (total, n_spawned) = with_watchdog(|| {
        fuseau::block_on(|| {
            let handle = Scheduler::current().handle();
            let (tx, rx) = mpsc::channel::<RemoteFiber<usize>>();
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let handle = handle.clone();
                    let tx = tx.clone();
                    thread::spawn(move || {
                        for k in 0..SPAWNS {
                            let n = t * SPAWNS + k;
                            // Half of them suspend once, so that fibers of
                            // different threads interleave.
                            let fiber = spawn_from_anywhere(&handle, move || {
                                if n % 2 == 0 {
                                    fuseau::yield_now()?;
                                }
                                Ok(n)
                            });
                            tx.send(fiber).unwrap();
                        }
                    })
                })
                .collect();
            drop(tx);
            let mut seen = HashSet::new();
            while let Some(fiber) = recv_in_fiber(&rx)? {
                assert!(seen.insert(fiber.join()?), "a result arrived twice");
            }
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(seen.len(), THREADS * SPAWNS);
            let total: usize = seen.into_iter().sum();
            Ok((total, Scheduler::current().n_tasks_since_beginning()))
        })
    })
    .unwrap();
    let n = THREADS * SPAWNS;
    assert_eq!(total, n * (n - 1) / 2);
    // The main fiber, plus every remote spawn.
    assert_eq!(n_spawned, n as u64 + 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn threads_block_in_join_while_the_scheduler_runs() {
    const THREADS: usize = 4;
    const SPAWNS: usize = 50;
    let sums = with_watchdog(|| {
        fuseau::block_on(|| {
            let handle = Scheduler::current().handle();
            let finished = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let handle = handle.clone();
                    let finished = finished.clone();
                    thread::spawn(move || {
                        let mut sum = 0;
                        for k in 0..SPAWNS {
                            let fiber = spawn_from_anywhere(&handle, move || {
                                fuseau::sleep(Duration::from_micros(10))?;
                                Ok(t * 1000 + k)
                            });
                            // Blocks this thread, not the scheduler's.
                            sum += fiber.join().unwrap();
                        }
                        finished.fetch_add(1, Ordering::AcqRel);
                        sum
                    })
                })
                .collect();
            while finished.load(Ordering::Acquire) < THREADS {
                fuseau::sleep(ms(1))?;
            }
            Ok(threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>())
        })
    })
    .unwrap();
    let expected: Vec<usize> = (0..THREADS)
        .map(|t| (0..SPAWNS).map(|k| t * 1000 + k).sum())
        .collect();
    assert_eq!(sums, expected);
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_from_a_fiber_of_the_same_scheduler_suspends() {
    let log = fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let remote = spawn_from_anywhere(&handle, || {
            fuseau::sleep(ms(5))?;
            Ok("remote done")
        });
        let sibling = fuseau::spawn(|| Ok("sibling ran while main waited"));
        let value = remote.join()?;
        assert!(sibling.is_done());
        Ok(vec![value, sibling.join()?])
    })
    .unwrap();
    assert_eq!(log, ["remote done", "sibling ran while main waited"]);
}

/// A fiber of scheduler B joins a fiber of scheduler A (on another thread):
/// it suspends, so B's other fibers keep running; here the remote fiber
/// only finishes once one of them has run, so a join that blocked B's
/// thread would hang.
#[test]
#[cfg_attr(miri, ignore)]
fn join_from_a_fiber_of_another_scheduler_suspends() {
    let value = with_watchdog(|| {
        let (handle_tx, handle_rx) = mpsc::channel::<SchedulerHandle>();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        // Scheduler A runs until told to stop.
        let a = thread::spawn(move || {
            fuseau::block_on(move || {
                handle_tx.send(Scheduler::current().handle()).unwrap();
                wait_flag(&s)
            })
        });
        let handle_a = handle_rx.recv().unwrap();
        // Scheduler B, here.
        let value = fuseau::block_on(move || {
            let sibling_ran = Arc::new(AtomicBool::new(false));
            let r = sibling_ran.clone();
            let remote = spawn_from_anywhere(&handle_a, move || {
                wait_flag(&r)?;
                Ok(42)
            });
            let s = sibling_ran.clone();
            fuseau::spawn(move || {
                s.store(true, Ordering::Release);
                Ok(())
            });
            remote.join()
        });
        stop.store(true, Ordering::Release);
        a.join().unwrap().unwrap();
        value
    });
    assert_eq!(value.unwrap(), 42);
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_cancelled_before_the_call() {
    fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let remote = spawn_from_anywhere(&handle, || Ok(7));
        let joiner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                // Let the remote fiber finish first: its result is there.
                // (Remote spawns arrive between iterations: yielding until
                // the iteration's budget runs out lets them in.)
                while !remote.is_done() {
                    fuseau::yield_now()?;
                }
                AnyFiber::current().cancel();
                // Cancellation is sticky: join fails at once, result or not.
                let e = remote.join().unwrap_err();
                assert!(e.is_cancelled(), "{e:?}");
                Ok(())
            });
        // The body handled its cancellation and returned `Ok` (a failed
        // assertion above would show here as `Panicked`).
        joiner.join()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_cancelled_while_suspended() {
    fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let release = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (r, d) = (release.clone(), done.clone());
        let remote = spawn_from_anywhere(&handle, move || {
            wait_flag(&r)?;
            d.store(true, Ordering::Release);
            Ok(7)
        });
        let joiner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || remote.join());
        fuseau::yield_now()?;
        joiner.cancel();
        // Woken at once, while the remote fiber still waits.
        let e = joiner.join().unwrap_err();
        assert!(e.is_cancelled(), "{e:?}");
        assert!(!done.load(Ordering::Acquire));
        // The remote fiber keeps running (nobody takes its value).
        release.store(true, Ordering::Release);
        wait_flag(&done)
    })
    .unwrap();
}

/// The result arrives, then the joiner is cancelled before it resumes: the
/// result is returned, as with `Fiber::join`.
#[test]
#[cfg_attr(miri, ignore)]
fn join_cancelled_after_the_result_arrived_returns_it() {
    fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let remote = spawn_from_anywhere(&handle, move || {
            fuseau::yield_now()?;
            f.store(true, Ordering::Release);
            Ok(7)
        });
        let joiner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let value = remote.join();
                // The cancellation still holds for what follows.
                let after = fuseau::yield_now();
                Ok((value, after))
            });
        while !finished.load(Ordering::Acquire) {
            fuseau::yield_now()?;
        }
        // The remote fiber's body has returned (so it is done): its result
        // is in the slot, and the joiner has not resumed yet.
        joiner.cancel();
        let (value, after) = joiner.join()?;
        assert_eq!(value.unwrap(), 7);
        assert!(after.unwrap_err().is_cancelled());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_after_success_then_cancel() {
    fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let remote = spawn_from_anywhere(&handle, || Ok(String::from("value")));
        let joiner = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let value = remote.join()?;
                fuseau::sleep(HOUR)?;
                Ok(value)
            });
        fuseau::sleep(ms(1))?;
        joiner.cancel();
        assert!(joiner.join().unwrap_err().is_cancelled());
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_on_the_schedulers_thread_outside_a_fiber_is_an_error() {
    let sim = Sim::new();
    let handle = sim.sched.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let remote = spawn_from_anywhere(&handle, move || {
        r.store(true, Ordering::Release);
        Ok(1)
    });
    // Not run yet; blocking here would deadlock.
    let e = remote.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.message().contains("deadlock"), "{e}");
    // The fiber still runs.
    sim.run_until_idle();
    assert!(ran.load(Ordering::Acquire));
    // A result that is there already is returned, on this thread too.
    let remote = spawn_from_anywhere(&handle, || Ok(2));
    sim.run_until_idle();
    assert!(remote.is_done());
    assert_eq!(remote.join().unwrap(), 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_after_disposal_is_inactive() {
    let handle = fuseau::block_on(|| Ok(Scheduler::current().handle())).unwrap();
    assert!(!handle.is_active());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let remote = spawn_from_anywhere(&handle, move || {
        r.store(true, Ordering::Release);
        Ok(())
    });
    assert!(remote.is_done());
    // On the (former) scheduler's thread: the result is there, no deadlock.
    assert_eq!(remote.join().unwrap_err().kind(), ErrorKind::Inactive);
    // From another thread.
    let h = handle.clone();
    let e = thread::spawn(move || spawn_from_anywhere(&h, || Ok(())).join())
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inactive);
    assert!(!ran.load(Ordering::Acquire));
}

/// Queued from another thread but not yet run when the scheduler is
/// disposed of: the closure is dropped (never run) and the join is
/// `Inactive`.
#[test]
#[cfg_attr(miri, ignore)]
fn spawn_queued_at_disposal_is_inactive() {
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let sim = Sim::new();
    let handle = sim.sched.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (r, d) = (ran.clone(), dropped.clone());
    let remote = thread::spawn(move || {
        let flag = DropFlag(d);
        spawn_from_anywhere(&handle, move || {
            let _flag = flag;
            r.store(true, Ordering::Release);
            Ok(())
        })
    })
    .join()
    .unwrap();
    assert!(!remote.is_done());
    drop(sim);
    assert!(dropped.load(Ordering::Acquire), "the closure was dropped");
    assert!(!ran.load(Ordering::Acquire), "the closure never ran");
    // Joined from another thread (it would block if nothing completed it).
    let e = with_watchdog(|| thread::spawn(move || remote.join()).join().unwrap()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Inactive);
}

/// Started, then the scheduler is disposed of: the fiber is cancelled like
/// every other fiber, and the joiner sees that.
#[test]
#[cfg_attr(miri, ignore)]
fn started_remote_fiber_is_cancelled_by_disposal() {
    let sim = Sim::new();
    let handle = sim.sched.handle();
    let remote = spawn_from_anywhere(&handle, || {
        fuseau::sleep(HOUR)?;
        Ok(())
    });
    sim.run_until_idle();
    assert!(!remote.is_done());
    sim.sched.dispose();
    assert!(remote.is_done());
    assert_eq!(remote.join().unwrap_err().kind(), ErrorKind::Cancelled);
}

/// A spawn that reaches a scheduler being disposed of is refused there,
/// which drops the closure; a destructor in it that panics must still
/// complete the `RemoteFiber` (with that panic), not leave it pending.
#[test]
#[cfg_attr(miri, ignore)]
fn a_refused_spawn_whose_drop_panics_still_completes() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop panicked");
        }
    }
    let sim = Sim::new();
    let handle = sim.sched.handle();
    let slot = Arc::new(std::sync::Mutex::new(None));
    let s = slot.clone();
    sim.spawn(move || {
        let guard = PanicOnDrop;
        let remote = spawn_from_anywhere(&handle, move || {
            let _guard = guard;
            Ok(())
        });
        *s.lock().unwrap() = Some(remote);
        // Disposal from inside a fiber only closes the gate and cancels;
        // the spawn queued above is refused when the iteration drains the
        // inbox.
        Scheduler::current().dispose();
        Ok(())
    });
    sim.run_until_idle();
    let remote = slot.lock().unwrap().take().unwrap();
    assert!(remote.is_done(), "the remote fiber was left pending");
    let e = remote.join().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked, "{e:?}");
    assert_eq!(e.message(), "drop panicked");
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancel_from_another_thread_before_it_starts() {
    let sim = Sim::new();
    let handle = sim.sched.handle();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let remote = thread::spawn(move || {
        let remote = spawn_from_anywhere(&handle, move || {
            r.store(true, Ordering::Release);
            Ok(())
        });
        remote.cancel();
        remote
    })
    .join()
    .unwrap();
    sim.run_until_idle();
    assert!(
        !ran.load(Ordering::Acquire),
        "a cancelled fiber never starts"
    );
    assert!(remote.is_done());
    assert!(remote.join().unwrap_err().is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancel_from_another_thread_while_it_sleeps() {
    let result = with_watchdog(|| {
        fuseau::block_on(|| {
            let handle = Scheduler::current().handle();
            let finished = Arc::new(AtomicBool::new(false));
            let f = finished.clone();
            let canceller = thread::spawn(move || {
                let sleeping = Arc::new(AtomicBool::new(false));
                let s = sleeping.clone();
                let remote = spawn_from_anywhere(&handle, move || {
                    s.store(true, Ordering::Release);
                    fuseau::sleep(HOUR)?;
                    Ok("woke up after an hour")
                });
                while !sleeping.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_millis(1));
                }
                remote.cancel();
                // A second cancel does nothing more.
                remote.cancel();
                let result = remote.join();
                f.store(true, Ordering::Release);
                result
            });
            wait_flag(&finished)?;
            Ok(canceller.join().unwrap())
        })
    })
    .unwrap();
    assert!(result.unwrap_err().is_cancelled());
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_remote_fiber_gives_panicked() {
    // Joined from a fiber.
    fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let remote = spawn_from_anywhere(&handle, || -> Result<()> { panic!("remote boom") });
        let e = remote.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.message(), "remote boom");
        Ok(())
    })
    .unwrap();
    // Joined from a thread.
    let e = with_watchdog(|| {
        fuseau::block_on(|| {
            let handle = Scheduler::current().handle();
            let finished = Arc::new(AtomicBool::new(false));
            let f = finished.clone();
            let t = thread::spawn(move || {
                let remote =
                    spawn_from_anywhere(&handle, || -> Result<u8> { panic!("remote boom") });
                let e = remote.join().unwrap_err();
                f.store(true, Ordering::Release);
                e
            });
            wait_flag(&finished)?;
            Ok(t.join().unwrap())
        })
    })
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "remote boom");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_failing_remote_fiber_gives_its_error_and_cancels_nobody() {
    fuseau::block_on(|| {
        let handle = Scheduler::current().handle();
        let remote = spawn_from_anywhere(&handle, || -> Result<()> {
            Err(Error::new(ErrorKind::Io, "disk on fire"))
        });
        let e = remote.join().unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Io, "disk on fire"));
        // A root fiber: its failure did not cancel the main fiber.
        fuseau::yield_now()
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn debug_shows_progress() {
    let sim = Sim::new();
    let remote = spawn_from_anywhere(&sim.sched.handle(), || Ok(()));
    let before = format!("{remote:?}");
    assert!(before.contains("done: false"), "{before}");
    sim.run_until_idle();
    let after = format!("{remote:?}");
    assert!(after.contains("done: true"), "{after}");
}

#[test]
fn remote_fibers_and_handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<RemoteFiber<u32>>();
    check::<RemoteFiber<String>>();
    check::<RemoteFiber<Vec<std::sync::Arc<u8>>>>();
    check::<SchedulerHandle>();
}
