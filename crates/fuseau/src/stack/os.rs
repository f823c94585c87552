//! The operating system's side of fiber stacks: the mappings stacks are
//! carved from, their guard pages, and the [`FiberStack`] corosensei runs
//! on. The only `unsafe` of the stack layer.
//!
//! # Invariants
//!
//! 1. A [`Mapping`] owns `[start, start + len)`, mapped readable and
//!    writable (`MAP_NORESERVE`, no huge pages), until [`Mapping::unmap`].
//!    Its owner (the pool, `mod.rs`) unmaps it only when no [`FiberStack`]
//!    carved from it exists outside the pool, and leaks it otherwise.
//! 2. A [`FiberStack`] is made only by [`Mapping::stack`], for a slot whose
//!    guard page was installed: the page at `limit` faults on any access
//!    (a guard marker, or `PROT_NONE`), and `[limit + page, base)` is
//!    readable and writable memory of at least `MIN_STACK_SIZE` bytes, with
//!    `base` and `limit` page-aligned. That is what corosensei's `Stack`
//!    trait requires.
//! 3. Nothing here is called from a signal handler but [`page_size`], once
//!    initialised; the fault handler (`overflow.rs`) otherwise reads bounds
//!    recorded elsewhere.

use std::io;
use std::num::NonZeroUsize;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

pub(crate) use corosensei::stack::valgrind::ValgrindStackRegistration;
use corosensei::stack::{Stack, StackPointer};

/// `MADV_GUARD_INSTALL` (Linux 6.13): lightweight guard regions. Not in
/// every libc crate release yet; the value is part of the kernel's ABI.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// How guard pages are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardKind {
    /// `madvise(MADV_GUARD_INSTALL)`: a marker in the page tables, no
    /// mapping of its own, so a mapping holds any number of stacks.
    Marker,
    /// `mprotect(PROT_NONE)`: splits the mapping, so each stack costs two
    /// mappings (the fallback for kernels older than 6.13).
    Protect,
}

impl GuardKind {
    /// The kind this process uses, decided once: `Protect` if the
    /// environment variable `FUSEAU_STACK_GUARD` is `mprotect` (to test the
    /// fallback), else `Marker` if the kernel supports it.
    pub(crate) fn get() -> GuardKind {
        static KIND: OnceLock<GuardKind> = OnceLock::new();
        *KIND.get_or_init(|| {
            let forced = std::env::var_os("FUSEAU_STACK_GUARD");
            if forced.as_deref() == Some("mprotect".as_ref()) {
                return GuardKind::Protect;
            }
            if markers_work() {
                GuardKind::Marker
            } else {
                GuardKind::Protect
            }
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            GuardKind::Marker => "MADV_GUARD_INSTALL",
            GuardKind::Protect => "mprotect",
        }
    }
}

/// The page size, read once. The fault handler (`overflow.rs`) calls this
/// too: `overflow::install` reads it first, so that in the handler it is a
/// plain atomic load (async-signal-safe).
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// The most guard pages installed by one system call.
const MAX_BATCH: usize = 64;

/// Set once `process_madvise` refused guard markers: every guard is then a
/// `madvise` of its own.
static BATCH_REFUSED: AtomicBool = AtomicBool::new(false);

/// `true` while guards are installed in batches (markers, and
/// `process_madvise` not refused so far).
#[cfg(test)]
pub(crate) fn batching() -> bool {
    GuardKind::get() == GuardKind::Marker && !BATCH_REFUSED.load(Ordering::Relaxed)
}

/// After a failed `pidfd_open` or `process_madvise` (read from `errno`
/// before anything else runs): if the kernel does not support it, batches
/// are given up for good; anything else (out of memory or descriptors, say)
/// falls back for this slot only.
fn note_failure() {
    let error = io::Error::last_os_error().raw_os_error();
    if matches!(
        error,
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EBADF | libc::ESRCH)
    ) {
        BATCH_REFUSED.store(true, Ordering::Relaxed);
    }
}

/// Installs guard markers on `pages` (each one page inside a mapping of
/// ours, of a slot not yet carved) with one `process_madvise` on this
/// process; how many it installed (it goes in order, and may stop early),
/// or `None` if none.
///
/// The pidfd it needs is opened for the call and closed after it: a
/// library keeps no descriptor of its own open (programs count theirs), and
/// one opened now is this process's, even in a child forked since.
fn guard_batch(pages: &[libc::iovec]) -> Option<usize> {
    // SAFETY: getpid has no preconditions; pidfd_open takes a pid and
    // flags, and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    let Some(pidfd) = libc::c_int::try_from(pidfd).ok().filter(|fd| *fd >= 0) else {
        note_failure(); // no pidfds before Linux 5.3
        return None;
    };
    // SAFETY: `pages` is a valid array of `pages.len()` iovecs, each naming
    // one page of a mapping we own that no stack uses yet (the pool guards
    // a slot before it carves it); `pidfd` names this very process, so the
    // advice applies to our pages only.
    let advised = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            pidfd,
            pages.as_ptr(),
            pages.len(),
            MADV_GUARD_INSTALL,
            0,
        )
    };
    if advised < 0 {
        note_failure();
    }
    // SAFETY: opened above, ours, used by nothing else.
    unsafe { libc::close(pidfd) };
    if advised < 0 {
        return None;
    }
    let installed = usize::try_from(advised).ok()? / page_size();
    (installed > 0).then_some(installed)
}

/// Probes for guard markers on a scratch mapping of one page.
fn markers_work() -> bool {
    let Ok(scratch) = Mapping::new(page_size()) else {
        return false;
    };
    // SAFETY: the page is ours (invariant 1) and nothing uses it.
    let ok = unsafe {
        libc::madvise(
            scratch.start as *mut libc::c_void,
            page_size(),
            MADV_GUARD_INSTALL,
        )
    } == 0;
    scratch.unmap();
    ok
}

/// One anonymous mapping that stacks are carved from. Dropping it without
/// [`unmap`](Mapping::unmap) leaks it.
#[derive(Debug)]
pub(crate) struct Mapping {
    start: usize,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes (a multiple of the page size), readable and
    /// writable, with no swap reserved and no transparent huge pages (a huge
    /// page would make every stack that touches it resident in full).
    pub(crate) fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing; no existing memory is affected.
        let start = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the range was just mapped by us. Failure only means huge
        // pages stay as the system configured them.
        unsafe { libc::madvise(start, len, libc::MADV_NOHUGEPAGE) };
        Ok(Mapping {
            start: start as usize,
            len,
        })
    }

    /// Installs the guard page at `offset` (page-aligned, inside the
    /// mapping).
    pub(crate) fn guard(&self, offset: usize, kind: GuardKind) -> io::Result<()> {
        debug_assert!(offset + page_size() <= self.len && offset % page_size() == 0);
        let page = (self.start + offset) as *mut libc::c_void;
        // SAFETY: the page lies inside our mapping (invariant 1) and is not
        // part of any stack handed out: the pool guards a slot before it
        // carves it.
        let rc = unsafe {
            match kind {
                GuardKind::Marker => libc::madvise(page, page_size(), MADV_GUARD_INSTALL),
                GuardKind::Protect => libc::mprotect(page, page_size(), libc::PROT_NONE),
            }
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Installs the guard pages of up to `count` consecutive slots of
    /// `stride` bytes from `first` (page-aligned, inside the mapping), and
    /// returns how many it installed: at least one, the first's.
    ///
    /// Markers are installed `MAX_BATCH` at a time with one
    /// `process_madvise` on this process (about a third cheaper per page
    /// than a `madvise` each, on the VMs of the benchmarks); where the
    /// kernel refuses that (before Linux 6.13, which lets a process give
    /// itself any advice), one slot's, with `madvise`.
    pub(crate) fn guard_slots(
        &self,
        first: usize,
        stride: usize,
        count: usize,
        kind: GuardKind,
    ) -> io::Result<usize> {
        let count = count.min(MAX_BATCH);
        debug_assert!(count >= 1 && first + (count - 1) * stride + page_size() <= self.len);
        if kind == GuardKind::Marker && count > 1 && !BATCH_REFUSED.load(Ordering::Relaxed) {
            let mut pages = [libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            }; MAX_BATCH];
            for (i, page) in pages.iter_mut().take(count).enumerate() {
                page.iov_base = (self.start + first + i * stride) as *mut libc::c_void;
                page.iov_len = page_size();
            }
            if let Some(installed) = guard_batch(&pages[..count]) {
                return Ok(installed);
            }
        }
        self.guard(first, kind)?;
        Ok(1)
    }

    /// A stack for the slot `[offset, offset + stride)`, whose first page
    /// is its guard, installed by [`guard`](Mapping::guard).
    pub(crate) fn stack(&self, offset: usize, stride: usize, slab: u32, slot: u32) -> FiberStack {
        debug_assert!(offset + stride <= self.len && stride >= page_size() + 4096);
        let limit = self.start + offset;
        FiberStack {
            base: NonZeroUsize::new(limit + stride).expect("a mapping is never at address 0"),
            limit: NonZeroUsize::new(limit).expect("a mapping is never at address 0"),
            slab,
            slot,
        }
    }

    /// Tells valgrind that the slot `[offset, offset + stride)` is a stack,
    /// so that it can tell stack switches from wild stack-pointer moves (a
    /// no-op outside valgrind). Registered once per carved slot and kept by
    /// the slab, not by each [`FiberStack`]: that keeps every fiber's record
    /// 8 bytes smaller. Dropping the registration deregisters the slot.
    pub(crate) fn register_stack(&self, offset: usize, stride: usize) -> ValgrindStackRegistration {
        debug_assert!(offset + stride <= self.len);
        ValgrindStackRegistration::new((self.start + offset) as *mut u8, stride)
    }

    /// Returns the memory of `[offset, offset + len)` to the system (it
    /// reads as zeros when touched again); guard markers stay.
    pub(crate) fn forget(&self, offset: usize, len: usize) {
        debug_assert!(offset + len <= self.len);
        // SAFETY: the range is inside our mapping and belongs to no stack
        // in use (the pool only forgets free slots). Failure leaves the
        // memory resident, which is harmless.
        unsafe {
            libc::madvise(
                (self.start + offset) as *mut libc::c_void,
                len,
                libc::MADV_DONTNEED,
            )
        };
    }

    /// Unmaps the whole mapping. The caller guarantees that no stack carved
    /// from it is in use (invariant 1).
    pub(crate) fn unmap(self) {
        // SAFETY: the mapping is ours, and by the caller's guarantee nothing
        // points into it any more.
        let rc = unsafe { libc::munmap(self.start as *mut libc::c_void, self.len) };
        debug_assert_eq!(rc, 0, "munmap of a fiber stack mapping");
    }

    /// `true` if `addr` lies inside the mapping.
    #[cfg(test)]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.start + self.len
    }
}

/// A fiber's stack: one slot of a [`Mapping`], guard page included.
///
/// Dropping one outside the pool leaks its slot (and so its mapping, which
/// is then never unmapped): memory is never freed under a stack.
#[derive(Debug)]
pub(crate) struct FiberStack {
    base: StackPointer,
    /// The guard page's address (corosensei's limit includes the guard).
    limit: StackPointer,
    /// The pool's key of the mapping, and the slot's index in it.
    pub(crate) slab: u32,
    pub(crate) slot: u32,
    // No valgrind registration here: the slab keeps one per slot
    // (`Mapping::register_stack`).
}

// SAFETY: by invariant 2, the page at `limit` is a guard page that faults on
// access, `[limit + page, base)` is at least `MIN_STACK_SIZE` bytes of
// writable memory, both addresses are page-aligned (so aligned to
// `STACK_ALIGNMENT`), and the memory stays mapped while the stack exists
// (invariant 1).
unsafe impl Stack for FiberStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.limit
    }
}
