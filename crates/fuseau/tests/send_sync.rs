//! Which public types may cross threads (like Tokio's `async_send_sync.rs`).
//!
//! `is_send!`/`is_sync!` use autoref specialisation: the method of the trait
//! implemented for `Probe<T>` when `T: Send` is found before the fallback
//! implemented for `&Probe<T>`, so the answer is computed at compile time
//! for concrete types, and the table below is checked as a whole.

use std::marker::PhantomData;

use fuseau::{
    AnyFiber, BufPool, Builder, CancelHandle, Chan, Config, Error, ErrorKind, Fiber, FiberId,
    FiberLocal, FutureEvent, Iteration, RecvEvent, RemoteFiber, ResourcePool, Scheduler,
    SchedulerHandle, SendEvent, SharedChan, SharedRecvEvent, SharedSendEvent, TimeoutEvent,
    TryRecvError, TrySendError, Wakeup, When,
};

struct Probe<T: ?Sized>(PhantomData<T>);

trait IsSend {
    fn is_send(&self) -> bool {
        true
    }
}
impl<T: ?Sized + Send> IsSend for Probe<T> {}

trait NotSend {
    fn is_send(&self) -> bool {
        false
    }
}
impl<T: ?Sized> NotSend for &Probe<T> {}

trait IsSync {
    fn is_sync(&self) -> bool {
        true
    }
}
impl<T: ?Sized + Sync> IsSync for Probe<T> {}

trait NotSync {
    fn is_sync(&self) -> bool {
        false
    }
}
impl<T: ?Sized> NotSync for &Probe<T> {}

macro_rules! traits_of {
    ($t:ty) => {
        (
            stringify!($t),
            (&Probe::<$t>(PhantomData)).is_send(),
            (&Probe::<$t>(PhantomData)).is_sync(),
        )
    };
}

#[test]
fn send_and_sync_table() {
    let actual = [
        traits_of!(Error),
        traits_of!(ErrorKind),
        traits_of!(FiberId),
        traits_of!(SchedulerHandle),
        traits_of!(Config),
        traits_of!(Builder),
        traits_of!(Iteration),
        traits_of!(FiberLocal<u32>),
        traits_of!(FiberLocal<std::rc::Rc<u32>>),
        traits_of!(fuseau::Result<u32>),
        traits_of!(Fiber<u32>),
        traits_of!(Fiber<std::sync::Arc<u32>>),
        traits_of!(AnyFiber),
        traits_of!(Scheduler),
        traits_of!(Wakeup),
        traits_of!(CancelHandle),
        traits_of!(RemoteFiber<u32>),
        traits_of!(BufPool),
        traits_of!(TimeoutEvent),
        traits_of!(TryRecvError),
        traits_of!(TrySendError<u32>),
        traits_of!(FutureEvent<std::future::Ready<u32>>),
        traits_of!(Chan<u32>),
        traits_of!(SendEvent<u32>),
        traits_of!(RecvEvent<u32>),
        traits_of!(ResourcePool<u32>),
        traits_of!(SharedChan<u32>),
        traits_of!(SharedChan<std::rc::Rc<u32>>),
        traits_of!(SharedSendEvent<u32>),
        traits_of!(SharedRecvEvent<u32>),
        traits_of!(fuseau::sync::Mutex<u32>),
        traits_of!(fuseau::sync::RwLock<u32>),
        traits_of!(fuseau::sync::Semaphore),
        traits_of!(fuseau::sync::Notify),
        traits_of!(fuseau::sync::Barrier),
        traits_of!(fuseau::sync::OnceCell<u32>),
        traits_of!(When<'static, u32>),
    ];
    let expected = [
        ("Error", true, true),
        ("ErrorKind", true, true),
        ("FiberId", true, true),
        ("SchedulerHandle", true, true),
        ("Config", true, true),
        ("Builder", true, true),
        ("Iteration", true, true),
        ("FiberLocal<u32>", true, true),
        // A `static` needs `Sync`: any value type must do.
        ("FiberLocal<std::rc::Rc<u32>>", true, true),
        ("fuseau::Result<u32>", true, true),
        // Thread-bound.
        ("Fiber<u32>", false, false),
        ("Fiber<std::sync::Arc<u32>>", false, false),
        ("AnyFiber", false, false),
        ("Scheduler", false, false),
        ("Wakeup", false, false),
        ("CancelHandle", false, false),
        // Cross-thread by design.
        ("RemoteFiber<u32>", true, true),
        ("BufPool", true, true),
        // Plain data.
        ("TimeoutEvent", true, true),
        ("TryRecvError", true, true),
        ("TrySendError<u32>", true, true),
        // As `Send` as the future it holds; it only ever runs on its fiber.
        ("FutureEvent<std::future::Ready<u32>>", true, true),
        // Thread-bound: channels and pools of one scheduler's fibers.
        ("Chan<u32>", false, false),
        ("SendEvent<u32>", false, false),
        ("RecvEvent<u32>", false, false),
        ("ResourcePool<u32>", false, false),
        // Between threads, for values that may cross them.
        ("SharedChan<u32>", true, true),
        ("SharedChan<std::rc::Rc<u32>>", false, false),
        // Its events are made and waited for by one fiber.
        ("SharedSendEvent<u32>", false, false),
        ("SharedRecvEvent<u32>", false, false),
        // Fiber primitives of one scheduler, as `Chan`.
        ("fuseau::sync::Mutex<u32>", false, false),
        ("fuseau::sync::RwLock<u32>", false, false),
        ("fuseau::sync::Semaphore", false, false),
        ("fuseau::sync::Notify", false, false),
        ("fuseau::sync::Barrier", false, false),
        ("fuseau::sync::OnceCell<u32>", false, false),
        ("When<'static, u32>", false, false),
    ];
    assert_eq!(actual, expected);
}

#[test]
fn the_probe_itself_works() {
    assert_eq!(
        [
            traits_of!(u8),
            traits_of!(std::rc::Rc<u8>),
            traits_of!(std::cell::Cell<u8>),
            traits_of!(std::sync::MutexGuard<'static, u8>),
        ],
        [
            ("u8", true, true),
            ("std::rc::Rc<u8>", false, false),
            ("std::cell::Cell<u8>", true, false),
            ("std::sync::MutexGuard<'static, u8>", false, true),
        ]
    );
}

#[test]
fn wakers_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<std::task::Waker>();
    check::<Error>();
    check::<SchedulerHandle>();
}

#[test]
fn error_is_a_std_error_and_converts_to_io() {
    fn check<T: std::error::Error + Send + Sync + Clone + 'static>() {}
    check::<Error>();
    let io = std::io::Error::from(Error::cancelled());
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
    assert!(Error::from(io).is_cancelled());
}
