//! The index placement of a 40-byte lookup key, computed as the hardware's hash unit does: the
//! spec's seeded CRC-32C over the key's five 64-bit words (`rtl_spec::hash::key_crc_pair_sse42`,
//! one `crc32` instruction a word), the mix and the bucket mask all compiled as one SSE4.2
//! function, so the pipeline's first stage pays one call a key. Measured: routing the model
//! through the portable `rtl_spec::hash::placement` instead cost 5% at 1M flows. The result is
//! exactly `rtl_spec::hash::placement`'s; the tests hold it to that on random keys.

use rtl_spec::formats::LookupKey;
use rtl_spec::hash::{KeyHash, Placement, fmix32, placement};

/// Where `key` may live in an index of `buckets` buckets (a power of two, at least 2).
#[inline]
pub fn key_placement(key: &LookupKey, seed_a: u32, seed_b: u32, buckets: u32) -> Placement {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, checked just above.
        return unsafe { placement_sse42(key, seed_a, seed_b, buckets) };
    }
    placement(key, seed_a, seed_b, buckets)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn placement_sse42(key: &LookupKey, seed_a: u32, seed_b: u32, buckets: u32) -> Placement {
    let (a, b) = rtl_spec::hash::key_crc_pair_sse42(seed_a, seed_b, key);
    KeyHash { a, b: fmix32(b) }.placement(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use zerocopy::FromBytes;

    proptest! {
        #[test]
        fn the_fast_placement_is_the_specs(
            bytes in prop::collection::vec(any::<u8>(), 40),
            seed_a in any::<u32>(),
            seed_b in any::<u32>(),
            log2 in 1u32..24,
        ) {
            let key = LookupKey::read_from_bytes(&bytes).unwrap();
            let buckets = 1 << log2;
            prop_assert_eq!(key_placement(&key, seed_a, seed_b, buckets), placement(&key, seed_a, seed_b, buckets));
        }
    }
}
