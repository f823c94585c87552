//! Disposing of a scheduler: cancel every fiber, let them return, unwind
//! the stacks of those that do not.
//!
//! Always inside the scheduler's context (an `Enter` guard held by the
//! caller: `Scheduler::dispose` or the tail of `run_iteration`), so that a
//! fiber run or unwound here sees itself as the running fiber and its own
//! scheduler as the current one, never another scheduler's fiber.
//!
//! # `panic = "abort"`
//!
//! Unwinding a suspended stack is a panic (corosensei's forced unwind),
//! which a binary built with `panic = "abort"` cannot do: it would abort the
//! process. There, the stacks of fibers still suspended after the graceful
//! phase are leaked instead (never freed, their destructors never run), and
//! the disposal says how many on stderr. A fiber record is likewise never
//! freed while its coroutine is suspended: `Header`'s drop leaks such a
//! coroutine rather than unwind it from inside a dying record.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use slab::Slab;

use super::context::{switch_in, switch_out};
use super::{Phase, SchedInner};
use crate::error::{Error, ErrorKind};
use crate::task::{self, Origin, Stage, Task};

/// `true` if this build cannot unwind (`panic = "abort"`).
const CANNOT_UNWIND: bool = cfg!(panic = "abort");

/// Every fiber of `fibers`, each after its descendants (a post-order walk
/// from the roots).
fn children_first(fibers: &Slab<Rc<Task>>) -> Vec<Rc<Task>> {
    let mut order = Vec::with_capacity(fibers.len());
    let mut stack: Vec<(Rc<Task>, bool)> = fibers
        .iter()
        .filter(|(_, t)| t.header().parent().is_none())
        .map(|(_, t)| (t.clone(), false))
        .collect();
    stack.reverse();
    while let Some((task, expanded)) = stack.pop() {
        if expanded {
            order.push(task);
            continue;
        }
        stack.push((task.clone(), true));
        let children = task.header().children();
        stack.extend(children.into_iter().rev().map(|c| (c, false)));
    }
    if order.len() < fibers.len() {
        // Not expected (a fiber's parent is on its scheduler and not done
        // before it), but no fiber may be skipped: the rest go last.
        let seen: HashSet<*const Task> = order.iter().map(Rc::as_ptr).collect();
        let rest: Vec<Rc<Task>> = fibers
            .iter()
            .filter(|(_, t)| !seen.contains(&Rc::as_ptr(t)))
            .map(|(_, t)| t.clone())
            .collect();
        order.extend(rest);
    }
    order
}

fn disposed() -> Error {
    Error::new(ErrorKind::Cancelled, "the scheduler was disposed of")
}

impl SchedInner {
    /// Cancels every fiber and stops accepting work. Teardown proper is
    /// [`SchedInner::teardown`].
    pub(super) fn begin_dispose(&self) {
        if self.phase.get() != Phase::Active {
            return;
        }
        self.phase.set(Phase::Disposing);
        self.inbox.close();
        let roots: Vec<Rc<Task>> = self
            .fibers
            .borrow()
            .iter()
            .map(|(_, t)| t.clone())
            .filter(|t| t.header().parent().is_none())
            .collect();
        let error = disposed();
        for root in roots {
            task::cancel(&root, error.clone(), Origin::Scheduler);
        }
    }

    /// Finishes every fiber: first lets the (cancelled) fibers run so that
    /// they return by themselves, then force-unwinds the stacks of those that
    /// still have not, so that every destructor runs. Must be called inside
    /// the scheduler's context, outside its fibers.
    pub(super) fn teardown(&self) {
        self.begin_dispose();
        if self.phase.get() == Phase::Disposed {
            return;
        }
        // Messages that arrived before the gate closed: remote spawns become
        // fibers (cancelled at once, they never run: their joiners see
        // `Inactive`), wake-ups and cancels take effect.
        self.drain_inbox();
        // Graceful: cancelled fibers fail at every suspension point, so most
        // return within a run or two. Bounded, for fibers that ignore it.
        let mut budget = 16 * (self.fibers.borrow().len() + 4);
        while budget > 0 {
            self.run_micro_tasks();
            let next = self.run_queue.borrow_mut().pop_front();
            let Some(task) = next else { break };
            self.resume(task);
            budget -= 1;
        }
        // What is still queued will not run.
        let queued = std::mem::take(&mut *self.run_queue.borrow_mut());
        for task in &queued {
            task.header().state().dequeue();
        }
        drop(queued);
        // Forced: unwind what is left, children before their parents (a
        // member of a fiber scope borrows from its parent's stack:
        // `crate::scope` relies on this order). Completion cascades up the
        // tree, so the registry empties once every body has finished. A
        // destructor that spawns is refused (the scheduler is not active),
        // but the loop would finish such a fiber too.
        loop {
            let left: Vec<Rc<Task>> = children_first(&self.fibers.borrow())
                .into_iter()
                .filter(|t| matches!(t.header().stage(), Stage::NotStarted | Stage::Suspended))
                .collect();
            if left.is_empty() {
                break;
            }
            for task in left {
                self.force_finish(&task);
            }
        }
        self.run_micro_tasks();
        // No fiber will run again: unmap every stack not in use.
        self.stacks.borrow_mut().release();
        self.phase.set(Phase::Disposed);
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        drop(timers);
        // Remote closures are dropped, not run: their owners see `Inactive`.
        self.inbox.discard();
        // Fibers still registered are ones whose completion could not
        // cascade: unlink them so no reference cycle outlives the scheduler.
        let rest: Vec<Rc<Task>> = self.fibers.borrow_mut().drain().collect();
        drop(rest);
        self.report_leaks();
    }

    fn force_finish(&self, task: &Rc<Task>) {
        let h = task.header();
        let error = h.cancel_error().unwrap_or_else(disposed);
        match h.stage() {
            Stage::NotStarted => {
                h.state().dequeue();
                task::never_run(task, error);
            }
            Stage::Suspended => {
                h.state().unwind();
                let coroutine = h.coroutine.borrow_mut().take();
                if let Some(mut coroutine) = coroutine {
                    if CANNOT_UNWIND {
                        std::mem::forget(coroutine);
                        self.leaked_stacks.set(self.leaked_stacks.get() + 1);
                    } else {
                        self.running.set(true);
                        let previous = switch_in(task);
                        // A destructor that panics while the stack unwinds
                        // aborts the process (a panic during unwinding);
                        // anything else is stopped here so that it never
                        // reaches the caller.
                        let _ = catch_unwind(AssertUnwindSafe(|| coroutine.force_unwind()));
                        switch_out(previous);
                        self.running.set(false);
                        if coroutine.done() {
                            self.stacks
                                .borrow_mut()
                                .give_back(h.stack_size(), coroutine.into_stack());
                        } else {
                            std::mem::forget(coroutine);
                            self.leaked_stacks.set(self.leaked_stacks.get() + 1);
                        }
                    }
                }
                task::body_finished(task, Err(error));
            }
            Stage::Running | Stage::Finishing | Stage::Done => {}
        }
    }

    /// Last resort of `Drop` (see ownership rule 3 in `mod.rs`): nothing
    /// may run here, so suspended stacks are leaked, not unwound.
    pub(super) fn leak_remaining(&self) {
        let fibers: Vec<Rc<Task>> = match self.fibers.try_borrow_mut() {
            Ok(mut fibers) => fibers.drain().collect(),
            Err(_) => return,
        };
        for task in &fibers {
            let coroutine = task.header().coroutine.borrow_mut().take();
            if let Some(coroutine) = coroutine {
                std::mem::forget(coroutine);
                self.leaked_stacks.set(self.leaked_stacks.get() + 1);
            }
        }
        self.report_leaks();
        // The records may still form reference cycles (parent/child links);
        // leaking them is sound, and this path is not expected to run.
        std::mem::forget(fibers);
    }

    fn report_leaks(&self) {
        let leaked = self.leaked_stacks.replace(0);
        if leaked > 0 {
            eprintln!(
                "fuseau: {leaked} suspended fiber stack(s) could not be unwound when the \
                 scheduler was disposed of (this build uses panic = \"abort\", so nothing \
                 can unwind); they are leaked and the destructors of their values do not run"
            );
        }
    }
}
