//! Wake-ups: how whatever a fiber waits on tells the scheduler to run it again.
//!
//! A [`Wakeup`] names one fiber and one of its waits. Calling
//! [`wake`](Wakeup::wake) queues the fiber; it never switches to it. A
//! wake-up for a wait that has ended (the fiber was woken by something else,
//! or cancelled) does nothing, so a registration that was not removed in time
//! cannot wake the fiber in the middle of a later, unrelated wait.

use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Weak as ArcWeak};
use std::task::{Wake, Waker};

use crate::fiber::FiberId;
use crate::scheduler::{Message, Remote};
use crate::task::{FiberCore, Task};

/// Wakes a fiber that waits (thread-bound; see [`Wakeup::to_waker`] for
/// other threads).
///
/// Cheap to clone: all clones wake the same wait.
#[derive(Clone)]
pub struct Wakeup {
    task: Rc<dyn Task>,
    epoch: u64,
}

impl Wakeup {
    /// A wake-up for the current wait of `task` (the running fiber).
    pub(crate) fn for_task(task: &Rc<dyn Task>) -> Wakeup {
        Wakeup {
            task: task.clone(),
            epoch: task.core().epoch(),
        }
    }

    pub(crate) fn is_for(&self, task: &Rc<dyn Task>) -> bool {
        Rc::ptr_eq(&self.task, task)
    }

    /// Queues the fiber if it is still in the wait this wake-up belongs to.
    /// Idempotent. Must be called on the fiber's thread (the type is `!Send`).
    pub fn wake(&self) {
        FiberCore::wake(&self.task, self.epoch);
    }

    /// The id of the fiber this wakes.
    pub fn fiber_id(&self) -> FiberId {
        self.task.core().id
    }

    /// A [`Waker`] that may be sent to, and woken from, any thread. Waking
    /// it sends a message to the fiber's scheduler and unparks its event
    /// loop; the scheduler then wakes the fiber as [`wake`](Wakeup::wake)
    /// would. A waker outliving its scheduler does nothing.
    pub fn to_waker(&self) -> Waker {
        let core = self.task.core();
        let remote = core
            .sched
            .upgrade()
            .map_or_else(ArcWeak::new, |s| Arc::downgrade(s.remote()));
        Waker::from(Arc::new(RemoteWakeup {
            remote,
            key: core.slab_key.get(),
            id: core.id,
            epoch: self.epoch,
        }))
    }
}

impl fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wakeup")
            .field("fiber", &self.fiber_id())
            .field("epoch", &self.epoch)
            .finish()
    }
}

struct RemoteWakeup {
    remote: ArcWeak<Remote>,
    key: usize,
    id: FiberId,
    epoch: u64,
}

impl Wake for RemoteWakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(remote) = self.remote.upgrade() {
            remote.send(Message::Wake {
                key: self.key,
                id: self.id,
                epoch: self.epoch,
            });
        }
    }
}

/// Wake-ups need a fiber to wait on one, which the public API does not offer
/// yet (no `Event`/`select`): these tests park fibers with the crate's
/// internals.
#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::event_loop::{EventLoop, Unpark};
    use crate::scheduler::{current_task, Config, Iteration, Scheduler};
    use crate::{task, Builder};

    /// Parks the running fiber until a wake-up of its current wait, after
    /// handing that wait's `Wakeup` to `register`.
    fn wait(register: impl FnOnce(Wakeup)) {
        let me = current_task().expect("in a fiber");
        register(Wakeup::for_task(&me));
        task::park(&me);
    }

    /// Aborts the test binary if `f` takes longer than `limit`: a lost
    /// wake-up shows as a hang, which must not stall the test suite.
    fn with_watchdog<R>(limit: Duration, f: impl FnOnce() -> R) -> R {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !d.load(Ordering::Acquire) {
                if start.elapsed() > limit {
                    eprintln!("a wake-up was lost: the test hung for {limit:?}");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = f();
        done.store(true, Ordering::Release);
        r
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn wakers_woken_from_another_thread_are_never_lost() {
        const ROUNDS: usize = 10_000;
        let (tx, rx) = mpsc::channel::<Waker>();
        let helper = std::thread::spawn(move || {
            let mut n = 0;
            for waker in rx {
                if n % 3 == 0 {
                    // Sometimes late, so the scheduler thread really parks.
                    std::thread::yield_now();
                }
                waker.wake();
                n += 1;
            }
            n
        });
        let rounds = with_watchdog(Duration::from_secs(60), move || {
            crate::block_on(move || {
                for _ in 0..ROUNDS {
                    wait(|w| tx.send(w.to_waker()).unwrap());
                }
                Ok(ROUNDS)
            })
        });
        assert_eq!(rounds.unwrap(), ROUNDS);
        assert_eq!(helper.join().unwrap(), ROUNDS);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn many_fibers_woken_from_other_threads() {
        const FIBERS: usize = 50;
        const ROUNDS: usize = 100;
        let (tx, rx) = mpsc::channel::<Waker>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let helpers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || loop {
                    let next = rx.lock().unwrap().recv();
                    match next {
                        // Duplicates of one wake-up wake once.
                        Ok(waker) => {
                            waker.wake_by_ref();
                            waker.wake();
                        }
                        Err(_) => return,
                    }
                })
            })
            .collect();
        let total = with_watchdog(Duration::from_secs(60), move || {
            crate::block_on(move || {
                let fibers: Vec<_> = (0..FIBERS)
                    .map(|_| {
                        let tx = tx.clone();
                        crate::spawn(move || {
                            for _ in 0..ROUNDS {
                                wait(|w| tx.send(w.to_waker()).unwrap());
                            }
                            Ok(ROUNDS)
                        })
                    })
                    .collect();
                drop(tx);
                fibers
                    .into_iter()
                    .map(|f| f.join())
                    .sum::<crate::Result<usize>>()
            })
        });
        assert_eq!(total.unwrap(), FIBERS * ROUNDS);
        for h in helpers {
            h.join().unwrap();
        }
    }

    /// A clock that never moves and an unpark that does nothing: the test
    /// drives the scheduler by hand.
    struct Manual;

    struct NoUnpark;

    impl Unpark for NoUnpark {
        fn unpark(&self) {}
    }

    impl EventLoop for Manual {
        fn now(&self) -> Instant {
            thread_local!(static T0: Instant = Instant::now());
            T0.with(|t| *t)
        }

        fn unparker(&self) -> Arc<dyn Unpark> {
            Arc::new(NoUnpark)
        }
    }

    fn run_until_idle(sched: &Scheduler) {
        while sched.run_iteration() == Iteration::Busy {}
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_stale_wake_up_does_not_wake_a_later_wait() {
        let sched = Scheduler::new(Manual, Config::new());
        let wakers: Rc<RefCell<Vec<Waker>>> = Rc::default();
        let locals: Rc<RefCell<Vec<Wakeup>>> = Rc::default();
        let resumed = Rc::new(Cell::new(0));
        let (w, l, r) = (wakers.clone(), locals.clone(), resumed.clone());
        let fiber = Builder::new()
            .spawn_on(&sched, move || {
                for _ in 0..3 {
                    wait(|wakeup| {
                        w.borrow_mut().push(wakeup.to_waker());
                        l.borrow_mut().push(wakeup);
                    });
                    r.set(r.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 0);
        // Wait 1, woken from "another thread" (through the inbox).
        wakers.borrow()[0].wake_by_ref();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 1);
        // Wait 2 is not woken by wait 1's waker, nor its local wake-up.
        wakers.borrow()[0].wake_by_ref();
        locals.borrow()[0].wake();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 1, "a stale wake-up woke a later wait");
        // Its own local wake-up does.
        locals.borrow()[1].wake();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 2);
        // Wait 3: woken twice, resumes once.
        wakers.borrow()[2].wake_by_ref();
        wakers.borrow()[2].wake_by_ref();
        run_until_idle(&sched);
        assert_eq!(resumed.get(), 3);
        assert!(fiber.is_done());
        fiber.join().unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_wake_up_while_running_is_remembered() {
        let sched = Scheduler::new(Manual, Config::new());
        let f = Builder::new()
            .spawn_on(&sched, || {
                // Woken before it suspends: the park returns at once.
                wait(|w| w.wake());
                Ok(())
            })
            .unwrap();
        assert_eq!(sched.run_iteration(), Iteration::Idle { deadline: None });
        assert!(f.is_done());
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn wakers_of_finished_fibers_do_nothing() {
        let sched = Scheduler::new(Manual, Config::new());
        let old: Rc<RefCell<Vec<(Wakeup, Waker)>>> = Rc::default();
        let o = old.clone();
        let first = Builder::new()
            .spawn_on(&sched, move || {
                let me = current_task().unwrap();
                let w = Wakeup::for_task(&me);
                o.borrow_mut().push((w.clone(), w.to_waker()));
                Ok(())
            })
            .unwrap();
        run_until_idle(&sched);
        assert!(first.is_done());
        // A new fiber takes the finished one's slot in the scheduler.
        let resumed = Rc::new(Cell::new(false));
        let r = resumed.clone();
        let second = Builder::new()
            .spawn_on(&sched, move || {
                wait(|_| ());
                r.set(true);
                Ok(())
            })
            .unwrap();
        run_until_idle(&sched);
        let (wakeup, waker) = old.borrow_mut().pop().unwrap();
        waker.wake_by_ref();
        wakeup.wake();
        run_until_idle(&sched);
        assert!(!resumed.get(), "woken by another fiber's waker");
        assert_eq!(wakeup.fiber_id(), first.id());
        // Teardown unwinds the waiting fiber; the stale waker stays inert,
        // also once the scheduler is gone.
        drop(sched);
        assert!(second.is_done());
        waker.wake();
    }
}
