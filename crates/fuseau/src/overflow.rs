//! Stack-overflow reports: a `SIGSEGV`/`SIGBUS` handler that names the fiber
//! whose guard page was hit.
//!
//! Without it, a fiber that overflows its stack kills the process with a bare
//! `SIGSEGV`. [`install`] puts a handler in front of whatever handled the
//! fault signals before (usually the Rust runtime's own, which reports
//! overflows of *thread* stacks). When a fault hits the guard page of the
//! fiber running on the faulting thread, the handler prints
//!
//! ```text
//! fiber 'name' (id N) overflowed its stack of S bytes
//! ```
//!
//! (`fiber (id N) …` for an unnamed fiber), a line on how to choose a bigger
//! stack, and `fatal runtime error: stack overflow, aborting`, then aborts,
//! as the Rust runtime does for threads.
//!
//! # Invariants
//!
//! 1. The handler is async-signal-safe. It allocates nothing, takes no lock
//!    and uses no `std::io` or `fmt`: it formats the report into a buffer on
//!    its own stack with the few helpers below, and calls only `write`,
//!    `abort` and `sigaction` (all on POSIX's list of async-signal-safe
//!    functions), plus the `running` function given to [`install`], which
//!    must be async-signal-safe as well (the scheduler's reads one
//!    thread-local `Cell` and fields of the running fiber's record).
//! 2. What the handler reads: the fault address from the kernel's
//!    `siginfo_t`; statics written by [`install`] before the handler is
//!    installed and never again (the page size, the `running` function, and
//!    the previous actions, which are atomics, written field before
//!    handler so that a handler seen is a handler complete); and the
//!    [`RunningStack`] `running` returns, whose name pointer is valid while
//!    that fiber runs, which it does: the fault happened on this thread
//!    while the fiber was marked as running here.
//! 3. Only a fault whose address lies in the guard page of the fiber running
//!    on the faulting thread (`[limit - page, limit)`), raised by the kernel
//!    (`si_code > 0`, not a `kill`), is reported. Every other fault goes to
//!    the previous action: a `SA_SIGINFO` handler is called with the same
//!    arguments, a plain handler with the signal number; for `SIG_DFL` and
//!    `SIG_IGN` the handler restores `SIG_DFL` and returns, so the faulting
//!    instruction runs again and the default action kills the process with
//!    the original signal (what the Rust runtime's handler does). No fault
//!    is ever swallowed.
//! 4. The handler runs on an alternate signal stack (`SA_ONSTACK`): the
//!    overflowed fiber has no stack left. Every thread that calls
//!    [`install`] gets one if it has none (the Rust runtime gives one to the
//!    main thread and to the threads it spawns, but not to foreign threads);
//!    the one mapped here has a guard page of its own, and is disabled (if it
//!    is still the thread's) and unmapped when the thread exits.
//! 5. The handler is installed once per process and never removed, so the
//!    statics it reads are never torn down under it.

use std::cell::Cell;
use std::mem;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use libc::{c_int, c_void, siginfo_t};

use crate::stack::page_size;

/// The running fiber's stack, as the fault handler needs it.
#[derive(Clone, Copy)]
pub(crate) struct RunningStack {
    /// Lowest usable address of the stack; the guard page is the page just below it.
    pub(crate) limit: usize,
    /// One past the highest address (stacks grow down).
    pub(crate) base: usize,
    /// The fiber's id (FiberId's number).
    pub(crate) id: u64,
    /// The fiber's name as a raw (ptr, len) of UTF-8 bytes, or None; valid while the fiber runs.
    pub(crate) name: Option<(*const u8, usize)>,
}

/// How the handler learns which fiber runs on the faulting thread.
static RUNNING: OnceLock<fn() -> Option<RunningStack>> = OnceLock::new();

/// A signal's action before [`install`] replaced it (invariant 2).
struct Previous {
    /// `sa_sigaction`: `SIG_DFL` (0) until recorded.
    handler: AtomicUsize,
    /// `sa_flags`; stored before `handler`.
    flags: AtomicI32,
}

static PREVIOUS_SEGV: Previous = Previous {
    handler: AtomicUsize::new(libc::SIG_DFL),
    flags: AtomicI32::new(0),
};
static PREVIOUS_BUS: Previous = Previous {
    handler: AtomicUsize::new(libc::SIG_DFL),
    flags: AtomicI32::new(0),
};

fn previous(signal: c_int) -> &'static Previous {
    if signal == libc::SIGBUS {
        &PREVIOUS_BUS
    } else {
        &PREVIOUS_SEGV
    }
}

/// Installs (once per process) SIGSEGV and SIGBUS handlers (SA_SIGINFO | SA_ONSTACK),
/// remembering the previous actions; and (once per thread, on every call) makes sure the
/// calling thread has an alternate signal stack (if `sigaltstack` reports none, map one with a
/// guard page, kept until the thread exits). `running` is how the handler learns which fiber is
/// running on this thread; it must be async-signal-safe (invariant 1).
///
/// Failing system calls are not errors: without the handler or the
/// alternate stack, an overflow kills the process with `SIGSEGV`, unreported,
/// as it would without this module.
pub(crate) fn install(running: fn() -> Option<RunningStack>) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Read once here, so that the handler's reads are plain loads.
        page_size();
        let _ = RUNNING.set(running);
        install_handler(libc::SIGSEGV);
        install_handler(libc::SIGBUS);
    });
    ensure_alt_stack();
}

/// Puts [`on_fault`] in front of `signal`'s current action, which is kept in
/// [`Previous`].
fn install_handler(signal: c_int) {
    // SAFETY: `sigaction` is plain old data, for which all zeroes is a valid
    // (empty) value.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = on_fault as extern "C" fn(c_int, *mut siginfo_t, *mut c_void) as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid, writable `sigset_t`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: both pointers are valid for the call; `on_fault` has the
    // signature `SA_SIGINFO` requires and is async-signal-safe (invariant 1).
    // Swapping in one call loses no handler another thread installs at the
    // same time.
    if unsafe { libc::sigaction(signal, &action, &mut old) } != 0 {
        return;
    }
    // Until these stores, a fault is chained to `SIG_DFL`: it kills the
    // process unreported, as it would have a moment earlier.
    let previous = previous(signal);
    previous.flags.store(old.sa_flags, Ordering::Release);
    previous.handler.store(old.sa_sigaction, Ordering::Release);
}

/// The fault handler (invariants 1 to 3).
extern "C" fn on_fault(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    if let Some(stack) = overflowed_fiber(info) {
        report(&stack);
    }
    chain(signal, info, context);
}

/// The running fiber, if `info` describes a fault on its guard page.
fn overflowed_fiber(info: *const siginfo_t) -> Option<RunningStack> {
    if info.is_null() {
        return None;
    }
    // SAFETY: the kernel hands a `SA_SIGINFO` handler a valid `siginfo_t`
    // (checked non-null above), readable for the duration of the handler.
    let info = unsafe { &*info };
    if info.si_code <= 0 {
        // Sent by `kill`, `raise` or `sigqueue`: `si_addr` means nothing.
        return None;
    }
    let address = fault_address(info);
    let stack = RUNNING.get()?()?;
    let page = page_size();
    let guard_start = stack.limit.checked_sub(page)?;
    (page != 0 && guard_start <= address && address < stack.limit).then_some(stack)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn fault_address(info: &siginfo_t) -> usize {
    // SAFETY: for the `SIGSEGV` and `SIGBUS` faults this is called for
    // (`si_code > 0`), the kernel fills in `si_addr`.
    unsafe { info.si_addr() as usize }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn fault_address(info: &siginfo_t) -> usize {
    info.si_addr as usize
}

/// Prints the report for `stack` to stderr and aborts.
fn report(stack: &RunningStack) -> ! {
    let name = stack.name.map(|(ptr, len)| {
        // SAFETY: `running` returned the name of the fiber running on this
        // thread, valid while it runs (invariant 2): it is running, stopped
        // in this fault.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    });
    let mut buf = [0u8; REPORT_CAPACITY];
    let len = format_report(
        &mut buf,
        name,
        stack.id,
        stack.base.saturating_sub(stack.limit),
    );
    write_stderr(buf.get(..len).unwrap_or(&buf));
    // SAFETY: `abort` has no preconditions and is async-signal-safe.
    unsafe { libc::abort() }
}

/// Hands a fault that is not ours to the previous action (invariant 3).
fn chain(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    let previous = previous(signal);
    let handler = previous.handler.load(Ordering::Acquire);
    let flags = previous.flags.load(Ordering::Acquire);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: as in `install_handler`.
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = libc::SIG_DFL;
        // SAFETY: `action` is valid for the call; restoring the default
        // action is async-signal-safe. Returning then re-runs the faulting
        // instruction, which the default action turns into the process's
        // death by `signal`.
        unsafe { libc::sigaction(signal, &action, ptr::null_mut()) };
    } else if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: `handler` was installed by someone with `SA_SIGINFO`, so it
        // is a function of this signature; it gets the very arguments the
        // kernel gave us.
        let handler = unsafe {
            mem::transmute::<usize, extern "C" fn(c_int, *mut siginfo_t, *mut c_void)>(handler)
        };
        handler(signal, info, context);
    } else {
        // SAFETY: `handler` was installed without `SA_SIGINFO` and is neither
        // `SIG_DFL` nor `SIG_IGN`, so it is an `sa_handler` of this signature.
        let handler = unsafe { mem::transmute::<usize, extern "C" fn(c_int)>(handler) };
        handler(signal);
    }
}

/// Writes all of `bytes` to stderr, as far as `write` lets it.
fn write_stderr(mut bytes: &[u8]) {
    let mut failures = 0;
    while !bytes.is_empty() && failures < 3 {
        // SAFETY: `bytes` is valid for reads of its length; `write` is
        // async-signal-safe.
        let written =
            unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(written) {
            Ok(n) if n > 0 => bytes = bytes.get(n..).unwrap_or_default(),
            // An error (`EINTR` most likely): try again, a few times.
            _ => failures += 1,
        }
    }
}

/// Room for the whole report with a name of [`MAX_NAME`] bytes.
const REPORT_CAPACITY: usize = 768;

/// Longer names are cut (at a character boundary) and end with `...`.
const MAX_NAME: usize = 256;

/// A byte buffer that keeps what fits and drops the rest: formatting never
/// fails, never panics and never allocates.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let Some(slot) = self.buf.get_mut(self.len) else {
                return;
            };
            *slot = b;
            self.len += 1;
        }
    }

    /// `n` in decimal.
    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20]; // u64::MAX has 20 digits.
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes(&digits[start..]);
    }
}

/// Formats the report for the fiber `id` (named `name`, UTF-8) whose stack
/// of `size` bytes overflowed into `buf`; returns the length written (the
/// report is cut short if `buf` is too small).
fn format_report(buf: &mut [u8], name: Option<&[u8]>, id: u64, size: usize) -> usize {
    let mut w = Writer { buf, len: 0 };
    w.bytes(b"\nfiber ");
    if let Some(name) = name {
        w.bytes(b"'");
        if name.len() <= MAX_NAME {
            w.bytes(name);
        } else {
            // Back up to the start of a character (UTF-8 continuation
            // bytes are 0b10xx_xxxx).
            let mut end = MAX_NAME;
            while end > 0 && name.get(end).is_some_and(|&b| b & 0xC0 == 0x80) {
                end -= 1;
            }
            w.bytes(name.get(..end).unwrap_or_default());
            w.bytes(b"...");
        }
        w.bytes(b"' ");
    }
    w.bytes(b"(id ");
    w.number(id);
    w.bytes(b") overflowed its stack of ");
    w.number(size as u64);
    w.bytes(
        b" bytes\n\
          help: give it a bigger stack with fuseau::Builder::stack_size (one fiber) \
          or fuseau::Config::stack_size (every fiber of a scheduler)\n\
          fatal runtime error: stack overflow, aborting\n",
    );
    w.len
}

/// A thread's alternate signal stack, if this module mapped it (invariant 4).
struct AltStack {
    /// `install` ran on this thread.
    checked: Cell<bool>,
    /// The mapping (guard page included) and its length.
    mapping: Cell<Option<(*mut c_void, usize)>>,
}

thread_local! {
    static ALT_STACK: AltStack = const {
        AltStack { checked: Cell::new(false), mapping: Cell::new(None) }
    };
}

/// Gives the calling thread an alternate signal stack if it has none.
fn ensure_alt_stack() {
    // During thread exit there is nothing worth doing.
    let _ = ALT_STACK.try_with(|alt| {
        if alt.checked.replace(true) {
            return;
        }
        // SAFETY: `stack_t` is plain old data; all zeroes is valid.
        let mut current: libc::stack_t = unsafe { mem::zeroed() };
        // SAFETY: a null new stack only queries; `current` is writable.
        if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0
            || current.ss_flags & libc::SS_DISABLE == 0
        {
            return;
        }
        alt.mapping.set(map_alt_stack());
    });
}

/// Room the handler needs beyond the system's minimum: ours is small, but a
/// chained handler (the Rust runtime's formats its message) needs more.
const ALT_STACK_HEADROOM: usize = 64 * 1024;

fn alt_stack_size() -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: `getauxval` has no preconditions (it returns 0 for an unknown
    // key).
    let minimum = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let minimum = 0;
    let page = page_size().max(1);
    (libc::SIGSTKSZ.max(minimum) + ALT_STACK_HEADROOM).next_multiple_of(page)
}

/// Maps an alternate signal stack with a guard page below it and makes it
/// the calling thread's; the mapping, or `None` if a call failed.
fn map_alt_stack() -> Option<(*mut c_void, usize)> {
    let page = page_size();
    let size = alt_stack_size();
    let len = size + page;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choosing affects no existing memory.
    let mapping = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        return None;
    }
    let stack = libc::stack_t {
        // The guard page is the mapping's first page.
        ss_sp: mapping.cast::<u8>().wrapping_add(page).cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: the first page is part of the mapping just made, which nothing
    // else uses.
    let guarded = unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) } == 0;
    // SAFETY: `stack` describes memory owned by this thread's `AltStack`
    // until it is disabled in its drop.
    if !guarded || unsafe { libc::sigaltstack(&stack, ptr::null_mut()) } != 0 {
        // SAFETY: the mapping was made above and is not in use.
        unsafe { libc::munmap(mapping, len) };
        return None;
    }
    Some((mapping, len))
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let Some((mapping, len)) = self.mapping.take() else {
            return;
        };
        // SAFETY: as in `ensure_alt_stack`.
        let mut current: libc::stack_t = unsafe { mem::zeroed() };
        // SAFETY: as in `ensure_alt_stack`.
        if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
            // Cannot tell whether it is in use: leak it.
            return;
        }
        let ours = mapping
            .cast::<u8>()
            .wrapping_add(page_size())
            .cast::<c_void>();
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_sp == ours {
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: alt_stack_size(),
            };
            // SAFETY: disabling the thread's alternate stack; no handler runs
            // on it now (this is a thread-local destructor, not a handler).
            if unsafe { libc::sigaltstack(&disable, ptr::null_mut()) } != 0 {
                // Still in use: leak it rather than unmap a live stack.
                return;
            }
        }
        // SAFETY: the mapping is ours and no longer the thread's alternate
        // signal stack.
        unsafe { libc::munmap(mapping, len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(name: Option<&str>, id: u64, size: usize) -> String {
        let mut buf = [0u8; REPORT_CAPACITY];
        let len = format_report(&mut buf, name.map(str::as_bytes), id, size);
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    #[test]
    fn numbers_are_decimal() {
        for n in [0, 7, 10, 65_536, 1 << 40, u64::MAX] {
            let mut buf = [0u8; 32];
            let mut w = Writer {
                buf: &mut buf,
                len: 0,
            };
            w.number(n);
            let len = w.len;
            assert_eq!(std::str::from_utf8(&buf[..len]).unwrap(), n.to_string());
        }
    }

    #[test]
    fn the_report_names_the_fiber_its_id_and_its_stack_size() {
        let report = report_of(Some("deep"), 42, 65_536);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(
            lines[1],
            "fiber 'deep' (id 42) overflowed its stack of 65536 bytes"
        );
        assert!(lines[2].contains("fuseau::Builder::stack_size"));
        assert!(lines[2].contains("fuseau::Config::stack_size"));
        assert_eq!(lines[3], "fatal runtime error: stack overflow, aborting");
        assert!(report.ends_with('\n'));

        let report = report_of(None, 7, 4096);
        assert!(report.contains("\nfiber (id 7) overflowed its stack of 4096 bytes\n"));
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(MAX_NAME); // 2 bytes each
        let report = report_of(Some(&name), 1, 8192);
        let shown = report
            .strip_prefix("\nfiber '")
            .and_then(|r| r.split_once("...' (id 1)"))
            .unwrap()
            .0;
        assert_eq!(shown, "é".repeat(MAX_NAME / 2));
        assert!(report.contains("fatal runtime error"), "the report fits");
    }

    #[test]
    fn a_small_buffer_cuts_the_report_short() {
        let mut buf = [0u8; 10];
        let len = format_report(&mut buf, Some(b"deep"), u64::MAX, usize::MAX);
        assert_eq!(&buf[..len], b"\nfiber 'de");
    }
}
