//! Wake-ups that start on other threads.
//!
//! The public API has no way yet for a fiber to wait on a `Waker` (no
//! `await_future`, and `Wakeup` has no public constructor), so these tests
//! go through Tokio: another thread completes a Tokio future, the Tokio task
//! awaiting it acts on a fiber, and the driver, idle with no timer armed,
//! must wake up.

mod common;

use std::time::Duration;

use common::ms;
use fuseau_tokio::{Builder, ErrorKind};
use tokio::task::LocalSet;

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn a_message_from_another_thread_can_cancel_a_fiber() {
    let local = LocalSet::new();
    let result = local
        .run_until(fuseau_tokio::run(|| {
            // Sleeps forever: no fiber timer is armed, so the driver waits
            // for an unpark only.
            let forever = Builder::new()
                .propagate_cancel_to_parent(false)
                .spawn(|| fuseau_tokio::sleep(Duration::MAX));
            let handle = forever.any();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::task::spawn_local(async move {
                rx.await.unwrap();
                handle.cancel();
            });
            let thread = std::thread::spawn(move || {
                std::thread::sleep(ms(20));
                tx.send(()).unwrap();
            });
            let result = forever.join();
            thread.join().unwrap();
            result
        }))
        .await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
}

/// Many threads, many fibers: every message wakes its fiber; none is lost.
#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn many_cross_thread_wakes_are_never_lost() {
    const N: usize = 50;
    let local = LocalSet::new();
    let cancelled = local
        .run_until(fuseau_tokio::run(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
            let fibers: Vec<_> = (0..N)
                .map(|_| {
                    Builder::new()
                        .propagate_cancel_to_parent(false)
                        .spawn(|| fuseau_tokio::sleep(Duration::MAX))
                })
                .collect();
            let handles: Vec<_> = fibers.iter().map(|f| f.any()).collect();
            tokio::task::spawn_local(async move {
                while let Some(i) = rx.recv().await {
                    handles[i].cancel();
                }
            });
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in (t..N).step_by(4) {
                            tx.send(i).unwrap();
                            std::thread::yield_now();
                        }
                    })
                })
                .collect();
            drop(tx);
            let mut cancelled = 0;
            for f in fibers {
                if f.join().unwrap_err().kind() == ErrorKind::Cancelled {
                    cancelled += 1;
                }
            }
            for t in threads {
                t.join().unwrap();
            }
            Ok(cancelled)
        }))
        .await
        .unwrap();
    assert_eq!(cancelled, N);
}

/// `SchedulerHandle` is `Send + Sync` and reports the scheduler's state from
/// another thread.
#[test]
#[cfg_attr(miri, ignore)]
fn scheduler_handle_is_usable_from_other_threads() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let handle = fuseau_tokio::main(|| {
        let handle = fuseau_tokio::Scheduler::current().handle();
        assert_send_sync(&handle);
        let h = handle.clone();
        let active = std::thread::spawn(move || h.is_active()).join().unwrap();
        assert!(active);
        Ok(handle)
    })
    .unwrap();
    let inactive = std::thread::spawn(move || handle.is_active())
        .join()
        .unwrap();
    assert!(!inactive, "main disposes of its scheduler");
}
