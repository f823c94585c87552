//! Inheritable fiber-locals: children get a clone of their parent's value at
//! spawn (`FiberLocal::inheritable`); plain keys are not inherited.

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use common::{Log, Sim};
use fuseau::{AnyFiber, FiberId, FiberLocal};
use proptest::prelude::*;

static TRACE: FiberLocal<String> = FiberLocal::inheritable(|| String::from("init"));
static PLAIN: FiberLocal<u32> = FiberLocal::new(|| 0);
static DEPTH: FiberLocal<u32> = FiberLocal::inheritable(|| 0);
static LIST: FiberLocal<Vec<u32>> = FiberLocal::inheritable(Vec::new);

thread_local! {
    /// How many times `counted_init` ran on this thread (each test runs on
    /// its own thread).
    static INIT_CALLS: Cell<usize> = const { Cell::new(0) };
}

fn counted_init() -> u32 {
    INIT_CALLS.with(|c| c.set(c.get() + 1));
    100
}

static COUNTED: FiberLocal<u32> = FiberLocal::inheritable(counted_init);

#[test]
fn constructors_say_whether_a_key_is_inherited() {
    assert!(TRACE.is_inheritable());
    assert!(!PLAIN.is_inheritable());
    let text = format!("{TRACE:?}");
    assert!(text.contains("inheritable: true"), "{text}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn children_and_grandchildren_inherit() {
    let sim = Sim::new();
    let log = Log::new();
    let l = log.clone();
    sim.block_on(move || {
        TRACE.set("req-1".into());
        DEPTH.set(1);
        let l1 = l.clone();
        let child = fuseau::spawn(move || {
            l1.push(format!("child {} {}", TRACE.get(), DEPTH.get()));
            DEPTH.set(DEPTH.get() + 1);
            let l2 = l1.clone();
            let grandchild = fuseau::spawn(move || {
                l2.push(format!("grandchild {} {}", TRACE.get(), DEPTH.get()));
                Ok(())
            });
            grandchild.join()
        });
        child.join()?;
        assert_eq!((TRACE.get(), DEPTH.get()), ("req-1".into(), 1));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["child req-1 1", "grandchild req-1 2"]);
}

#[test]
#[cfg_attr(miri, ignore)]
fn parent_and_child_have_separate_copies() {
    let sim = Sim::new();
    sim.block_on(|| {
        LIST.set(vec![1]);
        let child = fuseau::spawn(|| {
            // The parent changed its value after the spawn: not seen here.
            fuseau::yield_now()?;
            let seen = LIST.get();
            LIST.set(vec![9, 9]);
            Ok((seen, LIST.get()))
        });
        LIST.set(vec![1, 2]);
        let (seen, own) = child.join()?;
        assert_eq!(seen, [1]);
        assert_eq!(own, [9, 9]);
        // …and the child's change is not seen by the parent.
        assert_eq!(LIST.get(), [1, 2]);
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn plain_keys_are_not_inherited() {
    let sim = Sim::new();
    sim.block_on(|| {
        PLAIN.set(7);
        TRACE.set("mine".into());
        let child = fuseau::spawn(|| Ok((PLAIN.get(), TRACE.get())));
        assert_eq!(child.join()?, (0, "mine".into()));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_unset_parent_value_gives_the_child_init_computed_in_the_child() {
    let sim = Sim::new();
    sim.block_on(|| {
        let child = fuseau::spawn(|| {
            let before = INIT_CALLS.with(Cell::get);
            Ok((before, COUNTED.get(), INIT_CALLS.with(Cell::get)))
        });
        // The parent never used the key: nothing was computed for it.
        assert_eq!(child.join()?, (0, 100, 1));
        // Once the parent has a value (here `init()`), children clone it.
        assert_eq!(COUNTED.get(), 100);
        assert_eq!(INIT_CALLS.with(Cell::get), 2);
        let child = fuseau::spawn(|| Ok(COUNTED.get()));
        assert_eq!(child.join()?, 100);
        assert_eq!(INIT_CALLS.with(Cell::get), 2, "cloned, not init()");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_value_scopes_what_children_inherit() {
    let sim = Sim::new();
    sim.block_on(|| {
        TRACE.set("outer".into());
        let (inside, value_inside) = TRACE.with_value("scoped".into(), || {
            let child = fuseau::spawn(|| {
                // Still running after the parent's scope ended.
                fuseau::yield_now()?;
                Ok(TRACE.get())
            });
            (child, TRACE.get())
        });
        assert_eq!(value_inside, "scoped");
        let after = fuseau::spawn(|| Ok(TRACE.get()));
        assert_eq!(inside.join()?, "scoped", "kept after the scope ended");
        assert_eq!(after.join()?, "outer");
        assert_eq!(TRACE.get(), "outer");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn with_value_on_an_unset_key_scopes_children_too() {
    let sim = Sim::new();
    sim.block_on(|| {
        let inside = DEPTH.with_value(5, || fuseau::spawn(|| Ok(DEPTH.get())));
        let after = fuseau::spawn(|| Ok(DEPTH.get()));
        assert_eq!((inside.join()?, after.join()?), (5, 0));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn root_fibers_start_with_init() {
    let sim = Sim::new();
    let first = sim.spawn(|| {
        TRACE.set("first".into());
        fuseau::sleep(Duration::from_secs(1))?;
        Ok(TRACE.get())
    });
    sim.run_until_idle();
    assert!(!first.is_done());
    // Spawned from outside any fiber: no parent, so `init()`.
    let second = sim.spawn(|| Ok(TRACE.get()));
    sim.run_until(|| first.is_done() && second.is_done());
    assert_eq!(first.join().unwrap(), "first");
    assert_eq!(second.join().unwrap(), "init");
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_from_anywhere_starts_with_init() {
    let result = fuseau::block_on(|| {
        TRACE.set("main".into());
        let handle = fuseau::Scheduler::current().handle();
        let remote =
            std::thread::spawn(move || fuseau::spawn_from_anywhere(&handle, || Ok(TRACE.get())))
                .join()
                .expect("the spawning thread");
        let value = remote.join()?;
        Ok((value, TRACE.get()))
    });
    assert_eq!(result.unwrap(), ("init".into(), "main".into()));
}

#[test]
#[cfg_attr(miri, ignore)]
fn spawn_as_child_of_copies_the_named_parents_value() {
    let sim = Sim::new();
    let parent = sim.spawn(|| {
        TRACE.set("parent".into());
        fuseau::sleep(Duration::from_secs(1))
    });
    sim.run_until_idle();
    assert!(!parent.is_done());
    // From outside any fiber: the child gets `parent`'s value.
    let child = fuseau::spawn_as_child_of(&parent, || Ok(TRACE.get()));
    sim.run_until(|| parent.is_done());
    assert_eq!(child.join().unwrap(), "parent");
    parent.join().unwrap();
}

thread_local! {
    /// The fibers in which `Tracked` values were dropped, in order.
    static DROPS: RefCell<Vec<Option<FiberId>>> = const { RefCell::new(Vec::new()) };
}

/// Each clone is a distinct value; its drop records the fiber it ran on.
struct Tracked(u32);

impl Clone for Tracked {
    fn clone(&self) -> Tracked {
        Tracked(self.0 + 1)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let fiber = AnyFiber::try_current().ok().map(|f| f.id());
        DROPS.with(|d| d.borrow_mut().push(fiber));
    }
}

static TRACKED: FiberLocal<Option<Rc<Tracked>>> = FiberLocal::inheritable(|| None);
static OWNED: FiberLocal<Tracked> = FiberLocal::inheritable(|| Tracked(0));

fn drops() -> Vec<Option<FiberId>> {
    DROPS.with(|d| d.borrow().clone())
}

#[test]
#[cfg_attr(miri, ignore)]
fn inherited_values_are_dropped_on_the_childs_stack() {
    let sim = Sim::new();
    let main_id = Rc::new(Cell::new(None));
    let m = main_id.clone();
    sim.block_on(move || {
        m.set(Some(AnyFiber::current().id()));
        OWNED.set(Tracked(10));
        assert!(drops().is_empty());
        let child = fuseau::spawn(|| Ok((AnyFiber::current().id(), OWNED.get().0)));
        // Another child, which also inherits (and drops) a copy.
        let waiter = fuseau::spawn(fuseau::yield_now);
        let waiter_id = waiter.id();
        waiter.join()?;
        // The child's body returned: its copy is gone (on its stack); the
        // parent's value is still there.
        assert!(child.is_done());
        let (child_id, seen) = child.join()?;
        // The child read a clone of its copy (a clone of the parent's).
        assert_eq!(seen, 12);
        // The temporary of the child's `get`, then the child's own copy,
        // both on the child's stack; then the other child's copy, on its.
        assert_eq!(drops(), [Some(child_id), Some(child_id), Some(waiter_id)]);
        Ok(())
    })
    .unwrap();
    // The parent's value dropped on the parent's stack, at the end.
    assert_eq!(drops().last().copied().flatten(), main_id.get());
    assert_eq!(drops().len(), 4);
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_inherited_rc_is_shared_as_rc_clones_are() {
    let sim = Sim::new();
    sim.block_on(|| {
        let shared = Rc::new(Tracked(1));
        TRACKED.set(Some(shared.clone()));
        let child = fuseau::spawn(|| Ok(TRACKED.get().map(|t| t.0)));
        assert_eq!(child.join()?, Some(1), "Rc::clone, not Tracked::clone");
        assert_eq!(Rc::strong_count(&shared), 2, "the child's copy is gone");
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_child_that_never_runs_drops_its_inherited_values() {
    let sim = Sim::new();
    sim.block_on(|| {
        let child = fuseau::Builder::new()
            .propagate_cancel_to_parent(false)
            .spawn(|| {
                OWNED.set(Tracked(0));
                let doomed = fuseau::Builder::new()
                    .propagate_cancel_to_parent(false)
                    .spawn(|| Ok(OWNED.get().0));
                AnyFiber::current().cancel();
                // Spawned from a cancelled fiber: cancelled, never runs.
                let late = fuseau::spawn(|| Ok(OWNED.get().0));
                let outcomes = (doomed.join(), late.join());
                Ok((outcomes.0.is_err(), outcomes.1.is_err()))
            });
        let _ = child.join();
        Ok(())
    })
    .unwrap();
    // Every value made was dropped: the parent's and the two copies.
    assert_eq!(drops().len(), 3);
}

static OTHER: FiberLocal<u32> = FiberLocal::new(|| 0);

/// A `Clone` that reads (and writes) other fiber-locals.
#[derive(Debug, PartialEq)]
struct Stamped {
    cloned_with: u32,
}

impl Clone for Stamped {
    fn clone(&self) -> Stamped {
        let other = OTHER.get();
        OTHER.set(other + 1);
        // A key of the same kind, read during the copy.
        let depth = DEPTH.get();
        Stamped {
            cloned_with: other * 100 + depth,
        }
    }
}

static STAMPED: FiberLocal<Stamped> = FiberLocal::inheritable(|| Stamped { cloned_with: 0 });

#[test]
#[cfg_attr(miri, ignore)]
fn clone_runs_in_the_parent_and_may_use_fiber_locals() {
    let sim = Sim::new();
    sim.block_on(|| {
        OTHER.set(4);
        DEPTH.set(2);
        STAMPED.set(Stamped { cloned_with: 1 });
        let child = fuseau::spawn(|| {
            // The child's own `OTHER`, untouched by the copy.
            let child_other = STAMPED.with_value(Stamped { cloned_with: 7 }, || OTHER.get());
            Ok((child_other, DEPTH.get()))
        });
        // The copy ran in the parent: the parent's `OTHER` was bumped.
        assert_eq!(OTHER.get(), 5);
        assert_eq!(child.join()?, (0, 2));
        Ok(())
    })
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn clone_sees_the_parents_values() {
    let sim = Sim::new();
    sim.block_on(|| {
        OTHER.set(3);
        DEPTH.set(9);
        STAMPED.set(Stamped { cloned_with: 1 });
        // `get` clones too: in the child, with the child's `OTHER` (0) and
        // inherited `DEPTH` (9).
        let child = fuseau::spawn(|| Ok(STAMPED.get()));
        assert_eq!(child.join()?.cloned_with, 9);
        // `get` in the parent: its own `OTHER` (4 after the spawn's copy).
        assert_eq!(STAMPED.get().cloned_with, 409);
        Ok(())
    })
    .unwrap();
}

#[derive(Debug)]
struct Explosive;

impl Clone for Explosive {
    fn clone(&self) -> Explosive {
        panic!("no copies");
    }
}

static EXPLOSIVE: FiberLocal<Option<Explosive>> = FiberLocal::inheritable(|| None);

#[test]
#[cfg_attr(miri, ignore)]
fn a_panicking_clone_makes_the_spawn_panic_in_the_parent() {
    let sim = Sim::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    sim.block_on(move || {
        OWNED.set(Tracked(0));
        EXPLOSIVE.set(Some(Explosive));
        let dropped_before = drops().len();
        let r2 = r.clone();
        let spawned = catch_unwind(AssertUnwindSafe(|| {
            fuseau::spawn(move || {
                r2.set(true);
                Ok(())
            })
        }));
        let message = *spawned
            .expect_err("the spawn panicked")
            .downcast::<&str>()
            .expect("the clone's panic");
        assert_eq!(message, "no copies");
        // The copy made before the panic (`OWNED`'s, set first) was
        // dropped as the spawn unwound.
        assert_eq!(drops().len(), dropped_before + 1);
        // The parent is unharmed, and can still spawn once the value is gone.
        EXPLOSIVE.set(None);
        fuseau::spawn(|| Ok(())).join()?;
        assert_eq!(OWNED.get().0, 1);
        Ok(())
    })
    .unwrap();
    assert!(!ran.get(), "the child was never created");
}

#[test]
#[cfg_attr(miri, ignore)]
fn many_keys_and_plain_values_mixed() {
    let sim = Sim::new();
    sim.block_on(|| {
        PLAIN.set(1);
        TRACE.set("t".into());
        DEPTH.set(3);
        LIST.set(vec![4]);
        let child = fuseau::spawn(|| Ok((PLAIN.get(), TRACE.get(), DEPTH.get(), LIST.get())));
        assert_eq!(child.join()?, (0, "t".into(), 3, vec![4]));
        Ok(())
    })
    .unwrap();
}

/// One step of a fiber in the model: set the key, or spawn a child that
/// runs its own steps (inheriting), recording what it sees.
#[derive(Clone, Debug)]
enum Step {
    Set(u32),
    Scoped(u32, Vec<Step>),
    Spawn(Vec<Step>),
    Read,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let leaf = prop_oneof![(0..50u32).prop_map(Step::Set), Just(Step::Read)];
    let step = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (0..50u32).prop_map(Step::Set),
            Just(Step::Read),
            ((0..50u32), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(v, s)| Step::Scoped(v, s)),
            prop::collection::vec(inner, 0..4).prop_map(Step::Spawn),
        ]
    });
    prop::collection::vec(step, 0..6)
}

static MODEL_KEY: FiberLocal<u32> = FiberLocal::inheritable(|| 1000);

/// Runs `steps` in the running fiber, pushing each read to `log`; children
/// are joined at once, so the log's order is the model's.
fn run_steps(steps: &[Step], log: &Rc<RefCell<Vec<u32>>>) -> fuseau::Result<()> {
    for step in steps {
        match step {
            Step::Set(v) => MODEL_KEY.set(*v),
            Step::Read => log.borrow_mut().push(MODEL_KEY.get()),
            Step::Scoped(v, inner) => MODEL_KEY.with_value(*v, || run_steps(inner, log))?,
            Step::Spawn(inner) => {
                let (inner, l) = (inner.clone(), log.clone());
                fuseau::spawn(move || run_steps(&inner, &l)).join()?;
            }
        }
    }
    Ok(())
}

/// The model: a child starts with a copy of its parent's current value.
fn model(steps: &[Step], value: &mut u32, log: &mut Vec<u32>) {
    for step in steps {
        match step {
            Step::Set(v) => *value = *v,
            Step::Read => log.push(*value),
            Step::Scoped(v, inner) => {
                let saved = *value;
                *value = *v;
                model(inner, value, log);
                *value = saved;
            }
            Step::Spawn(inner) => model(inner, &mut value.clone(), log),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    #[cfg_attr(miri, ignore)]
    fn inheritance_matches_the_model(steps in steps()) {
        let sim = Sim::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let (s, l) = (steps.clone(), log.clone());
        sim.block_on(move || run_steps(&s, &l)).unwrap();
        let mut expected = Vec::new();
        model(&steps, &mut 1000, &mut expected);
        prop_assert_eq!(log.take(), expected);
    }
}
