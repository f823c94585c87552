//! Fiber stacks: carved from large shared mappings, each with a guard page
//! below it, and pooled per scheduler so that spawning in the steady state
//! costs no system call.
//!
//! # Layout
//!
//! Stacks of one size are slots of a few large mappings (slabs). A slot is
//! `stride = page + size` bytes: its guard page, then the stack, which
//! grows down towards the guard.
//!
//! ```text
//! | guard | stack 0 ........ | guard | stack 1 ........ | guard | ...
//!         ^ limit + page     ^ base of stack 0
//! ```
//!
//! On Linux 6.13 and later the guard is a guard marker
//! (`madvise(MADV_GUARD_INSTALL)`): it faults like a `PROT_NONE` page but
//! lives in the page tables, not as a mapping of its own, so a slab of any
//! number of stacks is one mapping, and `vm.max_map_count` no longer limits
//! how many fibers can be alive. Elsewhere, or when the environment variable
//! `FUSEAU_STACK_GUARD=mprotect` forces it (to test this path), each guard
//! is `mprotect(PROT_NONE)`, which splits the slab: two mappings per stack,
//! as with a mapping per stack.
//!
//! # Life of a stack
//!
//! A fiber takes a stack when it first runs (a fiber that has not started
//! has none) and gives it back when its body returns. A stack given back
//! goes to the *warm* list, whose pages are still in memory; [`take`]
//! reuses the most recent one. Once the warm list is over its capacity, the
//! scheduler trims it when it is idle ([`trim`]), a batch at a time, oldest
//! first: each trimmed stack's memory goes back to the system
//! (`MADV_DONTNEED`; the guard stays), and its slot goes to its slab's free
//! list, for the next stack that cannot be warm. A slab whose slots are all
//! free is unmapped, unless it is the last of its size.
//!
//! Slots are carved (their guards installed) in batches that double with
//! the slots a slab has carved, up to 64 with one system call
//! (`process_madvise` on this process, where the kernel allows it); the
//! slots carved ahead wait in the free list.
//!
//! # Invariants
//!
//! 1. Every carved slot is in exactly one place: handed out (a
//!    [`FiberStack`] owned by a fiber's coroutine), in the warm list, or in
//!    its slab's free list. Slots past a slab's `carved` count were never
//!    handed out.
//! 2. A slot is carved only once its guard page is installed (a slot whose
//!    guard could not be installed stays uncarved).
//! 3. A slab is unmapped only when all its carved slots are in its free
//!    list; when the pool is dropped, a slab with a slot still handed out
//!    (a fiber leaked under `panic = "abort"`) is leaked, never unmapped.
//!
//! [`take`]: StackPool::take
//! [`trim`]: StackPool::trim

mod os;

use std::collections::VecDeque;
use std::io;

pub(crate) use os::{page_size, FiberStack};
use os::{GuardKind, Mapping, ValgrindStackRegistration};

use crate::error::{Error, ErrorKind, Result};

/// The largest stack a fiber may ask for: 1 GiB. A thread's default stack
/// is 8 MiB; a size past this is a mistake (`usize::MAX`, a size in bits),
/// reported as such instead of as a failed mapping.
pub(crate) const MAX_STACK_SIZE: usize = 1 << 30;

/// Checks a requested stack size up front.
///
/// # Errors
///
/// [`ErrorKind::Other`] naming the maximum and the remedy, if `size` is
/// larger than [`MAX_STACK_SIZE`].
pub(crate) fn check_size(size: usize) -> Result<()> {
    if size > MAX_STACK_SIZE {
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "a fiber stack of more than {MAX_STACK_SIZE} bytes (1 GiB) is impossible; \
                 choose a smaller size (fuseau::Builder::stack_size, fuseau::Config::stack_size)"
            ),
        ));
    }
    Ok(())
}

/// How guard pages are made in this process: `"MADV_GUARD_INSTALL"` or
/// `"mprotect"` (see the module docs).
pub(crate) fn guard_kind() -> &'static str {
    GuardKind::get().name()
}

/// The usable size of a stack asked for with `size` bytes: at least
/// corosensei's minimum, rounded up to whole pages.
pub(crate) fn usable_size(size: usize) -> usize {
    let page = page_size();
    size.max(corosensei::stack::MIN_STACK_SIZE)
        .next_multiple_of(page)
}

/// Stacks kept for reuse, and the slabs they are carved from.
pub(crate) struct StackPool {
    /// One class per stack size asked for; almost always one, the default
    /// size, so a linear search is the fastest map.
    classes: Vec<SizeClass>,
    /// How many warm stacks may be kept once trimmed.
    capacity: usize,
    /// Warm stacks, all classes together.
    kept: usize,
}

/// The stacks of one size.
struct SizeClass {
    /// The size asked for (the key).
    size: usize,
    /// Guard page plus usable size.
    stride: usize,
    /// Stacks given back, most recent at the back.
    warm: VecDeque<FiberStack>,
    slabs: slab::Slab<Slab>,
    /// Keys of the slabs that have a free or uncarved slot.
    open: Vec<usize>,
    /// Slots of the next slab: doubles from 16 up to a cap, so that a few
    /// fibers map little and many fibers need few mappings.
    next_slots: usize,
}

/// One mapping, cut into `slots` slots of the class's stride.
struct Slab {
    mapping: Mapping,
    slots: usize,
    /// Slots `0..carved` have their guard (invariant 2).
    carved: usize,
    /// The valgrind registration of each carved slot (index: slot), for
    /// as long as the slab is mapped (see `Mapping::register_stack`).
    registrations: Vec<ValgrindStackRegistration>,
    /// Carved slots not in use nor warm: their memory given back, or never
    /// touched (carved ahead, in a batch).
    free: Vec<u32>,
    /// In the class's `open` list.
    open: bool,
}

impl Slab {
    fn has_room(&self) -> bool {
        !self.free.is_empty() || self.carved < self.slots
    }

    fn unused(&self) -> bool {
        self.free.len() == self.carved
    }
}

impl SizeClass {
    /// The first slab has this many slots.
    const FIRST_SLOTS: usize = 16;
    /// No slab has more slots than this.
    const MAX_SLOTS: usize = 4096;
    /// No slab is larger than this (unless one stack is).
    const MAX_SLAB_BYTES: usize = 1 << 30;

    fn new(size: usize) -> SizeClass {
        SizeClass {
            size,
            stride: page_size() + usable_size(size),
            warm: VecDeque::new(),
            slabs: slab::Slab::new(),
            open: Vec::new(),
            next_slots: Self::FIRST_SLOTS,
        }
    }

    /// A stack from a free or uncarved slot, mapping a new slab if none has
    /// room.
    fn carve(&mut self) -> io::Result<FiberStack> {
        loop {
            let Some(&key) = self.open.last() else {
                self.map_slab()?;
                continue;
            };
            let stride = self.stride;
            let slab = &mut self.slabs[key];
            let slot = if let Some(slot) = slab.free.pop() {
                slot as usize
            } else if slab.carved < slab.slots {
                // Guards for a batch of slots at once, doubling with the
                // slots carved so far (up to `os::MAX_BATCH`): a few fibers
                // carve a few slots, many fibers pay one system call per
                // batch. The first is handed out; the rest go free.
                let first = slab.carved;
                let want = first.max(1).min(slab.slots - first);
                let n = slab
                    .mapping
                    .guard_slots(first * stride, stride, want, GuardKind::get())?;
                for slot in first..first + n {
                    let registration = slab.mapping.register_stack(slot * stride, stride);
                    slab.registrations.push(registration);
                }
                slab.free
                    .extend((first + 1..first + n).rev().map(|s| s as u32));
                slab.carved += n;
                first
            } else {
                slab.open = false;
                self.open.pop();
                continue;
            };
            let stack = slab
                .mapping
                .stack(slot * stride, stride, key as u32, slot as u32);
            if !slab.has_room() {
                slab.open = false;
                self.open.pop();
            }
            return Ok(stack);
        }
    }

    /// Maps the next slab; if the system refuses, smaller ones, down to one
    /// slot (a strict overcommit policy may refuse a large one).
    fn map_slab(&mut self) -> io::Result<()> {
        let cap = (Self::MAX_SLAB_BYTES / self.stride).clamp(1, Self::MAX_SLOTS);
        let mut slots = self.next_slots.min(cap);
        let mapping = loop {
            match Mapping::new(slots * self.stride) {
                Ok(mapping) => break mapping,
                Err(e) if slots == 1 => return Err(e),
                Err(_) => slots /= 2,
            }
        };
        self.next_slots = (slots * 2).min(cap);
        let key = self.slabs.insert(Slab {
            mapping,
            slots,
            carved: 0,
            // Room for every slot at once: no growth, no slack past it.
            registrations: Vec::with_capacity(slots),
            free: Vec::new(),
            open: true,
        });
        self.open.push(key);
        Ok(())
    }

    /// Gives the memory of a warm stack back and frees its slot; unmaps its
    /// slab if that was its last slot in use and another slab is left.
    fn retire(&mut self, stack: FiberStack) {
        let key = stack.slab as usize;
        let slot = stack.slot;
        let page = page_size();
        let slab = &mut self.slabs[key];
        slab.mapping
            .forget(slot as usize * self.stride + page, self.stride - page);
        slab.free.push(slot);
        if !slab.open {
            slab.open = true;
            self.open.push(key);
        }
        if slab.unused() && self.slabs.len() > 1 {
            let slab = self.slabs.remove(key);
            self.open.retain(|&k| k != key);
            slab.mapping.unmap();
        }
    }
}

impl StackPool {
    /// Warm stacks retired per [`trim`](StackPool::trim).
    pub(crate) const TRIM_BATCH: usize = 64;

    pub(crate) fn new(capacity: usize) -> StackPool {
        StackPool {
            classes: Vec::new(),
            capacity,
            kept: 0,
        }
    }

    /// A stack of `size` usable bytes (rounded up to whole pages): a warm
    /// one if there is one, else a slot of a slab.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] for a size past [`MAX_STACK_SIZE`];
    /// [`ErrorKind::Io`] if the operating system refuses a new mapping or
    /// guard (the message names the limit that is most likely hit and how
    /// to raise it).
    pub(crate) fn take(&mut self, size: usize) -> Result<FiberStack> {
        let class = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => &mut self.classes[i],
            None => {
                // Also keeps the slot arithmetic from overflowing.
                check_size(size)?;
                self.classes.push(SizeClass::new(size));
                self.classes.last_mut().expect("just pushed")
            }
        };
        if let Some(stack) = class.warm.pop_back() {
            self.kept -= 1;
            return Ok(stack);
        }
        class.carve().map_err(|e| stack_error(size, e))
    }

    /// Gives back a stack of `size` usable bytes, taken from this pool. It
    /// stays warm, even past the capacity, until the next
    /// [`trim`](StackPool::trim).
    pub(crate) fn give_back(&mut self, size: usize, stack: FiberStack) {
        self.kept += 1;
        let class = self
            .classes
            .iter_mut()
            .find(|c| c.size == size)
            .expect("a stack goes back to the pool it came from");
        class.warm.push_back(stack);
    }

    /// `true` while more warm stacks are kept than the capacity allows.
    pub(crate) fn over_capacity(&self) -> bool {
        self.kept > self.capacity
    }

    /// Retires up to [`TRIM_BATCH`](StackPool::TRIM_BATCH) of the oldest
    /// surplus warm stacks: their memory goes back to the system, and a
    /// slab left unused is unmapped.
    pub(crate) fn trim(&mut self) {
        let mut batch = self
            .kept
            .saturating_sub(self.capacity)
            .min(Self::TRIM_BATCH);
        for class in &mut self.classes {
            while batch > 0 {
                let Some(stack) = class.warm.pop_front() else {
                    break;
                };
                class.retire(stack);
                self.kept -= 1;
                batch -= 1;
            }
        }
    }

    /// Unmaps every slab with no stack in use, warm stacks included (the
    /// scheduler is done). A slab with a stack still handed out (a fiber
    /// leaked under `panic = "abort"`) is leaked (invariant 3).
    pub(crate) fn release(&mut self) {
        for class in &mut self.classes {
            for stack in class.warm.drain(..) {
                // No slab: the stack was given back after a release, and
                // its slab was leaked (the stack itself owns nothing).
                if let Some(slab) = class.slabs.get_mut(stack.slab as usize) {
                    slab.free.push(stack.slot);
                }
            }
            class.open.clear();
            for (_, slab) in std::mem::take(&mut class.slabs) {
                // A slab with a stack still handed out is left mapped
                // (invariant 3): a `Mapping` dropped without `unmap` leaks.
                if slab.unused() {
                    slab.mapping.unmap();
                } else {
                    // Its stacks stay valid: so do their registrations.
                    std::mem::forget(slab.registrations);
                }
            }
        }
        self.kept = 0;
    }

    /// How many warm stacks are kept for reuse.
    pub(crate) fn kept(&self) -> usize {
        self.kept
    }

    /// How many slabs are mapped (all sizes).
    #[cfg(test)]
    fn slabs(&self) -> usize {
        self.classes.iter().map(|c| c.slabs.len()).sum()
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        self.release();
    }
}

fn stack_error(size: usize, e: io::Error) -> Error {
    stack_error_for(GuardKind::get(), size, e)
}

fn stack_error_for(kind: GuardKind, size: usize, e: io::Error) -> Error {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let advice = match kind {
        GuardKind::Protect => {
            let limit_text = match limit {
                Some(n) => format!(
                    "vm.max_map_count is {n}, which allows about {} live fibers per process",
                    n / 2
                ),
                None => "the process's limit on memory mappings is likely reached".to_string(),
            };
            format!(
                "Each stack's guard page is an mprotect'ed page (this kernel has no \
                 MADV_GUARD_INSTALL, or FUSEAU_STACK_GUARD=mprotect is set), which takes two \
                 memory mappings, and {limit_text}. Raise the limit \
                 (`sysctl -w vm.max_map_count=1048576`), lower the number of fibers alive at \
                 once, or reduce the stack size (fuseau::Config::stack_size)"
            )
        }
        GuardKind::Marker => "The system is out of memory or address space for stacks \
             (see `ulimit -v` and vm.overcommit_memory). Lower the number of fibers alive \
             at once, or reduce the stack size (fuseau::Config::stack_size)"
            .to_string(),
    };
    Error::with_source(
        ErrorKind::Io,
        format!("cannot allocate a fiber stack of {size} bytes ({e}). {advice}"),
        e,
    )
}

#[cfg(test)]
mod tests {
    use corosensei::stack::Stack;

    use super::*;

    const SIZE: usize = 64 * 1024;

    fn base(stack: &FiberStack) -> usize {
        stack.base().get()
    }

    #[test]
    fn stacks_are_reused_and_trimmed_to_capacity() {
        let mut pool = StackPool::new(2);
        let a = pool.take(SIZE).unwrap();
        let b = pool.take(SIZE).unwrap();
        let c = pool.take(SIZE).unwrap();
        let (a_base, c_base) = (base(&a), base(&c));
        pool.give_back(SIZE, a);
        pool.give_back(SIZE, b);
        pool.give_back(SIZE, c); // kept until trimmed
        assert_eq!(pool.kept(), 3);
        assert!(pool.over_capacity());
        pool.trim();
        assert_eq!(pool.kept(), 2);
        assert!(!pool.over_capacity());
        // Reuse takes the most recently returned stack; the oldest was
        // retired to its slab's free list, and comes back last.
        let c2 = pool.take(SIZE).unwrap();
        assert_eq!(base(&c2), c_base);
        let _b = pool.take(SIZE).unwrap();
        assert_eq!(pool.kept(), 0);
        let a2 = pool.take(SIZE).unwrap();
        assert_eq!(base(&a2), a_base, "a free slot is reused before a new one");
    }

    #[test]
    fn stacks_are_carved_from_shared_slabs() {
        let mut pool = StackPool::new(0);
        let stacks: Vec<_> = (0..SizeClass::FIRST_SLOTS)
            .map(|_| pool.take(SIZE).unwrap())
            .collect();
        assert_eq!(pool.slabs(), 1, "the first slab holds the first stacks");
        let stride = page_size() + SIZE;
        for pair in stacks.windows(2) {
            assert_eq!(
                base(&pair[1]) - base(&pair[0]),
                stride,
                "slots are adjacent"
            );
            assert_eq!(
                pair[1].limit().get(),
                base(&pair[0]),
                "guard above the stack below"
            );
        }
        let next = pool.take(SIZE).unwrap();
        assert_eq!(pool.slabs(), 2, "then a second, larger slab");
        let slab = &pool.classes[0].slabs[next.slab as usize];
        assert_eq!(slab.slots, 2 * SizeClass::FIRST_SLOTS);
        assert!(slab.mapping.contains(next.limit().get()));
        for stack in stacks {
            pool.give_back(SIZE, stack);
        }
        pool.give_back(SIZE, next);
        pool.trim();
        assert_eq!(pool.kept(), 0);
        assert_eq!(
            pool.slabs(),
            1,
            "an unused slab is unmapped, but the last one stays"
        );
    }

    /// `true` if the kernel cannot read the byte at `addr` (a guard page):
    /// `write` from it fails with `EFAULT`, with no signal.
    fn unreadable(addr: usize) -> bool {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the kernel checks the source address itself (`EFAULT`);
        // nothing in this process reads it.
        let written = unsafe { libc::write(fds[1], addr as *const libc::c_void, 1) };
        let errno = io::Error::last_os_error().raw_os_error();
        // SAFETY: both descriptors were opened above and are ours.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        written == -1 && errno == Some(libc::EFAULT)
    }

    #[test]
    fn slots_are_carved_in_doubling_batches_and_every_guard_faults() {
        let mut pool = StackPool::new(0);
        let stacks: Vec<_> = (0..3 * SizeClass::FIRST_SLOTS)
            .map(|_| pool.take(SIZE).unwrap())
            .collect();
        for stack in &stacks {
            assert!(unreadable(stack.limit().get()), "the guard page faults");
            assert!(!unreadable(stack.limit().get() + page_size()));
        }
        // The first slab's 16 slots: batches of 1, 1, 2, 4 and 8.
        let first = &pool.classes[0].slabs[stacks[0].slab as usize];
        assert_eq!((first.carved, first.free.len()), (16, 0));
        // The second's 32: 1, 1, 2, 4, 8, 16, of which 32 are handed out.
        let second = &pool.classes[0].slabs[stacks[16].slab as usize];
        assert_eq!((second.carved, second.free.len()), (32, 0));
        // The third slab: batches of 1, 1, 2 and 4 (with `mprotect`
        // guards, or no `process_madvise`, one slot at a time).
        let more = pool.take(SIZE).unwrap();
        let again = pool.take(SIZE).unwrap();
        let (a, b) = (pool.take(SIZE).unwrap(), pool.take(SIZE).unwrap());
        assert_eq!(base(&b) - base(&a), page_size() + SIZE, "address order");
        let c = pool.take(SIZE).unwrap();
        let third = &pool.classes[0].slabs[more.slab as usize];
        let expected = if os::batching() { (8, 3) } else { (5, 0) };
        assert_eq!((third.carved, third.free.len()), expected);
        for stack in stacks.into_iter().chain([more, again, a, b, c]) {
            assert!(unreadable(stack.limit().get()));
            pool.give_back(SIZE, stack);
        }
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
        pool.trim();
        assert_eq!(pool.kept(), 3);
        pool.trim();
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn retired_stacks_read_as_zeros() {
        let mut pool = StackPool::new(0);
        let stack = pool.take(SIZE).unwrap();
        let top = (base(&stack) - 8) as *mut u64;
        // SAFETY: the last 8 bytes of the stack are writable memory of it
        // (`Stack`'s contract), and no coroutine runs on it.
        unsafe { top.write_volatile(0xdead_beef) };
        pool.give_back(SIZE, stack);
        pool.trim();
        let again = pool.take(SIZE).unwrap();
        assert_eq!(base(&again) - 8, top as usize);
        // SAFETY: as above, for the same stack taken again.
        let word = unsafe { top.read_volatile() };
        assert_eq!(word, 0, "MADV_DONTNEED gave the page back");
    }

    #[test]
    fn sizes_are_pooled_separately() {
        let mut pool = StackPool::new(8);
        let small = pool.take(16 * 1024).unwrap();
        pool.give_back(16 * 1024, small);
        assert_eq!(pool.kept(), 1);
        let big = pool.take(128 * 1024).unwrap();
        assert_eq!(pool.kept(), 1, "a stack of another size is not taken");
        assert_eq!(
            big.base().get() - big.limit().get(),
            page_size() + 128 * 1024
        );
    }

    #[test]
    fn tiny_and_odd_sizes_are_rounded_up() {
        assert_eq!(
            usable_size(0),
            corosensei::stack::MIN_STACK_SIZE.max(page_size())
        );
        assert_eq!(usable_size(page_size() + 1), 2 * page_size());
        let mut pool = StackPool::new(1);
        let s = pool.take(1).unwrap();
        assert_eq!(
            s.base().get() - s.limit().get(),
            page_size() + usable_size(1)
        );
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
    fn errors_name_the_limit_and_the_remedy() {
        let e = stack_error_for(GuardKind::Protect, 4096, io::Error::from_raw_os_error(12));
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.message().contains("max_map_count"), "{e}");
        assert!(e.message().contains("stack_size"), "{e}");
        let e = stack_error_for(GuardKind::Marker, 4096, io::Error::from_raw_os_error(12));
        assert!(e.message().contains("out of memory"), "{e}");
        assert!(e.message().contains("stack_size"), "{e}");
    }
}
