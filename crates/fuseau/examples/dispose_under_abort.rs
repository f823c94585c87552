//! Disposing of a scheduler whose fibers ignore their cancellation, so that
//! their stacks must be force-unwound. With the default `panic = "unwind"`,
//! the stacks are unwound and destructors run. Built with
//! `panic = "abort"`, nothing can unwind: the stacks are leaked, with a
//! message on stderr, and the process goes on (CI runs it both ways):
//!
//! ```text
//! cargo run -p fuseau --example dispose_under_abort
//! RUSTFLAGS="-C panic=abort" cargo run -p fuseau --example dispose_under_abort --target-dir target/abort
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuseau::{Builder, Config, EventLoop, Iteration, Scheduler, Unpark};

struct Manual;

struct Nothing;

impl Unpark for Nothing {
    fn unpark(&self) {}
}

impl EventLoop for Manual {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        Arc::new(Nothing)
    }
}

struct Witness(Rc<Cell<u32>>);

impl Drop for Witness {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn main() {
    let dropped = Rc::new(Cell::new(0));
    let sched = Scheduler::new(Manual, Config::new());
    for _ in 0..3 {
        let d = dropped.clone();
        Builder::new()
            .spawn_on(&sched, move || -> fuseau::Result<()> {
                let _witness = Witness(d);
                loop {
                    // Ignores its cancellation: only a forced unwind ends it.
                    let _ = fuseau::sleep(Duration::from_secs(3600));
                }
            })
            .expect("an active scheduler");
    }
    while sched.run_iteration() == Iteration::Busy {}
    sched.dispose();
    let expected = if cfg!(panic = "abort") { 0 } else { 3 };
    println!(
        "disposed; {} of 3 destructors ran (panic = {})",
        dropped.get(),
        if cfg!(panic = "abort") {
            "abort"
        } else {
            "unwind"
        }
    );
    assert_eq!(dropped.get(), expected);
}
