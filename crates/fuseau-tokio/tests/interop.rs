//! Fibers and futures together: the order in which fibers waiting on Tokio
//! futures resume, chains of fibers and Tokio tasks, the three cases of
//! cancellation around `await_future`, the life of a `FiberFuture`, and
//! wake-ups that come from the threads of other runtimes.

mod bounded;
mod common;

use std::cell::Cell;
use std::future::{pending, poll_fn, ready, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use common::{hours, ms, DropCounter, Log};
use fuseau_tokio::{
    await_future, spawn_as_future, AnyFiber, Builder, Error, ErrorKind, FutureBuilder,
};
use tokio::sync::{oneshot, Notify};
use tokio::task::LocalSet;

/// Waits, from a fiber, until `fiber` is done (without joining it).
fn wait_done(fiber: &AnyFiber) -> fuseau_tokio::Result<()> {
    await_future(poll_fn(|cx| fiber.poll_done(cx)))
}

/// Logs when dropped: shows *when* a future (or a closure) was dropped.
struct LogOnDrop(Log, &'static str);

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.0.push(self.1);
    }
}

// ---------------------------------------------------------------- ordering

#[test]
#[cfg_attr(miri, ignore)]
fn two_fibers_ping_pong_through_tokio_notify() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let ping = Rc::new(Notify::new());
        let pong = Rc::new(Notify::new());
        let (l1, ping1, pong1) = (l.clone(), ping.clone(), pong.clone());
        let a = fuseau_tokio::spawn(move || {
            for i in 0..3 {
                l1.push(format!("a{i}"));
                pong1.notify_one();
                await_future(ping1.notified())?;
            }
            l1.push("a done");
            Ok(())
        });
        let b = fuseau_tokio::spawn(move || {
            for i in 0..3 {
                await_future(pong.notified())?;
                l.push(format!("b{i}"));
                ping.notify_one();
            }
            l.push("b done");
            Ok(())
        });
        a.join()?;
        b.join()
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["a0", "b0", "a1", "b1", "a2", "b2", "b done", "a done"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn fibers_woken_by_one_tokio_task_resume_in_the_order_it_woke_them() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let mut senders = Vec::new();
        for name in ["a", "b", "c"] {
            let (tx, rx) = oneshot::channel::<u32>();
            senders.push(tx);
            let l = l.clone();
            fuseau_tokio::spawn(move || {
                l.push(format!("{name} waits"));
                let n = await_future(rx)?.expect("sent");
                l.push(format!("{name} got {n}"));
                Ok(())
            });
        }
        // Sends in the order c, a, b: the fibers resume in that order.
        let l = l.clone();
        let task = tokio::task::spawn_local(async move {
            l.push("task sends");
            let mut senders = senders.into_iter().map(Some).collect::<Vec<_>>();
            for (i, n) in [(2, 30), (0, 10), (1, 20)] {
                senders[i].take().unwrap().send(n).unwrap();
            }
        });
        await_future(task)?.unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "a waits",
            "b waits",
            "c waits",
            "task sends",
            "c got 30",
            "a got 10",
            "b got 20"
        ]
    );
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn tokio_sleeps_and_fiber_sleeps_wake_in_deadline_order() {
    let log = Log::new();
    let l = log.clone();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(move || {
            // Minutes apart, so that the millisecond rounding of Tokio's
            // timer wheel cannot reorder them.
            for (name, minutes, tokio_timer) in [
                ("tokio 30", 30, true),
                ("fiber 20", 20, false),
                ("tokio 10", 10, true),
                ("fiber 40", 40, false),
                ("tokio 50", 50, true),
            ] {
                let l = l.clone();
                fuseau_tokio::spawn(move || {
                    let d = Duration::from_secs(60 * minutes);
                    if tokio_timer {
                        await_future(tokio::time::sleep(d))?;
                    } else {
                        fuseau_tokio::sleep(d)?;
                    }
                    l.push(name);
                    Ok(())
                });
            }
            Ok(())
        }))
        .await
        .unwrap();
    assert_eq!(
        log.take(),
        ["tokio 10", "fiber 20", "tokio 30", "fiber 40", "tokio 50"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn fiber_to_tokio_task_to_fiber_and_back() {
    let log = Log::new();
    let l = log.clone();
    let answer = bounded::main(move || {
        l.push("outer fiber starts");
        let l2 = l.clone();
        let task = tokio::task::spawn_local(async move {
            l2.push("task starts");
            let l3 = l2.clone();
            let inner = spawn_as_future(move || {
                l3.push("inner fiber starts");
                // And once more through Tokio, from the inner fiber.
                let (tx, rx) = oneshot::channel();
                tokio::task::spawn_local(async move {
                    tokio::task::yield_now().await;
                    tx.send(20).unwrap();
                });
                let n = await_future(rx)?.expect("sent");
                fuseau_tokio::sleep(ms(1))?;
                l3.push("inner fiber ends");
                Ok(n)
            });
            let n = inner.await?;
            l2.push("task ends");
            Ok::<_, Error>(n + 1)
        });
        let n = await_future(task)?.expect("the task did not panic")?;
        l.push("outer fiber ends");
        Ok(n * 2)
    })
    .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(
        log.take(),
        [
            "outer fiber starts",
            "task starts",
            "inner fiber starts",
            "inner fiber ends",
            "task ends",
            "outer fiber ends"
        ]
    );
}

// ----------------------------------------------- await_future cancellation

#[test]
#[cfg_attr(miri, ignore)]
fn await_future_cancelled_before_the_call_never_polls_the_future() {
    let dropped = DropCounter::new();
    let polled = Rc::new(Cell::new(false));
    let (d, p) = (dropped.clone(), polled.clone());
    bounded::main(move || {
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                AnyFiber::current().cancel();
                let guard = d.guard();
                let result = await_future(async move {
                    let _guard = guard;
                    p.set(true);
                    5
                });
                assert_eq!(d.dropped(), 1, "the future is dropped before returning");
                result
            });
        let e = fiber.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        Ok(())
    })
    .unwrap();
    assert!(!polled.get(), "the future was polled");
    assert_eq!(dropped.dropped(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn await_future_cancelled_while_waiting_wakes_at_once_and_drops_the_future() {
    let log = Log::new();
    let l = log.clone();
    bounded::with_watchdog("cancelled while waiting", bounded::LIMIT, move || {
        bounded::main(move || {
            let l2 = l.clone();
            let waiter = Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(move || {
                    let guard = LogOnDrop(l2.clone(), "future dropped");
                    l2.push("waiting");
                    // Never completes: only the cancellation can end the wait.
                    let result = await_future(async move {
                        let _guard = guard;
                        pending::<()>().await
                    });
                    l2.push(format!(
                        "await_future returned {:?}",
                        result.unwrap_err().kind()
                    ));
                    // Sticky: every later suspension point fails too.
                    let again = await_future(ready(1)).unwrap_err();
                    l2.push(format!("then {:?}", again.kind()));
                    Err::<(), _>(again)
                });
            fuseau_tokio::yield_now()?;
            l.push("cancel");
            waiter.cancel();
            let e = waiter.join().unwrap_err();
            assert!(e.is_cancelled());
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "waiting",
            "cancel",
            "future dropped",
            "await_future returned Cancelled",
            "then Cancelled"
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn await_future_cancelled_after_it_completed_keeps_its_value() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let (tx, rx) = oneshot::channel();
                tokio::task::spawn_local(async move { tx.send(7).unwrap() });
                let n = await_future(rx)?.unwrap();
                l.push(format!("got {n}"));
                AnyFiber::current().cancel();
                l.push("cancelled, still running");
                // The next suspension point reports it.
                let e = fuseau_tokio::yield_now().unwrap_err();
                l.push(format!("yield_now: {:?}", e.kind()));
                Ok(n)
            });
        // The body returned Ok after its cancellation: its value stands.
        assert_eq!(fiber.join()?, 7);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["got 7", "cancelled, still running", "yield_now: Cancelled"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_timeout_cancels_await_future_with_timeout() {
    let dropped = DropCounter::new();
    let d = dropped.clone();
    bounded::main(move || {
        let fiber = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                fuseau_tokio::cancel_after(ms(5))?;
                let guard = d.guard();
                await_future(async move {
                    let _guard = guard;
                    tokio::time::sleep(hours(1)).await;
                })
            });
        let e = fiber.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        Ok(())
    })
    .unwrap();
    assert_eq!(dropped.dropped(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn await_future_outside_a_fiber_is_not_in_fiber() {
    let e = await_future(ready(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
    assert!(e.to_string().contains("await_future"), "{e}");
}

// ----------------------------------------------------------- FiberFuture

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_fiber_future_before_its_fiber_started_means_its_body_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let captured = DropCounter::new();
    let (r, c) = (ran.clone(), captured.clone());
    bounded::main(move || {
        let guard = c.guard();
        let future = spawn_as_future(move || {
            let _guard = guard;
            r.set(true);
            Ok(())
        });
        let fiber = future.fiber().expect("spawned");
        drop(future);
        wait_done(&fiber)?;
        assert!(fiber.is_cancelled());
        assert_eq!(c.dropped(), 1, "the closure was dropped");
        Ok(())
    })
    .unwrap();
    assert!(!ran.get(), "the body ran");
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_fiber_future_while_its_fiber_waits_cancels_and_unwinds_it() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let l2 = l.clone();
        let task = tokio::task::spawn_local(async move {
            let l3 = l2.clone();
            let mut future = spawn_as_future(move || {
                let _guard = LogOnDrop(l3.clone(), "fiber's guard dropped");
                l3.push("fiber waits");
                let e = fuseau_tokio::sleep(hours(1)).unwrap_err();
                l3.push(format!("fiber woke: {:?}", e.kind()));
                Err::<(), _>(e)
            });
            let fiber = future.fiber().unwrap();
            // Poll it until the fiber has started and suspended.
            loop {
                assert!(poll_once(&mut future).await.is_pending());
                if !l2.snapshot().is_empty() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            l2.push("dropping the future");
            drop(future);
            fiber
        });
        let fiber = await_future(task)?.unwrap();
        wait_done(&fiber)?;
        assert!(fiber.is_cancelled());
        l.push("fiber done");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "fiber waits",
            "dropping the future",
            "fiber woke: Cancelled",
            "fiber's guard dropped",
            "fiber done"
        ]
    );
}

/// Polls `future` once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

#[test]
#[cfg_attr(miri, ignore)]
fn dropping_a_fiber_future_after_its_fiber_completed_does_nothing() {
    bounded::main(|| {
        let future = spawn_as_future(|| Ok(3));
        let fiber = future.fiber().unwrap();
        wait_done(&fiber)?;
        drop(future);
        assert!(!fiber.is_cancelled(), "a done fiber was cancelled");
        // And once resolved, the future holds no fiber at all.
        let mut future = spawn_as_future(|| Ok(4));
        assert_eq!(await_future(&mut future)??, 4);
        assert!(future.fiber().is_none());
        drop(future);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_detached_fiber_future_runs_to_completion() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let l2 = l.clone();
        let future = spawn_as_future(move || {
            fuseau_tokio::sleep(ms(2))?;
            l2.push("detached fiber done");
            Ok(())
        });
        let fiber = future.fiber().unwrap();
        future.detach();
        l.push("detached");
        wait_done(&fiber)?;
        assert!(!fiber.is_cancelled());
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["detached", "detached fiber done"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_future_resolves_to_the_fibers_error() {
    bounded::main(|| {
        let task = tokio::task::spawn_local(async {
            let failed = spawn_as_future(|| Err::<(), _>(Error::from("no luck"))).await;
            let panicked = spawn_as_future(|| -> fuseau_tokio::Result<()> { panic!("oops") }).await;
            (failed, panicked)
        });
        let (failed, panicked) = await_future(task)?.unwrap();
        assert_eq!(failed.unwrap_err().message(), "no luck");
        let e = panicked.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.message().contains("oops"), "{e}");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn future_builder_parent_and_name() {
    let log = Log::new();
    let l = log.clone();
    bounded::main(move || {
        let (spawned_tx, spawned_rx) = oneshot::channel::<()>();
        let l1 = l.clone();
        // The parent returns at once after the Tokio task spawned its child,
        // but it is done only once that child is.
        let parent = fuseau_tokio::spawn(move || {
            await_future(spawned_rx)?.unwrap();
            l1.push("parent's body returns");
            Ok("parent")
        });
        let parent_handle = parent.any();
        let l2 = l.clone();
        let task = tokio::task::spawn_local(async move {
            let l3 = l2.clone();
            let future = FutureBuilder::new()
                .parent(&parent_handle)
                .name("kid")
                .spawn(move || {
                    fuseau_tokio::sleep(ms(5))?;
                    l3.push("kid done");
                    Ok(AnyFiber::current().name().map(str::to_owned))
                });
            assert_eq!(future.fiber().unwrap().name(), Some("kid"));
            spawned_tx.send(()).unwrap();
            future.await
        });
        assert_eq!(parent.join()?, "parent");
        l.push("parent joined");
        let name = await_future(task)?.unwrap()?;
        assert_eq!(name.as_deref(), Some("kid"));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["parent's body returns", "kid done", "parent joined"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_the_parent_of_a_fiber_future_cancels_its_fiber() {
    bounded::main(|| {
        let parent = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(|| fuseau_tokio::sleep(hours(1)));
        let handle = parent.any();
        let (spawned_tx, spawned_rx) = oneshot::channel::<()>();
        let task = tokio::task::spawn_local(async move {
            let future = FutureBuilder::new()
                .parent(&handle)
                .spawn(|| fuseau_tokio::sleep(hours(1)));
            spawned_tx.send(()).unwrap();
            future.await
        });
        await_future(spawned_rx)?.unwrap();
        parent.cancel();
        assert!(parent.join().unwrap_err().is_cancelled());
        let e = await_future(task)?.unwrap().unwrap_err();
        assert!(e.is_cancelled(), "{e:?}");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn future_builder_propagation_to_the_parent() {
    bounded::main(|| {
        // By default, the fiber's failure cancels its parent (the fiber
        // that spawned it) with the same error.
        let propagating = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            let future = FutureBuilder::new().spawn(|| Err::<(), _>(Error::from("boom")));
            let e = await_future(future)?.unwrap_err();
            assert_eq!(e.message(), "boom");
            fuseau_tokio::sleep(hours(1))?;
            Ok("slept")
        });
        assert_eq!(propagating.join().unwrap_err().message(), "boom");
        // With propagate_cancel_to_parent(false), only the future sees it.
        let isolated = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            let future = FutureBuilder::new()
                .propagate_cancel_to_parent(false)
                .spawn(|| Err::<(), _>(Error::from("boom")));
            let e = await_future(future)?.unwrap_err();
            assert_eq!(e.message(), "boom");
            fuseau_tokio::sleep(ms(1))?;
            Ok("slept")
        });
        assert_eq!(isolated.join()?, "slept");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_as_future_without_a_scheduler_resolves_to_not_in_fiber() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = runtime.block_on(spawn_as_future(|| Ok(1))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotInFiber);
}

// ------------------------------------------------- wake-ups from threads

#[test]
#[cfg_attr(miri, ignore)]
fn thousands_of_oneshots_sent_from_a_std_thread_are_never_lost() {
    const ROUNDS: usize = 5_000;
    let (tx, rx) = mpsc::channel::<oneshot::Sender<usize>>();
    let sender = std::thread::spawn(move || {
        for (i, reply) in rx.into_iter().enumerate() {
            if i % 3 == 0 {
                // Sometimes late, so that the scheduler really goes idle.
                std::thread::yield_now();
            }
            reply.send(i).unwrap();
        }
    });
    let sum = bounded::with_watchdog("wake-ups from threads", bounded::LIMIT, move || {
        bounded::main(move || {
            let mut sum = 0;
            for i in 0..ROUNDS {
                let (reply_tx, reply_rx) = oneshot::channel();
                tx.send(reply_tx).unwrap();
                let got = await_future(reply_rx)?.unwrap();
                assert_eq!(got, i);
                sum += got;
            }
            Ok(sum)
        })
    })
    .unwrap();
    sender.join().unwrap();
    assert_eq!(sum, ROUNDS * (ROUNDS - 1) / 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_fibers_awaiting_tasks_of_a_multi_thread_runtime_lose_no_wake_up() {
    const FIBERS: usize = 10;
    const ROUNDS: usize = 500;
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = other.handle().clone();
    let total = bounded::with_watchdog("wake-ups from threads", bounded::LIMIT, move || {
        bounded::main(move || {
            let fibers: Vec<_> = (0..FIBERS)
                .map(|f| {
                    let handle = handle.clone();
                    fuseau_tokio::spawn(move || {
                        let mut count = 0;
                        for i in 0..ROUNDS {
                            let (tx, rx) = oneshot::channel();
                            // Completed by a worker thread of the other
                            // runtime, sometimes after a yield there.
                            handle.spawn(async move {
                                if (f + i) % 2 == 0 {
                                    tokio::task::yield_now().await;
                                }
                                tx.send(f * ROUNDS + i).unwrap();
                            });
                            assert_eq!(await_future(rx)?.unwrap(), f * ROUNDS + i);
                            count += 1;
                        }
                        Ok(count)
                    })
                })
                .collect();
            // And a JoinHandle of the other runtime, awaited directly.
            let answer = await_future(handle.spawn(async { 6 * 7 }))?.unwrap();
            assert_eq!(answer, 42);
            fibers
                .into_iter()
                .map(|f| f.join())
                .sum::<fuseau_tokio::Result<usize>>()
        })
    })
    .unwrap();
    assert_eq!(total, FIBERS * ROUNDS);
    other.shutdown_background();
}

// ------------------------------------------------- panics and suspension

/// Sleeps when dropped: a suspension point inside a destructor.
struct SleepOnDrop;

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        let _ = fuseau_tokio::sleep(ms(2));
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn other_fibers_never_run_while_a_fiber_unwinds_a_panic() {
    let (seen_panicking, poisoned) = bounded::main(|| {
        let panicker = Builder::new().propagate_cancel_to_parent(false).spawn(
            || -> fuseau_tokio::Result<()> {
                let _guard = SleepOnDrop;
                panic!("boom");
            },
        );
        fuseau_tokio::yield_now()?;
        let seen_panicking = std::thread::panicking();
        let mutex = std::sync::Mutex::new(());
        drop(mutex.lock().unwrap());
        assert_eq!(panicker.join().unwrap_err().kind(), ErrorKind::Panicked);
        Ok((seen_panicking, mutex.is_poisoned()))
    })
    .unwrap();
    assert!(
        !seen_panicking,
        "another fiber ran while the thread was panicking"
    );
    assert!(!poisoned);
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn a_task_awaiting_a_fiber_future_wakes_when_the_run_is_dropped() {
    let local = LocalSet::new();
    local
        .run_until(async {
            let (task_tx, task_rx) = oneshot::channel();
            let run = fuseau_tokio::run(move || {
                let (started_tx, started_rx) = oneshot::channel();
                let task = tokio::task::spawn_local(async move {
                    let future = spawn_as_future(|| fuseau_tokio::sleep(hours(1)));
                    started_tx.send(()).unwrap();
                    future.await
                });
                await_future(started_rx)?.unwrap();
                let _ = task_tx.send(task);
                fuseau_tokio::sleep(hours(1))
            });
            // Drives the run until the task waits on its fiber, then drops
            // the run: the scheduler is disposed of, the fiber cancelled.
            let task = tokio::select! {
                _ = run => panic!("the run ended"),
                task = task_rx => task.unwrap(),
            };
            let result = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the task awaiting the fiber was never woken")
                .unwrap();
            assert!(result.unwrap_err().is_cancellation());
        })
        .await;
}
