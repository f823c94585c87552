//! Model checks, with loom, of the code that other threads touch: the
//! scheduler's inbox ([`Inbox`]), the result slot of remote fibers
//! ([`Shared`]), [`BufPool`], and [`SharedChan`] with the claim word of a
//! wait ([`Claim`]).
//!
//! Compiled only with `RUSTFLAGS="--cfg loom"`, which swaps the primitives of
//! `crate::std_sync` for loom's. Run them (as `.ci/run` does) with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p fuseau --lib --release \
//!     --target-dir target/loom loom_
//! ```
//!
//! Each test bounds thread preemptions (5 by default, or
//! `LOOM_MAX_PREEMPTIONS`), which keeps the whole run within seconds while
//! covering the interleavings these protocols depend on.
//!
//! The `SharedChan` models drive a wait the way a fiber's `select` does
//! (`event/mod.rs`, `task/wait.rs`), with no fiber: a claim word whose
//! waker unparks the waiting thread, an entry per branch
//! (`SharedChan::register`), the park, the end of the claim, then the
//! unregistrations and the claimed branch's value; other threads complete
//! branches with `try_send`/`try_recv`, as fibers on other schedulers do.
//! Plain threads use `send`/`recv`, whose blocking path is the real one.
//!
//! The tests drive `Inbox` the way the scheduler does (`scheduler.rs`):
//! its thread drains the inbox, then parks until an unpark; other threads
//! push (`wake`, `send`) then unpark. A message pushed but never seen shows
//! as a deadlock, which loom reports.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use crate::chan::{TryRecvError, TrySendError};
use crate::claim::Claim;
use crate::error::{Error, ErrorKind};
use crate::event_loop::Unpark;
use crate::id::FiberId;
use crate::inbox::{Inbox, Message};
use crate::pool::BufPool;
use crate::remote::{spawn_from_anywhere, Shared};
use crate::scheduler::SchedulerHandle;
use crate::shared_chan::SharedChan;
use crate::std_sync::{lock, Condvar, Mutex};

/// Runs `f` under loom with bounded preemptions.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(5);
    }
    builder.check(f);
}

/// A thread's park token, as `std::thread::park`/`unpark` (which `block_on`
/// uses), built on loom's mutex and condition variable. (Not loom's own
/// `thread::park`: loom lets an `unpark` wake a thread blocked in
/// `JoinHandle::join` or on a lock, which its own checks then reject.)
struct Parker {
    token: Mutex<bool>,
    unparked: Condvar,
}

impl Parker {
    fn new() -> Arc<Parker> {
        Arc::new(Parker {
            token: Mutex::new(false),
            unparked: Condvar::new(),
        })
    }

    /// Waits for the token, and consumes it.
    fn park(&self) {
        let mut token = lock(&self.token);
        while !*token {
            token = self.unparked.wait(token).unwrap();
        }
        *token = false;
    }
}

impl Unpark for Parker {
    fn unpark(&self) {
        *lock(&self.token) = true;
        self.unparked.notify_one();
    }
}

/// An `Inbox` whose scheduler parks on the returned `Parker`.
fn remote_here() -> (Arc<Inbox>, Arc<Parker>) {
    let parker = Parker::new();
    (Arc::new(Inbox::new(parker.clone())), parker)
}

/// Some fiber id, for wake-ups (they name no live fiber here).
fn some_id() -> FiberId {
    FiberId::next()
}

/// Counts how many times it was consumed: run or dropped.
struct Probe(Arc<AtomicUsize>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A remote spawn whose closure, run or dropped, bumps `count` once.
fn run_message(count: &Arc<AtomicUsize>) -> Message {
    let probe = Probe(count.clone());
    Message::Run(Box::new(move || drop(probe)))
}

/// What the scheduler does with a message: wake-ups and cancels name no
/// fiber here; closures run.
fn handle(message: Message) {
    match message {
        Message::Run(run) => run(),
        Message::Wake { .. } | Message::Cancel { .. } => {}
    }
}

/// The scheduler's loop: drain, and park while fewer than `n` messages
/// arrived. A lost message (or a lost unpark) deadlocks.
fn drain_until(remote: &Inbox, parker: &Parker, n: usize) {
    let mut seen = 0;
    loop {
        while let Some(message) = remote.pop() {
            handle(message);
            seen += 1;
        }
        if seen >= n {
            assert_eq!(seen, n);
            return;
        }
        parker.park();
    }
}

#[test]
fn loom_no_lost_message_one_sender() {
    let id = some_id();
    model(move || {
        let (remote, parker) = remote_here();
        let count = Arc::new(AtomicUsize::new(0));
        let (r, c) = (remote.clone(), count.clone());
        let sender = thread::spawn(move || {
            r.wake(0, id, 0);
            r.send(run_message(&c))
                .unwrap_or_else(|_| panic!("refused"));
        });
        drain_until(&remote, &parker, 2);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        sender.join().unwrap();
    });
}

#[test]
fn loom_no_lost_message_two_senders() {
    let id = some_id();
    model(move || {
        let (remote, parker) = remote_here();
        let count = Arc::new(AtomicUsize::new(0));
        let r = remote.clone();
        let waker = thread::spawn(move || r.wake(0, id, 0));
        let (r, c) = (remote.clone(), count.clone());
        let spawner = thread::spawn(move || {
            r.send(run_message(&c))
                .unwrap_or_else(|_| panic!("refused"));
        });
        drain_until(&remote, &parker, 2);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        waker.join().unwrap();
        spawner.join().unwrap();
    });
}

/// A spawn racing disposal (rule 3): the closure runs or is dropped,
/// exactly once, and nothing is left in the inbox.
#[test]
fn loom_dispose_race_runs_or_drops_once() {
    model(|| {
        let (remote, _parker) = remote_here();
        let count = Arc::new(AtomicUsize::new(0));
        let (r, c) = (remote.clone(), count.clone());
        let sender = thread::spawn(move || {
            // Refused: the message comes back and is dropped here.
            if let Err(message) = r.send(run_message(&c)) {
                drop(message);
            }
        });
        // The scheduler's last iteration, then its disposal.
        while let Some(message) = remote.pop() {
            handle(message);
        }
        remote.close();
        remote.discard();
        assert!(remote.pop().is_none(), "a message outlived the disposal");
        sender.join().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(remote.pop().is_none(), "a spawn was accepted after close");
    });
}

/// A wake-up racing disposal: the sender drops it if the scheduler is gone,
/// the scheduler's discard does otherwise; a spawn in the same race still
/// runs or is dropped once.
#[test]
fn loom_dispose_race_with_wake() {
    let id = some_id();
    model(move || {
        let (remote, _parker) = remote_here();
        let count = Arc::new(AtomicUsize::new(0));
        let r = remote.clone();
        let waker = thread::spawn(move || r.wake(0, id, 0));
        let (r, c) = (remote.clone(), count.clone());
        let spawner = thread::spawn(move || drop(r.send(run_message(&c))));
        remote.close();
        remote.discard();
        waker.join().unwrap();
        spawner.join().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(remote.pop().is_none(), "a message outlived the disposal");
    });
}

/// `spawn_from_anywhere` itself racing disposal: whether its closure runs
/// (with no scheduler to spawn on, as after disposal) or is dropped, the
/// `RemoteFiber` completes with `Inactive` (rules 3 and 6).
#[test]
fn loom_spawn_from_anywhere_vs_dispose() {
    model(|| {
        let (remote, _parker) = remote_here();
        let handle = SchedulerHandle {
            inbox: remote.clone(),
        };
        let spawner = thread::spawn(move || spawn_from_anywhere(&handle, || Ok(1)));
        while let Some(message) = remote.pop() {
            self::handle(message);
        }
        remote.close();
        remote.discard();
        let fiber = spawner.join().unwrap();
        assert!(fiber.is_done());
        let e = fiber.join().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Inactive);
    });
}

/// The result slot: a completion racing a thread that blocks in `join`.
#[test]
fn loom_result_slot_complete_vs_blocking_join() {
    model(|| {
        let shared = Arc::new(Shared::new());
        let s = shared.clone();
        let completer = thread::spawn(move || s.complete(Ok(42)));
        assert_eq!(shared.wait_blocking().unwrap(), 42);
        completer.join().unwrap();
        assert!(shared.try_take().is_none(), "the result is taken once");
    });
}

/// Two completions (the fiber's result and a dropped closure's `Inactive`,
/// say): the first wins and a blocked joiner sees it.
#[test]
fn loom_result_slot_first_completion_wins() {
    model(|| {
        let shared = Arc::new(Shared::new());
        let s = shared.clone();
        let first = thread::spawn(move || s.complete(Ok(1)));
        let s = shared.clone();
        let second = thread::spawn(move || s.complete(Err(Error::from("late"))));
        let result = shared.wait_blocking();
        first.join().unwrap();
        second.join().unwrap();
        assert!(matches!(&result, Ok(1)) || result.is_err());
        // Completed and taken: nothing more is ever stored.
        assert!(shared.try_take().is_none());
    });
}

/// Wakes a parked thread, for the fiber side of `join`.
struct WakeParker {
    woken: AtomicBool,
    parker: Arc<Parker>,
}

impl Wake for WakeParker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.parker.unpark();
    }
}

/// The fiber side of `join` (`JoinEvent`): a registration racing the
/// completion is either refused (the result is there) or woken.
#[test]
fn loom_result_slot_complete_vs_waker() {
    model(|| {
        let shared = Arc::new(Shared::new());
        let s = shared.clone();
        let completer = thread::spawn(move || s.complete(Ok(7)));
        let wake = Arc::new(WakeParker {
            woken: AtomicBool::new(false),
            parker: Parker::new(),
        });
        if shared.register(Waker::from(wake.clone())) {
            while !wake.woken.load(Ordering::SeqCst) {
                wake.parker.park();
            }
        }
        assert_eq!(shared.try_take().unwrap().unwrap(), 7);
        completer.join().unwrap();
    });
}

/// Concurrent acquire/recycle keep the pool within `max_bufs`, and no
/// buffer is ever held by two users at once.
#[test]
fn loom_buf_pool_acquire_recycle() {
    const MAX_BUFS: usize = 1;
    const BUF_SIZE: usize = 16;
    model(|| {
        let pool = Arc::new(BufPool::new(BUF_SIZE, MAX_BUFS));
        // Addresses of the buffers in use. A std mutex is fine: no loom
        // operation runs while it is held, so loom never switches there.
        let in_use = Arc::new(std::sync::Mutex::new(HashSet::new()));
        let user = |pool: Arc<BufPool>, in_use: Arc<std::sync::Mutex<HashSet<usize>>>, tag| {
            move || {
                let mut buf = pool.acquire();
                assert!(buf.is_empty() && buf.capacity() >= BUF_SIZE);
                let addr = buf.as_ptr() as usize;
                assert!(
                    in_use.lock().unwrap().insert(addr),
                    "a buffer handed out twice"
                );
                buf.push(tag);
                assert!(in_use.lock().unwrap().remove(&addr));
                pool.recycle(buf);
                assert!(pool.n_free() <= MAX_BUFS);
            }
        };
        let threads: Vec<_> = (0..2u8)
            .map(|tag| thread::spawn(user(pool.clone(), in_use.clone(), tag)))
            .collect();
        user(pool.clone(), in_use.clone(), 2)();
        for t in threads {
            t.join().unwrap();
        }
        assert!(pool.n_free() <= MAX_BUFS);
        assert!(pool.n_free() >= 1, "a recycled buffer was lost");
        // What the pool keeps is clean.
        let buf = pool.acquire();
        assert!(buf.is_empty() && buf.capacity() >= BUF_SIZE);
    });
}

/// A wait of a simulated fiber: its claim word, whose waker unparks it.
struct Waiting {
    claim: Arc<Claim>,
    wake: Arc<WakeParker>,
}

impl Waiting {
    fn new() -> Waiting {
        let wake = Arc::new(WakeParker {
            woken: AtomicBool::new(false),
            parker: Parker::new(),
        });
        Waiting {
            claim: Arc::new(Claim::new(Waker::from(wake.clone()))),
            wake,
        }
    }

    /// Parks until woken (a claimer wakes after its claim).
    fn park(&self) {
        while !self.wake.woken.load(Ordering::SeqCst) {
            self.wake.parker.park();
        }
    }
}

/// A value handed over to a select's branch racing the fiber's
/// cancellation (which ends its wait): the value is delivered (the claim
/// wins, and the fiber reports it) or stays with the sender, never both,
/// never lost.
#[test]
fn loom_shared_hand_over_vs_cancellation() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(0);
        let fiber = Waiting::new();
        let id = chan
            .register(true, fiber.claim.clone(), 0, None)
            .unwrap_or_else(|_| panic!("nothing is ready"));
        let c = chan.clone();
        let sender = thread::spawn(move || c.try_send(1));
        // Cancelled: the wait ends, without waiting for anything.
        let claimed = fiber.claim.end();
        assert_eq!(chan.unregister(true, id), None);
        let got = chan.take_handed(id);
        let sent = sender.join().unwrap();
        match claimed {
            Some(0) => {
                assert_eq!(got, Some(1));
                assert_eq!(sent, Ok(()));
            }
            None => {
                assert_eq!(got, None);
                assert_eq!(sent, Err(TrySendError::Full(1)), "nobody waits");
            }
            other => panic!("claimed by {other:?}"),
        }
        assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Two senders, on two threads, each complete one branch of a select that
/// waits on two channels: exactly one branch is claimed, the fiber is
/// woken and reports it, and the other value stays with its sender.
#[test]
fn loom_shared_two_senders_one_select() {
    model(|| {
        let a = SharedChan::<u32>::bounded(0);
        let b = SharedChan::<u32>::bounded(0);
        let fiber = Waiting::new();
        let ids = [
            a.register(true, fiber.claim.clone(), 0, None),
            b.register(true, fiber.claim.clone(), 1, None),
        ]
        .map(|id| id.unwrap_or_else(|_| panic!("nothing is ready")));
        let senders =
            [(a.clone(), 10), (b.clone(), 20)].map(|(c, v)| thread::spawn(move || c.try_send(v)));
        fiber.park();
        let branch = fiber.claim.end().expect("woken by a claim");
        assert_eq!(a.unregister(true, ids[0]), None);
        assert_eq!(b.unregister(true, ids[1]), None);
        let chans = [&a, &b];
        let got = chans[branch as usize].take_handed(ids[branch as usize]);
        assert_eq!(got, Some(10 * (branch + 1)));
        let other = 1 - branch as usize;
        assert_eq!(chans[other].take_handed(ids[other]), None);
        let sent = senders.map(|s| s.join().unwrap().is_ok());
        assert_eq!(sent, [branch == 0, branch == 1]);
    });
}

/// A select that offers a value on a shared channel (branch 0) and waits
/// on a local one (branch 1): a receiver on another thread races a local
/// claim of branch 1. One wins; a value taken is reported sent, a value not
/// taken comes back.
#[test]
fn loom_shared_remote_take_vs_local_claim() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(0);
        let fiber = Waiting::new();
        let id = chan
            .register(false, fiber.claim.clone(), 0, Some(5))
            .unwrap_or_else(|_| panic!("nothing is ready"));
        let c = chan.clone();
        let receiver = thread::spawn(move || c.try_recv());
        let local_won = fiber.claim.try_claim(1);
        let branch = fiber.claim.end();
        let back = chan.unregister(false, id);
        let got = receiver.join().unwrap();
        if local_won {
            assert_eq!(branch, Some(1));
            assert_eq!(back, Some(5), "the unsent value comes back");
            assert_eq!(got, Err(TryRecvError::Empty));
        } else {
            assert_eq!(branch, Some(0));
            assert_eq!(back, None, "taken");
            assert_eq!(got, Ok(5));
        }
    });
}

/// A waiter registering while another thread makes the channel ready: the
/// registration sees it (rule 5 of `shared_chan.rs`) or the sender sees the
/// waiter; the wait never misses the value.
#[test]
fn loom_shared_registration_vs_send() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(1);
        let c = chan.clone();
        let sender = thread::spawn(move || c.try_send(3));
        // The fiber polled (nothing) before the send, and registers now.
        let fiber = Waiting::new();
        let got = match chan.register(true, fiber.claim.clone(), 0, None) {
            // Ready after all: the fiber polls again.
            Err(None) => chan.try_recv().ok(),
            Err(Some(_)) => unreachable!("a receiver offers nothing"),
            Ok(id) => {
                fiber.park();
                let claimed = fiber.claim.end();
                assert_eq!(chan.unregister(true, id), None);
                assert_eq!(claimed, Some(0), "woken by the hand-over");
                chan.take_handed(id)
            }
        };
        assert_eq!(got, Some(3));
        assert_eq!(sender.join().unwrap(), Ok(()));
    });
}

/// Plain threads on both ends of a rendezvous: the blocking paths hand
/// the value over and wake each other.
#[test]
fn loom_shared_rendezvous_between_blocked_threads() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(0);
        let c = chan.clone();
        let sender = thread::spawn(move || c.send(7));
        assert_eq!(chan.recv().unwrap(), 7);
        sender.join().unwrap().unwrap();
    });
}

/// A close racing a receiver that blocks: it is woken, and drains what is
/// buffered before it sees `Closed`.
#[test]
fn loom_shared_close_vs_blocked_receiver() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(1);
        let c = chan.clone();
        let receiver = thread::spawn(move || (c.recv(), c.recv()));
        chan.try_send(1).unwrap();
        chan.close();
        let (first, second) = receiver.join().unwrap();
        assert_eq!(first.unwrap(), 1);
        assert_eq!(second.unwrap_err().kind(), ErrorKind::Closed);
    });
}

/// A close racing a sender that blocks on a full channel: it fails with
/// `Closed`, its value is not sent, and the buffered value stays.
#[test]
fn loom_shared_close_vs_blocked_sender() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(1).unwrap();
        let c = chan.clone();
        let sender = thread::spawn(move || c.send(2));
        chan.close();
        assert_eq!(
            sender.join().unwrap().unwrap_err().kind(),
            ErrorKind::Closed
        );
        assert_eq!(chan.try_recv(), Ok(1));
        assert_eq!(chan.try_recv(), Err(TryRecvError::Closed));
    });
}

/// A blocked receiver racing a fast send (the lock-free path of
/// `shared_chan.rs`): the sender saw the gate down, or the receiver sees
/// the value when it looks again; the value is received either way.
#[test]
fn loom_shared_fast_send_vs_blocked_receiver() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(2);
        let c = chan.clone();
        let sender = thread::spawn(move || c.try_send(1));
        assert_eq!(chan.recv().unwrap(), 1);
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(chan.try_recv(), Err(TryRecvError::Empty));
    });
}

/// A sender blocked on a full channel racing a fast receive that frees the
/// room: its value moves in, it is woken, and nothing is lost or reordered.
#[test]
fn loom_shared_fast_recv_vs_blocked_sender() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(1).unwrap();
        let c = chan.clone();
        let receiver = thread::spawn(move || c.try_recv());
        chan.send(2).unwrap();
        let first = receiver.join().unwrap();
        let rest: Vec<u32> = std::iter::from_fn(|| chan.try_recv().ok()).collect();
        match first {
            Ok(1) => assert_eq!(rest, [2]),
            Err(TryRecvError::Empty) => unreachable!("the buffer was full"),
            other => panic!("received {other:?}"),
        }
    });
}

/// A fast send racing `close` and a blocked receiver: a send that returned
/// `Ok` is received before `Closed`, and after `Closed` nothing is left
/// (close rule 4 of `shared_chan.rs`).
#[test]
fn loom_shared_fast_send_vs_close() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(1);
        let c = chan.clone();
        let receiver = thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match c.recv() {
                    Ok(v) => got.push(v),
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Closed);
                        return got;
                    }
                }
            }
        });
        let c = chan.clone();
        let sender = thread::spawn(move || c.try_send(7));
        chan.close();
        let sent = sender.join().unwrap();
        let got = receiver.join().unwrap();
        match sent {
            Ok(()) => assert_eq!(got, [7]),
            Err(TrySendError::Closed(7)) => assert!(got.is_empty()),
            other => panic!("sent {other:?}"),
        }
        assert_eq!(
            chan.try_recv(),
            Err(TryRecvError::Closed),
            "nothing stranded"
        );
    });
}

/// Two fast receives racing a sender that blocks on a full channel: the
/// claimed sender's value lands in the buffer, or in the overflow when a
/// fast send took the room first; every value is received once, the
/// sender's after the one buffered before it.
#[test]
fn loom_shared_straggling_send_vs_claimed_sender() {
    model(|| {
        let chan = SharedChan::<u32>::bounded(1);
        chan.try_send(1).unwrap();
        let c = chan.clone();
        let blocked = thread::spawn(move || c.send(2));
        let c = chan.clone();
        let straggler = thread::spawn(move || c.try_send(3));
        let mut got = vec![];
        while got.len() < 2 {
            if let Ok(v) = chan.try_recv() {
                got.push(v);
            } else {
                thread::yield_now();
            }
        }
        blocked.join().unwrap().unwrap();
        let third = straggler.join().unwrap();
        got.extend(std::iter::from_fn(|| chan.try_recv().ok()));
        if third.is_ok() {
            got.sort_unstable();
            assert_eq!(got, [1, 2, 3]);
        } else {
            assert_eq!(got, [1, 2]);
        }
    });
}
