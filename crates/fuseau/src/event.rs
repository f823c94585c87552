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
