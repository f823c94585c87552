//! Wake-ups, driven by hand: fibers park with the crate's internals
//! (`Task::begin_wait`, `Task::park`) and the tests wake them through
//! `Wakeup`s and `Waker`s, on this thread and others.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::event_loop::{EventLoop, Unpark};
use crate::fiber::Builder;
use crate::scheduler::context::with_current;
use crate::scheduler::{Config, Iteration, Scheduler};
use crate::task::Wakeup;

/// Starts a new wait of the running fiber, hands its `Wakeup` to
/// `register`, and parks until it is woken.
fn wait(register: impl FnOnce(Wakeup)) {
    with_current(|me| {
        me.begin_wait();
        register(Wakeup::new(me, 0));
        me.park();
    })
    .expect("in a fiber");
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
fn a_fiber_reuses_its_waker_only_once_nobody_holds_it() {
    with_watchdog(Duration::from_secs(60), || {
        crate::block_on(|| {
            with_current(|me| {
                me.begin_wait();
                let first = Wakeup::new(me, 0).to_waker();
                let address = first.data();
                first.wake_by_ref();
                me.park();
                drop(first);
                me.begin_wait(); // a new wait: a new epoch
                let reused = Wakeup::new(me, 0).to_waker();
                assert_eq!(reused.data(), address, "an unused waker is reused");
                let fresh = Wakeup::new(me, 0).to_waker();
                assert_ne!(fresh.data(), address, "a waker someone holds is kept");
                // The reused waker carries the new wait's epoch: if it
                // kept the old one, this wake-up would be stale and park
                // would never return.
                reused.wake_by_ref();
                me.park();
            })
            .expect("in a fiber");
            Ok(())
        })
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_wait_that_completes_without_parking_leaves_no_live_wakeup() {
    // A wake-up made for a wait that ended without parking (the event
    // was ready after all) must not wake the next wait.
    let sched = Scheduler::new(Manual, Config::new());
    let stale: Rc<RefCell<Option<Wakeup>>> = Rc::default();
    let resumed = Rc::new(Cell::new(false));
    let (s, r) = (stale.clone(), resumed.clone());
    let _fiber = Builder::new()
        .spawn_on(&sched, move || {
            with_current(|me| {
                me.begin_wait();
                *s.borrow_mut() = Some(Wakeup::new(me, 0));
                // Ready at once: no park. The next wait begins.
                me.begin_wait();
                me.park();
            })
            .expect("in a fiber");
            r.set(true);
            Ok(())
        })
        .unwrap();
    run_until_idle(&sched);
    assert!(!resumed.get());
    stale.borrow().as_ref().unwrap().wake();
    run_until_idle(&sched);
    assert!(!resumed.get(), "a stale wake-up woke a later wait");
}

#[test]
#[cfg_attr(miri, ignore)]
fn wakers_of_finished_fibers_do_nothing() {
    let sched = Scheduler::new(Manual, Config::new());
    let old: Rc<RefCell<Vec<(Wakeup, Waker)>>> = Rc::default();
    let o = old.clone();
    let first = Builder::new()
        .spawn_on(&sched, move || {
            let w = with_current(|me| {
                me.begin_wait();
                Wakeup::new(me, 0)
            })
            .unwrap();
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

/// A fiber that waits for a `Waker` woken by another thread, run by hand
/// under `spin`: returns the scheduler, the fiber's resume count, and the
/// channel the waker comes out of. The fiber's first wake-up is served
/// already, so the scheduler has heard from another thread recently.
fn remote_waiter(spin: Duration) -> (Scheduler, Rc<Cell<u32>>, mpsc::Receiver<Waker>) {
    let sched = Scheduler::new(Manual, Config::new().idle_spin(spin));
    let (tx, rx) = mpsc::channel::<Waker>();
    let resumed = Rc::new(Cell::new(0));
    let r = resumed.clone();
    Builder::new()
        .spawn_on(&sched, move || {
            for _ in 0..2 {
                wait(|w| tx.send(w.to_waker()).unwrap());
                r.set(r.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    run_until_idle(&sched);
    let first = rx.recv().unwrap();
    std::thread::spawn(move || first.wake()).join().unwrap();
    run_until_idle(&sched);
    assert_eq!(resumed.get(), 1);
    (sched, resumed, rx)
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_idle_scheduler_serves_a_remote_wake_up_within_its_spin() {
    let (sched, resumed, rx) = remote_waiter(Duration::from_millis(500));
    let waker = rx.recv().unwrap();
    // A fiber of this iteration hands the waker to a thread that wakes it
    // a little later: so the wake-up comes during the iteration, most
    // likely while the scheduler spins (it comes far sooner than the spin
    // ends, whatever the load), and that iteration resumes the fiber.
    let (to_helper, from_fiber) = mpsc::channel::<Waker>();
    let helper = std::thread::spawn(move || {
        let waker = from_fiber.recv().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        waker.wake();
    });
    Builder::new()
        .spawn_on(&sched, move || {
            to_helper.send(waker).unwrap();
            Ok(())
        })
        .unwrap();
    let iteration = sched.run_iteration();
    assert_eq!(resumed.get(), 2, "resumed within the iteration that spun");
    assert_eq!(iteration, Iteration::Idle { deadline: None });
    helper.join().unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_no_idle_spin_an_idle_scheduler_returns_at_once() {
    let (sched, resumed, rx) = remote_waiter(Duration::ZERO);
    let waker = rx.recv().unwrap();
    // Nothing wakes the fiber until the iteration has returned.
    assert_eq!(sched.run_iteration(), Iteration::Idle { deadline: None });
    assert_eq!(resumed.get(), 1);
    std::thread::spawn(move || waker.wake()).join().unwrap();
    run_until_idle(&sched);
    assert_eq!(resumed.get(), 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_scheduler_that_hears_from_no_other_thread_does_not_spin() {
    // A spin that would hang the test if it happened: with no message from
    // another thread, run_iteration reports Idle at once.
    let sched = Scheduler::new(Manual, Config::new().idle_spin(Duration::from_secs(3600)));
    let wakeup = Rc::new(RefCell::new(None));
    let w = wakeup.clone();
    Builder::new()
        .spawn_on(&sched, move || {
            wait(|wake| *w.borrow_mut() = Some(wake));
            Ok(())
        })
        .unwrap();
    let start = Instant::now();
    run_until_idle(&sched);
    assert_eq!(sched.run_iteration(), Iteration::Idle { deadline: None });
    assert!(start.elapsed() < Duration::from_secs(3600));
    wakeup.borrow_mut().take().unwrap().wake();
    run_until_idle(&sched);
}
