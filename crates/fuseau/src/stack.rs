//! Fiber stacks: guarded `mmap` stacks from corosensei, kept in a
//! per-scheduler pool so that spawning in the steady state costs no system
//! call.
//!
//! Every stack has a guard page below it: an overflow faults on the guard page
//! instead of writing over other memory. A fiber takes a stack when it first
//! runs (a fiber that has not started has none) and gives it back when its
//! body returns.
//!
//! A stack given back always goes to the pool, so a burst of fibers that
//! finish together costs no system call then; the pool is trimmed back to
//! its capacity later, a batch at a time, when the scheduler is idle
//! ([`StackPool::trim`]). Unmapping is the expensive part (a `munmap` each),
//! and idle time is when it delays nobody.

use std::collections::VecDeque;
use std::io;

use corosensei::stack::DefaultStack;

use crate::error::{Error, ErrorKind, Result};

/// Stacks kept for reuse, grouped by the size they were asked for.
pub(crate) struct StackPool {
    /// `(size, free stacks of that size)`; almost always one entry, the
    /// default size, so a linear search is the fastest map. Reuse takes the
    /// most recently returned stack (its pages are the likeliest to be in
    /// memory and cache); trimming unmaps the oldest.
    free: Vec<(usize, VecDeque<DefaultStack>)>,
    /// How many free stacks may be kept once trimmed.
    capacity: usize,
    kept: usize,
}

/// The largest stack a fiber may ask for: 1 GiB. A thread's default stack
/// is 8 MiB; a size past this is a mistake (`usize::MAX`, a size in bits),
/// reported as such instead of as a failed mapping.
pub(crate) const MAX_STACK_SIZE: usize = 1 << 30;

/// Checks a requested stack size up front.
///
/// # Errors
///
/// [`ErrorKind::Other`] naming the size and the maximum, if it is larger
/// than [`MAX_STACK_SIZE`].
pub(crate) fn check_size(size: usize) -> Result<()> {
    if size > MAX_STACK_SIZE {
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "a fiber stack of {size} bytes is impossible: the maximum is {MAX_STACK_SIZE} \
                 bytes (1 GiB); choose a smaller size (fuseau::Builder::stack_size, \
                 fuseau::Config::stack_size)"
            ),
        ));
    }
    Ok(())
}

impl StackPool {
    /// Stacks unmapped per [`trim`](StackPool::trim).
    pub(crate) const TRIM_BATCH: usize = 64;

    pub(crate) fn new(capacity: usize) -> StackPool {
        StackPool {
            free: Vec::new(),
            capacity,
            kept: 0,
        }
    }

    /// A stack of `size` usable bytes: a pooled one if there is one, else a
    /// fresh mapping.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] for a size past [`MAX_STACK_SIZE`];
    /// [`ErrorKind::Io`] if the operating system refuses a new mapping (the
    /// message names the limit that is most likely hit and how to raise it).
    pub(crate) fn take(&mut self, size: usize) -> Result<DefaultStack> {
        if let Some((_, stacks)) = self.free.iter_mut().find(|(s, _)| *s == size) {
            if let Some(stack) = stacks.pop_back() {
                self.kept -= 1;
                return Ok(stack);
            }
        }
        // Also keeps corosensei from overflowing when it adds the guard page.
        check_size(size)?;
        DefaultStack::new(size).map_err(|e| stack_error(size, e))
    }

    /// Gives back a stack of `size` usable bytes. It is kept, even past the
    /// capacity, until the next [`trim`](StackPool::trim).
    pub(crate) fn give_back(&mut self, size: usize, stack: DefaultStack) {
        self.kept += 1;
        match self.free.iter_mut().find(|(s, _)| *s == size) {
            Some((_, stacks)) => stacks.push_back(stack),
            None => self.free.push((size, VecDeque::from([stack]))),
        }
    }

    /// `true` while more stacks are kept than the capacity allows.
    pub(crate) fn over_capacity(&self) -> bool {
        self.kept > self.capacity
    }

    /// Unmaps up to [`TRIM_BATCH`](StackPool::TRIM_BATCH) of the oldest
    /// surplus stacks; returns them, for the caller to drop (each drop is a
    /// `munmap`) with the pool no longer borrowed.
    pub(crate) fn trim(&mut self) -> Vec<DefaultStack> {
        let surplus = self.kept.saturating_sub(self.capacity);
        let mut unmapped = Vec::with_capacity(surplus.min(Self::TRIM_BATCH));
        for (_, stacks) in &mut self.free {
            while unmapped.len() < surplus.min(Self::TRIM_BATCH) {
                match stacks.pop_front() {
                    Some(stack) => unmapped.push(stack),
                    None => break,
                }
            }
        }
        self.kept -= unmapped.len();
        unmapped
    }

    /// How many stacks are kept for reuse.
    pub(crate) fn kept(&self) -> usize {
        self.kept
    }
}

fn stack_error(size: usize, e: io::Error) -> Error {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let limit_text = match limit {
        Some(n) => format!(
            "vm.max_map_count is {n}, which allows about {} guarded stacks per process",
            n / 2
        ),
        None => "the process's limit on memory mappings".to_string(),
    };
    Error::with_source(
        ErrorKind::Io,
        format!(
            "cannot allocate a fiber stack of {size} bytes ({e}). Each suspended or \
             running fiber holds a guarded stack, which takes two memory mappings, and {limit_text}. \
             Raise the limit (`sysctl -w vm.max_map_count=1048576`), lower the number of fibers \
             alive at once, or reduce the stack size (fuseau::Config::stack_size)"
        ),
        e,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_are_reused_and_trimmed_to_capacity() {
        let mut pool = StackPool::new(2);
        let a = pool.take(64 * 1024).unwrap();
        let b = pool.take(64 * 1024).unwrap();
        let c = pool.take(64 * 1024).unwrap();
        let a_base = corosensei::stack::Stack::base(&a);
        let c_base = corosensei::stack::Stack::base(&c);
        pool.give_back(64 * 1024, a);
        pool.give_back(64 * 1024, b);
        pool.give_back(64 * 1024, c); // kept until trimmed
        assert_eq!(pool.kept(), 3);
        assert!(pool.over_capacity());
        let unmapped = pool.trim();
        assert_eq!(unmapped.len(), 1);
        assert_eq!(
            corosensei::stack::Stack::base(&unmapped[0]),
            a_base,
            "the oldest goes"
        );
        assert_eq!(pool.kept(), 2);
        assert!(!pool.over_capacity());
        assert!(pool.trim().is_empty());
        // Reuse takes the most recently returned stack.
        let c2 = pool.take(64 * 1024).unwrap();
        assert_eq!(corosensei::stack::Stack::base(&c2), c_base);
        let _b = pool.take(64 * 1024).unwrap();
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn trimming_goes_a_batch_at_a_time() {
        let mut pool = StackPool::new(0);
        let stacks: Vec<_> = (0..StackPool::TRIM_BATCH + 3)
            .map(|_| pool.take(16 * 1024).unwrap())
            .collect();
        for s in stacks {
            pool.give_back(16 * 1024, s);
        }
        assert_eq!(pool.trim().len(), StackPool::TRIM_BATCH);
        assert_eq!(pool.trim().len(), 3);
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn sizes_are_pooled_separately() {
        let mut pool = StackPool::new(8);
        let small = pool.take(16 * 1024).unwrap();
        pool.give_back(16 * 1024, small);
        assert_eq!(pool.kept(), 1);
        let _big = pool.take(128 * 1024).unwrap();
        assert_eq!(pool.kept(), 1, "a stack of another size is not taken");
    }

    #[test]
    fn impossible_sizes_are_refused_up_front() {
        let mut pool = StackPool::new(1);
        for size in [usize::MAX, MAX_STACK_SIZE + 1] {
            let Err(e) = pool.take(size) else {
                panic!("a stack of {size} bytes was mapped")
            };
            assert_eq!(e.kind(), ErrorKind::Other);
            assert!(e.message().contains("impossible"), "{e}");
            assert!(!e.message().contains("max_map_count"), "{e}");
        }
    }

    #[test]
    fn error_names_the_limit() {
        let e = stack_error(4096, io::Error::from_raw_os_error(12));
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.message().contains("max_map_count"), "{e}");
        assert!(e.message().contains("stack_size"), "{e}");
    }
}
