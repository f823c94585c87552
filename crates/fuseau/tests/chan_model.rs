//! A proptest model of `Chan` and `SharedChan` (on one thread, its fast and
//! slow paths both; `shared_chan.rs` has the cross-thread tests and the
//! loom models): random scripts of channel operations run by
//! several fibers on two channels (each unbounded, or bounded with a
//! capacity of 0 to 3), interleaved one fiber run at a time, with random
//! cancellations from outside; `select`s over one channel or both. Checked
//! against what channels must do:
//!
//! * nothing is lost or duplicated: the values whose send succeeded are
//!   exactly those received (from the channel they were sent on) plus those
//!   left in the channels; a failed `try_send` gives back the very value;
//!   every value is dropped exactly once;
//! * FIFO: each receiver gets each sender's values on a channel in the
//!   order they were sent, and what is left over is newer than anything
//!   received;
//! * `Closed` exactly when it should be: a receive fails with it only when
//!   the channel is closed and drained, and always then; a send fails with
//!   it once the channel is closed, and never succeeds then;
//! * `try_send` says `Full` only when the buffer is full and no receiver
//!   waits; `try_recv` says `Empty` only when nothing is buffered and no
//!   sender waits;
//! * a select never matches its own send and receive on a rendezvous;
//! * `len` never exceeds the capacity.
//!
//! The checks on the state of a channel are made inside the fibers, right
//! after an operation returns: the scheduler runs one fiber at a time, so
//! nothing can happen in between.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use common::chans::{waiters, Channel};
use common::{Counter, Guard, Sim};
use fuseau::{
    select, Chan, Config, Error, ErrorKind, Fiber, SharedChan, TryRecvError, TrySendError, When,
};
use proptest::prelude::*;

/// A value in a channel: who sent it, its rank among that fiber's values,
/// and a guard that counts its drop (`Send`, for `SharedChan`).
struct Value {
    sender: usize,
    seq: u32,
    _guard: Guard,
}

/// (sender, seq)
type Id = (usize, u32);

impl Value {
    fn id(&self) -> Id {
        (self.sender, self.seq)
    }
}

/// Operations on channel `k` (0 or 1; `1 - k` is the other one).
#[derive(Clone, Copy, Debug)]
enum Op {
    Send(usize),
    Recv(usize),
    TrySend(usize),
    TryRecv(usize),
    Close(usize),
    /// `select` over sending on `k` and receiving on a channel that never
    /// has a value.
    SelectSend(usize),
    /// `select` over receiving on both channels, `k` first.
    SelectRecvBoth(usize),
    /// `select` over sending on `k` and receiving from `k`.
    SelectSendRecvSame(usize),
    /// `select` over sending on `k` and receiving from the other channel.
    SelectSendRecvOther(usize),
    /// `select` over sending (different values) on both, `k` first.
    SelectSendBoth(usize),
    /// `select` over receiving on `k` and a timeout of `n` ms.
    RecvTimeout(usize, u8),
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    let k = || 0usize..2;
    prop_oneof![
        4 => k().prop_map(Op::Send),
        4 => k().prop_map(Op::Recv),
        2 => k().prop_map(Op::TrySend),
        2 => k().prop_map(Op::TryRecv),
        1 => k().prop_map(Op::Close),
        2 => k().prop_map(Op::SelectSend),
        2 => k().prop_map(Op::SelectRecvBoth),
        2 => k().prop_map(Op::SelectSendRecvSame),
        2 => k().prop_map(Op::SelectSendRecvOther),
        2 => k().prop_map(Op::SelectSendBoth),
        1 => (k(), 0u8..3).prop_map(|(k, ms)| Op::RecvTimeout(k, ms)),
        2 => Just(Op::Yield),
    ]
}

/// What a fiber saw, in the order it saw it: (channel, value).
#[derive(Default)]
struct Record {
    /// Values whose send succeeded.
    sent: Vec<(usize, Id)>,
    /// Values received.
    received: Vec<(usize, Id)>,
}

/// Everything the fibers share.
struct World<C> {
    chans: [C; 2],
    never: C,
    capacities: [Option<usize>; 2],
    drops: Counter,
    created: Cell<usize>,
    records: RefCell<Vec<Record>>,
}

/// What a send or receive on one channel may report.
enum Outcome {
    Sent(usize, Id),
    Received(usize, Value),
}

impl<C: Channel<Value>> World<C> {
    fn check_len(&self) {
        for (c, cap) in self.chans.iter().zip(self.capacities) {
            if let Some(cap) = cap {
                assert!(c.len() <= cap, "len {} > capacity {cap}", c.len());
            }
        }
    }

    /// (closed, len) of each channel.
    fn snapshot(&self) -> [(bool, usize); 2] {
        [0, 1].map(|k| (self.chans[k].is_closed(), self.chans[k].len()))
    }

    fn record(&self, me: usize, outcome: Outcome, before: [(bool, usize); 2], op: Op) {
        let mut records = self.records.borrow_mut();
        match outcome {
            Outcome::Sent(k, id) => {
                assert!(!before[k].0, "{op:?}: sent on closed channel {k}");
                records[me].sent.push((k, id));
            }
            Outcome::Received(k, v) => {
                assert_ne!(
                    before[k],
                    (true, 0),
                    "{op:?}: a value from closed, drained channel {k}"
                );
                records[me].received.push((k, v.id()));
            }
        }
    }

    /// A blocking operation on the channels `involved` failed with `error`.
    fn failed(&self, error: &Error, involved: &[usize], op: Op) {
        match error.kind() {
            ErrorKind::Closed => assert!(
                involved.iter().any(|&k| self.chans[k].is_closed()),
                "{op:?}: Closed, but no channel is"
            ),
            ErrorKind::Cancelled => {}
            ErrorKind::Timeout => {
                let Op::RecvTimeout(k, _) = op else {
                    panic!("{op:?}: a timeout");
                };
                // The channel's branch is polled first: it was open and
                // empty when the select gave up.
                let c = &self.chans[k];
                assert!(!c.is_closed() && c.is_empty(), "{op:?}");
            }
            _ => panic!("{op:?}: unexpected error {error}"),
        }
    }
}

/// Runs the script of fiber `me`; errors of operations are checked and
/// recorded, never passed up (cancellation makes every later blocking
/// operation fail at once, so the script still ends).
fn run_script<C: Channel<Value>>(world: &World<C>, me: usize, script: &[Op]) {
    let chans = &world.chans;
    let mut seq = 0;
    let mut value = || {
        seq += 1;
        world.created.set(world.created.get() + 1);
        Value {
            sender: me,
            seq,
            _guard: world.drops.guard(),
        }
    };
    for &op in script {
        let before = world.snapshot();
        match op {
            Op::Send(k) => {
                let v = value();
                let id = v.id();
                match chans[k].send(v) {
                    Ok(()) => world.record(me, Outcome::Sent(k, id), before, op),
                    Err(e) => world.failed(&e, &[k], op),
                }
            }
            Op::TrySend(k) => {
                let v = value();
                let id = v.id();
                let c = &chans[k];
                match c.try_send(v) {
                    Ok(()) => world.record(me, Outcome::Sent(k, id), before, op),
                    Err(TrySendError::Full(v)) => {
                        assert_eq!(v.id(), id, "the value comes back");
                        assert!(!c.is_closed());
                        let cap = world.capacities[k].expect("unbounded, never full");
                        assert_eq!(c.len(), cap, "Full, but the buffer has room");
                        assert_eq!(waiters(c).1, 0, "Full, but a receiver waits");
                    }
                    Err(TrySendError::Closed(v)) => {
                        assert_eq!(v.id(), id, "the value comes back");
                        assert!(c.is_closed());
                    }
                }
            }
            Op::Recv(k) => match chans[k].recv() {
                Ok(v) => world.record(me, Outcome::Received(k, v), before, op),
                Err(e) => {
                    world.failed(&e, &[k], op);
                    if e.is_closed() {
                        assert!(chans[k].is_empty(), "Closed before drained");
                    }
                }
            },
            Op::TryRecv(k) => {
                let c = &chans[k];
                match c.try_recv() {
                    Ok(v) => world.record(me, Outcome::Received(k, v), before, op),
                    Err(TryRecvError::Empty) => {
                        assert!(!c.is_closed(), "Empty on a closed, drained channel");
                        assert!(c.is_empty());
                        assert_eq!(waiters(c).0, 0, "Empty, but a sender waits");
                    }
                    Err(TryRecvError::Closed) => assert!(c.is_closed() && c.is_empty()),
                }
            }
            Op::Close(k) => chans[k].close(),
            Op::SelectSend(k) => {
                let v = value();
                let id = v.id();
                let result = select(vec![
                    When::new(chans[k].ev_send(v), |()| Outcome::Sent(k, id)),
                    When::new(world.never.ev_recv(), |_| unreachable!("never")),
                ]);
                match result {
                    Ok(outcome) => world.record(me, outcome, before, op),
                    Err(e) => world.failed(&e, &[k], op),
                }
            }
            Op::SelectRecvBoth(k) => {
                let j = 1 - k;
                let result = select(vec![
                    When::new(chans[k].ev_recv(), move |v| Outcome::Received(k, v)),
                    When::new(chans[j].ev_recv(), move |v| Outcome::Received(j, v)),
                ]);
                match result {
                    Ok(outcome) => world.record(me, outcome, before, op),
                    Err(e) => {
                        world.failed(&e, &[k, j], op);
                        // Polled in order: k is closed and drained, or
                        // open and empty with j closed and drained.
                        if e.is_closed() {
                            let (ck, cj) = (&chans[k], &chans[j]);
                            assert!(ck.is_empty(), "{op:?}: Closed, but {k} has a value");
                            if !ck.is_closed() {
                                assert!(cj.is_closed() && cj.is_empty(), "{op:?}");
                            }
                        }
                    }
                }
            }
            Op::SelectSendRecvSame(k) | Op::SelectSendRecvOther(k) => {
                let j = if matches!(op, Op::SelectSendRecvSame(_)) {
                    k
                } else {
                    1 - k
                };
                let v = value();
                let id = v.id();
                let result = select(vec![
                    When::new(chans[k].ev_send(v), move |()| Outcome::Sent(k, id)),
                    When::new(chans[j].ev_recv(), move |v| Outcome::Received(j, v)),
                ]);
                match result {
                    Ok(Outcome::Received(_, v))
                        if j == k && world.capacities[k] == Some(0) && v.id() == id =>
                    {
                        panic!("{op:?}: a select matched itself")
                    }
                    Ok(outcome) => world.record(me, outcome, before, op),
                    Err(e) => world.failed(&e, &[k, j], op),
                }
            }
            Op::SelectSendBoth(k) => {
                let j = 1 - k;
                let (vk, vj) = (value(), value());
                let (ik, ij) = (vk.id(), vj.id());
                let result = select(vec![
                    When::new(chans[k].ev_send(vk), move |()| Outcome::Sent(k, ik)),
                    When::new(chans[j].ev_send(vj), move |()| Outcome::Sent(j, ij)),
                ]);
                match result {
                    Ok(outcome) => world.record(me, outcome, before, op),
                    Err(e) => world.failed(&e, &[k, j], op),
                }
            }
            Op::RecvTimeout(k, ms) => {
                let result = select(vec![
                    When::new(chans[k].ev_recv(), move |v| Outcome::Received(k, v)),
                    When::new(
                        fuseau::ev_timeout(Duration::from_millis(ms.into())),
                        |()| unreachable!(),
                    ),
                ]);
                match result {
                    Ok(outcome) => world.record(me, outcome, before, op),
                    Err(e) => world.failed(&e, &[k], op),
                }
            }
            Op::Yield => {
                let _ = fuseau::yield_now();
            }
        }
        world.check_len();
    }
}

#[derive(Debug, Clone)]
struct Case {
    capacities: [Option<usize>; 2],
    scripts: Vec<Vec<Op>>,
    /// The driver: run this many fiber runs, then maybe cancel a fiber.
    schedule: Vec<(usize, Option<usize>)>,
}

fn capacity() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(None), (0usize..4).prop_map(Some)]
}

fn case() -> impl Strategy<Value = Case> {
    (
        [capacity(), capacity()],
        prop::collection::vec(prop::collection::vec(op(), 0..16), 1..5),
        prop::collection::vec((1usize..6, prop::option::weighted(0.2, 0usize..5)), 0..24),
    )
        .prop_map(|(capacities, scripts, schedule)| Case {
            capacities,
            scripts,
            schedule,
        })
}

fn run_case<C: Channel<Value>>(case: &Case) -> std::result::Result<(), TestCaseError> {
    // One fiber run per iteration: the driver interleaves finely.
    let sim = Sim::with_config(Config::new().budget(1));
    let chans = case
        .capacities
        .map(|cap| cap.map_or_else(C::new, C::bounded));
    let world = Rc::new(World {
        chans: chans.clone(),
        never: C::new(),
        capacities: case.capacities,
        drops: Counter::new(),
        created: Cell::new(0),
        records: RefCell::new(case.scripts.iter().map(|_| Record::default()).collect()),
    });
    let fibers: Vec<Fiber<()>> = case
        .scripts
        .iter()
        .enumerate()
        .map(|(me, script)| {
            let (world, script) = (world.clone(), script.clone());
            sim.spawn(move || {
                run_script(&world, me, &script);
                Ok(())
            })
        })
        .collect();
    for &(runs, cancel) in &case.schedule {
        sim.run_iterations(runs);
        world.check_len();
        if let Some(i) = cancel {
            fibers[i % fibers.len()].cancel();
        }
    }
    // Run to the end; fibers stuck on the channels are freed by closing
    // them.
    let mut closed_by_driver = false;
    loop {
        if let Some(deadline) = sim.run_until_idle() {
            let now = sim.sched.now();
            if deadline > now {
                sim.advance(deadline - now);
            }
            continue;
        }
        if fibers.iter().all(|f| f.is_done()) {
            break;
        }
        prop_assert!(!closed_by_driver, "fibers still blocked on closed channels");
        for c in &chans {
            c.close();
        }
        closed_by_driver = true;
    }
    for f in fibers {
        // The scripts never pass errors up; a fiber cancelled before it
        // started fails with its cancellation.
        if let Err(e) = f.join() {
            prop_assert!(e.is_cancelled(), "a fiber failed: {e:?}");
        }
    }
    world.check_len();

    // What is left in the channels, in order.
    let mut left: Vec<(usize, Id)> = Vec::new();
    for (k, c) in chans.iter().enumerate() {
        prop_assert_eq!(waiters(c), (0, 0));
        while let Ok(v) = c.try_recv() {
            left.push((k, v.id()));
        }
        if c.is_closed() {
            prop_assert_eq!(c.try_recv().err(), Some(TryRecvError::Closed));
        }
    }

    // Nothing lost, nothing duplicated.
    let records = world.records.take();
    let sent: Vec<(usize, Id)> = records.iter().flat_map(|r| r.sent.clone()).collect();
    let got: Vec<(usize, Id)> = records
        .iter()
        .flat_map(|r| r.received.clone())
        .chain(left.iter().copied())
        .collect();
    let sent_set: BTreeSet<(usize, Id)> = sent.iter().copied().collect();
    let got_set: BTreeSet<(usize, Id)> = got.iter().copied().collect();
    prop_assert_eq!(sent_set.len(), sent.len(), "a value was sent twice");
    prop_assert_eq!(got_set.len(), got.len(), "a value was received twice");
    prop_assert_eq!(&sent_set, &got_set, "sent != received + left over");

    // FIFO: per receiver, channel and sender, in order; what is left over
    // is in order and newer than anything received.
    let mut newest_received: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    for r in &records {
        let mut last: BTreeMap<(usize, usize), u32> = BTreeMap::new();
        for &(k, (sender, seq)) in &r.received {
            if let Some(&prev) = last.get(&(k, sender)) {
                prop_assert!(
                    prev < seq,
                    "out of order on {k}: {prev} then {seq} from {sender}"
                );
            }
            last.insert((k, sender), seq);
            let n = newest_received.entry((k, sender)).or_insert(seq);
            *n = (*n).max(seq);
        }
    }
    let mut last: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    for &(k, (sender, seq)) in &left {
        if let Some(&prev) = last.get(&(k, sender)) {
            prop_assert!(prev < seq, "left over out of order");
        }
        last.insert((k, sender), seq);
        if let Some(&n) = newest_received.get(&(k, sender)) {
            prop_assert!(n < seq, "left over {seq} older than received {n}");
        }
    }

    // Every value was dropped exactly once, once everything is gone (the
    // fibers' bodies, which held `world` too, are gone already).
    let (created, drops) = (world.created.get(), world.drops.clone());
    drop(chans);
    drop(world);
    drop(sim);
    prop_assert_eq!(drops.get(), created);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore)]
    fn chans_behave_like_their_model(case in case()) {
        run_case::<Chan<Value>>(&case)?;
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn shared_chans_behave_like_their_model(case in case()) {
        run_case::<SharedChan<Value>>(&case)?;
    }
}

/// The drop accounting, separately: every value made is dropped once, also
/// values stuck in the channel or with a blocked sender at teardown.
#[test]
#[cfg_attr(miri, ignore)]
fn every_value_is_dropped_once() {
    let drops = Counter::new();
    let made = Rc::new(Cell::new(0));
    {
        let sim = Sim::new();
        let chan: Chan<Guard> = Chan::bounded(2);
        for _ in 0..3 {
            let (c, d, m) = (chan.clone(), drops.clone(), made.clone());
            sim.spawn(move || {
                for _ in 0..3 {
                    m.set(m.get() + 1);
                    c.send(d.guard())?;
                }
                Ok(())
            });
        }
        sim.run_until_idle();
        assert_eq!(chan.len(), 2);
        assert_eq!(waiters(&chan), (3, 0));
        assert_eq!(drops.get(), 0);
        drop(chan.try_recv().unwrap());
        assert_eq!(drops.get(), 1);
        // The scheduler goes with the blocked senders; the buffered values
        // stay with the channel.
        drop(sim);
        assert_eq!(drops.get(), 3, "the blocked senders' values were dropped");
        assert_eq!(waiters(&chan), (0, 0));
        assert_eq!(chan.len(), 2);
        drop(chan);
    }
    assert_eq!(made.get(), 5);
    assert_eq!(drops.get(), made.get());
}
