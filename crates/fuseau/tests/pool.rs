//! `ResourcePool` (one thread, any item) and `BufPool` (byte buffers, any
//! thread), alone and used from fibers.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use common::ms;
use fuseau::{BufPool, ResourcePool};

/// A pool of `Vec<u32>` that counts the items it makes.
fn counting_pool(max_size: usize) -> (ResourcePool<Vec<u32>>, Rc<Cell<usize>>) {
    let made = Rc::new(Cell::new(0));
    let m = made.clone();
    let pool = ResourcePool::new(
        move || {
            m.set(m.get() + 1);
            Vec::with_capacity(8)
        },
        max_size,
    );
    (pool, made)
}

#[test]
fn resource_pool_makes_items_on_demand_and_reuses_them() {
    let (pool, made) = counting_pool(4);
    assert_eq!(pool.n_free(), 0);
    let a = pool.acquire();
    let b = pool.acquire();
    assert_eq!(made.get(), 2);
    pool.recycle(a);
    pool.recycle(b);
    assert_eq!(pool.n_free(), 2);
    let _c = pool.acquire();
    let _d = pool.acquire();
    assert_eq!(
        made.get(),
        2,
        "free items are reused before new ones are made"
    );
    let _e = pool.acquire();
    assert_eq!(made.get(), 3);
}

#[test]
fn resource_pool_keeps_at_most_max_size() {
    let (pool, made) = counting_pool(2);
    let items: Vec<_> = (0..5).map(|_| pool.acquire()).collect();
    assert_eq!(made.get(), 5);
    for item in items {
        pool.recycle(item);
    }
    assert_eq!(pool.n_free(), 2, "the extra items were dropped");
    // A pool of size 0 keeps nothing.
    let (none, _) = counting_pool(0);
    none.recycle(none.acquire());
    assert_eq!(none.n_free(), 0);
}

#[test]
fn resource_pool_without_clear_keeps_items_as_they_are() {
    let (pool, _) = counting_pool(1);
    let mut item = pool.acquire();
    item.push(7);
    pool.recycle(item);
    assert_eq!(pool.acquire(), [7]);
}

#[test]
fn with_clear_resets_recycled_items() {
    let cleared = Rc::new(Cell::new(0));
    let c = cleared.clone();
    let pool = ResourcePool::new(Vec::<u32>::new, 1).with_clear(move |v: &mut Vec<u32>| {
        c.set(c.get() + 1);
        v.clear();
    });
    let mut a = pool.acquire();
    a.extend([1, 2, 3]);
    let mut b = pool.acquire();
    b.push(4);
    pool.recycle(a);
    assert_eq!(cleared.get(), 1);
    // No room for `b`: dropped without being cleared.
    pool.recycle(b);
    assert_eq!(cleared.get(), 1);
    assert!(pool.acquire().is_empty());
}

#[test]
fn with_clear_after_clone_panics() {
    let pool = ResourcePool::new(|| 0u8, 1);
    let _clone = pool.clone();
    let r = catch_unwind(AssertUnwindSafe(|| pool.with_clear(|_| {})));
    assert!(r.is_err());
}

#[test]
fn clones_share_the_pool() {
    let (pool, made) = counting_pool(4);
    let clone = pool.clone();
    clone.recycle(pool.acquire());
    assert_eq!(pool.n_free(), 1);
    let _ = clone.acquire();
    assert_eq!(pool.n_free(), 0);
    assert_eq!(made.get(), 1);
    assert!(format!("{pool:?}").contains("max_size: 4"));
}

#[test]
fn with_resource_recycles_and_returns_the_value() {
    let (pool, made) = counting_pool(2);
    let len = pool.with_resource(|v| {
        v.push(1);
        v.len()
    });
    assert_eq!(len, 1);
    assert_eq!(pool.n_free(), 1);
    // Nested: two items at once.
    let sum = pool.with_resource(|a| pool.with_resource(|b| a.len() + b.len()));
    assert_eq!(sum, 1, "the first item comes back as it was (no clear)");
    assert_eq!(made.get(), 2);
    assert_eq!(pool.n_free(), 2);
}

#[test]
fn with_resource_recycles_on_panic_and_the_panic_goes_on() {
    let pool = ResourcePool::new(String::new, 2).with_clear(String::clear);
    let r = catch_unwind(AssertUnwindSafe(|| {
        pool.with_resource(|s: &mut String| -> () {
            s.push_str("half-written");
            panic!("boom");
        })
    }));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(pool.n_free(), 1);
    assert_eq!(pool.acquire(), "", "recycled and cleared");
}

#[test]
#[cfg_attr(miri, ignore)]
fn resource_pool_from_fibers() {
    // Each fiber holds an item across a suspension: the pool makes as many
    // as are held at once, and keeps at most `max_size` afterwards.
    let made = Rc::new(Cell::new(0));
    let m = made.clone();
    let pool = ResourcePool::new(
        move || {
            m.set(m.get() + 1);
            String::new()
        },
        3,
    )
    .with_clear(String::clear);
    let log = Rc::new(RefCell::new(Vec::new()));
    let p = pool.clone();
    let l = log.clone();
    fuseau::block_on(move || {
        let fibers: Vec<_> = (0..5)
            .map(|i| {
                let pool = p.clone();
                let log = l.clone();
                fuseau::spawn(move || {
                    let mut s = pool.acquire();
                    assert!(s.is_empty());
                    s.push_str(&format!("fiber {i}"));
                    fuseau::sleep(ms(1))?;
                    log.borrow_mut().push(s.clone());
                    pool.recycle(s);
                    Ok(())
                })
            })
            .collect();
        for fiber in fibers {
            fiber.join()?;
        }
        // Now the free items are reused.
        let reused = p.with_resource(|s| {
            assert!(s.is_empty());
            s.len()
        });
        assert_eq!(reused, 0);
        Ok(())
    })
    .unwrap();
    assert_eq!(made.get(), 5);
    assert_eq!(pool.n_free(), 3);
    assert_eq!(log.borrow().len(), 5);
}

#[test]
fn buf_pool_hands_out_empty_buffers_of_the_right_capacity() {
    let pool = BufPool::new(1024, 2);
    assert_eq!(pool.buf_size(), 1024);
    let mut buf = pool.acquire();
    assert!(buf.is_empty() && buf.capacity() >= 1024);
    buf.extend_from_slice(b"dirty");
    let addr = buf.as_ptr();
    pool.recycle(buf);
    assert_eq!(pool.n_free(), 1);
    let again = pool.acquire();
    assert_eq!(again.as_ptr(), addr, "the buffer is reused");
    assert!(again.is_empty(), "recycled buffers come back cleared");
    // Too small to keep; too many to keep.
    pool.recycle(Vec::with_capacity(16));
    assert_eq!(pool.n_free(), 0);
    for _ in 0..4 {
        pool.recycle(Vec::with_capacity(2048));
    }
    assert_eq!(pool.n_free(), 2);
    assert!(format!("{pool:?}").contains("buf_size: 1024"));
}

#[test]
fn buf_pool_with_buf_recycles_on_panic() {
    let pool = BufPool::new(64, 4);
    let n = pool.with_buf(|b| {
        b.extend_from_slice(b"abc");
        b.len()
    });
    assert_eq!(n, 3);
    let r = catch_unwind(AssertUnwindSafe(|| pool.with_buf(|_| panic!("boom"))));
    assert!(r.is_err());
    assert_eq!(pool.n_free(), 1);
    assert!(pool.acquire().is_empty());
}

#[test]
#[cfg_attr(miri, ignore)]
fn buf_pool_across_threads_never_shares_a_buffer() {
    const MAX_BUFS: usize = 4;
    let pool = Arc::new(BufPool::new(256, MAX_BUFS));
    let threads: Vec<_> = (0..4u8)
        .map(|tag| {
            let pool = pool.clone();
            thread::spawn(move || {
                for round in 0..2_000u32 {
                    let mut held = Vec::new();
                    for _ in 0..(round % 3 + 1) {
                        let mut buf = pool.acquire();
                        assert!(buf.is_empty() && buf.capacity() >= 256);
                        buf.extend_from_slice(&[tag; 64]);
                        held.push(buf);
                    }
                    thread::yield_now();
                    for buf in held {
                        // Nobody else wrote into a buffer this thread holds.
                        assert!(buf.iter().all(|&b| b == tag));
                        pool.recycle(buf);
                    }
                    assert!(pool.n_free() <= MAX_BUFS);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(pool.n_free() <= MAX_BUFS);
    // The buffers the pool keeps are distinct.
    let kept: Vec<_> = (0..pool.n_free()).map(|_| pool.acquire()).collect();
    let addrs: HashSet<_> = kept.iter().map(|b| b.as_ptr()).collect();
    assert_eq!(addrs.len(), kept.len());
}

#[test]
#[cfg_attr(miri, ignore)]
fn buf_pool_shared_by_fibers_on_two_schedulers() {
    let pool = Arc::new(BufPool::new(128, 8));
    let run = |pool: Arc<BufPool>, tag: u8| {
        move || {
            fuseau::block_on(move || {
                let fibers: Vec<_> = (0..20)
                    .map(|_| {
                        let pool = pool.clone();
                        fuseau::spawn(move || {
                            for _ in 0..10 {
                                let mut buf = pool.acquire();
                                buf.push(tag);
                                // Held across a suspension point.
                                fuseau::yield_now()?;
                                assert_eq!(buf, [tag]);
                                pool.recycle(buf);
                            }
                            Ok(())
                        })
                    })
                    .collect();
                fibers.into_iter().try_for_each(|f| f.join())
            })
        }
    };
    let other = thread::spawn(run(pool.clone(), 1));
    run(pool.clone(), 2)().unwrap();
    other.join().unwrap().unwrap();
    assert!(pool.n_free() <= 8);
    assert!(pool.n_free() >= 1);
}
