//! Frames through the model's datapath, with a populated table (a SYN-proxied IPv4 TCP flow,
//! whose hits have their sequence numbers, SACK blocks and timestamps translated, and an IPv6
//! UDP flow; next hops on both ports).
//!
//! Input: records of `head` (bit 0: the port; bits 2..: seconds the clock moves first), `len`
//! (u16 LE) and the frame; at most 48 frames.
//!
//! Invariants, on two devices fed the same frames, one frame at a time and as one burst:
//! - each frame is counted exactly once: `RX_PACKETS` grows by one and exactly one of
//!   `TX_PACKETS`, `PUNTS` and `DROPS` grows by one; the per-reason counters add up to
//!   `PUNTS` and `DROPS`; `HITS + MISSES` never exceeds `RX_PACKETS`;
//! - a punted frame is on an exception ring (one descriptor per punt, the frame's bytes);
//!   a sent frame is on a wire (one per `TX_PACKETS`);
//! - a frame whose checksums are right leaves with right checksums;
//! - the burst gives exactly what the frames one at a time give (each wire, each exception
//!   ring, the counters).
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use fuzz_harness::Input;
use libfuzzer_sys::fuzz_target;
use rtl_spec::regs::counters;
use sluice_test_support::model::ModelHost as Nic;
use sluice_test_support::verify::checksums_of_ip;

const MAX_FRAMES: usize = 48;

/// What one device showed.
#[derive(Debug, PartialEq)]
struct Observed {
    tx: Vec<Vec<Vec<u8>>>,
    /// Per exception ring, in ring order.
    punts: Vec<Vec<Vec<u8>>>,
    counts: Vec<u64>,
}

fn counts(nic: &mut Nic) -> Vec<u64> {
    let regs = [
        counters::RX_PACKETS,
        counters::TX_PACKETS,
        counters::PUNTS,
        counters::DROPS,
        counters::HITS,
        counters::MISSES,
    ];
    regs.iter().map(|r| nic.counter(*r)).collect()
}

fn check_sums(nic: &mut Nic) {
    let c = counts(nic);
    let (rx, tx, punts, drops, hits, misses) = (c[0], c[1], c[2], c[3], c[4], c[5]);
    assert_eq!(rx, tx + punts + drops, "every frame counted once: {c:?}");
    assert!(hits + misses <= rx, "{c:?}");
    assert_eq!(nic.reason_sum(counters::PUNT_REASON), punts, "punt reasons add up");
    assert_eq!(nic.reason_sum(counters::DROP_REASON), drops, "drop reasons add up");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut frames: Vec<(u8, u64, &[u8])> = Vec::new();
    while !input.is_empty() && frames.len() < MAX_FRAMES {
        let (head, frame) = input.record();
        frames.push((head & 1, u64::from(head >> 2), frame));
    }

    // One frame at a time: each accounted for on its own.
    let mut one = Nic::populated();
    let mut seen = Observed {
        tx: vec![Vec::new(), Vec::new()],
        punts: vec![Vec::new(), Vec::new()],
        counts: Vec::new(),
    };
    for &(port, secs, frame) in &frames {
        one.clock.advance(secs * 1_000_000_000);
        let before = counts(&mut one);
        one.dev.receive(port, frame);
        let after = counts(&mut one);
        let d: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(d[0], 1, "one frame received: {d:?}");
        assert_eq!(d[1] + d[2] + d[3], 1, "sent, punted or dropped, exactly one: {d:?}");
        let punts = one.exceptions_by_ring();
        assert_eq!(punts.len() as u64, d[2], "a punt is a descriptor on an exception ring");
        for (_, desc, bytes) in &punts {
            assert_eq!(usize::from(desc.length.get()), frame.len(), "a punt carries the whole frame");
            assert_eq!(bytes.as_slice(), frame, "a punt carries the frame's bytes");
        }
        let mut sent = 0;
        for (p, wire) in seen.tx.iter_mut().enumerate() {
            for out in one.tx(p) {
                if checksums_of_ip(frame) == Some(Ok(())) {
                    if let Some(Err(e)) = checksums_of_ip(&out) {
                        panic!("right checksums in, wrong out ({e}): {out:02x?}");
                    }
                }
                wire.push(out);
                sent += 1;
            }
        }
        assert_eq!(sent, d[1], "a sent frame is on a wire");
        for (q, _, bytes) in punts {
            seen.punts[q as usize].push(bytes);
        }
        one.events();
        check_sums(&mut one);
    }
    seen.counts = counts(&mut one);

    // The same frames as bursts (split where the clock moves).
    let mut burst = Nic::populated();
    let mut got = Observed {
        tx: vec![Vec::new(), Vec::new()],
        punts: vec![Vec::new(), Vec::new()],
        counts: Vec::new(),
    };
    let mut start = 0;
    while start < frames.len() {
        burst.clock.advance(frames[start].1 * 1_000_000_000);
        let end = (start + 1..frames.len()).find(|&i| frames[i].1 != 0).unwrap_or(frames.len());
        let refs: Vec<(u8, &[u8])> = frames[start..end].iter().map(|&(p, _, f)| (p, f)).collect();
        burst.dev.receive_burst(&refs);
        for (q, _, bytes) in burst.exceptions_by_ring() {
            got.punts[q as usize].push(bytes);
        }
        for (p, wire) in got.tx.iter_mut().enumerate() {
            wire.extend(burst.tx(p));
        }
        burst.events();
        start = end;
    }
    got.counts = counts(&mut burst);
    check_sums(&mut burst);
    assert_eq!(seen, got, "a burst gives what the same frames one at a time give");
});
