//! The timer queue: armed timers ordered by deadline, then by arming order.
//!
//! A plain data structure, generic over what a timer does when it fires:
//! the scheduler keeps one (see `scheduler::timers`) and the event loop only
//! has to wake up at its earliest deadline.

use std::collections::BTreeMap;
use std::time::Instant;

/// Identifies an armed timer: its deadline and a sequence number that
/// orders timers with the same deadline by arming order.
pub(crate) type TimerKey = (Instant, u64);

/// Armed timers, earliest first.
pub(crate) struct TimerQueue<A> {
    timers: BTreeMap<TimerKey, A>,
    next_seq: u64,
}

impl<A> Default for TimerQueue<A> {
    fn default() -> Self {
        TimerQueue {
            timers: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<A> TimerQueue<A> {
    pub(crate) fn insert(&mut self, deadline: Instant, action: A) -> TimerKey {
        let key = (deadline, self.next_seq);
        self.next_seq += 1;
        self.timers.insert(key, action);
        key
    }

    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<A> {
        self.timers.remove(&key)
    }

    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        self.timers.contains_key(&key)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<A> {
        let entry = self.timers.first_entry()?;
        if entry.key().0 <= now {
            Some(entry.remove())
        } else {
            None
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|(k, _)| k.0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn queue_of(deadlines: &[u64], base: Instant) -> (TimerQueue<()>, Vec<TimerKey>) {
        let mut q = TimerQueue::default();
        let keys = deadlines
            .iter()
            .map(|&ms| q.insert(base + Duration::from_millis(ms), ()))
            .collect();
        (q, keys)
    }

    proptest! {
        #[test]
        fn pops_in_deadline_then_arming_order(deadlines in proptest::collection::vec(0u64..50, 0..40), now in 0u64..60) {
            let base = Instant::now();
            let (mut q, keys) = queue_of(&deadlines, base);
            let mut expected: Vec<TimerKey> = keys.iter().copied().filter(|k| k.0 <= base + Duration::from_millis(now)).collect();
            expected.sort();
            let mut popped = 0;
            while q.pop_expired(base + Duration::from_millis(now)).is_some() {
                popped += 1;
            }
            prop_assert_eq!(popped, expected.len());
            prop_assert_eq!(q.len(), deadlines.len() - expected.len());
            if let Some(next) = q.next_deadline() {
                prop_assert!(next > base + Duration::from_millis(now));
            }
        }

        #[test]
        fn removed_timers_never_fire(deadlines in proptest::collection::vec(0u64..50, 1..40), pick in any::<prop::sample::Index>()) {
            let base = Instant::now();
            let (mut q, keys) = queue_of(&deadlines, base);
            let victim = keys[pick.index(keys.len())];
            prop_assert!(q.remove(victim).is_some());
            prop_assert!(q.remove(victim).is_none());
            prop_assert!(!q.contains(victim));
            let mut n = 0;
            while q.pop_expired(base + Duration::from_secs(1)).is_some() { n += 1; }
            prop_assert_eq!(n, deadlines.len() - 1);
        }
    }
}
