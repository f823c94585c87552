//! Pools of reusable things: [`ResourcePool`] (any item, one thread) and
//! [`BufPool`] (byte buffers, any thread).
//!
//! A pool never blocks: `acquire` takes a free item or makes a new one, and
//! `recycle` keeps the item if the pool has room, or drops it.

use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::std_sync::{lock, Mutex, MutexGuard};

/// A pool of items of type `T`, made on demand by `mk_item` and kept for
/// reuse (at most `max_size` of them). Cheap to clone: clones share the pool.
/// Thread-bound (`!Send`); for byte buffers across threads see [`BufPool`].
///
/// Not a cancellation point anywhere: no method suspends.
///
/// # Examples
///
/// ```
/// use fuseau::ResourcePool;
///
/// let pool = ResourcePool::new(|| String::with_capacity(64), 4).with_clear(String::clear);
/// let len = pool.with_resource(|s| {
///     s.push_str("hello");
///     s.len()
/// });
/// assert_eq!(len, 5);
/// // The string came back, cleared, and is reused.
/// assert_eq!(pool.n_free(), 1);
/// assert_eq!(pool.acquire(), "");
/// ```
pub struct ResourcePool<T> {
    inner: Rc<PoolInner<T>>,
}

/// Resets an item before it is kept for reuse.
type Clear<T> = Box<dyn Fn(&mut T)>;

struct PoolInner<T> {
    mk_item: Box<dyn Fn() -> T>,
    clear: Option<Clear<T>>,
    max_size: usize,
    free: RefCell<Vec<T>>,
}

impl<T> Clone for ResourcePool<T> {
    fn clone(&self) -> Self {
        ResourcePool {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> ResourcePool<T> {
    /// A pool that makes items with `mk_item` and keeps at most `max_size`
    /// free ones.
    pub fn new(mk_item: impl Fn() -> T + 'static, max_size: usize) -> ResourcePool<T> {
        ResourcePool {
            inner: Rc::new(PoolInner {
                mk_item: Box::new(mk_item),
                clear: None,
                max_size,
                free: RefCell::new(Vec::new()),
            }),
        }
    }

    /// The same pool, but `clear` resets each recycled item before it is
    /// kept (for instance `Vec::clear`).
    ///
    /// # Panics
    ///
    /// If the pool was cloned already (set `clear` right after `new`).
    pub fn with_clear(self, clear: impl Fn(&mut T) + 'static) -> ResourcePool<T> {
        let mut inner = Rc::into_inner(self.inner)
            .expect("ResourcePool::with_clear must be called before the pool is cloned");
        inner.clear = Some(Box::new(clear));
        ResourcePool {
            inner: Rc::new(inner),
        }
    }

    /// A free item, or a new one from `mk_item`.
    pub fn acquire(&self) -> T {
        let free = self.inner.free.borrow_mut().pop();
        free.unwrap_or_else(|| (self.inner.mk_item)())
    }

    /// Gives an item back: cleared and kept if the pool has room, dropped
    /// otherwise.
    pub fn recycle(&self, mut item: T) {
        if self.inner.free.borrow().len() >= self.inner.max_size {
            return;
        }
        if let Some(clear) = &self.inner.clear {
            clear(&mut item);
        }
        let mut free = self.inner.free.borrow_mut();
        if free.len() < self.inner.max_size {
            free.push(item);
        }
    }

    /// Runs `f` with an item, then recycles it, also if `f` panics (the
    /// panic then goes on).
    pub fn with_resource<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut item = self.acquire();
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut item)));
        self.recycle(item);
        result.unwrap_or_else(|payload| resume_unwind(payload))
    }

    /// How many free items the pool keeps right now.
    pub fn n_free(&self) -> usize {
        self.inner.free.borrow().len()
    }
}

impl<T> fmt::Debug for ResourcePool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourcePool")
            .field("max_size", &self.inner.max_size)
            .field("free", &self.inner.free.borrow().len())
            .finish_non_exhaustive()
    }
}

/// A thread-safe pool of byte buffers (`Vec<u8>`) of one capacity.
///
/// Buffers come out empty (length 0) with at least `buf_size` bytes of
/// capacity; at most `max_bufs` are kept. A buffer whose capacity shrank
/// below `buf_size` is not kept. `BufPool` is `Send + Sync`; share it with
/// an `Arc`.
///
/// Never blocks on anything but a short internal lock.
///
/// # Examples
///
/// ```
/// let pool = fuseau::BufPool::new(4096, 16);
/// let n = pool.with_buf(|buf| {
///     buf.extend_from_slice(b"payload");
///     buf.len()
/// });
/// assert_eq!(n, 7);
/// let buf = pool.acquire();
/// assert!(buf.is_empty() && buf.capacity() >= 4096);
/// pool.recycle(buf);
/// ```
pub struct BufPool {
    buf_size: usize,
    max_bufs: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    /// A pool of buffers of `buf_size` bytes that keeps at most `max_bufs`.
    pub fn new(buf_size: usize, max_bufs: usize) -> BufPool {
        BufPool {
            buf_size,
            max_bufs,
            free: Mutex::new(Vec::new()),
        }
    }

    fn free(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // The lock only guards pushes and pops, which cannot panic midway:
        // a poisoned lock still holds a consistent list. (`crate::std_sync`'s
        // mutex, so that the loom tests see it.)
        lock(&self.free)
    }

    /// An empty buffer with capacity of at least the pool's buffer size.
    pub fn acquire(&self) -> Vec<u8> {
        let free = self.free().pop();
        free.unwrap_or_else(|| Vec::with_capacity(self.buf_size))
    }

    /// Gives a buffer back; it is cleared and kept if the pool has room and
    /// its capacity is still at least the pool's buffer size.
    pub fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() < self.buf_size {
            return;
        }
        buf.clear();
        let mut free = self.free();
        if free.len() < self.max_bufs {
            free.push(buf);
        }
    }

    /// Runs `f` with a buffer, then recycles it, also if `f` panics.
    pub fn with_buf<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut buf = self.acquire();
        let result = catch_unwind(AssertUnwindSafe(|| f(&mut buf)));
        self.recycle(buf);
        result.unwrap_or_else(|payload| resume_unwind(payload))
    }

    /// The capacity of the pool's buffers.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// How many free buffers the pool keeps right now.
    pub fn n_free(&self) -> usize {
        self.free().len()
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("buf_size", &self.buf_size)
            .field("max_bufs", &self.max_bufs)
            .field("free", &self.n_free())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;

    #[test]
    fn resource_pool_bounds_and_clears() {
        let made = Rc::new(Cell::new(0));
        let m = made.clone();
        let pool = ResourcePool::new(
            move || {
                m.set(m.get() + 1);
                vec![0u8; 0]
            },
            2,
        )
        .with_clear(Vec::clear);
        let a = pool.acquire();
        let mut b = pool.acquire();
        let c = pool.acquire();
        assert_eq!(made.get(), 3);
        b.push(1);
        pool.recycle(a);
        pool.recycle(b);
        pool.recycle(c); // over max_size: dropped
        assert_eq!(pool.n_free(), 2);
        assert!(pool.acquire().is_empty(), "recycled items are cleared");
        assert_eq!(made.get(), 3, "free items are reused");
    }

    #[test]
    fn with_resource_recycles_on_panic() {
        let pool = ResourcePool::new(|| 0u32, 1);
        let r = catch_unwind(AssertUnwindSafe(|| pool.with_resource(|_| panic!("boom"))));
        assert!(r.is_err());
        assert_eq!(pool.n_free(), 1);
    }

    #[test]
    fn buf_pool_across_threads() {
        let pool = Arc::new(BufPool::new(1024, 8));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        pool.with_buf(|b| {
                            assert!(b.is_empty() && b.capacity() >= 1024);
                            b.push(i);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(pool.n_free() <= 8);
        let r = catch_unwind(AssertUnwindSafe(|| pool.with_buf(|_| panic!("boom"))));
        assert!(r.is_err());
        assert!(pool.n_free() >= 1);
    }

    #[test]
    fn shrunk_buffers_are_not_kept() {
        let pool = BufPool::new(1024, 8);
        pool.recycle(Vec::with_capacity(10));
        assert_eq!(pool.n_free(), 0);
    }
}
