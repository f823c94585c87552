//! `fuseau::sync`: FIFO service under contention, the three cancellation
//! cases of every call that waits (before the call, while waiting, after
//! the resource was handed over), resources handed to an event that is
//! dropped unpolled, guards released on drop and on panic, use outside a
//! fiber, and a proptest model of `Semaphore`.

mod common;

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::rc::Rc;

use common::{ms, Log, Sim, HOUR};
use fuseau::sync::{Barrier, Mutex, Notify, OnceCell, RwLock, Semaphore, TryAcquireError};
use fuseau::{AnyFiber, CancelHandle, Chan, Error, ErrorKind, Event, Fiber, Wakeup};

fn cancel_self() {
    AnyFiber::current().cancel();
}

fn kind<T>(r: &fuseau::Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(Error::kind)
}

/// Cancels `fiber` and hands it the resource (`hand_over`), in the order
/// `cancel_first` says: either way, before the fiber runs again.
fn cancel_around<T>(cancel_first: bool, fiber: &Fiber<T>, hand_over: impl FnOnce()) {
    if cancel_first {
        fiber.cancel();
        hand_over();
    } else {
        hand_over();
        fiber.cancel();
    }
}

/// Asserts that `fiber` (done) panicked.
fn assert_panicked<T: Debug>(fiber: Fiber<T>) {
    assert!(fiber.join().unwrap_err().is_panic());
}

/// A scheduler on a virtual clock, an ordered log, and the resource under
/// test, shared by the fibers it spawns.
struct Bench<R> {
    sim: Sim,
    log: Log,
    res: Rc<R>,
}

impl<R: 'static> Bench<R> {
    fn new(res: R) -> Bench<R> {
        Bench::shared(Rc::new(res))
    }

    fn shared(res: Rc<R>) -> Bench<R> {
        Bench {
            sim: Sim::new(),
            log: Log::new(),
            res,
        }
    }

    /// Spawns a fiber running `body` on the resource and the log.
    fn spawn<T: 'static>(
        &self,
        body: impl FnOnce(&R, &Log) -> fuseau::Result<T> + 'static,
    ) -> Fiber<T> {
        let (r, l) = (self.res.clone(), self.log.clone());
        self.sim.spawn(move || body(&r, &l))
    }

    /// Spawns one fiber per item, in order.
    fn spawn_each<I: 'static, T: 'static>(
        &self,
        items: impl IntoIterator<Item = I>,
        body: impl Fn(I, &R, &Log) -> fuseau::Result<T> + Clone + 'static,
    ) -> Vec<Fiber<T>> {
        items
            .into_iter()
            .map(|i| {
                let body = body.clone();
                self.spawn(move |r, l| body(i, r, l))
            })
            .collect()
    }

    /// Spawns a fiber that runs `call` and logs `"{name}: {outcome}"`, the
    /// outcome as `Ok(value)` or `Err(kind)`.
    fn spawn_logged<T: Debug + 'static>(
        &self,
        name: impl Into<String>,
        call: impl FnOnce(&R, &Log) -> fuseau::Result<T> + 'static,
    ) -> Fiber<T> {
        let name = name.into();
        self.spawn(move |r, l| {
            let got = call(r, l);
            l.push(format!("{name}: {:?}", got.as_ref().map_err(Error::kind)));
            got
        })
    }

    /// Spawns `n` logged fibers named `w0`, `w1`, ...; `call` gets the index.
    fn spawn_waiters<T: Debug + 'static>(
        &self,
        n: usize,
        call: impl Fn(usize, &R, &Log) -> fuseau::Result<T> + Clone + 'static,
    ) -> Vec<Fiber<T>> {
        (0..n)
            .map(|i| {
                let call = call.clone();
                self.spawn_logged(format!("w{i}"), move |r, l| call(i, r, l))
            })
            .collect()
    }

    fn idle(&self) {
        self.sim.run_until_idle();
    }

    fn run_until_all_done<T>(&self, fibers: &[Fiber<T>]) {
        self.sim.run_until(|| fibers.iter().all(|f| f.is_done()));
    }

    /// Runs (moving the clock) until the log holds `n` entries; takes them.
    fn run_until_logged(&self, n: usize) -> Vec<String> {
        self.sim.run_until(|| self.log.snapshot().len() == n);
        self.log.take()
    }

    /// First cancellation case: runs `body` in a fiber that is cancelled
    /// before it makes its call; `body` must succeed.
    fn run_cancelled(&self, body: impl FnOnce(&R) -> fuseau::Result<()> + 'static) {
        let r = self.res.clone();
        self.sim
            .block_on(move || {
                cancel_self();
                body(&r)
            })
            .unwrap();
    }

    /// First cancellation case, for a plain call: it fails with
    /// `Cancelled` in a fiber cancelled before the call.
    fn cancelled_before_the_call<T: 'static>(
        &self,
        call: impl FnOnce(&R) -> fuseau::Result<T> + 'static,
    ) {
        self.run_cancelled(move |r| {
            assert_eq!(kind(&call(r)), Some(ErrorKind::Cancelled));
            Ok(())
        });
    }

    /// Second cancellation case: once everyone waits, `waiter` is
    /// cancelled; then `release` frees the resource for those left.
    fn cancel_while_waiting_then<T>(&self, waiter: &Fiber<T>, release: impl FnOnce()) {
        self.idle();
        waiter.cancel();
        self.idle();
        release();
        self.idle();
    }

    /// Third cancellation case: a fiber waits in `call`; `hand_over` gives
    /// it the resource, and it is cancelled before it runs again (before or
    /// after the hand-over). The call still succeeds, the fiber's next
    /// cancellation point fails; returns what the call returned.
    fn handed_over_then_cancelled<T: 'static>(
        &self,
        cancel_first: bool,
        call: impl FnOnce(&R) -> fuseau::Result<T> + 'static,
        hand_over: impl FnOnce(),
    ) -> T {
        let waiter = self.spawn(move |r, _| {
            let got = call(r)?;
            Ok((got, kind(&fuseau::yield_now())))
        });
        self.idle();
        cancel_around(cancel_first, &waiter, hand_over);
        self.idle();
        let (got, next) = waiter.join().unwrap();
        assert_eq!(next, Some(ErrorKind::Cancelled), "the next point fails");
        got
    }

    /// `dropper` waits (with [`wait_then_drop`]), `next` waits behind it;
    /// `hand_over` hands the resource to `dropper`, which drops it
    /// unpolled: it must go on to `next`, whose result is returned.
    fn handed_to_a_dropped_event<T: 'static>(
        &self,
        dropper: impl FnOnce(&R) -> fuseau::Result<&'static str> + 'static,
        next: impl FnOnce(&R) -> fuseau::Result<T> + 'static,
        hand_over: impl FnOnce(),
    ) -> T {
        let dropper = self.spawn(move |r, _| dropper(r));
        let next = self.spawn(move |r, _| next(r));
        self.idle();
        hand_over();
        self.idle();
        assert_eq!(dropper.join().unwrap(), "dropped unpolled");
        assert!(next.is_done(), "handed on to the next waiter");
        next.join().unwrap()
    }
}

/// Drives an event by hand: registers it, and once woken (something was
/// handed to it), drops it without polling it: what it was handed must go
/// back, not be lost.
struct DropWhenWoken<E> {
    inner: Option<E>,
    registered: bool,
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

/// Waits on `event` through a [`DropWhenWoken`].
fn wait_then_drop<E: Event>(event: E) -> fuseau::Result<&'static str> {
    fuseau::await_event(DropWhenWoken {
        inner: Some(event),
        registered: false,
    })
}

// ================================================================ Mutex

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_waiters_are_served_in_fifo_order_without_barging() {
    let t = Bench::new(Mutex::new(Vec::new()));
    let guard_holder = t.spawn(|m, l| {
        let mut g = m.lock()?;
        g.push(99);
        l.push("holder locked");
        fuseau::sleep(ms(5))?;
        l.push("holder unlocks");
        Ok(())
    });
    t.idle();
    let fibers = t.spawn_each(0..5, |i, m, l| {
        let mut g = m.lock()?;
        l.push(format!("f{i} locked"));
        g.push(i);
        fuseau::yield_now()?; // hold it across a suspension
        Ok(())
    });
    t.idle();
    // Everyone waits; a try_lock cannot barge in ahead of them.
    assert!(t.res.try_lock().is_err());
    t.run_until_all_done(&fibers);
    assert!(guard_holder.is_done());
    assert_eq!(
        t.log.take(),
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
    assert_eq!(*t.res.try_lock().unwrap(), [99, 0, 1, 2, 3, 4]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_cancelled_before_the_call_takes_nothing() {
    let t = Bench::new(Mutex::new(0));
    t.run_cancelled(|m| {
        assert_eq!(kind(&m.lock()), Some(ErrorKind::Cancelled));
        // Not a cancellation point: still works, and the lock is free.
        *m.try_lock()? += 1;
        Ok(())
    });
    assert_eq!(*t.res.try_lock().unwrap(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_cancelled_while_waiting_leaves_the_queue_and_the_next_is_served() {
    let t = Bench::new(Mutex::new(()));
    let held = t.res.try_lock().unwrap();
    let waiters = t.spawn_waiters(3, |_, m, _| m.lock().map(drop));
    t.cancel_while_waiting_then(&waiters[0], || {
        assert_eq!(t.log.take(), ["w0: Err(Cancelled)"]);
        drop(held);
    });
    assert_eq!(t.log.take(), ["w1: Ok(())", "w2: Ok(())"]);
    assert!(t.res.try_lock().is_ok(), "nothing lost: the lock is free");
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_handed_over_then_cancelled_returns_the_guard_and_passes_it_on() {
    for cancel_first in [false, true] {
        let t = Bench::new(Mutex::new(0));
        let held = t.res.try_lock().unwrap();
        let first = t.spawn(|m, l| {
            let g = m.lock();
            l.push(format!("first: {:?}", kind(&g)));
            let next = fuseau::yield_now();
            l.push(format!("first next: {:?}", kind(&next)));
            *g? += 1;
            Ok(())
        });
        let second = t.spawn(|m, l| {
            let mut g = m.lock()?;
            *g += 10;
            l.push(format!("second: {}", *g));
            Ok(())
        });
        t.idle();
        // Either way, the lock is handed to `first` before it runs again.
        cancel_around(cancel_first, &first, || drop(held));
        t.idle();
        assert_eq!(
            t.log.take(),
            ["first: None", "first next: Some(Cancelled)", "second: 11"]
        );
        assert!(first.is_done() && second.is_done());
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_guard_is_released_when_a_panic_unwinds() {
    let t = Bench::new(Mutex::new(0));
    let panicker = t.spawn(|m, _| -> fuseau::Result<()> {
        let mut g = m.lock()?;
        *g = 1;
        fuseau::yield_now()?;
        panic!("while holding the lock");
    });
    let waiter = t.spawn(|m, _| Ok(*m.lock()?));
    t.idle();
    assert_panicked(panicker);
    assert_eq!(waiter.join().unwrap(), 1, "no poisoning");
    assert!(t.res.try_lock().is_ok());
}

#[test]
#[cfg_attr(miri, ignore)]
fn mutex_lock_event_in_select_and_dropped_unpolled() {
    let t = Bench::new(Mutex::new(0));
    let m = t.res.clone();
    let result = t.sim.block_on(move || {
        let _held = m.lock()?;
        // Loses against a timeout: no trace left in the queue.
        Ok(fuseau::select! {
            ev(m.ev_lock()) -> _g => "locked",
            ev(fuseau::ev_timeout(ms(1))) -> _t => "timed out",
        })
    });
    assert_eq!(result.unwrap(), "timed out");
    // Handed the lock while registered, then dropped unpolled: the lock
    // goes on to the next waiter.
    let held = t.res.try_lock().unwrap();
    let next = t.handed_to_a_dropped_event(
        |m| wait_then_drop(m.ev_lock()),
        |m| Ok(*m.lock()? + 1),
        || drop(held),
    );
    assert_eq!(next, 1, "the lock went on to the next waiter");
    assert!(t.res.try_lock().is_ok());
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
        let t = Bench::shared(mutex.clone());
        t.spawn_each(0..3, |_, m, _| m.lock().map(drop));
        t.idle();
    } // the scheduler is dropped: its waiters are cancelled and unwound
    drop(held);
    assert!(mutex.try_lock().is_ok());
    assert_eq!(Rc::strong_count(&mutex), 1, "the fibers' handles are gone");
}

// ================================================================ RwLock

/// Takes `lock` for writing or for reading, and lets it go at once.
fn take_lock(lock: &RwLock<i32>, write: bool) -> fuseau::Result<()> {
    if write {
        lock.write().map(drop)
    } else {
        lock.read().map(drop)
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_readers_share_and_a_waiting_writer_holds_back_later_readers() {
    let t = Bench::new(RwLock::new(0));
    let r0 = t.res.try_read().unwrap();
    let r1 = t.res.try_read().unwrap(); // readers share
    let writer = t.spawn(|k, l| {
        *k.write()? += 1;
        l.push("writer");
        Ok(())
    });
    t.idle();
    // A writer waits: a new reader may not overtake it (no starvation).
    assert!(t.res.try_read().is_err());
    let late_reader = t.spawn(|k, l| {
        let v = *k.read()?;
        l.push(format!("late reader sees {v}"));
        Ok(())
    });
    t.idle();
    drop(r0);
    t.idle();
    assert!(t.log.take().is_empty(), "one reader still holds the lock");
    drop(r1);
    t.idle();
    assert_eq!(t.log.take(), ["writer", "late reader sees 1"]);
    assert!(writer.is_done() && late_reader.is_done());
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_a_stream_of_readers_cannot_starve_a_writer() {
    let t = Bench::new(RwLock::new(()));
    // Readers keep coming, each holding the lock for 2 ms, overlapping.
    t.spawn_each(0..10u64, |i, k, l| {
        fuseau::sleep(ms(i))?;
        let _r = k.read()?;
        l.push(format!("r{i}"));
        fuseau::sleep(ms(2))
    });
    t.spawn(|k, l| {
        fuseau::sleep(std::time::Duration::from_micros(3500))?;
        let _w = k.write()?;
        l.push("w");
        fuseau::sleep(ms(2))
    });
    let order = t.run_until_logged(11);
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
        let t = Bench::new(RwLock::new(0));
        t.cancelled_before_the_call(move |k| take_lock(k, write));
        assert!(t.res.try_write().is_ok());

        // While waiting: it leaves the queue; a reader behind it is served.
        let t = Bench::new(RwLock::new(0));
        let w = t.res.try_write().unwrap();
        let waiter = t.spawn_logged("waiter", move |k, _| take_lock(k, write));
        let reader = t.spawn_logged("reader", |k, _| take_lock(k, false));
        t.cancel_while_waiting_then(&waiter, || drop(w));
        assert_eq!(t.log.take(), ["waiter: Err(Cancelled)", "reader: Ok(())"]);
        assert!(reader.is_done());
        assert!(t.res.try_write().is_ok());

        // After success (handed over, then cancelled before it ran).
        let t = Bench::new(RwLock::new(0));
        let w = t.res.try_write().unwrap();
        t.handed_over_then_cancelled(false, move |k| take_lock(k, write), || drop(w));
        assert!(t.res.try_write().is_ok(), "released by the waiter");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn rwlock_guards_are_released_when_a_panic_unwinds() {
    let t = Bench::new(RwLock::new(0));
    for write in [false, true] {
        let f = t.spawn(move |k, _| -> fuseau::Result<()> {
            if write {
                let _g = k.write()?;
                panic!("writer panics");
            }
            let _g = k.read()?;
            panic!("reader panics");
        });
        t.idle();
        assert_panicked(f);
        assert!(t.res.try_write().is_ok());
    }
}

// ============================================================= Semaphore

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_serves_in_fifo_order_and_a_big_head_blocks_smaller_ones() {
    let t = Bench::new(Semaphore::new(0));
    let sem = &t.res;
    let fibers = t.spawn_each([2usize, 3, 1, 1].into_iter().enumerate(), |(i, n), s, l| {
        let p = s.acquire_many(n)?;
        l.push(format!("f{i} got {n}"));
        p.forget();
        Ok(())
    });
    t.idle();
    sem.add_permits(1);
    t.idle();
    assert!(t.log.take().is_empty(), "the head wants 2");
    sem.add_permits(3); // 4: f0 takes 2; f1 wants 3 and blocks f2, f3
    t.idle();
    assert_eq!(t.log.take(), ["f0 got 2"]);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(
        sem.try_acquire().unwrap_err(),
        TryAcquireError::NoPermits,
        "no barging past the waiters"
    );
    sem.add_permits(3); // 5: f1 takes 3, f2 1, f3 1
    t.idle();
    assert_eq!(t.log.take(), ["f1 got 3", "f2 got 1", "f3 got 1"]);
    assert_eq!(sem.available_permits(), 0);
    assert!(fibers.iter().all(|f| f.is_done()));
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_fifo_under_contention_ordered_log() {
    let t = Bench::new(Semaphore::new(2));
    t.spawn_each(0..6u64, |i, s, l| {
        let _p = s.acquire()?;
        l.push(format!("f{i} in"));
        fuseau::sleep(ms(10 - i))?; // later fibers hold it shorter
        l.push(format!("f{i} out"));
        Ok(())
    });
    let mut order = t.run_until_logged(12);
    order.retain(|e| e.ends_with("in"));
    assert_eq!(
        order,
        ["f0 in", "f1 in", "f2 in", "f3 in", "f4 in", "f5 in"]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_cancelled_head_lets_the_next_through() {
    let t = Bench::new(Semaphore::new(1));
    let big = t.spawn(|s, _| s.acquire_many(3).map(drop));
    let small = t.spawn_logged("small", |s, _| s.acquire().map(drop));
    t.idle();
    assert!(t.log.take().is_empty());
    big.cancel();
    t.idle();
    assert_eq!(kind(&big.join()), Some(ErrorKind::Cancelled));
    assert_eq!(t.log.take(), ["small: Ok(())"]);
    assert!(small.is_done());
    assert_eq!(t.res.available_permits(), 1);
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_three_cancellation_cases() {
    // Before the call.
    let t = Bench::new(Semaphore::new(1));
    t.cancelled_before_the_call(|s| s.acquire().map(drop));
    assert_eq!(t.res.available_permits(), 1);

    // While waiting.
    let t = Bench::new(Semaphore::new(0));
    let waiter = t.spawn(|s, _| s.acquire().map(drop));
    t.cancel_while_waiting_then(&waiter, || t.res.add_permits(1));
    assert_eq!(kind(&waiter.join()), Some(ErrorKind::Cancelled));
    let permits = t.res.available_permits();
    assert_eq!(permits, 1, "nothing taken by the cancelled");

    // After success: handed over, then cancelled before it ran.
    for cancel_first in [false, true] {
        let t = Bench::new(Semaphore::new(0));
        let got = t.handed_over_then_cancelled(
            cancel_first,
            |s| s.acquire().map(|p| p.num_permits()),
            || {
                t.res.add_permits(1);
                assert_eq!(t.res.available_permits(), 0, "handed to the waiter");
            },
        );
        assert_eq!(got, 1);
        assert_eq!(t.res.available_permits(), 1, "given back on drop");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_permits_handed_to_a_dropped_event_go_back() {
    let t = Bench::new(Semaphore::new(0));
    let next = t.handed_to_a_dropped_event(
        |s| wait_then_drop(s.ev_acquire_many(2)),
        |s| {
            s.acquire_many(2)?.forget();
            Ok("next got 2")
        },
        || t.res.add_permits(2), // to `dropper`, which drops them unpolled
    );
    assert_eq!(next, "next got 2");
}

#[test]
#[cfg_attr(miri, ignore)]
fn semaphore_close_fails_waiters_and_later_acquisitions() {
    let t = Bench::new(Semaphore::new(1));
    let sem = &t.res;
    let held = sem.try_acquire().unwrap();
    let waiter = t.spawn(|s, _| s.acquire().map(drop));
    t.idle();
    sem.close();
    sem.close(); // idempotent
    t.idle();
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

/// Whether `notify` holds a stored permit, from its `Debug` output.
fn has_permit(notify: &Notify) -> bool {
    let shown = format!("{notify:?}");
    assert!(shown.contains("permit: "), "{shown}");
    shown.contains("permit: true")
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_one_stores_one_permit_and_serves_waiters_in_order() {
    let t = Bench::new(Notify::new());
    let notify = &t.res;
    notify.notify_one();
    notify.notify_one(); // still one permit
    let n = notify.clone();
    t.sim.block_on(move || n.notified()).unwrap();
    let waiters = t.spawn_waiters(3, |_, n, _| n.notified());
    t.idle();
    assert!(t.log.take().is_empty(), "the permit was consumed");
    notify.notify_one();
    t.idle();
    assert_eq!(t.log.take(), ["w0: Ok(())"]);
    notify.notify_one();
    notify.notify_one();
    t.idle();
    assert_eq!(t.log.take(), ["w1: Ok(())", "w2: Ok(())"]);
    assert!(waiters.iter().all(|w| w.is_done()));
    assert!(!has_permit(notify));
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_all_wakes_those_waiting_now_and_stores_nothing() {
    let t = Bench::new(Notify::new());
    t.spawn_waiters(3, |_, n, _| n.notified());
    t.idle();
    t.res.notify_all();
    t.idle();
    assert_eq!(t.log.take(), ["w0: Ok(())", "w1: Ok(())", "w2: Ok(())"]);
    let late = t.spawn(|n, _| n.notified());
    t.idle();
    assert!(!late.is_done(), "notify_all stored no permit");
    late.cancel();
    t.idle();
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_three_cancellation_cases() {
    // Before the call: the stored permit stays.
    let t = Bench::new(Notify::new());
    t.res.notify_one();
    t.cancelled_before_the_call(|n| n.notified());
    assert!(has_permit(&t.res));

    // While waiting: a later notify_one goes to the next waiter.
    let t = Bench::new(Notify::new());
    let waiters = t.spawn_waiters(2, |_, n, _| n.notified());
    t.cancel_while_waiting_then(&waiters[0], || t.res.notify_one());
    assert_eq!(t.log.take(), ["w0: Err(Cancelled)", "w1: Ok(())"]);
    assert!(!has_permit(&t.res));

    // After success.
    for cancel_first in [false, true] {
        let t = Bench::new(Notify::new());
        t.handed_over_then_cancelled(cancel_first, |n| n.notified(), || t.res.notify_one());
        assert!(!has_permit(&t.res), "consumed");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_one_handed_to_a_dropped_event_passes_on() {
    let t = Bench::new(Notify::new());
    let dropper = t.spawn(|n, _| wait_then_drop(n.ev_notified()));
    t.idle();
    t.res.notify_one();
    t.idle();
    assert_eq!(dropper.join().unwrap(), "dropped unpolled");
    // Nobody else waited: the notification became the stored permit.
    assert!(has_permit(&t.res));
    let consumer = t.spawn_logged("consumer", |n, _| n.notified());
    t.idle();
    assert!(consumer.is_done());
    assert_eq!(t.log.take(), ["consumer: Ok(())"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn notify_event_in_select() {
    let t = Bench::new(Notify::new());
    let f = t.spawn(|n, _| {
        Ok(fuseau::select! {
            ev(n.ev_notified()) -> _r => "notified",
            ev(fuseau::ev_timeout(HOUR)) -> _t => "timeout",
        })
    });
    t.idle();
    t.res.notify_one();
    t.idle();
    assert_eq!(f.join().unwrap(), "notified");
    assert!(format!("{:?}", t.res).contains("waiters: 0"));
}

// ================================================================ Barrier

#[test]
#[cfg_attr(miri, ignore)]
fn barrier_has_one_leader_per_generation_and_is_reusable() {
    let t = Bench::new(Barrier::new(3));
    let leaders = Rc::new(Cell::new(0));
    let l = leaders.clone();
    let fibers = t.spawn_each(0..3, move |_, b, _| {
        for _ in 0..4 {
            if b.wait()? {
                l.set(l.get() + 1);
            }
        }
        Ok(())
    });
    t.idle();
    for f in fibers {
        f.join().unwrap();
    }
    assert_eq!(leaders.get(), 4, "one leader in each of 4 generations");
    assert_eq!(t.res.generation(), 4);
    assert_eq!(t.res.waiting(), 0);
    let one = Barrier::new(0);
    assert!(one.wait().unwrap(), "n = 0 acts as 1: no fiber needed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn barrier_three_cancellation_cases() {
    // Before the call: no arrival.
    let t = Bench::new(Barrier::new(2));
    t.cancelled_before_the_call(|b| b.wait());
    assert_eq!(t.res.waiting(), 0);

    // While waiting: the arrival is withdrawn; the generation needs another.
    let t = Bench::new(Barrier::new(2));
    let first = t.spawn_logged("first", |b, _| b.wait());
    t.idle();
    assert_eq!(t.res.waiting(), 1);
    first.cancel();
    t.idle();
    assert_eq!(t.res.waiting(), 0);
    let _second = t.spawn_logged("second", |b, _| b.wait());
    t.idle();
    assert_eq!(t.log.snapshot().len(), 1, "second waits for a partner");
    let _third = t.spawn_logged("third", |b, _| b.wait());
    t.idle();
    assert_eq!(
        t.log.take(),
        [
            "first: Err(Cancelled)",
            "third: Ok(true)",
            "second: Ok(false)"
        ]
    );

    // After success: released, then cancelled before it ran.
    let t = Bench::new(Barrier::new(2));
    let leader = t.handed_over_then_cancelled(
        false,
        |b| b.wait(),
        || assert!(t.res.wait().unwrap(), "the leader need not wait"),
    );
    assert!(!leader);
    assert_eq!(t.res.generation(), 1);
}

#[test]
fn barrier_outside_a_fiber_would_wait() {
    let barrier = Barrier::new(2);
    assert_eq!(kind(&barrier.wait()), Some(ErrorKind::NotInFiber));
    assert_eq!(barrier.waiting(), 0, "no arrival left behind");
}

// =============================================================== OnceCell

impl Bench<OnceCell<u32>> {
    /// Spawns a logged fiber `name` that asks the cell for its value; its
    /// initialiser logs `"{name} initialises"` and runs `init`.
    fn spawn_init(
        &self,
        name: impl Into<String>,
        init: impl FnOnce() -> fuseau::Result<u32> + 'static,
    ) -> Fiber<u32> {
        let name = name.into();
        let said = format!("{name} initialises");
        self.spawn_logged(name, move |c, l| {
            c.get_or_try_init(|| {
                l.push(said);
                init()
            })
            .copied()
        })
    }

    /// Spawns `w{i}` for each `i` of `ids`, whose initialiser calls `pause`
    /// and then gives `i`.
    fn spawn_inits(
        &self,
        ids: std::ops::Range<u32>,
        pause: fn() -> fuseau::Result<()>,
    ) -> Vec<Fiber<u32>> {
        ids.map(|i| {
            self.spawn_init(format!("w{i}"), move || {
                pause()?;
                Ok(i)
            })
        })
        .collect()
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_runs_one_initialiser_and_waiters_share_its_value() {
    let t = Bench::new(OnceCell::new());
    let fibers: Vec<_> = (0..3)
        .map(|i| {
            t.spawn_init(format!("f{i}"), move || {
                fuseau::sleep(ms(1))?;
                Ok(i * 10)
            })
        })
        .collect();
    t.run_until_all_done(&fibers);
    assert_eq!(
        t.log.take(),
        ["f0 initialises", "f0: Ok(0)", "f1: Ok(0)", "f2: Ok(0)"]
    );
    assert_eq!(t.res.get(), Some(&0));
    assert_eq!(t.res.set(5), Err(5));
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_a_failed_cancelled_or_panicking_initialiser_lets_the_next_waiter_try() {
    for how in ["fails", "cancelled", "panics"] {
        let t = Bench::new(OnceCell::new());
        let first = t.spawn_init("first", move || {
            fuseau::sleep(HOUR)?;
            if how == "panics" {
                panic!("initialiser panics");
            }
            Err(Error::from("no luck"))
        });
        let waiters = t.spawn_inits(1..3, || Ok(()));
        t.idle();
        match how {
            "cancelled" => first.cancel(),
            _ => t.sim.advance(HOUR),
        }
        t.sim
            .run_until(|| waiters.iter().all(|f| f.is_done()) && first.is_done());
        let mut expected = vec!["first initialises"];
        match how {
            "fails" => expected.push("first: Err(Other)"),
            "cancelled" => expected.push("first: Err(Cancelled)"),
            _ => {}
        }
        expected.extend(["w1 initialises", "w1: Ok(1)", "w2: Ok(1)"]);
        assert_eq!(t.log.take(), expected, "{how}");
        if how == "panics" {
            assert_panicked(first);
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_three_cancellation_cases() {
    // Before the call: even with the value set, an error; `get` works.
    let t = Bench::new(OnceCell::new());
    t.res.set(1).unwrap();
    t.run_cancelled(|c| {
        assert_eq!(
            kind(&c.get_or_try_init(|| Ok(2))),
            Some(ErrorKind::Cancelled)
        );
        assert_eq!(c.get(), Some(&1));
        Ok(())
    });

    // While waiting for another initialiser: it leaves the queue; the
    // turn then goes to the next waiter.
    let t = Bench::new(OnceCell::new());
    let gate = Chan::<()>::bounded(0);
    let g = gate.clone();
    let init = t.spawn(move |c, _| {
        c.get_or_try_init(|| {
            g.recv()?;
            Err(Error::from("gave up"))
        })
        .map(drop)
    });
    let waiters = t.spawn_inits(0..2, || Ok(()));
    t.cancel_while_waiting_then(&waiters[0], || gate.try_send(()).unwrap());
    assert!(init.join().is_err());
    assert_eq!(
        t.log.take(),
        ["w0: Err(Cancelled)", "w1 initialises", "w1: Ok(1)"]
    );

    // Cancelled while its own initialiser runs: the initialiser's error
    // passes the turn on.
    let t = Bench::new(OnceCell::new());
    let waiters = t.spawn_inits(0..2, || fuseau::sleep(HOUR));
    t.idle();
    waiters[0].cancel();
    t.idle();
    assert_eq!(
        t.log.take(),
        ["w0 initialises", "w0: Err(Cancelled)", "w1 initialises"]
    );

    // After success: the turn was handed over, then the fiber was cancelled
    // before it ran. It runs its initialiser, whose first cancellation
    // point fails, and the turn passes on. (The first initialiser runs
    // outside a fiber, so that the turn is handed over while no fiber runs.)
    let t = Bench::new(OnceCell::new());
    let mut w0 = None;
    let r = t.res.get_or_try_init(|| {
        w0 = t.spawn_inits(0..2, fuseau::yield_now).into_iter().next();
        t.idle(); // both wait for this initialiser
        Err(Error::from("the first initialiser fails"))
    });
    assert_eq!(r.unwrap_err().message(), "the first initialiser fails");
    // The turn is w0's now, but w0 has not run yet.
    w0.unwrap().cancel();
    t.idle();
    assert_eq!(
        t.log.take(),
        [
            "w0 initialises",
            "w0: Err(Cancelled)",
            "w1 initialises",
            "w1: Ok(1)"
        ]
    );
    assert_eq!(t.res.get(), Some(&1));
}

#[test]
#[cfg_attr(miri, ignore)]
fn once_cell_initialiser_asking_for_its_own_cell_gets_an_error() {
    let t = Bench::new(OnceCell::new());
    let c = t.res.clone();
    let r = t.sim.block_on(move || {
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
