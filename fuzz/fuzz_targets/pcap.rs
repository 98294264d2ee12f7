//! Capture files: `sim_model::port::PcapSource` (classic pcap and pcapng, what `sluice
//! replay` and `sluice sim --port pcap:` read) on any bytes, and the `PcapPort` over it.
//!
//! Input: the file's bytes (written to a file of this process's own, as the source reads a
//! path).
//!
//! Invariants:
//! - opening gives a source or an error naming the file, never a panic;
//! - reading ends (at the end or an error naming the file), every frame is at most the file's
//!   size, there are at most as many frames as 16-byte record headers fit in the file, and no
//!   more frames are counted as cut short than were read; after the end the source stays at
//!   the end;
//! - the port gives the same frames, with the same timestamps, as the source one at a time,
//!   in bursts of any size, and then the same error if there was one.
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use libfuzzer_sys::fuzz_target;
use sim_model::port::{PcapPort, PcapSource, Port, RxBurst, RxFrame};
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir =
            if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        dir.join(format!("sluice-fuzz-pcap-{}.pcap", std::process::id()))
    })
}

fn named(e: &std::io::Error) {
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("pcap: {}", path().display())),
        "an error not naming the file: {shown}"
    );
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).expect("writing the capture");
    let mut source = match PcapSource::open(path()) {
        Ok(s) => s,
        Err(e) => return named(&e),
    };
    let mut frames: Vec<RxFrame> = Vec::new();
    let ended = loop {
        match source.next_frame() {
            Ok(Some(f)) => {
                assert!(
                    f.data.len() <= data.len(),
                    "a frame of {} bytes from a {}-byte file",
                    f.data.len(),
                    data.len()
                );
                frames.push(f);
                assert!(frames.len() <= data.len() / 16 + 1, "more frames than record headers fit");
            }
            Ok(None) => break None,
            Err(e) => {
                named(&e);
                break Some(e.to_string());
            }
        }
    };
    assert!(source.truncated_frames() <= frames.len() as u64);
    if ended.is_none() {
        assert!(matches!(source.next_frame(), Ok(None)), "the end is not the end");
    }

    // One burst for the three ports, as the model keeps one from burst to burst: it grows to
    // the largest burst and is cleared, not reallocated (nor zeroed) for every port.
    let mut burst = RxBurst::default();
    for max in [1, 7, 32] {
        let mut port = PcapPort::new(Some(PcapSource::open(path()).expect("opened once, opens again")), None);
        let mut got: Vec<RxFrame> = Vec::new();
        let mut error = None;
        while !port.is_exhausted() {
            burst.clear();
            match port.recv_burst(&mut burst, max) {
                Ok(n) => {
                    assert_eq!(n, burst.len());
                    assert!(n <= max);
                    got.extend(
                        burst.iter().map(|f| RxFrame { data: f.data.to_vec(), timestamp_ns: f.timestamp_ns }),
                    );
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        assert!(got == frames, "the port (bursts of {max}) gives other frames than the source");
        assert_eq!(error, ended, "the port (bursts of {max}) ends otherwise than the source");
    }
});
