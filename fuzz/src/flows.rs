//! FullNAT records and the packets of both directions, built with etherparse (an independent
//! packet library), as `sim-model/tests/common/flows.rs` builds them.

use etherparse::PacketBuilder;
use rtl_spec::formats::{DirParams, FlowRecord, FlowTuple, NextHopCtl, NextHopEntry, RecordCtl};
use std::net::IpAddr;
use zerocopy::little_endian::{U16, U32};

/// The client's MAC.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];
/// The NIC's MAC.
pub const NIC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
/// The real server's MAC.
pub const RS_MAC: [u8; 6] = [0x02, 0x5e, 0, 0, 0, 0x11];
/// The gateway's MAC.
pub const GW_MAC: [u8; 6] = [0x02, 0x6a, 0, 0, 0, 0xfe];

/// One FullNAT connection: client → VIP becomes LIP → RS.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// VIP and port.
    pub vip: (IpAddr, u16),
    /// LIP and port.
    pub lip: (IpAddr, u16),
    /// Real server and port.
    pub rs: (IpAddr, u16),
    /// 6 or 17.
    pub proto: u8,
}

fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

fn tuple(src: (IpAddr, u16), dst: (IpAddr, u16)) -> FlowTuple {
    FlowTuple {
        src_addr: addr16(src.0),
        dst_addr: addr16(dst.0),
        src_port: src.1.into(),
        dst_port: dst.1.into(),
    }
}

impl Conn {
    /// An IPv4 TCP connection.
    pub fn v4_tcp() -> Conn {
        Conn {
            client: ("192.0.2.10".parse().unwrap(), 40000),
            vip: ("10.10.1.100".parse().unwrap(), 80),
            lip: ("10.10.2.1".parse().unwrap(), 1025),
            rs: ("10.10.2.11".parse().unwrap(), 8080),
            proto: 6,
        }
    }

    /// An IPv6 TCP connection.
    pub fn v6_tcp() -> Conn {
        Conn {
            client: ("2001:db8::10".parse().unwrap(), 40000),
            vip: ("fd00:1::100".parse().unwrap(), 443),
            lip: ("fd00:2::1".parse().unwrap(), 2049),
            rs: ("fd00:2::11".parse().unwrap(), 8443),
            proto: 6,
        }
    }

    /// The same addresses over UDP.
    pub fn udp(mut self) -> Conn {
        self.proto = 17;
        self
    }

    fn ipv6(&self) -> bool {
        self.client.0.is_ipv6()
    }

    /// The record the host installs: next hop 1 toward the real server, 0 toward the client.
    pub fn record(&self) -> FlowRecord {
        let orig = tuple(self.client, self.vip);
        let reply = tuple(self.rs, self.lip);
        let (o3, o4) = rtl_spec::checksum::direction_deltas(&orig, &reply.reversed(), self.ipv6());
        let (r3, r4) = rtl_spec::checksum::direction_deltas(&reply, &orig.reversed(), self.ipv6());
        FlowRecord {
            ctl: RecordCtl::new().with_valid(true).with_ipv6(self.ipv6()).with_proto(self.proto),
            cookie: U32::new(0xabc),
            orig,
            reply,
            idle_timeout: U16::new(900),
            dir_orig: DirParams { next_hop: U16::new(1), l3_delta: U16::new(o3), l4_delta: U16::new(o4) },
            dir_reply: DirParams { next_hop: U16::new(0), l3_delta: U16::new(r3), l4_delta: U16::new(r4) },
            ..FlowRecord::default()
        }
    }

    /// A packet from `src` to `dst` with TCP `flags` (FIN 1, SYN 2, RST 4, PSH 8; ACK always),
    /// `ttl` and `payload`.
    pub fn packet(
        &self,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        flags: u8,
        ttl: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(CLIENT_MAC, NIC_MAC);
        let ip = match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), ttl),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), ttl),
            _ => panic!("mixed families"),
        };
        let mut out = Vec::new();
        if self.proto == 17 {
            ip.udp(src.1, dst.1).write(&mut out, payload).unwrap();
        } else {
            let mut b = ip.tcp(src.1, dst.1, 1000, 64240).ack(5000);
            if flags & 1 != 0 {
                b = b.fin();
            }
            if flags & 2 != 0 {
                b = b.syn();
            }
            if flags & 4 != 0 {
                b = b.rst();
            }
            if flags & 8 != 0 {
                b = b.psh();
            }
            b.write(&mut out, payload).unwrap();
        }
        out
    }

    /// Client → VIP, ACK.
    pub fn to_vip(self, payload: &[u8]) -> Vec<u8> {
        self.packet(self.client, self.vip, 0x10, 64, payload)
    }

    /// RS → LIP, ACK.
    pub fn to_lip(self, payload: &[u8]) -> Vec<u8> {
        self.packet(self.rs, self.lip, 0x10, 64, payload)
    }
}

/// A valid next-hop entry on `port` toward `dst_mac`.
pub fn next_hop(port: u8, dst_mac: [u8; 6], vlan: Option<u16>) -> NextHopEntry {
    NextHopEntry {
        dst_mac,
        src_mac: NIC_MAC,
        vlan_tci: vlan.unwrap_or(0).into(),
        ctl: NextHopCtl::new().with_valid(true).with_vlan(vlan.is_some()).with_port(port),
    }
}

/// Whether every checksum of an IPv4/IPv6 TCP or UDP frame is right (etherparse's opinion);
/// `None` when the frame is not one etherparse takes apart as such.
pub fn checksums_ok(frame: &[u8]) -> Option<bool> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let net = p.net.as_ref()?;
    let transport = p.transport.as_ref()?;
    Some(match (net, transport) {
        (NetSlice::Ipv4(ip), t) => {
            let h = ip.header().to_header();
            let ip_ok = h.header_checksum == h.calc_header_checksum();
            ip_ok
                && match t {
                    TransportSlice::Tcp(tcp) => {
                        tcp.to_header().calc_checksum_ipv4(&h, tcp.payload()).ok()? == tcp.checksum()
                    }
                    TransportSlice::Udp(udp) => {
                        udp.checksum() == 0
                            || udp.to_header().calc_checksum_ipv4(&h, udp.payload()).ok()? == udp.checksum()
                    }
                    _ => return None,
                }
        }
        (NetSlice::Ipv6(ip), t) => {
            let h = ip.header().to_header();
            match t {
                TransportSlice::Tcp(tcp) => {
                    tcp.to_header().calc_checksum_ipv6(&h, tcp.payload()).ok()? == tcp.checksum()
                }
                TransportSlice::Udp(udp) => {
                    udp.to_header().calc_checksum_ipv6(&h, udp.payload()).ok()? == udp.checksum()
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}
