//! An `Rc` back from a `&Task`.
//!
//! The running fiber is known by a raw pointer (see `scheduler::context`),
//! and most code gets a `&Task` for it; a few places need an owning
//! reference (a handle to the running fiber, the run queue). This module is
//! the one place that makes one.
//!
//! # Invariant
//!
//! Every `Task` lives in an `Rc` allocation: [`Task::new`](super::Task::new)
//! is its only constructor and returns `Rc<Task<Closure<..>>>`, and the
//! fields are private to the `task` module, so no `Task` exists on the stack
//! or in another container. A `&Task` (= `&Task<dyn Body>`) therefore points
//! at the value of an `RcBox`, whatever handle type it was reached through
//! (`Rc<Task<Closure<..>>>`, `Rc<Task<dyn Output<T>>>` or `Rc<Task>`): they
//! all share that one allocation, and the value's offset in it depends only
//! on its alignment, which the vtable gives.

use std::rc::Rc;

use super::Task;

impl Task {
    /// A new strong reference to this fiber.
    pub(crate) fn to_rc(&self) -> Rc<Task> {
        let ptr: *const Task = self;
        // SAFETY: by the module's invariant `ptr` points at the value of a
        // live `Rc` allocation (live: `self` borrows it), which is what
        // `increment_strong_count` requires; the count it adds is the one
        // the `Rc` made below owns.
        unsafe { Rc::increment_strong_count(ptr) };
        // SAFETY: as above, `ptr` is the value pointer of an `Rc<Task>`
        // allocation (an unsized `Task<dyn Body>` whose layout is that of
        // the allocation's value), and we own one strong count of it.
        unsafe { Rc::from_raw(ptr) }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Weak;

    use super::super::{Options, Output, Task};

    #[test]
    fn to_rc_shares_the_allocation_and_counts() {
        let typed = Task::new(
            super::super::SchedLink::new(Weak::<crate::task::tests::NoSched>::new()),
            Options {
                name: None,
                stack_size: 0,
                propagate: true,
            },
            || Ok(5),
        );
        let erased: Rc<Task> = typed.clone();
        let output: Rc<Task<dyn Output<i32>>> = typed.clone();
        assert_eq!(Rc::strong_count(&typed), 3);
        let again = output.header().id;
        let back = (*erased).to_rc();
        assert_eq!(Rc::strong_count(&typed), 4);
        assert_eq!(back.header().id, again);
        assert!(std::ptr::addr_eq(Rc::as_ptr(&back), Rc::as_ptr(&typed)));
        drop(back);
        assert_eq!(Rc::strong_count(&typed), 3);
    }

    use std::rc::Rc;
}
