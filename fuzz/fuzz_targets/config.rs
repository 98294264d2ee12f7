//! The configuration file: `sluice::config::parse` on any text (what `sluice run`,
//! `sluice config check` and a reload read).
//!
//! Input: the file's bytes (inputs that are not UTF-8 are what `load` refuses before parsing,
//! and are skipped).
//!
//! Invariants:
//! - an error is one line (no control character, whatever the file holds), names the origin
//!   first, has a message, and a line number, when it gives one, within the file;
//! - a configuration that parses has what the rest of the program relies on: its origin, one
//!   to `MAX_PORTS` ports, each backend once in its service, and it serializes (`--json`);
//! - parsing is deterministic: the same text gives the same result.
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use libfuzzer_sys::fuzz_target;
use sluice::config;

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let first = config::parse(text, ORIGIN);
    match &first {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.chars().any(char::is_control), "an error on more than one line: {shown:?}");
            assert!(shown.starts_with(ORIGIN), "the error names the file first: {shown:?}");
            assert!(!e.message().is_empty(), "an error without a message: {shown:?}");
            if let Some(line) = e.line() {
                let lines = text.lines().count().max(1) + 1;
                assert!((1..=lines).contains(&line), "line {line} of a {lines}-line file: {shown:?}");
            }
        }
        Ok(cfg) => {
            assert_eq!(cfg.origin, ORIGIN);
            assert!((1..=config::MAX_PORTS).contains(&cfg.ports.len()), "{} ports", cfg.ports.len());
            for s in &cfg.services {
                for (i, b) in s.backends.iter().enumerate() {
                    assert!(
                        s.backends[..i].iter().all(|o| o.address != b.address),
                        "backend {} twice",
                        b.address
                    );
                }
            }
            serde_json::to_string(cfg).expect("a configuration serializes");
        }
    }
    assert_eq!(first, config::parse(text, ORIGIN), "the same text, another result");
});
