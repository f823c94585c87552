//! Runs `examples/tour.rs`: its logic in this process, and (when Cargo has
//! built it, as `cargo test` does) the example binary itself, twice, to
//! check that its output is deterministic.

#[path = "../../../examples/tour.rs"]
mod tour;

use std::path::PathBuf;
use std::process::Command;

#[test]
#[cfg_attr(miri, ignore)]
fn the_tour_runs() {
    tour::main().unwrap();
}

/// `target/<profile>/examples/tour`, next to this test's `deps` directory.
fn tour_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir
        .join("examples")
        .join(format!("tour{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_tour_binary_exits_0_with_the_same_output_every_time() {
    let Some(binary) = tour_binary() else {
        eprintln!("the tour example was not built; skipping");
        return;
    };
    let run = || {
        let output = Command::new(&binary).output().unwrap();
        assert!(
            output.status.success(),
            "{:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let first = run();
    assert!(first.contains("== 1. spawn and join =="), "{first}");
    assert!(first.contains("== 10a. channels"), "{first}");
    assert!(first.contains("== 13. spawn_from_anywhere"), "{first}");
    assert!(first.trim_end().ends_with("The tour is over."), "{first}");
    assert_eq!(first, run(), "the tour's output changed between two runs");
}
