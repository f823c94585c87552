//! Stack-overflow reports, in child processes: each case re-runs this test
//! binary with one `child_*` test selected and `FUSEAU_OVERFLOW_CHILD` set to
//! the case, and checks how the child died and what it printed. The
//! `child_*` tests do nothing when the variable is not set to their case.
#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Output;

const CHILD: &str = "FUSEAU_OVERFLOW_CHILD";

/// Runs the test `child_<case>` in a child process.
fn run_child(case: &str) -> (Output, String) {
    common::run_test_in_child(&format!("child_{case}"), &[(CHILD, case)])
}

/// `true` in the child process for `case`; then also turns core dumps off,
/// so that the abort the test expects leaves no core file behind.
fn is_child(case: &str) -> bool {
    if std::env::var_os(CHILD).is_none_or(|v| v != case) {
        return false;
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `no_core` is a valid `rlimit` for the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    true
}

/// Recurses until the stack runs out: each frame keeps an array alive
/// across the call (`black_box`), so it is neither a loop nor a tail call.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[depth as usize % 32])
}

fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap()
}

/// The `N` and `S` of `fiber … (id N) overflowed its stack of S bytes`.
fn id_and_size(stderr: &str) -> (u64, usize) {
    let line = stderr
        .lines()
        .find(|l| l.contains("overflowed its stack of"))
        .unwrap_or_else(|| panic!("no report in the child's stderr:\n{stderr}"));
    let id = line
        .split_once("(id ")
        .and_then(|(_, r)| r.split_once(')'))
        .unwrap()
        .0;
    let size = line
        .split_once("overflowed its stack of ")
        .and_then(|(_, r)| r.strip_suffix(" bytes"))
        .unwrap();
    (id.parse().unwrap(), size.parse().unwrap())
}

fn assert_killed_by(output: &Output, signal: i32, stderr: &str) {
    assert_eq!(
        output.status.signal(),
        Some(signal),
        "the child should die of signal {signal}; it ended with {:?}; stderr:\n{stderr}",
        output.status
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn child_named() {
    if !is_child("named") {
        return;
    }
    let _ = fuseau::block_on(|| {
        fuseau::Builder::new()
            .name("deep")
            .stack_size(64 * 1024)
            .spawn(|| Ok(recurse(0)))
            .join()
    });
    unreachable!("the fiber overflowed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_named_fiber_that_overflows_is_reported_by_name_id_and_stack_size() {
    let (output, stderr) = run_child("named");
    assert_killed_by(&output, libc::SIGABRT, &stderr);
    assert!(stderr.contains("\nfiber 'deep' (id "), "stderr:\n{stderr}");
    let (id, size) = id_and_size(&stderr);
    assert!(id > 0);
    assert_eq!(size, 65_536, "the usable size of a 64 KiB stack");
    assert!(
        stderr.contains("fuseau::Builder::stack_size")
            && stderr.contains("fuseau::Config::stack_size"),
        "says how to choose a bigger stack; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("fatal runtime error: stack overflow"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("thread '"), "not a thread's overflow");
}

const UNNAMED_SIZE: usize = 100_000;

#[test]
#[cfg_attr(miri, ignore)]
fn child_unnamed() {
    if !is_child("unnamed") {
        return;
    }
    let _ = fuseau::block_on(|| {
        fuseau::Builder::new()
            .stack_size(UNNAMED_SIZE)
            .spawn(|| Ok(recurse(0)))
            .join()
    });
    unreachable!("the fiber overflowed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_unnamed_fiber_that_overflows_is_reported_by_id() {
    let (output, stderr) = run_child("unnamed");
    assert_killed_by(&output, libc::SIGABRT, &stderr);
    assert!(stderr.contains("\nfiber (id "), "stderr:\n{stderr}");
    let (_, size) = id_and_size(&stderr);
    assert!(
        size >= UNNAMED_SIZE && size % page_size() == 0,
        "the size asked for, in whole pages: {size}"
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn child_config_size() {
    if !is_child("config_size") {
        return;
    }
    // The main fiber of `block_on` overflows: its stack is the
    // scheduler's default size.
    let _ = fuseau::block_on_with(fuseau::Config::new().stack_size(128 * 1024), || {
        Ok(recurse(0))
    });
    unreachable!("the fiber overflowed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_fiber_with_the_schedulers_stack_size_reports_that_size() {
    let (output, stderr) = run_child("config_size");
    assert_killed_by(&output, libc::SIGABRT, &stderr);
    assert!(stderr.contains("\nfiber 'main' (id "), "stderr:\n{stderr}");
    assert_eq!(id_and_size(&stderr).1, 128 * 1024);
}

#[test]
#[cfg_attr(miri, ignore)]
fn child_thread() {
    if !is_child("thread") {
        return;
    }
    fuseau::block_on(|| Ok(())).unwrap();
    std::thread::Builder::new()
        .name("deep-thread".into())
        .stack_size(256 * 1024)
        .spawn(|| {
            fuseau::block_on(|| Ok(())).unwrap();
            recurse(0)
        })
        .unwrap()
        .join()
        .unwrap();
    unreachable!("the thread overflowed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_thread_stack_overflow_keeps_rusts_own_report() {
    let (output, stderr) = run_child("thread");
    assert_killed_by(&output, libc::SIGABRT, &stderr);
    assert!(
        stderr.contains("thread 'deep-thread'") && stderr.contains("has overflowed its stack"),
        "Rust's report; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("fiber"), "stderr:\n{stderr}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn child_unrelated_fault() {
    if !is_child("unrelated_fault") {
        return;
    }
    let _ = fuseau::block_on(|| {
        fuseau::spawn(|| {
            let page = page_size();
            // SAFETY: a fresh anonymous mapping, which nothing else uses.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANON,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            // SAFETY: not safe at all: the page is `PROT_NONE`, so this
            // write faults, which is the point. No Rust object lives there.
            unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
            Ok(())
        })
        .join()
    });
    unreachable!("the write faulted");
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_unrelated_fault_in_a_fiber_still_kills_with_sigsegv() {
    let (output, stderr) = run_child("unrelated_fault");
    assert_killed_by(&output, libc::SIGSEGV, &stderr);
    assert!(!stderr.contains("overflowed"), "stderr:\n{stderr}");
}

#[test]
#[cfg_attr(miri, ignore)]
fn child_no_alt_stack() {
    if !is_child("no_alt_stack") {
        return;
    }
    std::thread::spawn(|| {
        // Take the thread's alternate signal stack away (Rust gave it one),
        // as for a thread Rust did not start: fuseau must give it one.
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: libc::SIGSTKSZ,
        };
        // SAFETY: `disable` is valid for the call; no handler runs now.
        let disabled = unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
        assert_eq!(disabled, 0);
        let _ = fuseau::block_on(|| {
            fuseau::Builder::new()
                .name("stackless thread")
                .stack_size(64 * 1024)
                .spawn(|| Ok(recurse(0)))
                .join()
        });
    })
    .join()
    .unwrap();
    unreachable!("the fiber overflowed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_thread_without_an_alternate_signal_stack_gets_one() {
    let (output, stderr) = run_child("no_alt_stack");
    assert_killed_by(&output, libc::SIGABRT, &stderr);
    assert!(
        stderr.contains("\nfiber 'stackless thread' (id "),
        "stderr:\n{stderr}"
    );
}
