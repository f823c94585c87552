//! `fuseau::sync`: FIFO service under contention, the three cancellation
//! cases of every call that waits (before the call, while waiting, after
//! the resource was handed over), resources handed to an event that is
//! dropped unpolled, guards released on drop and on panic, use outside a
//! fiber, and a proptest model of `Semaphore`.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{ms, Log, Sim, HOUR};
use fuseau::sync::{Barrier, Mutex, Notify, OnceCell, RwLock, Semaphore, TryAcquireError};
use fuseau::{AnyFiber, CancelHandle, Chan, Error, ErrorKind, Event, Wakeup};

fn cancel_self() {
    AnyFiber::current().cancel();
}

fn kind<T>(r: &fuseau::Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(Error::kind)
}

/// Drives an event by hand: registers it, and once woken (something was
/// handed to it), drops it without polling it: what it was handed must go
/// back, not be lost.
struct DropWhenWoken<E> {
    inner: Option<E>,
    registered: bool,
}

fn drop_when_woken<E: Event>(event: E) -> DropWhenWoken<E> {
    DropWhenWoken {
        inner: Some(event),
        registered: false,
    }
}

impl<E: Event> Event for DropWhenWoken<E> {
    type Output = &'static str;

    fn poll(&mut self) -> Option<fuseau::Result<&'static str>> {
        if self.registered {
            self.inner = None;
            return Some(Ok("dropped unpolled"));
        }
        let ready = self.inner.as_mut().expect("not dropped yet").poll()?;
        Some(ready.map(|_| "ready at once"))
    }

    fn wait(&mut self, wakeup: Wakeup) -> CancelHandle {
        self.registered = true;
        self.inner.as_mut().expect("not dropped yet").wait(wakeup)
    }
}

// ================================================================ Mutex

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_waiters_are_served_in_fifo_order_without_barging() {
    let sim = Sim::new();
    let log = Log::new();
    let mutex = Rc::new(Mutex::new(Vec::new()));
    let guard_holder = {
        let (m, l) = (mutex.clone(), log.clone());
        sim.spawn(move || {
            let mut g = m.lock()?;
            g.push(99);
            l.push("holder locked");
            fuseau::sleep(ms(5))?;
            l.push("holder unlocks");
            Ok(())
        })
    };
    sim.run_until_idle();
    let fibers: Vec<_> = (0..5)
        .map(|i| {
            let (m, l) = (mutex.clone(), log.clone());
            sim.spawn(move || {
                let mut g = m.lock()?;
                l.push(format!("f{i} locked"));
                g.push(i);
                fuseau::yield_now()?; // hold it across a suspension
                Ok(())
            })
        })
        .collect();
    sim.run_until_idle();
    // Everyone waits; a try_lock cannot barge in ahead of them.
    assert!(mutex.try_lock().is_err());
    sim.run_until(|| fibers.iter().all(|f| f.is_done()));
    assert!(guard_holder.is_done());
    assert_eq!(
        log.take(),
        [
            "holder locked",
            "holder unlocks",
            "f0 locked",
            "f1 locked",
            "f2 locked",
            "f3 locked",
            "f4 locked"
        ]
    );
    assert_eq!(*mutex.try_lock().unwrap(), [99, 0, 1, 2, 3, 4]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_cancelled_before_the_call_takes_nothing() {
    let sim = Sim::new();
    let mutex = Rc::new(Mutex::new(0));
    let m = mutex.clone();
    sim.block_on(move || {
        cancel_self();
        assert_eq!(kind(&m.lock()), Some(ErrorKind::Cancelled));
        // Not a cancellation point: still works, and the lock is free.
        *m.try_lock()? += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(*mutex.try_lock().unwrap(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_cancelled_while_waiting_leaves_the_queue_and_the_next_is_served() {
    let sim = Sim::new();
    let log = Log::new();
    let mutex = Rc::new(Mutex::new(()));
    let held = mutex.try_lock().unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let (m, l) = (mutex.clone(), log.clone());
            sim.spawn(move || {
                let g = m.lock();
                l.push(format!("w{i}: {:?}", kind(&g)));
                g.map(drop)
            })
        })
        .collect();
    sim.run_until_idle();
    waiters[0].cancel();
    sim.run_until_idle();
    assert_eq!(log.take(), ["w0: Some(Cancelled)"]);
    drop(held);
    sim.run_until_idle();
    assert_eq!(log.take(), ["w1: None", "w2: None"]);
    assert!(mutex.try_lock().is_ok(), "nothing lost: the lock is free");
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_handed_over_then_cancelled_returns_the_guard_and_passes_it_on() {
    for cancel_first in [false, true] {
        let sim = Sim::new();
        let log = Log::new();
        let mutex = Rc::new(Mutex::new(0));
        let held = mutex.try_lock().unwrap();
        let first = {
            let (m, l) = (mutex.clone(), log.clone());
            sim.spawn(move || {
                let g = m.lock();
                l.push(format!("first: {:?}", kind(&g)));
                let next = fuseau::yield_now();
                l.push(format!("first next: {:?}", kind(&next)));
                *g? += 1;
                Ok(())
            })
        };
        let second = {
            let (m, l) = (mutex.clone(), log.clone());
            sim.spawn(move || {
                let mut g = m.lock()?;
                *g += 10;
                l.push(format!("second: {}", *g));
                Ok(())
            })
        };
        sim.run_until_idle();
        if cancel_first {
            first.cancel(); // queued to run, not run yet...
            drop(held); // ... so the lock is still handed to it
        } else {
            drop(held); // handed to `first`...
            first.cancel(); // ... before it ran
        }
        sim.run_until_idle();
        assert_eq!(
            log.take(),
            ["first: None", "first next: Some(Cancelled)", "second: 11"]
        );
        assert!(first.is_done() && second.is_done());
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_guard_is_released_when_a_panic_unwinds() {
    let sim = Sim::new();
    let mutex = Rc::new(Mutex::new(0));
    let m = mutex.clone();
    let panicker = sim.spawn(move || -> fuseau::Result<()> {
        let mut g = m.lock()?;
        *g = 1;
        fuseau::yield_now()?;
        panic!("while holding the lock");
    });
    let m = mutex.clone();
    let waiter = sim.spawn(move || Ok(*m.lock()?));
    sim.run_until_idle();
    assert!(panicker.join().unwrap_err().is_panic());
    assert_eq!(waiter.join().unwrap(), 1, "no poisoning");
    assert!(mutex.try_lock().is_ok());
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_event_in_select_and_dropped_unpolled() {
    let sim = Sim::new();
    let mutex = Rc::new(Mutex::new(0));
    let m = mutex.clone();
    let result = sim.block_on(move || {
        let held = m.lock()?;
        // Loses against a timeout: no trace left in the queue.
        let r = fuseau::select! {
            ev(m.ev_lock()) -> _g => "locked",
            ev(fuseau::ev_timeout(ms(1))) -> _t => "timed out",
        };
        assert_eq!(r, "timed out");
        // Handed the lock while registered, then dropped unpolled: the
        // lock goes on to the next waiter.
        let m3 = Rc::clone(&m);
        let dropper = fuseau::spawn(move || fuseau::await_event(drop_when_woken(m3.ev_lock())));
        let m4 = Rc::clone(&m);
        let next = fuseau::spawn(move || Ok(*m4.lock()? + 1));
        fuseau::yield_now()?; // both wait now, `dropper` first
        drop(held);
        assert_eq!(dropper.join()?, "dropped unpolled");
        assert_eq!(next.join()?, 1, "the lock went on to the next waiter");
        Ok(m.try_lock().is_ok())
    });
    assert!(result.unwrap());
}

#[test]
fn mutex_outside_a_fiber() {
    // Outside a fiber, a free mutex is locked, and a held one gives
    // NotInFiber (it would have to wait).
    let mutex = Mutex::new(1);
    let held = mutex.try_lock().unwrap();
    assert_eq!(kind(&mutex.lock()), Some(ErrorKind::NotInFiber));
    drop(held);
    assert_eq!(*mutex.lock().unwrap(), 1);
    let mut mutex = mutex;
    *mutex.get_mut() = 2;
    assert_eq!(format!("{mutex:?}"), "Mutex { data: 2, .. }");
    let g = mutex.try_lock().unwrap();
    assert_eq!(format!("{mutex:?}"), "Mutex { data: <locked>, .. }");
    drop(g);
    assert_eq!(mutex.into_inner(), 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn teardown_unwinds_fibers_waiting_for_a_mutex() {
    let mutex = Rc::new(Mutex::new(()));
    let held = mutex.try_lock().unwrap();
    {
        let sim = Sim::new();
        for _ in 0..3 {
            let m = mutex.clone();
            sim.spawn(move || m.lock().map(drop));
        }
        sim.run_until_idle();
    } // the scheduler is dropped: its waiters are cancelled and unwound
    drop(held);
    assert!(mutex.try_lock().is_ok());
    assert_eq!(Rc::strong_count(&mutex), 1, "the fibers' handles are gone");
}

// ================================================================ RwLock

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_readers_share_and_a_waiting_writer_holds_back_later_readers() {
    let sim = Sim::new();
    let log = Log::new();
    let lock = Rc::new(RwLock::new(0));
    let r0 = lock.try_read().unwrap();
    let r1 = lock.try_read().unwrap(); // readers share
    let writer = {
        let (k, l) = (lock.clone(), log.clone());
        sim.spawn(move || {
            *k.write()? += 1;
            l.push("writer");
            Ok(())
        })
    };
    sim.run_until_idle();
    // A writer waits: a new reader may not overtake it (no starvation).
    assert!(lock.try_read().is_err());
    let late_reader = {
        let (k, l) = (lock.clone(), log.clone());
        sim.spawn(move || {
            let v = *k.read()?;
            l.push(format!("late reader sees {v}"));
            Ok(())
        })
    };
    sim.run_until_idle();
    drop(r0);
    sim.run_until_idle();
    assert!(log.take().is_empty(), "one reader still holds the lock");
    drop(r1);
    sim.run_until_idle();
    assert_eq!(log.take(), ["writer", "late reader sees 1"]);
    assert!(writer.is_done() && late_reader.is_done());
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_a_stream_of_readers_cannot_starve_a_writer() {
    let sim = Sim::new();
    let log = Log::new();
    let lock = Rc::new(RwLock::new(()));
    // Readers keep coming, each holding the lock for 2 ms, overlapping.
    for i in 0..10u64 {
        let (k, l) = (lock.clone(), log.clone());
        sim.spawn(move || {
            fuseau::sleep(ms(i))?;
            let _r = k.read()?;
            l.push(format!("r{i}"));
            fuseau::sleep(ms(2))
        });
    }
    let (k, l) = (lock.clone(), log.clone());
    sim.spawn(move || {
        fuseau::sleep(std::time::Duration::from_micros(3500))?;
        let _w = k.write()?;
        l.push("w");
        fuseau::sleep(ms(2))
    });
    sim.run_until(|| log.snapshot().len() == 11);
    let order = log.take();
    let w = order.iter().position(|e| e == "w").unwrap();
    // The writer came at 3.5 ms, while readers held the lock: it goes
    // after the readers of 0..=3 ms, before every later one.
    assert_eq!(order[..w], ["r0", "r1", "r2", "r3"]);
    assert_eq!(w, 4);
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_three_cancellation_cases_for_read_and_write() {
    for write in [false, true] {
        // Before the call.
        let sim = Sim::new();
        let lock = Rc::new(RwLock::new(0));
        let k = lock.clone();
        sim.block_on(move || {
            cancel_self();
            if write {
                assert_eq!(kind(&k.write()), Some(ErrorKind::Cancelled));
            } else {
                assert_eq!(kind(&k.read()), Some(ErrorKind::Cancelled));
            }
            Ok(())
        })
        .unwrap();
        assert!(lock.try_write().is_ok());

        // While waiting: it leaves the queue; a reader behind it is served.
        let sim = Sim::new();
        let log = Log::new();
        let lock = Rc::new(RwLock::new(0));
        let w = lock.try_write().unwrap();
        let waiter = {
            let (k, l) = (lock.clone(), log.clone());
            sim.spawn(move || {
                let r = if write {
                    k.write().map(drop)
                } else {
                    k.read().map(drop)
                };
                l.push(format!("waiter: {:?}", kind(&r)));
                r
            })
        };
        let reader = {
            let (k, l) = (lock.clone(), log.clone());
            sim.spawn(move || {
                let _r = k.read()?;
                l.push("reader");
                Ok(())
            })
        };
        sim.run_until_idle();
        waiter.cancel();
        sim.run_until_idle();
        drop(w);
        sim.run_until_idle();
        assert_eq!(log.take(), ["waiter: Some(Cancelled)", "reader"]);
        assert!(reader.is_done());
        assert!(lock.try_write().is_ok());

        // After success (handed over, then cancelled before it ran).
        let sim = Sim::new();
        let lock = Rc::new(RwLock::new(0));
        let w = lock.try_write().unwrap();
        let k = lock.clone();
        let waiter = sim.spawn(move || {
            let got = if write {
                k.write().map(drop)
            } else {
                k.read().map(drop)
            };
            Ok((kind(&got), kind(&fuseau::yield_now())))
        });
        sim.run_until_idle();
        drop(w);
        waiter.cancel();
        sim.run_until_idle();
        assert_eq!(waiter.join().unwrap(), (None, Some(ErrorKind::Cancelled)));
        assert!(lock.try_write().is_ok(), "released by the waiter");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_guards_are_released_when_a_panic_unwinds() {
    let sim = Sim::new();
    let lock = Rc::new(RwLock::new(0));
    for write in [false, true] {
        let k = lock.clone();
        let f = sim.spawn(move || -> fuseau::Result<()> {
            if write {
                let _g = k.write()?;
                panic!("writer panics");
            }
            let _g = k.read()?;
            panic!("reader panics");
        });
        sim.run_until_idle();
        assert!(f.join().unwrap_err().is_panic());
        assert!(lock.try_write().is_ok());
    }
}

// ============================================================= Semaphore

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_serves_in_fifo_order_and_a_big_head_blocks_smaller_ones() {
    let sim = Sim::new();
    let log = Log::new();
    let sem = Rc::new(Semaphore::new(0));
    let asks = [2usize, 3, 1, 1];
    let fibers: Vec<_> = asks
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let (s, l) = (sem.clone(), log.clone());
            sim.spawn(move || {
                let p = s.acquire_many(n)?;
                l.push(format!("f{i} got {n}"));
                p.forget();
                Ok(())
            })
        })
        .collect();
    sim.run_until_idle();
    sem.add_permits(1);
    sim.run_until_idle();
    assert!(log.take().is_empty(), "the head wants 2");
    sem.add_permits(3); // 4: f0 takes 2; f1 wants 3 and blocks f2, f3
    sim.run_until_idle();
    assert_eq!(log.take(), ["f0 got 2"]);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(
        sem.try_acquire().unwrap_err(),
        TryAcquireError::NoPermits,
        "no barging past the waiters"
    );
    sem.add_permits(3); // 5: f1 takes 3, f2 1, f3 1
    sim.run_until_idle();
    assert_eq!(log.take(), ["f1 got 3", "f2 got 1", "f3 got 1"]);
    assert_eq!(sem.available_permits(), 0);
    assert!(fibers.iter().all(|f| f.is_done()));
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_fifo_under_contention_ordered_log() {
    let sim = Sim::new();
    let log = Log::new();
    let sem = Rc::new(Semaphore::new(2));
    for i in 0..6u64 {
        let (s, l) = (sem.clone(), log.clone());
        sim.spawn(move || {
            let _p = s.acquire()?;
            l.push(format!("f{i} in"));
            fuseau::sleep(ms(10 - i))?; // later fibers hold it shorter
            l.push(format!("f{i} out"));
            Ok(())
        });
    }
    sim.run_until(|| log.snapshot().len() == 12);
    let order: Vec<_> = log
        .take()
        .into_iter()
        .filter(|e| e.ends_with("in"))
        .collect();
    assert_eq!(
        order,
        ["f0 in", "f1 in", "f2 in", "f3 in", "f4 in", "f5 in"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_cancelled_head_lets_the_next_through() {
    let sim = Sim::new();
    let log = Log::new();
    let sem = Rc::new(Semaphore::new(1));
    let big = {
        let s = sem.clone();
        sim.spawn(move || s.acquire_many(3).map(drop))
    };
    let small = {
        let (s, l) = (sem.clone(), log.clone());
        sim.spawn(move || {
            let _p = s.acquire()?;
            l.push("small");
            Ok(())
        })
    };
    sim.run_until_idle();
    assert!(log.take().is_empty());
    big.cancel();
    sim.run_until_idle();
    assert_eq!(kind(&big.join()), Some(ErrorKind::Cancelled));
    assert_eq!(log.take(), ["small"]);
    assert!(small.is_done());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_three_cancellation_cases() {
    // Before the call.
    let sim = Sim::new();
    let sem = Rc::new(Semaphore::new(1));
    let s = sem.clone();
    sim.block_on(move || {
        cancel_self();
        assert_eq!(kind(&s.acquire()), Some(ErrorKind::Cancelled));
        Ok(())
    })
    .unwrap();
    assert_eq!(sem.available_permits(), 1);

    // While waiting.
    let sim = Sim::new();
    let sem = Rc::new(Semaphore::new(0));
    let s = sem.clone();
    let waiter = sim.spawn(move || s.acquire().map(drop));
    sim.run_until_idle();
    waiter.cancel();
    sim.run_until_idle();
    assert_eq!(kind(&waiter.join()), Some(ErrorKind::Cancelled));
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 1, "nothing taken by the cancelled");

    // After success: handed over, then cancelled before it ran.
    for cancel_first in [false, true] {
        let sim = Sim::new();
        let sem = Rc::new(Semaphore::new(0));
        let s = sem.clone();
        let waiter = sim.spawn(move || {
            let p = s.acquire();
            Ok((p.map(|p| p.num_permits())?, kind(&fuseau::yield_now())))
        });
        sim.run_until_idle();
        if cancel_first {
            waiter.cancel();
            sem.add_permits(1);
        } else {
            sem.add_permits(1);
            waiter.cancel();
        }
        assert_eq!(sem.available_permits(), 0, "handed to the waiter");
        sim.run_until_idle();
        assert_eq!(waiter.join().unwrap(), (1, Some(ErrorKind::Cancelled)));
        assert_eq!(sem.available_permits(), 1, "given back on drop");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_permits_handed_to_a_dropped_event_go_back() {
    let sim = Sim::new();
    let log = Log::new();
    let sem = Rc::new(Semaphore::new(0));
    let s = sem.clone();
    let dropper = sim.spawn(move || fuseau::await_event(drop_when_woken(s.ev_acquire_many(2))));
    let (s, l) = (sem.clone(), log.clone());
    let next = sim.spawn(move || {
        let p = s.acquire_many(2)?;
        l.push("next got 2");
        p.forget();
        Ok(())
    });
    sim.run_until_idle();
    sem.add_permits(2); // to `dropper`, which drops them unpolled
    sim.run_until_idle();
    assert_eq!(dropper.join().unwrap(), "dropped unpolled");
    assert_eq!(log.take(), ["next got 2"]);
    assert!(next.is_done());
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_close_fails_waiters_and_later_acquisitions() {
    let sim = Sim::new();
    let sem = Rc::new(Semaphore::new(1));
    let held = sem.try_acquire().unwrap();
    let s = sem.clone();
    let waiter = sim.spawn(move || s.acquire().map(drop));
    sim.run_until_idle();
    sem.close();
    sem.close(); // idempotent
    sim.run_until_idle();
    assert_eq!(kind(&waiter.join()), Some(ErrorKind::Closed));
    assert!(sem.is_closed());
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    drop(held); // still given back
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(kind(&sem.acquire()), Some(ErrorKind::Closed));
    let e: Error = TryAcquireError::Closed.into();
    assert!(e.is_closed());
}

#[test]
fn semaphore_misuse_and_outside_a_fiber() {
    let sem = Semaphore::new(1);
    assert_eq!(
        sem.acquire().unwrap().num_permits(),
        1,
        "ready: no fiber needed"
    );
    let held = sem.acquire().unwrap();
    assert_eq!(kind(&sem.acquire()), Some(ErrorKind::NotInFiber));
    drop(held);
    let e = sem.acquire_many(Semaphore::MAX_PERMITS + 1).unwrap_err();
    assert!(e.message().contains("MAX_PERMITS"), "{e}");
    assert_eq!(sem.acquire_many(0).unwrap().num_permits(), 0);
    assert_eq!(
        format!("{sem:?}"),
        "Semaphore { permits: 1, closed: false, waiters: 0 }"
    );
    let overflow = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sem.add_permits(Semaphore::MAX_PERMITS)
    }));
    assert!(overflow.is_err(), "more than MAX_PERMITS panics");
    let too_many = std::panic::catch_unwind(|| Semaphore::new(Semaphore::MAX_PERMITS + 1));
    assert!(too_many.is_err());
}

// ================================================================ Notify

#[test]
#[cfg_attr(miri, ignore)]
fn notify_one_stores_one_permit_and_serves_waiters_in_order() {
    let sim = Sim::new();
    let log = Log::new();
    let notify = Rc::new(Notify::new());
    notify.notify_one();
    notify.notify_one(); // still one permit
    let n = notify.clone();
    sim.block_on(move || {
        n.notified()?;
        Ok(())
    })
    .unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let (n, l) = (notify.clone(), log.clone());
            sim.spawn(move || {
                n.notified()?;
                l.push(format!("w{i}"));
                Ok(())
            })
        })
        .collect();
    sim.run_until_idle();
    assert!(log.take().is_empty(), "the permit was consumed");
    notify.notify_one();
    sim.run_until_idle();
    assert_eq!(log.take(), ["w0"]);
    notify.notify_one();
    notify.notify_one();
    sim.run_until_idle();
    assert_eq!(log.take(), ["w1", "w2"]);
    assert!(waiters.iter().all(|w| w.is_done()));
    assert!(format!("{notify:?}").contains("permit: false"));
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_all_wakes_those_waiting_now_and_stores_nothing() {
    let sim = Sim::new();
    let log = Log::new();
    let notify = Rc::new(Notify::new());
    for i in 0..3 {
        let (n, l) = (notify.clone(), log.clone());
        sim.spawn(move || {
            n.notified()?;
            l.push(format!("w{i}"));
            Ok(())
        });
    }
    sim.run_until_idle();
    notify.notify_all();
    sim.run_until_idle();
    assert_eq!(log.take(), ["w0", "w1", "w2"]);
    let n = notify.clone();
    let late = sim.spawn(move || n.notified());
    sim.run_until_idle();
    assert!(!late.is_done(), "notify_all stored no permit");
    late.cancel();
    sim.run_until_idle();
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_three_cancellation_cases() {
    // Before the call: the stored permit stays.
    let sim = Sim::new();
    let notify = Rc::new(Notify::new());
    notify.notify_one();
    let n = notify.clone();
    sim.block_on(move || {
        cancel_self();
        assert_eq!(kind(&n.notified()), Some(ErrorKind::Cancelled));
        Ok(())
    })
    .unwrap();
    assert!(format!("{notify:?}").contains("permit: true"));

    // While waiting: a later notify_one goes to the next waiter.
    let sim = Sim::new();
    let log = Log::new();
    let notify = Rc::new(Notify::new());
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let (n, l) = (notify.clone(), log.clone());
            sim.spawn(move || {
                let r = n.notified();
                l.push(format!("w{i}: {:?}", kind(&r)));
                r
            })
        })
        .collect();
    sim.run_until_idle();
    waiters[0].cancel();
    sim.run_until_idle();
    notify.notify_one();
    sim.run_until_idle();
    assert_eq!(log.take(), ["w0: Some(Cancelled)", "w1: None"]);
    assert!(format!("{notify:?}").contains("permit: false"));

    // After success.
    for cancel_first in [false, true] {
        let sim = Sim::new();
        let notify = Rc::new(Notify::new());
        let n = notify.clone();
        let waiter = sim.spawn(move || {
            let r = n.notified();
            Ok((kind(&r), kind(&fuseau::yield_now())))
        });
        sim.run_until_idle();
        if cancel_first {
            waiter.cancel();
            notify.notify_one();
        } else {
            notify.notify_one();
            waiter.cancel();
        }
        sim.run_until_idle();
        assert_eq!(waiter.join().unwrap(), (None, Some(ErrorKind::Cancelled)));
        assert!(format!("{notify:?}").contains("permit: false"), "consumed");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_one_handed_to_a_dropped_event_passes_on() {
    let sim = Sim::new();
    let log = Log::new();
    let notify = Rc::new(Notify::new());
    let n = notify.clone();
    let dropper = sim.spawn(move || fuseau::await_event(drop_when_woken(n.ev_notified())));
    sim.run_until_idle();
    notify.notify_one();
    sim.run_until_idle();
    assert_eq!(dropper.join().unwrap(), "dropped unpolled");
    // Nobody else waited: the notification became the stored permit.
    assert!(format!("{notify:?}").contains("permit: true"));
    let (n, l) = (notify.clone(), log.clone());
    sim.block_on(move || {
        n.notified()?;
        l.push("consumed");
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["consumed"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_event_in_select() {
    let sim = Sim::new();
    let notify = Rc::new(Notify::new());
    let n = notify.clone();
    let f = sim.spawn(move || {
        let r = fuseau::select! {
            ev(n.ev_notified()) -> _r => "notified",
            ev(fuseau::ev_timeout(HOUR)) -> _t => "timeout",
        };
        Ok(r)
    });
    sim.run_until_idle();
    notify.notify_one();
    sim.run_until_idle();
    assert_eq!(f.join().unwrap(), "notified");
    assert!(format!("{notify:?}").contains("waiters: 0"));
}

// ================================================================ Barrier

#[test]
#[cfg_attr(miri, ignore)]
fn barrier_has_one_leader_per_generation_and_is_reusable() {
    let sim = Sim::new();
    let barrier = Rc::new(Barrier::new(3));
    let leaders = Rc::new(Cell::new(0));
    let fibers: Vec<_> = (0..3)
        .map(|_| {
            let (b, l) = (barrier.clone(), leaders.clone());
            sim.spawn(move || {
                for _ in 0..4 {
                    if b.wait()? {
                        l.set(l.get() + 1);
                    }
                }
                Ok(())
            })
        })
        .collect();
    sim.run_until_idle();
    for f in fibers {
        f.join().unwrap();
    }
    assert_eq!(leaders.get(), 4, "one leader in each of 4 generations");
    assert_eq!(barrier.generation(), 4);
    assert_eq!(barrier.waiting(), 0);
    let one = Barrier::new(0);
    assert!(one.wait().unwrap(), "n = 0 acts as 1: no fiber needed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn barrier_three_cancellation_cases() {
    // Before the call: no arrival.
    let sim = Sim::new();
    let barrier = Rc::new(Barrier::new(2));
    let b = barrier.clone();
    sim.block_on(move || {
        cancel_self();
        assert_eq!(kind(&b.wait()), Some(ErrorKind::Cancelled));
        Ok(())
    })
    .unwrap();
    assert_eq!(barrier.waiting(), 0);

    // While waiting: the arrival is withdrawn; the generation needs another.
    let sim = Sim::new();
    let log = Log::new();
    let barrier = Rc::new(Barrier::new(2));
    let spawn_waiter = |name: &'static str| {
        let (b, l) = (barrier.clone(), log.clone());
        sim.spawn(move || {
            let r = b.wait();
            l.push(format!("{name}: {r:?}"));
            r
        })
    };
    let first = spawn_waiter("first");
    sim.run_until_idle();
    assert_eq!(barrier.waiting(), 1);
    first.cancel();
    sim.run_until_idle();
    assert_eq!(barrier.waiting(), 0);
    let _second = spawn_waiter("second");
    sim.run_until_idle();
    assert_eq!(log.snapshot().len(), 1, "second waits for a partner");
    let _third = spawn_waiter("third");
    sim.run_until_idle();
    let entries = log.take();
    assert!(entries[0].starts_with("first: Err("), "{entries:?}");
    assert_eq!(entries[1..], ["third: Ok(true)", "second: Ok(false)"]);

    // After success: released, then cancelled before it ran.
    let sim = Sim::new();
    let barrier = Rc::new(Barrier::new(2));
    let b = barrier.clone();
    let waiter = sim.spawn(move || {
        let r = b.wait();
        Ok((r?, kind(&fuseau::yield_now())))
    });
    sim.run_until_idle();
    assert!(barrier.wait().unwrap(), "the leader need not wait");
    waiter.cancel();
    sim.run_until_idle();
    assert_eq!(waiter.join().unwrap(), (false, Some(ErrorKind::Cancelled)));
    assert_eq!(barrier.generation(), 1);
}

#[test]
fn barrier_outside_a_fiber_would_wait() {
    let barrier = Barrier::new(2);
    assert_eq!(kind(&barrier.wait()), Some(ErrorKind::NotInFiber));
    assert_eq!(barrier.waiting(), 0, "no arrival left behind");
}

// =============================================================== OnceCell

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_runs_one_initialiser_and_waiters_share_its_value() {
    let sim = Sim::new();
    let log = Log::new();
    let cell = Rc::new(OnceCell::new());
    let fibers: Vec<_> = (0..3)
        .map(|i| {
            let (c, l) = (cell.clone(), log.clone());
            sim.spawn(move || {
                let v = c.get_or_try_init(|| {
                    l.push(format!("f{i} initialises"));
                    fuseau::sleep(ms(1))?;
                    Ok(i * 10)
                })?;
                l.push(format!("f{i} sees {v}"));
                Ok(())
            })
        })
        .collect();
    sim.run_until(|| fibers.iter().all(|f| f.is_done()));
    assert_eq!(
        log.take(),
        ["f0 initialises", "f0 sees 0", "f1 sees 0", "f2 sees 0"]
    );
    assert_eq!(cell.get(), Some(&0));
    assert_eq!(cell.set(5), Err(5));
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_a_failed_cancelled_or_panicking_initialiser_lets_the_next_waiter_try() {
    for how in ["fails", "cancelled", "panics"] {
        let sim = Sim::new();
        let log = Log::new();
        let cell: Rc<OnceCell<u32>> = Rc::new(OnceCell::new());
        let first = {
            let (c, l) = (cell.clone(), log.clone());
            sim.spawn(move || {
                let r = c.get_or_try_init(|| {
                    l.push("first initialises");
                    fuseau::sleep(HOUR)?;
                    if how == "panics" {
                        panic!("initialiser panics");
                    }
                    Err(Error::from("no luck"))
                });
                l.push(format!("first: {:?}", kind(&r)));
                r.map(drop)
            })
        };
        let waiters: Vec<_> = (1..3)
            .map(|i| {
                let (c, l) = (cell.clone(), log.clone());
                sim.spawn(move || {
                    let v = c.get_or_try_init(|| {
                        l.push(format!("w{i} initialises"));
                        Ok(i)
                    })?;
                    l.push(format!("w{i} sees {v}"));
                    Ok(())
                })
            })
            .collect();
        sim.run_until_idle();
        match how {
            "cancelled" => first.cancel(),
            _ => sim.advance(HOUR),
        }
        sim.run_until(|| waiters.iter().all(|f| f.is_done()) && first.is_done());
        let expected_first = match how {
            "fails" => "first: Some(Other)",
            "cancelled" => "first: Some(Cancelled)",
            _ => "",
        };
        let mut expected = vec!["first initialises"];
        if !expected_first.is_empty() {
            expected.push(expected_first);
        }
        expected.extend(["w1 initialises", "w1 sees 1", "w2 sees 1"]);
        assert_eq!(log.take(), expected, "{how}");
        if how == "panics" {
            assert!(first.join().unwrap_err().is_panic());
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_three_cancellation_cases() {
    // Before the call: even with the value set, an error; `get` works.
    let sim = Sim::new();
    let cell = Rc::new(OnceCell::new());
    cell.set(1).unwrap();
    let c = cell.clone();
    sim.block_on(move || {
        cancel_self();
        assert_eq!(
            kind(&c.get_or_try_init(|| Ok(2))),
            Some(ErrorKind::Cancelled)
        );
        assert_eq!(c.get(), Some(&1));
        Ok(())
    })
    .unwrap();

    // While waiting for another initialiser: it leaves the queue; the
    // turn then goes to the next waiter.
    let sim = Sim::new();
    let log = Log::new();
    let cell: Rc<OnceCell<u32>> = Rc::new(OnceCell::new());
    let gate = Chan::<()>::bounded(0);
    let init = {
        let (c, g) = (cell.clone(), gate.clone());
        sim.spawn(move || {
            c.get_or_try_init(|| {
                g.recv()?;
                Err(Error::from("gave up"))
            })
            .map(drop)
        })
    };
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let (c, l) = (cell.clone(), log.clone());
            sim.spawn(move || {
                let r = c.get_or_try_init(|| {
                    l.push(format!("w{i} initialises"));
                    Ok(i)
                });
                l.push(format!("w{i}: {:?}", r.as_ref().map_err(Error::kind)));
                r.map(drop)
            })
        })
        .collect();
    sim.run_until_idle();
    waiters[0].cancel();
    sim.run_until_idle();
    gate.try_send(()).unwrap();
    sim.run_until_idle();
    assert!(init.join().is_err());
    assert_eq!(
        log.take(),
        ["w0: Err(Cancelled)", "w1 initialises", "w1: Ok(1)"]
    );

    // Cancelled while its own initialiser runs: the initialiser's error
    // passes the turn on.
    let sim = Sim::new();
    let log = Log::new();
    let cell: Rc<OnceCell<u32>> = Rc::new(OnceCell::new());
    let spawn_waiter = |i: u32| {
        let (c, l) = (cell.clone(), log.clone());
        sim.spawn(move || {
            let r = c.get_or_try_init(|| {
                l.push(format!("w{i} initialises"));
                fuseau::sleep(HOUR)?;
                Ok(i)
            });
            l.push(format!("w{i}: {:?}", r.as_ref().map_err(Error::kind)));
            r.map(drop)
        })
    };
    let w0 = spawn_waiter(0);
    let _w1 = spawn_waiter(1);
    sim.run_until_idle();
    w0.cancel();
    sim.run_until_idle();
    assert_eq!(
        log.take(),
        ["w0 initialises", "w0: Err(Cancelled)", "w1 initialises"]
    );

    // After success: the turn was handed over, then the fiber was cancelled
    // before it ran. It runs its initialiser, whose first cancellation
    // point fails, and the turn passes on. (The first initialiser runs
    // outside a fiber, so that the turn is handed over while no fiber runs.)
    let sim = Sim::new();
    let log = Log::new();
    let cell: Rc<OnceCell<u32>> = Rc::new(OnceCell::new());
    let spawn_waiter = |i: u32| {
        let (c, l) = (cell.clone(), log.clone());
        sim.spawn(move || {
            let r = c.get_or_try_init(|| {
                l.push(format!("w{i} initialises"));
                fuseau::yield_now()?;
                Ok(i)
            });
            l.push(format!("w{i}: {:?}", r.as_ref().map_err(Error::kind)));
            r.map(drop)
        })
    };
    let mut w0 = None;
    let r = cell.get_or_try_init(|| {
        w0 = Some(spawn_waiter(0));
        spawn_waiter(1);
        sim.run_until_idle(); // both wait for this initialiser
        Err(Error::from("the first initialiser fails"))
    });
    assert_eq!(r.unwrap_err().message(), "the first initialiser fails");
    // The turn is w0's now, but w0 has not run yet.
    w0.unwrap().cancel();
    sim.run_until_idle();
    assert_eq!(
        log.take(),
        [
            "w0 initialises",
            "w0: Err(Cancelled)",
            "w1 initialises",
            "w1: Ok(1)"
        ]
    );
    assert_eq!(cell.get(), Some(&1));
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_initialiser_asking_for_its_own_cell_gets_an_error() {
    let sim = Sim::new();
    let cell: Rc<OnceCell<u32>> = Rc::new(OnceCell::new());
    let c = cell.clone();
    let r = sim.block_on(move || {
        let inner = Rc::new(RefCell::new(None));
        let (c2, i2) = (c.clone(), inner.clone());
        let v = c.get_or_init(move || {
            *i2.borrow_mut() = Some(kind(&c2.get_or_init(|| 0)));
            7
        })?;
        Ok((*v, inner.take()))
    });
    assert_eq!(r.unwrap(), (7, Some(Some(ErrorKind::Other))));
}

#[test]
fn once_cell_outside_a_fiber() {
    let cell = OnceCell::new();
    assert_eq!(cell.get(), None);
    assert_eq!(*cell.get_or_init(|| 3).unwrap(), 3);
    assert!(cell.initialized());
    let mut cell = cell;
    *cell.get_mut().unwrap() += 1;
    assert_eq!(cell.into_inner(), Some(4));
}

// ========================================== proptest model of Semaphore

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        /// A new fiber acquires `n` permits (and holds them until told).
        Acquire(usize),
        /// Fiber `k` (mod the number spawned) is told to release.
        Release(usize),
        /// Fiber `k` is cancelled.
        Cancel(usize),
        TryAcquire(usize),
        AddPermits(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0usize..4).prop_map(Op::Acquire),
            2 => any::<usize>().prop_map(Op::Release),
            2 => any::<usize>().prop_map(Op::Cancel),
            1 => (0usize..3).prop_map(Op::TryAcquire),
            2 => (0usize..3).prop_map(Op::AddPermits),
        ]
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum St {
        Waiting,
        Holding,
        Done,
    }

    /// The reference: a counter and a FIFO queue.
    struct Model {
        permits: usize,
        queue: VecDeque<usize>,
        asks: Vec<usize>,
        states: Vec<St>,
    }

    impl Model {
        fn serve(&mut self) {
            while let Some(&k) = self.queue.front() {
                if self.asks[k] > self.permits {
                    break;
                }
                self.queue.pop_front();
                self.permits -= self.asks[k];
                self.states[k] = St::Holding;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        #[cfg_attr(miri, ignore)]
        fn semaphore_matches_a_fifo_counter(initial in 0usize..4, ops in proptest::collection::vec(op(), 1..40)) {
            let sim = Sim::new();
            let sem = Rc::new(Semaphore::new(initial));
            let states: Rc<RefCell<Vec<St>>> = Rc::default();
            let mut fibers = Vec::new();
            let mut gates = Vec::new();
            let mut model = Model { permits: initial, queue: VecDeque::new(), asks: Vec::new(), states: Vec::new() };
            for op in ops {
                match op {
                    Op::Acquire(n) => {
                        let k = fibers.len();
                        let gate = Chan::<()>::bounded(0);
                        let (s, st, g) = (sem.clone(), states.clone(), gate.clone());
                        st.borrow_mut().push(St::Waiting);
                        fibers.push(sim.spawn(move || {
                            let r = (|| {
                                let _p = s.acquire_many(n)?;
                                st.borrow_mut()[k] = St::Holding;
                                g.recv()
                            })();
                            st.borrow_mut()[k] = St::Done;
                            r
                        }));
                        gates.push(gate);
                        model.asks.push(n);
                        model.states.push(St::Waiting);
                        if model.queue.is_empty() && model.permits >= n {
                            model.permits -= n;
                            model.states[k] = St::Holding;
                        } else {
                            model.queue.push_back(k);
                        }
                    }
                    Op::Release(k) if !fibers.is_empty() => {
                        let k = k % fibers.len();
                        if model.states[k] == St::Holding {
                            gates[k].try_send(()).unwrap();
                            model.states[k] = St::Done;
                            model.permits += model.asks[k];
                            model.serve();
                        }
                    }
                    Op::Cancel(k) if !fibers.is_empty() => {
                        let k = k % fibers.len();
                        fibers[k].cancel();
                        match model.states[k] {
                            St::Waiting => {
                                model.queue.retain(|&q| q != k);
                                model.states[k] = St::Done;
                                model.serve();
                            }
                            St::Holding => {
                                model.states[k] = St::Done;
                                model.permits += model.asks[k];
                                model.serve();
                            }
                            St::Done => {}
                        }
                    }
                    Op::Release(_) | Op::Cancel(_) => {}
                    Op::TryAcquire(n) => {
                        let got = sem.try_acquire_many(n).map(|p| p.forget()).is_ok();
                        let expect = model.queue.is_empty() && model.permits >= n;
                        prop_assert_eq!(got, expect);
                        if expect {
                            model.permits -= n;
                        }
                    }
                    Op::AddPermits(n) => {
                        sem.add_permits(n);
                        model.permits += n;
                        model.serve();
                    }
                }
                sim.run_until_idle();
                prop_assert_eq!(sem.available_permits(), model.permits);
                prop_assert_eq!(&*states.borrow(), &model.states);
            }
        }
    }
}
