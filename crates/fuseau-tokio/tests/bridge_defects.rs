//! Regression tests for defects of the Tokio bridge: the registry of the
//! `run`s alive on a thread when they finish out of order, and a fiber that
//! awaits the `FiberFuture` of a fiber it runs in.

mod bounded;
mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::Log;
use fuseau_tokio::{
    await_future, spawn_as_future, AnyFiber, Error, ErrorKind, FiberFuture, FutureBuilder, Result,
};
use tokio::sync::oneshot;
use tokio::task::{spawn_local, LocalSet};

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on a new current-thread runtime and `LocalSet`, under a watchdog.
fn on_local_set<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    bounded::with_watchdog(what, bounded::LIMIT, || {
        let runtime = current_thread_runtime();
        LocalSet::new().block_on(&runtime, f)
    })
}

/// Spawns `fuseau_tokio::run` as a local task whose main fiber reports
/// that it started (so the `run` is registered), then waits for `release`.
async fn start_run(
    name: &'static str,
    release: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<Result<&'static str>> {
    let (started_tx, started_rx) = oneshot::channel();
    let run = spawn_local(fuseau_tokio::run(move || {
        started_tx.send(()).unwrap();
        await_future(release)?.unwrap();
        Ok(name)
    }));
    started_rx.await.unwrap();
    run
}

/// From a plain Tokio task (not a fiber), spawns a fiber with
/// `spawn_as_future` on the innermost `run` of the thread.
async fn spawn_from_tokio_task() -> Result<i32> {
    spawn_local(async { spawn_as_future(|| Ok(5)).await })
        .await
        .unwrap()
}

/// Two `run`s on one `LocalSet`, the outer (first entered) finishing first:
/// the inner one must stay registered, and a Tokio task's `spawn_as_future`
/// must land on it, not on the outer's disposed scheduler.
#[test]
fn runs_finishing_out_of_order_keep_the_live_scheduler_registered() {
    on_local_set("runs_finishing_out_of_order", async {
        let (release_a, a_rx) = oneshot::channel();
        let (release_b, b_rx) = oneshot::channel();
        let a = start_run("a", a_rx).await;
        let b = start_run("b", b_rx).await;

        // Both alive: the innermost (B) is used.
        assert_eq!(spawn_from_tokio_task().await.unwrap(), 5);

        // A, entered first, finishes first; B keeps running.
        release_a.send(()).unwrap();
        assert_eq!(a.await.unwrap().unwrap(), "a");
        assert!(!b.is_finished());

        // With the defect, A's guard popped B's entry and left A's disposed
        // scheduler registered: this gave `Err(Inactive)`.
        assert_eq!(spawn_from_tokio_task().await.unwrap(), 5);

        release_b.send(()).unwrap();
        assert_eq!(b.await.unwrap().unwrap(), "b");

        // None left: outside a fiber and any `run`.
        let err = spawn_from_tokio_task().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotInFiber);
    });
}

/// Three `run`s, the middle one finishing first: the outer and inner stay
/// registered, in order.
#[test]
fn middle_run_finishing_first_leaves_the_others_registered() {
    on_local_set("middle_run_finishing_first", async {
        let (release_a, a_rx) = oneshot::channel();
        let (release_b, b_rx) = oneshot::channel();
        let (release_c, c_rx) = oneshot::channel();
        let a = start_run("a", a_rx).await;
        let b = start_run("b", b_rx).await;
        let c = start_run("c", c_rx).await;

        release_b.send(()).unwrap();
        assert_eq!(b.await.unwrap().unwrap(), "b");
        assert_eq!(spawn_from_tokio_task().await.unwrap(), 5);

        release_c.send(()).unwrap();
        assert_eq!(c.await.unwrap().unwrap(), "c");
        assert_eq!(spawn_from_tokio_task().await.unwrap(), 5);

        release_a.send(()).unwrap();
        assert_eq!(a.await.unwrap().unwrap(), "a");
        let err = spawn_from_tokio_task().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotInFiber);
    });
}

/// A slot through which a spawner hands a fiber's `FiberFuture` to a fiber
/// it queued (a spawned fiber runs only once its spawner suspends).
type Slot = Rc<RefCell<Option<FiberFuture<()>>>>;

/// An error a fiber saw, for the test to check after `main` returns.
type Seen = Rc<RefCell<Option<Error>>>;

fn assert_refused(seen: &Seen) {
    let err = seen
        .borrow_mut()
        .take()
        .expect("the fiber awaited the future and got an error");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(
        err.to_string().contains("cannot await its own future"),
        "unexpected error: {err}"
    );
}

/// A fiber that awaits its own `FiberFuture` gets an error at once instead
/// of waiting forever (with its parent and main).
#[test]
fn a_fiber_awaiting_its_own_future_is_refused() {
    let slot: Slot = Rc::default();
    let seen: Seen = Rc::default();
    let log = Log::new();
    let (s, e, l) = (slot.clone(), seen.clone(), log.clone());
    bounded::main(move || {
        let l1 = l.clone();
        let own = spawn_as_future(move || {
            let mine = s.borrow_mut().take().expect("the spawner filled the slot");
            let err = await_future(mine)?.unwrap_err();
            *e.borrow_mut() = Some(err);
            // Not cancelled by the refusal: it goes on, and is not failed.
            fuseau_tokio::yield_now()?;
            l1.push("own: done");
            Ok(())
        });
        let fiber = own.fiber().expect("spawned");
        *slot.borrow_mut() = Some(own);
        while !fiber.is_done() {
            fuseau_tokio::yield_now()?;
        }
        assert!(!fiber.is_cancelled());
        l.push("main: done");
        Ok(())
    })
    .unwrap();
    assert_refused(&seen);
    assert_eq!(log.take(), ["own: done", "main: done"]);
}

/// A fiber that awaits the `FiberFuture` of an ancestor (its grandparent,
/// here, spawned with `FutureBuilder::parent`) gets an error at once; the
/// ancestor then finishes normally.
#[test]
fn a_fiber_awaiting_an_ancestors_future_is_refused() {
    let slot: Slot = Rc::default();
    let seen: Seen = Rc::default();
    let log = Log::new();
    let (s, e, l) = (slot.clone(), seen.clone(), log.clone());
    bounded::main(move || {
        let (l1, l2) = (l.clone(), l.clone());
        let grandparent = FutureBuilder::new()
            .parent(&AnyFiber::current())
            .name("grandparent")
            .spawn(move || {
                let parent = fuseau_tokio::spawn(move || {
                    let grandchild = spawn_as_future(move || {
                        let theirs = s.borrow_mut().take().expect("main filled the slot");
                        let err = await_future(theirs)?.unwrap_err();
                        *e.borrow_mut() = Some(err);
                        l2.push("grandchild: done");
                        Ok(())
                    });
                    // A fiber may still await its own child's future.
                    await_future(grandchild)??;
                    l1.push("parent: done");
                    Ok(())
                });
                parent.join()
            });
        let fiber = grandparent.fiber().expect("spawned");
        *slot.borrow_mut() = Some(grandparent);
        while !fiber.is_done() {
            fuseau_tokio::yield_now()?;
        }
        assert!(!fiber.is_cancelled());
        l.push("main: done");
        Ok(())
    })
    .unwrap();
    assert_refused(&seen);
    assert_eq!(
        log.take(),
        ["grandchild: done", "parent: done", "main: done"]
    );
}

/// Awaiting a fiber's future from a fiber outside it (here, its parent)
/// still waits for it.
#[test]
fn a_fiber_awaiting_a_descendants_future_still_waits() {
    let answer = bounded::main(|| {
        let child = spawn_as_future(|| {
            let grandchild = spawn_as_future(|| {
                fuseau_tokio::yield_now()?;
                Ok(40)
            });
            Ok(await_future(grandchild)?? + 1)
        });
        Ok(await_future(child)?? + 1)
    })
    .unwrap();
    assert_eq!(answer, 42);
}
