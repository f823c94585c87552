//! Fiber timers on Tokio's paused clock: hours of sleeping take no time, and
//! the order of events is fixed, so tests compare exact transcripts.

mod common;

use common::{hours, ms, Log};
use fuseau_tokio::{Builder, ErrorKind};
use tokio::task::LocalSet;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn hour_long_sleeps_finish_in_deadline_order() {
    let log = Log::new();
    let l = log.clone();
    let start = Instant::now();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(move || {
            let fibers: Vec<_> = [3, 1, 2]
                .into_iter()
                .map(|h| {
                    let l = l.clone();
                    fuseau_tokio::spawn(move || {
                        fuseau_tokio::sleep(hours(h))?;
                        l.push(format!("{h}h"));
                        Ok(h)
                    })
                })
                .collect();
            let woke: Vec<u64> = fibers
                .into_iter()
                .map(|f| f.join())
                .collect::<fuseau_tokio::Result<_>>()?;
            assert_eq!(woke, [3, 1, 2], "join returns each fiber's own value");
            Ok(())
        }))
        .await
        .unwrap();
    assert_eq!(log.take(), ["1h", "2h", "3h"]);
    // Tokio's clock moved exactly as far as the longest sleep (give or take
    // the millisecond rounding of Tokio's timer wheel).
    let elapsed = start.elapsed();
    assert!(
        elapsed >= hours(3) && elapsed < hours(3) + ms(5),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn equal_deadlines_wake_in_the_order_they_were_armed() {
    let log = Log::new();
    let l = log.clone();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(move || {
            for name in ["a", "b", "c", "d", "e"] {
                let l = l.clone();
                fuseau_tokio::spawn(move || {
                    l.push(format!("{name} sleeps"));
                    fuseau_tokio::sleep(hours(1))?;
                    l.push(format!("{name} wakes"));
                    Ok(())
                });
            }
            Ok(())
        }))
        .await
        .unwrap();
    let expected: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| format!("{n} sleeps"))
        .chain(
            ["a", "b", "c", "d", "e"]
                .iter()
                .map(|n| format!("{n} wakes")),
        )
        .collect();
    assert_eq!(log.take(), expected);
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn cancel_after_gives_timeout_at_the_deadline() {
    let start = Instant::now();
    let local = LocalSet::new();
    let result = local
        .run_until(fuseau_tokio::run(|| {
            fuseau_tokio::cancel_after(hours(1))?;
            fuseau_tokio::sleep(hours(24))
        }))
        .await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= hours(1) && elapsed < hours(1) + ms(5),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn cancel_after_reaches_children_and_is_disarmed_when_done_first() {
    let log = Log::new();
    let l = log.clone();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(move || {
            // A worker with a deadline: it and its child see `Timeout`.
            let l2 = l.clone();
            let worker = Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(move || {
                    fuseau_tokio::cancel_after(hours(1))?;
                    let l3 = l2.clone();
                    let child = Builder::new()
                        .propagate_cancel_to_parent(false)
                        .spawn(move || {
                            let r = fuseau_tokio::sleep(hours(10));
                            l3.push(format!("child: {:?}", r.as_ref().map_err(|e| e.kind())));
                            r
                        });
                    let r = fuseau_tokio::sleep(hours(10));
                    l2.push(format!("worker: {:?}", r.as_ref().map_err(|e| e.kind())));
                    let c = child.join();
                    l2.push(format!(
                        "worker joined child: {:?}",
                        c.map_err(|e| e.kind())
                    ));
                    r
                });
            assert_eq!(worker.join().unwrap_err().kind(), ErrorKind::Timeout);

            // A deadline that is not reached does nothing, even after the
            // fiber that armed it is gone.
            let quick = fuseau_tokio::spawn(|| {
                fuseau_tokio::cancel_after(hours(1))?;
                fuseau_tokio::sleep(ms(30))?;
                Ok("quick")
            });
            assert_eq!(quick.join()?, "quick");
            fuseau_tokio::sleep(hours(2))?;
            l.push("main slept past the stale deadline");
            Ok(())
        }))
        .await
        .unwrap();
    assert_eq!(
        log.take(),
        [
            // The deadline cancels the worker, then (passed down) its child;
            // both are woken and run in that order.
            "worker: Err(Timeout)",
            "child: Err(Timeout)",
            "worker joined child: Err(Timeout)",
            "main slept past the stale deadline",
        ]
    );
}

/// Fiber sleeps and `tokio::time::sleep` in Tokio tasks share one clock, so
/// their wake-ups interleave in deadline order.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn fiber_and_tokio_sleeps_interleave_in_deadline_order() {
    let log = Log::new();
    let local = LocalSet::new();

    let l = log.clone();
    local.spawn_local(async move {
        tokio::time::sleep(ms(10)).await;
        l.push("tokio 10");
        tokio::time::sleep(ms(20)).await;
        l.push("tokio 30");
        tokio::time::sleep(ms(15)).await;
        l.push("tokio 45");
    });

    let l = log.clone();
    local
        .run_until(fuseau_tokio::run(move || {
            let l2 = l.clone();
            let x = fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(5))?;
                l2.push("fiber x 5");
                fuseau_tokio::sleep(ms(20))?;
                l2.push("fiber x 25");
                fuseau_tokio::sleep(ms(15))?;
                l2.push("fiber x 40");
                Ok(())
            });
            let l3 = l.clone();
            let y = fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(20))?;
                l3.push("fiber y 20");
                // A Tokio task started by a fiber joins the same timeline.
                let l4 = l3.clone();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(ms(15)).await;
                    l4.push("tokio (from fiber y) 35");
                });
                fuseau_tokio::sleep(ms(30))?;
                l3.push("fiber y 50");
                Ok(())
            });
            x.join()?;
            y.join()?;
            l.push("main done 50");
            Ok(())
        }))
        .await
        .unwrap();

    assert_eq!(
        log.take(),
        [
            "fiber x 5",
            "tokio 10",
            "fiber y 20",
            "fiber x 25",
            "tokio 30",
            "tokio (from fiber y) 35",
            "fiber x 40",
            "tokio 45",
            "fiber y 50",
            "main done 50",
        ]
    );
}

/// `sleep` measures from Tokio's (paused) clock, and so does
/// `fuseau_tokio::time::now()` inside fibers.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn fiber_clock_is_tokios_clock() {
    let local = LocalSet::new();
    let start = Instant::now();
    let (fiber_start, fiber_end) = local
        .run_until(fuseau_tokio::run(|| {
            let a = fuseau_tokio::time::now();
            fuseau_tokio::sleep(hours(5))?;
            Ok((a, fuseau_tokio::time::now()))
        }))
        .await
        .unwrap();
    assert_eq!(fiber_start, start.into_std());
    let slept = fiber_end - fiber_start;
    assert!(slept >= hours(5) && slept < hours(5) + ms(5), "{slept:?}");
    assert_eq!(Instant::now().into_std(), fiber_end);
}

/// A fiber timer that is already due is served at once, without a trip
/// through Tokio's timer wheel (whose millisecond ticks would round it up:
/// `sleep(Duration::ZERO)` used to cost up to a millisecond each).
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn due_fiber_timers_do_not_wait_for_the_next_tokio_tick() {
    // Put the clock between two of Tokio's millisecond ticks.
    tokio::time::advance(std::time::Duration::from_micros(500)).await;
    let start = Instant::now();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(|| {
            for _ in 0..100 {
                fuseau_tokio::sleep(std::time::Duration::ZERO)?;
            }
            // A deadline in the past, too.
            fuseau_tokio::time::sleep_until(fuseau_tokio::time::now() - ms(3))?;
            Ok(())
        }))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), std::time::Duration::ZERO);
}

/// Cancelling a parent wakes it and its children; a user reading the
/// program expects them to run in tree order (parent, then children in
/// spawn order), as everything else in fuseau is FIFO.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn cancelled_children_wake_in_spawn_order() {
    let log = Log::new();
    let l = log.clone();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(move || {
            let l2 = l.clone();
            let supervisor = Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(move || {
                    for i in 1..=3 {
                        let l3 = l2.clone();
                        fuseau_tokio::spawn(move || {
                            let r = fuseau_tokio::sleep(hours(1));
                            l3.push(format!("worker {i} woke"));
                            r
                        });
                    }
                    let r = fuseau_tokio::sleep(hours(1));
                    l2.push("supervisor woke");
                    r
                });
            fuseau_tokio::sleep(ms(1))?;
            supervisor.cancel();
            let _ = supervisor.join();
            Ok(())
        }))
        .await
        .unwrap();
    assert_eq!(
        log.take(),
        [
            "supervisor woke",
            "worker 1 woke",
            "worker 2 woke",
            "worker 3 woke"
        ]
    );
}
