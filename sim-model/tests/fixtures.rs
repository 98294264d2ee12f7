//! The fixture corpus of the NIC model: ordered, stateful cases in the manner of Katran's
//! test fixtures. Each case applies its setup to the device left by the cases before it, feeds
//! one input (a frame, a command, an ager sweep), and checks the verdict (the exact frame sent,
//! the punt, the drop or the completion status), the counter deltas, the events, and extra checks.
//!
//! With `SLUICE_FIXTURES_PCAP=<dir>` the inputs and the frames sent are written to
//! `<dir>/inputs.pcap` and `<dir>/outputs.pcap`; with `SLUICE_FIXTURES_RTL=<dir>` the datapath
//! cases are exported for the RTL testbench (see `corpus/runner/rtl.rs`).

mod corpus;

use corpus::{cases, runner};

#[test]
fn fixture_corpus() {
    let cases = cases::all();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    runner::run(&cases);
    println!("fixture corpus: {} cases passed", cases.len());
}
