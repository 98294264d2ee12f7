//! ICMP at a worker: echo requests to a VIP answered; errors that quote a packet of a
//! connection (port unreachable, fragmentation needed, packet too big, time exceeded)
//! translated to the other side, inner header rewritten, so path-MTU discovery works through
//! the appliance as through a router; and the TCP resets the worker sends for connections it
//! cut (a segment for a connection that does not exist gets RST, as RFC 793 says).

use super::{Discard, Out, Punt, Tx, Worker, WorkerStats};
use crate::addr::tuple;
use crate::conn::Dir;
use crate::emit;
use crate::packet::{self, L4, Pkt, fold, sum_words};
use rtl_spec::checksum::{apply, direction_deltas};
use rtl_spec::wire::{
    ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED, ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_PACKET_TOO_BIG, ICMPV6_TIME_EXCEEDED, IPPROTO_ICMP,
    IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};
use std::net::{IpAddr, SocketAddr};

impl Worker {
    /// An ICMP or ICMPv6 message (neighbour discovery was sent to the network layer before).
    pub(super) fn icmp(&mut self, punt: Punt, pkt: &Pkt, kind: u8, code: u8, out: &mut Out) {
        let Some(ip) = pkt.ip().copied() else { return };
        let owned = self.services.is_vip(ip.dst) || self.services.is_lip(ip.dst);
        if !owned {
            // The host's own (or nobody's): the host's interface decides.
            return out.to_host.push((punt.port, punt.frame));
        }
        let v6 = ip.is_v6();
        let echo = if v6 { ICMPV6_ECHO_REQUEST } else { ICMP_ECHO_REQUEST };
        if kind == echo && code == 0 {
            if !self.cfg.icmp_echo {
                return self.stats.discard(Discard::Icmp);
            }
            let Some(msg) = punt.frame.get(ip.l4..ip.end) else { return };
            let mut reply = msg.to_vec();
            reply[0] = if v6 { ICMPV6_ECHO_REPLY } else { ICMP_ECHO_REPLY };
            let proto = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
            out.tx.push(Tx { dst: ip.src, packet: emit::ip_packet(ip.dst, ip.src, proto, 64, reply, 2) });
            WorkerStats::inc(&self.stats.echo_replies);
            return;
        }
        let is_error = if v6 {
            matches!(kind, ICMPV6_DEST_UNREACH | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED)
        } else {
            matches!(kind, ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED)
        };
        if !is_error {
            return self.stats.discard(Discard::Icmp);
        }
        self.translate_error(punt, pkt, out);
    }

    /// An ICMP error about a packet the appliance sent: the quoted packet is either one sent to
    /// a server (LIP:lport → RS) or one sent to a client (VIP → client). The error goes to the
    /// other side as if that side's packet had caused it.
    fn translate_error(&mut self, punt: Punt, pkt: &Pkt, out: &mut Out) {
        let Some(ip) = pkt.ip().copied() else { return };
        let Some(msg) = punt.frame.get(ip.l4..ip.end) else { return self.stats.discard(Discard::Malformed) };
        // The quoted packet: an IP header and at least the ports.
        let Some(inner) = msg.get(8..) else { return self.stats.discard(Discard::Malformed) };
        let Some(q) = quoted(inner, ip.is_v6()) else { return self.stats.discard(Discard::Malformed) };
        // The quoted packet went src → dst; the connection knows the reverse direction.
        let key = super::conns::lookup_key(q.proto, q.dst, q.src);
        let Some((slot, dir)) = self.conns.find(&key) else {
            let owner = if self.services.is_lip(q.src.ip()) {
                self.owner_of_lport(q.src.port())
            } else {
                self.owner_of_client_tuple(q.dst, q.src, q.proto)
            };
            if owner != self.id && punt.reason.is_some() {
                return out.handoff.push((owner, Punt { reason: None, ..punt }));
            }
            return self.stats.discard(Discard::Icmp);
        };
        let Some(ep) = self.conns.ep_of(slot) else { return };
        // `dir` is the direction of the connection the key matched, i.e. the reverse of the
        // quoted packet: Reply means the quoted packet was LIP → RS (we sent it to the server).
        let (inner_from, inner_to, outer_src, outer_dst) = match dir {
            Dir::Reply => (tuple(ep.lip, ep.rs), tuple(ep.client, ep.vip), ep.vip.ip(), ep.client.ip()),
            Dir::Orig => (tuple(ep.vip, ep.client), tuple(ep.rs, ep.lip), ep.lip.ip(), ep.rs.ip()),
        };
        let mut m = msg.to_vec();
        if !rewrite_quoted(&mut m[8..], ip.is_v6(), &inner_from, &inner_to) {
            return self.stats.discard(Discard::Malformed);
        }
        let proto = if ip.is_v6() { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
        out.tx.push(Tx { dst: outer_dst, packet: emit::ip_packet(outer_src, outer_dst, proto, 64, m, 2) });
        WorkerStats::inc(&self.stats.icmp_translated);
    }
}

/// The endpoints and protocol of a quoted packet.
struct Quoted {
    proto: u8,
    src: SocketAddr,
    dst: SocketAddr,
}

fn quoted(inner: &[u8], v6: bool) -> Option<Quoted> {
    let (proto, src, dst, l4) = if v6 {
        let h = inner.get(..40)?;
        let src = IpAddr::from(<[u8; 16]>::try_from(&h[8..24]).ok()?);
        let dst = IpAddr::from(<[u8; 16]>::try_from(&h[24..40]).ok()?);
        (h[6], src, dst, 40)
    } else {
        let h = inner.get(..20)?;
        let hl = usize::from(h[0] & 0x0F) * 4;
        let src = IpAddr::from(<[u8; 4]>::try_from(&h[12..16]).ok()?);
        let dst = IpAddr::from(<[u8; 4]>::try_from(&h[16..20]).ok()?);
        (h[9], src, dst, hl)
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    let ports = inner.get(l4..l4 + 4)?;
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Some(Quoted { proto, src: SocketAddr::new(src, sport), dst: SocketAddr::new(dst, dport) })
}

/// Rewrites a quoted packet from tuple `from` to `to`: addresses, ports, the IPv4 header
/// checksum (recomputed: the quoted header is whole) and the transport checksum by delta when
/// it is among the quoted bytes.
fn rewrite_quoted(
    inner: &mut [u8],
    v6: bool,
    from: &rtl_spec::formats::FlowTuple,
    to: &rtl_spec::formats::FlowTuple,
) -> bool {
    let (l4, proto) = if v6 {
        if inner.len() < 44 {
            return false;
        }
        inner[8..24].copy_from_slice(&to.src_addr);
        inner[24..40].copy_from_slice(&to.dst_addr);
        (40, inner[6])
    } else {
        let hl = usize::from(inner[0] & 0x0F) * 4;
        if hl < 20 || inner.len() < hl + 4 {
            return false;
        }
        inner[12..16].copy_from_slice(&to.src_addr[..4]);
        inner[16..20].copy_from_slice(&to.dst_addr[..4]);
        inner[10..12].copy_from_slice(&[0, 0]);
        let c = fold(sum_words(0, &inner[..hl]));
        inner[10..12].copy_from_slice(&c.to_be_bytes());
        (hl, inner[9])
    };
    inner[l4..l4 + 2].copy_from_slice(&to.src_port.get().to_be_bytes());
    inner[l4 + 2..l4 + 4].copy_from_slice(&to.dst_port.get().to_be_bytes());
    let (_, l4_delta) = direction_deltas(from, to, v6);
    // The transport checksum is updated when the quote reaches it (often only 8 bytes are
    // quoted); a UDP checksum of zero means none and stays zero.
    let field = packet::checksum_offset(proto).and_then(|off| inner.get_mut(l4 + off..l4 + off + 2));
    if let Some(field) = field {
        let old = u16::from_be_bytes([field[0], field[1]]);
        if !(proto == IPPROTO_UDP && old == 0) {
            field.copy_from_slice(&apply(old, l4_delta).to_be_bytes());
        }
    }
    true
}

/// The RST answering `pkt` (a TCP segment for a connection that no longer exists), as an IP
/// packet back to its sender (RFC 793, "Reset Generation").
pub(super) fn reset_for(pkt: &Pkt) -> Option<Tx> {
    let ip = pkt.ip()?;
    let L4::Tcp { sport, dport, flags, seq, ack, header_len } = pkt.l4 else { return None };
    let payload = (ip.end - ip.l4).saturating_sub(header_len) as u32;
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&dport.to_be_bytes());
    seg[2..4].copy_from_slice(&sport.to_be_bytes());
    if flags & 0x10 != 0 {
        seg[4..8].copy_from_slice(&ack.to_be_bytes());
        seg[13] = 0x04;
    } else {
        let syn_fin = u32::from(flags & 0x03 != 0);
        seg[8..12].copy_from_slice(&seq.wrapping_add(payload + syn_fin).to_be_bytes());
        seg[13] = 0x14;
    }
    seg[12] = 5 << 4;
    Some(Tx { dst: ip.src, packet: emit::ip_packet(ip.dst, ip.src, IPPROTO_TCP, 64, seg, 16) })
}
