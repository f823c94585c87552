//! Fiber-local storage: a value per fiber, like `thread_local!` per thread.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::scheduler::context::with_current;
use crate::task::Header;

/// A key for a value that each fiber has its own copy of.
///
/// Declare it as a `static`; each fiber starts with `init()` (computed on
/// first use) and its values are dropped when its body returns, on the
/// fiber's own stack, inside its panic boundary (a destructor that panics
/// fails the fiber), until none are left (a destructor may set another
/// value). Children do not inherit their parent's values. No user code
/// (`init`, `Clone`, `Drop`) runs while the fiber's storage is borrowed, so
/// any of them may use fiber-local storage too.
///
/// # Examples
///
/// ```
/// use fuseau::FiberLocal;
///
/// static REQUEST_ID: FiberLocal<u64> = FiberLocal::new(|| 0);
///
/// fuseau::block_on(|| {
///     REQUEST_ID.set(7);
///     let child = fuseau::spawn(|| Ok(REQUEST_ID.get()));
///     assert_eq!(child.join()?, 0, "each fiber has its own value");
///     assert_eq!(REQUEST_ID.get(), 7);
///     let inner = REQUEST_ID.with_value(8, || REQUEST_ID.get());
///     assert_eq!((inner, REQUEST_ID.get()), (8, 7));
///     Ok(())
/// })?;
/// # Ok::<(), fuseau::Error>(())
/// ```
///
/// A `const` would make a new key at every use, so the methods take
/// `&'static self` and this does not compile:
///
/// ```compile_fail
/// const K: fuseau::FiberLocal<u8> = fuseau::FiberLocal::new(|| 0);
/// fn f() { K.set(1); }
/// ```
pub struct FiberLocal<T: 'static> {
    init: fn() -> T,
    /// Assigned on first use from a global counter; 0 means not yet.
    id: AtomicUsize,
    _value: PhantomData<fn() -> T>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

impl<T: 'static> FiberLocal<T> {
    /// A key whose value starts, in every fiber, as `init()`.
    pub const fn new(init: fn() -> T) -> FiberLocal<T> {
        FiberLocal {
            init,
            id: AtomicUsize::new(0),
            _value: PhantomData,
        }
    }

    fn id(&'static self) -> usize {
        match self.id.load(Ordering::Acquire) {
            0 => {
                let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                match self
                    .id
                    .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => fresh,
                    Err(existing) => existing,
                }
            }
            id => id,
        }
    }

    fn with_core<R>(call: &str, f: impl FnOnce(&Header) -> R) -> R {
        with_current(|task| f(task.header()))
            .unwrap_or_else(|| panic!("{call} must be called from inside a fiber"))
    }

    /// A clone of the running fiber's value (its `init()` on first use).
    ///
    /// Not a cancellation point.
    ///
    /// # Panics
    ///
    /// Outside a fiber, naming `FiberLocal::get`.
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        let id = self.id();
        Self::with_core("FiberLocal::get", |core| {
            if let Some(v) = find(core, id) {
                return v;
            }
            // `init` runs with no borrow held: it may use fiber locals too.
            let value = (self.init)();
            match find(core, id) {
                Some(v) => v,
                None => {
                    let stored: Rc<dyn Any> = Rc::new(value.clone());
                    let old = replace(core, id, Some(stored));
                    drop(old);
                    value
                }
            }
        })
    }

    /// Sets the running fiber's value.
    ///
    /// Not a cancellation point.
    ///
    /// # Panics
    ///
    /// Outside a fiber, naming `FiberLocal::set`.
    pub fn set(&'static self, value: T) {
        let id = self.id();
        let old = Self::with_core("FiberLocal::set", |core| {
            replace(core, id, Some(Rc::new(value)))
        });
        drop(old);
    }

    /// Runs `f` with the running fiber's value set to `value`, then puts the
    /// previous value back (also if `f` panics).
    ///
    /// # Panics
    ///
    /// Outside a fiber, naming `FiberLocal::with_value`.
    pub fn with_value<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        struct Restore {
            id: usize,
            old: Option<Rc<dyn Any>>,
        }
        impl Drop for Restore {
            fn drop(&mut self) {
                let scoped = with_current(|task| replace(task.header(), self.id, self.old.take()));
                drop(scoped);
            }
        }
        let id = self.id();
        let old = Self::with_core("FiberLocal::with_value", |core| {
            replace(core, id, Some(Rc::new(value)))
        });
        let _restore = Restore { id, old };
        f()
    }
}

/// A clone of the value for `id`: the shared box is taken out with the
/// storage borrowed, then `T::clone` (user code) runs with no borrow held.
fn find<T: Clone + 'static>(core: &Header, id: usize) -> Option<T> {
    let shared = core.read_extras(|e| {
        e.locals
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, v)| v.clone())
    })?;
    shared.downcast_ref::<T>().cloned()
}

/// Replaces (or removes, with `None`) the value for `id`; returns the old one
/// so that the caller drops it with no borrow held.
fn replace(core: &Header, id: usize, value: Option<Rc<dyn Any>>) -> Option<Rc<dyn Any>> {
    core.with_extras(|e| {
        let locals = &mut e.locals;
        let index = locals.iter().position(|(k, _)| *k == id);
        match (index, value) {
            (Some(i), Some(v)) => Some(std::mem::replace(&mut locals[i].1, v)),
            (Some(i), None) => Some(locals.swap_remove(i).1),
            (None, Some(v)) => {
                locals.push((id, v));
                None
            }
            (None, None) => None,
        }
    })
}

impl<T: 'static> fmt::Debug for FiberLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FiberLocal")
            .field("id", &self.id.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
