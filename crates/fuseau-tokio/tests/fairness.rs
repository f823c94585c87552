//! A fiber that never stops yielding must not starve Tokio: timers, local
//! tasks and sockets keep making progress (real time; nothing here asserts
//! on speed, only that progress happens within a bounded number of yields).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::ms;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::LocalSet;

/// Far more yields than any reasonable machine needs for the events below
/// to happen; the test fails (instead of hanging) if they never do.
const MAX_YIELDS: u64 = 10_000_000;

/// Yields until `done` is set; returns how many yields it took.
fn spin_until(done: &Cell<bool>) -> fuseau_tokio::Result<u64> {
    let mut yields = 0;
    while !done.get() {
        assert!(
            yields < MAX_YIELDS,
            "Tokio starved: the flag was not set after {MAX_YIELDS} yields"
        );
        fuseau_tokio::yield_now()?;
        yields += 1;
    }
    Ok(yields)
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn yielding_fiber_does_not_starve_tokio_timers() {
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(|| {
            let flag = Rc::new(Cell::new(false));
            let f = flag.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(ms(1)).await;
                f.set(true);
            });
            spin_until(&flag)?;
            Ok(())
        }))
        .await
        .unwrap();
}

#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn yielding_fiber_does_not_starve_tokio_sockets() {
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(|| {
            let done = Rc::new(Cell::new(false));
            let d = done.clone();
            // Bound synchronously from the fiber; the Tokio side does the
            // accept/connect/echo while the fiber spins.
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::task::spawn_local(async move {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0; 5];
                conn.read_exact(&mut buf).await.unwrap();
                conn.write_all(&buf).await.unwrap();
            });
            tokio::task::spawn_local(async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                conn.write_all(b"hello").await.unwrap();
                let mut buf = [0; 5];
                conn.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"hello");
                d.set(true);
            });
            spin_until(&done)?;
            Ok(())
        }))
        .await
        .unwrap();
}

/// Several fibers spinning at once, with the smallest and a large budget.
#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn many_yielding_fibers_with_any_budget_do_not_starve_tokio() {
    for budget in [1, 100_000] {
        let local = LocalSet::new();
        local
            .run_until(fuseau_tokio::run_with(
                fuseau_tokio::Config::new().budget(budget),
                || {
                    let flag = Rc::new(Cell::new(false));
                    let f = flag.clone();
                    tokio::task::spawn_local(async move {
                        tokio::time::sleep(ms(1)).await;
                        f.set(true);
                    });
                    for _ in 0..4 {
                        let flag = flag.clone();
                        fuseau_tokio::spawn(move || spin_until(&flag).map(drop));
                    }
                    spin_until(&flag)?;
                    Ok(())
                },
            ))
            .await
            .unwrap();
    }
}

/// Passes suspension points that never wait (a ready future, then a send
/// and a receive on a channel with room) until `done` is set; fails after
/// far more than any machine needs, instead of hanging.
fn busy_until(done: &Cell<bool>) -> fuseau_tokio::Result<u64> {
    let chan = fuseau_tokio::Chan::bounded(1);
    let mut rounds = 0;
    while !done.get() {
        assert!(
            rounds < MAX_YIELDS,
            "starved: the flag was not set after {MAX_YIELDS} busy rounds"
        );
        fuseau_tokio::await_future(std::future::ready(()))?;
        chan.send(rounds)?;
        chan.recv()?;
        rounds += 1;
    }
    Ok(rounds)
}

/// A fiber that never has to wait (ready futures, an always-ready channel)
/// does not starve a sleeping fiber, Tokio's timers, sockets, or another
/// thread's spawn.
#[tokio::test]
#[cfg_attr(miri, ignore)]
async fn busy_fiber_does_not_starve_sleepers_timers_sockets_or_other_threads() {
    let local = LocalSet::new();
    local
        .run_until(fuseau_tokio::run(|| {
            // A fiber sleeping 20 ms.
            let slept = Rc::new(Cell::new(false));
            let s = slept.clone();
            fuseau_tokio::spawn(move || {
                fuseau_tokio::sleep(ms(20))?;
                s.set(true);
                Ok(())
            });
            busy_until(&slept)?;

            // A Tokio timer.
            let fired = Rc::new(Cell::new(false));
            let f = fired.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(ms(1)).await;
                f.set(true);
            });
            busy_until(&fired)?;

            // A socket that another thread writes to.
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
            ours.set_nonblocking(true)?;
            let mut ours = tokio::net::UnixStream::from_std(ours)?;
            let read = Rc::new(Cell::new(false));
            let r = read.clone();
            tokio::task::spawn_local(async move {
                let mut buf = [0; 2];
                ours.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"hi");
                r.set(true);
            });
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                (&theirs).write_all(b"hi").unwrap();
                theirs
            });
            busy_until(&read)?;
            drop(writer.join().unwrap());

            // A fiber spawned from another thread.
            let handle = fuseau_tokio::Scheduler::current().handle();
            let arrived = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let a = arrived.clone();
            let remote = std::thread::spawn(move || {
                fuseau_tokio::spawn_from_anywhere(&handle, move || {
                    a.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                })
            })
            .join()
            .unwrap();
            let landed = Rc::new(Cell::new(false));
            let l = landed.clone();
            fuseau_tokio::spawn(move || {
                while !arrived.load(std::sync::atomic::Ordering::SeqCst) {
                    fuseau_tokio::yield_now()?;
                }
                l.set(true);
                Ok(())
            });
            busy_until(&landed)?;
            remote.join()?;
            Ok(())
        }))
        .await
        .unwrap();
}
