//! The rules of structured concurrency: cancellation flows down, failure
//! flows up, and a fiber completes only after its children.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::state::{Stage, PROPAGATE, SHIELDED, SHIELDED_CHILD, SHIELD_DEADLINE};
use super::{forbid_waits, CancelCallback, Extras, Origin, Task};
use crate::error::{Error, ErrorKind, Result};
use crate::timer::TimerKey;

/// Links `child` under `parent`. A child born under a cancelled parent is
/// cancelled at once (it will never run its body), unless a shield of the
/// parent holds that cancellation: a child linked while its parent is
/// shielded is held with it (`SHIELDED_CHILD`), and is cancelled when the
/// parent's outermost shield ends ([`Task::exit_shield`]).
pub(crate) fn link(parent: &Task, child: &Rc<Task>) {
    link_under(parent, child);
    if parent.header().state.has(SHIELD_DEADLINE) {
        link_in_scope(parent, child);
    }
}

/// Links `child` under `parent` as a member of `parent`'s fiber scope
/// number `scope` (`crate::scope`), wherever the spawn came from: the
/// scope's failure, or the expiry of a deadline scope around it, cancels
/// the child (at once if one has happened already). With `fails_scope`, the
/// child's own failure fails that scope instead of its parent
/// ([`fail`]).
pub(crate) fn link_member(parent: &Task, child: &Rc<Task>, scope: u64, fails_scope: bool) {
    link_under(parent, child);
    child.header().with_extras(|x| {
        x.member = true;
        x.fails_scope = fails_scope;
    });
    place_in_scope(parent, child, scope);
}

/// What every link does: the child joins its parent's children, is held by
/// its shield, and is cancelled at once under a cancelled parent.
fn link_under(parent: &Task, child: &Rc<Task>) {
    let ph = parent.header();
    ph.with_children(|children| {
        let index = u32::try_from(children.len()).expect("fewer than 2^32 children per fiber");
        child.header().index_in_parent.set(index);
        children.push(child.clone());
    });
    // The link is new: nothing to drop.
    child.header().parent.set(Some(parent.to_rc()));
    if ph.state.has(SHIELDED) {
        child.header().state.set_shielded_child(true);
    }
    if let Some(e) = ph.cancel_error() {
        cancel(child, Error::passed_to_child(&e), Origin::Parent);
    }
}

/// A child linked while its parent is in a deadline scope
/// (`crate::with_timeout`) belongs to the innermost one: its expiry (or
/// that of an enclosing one) cancels the child. Under a scope that has
/// expired already, the child is cancelled at once.
#[cold]
fn link_in_scope(parent: &Task, child: &Rc<Task>) {
    let innermost = parent
        .header()
        .read_extras(|x| Some(x.limits.iter().rev().find(|l| l.scope != 0)?.scope));
    if let Some(scope) = innermost {
        place_in_scope(parent, child, scope);
    }
}

/// `child`, just linked under `parent`, belongs to `parent`'s scope number
/// `scope` (a deadline scope or a fiber scope): the end of that scope, or
/// of one around it, cancels it; at once if one has ended already.
fn place_in_scope(parent: &Task, child: &Rc<Task>, scope: u64) {
    child.header().with_extras(|x| x.parent_scope = scope);
    let ended = parent.header().read_extras(|x| {
        x.limits
            .iter()
            .find(|l| l.scope != 0 && l.scope <= scope && l.fired)
            .map(Limit::error)
    });
    if let Some(e) = ended {
        cancel(child, e, Origin::Parent);
    }
}

/// What set a limit (the error names it).
#[derive(Clone, Debug)]
pub(crate) enum LimitKind {
    /// `shield_for`.
    Shield,
    /// `with_timeout(duration)`.
    Timeout(Duration),
    /// `with_deadline(instant)`.
    Deadline(Instant),
    /// A fiber scope (`crate::scope`): no deadline, it ends when it fails
    /// (a member failed, or its body returned an error or panicked), at the
    /// instant given, with the error given.
    Scope(Option<(Instant, Error)>),
}

/// An active limit of a fiber (in its extras, innermost last): a time
/// limit, or a fiber scope, which ends when it fails.
pub(crate) struct Limit {
    /// Its timer, if it has a deadline: the deadline, and the key to
    /// disarm it. `None` for a fiber scope.
    key: Option<TimerKey>,
    /// 0 for a `shield_for`; the scope's number otherwise (deadline scopes
    /// and fiber scopes share the numbering).
    scope: u64,
    kind: LimitKind,
    /// The scope's end was acted on (its children cancelled).
    fired: bool,
}

impl Limit {
    /// When the limit passed, if it has by `now`: its deadline, or the
    /// instant its fiber scope failed.
    fn passed_at(&self, now: Instant) -> Option<Instant> {
        match (&self.key, &self.kind) {
            (Some(key), _) => (key.0 <= now).then_some(key.0),
            (None, LimitKind::Scope(failed)) => failed.as_ref().map(|(at, _)| *at),
            (None, _) => None,
        }
    }

    /// The error of the body's suspension points once the limit has
    /// passed, which names it: `Timeout` for a time limit; for a failed
    /// fiber scope, a cancellation caused by the failure.
    pub(crate) fn error(&self) -> Error {
        match &self.kind {
            // Wrapped even when the failure is itself a cancellation (a
            // member's own expired deadline): the others were not cut
            // short by that deadline but by the scope's failure.
            LimitKind::Scope(failed) => match failed {
                Some((_, cause)) => Error::with_source(
                    ErrorKind::Cancelled,
                    "its fuseau::scope failed",
                    cause.clone(),
                ),
                None => Error::cancelled(),
            },
            LimitKind::Shield => Error::new(
                ErrorKind::Timeout,
                "the time limit of a fuseau::shield_for expired",
            ),
            LimitKind::Timeout(d) => Error::new(
                ErrorKind::Timeout,
                format!("fuseau::with_timeout({d:?}) expired"),
            ),
            LimitKind::Deadline(at) => Error::new(
                ErrorKind::Timeout,
                format!("fuseau::with_deadline({at:?}) expired"),
            ),
        }
    }
}

/// The cancel callbacks of one fiber, to run once the subtree is marked.
type Pending = (Rc<Task>, Vec<(u64, CancelCallback)>, Error);

/// Cancels `task` and, transitively, its children, and wakes the ones that
/// are suspended. Cancellation is sticky: the first reason wins and a fiber
/// that is done is left alone.
///
/// In three steps, so that no user code runs before the whole subtree is
/// marked: mark every fiber (breadth-first: the fiber itself, then its
/// children in spawn order, then theirs; iterative, so deep trees cannot
/// overflow the canceller's stack), queue the suspended ones in that order,
/// then run the cancel callbacks (newest first within a fiber). Callbacks
/// run on the canceller's stack and cannot wait (`forbid_waits`): a
/// cancellation returns at once. A callback that panics fails its fiber.
///
/// A fiber inside a shield (`crate::shield`; not force-unwinding) is
/// marked, and its other children are cancelled, but it is not woken, its
/// callbacks do not run and the children linked during its shield are
/// skipped: all that waits for the end of its outermost shield
/// ([`Task::exit_shield`]).
pub(crate) fn cancel(task: &Task, error: Error, origin: Origin) {
    let mut marked: Vec<Rc<Task>> = Vec::new();
    let mut callbacks: Vec<Pending> = Vec::new();
    let mut work: VecDeque<(Rc<Task>, Error, Origin)> = VecDeque::new();
    let mut next = Some((task.to_rc(), error, origin));
    while let Some((t, e, o)) = next.take().or_else(|| work.pop_front()) {
        let h = t.header();
        if h.state.stage() == Stage::Done || !h.state.cancel() {
            continue;
        }
        let held = h.is_shield_holding();
        let cbs = h.with_extras(|x| {
            x.outcome.cancelled = Some((e.clone(), o));
            if held {
                Vec::new()
            } else {
                std::mem::take(&mut x.callbacks)
            }
        });
        let for_children = Error::passed_to_child(&e);
        h.with_children(|children| {
            work.extend(
                children
                    .iter()
                    .filter(|c| !(held && c.header().state.has(SHIELDED_CHILD)))
                    .map(|c| (c.clone(), for_children.clone(), Origin::Parent)),
            );
        });
        if !cbs.is_empty() {
            callbacks.push((t.clone(), cbs, e));
        }
        if !held {
            marked.push(t);
        }
    }
    for t in &marked {
        if t.header().state.stage() == Stage::Suspended {
            t.make_ready();
        }
    }
    run_callbacks(callbacks);
}

/// Runs cancel callbacks (newest first within a fiber), none of which may
/// wait; a callback that panics fails its fiber.
fn run_callbacks(callbacks: Vec<Pending>) {
    let mut panics = Vec::new();
    for (t, cbs, e) in callbacks {
        for (_, cb) in cbs.into_iter().rev() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| forbid_waits(|| cb(&e)))) {
                panics.push((t.clone(), Error::from_panic(payload)));
            }
        }
    }
    for (t, e) in panics {
        fail(&t, e);
    }
}

/// The children of `task` whose extras satisfy `test` (a child without
/// extras belongs to no scope).
fn children_where(task: &Task, test: impl Fn(&Extras) -> bool) -> Vec<Rc<Task>> {
    let mut children = task.header().children();
    children.retain(|c| c.header().read_extras(|x| Some(test(x))).unwrap_or(false));
    children
}

/// Cancels the children of `task` linked inside its scope number `scope`
/// (or inside a scope nested in it: their numbers are higher) with `error`.
fn cancel_inside(task: &Task, scope: u64, error: &Error) {
    for c in children_where(task, |x| x.parent_scope >= scope) {
        cancel(&c, error.clone(), Origin::Parent);
    }
}

impl Task {
    /// The running fiber enters a shield (`crate::shield`), with the timer
    /// of its time limit if it has one (`shield_for`).
    pub(crate) fn enter_shield(&self, limit: Option<TimerKey>) {
        let h = self.header();
        let outermost = h.with_extras(|x| {
            x.shield_depth += 1;
            x.shield_marks.push(x.limits.len());
            x.limits.extend(limit.map(|key| Limit {
                key: Some(key),
                scope: 0,
                kind: LimitKind::Shield,
                fired: false,
            }));
            x.shield_depth == 1
        });
        if outermost {
            h.state.set_shielded(true);
        }
        if limit.is_some() {
            h.state.set_shield_deadline(true);
        }
    }

    /// The running fiber enters a deadline scope (`crate::with_timeout`,
    /// `with_deadline`) whose timer is `limit` (`None`: a deadline too far
    /// to represent, no limit). Fibers it links from now on belong to the
    /// scope ([`link`]).
    pub(crate) fn enter_deadline_scope(&self, limit: Option<TimerKey>, kind: LimitKind) {
        let Some(key) = limit else { return };
        self.header().with_extras(|x| {
            x.last_scope += 1;
            let scope = x.last_scope;
            x.limits.push(Limit {
                key: Some(key),
                scope,
                kind,
                fired: false,
            });
        });
        self.header().state.set_shield_deadline(true);
    }

    /// The running fiber enters a fiber scope (`crate::scope`); returns its
    /// number, which its members are linked with ([`link_member`]). Fibers
    /// it links itself from now on belong to the scope too ([`link`]), as
    /// in a deadline scope.
    pub(crate) fn enter_fiber_scope(&self) -> u64 {
        let scope = self.header().with_extras(|x| {
            x.last_scope += 1;
            let scope = x.last_scope;
            x.limits.push(Limit {
                key: None,
                scope,
                kind: LimitKind::Scope(None),
                fired: false,
            });
            scope
        });
        self.header().state.set_shield_deadline(true);
        scope
    }

    /// Fails the running fiber's fiber scope number `scope` with `error`,
    /// if it is active and has not failed yet: the fibers linked inside it
    /// are cancelled, and the code inside it (the scope's body, in this
    /// fiber) is interrupted, as by an expired deadline scope. Does
    /// nothing if the scope had failed already or is over.
    pub(crate) fn fail_fiber_scope(&self, scope: u64, error: Error) {
        let h = self.header();
        let now = h.sched().map_or_else(Instant::now, |s| s.now());
        let failed = h.with_extras(|x| {
            let l = x
                .limits
                .iter_mut()
                .find(|l| l.scope == scope && matches!(l.kind, LimitKind::Scope(None)))?;
            l.kind = LimitKind::Scope(Some((now, error)));
            l.fired = true;
            Some(l.error())
        });
        let Some(e) = failed else { return };
        cancel_inside(self, scope, &e);
        self.limits_changed();
    }

    /// The running fiber leaves its fiber scope number `scope` (the
    /// innermost scope it is in); returns the error the scope failed with,
    /// if it did. The fibers linked inside it that are still running (its
    /// members are done by now) become ordinary children.
    pub(crate) fn exit_fiber_scope(&self, scope: u64) -> Option<Error> {
        let h = self.header();
        let (failure, left) = h.with_extras(|x| {
            let i = x.limits.iter().rposition(|l| l.scope == scope);
            let failure = i.and_then(|i| match x.limits.remove(i).kind {
                LimitKind::Scope(failed) => failed.map(|(_, e)| e),
                _ => None,
            });
            (failure, !x.limits.is_empty())
        });
        h.state.set_shield_deadline(left);
        failure
    }

    /// The children of the running fiber that are members of its fiber
    /// scope number `scope` (`crate::scope`) and not done yet.
    pub(crate) fn scope_members(&self, scope: u64) -> Vec<Rc<Task>> {
        children_where(self, |x| x.parent_scope == scope && x.member)
    }

    /// The running fiber leaves the deadline scope it entered last (`limit`
    /// as given to [`enter_deadline_scope`](Task::enter_deadline_scope);
    /// the caller disarms the timer). The scope's children that are not
    /// cancelled yet become ordinary children.
    pub(crate) fn exit_deadline_scope(&self, limit: Option<TimerKey>) {
        self.remove_limit(limit);
    }

    /// Removes the time limit whose timer is `limit`, if any.
    fn remove_limit(&self, limit: Option<TimerKey>) {
        let h = self.header();
        let left = h.with_extras(|x| {
            if let Some(key) = limit {
                if let Some(i) = x.limits.iter().rposition(|l| l.key == Some(key)) {
                    x.limits.remove(i);
                }
            }
            !x.limits.is_empty()
        });
        h.state.set_shield_deadline(left);
    }

    /// The error of the limit of the running code that passed first by
    /// `now` (the outermost among equals), if one has: a time limit whose
    /// deadline passed, or a fiber scope that failed; limits entered before
    /// the innermost shield are held by it (see `shield_marks`). The
    /// deadline scopes that have passed, held or not, are acted on first,
    /// once each: the fibers linked inside them are cancelled with their
    /// `Timeout` (a fiber scope acts when it fails:
    /// [`fail_fiber_scope`](Task::fail_fiber_scope)).
    pub(crate) fn expire_limits(&self, now: Instant) -> Option<Error> {
        let h = self.header();
        let (first, newly) = h.with_extras(|x| {
            let mark = x.shield_marks.last().copied().unwrap_or(0);
            let first = x
                .limits
                .get(mark..)
                .unwrap_or_default()
                .iter()
                .filter_map(|l| Some((l.passed_at(now)?, l)))
                .min_by_key(|(at, _)| *at)
                .map(|(_, l)| l.error());
            let mut newly: Vec<(Instant, u64, Error)> = Vec::new();
            for l in x.limits.iter_mut() {
                if l.scope == 0 || l.fired {
                    continue;
                }
                if let Some(at) = l.passed_at(now) {
                    l.fired = true;
                    newly.push((at, l.scope, l.error()));
                }
            }
            (first, newly)
        });
        // Earliest first (outermost among equals): a child inside several
        // expired scopes gets the error of the one that expired first.
        let mut newly = newly;
        newly.sort_by_key(|(at, scope, _)| (*at, *scope));
        for (_, scope, e) in newly {
            cancel_inside(self, scope, &e);
        }
        first
    }

    /// The running fiber leaves the shield it entered last (`limit` as
    /// given to [`enter_shield`](Task::enter_shield); the caller disarms the
    /// timer). When the outermost shield ends, what it held takes effect: if
    /// the fiber was cancelled meanwhile, its cancel callbacks run and the
    /// children linked during the shield are cancelled (the fiber itself
    /// learns it at its next suspension point); otherwise those children
    /// become ordinary children, reached by its later cancellation.
    pub(crate) fn exit_shield(&self, limit: Option<TimerKey>) {
        let h = self.header();
        let outermost = h.with_extras(|x| {
            x.shield_depth = x.shield_depth.checked_sub(1).expect("shields are nested");
            x.shield_marks.pop();
            x.shield_depth == 0
        });
        self.remove_limit(limit);
        if !outermost {
            return;
        }
        h.state.set_shielded(false);
        let mut held_children = Vec::new();
        h.with_children(|children| {
            for c in children.iter() {
                if c.header().state.has(SHIELDED_CHILD) {
                    c.header().state.set_shielded_child(false);
                    held_children.push(c.clone());
                }
            }
        });
        let Some(e) = h.cancel_error() else { return };
        let for_children = Error::passed_to_child(&e);
        for child in &held_children {
            cancel(child, for_children.clone(), Origin::Parent);
        }
        let cbs = h.take_extra(|x| &mut x.callbacks);
        if !cbs.is_empty() {
            run_callbacks(vec![(self.to_rc(), cbs, e)]);
        }
    }
}

/// Records that `task` failed with `error` and applies the rules: the fiber
/// is cancelled (so are its children), and unless it opted out, or the error
/// is merely the cancellation it received from outside, its parent fails
/// with the same error, and so on up the tree. The first failure of a fiber
/// is its result; later ones are ignored.
pub(crate) fn fail(task: &Task, error: Error) {
    let mut current = task.to_rc();
    loop {
        let h = current.header();
        if h.state.stage() == Stage::Done || h.failure().is_some() {
            return;
        }
        h.with_extras(|x| x.outcome.failure = Some(error.clone()));
        let cancelled_from_outside = matches!(
            h.cancel_origin(),
            Some(Origin::Parent | Origin::Handle | Origin::Scheduler)
        );
        cancel(&current, error.clone(), Origin::Own);
        if cancelled_from_outside && error.is_cancellation() {
            return;
        }
        let Some(parent) = h.parent() else { return };
        if !h.state.has(PROPAGATE) {
            // A member of a fiber scope fails the scope, not its parent.
            let scope = h.read_extras(|x| x.fails_scope.then_some(x.parent_scope));
            if let Some(scope) = scope {
                parent.fail_fiber_scope(scope, error);
            }
            return;
        }
        current = parent;
    }
}

/// The body of `task` has returned (or will never run): record the outcome
/// and complete the fiber if nothing else holds it open.
pub(crate) fn body_finished(task: &Task, result: Result<()>) {
    task.header().state.finish();
    if let Err(e) = result {
        fail(task, e);
    }
    try_complete(task);
}

/// Finishes a fiber whose body will never run, with `error`. Dropping the
/// body runs user code: a panic there becomes the fiber's error instead of
/// unwinding into the caller (the scheduler, or a refused spawn).
pub(crate) fn never_run(task: &Task, error: Error) {
    let dropped = catch_unwind(AssertUnwindSafe(|| task.discard_body()));
    let error = dropped.map_or_else(Error::from_panic, |()| error);
    body_finished(task, Err(error));
}

/// Makes sure that the body of `task`, a fiber that is not running, never
/// runs again, without running anything of it but the drop of a body that
/// never started: one not started is finished as by [`never_run`]; a
/// suspended one has its stack leaked (never resumed, never unwound, so
/// what the stack holds is never touched again) and is finished with
/// `error`. For `crate::scope`, whose owner's stack is being force-unwound
/// while a member has not finished (not expected: the teardown unwinds
/// children first).
pub(crate) fn abandon(task: &Task, error: Error) {
    let h = task.header();
    match h.state.stage() {
        // A run-queue entry left behind is stale: the run loop skips
        // fibers that are finishing.
        Stage::NotStarted => never_run(task, error),
        Stage::Suspended => {
            h.state.unwind();
            if let Some(coroutine) = h.coroutine.borrow_mut().take() {
                std::mem::forget(coroutine);
            }
            body_finished(task, Err(error));
        }
        Stage::Running | Stage::Finishing | Stage::Done => {}
    }
}

/// Completes `task` if its body has returned, its children are done and its
/// micro-tasks have run; then its parent if that was its last child, and so
/// on up.
pub(crate) fn try_complete(task: &Task) {
    let mut current = task.to_rc();
    loop {
        let h = current.header();
        if h.state.stage() != Stage::Finishing
            || h.n_children() != 0
            || h.pending_micro_tasks() != 0
        {
            return;
        }
        h.state.complete();
        let sched = h.sched();
        // Taken whole: what it holds (callbacks, wakers, the hook) is user
        // code, run or dropped below with no borrow held, and never allowed
        // to unwind into the scheduler. All but the outcome: how the fiber
        // was cancelled or failed is read after it is done (its joiners and
        // handles, the hook below), so it goes back in at once, in the same
        // box.
        let extras = match h.extras.take() {
            Some(mut boxed) => {
                let mut extras = std::mem::take(&mut *boxed);
                if !extras.outcome.is_empty() {
                    boxed.outcome = std::mem::take(&mut extras.outcome);
                    h.extras.set(Some(boxed));
                }
                extras
            }
            None => Extras::default(),
        };
        let Extras {
            outcome: _,
            done_wakers,
            on_done,
            callbacks,
            deadlines,
            locals,
            next_callback: _,
            micro_tasks: _,
            shared_waits: _,
            shield_depth: _,
            limits: _,
            shield_marks: _,
            last_scope: _,
            parent_scope: _,
            member: _,
            fails_scope: _,
        } = extras;
        if let Some(sched) = &sched {
            for key in deadlines {
                sched.remove_timer(key);
            }
        }
        // Callbacks never run; locals are normally dropped on the fiber's
        // stack already (a forced unwind can leave some behind).
        let _ = catch_unwind(AssertUnwindSafe(move || drop((callbacks, locals))));
        for joiner in h.joiners.take() {
            joiner.wake();
        }
        for waker in done_wakers {
            let _ = catch_unwind(AssertUnwindSafe(move || waker.wake()));
        }
        if let Some(hook) = on_done {
            let _ = catch_unwind(AssertUnwindSafe(hook));
        }
        let released = sched.as_ref().and_then(|s| s.release(&current));
        drop(released);
        let Some(parent) = h.parent.take() else {
            return;
        };
        let removed = parent.header().with_children(|siblings| {
            let index = h.index_in_parent.get();
            let removed = siblings.swap_remove(index as usize);
            if let Some(moved) = siblings.get(index as usize) {
                moved.header().index_in_parent.set(index);
            }
            removed
        });
        drop(removed);
        current = parent;
    }
}
