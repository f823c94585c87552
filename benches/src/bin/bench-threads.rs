//! Plain OS threads, the peer with no runtime at all: W3s's producer and
//! consumer on two `std` threads, through a bounded `crossbeam-channel`
//! (which spins briefly, then parks the thread). See `benches/README.md`.

use std::time::Instant;

use fuseau_bench::{ns_per, report, Args};

fn main() {
    let args = Args::parse();
    match args.workload.as_str() {
        "W3s" | "W3a" => w3s(args.param(0) as usize, args.param(1)),
        other => panic!("unknown workload {other}"),
    }
}

/// W3 across threads (W3s, W3a): a producer thread and a consumer thread, `n` u64
/// through `crossbeam_channel::bounded(capacity)`.
fn w3s(capacity: usize, n: u64) {
    let start = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(i).expect("send");
        }
    });
    let consumer = std::thread::spawn(move || rx.iter().fold(0u64, u64::wrapping_add));
    producer.join().expect("producer");
    let sum = consumer.join().expect("consumer");
    report(&[("ns_per_msg", ns_per(start.elapsed(), n))]);
    assert_eq!(sum, n * (n - 1) / 2);
}
