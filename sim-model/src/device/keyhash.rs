//! The index placement of a 40-byte lookup key, computed as the hardware's hash unit does: the
//! spec's seeded CRC-32C over the key's five 64-bit words, one `crc32` instruction each where the
//! CPU has SSE4.2 (the general-purpose routine in `rtl_spec::hash` is made for long buffers and
//! costs several times more on 40 bytes). The result is exactly `rtl_spec::hash::placement`'s;
//! the tests hold it to that on random keys.

use rtl_spec::formats::LookupKey;
use rtl_spec::hash::{Placement, fmix32, placement};
use zerocopy::IntoBytes;

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
    use core::arch::x86_64::_mm_crc32_u64;
    let bytes = key.as_bytes();
    let crc = |seed: u32| -> u32 {
        let mut c = u64::from(!seed);
        for word in bytes.chunks_exact(8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            c = _mm_crc32_u64(c, w);
        }
        !(c as u32)
    };
    let ha = crc(seed_a);
    let hb = fmix32(crc(seed_b));
    let mask = buckets.wrapping_sub(1);
    let bucket_a = ha & mask;
    let mut bucket_b = hb & mask;
    if bucket_b == bucket_a {
        bucket_b = bucket_a ^ 1;
    }
    Placement { bucket_a, bucket_b, sig: (ha >> 16) as u16 }
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
