//! Context switches: the one module that reaches corosensei's `Yielder` by
//! pointer.
//!
//! A fiber suspends itself from arbitrarily deep in user code (inside
//! `sleep`, `join`, a channel …), far from the closure where corosensei hands
//! out the `&Yielder`. So the fiber's entry function stores a pointer to its
//! yielder in a [`YielderSlot`] owned by the fiber, and [`YielderSlot::suspend`]
//! uses it.
//!
//! # Invariants
//!
//! 1. The slot holds a non-null pointer only while the fiber's entry function
//!    is executing: [`YielderSlot::enter`] sets it on the fiber's own stack and
//!    the guard it returns clears it when the entry function returns or
//!    unwinds. The `Yielder` lives on the coroutine's stack, which does not
//!    move and outlives the entry function, so the pointer is valid whenever
//!    it is non-null.
//! 2. [`YielderSlot::suspend`] is only called by code running on the fiber that
//!    owns the slot. The scheduler guarantees it: suspension goes through the
//!    *current* fiber, which is the fiber whose stack is executing, and the
//!    check `on_own_stack` below asserts it.
//! 3. Fibers never leave their thread (every type holding one is `!Send`), so
//!    the `Yielder` is only ever used on the thread that created it, as
//!    corosensei requires.

use std::cell::Cell;
use std::ptr;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};

use crate::error::Result;

/// The coroutine type of every fiber: resumed with `()`, suspends with `()`,
/// returns the outcome of the fiber's body.
pub(crate) type FiberCoroutine = Coroutine<(), (), Result<()>, DefaultStack>;

/// Where a running fiber keeps the address of its `Yielder`.
pub(crate) struct YielderSlot {
    yielder: Cell<*const Yielder<(), ()>>,
}

/// Clears the slot when the fiber's entry function ends (invariant 1).
pub(crate) struct EnterGuard<'a> {
    slot: &'a YielderSlot,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        self.slot.yielder.set(ptr::null());
    }
}

impl YielderSlot {
    pub(crate) const fn new() -> YielderSlot {
        YielderSlot {
            yielder: Cell::new(ptr::null()),
        }
    }

    /// Records the yielder of the fiber that owns this slot. Must be called
    /// at the top of the fiber's entry function, on its own stack; the
    /// returned guard must live until that function ends.
    pub(crate) fn enter<'a>(&'a self, yielder: &Yielder<(), ()>) -> EnterGuard<'a> {
        self.yielder.set(yielder);
        EnterGuard { slot: self }
    }

    /// Switches from the owning fiber back to the scheduler; returns when the
    /// scheduler resumes the fiber. If the scheduler is tearing the fiber
    /// down, this unwinds instead (corosensei's forced unwind).
    ///
    /// # Panics
    ///
    /// If the owning fiber is not running (invariant 2 would be broken).
    pub(crate) fn suspend(&self, on_own_stack: bool) {
        let yielder = self.yielder.get();
        assert!(
            on_own_stack && !yielder.is_null(),
            "fuseau: a fiber tried to suspend while it was not running (internal error)"
        );
        // SAFETY: by invariant 1 the pointer is non-null only while the
        // fiber's entry function runs, during which the `Yielder` it points
        // to is alive on the coroutine stack; by invariant 2 (asserted
        // above) we are executing on that stack, on the thread that owns it
        // (invariant 3), which is what `Yielder::suspend` requires.
        let yielder = unsafe { &*yielder };
        yielder.suspend(());
    }
}
