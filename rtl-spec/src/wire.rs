//! Zerocopy views of the wire headers the datapath reads and rewrites: Ethernet II, the 802.1Q
//! tag, IPv4 (fixed part), IPv6, TCP (fixed part) and UDP; and the two the NIC only punts but the
//! host's slow path answers: ARP (Ethernet/IPv4) and the common ICMP/ICMPv6 header.
//!
//! Each view is a `#[repr(C)]` struct of bytes and network-byte-order integers, with alignment 1,
//! laid over a packet buffer with `ref_from_prefix` / `mut_from_prefix`: reading a field reads
//! the packet, storing a field writes the packet. Nothing is parsed into an owned structure and
//! serialized back, so a rewrite touches exactly the bytes it means to and every other bit
//! (reserved bits, ECN, options, payload) passes through untouched. Sub-byte fields (IHL, flags,
//! data offset) are exposed through accessors over the raw bytes.

use zerocopy::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType (TPID) of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType (TPID) of an 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88A8;

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of IPv4 carried in IP (IP-in-IP, RFC 2003).
pub const IPPROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6 carried in IP (IPv6-in-IPv6, RFC 2473).
pub const IPPROTO_IPV6: u8 = 41;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 next-header number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 next-header number of the fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;
/// IPv6 extension headers other than the fragment header (hop-by-hop, routing, ESP, AH,
/// destination options, mobility, HIP, shim6, and the two experimental numbers): the NIC does
/// not walk extension chains and punts these as `Ipv6Ext`.
pub const IPV6_EXT_HEADERS: [u8; 10] = [0, 43, 50, 51, 60, 135, 139, 140, 253, 254];

/// TCP flag FIN.
pub const TCP_FIN: u8 = 0x01;
/// TCP flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag RST.
pub const TCP_RST: u8 = 0x04;
/// TCP flag PSH.
pub const TCP_PSH: u8 = 0x08;
/// TCP flag ACK.
pub const TCP_ACK: u8 = 0x10;

/// TCP option kind: end of option list.
pub const TCP_OPT_EOL: u8 = 0;
/// TCP option kind: no-operation (one byte of padding).
pub const TCP_OPT_NOP: u8 = 1;
/// TCP option kind: selective acknowledgement blocks (RFC 2018).
pub const TCP_OPT_SACK: u8 = 5;
/// TCP option kind: timestamps (RFC 7323): kind, length, TSval, TSecr.
pub const TCP_OPT_TIMESTAMP: u8 = 8;
/// The length of a well-formed timestamp option (kind and length bytes included).
pub const TCP_OPT_TIMESTAMP_LEN: u8 = 10;

/// Ethernet II header: 14 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct EthernetHeader {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType, or the TPID `0x8100` when a VLAN tag follows.
    pub ethertype: U16,
}

/// The 4 bytes that follow an Ethernet header whose EtherType is `0x8100` (the TPID): the tag
/// control information and the EtherType of what the tag encapsulates. This is the split Linux's
/// `vlan_hdr` uses, so a tagged frame is an [`EthernetHeader`] then a `VlanTag`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct VlanTag {
    /// Tag control information: PCP (3 bits), DEI (1), VID (12).
    pub tci: U16,
    /// EtherType of the encapsulated packet.
    pub ethertype: U16,
}

/// IPv4 header, the fixed 20 bytes (options, if any, follow).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Ipv4Header {
    /// Version (high nibble) and IHL in 32-bit words (low nibble).
    pub version_ihl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Total length of the IP packet, header included.
    pub total_len: U16,
    /// Identification.
    pub ident: U16,
    /// Flags (reserved, DF, MF) and fragment offset in 8-byte units.
    pub flags_frag: U16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload.
    pub proto: u8,
    /// Header checksum.
    pub checksum: U16,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
}

impl Ipv4Header {
    /// Bit "don't fragment" of [`Self::flags_frag`].
    pub const DF: u16 = 0x4000;
    /// Bit "more fragments" of [`Self::flags_frag`].
    pub const MF: u16 = 0x2000;
    /// Fragment offset mask of [`Self::flags_frag`].
    pub const FRAG_OFFSET: u16 = 0x1FFF;

    /// IP version (4 for a well-formed header).
    pub fn version(&self) -> u8 {
        self.version_ihl >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.version_ihl & 0x0F) * 4
    }
    /// Whether this packet is a fragment: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.flags_frag.get() & (Self::MF | Self::FRAG_OFFSET) != 0
    }
}

/// IPv6 header: 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct Ipv6Header {
    /// Version (4 bits), traffic class (8) and flow label (20).
    pub ver_tc_flow: U32,
    /// Length of what follows this header.
    pub payload_len: U16,
    /// Next header (protocol or extension header).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
}

impl Ipv6Header {
    /// IP version (6 for a well-formed header).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow.get() >> 28) as u8
    }
}

/// TCP header, the fixed 20 bytes (options, if any, follow).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Sequence number.
    pub seq: U32,
    /// Acknowledgement number.
    pub ack: U32,
    /// Data offset in 32-bit words (high nibble), reserved bits and NS (low nibble).
    pub data_off: u8,
    /// Flags: CWR ECE URG ACK PSH RST SYN FIN, high bit first.
    pub flags: u8,
    /// Receive window.
    pub window: U16,
    /// Checksum over the pseudo-header, header and payload.
    pub checksum: U16,
    /// Urgent pointer.
    pub urgent: U16,
}

impl TcpHeader {
    /// Header length in bytes, options included (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.data_off >> 4) * 4
    }
}

/// UDP header: 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct UdpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Length of header and payload.
    pub len: U16,
    /// Checksum; 0 over IPv4 means "none".
    pub checksum: U16,
}

/// ARP for IPv4 over Ethernet (RFC 826): 28 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct ArpHeader {
    /// Hardware type (1: Ethernet).
    pub htype: U16,
    /// Protocol type (0x0800: IPv4).
    pub ptype: U16,
    /// Hardware address length (6).
    pub hlen: u8,
    /// Protocol address length (4).
    pub plen: u8,
    /// Operation: 1 request, 2 reply.
    pub oper: U16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: [u8; 4],
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: [u8; 4],
}

impl ArpHeader {
    /// `oper` of a request.
    pub const REQUEST: u16 = 1;
    /// `oper` of a reply.
    pub const REPLY: u16 = 2;
}

/// The first 8 bytes of every ICMP (RFC 792) and ICMPv6 (RFC 4443) message: type, code,
/// checksum and 4 bytes whose meaning depends on the type (echo identifier and sequence; the
/// next-hop MTU of "fragmentation needed"; the MTU of "packet too big"; zero otherwise).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
pub struct IcmpHeader {
    /// Message type.
    pub kind: u8,
    /// Message code.
    pub code: u8,
    /// Checksum (ICMPv6: over the IPv6 pseudo-header too).
    pub checksum: U16,
    /// Type-specific word.
    pub rest: [u8; 4],
}

/// EtherType of IPv4 carried in ARP's `ptype`.
pub const ARP_HTYPE_ETHERNET: u16 = 1;

/// ICMP type: echo reply.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMP type: destination unreachable (code 4: fragmentation needed).
pub const ICMP_DEST_UNREACH: u8 = 3;
/// ICMP type: echo request.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP type: time exceeded.
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 type: destination unreachable.
pub const ICMPV6_DEST_UNREACH: u8 = 1;
/// ICMPv6 type: packet too big.
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 type: time exceeded.
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 type: echo request.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 type: echo reply.
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// ICMPv6 type: neighbour solicitation.
pub const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type: neighbour advertisement.
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;

// The views are the wire: any other size is a bug.
const _: () = {
    assert!(size_of::<EthernetHeader>() == 14);
    assert!(size_of::<VlanTag>() == 4);
    assert!(size_of::<Ipv4Header>() == 20);
    assert!(size_of::<Ipv6Header>() == 40);
    assert!(size_of::<TcpHeader>() == 20);
    assert!(size_of::<UdpHeader>() == 8);
    assert!(size_of::<ArpHeader>() == 28);
    assert!(size_of::<IcmpHeader>() == 8);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_and_vlan_over_literal_bytes() {
        #[rustfmt::skip]
        let frame = [
            0x02, 0x00, 0x00, 0x00, 0x00, 0x02,   // dst
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01,   // src
            0x81, 0x00,                           // TPID 802.1Q
            0x60, 0x64,                           // TCI: PCP 3, DEI 0, VID 100
            0x08, 0x00,                           // IPv4
            0xAA,                                 // (payload)
        ];
        let (eth, rest) = EthernetHeader::ref_from_prefix(&frame).unwrap();
        assert_eq!(eth.dst, [2, 0, 0, 0, 0, 2]);
        assert_eq!(eth.src, [2, 0, 0, 0, 0, 1]);
        assert_eq!(eth.ethertype.get(), ETHERTYPE_VLAN);
        let (tag, rest) = VlanTag::ref_from_prefix(rest).unwrap();
        assert_eq!(tag.tci.get(), 0x6064);
        assert_eq!(tag.tci.get() & 0x0FFF, 100);
        assert_eq!(tag.ethertype.get(), ETHERTYPE_IPV4);
        assert_eq!(rest, [0xAA]);
        // A view never reads past the buffer.
        assert!(EthernetHeader::ref_from_prefix(&frame[..13]).is_err());
    }

    #[test]
    fn ipv4_over_literal_bytes() {
        #[rustfmt::skip]
        let mut bytes = [
            0x45, 0x00, 0x00, 0x3C,               // v4, IHL 5, TOS 0, total length 60
            0x1C, 0x46, 0x40, 0x00,               // id 0x1C46, DF, offset 0
            0x40, 0x06, 0xB1, 0xE6,               // TTL 64, TCP, checksum 0xB1E6
            0xAC, 0x10, 0x0A, 0x63,               // 172.16.10.99
            0xAC, 0x10, 0x0A, 0x0C,               // 172.16.10.12
        ];
        let (ip, _) = Ipv4Header::ref_from_prefix(&bytes).unwrap();
        assert_eq!((ip.version(), ip.header_len(), ip.total_len.get()), (4, 20, 60));
        assert_eq!((ip.ttl, ip.proto, ip.checksum.get()), (64, IPPROTO_TCP, 0xB1E6));
        assert_eq!((ip.src, ip.dst), ([172, 16, 10, 99], [172, 16, 10, 12]));
        assert!(!ip.is_fragment(), "DF alone is not a fragment");
        // A store through the mutable view is a store into the buffer.
        let (ip, _) = Ipv4Header::mut_from_prefix(&mut bytes).unwrap();
        ip.ttl = 63;
        ip.flags_frag.set(0x2000);
        assert!(ip.is_fragment());
        ip.checksum.set(0x1234);
        assert_eq!(bytes[6..12], [0x20, 0x00, 63, 0x06, 0x12, 0x34]);
    }

    #[test]
    fn ipv6_over_literal_bytes() {
        #[rustfmt::skip]
        let bytes = [
            0x60, 0x0A, 0xBC, 0xDE,               // v6, TC 0x00, flow label 0xABCDE
            0x00, 0x14, 0x11, 0x40,               // payload 20, UDP, hop limit 64
            0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,   // 2001:db8::1
            0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,   // 2001:db8::2
        ];
        let (ip, rest) = Ipv6Header::ref_from_prefix(&bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.ver_tc_flow.get() & 0xF_FFFF, 0xABCDE);
        assert_eq!((ip.payload_len.get(), ip.next_header, ip.hop_limit), (20, IPPROTO_UDP, 64));
        assert_eq!(ip.src[15], 1);
        assert_eq!(ip.dst[..4], [0x20, 0x01, 0x0D, 0xB8]);
    }

    #[test]
    fn tcp_and_udp_over_literal_bytes() {
        #[rustfmt::skip]
        let mut tcp = [
            0x9C, 0x40, 0x00, 0x50,               // 40000 -> 80
            0x00, 0x00, 0x10, 0x00,               // seq 4096
            0x00, 0x00, 0x20, 0x01,               // ack 8193
            0x60, 0x12, 0xFF, 0xFF,               // data offset 6, SYN|ACK, window 65535
            0xAB, 0xCD, 0x00, 0x00,               // checksum, urgent 0
            0x02, 0x04, 0x05, 0xB4,               // option MSS 1460
        ];
        let (h, opts) = TcpHeader::ref_from_prefix(&tcp).unwrap();
        assert_eq!((h.src_port.get(), h.dst_port.get()), (40000, 80));
        assert_eq!((h.seq.get(), h.ack.get()), (4096, 8193));
        assert_eq!((h.header_len(), h.flags), (24, TCP_SYN | TCP_ACK));
        assert_eq!((h.window.get(), h.checksum.get(), h.urgent.get()), (0xFFFF, 0xABCD, 0));
        assert_eq!(opts, [0x02, 0x04, 0x05, 0xB4]);
        let (h, _) = TcpHeader::mut_from_prefix(&mut tcp).unwrap();
        h.seq.set(0xDEAD_BEEF);
        assert_eq!(tcp[4..8], [0xDE, 0xAD, 0xBE, 0xEF]);

        let udp = [0x00, 0x35, 0xC3, 0x50, 0x00, 0x0C, 0x00, 0x00, 1, 2, 3, 4];
        let (h, payload) = UdpHeader::ref_from_prefix(&udp).unwrap();
        assert_eq!((h.src_port.get(), h.dst_port.get(), h.len.get(), h.checksum.get()), (53, 50000, 12, 0));
        assert_eq!(payload, [1, 2, 3, 4]);
        assert!(UdpHeader::ref_from_prefix(&udp[..7]).is_err());
    }

    #[test]
    fn arp_and_icmp_over_literal_bytes() {
        #[rustfmt::skip]
        let arp = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,   // Ethernet, IPv4, request
            0x02, 0, 0, 0, 0, 0x01, 10, 10, 1, 10,       // sender 02:00:00:00:00:01 10.10.1.10
            0, 0, 0, 0, 0, 0, 10, 10, 1, 100,            // target ? 10.10.1.100
        ];
        let (a, rest) = ArpHeader::ref_from_prefix(&arp).unwrap();
        assert!(rest.is_empty());
        assert_eq!((a.htype.get(), a.ptype.get(), a.oper.get()), (1, ETHERTYPE_IPV4, ArpHeader::REQUEST));
        assert_eq!((a.spa, a.tpa), ([10, 10, 1, 10], [10, 10, 1, 100]));
        let icmp = [8, 0, 0xF7, 0xFE, 0x00, 0x01, 0x00, 0x00];
        let (h, _) = IcmpHeader::ref_from_prefix(&icmp).unwrap();
        assert_eq!((h.kind, h.code, h.checksum.get(), h.rest), (ICMP_ECHO_REQUEST, 0, 0xF7FE, [0, 1, 0, 0]));
    }
}
