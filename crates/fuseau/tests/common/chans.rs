//! Go's channel tests written once for both channel types: `golang.rs`
//! runs them on `Chan` (goroutines are fibers of one scheduler),
//! `golang_shared.rs` on `SharedChan` (goroutines spread over scheduler
//! threads). Here are [`Channel`], the operations the two types share;
//! [`Goroutines`] and [`Spawn`], where a test's goroutines run; and the
//! bodies (or the parts) of the tests that are the same for both. Each
//! body names, in its `where` clause, what its goroutines are handed: to
//! go to another thread, that must be `Send`.
//!
//! Sources: `test/chan/*.go`, `test/closedchan.go` and
//! `src/runtime/chan_test.go` of <https://github.com/golang/go>,
//! Copyright (c) 2009 The Go Authors, BSD-style license
//! (<https://golang.org/LICENSE>). See `golang.rs` for the translation.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::fmt;
use std::rc::Rc;

use fuseau::{
    select, Chan, ErrorKind, Event, RecvEvent, Result, SendEvent, SharedChan, SharedRecvEvent,
    SharedSendEvent, TryRecvError, TrySendError, When,
};

use super::{select_now, waiters_of, Sim};

// ------------------------------------------------------------ channels

/// The operations of `Chan` and `SharedChan` (same names, same
/// semantics), so that a test can be written once for both.
pub(crate) trait Channel<T>: Clone + fmt::Debug + 'static {
    /// What [`ev_send`](Channel::ev_send) returns.
    type SendEvent: Event<Output = ()> + 'static;
    /// What [`ev_recv`](Channel::ev_recv) returns.
    type RecvEvent: Event<Output = T> + 'static;

    /// An unbounded channel.
    fn new() -> Self;
    /// A channel that buffers up to `capacity` values (0: rendezvous).
    fn bounded(capacity: usize) -> Self;
    /// Sends `value`, blocking while there is no room.
    fn send(&self, value: T) -> Result<()>;
    /// Receives a value, blocking while there is none.
    fn recv(&self) -> Result<T>;
    /// Sends `value` if that needs no waiting.
    fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>>;
    /// Receives a value if that needs no waiting.
    fn try_recv(&self) -> std::result::Result<T, TryRecvError>;
    /// Closes the channel (again: nothing happens).
    fn close(&self);
    /// Whether the channel is closed.
    fn is_closed(&self) -> bool;
    /// How many values are buffered.
    fn len(&self) -> usize;
    /// Whether no value is buffered.
    fn is_empty(&self) -> bool;
    /// The event of sending `value`, for a `select`.
    fn ev_send(&self, value: T) -> Self::SendEvent;
    /// The event of receiving a value, for a `select`.
    fn ev_recv(&self) -> Self::RecvEvent;
}

/// Implements [`Channel`] for `$chan<T>` (with `T: $bound`) by calling its
/// inherent methods of the same names.
macro_rules! impl_channel {
    ($chan:ident, $send_event:ident, $recv_event:ident, $($bound:tt)+) => {
        impl<T: $($bound)+> Channel<T> for $chan<T> {
            type SendEvent = $send_event<T>;
            type RecvEvent = $recv_event<T>;

            fn new() -> Self {
                $chan::new()
            }
            fn bounded(capacity: usize) -> Self {
                $chan::bounded(capacity)
            }
            fn send(&self, value: T) -> Result<()> {
                $chan::send(self, value)
            }
            fn recv(&self) -> Result<T> {
                $chan::recv(self)
            }
            fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
                $chan::try_send(self, value)
            }
            fn try_recv(&self) -> std::result::Result<T, TryRecvError> {
                $chan::try_recv(self)
            }
            fn close(&self) {
                $chan::close(self)
            }
            fn is_closed(&self) -> bool {
                $chan::is_closed(self)
            }
            fn len(&self) -> usize {
                $chan::len(self)
            }
            fn is_empty(&self) -> bool {
                $chan::is_empty(self)
            }
            fn ev_send(&self, value: T) -> Self::SendEvent {
                $chan::ev_send(self, value)
            }
            fn ev_recv(&self) -> Self::RecvEvent {
                $chan::ev_recv(self)
            }
        }
    };
}

impl_channel!(Chan, SendEvent, RecvEvent, 'static);
impl_channel!(SharedChan, SharedSendEvent, SharedRecvEvent, Send + 'static);

/// Go's `v, ok := <-c`: `Ok(None)` once the channel is closed and
/// drained; other errors (cancellation) pass through.
pub(crate) fn recv_opt<T, C: Channel<T>>(chan: &C) -> Result<Option<T>> {
    match chan.recv() {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_closed() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The blocked senders and receivers of a channel, from its `Debug`
/// output (the only place they are observable).
pub(crate) fn waiters<T, C: Channel<T>>(chan: &C) -> (usize, usize) {
    waiters_of(&format!("{chan:?}"))
}

// ---------------------------------------------------------- goroutines

/// Where a test's goroutines run, and the channel type they talk over.
pub(crate) trait Goroutines: Clone + 'static {
    /// Go's `chan T`.
    type Chan<T: Send + 'static>: Channel<T>;

    /// Go's `make(chan T, capacity)`.
    fn make<T: Send + 'static>(&self, capacity: usize) -> Self::Chan<T> {
        Channel::bounded(capacity)
    }
}

/// Go's `go f(args)`: starts a goroutine that runs `f(args)`, and does not
/// wait for it. Implemented for every `A` that can be moved to where the
/// goroutines run (anything for fibers on the same thread, `Send` values
/// for other threads).
pub(crate) trait Spawn<A> {
    /// Starts `f(args)` as a goroutine.
    fn go(&self, args: A, f: fn(A) -> Result<()>);
}

/// Goroutines as fibers of the running scheduler, children of the running
/// fiber (which therefore waits for them, and fails if one fails), over
/// `Chan`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fibers;

impl Goroutines for Fibers {
    type Chan<T: Send + 'static> = Chan<T>;
}

impl<A: 'static> Spawn<A> for Fibers {
    fn go(&self, args: A, f: fn(A) -> Result<()>) {
        drop(fuseau::spawn(move || f(args)));
    }
}

// ------------------------------------------------------------- fifo.go

/// fifo.go's `SynchFifo`: a chain of `n` goroutines on a rendezvous
/// channel, each allowed to receive once its predecessor has: the values
/// 0, 1, ... come out in order.
pub(crate) fn fifo_synch<G>(go: &G, n: i32) -> Result<()>
where
    G: Goroutines + Spawn<(G::Chan<i32>, i32, G::Chan<i32>, G::Chan<i32>)>,
{
    let ch = go.make::<i32>(0);
    let mut inp = go.make::<i32>(0);
    let start = inp.clone();
    for i in 0..n {
        let out = go.make::<i32>(0);
        go.go(
            (ch.clone(), i, inp.clone(), out.clone()),
            |(ch, val, inp, out)| {
                inp.recv()?;
                let got = ch.recv()?;
                assert_eq!(got, val, "synch fifo out of order");
                out.send(1)
            },
        );
        inp = out;
    }
    start.send(0)?;
    for i in 0..n {
        ch.send(i)?;
    }
    inp.recv()?;
    Ok(())
}

// ------------------------------------------------------- goroutines.go

/// goroutines.go: a chain of `n` goroutines, each sending to its left
/// neighbour 1 more than it received from its right one; returns what
/// comes out at the left end (`n + 1`).
pub(crate) fn daisy_chain<G>(go: &G, n: usize) -> Result<i32>
where
    G: Goroutines + Spawn<(G::Chan<i32>, G::Chan<i32>)> + Spawn<G::Chan<i32>>,
{
    let leftmost = go.make::<i32>(0);
    let mut left = leftmost.clone();
    let mut right = leftmost.clone();
    for _ in 0..n {
        right = go.make::<i32>(0);
        go.go((left.clone(), right.clone()), |(l, r)| {
            l.send(1 + r.recv()?)
        });
        left = right.clone();
    }
    go.go(right, |right| right.send(1));
    leftmost.recv()
}

// ----------------------------------------------------- doubleselect.go

/// doubleselect.go: a goroutine sends 0 to `iterations - 1`, each on
/// whichever of four channels can take it; four goroutines forward them to
/// one channel; returns the values received there, after asserting that
/// none came twice.
pub(crate) fn doubleselect<G>(go: &G, iterations: i32) -> Result<HashSet<i32>>
where
    G: Goroutines
        + Spawn<([G::Chan<i32>; 4], i32)>
        + Spawn<(G::Chan<i32>, G::Chan<i32>, G::Chan<bool>)>
        + Spawn<(G::Chan<bool>, G::Chan<i32>)>,
{
    // Sends 0..n, each on whichever of the channels can take it.
    fn sender<C: Channel<i32>>(n: i32, c: [C; 4]) -> Result<()> {
        for i in 0..n {
            select(c.iter().map(|c| When::new(c.ev_send(i), |()| ())).collect())?;
        }
        for c in &c {
            c.close();
        }
        Ok(())
    }

    // Forwards `inp` to `out` until `inp` is closed.
    fn mux<C: Channel<i32>, D: Channel<bool>>(out: C, inp: C, done: D) -> Result<()> {
        while let Some(v) = recv_opt(&inp)? {
            out.send(v)?;
        }
        done.send(true)
    }

    let c: [G::Chan<i32>; 4] = std::array::from_fn(|_| go.make(0));
    let done = go.make::<bool>(0);
    let cmux = go.make::<i32>(0);
    go.go((c.clone(), iterations), |(c, n)| sender(n, c));
    for ci in &c {
        go.go(
            (cmux.clone(), ci.clone(), done.clone()),
            |(out, inp, done)| mux(out, inp, done),
        );
    }
    go.go((done.clone(), cmux.clone()), |(d, m)| {
        for _ in 0..4 {
            d.recv()?;
        }
        m.close();
        Ok(())
    });
    // The receiver.
    let mut seen = HashSet::new();
    while let Some(v) = recv_opt(&cmux)? {
        assert!(seen.insert(v), "got duplicate value for {v}");
    }
    Ok(seen)
}

// ---------------------------------------------------------- nonblock.go

/// nonblock.go, for the four value types, on channels of capacity
/// `buffer`: see [`nonblock_case`]. Returns how many tries failed, for
/// each type.
pub(crate) fn nonblock<G>(
    go: &G,
    buffer: usize,
    max_tries: usize,
    pause: fn() -> Result<()>,
) -> Result<[(usize, usize); 4]>
where
    G: Goroutines
        + Spawn<(G::Chan<i32>, G::Chan<bool>, i32)>
        + Spawn<(G::Chan<i64>, G::Chan<bool>, i64)>
        + Spawn<(G::Chan<bool>, G::Chan<bool>, bool)>
        + Spawn<(G::Chan<String>, G::Chan<bool>, String)>,
{
    Ok([
        nonblock_case::<G, i32>(go, buffer, 123, 234, max_tries, pause)?,
        nonblock_case::<G, i64>(go, buffer, 123_456, 234_567, max_tries, pause)?,
        nonblock_case::<G, bool>(go, buffer, true, true, max_tries, pause)?,
        nonblock_case::<G, String>(
            go,
            buffer,
            "hello".into(),
            "hello again".into(),
            max_tries,
            pause,
        )?,
    ])
}

/// nonblock.go, for one value type: non-blocking sends and receives (Go's
/// `select` with `default`, and `try_recv`) against a goroutine that
/// blocks on the other end; between two failed tries, `pause`, for at
/// most `max_tries` tries. Returns how many tries failed, for the sends
/// and for the receives.
pub(crate) fn nonblock_case<G, T>(
    go: &G,
    buffer: usize,
    to_send: T,
    to_receive: T,
    max_tries: usize,
    pause: fn() -> Result<()>,
) -> Result<(usize, usize)>
where
    T: Clone + PartialEq + fmt::Debug + Send + 'static,
    G: Goroutines + Spawn<(G::Chan<T>, G::Chan<bool>, T)>,
{
    let c = go.make::<T>(buffer);
    let sync = go.make::<bool>(0);

    // Nothing to receive: a non-blocking receive falls through.
    assert!(select_now(vec![When::new(c.ev_recv(), |_| ())])?.is_none());
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Empty);

    // A receiver blocks on c; try sending until it (or the buffer) takes it.
    go.go(
        (c.clone(), sync.clone(), to_send.clone()),
        |(c, sync, expected)| {
            assert_eq!(c.recv()?, expected, "receiver got a wrong value");
            sync.send(true)
        },
    );
    let mut send_failures = 0;
    while select_now(vec![When::new(c.ev_send(to_send.clone()), |()| ())])?.is_none() {
        send_failures += 1;
        assert!(send_failures <= max_tries, "receiver buffer={buffer}");
        pause()?;
    }
    sync.recv()?;

    // A sender blocks on c; try receiving until its value is there.
    go.go(
        (c.clone(), sync.clone(), to_receive.clone()),
        |(c, sync, value)| {
            c.send(value)?;
            sync.send(true)
        },
    );
    if buffer > 0 {
        sync.recv()?;
    }
    let mut recv_failures = 0;
    loop {
        match c.try_recv() {
            Ok(v) => {
                assert_eq!(v, to_receive, "sender value");
                break;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Closed) => panic!("the channel is not closed"),
        }
        recv_failures += 1;
        assert!(recv_failures <= max_tries, "sender buffer={buffer}");
        pause()?;
    }
    if buffer == 0 {
        sync.recv()?;
    }
    Ok((send_failures, recv_failures))
}

// ------------------------------------------------------------ select.go

/// select.go: a select with `default` sends on the channels of its
/// branches until none can take a value (a `nil` channel is a branch left
/// out); each value is a new power of 2.
pub(crate) fn select_go<C: Channel<u32>>() -> Result<()> {
    let shift = Rc::new(Cell::new(0u32));
    let counter = Rc::new(Cell::new(0u32));
    let get_value = {
        let (shift, counter) = (shift.clone(), counter.clone());
        move || {
            counter.set(counter.get() + 1);
            1u32 << shift.get()
        }
    };
    // Sends on a and b until neither can take a value; returns how many
    // sends happened.
    let send = |mut a: Option<C>, mut b: Option<C>| -> Result<u32> {
        let mut i = 0;
        loop {
            let (v1, v2) = (get_value(), get_value());
            let mut branches = Vec::new();
            if let Some(a) = &a {
                branches.push(When::new(a.ev_send(v1), |()| 'a'));
            }
            if let Some(b) = &b {
                branches.push(When::new(b.ev_send(v2), |()| 'b'));
            }
            match select_now(branches)? {
                Some('a') => a = None,
                Some(_) => b = None,
                None => break,
            }
            i += 1;
            shift.set(shift.get() + 1);
        }
        Ok(i)
    };
    let a = C::bounded(1);
    let b = C::bounded(1);
    assert_eq!(send(Some(a.clone()), Some(b.clone()))?, 2);
    let (av, bv) = (a.recv()?, b.recv()?);
    assert_eq!(av | bv, 3, "bad values");
    assert_eq!(send(Some(a.clone()), None)?, 1);
    assert_eq!(counter.get(), 10);
    Ok(())
}

// ----------------------------------------------------------- select2.go

/// select2.go: twice, a goroutine sends `n` values on a channel, each
/// received by a select over it and over a channel where nothing comes;
/// after each, the losing branch left no registration behind. Returns the
/// two channels.
pub(crate) fn select2<G>(go: &G, n: usize) -> Result<(G::Chan<i32>, G::Chan<i32>)>
where
    G: Goroutines + Spawn<(G::Chan<i32>, usize)>,
{
    let c: G::Chan<i32> = Channel::new();
    let dummy: G::Chan<i32> = Channel::new();
    for _round in 0..2 {
        go.go((c.clone(), n), |(c, n)| {
            for _ in 0..n {
                c.send(1)?;
                // Let the receiver wait again before the next value.
                fuseau::yield_now()?;
            }
            Ok(())
        });
        for _ in 0..n {
            select(vec![
                When::new(c.ev_recv(), |_| ()),
                When::new(dummy.ev_recv(), |_| panic!("dummy")),
            ])?;
            // The losing branch's registration was undone.
            assert_eq!(waiters(&dummy), (0, 0));
        }
    }
    Ok((c, dummy))
}

/// select2.go's end, once its goroutines are done: neither channel has a
/// blocked sender or receiver left, and `dummy` is as good as new.
pub(crate) fn assert_select2_left_nothing<C: Channel<i32>>(c: &C, dummy: &C) {
    assert_eq!(format!("{dummy:?}"), format!("{:?}", C::new()));
    assert_eq!(waiters(c), (0, 0));
}

// ----------------------------------------------------------- select3.go

/// select3.go's check: runs `op` in a fiber on a new scheduler driven by
/// hand; once nothing is ready, the fiber must be blocked (if `blocks`)
/// or done. Then it is cancelled: it is woken at once (and fails with
/// `Cancelled`, if it was blocked).
pub(crate) fn check_blocks(name: &str, blocks: bool, op: impl FnOnce() -> Result<()> + 'static) {
    let sim = Sim::new();
    let fiber = sim.spawn(op);
    sim.run_until_idle();
    assert_eq!(!fiber.is_done(), blocks, "{name}");
    fiber.cancel();
    sim.run_until_idle();
    assert!(fiber.is_done(), "{name}: cancelled, it is woken at once");
    let result = fiber.join();
    if blocks {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled, "{name}");
    }
}

/// select3.go, on channels of type `C`: which operations block, which
/// never do (see [`check_blocks`]).
pub(crate) fn select3<C: Channel<i32>>() {
    let closed = C::bounded(0);
    closed.close();

    // Unbuffered channels.
    check_blocks("recv from unbuffered", true, || {
        C::bounded(0).recv().map(drop)
    });
    check_blocks("send to unbuffered", true, || C::bounded(0).send(7));
    // Buffered channels.
    check_blocks("recv from empty buffered", true, || {
        C::bounded(1).recv().map(drop)
    });
    check_blocks("send to buffered with room", false, || {
        C::bounded(1).send(7)
    });
    check_blocks("send to full buffered", true, || {
        let c = C::bounded(1);
        c.send(7)?;
        c.send(7)
    });
    check_blocks("recv from buffered with a value", false, || {
        let c = C::bounded(1);
        c.send(7)?;
        assert_eq!(c.recv()?, 7);
        Ok(())
    });
    // Closed channels never block.
    let c = closed.clone();
    check_blocks("recv from closed", false, move || {
        assert!(c.recv().unwrap_err().is_closed());
        Ok(())
    });
    let c = closed.clone();
    check_blocks("send to closed", false, move || {
        assert!(c.send(7).unwrap_err().is_closed());
        Ok(())
    });
    let c = closed.clone();
    check_blocks("select recv from closed", false, move || {
        let e = select(vec![When::new(c.ev_recv(), |_| ())]).unwrap_err();
        assert!(e.is_closed());
        Ok(())
    });
    // A select blocks while none of its branches is ready.
    check_blocks("select over two empty channels", true, || {
        let (a, b) = (C::bounded(0), C::bounded(4));
        select(vec![
            When::new(a.ev_recv(), drop),
            When::new(b.ev_recv(), drop),
        ])
    });
    check_blocks("select with one ready branch", false, || {
        let (a, b) = (C::bounded(0), C::bounded(4));
        b.send(1)?;
        select(vec![
            When::new(a.ev_recv(), |_| panic!("a is empty")),
            When::new(b.ev_recv(), |v| assert_eq!(v, 1)),
        ])
    });
    check_blocks("select send with room", false, || {
        let (a, b) = (C::bounded(0), C::bounded(4));
        select(vec![
            When::new(a.ev_send(1), |()| panic!("nobody receives on a")),
            When::new(b.ev_send(2), |()| ()),
        ])?;
        assert_eq!(b.try_recv(), Ok(2));
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
        Ok(())
    });
}

// ----------------------------------------------------------- select4.go

/// select4.go's select: over `empty` (first) and `c`, which holds 42; the
/// ready branch wins.
pub(crate) fn select4<C: Channel<i32>>(empty: &C, c: &C) -> Result<()> {
    let v = select(vec![
        When::new(empty.ev_recv(), |_| panic!("BUG")),
        When::new(c.ev_recv(), |v| v),
    ])?;
    assert_eq!(v, 42);
    Ok(())
}

// ----------------------------------------------------------- select6.go

/// select6.go (issue 2075): a select that lost must not leave its
/// registration on a channel, where it would steal a later value.
pub(crate) fn select6<G>(go: &G) -> Result<()>
where
    G: Goroutines + Spawn<G::Chan<bool>> + Spawn<(G::Chan<bool>, G::Chan<bool>, G::Chan<bool>)>,
{
    let c1 = go.make::<bool>(0);
    let c2 = go.make::<bool>(0);
    let c3 = go.make::<bool>(0);
    go.go(c1.clone(), |c| c.recv().map(drop));
    go.go((c1.clone(), c2.clone(), c3.clone()), |(a, b, d)| {
        select(vec![
            When::new(a.ev_recv(), |_| panic!("dummy")),
            When::new(b.ev_recv(), |_| ()),
        ])?;
        d.send(true)?;
        a.recv().map(drop)
    });
    go.go(c2.clone(), |c| c.send(true));
    c3.recv()?;
    c1.send(true)?;
    c1.send(true)?;
    Ok(())
}

// ----------------------------------------------------------- select7.go

/// select7.go's receiving ends, each of which takes the value 1 from the
/// channel it is given: a plain receive, a select over the channel alone,
/// and a select over it and an empty channel.
pub(crate) fn select7_receivers<C: Channel<i32>>() -> [fn(C) -> Result<()>; 3] {
    fn recv1<C: Channel<i32>>(c: C) -> Result<()> {
        assert_eq!(c.recv()?, 1);
        Ok(())
    }
    fn recv2<C: Channel<i32>>(c: C) -> Result<()> {
        select(vec![When::new(c.ev_recv(), |v| assert_eq!(v, 1))])
    }
    fn recv3<C: Channel<i32>>(c: C) -> Result<()> {
        let c2 = C::bounded(1);
        select(vec![
            When::new(c.ev_recv(), |v| assert_eq!(v, 1)),
            When::new(c2.ev_recv(), |_| panic!("c2 is empty")),
        ])
    }
    [recv1, recv2, recv3]
}

/// select7.go's sending ends, each of which sends the value 1 on the
/// channel it is given: a plain send, a select over the channel alone, and
/// a select over it and a full channel.
pub(crate) fn select7_senders<C: Channel<i32>>() -> [fn(&C) -> Result<()>; 3] {
    fn send1<C: Channel<i32>>(c: &C) -> Result<()> {
        c.send(1)
    }
    fn send2<C: Channel<i32>>(c: &C) -> Result<()> {
        select(vec![When::new(c.ev_send(1), |()| ())])
    }
    fn send3<C: Channel<i32>>(c: &C) -> Result<()> {
        let c2 = C::bounded(1);
        c2.send(0)?; // full: the select can only send on c
        select(vec![
            When::new(c.ev_send(1), |()| ()),
            When::new(c2.ev_send(1), |()| panic!("c2 is full")),
        ])
    }
    [send1, send2, send3]
}

// ------------------------------------------------------ sieve1.go, sieve2.go

/// The first 25 primes.
pub(crate) const PRIMES: [u64; 25] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

/// sieve1.go: sends the primes on `primes`, forever. A goroutine
/// generates 2, 3, 4, ...; each prime found starts one more goroutine in
/// the chain, which filters out its multiples.
pub(crate) fn sieve1<G>(go: G, primes: G::Chan<u64>) -> Result<()>
where
    G: Goroutines + Spawn<G::Chan<u64>> + Spawn<(G::Chan<u64>, G::Chan<u64>, u64)>,
{
    fn generate<C: Channel<u64>>(ch: C) -> Result<()> {
        for i in 2.. {
            ch.send(i)?;
        }
        Ok(())
    }
    fn filter<C: Channel<u64>>(inp: C, out: C, prime: u64) -> Result<()> {
        while let Some(i) = recv_opt(&inp)? {
            if i % prime != 0 {
                out.send(i)?;
            }
        }
        Ok(())
    }
    let mut ch = go.make::<u64>(1);
    go.go(ch.clone(), generate);
    loop {
        let prime = ch.recv()?;
        primes.send(prime)?;
        let ch1 = go.make::<u64>(1);
        go.go((ch.clone(), ch1.clone(), prime), |(i, o, prime)| {
            filter(i, o, prime)
        });
        ch = ch1;
    }
}

/// sieve2.go: sends the primes on `out`, forever. Odd candidates, with
/// the composites produced in increasing order by merging channels of
/// multiples of each prime (a heap of "peeked" channels), and a feedback
/// loop through a buffering proxy that `select`s between taking a value
/// and handing one on.
pub(crate) fn sieve2<G>(go: G, out: G::Chan<u64>) -> Result<()>
where
    G: Goroutines
        + Spawn<G::Chan<u64>>
        + Spawn<(G::Chan<u64>, u64)>
        + Spawn<(G::Chan<u64>, G::Chan<u64>)>
        + Spawn<(G, G::Chan<u64>, G::Chan<u64>)>
        + Spawn<(G, G::Chan<u64>, G::Chan<u64>, G::Chan<u64>)>,
{
    /// Odd numbers from 5.
    fn odds<G: Goroutines + Spawn<G::Chan<u64>>>(go: &G) -> G::Chan<u64> {
        let out = go.make::<u64>(10);
        go.go(out.clone(), |o| {
            (5..).step_by(2).try_for_each(|n| o.send(n))
        });
        out
    }
    /// Odd multiples of the prime `p`, from `p * p`.
    fn multiples<G: Goroutines + Spawn<(G::Chan<u64>, u64)>>(go: &G, p: u64) -> G::Chan<u64> {
        let out = go.make::<u64>(10);
        go.go((out.clone(), p), |(o, p)| {
            (p * p..)
                .step_by(2 * p as usize)
                .try_for_each(|n| o.send(n))
        });
        out
    }
    /// A channel whose values are passed on to `out`, buffered without
    /// bound, so that sending to it never blocks.
    fn send_proxy<G>(go: &G, out: G::Chan<u64>) -> G::Chan<u64>
    where
        G: Goroutines + Spawn<(G::Chan<u64>, G::Chan<u64>)>,
    {
        let proxy = go.make::<u64>(10);
        go.go((proxy.clone(), out), |(p, out)| {
            let mut buffer = VecDeque::new();
            loop {
                let mut branches = vec![When::new(p.ev_recv(), Some)];
                if let Some(&e) = buffer.front() {
                    branches.push(When::new(out.ev_send(e), |()| None));
                }
                match select(branches)? {
                    Some(e) => buffer.push_back(e),
                    None => drop(buffer.pop_front()),
                }
            }
        });
        proxy
    }
    /// Takes the smallest head, and peeks at the next value of its
    /// channel.
    fn pop_push<C: Channel<u64>>(
        heap: &mut BinaryHeap<Reverse<(u64, usize)>>,
        chans: &[C],
    ) -> Result<u64> {
        let Reverse((head, i)) = heap.pop().expect("the heap is not empty");
        heap.push(Reverse((chans[i].recv()?, i)));
        Ok(head)
    }

    out.send(2)?;
    out.send(3)?;
    // The composites to be eliminated, in increasing order.
    let composites = go.make::<u64>(50);
    // The feedback loop.
    let primes = go.make::<u64>(10);
    primes.send(3)?;

    // Merge the channels of multiples of `primes` into `composites`.
    go.go(
        (go.clone(), primes.clone(), composites.clone()),
        |(go, pr, co)| {
            let mut chans = Vec::new();
            let mut heap = BinaryHeap::new();
            let mut min = 15;
            loop {
                let m = multiples(&go, pr.recv()?);
                let head = m.recv()?;
                while min < head {
                    co.send(min)?;
                    min = pop_push(&mut heap, &chans)?;
                }
                while min == head {
                    min = pop_push(&mut heap, &chans)?;
                }
                co.send(head)?;
                heap.push(Reverse((m.recv()?, chans.len())));
                chans.push(m);
            }
        },
    );

    // Sieve the composites out of the candidates.
    go.go(
        (go.clone(), out, primes, composites),
        |(go, o, primes, composites)| {
            // Only primes up to sqrt(the nth prime) are needed, so the
            // merger receives from `primes` much more slowly than this
            // goroutine sends to it: without the proxy's buffering, this
            // goroutine would block, and deadlock.
            let primes = send_proxy(&go, primes);
            let candidates = odds(&go);
            let mut p = candidates.recv()?;
            loop {
                let c = composites.recv()?;
                while p < c {
                    primes.send(p)?;
                    o.send(p)?;
                    p = candidates.recv()?;
                }
                if p == c {
                    p = candidates.recv()?;
                }
            }
        },
    );
    Ok(())
}

/// The first 300 primes, by trial division (what sieve2.go must find
/// further on).
pub(crate) fn first_300_primes() -> Vec<u64> {
    (2..)
        .filter(|n: &u64| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .take(300)
        .collect()
}

// ---------------------------------------------------------- zerosize.go

/// A value of size zero.
pub(crate) struct ZeroSize;

/// zerosize.go: channels of zero-sized values (of each capacity 0, 1 and
/// 3) carry them like any other; an unbounded one counts them.
pub(crate) fn zerosize<G>(go: &G) -> Result<()>
where
    G: Goroutines + Spawn<(G::Chan<ZeroSize>, G::Chan<[u8; 0]>)>,
{
    for cap in [0, 1, 3] {
        let a = go.make::<ZeroSize>(cap);
        let b = go.make::<[u8; 0]>(cap);
        go.go((a.clone(), b.clone()), |(a, b)| {
            for _ in 0..10 {
                a.send(ZeroSize)?;
                b.send([])?;
            }
            a.close();
            b.close();
            Ok(())
        });
        let mut n = 0;
        while recv_opt(&a)?.is_some() {
            assert_eq!(recv_opt(&b)?, Some([]));
            n += 1;
        }
        assert_eq!(n, 10);
        assert!(b.recv().unwrap_err().is_closed());
    }
    let unbounded: G::Chan<()> = Channel::new();
    for _ in 0..1_000 {
        unbounded.send(())?;
    }
    assert_eq!(unbounded.len(), 1_000);
    Ok(())
}

// -------------------------------------------------------- closedchan.go

/// A channel that is closed and drained: every receive fails with
/// `Closed`, at once, again and again, in every form; so does every send
/// (which gives the value back).
pub(crate) fn assert_closed_and_drained<C: Channel<i32>>(c: &C) -> Result<()> {
    for _ in 0..3 {
        assert!(c.recv().unwrap_err().is_closed());
        assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
        let e = select(vec![When::new(c.ev_recv(), |_| ())]).unwrap_err();
        assert!(e.is_closed());
        // Sends fail too, and give the value back.
        assert!(c.send(1).unwrap_err().is_closed());
        assert!(matches!(c.try_send(2), Err(TrySendError::Closed(2))));
        let e = select(vec![When::new(c.ev_send(3), |()| ())]).unwrap_err();
        assert!(e.is_closed());
        assert!(c.is_closed());
        assert!(c.is_empty());
    }
    Ok(())
}

/// closedchan.go: a closed channel gives its buffered values (by `recv`,
/// `try_recv` or a select), then is closed and drained (see
/// [`assert_closed_and_drained`]); closing twice is harmless.
/// `closed_async` makes a channel of capacity 2 that holds the value 1
/// and is closed.
pub(crate) fn closedchan<C: Channel<i32>>(closed_async: impl Fn() -> Result<C>) -> Result<()> {
    // Synchronous.
    let c = C::bounded(0);
    c.close();
    assert_closed_and_drained(&c)?;
    // Asynchronous: the buffered value first, with recv...
    let c = closed_async()?;
    assert_eq!(c.len(), 1);
    assert_eq!(c.recv()?, 1);
    assert_closed_and_drained(&c)?;
    // ... with try_recv ...
    let c = closed_async()?;
    assert_eq!(c.try_recv(), Ok(1));
    assert_closed_and_drained(&c)?;
    // ... and with select.
    let c = closed_async()?;
    assert_eq!(select(vec![When::new(c.ev_recv(), |v| v)])?, 1);
    assert_closed_and_drained(&c)?;
    // Unbounded, with several values.
    let c = C::new();
    for i in 0..5 {
        c.send(i)?;
    }
    c.close();
    for i in 0..5 {
        assert_eq!(c.recv()?, i);
    }
    assert_closed_and_drained(&c)?;
    // Closing twice is harmless (Go panics).
    c.close();
    assert_closed_and_drained(&c)?;
    Ok(())
}

/// The channels of closedchan's test that closing wakes every blocked
/// goroutine: a rendezvous channel (`empty`, where receivers block), and a
/// channel of capacity 2 that holds 10 and 11 (`full`, where senders
/// block).
pub(crate) fn empty_and_full<C: Channel<i32>>() -> (C, C) {
    let empty = C::bounded(0);
    let full = C::bounded(2);
    full.try_send(10).unwrap();
    full.try_send(11).unwrap();
    (empty, full)
}

/// The `i`th blocked receiver on `empty`: returns what happened, as
/// `"recv {i}: {result:?}"`.
pub(crate) fn report_recv<C: Channel<i32>>(empty: &C, i: i32) -> String {
    let got = empty.recv().map_err(|e| e.kind());
    format!("recv {i}: {got:?}")
}

/// The `i`th blocked sender (of `20 + i`) on `full`: returns what
/// happened, as `"send {i}: {result:?}"`.
pub(crate) fn report_send<C: Channel<i32>>(full: &C, i: i32) -> String {
    let got = full.send(20 + i).map_err(|e| e.kind());
    format!("send {i}: {got:?}")
}

/// The `i`th select that waits on both `empty` (to receive) and `full` (to
/// send `30 + i`): returns what happened, as `"select {i}: {result:?}"`.
pub(crate) fn report_select<C: Channel<i32>>(empty: &C, full: &C, i: i32) -> String {
    let got = select(vec![
        When::new(empty.ev_recv(), |v| format!("got {v}")),
        When::new(full.ev_send(30 + i), |()| "sent".to_string()),
    ]);
    format!("select {i}: {:?}", got.map_err(|e| e.kind()))
}

/// `full` (see [`empty_and_full`]), closed: the buffered values are still
/// there, then `Closed`.
pub(crate) fn assert_full_drains<C: Channel<i32>>(full: &C) {
    assert_eq!(full.try_recv(), Ok(10));
    assert_eq!(full.try_recv(), Ok(11));
    assert_eq!(full.try_recv(), Err(TryRecvError::Closed));
}

// ------------------------------------------------- runtime/chan_test.go

/// A channel of capacity `cap`, filled (with 0, 1, ...) without waiting.
pub(crate) fn filled<C: Channel<i32>>(cap: usize) -> C {
    let c = C::bounded(cap);
    for i in 0..cap {
        c.try_send(i as i32).unwrap();
    }
    c
}

/// TestChan's "receiving from a closed channel": a full channel of
/// capacity `cap`, closed, gives its values, then `Closed`. Returns it,
/// drained.
pub(crate) fn closed_full_chan_drains<C: Channel<i32>>(cap: usize) -> C {
    let c = filled::<C>(cap);
    c.close();
    for i in 0..cap {
        assert_eq!(c.try_recv(), Ok(i as i32));
    }
    assert_eq!(c.try_recv(), Err(TryRecvError::Closed));
    c
}

/// TestChan's last part: twice, a goroutine sends `messages` values on a
/// channel of capacity `cap`; they arrive uncorrupted, in order.
pub(crate) fn many_values_in_order<G>(go: &G, cap: usize, messages: i32) -> Result<()>
where
    G: Goroutines + Spawn<(G::Chan<i32>, i32)>,
{
    let c = go.make::<i32>(cap);
    for _ in 0..2 {
        go.go((c.clone(), messages), |(c, messages)| {
            (0..messages).try_for_each(|i| c.send(i))
        });
        for i in 0..messages {
            assert_eq!(c.recv()?, i, "cap={cap}");
        }
    }
    Ok(())
}

/// TestNonblockRecvRace's goroutine: a non-blocking receive from `c`,
/// which holds a value (and may be closed meanwhile), finds it ready.
pub(crate) fn nonblock_recv_ready<C: Channel<i32>>(c: &C) {
    // A closed channel is ready too (with an error).
    match select_now(vec![When::new(c.ev_recv(), |v| v)]) {
        Ok(got) => assert!(got.is_some(), "chan is not ready"),
        Err(e) => assert!(e.is_closed(), "{e}"),
    }
}

/// TestNonblockSelectRace: a goroutine's non-blocking select over two
/// channels, one of which holds a value while the other gets a value (or
/// is closed), finds one of them ready, even as the main goroutine takes
/// the first one's value.
pub(crate) fn nonblock_select_race<G>(go: &G) -> Result<()>
where
    G: Goroutines + Spawn<(G::Chan<i32>, G::Chan<i32>, G::Chan<bool>)>,
{
    let done = go.make::<bool>(1);
    for rendezvous in [false, true] {
        for _ in 0..100 {
            let c1 = go.make::<i32>(1);
            let c2 = go.make::<i32>(if rendezvous { 0 } else { 1 });
            c1.send(1)?;
            go.go((c1.clone(), c2.clone(), done.clone()), |(a, b, d)| {
                let got = select_now(vec![
                    When::new(a.ev_recv(), drop),
                    When::new(b.ev_recv(), drop),
                ]);
                // With c2 closed, its branch is "ready" with an error.
                let ready = match got {
                    Ok(r) => r.is_some(),
                    Err(e) if e.is_closed() => true,
                    Err(e) => return Err(e),
                };
                d.send(ready)
            });
            if rendezvous {
                c2.close();
            } else {
                c2.send(1)?;
            }
            let _ = select_now(vec![When::new(c1.ev_recv(), drop)]);
            assert!(done.recv()?, "no chan is ready");
        }
    }
    Ok(())
}

/// A value of TestSelfSelect: which goroutine sent it, and its number.
pub(crate) type Tagged = (u32, u32);

/// TestSelfSelect's goroutine `p`: `n` selects that each send `(p, i)` on
/// `c` or receive from it (the send branch first, but for odd `i` of
/// goroutine 1), calling `on_sent` or `on_received` with the value. On a
/// rendezvous channel (`cap` 0), a select never receives its own value.
pub(crate) fn self_select_goroutine<C: Channel<Tagged>>(
    c: &C,
    p: u32,
    n: u32,
    cap: usize,
    mut on_sent: impl FnMut(Tagged),
    mut on_received: impl FnMut(Tagged),
) -> Result<()> {
    for i in 0..n {
        let value = (p, i);
        let send = When::new(c.ev_send(value), |()| None);
        let recv = When::new(c.ev_recv(), Some);
        let branches = if p == 0 || i % 2 == 0 {
            vec![send, recv]
        } else {
            vec![recv, send]
        };
        match select(branches)? {
            None => on_sent(value),
            Some(v) => {
                if cap == 0 {
                    assert_ne!(v.0, p, "self receive");
                }
                on_received(v);
            }
        }
    }
    Ok(())
}

/// TestSelfSelect's checks, once its two goroutines of `n` selects each
/// are done: with what is left in `c`, every value sent was received
/// exactly once; on a rendezvous channel, every select paired with
/// another.
pub(crate) fn check_self_select<C: Channel<Tagged>>(
    mut sent: Vec<Tagged>,
    mut received: Vec<Tagged>,
    c: &C,
    cap: usize,
    n: u32,
) {
    assert_eq!(sent.len() + received.len(), 2 * n as usize, "cap={cap}");
    while let Ok(v) = c.try_recv() {
        received.push(v);
    }
    sent.sort_unstable();
    received.sort_unstable();
    assert_eq!(
        sent, received,
        "cap={cap}: each value received exactly once"
    );
    if cap == 0 {
        assert_eq!(sent.len(), n as usize, "every select paired with another");
    }
}

/// TestSelectStress's goroutine that receives `n` values from each of the
/// channels `c`, each in a select over those that still owe values (in
/// the order 3, 2, 0, 1).
pub(crate) fn select_recv_from_each<C: Channel<i32>>(c: &[C; 4], n: usize) -> Result<()> {
    let mut got = [0; 4];
    for _ in 0..4 * n {
        let branches = [3, 2, 0, 1]
            .into_iter()
            .filter(|&i| got[i] < n)
            .map(|i| When::new(c[i].ev_recv(), move |_| i))
            .collect();
        got[select(branches)?] += 1;
    }
    assert_eq!(got, [n; 4]);
    Ok(())
}

/// TestSelectStress's goroutine that sends `n` values on each of the
/// channels `c`, each in a select over those that still want values.
pub(crate) fn select_send_to_each<C: Channel<i32>>(c: &[C; 4], n: usize) -> Result<()> {
    let mut sent = [0; 4];
    for _ in 0..4 * n {
        let branches = (0..4)
            .filter(|&i| sent[i] < n)
            .map(|i| When::new(c[i].ev_send(0), move |()| i))
            .collect();
        sent[select(branches)?] += 1;
    }
    assert_eq!(sent, [n; 4]);
    Ok(())
}

/// TestMultiConsumer's values, in turn; a worker yields when it gets its
/// own.
const MULTI_CONSUMER_VALUES: [u64; 10] = [2, 3, 7, 11, 13, 17, 19, 23, 27, 31];

/// TestMultiConsumer's worker `w`: forwards the values of `q` to `r`
/// until `q` is closed, yielding now and then to mix things up.
pub(crate) fn multi_consumer_worker<C: Channel<u64>>(q: &C, r: &C, w: usize) -> Result<()> {
    let pn = MULTI_CONSUMER_VALUES;
    while let Some(v) = recv_opt(q)? {
        // Mix things up a little.
        if pn[w % pn.len()] == v {
            fuseau::yield_now()?;
        }
        r.send(v)?;
    }
    Ok(())
}

/// TestMultiConsumer's producer: sends `n` values on `q`, then closes it;
/// returns their sum.
pub(crate) fn multi_consumer_producer<C: Channel<u64>>(q: &C, n: usize) -> Result<u64> {
    let pn = MULTI_CONSUMER_VALUES;
    let mut expect = 0;
    for i in 0..n {
        let v = pn[i % pn.len()];
        expect += v;
        q.send(v)?;
    }
    q.close();
    Ok(expect)
}

/// TestMultiConsumer's main goroutine: receives from `r` until it is
/// closed; returns how many values came, and their sum.
pub(crate) fn count_and_sum<C: Channel<u64>>(r: &C) -> Result<(usize, u64)> {
    let (mut n, mut s) = (0, 0);
    while let Some(v) = recv_opt(r)? {
        n += 1;
        s += v;
    }
    Ok((n, s))
}

/// TestSelectDuplicateChannel's goroutine: a select with two receive
/// branches on `c` (and one on `d` and `e` each) gets 7 from `d`, then
/// sends 9 on `e`.
pub(crate) fn select_duplicate_channel<C: Channel<i32>>(c: &C, d: &C, e: &C) -> Result<()> {
    let got = select(vec![
        When::new(c.ev_recv(), |v| ('c', v)),
        When::new(d.ev_recv(), |v| ('d', v)),
        When::new(e.ev_recv(), |v| ('e', v)),
        When::new(c.ev_recv(), |v| ('C', v)),
    ])?;
    assert_eq!(got, ('d', 7));
    e.send(9)
}
