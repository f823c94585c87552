//! A tour of fuseau on Tokio: what a fiber is and what it can do.
//!
//! Run it from the workspace root with `cargo run --example tour`. Every
//! section prints what happens; the output is the same on every run, because
//! ready fibers run in FIFO order and timers fire in deadline order.
//!
//! A fiber is a function with its own stack. Inside one, code is plain
//! sequential Rust (no `async`, no `.await`); when it waits (for a timer,
//! another fiber, a channel, a future) it suspends and the thread runs other
//! fibers and Tokio tasks meanwhile.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use fuseau_tokio::{
    Builder, Chan, Error, FiberLocal, Result, Runtime, SharedChan, TrySendError, When,
};

/// Runs the tour. (`pub(crate)` so that the integration test
/// `crates/fuseau-tokio/tests/tour.rs` can run it too.)
pub(crate) fn main() -> Result<()> {
    // `main` starts a Tokio runtime, runs this closure as the *main fiber*,
    // and returns once it and every fiber it started are done.
    fuseau_tokio::main(|| {
        spawn_and_join()?;
        fifo_order()?;
        sleeping()?;
        parent_cancels_children()?;
        failing_child_cancels_parent()?;
        timeouts()?;
        panics_become_errors()?;
        fiber_locals()?;
        cancel_callbacks()?;
        tokio_beside_fibers()?;
        channels()?;
        select_with_a_timeout()?;
        awaiting_a_future()?;
        from_another_thread()?;
        deadline_scope_and_shield()?;
        fiber_mutex_and_semaphore()?;
        scoped_fibers()?;
        Ok(())
    })?;
    // A `Runtime` is made, and shut down, outside any fiber: shutting down
    // joins its threads.
    every_core()?;
    println!("\nThe tour is over.");
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `spawn` starts a fiber (a child of the running one) and returns a
/// handle; `join` waits for the fiber's result.
fn spawn_and_join() -> Result<()> {
    section("1. spawn and join");
    let adder = fuseau_tokio::spawn(|| Ok(2 + 2));
    let greeter = fuseau_tokio::spawn(|| Ok(String::from("hello from a fiber")));
    println!("adder returned {}", adder.join()?);
    println!("greeter returned {:?}", greeter.join()?);
    Ok(())
}

/// `spawn` only queues the new fiber: the spawner keeps running until it
/// suspends. Ready fibers then run one at a time, first come first served;
/// `yield_now` sends the running fiber to the back of the queue.
fn fifo_order() -> Result<()> {
    section("2. FIFO order");
    let fibers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            fuseau_tokio::spawn(move || {
                println!("{name}: step 1");
                fuseau_tokio::yield_now()?;
                println!("{name}: step 2");
                Ok(())
            })
        })
        .collect();
    println!("parent: spawned a, b and c; none has run yet");
    fuseau_tokio::yield_now()?;
    println!("parent: back after one yield");
    for fiber in fibers {
        fiber.join()?;
    }
    println!("parent: all joined");
    Ok(())
}

/// `sleep` suspends the fiber, not the thread: three fibers sleep at once,
/// and wake in the order of their deadlines.
fn sleeping() -> Result<()> {
    section("3. sleep");
    let sleepers: Vec<_> = [30, 10, 20]
        .into_iter()
        .map(|n| {
            fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(n))?;
                println!("woke up after {n} ms");
                Ok(())
            })
        })
        .collect();
    for sleeper in sleepers {
        sleeper.join()?;
    }
    Ok(())
}

/// Fibers form a tree. Cancelling a fiber cancels its children too: every
/// suspension point (`sleep`, `join`, `yield_now` …) in them then returns
/// `Err` with kind `Cancelled`, which `?` passes up.
fn parent_cancels_children() -> Result<()> {
    section("4a. structured cancellation: cancelling a parent cancels its children");
    // `propagate_cancel_to_parent(false)`: this fiber's failure is for
    // whoever joins it, and does not cancel us in turn.
    let supervisor = Builder::new()
        .name("supervisor")
        .propagate_cancel_to_parent(false)
        .spawn(|| {
            for i in 1..=2 {
                fuseau_tokio::spawn(move || {
                    let slept = fuseau_tokio::sleep(Duration::from_secs(3600));
                    if let Err(e) = &slept {
                        println!("worker {i}: stopped ({e})");
                    }
                    slept
                });
            }
            fuseau_tokio::sleep(Duration::from_secs(3600))
        });
    fuseau_tokio::sleep(ms(5))?;
    println!("cancelling the supervisor");
    supervisor.cancel();
    let result = supervisor.join();
    println!("supervisor ended with: {:?}", result.map_err(|e| e.kind()));
    Ok(())
}

/// A child that fails cancels its parent with the child's error (and so its
/// siblings too); the parent fails with that error.
fn failing_child_cancels_parent() -> Result<()> {
    section("4b. structured cancellation: a failing child cancels its parent");
    let team = Builder::new()
        .name("team")
        .propagate_cancel_to_parent(false)
        .spawn(|| {
            fuseau_tokio::spawn(|| {
                fuseau_tokio::sleep(ms(5))?;
                println!("faulty: failing now");
                Err::<(), _>(Error::from("disk on fire"))
            });
            fuseau_tokio::spawn(|| {
                let slept = fuseau_tokio::sleep(Duration::from_secs(3600));
                if let Err(e) = &slept {
                    println!("sibling: stopped ({e})");
                }
                slept
            });
            let slept = fuseau_tokio::sleep(Duration::from_secs(3600));
            if let Err(e) = &slept {
                println!("team: my sleep was cut short by {:?}", e.message());
            }
            slept
        });
    // The team fails with the child's own error, not a generic one.
    match team.join() {
        Ok(()) => println!("team succeeded (unexpected)"),
        Err(e) => println!(
            "team failed: kind {:?}, message {:?}",
            e.kind(),
            e.message()
        ),
    }
    Ok(())
}

/// `cancel_after` arms a deadline on the running fiber: when it passes, the
/// fiber is cancelled with kind `Timeout`.
fn timeouts() -> Result<()> {
    section("5. timeouts");
    let slow = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
        fuseau_tokio::cancel_after(ms(10))?;
        fuseau_tokio::sleep(Duration::from_secs(3600))?;
        Ok("finished")
    });
    let fast = fuseau_tokio::spawn(|| {
        fuseau_tokio::cancel_after(Duration::from_secs(3600))?;
        fuseau_tokio::sleep(ms(1))?;
        Ok("finished")
    });
    match slow.join() {
        Ok(v) => println!("slow job: {v}"),
        Err(e) => println!("slow job: {e} (is_timeout: {})", e.is_timeout()),
    }
    println!("fast job: {}", fast.join()?);
    Ok(())
}

/// A panic inside a fiber is caught at the fiber's boundary and becomes an
/// error of kind `Panicked`, carrying the message. (The default panic hook
/// still prints the panic to stderr.)
fn panics_become_errors() -> Result<()> {
    section("6. panics become errors");
    let reckless = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn(|| -> Result<u32> { panic!("the numbers do not add up") });
    let e = reckless.join().unwrap_err();
    println!("kind: {:?}, message: {:?}", e.kind(), e.message());
    Ok(())
}

/// A `FiberLocal` is like `thread_local!`, per fiber: each fiber has its own
/// value, starting from the initial one.
fn fiber_locals() -> Result<()> {
    section("7. fiber-local storage");
    static REQUEST: FiberLocal<&'static str> = FiberLocal::new(|| "none");
    let handlers: Vec<_> = ["GET /", "POST /login"]
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            fuseau_tokio::spawn(move || {
                REQUEST.set(request);
                // While this fiber sleeps, the other one sets its own value.
                fuseau_tokio::sleep(ms(5 * (i as u64 + 1)))?;
                println!("handler {i}: still serving {:?}", REQUEST.get());
                Ok(())
            })
        })
        .collect();
    for handler in handlers {
        handler.join()?;
    }
    println!("main fiber: {:?}", REQUEST.get());
    let inner = REQUEST.with_value("scoped", || REQUEST.get());
    println!(
        "inside with_value: {inner:?}, after it: {:?}",
        REQUEST.get()
    );
    Ok(())
}

/// `with_cancel_callback` runs a callback at the moment the fiber is
/// cancelled while inside its scope (to abort an outside operation, say).
fn cancel_callbacks() -> Result<()> {
    section("8. with_cancel_callback");
    let job = Builder::new().propagate_cancel_to_parent(false).spawn(|| {
        // Leaves the scope normally: the callback never runs.
        fuseau_tokio::with_cancel_callback(
            |_| println!("(never printed)"),
            || fuseau_tokio::sleep(ms(1)),
        )?;
        println!("job: first scope done, no cancellation");
        fuseau_tokio::cancel_after(ms(5))?;
        fuseau_tokio::with_cancel_callback(
            |e| println!("callback: the job was cancelled ({e})"),
            || fuseau_tokio::sleep(Duration::from_secs(3600)),
        )
    });
    let result = job.join();
    println!("job ended with: {:?}", result.map_err(|e| e.kind()));
    Ok(())
}

/// Fibers run on Tokio's event loop, beside Tokio tasks: a fiber may start
/// one with `tokio::task::spawn_local`, and a Tokio task may act on fibers.
fn tokio_beside_fibers() -> Result<()> {
    section("9. a Tokio task beside fibers");
    let answer = Rc::new(Cell::new(None));
    let a = answer.clone();
    let task = tokio::task::spawn_local(async move {
        tokio::time::sleep(ms(5)).await;
        a.set(Some(42));
    });
    // The fiber cannot `.await` (yet); it checks now and then, sleeping in
    // between, and Tokio runs the task meanwhile.
    while answer.get().is_none() {
        fuseau_tokio::sleep(ms(1))?;
    }
    println!("the Tokio task computed {}", answer.get().unwrap());
    assert!(task.is_finished());

    // A Tokio task cancels a fiber.
    let waiter = Builder::new()
        .propagate_cancel_to_parent(false)
        .spawn(|| fuseau_tokio::sleep(Duration::from_secs(3600)));
    let handle = waiter.any();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(ms(5)).await;
        println!("Tokio task: cancelling the waiting fiber");
        handle.cancel();
    });
    println!(
        "waiter ended with: {:?}",
        waiter.join().map_err(|e| e.kind())
    );
    Ok(())
}

/// Channels carry values between fibers. `Chan::new()` is unbounded;
/// `Chan::bounded(n)` makes `send` wait while `n` values are buffered, and
/// `Chan::bounded(0)` is a rendezvous: `send` waits until a receiver takes
/// the value. Closing a channel lets receivers drain what is buffered, then
/// `recv` fails with kind `Closed`.
fn channels() -> Result<()> {
    section("10a. channels: a bounded channel makes the producer wait");
    let chan = Chan::bounded(2);
    let tx = chan.clone();
    let producer = fuseau_tokio::spawn(move || {
        for i in 1..=4 {
            tx.send(i)?;
            println!("producer: sent {i}");
        }
        tx.close();
        println!("producer: closed the channel");
        Ok(())
    });
    fuseau_tokio::yield_now()?;
    println!(
        "consumer: the producer waits; {} values are buffered",
        chan.len()
    );
    // `recv` fails with `Closed` once the channel is closed and drained.
    // (Taking 1 makes room for the waiting 3, so the producer's send
    // succeeds; the producer itself runs once the consumer waits again.)
    while let Ok(i) = chan.recv() {
        println!("consumer: received {i}");
    }
    producer.join()?;

    section("10b. channels: a rendezvous channel hands values over directly");
    let chan = Chan::bounded(0);
    let tx = chan.clone();
    let sender = fuseau_tokio::spawn(move || {
        println!("sender: offering \"ping\"");
        tx.send("ping")?;
        println!("sender: \"ping\" was taken");
        Ok(())
    });
    fuseau_tokio::yield_now()?;
    println!("receiver: nothing is buffered (len {})", chan.len());
    println!("receiver: got {:?}", chan.recv()?);
    sender.join()?;

    section("10c. channels: close, then drain");
    let chan = Chan::new();
    for word in ["one", "two", "three"] {
        chan.send(word)?;
    }
    chan.close();
    match chan.try_send("four") {
        Err(TrySendError::Closed(word)) => println!("try_send({word:?}): the channel is closed"),
        other => println!("try_send: unexpected {other:?}"),
    }
    loop {
        match chan.recv() {
            Ok(word) => println!("drained {word:?}"),
            Err(e) => {
                println!("then: {e} (is_closed: {})", e.is_closed());
                break;
            }
        }
    }
    Ok(())
}

/// `select` waits for the first of several events. `ev_timeout` is an event
/// that fails with kind `Timeout`: in a `select`, it bounds the wait.
fn select_with_a_timeout() -> Result<()> {
    section("11. select with a timeout");
    let chan = Chan::new();
    let tx = chan.clone();
    let late = fuseau_tokio::spawn(move || {
        fuseau_tokio::sleep(ms(20))?;
        tx.send("a late message")
    });
    for (attempt, patience) in [(1, ms(5)), (2, Duration::from_secs(3600))] {
        let got = fuseau_tokio::select(vec![
            When::new(chan.ev_recv(), |message: &str| message.to_string()),
            When::new(fuseau_tokio::ev_timeout(patience), |()| unreachable!()),
        ]);
        match got {
            Ok(message) => println!("attempt {attempt}: received {message:?}"),
            Err(e) if e.is_timeout() => println!("attempt {attempt}: {e}, nothing arrived"),
            Err(e) => return Err(e),
        }
    }
    late.join()
}

/// A fiber can wait for any future: `ev_future` makes it an event, which
/// `await_event` waits for (or `select`, among others); the fiber suspends
/// while Tokio drives the future. Here a Tokio task completes a oneshot
/// channel. (`fuseau_tokio::await_future(fut)` is the shorthand.)
fn awaiting_a_future() -> Result<()> {
    section("12. waiting for a Tokio future");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_local(async move {
        tokio::time::sleep(ms(5)).await;
        println!("Tokio task: sending the answer");
        let _ = tx.send(42);
    });
    println!("fiber: waiting for the oneshot");
    let answer = fuseau_tokio::await_event(fuseau_tokio::ev_future(rx))?.map_err(Error::other)?;
    println!("fiber: the oneshot said {answer}");
    Ok(())
}

/// Fibers are bound to their scheduler's thread, but other threads can send
/// it work: `spawn_from_anywhere` takes a `SchedulerHandle` (`Send + Sync`)
/// and returns a `RemoteFiber`, which a plain thread joins by blocking and a
/// fiber by suspending.
fn from_another_thread() -> Result<()> {
    section("13. spawn_from_anywhere: work sent from another thread");
    let handle = fuseau_tokio::Scheduler::current().handle();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        println!("thread: sending a fiber to the scheduler");
        let remote = fuseau_tokio::spawn_from_anywhere(&handle, || {
            println!("remote fiber: running on the scheduler's thread");
            // A fiber like any other: it may suspend.
            fuseau_tokio::sleep(ms(1))?;
            Ok(6 * 7)
        });
        // A plain thread blocks in `join`.
        let answer = remote.join();
        println!("thread: the remote fiber returned {answer:?}");
        let _ = done_tx.send(answer);
    });
    // Meanwhile this fiber suspends (it must not block the scheduler's
    // thread: the remote fiber runs there).
    let answer = fuseau_tokio::await_future(done_rx)?.map_err(Error::other)??;
    thread.join().expect("the thread did not panic");
    println!("main fiber: the thread reported {answer}");
    Ok(())
}

/// `with_timeout` cuts short only the work inside it, not the fiber: its
/// suspension points fail with `Timeout` once the time is up. Cleanup that
/// must wait anyway runs in a `shield`, which holds the timeout (and any
/// cancellation) back until it returns.
fn deadline_scope_and_shield() -> Result<()> {
    section("14. a deadline scope, and cleanup in a shield");
    let saved = Rc::new(Cell::new(false));
    let s = saved.clone();
    let outcome = fuseau_tokio::with_timeout(ms(10), move || {
        let slow = fuseau_tokio::sleep(ms(1_000)); // the slow work
        println!(
            "slow work: {}",
            slow.as_ref()
                .map_or_else(|e| e.to_string(), |_| "done".into())
        );
        // Saving state takes time too: shielded, it runs to its end.
        fuseau_tokio::shield(|| {
            fuseau_tokio::sleep(ms(5))?;
            s.set(true);
            Ok(())
        })?;
        slow
    });
    println!(
        "with_timeout returned a timeout: {}",
        outcome.is_err_and(|e| e.is_timeout())
    );
    println!("the state was saved: {}", saved.get());
    fuseau_tokio::sleep(ms(1))?;
    println!("the fiber itself runs on");
    Ok(())
}

/// `fuseau::sync` has the classic primitives for fibers of one thread: a
/// `Mutex` whose `lock` suspends the fiber (waiters are served in FIFO
/// order), a `Semaphore` that caps how many fibers do something at once.
fn fiber_mutex_and_semaphore() -> Result<()> {
    section("15. a Mutex and a Semaphore for fibers");
    let balance = Rc::new(fuseau_tokio::sync::Mutex::new(100u32));
    let slots = Rc::new(fuseau_tokio::sync::Semaphore::new(2));
    let busy = Rc::new(Cell::new(0u32));
    let peak = Rc::new(Cell::new(0u32));
    let workers: Vec<_> = (1..=4u32)
        .map(|i| {
            let (balance, slots) = (balance.clone(), slots.clone());
            let (busy, peak) = (busy.clone(), peak.clone());
            fuseau_tokio::spawn(move || {
                let _slot = slots.acquire()?; // at most 2 workers at a time
                busy.set(busy.get() + 1);
                peak.set(peak.get().max(busy.get()));
                let mut b = balance.lock()?; // held across a wait: no one else sees half an update
                fuseau_tokio::sleep(ms(1))?;
                *b -= i;
                busy.set(busy.get() - 1);
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()?;
    }
    println!("balance after 4 withdrawals: {}", *balance.lock()?);
    println!("at most {} workers ran at once", peak.get());
    Ok(())
}

/// `scope` opens a scope whose members may borrow the caller's data: it
/// returns only once every member is done. `race` (built on it) runs
/// closures as members and returns the first success; the others are
/// cancelled, and finished before it returns. In `with_timeout`, the whole
/// race is bounded.
fn scoped_fibers() -> Result<()> {
    section("16. scoped fibers: a race with a deadline, a worker pool on a borrowed slice");
    // Three mirrors of one file, each with its own delay (a fetch, here a
    // sleep). The request and the log are borrowed, not cloned or `Rc`ed.
    let request = String::from("GET /fuseau.tar.gz");
    let log = std::cell::RefCell::new(Vec::new());
    let mirror = |name: &'static str, delay: u64| {
        let (request, log) = (&request, &log);
        move || -> Result<String> {
            let fetched = fuseau_tokio::sleep(ms(delay));
            log.borrow_mut().push(match &fetched {
                Ok(()) => format!("{name}: done"),
                Err(e) => format!("{name}: {e}"),
            });
            fetched?;
            Ok(format!("{request} from {name}"))
        }
    };
    let fastest =
        fuseau_tokio::race([mirror("paris", 30), mirror("tokyo", 10), mirror("lima", 50)])?;
    println!("race won: {fastest}");
    println!("mirrors: {:?}", log.take());
    let late = fuseau_tokio::with_timeout(ms(5), || {
        fuseau_tokio::race([mirror("paris", 30), mirror("tokyo", 10)])
    });
    println!("with a 5 ms deadline: {}", late.unwrap_err());
    println!("mirrors: {:?}", log.take());

    // A worker pool over a borrowed slice: each member sums its chunk into
    // its own slot of `sums` (a mutable borrow each); at most 2 at a time.
    let samples: Vec<u64> = (1..=1_000).collect();
    let mut sums = vec![0u64; 4];
    fuseau_tokio::scope(|s| {
        s.set_limit(2);
        for (chunk, sum) in samples.chunks(250).zip(sums.iter_mut()) {
            s.spawn(move || {
                fuseau_tokio::yield_now()?; // a real worker would wait on I/O here
                *sum = chunk.iter().sum();
                Ok(())
            });
        }
        Ok(())
    })?;
    println!("chunk sums: {sums:?}, total {}", sums.iter().sum::<u64>());
    Ok(())
}

/// `main` runs every fiber on one thread. A `Runtime` runs a scheduler on
/// each of several threads; fibers are placed on one (`spawn` picks the
/// least-loaded, `spawn_on` a given one) and never move. A `SharedChan`
/// carries values between fibers of any threads: a fiber that waits on it
/// suspends, and its thread runs its other fibers meanwhile.
fn every_core() -> Result<()> {
    section("17. a Runtime: a scheduler per thread, a SharedChan between them");
    let runtime = Runtime::new(2)?;
    let chan = SharedChan::bounded(2);
    let tx = chan.clone();
    let producer = runtime.spawn_on(0, move || {
        for i in 1..=5u64 {
            tx.send(i * i)?; // suspends while the channel is full
        }
        tx.close();
        Ok(Runtime::current_thread())
    });
    let consumer = runtime.spawn_on(1, move || {
        let mut received = Vec::new();
        while let Ok(square) = chan.recv() {
            received.push(square);
        }
        Ok((Runtime::current_thread(), received))
    });
    // This plain thread blocks in `join`; a fiber would suspend. (The
    // fibers print nothing themselves: the two threads run at the same
    // time, and the tour's output must be the same on every run.)
    println!("producer ran on thread {:?}", producer.join()?);
    let (thread, received) = consumer.join()?;
    println!("consumer ran on thread {thread:?}, received {received:?}");
    println!("consumer summed {}", received.iter().sum::<u64>());
    runtime.shutdown();
    Ok(())
}
