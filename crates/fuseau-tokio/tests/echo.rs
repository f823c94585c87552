//! Runs `examples/echo.rs`: its demo and a small load in this process, and
//! (when Cargo has built it, as `cargo test` does) the example binary.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../examples/echo.rs"]
mod echo_example;

mod bounded;
mod common;

use std::process::Command;

const EXPECTED: [&str; 7] = [
    "alice got back: hello from alice",
    "alice got back: goodbye from alice",
    "bob got back: hello from bob",
    "bob got back: goodbye from bob",
    "carol got back: hello from carol",
    "carol got back: goodbye from carol",
    "the server is shut down",
];

#[test]
#[cfg_attr(miri, ignore)]
fn the_echo_demo_prints_every_reply_in_order() {
    assert_eq!(bounded::main(echo_example::demo).unwrap(), EXPECTED);
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_echo_load_completes_every_round_trip() {
    let report = bounded::main(|| echo_example::load(20, 25)).unwrap();
    assert_eq!(report.round_trips, 20 * 25);
}

#[test]
#[cfg_attr(miri, ignore)]
fn the_echo_binary_exits_by_itself_in_both_modes() {
    let Some(binary) = common::example_binary("echo") else {
        eprintln!("the echo example was not built; skipping");
        return;
    };
    let stdout = common::run_example(&binary, &[]);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), EXPECTED);
    let stdout = common::run_example(&binary, &["--load", "5", "10"]);
    assert!(stdout.contains("50 round trips in"), "{stdout}");
    let output = Command::new(&binary).arg("--bogus").output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("usage"),
        "{output:?}"
    );
}
