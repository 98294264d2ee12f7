//! Test helpers: frames read back by etherparse, an implementation independent of this crate,
//! so that its checksum verdict is a real check of ours.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// Every checksum of `frame` (IPv4 header, TCP, UDP, ICMP, ICMPv6) as etherparse computes it.
pub fn checksums_ok(frame: &[u8]) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| e.to_string())?;
    let net = p.net.as_ref().ok_or("no IP")?;
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
