//! Fiber scopes (`fuseau::scope`): every way out of a scope, with members
//! that borrow the enclosing fiber's stack (shared, mutably, split), carry
//! drop counters, and are checked after the scope by overwriting what they
//! borrowed and letting virtual time run on. Failures and their causes,
//! cancellation and deadlines, teardown, leaked handles, nested spawns and
//! scopes, limits. Virtual time (`Sim`), ordered logs.

mod common;

use std::cell::{Cell, OnceCell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{ms, Counter, Log, Sim, HOUR};
use fuseau::{
    scope, shield, with_cancel_callback, with_timeout, AnyFiber, Builder, Error, ErrorKind, Fiber,
    Result, Scope, ScopedFiber,
};

/// What the caller writes over the borrowed data once its scope returned.
const OVERWRITTEN: u32 = 0xdead;

/// `"ok"`, or the error's kind followed by its chain of sources:
/// `Cancelled <- member failed`.
fn describe<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => chain(e),
    }
}

fn chain(e: &Error) -> String {
    let mut text = format!("{:?}", e.kind());
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text += &format!(" <- {cause}");
        source = cause.source();
    }
    text
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<not text>".into()
    }
}

/// After a scope returned: overwrites the data its members borrowed, lets
/// virtual time run far past anything a member could still do (shielded,
/// so that a cancelled fiber waits too), and checks that nothing wrote to
/// the data meanwhile.
fn overwrite_then_check(data: &mut [u32]) -> Result<()> {
    data.fill(OVERWRITTEN);
    shield(|| fuseau::sleep(3 * HOUR)).expect("a shielded sleep");
    assert!(
        data.iter().all(|&v| v == OVERWRITTEN),
        "a member touched the data after its scope returned: {data:?}"
    );
    Ok(())
}

/// Checks that the members left `expected` in `data`, then
/// [`overwrite_then_check`].
#[track_caller]
fn check_then_overwrite(data: &mut [u32], expected: &[u32]) -> Result<()> {
    assert_eq!(data, expected, "what the members wrote");
    overwrite_then_check(data)
}

/// A log and a drop counter, shared by a test's fibers.
#[derive(Clone, Default)]
struct Tracking {
    log: Log,
    drops: Counter,
}

/// What the tests share, owned by the fiber that runs them and borrowed by
/// the members: a log, a drop counter and the time the fiber started.
struct Ctx {
    log: Log,
    drops: Counter,
    t0: Instant,
}

impl Ctx {
    /// Virtual milliseconds since the fiber started.
    fn ms(&self) -> u128 {
        (fuseau::time::now() - self.t0).as_millis()
    }

    /// Logs `"{label} @{t}ms"`.
    fn note(&self, label: &str) {
        self.log.push(format!("{label} @{}ms", self.ms()));
    }

    /// Logs `"{label}: {outcome} @{t}ms"`.
    fn outcome<T>(&self, label: &str, r: &Result<T>) {
        self.log
            .push(format!("{label}: {} @{}ms", describe(r), self.ms()));
    }

    /// Logs the outcome `r` as [`Ctx::outcome`] does, and returns it.
    fn logged<T>(&self, label: &str, r: Result<T>) -> Result<T> {
        self.outcome(label, &r);
        r
    }

    /// Logs the outcome `r` as [`Ctx::outcome`] does, and returns its error.
    #[track_caller]
    fn failed<T>(&self, label: &str, r: Result<T>) -> Error {
        self.outcome(label, &r);
        match r {
            Ok(_) => panic!("{label} succeeded"),
            Err(e) => e,
        }
    }

    /// A member's body: holds a drop guard, reads `name` (shared borrow),
    /// sleeps `d`, then writes `value` to `slot` (mutable borrow) whether
    /// the sleep succeeded or not, logs the outcome and returns it.
    fn member<'a>(
        &'a self,
        name: &'a str,
        slot: &'a mut u32,
        value: u32,
        d: Duration,
    ) -> impl FnOnce() -> Result<()> + 'a {
        self.member_with_cleanup(name, slot, value, d, None)
    }

    /// [`Ctx::member`] whose failed sleep is followed by a shielded cleanup
    /// lasting `cleanup`, before it writes and logs.
    fn member_with_cleanup<'a>(
        &'a self,
        name: &'a str,
        slot: &'a mut u32,
        value: u32,
        d: Duration,
        cleanup: Option<Duration>,
    ) -> impl FnOnce() -> Result<()> + 'a {
        let guard = self.drops.guard();
        move || {
            let _guard = guard;
            let r = fuseau::sleep(d);
            if let (Err(_), Some(c)) = (&r, cleanup) {
                shield(|| fuseau::sleep(c)).expect("a shielded cleanup");
            }
            *slot = value;
            self.outcome(name, &r);
            r
        }
    }

    /// Spawns members `a`, `b`, `c`… into `s`, one for each slot: member
    /// `i` sleeps `durations[i]` and writes `i + 1` to its slot, after a
    /// cleanup lasting `cleanups[i]` if cancelled (see
    /// [`Ctx::member_with_cleanup`]).
    fn spawn_members<'s, const N: usize>(
        &'s self,
        s: &'s Scope<'s, '_>,
        slots: [&'s mut u32; N],
        durations: [Duration; N],
        cleanups: [Option<Duration>; N],
    ) {
        for (i, slot) in slots.into_iter().enumerate() {
            let name = ["a", "b", "c"][i];
            s.spawn(self.member_with_cleanup(name, slot, i as u32 + 1, durations[i], cleanups[i]));
        }
    }

    /// A member that only sets `ran` (holding a guard): the tests below
    /// check that it never runs.
    fn marks_ran<'a>(&'a self, ran: &'a Cell<bool>) -> impl FnOnce() -> Result<()> + 'a {
        let guard = self.drops.guard();
        move || {
            let _guard = guard;
            ran.set(true);
            Ok(())
        }
    }

    /// Spawns `member` into `s` for `who`, noting `"{who} waits"` before
    /// and `"{who} granted"` once the scope had a slot for it.
    fn spawn_noting<'s, T: 's>(
        &self,
        s: &'s Scope<'s, '_>,
        who: &str,
        member: impl FnOnce() -> Result<T> + 's,
    ) -> ScopedFiber<'s, T> {
        self.note(&format!("{who} waits"));
        let fiber = s.spawn(member);
        self.note(&format!("{who} granted"));
        fiber
    }

    /// A member that cancels the fiber in `victim` once it slept `after`,
    /// noting `"{name} cancelled"`, then sleeps `stays` more and writes 3
    /// to `slot`.
    fn canceller<'a>(
        &'a self,
        name: &'a str,
        victim: &'a OnceCell<AnyFiber>,
        after: Duration,
        stays: Duration,
        slot: &'a mut u32,
    ) -> impl FnOnce() -> Result<()> + 'a {
        move || {
            fuseau::sleep(after)?;
            victim.get().unwrap().cancel();
            self.note(&format!("{name} cancelled"));
            fuseau::sleep(stays)?;
            *slot = 3;
            Ok(())
        }
    }

    /// A member that sleeps `d`, then fails with `error` (holding a guard).
    fn failing<'a>(
        &'a self,
        name: &'a str,
        slot: &'a mut u32,
        d: Duration,
        error: &'static str,
    ) -> impl FnOnce() -> Result<()> + 'a {
        let guard = self.drops.guard();
        move || {
            let _guard = guard;
            fuseau::sleep(d)?;
            *slot = 99;
            self.note(&format!("{name} fails"));
            Err(Error::from(error))
        }
    }
}

/// How a test ended: the fiber's result, the log, the drop count, the
/// virtual time elapsed and what the members left in the fiber's data.
struct Run<T> {
    result: Result<T>,
    log: Vec<String>,
    drops: usize,
    elapsed: Duration,
    data: Vec<u32>,
}

impl<T> Run<T> {
    /// Checks that the fiber succeeded and logged exactly `expected`.
    #[track_caller]
    fn assert_ok_log(&self, expected: &[&str]) {
        if let Err(e) = &self.result {
            panic!("the fiber failed: {}", chain(e));
        }
        assert_eq!(self.log, expected);
    }
}

/// The body of a test's root fiber, given the shared [`Ctx`] and the `N`
/// slots of data the fiber owns, one by one, for its members to borrow.
trait Body<T, const N: usize>: for<'a> FnOnce(&'a Ctx, [&'a mut u32; N]) -> Result<T> {}
impl<T, const N: usize, F> Body<T, N> for F where
    F: for<'a> FnOnce(&'a Ctx, [&'a mut u32; N]) -> Result<T>
{
}

/// Runs `body` in a root fiber of a fresh simulation; `drive` runs the
/// simulation until that fiber is done. Once `body` returned (whichever
/// way), keeps what is in the data (`Run::data`), then, if there is any
/// data, [`overwrite_then_check`].
fn run_driven<T: 'static, const N: usize>(
    body: impl Body<T, N> + 'static,
    drive: impl FnOnce(&Sim, &Fiber<T>),
) -> Run<T> {
    let (sim, t) = (Sim::new(), Tracking::default());
    let tt = t.clone();
    let left = Rc::new(RefCell::new(Vec::new()));
    let left_in_fiber = left.clone();
    let main = sim.spawn(move || {
        let cx = Ctx {
            log: tt.log,
            drops: tt.drops,
            t0: fuseau::time::now(),
        };
        let mut data = [0u32; N];
        let r = body(&cx, data.each_mut());
        *left_in_fiber.borrow_mut() = data.to_vec();
        if N > 0 {
            overwrite_then_check(&mut data)?;
        }
        r
    });
    drive(&sim, &main);
    assert!(main.is_done());
    Run {
        result: main.join(),
        log: t.log.take(),
        drops: t.drops.get(),
        elapsed: sim.elapsed(),
        data: left.take(),
    }
}

/// Runs `body`, given `N` slots of data, in a root fiber of a fresh
/// simulation until it is done (see [`run_driven`]).
fn run_on<T: 'static, const N: usize>(body: impl Body<T, N> + 'static) -> Run<T> {
    run_driven(body, |sim, main| sim.run_until(|| main.is_done()))
}

/// [`run_on`] without data.
fn run<T: 'static>(body: impl FnOnce(&Ctx) -> Result<T> + 'static) -> Run<T> {
    run_on(move |cx, []| body(cx))
}

/// Runs `body` (see [`run_driven`]), and cancels its fiber once it has
/// waited `after` (virtual time, with no timer due before).
fn run_cancelled_after<T: 'static, const N: usize>(
    after: Duration,
    body: impl Body<T, N> + 'static,
) -> Run<T> {
    run_driven(body, |sim, main| {
        sim.run_until_idle();
        sim.advance(after);
        sim.run_until_idle();
        main.cancel();
        sim.run_until(|| main.is_done());
    })
}

// 1. Normal return.

/// Three members `a`, `b`, `c` sleeping `durations` (in ms); the body
/// returns at once. Returns the log.
fn members_of_durations(durations: [u64; 3]) -> Vec<String> {
    let r = run_on(move |cx, slots| {
        let v = scope(|s| {
            cx.spawn_members(s, slots, durations.map(ms), [None; 3]);
            cx.note("body returns");
            Ok(42)
        })?;
        cx.note(&format!("scope returned {v}"));
        assert_eq!(cx.drops.get(), 3, "every member's captures were dropped");
        Ok(())
    });
    r.result.unwrap();
    assert_eq!(r.data, [1, 2, 3]);
    assert_eq!(r.drops, 3);
    r.log
}

#[test]
#[cfg_attr(miri, ignore)]
fn members_finishing_in_spawn_order_are_all_awaited() {
    assert_eq!(
        members_of_durations([10, 20, 30]),
        [
            "body returns @0ms",
            "a: ok @10ms",
            "b: ok @20ms",
            "c: ok @30ms",
            "scope returned 42 @30ms",
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn members_of_different_durations_are_all_awaited() {
    assert_eq!(
        members_of_durations([30, 20, 10]),
        [
            "body returns @0ms",
            "c: ok @10ms",
            "b: ok @20ms",
            "a: ok @30ms",
            "scope returned 42 @30ms",
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_body_that_outlives_its_members() {
    let r = run(|cx| {
        let mut data = vec![0u32; 4];
        let (left, right) = data.split_at_mut(2);
        let (l0, l1) = left.split_at_mut(1);
        let v = scope(|s| {
            let a = s.spawn(cx.member("a", &mut l0[0], 1, ms(10)));
            let b = s.spawn(cx.member("b", &mut l1[0], 2, ms(20)));
            let c = s.spawn(|| {
                for x in right.iter_mut() {
                    fuseau::sleep(ms(5))?;
                    *x += 10;
                }
                cx.note("c done");
                Ok(right.len())
            });
            fuseau::sleep(ms(50))?;
            cx.note("body returns");
            assert!(a.is_done() && b.is_done() && c.is_done());
            a.join()?;
            b.join()?;
            Ok(c.join()? * 100)
        })?;
        cx.note(&format!("scope returned {v}"));
        check_then_overwrite(&mut data, &[1, 2, 10, 10])
    });
    r.assert_ok_log(&[
        "a: ok @10ms",
        "c done @10ms",
        "b: ok @20ms",
        "body returns @50ms",
        "scope returned 200 @50ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_scope_without_members_returns_the_body_value_at_once() {
    let r = run(|cx| {
        let v = scope(|s| {
            assert_eq!(s.running(), 0);
            assert_eq!(s.limit(), None);
            Ok("value")
        })?;
        cx.note(v);
        Ok(())
    });
    r.assert_ok_log(&["value @0ms"]);
    assert_eq!(r.elapsed, Duration::ZERO);
}

#[test]
#[cfg_attr(miri, ignore)]
fn members_run_in_spawn_order_after_the_body_suspends() {
    let r = run_on(|cx, slots: [_; 3]| {
        scope(|s| {
            for (i, slot) in slots.into_iter().enumerate() {
                s.spawn(move || {
                    cx.note(&format!("m{i} runs"));
                    *slot = i as u32 + 1;
                    Ok(())
                });
            }
            cx.note("body spawned");
            fuseau::yield_now()?;
            cx.note("body resumed");
            Ok(())
        })
    });
    assert_eq!(r.data, [1, 2, 3]);
    r.assert_ok_log(&[
        "body spawned @0ms",
        "m0 runs @0ms",
        "m1 runs @0ms",
        "m2 runs @0ms",
        "body resumed @0ms",
    ]);
}

// 2. Early `?` in the body.

/// Three members asleep for an hour, whose cleanups (once cancelled) last
/// `cleanups` (in ms); the body fails at 5ms with `?`. Returns the log.
fn early_question_mark(cleanups: [u64; 3]) -> Vec<String> {
    let r = run_on(move |cx, slots| {
        let body_error = RefCell::new(None);
        let r: Result<()> = scope(|s| {
            cx.spawn_members(s, slots, [HOUR; 3], cleanups.map(|c| Some(ms(c))));
            fuseau::sleep(ms(5))?;
            let e = Error::from("bad request");
            *body_error.borrow_mut() = Some(e.clone());
            cx.note("body fails");
            Err(e)?;
            unreachable!()
        });
        let e = cx.failed("scope", r);
        assert!(e.ptr_eq(body_error.borrow().as_ref().unwrap()));
        assert_eq!(e.message(), "bad request");
        assert_eq!(cx.drops.get(), 3);
        // The fiber itself is not cancelled.
        fuseau::sleep(ms(1))?;
        cx.note("fiber slept");
        Ok(())
    });
    r.result.unwrap();
    assert_eq!(r.data, [1, 2, 3]);
    assert_eq!(r.drops, 3);
    r.log
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_early_question_mark_cancels_and_awaits_members_cleaning_up_in_turn() {
    assert_eq!(
        early_question_mark([1, 2, 3]),
        [
            "body fails @5ms",
            "a: Cancelled <- bad request @6ms",
            "b: Cancelled <- bad request @7ms",
            "c: Cancelled <- bad request @8ms",
            "scope: Other @8ms",
            "fiber slept @9ms",
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_early_question_mark_cancels_and_awaits_the_members() {
    assert_eq!(
        early_question_mark([2, 2, 2]),
        [
            "body fails @5ms",
            "a: Cancelled <- bad request @7ms",
            "b: Cancelled <- bad request @7ms",
            "c: Cancelled <- bad request @7ms",
            "scope: Other @7ms",
            "fiber slept @8ms",
        ]
    );
}

// 3. A member returns an error.

#[test]
#[cfg_attr(miri, ignore)]
fn a_failing_member_cancels_its_siblings_and_the_body() {
    let r = run_on(|cx, [a, b, c]| {
        let seen = RefCell::new(Vec::<Error>::new());
        let r: Result<()> = scope(|s| {
            s.spawn(cx.member("a", a, 1, HOUR));
            s.spawn(cx.failing("b", b, ms(10), "b failed"));
            s.spawn(cx.member("c", c, 3, ms(20)));
            let r = fuseau::sleep(HOUR);
            cx.outcome("body", &r);
            seen.borrow_mut().push(r.clone().unwrap_err());
            // Every later suspension point fails the same way.
            let again = fuseau::yield_now();
            cx.outcome("body again", &again);
            r
        });
        let e = cx.failed("scope", r);
        assert_eq!(e.message(), "b failed");
        // The cancellation's source is the failure itself.
        let body_e = &seen.borrow()[0];
        let source = std::error::Error::source(body_e).expect("a source");
        assert!(source.downcast_ref::<Error>().unwrap().ptr_eq(&e));
        assert_eq!(cx.drops.get(), 3);
        // The fiber runs on.
        fuseau::sleep(ms(1))?;
        cx.note("fiber slept");
        Ok(())
    });
    assert_eq!(r.data, [1, 99, 3]);
    r.assert_ok_log(&[
        "b fails @10ms",
        "a: Cancelled <- b failed @10ms",
        "c: Cancelled <- b failed @10ms",
        "body: Cancelled <- b failed @10ms",
        "body again: Cancelled <- b failed @10ms",
        "scope: Other @10ms",
        "fiber slept @11ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_first_failure_in_time_wins() {
    let r = run_on(|cx, [a, b, c]| {
        let r: Result<()> = scope(|s| {
            s.spawn(cx.failing("late", a, ms(20), "late failure"));
            s.spawn(cx.failing("early", b, ms(10), "early failure"));
            s.spawn(cx.member("c", c, 3, HOUR));
            // The body fails after the members: too late to count.
            let r = fuseau::sleep(HOUR);
            cx.outcome("body", &r);
            Err(Error::from("body failure"))
        });
        assert_eq!(cx.failed("scope", r).message(), "early failure");
        Ok(())
    });
    assert_eq!(r.data, [0, 99, 3]);
    r.assert_ok_log(&[
        "early fails @10ms",
        "c: Cancelled <- early failure @10ms",
        "body: Cancelled <- early failure @10ms",
        "scope: Other @10ms",
    ]);
    assert_eq!(r.drops, 3);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_joined_failure_still_fails_the_scope() {
    let r = run_on(|cx, [a, b]| {
        let r: Result<()> = scope(|s| {
            let failing = s.spawn(cx.failing("b", b, ms(10), "joined failure"));
            s.spawn(cx.member("a", a, 1, HOUR));
            cx.outcome("join", &failing.join());
            // The body handles it, but the scope failed all the same.
            Ok(())
        });
        assert_eq!(cx.failed("scope", r).message(), "joined failure");
        Ok(())
    });
    r.assert_ok_log(&[
        "b fails @10ms",
        "a: Cancelled <- joined failure @10ms",
        "join: Other @10ms",
        "scope: Other @10ms",
    ]);
    assert_eq!(r.drops, 2);
}

// 4. A member panics.

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_member_fails_the_scope_with_panicked() {
    let r = run_on(|cx, [a, b, c]| {
        let r: Result<()> = scope(|s| {
            s.spawn(cx.member("a", a, 1, HOUR));
            let guard = cx.drops.guard();
            s.spawn(move || -> Result<()> {
                let _guard = guard;
                fuseau::sleep(ms(10))?;
                *b = 2;
                panic!("member boom");
            });
            s.spawn(cx.member("c", c, 3, HOUR));
            cx.logged("body", fuseau::sleep(HOUR))
        });
        let e = cx.failed("scope", r);
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.message(), "member boom");
        assert_eq!(cx.drops.get(), 3);
        fuseau::sleep(ms(1))?;
        Ok(())
    });
    assert_eq!(r.data, [1, 2, 3]);
    r.assert_ok_log(&[
        "a: Cancelled <- panicked: member boom @10ms",
        "c: Cancelled <- panicked: member boom @10ms",
        "body: Cancelled <- panicked: member boom @10ms",
        "scope: Panicked @10ms",
    ]);
}

// 5. The body panics.

/// Two members asleep for an hour, whose cleanups last `cleanups` (in ms);
/// the body panics at 5ms. Returns the log.
fn panicking_body(cleanups: [u64; 2]) -> Vec<String> {
    let r = run_on(move |cx, slots| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            scope(|s| -> Result<()> {
                cx.spawn_members(s, slots, [HOUR; 2], cleanups.map(|c| Some(ms(c))));
                fuseau::sleep(ms(5))?;
                cx.note("body panics");
                panic!("body boom");
            })
        }));
        let payload = caught.expect_err("the panic comes out of scope");
        cx.note(&format!("caught {:?}", panic_text(&*payload)));
        assert_eq!(cx.drops.get(), 2, "the members were done at the catch");
        // The fiber is not cancelled.
        fuseau::sleep(ms(1))?;
        Ok(())
    });
    r.result.unwrap();
    assert_eq!(r.data, [1, 2]);
    r.log
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_body_awaits_members_cleaning_up_in_turn_before_the_panic_comes_out() {
    assert_eq!(
        panicking_body([2, 3]),
        [
            "body panics @5ms",
            "a: Cancelled <- panicked: the body of a fuseau::scope panicked @7ms",
            "b: Cancelled <- panicked: the body of a fuseau::scope panicked @8ms",
            "caught \"body boom\" @8ms",
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_body_cancels_and_awaits_the_members_before_the_panic_comes_out() {
    assert_eq!(
        panicking_body([3, 3]),
        [
            "body panics @5ms",
            "a: Cancelled <- panicked: the body of a fuseau::scope panicked @8ms",
            "b: Cancelled <- panicked: the body of a fuseau::scope panicked @8ms",
            "caught \"body boom\" @8ms",
        ]
    );
}

// 6. The enclosing fiber is cancelled while the body waits.

/// Two members asleep for an hour, whose cleanups last `cleanups` (in ms);
/// the fiber is cancelled at 20ms while the body sleeps. Returns the log.
fn cancelled_while_the_body_waits(cleanups: [u64; 2]) -> Vec<String> {
    let r = run_cancelled_after(ms(20), move |cx, slots| {
        let r: Result<()> = scope(|s| {
            cx.spawn_members(s, slots, [HOUR; 2], cleanups.map(|c| Some(ms(c))));
            cx.logged("body", fuseau::sleep(HOUR))
        });
        assert!(cx.failed("scope", r).is_cancelled());
        assert_eq!(cx.drops.get(), 2);
        Ok(())
    });
    r.result.unwrap();
    assert_eq!(r.data, [1, 2]);
    assert_eq!(r.drops, 2);
    r.log
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_the_fiber_cancels_then_awaits_members_cleaning_up_in_turn() {
    assert_eq!(
        cancelled_while_the_body_waits([4, 5]),
        [
            "body: Cancelled @20ms",
            "a: Cancelled @24ms",
            "b: Cancelled @25ms",
            "scope: Cancelled @25ms",
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_the_fiber_cancels_then_awaits_the_members() {
    assert_eq!(
        cancelled_while_the_body_waits([5, 5]),
        [
            "body: Cancelled @20ms",
            "a: Cancelled @25ms",
            "b: Cancelled @25ms",
            "scope: Cancelled @25ms",
        ]
    );
}

// 7. The enclosing fiber is cancelled after the body returned Ok.

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_after_the_body_returned_ok_the_scope_returns_the_cancellation() {
    let r = run_cancelled_after(ms(20), |cx, [a, b]| {
        let r = scope(|s| {
            s.spawn(cx.member("a", a, 1, ms(10)));
            s.spawn(cx.member("b", b, 2, HOUR));
            cx.note("body returns");
            Ok("body value")
        });
        assert!(cx.failed("scope", r).is_cancelled());
        Ok(())
    });
    assert_eq!(r.data, [1, 2]);
    // `advance` jumps to 20ms at once: a's 10ms timer fires then.
    r.assert_ok_log(&[
        "body returns @0ms",
        "a: ok @20ms",
        "b: Cancelled @20ms",
        "scope: Cancelled @20ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn cancelled_after_every_member_finished_the_scope_returns_ok() {
    // Cancelled while the body waits for nothing that is a member: the
    // members had all succeeded, so the body's own outcome decides.
    let r = run_cancelled_after(ms(20), |cx, [a]| {
        let r = scope(|s| {
            s.spawn(cx.member("a", a, 1, ms(10)));
            let e = fuseau::sleep(HOUR).unwrap_err();
            cx.note(&format!("body: {:?}", e.kind()));
            Ok("handled")
        });
        assert_eq!(cx.logged("scope", r).unwrap(), "handled");
        Ok(())
    });
    assert_eq!(
        r.log,
        ["a: ok @20ms", "body: Cancelled @20ms", "scope: ok @20ms",]
    );
}

// Regression: the exit wait goes through the members one by one (in the
// owner's order of children, not spawn order); one that finished while it
// waited for another must not be waited for again (`wait_for_members` once
// parked on a done member, never woken). Several tests below have a variant
// whose members finish at once or out of order for the same reason.

#[test]
#[cfg_attr(miri, ignore)]
fn members_that_finish_out_of_spawn_order_are_all_awaited() {
    // The body returns at once; `b` finishes while the scope waits for
    // `a`, then the scope must notice that `b` is done already.
    let r = run_on(|cx, [a, b]| {
        scope(|s| {
            s.spawn(cx.member("a", a, 1, ms(20)));
            s.spawn(cx.member("b", b, 2, ms(10)));
            Ok(())
        })?;
        cx.note("scope returned");
        Ok(())
    });
    assert_eq!(r.data, [1, 2]);
    r.assert_ok_log(&["b: ok @10ms", "a: ok @20ms", "scope returned @20ms"]);
}

// 8. Scheduler teardown.

/// Written over the owner's data by its frame's guard when that frame
/// unwinds: a member that reads it in its destructor afterwards sees this.
const POISON: u32 = 0xbad;

/// Poisons `data` when dropped, and logs it.
struct Poison<'a> {
    data: &'a Cell<u32>,
    label: &'static str,
    log: Log,
}

impl Drop for Poison<'_> {
    fn drop(&mut self) {
        self.data.set(POISON);
        self.log.push(format!("{} unwound", self.label));
    }
}

/// Held by a member: reads the data it borrows when dropped, and logs it.
struct Reader<'a> {
    data: Vec<&'a Cell<u32>>,
    label: String,
    log: Log,
    _guard: common::Guard,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let seen: Vec<u32> = self.data.iter().map(|d| d.get()).collect();
        self.log.push(format!("{} saw {seen:?}", self.label));
    }
}

/// Sleeps on, ignoring cancellation: only a forced unwind ends it.
fn ignore_cancellation() -> ! {
    loop {
        let _ = fuseau::sleep(HOUR);
    }
}

impl Tracking {
    /// Poisons `data` once dropped, and logs `"{label} unwound"`.
    fn poison<'a>(&self, data: &'a Cell<u32>, label: &'static str) -> Poison<'a> {
        Poison {
            data,
            label,
            log: self.log.clone(),
        }
    }

    /// A member that ignores cancellation, holding a drop guard and a
    /// [`Reader`] of `data` that logs `"{label} saw {data}"`.
    fn stubborn<'a>(
        &self,
        label: impl Into<String>,
        data: Vec<&'a Cell<u32>>,
    ) -> impl FnOnce() -> Result<()> + 'a {
        let reader = Reader {
            data,
            label: label.into(),
            log: self.log.clone(),
            _guard: self.drops.guard(),
        };
        move || {
            let _reader = reader;
            ignore_cancellation()
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn teardown_unwinds_members_that_ignore_cancellation_before_their_owner() {
    let (sim, t) = (Sim::new(), Tracking::default());
    let tt = t.clone();
    let owner = sim.spawn(move || {
        let data = Cell::new(41);
        let _poison = tt.poison(&data, "owner");
        scope(|s| {
            for i in 0..3 {
                s.spawn(tt.stubborn(format!("m{i}"), vec![&data]));
            }
            fuseau::sleep(HOUR)
        })
    });
    sim.run_until_idle();
    assert_eq!(sim.sched.n_fibers(), 4);
    sim.sched.dispose();
    assert!(owner.is_done());
    assert_eq!(t.drops.get(), 3, "every member's destructors ran");
    assert_eq!(
        t.log.take(),
        ["m0 saw [41]", "m1 saw [41]", "m2 saw [41]", "owner unwound"]
    );
    assert_eq!(sim.sched.n_fibers(), 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn teardown_of_a_nested_owner_with_scopes_in_members() {
    let (sim, t) = (Sim::new(), Tracking::default());
    let tt = t.clone();
    sim.spawn(move || {
        fuseau::spawn(move || {
            fuseau::spawn(move || {
                let outer = Cell::new(1);
                let _poison = tt.poison(&outer, "owner");
                scope(|s| {
                    s.spawn(tt.stubborn("m1", vec![&outer]));
                    let guard = tt.drops.guard();
                    s.spawn(|| {
                        let _guard = guard;
                        let inner = Cell::new(2);
                        let _poison = tt.poison(&inner, "m2");
                        scope(|s2| -> Result<()> {
                            for i in 0..2 {
                                s2.spawn(tt.stubborn(format!("m2.{i}"), vec![&outer, &inner]));
                            }
                            ignore_cancellation()
                        })
                    });
                    fuseau::sleep(HOUR)
                })
            })
            .join()
        })
        .join()
    });
    sim.run_until_idle();
    assert_eq!(sim.sched.n_fibers(), 7);
    sim.sched.dispose();
    assert_eq!(t.drops.get(), 4, "every member's destructors ran");
    let log = t.log.take();
    assert_eq!(log.len(), 5, "{log:?}");
    let at = |entry: &str| {
        log.iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("no {entry:?} in {log:?}"))
    };
    // Every reader saw intact data: its owners were unwound after it.
    let (m20, m21, m2) = (
        at("m2.0 saw [1, 2]"),
        at("m2.1 saw [1, 2]"),
        at("m2 unwound"),
    );
    let (m1, owner) = (at("m1 saw [1]"), at("owner unwound"));
    assert!(m20 < m2 && m21 < m2 && m2 < owner && m1 < owner, "{log:?}");
    assert_eq!(sim.sched.n_fibers(), 0);
}

// 9. Leaked handles.

#[test]
#[cfg_attr(miri, ignore)]
fn a_forgotten_handle_is_awaited_all_the_same() {
    let r = run_on(|cx, [a, b]| {
        scope(|s| {
            std::mem::forget(s.spawn(cx.member("a", a, 1, ms(10))));
            std::mem::forget(s.spawn(cx.member("b", b, 2, ms(30))));
            Ok(())
        })?;
        cx.note("scope returned");
        assert!(fuseau::time::now() - cx.t0 >= ms(30));
        Ok(())
    });
    assert_eq!(r.data, [1, 2], "the forgotten members' effects are visible");
    r.assert_ok_log(&["a: ok @10ms", "b: ok @30ms", "scope returned @30ms"]);
    assert_eq!(r.drops, 2);
}

// 10. Members spawn members.

#[test]
#[cfg_attr(miri, ignore)]
fn members_spawned_by_members_are_awaited() {
    let r = run_on(|cx, [a, b, c]| {
        scope(|s| {
            s.spawn(move || {
                fuseau::sleep(ms(10))?;
                let inner = s.spawn(move || {
                    s.spawn(cx.member("c", c, 3, ms(30)));
                    cx.member("b", b, 2, ms(10))()
                });
                cx.note("a returns");
                *a = 1;
                drop(inner);
                Ok(())
            });
            Ok(())
        })?;
        cx.note("scope returned");
        Ok(())
    });
    assert_eq!(r.data, [1, 2, 3]);
    r.assert_ok_log(&[
        "a returns @10ms",
        "b: ok @20ms",
        "c: ok @40ms",
        "scope returned @40ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_member_that_fails_after_spawning_members_cancels_them() {
    let r = run_on(|cx, [a, b]| {
        let r = scope(|s| {
            s.spawn(move || -> Result<()> {
                s.spawn(cx.member("child", a, 1, HOUR));
                fuseau::sleep(ms(10))?;
                *b = 2;
                Err(Error::from("spawner failed"))
            });
            Ok(())
        });
        cx.outcome("scope", &r);
        Ok(())
    });
    assert_eq!(r.data, [1, 2]);
    r.assert_ok_log(&[
        "child: Cancelled <- spawner failed @10ms",
        "scope: Other @10ms",
    ]);
}

// 11. Deadlines.

#[test]
#[cfg_attr(miri, ignore)]
fn an_expired_enclosing_deadline_cancels_the_members_with_timeout() {
    let r = run_on(|cx, [a, b]| {
        let r: Result<()> = with_timeout(ms(50), || {
            scope(|s| {
                s.spawn(cx.member("a", a, 1, HOUR));
                s.spawn(cx.member("b", b, 2, ms(10)));
                cx.logged("body", fuseau::sleep(HOUR))
            })
        });
        let e = cx.failed("scope", r);
        assert!(e.is_timeout());
        assert_eq!(e.message(), "fuseau::with_timeout(50ms) expired");
        // The fiber is not cancelled.
        fuseau::sleep(ms(1))?;
        Ok(())
    });
    assert_eq!(r.data, [1, 2]);
    r.assert_ok_log(&[
        "b: ok @10ms",
        "a: Timeout @50ms",
        "body: Timeout @50ms",
        "scope: Timeout @50ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_expired_deadline_after_the_body_returned_cuts_the_scope_short() {
    let r = run_on(|cx, [a]| {
        let r = with_timeout(ms(50), || {
            scope(|s| {
                s.spawn(cx.member("a", a, 1, HOUR));
                Ok("body value")
            })
        });
        assert!(cx.failed("scope", r).is_timeout());
        Ok(())
    });
    r.assert_ok_log(&["a: Timeout @50ms", "scope: Timeout @50ms"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_deadline_inside_the_body_does_not_cancel_members_spawned_inside_it() {
    let r = run_on(|cx, [a]| {
        scope(|s| {
            let r = with_timeout(ms(10), || {
                s.spawn(cx.member("a", a, 1, ms(30)));
                fuseau::sleep(HOUR)
            });
            assert!(cx.failed("deadline scope", r).is_timeout());
            Ok(())
        })?;
        cx.note("scope returned");
        Ok(())
    });
    assert_eq!(r.data, [1]);
    r.assert_ok_log(&[
        "deadline scope: Timeout @10ms",
        "a: ok @30ms",
        "scope returned @30ms",
    ]);
}

// 12. A member cancelled through its handle.

#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_a_member_through_its_handle_is_not_a_failure() {
    let r = run_on(|cx, [a, b]| {
        let v = scope(|s| {
            let victim = s.spawn(cx.member("a", a, 1, HOUR));
            s.spawn(cx.member("b", b, 2, ms(20)));
            fuseau::sleep(ms(10))?;
            victim.cancel();
            assert!(victim.is_cancelled());
            let joined = victim.join();
            assert!(cx.failed("join a", joined).is_cancelled());
            Ok(7)
        })?;
        cx.note(&format!("scope returned {v}"));
        Ok(())
    });
    assert_eq!(r.data, [1, 2]);
    r.assert_ok_log(&[
        "a: Cancelled @10ms",
        "join a: Cancelled @10ms",
        "b: ok @20ms",
        "scope returned 7 @20ms",
    ]);
}

// 13. Members that do not fail the scope.

#[test]
#[cfg_attr(miri, ignore)]
fn a_member_spawned_not_to_propagate_fails_only_its_join() {
    let r = run_on(|cx, [a, b]| {
        let v = scope(|s| {
            let tolerated = s.spawn_with(
                Builder::new()
                    .name("probe")
                    .propagate_cancel_to_parent(false),
                cx.failing("probe", a, ms(10), "probe failed"),
            );
            assert_eq!(tolerated.name(), Some("probe"));
            let other = s.spawn(cx.member("b", b, 2, ms(20)));
            assert_eq!(other.name(), None);
            let joined = tolerated.join();
            assert_eq!(cx.failed("join probe", joined).message(), "probe failed");
            fuseau::sleep(ms(30))?;
            Ok("fine")
        })?;
        cx.note(v);
        Ok(())
    });
    assert_eq!(r.data, [99, 2]);
    r.assert_ok_log(&[
        "probe fails @10ms",
        "join probe: Other @10ms",
        "b: ok @20ms",
        "fine @40ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_member_spawned_not_to_propagate_fails_only_its_join() {
    let r = run(|cx| {
        let v = scope(|s| {
            let tolerated = s.spawn_with(
                Builder::new().propagate_cancel_to_parent(false),
                || -> Result<()> { panic!("tolerated boom") },
            );
            let e = tolerated.join().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Panicked);
            assert_eq!(e.message(), "tolerated boom");
            Ok(1)
        })?;
        cx.note(&format!("scope returned {v}"));
        Ok(())
    });
    r.assert_ok_log(&["scope returned 1 @0ms"]);
}

// 14. Non-'static results.

#[test]
#[cfg_attr(miri, ignore)]
fn members_return_slices_of_borrowed_data() {
    let r = run(|_cx| {
        let text = String::from("alpha beta gamma");
        let firsts: Vec<&str> = scope(|s| {
            let members: Vec<ScopedFiber<'_, &str>> = text
                .split(' ')
                .enumerate()
                .map(|(i, word)| {
                    s.spawn(move || {
                        fuseau::sleep(ms(10 * (3 - i as u64)))?;
                        Ok(&word[..2])
                    })
                })
                .collect();
            members.into_iter().map(ScopedFiber::join).collect()
        })?;
        assert_eq!(firsts, ["al", "be", "ga"]);
        // The slices point into `text`.
        assert!(firsts
            .iter()
            .all(|f| text.as_bytes().as_ptr_range().contains(&f.as_ptr())));
        Ok(())
    });
    r.result.unwrap();
    assert_eq!(r.elapsed, ms(30));
}

// 15. Plain children spawned in the body.

#[test]
#[cfg_attr(miri, ignore)]
fn plain_children_are_not_awaited_by_the_scope() {
    let r = run(|cx| {
        let log = cx.log.clone();
        let t0 = cx.t0;
        let child = scope(|_s| {
            Ok(fuseau::spawn(move || {
                fuseau::sleep(ms(30))?;
                log.push(format!(
                    "plain child done @{}ms",
                    (fuseau::time::now() - t0).as_millis()
                ));
                Ok(())
            }))
        })?;
        cx.note("scope returned");
        child.join()?;
        cx.note("child joined");
        Ok(())
    });
    r.assert_ok_log(&[
        "scope returned @0ms",
        "plain child done @30ms",
        "child joined @30ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn plain_children_are_cancelled_when_the_scope_fails() {
    let r = run_on(|cx, [m]| {
        let log = cx.log.clone();
        let mut child = None;
        let r: Result<()> = scope(|s| {
            child = Some(fuseau::spawn(move || {
                let r = fuseau::sleep(HOUR);
                log.push(format!("plain child: {}", describe(&r)));
                r
            }));
            s.spawn(cx.failing("m", m, ms(10), "member failed"));
            Ok(())
        });
        cx.outcome("scope", &r);
        let joined = child.take().unwrap().join();
        cx.outcome("plain child joined", &joined);
        // Its cancellation does not fail the fiber.
        fuseau::sleep(ms(1))?;
        cx.note("fiber slept");
        Ok(())
    });
    r.assert_ok_log(&[
        "m fails @10ms",
        "plain child: Cancelled <- member failed",
        "scope: Other @10ms",
        "plain child joined: Cancelled <- member failed @10ms",
        "fiber slept @11ms",
    ]);
}

// 16. Nested scopes.

#[test]
#[cfg_attr(miri, ignore)]
fn a_failure_in_an_inner_scope_fails_only_the_inner_scope() {
    let r = run_on(|cx, [a, b, c]| {
        let v = scope(|outer| {
            outer.spawn(cx.member("outer member", a, 1, ms(30)));
            let inner = scope(|inner| {
                inner.spawn(cx.member("inner sibling", b, 2, HOUR));
                inner.spawn(cx.failing("inner", c, ms(10), "inner failed"));
                cx.logged("inner body", fuseau::sleep(HOUR))
            });
            assert_eq!(cx.failed("inner scope", inner).message(), "inner failed");
            // The outer body handles it and goes on.
            fuseau::sleep(ms(5))?;
            cx.note("outer body returns");
            Ok("handled")
        })?;
        cx.note(v);
        Ok(())
    });
    assert_eq!(r.data, [1, 2, 99]);
    r.assert_ok_log(&[
        "inner fails @10ms",
        "inner sibling: Cancelled <- inner failed @10ms",
        "inner body: Cancelled <- inner failed @10ms",
        "inner scope: Other @10ms",
        "outer body returns @15ms",
        "outer member: ok @30ms",
        "handled @30ms",
    ]);
    assert_eq!(r.drops, 3);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_failure_in_the_outer_scope_cancels_the_inner_scope() {
    let r = run_on(|cx, [a, b]| {
        let r: Result<()> = scope(|outer| {
            outer.spawn(cx.failing("outer", a, ms(10), "outer failed"));
            let inner = scope(|inner| {
                inner.spawn(cx.member("inner member", b, 2, HOUR));
                Ok(())
            });
            cx.outcome("inner scope", &inner);
            inner
        });
        assert_eq!(cx.failed("outer scope", r).message(), "outer failed");
        Ok(())
    });
    r.assert_ok_log(&[
        "outer fails @10ms",
        "inner member: Cancelled <- outer failed @10ms",
        "inner scope: Cancelled <- outer failed @10ms",
        "outer scope: Other @10ms",
    ]);
}

// 17. A failure while the body is shielded.

#[test]
#[cfg_attr(miri, ignore)]
fn a_failure_while_the_body_is_shielded_cuts_it_short_after_the_shield() {
    let r = run_on(|cx, [a, b]| {
        let r: Result<()> = scope(|s| {
            s.spawn(cx.member("sibling", a, 1, HOUR));
            s.spawn(cx.failing("b", b, ms(10), "b failed"));
            let shielded = shield(|| {
                fuseau::sleep(ms(50))?;
                cx.note("shielded code ends");
                Ok(())
            });
            cx.outcome("shield", &shielded);
            cx.logged("next suspension point", fuseau::sleep(HOUR))
        });
        assert_eq!(cx.failed("scope", r).message(), "b failed");
        Ok(())
    });
    r.assert_ok_log(&[
        "b fails @10ms",
        "sibling: Cancelled <- b failed @10ms",
        "shielded code ends @50ms",
        "shield: ok @50ms",
        "next suspension point: Cancelled <- b failed @50ms",
        "scope: Other @50ms",
    ]);
}

// 18. Misuse.

/// Calls `scope` with a closure that only notes that it ran: returns
/// `"{the outcome} ran {whether the closure ran}"`.
fn try_a_scope() -> String {
    let ran = Cell::new(false);
    let r = scope(|_s| {
        ran.set(true);
        Ok(())
    });
    format!("{} ran {}", describe(&r), ran.get())
}

#[test]
#[cfg_attr(miri, ignore)]
fn scope_outside_a_fiber_fails_without_running_the_closure() {
    assert_eq!(try_a_scope(), "NotInFiber ran false");
}

#[test]
#[cfg_attr(miri, ignore)]
fn scope_in_a_cancel_callback_fails_without_running_the_closure() {
    let r = run(|cx| {
        let log = cx.log.clone();
        AnyFiber::current().cancel();
        with_cancel_callback(
            move |_| {
                log.push(format!("in callback: {}", try_a_scope()));
            },
            || (),
        );
        Ok(())
    });
    r.assert_ok_log(&["in callback: Other ran false"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn scope_in_a_cancel_callback_run_by_another_fiber_fails() {
    let r = run(|cx| {
        let log = cx.log.clone();
        let victim = fuseau::spawn(move || {
            with_cancel_callback(
                move |_| {
                    log.push(format!("in callback: {}", try_a_scope()));
                },
                || fuseau::sleep(HOUR),
            )
        });
        fuseau::sleep(ms(1))?;
        victim.cancel();
        let _ = victim.join();
        Ok(())
    });
    r.assert_ok_log(&["in callback: Other ran false"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn scope_in_a_destructor_during_a_panic_fails_without_running_the_closure() {
    struct InDrop(Log);
    impl Drop for InDrop {
        fn drop(&mut self) {
            self.0.push(format!("in drop: {}", try_a_scope()));
        }
    }
    let r = run(|cx| {
        let log = cx.log.clone();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _in_drop = InDrop(log);
            panic!("unwinding");
        }));
        assert!(caught.is_err());
        Ok(())
    });
    r.assert_ok_log(&["in drop: Other ran false"]);
}

// 19. Limits.

/// Sleeps long enough for a scope's body to outlive its members: in the
/// tests of limits, the limit is the point, not the final wait.
fn outlive_the_members() -> Result<()> {
    fuseau::sleep(ms(200))
}

/// Ten members under a limit of 3, member `i` sleeping `duration(i)`; the
/// body lingers `linger` after spawning them.
fn capped(duration: fn(usize) -> Duration, linger: Duration) {
    let r = run(move |cx| {
        let (running, most) = (Cell::new(0), Cell::new(0));
        let mut done = [0u32; 10];
        scope(|s| {
            s.set_limit(3);
            assert_eq!(s.limit(), Some(3));
            for (i, slot) in done.iter_mut().enumerate() {
                let (running, most) = (&running, &most);
                let guard = cx.drops.guard();
                s.spawn(move || {
                    let _guard = guard;
                    running.set(running.get() + 1);
                    most.set(most.get().max(running.get()));
                    fuseau::sleep(duration(i))?;
                    running.set(running.get() - 1);
                    *slot = 1;
                    Ok(())
                });
                assert!(s.running() <= 3);
            }
            fuseau::sleep(linger)?;
            Ok(())
        })?;
        assert_eq!(most.get(), 3);
        assert_eq!(running.get(), 0);
        assert_eq!(cx.drops.get(), 10);
        assert_eq!(done, [1; 10]);
        let mut done = done.map(|_| 0);
        overwrite_then_check(&mut done)
    });
    r.result.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_limit_caps_the_running_members() {
    // The body outlives the members (see the next test).
    capped(|i| ms(1 + i as u64 % 4), ms(100));
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_limit_caps_the_running_members_and_the_scope_waits_for_the_last() {
    capped(|i| ms(1 + i as u64 % 4), Duration::ZERO);
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawners_waiting_for_a_slot_are_served_in_arrival_order() {
    let r = run_on(|cx, [h, c1, c2, c3, cb]| {
        scope(|s| {
            s.set_limit(4);
            s.spawn(cx.member("holder", h, 1, ms(10)));
            // Spawners arrive at 3ms, 1ms, 2ms, in that spawn order.
            for (name, child, arrive) in [("s1", c1, 3), ("s2", c2, 1), ("s3", c3, 2)] {
                s.spawn(move || {
                    fuseau::sleep(ms(arrive))?;
                    cx.spawn_noting(s, name, cx.member(name, child, 2, ms(5)));
                    Ok(())
                });
            }
            fuseau::sleep(ms(4))?;
            cx.spawn_noting(s, "body", cx.member("body's", cb, 3, ms(5)));
            outlive_the_members()
        })
    });
    assert_eq!(r.data, [1, 2, 2, 2, 3]);
    r.assert_ok_log(&[
        "s2 waits @1ms",
        "s3 waits @2ms",
        "s1 waits @3ms",
        "body waits @4ms",
        "holder: ok @10ms",
        "s2 granted @10ms",
        "s3 granted @10ms",
        "s1 granted @10ms",
        "body granted @10ms",
        "s2: ok @15ms",
        "s3: ok @15ms",
        "s1: ok @15ms",
        "body's: ok @15ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn try_spawn_gives_the_closure_back_when_every_slot_is_taken() {
    let r = run_on(|cx, [a, b]| {
        scope(|s| {
            s.set_limit(1);
            let first = s
                .try_spawn(cx.member("a", a, 1, ms(10)))
                .ok()
                .expect("a free slot");
            let back = match s.try_spawn(cx.member("b", b, 2, ms(10))) {
                Ok(_) => panic!("the one slot is taken"),
                Err(f) => f,
            };
            assert_eq!(cx.drops.get(), 0, "the closure given back is intact");
            assert_eq!(s.running(), 1);
            first.join()?;
            assert_eq!(s.running(), 0);
            let second = s.try_spawn(back).ok().expect("a free slot again");
            second.join()?;
            Ok(())
        })
    });
    assert_eq!(r.data, [1, 2]);
    r.assert_ok_log(&["a: ok @10ms", "b: ok @20ms"]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_closure_given_back_by_try_spawn_may_be_dropped() {
    let r = run_on(|cx, [a, b]| {
        scope(|s| {
            s.set_limit(1);
            assert!(s.try_spawn(cx.member("a", a, 1, ms(10))).is_ok());
            let back = s.try_spawn(cx.member("b", b, 2, ms(10)));
            assert!(back.is_err());
            drop(back);
            assert_eq!(cx.drops.get(), 1, "dropped, never run");
            Ok(())
        })
    });
    assert_eq!(r.data, [1, 0]);
    r.assert_ok_log(&["a: ok @10ms"]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn lowering_the_limit_delays_later_spawns_until_enough_members_returned() {
    let r = run_on(|cx, [a, b, c, d, e]| {
        scope(|s| {
            s.set_limit(4);
            s.spawn(cx.member("a", a, 1, ms(10)));
            s.spawn(cx.member("b", b, 2, ms(20)));
            s.spawn(cx.member("c", c, 3, ms(30)));
            s.spawn(cx.member("d", d, 4, ms(40)));
            s.set_limit(2);
            assert_eq!(s.limit(), Some(2));
            assert_eq!(s.running(), 4, "lowering the limit stops no one");
            assert!(s.try_spawn(|| Ok(())).is_err());
            s.spawn(cx.member("e", e, 5, ms(5)));
            cx.note(&format!("e spawned, running {}", s.running()));
            outlive_the_members()
        })
    });
    assert_eq!(r.data, [1, 2, 3, 4, 5]);
    r.assert_ok_log(&[
        "a: ok @10ms",
        "b: ok @20ms",
        "c: ok @30ms",
        "e spawned, running 2 @30ms",
        "e: ok @35ms",
        "d: ok @40ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn raising_the_limit_releases_the_waiters_at_once() {
    let r = run_on(|cx, [a, b, c, d, w]| {
        scope(|s| {
            s.set_limit(3);
            s.spawn(move || {
                fuseau::sleep(ms(10))?;
                s.set_limit(5);
                cx.note("limit raised");
                fuseau::sleep(ms(20))?;
                *a = 1;
                Ok(())
            });
            s.spawn(cx.member("b", b, 2, ms(100)));
            s.spawn(move || {
                fuseau::yield_now()?;
                cx.spawn_noting(s, "w", cx.member("d", d, 4, ms(1)));
                *w = 5;
                Ok(())
            });
            cx.spawn_noting(s, "body", cx.member("c", c, 3, ms(1)));
            outlive_the_members()
        })
    });
    assert_eq!(r.data, [1, 2, 3, 4, 5]);
    r.assert_ok_log(&[
        "body waits @0ms",
        "w waits @0ms",
        "limit raised @10ms",
        "body granted @10ms",
        "w granted @10ms",
        "c: ok @11ms",
        "d: ok @11ms",
        "b: ok @100ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_limit_of_zero_panics_naming_set_limit() {
    let r = run(|cx| {
        scope(|s| {
            let payload = catch_unwind(AssertUnwindSafe(|| s.set_limit(0))).unwrap_err();
            cx.note(&panic_text(&*payload));
            assert_eq!(s.limit(), None);
            Ok(())
        })
    });
    r.result.unwrap();
    assert_eq!(r.log.len(), 1);
    assert!(r.log[0].contains("Scope::set_limit"), "{:?}", r.log);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_huge_limit_counts_as_the_largest_one() {
    let r = run(|_cx| {
        scope(|s| {
            s.set_limit(usize::MAX);
            assert!(s.limit().is_some());
            assert!(s.try_spawn(|| Ok(())).is_ok());
            Ok(())
        })
    });
    r.result.unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_at_the_limit_in_a_fiber_cancelled_before_the_call() {
    let r = run(|cx| {
        let ran = Cell::new(false);
        let v = scope(|s| {
            s.set_limit(2);
            AnyFiber::current().cancel();
            let member = s.spawn(cx.marks_ran(&ran));
            assert_eq!(cx.drops.get(), 1, "the closure was dropped");
            assert_eq!(s.running(), 0, "no slot was taken");
            assert!(s.try_spawn(|| Ok(())).is_ok(), "both slots are free");
            let joined = member.join();
            assert!(cx.failed("join", joined).is_cancelled());
            Ok(1)
        });
        cx.outcome("scope", &r_as_unit(&v));
        assert!(!ran.get());
        Ok(())
    });
    // The member `try_spawn` started was cancelled with the fiber: cut
    // short, so the scope returns the cancellation.
    r.assert_ok_log(&["join: Cancelled @0ms", "scope: Cancelled @0ms"]);
}

fn r_as_unit<T>(r: &Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_at_the_limit_cancelled_while_waiting_for_a_slot() {
    let r = run_on(|cx, [h, y, k]| {
        let ran = Cell::new(false);
        let waiter: OnceCell<AnyFiber> = OnceCell::new();
        scope(|s| {
            s.set_limit(3);
            s.spawn(cx.member("holder", h, 1, ms(10)));
            let w = s.spawn(|| {
                let x = s.spawn(cx.marks_ran(&ran));
                cx.outcome("w's spawn", &x.join());
                // Keeps its own slot a while, so that the holder's goes to
                // the next waiter.
                shield(|| fuseau::sleep(ms(50)))?;
                Ok(())
            });
            waiter.set(w.any()).unwrap();
            s.spawn(cx.canceller("w", &waiter, ms(5), ms(95), k));
            fuseau::yield_now()?;
            cx.spawn_noting(s, "body", cx.member("y", y, 2, ms(1)));
            outlive_the_members()
        })?;
        assert!(!ran.get(), "the cancelled spawn's closure never ran");
        Ok(())
    });
    assert_eq!(r.data, [1, 2, 3]);
    r.assert_ok_log(&[
        "body waits @0ms",
        "w cancelled @5ms",
        "w's spawn: Cancelled @5ms",
        "holder: ok @10ms",
        "body granted @10ms",
        "y: ok @11ms",
    ]);
    assert_eq!(r.drops, 3);
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_at_the_limit_cancelled_after_the_slot_was_granted() {
    let r = run_on(|cx, [h, x, q]| {
        let waiter: OnceCell<AnyFiber> = OnceCell::new();
        scope(|s| {
            s.set_limit(3);
            s.spawn(cx.member("holder", h, 1, ms(10)));
            let w = s.spawn(|| {
                fuseau::yield_now()?;
                let member = cx.spawn_noting(s, "w", cx.member("x", x, 2, ms(5)));
                let next = fuseau::yield_now();
                cx.outcome("w's next suspension point", &next);
                drop(member);
                next
            });
            waiter.set(w.any()).unwrap();
            // Wakes at 10ms right after the holder, whose return handed
            // its slot to `w`; cancels `w` before it runs again.
            s.spawn(cx.canceller("w", &waiter, ms(10), ms(20), q));
            Ok(())
        })?;
        cx.note("scope returned");
        Ok(())
    });
    assert_eq!(r.data, [1, 2, 3]);
    r.assert_ok_log(&[
        "w waits @0ms",
        "holder: ok @10ms",
        "w cancelled @10ms",
        "w granted @10ms",
        "w's next suspension point: Cancelled @10ms",
        "x: ok @15ms",
        "scope returned @30ms",
    ]);
}

// 20. Thread-bound types.

/// Compile-time check that `T` is not `Send` (as `static_assertions`'
/// `assert_not_impl_any!`): if it were, the two implementations would both
/// apply and the call below would be ambiguous.
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
struct IsSend;
impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}

trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
struct IsSync;
impl<T: ?Sized + Sync> AmbiguousIfSync<IsSync> for T {}

#[test]
fn scope_and_scoped_fiber_are_neither_send_nor_sync() {
    <Scope<'static, 'static> as AmbiguousIfSend<_>>::some_item();
    <Scope<'static, 'static> as AmbiguousIfSync<_>>::some_item();
    <ScopedFiber<'static, u32> as AmbiguousIfSend<_>>::some_item();
    <ScopedFiber<'static, u32> as AmbiguousIfSync<_>>::some_item();
}

// 21. A large scope.

const N: usize = 10_000;

/// `N` members, each borrowing an element of a `Vec` mutably and one of
/// another shared; member `i` sleeps `duration(i)`.
fn large_scope(duration: fn(usize) -> Duration) {
    let r = run(move |cx| {
        let mut values = vec![0u64; N];
        let source: Vec<u64> = (0..N as u64).collect();
        scope(|s| {
            for (i, (value, x)) in values.iter_mut().zip(&source).enumerate() {
                let guard = cx.drops.guard();
                s.spawn(move || {
                    let _guard = guard;
                    fuseau::sleep(duration(i))?;
                    *value = x * 2;
                    Ok(())
                });
            }
            Ok(())
        })?;
        assert_eq!(cx.drops.get(), N);
        assert!(values.iter().zip(&source).all(|(v, x)| *v == x * 2));
        Ok(())
    });
    r.result.unwrap();
    assert_eq!(r.drops, N);
}

#[test]
#[cfg_attr(miri, ignore)]
fn ten_thousand_members_finishing_in_spawn_order() {
    large_scope(|i| ms(i as u64 + 1));
}

#[test]
#[cfg_attr(miri, ignore)]
fn ten_thousand_members_each_borrowing_an_element() {
    // Finish in an order unlike the spawn order, many at once.
    large_scope(|i| ms((N - i) as u64 % 7));
}

// More exit paths and edge cases.

#[test]
#[cfg_attr(miri, ignore)]
fn a_member_failing_after_the_body_returned_ok_fails_the_scope() {
    let r = run_on(|cx, [a, b]| {
        let r = scope(|s| {
            s.spawn(cx.failing("b", b, ms(10), "late member failure"));
            s.spawn(cx.member_with_cleanup("a", a, 1, HOUR, Some(ms(1))));
            Ok("body value")
        });
        assert_eq!(cx.failed("scope", r).message(), "late member failure");
        fuseau::sleep(ms(1))?;
        Ok(())
    });
    r.assert_ok_log(&[
        "b fails @10ms",
        "a: Cancelled <- late member failure @11ms",
        "scope: Other @11ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn members_spawned_in_a_cancelled_fiber_never_run() {
    let r = run(|cx| {
        AnyFiber::current().cancel();
        let ran = Cell::new(false);
        let r = scope(|s| {
            let member = s.spawn(cx.marks_ran(&ran));
            cx.outcome("join", &member.join());
            assert_eq!(cx.drops.get(), 1);
            Ok(())
        });
        cx.outcome("scope", &r);
        assert!(!ran.get());
        Ok(())
    });
    r.assert_ok_log(&["join: Cancelled @0ms", "scope: Cancelled @0ms"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn members_spawned_in_a_failed_scope_never_run() {
    let r = run_on(|cx, [a]| {
        let ran = Cell::new(false);
        let r = scope(|s| {
            let failing = s.spawn(cx.failing("m", a, ms(10), "m failed"));
            let _ = failing.join();
            let late = s.spawn(cx.marks_ran(&ran));
            cx.outcome("late member", &late.join());
            Ok(())
        });
        cx.outcome("scope", &r);
        assert!(!ran.get());
        assert_eq!(cx.drops.get(), 2);
        Ok(())
    });
    r.assert_ok_log(&[
        "m fails @10ms",
        "late member: Cancelled <- m failed @10ms",
        "scope: Other @10ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_spawn_waiting_for_a_slot_fails_when_the_scope_fails() {
    let r = run_on(|cx, [a]| {
        let ran = Cell::new(false);
        let r = scope(|s| {
            s.set_limit(1);
            s.spawn(cx.failing("m", a, ms(10), "m failed"));
            let waiting = s.spawn(cx.marks_ran(&ran));
            assert_eq!(cx.drops.get(), 1, "the closure was dropped, never run");
            cx.outcome("waiting spawn", &waiting.join());
            Ok(())
        });
        cx.outcome("scope", &r);
        assert!(!ran.get());
        Ok(())
    });
    r.assert_ok_log(&[
        "m fails @10ms",
        "waiting spawn: Cancelled <- m failed @10ms",
        "scope: Other @10ms",
    ]);
    assert_eq!(r.drops, 2);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_scope_inside_a_shield_holds_the_members_with_the_fiber() {
    let r = run_cancelled_after(ms(10), |cx, [a]| {
        let r = shield(|| {
            scope(|s| {
                s.spawn(cx.member("a", a, 1, ms(30)));
                fuseau::sleep(ms(50))?;
                cx.note("body returns");
                Ok(())
            })
        });
        cx.outcome("shielded scope", &r);
        cx.logged("next suspension point", fuseau::yield_now())
    });
    assert!(r.result.unwrap_err().is_cancelled());
    assert_eq!(
        r.log,
        [
            "a: ok @30ms",
            "body returns @50ms",
            "shielded scope: ok @50ms",
            "next suspension point: Cancelled @50ms",
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn handles_report_id_name_and_state_and_untyped_handles_outlive_the_scope() {
    let r = run_on(|cx, [a]| {
        let mut untyped = None;
        scope(|s| {
            let m = s.spawn_with(
                Builder::new().name("worker"),
                cx.member("worker", a, 1, ms(10)),
            );
            assert_eq!(m.name(), Some("worker"));
            assert!(!m.is_done() && !m.is_cancelled());
            let any = m.any();
            assert_eq!(any.id(), m.id());
            assert_eq!(any.parent().map(|p| p.id()), Some(AnyFiber::current().id()));
            let text = format!("{m:?} {s:?}");
            assert!(
                text.contains("ScopedFiber") && text.contains("Scope"),
                "{text}"
            );
            assert!(text.contains("running: 1"), "{text}");
            untyped = Some(any);
            Ok(())
        })?;
        let any = untyped.unwrap();
        assert!(any.is_done());
        assert!(!any.is_cancelled());
        Ok(())
    });
    r.assert_ok_log(&["worker: ok @10ms"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn teardown_while_the_body_ignores_cancellation_and_some_members_never_started() {
    let (sim, t) = (Sim::new(), Tracking::default());
    let tt = t.clone();
    let late = common::Slot::new();
    let late_handle = late.clone();
    let owner = sim.spawn(move || {
        let data = Cell::new(7);
        let _poison = tt.poison(&data, "owner");
        scope(|s| -> Result<()> {
            s.spawn(tt.stubborn("started", vec![&data]));
            fuseau::yield_now()?;
            // Spawned, but the teardown comes before it runs.
            let late = s.spawn(tt.stubborn("never started", vec![&data]));
            assert!(format!("{:?}", late.any()).contains("NotStarted"));
            late_handle.put(late.any());
            // Disposal from inside cancels everything now (so that the
            // second member never starts).
            fuseau::Scheduler::current().dispose();
            ignore_cancellation()
        })
    });
    sim.run_iterations(1);
    // The stubborn fibers are still there: tear down from outside.
    sim.sched.dispose();
    assert!(!sim.sched.active());
    let late = late.take();
    assert!(late.is_done());
    assert!(owner.is_done());
    assert_eq!(t.drops.get(), 2);
    let log = t.log.take();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2], "owner unwound", "{log:?}");
    assert!(log.contains(&"started saw [7]".to_string()), "{log:?}");
    assert!(
        log.contains(&"never started saw [7]".to_string()),
        "{log:?}"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_member_whose_own_deadline_expired_fails_the_scope() {
    let r = run_on(|cx, [a]| {
        let r: Result<()> = scope(|s| {
            s.spawn(|| with_timeout(ms(10), || fuseau::sleep(HOUR)));
            s.spawn(cx.member("sibling", a, 1, HOUR));
            Ok(())
        });
        let e = cx.failed("scope", r);
        assert!(e.is_timeout());
        assert_eq!(e.message(), "fuseau::with_timeout(10ms) expired");
        // The fiber is not cancelled.
        fuseau::sleep(ms(1))?;
        Ok(())
    });
    r.assert_ok_log(&[
        "sibling: Cancelled <- timed out: fuseau::with_timeout(10ms) expired @10ms",
        "scope: Timeout @10ms",
    ]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_cancelled_error_a_member_makes_itself_is_a_failure() {
    let r = run_on(|cx, [a]| {
        let r: Result<()> = scope(|s| {
            s.spawn(|| -> Result<()> {
                fuseau::sleep(ms(10))?;
                Err(Error::new(ErrorKind::Cancelled, "gave up"))
            });
            s.spawn(cx.member("sibling", a, 1, HOUR));
            Ok(())
        });
        assert_eq!(cx.failed("scope", r).message(), "gave up");
        Ok(())
    });
    r.assert_ok_log(&[
        "sibling: Cancelled <- cancelled: gave up @10ms",
        "scope: Cancelled @10ms",
    ]);
}

/// A member's failure that is itself a cancellation error (its own
/// deadline) reaches the body and its siblings wrapped, as any failure: a
/// `Cancelled` error whose source is the failure, not the member's
/// `Timeout` (they were under no deadline); the scope returns the failure.
#[test]
#[cfg_attr(miri, ignore)]
fn a_member_failing_with_a_cancellation_error_reaches_the_others_wrapped() {
    let r = run_on(|cx, [a]| {
        let failure = RefCell::new(None);
        let seen = RefCell::new(None);
        let r: Result<()> = scope(|s| {
            s.spawn(|| {
                let r = with_timeout(ms(10), || fuseau::sleep(HOUR));
                *failure.borrow_mut() = r.clone().err();
                r
            });
            s.spawn(cx.member("sibling", a, 1, HOUR));
            *seen.borrow_mut() = fuseau::sleep(HOUR).err();
            Ok(())
        });
        cx.outcome("scope", &r);
        let failure = failure.take().unwrap();
        assert!(r.unwrap_err().ptr_eq(&failure));
        let seen = seen.take().unwrap();
        assert!(seen.is_cancelled());
        let source = std::error::Error::source(&seen).unwrap();
        assert!(source.downcast_ref::<Error>().unwrap().ptr_eq(&failure));
        Ok(())
    });
    r.assert_ok_log(&[
        "sibling: Cancelled <- timed out: fuseau::with_timeout(10ms) expired @10ms",
        "scope: Timeout @10ms",
    ]);
}
