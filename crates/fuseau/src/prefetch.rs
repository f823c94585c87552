//! Cache prefetch hints: the run loop asks for the memory of the next fibers
//! to run before it switches to them.
//!
//! # Why
//!
//! A scheduler with many suspended fibers resumes most of them cold: a
//! fiber woken long after it suspended finds its record and its stack out of
//! the caches, and its stack page out of the TLB (each stack is a page of its
//! own, far from the others, so every resume costs a page walk, which on a
//! virtual machine is a walk of two page tables). Resuming 100 000 fibers
//! blocked on channels (the suite's W5x release) spent about half its time
//! waiting for those two. Asking for them one fiber ahead lets the walk and
//! the loads overlap with the fiber that runs meanwhile: see the scheduler's
//! `prefetch_next` for what is asked for, and benches/README.md for the
//! figures.
//!
//! # Invariants
//!
//! A prefetch is a hint: it never faults, never changes memory and has no
//! effect a program can observe but its speed. Any address is allowed, even
//! one that is unmapped, a guard page or null; the pointer is never
//! dereferenced in Rust's sense. That is what makes [`lines`] a safe
//! function over any pointer.

/// The size of a cache line on the targets fuseau runs on.
const LINE: usize = 64;

/// Asks the caches for the `bytes` bytes at `start` (every cache line they
/// touch), for reading soon. A hint: it does not wait for the data and never
/// faults (it may wait for the address translation: a page walk for an
/// address out of the TLB). No-op on targets other than x86-64.
#[inline(always)]
pub(crate) fn lines(start: *const u8, bytes: usize) {
    let first = start as usize & !(LINE - 1);
    let end = (start as usize).saturating_add(bytes);
    for line in (first..end).step_by(LINE) {
        line_at(line as *const u8);
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn line_at(address: *const u8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: `prefetcht0` takes any address (module invariants): it does
    // not fault on an unmapped or protected one and does not read memory in
    // the abstract machine's sense. SSE is part of the x86-64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn line_at(_address: *const u8) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_is_allowed() {
        // Null, the top of the address space (a kernel address from user
        // space), and a range that wraps past it: hints, never faults.
        lines(std::ptr::null(), 4096);
        lines(usize::MAX as *const u8, 1);
        lines((usize::MAX - 100) as *const u8, 1000);
        lines(std::ptr::null(), 0);
    }

    #[test]
    fn guard_pages_are_allowed() {
        let mut pool = crate::stack::StackPool::new(1);
        let stack = pool.take(64 * 1024).unwrap();
        let bounds = crate::switch::StackBounds::of(&stack);
        // The guard page is the lowest page of the range: a load from it
        // would fault, a prefetch does not.
        lines(bounds.limit() as *const u8, crate::stack::page_size());
        pool.give_back(64 * 1024, stack);
    }
}
