//! The slow path's DR and TUN forwarding: what the NIC's `Route` and `Tunnel` next-hop actions
//! do to a hit (`rtl_spec::codes::NextHopAction`), done in software for the packets the host
//! forwards itself.
//!
//! DR sends the client's IP packet as it arrived (TTL included) to the server's MAC; TUN puts
//! an outer header of the packet's own family in front of it (IPv4 in IPv4, protocol 4; IPv6 in
//! IPv6, next header 41), built exactly as `rtl_spec::formats::NextHopTunnel` specifies, so a
//! packet leaves the host path byte for byte as it would leave the NIC.

use crate::packet::Pkt;
use rtl_spec::checksum;
use rtl_spec::wire::{IPPROTO_IPIP, IPPROTO_IPV6, Ipv4Header, Ipv6Header};
use std::net::IpAddr;
use zerocopy::{FromBytes, IntoBytes};

/// The outer header's TTL / hop limit (the NIC's, `NextHopTunnel`).
pub const TUNNEL_TTL: u8 = 64;

/// Copies the IP packet of `frame` (without Ethernet padding) into `out` (cleared first).
/// `false` when `pkt` is not IP.
pub fn route(frame: &[u8], pkt: &Pkt, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(packet) = pkt.ip().and_then(|ip| frame.get(pkt.l3..ip.end)) else { return false };
    out.extend_from_slice(packet);
    true
}

/// Writes into `out` (cleared first) the IP packet of `frame` inside an outer header from `src`
/// to `dst`. `false` when `pkt` is not IP, the addresses are not of its family, or the outer
/// length would not fit its field.
pub fn tunnel(frame: &[u8], pkt: &Pkt, src: IpAddr, dst: IpAddr, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(ip) = pkt.ip() else { return false };
    let Some(packet) = frame.get(pkt.l3..ip.end) else { return false };
    let Ok(inner_len) = u16::try_from(packet.len()) else { return false };
    if ip.is_v6() != src.is_ipv6() {
        return false;
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let Some(total) = inner_len.checked_add(size_of::<Ipv4Header>() as u16) else { return false };
            let Ok((inner, _)) = Ipv4Header::ref_from_prefix(packet) else { return false };
            let mut outer = Ipv4Header {
                version_ihl: 0x45,
                tos: inner.tos,
                total_len: total.into(),
                ident: 0.into(),
                flags_frag: (inner.flags_frag.get() & Ipv4Header::DF).into(),
                ttl: TUNNEL_TTL,
                proto: IPPROTO_IPIP,
                checksum: 0.into(),
                src: s.octets(),
                dst: d.octets(),
            };
            outer.checksum = checksum::full(outer.as_bytes()).into();
            out.extend_from_slice(outer.as_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let Ok((inner, _)) = Ipv6Header::ref_from_prefix(packet) else { return false };
            let tc = (inner.ver_tc_flow.get() >> 20) & 0xFF;
            let outer = Ipv6Header {
                ver_tc_flow: ((6 << 28) | (tc << 20)).into(),
                payload_len: inner_len.into(),
                next_header: IPPROTO_IPV6,
                hop_limit: TUNNEL_TTL,
                src: s.octets(),
                dst: d.octets(),
            };
            out.extend_from_slice(outer.as_bytes());
        }
        _ => return false,
    }
    out.extend_from_slice(packet);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse;
    use sluice_test_support::frame::{ACK, Pkt as Frame};

    fn frame(v6: bool) -> Vec<u8> {
        let (c, v): (std::net::SocketAddr, std::net::SocketAddr) = if v6 {
            ("[2001:db8::10]:40000".parse().unwrap(), "[fd00:1::100]:80".parse().unwrap())
        } else {
            ("192.0.2.10:40000".parse().unwrap(), "10.10.1.100:80".parse().unwrap())
        };
        Frame::flow((c.ip(), c.port()), (v.ip(), v.port()), 6, ACK, 64, b"GET /")
            .with(|p| p.pad_to = 90)
            .build()
    }

    #[test]
    fn route_keeps_the_ip_packet_and_drops_the_padding() {
        for v6 in [false, true] {
            let f = frame(v6);
            let p = parse(&f).unwrap();
            let mut out = vec![9; 4];
            assert!(route(&f, &p, &mut out));
            assert_eq!(out, f[14..p.ip().unwrap().end]);
        }
    }

    #[test]
    fn tunnel_prefixes_an_outer_header_with_a_valid_checksum() {
        let f = frame(false);
        let p = parse(&f).unwrap();
        let mut out = Vec::new();
        assert!(tunnel(&f, &p, "10.10.2.1".parse().unwrap(), "10.10.3.5".parse().unwrap(), &mut out));
        let inner = &f[14..p.ip().unwrap().end];
        assert_eq!(out.len(), 20 + inner.len());
        assert_eq!(&out[20..], inner);
        assert_eq!(out[9], IPPROTO_IPIP);
        assert_eq!(out[8], TUNNEL_TTL);
        assert_eq!(checksum::full(&out[..20]), 0, "a header with its checksum sums to zero");
        assert_eq!(&out[12..20], &[10, 10, 2, 1, 10, 10, 3, 5]);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]) as usize, out.len());

        let f = frame(true);
        let p = parse(&f).unwrap();
        assert!(tunnel(&f, &p, "fd00:2::1".parse().unwrap(), "fd00:3::5".parse().unwrap(), &mut out));
        assert_eq!(out[6], IPPROTO_IPV6);
        assert_eq!(usize::from(u16::from_be_bytes([out[4], out[5]])), out.len() - 40);
        assert!(
            !tunnel(&f, &p, "10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), &mut out),
            "family"
        );
    }
}
