//! `main` and `run`: when they return, what they leave behind, and how they
//! share a Tokio runtime with other code.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use common::{hours, ms, DropCounter, Log};
use fuseau_tokio::{Error, ErrorKind, Scheduler};
use tokio::task::LocalSet;

#[test]
#[cfg_attr(miri, ignore)]
fn main_returns_only_when_all_descendants_are_done() {
    let log = Log::new();
    let l = log.clone();
    let answer = fuseau_tokio::main(move || {
        let l2 = l.clone();
        fuseau_tokio::spawn(move || {
            let l3 = l2.clone();
            // A grandchild that outlives its parent's body, too.
            fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(30))?;
                l3.push("grandchild done");
                Ok(())
            });
            fuseau_tokio::sleep(ms(10))?;
            l2.push("child done");
            Ok(())
        });
        l.push("main body returns");
        Ok(42)
    })
    .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(
        log.take(),
        ["main body returns", "child done", "grandchild done"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_child_failing_after_main_returned_is_mains_result() {
    let result = fuseau_tokio::main(|| {
        fuseau_tokio::spawn(|| {
            fuseau_tokio::sleep(ms(5))?;
            Err::<(), _>(Error::from("late failure"))
        });
        Ok(7)
    });
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert_eq!(e.message(), "late failure");
}

#[test]
#[cfg_attr(miri, ignore)]
fn main_disposes_its_scheduler() {
    let seen: Rc<RefCell<Option<Scheduler>>> = Rc::default();
    let s = seen.clone();
    fuseau_tokio::main(move || {
        let sched = Scheduler::current();
        assert!(sched.active());
        *s.borrow_mut() = Some(sched);
        Ok(())
    })
    .unwrap();
    let sched = seen.take().unwrap();
    assert!(!sched.active());
    assert_eq!(sched.n_fibers(), 0);
    assert_eq!(sched.n_tasks_since_beginning(), 1);
}

#[tokio::test]
#[should_panic(expected = "Cannot start a runtime from within a runtime")]
#[cfg_attr(miri, ignore)]
async fn main_inside_a_runtime_panics() {
    let _ = fuseau_tokio::main(|| Ok(()));
}

/// Without a `LocalSet`, `run` still runs fibers (they just cannot use
/// `spawn_local`).
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn run_works_without_a_local_set() {
    let n = fuseau_tokio::run(|| {
        let child = fuseau_tokio::spawn(|| {
            fuseau_tokio::sleep(hours(1))?;
            Ok(20)
        });
        Ok(child.join()? + 22)
    })
    .await
    .unwrap();
    assert_eq!(n, 42);
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn run_several_times_then_the_runtime_is_still_usable() {
    let local = LocalSet::new();
    local
        .run_until(async {
            let mut total = 0;
            for i in 0..5u64 {
                total += fuseau_tokio::run(move || {
                    let child = fuseau_tokio::spawn(move || {
                        fuseau_tokio::sleep(ms(10 * i))?;
                        Ok(i)
                    });
                    child.join()
                })
                .await
                .unwrap();
            }
            assert_eq!(total, 10);

            // Tokio timers and local tasks still work.
            let flag = Rc::new(Cell::new(false));
            let f = flag.clone();
            let task = tokio::task::spawn_local(async move {
                tokio::time::sleep(hours(1)).await;
                f.set(true);
                "task done"
            });
            assert_eq!(task.await.unwrap(), "task done");
            assert!(flag.get());
            tokio::time::sleep(ms(5)).await;
        })
        .await;

    // And so does `run` on the same `LocalSet` afterwards, after an error.
    let e = local
        .run_until(fuseau_tokio::run(|| Err::<(), _>(Error::from("nope"))))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "nope");
    let ok = local.run_until(fuseau_tokio::run(|| Ok("again"))).await;
    assert_eq!(ok.unwrap(), "again");
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn two_runs_at_once_on_one_local_set() {
    let log = Log::new();
    let make = |name: &'static str, first: u64, second: u64| {
        let l = log.clone();
        fuseau_tokio::run(move || {
            let me = Scheduler::current();
            fuseau_tokio::sleep(ms(first))?;
            l.push(format!("{name} {first}"));
            // Each fiber runs on its own scheduler.
            let child = fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(second - first))?;
                Ok(Scheduler::current().n_tasks_since_beginning())
            });
            let spawned = child.join()?;
            l.push(format!("{name} {second}"));
            assert_eq!(spawned, 2, "{name}: its scheduler saw only its own fibers");
            assert_eq!(me.n_fibers(), 1);
            Ok(name)
        })
    };
    let local = LocalSet::new();

    // Both polled by one task.
    let (a, b) = local
        .run_until(async { tokio::join!(make("a", 10, 30), make("b", 20, 40)) })
        .await;
    assert_eq!((a.unwrap(), b.unwrap()), ("a", "b"));
    assert_eq!(log.take(), ["a 10", "b 20", "a 30", "b 40"]);

    // Each in its own local task.
    let a = local.spawn_local(make("a", 25, 35));
    let b = local.spawn_local(make("b", 5, 45));
    let (a, b) = local.run_until(async { (a.await, b.await) }).await;
    assert_eq!((a.unwrap().unwrap(), b.unwrap().unwrap()), ("a", "b"));
    assert_eq!(log.take(), ["b 5", "a 25", "a 35", "b 45"]);
}

/// A fiber of one scheduler may join a fiber of another scheduler on the
/// same thread: the wake-up crosses from one `run` to the other.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn a_fiber_can_join_a_fiber_of_another_run_on_the_same_thread() {
    let slot: Rc<RefCell<Option<fuseau_tokio::Fiber<u32>>>> = Rc::default();
    let s = slot.clone();
    let producer = fuseau_tokio::run(move || {
        let worker = fuseau_tokio::Builder::new().spawn(|| {
            fuseau_tokio::sleep(hours(1))?;
            Ok(99)
        });
        *s.borrow_mut() = Some(worker);
        Ok(())
    });
    let consumer = fuseau_tokio::run(move || {
        let worker = loop {
            if let Some(w) = slot.borrow_mut().take() {
                break w;
            }
            fuseau_tokio::sleep(ms(1))?;
        };
        worker.join()
    });
    let local = LocalSet::new();
    let (p, c) = local
        .run_until(async { tokio::join!(producer, consumer) })
        .await;
    p.unwrap();
    assert_eq!(c.unwrap(), 99);
}

/// Dropping a `run` future (here: `tokio::time::timeout` gives up on it)
/// disposes of its scheduler: every fiber is cancelled, fibers that return
/// by themselves do so, the others are unwound, and every destructor runs.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn dropping_run_cancels_and_unwinds_every_fiber() {
    let drops = DropCounter::new();
    let log = Log::new();
    let seen: Rc<RefCell<Option<Scheduler>>> = Rc::default();
    let (d, l, s) = (drops.clone(), log.clone(), seen.clone());
    let local = LocalSet::new();
    let result = local
        .run_until(tokio::time::timeout(
            Duration::from_secs(1),
            fuseau_tokio::run(move || {
                *s.borrow_mut() = Some(Scheduler::current());
                let guard = d.guard();
                // Returns by itself when cancelled, and says so.
                let (g, l2) = (d.guard(), l.clone());
                fuseau_tokio::spawn(move || {
                    let _g = g;
                    let r = fuseau_tokio::sleep(hours(1));
                    l2.push(format!(
                        "sleeper woke: {:?}",
                        r.as_ref().map_err(|e| e.kind())
                    ));
                    r
                });
                // Ignores cancellation: must be force-unwound.
                let g = d.guard();
                fuseau_tokio::spawn(move || -> fuseau_tokio::Result<()> {
                    let _g = g;
                    loop {
                        let _ = fuseau_tokio::sleep(hours(1));
                    }
                });
                // A parent whose body waits in `join`, with two children.
                let g = d.guard();
                fuseau_tokio::spawn(move || {
                    let g2 = d.guard();
                    fuseau_tokio::spawn(move || {
                        let _g2 = g2;
                        fuseau_tokio::sleep(hours(2))
                    });
                    let _g = g;
                    let g3 = d.guard();
                    fuseau_tokio::spawn(move || {
                        let _g3 = g3;
                        fuseau_tokio::sleep(hours(3))
                    })
                    .join()
                });
                fuseau_tokio::sleep(hours(4))?;
                drop(guard);
                Ok(())
            }),
        ))
        .await;
    assert!(result.is_err(), "the timeout fires first");
    // main's guard, sleeper, ignorer, parent and its two children.
    assert_eq!(drops.dropped(), 6);
    assert_eq!(log.take(), ["sleeper woke: Err(Cancelled)"]);
    let sched = seen.take().unwrap();
    assert!(!sched.active());
    assert_eq!(sched.n_fibers(), 0);
}

/// A fiber that was spawned but never ran still has its closure dropped.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn dropping_run_drops_fibers_that_never_started() {
    let drops = DropCounter::new();
    let d = drops.clone();
    // Budget 1: the first iteration runs the main fiber only.
    let mut run = Box::pin(fuseau_tokio::run_with(
        fuseau_tokio::Config::new().budget(1),
        move || {
            for _ in 0..3 {
                let g = d.guard();
                fuseau_tokio::spawn(move || {
                    let _g = g;
                    Ok(())
                });
            }
            Ok(())
        },
    ));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(run.as_mut().poll(&mut cx).is_pending());
    assert_eq!(drops.dropped(), 0, "only the main fiber ran");
    drop(run);
    assert_eq!(drops.dropped(), 3);
}

/// Dropping `run` disposes of the scheduler even when a fiber keeps a
/// `Scheduler` handle on its stack (which keeps the scheduler alive).
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn dropping_run_disposes_even_if_a_fiber_holds_the_scheduler() {
    let drops = DropCounter::new();
    let d = drops.clone();
    let local = LocalSet::new();
    let result = local
        .run_until(tokio::time::timeout(
            ms(100),
            fuseau_tokio::run(move || {
                let _sched = Scheduler::current();
                let _g = d.guard();
                fuseau_tokio::sleep(hours(1))
            }),
        ))
        .await;
    assert!(result.is_err());
    assert_eq!(drops.dropped(), 1, "the main fiber's stack was unwound");
}

#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn spawn_local_works_from_fibers() {
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(|| {
            // Observed after a sleep.
            let flag = Rc::new(Cell::new(0));
            let f = flag.clone();
            let handle = tokio::task::spawn_local(async move {
                f.set(1);
                tokio::time::sleep(ms(10)).await;
                f.set(2);
            });
            fuseau_tokio::sleep(ms(1))?;
            assert_eq!(flag.get(), 1);
            fuseau_tokio::sleep(ms(20))?;
            assert_eq!(flag.get(), 2);
            assert!(handle.is_finished());

            // Observed after yields alone: the driver gives Tokio a turn
            // between batches of fiber runs.
            let f = flag.clone();
            tokio::task::spawn_local(async move { f.set(3) });
            let mut yields = 0;
            while flag.get() != 3 {
                assert!(yields < 100_000, "the local task never ran");
                fuseau_tokio::yield_now()?;
                yields += 1;
            }

            // From a child fiber, too.
            let f = flag.clone();
            fuseau_tokio::spawn(move || {
                tokio::task::spawn_local(async move { f.set(4) });
                Ok(())
            })
            .join()?;
            fuseau_tokio::sleep(ms(1))?;
            assert_eq!(flag.get(), 4);
            Ok(())
        }))
        .await
        .unwrap();
}

/// A Tokio task on the scheduler's thread may cancel a fiber: the driver,
/// idle with no timer armed, is woken.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn a_tokio_task_can_cancel_a_fiber() {
    let local = LocalSet::new();
    let result = local
        .run_until(fuseau_tokio::run(|| {
            let forever = fuseau_tokio::Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(|| fuseau_tokio::sleep(Duration::MAX));
            let handle = forever.any();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(hours(1)).await;
                handle.cancel();
            });
            forever.join()
        }))
        .await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
}

/// A `run` left pending in a local task when the `LocalSet` (and runtime)
/// go away is dropped with them: its fibers are unwound.
#[test]
#[cfg_attr(miri, ignore)]
fn shutting_down_the_local_set_unwinds_pending_runs() {
    let drops = DropCounter::new();
    let d = drops.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let local = LocalSet::new();
    local.spawn_local(fuseau_tokio::run(move || {
        let g = d.guard();
        fuseau_tokio::spawn(move || {
            let _g = g;
            fuseau_tokio::sleep(hours(1))
        });
        let _g = d.guard();
        fuseau_tokio::sleep(hours(2))
    }));
    local.block_on(&runtime, async { tokio::time::sleep(ms(10)).await });
    assert_eq!(drops.dropped(), 0, "the fibers are still sleeping");
    drop(local);
    assert_eq!(drops.dropped(), 2);
    drop(runtime);
}

/// Disposing of the scheduler from inside one of its fibers cancels every
/// fiber; `run` then returns the main fiber's cancellation.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn dispose_from_inside_a_fiber_ends_run() {
    let log = Log::new();
    let l = log.clone();
    let result = fuseau_tokio::run(move || {
        let l2 = l.clone();
        fuseau_tokio::spawn(move || {
            let r = fuseau_tokio::sleep(hours(1));
            l2.push(format!("child: {:?}", r.as_ref().map_err(|e| e.kind())));
            r
        });
        fuseau_tokio::spawn(|| {
            Scheduler::current().dispose();
            Ok(())
        });
        let r = fuseau_tokio::sleep(hours(1));
        l.push(format!("main: {:?}", r.as_ref().map_err(|e| e.kind())));
        let again = fuseau_tokio::Builder::new().try_spawn(|| Ok(()));
        l.push(format!(
            "spawn after dispose: {:?}",
            again.map(drop).map_err(|e| e.kind())
        ));
        r
    })
    .await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(
        log.take(),
        [
            "main: Err(Cancelled)",
            "spawn after dispose: Err(Inactive)",
            "child: Err(Cancelled)",
        ]
    );
}

/// `main` nests inside a fiber of another scheduler that has no Tokio
/// runtime (here `fuseau::block_on`): the inner scheduler's fibers run on
/// their own stacks, and the outer fiber continues afterwards.
#[test]
#[cfg_attr(miri, ignore)]
fn main_nests_inside_a_block_on_fiber() {
    let log = Log::new();
    let l = log.clone();
    let n = fuseau_tokio::block_on(move || {
        let outer_sched = Scheduler::current();
        let l2 = l.clone();
        let sibling = fuseau_tokio::spawn(move || {
            l2.push("outer sibling");
            Ok(())
        });
        let inner = fuseau_tokio::main(move || {
            let c = fuseau_tokio::spawn(|| {
                fuseau_tokio::sleep(ms(2))?;
                Ok(Scheduler::current().n_tasks_since_beginning())
            });
            c.join()
        })?;
        l.push(format!("inner main saw {inner} fibers"));
        // Back on the outer scheduler.
        assert_eq!(Scheduler::current().n_tasks_since_beginning(), 2);
        assert!(outer_sched.active());
        sibling.join()?;
        Ok(inner)
    })
    .unwrap();
    assert_eq!(n, 2);
    // The outer scheduler was blocked while the inner one ran.
    assert_eq!(log.take(), ["inner main saw 2 fibers", "outer sibling"]);
}

/// `run` needs Tokio's time driver only once a fiber arms a timer.
#[test]
#[cfg_attr(miri, ignore)]
fn run_works_on_a_runtime_without_timers_if_no_fiber_sleeps() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let local = LocalSet::new();
    let n = local
        .block_on(
            &runtime,
            fuseau_tokio::run(|| {
                let child = fuseau_tokio::spawn(|| {
                    fuseau_tokio::yield_now()?;
                    Ok(41)
                });
                Ok(child.join()? + 1)
            }),
        )
        .unwrap();
    assert_eq!(n, 42);
}

/// A Tokio task (not a fiber) can start fibers under a given parent with
/// `spawn_as_child_of`; the driver, idle, is woken to run them.
#[tokio::test(start_paused = true)]
#[cfg_attr(miri, ignore)]
async fn a_tokio_task_can_spawn_fibers_under_a_parent() {
    let log = Log::new();
    let l = log.clone();
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(move || {
            let me = fuseau_tokio::AnyFiber::current();
            let l2 = l.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(hours(1)).await;
                l2.push("tokio task spawns a fiber");
                let l3 = l2.clone();
                fuseau_tokio::spawn_as_child_of(&me, move || {
                    l3.push("fiber spawned by a tokio task runs");
                    fuseau_tokio::sleep(hours(1))?;
                    l3.push("fiber spawned by a tokio task done");
                    Ok(())
                });
            });
            // A parent must not be done yet when a child is spawned under
            // it, so the main fiber sleeps past the spawn; `run` then also
            // waits for the new child, which outlives main's body.
            fuseau_tokio::sleep(hours(1) + ms(1))?;
            l.push("main body returns");
            Ok(())
        }))
        .await
        .unwrap();
    assert_eq!(
        log.take(),
        [
            "tokio task spawns a fiber",
            "fiber spawned by a tokio task runs",
            "main body returns",
            "fiber spawned by a tokio task done",
        ]
    );
}
