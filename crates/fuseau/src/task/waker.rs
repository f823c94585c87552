//! `Waker`s for fibers: [`RemoteWakeup`], which any thread may hold.
//!
//! A waker names its fiber by the scheduler's inbox, the fiber's slab key
//! and id, and the epoch of the wait (no reference to the fiber, which is
//! thread-bound). Woken on another thread, it sends a message through the
//! inbox. Woken on the scheduler's own thread (a Tokio task, a future the
//! fiber polls), it wakes the fiber at once: the schedulers alive on a
//! thread are listed in a thread-local registry, by the address of their
//! inbox.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Wake, Waker};

use super::{Schedule, Task};
use crate::id::FiberId;
use crate::inbox::Inbox;

pub(crate) struct RemoteWakeup {
    /// Strong: a waker that outlives its scheduler finds the inbox
    /// inactive and does nothing; holding it costs no atomic upgrade per
    /// wake.
    inbox: Arc<Inbox>,
    key: usize,
    id: FiberId,
    epoch: u64,
}

thread_local! {
    /// The schedulers alive on this thread, by the address of their inbox.
    static ON_THIS_THREAD: RefCell<Vec<(usize, Weak<dyn Schedule>)>> = const { RefCell::new(Vec::new()) };
}

/// Lists a new scheduler of this thread (see the module docs).
pub(crate) fn register_local(inbox: &Arc<Inbox>, sched: Weak<dyn Schedule>) {
    let address = Arc::as_ptr(inbox) as usize;
    ON_THIS_THREAD.with(|s| s.borrow_mut().push((address, sched)));
}

/// Takes a scheduler off the list (it is being dropped).
pub(crate) fn unregister_local(inbox: &Arc<Inbox>) {
    let address = Arc::as_ptr(inbox) as usize;
    // Not while the thread's locals are being destroyed.
    let _ = ON_THIS_THREAD.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.retain(|(a, _)| *a != address);
        }
    });
}

/// `true` if a scheduler lives on this thread (a thread that would stall
/// its fibers if it blocked outside them).
pub(crate) fn scheduler_on_this_thread() -> bool {
    ON_THIS_THREAD
        .try_with(|s| {
            s.try_borrow().map_or(true, |s| {
                s.iter().any(|(_, sched)| sched.strong_count() > 0)
            })
        })
        .unwrap_or(false)
}

/// The scheduler of `inbox`, if it lives on this thread.
fn local_scheduler(inbox: &Arc<Inbox>) -> Option<Rc<dyn Schedule>> {
    let address = Arc::as_ptr(inbox) as usize;
    ON_THIS_THREAD
        .try_with(|s| {
            let s = s.try_borrow().ok()?;
            let (_, sched) = s.iter().find(|(a, _)| *a == address)?;
            sched.upgrade()
        })
        .ok()
        .flatten()
}

impl Wake for RemoteWakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.inbox.is_active() {
            return;
        }
        let woken_here = self.inbox.is_scheduler_thread()
            && local_scheduler(&self.inbox)
                .is_some_and(|sched| sched.wake_fiber(self.key, self.id, self.epoch));
        if !woken_here {
            self.inbox.wake(self.key, self.id, self.epoch);
        }
    }
}

/// A waker for wait `epoch` of `task`.
///
/// The fiber keeps the `Arc` of its last waker: when nobody else holds it
/// any more (the usual case once a wait is over), the next wait reuses it
/// instead of allocating.
pub(super) fn to_waker(task: &Task, epoch: u64) -> Waker {
    let h = task.header();
    let mut cached = h.waker_cache.take();
    match cached.as_mut().and_then(Arc::get_mut) {
        Some(unused) => unused.epoch = epoch,
        None => {
            let inbox = match h.sched() {
                Some(sched) => sched.inbox().clone(),
                // A fiber of a scheduler that is gone: a closed inbox of
                // nobody, so that the waker does nothing.
                None => closed_inbox(),
            };
            cached = Some(Arc::new(RemoteWakeup {
                inbox,
                key: h.slab_key(),
                id: h.id,
                epoch,
            }));
        }
    }
    let waker = cached.clone().map(Waker::from);
    h.waker_cache.set(cached);
    waker.expect("set above")
}

fn closed_inbox() -> Arc<Inbox> {
    struct Nobody;
    impl crate::event_loop::Unpark for Nobody {
        fn unpark(&self) {}
    }
    let inbox = Inbox::new(Arc::new(Nobody));
    inbox.close();
    Arc::new(inbox)
}
