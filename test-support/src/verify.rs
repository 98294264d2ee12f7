//! Reading frames back with etherparse: every checksum ([`checksums`]; [`checksums_of_ip`] for
//! frames that may not be IP at all) and the TCP/UDP endpoints ([`endpoints`]).

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::{IpAddr, SocketAddr};

/// Every checksum of `frame` (IPv4 header, TCP, UDP, ICMP, ICMPv6) as etherparse computes it;
/// an error names the first wrong one, or why the frame is not an IP frame with a transport.
pub fn checksums(frame: &[u8]) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| e.to_string())?;
    let net = p.net.as_ref().ok_or("no IP")?;
    if let Some(inner) = tunnelled(net)? {
        return checksums(&inner).map_err(|e| format!("inner packet: {e}"));
    }
    let transport = p.transport.as_ref().ok_or("no transport")?;
    let bad =
        |what: &str, got: u16, want: u16| Err(format!("bad {what} checksum {got:#06x}, want {want:#06x}"));
    match net {
        NetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            if h.header_checksum != h.calc_header_checksum() {
                return bad("IPv4 header", h.header_checksum, h.calc_header_checksum());
            }
            match transport {
                TransportSlice::Tcp(t) => {
                    let want =
                        t.to_header().calc_checksum_ipv4(&h, t.payload()).map_err(|e| e.to_string())?;
                    if t.checksum() != want {
                        return bad("TCP", t.checksum(), want);
                    }
                }
                TransportSlice::Udp(u) => {
                    let want =
                        u.to_header().calc_checksum_ipv4(&h, u.payload()).map_err(|e| e.to_string())?;
                    if u.checksum() != 0 && u.checksum() != want {
                        return bad("UDP", u.checksum(), want);
                    }
                }
                TransportSlice::Icmpv4(i) => {
                    let want = i.icmp_type().calc_checksum(i.payload());
                    if i.checksum() != want {
                        return bad("ICMP", i.checksum(), want);
                    }
                }
                _ => return Err("unexpected transport over IPv4".into()),
            }
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header().to_header();
            match transport {
                TransportSlice::Tcp(t) => {
                    let want =
                        t.to_header().calc_checksum_ipv6(&h, t.payload()).map_err(|e| e.to_string())?;
                    if t.checksum() != want {
                        return bad("TCP", t.checksum(), want);
                    }
                }
                TransportSlice::Udp(u) => {
                    let want =
                        u.to_header().calc_checksum_ipv6(&h, u.payload()).map_err(|e| e.to_string())?;
                    if u.checksum() != want {
                        return bad("UDP", u.checksum(), want);
                    }
                }
                TransportSlice::Icmpv6(i) => {
                    let want = i
                        .icmp_type()
                        .calc_checksum(h.source, h.destination, i.payload())
                        .map_err(|e| e.to_string())?;
                    if i.checksum() != want {
                        return bad("ICMPv6", i.checksum(), want);
                    }
                }
                _ => return Err("unexpected transport over IPv6".into()),
            }
        }
        NetSlice::Arp(_) => return Err("ARP".into()),
    }
    Ok(())
}

/// For IPv4-in-IPv4 (protocol 4) and IPv6-in-IPv6 (next header 41), the tunnel actions of a
/// next hop: the inner packet as an Ethernet frame of its own, after the outer IPv4 header's
/// checksum is checked. `None` for any other packet.
fn tunnelled(net: &NetSlice) -> Result<Option<Vec<u8>>, String> {
    let (ethertype, inner) = match net {
        NetSlice::Ipv4(ip) if ip.header().protocol().0 == 4 => {
            let h = ip.header().to_header();
            if h.header_checksum != h.calc_header_checksum() {
                return Err(format!(
                    "bad outer IPv4 header checksum {:#06x}, want {:#06x}",
                    h.header_checksum,
                    h.calc_header_checksum()
                ));
            }
            (0x0800u16, ip.payload().payload)
        }
        NetSlice::Ipv6(ip) if ip.header().next_header().0 == 41 => (0x86DD, ip.payload().payload),
        _ => return Ok(None),
    };
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(inner);
    Ok(Some(frame))
}

/// [`checksums`] for a frame that etherparse takes apart as IPv4 or IPv6 carrying TCP, UDP or
/// ICMP; `None` for any other frame (not IP, cut short, another protocol).
pub fn checksums_of_ip(frame: &[u8]) -> Option<Result<(), String>> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    match (p.net.as_ref()?, p.transport.as_ref()?) {
        (NetSlice::Ipv4(_), TransportSlice::Tcp(_) | TransportSlice::Udp(_) | TransportSlice::Icmpv4(_))
        | (NetSlice::Ipv6(_), TransportSlice::Tcp(_) | TransportSlice::Udp(_) | TransportSlice::Icmpv6(_)) => {
            Some(checksums(frame))
        }
        _ => None,
    }
}

/// A TCP frame's flags (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10), sequence and acknowledgement
/// numbers and payload; `None` for anything else.
pub fn tcp_fields(frame: &[u8]) -> Option<(u8, u32, u32, Vec<u8>)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(TransportSlice::Tcp(t)) = p.transport else { return None };
    let flags = u8::from(t.fin()) | u8::from(t.syn()) << 1 | u8::from(t.rst()) << 2 | u8::from(t.ack()) << 4;
    Some((flags, t.sequence_number(), t.acknowledgment_number(), t.payload().to_vec()))
}

/// The TCP/UDP endpoints of a frame, read by etherparse (which also checked its checksums).
pub fn endpoints(frame: &[u8]) -> (SocketAddr, SocketAddr) {
    checksums(frame).unwrap();
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let (s, d): (IpAddr, IpAddr) = match p.net.unwrap() {
        NetSlice::Ipv4(i) => (i.header().source_addr().into(), i.header().destination_addr().into()),
        NetSlice::Ipv6(i) => (i.header().source_addr().into(), i.header().destination_addr().into()),
        NetSlice::Arp(_) => panic!("not IP"),
    };
    let (sp, dp) = match p.transport.unwrap() {
        TransportSlice::Tcp(t) => (t.source_port(), t.destination_port()),
        TransportSlice::Udp(u) => (u.source_port(), u.destination_port()),
        _ => panic!("not TCP/UDP"),
    };
    (SocketAddr::new(s, sp), SocketAddr::new(d, dp))
}
