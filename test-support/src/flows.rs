//! FullNAT connections as the model's tests and the fuzz targets use them: the record a host
//! installs for one ([`Conn::record`]) and the packets of both directions, built with
//! [`crate::frame::Pkt`]; next-hop entries; the MACs on the wire.

use crate::frame::{ACK, L4, Pkt};
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

/// An address as the flow formats hold it (IPv4 in the first four bytes).
pub fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// The tuple of a packet from `src` to `dst`.
pub fn tuple(src: (IpAddr, u16), dst: (IpAddr, u16)) -> FlowTuple {
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
    #[must_use]
    pub fn udp(mut self) -> Conn {
        self.proto = 17;
        self
    }

    /// Whether it is IPv6.
    pub fn ipv6(&self) -> bool {
        self.client.0.is_ipv6()
    }

    /// The client's direction.
    pub fn orig(&self) -> FlowTuple {
        tuple(self.client, self.vip)
    }

    /// The real server's direction.
    pub fn reply(&self) -> FlowTuple {
        tuple(self.rs, self.lip)
    }

    /// The record the host installs: next hop 1 toward the real server (port 1), next hop 0
    /// back toward the client (port 0).
    pub fn record(&self) -> FlowRecord {
        let (o3, o4) =
            rtl_spec::checksum::direction_deltas(&self.orig(), &self.reply().reversed(), self.ipv6());
        let (r3, r4) =
            rtl_spec::checksum::direction_deltas(&self.reply(), &self.orig().reversed(), self.ipv6());
        FlowRecord {
            ctl: RecordCtl::new().with_valid(true).with_ipv6(self.ipv6()).with_proto(self.proto),
            cookie: U32::new(0xabc),
            orig: self.orig(),
            reply: self.reply(),
            idle_timeout: U16::new(900),
            dir_orig: DirParams { next_hop: U16::new(1), l3_delta: U16::new(o3), l4_delta: U16::new(o4) },
            dir_reply: DirParams { next_hop: U16::new(0), l3_delta: U16::new(r3), l4_delta: U16::new(r4) },
            ..FlowRecord::default()
        }
    }

    /// A packet from `src` to `dst` of this connection's protocol, client to NIC on the wire,
    /// with TCP `flags` (FIN, SYN, RST, PSH; ACK always, of 5000; sequence 1000, window
    /// 64240), `ttl` and `payload`.
    pub fn packet(
        &self,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        flags: u8,
        ttl: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let l4 = if self.proto == 17 {
            L4::Udp { sport: src.1, dport: dst.1, zero_csum: false }
        } else {
            L4::Tcp { sport: src.1, dport: dst.1, flags: flags | ACK, seq: 1000, ack: 5000, window: 64240 }
        };
        Pkt::ip(src.0, dst.0, ttl, l4, payload).build()
    }

    /// Client → VIP, ACK.
    pub fn to_vip(self, payload: &[u8]) -> Vec<u8> {
        self.packet(self.client, self.vip, ACK, 64, payload)
    }

    /// RS → LIP, ACK.
    pub fn to_lip(self, payload: &[u8]) -> Vec<u8> {
        self.packet(self.rs, self.lip, ACK, 64, payload)
    }
}

/// A valid next-hop entry on `port` toward `dst_mac`, from the NIC's MAC.
pub fn next_hop(port: u8, dst_mac: [u8; 6], vlan: Option<u16>) -> NextHopEntry {
    NextHopEntry {
        dst_mac,
        src_mac: NIC_MAC,
        vlan_tci: vlan.unwrap_or(0).into(),
        ctl: NextHopCtl::new().with_valid(true).with_vlan(vlan.is_some()).with_port(port),
    }
}
