//! [`Claim`]: who completes a wait, decided across threads.
//!
//! A fiber's wait can be completed by *handing* it something (a channel
//! passing it a value, or taking the value it offers); only one branch of a
//! `select` may be completed so. Between fibers of one thread,
//! `Wakeup::claim` decides it with a plain `Cell` in the fiber's record
//! (`task/wait.rs`). A wait that can be completed from other threads (a
//! [`SharedChan`](crate::SharedChan) operation in it) gets a `Claim` as
//! well: one atomic word per wait, shared by `Arc` with every registration
//! of that wait, as crossbeam-channel's `Context::try_select` and Go's
//! `selectDone` do.
//!
//! # Protocol
//!
//! 1. The word starts [`WAITING`]. Whoever completes the wait (a channel
//!    operation on any thread, or a local claim on the waiter's own thread)
//!    first moves it to "claimed by branch `b`" with a compare-and-swap, and
//!    hands over only if that succeeded. At most one CAS from `WAITING`
//!    succeeds, so at most one branch is ever claimed.
//! 2. The waiter, when its wait ends for any reason (woken, cancelled,
//!    unwound), *ends* the claim: a CAS from `WAITING` to [`ENDED`]. If
//!    that fails, a branch was claimed first, and the wait reports that
//!    branch (whatever else happened: a claim wins over a cancellation that
//!    arrived later, as it does for local channels). Once ended, nothing can
//!    claim the wait any more.
//! 3. A claimer wakes the waiter (with [`Claim::wake`], a `Waker`, safe from
//!    any thread) after its claim succeeded, and after it has handed over:
//!    channels do both under their lock, and wake once the lock is released.
//! 4. A word is never reset while anything else holds it: a new wait gets a
//!    new word, or reuses an old one only when its `Arc` is unique (no
//!    registration can see the reset).
//!
//! Orderings: the CASes are `AcqRel` and the loads `Acquire`; what is handed
//! over travels under the channel's mutex, which orders it by itself.

use std::fmt;
use std::task::Waker;

use crate::std_sync::{AtomicUsize, Ordering};

/// The wait may still be claimed.
const WAITING: usize = 0;
/// The wait is over and was not claimed.
const ENDED: usize = 1;
/// The word of "claimed by branch `b`" is `FIRST_BRANCH + b`.
const FIRST_BRANCH: usize = 2;

/// One wait's claim word, and how to wake the waiter (rules in the module
/// docs).
pub(crate) struct Claim {
    word: AtomicUsize,
    waker: Waker,
}

impl Claim {
    /// A claim for a wait that may still be claimed; `waker` wakes the
    /// waiter.
    pub(crate) fn new(waker: Waker) -> Claim {
        Claim {
            word: AtomicUsize::new(WAITING),
            waker,
        }
    }

    /// A claim of a wait that branch `branch` claimed already (locally,
    /// before the wait published its word).
    pub(crate) fn claimed(waker: Waker, branch: u32) -> Claim {
        Claim {
            word: AtomicUsize::new(encode(branch)),
            waker,
        }
    }

    /// A claim of a wait that is over: nothing can claim it.
    pub(crate) fn ended() -> Claim {
        Claim {
            word: AtomicUsize::new(ENDED),
            waker: Waker::noop().clone(),
        }
    }

    /// Resets a word nobody else holds (rule 4) for a new wait.
    pub(crate) fn reset(&mut self, waker: Waker, claimed: Option<u32>) {
        self.word = AtomicUsize::new(claimed.map_or(WAITING, encode));
        self.waker = waker;
    }

    /// Claims the wait for `branch`; `false` if it is over or another
    /// branch claimed it first. Does not wake (rule 3).
    pub(crate) fn try_claim(&self, branch: u32) -> bool {
        self.word
            .compare_exchange(WAITING, encode(branch), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `true` while the wait may still be claimed.
    pub(crate) fn is_waiting(&self) -> bool {
        self.word.load(Ordering::Acquire) == WAITING
    }

    /// The branch that claimed the wait, if one did (so far).
    pub(crate) fn claimed_branch(&self) -> Option<u32> {
        decode(self.word.load(Ordering::Acquire))
    }

    /// Ends the wait (rule 2): from now on nothing can claim it. Returns
    /// the branch that claimed it first, if one did. Idempotent.
    pub(crate) fn end(&self) -> Option<u32> {
        match self
            .word
            .compare_exchange(WAITING, ENDED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(word) => decode(word),
        }
    }

    /// Wakes the waiter, from any thread.
    pub(crate) fn wake(&self) {
        self.waker.wake_by_ref();
    }
}

fn encode(branch: u32) -> usize {
    // `usize` is at least 32 bits wide on every target Rust supports with
    // threads; a `select` with 2^32 - 2 branches does not fit in memory.
    FIRST_BRANCH
        .checked_add(branch as usize)
        .expect("a select has fewer than usize::MAX - 1 branches")
}

fn decode(word: usize) -> Option<u32> {
    match word {
        WAITING | ENDED => None,
        claimed => Some((claimed - FIRST_BRANCH) as u32),
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Ordering::Acquire);
        let state = match word {
            WAITING => "waiting".to_string(),
            ENDED => "ended".to_string(),
            _ => format!("claimed by branch {}", word - FIRST_BRANCH),
        };
        f.debug_struct("Claim").field("state", &state).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_claim_wins_and_ending_is_final() {
        let claim = Claim::new(Waker::noop().clone());
        assert!(claim.is_waiting());
        assert!(claim.try_claim(3));
        assert!(!claim.try_claim(1), "claimed twice");
        assert_eq!(claim.claimed_branch(), Some(3));
        assert_eq!(claim.end(), Some(3), "a claim wins over the end");
        assert_eq!(claim.end(), Some(3), "idempotent");

        let claim = Claim::new(Waker::noop().clone());
        assert_eq!(claim.end(), None);
        assert!(!claim.try_claim(0), "claimed after the end");
        assert_eq!(claim.claimed_branch(), None);
        assert!(!Claim::ended().try_claim(0));
        assert_eq!(Claim::claimed(Waker::noop().clone(), 7).end(), Some(7));
    }

    #[test]
    fn a_reset_word_waits_again() {
        let mut claim = Claim::new(Waker::noop().clone());
        assert_eq!(claim.end(), None);
        claim.reset(Waker::noop().clone(), None);
        assert!(claim.try_claim(0));
        claim.reset(Waker::noop().clone(), Some(2));
        assert_eq!(claim.end(), Some(2));
    }
}
