//! The one frame builder of the tests: a small description of a frame ([`Pkt`]: L2, L3, L4,
//! payload) serialized with etherparse's header types, checksums computed by etherparse, so an
//! input and the output a NIC or the slow path must make of it are both built independently of
//! the code under test. [`Seg`] (a TCP segment) and [`udp`] are shorthands over it.

use crate::flows::{CLIENT_MAC, NIC_MAC};
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header,
    Icmpv4Type, Icmpv6Header, Icmpv6Type, IpFragOffset, IpNumber, Ipv4Header, Ipv6FlowLabel,
    Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, SingleVlanHeader, TcpHeader, TcpOptionElement,
    UdpHeader, VlanId, VlanPcp,
};
use rtl_spec::formats::NextHopEntry;
use std::net::{IpAddr, SocketAddr};

/// The option type of [`Pkt::tcp_options`], for crates that do not depend on etherparse.
pub use etherparse::TcpOptionElement as TcpOption;

/// TCP flag FIN.
pub const FIN: u8 = 1;
/// TCP flag SYN.
pub const SYN: u8 = 2;
/// TCP flag RST.
pub const RST: u8 = 4;
/// TCP flag PSH.
pub const PSH: u8 = 8;
/// TCP flag ACK.
pub const ACK: u8 = 16;

/// IPv6 extension header placed before the transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V6Ext {
    /// None.
    None,
    /// A fragment header (offset 0, more fragments).
    Fragment,
    /// A hop-by-hop options header with one PadN option.
    HopByHop,
}

/// The network layer.
#[derive(Clone, Debug)]
pub enum L3 {
    /// IPv4 (don't-fragment set, as etherparse sets it).
    V4 {
        /// Source address.
        src: [u8; 4],
        /// Destination address.
        dst: [u8; 4],
        /// Time to live.
        ttl: u8,
        /// Header options (a multiple of 4 bytes, at most 40).
        options: Vec<u8>,
        /// More fragments.
        mf: bool,
        /// Fragment offset, in 8-byte units.
        frag_off: u16,
        /// Identification.
        id: u16,
    },
    /// IPv6.
    V6 {
        /// Source address.
        src: [u8; 16],
        /// Destination address.
        dst: [u8; 16],
        /// Hop limit.
        hop: u8,
        /// Extension header before the transport header.
        ext: V6Ext,
    },
}

/// The transport layer.
#[derive(Clone, Debug)]
pub enum L4 {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags ([`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`]).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number (written whether or not [`ACK`] is set).
        ack: u32,
        /// Window.
        window: u16,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Send a zero (absent) checksum; IPv4 only.
        zero_csum: bool,
    },
    /// ICMP echo request, id 7, sequence 1 (ICMPv6 on IPv6).
    Icmp,
    /// An ICMP message of any type (on IPv4).
    Icmp4(Icmpv4Type),
    /// An ICMPv6 message of any type (on IPv6).
    Icmp6(Icmpv6Type),
    /// Any other protocol number; the payload is the whole L4 part.
    Raw(u8),
}

/// One Ethernet frame carrying IP.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// An 802.1Q tag's TCI.
    pub vlan: Option<u16>,
    /// The network layer.
    pub l3: L3,
    /// The transport layer.
    pub l4: L4,
    /// What the transport carries.
    pub payload: Vec<u8>,
    /// Pad the frame with zeros up to this length (Ethernet minimum is 60).
    pub pad_to: usize,
    /// TCP options (TCP only).
    pub tcp_options: Vec<TcpOptionElement>,
}

fn vlan_header(tci: u16, ether_type: EtherType) -> SingleVlanHeader {
    SingleVlanHeader {
        pcp: VlanPcp::try_new((tci >> 13) as u8).unwrap(),
        drop_eligible_indicator: tci & 0x1000 != 0,
        vlan_id: VlanId::try_new(tci & 0x0fff).unwrap(),
        ether_type,
    }
}

impl Pkt {
    /// A packet `src` → `dst` carrying `l4`, client to NIC on the wire, IPv4 identification 0
    /// (as etherparse's `PacketBuilder` writes it).
    pub fn ip(src: IpAddr, dst: IpAddr, ttl: u8, l4: L4, payload: &[u8]) -> Pkt {
        let l3 = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => L3::V4 {
                src: s.octets(),
                dst: d.octets(),
                ttl,
                options: Vec::new(),
                mf: false,
                frag_off: 0,
                id: 0,
            },
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                L3::V6 { src: s.octets(), dst: d.octets(), hop: ttl, ext: V6Ext::None }
            }
            _ => panic!("mixed families"),
        };
        Pkt {
            dst_mac: NIC_MAC,
            src_mac: CLIENT_MAC,
            vlan: None,
            l3,
            l4,
            payload: payload.to_vec(),
            pad_to: 0,
            tcp_options: Vec::new(),
        }
    }

    /// A packet `src` → `dst` of protocol `proto` (6 or 17; TCP sequence 1000, acknowledgment
    /// 5000, window 64240), IPv4 identification 0x4242: the fixture corpus's frames.
    pub fn flow(
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        proto: u8,
        flags: u8,
        ttl: u8,
        payload: &[u8],
    ) -> Pkt {
        let l4 = if proto == 17 {
            L4::Udp { sport: src.1, dport: dst.1, zero_csum: false }
        } else {
            L4::Tcp { sport: src.1, dport: dst.1, flags, seq: 1000, ack: 5000, window: 64240 }
        };
        Pkt::ip(src.0, dst.0, ttl, l4, payload).with(|p| p.set_ipv4_id(0x4242))
    }

    /// The packet changed by `f`.
    #[must_use]
    pub fn with(mut self, f: impl FnOnce(&mut Pkt)) -> Pkt {
        f(&mut self);
        self
    }

    /// The packet between other MACs.
    #[must_use]
    pub fn l2(self, src: [u8; 6], dst: [u8; 6]) -> Pkt {
        self.with(|p| {
            p.src_mac = src;
            p.dst_mac = dst;
        })
    }

    /// Sets the IPv4 identification (nothing on IPv6).
    pub fn set_ipv4_id(&mut self, value: u16) {
        if let L3::V4 { id, .. } = &mut self.l3 {
            *id = value;
        }
    }

    /// The packet as the NIC must send it: addresses and ports replaced, TTL / hop limit − 1,
    /// the next hop's L2 header, no padding.
    #[must_use]
    pub fn rewritten(&self, src: (IpAddr, u16), dst: (IpAddr, u16), nh: &NextHopEntry) -> Pkt {
        let mut p = self.clone();
        p.dst_mac = nh.dst_mac;
        p.src_mac = nh.src_mac;
        p.vlan = nh.ctl.vlan().then(|| nh.vlan_tci.get());
        p.pad_to = 0;
        match (&mut p.l3, src.0, dst.0) {
            (L3::V4 { src: s, dst: d, ttl, .. }, IpAddr::V4(ns), IpAddr::V4(nd)) => {
                *s = ns.octets();
                *d = nd.octets();
                *ttl -= 1;
            }
            (L3::V6 { src: s, dst: d, hop, .. }, IpAddr::V6(ns), IpAddr::V6(nd)) => {
                *s = ns.octets();
                *d = nd.octets();
                *hop -= 1;
            }
            _ => panic!("family mismatch"),
        }
        match &mut p.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => {
                *sport = src.1;
                *dport = dst.1;
            }
            _ => panic!("only TCP and UDP are rewritten"),
        }
        p
    }

    fn proto(&self) -> u8 {
        match (&self.l4, &self.l3) {
            (L4::Tcp { .. }, _) => 6,
            (L4::Udp { .. }, _) => 17,
            (L4::Icmp | L4::Icmp4(_), L3::V4 { .. }) => 1,
            (L4::Icmp | L4::Icmp6(_), L3::V6 { .. }) => 58,
            (L4::Icmp4(_), L3::V6 { .. }) | (L4::Icmp6(_), L3::V4 { .. }) => {
                panic!("ICMP of the other family")
            }
            (L4::Raw(p), _) => *p,
        }
    }

    fn l4_len(&self) -> usize {
        self.payload.len()
            + match &self.l4 {
                // 20 bytes and the options, padded to a multiple of 4.
                L4::Tcp { .. } => tcp(0, 0, 0, (0, 0, 0), &self.tcp_options, |_| 0).header_len(),
                L4::Udp { .. } | L4::Icmp => 8,
                L4::Icmp4(t) => t.header_len(),
                L4::Icmp6(t) => t.header_len(),
                L4::Raw(_) => 0,
            }
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let proto = IpNumber(self.proto());
        let l4_len = self.l4_len();
        let mut l3 = Vec::new();
        let mut l4 = Vec::new();
        let payload = &self.payload;
        let ether_type = match &self.l3 {
            L3::V4 { src, dst, ttl, options, mf, frag_off, id } => {
                let mut ip = Ipv4Header::new(0, *ttl, proto, *src, *dst).unwrap();
                ip.identification = *id;
                ip.options = options.as_slice().try_into().unwrap();
                ip.more_fragments = *mf;
                ip.fragment_offset = IpFragOffset::try_new(*frag_off).unwrap();
                ip.set_payload_len(l4_len).unwrap();
                ip.header_checksum = ip.calc_header_checksum();
                match &self.l4 {
                    &L4::Tcp { sport, dport, flags, seq, ack, window } => {
                        let t = tcp(sport, dport, flags, (seq, ack, window), &self.tcp_options, |t| {
                            t.calc_checksum_ipv4(&ip, payload).unwrap()
                        });
                        t.write(&mut l4).unwrap();
                    }
                    &L4::Udp { sport, dport, zero_csum } => {
                        let mut u = UdpHeader::with_ipv4_checksum(sport, dport, &ip, payload).unwrap();
                        if zero_csum {
                            u.checksum = 0;
                        }
                        u.write(&mut l4).unwrap();
                    }
                    L4::Icmp => {
                        let t = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 1 });
                        Icmpv4Header::with_checksum(t, payload).write(&mut l4).unwrap();
                    }
                    L4::Icmp4(t) => Icmpv4Header::with_checksum(t.clone(), payload).write(&mut l4).unwrap(),
                    L4::Icmp6(_) => panic!("ICMPv6 over IPv4"),
                    L4::Raw(_) => {}
                }
                ip.write(&mut l3).unwrap();
                EtherType::IPV4
            }
            L3::V6 { src, dst, hop, ext } => {
                let mut ext_bytes = Vec::new();
                let next_header = match ext {
                    V6Ext::None => proto,
                    V6Ext::Fragment => {
                        let f = Ipv6FragmentHeader::new(proto, IpFragOffset::ZERO, true, 0x1234);
                        f.write(&mut ext_bytes).unwrap();
                        IpNumber::IPV6_FRAGMENTATION_HEADER
                    }
                    V6Ext::HopByHop => {
                        // One PadN option filling the 6 bytes.
                        let h = Ipv6RawExtHeader::new_raw(proto, &[1, 4, 0, 0, 0, 0]).unwrap();
                        h.write(&mut ext_bytes).unwrap();
                        IpNumber::IPV6_HEADER_HOP_BY_HOP
                    }
                };
                let ip = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Ipv6FlowLabel::ZERO,
                    payload_length: u16::try_from(ext_bytes.len() + l4_len).unwrap(),
                    next_header,
                    hop_limit: *hop,
                    source: *src,
                    destination: *dst,
                };
                match &self.l4 {
                    &L4::Tcp { sport, dport, flags, seq, ack, window } => {
                        let t = tcp(sport, dport, flags, (seq, ack, window), &self.tcp_options, |t| {
                            t.calc_checksum_ipv6(&ip, payload).unwrap()
                        });
                        t.write(&mut l4).unwrap();
                    }
                    &L4::Udp { sport, dport, .. } => {
                        UdpHeader::with_ipv6_checksum(sport, dport, &ip, payload)
                            .unwrap()
                            .write(&mut l4)
                            .unwrap();
                    }
                    L4::Icmp => {
                        let t = Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 1 });
                        Icmpv6Header::with_checksum(t, *src, *dst, payload).unwrap().write(&mut l4).unwrap();
                    }
                    L4::Icmp6(t) => {
                        Icmpv6Header::with_checksum(*t, *src, *dst, payload).unwrap().write(&mut l4).unwrap();
                    }
                    L4::Icmp4(_) => panic!("ICMP over IPv6"),
                    L4::Raw(_) => {}
                }
                ip.write(&mut l3).unwrap();
                l3.extend_from_slice(&ext_bytes);
                EtherType::IPV6
            }
        };
        let mut out = l2(self.dst_mac, self.src_mac, self.vlan, ether_type);
        out.extend_from_slice(&l3);
        out.extend_from_slice(&l4);
        out.extend_from_slice(payload);
        if out.len() < self.pad_to {
            out.resize(self.pad_to, 0);
        }
        out
    }
}

fn tcp(
    sport: u16,
    dport: u16,
    flags: u8,
    (seq, ack, window): (u32, u32, u16),
    options: &[TcpOptionElement],
    csum: impl FnOnce(&TcpHeader) -> u16,
) -> TcpHeader {
    let mut t = TcpHeader::new(sport, dport, seq, window);
    t.set_options(options).unwrap();
    t.fin = flags & FIN != 0;
    t.syn = flags & SYN != 0;
    t.rst = flags & RST != 0;
    t.psh = flags & PSH != 0;
    t.ack = flags & ACK != 0;
    t.acknowledgment_number = ack;
    t.checksum = csum(&t);
    t
}

/// An Ethernet header, with an 802.1Q tag when `vlan` is set.
pub fn l2(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ether_type: EtherType) -> Vec<u8> {
    let mut out = Vec::new();
    match vlan {
        None => Ethernet2Header { source: src, destination: dst, ether_type }.write(&mut out).unwrap(),
        Some(tci) => {
            Ethernet2Header { source: src, destination: dst, ether_type: EtherType::VLAN_TAGGED_FRAME }
                .write(&mut out)
                .unwrap();
            vlan_header(tci, ether_type).write(&mut out).unwrap();
        }
    }
    out
}

/// An ARP request from the client for 10.10.1.100, padded to 60 bytes.
pub fn arp_request() -> Vec<u8> {
    let mut out = l2([0xff; 6], CLIENT_MAC, None, EtherType::ARP);
    let a = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &CLIENT_MAC,
        &[192, 0, 2, 10],
        &[0; 6],
        &[10, 10, 1, 100],
    )
    .unwrap();
    a.write(&mut out).unwrap();
    out.resize(60, 0);
    out
}

/// An LLDP frame (EtherType 0x88CC) with an empty TLV list.
pub fn lldp() -> Vec<u8> {
    let mut out = l2([0x01, 0x80, 0xc2, 0, 0, 0x0e], CLIENT_MAC, None, EtherType(0x88CC));
    out.resize(60, 0);
    out
}

/// A frame with two stacked 802.1Q tags (10 outside 20) around `inner`.
pub fn double_vlan(inner: &Pkt) -> Vec<u8> {
    let single = inner.clone().with(|p| p.vlan = Some(20)).build();
    // Ethernet header (12 bytes of MACs), then an outer tag in front of the existing one.
    let mut out = l2(inner.dst_mac, inner.src_mac, Some(10), EtherType::VLAN_TAGGED_FRAME);
    out.extend_from_slice(&single[14..]);
    out
}

/// A TCP segment between two socket addresses (sequence 1000, window 29200, TTL 64, no flags),
/// built with [`Pkt`].
#[derive(Clone, Debug)]
pub struct Seg {
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Sequence number.
    pub seq: u32,
    /// The acknowledgment number, with ACK set.
    pub ack: Option<u32>,
    /// Window.
    pub window: u16,
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A socket address, parsed (panics on a bad one: a test's literal).
pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Seg {
    /// A segment from `src` to `dst` (`"10.0.0.1:80"`, `"[fd00::1]:80"`).
    pub fn new(src: &str, dst: &str) -> Seg {
        Seg::between(sa(src), sa(dst))
    }

    /// A segment from `src` to `dst`.
    pub fn between(src: SocketAddr, dst: SocketAddr) -> Seg {
        Seg {
            src,
            dst,
            ttl: 64,
            seq: 1000,
            ack: None,
            window: 29200,
            syn: false,
            fin: false,
            rst: false,
            payload: Vec::new(),
        }
    }
    /// With SYN.
    #[must_use]
    pub fn syn(mut self) -> Self {
        self.syn = true;
        self
    }
    /// With FIN.
    #[must_use]
    pub fn fin(mut self) -> Self {
        self.fin = true;
        self
    }
    /// With RST.
    #[must_use]
    pub fn rst(mut self) -> Self {
        self.rst = true;
        self
    }
    /// With ACK of `a`.
    #[must_use]
    pub fn ack(mut self, a: u32) -> Self {
        self.ack = Some(a);
        self
    }
    /// With sequence number `s`.
    #[must_use]
    pub fn seq(mut self, s: u32) -> Self {
        self.seq = s;
        self
    }
    /// With window `w`.
    #[must_use]
    pub fn window(mut self, w: u16) -> Self {
        self.window = w;
        self
    }
    /// Carrying `d`.
    #[must_use]
    pub fn data(mut self, d: &[u8]) -> Self {
        self.payload = d.to_vec();
        self
    }
    /// With TTL / hop limit `t`.
    #[must_use]
    pub fn ttl(mut self, t: u8) -> Self {
        self.ttl = t;
        self
    }
    /// As a [`Pkt`] from `l2_src` to `l2_dst`.
    pub fn pkt(&self, l2_src: [u8; 6], l2_dst: [u8; 6]) -> Pkt {
        let flags = [(self.fin, FIN), (self.syn, SYN), (self.rst, RST), (self.ack.is_some(), ACK)]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |all, (_, flag)| all | flag);
        let l4 = L4::Tcp {
            sport: self.src.port(),
            dport: self.dst.port(),
            flags,
            seq: self.seq,
            ack: self.ack.unwrap_or(0),
            window: self.window,
        };
        Pkt::ip(self.src.ip(), self.dst.ip(), self.ttl, l4, &self.payload).l2(l2_src, l2_dst)
    }
    /// The frame from `l2_src` to `l2_dst`.
    pub fn frame(&self, l2_src: [u8; 6], l2_dst: [u8; 6]) -> Vec<u8> {
        self.pkt(l2_src, l2_dst).build()
    }
    /// The same segment between other endpoints, one hop later.
    #[must_use]
    pub fn rewritten(&self, src: SocketAddr, dst: SocketAddr) -> Seg {
        Seg { src, dst, ttl: self.ttl - 1, ..self.clone() }
    }
}

/// A UDP datagram frame from `src` to `dst` (socket addresses as text).
pub fn udp(src: &str, dst: &str, ttl: u8, payload: &[u8], l2_src: [u8; 6], l2_dst: [u8; 6]) -> Vec<u8> {
    let (src, dst) = (sa(src), sa(dst));
    let l4 = L4::Udp { sport: src.port(), dport: dst.port(), zero_csum: false };
    Pkt::ip(src.ip(), dst.ip(), ttl, l4, payload).l2(l2_src, l2_dst).build()
}

#[cfg(test)]
mod tests;
