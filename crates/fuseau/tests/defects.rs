//! Regression tests for the defects found by adversarial testing (issue
//! 14): each is the program that showed the defect, written from the docs.

mod common;

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::Sim;
use fuseau::{
    select, spawn_from_anywhere, Builder, Chan, Config, ErrorKind, EventLoop, FiberLocal,
    Iteration, Scheduler, Unpark, When,
};

const HOUR: Duration = Duration::from_secs(3600);

// 1. A panic escaped the scheduler from a fiber-local destructor.

struct SetsBOnDrop;

impl Drop for SetsBOnDrop {
    fn drop(&mut self) {
        B.set(Some(Rc::new(PanicsOnDrop)));
    }
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("local B dropped");
    }
}

static A: FiberLocal<Option<Rc<SetsBOnDrop>>> = FiberLocal::new(|| None);
static B: FiberLocal<Option<Rc<PanicsOnDrop>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn a_local_set_while_locals_are_dropped_is_dropped_inside_the_fiber() {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        fuseau::block_on(|| {
            fuseau::spawn(|| {
                A.set(Some(Rc::new(SetsBOnDrop)));
                Ok(())
            })
            .join()
        })
    }));
    let result = outcome.expect("the panic stayed inside the fiber");
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "local B dropped");
}

struct Flush(Rc<RefCell<Vec<String>>>);

impl Drop for Flush {
    fn drop(&mut self) {
        // A per-fiber writer flushes: it can still wait, inside its fiber.
        let waited = fuseau::sleep(Duration::ZERO);
        self.0.borrow_mut().push(format!(
            "in_fiber={} sleep={:?}",
            fuseau::in_fiber(),
            waited.map_err(|e| e.kind())
        ));
    }
}

struct SetsFlushOnDrop(Rc<RefCell<Vec<String>>>);

impl Drop for SetsFlushOnDrop {
    fn drop(&mut self) {
        WRITER.set(Some(Rc::new(Flush(self.0.clone()))));
    }
}

static STARTER: FiberLocal<Option<Rc<SetsFlushOnDrop>>> = FiberLocal::new(|| None);
static WRITER: FiberLocal<Option<Rc<Flush>>> = FiberLocal::new(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn locals_set_by_destructors_are_dropped_on_the_fibers_stack() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    fuseau::block_on(move || {
        fuseau::spawn(move || {
            STARTER.set(Some(Rc::new(SetsFlushOnDrop(l))));
            Ok(())
        })
        .join()
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["in_fiber=true sleep=Ok(())"]);
}

// 2. `select` slept through a buffered value when a branch's poll
// suspended the fiber.

/// A future that yields the fiber once, on its first poll, then stays
/// pending: while it yields, a sender fills the channel.
fn yields_once_then_pending() -> impl std::future::Future<Output = ()> {
    let mut first = true;
    poll_fn(move |_| {
        if std::mem::take(&mut first) {
            fuseau::yield_now().expect("not cancelled");
        }
        Poll::Pending
    })
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_sees_a_value_sent_while_a_branch_poll_suspended() {
    let sim = Sim::new();
    let got = sim.block_on(|| {
        fuseau::cancel_after(Duration::from_millis(500))?;
        let c = Chan::bounded(1);
        let c2 = c.clone();
        fuseau::spawn(move || c2.send(42));
        select(vec![
            When::new(c.ev_recv(), Some),
            When::new(fuseau::ev_future(yields_once_then_pending()), |()| None),
        ])
    });
    assert_eq!(got.unwrap(), Some(42));
    assert_eq!(sim.elapsed(), Duration::ZERO, "no timeout was needed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn select_macro_sees_a_value_sent_while_a_branch_poll_suspended() {
    let sim = Sim::new();
    let got = sim.block_on(|| {
        fuseau::cancel_after(Duration::from_millis(500))?;
        let c = Chan::bounded(1);
        let c2 = c.clone();
        fuseau::spawn(move || c2.send(42));
        Ok(fuseau::select! {
            recv(c) -> v => v?,
            ev(fuseau::ev_future(yields_once_then_pending())) -> _ => 0,
        })
    });
    assert_eq!(got.unwrap(), 42);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_registered_branch_is_not_lost_when_a_later_one_suspends_in_wait() {
    // The future yields in its first poll made by `wait` (after the
    // receive is registered): the registration belongs to a wait that the
    // yield ended, so the select must start over, not sleep.
    let sim = Sim::new();
    let got = sim.block_on(|| {
        fuseau::cancel_after(Duration::from_millis(500))?;
        let c = Chan::bounded(1);
        let c2 = c.clone();
        fuseau::spawn(move || c2.send(7));
        let mut polls = 0;
        let late = poll_fn(move |_| {
            polls += 1;
            if polls == 2 {
                fuseau::yield_now().expect("not cancelled");
            }
            Poll::<()>::Pending
        });
        select(vec![
            When::new(c.ev_recv(), Some),
            When::new(fuseau::ev_future(late), |()| None),
        ])
    });
    assert_eq!(got.unwrap(), Some(7));
}

// 3. Remote fibers that never started reported `Cancelled`, not `Inactive`.

#[test]
#[cfg_attr(miri, ignore)]
fn remote_fibers_drained_before_disposal_report_inactive() {
    // A budget of one fiber per iteration: the first iteration drains the
    // inbox (100 spawns become fibers) but runs only the first; then the
    // scheduler is disposed of.
    let sim = Sim::with_config(Config::new().budget(1));
    let handle = sim.sched.handle();
    let remotes: Vec<_> = (0..100)
        .map(|i| spawn_from_anywhere(&handle, move || Ok(i)))
        .collect();
    sim.sched.run_iteration();
    sim.sched.dispose();
    let mut remotes = remotes.into_iter();
    assert_eq!(remotes.next().unwrap().join().unwrap(), 0);
    for r in remotes {
        let e = r.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Inactive, "{e}");
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn remote_fibers_racing_disposal_are_ok_or_inactive_never_cancelled() {
    for pause_us in [0u64, 200, 600] {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawners = fuseau::block_on(move || {
            let handle = fuseau::Scheduler::current().handle();
            let spawners: Vec<_> = (0..2)
                .map(|_| {
                    let handle = handle.clone();
                    std::thread::spawn(move || {
                        let remotes: Vec<_> = (0..5_000)
                            .map(|i| spawn_from_anywhere(&handle, move || Ok(i)))
                            .collect();
                        remotes.into_iter().map(|r| r.join()).collect::<Vec<_>>()
                    })
                })
                .collect();
            tx.send(()).unwrap();
            fuseau::sleep(Duration::from_micros(pause_us))?;
            Ok(spawners)
        })
        .unwrap();
        rx.recv().unwrap();
        for s in spawners {
            for result in s.join().unwrap() {
                if let Err(e) = result {
                    assert_eq!(e.kind(), ErrorKind::Inactive, "{e}");
                }
            }
        }
    }
}

// 4. `RemoteFiber::join` after `poll_join` returned `Ready` blocked for
// ever, and `is_done` turned back to `false`.

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
#[cfg_attr(miri, ignore)]
fn join_after_poll_join_took_the_result_is_a_clear_error() {
    let sim = Sim::new();
    let remote = spawn_from_anywhere(&sim.sched.handle(), || Ok(5));
    sim.run_until_idle();
    assert!(remote.is_done());
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(remote.poll_join(&mut cx), Poll::Ready(Ok(5))));
    assert!(remote.is_done(), "still done once the result is taken");
    match remote.poll_join(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Other),
        _ => panic!("polling again must give an error"),
    }
    // From another thread (it would block) and from a fiber (it would
    // suspend): both return at once.
    let joined = std::thread::spawn(move || remote.join()).join().unwrap();
    let e = joined.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    assert!(e.message().contains("already taken"), "{e}");
}

// 5. `cancel_after(Duration::ZERO)` let the next suspension points succeed.

#[test]
#[cfg_attr(miri, ignore)]
fn a_due_deadline_fires_at_the_next_suspension_point() {
    let sim = Sim::new();
    let kinds = sim
        .block_on(|| {
            fuseau::cancel_after(Duration::ZERO)?;
            let results = [
                fuseau::yield_now(),
                fuseau::yield_now(),
                fuseau::sleep(Duration::ZERO),
            ];
            Ok(results.map(|r| r.map_err(|e| e.kind())))
        })
        .unwrap();
    assert_eq!(kinds, [Err(ErrorKind::Timeout); 3]);
}

/// A clock that moves 1 ms every time it is read, and an unpark that does
/// nothing: time passes while a fiber keeps running.
struct Ticking(Cell<Instant>);

impl EventLoop for Ticking {
    fn now(&self) -> Instant {
        let now = self.0.get() + Duration::from_millis(1);
        self.0.set(now);
        now
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        struct Nothing;
        impl Unpark for Nothing {
            fn unpark(&self) {}
        }
        Arc::new(Nothing)
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_deadline_that_falls_due_while_the_fiber_yields_fires_within_the_iteration() {
    // One iteration may run a million fibers: the deadline must not wait
    // for the next one.
    let sched = Scheduler::new(
        Ticking(Cell::new(Instant::now())),
        Config::new().budget(1_000_000),
    );
    let yields = Rc::new(Cell::new(0u32));
    let y = yields.clone();
    let fiber = Builder::new()
        .spawn_on(&sched, move || -> fuseau::Result<()> {
            fuseau::cancel_after(Duration::from_millis(5))?;
            loop {
                fuseau::yield_now()?;
                y.set(y.get() + 1);
            }
        })
        .unwrap();
    let first = sched.run_iteration();
    assert!(
        fiber.is_done(),
        "the deadline fired inside the first iteration"
    );
    assert_eq!(first, Iteration::Idle { deadline: None });
    assert!(
        yields.get() < 10,
        "{} yields before the deadline",
        yields.get()
    );
    assert!(fiber.join().unwrap_err().is_timeout());
}

// 6. A panicking micro-task was dropped silently when its fiber had
// already finished.

#[test]
#[cfg_attr(miri, ignore)]
fn a_micro_task_that_panics_fails_its_fiber_even_after_the_body_returned() {
    let sim = Sim::new();
    let result = sim.block_on(|| {
        let child = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
            fuseau::schedule_micro_task(|| panic!("boom"))?;
            Ok(2)
        });
        Ok(child.join())
    });
    let e = result.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "boom");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_is_done_only_after_its_micro_tasks_ran() {
    let sim = Sim::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let seen = sim
        .block_on(move || {
            let child = fuseau::spawn(move || {
                fuseau::schedule_micro_task(move || r.set(true))?;
                Ok(())
            });
            child.join()?;
            Ok(ran.get())
        })
        .unwrap();
    assert!(seen, "join returned before the fiber's micro-task ran");
}

// 7. Smaller ones.

#[test]
#[cfg_attr(miri, ignore)]
fn cancel_returns_at_once_even_if_a_callback_tries_to_wait() {
    let sim = Sim::new();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = log.clone();
    let result = sim.block_on(move || {
        let l2 = l.clone();
        let victim = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                fuseau::with_cancel_callback(
                    move |_| {
                        let slept = fuseau::sleep(HOUR);
                        l2.borrow_mut()
                            .push(format!("callback sleep: {:?}", slept.map_err(|e| e.kind())));
                    },
                    || fuseau::sleep(HOUR),
                )
            });
        fuseau::yield_now()?; // the victim is asleep
        victim.cancel();
        l.borrow_mut().push("cancel returned".into());
        Ok(victim.join().unwrap_err().kind())
    });
    assert_eq!(result.unwrap(), ErrorKind::Cancelled);
    assert_eq!(
        *log.borrow(),
        ["callback sleep: Err(Other)", "cancel returned"]
    );
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_subtree_is_marked_cancelled_before_any_callback_runs() {
    let sim = Sim::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    sim.block_on(move || {
        let parent = Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(move || {
                let children: Vec<_> = (0..2)
                    .map(|_| fuseau::spawn(|| fuseau::sleep(HOUR)).any())
                    .collect();
                fuseau::with_cancel_callback(
                    move |_| {
                        s.borrow_mut()
                            .extend(children.iter().map(|c| c.is_cancelled()));
                    },
                    || fuseau::sleep(HOUR),
                )
            });
        fuseau::yield_now()?;
        parent.cancel();
        let _ = parent.join();
        Ok(())
    })
    .unwrap();
    assert_eq!(*seen.borrow(), [true, true]);
}
