//! Fiber-local storage: a value per fiber, like `thread_local!` per thread.
//!
//! A fiber's values are in its record's extras (`Extras::locals`), keyed by
//! the key's id, each in an `Rc` so that it can be cloned with no borrow of
//! the extras held. The value of an inheritable key is stored wrapped in an
//! [`Inheritable`], which knows how to copy it without knowing its type: so
//! the spawn path ([`inherit`], called by `fiber.rs` for each new child)
//! finds the values to copy by a type test, with no registry of keys. The
//! spawn path imports this module, not the other way round (both are in the
//! same layer; `local` only uses the scheduler's context and the record).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::scheduler::context::with_current;
use crate::task::Header;

/// A key for a value that each fiber has its own copy of.
///
/// Declare it as a `static`; each fiber starts with `init()` (computed on
/// first use) and its values are dropped when its body returns, on the
/// fiber's own stack, inside its panic boundary (a destructor that panics
/// fails the fiber), until none are left (a destructor may set another
/// value). No user code (`init`, `Clone`, `Drop`) runs while the fiber's
/// storage is borrowed, so any of them may use fiber-local storage too.
///
/// # Inheritance
///
/// A key made with [`FiberLocal::new`] is not inherited: a child starts
/// with `init()` whatever its parent's value. A key made with
/// [`FiberLocal::inheritable`] is (like Python's `contextvars` or Java's
/// `ScopedValue`): when a fiber is spawned, it gets a *clone* of its
/// parent's current value (the scoped one inside
/// [`with_value`](FiberLocal::with_value)). The clone is made at spawn, by
/// the caller of the spawn, before it returns; from then on parent and
/// child have separate values, and a later change in one is not seen by the
/// other. A parent that has no value yet (it never used the key) passes
/// nothing: the child starts with `init()` on first use, computed in the
/// child. A fiber with no parent (spawned outside any fiber, by
/// [`Builder::spawn_on`](crate::Builder::spawn_on),
/// [`spawn_from_anywhere`](crate::spawn_from_anywhere), or the main fiber of
/// [`block_on`](crate::block_on)) starts with `init()`. Inherited values are
/// the child's own and are dropped as any other (on its stack, when its body
/// returns; if its body never runs, when it completes). Programs that never
/// make an inheritable key pay nothing at spawn.
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
/// An inheritable key: children get a clone of their parent's value.
///
/// ```
/// use fuseau::FiberLocal;
///
/// static TRACE: FiberLocal<String> = FiberLocal::inheritable(|| "none".into());
///
/// fuseau::block_on(|| {
///     TRACE.set("req-7".into());
///     let child = fuseau::spawn(|| {
///         let grandchild = fuseau::spawn(|| Ok(TRACE.get()));
///         Ok((TRACE.get(), grandchild.join()?))
///     });
///     TRACE.set("req-8".into()); // after the spawn: not seen by the child
///     assert_eq!(child.join()?, ("req-7".into(), "req-7".into()));
///     let scoped = TRACE.with_value("sub".into(), || fuseau::spawn(|| Ok(TRACE.get())));
///     assert_eq!(scoped.join()?, "sub");
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
    /// How a child's copy is made, for an inheritable key (`copy::<T>`).
    copy: Option<CopyFn>,
    /// Assigned on first use from a global counter; 0 means not yet.
    id: AtomicUsize,
    _value: PhantomData<fn() -> T>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// Set once a value of an inheritable key is stored, by any thread: until
/// then [`inherit`] returns at once. A fiber's values are only ever stored
/// on its scheduler's thread, the thread that spawns its children, so the
/// flag is seen there in program order (`Relaxed` is enough).
static INHERITABLE_USED: AtomicBool = AtomicBool::new(false);

/// Copies an inheritable value without knowing its type.
type CopyFn = fn(&dyn Any) -> Box<dyn Any>;

/// The stored form of an inheritable key's value: the value, and how to
/// copy it for a child.
struct Inheritable {
    value: Box<dyn Any>,
    copy: CopyFn,
}

/// `T::clone`, type-erased (the [`CopyFn`] of a `FiberLocal<T>`).
fn copy<T: Clone + 'static>(value: &dyn Any) -> Box<dyn Any> {
    let value = value
        .downcast_ref::<T>()
        .expect("an inheritable value has its key's type");
    Box::new(value.clone())
}

impl<T: 'static> FiberLocal<T> {
    /// A key whose value starts, in every fiber, as `init()`; children do
    /// not inherit it (each starts with `init()`).
    pub const fn new(init: fn() -> T) -> FiberLocal<T> {
        FiberLocal {
            init,
            copy: None,
            id: AtomicUsize::new(0),
            _value: PhantomData,
        }
    }

    /// A key whose value a child inherits: each fiber spawned as a child
    /// gets a clone of its parent's value at the time of the spawn (see
    /// [Inheritance](FiberLocal#inheritance)); a fiber with no parent, or
    /// whose parent has no value yet, starts with `init()`.
    ///
    /// `T::clone` runs inside the spawn call ([`spawn`](crate::spawn),
    /// [`Builder::spawn`](crate::Builder::spawn), …), in the caller's
    /// context (the parent, for [`spawn`](crate::spawn)), with no storage
    /// borrowed: it may read or set fiber-local values, of the caller.
    ///
    /// # Panics
    ///
    /// Not here; but a `T::clone` that panics makes the spawn panic, in the
    /// caller, with that panic: the child is never created (its body is
    /// dropped), and the copies already made are dropped. (A panic while the
    /// thread is already unwinding aborts the process, as any panic in a
    /// destructor would.)
    ///
    /// # Examples
    ///
    /// ```
    /// use fuseau::FiberLocal;
    ///
    /// static DEPTH: FiberLocal<u32> = FiberLocal::inheritable(|| 0);
    ///
    /// fuseau::block_on(|| {
    ///     DEPTH.set(1);
    ///     let child = fuseau::spawn(|| {
    ///         DEPTH.set(DEPTH.get() + 1); // its own copy
    ///         Ok(DEPTH.get())
    ///     });
    ///     assert_eq!(child.join()?, 2);
    ///     assert_eq!(DEPTH.get(), 1);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), fuseau::Error>(())
    /// ```
    pub const fn inheritable(init: fn() -> T) -> FiberLocal<T>
    where
        T: Clone,
    {
        FiberLocal {
            init,
            copy: Some(copy::<T>),
            id: AtomicUsize::new(0),
            _value: PhantomData,
        }
    }

    /// `true` for a key made with [`FiberLocal::inheritable`].
    ///
    /// ```
    /// static PLAIN: fuseau::FiberLocal<u8> = fuseau::FiberLocal::new(|| 0);
    /// static INHERITED: fuseau::FiberLocal<u8> = fuseau::FiberLocal::inheritable(|| 0);
    /// assert!(!PLAIN.is_inheritable());
    /// assert!(INHERITED.is_inheritable());
    /// ```
    pub fn is_inheritable(&self) -> bool {
        self.copy.is_some()
    }

    /// `value` in its stored form.
    fn wrap(&self, value: T) -> Rc<dyn Any> {
        match self.copy {
            None => Rc::new(value),
            Some(copy) => {
                if !INHERITABLE_USED.load(Ordering::Relaxed) {
                    INHERITABLE_USED.store(true, Ordering::Relaxed);
                }
                Rc::new(Inheritable {
                    value: Box::new(value),
                    copy,
                })
            }
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
                    let stored = self.wrap(value.clone());
                    let old = replace(core, id, Some(stored));
                    drop(old);
                    value
                }
            }
        })
    }

    /// Sets the running fiber's value. For an inheritable key, children
    /// spawned from now on get a clone of it; those spawned before keep
    /// theirs.
    ///
    /// Not a cancellation point.
    ///
    /// # Panics
    ///
    /// Outside a fiber, naming `FiberLocal::set`.
    pub fn set(&'static self, value: T) {
        let id = self.id();
        let old = Self::with_core("FiberLocal::set", |core| {
            replace(core, id, Some(self.wrap(value)))
        });
        drop(old);
    }

    /// Runs `f` with the running fiber's value set to `value`, then puts the
    /// previous value back (also if `f` panics). For an inheritable key,
    /// children spawned inside `f` get a clone of `value`, and keep it after
    /// the scope ends.
    ///
    /// Not a cancellation point itself (`f` may contain some).
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
            replace(core, id, Some(self.wrap(value)))
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
    match shared.downcast_ref::<Inheritable>() {
        Some(inheritable) => inheritable.value.downcast_ref::<T>().cloned(),
        None => shared.downcast_ref::<T>().cloned(),
    }
}

/// Gives `child`, a fiber being spawned as a child of `parent` (not yet
/// registered or started), a copy of each of `parent`'s inheritable values.
/// Called by the spawn path (`fiber.rs`) in the caller of the spawn.
///
/// Free for programs that never stored an inheritable value (one flag
/// test), and cheap for parents with no values (one borrow). The values to
/// copy are taken out (shared) with the parent's storage borrowed; the
/// copies (`T::clone`, user code) are made with no borrow held, so they may
/// use fiber-local storage; a panic in one unwinds into the spawn's caller,
/// dropping the copies made so far.
pub(crate) fn inherit(parent: &Header, child: &Header) {
    if !INHERITABLE_USED.load(Ordering::Relaxed) {
        return;
    }
    let Some(shared) = parent.read_extras(|e| {
        let shared: Vec<(usize, Rc<dyn Any>)> = e
            .locals
            .iter()
            .filter(|(_, v)| v.is::<Inheritable>())
            .map(|(k, v)| (*k, Rc::clone(v)))
            .collect();
        (!shared.is_empty()).then_some(shared)
    }) else {
        return;
    };
    let copies: Vec<(usize, Rc<dyn Any>)> = shared
        .iter()
        .filter_map(|(id, v)| {
            let inheritable = v.downcast_ref::<Inheritable>()?;
            let copy: Rc<dyn Any> = Rc::new(Inheritable {
                value: (inheritable.copy)(&*inheritable.value),
                copy: inheritable.copy,
            });
            Some((*id, copy))
        })
        .collect();
    // A clone may have replaced a parent's value: the last reference to the
    // old one may be here, dropped (user code) with no borrow held.
    drop(shared);
    child.with_extras(|e| e.locals.extend(copies));
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
            .field("inheritable", &self.copy.is_some())
            .finish_non_exhaustive()
    }
}
