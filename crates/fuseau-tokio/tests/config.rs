//! `main_with` and its `Config`, and what comes out of `main` when the main
//! fiber fails.

use std::hint::black_box;

use fuseau_tokio::{Builder, Config, Error, ErrorKind};

/// Recursion that uses roughly `depth` KiB of stack (more in debug builds).
fn recurse(depth: u32) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    if depth == 0 {
        return u64::from(frame[0]);
    }
    recurse(depth - 1) + u64::from(black_box(frame)[512])
}

/// ~2 MiB of frames: far beyond the default 256 KiB, well within 16 MiB.
const DEEP: u32 = 2048;

#[test]
#[cfg_attr(miri, ignore)]
fn main_with_stack_size_is_honoured() {
    let sum = fuseau_tokio::main_with(Config::new().stack_size(16 << 20), || {
        // The main fiber and its children get the configured size.
        let child = fuseau_tokio::spawn(|| Ok(recurse(DEEP)));
        Ok(recurse(DEEP) + child.join()?)
    })
    .unwrap();
    let expected: u64 = 2 * (0..=DEEP).map(|d| u64::from(d as u8)).sum::<u64>();
    assert_eq!(sum, expected);
}

/// The counterpart of the test above: with the default stack, the same
/// recursion hits the guard page, and the process dies of the signal
/// instead of corrupting memory. Runs in a child process (this test binary,
/// re-executed), since the fault kills the whole process.
#[test]
#[cfg(unix)]
#[cfg_attr(miri, ignore)]
fn the_default_stack_overflows_into_its_guard_page() {
    const CHILD: &str = "FUSEAU_TEST_OVERFLOW_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let _ = fuseau_tokio::main(|| Ok(recurse(DEEP)));
        // Only reached if the default stack was big enough after all.
        std::process::exit(0);
    }
    use std::os::unix::process::ExitStatusExt;
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_default_stack_overflows_into_its_guard_page",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        output.status.signal().is_some(),
        "expected death by signal, got {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[cfg_attr(miri, ignore)]
fn builder_stack_size_overrides_the_default() {
    let depth = fuseau_tokio::main(|| {
        Builder::new()
            .stack_size(16 << 20)
            .spawn(|| Ok(recurse(DEEP)))
            .join()
    })
    .unwrap();
    assert!(depth > 0);
}

#[test]
#[cfg_attr(miri, ignore)]
fn an_error_of_the_main_fiber_comes_out_of_main() {
    let e = fuseau_tokio::main(|| Err::<(), _>(Error::new(ErrorKind::Closed, "shut"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    assert_eq!(e.message(), "shut");

    // `?` on an `io::Error` inside the main fiber.
    let e = fuseau_tokio::main(|| {
        std::fs::File::open("/this/path/does/not/exist")?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    let io = std::io::Error::from(e);
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    // A child's failure, propagated to the main fiber.
    let e = fuseau_tokio::main_with(Config::new(), || {
        fuseau_tokio::spawn(|| Err::<(), _>(Error::from("child failed")));
        fuseau_tokio::sleep(std::time::Duration::from_secs(3600))?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e.message(), "child failed");
}

#[test]
#[cfg_attr(miri, ignore)]
fn a_panic_in_the_main_fiber_is_panicked_with_its_message() {
    let e = fuseau_tokio::main(|| -> fuseau_tokio::Result<()> { panic!("main fiber gave up") })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.is_panic());
    assert_eq!(e.message(), "main fiber gave up");

    let n = 3;
    let e = fuseau_tokio::main(move || -> fuseau_tokio::Result<()> {
        fuseau_tokio::spawn(move || -> fuseau_tokio::Result<()> { panic!("child {n} gave up") });
        fuseau_tokio::sleep(std::time::Duration::from_secs(3600))
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert_eq!(e.message(), "child 3 gave up");
}

#[test]
#[cfg_attr(miri, ignore)]
fn config_budget_of_one_still_runs_everything() {
    let total = fuseau_tokio::main_with(Config::new().budget(1), || {
        let fibers: Vec<_> = (1..=100u64)
            .map(|i| {
                fuseau_tokio::spawn(move || {
                    fuseau_tokio::yield_now()?;
                    Ok(i)
                })
            })
            .collect();
        fibers
            .into_iter()
            .map(|f| f.join())
            .sum::<fuseau_tokio::Result<u64>>()
    })
    .unwrap();
    assert_eq!(total, 5050);
}
