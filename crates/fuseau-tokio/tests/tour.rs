//! Runs `examples/tour.rs`: its logic in this process, and (when Cargo has
//! built it, as `cargo test` does) the example binary itself, twice, to
//! check that its output is deterministic.

mod common;
#[path = "../../../examples/tour.rs"]
mod tour;

#[test]
#[cfg_attr(miri, ignore)]
fn the_tour_runs() {
    tour::main().unwrap();
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_tour_binary_exits_0_with_the_same_output_every_time() {
    let Some(binary) = common::example_binary("tour") else {
        eprintln!("the tour example was not built; skipping");
        return;
    };
    let run = || common::run_example(&binary, &[]);
    let first = run();
    assert!(first.contains("== 1. spawn and join =="), "{first}");
    assert!(first.contains("== 10a. channels"), "{first}");
    assert!(first.contains("== 13. spawn_from_anywhere"), "{first}");
    assert!(first.contains("the state was saved: true"), "{first}");
    assert!(first.contains("at most 2 workers ran at once"), "{first}");
    assert!(first.contains("consumer summed 55"), "{first}");
    assert!(first.trim_end().ends_with("The tour is over."), "{first}");
    assert_eq!(first, run(), "the tour's output changed between two runs");
}
