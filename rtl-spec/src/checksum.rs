//! RFC 1624 incremental checksum updates: the contract's reference for the deltas a flow
//! record carries ([`crate::formats::DirParams`]) and for how the NIC applies them.
//!
//! The Internet checksum of IPv4 headers, TCP and UDP is the ones'-complement of the
//! ones'-complement sum of the big-endian 16-bit words it covers. When some words `m` of a
//! covered region change to `m'`, the new checksum follows from the old one without reading the
//! rest of the packet (RFC 1624, eqn. 3):
//!
//! ```text
//! HC' = ~(~HC + ~m + m')
//! ```
//!
//! where `+` is ones'-complement addition ([`ones_add`]: 16-bit addition with the carry out of
//! bit 15 added back in). The sum of `~m + m'` over all changed words is the **delta**
//! ([`delta`]); the host computes it once per direction when it installs a flow
//! ([`direction_deltas`]) and the NIC folds it into each packet's checksum with [`apply`].
//! Eqn. 3 is used rather than eqn. 2 (`HC - m - m'`) because it is exact for every value: eqn. 2
//! gives `0xFFFF` where the true checksum is `0x0000` (RFC 1624 §4).
//!
//! In ones'-complement arithmetic `0x0000` and `0xFFFF` are both zero. [`ones_add`] returns
//! `0x0000` only when both operands are `0x0000`, so a delta of words that did not change is
//! `0xFFFF` (each `~m + m` is `0xFFFF`); [`apply`] treats both zeros as "no change", except that
//! a checksum field of `0xFFFF` (which a full computation never produces for data that is not
//! all zero) becomes `0x0000` under a `0xFFFF` delta.

use crate::formats::FlowTuple;

/// Ones'-complement addition of two 16-bit words: the 17-bit sum with its carry added back in
/// ("end-around carry"). The result is `0x0000` only when both operands are.
pub const fn ones_add(a: u16, b: u16) -> u16 {
    let sum = a as u32 + b as u32;
    // At most 0x1FFFE, so a single fold can not carry again.
    ((sum & 0xFFFF) + (sum >> 16)) as u16
}

/// The Internet checksum of `bytes` computed in full (a trailing odd byte is padded with zero):
/// the ones'-complement of the ones'-complement sum of its big-endian 16-bit words. The NIC
/// computes one only for a header it builds itself (the outer IPv4 header of a `Tunnel` next
/// hop, whose checksum field must be zero in `bytes`); everything it forwards is updated
/// incrementally.
pub fn full(bytes: &[u8]) -> u16 {
    !bytes
        .chunks(2)
        .fold(0, |acc, w| ones_add(acc, u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
}

/// The checksum delta of changing the bytes `old` into `new`: the ones'-complement sum of
/// `~old_word + new_word` over their big-endian 16-bit words. Equal bytes give `0xFFFF` (a
/// ones'-complement zero); no bytes at all give `0x0000`.
///
/// Because ones'-complement addition is associative and commutative, the delta of a region is
/// the [`ones_add`] of the deltas of its parts, so disjoint changes may be summed in any order.
///
/// # Panics
///
/// If the slices differ in length or their length is odd: both are programming errors, as the
/// covered words are fixed fields.
pub fn delta(old: &[u8], new: &[u8]) -> u16 {
    assert!(
        old.len() == new.len() && old.len() % 2 == 0,
        "checksum delta needs two equal, even-length regions"
    );
    // Summed wide and folded once: the order of ones'-complement additions does not matter, and
    // a non-zero wide sum folds to a non-zero word, as the step-by-step sum does.
    fold(
        old.chunks_exact(2)
            .zip(new.chunks_exact(2))
            .map(|(o, n)| word_delta([o[0], o[1]], [n[0], n[1]]))
            .sum(),
    )
}

/// `~old + new` for one big-endian word, unfolded.
const fn word_delta(old: [u8; 2], new: [u8; 2]) -> u64 {
    (!u16::from_be_bytes(old)) as u64 + u16::from_be_bytes(new) as u64
}

/// A wide ones'-complement sum folded to 16 bits (end-around carries until it fits).
const fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// A checksum after its covered words changed by `delta` (RFC 1624 eqn. 3:
/// `~(~csum + delta)`).
pub const fn apply(csum: u16, delta: u16) -> u16 {
    !ones_add(!csum, delta)
}

/// The delta of decrementing the TTL by one in the IPv4 (TTL, protocol) word: `~m + m'` with
/// `m' = m - 0x0100`, i.e. `0xFFFF - 0x0100`, whatever the TTL (above 0) and protocol.
pub const TTL_DECREMENT_DELTA: u16 = 0xFEFF;

/// The deltas of a packet that arrives carrying tuple `from` and leaves carrying tuple `to`:
/// `(l3_delta, l4_delta)` as [`crate::formats::DirParams`] stores them.
///
/// - `l3_delta` covers the IPv4 header's source and destination address words (4 bytes each);
///   it is `0` for IPv6, which has no header checksum.
/// - `l4_delta` covers the TCP/UDP pseudo-header's address words (4 or 16 bytes each) and the
///   source and destination port words. The pseudo-header's length and protocol words do not
///   change.
pub fn direction_deltas(from: &FlowTuple, to: &FlowTuple, ipv6: bool) -> (u16, u16) {
    // Every install computes two of these: the address words are summed at their fixed widths
    // (unrolled, no slices) and folded once per delta.
    let addrs = if ipv6 {
        wide(&from.src_addr, &to.src_addr) + wide(&from.dst_addr, &to.dst_addr)
    } else {
        wide(&v4(&from.src_addr), &v4(&to.src_addr)) + wide(&v4(&from.dst_addr), &v4(&to.dst_addr))
    };
    let ports = wide(&from.src_port.to_bytes(), &to.src_port.to_bytes())
        + wide(&from.dst_port.to_bytes(), &to.dst_port.to_bytes());
    let l3 = if ipv6 { 0 } else { fold(addrs) };
    (l3, fold(addrs + ports))
}

/// The IPv4 address in the first 4 bytes of a tuple's address field.
fn v4(addr: &[u8; 16]) -> [u8; 4] {
    let [a, b, c, d, ..] = *addr;
    [a, b, c, d]
}

/// The unfolded sum of `~old_word + new_word` over the big-endian words of `N` bytes (`N` even).
fn wide<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i + 1 < N {
        sum += word_delta([old[i], old[i + 1]], [new[i], new[i + 1]]);
        i += 2;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    /// The Internet checksum computed from scratch, independently of the code above: a 32-bit
    /// sum of the words, folded until it fits, complemented.
    fn full_checksum(chunks: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = chunks.concat();
        let mut sum: u64 =
            bytes.chunks(2).map(|w| u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0))).sum();
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// xorshift64*: the crate has no random-number dependency, and a fixed seed keeps failures
    /// reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
        fn tuple(&mut self, ipv6: bool) -> FlowTuple {
            let mut t = FlowTuple::default();
            let alen = if ipv6 { 16 } else { 4 };
            t.src_addr[..alen].copy_from_slice(&self.bytes(alen));
            t.dst_addr[..alen].copy_from_slice(&self.bytes(alen));
            t.src_port = (self.next() as u16).into();
            t.dst_port = (self.next() as u16).into();
            t
        }
    }

    #[test]
    fn rfc1624_section_4_example() {
        // The sum of the other header words is 0xCD7A; the word m = 0x5555 gives the checksum
        // ~(0xCD7A + 0x5555) = 0xDD2F. m becomes m' = 0x3285: the true checksum is
        // ~(0xCD7A + 0x3285) = ~0xFFFF = 0x0000, which eqn. 3 gets and eqn. 2 (0xFFFF) does not.
        assert_eq!(!ones_add(0xCD7A, 0x5555), 0xDD2F);
        let d = delta(&[0x55, 0x55], &[0x32, 0x85]);
        assert_eq!(d, ones_add(0xAAAA, 0x3285));
        assert_eq!(apply(0xDD2F, d), 0x0000);
        // The same through a full recomputation of a region whose other words sum to 0xCD7A.
        let before = [0xCD, 0x7A, 0x55, 0x55];
        let after = [0xCD, 0x7A, 0x32, 0x85];
        assert_eq!(full_checksum(&[&before]), 0xDD2F);
        assert_eq!(full_checksum(&[&after]), 0x0000);
    }

    #[test]
    fn ones_add_and_apply_edges() {
        assert_eq!(ones_add(0, 0), 0);
        assert_eq!(ones_add(0xFFFF, 0), 0xFFFF);
        assert_eq!(ones_add(0, 0xFFFF), 0xFFFF);
        assert_eq!(ones_add(0xFFFF, 0xFFFF), 0xFFFF);
        assert_eq!(ones_add(0x8000, 0x8000), 0x0001);
        assert_eq!(ones_add(0xFFFF, 0x0001), 0x0001);
        for csum in [0x0000, 0x0001, 0x1234, 0xFFFE, 0xFFFF] {
            // A zero delta never changes a checksum; a negative-zero delta changes only 0xFFFF.
            assert_eq!(apply(csum, 0x0000), csum);
            assert_eq!(apply(csum, 0xFFFF), if csum == 0xFFFF { 0x0000 } else { csum });
        }
        // Unchanged words give negative zero; no words give zero.
        assert_eq!(delta(&[0x12, 0x34, 0xAB, 0xCD], &[0x12, 0x34, 0xAB, 0xCD]), 0xFFFF);
        assert_eq!(delta(&[], &[]), 0x0000);
        // A word changed to itself plus one is +1; minus one is -1 (0xFFFE).
        assert_eq!(delta(&[0x00, 0x10], &[0x00, 0x11]), 0x0001);
        assert_eq!(delta(&[0x00, 0x11], &[0x00, 0x10]), 0xFFFE);
        // Identical tuples give no-change deltas.
        let t = Rng(7).tuple(false);
        let (l3, l4) = direction_deltas(&t, &t, false);
        assert_eq!((apply(0x1234, l3), apply(0x1234, l4)), (0x1234, 0x1234));
        assert_eq!(direction_deltas(&t, &t, true).0, 0);
    }

    #[test]
    fn ttl_decrement_delta_is_minus_0x0100() {
        for ttl in 1..=255u8 {
            for proto in [0u8, 1, 6, 17, 0xFF] {
                assert_eq!(delta(&[ttl, proto], &[ttl - 1, proto]), TTL_DECREMENT_DELTA);
            }
        }
    }

    /// The wide sum is the word-by-word ones'-complement sum of the definition, zero's two
    /// representations included: equal bytes give 0xFFFF, no bytes 0x0000.
    #[test]
    fn delta_is_the_word_by_word_sum() {
        let step = |old: &[u8], new: &[u8]| {
            old.chunks(2).zip(new.chunks(2)).fold(0u16, |acc, (o, n)| {
                ones_add(ones_add(acc, !u16::from_be_bytes([o[0], o[1]])), u16::from_be_bytes([n[0], n[1]]))
            })
        };
        let mut rng = Rng(0xC0FF_EE16);
        for len in [0usize, 2, 4, 8, 16, 32] {
            for _ in 0..500 {
                let old = rng.bytes(len);
                let new = if rng.next() % 4 == 0 { old.clone() } else { rng.bytes(len) };
                assert_eq!(delta(&old, &new), step(&old, &new), "{old:02x?} -> {new:02x?}");
            }
            let ones = vec![0xFF; len];
            assert_eq!(delta(&ones, &ones), step(&ones, &ones));
        }
        assert_eq!(delta(&[], &[]), 0);
        assert_eq!(delta(&[0xAB; 16], &[0xAB; 16]), 0xFFFF);
    }

    #[test]
    #[should_panic(expected = "equal, even-length")]
    fn delta_refuses_odd_regions() {
        let _ = delta(&[1, 2, 3], &[1, 2, 3]);
    }

    #[test]
    fn deltas_match_full_recomputation_ipv4() {
        let mut rng = Rng(0x5EED_1624);
        for _ in 0..2000 {
            let (from, to) = (rng.tuple(false), rng.tuple(false));
            let (l3, l4) = direction_deltas(&from, &to, false);

            // IPv4 header: random fields, version/IHL 0x45, TTL of at least 1.
            let mut ip = rng.bytes(20);
            ip[0] = 0x45;
            ip[8] = ip[8].max(1);
            ip[9] = 6;
            ip[10..12].fill(0);
            ip[12..16].copy_from_slice(&from.src_addr[..4]);
            ip[16..20].copy_from_slice(&from.dst_addr[..4]);
            let old = full_checksum(&[&ip]);
            ip[8] -= 1;
            ip[12..16].copy_from_slice(&to.src_addr[..4]);
            ip[16..20].copy_from_slice(&to.dst_addr[..4]);
            assert_eq!(apply(apply(old, l3), TTL_DECREMENT_DELTA), full_checksum(&[&ip]));

            // TCP segment with its pseudo-header (addresses, zero, protocol, TCP length).
            let len = 20 + (rng.next() % 64) as usize;
            let mut tcp = rng.bytes(len);
            tcp[16..18].fill(0);
            let pseudo = |t: &FlowTuple| {
                [&t.src_addr[..4], &t.dst_addr[..4], &[0, 6], &(len as u16).to_be_bytes()].concat()
            };
            tcp[0..2].copy_from_slice(from.src_port.as_bytes());
            tcp[2..4].copy_from_slice(from.dst_port.as_bytes());
            let old = full_checksum(&[&pseudo(&from), &tcp]);
            tcp[0..2].copy_from_slice(to.src_port.as_bytes());
            tcp[2..4].copy_from_slice(to.dst_port.as_bytes());
            assert_eq!(apply(old, l4), full_checksum(&[&pseudo(&to), &tcp]));
        }
    }

    #[test]
    fn deltas_match_full_recomputation_ipv6() {
        let mut rng = Rng(0xC0FF_EE00_0006);
        for _ in 0..2000 {
            let (from, to) = (rng.tuple(true), rng.tuple(true));
            let (l3, l4) = direction_deltas(&from, &to, true);
            assert_eq!(l3, 0);
            // UDP datagram with the IPv6 pseudo-header (addresses, 32-bit length, next header).
            let len = 8 + (rng.next() % 64) as usize;
            let mut udp = rng.bytes(len);
            udp[6..8].fill(0);
            let pseudo = |t: &FlowTuple| {
                [&t.src_addr[..], &t.dst_addr[..], &(len as u32).to_be_bytes(), &[0, 0, 0, 17]].concat()
            };
            udp[0..2].copy_from_slice(from.src_port.as_bytes());
            udp[2..4].copy_from_slice(from.dst_port.as_bytes());
            let old = full_checksum(&[&pseudo(&from), &udp]);
            udp[0..2].copy_from_slice(to.src_port.as_bytes());
            udp[2..4].copy_from_slice(to.dst_port.as_bytes());
            assert_eq!(apply(old, l4), full_checksum(&[&pseudo(&to), &udp]));
        }
    }

    #[test]
    fn deltas_compose_and_reverse() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let (a, b, c) = (rng.tuple(false), rng.tuple(false), rng.tuple(false));
            let (ab3, ab4) = direction_deltas(&a, &b, false);
            let (bc3, bc4) = direction_deltas(&b, &c, false);
            let (ac3, ac4) = direction_deltas(&a, &c, false);
            // Any checksum a full computation can produce (never 0xFFFF).
            let csum = (rng.next() % 0xFFFF) as u16;
            // Two rewrites in a row are one rewrite; a rewrite and its inverse are none.
            assert_eq!(apply(apply(csum, ab3), bc3), apply(csum, ac3));
            assert_eq!(apply(apply(csum, ab4), bc4), apply(csum, ac4));
            let (ba3, _) = direction_deltas(&b, &a, false);
            assert_eq!(apply(apply(csum, ab3), ba3), csum);
        }
    }
}
