//! What the slow path reads in a punted frame, and the checksums it verifies.
//!
//! [`parse`] lays the zerocopy views of [`rtl_spec::wire`] over a frame and records where each
//! layer starts and what the slow path decides on (addresses, ports, TCP flags, ICMP type). It
//! never copies the packet and never panics: a frame too short for what its headers claim is a
//! [`ParseError`], counted by the caller. [`verify_checksums`] recomputes the IPv4 header
//! checksum and the TCP/UDP/ICMP checksum from scratch: the slow path drops a packet with a bad
//! one (the NIC's fast path, by contrast, only updates checksums incrementally).

use rtl_spec::wire::{
    ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, EthernetHeader, IPPROTO_FRAGMENT,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IcmpHeader, Ipv4Header, Ipv6Header, TcpHeader,
    UdpHeader, VlanTag,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use zerocopy::FromBytes;

/// Why a frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its headers say.
    Truncated,
    /// A version, header length or total length that does not hold together.
    Malformed,
}

/// The network layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// IPv4 or IPv6.
    Ip(IpInfo),
    /// ARP (the header starts at [`Pkt::l3`]).
    Arp,
    /// Anything else (LLDP, ...).
    Other(u16),
}

/// The IP layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol (after any IPv6 fragment header).
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Offset of the transport header.
    pub l4: usize,
    /// End of the IP packet in the frame (Ethernet padding after it is not part of it).
    pub end: usize,
    /// A fragment (IPv4 MF or offset, or an IPv6 fragment header).
    pub fragment: bool,
    /// A fragment other than the first: no transport header at `l4`.
    pub later_fragment: bool,
    /// IPv4 with options.
    pub options: bool,
}

impl IpInfo {
    /// IPv6.
    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// The transport layer, when there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP: ports, flags, sequence and acknowledgement numbers, header length.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Header length with options.
        header_len: usize,
    },
    /// A UDP datagram and its ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP or ICMPv6.
    Icmp {
        /// The ICMP message type.
        kind: u8,
        /// The ICMP code within the type.
        code: u8,
    },
    /// Another protocol, or a later fragment.
    None,
}

/// A frame as the slow path reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pkt {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// The 802.1Q tag's TCI, if the frame has one.
    pub vlan: Option<u16>,
    /// Offset of the network header (14, or 18 with a tag).
    pub l3: usize,
    /// The network layer.
    pub net: L3,
    /// The transport layer.
    pub l4: L4,
}

impl Pkt {
    /// The IP layer, if the frame is IP.
    pub fn ip(&self) -> Option<&IpInfo> {
        match &self.net {
            L3::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// Source and destination ports of TCP or UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => Some((sport, dport)),
            _ => None,
        }
    }

    /// TCP flags (0 for anything else).
    pub fn tcp_flags(&self) -> u8 {
        match self.l4 {
            L4::Tcp { flags, .. } => flags,
            _ => 0,
        }
    }

    /// TCP sequence number (0 for anything else).
    pub fn tcp_seq(&self) -> u32 {
        match self.l4 {
            L4::Tcp { seq, .. } => seq,
            _ => 0,
        }
    }
}

/// Reads a frame.
pub fn parse(frame: &[u8]) -> Result<Pkt, ParseError> {
    let (eth, mut rest) = EthernetHeader::ref_from_prefix(frame).map_err(|_| ParseError::Truncated)?;
    let mut ethertype = eth.ethertype.get();
    let mut l3 = 14;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN {
        let (tag, r) = VlanTag::ref_from_prefix(rest).map_err(|_| ParseError::Truncated)?;
        vlan = Some(tag.tci.get());
        ethertype = tag.ethertype.get();
        rest = r;
        l3 = 18;
    }
    let mut pkt =
        Pkt { dst_mac: eth.dst, src_mac: eth.src, vlan, l3, net: L3::Other(ethertype), l4: L4::None };
    match ethertype {
        ETHERTYPE_ARP => pkt.net = L3::Arp,
        ETHERTYPE_IPV4 => pkt.net = L3::Ip(parse_v4(rest, l3)?),
        ETHERTYPE_IPV6 => pkt.net = L3::Ip(parse_v6(rest, l3)?),
        _ => return Ok(pkt),
    }
    if let L3::Ip(ip) = &pkt.net {
        if !ip.later_fragment {
            pkt.l4 = parse_l4(ip.proto, frame.get(ip.l4..ip.end).ok_or(ParseError::Truncated)?)?;
        }
    }
    Ok(pkt)
}

fn parse_v4(bytes: &[u8], l3: usize) -> Result<IpInfo, ParseError> {
    let (h, _) = Ipv4Header::ref_from_prefix(bytes).map_err(|_| ParseError::Truncated)?;
    let hl = h.header_len();
    let total = usize::from(h.total_len.get());
    if h.version() != 4 || hl < 20 || total < hl {
        return Err(ParseError::Malformed);
    }
    if total > bytes.len() {
        return Err(ParseError::Truncated);
    }
    let frag_off = h.flags_frag.get() & Ipv4Header::FRAG_OFFSET;
    Ok(IpInfo {
        src: IpAddr::V4(Ipv4Addr::from(h.src)),
        dst: IpAddr::V4(Ipv4Addr::from(h.dst)),
        proto: h.proto,
        ttl: h.ttl,
        l4: l3 + hl,
        end: l3 + total,
        fragment: h.is_fragment(),
        later_fragment: frag_off != 0,
        options: hl > 20,
    })
}

fn parse_v6(bytes: &[u8], l3: usize) -> Result<IpInfo, ParseError> {
    let (h, rest) = Ipv6Header::ref_from_prefix(bytes).map_err(|_| ParseError::Truncated)?;
    if h.version() != 6 {
        return Err(ParseError::Malformed);
    }
    let payload = usize::from(h.payload_len.get());
    if payload > rest.len() {
        return Err(ParseError::Truncated);
    }
    let mut info = IpInfo {
        src: IpAddr::V6(Ipv6Addr::from(h.src)),
        dst: IpAddr::V6(Ipv6Addr::from(h.dst)),
        proto: h.next_header,
        ttl: h.hop_limit,
        l4: l3 + 40,
        end: l3 + 40 + payload,
        fragment: false,
        later_fragment: false,
        options: false,
    };
    // One fragment header is understood (it is what path-MTU trouble produces); any other
    // extension header leaves `proto` at its number and no transport header is read.
    if info.proto == IPPROTO_FRAGMENT {
        let f = rest.get(..8).ok_or(ParseError::Truncated)?;
        info.proto = f[0];
        info.fragment = true;
        info.later_fragment = u16::from_be_bytes([f[2], f[3]]) & 0xFFF8 != 0;
        info.l4 += 8;
    }
    Ok(info)
}

fn parse_l4(proto: u8, seg: &[u8]) -> Result<L4, ParseError> {
    Ok(match proto {
        IPPROTO_TCP => {
            let (t, _) = TcpHeader::ref_from_prefix(seg).map_err(|_| ParseError::Truncated)?;
            let header_len = t.header_len();
            if header_len < 20 {
                return Err(ParseError::Malformed);
            }
            if header_len > seg.len() {
                return Err(ParseError::Truncated);
            }
            L4::Tcp {
                sport: t.src_port.get(),
                dport: t.dst_port.get(),
                flags: t.flags,
                seq: t.seq.get(),
                ack: t.ack.get(),
                header_len,
            }
        }
        IPPROTO_UDP => {
            let (u, _) = UdpHeader::ref_from_prefix(seg).map_err(|_| ParseError::Truncated)?;
            L4::Udp { sport: u.src_port.get(), dport: u.dst_port.get() }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let (i, _) = IcmpHeader::ref_from_prefix(seg).map_err(|_| ParseError::Truncated)?;
            L4::Icmp { kind: i.kind, code: i.code }
        }
        _ => L4::None,
    })
}

/// The ones'-complement sum of `data` as big-endian words (an odd last byte padded with zero),
/// added to `acc`, not yet folded.
pub fn sum_words(acc: u64, data: &[u8]) -> u64 {
    // Summed four bytes at a time: a big-endian 32-bit word is `hi · 2^16 + lo`, and 2^16 is 1
    // in ones'-complement arithmetic (modulo 0xFFFF), so it adds what its two 16-bit words add,
    // with half the additions. The sum stays far below 2^64 for any frame.
    let mut sum = acc;
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        sum += u64::from(u32::from_be_bytes([q[0], q[1], q[2], q[3]]));
    }
    match *quads.remainder() {
        [a, b, c] => sum + u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => sum + u64::from(u16::from_be_bytes([a, b])),
        [a] => sum + (u64::from(a) << 8),
        _ => sum,
    }
}

/// Folds a sum into 16 bits and complements it: the Internet checksum.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header sum of TCP, UDP and ICMPv6 (RFC 793, 768, 8200 §8.1).
pub fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u64 {
    let mut s = sum_words(0, &crate::addr::to_bytes(src)[..if src.is_ipv6() { 16 } else { 4 }]);
    s = sum_words(s, &crate::addr::to_bytes(dst)[..if dst.is_ipv6() { 16 } else { 4 }]);
    s + u64::from(proto) + len as u64
}

/// The checksum a transport segment must carry (TCP, UDP, ICMPv6 with the pseudo-header; ICMP
/// without), computed with its checksum field taken as zero.
pub fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, seg: &[u8], csum_at: usize) -> u16 {
    let base = if proto == IPPROTO_ICMP { 0 } else { pseudo_sum(src, dst, proto, seg.len()) };
    let mut s = sum_words(base, seg.get(..csum_at).unwrap_or(seg));
    s = sum_words(s, seg.get(csum_at + 2..).unwrap_or(&[]));
    fold(s)
}

/// Offset of the checksum field in a transport header, for the protocols that have one.
pub fn checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        IPPROTO_TCP => Some(16),
        IPPROTO_UDP => Some(6),
        IPPROTO_ICMP | IPPROTO_ICMPV6 => Some(2),
        _ => None,
    }
}

/// Whether the IPv4 header checksum and the transport checksum of `frame` are right. A UDP
/// checksum of zero over IPv4 means "none" and passes; fragments pass their transport check
/// (it covers the whole datagram, which the slow path does not reassemble).
pub fn verify_checksums(frame: &[u8], pkt: &Pkt) -> bool {
    let Some(ip) = pkt.ip() else { return true };
    if !ip.is_v6() {
        let Some(h) = frame.get(pkt.l3..ip.l4) else { return false };
        if fold(sum_words(0, h)) != 0 {
            return false;
        }
    }
    if ip.fragment {
        return true;
    }
    let Some(off) = checksum_offset(ip.proto) else { return true };
    let Some(seg) = frame.get(ip.l4..ip.end) else { return false };
    let Some(field) = seg.get(off..off + 2) else { return false };
    let stored = u16::from_be_bytes([field[0], field[1]]);
    if ip.proto == IPPROTO_UDP && stored == 0 {
        return !ip.is_v6();
    }
    if ip.proto == IPPROTO_ICMP && ip.is_v6() || ip.proto == IPPROTO_ICMPV6 && !ip.is_v6() {
        return false;
    }
    let want = l4_checksum(ip.src, ip.dst, ip.proto, seg, off);
    // A computed UDP zero is sent as 0xFFFF; for TCP both zeros are the same sum.
    stored == want || (want == 0 && stored == 0xFFFF) || (want == 0xFFFF && stored == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_test_support::frame::{L4 as Wire, Pkt, Seg};

    fn tcp_v4(flags_syn: bool, payload: &[u8]) -> Vec<u8> {
        let s = Seg::new("10.0.0.1:40000", "10.0.0.2:80").window(64240).data(payload);
        let s = if flags_syn { s.syn() } else { s.ack(5) };
        s.frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tcp_ipv4_fields_and_checksums() {
        let f = tcp_v4(true, b"");
        let p = parse(&f).unwrap();
        let ip = p.ip().unwrap();
        assert_eq!((ip.src.to_string().as_str(), ip.dst.to_string().as_str()), ("10.0.0.1", "10.0.0.2"));
        assert_eq!((ip.proto, ip.ttl, ip.l4, ip.end), (6, 64, 34, f.len()));
        assert_eq!(p.ports(), Some((40000, 80)));
        assert_eq!(p.tcp_flags(), 0x02);
        assert!(verify_checksums(&f, &p));
        let mut bad = f.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert!(!verify_checksums(&bad, &parse(&bad).unwrap()), "a flipped bit fails the TCP checksum");
        let mut bad = f.clone();
        bad[22] ^= 1; // TTL: the IPv4 header checksum
        assert!(!verify_checksums(&bad, &parse(&bad).unwrap()));
    }

    #[test]
    fn udp_ipv6_vlan_and_icmp() {
        let udp = Wire::Udp { sport: 53, dport: 5353, zero_csum: false };
        let out = Pkt::ip([0xfd; 16].into(), [0xfe; 16].into(), 9, udp, b"hello")
            .l2([2; 6], [3; 6])
            .with(|p| p.vlan = Some(7))
            .build();
        let p = parse(&out).unwrap();
        assert_eq!(p.vlan.map(|t| t & 0xFFF), Some(7));
        assert_eq!(p.l3, 18);
        assert!(p.ip().unwrap().is_v6());
        assert_eq!(p.ports(), Some((53, 5353)));
        assert!(verify_checksums(&out, &p));
        let out = Pkt::ip(ip("1.1.1.1"), ip("2.2.2.2"), 9, Wire::Icmp, b"ping").l2([2; 6], [3; 6]).build();
        let p = parse(&out).unwrap();
        assert_eq!(p.l4, L4::Icmp { kind: 8, code: 0 });
        assert!(verify_checksums(&out, &p));
    }

    #[test]
    fn udp_zero_checksum_over_ipv4_is_none_and_over_ipv6_is_bad() {
        let udp = Wire::Udp { sport: 1, dport: 2, zero_csum: true };
        let out = Pkt::ip(ip("1.1.1.1"), ip("2.2.2.2"), 9, udp, b"x").l2([2; 6], [3; 6]).build();
        assert_eq!(out[40..42], [0, 0]);
        assert!(verify_checksums(&out, &parse(&out).unwrap()));
    }

    #[test]
    fn short_and_lying_frames_are_errors_not_panics() {
        let f = tcp_v4(false, b"data");
        for n in 0..f.len() {
            let _ = parse(&f[..n]);
        }
        let mut lie = f.clone();
        lie[16] = 0xFF; // total length beyond the frame
        assert_eq!(parse(&lie), Err(ParseError::Truncated));
        let mut lie = f.clone();
        lie[14] = 0x43; // IHL 3
        assert_eq!(parse(&lie), Err(ParseError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(p) = parse(&bytes) {
                let _ = verify_checksums(&bytes, &p);
            }
        }

        /// The four-bytes-at-a-time sum folds to what RFC 1071's word-by-word sum folds to,
        /// whatever the length (odd ones too) and the starting sum.
        #[test]
        fn the_wide_sum_folds_as_the_word_by_word_sum(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            acc in 0u64..0x3_0000,
        ) {
            let mut words = acc;
            for w in bytes.chunks(2) {
                words += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
            }
            proptest::prop_assert_eq!(fold(sum_words(acc, &bytes)), fold(words));
        }
    }
}
