//! The worker's part of PROXY protocol v2 (`proxy_protocol = "v2"` on a TCP service): when the
//! header goes to the server, how the worker learns that it arrived, its retransmission, and
//! when the connection may be offloaded. The header, the shift and the server-first record are
//! in [`crate::proxy_protocol`], whose doc gives the whole design.
//!
//! A connection's [`PpConn`] lives as long as the connection: the shift applies to every packet
//! the host path forwards, offloaded or not (a FIN or RST on an offloaded flow is punted and
//! forwarded by the host).

use super::{Discard, Out, TupleKey, Tx, Worker, WorkerStats};
use crate::addr::{FastMap, FastSet};
use crate::conn::{Dir, Endpoints};
use crate::packet::{L4, Pkt};
use crate::proxy_protocol::{self as ppv2, FIRST_RTO_NS, MAX_SENDS};
use crate::timer::TimerWheel;

/// Marks a timer of the worker's [`TimerWheel`] as a header retransmission's (the connections'
/// own timers live in their records, not in this wheel; the mark keeps its entries telling).
pub(super) const PP_TIMER: u32 = 1 << 31;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A PROXY-protocol connection's own state, beside its record.
#[derive(Debug)]
pub(super) struct PpConn {
    /// The client's ISN (from its SYN).
    isn: u32,
    /// The header's length: the shift.
    len: u32,
    /// Times the header was sent (0: not yet, and nothing is shifted).
    sends: u8,
    /// The server acknowledged the header: the flow may be offloaded.
    pub(super) acked: bool,
    /// From the client's latest ACK while the header is unacknowledged, for a retransmission:
    /// acknowledgement, window, options (timestamps must be current for PAWS).
    ack: u32,
    window: u16,
    options: [u8; 40],
    options_len: u8,
}

impl PpConn {
    /// A new connection whose client's SYN had ISN `isn`.
    pub(super) fn new(isn: u32, v6: bool) -> Self {
        PpConn {
            isn,
            len: ppv2::header_len(v6),
            sends: 0,
            acked: false,
            ack: 0,
            window: 0,
            options: [0; 40],
            options_len: 0,
        }
    }

    /// A connection adopted from the NIC after a restart: the header went long ago.
    pub(super) fn adopted(len: u32) -> Self {
        PpConn { sends: 1, acked: true, len, ..PpConn::new(0, false) }
    }

    /// The shift, once the header has been sent.
    pub(super) fn shift(&self) -> Option<u32> {
        (self.sends > 0).then_some(self.len)
    }

    /// Whether a client's SYN with sequence `seq` on this connection's tuple starts a new
    /// connection (the port reused) rather than repeating the SYN that opened this one.
    pub(super) fn is_new_syn(&self, seq: u32) -> bool {
        self.sends > 0 || seq != self.isn
    }

    /// The header's length.
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// The segment carrying the header, with the client's latest ACK's fields.
    fn segment(&self, ep: &Endpoints) -> Vec<u8> {
        let header = ppv2::v2_header(ep.client, ep.vip);
        let options = &self.options[..usize::from(self.options_len)];
        ppv2::header_segment(
            ep.lip,
            ep.rs,
            (self.isn.wrapping_add(1), self.ack, self.window),
            options,
            &header,
        )
    }

    /// Takes a packet of the connection as received (`frame`, parsed as `pkt`), before it is
    /// forwarded; `established` is the connection's state after it. Returns the header's
    /// segment when it must go to the server now, before this packet.
    pub(super) fn on_packet(
        &mut self,
        dir: Dir,
        established: bool,
        frame: &[u8],
        pkt: &Pkt,
        ep: &Endpoints,
    ) -> Option<Vec<u8>> {
        let (Some(ip), L4::Tcp { flags, ack, header_len, .. }) = (pkt.ip(), pkt.l4) else { return None };
        if flags & ACK == 0 || flags & SYN != 0 || self.acked {
            return None;
        }
        match dir {
            Dir::Orig if flags & RST == 0 => {
                self.ack = ack;
                self.window =
                    frame.get(ip.l4 + 14..ip.l4 + 16).map_or(0, |w| u16::from_be_bytes([w[0], w[1]]));
                let options = frame.get(ip.l4 + 20..ip.l4 + header_len).unwrap_or_default();
                let n = options.len().min(self.options.len());
                self.options[..n].copy_from_slice(&options[..n]);
                self.options_len = n as u8;
                if self.sends == 0 && established {
                    self.sends = 1;
                    return Some(self.segment(ep));
                }
                None
            }
            Dir::Reply if self.sends > 0 => {
                let end = self.isn.wrapping_add(1).wrapping_add(self.len);
                self.acked = ppv2::seq_ge(ack, end);
                None
            }
            _ => None,
        }
    }
}

/// The worker's parts that telling the server about the client touches, borrowed apart from
/// the connection record the packet path holds.
pub(super) struct ClientAddress<'a> {
    /// PROXY-protocol connections.
    pub(super) pps: &'a mut FastMap<u32, PpConn>,
    /// TOA connections whose server is not established yet.
    pub(super) toas: &'a mut FastSet<u32>,
    /// The worker's timers (the header's retransmission).
    pub(super) timers: &'a mut TimerWheel,
    /// The worker's counters.
    pub(super) stats: &'a WorkerStats,
    /// The smallest port MTU (TOA).
    pub(super) mtu: u16,
}

impl ClientAddress<'_> {
    /// A packet of connection `slot` going `dir` (`established`: the connection's state after
    /// it), as received (`frame`, `pkt`) and rewritten (`packet`, about to be sent): the v2
    /// header goes out first when due (into `tx`) and the shift is applied, or the TOA option
    /// added. Returns the header's length when the flow is to be written server first, and
    /// whether the connection must stay on the host path for now.
    pub(super) fn apply(
        &mut self,
        (slot, dir, established): (u32, Dir, bool),
        (frame, pkt): (&[u8], &Pkt),
        ep: &Endpoints,
        now_ns: u64,
        packet: &mut Vec<u8>,
        tx: &mut Vec<Tx>,
    ) -> (Option<u32>, bool) {
        let Some(ip) = pkt.ip() else { return (None, false) };
        if let Some(p) = self.pps.get_mut(&slot) {
            if let Some(header) = p.on_packet(dir, established, frame, pkt, ep) {
                tx.push(Tx { dst: ep.rs.ip(), packet: header });
                WorkerStats::inc(&self.stats.pp_headers);
                self.timers.arm(slot, PP_TIMER | 1, now_ns + FIRST_RTO_NS);
            }
            if let Some(len) = p.shift() {
                ppv2::shift(packet, ip.l4 - pkt.l3, dir == Dir::Orig, len);
            }
            // Offloaded only once the server has the header (its ACKs come here till then).
            return (p.acked.then(|| p.len()), !p.acked);
        }
        if self.toas.contains(&slot) {
            let flags = pkt.tcp_flags();
            let waits =
                super::toa::toa_packet(self.toas, self.stats, self.mtu, (slot, dir, flags), ep, packet);
            return (None, waits);
        }
        (None, false)
    }
}

impl Worker {
    /// Arms the retransmission of the header of connection `slot`, sent `sends` times so far.
    pub(super) fn pp_arm(&mut self, slot: u32, sends: u8, now_ns: u64) {
        let rto = FIRST_RTO_NS << (sends.saturating_sub(1)).min(10);
        self.timers.arm(slot, PP_TIMER | u32::from(sends), now_ns + rto);
    }

    /// A header's retransmission timer fired (`sends`: the sends when it was armed): the
    /// header goes again, or, after [`MAX_SENDS`], the connection ends and both sides' next
    /// packets are answered with a reset.
    pub(super) fn pp_timer(&mut self, slot: u32, sends: u32, now_ns: u64, out: &mut Out) {
        let Some(p) = self.pps.get_mut(&slot) else { return };
        if p.acked || u32::from(p.sends) != sends {
            return;
        }
        let Some(c) = self.conns.get(slot) else { return };
        let (ep, generation) = (self.conns.ep(c), c.generation);
        if p.sends >= MAX_SENDS {
            self.stats.discard(Discard::ProxyProtocolUnacked);
            let until = now_ns + 60_000_000_000;
            self.reset_tuples.insert(TupleKey { proto: 6, src: ep.client, dst: ep.vip }, until);
            self.reset_tuples.insert(TupleKey { proto: 6, src: ep.rs, dst: ep.lip }, until);
            return self.expire(slot, generation, now_ns, out);
        }
        p.sends += 1;
        let sends = p.sends;
        out.tx.push(Tx { dst: ep.rs.ip(), packet: p.segment(&ep) });
        WorkerStats::inc(&self.stats.pp_retransmits);
        self.pp_arm(slot, sends, now_ns);
    }
}
