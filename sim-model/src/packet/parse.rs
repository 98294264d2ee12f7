//! The parser: classifies a received frame as a flow-lookup candidate, a punt (with its reason)
//! or a drop (with its reason), exactly as the datapath semantics of `rtl_spec` define it.
//!
//! Every header is read through a zerocopy view; a view that does not fit in what is left of the
//! frame is the `Truncated` or malformed case, never a panic. The checks run in the order the
//! contract lists them, because when a frame is wrong in two ways the order decides the reason
//! that is counted.

use super::headers::{
    ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, EthernetHeader,
    IPPROTO_FRAGMENT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV6_EXT_HEADERS, Ipv4Header,
    Ipv6Header, TcpHeader, UdpHeader, VlanTag,
};
use rtl_spec::codes::{DropReason, PuntReason};
use rtl_spec::formats::FlowTuple;
use zerocopy::FromBytes;

/// What the parser learnt about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Parsed {
    /// Offset of the IP header: 14, or 18 with a VLAN tag; 0 when the frame is not IP.
    pub l3_offset: usize,
    /// Offset of the TCP/UDP header; 0 when no transport header was parsed.
    pub l4_offset: usize,
    /// The 802.1Q tag's TCI, if the frame had one.
    pub vlan_tci: Option<u16>,
    /// The packet is IPv6.
    pub ipv6: bool,
    /// IP protocol / IPv6 next header (0 when not IP).
    pub proto: u8,
    /// Addresses as `rtl_spec` stores them (IPv4 in bytes 0..4, the rest zero); ports are 0
    /// unless the packet is TCP or UDP.
    pub tuple: FlowTuple,
    /// The TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ...); 0 unless TCP.
    pub tcp_flags: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Length of the IP packet (IPv4 total length; IPv6 40 + payload length), without the
    /// Ethernet padding that may follow it.
    pub ip_len: usize,
}

/// The parser's verdict on a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// TCP or UDP with no fragment, IPv4 option or IPv6 extension header: goes to flow lookup.
    Lookup(Parsed),
    /// Sent to the host, with what could be parsed (the punt steering uses it).
    Punt(PuntReason, Parsed),
    /// Dropped.
    Drop(DropReason),
}

/// The parser's verdict, with what it learnt written to a [`Parsed`] the caller holds
/// ([`classify_into`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// To the flow lookup (see [`Classified::Lookup`]).
    Lookup,
    /// To the host, for this reason.
    Punt(PuntReason),
    /// Dropped, for this reason.
    Drop(DropReason),
}

/// Classifies a frame (Ethernet header first, no FCS).
#[inline]
pub fn classify(frame: &[u8]) -> Classified {
    let mut parsed = Parsed::default();
    match classify_into(frame, &mut parsed) {
        Verdict::Lookup => Classified::Lookup(parsed),
        Verdict::Punt(reason) => Classified::Punt(reason, parsed),
        Verdict::Drop(reason) => Classified::Drop(reason),
    }
}

/// [`classify`] writing what the parser learnt to `parsed` in place: the receive pipeline
/// parses straight into its burst's slot, where moving the parse out of an enum and into the
/// slot cost a fifth of the parser's instructions. `parsed` is reset first; on a drop it holds
/// nothing useful.
#[inline]
pub fn classify_into(frame: &[u8], parsed: &mut Parsed) -> Verdict {
    *parsed = Parsed::default();
    let Ok((eth, mut rest)) = EthernetHeader::ref_from_prefix(frame) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let mut ethertype = eth.ethertype.get();
    let mut l3_offset = size_of::<EthernetHeader>();
    if ethertype == ETHERTYPE_VLAN {
        let Ok((tag, after)) = VlanTag::ref_from_prefix(rest) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        parsed.vlan_tci = Some(tag.tci.get());
        ethertype = tag.ethertype.get();
        l3_offset += size_of::<VlanTag>();
        rest = after;
        // One tag only: stacked tags are the host's business.
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            return Verdict::Punt(PuntReason::OtherL2);
        }
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(parsed, l3_offset, rest),
        ETHERTYPE_IPV6 => ipv6(parsed, l3_offset, rest),
        ETHERTYPE_ARP => Verdict::Punt(PuntReason::Arp),
        _ => Verdict::Punt(PuntReason::OtherL2),
    }
}

/// IPv4 from `rest` (everything after the L2 header, padding included).
#[inline]
fn ipv4(parsed: &mut Parsed, l3_offset: usize, rest: &[u8]) -> Verdict {
    let Ok((ip, _)) = Ipv4Header::ref_from_prefix(rest) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let header_len = ip.header_len();
    let total_len = usize::from(ip.total_len.get());
    if ip.version() != 4 || header_len < 20 || total_len < header_len || total_len > rest.len() {
        return Verdict::Drop(DropReason::BadL3Header);
    }
    // The IP packet without Ethernet padding, and the transport bytes inside it. Given the checks
    // above these always exist; `get` keeps that an invariant the compiler does not have to trust.
    let (Some(packet), Some(l4)) = (rest.get(..total_len), rest.get(header_len..total_len)) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    debug_assert_eq!(packet.len(), total_len);

    parsed.l3_offset = l3_offset;
    parsed.proto = ip.proto;
    parsed.ttl = ip.ttl;
    parsed.ip_len = total_len;
    // Each address written whole (16 bytes, one store), not as 4 bytes into the zeroed array:
    // the lookup reads the tuple back at once as 8-byte words, and a load that spans two
    // earlier stores cannot be forwarded from them; it waits for both to reach the cache.
    parsed.tuple.src_addr = ipv4_in_16(ip.src);
    parsed.tuple.dst_addr = ipv4_in_16(ip.dst);

    if ip.is_fragment() {
        return Verdict::Punt(PuntReason::Fragment);
    }
    if header_len > 20 {
        return Verdict::Punt(PuntReason::IpOptions);
    }
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => transport(parsed, l3_offset + header_len, l4),
        IPPROTO_ICMP => Verdict::Punt(PuntReason::Icmp),
        _ => Verdict::Punt(PuntReason::OtherL4),
    }
}

/// An IPv4 address as `rtl_spec` stores it: bytes 0..4, the rest zero.
#[inline]
fn ipv4_in_16(addr: [u8; 4]) -> [u8; 16] {
    u128::from(u32::from_le_bytes(addr)).to_le_bytes()
}

/// IPv6 from `rest` (everything after the L2 header, padding included).
fn ipv6(parsed: &mut Parsed, l3_offset: usize, rest: &[u8]) -> Verdict {
    let Ok((ip, after)) = Ipv6Header::ref_from_prefix(rest) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let payload_len = usize::from(ip.payload_len.get());
    let Some(l4) = after.get(..payload_len).filter(|_| ip.version() == 6) else {
        return Verdict::Drop(DropReason::BadL3Header);
    };

    parsed.l3_offset = l3_offset;
    parsed.ipv6 = true;
    parsed.proto = ip.next_header;
    parsed.ttl = ip.hop_limit;
    parsed.ip_len = size_of::<Ipv6Header>() + payload_len;
    parsed.tuple.src_addr = ip.src;
    parsed.tuple.dst_addr = ip.dst;

    match ip.next_header {
        IPPROTO_TCP | IPPROTO_UDP => transport(parsed, l3_offset + size_of::<Ipv6Header>(), l4),
        IPPROTO_ICMPV6 => Verdict::Punt(PuntReason::Icmp),
        IPPROTO_FRAGMENT => Verdict::Punt(PuntReason::Fragment),
        n if IPV6_EXT_HEADERS.contains(&n) => Verdict::Punt(PuntReason::Ipv6Ext),
        _ => Verdict::Punt(PuntReason::OtherL4),
    }
}

/// TCP or UDP (`parsed.proto`) from `l4`, the transport bytes of the IP packet.
#[inline]
fn transport(parsed: &mut Parsed, l4_offset: usize, l4: &[u8]) -> Verdict {
    if parsed.proto == IPPROTO_TCP {
        let Ok((tcp, _)) = TcpHeader::ref_from_prefix(l4) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        if tcp.header_len() < size_of::<TcpHeader>() || tcp.header_len() > l4.len() {
            return Verdict::Drop(DropReason::BadL4Header);
        }
        parsed.tuple.src_port = tcp.src_port;
        parsed.tuple.dst_port = tcp.dst_port;
        parsed.tcp_flags = tcp.flags;
    } else {
        let Ok((udp, _)) = UdpHeader::ref_from_prefix(l4) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        parsed.tuple.src_port = udp.src_port;
        parsed.tuple.dst_port = udp.dst_port;
    }
    parsed.l4_offset = l4_offset;
    Verdict::Lookup
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const MACS: [u8; 12] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];

    /// An untagged Ethernet header with `ethertype`.
    pub(crate) fn eth(ethertype: u16) -> Vec<u8> {
        [&MACS[..], &ethertype.to_be_bytes()].concat()
    }

    /// An Ethernet header with one 802.1Q tag.
    fn eth_vlan(tci: u16, ethertype: u16) -> Vec<u8> {
        [&MACS[..], &[0x81, 0x00], &tci.to_be_bytes(), &ethertype.to_be_bytes()].concat()
    }

    /// A 20-byte IPv4 header 192.0.2.1 → 198.51.100.7, TTL 64, followed by `l4`. The parser
    /// does not check the header checksum, so it is left zero.
    pub(crate) fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        #[rustfmt::skip]
        let header = [
            0x45, 0x00, (total >> 8) as u8, total as u8,
            0x00, 0x01, 0x40, 0x00,                  // id 1, DF
            64, proto, 0x00, 0x00,
            192, 0, 2, 1,
            198, 51, 100, 7,
        ];
        [&header[..], l4].concat()
    }

    /// An IPv6 header 2001:db8::1 → 2001:db8::2, hop limit 64, followed by `l4`.
    pub(crate) fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
        let len = (l4.len() as u16).to_be_bytes();
        let mut header = vec![0x60, 0, 0, 0, len[0], len[1], next, 64];
        header.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        header.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        [&header[..], l4].concat()
    }

    /// A TCP header 40000 → 80 with `flags` and no options.
    pub(crate) fn tcp(flags: u8) -> Vec<u8> {
        vec![0x9C, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
    }

    /// A UDP header 5353 → 53 with 4 bytes of payload.
    fn udp() -> Vec<u8> {
        vec![0x14, 0xE9, 0x00, 0x35, 0x00, 0x0C, 0x00, 0x00, 1, 2, 3, 4]
    }

    fn drop_reason(frame: &[u8]) -> Option<DropReason> {
        match classify(frame) {
            Classified::Drop(r) => Some(r),
            _ => None,
        }
    }

    fn punt_reason(frame: &[u8]) -> Option<PuntReason> {
        match classify(frame) {
            Classified::Punt(r, _) => Some(r),
            _ => None,
        }
    }

    fn lookup(frame: &[u8]) -> Parsed {
        match classify(frame) {
            Classified::Lookup(p) => p,
            other => panic!("expected a lookup, got {other:?}"),
        }
    }

    #[test]
    fn ipv4_tcp_from_literal_bytes() {
        #[rustfmt::skip]
        let frame = [
            0x02, 0, 0, 0, 0, 0x02,  0x02, 0, 0, 0, 0, 0x01,  0x08, 0x00,
            0x45, 0x00, 0x00, 0x28,  0x00, 0x01, 0x40, 0x00,  0x3F, 0x06, 0x00, 0x00,
            10, 0, 0, 1,  10, 0, 0, 2,
            0x9C, 0x40, 0x01, 0xBB,  0, 0, 0, 1,  0, 0, 0, 2,  0x50, 0x11, 0x20, 0x00,  0, 0, 0, 0,
            0, 0, 0, 0, 0, 0,        // Ethernet padding to 60 bytes
        ];
        let p = lookup(&frame);
        assert_eq!((p.l3_offset, p.l4_offset, p.vlan_tci, p.ipv6), (14, 34, None, false));
        assert_eq!((p.proto, p.ttl, p.ip_len, p.tcp_flags), (6, 63, 40, 0x11));
        assert_eq!(p.tuple.src_addr[..4], [10, 0, 0, 1]);
        assert_eq!(p.tuple.dst_addr, [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!((p.tuple.src_port.get(), p.tuple.dst_port.get()), (40000, 443));
    }

    #[test]
    fn vlan_ipv6_udp_from_literal_bytes() {
        let frame = [eth_vlan(0x2064, 0x86DD), ipv6(17, &udp())].concat();
        assert_eq!(frame[12..18], [0x81, 0x00, 0x20, 0x64, 0x86, 0xDD]);
        let p = lookup(&frame);
        assert_eq!((p.l3_offset, p.l4_offset, p.vlan_tci, p.ipv6), (18, 58, Some(0x2064), true));
        assert_eq!((p.proto, p.ttl, p.ip_len, p.tcp_flags), (17, 64, 52, 0));
        assert_eq!(p.tuple.src_addr[15], 1);
        assert_eq!(p.tuple.dst_addr[..2], [0x20, 0x01]);
        assert_eq!((p.tuple.src_port.get(), p.tuple.dst_port.get()), (5353, 53));
    }

    #[test]
    fn ipv4_udp_and_ipv6_tcp_and_vlan_ipv4() {
        let p = lookup(&[eth(0x0800), ipv4(17, &udp())].concat());
        assert_eq!((p.l4_offset, p.proto, p.ip_len), (34, 17, 32));
        let p = lookup(&[eth(0x86DD), ipv6(6, &tcp(0x02))].concat());
        assert_eq!((p.l4_offset, p.proto, p.tcp_flags, p.ip_len), (54, 6, 0x02, 60));
        let p = lookup(&[eth_vlan(5, 0x0800), ipv4(6, &tcp(0x10))].concat());
        assert_eq!((p.l3_offset, p.l4_offset, p.vlan_tci), (18, 38, Some(5)));
    }

    /// The pipeline reuses one `Parsed` per burst slot: nothing of an earlier frame survives
    /// into the next one's parse, whatever the verdicts.
    #[test]
    fn classify_into_leaves_nothing_of_the_previous_frame() {
        let frames = [
            [eth_vlan(5, 0x86DD), ipv6(6, &tcp(0x12))].concat(),
            [eth(0x0806), vec![0; 28]].concat(),
            [eth(0x0800), ipv4(17, &udp())].concat(),
            vec![0; 10],
            [eth(0x0800), ipv4(1, &[8, 0, 0, 0])].concat(),
        ];
        let mut slot = Parsed::default();
        for first in &frames {
            for second in &frames {
                classify_into(first, &mut slot);
                let verdict = classify_into(second, &mut slot);
                let mut fresh = Parsed::default();
                assert_eq!(verdict, classify_into(second, &mut fresh));
                assert_eq!(slot, fresh, "{first:02x?} then {second:02x?}");
            }
        }
    }

    #[test]
    fn l2_drops_and_punts() {
        assert_eq!(drop_reason(&[]), Some(DropReason::Truncated));
        assert_eq!(drop_reason(&eth(0x0800)[..13]), Some(DropReason::Truncated));
        // A tag announced but cut short.
        assert_eq!(drop_reason(&[&MACS[..], &[0x81, 0x00, 0x00]].concat()), Some(DropReason::Truncated));
        assert_eq!(drop_reason(&eth_vlan(1, 0x0800)[..17]), Some(DropReason::Truncated));
        // Stacked tags, an outer service tag, LLDP: OtherL2 (with the one tag seen, if any).
        match classify(&[eth_vlan(7, 0x8100), vec![0; 40]].concat()) {
            Classified::Punt(PuntReason::OtherL2, p) => {
                assert_eq!((p.vlan_tci, p.l3_offset), (Some(7), 0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(punt_reason(&eth_vlan(7, 0x88A8)), Some(PuntReason::OtherL2));
        assert_eq!(punt_reason(&[eth(0x88A8), vec![0; 40]].concat()), Some(PuntReason::OtherL2));
        assert_eq!(punt_reason(&eth(0x88CC)), Some(PuntReason::OtherL2));
        // ARP, tagged or not.
        assert_eq!(punt_reason(&[eth(0x0806), vec![0; 28]].concat()), Some(PuntReason::Arp));
        match classify(&eth_vlan(9, 0x0806)) {
            Classified::Punt(PuntReason::Arp, p) => assert_eq!((p.vlan_tci, p.l3_offset), (Some(9), 0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv4_header_drops() {
        let good = [eth(0x0800), ipv4(6, &tcp(0x10))].concat();
        assert!(matches!(classify(&good), Classified::Lookup(_)));
        let with = |i: usize, v: u8| {
            let mut f = good.clone();
            f[14 + i] = v;
            f
        };
        assert_eq!(drop_reason(&good[..14 + 19]), Some(DropReason::Truncated));
        assert_eq!(drop_reason(&with(0, 0x65)), Some(DropReason::BadL3Header), "version 6");
        assert_eq!(drop_reason(&with(0, 0x44)), Some(DropReason::BadL3Header), "IHL 4");
        assert_eq!(drop_reason(&with(3, 19)), Some(DropReason::BadL3Header), "total below IHL");
        assert_eq!(drop_reason(&with(3, 41)), Some(DropReason::BadL3Header), "total beyond frame");
        // IHL 15 (60 bytes) with a total length of 40 is below the header: BadL3Header.
        assert_eq!(drop_reason(&with(0, 0x4F)), Some(DropReason::BadL3Header));
        // Padding after the IP packet is not part of it.
        let padded = [&good[..], &[0xEE; 10]].concat();
        assert_eq!(lookup(&padded).ip_len, 40);
    }

    #[test]
    fn ipv4_punts_fill_addresses() {
        let frag = |flags_frag: [u8; 2]| {
            let mut f = [eth(0x0800), ipv4(6, &tcp(0x10))].concat();
            f[20..22].copy_from_slice(&flags_frag);
            f
        };
        for ff in [[0x20, 0x00], [0x00, 0x01], [0x40, 0xB9], [0x3F, 0xFF]] {
            match classify(&frag(ff)) {
                Classified::Punt(PuntReason::Fragment, p) => {
                    assert_eq!((p.l3_offset, p.l4_offset, p.proto, p.ip_len), (14, 0, 6, 40));
                    assert_eq!(p.tuple.src_addr[..4], [192, 0, 2, 1]);
                    assert_eq!(p.tuple.dst_addr[..4], [198, 51, 100, 7]);
                    assert_eq!(p.tuple.src_port.get(), 0, "ports of a fragment are not read");
                }
                other => panic!("{ff:?}: {other:?}"),
            }
        }
        // IHL 6: options (a 4-byte NOP row), then TCP.
        let mut opt = ipv4(6, &[&[1, 1, 1, 1][..], &tcp(0x10)].concat());
        opt[0] = 0x46;
        assert_eq!(punt_reason(&[eth(0x0800), opt.clone()].concat()), Some(PuntReason::IpOptions));
        // A fragment with options is a fragment: that check comes first.
        opt[6] = 0x20;
        assert_eq!(punt_reason(&[eth(0x0800), opt].concat()), Some(PuntReason::Fragment));
        match classify(&[eth(0x0800), ipv4(1, &[8, 0, 0, 0, 0, 0, 0, 0])].concat()) {
            Classified::Punt(PuntReason::Icmp, p) => {
                assert_eq!((p.proto, p.ttl, p.l4_offset), (1, 64, 0));
                assert_eq!(p.tuple.dst_addr[..4], [198, 51, 100, 7]);
            }
            other => panic!("{other:?}"),
        }
        for proto in [47, 50, 58, 132] {
            let f = [eth(0x0800), ipv4(proto, &[0; 8])].concat();
            assert_eq!(punt_reason(&f), Some(PuntReason::OtherL4), "proto {proto}");
        }
    }

    #[test]
    fn transport_drops() {
        let short_tcp = &tcp(0x10)[..19];
        assert_eq!(drop_reason(&[eth(0x0800), ipv4(6, short_tcp)].concat()), Some(DropReason::Truncated));
        assert_eq!(drop_reason(&[eth(0x86DD), ipv6(6, short_tcp)].concat()), Some(DropReason::Truncated));
        // The header must be inside the IP packet: bytes of Ethernet padding do not complete it.
        let padded = [eth(0x0800), ipv4(6, short_tcp), vec![0; 20]].concat();
        assert_eq!(drop_reason(&padded), Some(DropReason::Truncated));
        let mut doff4 = tcp(0x10);
        doff4[12] = 0x40;
        assert_eq!(drop_reason(&[eth(0x0800), ipv4(6, &doff4)].concat()), Some(DropReason::BadL4Header));
        assert_eq!(drop_reason(&[eth(0x86DD), ipv6(6, &doff4)].concat()), Some(DropReason::BadL4Header));
        // Data offset 6 (24 bytes) in a 20-byte segment, with padding after the IP packet that
        // must not count as TCP bytes.
        let mut doff6 = tcp(0x10);
        doff6[12] = 0x60;
        let f = [eth(0x0800), ipv4(6, &doff6), vec![0; 8]].concat();
        assert_eq!(drop_reason(&f), Some(DropReason::BadL4Header));
        assert_eq!(drop_reason(&[eth(0x0800), ipv4(17, &udp()[..7])].concat()), Some(DropReason::Truncated));
        assert_eq!(drop_reason(&[eth(0x86DD), ipv6(17, &udp()[..7])].concat()), Some(DropReason::Truncated));
    }

    #[test]
    fn ipv6_drops_and_punts() {
        let good = [eth(0x86DD), ipv6(6, &tcp(0x10))].concat();
        assert_eq!(drop_reason(&good[..14 + 39]), Some(DropReason::Truncated));
        let mut v4 = good.clone();
        v4[14] = 0x40;
        assert_eq!(drop_reason(&v4), Some(DropReason::BadL3Header));
        let mut long = good.clone();
        long[19] = 21;
        assert_eq!(drop_reason(&long), Some(DropReason::BadL3Header));
        let padded = [&good[..], &[0; 6]].concat();
        assert_eq!(lookup(&padded).ip_len, 60);

        let punt = |next: u8| match classify(&[eth(0x86DD), ipv6(next, &[0; 16])].concat()) {
            Classified::Punt(r, p) => {
                assert_eq!(
                    (p.l3_offset, p.ipv6, p.proto, p.ttl, p.ip_len, p.l4_offset),
                    (14, true, next, 64, 56, 0)
                );
                assert_eq!(p.tuple.dst_addr[15], 2);
                r
            }
            other => panic!("next header {next}: {other:?}"),
        };
        assert_eq!(punt(58), PuntReason::Icmp);
        assert_eq!(punt(44), PuntReason::Fragment);
        for ext in IPV6_EXT_HEADERS {
            assert_eq!(punt(ext), PuntReason::Ipv6Ext, "next header {ext}");
        }
        assert_eq!(punt(1), PuntReason::OtherL4, "ICMPv4 inside IPv6 is not ICMP");
        assert_eq!(punt(47), PuntReason::OtherL4);
        assert_eq!(punt(59), PuntReason::OtherL4);
    }

    #[test]
    fn agrees_with_etherparse_on_built_frames() {
        use crate::packet::fixtures::{frame, spec};
        for (ipv6, tcp, vlan) in [(false, true, Some(42)), (true, false, None), (true, true, Some(4095))] {
            let s = spec(ipv6, tcp, vlan);
            let p = lookup(&frame(&s));
            let l3 = if vlan.is_some() { 18 } else { 14 };
            let l4_len = if tcp { 20 } else { 8 } + s.payload.len();
            assert_eq!((p.vlan_tci, p.ipv6, p.proto), (vlan, ipv6, if tcp { 6 } else { 17 }));
            assert_eq!((p.l3_offset, p.l4_offset), (l3, l3 + if ipv6 { 40 } else { 20 }));
            assert_eq!((p.ttl, p.ip_len, p.tuple), (s.ttl, p.l4_offset - l3 + l4_len, s.tuple));
            assert_eq!(p.tcp_flags, if tcp { 0x10 } else { 0 }, "the fixture sets ACK");
        }
    }

    /// A valid frame of each kind the lookup takes, for mutation.
    pub(crate) fn valid_frames() -> Vec<Vec<u8>> {
        vec![
            [eth(0x0800), ipv4(6, &[&tcp(0x10)[..], b"payload"].concat())].concat(),
            [eth(0x0800), ipv4(17, &udp())].concat(),
            [eth_vlan(3, 0x86DD), ipv6(6, &tcp(0x18))].concat(),
            [eth(0x86DD), ipv6(17, &udp())].concat(),
        ]
    }

    proptest! {
        #[test]
        fn classify_never_panics_on_random_bytes(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = classify(&frame);
        }

        #[test]
        fn classify_never_panics_on_mutated_frames(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let mut frame = valid_frames().swap_remove(which);
            for (at, v) in edits {
                let n = frame.len();
                frame[at % n] = v;
            }
            frame.truncate(cut % (frame.len() + 1));
            if let Classified::Lookup(p) = classify(&frame) {
                // Whatever is accepted lies inside the frame.
                prop_assert!(p.l3_offset + p.ip_len <= frame.len());
                prop_assert!(p.l4_offset > p.l3_offset && p.l4_offset < p.l3_offset + p.ip_len);
            }
        }
    }
}
