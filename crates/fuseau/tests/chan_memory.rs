//! What a fiber blocked in `recv` on a channel of its own costs the channel
//! (issue 10): the channel's state and the room for one waiter, and nothing
//! per wait (no slot for the value).
//!
//! A counting global allocator sums the bytes requested (less those freed)
//! on this thread. The same step is measured twice: a fiber blocked on a
//! channel that exists already and has room for its waiter (the fiber's own
//! cost: its record, its handle, its closure), then a new `Chan::<u64>` and
//! a fiber blocked in `recv` on it. The difference is the channel's share.
//! No timing is involved: the scheduler runs one fiber at a time, and each
//! step ends once the fiber is parked.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fuseau::{Chan, Result};

struct CountingAllocator;

thread_local! {
    /// Bytes requested and not freed yet, on this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: usize, sign: isize) {
    let bytes = isize::try_from(bytes).unwrap_or(isize::MAX);
    // `try_with`: the thread-local may be gone while the thread exits.
    let _ = LIVE.try_with(|live| live.set(live.get() + sign * bytes));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counting touches only a const-initialized thread-local `Cell`, which
// never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(layout.size(), -1);
        add(new_size, 1);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(layout.size(), -1);
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Lets every other ready fiber run until it blocks.
fn settle() -> Result<()> {
    for _ in 0..4 {
        fuseau::yield_now()?;
    }
    Ok(())
}

/// The bytes still allocated after `chan()` made a channel (or returned an
/// existing one) and a fiber blocked in `recv` on it; then the fiber is
/// given a value and joined.
fn blocked_receiver(chan: impl FnOnce() -> Chan<u64>) -> Result<isize> {
    let before = live();
    let chan = chan();
    let rx = chan.clone();
    let fiber = fuseau::spawn(move || rx.recv());
    settle()?;
    let cost = live() - before;
    assert!(!fiber.is_done(), "blocked in recv");
    chan.send(7)?;
    assert_eq!(fiber.join()?, 7);
    Ok(cost)
}

/// Issue 10: ≤ 120 bytes for the state (`Rc` and `RefCell` headers
/// included) and ≤ 40 for the room of one waiter (its token and its
/// `Wakeup`: no slot for a value).
const CHANNEL_SHARE: isize = 120 + 40;

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_blocked_on_a_channel_of_its_own_costs_the_channel_its_state_and_one_waiter() {
    let (baseline, with_chan) = fuseau::block_on(|| {
        let existing = Chan::<u64>::new();
        // Warm up: the scheduler's own structures, and `existing`'s room
        // for one waiter (kept once made).
        for _ in 0..3 {
            blocked_receiver(|| existing.clone())?;
        }
        let baseline = blocked_receiver(|| existing.clone())?;
        let with_chan = blocked_receiver(Chan::new)?;
        Ok((baseline, with_chan))
    })
    .unwrap();
    let share = with_chan - baseline;
    println!("fiber blocked: {baseline} bytes; with a channel of its own: {with_chan} (+{share})");
    assert!(baseline > 0, "the fiber's own cost was measured");
    assert!(
        share <= CHANNEL_SHARE,
        "the channel costs {share} bytes, more than {CHANNEL_SHARE}"
    );
    // The state alone takes at least 96 bytes, and the room for the waiter
    // 40: both were measured.
    assert!(
        share >= 96 + 40,
        "the channel's state and its waiter's room were measured ({share} bytes)"
    );
}
