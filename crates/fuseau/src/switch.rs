//! Context switches: the one module that reaches corosensei's `Yielder` by
//! pointer.
//!
//! A fiber suspends itself from arbitrarily deep in user code (inside
//! `sleep`, `join`, a channel …), far from the closure where corosensei hands
//! out the `&Yielder`. So the fiber's entry function stores a pointer to its
//! yielder, with the bounds of the fiber's stack, in a [`YielderSlot`] owned
//! by the fiber, and [`YielderSlot::suspend`] uses it.
//!
//! # Invariants
//!
//! 1. The slot holds a non-null pointer only while the fiber's entry function
//!    is executing: [`YielderSlot::enter`] sets it on the fiber's own stack and
//!    the guard it returns clears it when the entry function returns or
//!    unwinds. The `Yielder` lives on the coroutine's stack, which does not
//!    move and outlives the entry function, so the pointer is valid whenever
//!    it is non-null.
//! 2. [`YielderSlot::suspend`] only switches when the code calling it runs
//!    on the stack the slot belongs to: it compares the address of one of its
//!    own locals with the bounds recorded by `enter`. That is the real
//!    condition `Yielder::suspend` needs (it must be called from inside its
//!    coroutine), checked directly rather than inferred from the scheduler's
//!    bookkeeping, so no bug elsewhere (a fiber that believes it is another)
//!    can switch from the wrong stack: it panics instead.
//! 3. Fibers never leave their thread (every type holding one is `!Send`), so
//!    the `Yielder` is only ever used on the thread that created it, as
//!    corosensei requires.

use std::cell::Cell;
use std::ptr;

use corosensei::stack::Stack;
use corosensei::{Coroutine, Yielder};

use crate::error::Result;
use crate::stack::FiberStack;

/// The coroutine type of every fiber: resumed with `()`, suspends with `()`,
/// returns the outcome of the fiber's body.
pub(crate) type FiberCoroutine = Coroutine<(), (), Result<()>, FiberStack>;

/// The address range of a fiber's stack: `[limit, base)` (stacks grow down).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StackBounds {
    limit: usize,
    base: usize,
}

impl StackBounds {
    pub(crate) fn of(stack: &FiberStack) -> StackBounds {
        StackBounds {
            limit: stack.limit().get(),
            base: stack.base().get(),
        }
    }

    /// The lowest address, guard page included (corosensei's
    /// `Stack::limit`); 0 before the fiber has a stack.
    pub(crate) fn limit(self) -> usize {
        self.limit
    }

    /// One past the highest address; 0 before the fiber has a stack.
    pub(crate) fn base(self) -> usize {
        self.base
    }

    /// `true` if the calling code runs on this stack.
    #[inline]
    fn contains_caller(self) -> bool {
        let marker = 0u8;
        let here = ptr::addr_of!(marker) as usize;
        self.limit <= here && here < self.base
    }
}

/// Where a running fiber keeps the address of its `Yielder`.
pub(crate) struct YielderSlot {
    yielder: Cell<*const Yielder<(), ()>>,
    bounds: Cell<StackBounds>,
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
            bounds: Cell::new(StackBounds { limit: 0, base: 0 }),
        }
    }

    /// Records the stack the fiber will run on; called before its first
    /// resume.
    pub(crate) fn set_bounds(&self, bounds: StackBounds) {
        self.bounds.set(bounds);
    }

    /// The stack recorded by [`set_bounds`](YielderSlot::set_bounds)
    /// (all zero before).
    pub(crate) fn bounds(&self) -> StackBounds {
        self.bounds.get()
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
    /// If the caller does not run on the owning fiber's stack, or the
    /// fiber's entry function is not running (invariants 1 and 2): an
    /// internal error, never undefined behaviour.
    #[inline]
    pub(crate) fn suspend(&self) {
        let yielder = self.yielder.get();
        assert!(
            !yielder.is_null() && self.bounds.get().contains_caller(),
            "fuseau: a fiber tried to suspend from outside its own stack (internal error)"
        );
        // SAFETY: by invariant 1 the pointer is non-null only while the
        // fiber's entry function runs, during which the `Yielder` it points
        // to is alive on the coroutine stack; by invariant 2 (checked above
        // against the real stack bounds) we are executing on that stack, on
        // the thread that owns it (invariant 3), which is what
        // `Yielder::suspend` requires.
        let yielder = unsafe { &*yielder };
        yielder.suspend(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StackPool;

    #[test]
    fn bounds_contain_only_their_own_stack() {
        let mut pool = StackPool::new(1);
        let stack = pool.take(64 * 1024).unwrap();
        let bounds = StackBounds::of(&stack);
        assert!(
            !bounds.contains_caller(),
            "the test runs on the thread's stack"
        );
        let mut coroutine: FiberCoroutine = Coroutine::with_stack(stack, move |_, ()| {
            assert!(bounds.contains_caller());
            Ok(())
        });
        assert!(coroutine.resume(()).as_return().is_some());
        pool.give_back(64 * 1024, coroutine.into_stack());
    }

    #[test]
    #[should_panic(expected = "outside its own stack")]
    fn suspending_from_another_stack_panics() {
        let mut pool = StackPool::new(1);
        let stack = pool.take(64 * 1024).unwrap();
        let slot = YielderSlot::new();
        slot.set_bounds(StackBounds::of(&stack));
        // A slot whose yielder is set but whose stack is not the caller's.
        let mut coroutine: FiberCoroutine = Coroutine::with_stack(stack, |y, ()| {
            let other = YielderSlot::new();
            let _g = other.enter(y);
            Ok(())
        });
        let _ = coroutine.resume(());
        slot.yielder
            .set(ptr::NonNull::<Yielder<(), ()>>::dangling().as_ptr());
        slot.suspend();
    }
}
