//! The slow path's own FullNAT rewrite: what the NIC does to a hit, done in software for the
//! packets of connections that are not (or not yet) offloaded — the handshake, a connection
//! whose offload the table refused, packets the NIC punts on a hit (SYN, FIN, RST).
//!
//! It is the same rewrite as the NIC's, with the same RFC 1624 deltas
//! ([`rtl_spec::checksum::direction_deltas`]): a packet leaves the host path byte for byte as it
//! would leave the NIC, so a connection that moves between the two paths mid-stream sees no
//! difference. The checksums were verified on the way in ([`crate::packet::verify_checksums`]).

use crate::emit::L2;
use crate::packet::{IpInfo, Pkt};
use rtl_spec::checksum::{TTL_DECREMENT_DELTA, apply, direction_deltas, ones_add};
use rtl_spec::formats::FlowTuple;
use rtl_spec::wire::{
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP, Ipv4Header, Ipv6Header, TcpHeader, UdpHeader,
};
use zerocopy::FromBytes;

/// Why a packet was not rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// Not TCP or UDP over IP, or a later fragment (no ports to rewrite).
    NotRewritable,
    /// TTL or hop limit would reach zero.
    TtlExpired,
}

/// Builds in `out` the frame that leaves for `l2` when the packet `pkt` of `frame`, which
/// carries tuple `from`, is rewritten to carry `to`: addresses and ports replaced, TTL/hop
/// limit decremented, checksums updated by delta. Ethernet padding is not copied.
pub fn rewrite(
    frame: &[u8],
    pkt: &Pkt,
    from: &FlowTuple,
    to: &FlowTuple,
    l2: &L2,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    out.clear();
    let v6 = pkt.ip().is_some_and(IpInfo::is_v6);
    l2.write(out, if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 });
    rewrite_into(frame, pkt, from, to, out)
}

/// [`rewrite`] without the L2 header: `out` receives the IP packet only (the host path adds
/// the L2 header once the next hop is resolved).
pub fn rewrite_l3(
    frame: &[u8],
    pkt: &Pkt,
    from: &FlowTuple,
    to: &FlowTuple,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    out.clear();
    rewrite_into(frame, pkt, from, to, out)
}

fn rewrite_into(
    frame: &[u8],
    pkt: &Pkt,
    from: &FlowTuple,
    to: &FlowTuple,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    let ip = pkt.ip().ok_or(RewriteError::NotRewritable)?;
    if !(ip.proto == IPPROTO_TCP || ip.proto == IPPROTO_UDP) || ip.later_fragment {
        return Err(RewriteError::NotRewritable);
    }
    if ip.ttl <= 1 {
        return Err(RewriteError::TtlExpired);
    }
    let v6 = ip.is_v6();
    let (l3_delta, l4_delta) = direction_deltas(from, to, v6);
    let l3 = out.len();
    out.extend_from_slice(frame.get(pkt.l3..ip.end).ok_or(RewriteError::NotRewritable)?);
    let l4 = l3 + (ip.l4 - pkt.l3);
    rewrite_ip(&mut out[l3..l4], v6, to, l3_delta)?;
    rewrite_ports(&mut out[l4..], ip, to, l4_delta)
}

fn rewrite_ip(h: &mut [u8], v6: bool, to: &FlowTuple, l3_delta: u16) -> Result<(), RewriteError> {
    if v6 {
        let (ip6, _) = Ipv6Header::mut_from_prefix(h).map_err(|_| RewriteError::NotRewritable)?;
        ip6.src = to.src_addr;
        ip6.dst = to.dst_addr;
        ip6.hop_limit -= 1;
    } else {
        let (ip4, _) = Ipv4Header::mut_from_prefix(h).map_err(|_| RewriteError::NotRewritable)?;
        ip4.src.copy_from_slice(&to.src_addr[..4]);
        ip4.dst.copy_from_slice(&to.dst_addr[..4]);
        ip4.ttl -= 1;
        let c = apply(ip4.checksum.get(), ones_add(l3_delta, TTL_DECREMENT_DELTA));
        ip4.checksum.set(c);
    }
    Ok(())
}

fn rewrite_ports(seg: &mut [u8], ip: &IpInfo, to: &FlowTuple, l4_delta: u16) -> Result<(), RewriteError> {
    if ip.proto == IPPROTO_TCP {
        let (t, _) = TcpHeader::mut_from_prefix(seg).map_err(|_| RewriteError::NotRewritable)?;
        t.src_port = to.src_port;
        t.dst_port = to.dst_port;
        // Ones'-complement: 0x0000 and 0xFFFF are the same sum; the NIC leaves whichever
        // `apply` gives, and so does the host.
        t.checksum.set(apply(t.checksum.get(), l4_delta));
    } else {
        let (u, _) = UdpHeader::mut_from_prefix(seg).map_err(|_| RewriteError::NotRewritable)?;
        u.src_port = to.src_port;
        u.dst_port = to.dst_port;
        // Zero over IPv4 means "no checksum" and stays zero. (A first fragment's checksum covers
        // the whole datagram, which the appliance never sees whole; the delta applies to that
        // sum all the same.)
        if u.checksum.get() != 0 || ip.is_v6() {
            u.checksum.set(nonzero(apply(u.checksum.get(), l4_delta)));
        }
    }
    Ok(())
}

/// A UDP checksum that computes to zero is sent as 0xFFFF (RFC 768).
fn nonzero(c: u16) -> u16 {
    if c == 0 { 0xFFFF } else { c }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::tuple;
    use crate::packet::{parse, verify_checksums};
    use sluice_test_support::frame::{L4 as Wire, Pkt, Seg};

    #[allow(clippy::many_single_char_names)]
    fn check_rewrite(v6: bool, tcp: bool, vlan_in: bool, vlan_out: Option<u16>) {
        let (c, vip, lip, rs) = if v6 {
            ("[fd00:1::10]:40000", "[fd00:1::100]:80", "[fd00:2::1]:5000", "[fd00:2::11]:8080")
        } else {
            ("10.10.1.10:40000", "10.10.1.100:80", "10.10.2.1:5000", "10.10.2.11:8080")
        };
        let (c, vip, lip, rs): (
            std::net::SocketAddr,
            std::net::SocketAddr,
            std::net::SocketAddr,
            std::net::SocketAddr,
        ) = (c.parse().unwrap(), vip.parse().unwrap(), lip.parse().unwrap(), rs.parse().unwrap());
        let from = tuple(c, vip);
        let to = tuple(lip, rs);
        let pkt = if tcp {
            Seg::between(c, vip).seq(77).window(1000).ack(3).data(b"some payload bytes").pkt([0; 6], [0; 6])
        } else {
            let udp = Wire::Udp { sport: c.port(), dport: vip.port(), zero_csum: false };
            Pkt::ip(c.ip(), vip.ip(), 64, udp, b"datagram")
        };
        let mut f =
            pkt.l2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1]).with(|p| p.vlan = vlan_in.then_some(5)).build();
        f.extend_from_slice(&[0; 6]); // padding the rewrite must not copy
        let p = parse(&f).unwrap();
        let l2 = L2 { dst: [2, 0, 0, 0, 2, 0x11], src: [2, 0, 0, 0, 0, 2], vlan: vlan_out };
        let mut out = Vec::new();
        rewrite(&f, &p, &from, &to, &l2, &mut out).unwrap();
        // An independent parser reads the result: addresses, ports, TTL, checksums.
        sluice_test_support::verify::checksums(&out).unwrap();
        let q = parse(&out).unwrap();
        assert!(verify_checksums(&out, &q), "our own check");
        let ip = q.ip().unwrap();
        assert_eq!((ip.src, ip.dst, ip.ttl), (lip.ip(), rs.ip(), 63));
        assert_eq!(q.ports(), Some((5000, 8080)));
        assert_eq!(q.vlan, vlan_out);
        assert_eq!(&out[..6], &l2.dst);
        assert_eq!(
            out.len(),
            f.len() - 6 - if vlan_in { 4 } else { 0 } + if vlan_out.is_some() { 4 } else { 0 }
        );
    }

    #[test]
    fn fullnat_rewrite_of_every_family_protocol_and_tagging() {
        for v6 in [false, true] {
            for tcp in [false, true] {
                for (vin, vout) in [(false, None), (true, None), (false, Some(0x0064)), (true, Some(0x2007))]
                {
                    check_rewrite(v6, tcp, vin, vout);
                }
            }
        }
    }

    #[test]
    fn ttl_one_and_icmp_are_refused() {
        let f = sluice_test_support::frame::udp("1.1.1.1:1", "2.2.2.2:2", 1, b"x", [2; 6], [3; 6]);
        let p = parse(&f).unwrap();
        let t = tuple("1.1.1.1:1".parse().unwrap(), "2.2.2.2:2".parse().unwrap());
        let mut out = Vec::new();
        assert_eq!(rewrite(&f, &p, &t, &t, &L2::default(), &mut out), Err(RewriteError::TtlExpired));
        let echo = etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 1, seq: 1 });
        let (one, two) = ("1.1.1.1".parse().unwrap(), "2.2.2.2".parse().unwrap());
        let f = Pkt::ip(one, two, 9, Wire::Icmp4(echo), b"x").l2([2; 6], [3; 6]).build();
        let p = parse(&f).unwrap();
        assert_eq!(rewrite(&f, &p, &t, &t, &L2::default(), &mut out), Err(RewriteError::NotRewritable));
    }
}
