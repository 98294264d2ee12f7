#![doc = include_str!("../doc/hash.md")]

use crate::formats::{FlowTuple, LookupKey};
use zerocopy::{FromBytes, IntoBytes};

/// The reflected CRC-32C polynomial.
pub const CRC32C_POLY_REFLECTED: u32 = 0x82F6_3B78;

/// The contract's hash, computed one bit at a time exactly as the text above defines it. This is
/// the reference: [`hash`] must agree with it on every input.
pub fn hash_reference(seed: u32, data: &[u8]) -> u32 {
    let mut reg = !seed;
    for &byte in data {
        reg ^= u32::from(byte);
        for _ in 0..8 {
            let lsb = reg & 1;
            reg >>= 1;
            if lsb != 0 {
                reg ^= CRC32C_POLY_REFLECTED;
            }
        }
    }
    !reg
}

/// The contract's hash, fast (hardware CRC32 instructions where the CPU has them).
#[inline]
pub fn hash(seed: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(seed, data)
}

/// The contract's hash of a lookup key: exactly `hash(seed, key.as_bytes())`, computed as the
/// hardware's hash unit does, over the key's five 64-bit words (one `crc32` instruction each
/// where the CPU has SSE4.2). [`hash`]'s general routine is made for long buffers and costs
/// several times more on 40 bytes.
#[inline]
pub fn key_crc(seed: u32, key: &LookupKey) -> u32 {
    key_crc_pair(seed, seed, key).0
}

/// [`key_crc`] with two seeds at once: the two CRC chains are independent, so they run side
/// by side (a `crc32` has a latency of three cycles and a throughput of one). Every placement,
/// on both sides of the contract, goes through this.
#[inline]
pub fn key_crc_pair(seed_a: u32, seed_b: u32, key: &LookupKey) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, checked just above; the function needs nothing else.
        #[allow(unsafe_code)]
        return unsafe { key_crc_pair_sse42(seed_a, seed_b, key) };
    }
    let bytes = key.as_bytes();
    (hash(seed_a, bytes), hash(seed_b, bytes))
}

/// [`key_crc_pair`] where the caller already runs with SSE4.2 (the model's placement calls it
/// from its own SSE4.2 function, so the whole placement compiles as one).
///
/// # Safety
///
/// The CPU must have SSE4.2: callable without `unsafe` only from a function compiled with the
/// feature, and otherwise only once `is_x86_feature_detected!("sse4.2")` said so.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
pub fn key_crc_pair_sse42(seed_a: u32, seed_b: u32, key: &LookupKey) -> (u32, u32) {
    use core::arch::x86_64::_mm_crc32_u64;
    let (mut a, mut b) = (u64::from(!seed_a), u64::from(!seed_b));
    for word in key.as_bytes().chunks_exact(8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        a = _mm_crc32_u64(a, w);
        b = _mm_crc32_u64(b, w);
    }
    (!(a as u32), !(b as u32))
}

/// The first multiplier of [`fmix32`].
pub const FMIX32_C1: u32 = 0x85EB_CA6B;
/// The second multiplier of [`fmix32`].
pub const FMIX32_C2: u32 = 0xC2B2_AE35;

/// MurmurHash3's 32-bit finalizer: a bijective, non-linear mix (two multipliers in logic).
#[inline]
pub const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(FMIX32_C1);
    h ^= h >> 13;
    h = h.wrapping_mul(FMIX32_C2);
    h ^= h >> 16;
    h
}

/// Where a key may live in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// First choice.
    pub bucket_a: u32,
    /// Second choice (never equal to the first when there are at least two buckets).
    pub bucket_b: u32,
    /// Signature stored in the slot.
    pub sig: u16,
}

/// A key's two hashes before they are reduced to buckets: `a = hash(SEED_A, k)` and
/// `b = fmix32(hash(SEED_B, k))`. The host computes them once per tuple (on a connection's
/// first packet) and carries them, so the connection table, the shadow index and every cuckoo
/// move reuse them instead of hashing the key again; any table size reduces them with
/// [`KeyHash::placement`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyHash {
    /// `hash(SEED_A, k)`: bucket_a and the signature come from it.
    pub a: u32,
    /// `fmix32(hash(SEED_B, k))`: bucket_b comes from it.
    pub b: u32,
}

impl KeyHash {
    /// Where the key may live in an index of `buckets` buckets (a power of two, at least 2).
    #[inline]
    pub fn placement(self, buckets: u32) -> Placement {
        debug_assert!(buckets.is_power_of_two() && buckets >= 2);
        let mask = buckets.wrapping_sub(1);
        let bucket_a = self.a & mask;
        let mut bucket_b = self.b & mask;
        if bucket_b == bucket_a {
            bucket_b = bucket_a ^ 1;
        }
        Placement { bucket_a, bucket_b, sig: (self.a >> 16) as u16 }
    }
}

/// A table's two placement seeds (`FLOW_TABLE` registers `SEED_A`, `SEED_B`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seeds {
    /// `SEED_A`.
    pub a: u32,
    /// `SEED_B`.
    pub b: u32,
}

impl Seeds {
    /// A key's two hashes with these seeds.
    #[inline]
    pub fn key_hash(self, key: &LookupKey) -> KeyHash {
        // CRC-32C is linear: hash(A, k) ^ hash(B, k) is the same for every key of one length, so
        // without the mix every key's second bucket would be `bucket_a ^ constant` and no cuckoo
        // chain could ever form.
        let (a, b) = key_crc_pair(self.a, self.b, key);
        KeyHash { a, b: fmix32(b) }
    }
}

/// Computes a key's buckets and signature. `buckets` must be a power of two, at least 2.
#[inline]
pub fn placement(key: &LookupKey, seed_a: u32, seed_b: u32, buckets: u32) -> Placement {
    Seeds { a: seed_a, b: seed_b }.key_hash(key).placement(buckets)
}

/// The symmetric steering hash of a packet's tuple.
pub fn steering_hash(seed: u32, tuple: &FlowTuple, proto: u8, ipv6: bool) -> u32 {
    let mut a = [0u8; 18];
    a[..16].copy_from_slice(&tuple.src_addr);
    a[16..].copy_from_slice(tuple.src_port.as_bytes());
    let mut b = [0u8; 18];
    b[..16].copy_from_slice(&tuple.dst_addr);
    b[16..].copy_from_slice(tuple.dst_port.as_bytes());
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut key = [0u8; 40];
    key[..18].copy_from_slice(&lo);
    key[18..36].copy_from_slice(&hi);
    key[36] = proto;
    key[37] = if ipv6 { 6 } else { 4 };
    // Forty bytes, a lookup key's size: hashed as one (five `crc32` words), the same value.
    match LookupKey::read_from_bytes(&key) {
        Ok(k) => key_crc(seed, &k),
        Err(_) => hash(seed, &key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&a);
        out
    }

    fn sample_key() -> LookupKey {
        LookupKey::new(
            FlowTuple {
                src_addr: v4([192, 0, 2, 1]),
                dst_addr: v4([10, 10, 1, 100]),
                src_port: 40000.into(),
                dst_port: 80.into(),
            },
            6,
            false,
        )
    }

    #[test]
    fn known_answers_of_the_hash() {
        // The CRC-32C check value, and vectors from RFC 3720 (iSCSI) appendix B.4.
        assert_eq!(hash_reference(0, b"123456789"), 0xE306_9283);
        assert_eq!(hash_reference(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(hash_reference(0, &[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(hash_reference(0, &inc), 0x46DD_794E);
        assert_eq!(hash_reference(0, b""), 0);
        // Seeding continues a CRC: hash(hash(0, a), b) = hash(0, a ‖ b).
        assert_eq!(hash_reference(hash_reference(0, b"12345"), b"6789"), 0xE306_9283);
    }

    #[test]
    fn fast_hash_agrees_with_the_reference() {
        let mut x = 0x1234_5678u32;
        for len in 0..200usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for seed in [0, 1, 0x9E37_79B9, u32::MAX] {
                assert_eq!(hash(seed, &data), hash_reference(seed, &data), "len {len} seed {seed:#x}");
            }
        }
    }

    #[test]
    fn key_hash_agrees_with_the_reference() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut bytes = [0u8; 40];
            for b in &mut bytes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let key = LookupKey::read_from_bytes(&bytes).unwrap();
            let seed = x as u32;
            let other = seed.rotate_left(7) ^ 0x5bd1_e995;
            let want = (hash_reference(seed, &bytes), hash_reference(other, &bytes));
            assert_eq!(key_crc_pair(seed, other, &key), want, "key {bytes:02x?} seeds {seed:#x} {other:#x}");
            assert_eq!(key_crc(seed, &key), want.0);
        }
    }

    /// Known answers for placement, computed independently (a bitwise CRC-32C written in Python
    /// over the key bytes printed by `key_bytes_are_the_documented_layout`). If this test fails,
    /// the key layout or the placement rule changed, and that is a change of the contract.
    #[test]
    fn known_answers_of_placement() {
        let key = sample_key();
        assert_eq!(hash(0x9E37_79B9, key.as_bytes()), 0x2026_6BCE);
        assert_eq!(hash(0x85EB_CA6B, key.as_bytes()), 0x7EB2_C151);
        assert_eq!(fmix32(0x7EB2_C151), 0xE3A9_D256);
        assert_eq!(fmix32(1), 0x514E_28B7);
        let p = placement(&key, 0x9E37_79B9, 0x85EB_CA6B, 1 << 19);
        assert_eq!(p, Placement { bucket_a: 0x66BCE, bucket_b: 0x1D256, sig: 0x2026 });
        let h = Seeds { a: 0x9E37_79B9, b: 0x85EB_CA6B }.key_hash(&key);
        assert_eq!(h, KeyHash { a: 0x2026_6BCE, b: 0xE3A9_D256 });
        assert_eq!(h.placement(1 << 19), p, "a carried hash places as the key does");
    }

    #[test]
    fn key_bytes_are_the_documented_layout() {
        let key = sample_key();
        let b = key.as_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[0..4], &[192, 0, 2, 1]);
        assert_eq!(&b[16..20], &[10, 10, 1, 100]);
        assert_eq!(&b[32..40], &[0x9c, 0x40, 0x00, 0x50, 6, 4, 0, 0]);
    }

    /// The second bucket must not be a fixed function of the first (CRC-32C alone would make it
    /// `bucket_a ^ constant`): keys sharing a first bucket spread over many second buckets.
    #[test]
    fn second_buckets_are_independent_of_the_first() {
        let mut key = sample_key();
        let mut partners = std::collections::HashSet::new();
        for port in 0..20_000u16 {
            key.tuple.src_port = port.into();
            let p = placement(&key, 0x9E37_79B9, 0x85EB_CA6B, 64);
            if p.bucket_a == 7 {
                partners.insert(p.bucket_b);
            }
        }
        assert!(partners.len() > 40, "bucket 7's keys reach only {} second buckets", partners.len());
    }

    #[test]
    fn second_bucket_differs_from_the_first() {
        let mut key = sample_key();
        for port in 0..5000u16 {
            key.tuple.src_port = port.into();
            let p = placement(&key, 1, 2, 2);
            assert_ne!(p.bucket_a, p.bucket_b);
            assert!(p.bucket_a < 2 && p.bucket_b < 2);
        }
    }

    #[test]
    fn steering_is_symmetric_and_spreads() {
        let t = sample_key().tuple;
        assert_eq!(steering_hash(7, &t, 6, false), steering_hash(7, &t.reversed(), 6, false));
        assert_ne!(steering_hash(7, &t, 6, false), steering_hash(7, &t, 17, false));
        let mut counts = [0u32; 4];
        let mut t2 = t;
        for port in 0..4000u16 {
            t2.src_port = port.into();
            counts[(steering_hash(7, &t2, 6, false) & 3) as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }
}
