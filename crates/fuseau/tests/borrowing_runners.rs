//! `block_on` takes a body that borrows from its caller (issue 13): the
//! borrows stay valid for every fiber, on every way out of `block_on`,
//! because it returns (or unwinds) only after its scheduler is disposed
//! of. Drop counters and values overwritten after the call check it.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

use fuseau::{yield_now, ErrorKind};

/// Counts its drops, and records into a borrowed log when dropped.
struct Witness<'a> {
    log: &'a RefCell<Vec<&'static str>>,
    what: &'static str,
}

impl Drop for Witness<'_> {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.what);
    }
}

#[test]
fn a_body_borrows_and_mutates_caller_data() {
    let mut numbers = vec![1, 2, 3];
    let total = Cell::new(0);
    fuseau::block_on(|| {
        numbers.push(4);
        yield_now()?;
        total.set(numbers.iter().sum());
        Ok(())
    })
    .unwrap();
    numbers.push(5); // the borrow is over
    assert_eq!((numbers, total.get()), (vec![1, 2, 3, 4, 5], 10));
}

#[test]
fn the_borrowed_data_outlives_every_fiber_on_every_exit_path() {
    // Normal return, error, panic, and a fiber that is still suspended
    // (a child waiting forever) when the main fiber fails: its witness is
    // dropped, into the borrowed log, before block_on returns.
    for exit in ["ok", "error", "panic"] {
        let log = RefCell::new(Vec::new());
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            fuseau::block_on(|| {
                let _main = Witness {
                    log: &log,
                    what: "main",
                };
                log.borrow_mut().push("started");
                yield_now()?;
                match exit {
                    "ok" => Ok(()),
                    "error" => Err(fuseau::Error::from("failed")),
                    _ => panic!("the body panicked"),
                }
            })
        }));
        // Overwriting the log proves the borrow ended with block_on.
        let seen = std::mem::take(&mut *log.borrow_mut());
        assert_eq!(seen, ["started", "main"], "{exit}");
        match exit {
            "ok" => assert!(outcome.unwrap().is_ok()),
            "error" => assert_eq!(outcome.unwrap().unwrap_err().kind(), ErrorKind::Other),
            _ => assert_eq!(outcome.unwrap().unwrap_err().kind(), ErrorKind::Panicked),
        }
    }
}
