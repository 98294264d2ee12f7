//! A connection's packet and byte counts in 24 bytes instead of 32: per direction one 96-bit
//! word of three `u32`s, 40 bits of packets below 56 bits of bytes.
//!
//! The widths are sized by what one connection can carry: 2^40 packets last 30 hours at
//! 10 Mpps, 2^56 bytes 67 days at 100 Gb/s, both beyond any connection this balancer
//! holds. A count that would pass its width stays at its greatest value instead of wrapping:
//! it never carries into its neighbour, and it never goes back (the offload policy's packet
//! threshold and `sluice flows` read it as "at least"). `u32` words keep the record's
//! alignment at 4, so the record carries no padding for them.

/// The most packets one direction counts (40 bits).
pub const MAX_PACKETS: u64 = (1 << PACKET_BITS) - 1;
/// The most bytes one direction counts (56 bits).
pub const MAX_BYTES: u64 = (1 << 56) - 1;
const PACKET_BITS: u32 = 40;

/// Packets and bytes (IP length) of the original and the reply direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts([[u32; 3]; 2]);

impl Counts {
    fn word(&self, d: usize) -> u128 {
        let [lo, mid, hi] = self.0[d];
        u128::from(lo) | u128::from(mid) << 32 | u128::from(hi) << 64
    }

    fn set_word(&mut self, d: usize, w: u128) {
        // Truncations on purpose: the word's three 32-bit parts.
        self.0[d] = [w as u32, (w >> 32) as u32, (w >> 64) as u32];
    }

    /// Packets of direction `d` (0 original, 1 reply).
    pub(super) fn packets(&self, d: usize) -> u64 {
        (self.word(d) as u64) & MAX_PACKETS
    }

    /// Bytes of direction `d`.
    pub(super) fn bytes(&self, d: usize) -> u64 {
        (self.word(d) >> PACKET_BITS) as u64
    }

    /// Adds `packets` and `bytes` to direction `d`, each staying at its greatest value.
    pub(super) fn add(&mut self, d: usize, packets: u64, bytes: u64) {
        let p = self.packets(d).saturating_add(packets).min(MAX_PACKETS);
        let b = self.bytes(d).saturating_add(bytes).min(MAX_BYTES);
        self.set_word(d, u128::from(p) | u128::from(b) << PACKET_BITS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_count_keeps_its_width_and_stays_at_its_greatest_value() {
        let mut c = Counts::default();
        c.add(0, MAX_PACKETS - 1, MAX_BYTES - 10);
        assert_eq!((c.packets(0), c.bytes(0)), (MAX_PACKETS - 1, MAX_BYTES - 10));
        assert_eq!((c.packets(1), c.bytes(1)), (0, 0), "the other direction is untouched");
        // Past the width: the count stays at its greatest value, and nothing carries into the
        // bytes above the packets.
        c.add(0, 5, 9);
        assert_eq!((c.packets(0), c.bytes(0)), (MAX_PACKETS, MAX_BYTES - 1));
        c.add(0, u64::MAX, u64::MAX);
        assert_eq!((c.packets(0), c.bytes(0)), (MAX_PACKETS, MAX_BYTES));
        c.add(1, 1, 0);
        assert_eq!((c.packets(1), c.bytes(1)), (1, 0));
        assert_eq!((c.packets(0), c.bytes(0)), (MAX_PACKETS, MAX_BYTES), "the full direction stays");
        // Every bit of each width is its own.
        let mut c = Counts::default();
        c.add(1, 1 << 39, 1 << 55);
        assert_eq!((c.packets(1), c.bytes(1)), (1 << 39, 1 << 55));
        c.add(1, (1 << 39) - 1, (1 << 55) - 1);
        assert_eq!((c.packets(1), c.bytes(1)), (MAX_PACKETS, MAX_BYTES));
        assert_eq!((c.packets(0), c.bytes(0)), (0, 0));
    }

    proptest! {
        /// Any sequence of additions reads back as the saturated sums of a pair of `u64`s.
        #[test]
        fn the_packed_counts_agree_with_saturated_sums(adds in prop::collection::vec(
            (0usize..2, prop_oneof![0u64..2000, Just(MAX_PACKETS), any::<u64>()],
             prop_oneof![0u64..3_000_000, Just(MAX_BYTES), any::<u64>()]), 0..40)) {
            let mut c = Counts::default();
            let mut model = [[0u64; 2]; 2];
            for (d, p, b) in adds {
                c.add(d, p, b);
                model[d][0] = model[d][0].saturating_add(p).min(MAX_PACKETS);
                model[d][1] = model[d][1].saturating_add(b).min(MAX_BYTES);
                for (e, m) in model.iter().enumerate() {
                    prop_assert_eq!([c.packets(e), c.bytes(e)], *m);
                }
            }
        }
    }
}
