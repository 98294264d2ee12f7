//! The two hit actions that leave the IP packet as it arrived (`rtl_spec::codes::NextHopAction`):
//! `Route` (LVS's DR: a new L2 header and nothing else) and `Tunnel` (LVS's TUN: a new L2 header
//! and an outer IP header of the packet's own family in front of it).
//!
//! Neither touches a byte of the inner packet, so neither needs the record's checksum deltas:
//! the inner checksums stay what the client sent, and the only checksum computed is the outer
//! IPv4 header's, in full, because the NIC builds that header itself. The TTL is not decremented
//! either: the real server receives the client's packet as the client sent it, as LVS delivers
//! it in both modes.

use super::headers::{
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, EthernetHeader, IPPROTO_IPIP, IPPROTO_IPV6, Ipv4Header,
    Ipv6Header, VlanTag,
};
use super::parse::Parsed;
use rtl_spec::checksum;
use rtl_spec::formats::{NextHopEntry, NextHopTunnel};
use zerocopy::{FromBytes, IntoBytes};

/// The outer header's TTL / hop limit (the usual default of an originating host).
pub const TUNNEL_TTL: u8 = 64;

/// Bytes a `Tunnel` next hop adds in front of a packet of family `ipv6`: the outer IP header.
pub const fn tunnel_overhead(ipv6: bool) -> usize {
    if ipv6 { size_of::<Ipv6Header>() } else { size_of::<Ipv4Header>() }
}

/// Builds the frame a `Route` hit sends into `out` (cleared first) and returns `true`: the L2
/// header of `nh` (with its 802.1Q tag when `nh.ctl.vlan()`), then the IP packet of `frame`
/// (`p.ip_len` bytes from `p.l3_offset`; Ethernet padding dropped) unchanged. `false`, with `out`
/// empty, when `p` does not fit `frame`.
pub fn build_route_output(frame: &[u8], p: &Parsed, nh: &NextHopEntry, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(packet) = inner(frame, p) else { return false };
    push_l2(out, nh, p.ipv6, packet.len());
    out.extend_from_slice(packet);
    true
}

/// Builds the frame a `Tunnel` hit sends into `out` (cleared first) and returns `true`: the L2
/// header of `nh`, an outer IP header from `tunnel.src` to `tunnel.dst` of the packet's family
/// (the layout is [`NextHopTunnel`]'s), then the IP packet unchanged. `false`, with `out` empty,
/// when `p` does not fit `frame` or the outer length would not fit its 16-bit field.
pub fn build_tunnel_output(
    frame: &[u8],
    p: &Parsed,
    nh: &NextHopEntry,
    tunnel: &NextHopTunnel,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let Some(packet) = inner(frame, p) else { return false };
    let Ok(inner_len) = u16::try_from(packet.len()) else { return false };
    let overhead = tunnel_overhead(p.ipv6);
    let Some(total) = inner_len.checked_add(overhead as u16) else { return false };
    push_l2(out, nh, p.ipv6, overhead + packet.len());
    if p.ipv6 {
        // Version 6, the inner traffic class, flow label 0.
        let inner_tc =
            Ipv6Header::ref_from_prefix(packet).map_or(0, |(h, _)| (h.ver_tc_flow.get() >> 20) & 0xFF);
        let outer = Ipv6Header {
            ver_tc_flow: ((6 << 28) | (inner_tc << 20)).into(),
            payload_len: inner_len.into(),
            next_header: IPPROTO_IPV6,
            hop_limit: TUNNEL_TTL,
            src: tunnel.src,
            dst: tunnel.dst,
        };
        out.extend_from_slice(outer.as_bytes());
    } else {
        let (tos, df) = Ipv4Header::ref_from_prefix(packet)
            .map_or((0, 0), |(h, _)| (h.tos, h.flags_frag.get() & Ipv4Header::DF));
        let mut outer = Ipv4Header {
            version_ihl: 0x45,
            tos,
            total_len: total.into(),
            ident: 0.into(),
            flags_frag: df.into(),
            ttl: TUNNEL_TTL,
            proto: IPPROTO_IPIP,
            checksum: 0.into(),
            src: addr4(&tunnel.src),
            dst: addr4(&tunnel.dst),
        };
        outer.checksum = checksum::full(outer.as_bytes()).into();
        out.extend_from_slice(outer.as_bytes());
    }
    out.extend_from_slice(packet);
    true
}

/// The IP packet of a classified frame, without Ethernet padding.
fn inner<'a>(frame: &'a [u8], p: &Parsed) -> Option<&'a [u8]> {
    frame.get(p.l3_offset..p.l3_offset.checked_add(p.ip_len)?)
}

/// Appends the L2 header of `nh` for an IP packet of family `ipv6`, reserving room for `rest`.
fn push_l2(out: &mut Vec<u8>, nh: &NextHopEntry, ipv6: bool, rest: usize) {
    let ethertype = if ipv6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
    let tagged = nh.ctl.vlan();
    out.reserve(size_of::<EthernetHeader>() + size_of::<VlanTag>() + rest);
    let eth = EthernetHeader {
        dst: nh.dst_mac,
        src: nh.src_mac,
        ethertype: if tagged { ETHERTYPE_VLAN } else { ethertype }.into(),
    };
    out.extend_from_slice(eth.as_bytes());
    if tagged {
        out.extend_from_slice(VlanTag { tci: nh.vlan_tci, ethertype: ethertype.into() }.as_bytes());
    }
}

/// The IPv4 address in bytes 0..4 of an `rtl_spec` address.
fn addr4(addr: &[u8; 16]) -> [u8; 4] {
    let [a, b, c, d, ..] = *addr;
    [a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::fixtures::{frame, next_hop, spec};
    use crate::packet::{Classified, classify};
    use etherparse::{NetSlice, SlicedPacket};

    fn parsed(input: &[u8]) -> Parsed {
        let Classified::Lookup(p) = classify(input) else { panic!("not a lookup") };
        p
    }

    fn tunnel(ipv6: bool) -> NextHopTunnel {
        let mut t = NextHopTunnel::default();
        if ipv6 {
            t.src = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
            t.dst = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        } else {
            t.src[..4].copy_from_slice(&[10, 0, 0, 2]);
            t.dst[..4].copy_from_slice(&[10, 0, 0, 16]);
        }
        t
    }

    #[test]
    fn route_keeps_every_ip_byte_and_changes_the_l2_header() {
        for ipv6 in [false, true] {
            for tcp in [false, true] {
                for (vin, vout) in [(None, None), (Some(7), None), (None, Some(0x2064))] {
                    let mut input = frame(&spec(ipv6, tcp, vin));
                    input.extend_from_slice(&[0, 0]); // Ethernet padding is not kept
                    let p = parsed(&input);
                    let mut out = vec![0xEE; 3];
                    assert!(build_route_output(&input, &p, &next_hop(vout), &mut out));
                    let l2 = if vout.is_some() { 18 } else { 14 };
                    assert_eq!(out[..12], [2, 0, 0, 0, 0, 0x0D, 2, 0, 0, 0, 0, 5]);
                    assert_eq!(
                        out[l2..],
                        input[p.l3_offset..p.l3_offset + p.ip_len],
                        "ipv6 {ipv6} tcp {tcp}"
                    );
                }
            }
        }
    }

    #[test]
    fn literal_ipv4_in_ipv4() {
        #[rustfmt::skip]
        let input = [
            0x02, 0, 0, 0, 0, 0x02,  0x02, 0, 0, 0, 0, 0x01,  0x08, 0x00,
            0x45, 0x00, 0x00, 0x20,  0x00, 0x01, 0x40, 0x00,  0x40, 0x11, 0x4E, 0x90,
            192, 0, 2, 1,  198, 51, 100, 7,
            0x14, 0xE9, 0x00, 0x35,  0x00, 0x0C, 0x00, 0x00,  1, 2, 3, 4,
        ];
        // Outer: 45 00 0034 0000 4000 40 04 csum 0a000002 0a000010 (the inner DF is kept); the
        // checksum by hand: 4500 + 0034 + 4000 + 4004 + 0a00 + 0002 + 0a00 + 0010 = 0xD94A,
        // complemented 0x26B5.
        #[rustfmt::skip]
        let expected = [
            0x02, 0, 0, 0, 0, 0x0D,  0x02, 0, 0, 0, 0, 0x05,  0x08, 0x00,
            0x45, 0x00, 0x00, 0x34,  0x00, 0x00, 0x40, 0x00,  0x40, 0x04, 0x26, 0xB5,
            10, 0, 0, 2,  10, 0, 0, 16,
            0x45, 0x00, 0x00, 0x20,  0x00, 0x01, 0x40, 0x00,  0x40, 0x11, 0x4E, 0x90,
            192, 0, 2, 1,  198, 51, 100, 7,
            0x14, 0xE9, 0x00, 0x35,  0x00, 0x0C, 0x00, 0x00,  1, 2, 3, 4,
        ];
        let p = parsed(&input);
        let mut out = Vec::new();
        assert!(build_tunnel_output(&input, &p, &next_hop(None), &tunnel(false), &mut out));
        assert_eq!(out, expected);
    }

    #[test]
    fn tunnels_parse_as_ip_in_ip_with_valid_outer_checksums() {
        for ipv6 in [false, true] {
            for tcp in [false, true] {
                for vout in [None, Some(0x0064)] {
                    let input = frame(&spec(ipv6, tcp, None));
                    let p = parsed(&input);
                    let mut out = Vec::new();
                    assert!(build_tunnel_output(&input, &p, &next_hop(vout), &tunnel(ipv6), &mut out));
                    let l2 = if vout.is_some() { 18 } else { 14 };
                    assert_eq!(out.len(), l2 + tunnel_overhead(ipv6) + p.ip_len);
                    assert_eq!(
                        out[l2 + tunnel_overhead(ipv6)..],
                        input[14..14 + p.ip_len],
                        "inner unchanged"
                    );
                    let seen = SlicedPacket::from_ethernet(&out).expect("etherparse reads the frame");
                    match seen.net {
                        Some(NetSlice::Ipv4(ip)) => {
                            assert!(!ipv6);
                            let h = ip.header();
                            assert_eq!(h.protocol().0, IPPROTO_IPIP);
                            assert_eq!(h.ttl(), TUNNEL_TTL);
                            assert_eq!(h.source(), [10, 0, 0, 2]);
                            assert_eq!(h.destination(), [10, 0, 0, 16]);
                            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                        }
                        Some(NetSlice::Ipv6(ip)) => {
                            assert!(ipv6);
                            let h = ip.header();
                            assert_eq!(h.next_header().0, IPPROTO_IPV6);
                            assert_eq!(h.hop_limit(), TUNNEL_TTL);
                            assert_eq!(h.source(), tunnel(true).src);
                            assert_eq!(h.destination(), tunnel(true).dst);
                            assert_eq!(usize::from(h.payload_length()), p.ip_len);
                        }
                        other => panic!("not IP: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn a_frame_the_classification_does_not_fit_builds_nothing() {
        let input = frame(&spec(false, true, None));
        let p = Parsed { l3_offset: 14, ip_len: input.len(), ..parsed(&input) };
        let mut out = vec![1, 2, 3];
        assert!(!build_route_output(&input, &p, &next_hop(None), &mut out));
        assert!(out.is_empty());
        assert!(!build_tunnel_output(&input, &p, &next_hop(None), &tunnel(false), &mut out));
        assert!(out.is_empty());
    }
}
