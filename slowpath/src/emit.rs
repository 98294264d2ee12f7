//! Packets the slow path makes itself: ARP and neighbour-discovery requests and answers, ICMP
//! echo replies, and the IP headers around them. Each is written whole with its checksums
//! computed from scratch (these are new packets, not rewrites). Frames are not padded to
//! Ethernet's minimum: the port pads on the wire, as for every frame the NIC sends.

use crate::packet::{fold, pseudo_sum, sum_words};
use rtl_spec::wire::{
    ARP_HTYPE_ETHERNET, ArpHeader, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN,
    ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT, IPPROTO_ICMPV6,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use zerocopy::IntoBytes;

/// The L2 header a packet leaves with (a next hop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct L2 {
    /// Destination MAC (the neighbour).
    pub dst: [u8; 6],
    /// Source MAC (the egress port).
    pub src: [u8; 6],
    /// 802.1Q TCI to tag with, if the next hop is on a VLAN.
    pub vlan: Option<u16>,
}

impl L2 {
    /// Appends the Ethernet header (and tag) for a payload of `ethertype`.
    pub fn write(&self, out: &mut Vec<u8>, ethertype: u16) {
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        if let Some(tci) = self.vlan {
            out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            out.extend_from_slice(&tci.to_be_bytes());
        }
        out.extend_from_slice(&ethertype.to_be_bytes());
    }
}

/// The broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xFF; 6];

/// An ARP frame (`oper` 1 request, 2 reply).
pub fn arp(l2: &L2, oper: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    l2.write(&mut out, ETHERTYPE_ARP);
    let h = ArpHeader {
        htype: ARP_HTYPE_ETHERNET.into(),
        ptype: ETHERTYPE_IPV4.into(),
        hlen: 6,
        plen: 4,
        oper: oper.into(),
        sha,
        spa: spa.octets(),
        tha,
        tpa: tpa.octets(),
    };
    out.extend_from_slice(h.as_bytes());
    out
}

/// An IPv4 header for a new packet of `payload_len` bytes, checksum computed.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    payload_len: usize,
    ident: u16,
) -> [u8; 20] {
    let total = (20 + payload_len) as u16;
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = fold(sum_words(0, &h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// An IPv6 header for a new packet of `payload_len` bytes.
pub fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop_limit: u8, payload_len: usize) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop_limit;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h
}

/// An IP packet (no L2) carrying `payload` (an ICMP/ICMPv6 message whose checksum field is at
/// offset 2, or a transport segment with its checksum at `csum_at`), checksums filled in.
pub fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    mut payload: Vec<u8>,
    csum_at: usize,
) -> Vec<u8> {
    if payload.len() >= csum_at + 2 {
        payload[csum_at..csum_at + 2].copy_from_slice(&[0, 0]);
        let base = if proto == rtl_spec::wire::IPPROTO_ICMP {
            0
        } else {
            pseudo_sum(src, dst, proto, payload.len())
        };
        let c = fold(sum_words(base, &payload));
        let c = if proto == rtl_spec::wire::IPPROTO_UDP && c == 0 { 0xFFFF } else { c };
        payload[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut out = Vec::with_capacity(payload.len() + 40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&ipv4_header(s, d, proto, ttl, payload.len(), 0));
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&ipv6_header(s, d, proto, ttl, payload.len()));
        }
        _ => return Vec::new(),
    }
    out.extend_from_slice(&payload);
    out
}

/// A frame: `l2` then an IP packet.
pub fn frame(l2: &L2, ip_packet: &[u8]) -> Vec<u8> {
    let v6 = ip_packet.first().is_some_and(|b| b >> 4 == 6);
    let mut out = Vec::with_capacity(ip_packet.len() + 18);
    l2.write(&mut out, if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 });
    out.extend_from_slice(ip_packet);
    out
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The Ethernet multicast MAC of an IPv6 multicast address (RFC 2464 §7).
pub fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A neighbour solicitation for `target` from `src` (an IP packet; hop limit 255).
pub fn neighbor_solicit(src: Ipv6Addr, target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![ICMPV6_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1]); // source link-layer address option, 8 bytes
    m.extend_from_slice(&mac);
    ip_packet(IpAddr::V6(src), IpAddr::V6(solicited_node(target)), IPPROTO_ICMPV6, 255, m, 2)
}

/// A solicited neighbour advertisement of `target` at `mac`, to `dst` (an IP packet).
pub fn neighbor_advert(target: Ipv6Addr, dst: Ipv6Addr, mac: [u8; 6], solicited: bool) -> Vec<u8> {
    // Flags: solicited (0x40) and override (0x20).
    let flags = if solicited { 0x60 } else { 0x20 };
    let mut m = vec![ICMPV6_NEIGHBOR_ADVERT, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[2, 1]); // target link-layer address option
    m.extend_from_slice(&mac);
    ip_packet(IpAddr::V6(target), IpAddr::V6(dst), IPPROTO_ICMPV6, 255, m, 2)
}

/// The link-layer address option (`kind` 1 source, 2 target) of a neighbour-discovery message
/// body (after the 8-byte ICMPv6 header and 16-byte target).
pub fn nd_lladdr(body: &[u8], kind: u8) -> Option<[u8; 6]> {
    let mut opts = body.get(24..)?;
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == kind && len >= 8 {
            return opts[2..8].try_into().ok();
        }
        opts = &opts[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{L3, L4, parse, verify_checksums};

    #[test]
    fn arp_reply_reads_back() {
        let l2 = L2 { dst: [2, 0, 0, 0, 0, 9], src: [2, 0, 0, 0, 0, 1], vlan: None };
        let f = arp(
            &l2,
            2,
            [2, 0, 0, 0, 0, 1],
            "10.10.1.100".parse().unwrap(),
            [2, 0, 0, 0, 0, 9],
            "10.10.1.10".parse().unwrap(),
        );
        assert_eq!(f.len(), 42);
        let p = parse(&f).unwrap();
        assert_eq!(p.net, L3::Arp);
        let s = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Arp(a)) = s.net else { panic!("not ARP") };
        assert_eq!(a.sender_protocol_addr(), &[10, 10, 1, 100]);
        assert_eq!(a.target_hw_addr(), &[2, 0, 0, 0, 0, 9]);
    }

    #[test]
    fn neighbour_discovery_messages_have_right_checksums() {
        let src: Ipv6Addr = "fd00:1::1".parse().unwrap();
        let target: Ipv6Addr = "fd00:1::10".parse().unwrap();
        let ns = neighbor_solicit(src, target, [2, 0, 0, 0, 0, 1]);
        let l2 = L2 { dst: multicast_mac(solicited_node(target)), src: [2, 0, 0, 0, 0, 1], vlan: None };
        let f = frame(&l2, &ns);
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0, 0x10]);
        let p = parse(&f).unwrap();
        assert_eq!(p.l4, L4::Icmp { kind: ICMPV6_NEIGHBOR_SOLICIT, code: 0 });
        assert!(verify_checksums(&f, &p));
        sluice_test_support::verify::checksums(&f).unwrap();
        let ip = p.ip().unwrap();
        assert_eq!(nd_lladdr(&f[ip.l4..ip.end], 1), Some([2, 0, 0, 0, 0, 1]));
        let na = neighbor_advert(target, src, [2, 0, 0, 0, 0, 0x10], true);
        let f = frame(&l2, &na);
        sluice_test_support::verify::checksums(&f).unwrap();
        let p = parse(&f).unwrap();
        let ip = p.ip().unwrap();
        assert_eq!(nd_lladdr(&f[ip.l4..ip.end], 2), Some([2, 0, 0, 0, 0, 0x10]));
        assert_eq!(nd_lladdr(&f[ip.l4..ip.end], 1), None);
    }

    #[test]
    fn an_ipv4_udp_packet_is_right() {
        let mut seg = vec![0, 53, 0x13, 0x88, 0, 12, 0, 0];
        seg.extend_from_slice(b"abcd");
        let p = ip_packet("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 17, 64, seg, 6);
        let f = frame(&L2::default(), &p);
        sluice_test_support::verify::checksums(&f).unwrap();
        assert!(verify_checksums(&f, &parse(&f).unwrap()));
    }
}
