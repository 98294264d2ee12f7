//! The FullNAT rewrite of a flow-table hit: builds the frame the NIC sends from the frame it
//! received, the flow's new tuple, the direction's checksum deltas and the next-hop entry.
//!
//! The IP packet is copied once into the output buffer and then edited in place through the
//! zerocopy views of [`super::headers`]: each change is a field store, and each checksum is
//! updated incrementally (RFC 1624, [`rtl_spec::checksum`]) from the deltas the host computed
//! when it installed the flow. Nothing is ever summed over the payload, so the output is exactly
//! as correct as the input: a packet that arrived with a bad checksum leaves with a bad checksum,
//! which is what the hardware does and what lets the receiver still detect the corruption.

use super::headers::{
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, EthernetHeader, IPPROTO_TCP, IPPROTO_UDP, Ipv4Header,
    Ipv6Header, TcpHeader, UdpHeader, VlanTag,
};
use super::parse::Parsed;
use super::tcp_options::{OptionEdit, adjust_options, update};
use rtl_spec::checksum::{TTL_DECREMENT_DELTA, apply};
use rtl_spec::formats::{DirParams, FlowTuple, NextHopEntry};
use zerocopy::{FromBytes, IntoBytes};

/// The TCP sequence-space and timestamp translation of a SYN-proxied flow (record flag
/// `seq_adjust`, fields `seq_delta` and, since spec 1.4, the extension word's `ts_delta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqAdjust {
    /// No translation.
    None,
    /// Reply direction: `seq_delta` added to the sequence number (the server's sequence space
    /// becomes the one the proxy announced to the client) and `ts_delta` to the TSval of the
    /// timestamp option (the server's clock becomes the proxy's).
    Reply {
        /// Added to the sequence number.
        seq_delta: u32,
        /// Added to TSval (0: the option is left alone).
        ts_delta: u32,
    },
    /// Original direction: `seq_delta` subtracted from the acknowledgement number and from every
    /// SACK block edge (both acknowledge the reply direction's data, in the proxy's sequence
    /// space), `ts_delta` from the TSecr of the timestamp option (it echoes the proxy's clock).
    Original {
        /// Subtracted from the acknowledgement number and the SACK edges.
        seq_delta: u32,
        /// Subtracted from TSecr (0: the option is left alone).
        ts_delta: u32,
    },
}

/// Builds the frame a flow-table hit sends, into `out` (cleared first), and returns `true`.
///
/// - L2: destination and source MAC from `nh`, then an 802.1Q tag with `nh.vlan_tci` if and
///   only if `nh.ctl.vlan()`; the input's own tag, if any, is not kept.
/// - The IP packet (`p.ip_len` bytes; Ethernet padding after it is dropped) with source address
///   and port := `new_tuple.src_*`, destination := `new_tuple.dst_*`, TTL / hop limit
///   decremented by one.
/// - IPv4 header checksum := `apply(apply(old, dir.l3_delta), TTL_DECREMENT_DELTA)`.
/// - TCP/UDP checksum := `apply(old, dir.l4_delta)`, except that a UDP-over-IPv4 checksum of 0
///   (none) stays 0 and a UDP result of 0 is sent as `0xFFFF`.
/// - `seq` (TCP only; ignored for UDP): `Reply` adds `seq_delta` to the sequence number and
///   `ts_delta` to the TSval of every well-formed timestamp option (kind 8, length 10);
///   `Original` subtracts `seq_delta` from the acknowledgement number and from both edges of
///   every block of a well-formed SACK option (kind 5, length 2 + 8n), and `ts_delta` from the
///   TSecr of every well-formed timestamp option; each 32-bit change is folded into the TCP
///   checksum incrementally. Malformed options are left as they are (see
///   [`super::tcp_options`]), and a `ts_delta` of 0 changes nothing.
///
/// `p` must be what [`super::classify`] returned as `Lookup` for `frame`, and `dir` must hold the
/// deltas from `p.tuple` to `new_tuple` (see [`rtl_spec::checksum::direction_deltas`]): the
/// rewrite trusts them, as the hardware does. If `p` does not fit `frame` (offsets outside it,
/// a protocol other than TCP or UDP) nothing is built: `out` is left empty and the result is
/// `false`. A TTL of 0 wraps to 255 rather than panicking; the datapath punts TTL ≤ 1 before it
/// gets here.
pub fn build_hit_output(
    frame: &[u8],
    p: &Parsed,
    new_tuple: &FlowTuple,
    dir: &DirParams,
    seq: SeqAdjust,
    nh: &NextHopEntry,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let built = build(frame, p, new_tuple, *dir, seq, nh, out).is_some();
    if !built {
        out.clear();
    }
    built
}

fn build(
    frame: &[u8],
    p: &Parsed,
    new_tuple: &FlowTuple,
    dir: DirParams,
    seq: SeqAdjust,
    nh: &NextHopEntry,
    out: &mut Vec<u8>,
) -> Option<()> {
    let packet = frame.get(p.l3_offset..p.l3_offset.checked_add(p.ip_len)?)?;
    let l4_in_packet = p.l4_offset.checked_sub(p.l3_offset)?;
    if p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP {
        return None;
    }

    let ethertype = if p.ipv6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
    let tagged = nh.ctl.vlan();
    let eth = EthernetHeader {
        dst: nh.dst_mac,
        src: nh.src_mac,
        ethertype: if tagged { ETHERTYPE_VLAN } else { ethertype }.into(),
    };
    out.reserve(size_of::<EthernetHeader>() + size_of::<VlanTag>() + packet.len());
    out.extend_from_slice(eth.as_bytes());
    if tagged {
        out.extend_from_slice(VlanTag { tci: nh.vlan_tci, ethertype: ethertype.into() }.as_bytes());
    }
    let l3_start = out.len();
    out.extend_from_slice(packet);
    let packet = out.get_mut(l3_start..)?;

    // L3: addresses and TTL, and (IPv4) the header checksum; `after` is the rest of the packet.
    let (after, header_len) = if p.ipv6 {
        let (ip, after) = Ipv6Header::mut_from_prefix(packet).ok()?;
        ip.src = new_tuple.src_addr;
        ip.dst = new_tuple.dst_addr;
        ip.hop_limit = ip.hop_limit.wrapping_sub(1);
        (after, size_of::<Ipv6Header>())
    } else {
        let (ip, after) = Ipv4Header::mut_from_prefix(packet).ok()?;
        ip.src = ipv4_addr(&new_tuple.src_addr);
        ip.dst = ipv4_addr(&new_tuple.dst_addr);
        ip.ttl = ip.ttl.wrapping_sub(1);
        ip.checksum.set(apply(apply(ip.checksum.get(), dir.l3_delta.get()), TTL_DECREMENT_DELTA));
        (after, size_of::<Ipv4Header>())
    };
    let l4 = after.get_mut(l4_in_packet.checked_sub(header_len)?..)?;

    if p.proto == IPPROTO_TCP {
        let (tcp, options_and_payload) = TcpHeader::mut_from_prefix(l4).ok()?;
        tcp.src_port = new_tuple.src_port;
        tcp.dst_port = new_tuple.dst_port;
        let mut csum = apply(tcp.checksum.get(), dir.l4_delta.get());
        let options_len = tcp.header_len().checked_sub(size_of::<TcpHeader>());
        match seq {
            SeqAdjust::None => {}
            SeqAdjust::Reply { seq_delta, ts_delta } => {
                csum = update(&mut tcp.seq, |v| v.wrapping_add(seq_delta), csum);
                // The walk is for the timestamp option alone here: without one to change, none.
                if ts_delta != 0 {
                    let options = options_and_payload.get_mut(..options_len?)?;
                    csum = adjust_options(options, OptionEdit::Reply { ts_delta }, csum);
                }
            }
            SeqAdjust::Original { seq_delta, ts_delta } => {
                csum = update(&mut tcp.ack, |v| v.wrapping_sub(seq_delta), csum);
                let options = options_and_payload.get_mut(..options_len?)?;
                csum = adjust_options(options, OptionEdit::Original { seq_delta, ts_delta }, csum);
            }
        }
        tcp.checksum.set(csum);
    } else {
        let (udp, _) = UdpHeader::mut_from_prefix(l4).ok()?;
        udp.src_port = new_tuple.src_port;
        udp.dst_port = new_tuple.dst_port;
        let old = udp.checksum.get();
        let new = if !p.ipv6 && old == 0 {
            // "No checksum" over IPv4: there is nothing to keep correct.
            0
        } else {
            // 0 on the wire means "none"; a computed 0 is sent as its other representation.
            match apply(old, dir.l4_delta.get()) {
                0 => 0xFFFF,
                c => c,
            }
        };
        udp.checksum.set(new);
    }
    Some(())
}

/// The IPv4 address in bytes 0..4 of an `rtl_spec` address.
fn ipv4_addr(addr: &[u8; 16]) -> [u8; 4] {
    let [a, b, c, d, ..] = *addr;
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::fixtures::{Seen, any_spec, any_tuple, check, expected, frame, next_hop, spec, tuple};
    use crate::packet::{Classified, classify};
    use proptest::prelude::*;
    use rtl_spec::checksum::{direction_deltas, ones_add};

    /// Classifies `input` and rewrites it to `to`, with the deltas a host would install.
    fn rewrite(input: &[u8], to: &FlowTuple, seq: SeqAdjust, nh: &NextHopEntry) -> Vec<u8> {
        let Classified::Lookup(p) = classify(input) else { panic!("not a lookup: {:?}", classify(input)) };
        let (l3, l4) = direction_deltas(&p.tuple, to, p.ipv6);
        let dir = DirParams { next_hop: 0.into(), l3_delta: l3.into(), l4_delta: l4.into() };
        let mut out = vec![0xEE; 7]; // stale content that must be cleared
        assert!(build_hit_output(input, &p, to, &dir, seq, nh, &mut out));
        assert_eq!(out.len(), if nh.ctl.vlan() { 18 } else { 14 } + p.ip_len);
        out
    }

    #[test]
    fn literal_ipv4_udp_tagged_with_zero_checksum() {
        #[rustfmt::skip]
        let input = [
            0x02, 0, 0, 0, 0, 0x02,  0x02, 0, 0, 0, 0, 0x01,  0x08, 0x00,
            0x45, 0x00, 0x00, 0x20,  0x00, 0x01, 0x00, 0x00,  0x40, 0x11, 0x8E, 0x90,
            192, 0, 2, 1,  198, 51, 100, 7,
            0x14, 0xE9, 0x00, 0x35,  0x00, 0x0C, 0x00, 0x00,  1, 2, 3, 4,
            0, 0,                                             // Ethernet padding
        ];
        #[rustfmt::skip]
        let expected = [
            0x02, 0, 0, 0, 0, 0x0D,  0x02, 0, 0, 0, 0, 0x05,  0x81, 0x00,  0x00, 0x64,  0x08, 0x00,
            0x45, 0x00, 0x00, 0x20,  0x00, 0x01, 0x00, 0x00,  0x3F, 0x11, 0x67, 0xCA,
            10, 0, 0, 1,  10, 0, 0, 2,
            0x04, 0x00, 0x00, 0x35,  0x00, 0x0C, 0x00, 0x00,  1, 2, 3, 4,
        ];
        let to = tuple(&[10, 0, 0, 1], 1024, &[10, 0, 0, 2], 53);
        let out = rewrite(&input, &to, SeqAdjust::None, &next_hop(Some(0x0064)));
        assert_eq!(out, expected);
        check(&out);
    }

    #[test]
    fn tcp_and_udp_over_ipv4_and_ipv6_with_vlan_added_removed_kept() {
        let to4 = tuple(&[10, 0, 0, 5], 40001, &[10, 1, 1, 9], 8080);
        let to6 = tuple(
            &[0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
            40001,
            &[0x20, 0x01, 0xDB, 8],
            8080,
        );
        for ipv6 in [false, true] {
            for tcp in [false, true] {
                for (vin, vout) in
                    [(None, None), (None, Some(0x2064)), (Some(7), None), (Some(7), Some(0xE00A))]
                {
                    let s = spec(ipv6, tcp, vin);
                    let to = if ipv6 { to6 } else { to4 };
                    let nh = next_hop(vout);
                    let out = rewrite(&frame(&s), &to, SeqAdjust::None, &nh);
                    assert_eq!(out[..12], [2, 0, 0, 0, 0, 0x0D, 2, 0, 0, 0, 0, 5]);
                    if let Some(tci) = vout {
                        assert_eq!(
                            out[12..16],
                            [0x81, 0x00, (tci >> 8) as u8, tci as u8],
                            "the entry's full TCI"
                        );
                    }
                    assert_eq!(
                        check(&out),
                        expected(&s, &to, &nh),
                        "ipv6 {ipv6} tcp {tcp} vlan {vin:?}->{vout:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn udp_checksum_zero_is_kept_and_computed_zero_is_sent_as_ffff() {
        let s = spec(false, false, None);
        let mut input = frame(&s);
        input[14 + 20 + 6..14 + 20 + 8].fill(0);
        let to = tuple(&[10, 0, 0, 5], 1, &[10, 0, 0, 6], 2);
        let out = rewrite(&input, &to, SeqAdjust::None, &next_hop(None));
        assert_eq!(out[14 + 20 + 6..14 + 20 + 8], [0, 0]);
        check(&out);
        // Over IPv6 a checksum is mandatory: 0 is just a (wrong) value and is updated.
        let mut input = frame(&spec(true, false, None));
        input[14 + 40 + 6..14 + 40 + 8].fill(0);
        let out = rewrite(&input, &tuple(&[1; 16], 1, &[2; 16], 2), SeqAdjust::None, &next_hop(None));
        assert_ne!(out[14 + 40 + 6..14 + 40 + 8], [0, 0]);

        // Choose the new destination port so that the true checksum of the output is 0: the
        // ones'-complement sum must come to 0xFFFF, so the port absorbs what the sum lacks.
        for ipv6 in [false, true] {
            let s = spec(ipv6, false, None);
            let input = frame(&s);
            let mut to = if ipv6 {
                tuple(&[0xFD; 16], 7, &[0xFE; 16], 0)
            } else {
                tuple(&[10, 9, 8, 7], 7, &[10, 0, 0, 1], 0)
            };
            let first = rewrite(&input, &to, SeqAdjust::None, &next_hop(None));
            let l4 = 14 + if ipv6 { 40 } else { 20 };
            let c = u16::from_be_bytes([first[l4 + 6], first[l4 + 7]]);
            // The sum is !c; adding c more to the port word brings it to 0xFFFF.
            to.dst_port = ones_add(0, c).into();
            let out = rewrite(&input, &to, SeqAdjust::None, &next_hop(None));
            assert_eq!(out[l4 + 6..l4 + 8], [0xFF, 0xFF], "ipv6 {ipv6}");
            check(&out);
        }
    }

    #[test]
    fn bad_checksums_stay_bad_by_the_same_amount() {
        let s = spec(false, true, None);
        let good = frame(&s);
        let to = tuple(&[10, 0, 0, 5], 40001, &[10, 1, 1, 9], 8080);
        let fixed = rewrite(&good, &to, SeqAdjust::None, &next_hop(None));
        let mut bad = good.clone();
        for at in [14 + 10, 14 + 20 + 16] {
            let v = u16::from_be_bytes([bad[at], bad[at + 1]]).wrapping_add(0x0100);
            bad[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        let out = rewrite(&bad, &to, SeqAdjust::None, &next_hop(None));
        for at in [14 + 10, 14 + 20 + 16] {
            let word = |f: &[u8]| u16::from_be_bytes([f[at], f[at + 1]]);
            assert_ne!(word(&out), word(&fixed));
            // The error (stored - true, in ones'-complement) is carried through unchanged.
            assert_eq!(ones_add(!word(&out), word(&fixed)), ones_add(!word(&bad), word(&good)));
        }
    }

    #[test]
    fn seq_ack_and_sack_adjust() {
        let to = tuple(&[10, 0, 0, 5], 40001, &[10, 1, 1, 9], 8080);
        for ipv6 in [false, true] {
            let mut s = spec(ipv6, true, Some(3));
            s.seq = 0xFFFF_FFF0;
            s.ack = 0x0000_0010;
            s.sack = vec![(0x0000_0100, 0x0000_0200), (0xFFFF_FF00, 0x0000_0008)];
            s.ts = Some((0x0102_0304, 0x0506_0708));
            let to = if ipv6 { tuple(&[1; 16], 1, &[2; 16], 2) } else { to };
            let nh = next_hop(None);
            let out = rewrite(&frame(&s), &to, SeqAdjust::Reply { seq_delta: 0x20, ts_delta: 0 }, &nh);
            let want = Seen { seq: 0x10, ..expected(&s, &to, &nh) };
            assert_eq!(check(&out), want, "seq wraps, ack, SACK and timestamps untouched");

            let out = rewrite(&frame(&s), &to, SeqAdjust::Original { seq_delta: 0x20, ts_delta: 0 }, &nh);
            let sack = vec![(0xE0, 0x1E0), (0xFFFF_FEE0, 0xFFFF_FFE8)];
            let want = Seen { ack: 0xFFFF_FFF0, sack, ..expected(&s, &to, &nh) };
            assert_eq!(check(&out), want, "ack and every SACK edge, seq untouched");
            // With a zero ts_delta the timestamp option between them is left alone.
            assert!(out.windows(8).any(|w| w == [1, 2, 3, 4, 5, 6, 7, 8]));
        }
        // UDP has no sequence space: the adjust is ignored.
        let s = spec(false, false, None);
        let out =
            rewrite(&frame(&s), &to, SeqAdjust::Original { seq_delta: 5, ts_delta: 5 }, &next_hop(None));
        assert_eq!(check(&out), expected(&s, &to, &next_hop(None)));
    }

    #[test]
    fn timestamps_are_translated_with_wrap_and_every_checksum_stays_valid() {
        let nh = next_hop(Some(9));
        for ipv6 in [false, true] {
            let mut s = spec(ipv6, true, None);
            s.ts = Some((0xFFFF_FF00, 0x0000_0010));
            s.sack = vec![(0x100, 0x200)];
            let to = if ipv6 {
                tuple(&[3; 16], 3, &[4; 16], 4)
            } else {
                tuple(&[10, 0, 0, 3], 3, &[10, 0, 0, 4], 4)
            };
            // Reply: TSval += ts_delta (wrapping), TSecr as it was.
            let out = rewrite(&frame(&s), &to, SeqAdjust::Reply { seq_delta: 1, ts_delta: 0x200 }, &nh);
            let want = Seen { seq: s.seq + 1, ts: Some((0x100, 0x10)), ..expected(&s, &to, &nh) };
            assert_eq!(check(&out), want, "ipv6 {ipv6}");
            // Original: TSecr -= ts_delta (wrapping), TSval as it was; ack and SACK by seq_delta.
            let out = rewrite(&frame(&s), &to, SeqAdjust::Original { seq_delta: 1, ts_delta: 0x20 }, &nh);
            let want = Seen {
                ack: s.ack - 1,
                sack: vec![(0xFF, 0x1FF)],
                ts: Some((0xFFFF_FF00, 0xFFFF_FFF0)),
                ..expected(&s, &to, &nh)
            };
            assert_eq!(check(&out), want, "ipv6 {ipv6}");
        }
    }

    #[test]
    fn a_segment_without_a_timestamp_option_and_a_zero_ts_delta_are_left_as_they_were() {
        let to = tuple(&[10, 0, 0, 3], 3, &[10, 0, 0, 4], 4);
        let nh = next_hop(None);
        let plain = spec(false, true, None);
        for seq in [
            SeqAdjust::Reply { seq_delta: 0, ts_delta: 77 },
            SeqAdjust::Original { seq_delta: 0, ts_delta: 77 },
        ] {
            let with = rewrite(&frame(&plain), &to, seq, &nh);
            assert_eq!(check(&with), expected(&plain, &to, &nh), "{seq:?}: no option to change");
        }
        let mut s = plain;
        s.ts = Some((5, 6));
        for zero in [
            SeqAdjust::Reply { seq_delta: 3, ts_delta: 0 },
            SeqAdjust::Original { seq_delta: 3, ts_delta: 0 },
        ] {
            let out = rewrite(&frame(&s), &to, zero, &nh);
            assert_eq!(check(&out).ts, Some((5, 6)), "{zero:?}");
        }
    }

    #[test]
    fn inconsistent_input_builds_nothing() {
        let input = frame(&spec(false, true, None));
        let Classified::Lookup(p) = classify(&input) else { panic!() };
        let (to, dir, nh) = (p.tuple, DirParams::default(), next_hop(None));
        let bad = [
            Parsed { l3_offset: usize::MAX, ..p },
            Parsed { ip_len: input.len(), ..p },
            Parsed { l4_offset: 10, ..p },
            Parsed { l4_offset: 30, ..p },
            Parsed { l4_offset: input.len(), ..p },
            Parsed { proto: 1, ..p },
            Parsed { ipv6: true, ..p },
        ];
        for q in bad {
            let mut out = vec![1, 2, 3];
            let seq = SeqAdjust::Reply { seq_delta: 1, ts_delta: 1 };
            assert!(!build_hit_output(&input, &q, &to, &dir, seq, &nh, &mut out), "{q:?}");
            assert!(out.is_empty());
        }
    }

    fn any_seq() -> impl Strategy<Value = SeqAdjust> {
        let ts = prop_oneof![Just(0u32), any::<u32>()];
        prop_oneof![
            Just(SeqAdjust::None),
            (any::<u32>(), ts.clone())
                .prop_map(|(seq_delta, ts_delta)| SeqAdjust::Reply { seq_delta, ts_delta }),
            (any::<u32>(), ts).prop_map(|(seq_delta, ts_delta)| SeqAdjust::Original { seq_delta, ts_delta }),
        ]
    }

    proptest! {
        #[test]
        fn rewrite_keeps_every_checksum_valid(
            (s, to) in any_spec().prop_flat_map(|s| { let v6 = s.ipv6; (Just(s), any_tuple(v6)) }),
            seq in any_seq(),
            vlan in proptest::option::of(any::<u16>()),
        ) {
            let nh = next_hop(vlan);
            let out = rewrite(&frame(&s), &to, seq, &nh);
            let mut want = expected(&s, &to, &nh);
            if s.tcp {
                match seq {
                    SeqAdjust::None => {}
                    SeqAdjust::Reply { seq_delta, ts_delta } => {
                        want.seq = s.seq.wrapping_add(seq_delta);
                        want.ts = s.ts.map(|(val, ecr)| (val.wrapping_add(ts_delta), ecr));
                    }
                    SeqAdjust::Original { seq_delta: d, ts_delta } => {
                        want.ack = s.ack.wrapping_sub(d);
                        want.sack = s.sack.iter().map(|&(l, r)| (l.wrapping_sub(d), r.wrapping_sub(d))).collect();
                        want.ts = s.ts.map(|(val, ecr)| (val, ecr.wrapping_sub(ts_delta)));
                    }
                }
            }
            prop_assert_eq!(check(&out), want);
        }

        #[test]
        fn build_hit_output_never_panics(
            frame in proptest::collection::vec(any::<u8>(), 0..120),
            offsets in (0usize..130, 0usize..130, 0usize..130),
            ipv6 in any::<bool>(),
            proto in prop_oneof![Just(6u8), Just(17u8), any::<u8>()],
            seq in any_seq(),
            vlan in proptest::option::of(any::<u16>()),
        ) {
            let p = Parsed { l3_offset: offsets.0, l4_offset: offsets.1, ip_len: offsets.2, ipv6, proto, ..Parsed::default() };
            let dir = DirParams::default();
            let mut out = Vec::new();
            let _ = build_hit_output(&frame, &p, &p.tuple, &dir, seq, &next_hop(vlan), &mut out);
        }

        #[test]
        fn every_accepted_mutation_rewrites(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            seq in any_seq(),
        ) {
            let mut frame = crate::packet::parse::tests::valid_frames().swap_remove(which);
            for (at, v) in edits {
                let n = frame.len();
                frame[at % n] = v;
            }
            frame.truncate(cut % (frame.len() + 1));
            if let Classified::Lookup(p) = classify(&frame) {
                let mut out = Vec::new();
                let built = build_hit_output(&frame, &p, &p.tuple, &DirParams::default(), seq, &next_hop(Some(1)), &mut out);
                prop_assert!(built);
                prop_assert_eq!(out.len(), 18 + p.ip_len);
            }
        }
    }
}
