//! The RTL fast path (`rtl/`) passes the model's fixture corpus under Verilator, byte for byte,
//! and sustains one 64-byte frame per cycle at table-memory latencies 50 and 200:
//! `scripts/rtl-test` does all of it (and a yosys estimate) and says why when it fails.
//! `scripts/test-all` installs Verilator and Yosys, so this runs with the rest of the tests.
//! It runs the script with `--elaborate` (yosys reads and elaborates the RTL, in seconds, instead
//! of the minutes-long gate estimate); `SLUICE_RTL_TEST_ARGS` replaces the options (an empty
//! value runs the whole estimate).

use std::process::Command;

#[test]
fn rtl_passes_the_fixture_corpus_at_one_packet_per_cycle() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rtl-test");
    let args = std::env::var("SLUICE_RTL_TEST_ARGS").unwrap_or_else(|_| "--elaborate".to_string());
    let out = Command::new(script).args(args.split_whitespace()).output().expect("run scripts/rtl-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "scripts/rtl-test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("rtl-test: passed"), "{stdout}");
    // Every exported case passed at both latencies, and none failed.
    for lat in [50, 200] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("rtl fixtures (latency {lat}):")))
            .unwrap_or_else(|| panic!("no result at latency {lat}:\n{stdout}"));
        assert!(line.ends_with(" 0 failed"), "{line}");
    }
}
