//! The per-packet path: parse, look up, rewrite and send on a hit, punt to an exception ring
//! otherwise; the inject ring; and the event ring every other part reports through.
//!
//! Every received frame ends in exactly one of three places, each counted: sent by the
//! datapath (`TX_PACKETS`), punted (`PUNTS`), dropped (`DROPS`, by reason).

use super::Device;
use super::pipeline::Arrival;
use crate::packet::headers::{TCP_FIN, TCP_RST, TCP_SYN};
use crate::packet::{
    Parsed, SeqAdjust, build_hit_output, build_route_output, build_tunnel_output, tunnel_overhead,
};
use rtl_spec::codes::{DropReason, ErrorCode, EventKind, FlowCause, NextHopAction, PuntReason};
use rtl_spec::formats::{Event, ExceptionDesc, ExceptionFlags, InjectDesc};
use rtl_spec::hash::steering_hash;
use rtl_spec::regs::{control, punt, ring_id};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

/// What a hit tells the punt path.
#[derive(Clone, Copy)]
pub(super) struct HitInfo {
    record: u32,
    reply: bool,
    cookie: u32,
}

impl Device {
    /// One frame in from the wire on port `port`; what it sends is on the wire on return. The
    /// frame takes the same path as a burst from a port (module `pipeline`), as a burst of one.
    pub fn receive(&mut self, port: u8, frame: &[u8]) {
        self.receive_burst(&[(port, frame)]);
    }

    pub(super) fn hit(&mut self, record: u32, reply: bool, p: &Parsed, frame: &[u8], port: u8, now: Arrival) {
        let (now_ns, now_ticks) = (now.ns, now.ticks);
        let index = record as usize;
        let rec = &mut self.table.records[index];
        let info = HitInfo { record, reply, cookie: rec.cookie.get() };
        let flags = p.tcp_flags;
        if reply {
            rec.tcp_flags_reply |= flags;
        } else {
            rec.tcp_flags_orig |= flags;
        }
        rec.last_seen = U32::new(now_ticks);
        self.table.idle_reported.clear(index);

        if flags & (TCP_RST | TCP_FIN) != 0 {
            let rst = flags & TCP_RST != 0;
            self.table.records[index].ctl.set_teardown(true);
            let cause = if rst { FlowCause::Rst } else { FlowCause::Fin };
            let event = self.flow_event(record, cause, true);
            self.post_event(event);
            let forward_bit = if rst { punt::HIT_ACTION::RST_FORWARD } else { punt::HIT_ACTION::FIN_FORWARD };
            if forward_bit.get(u64::from(self.regs.hit_action)) == 0 {
                let reason = if rst { PuntReason::TcpRst } else { PuntReason::TcpFin };
                return self.punt(reason, p, frame, port, Some(info), now_ns);
            }
        } else if flags & TCP_SYN != 0 {
            return self.punt(PuntReason::TcpSyn, p, frame, port, Some(info), now_ns);
        }
        if p.ttl <= 1 {
            return self.punt(PuntReason::TtlExpired, p, frame, port, Some(info), now_ns);
        }
        // What the rewrite needs, read from the record in place (not a copy of all 128 bytes).
        let rec = &self.table.records[index];
        let dir = *rec.dir(reply);
        let new_tuple = rec.tuple(!reply).reversed();
        // The extension memory (spec 1.4) is read for a `seq_adjust` record only: every other
        // hit costs what it did.
        let seq = if rec.ctl.seq_adjust() {
            let (seq_delta, ts_delta) = (rec.seq_delta.get(), self.table.ts_delta(index));
            if reply {
                SeqAdjust::Reply { seq_delta, ts_delta }
            } else {
                SeqAdjust::Original { seq_delta, ts_delta }
            }
        } else {
            SeqAdjust::None
        };
        let nh = self.next_hops.get(dir.next_hop.get() as usize).copied().unwrap_or_default();
        let egress = nh.ctl.port() as usize;
        if !nh.ctl.valid() || egress >= self.ports.len() {
            return self.punt(PuntReason::NoNextHop, p, frame, port, Some(info), now_ns);
        }
        // The next hop's action (spec 1.3): FullNAT/NAT rewrite, DR route, TUN encapsulation.
        let Some(action) = nh.ctl.hit_action() else {
            return self.punt(PuntReason::NoNextHop, p, frame, port, Some(info), now_ns);
        };
        let overhead = if action == NextHopAction::Tunnel { tunnel_overhead(p.ipv6) } else { 0 };
        if p.ip_len + overhead > self.ports[egress].mtu as usize {
            return self.punt(PuntReason::OverMtu, p, frame, port, Some(info), now_ns);
        }
        // Built in the device's scratch frame and sent from there: the fields are disjoint, so
        // the frame is neither moved out nor put back per packet.
        let out = &mut self.scratch_frame;
        match action {
            NextHopAction::Rewrite => build_hit_output(frame, p, &new_tuple, &dir, seq, &nh, out),
            NextHopAction::Route => build_route_output(frame, p, &nh, out),
            NextHopAction::Tunnel => {
                let tunnel = self.tunnels.get(dir.next_hop.get() as usize).copied().unwrap_or_default();
                build_tunnel_output(frame, p, &nh, &tunnel, out)
            }
        };
        if transmit_on(&mut self.ports, &mut self.tx_pending, egress, &self.scratch_frame) {
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += self.scratch_frame.len() as u64;
            let rec = &mut self.table.records[index];
            let ip_len = p.ip_len as u64;
            // The record's set counts in the same pass as the record (one read of the record).
            self.bank.count(rec.ctl.counter_set(), reply, ip_len);
            if reply {
                rec.packets_reply = U32::new(rec.packets_reply.get().wrapping_add(1));
                rec.bytes_reply = U64::new(rec.bytes_reply.get().wrapping_add(ip_len));
            } else {
                rec.packets_orig = U32::new(rec.packets_orig.get().wrapping_add(1));
                rec.bytes_orig = U64::new(rec.bytes_orig.get().wrapping_add(ip_len));
            }
        } else {
            self.count_drop(DropReason::PortDown);
        }
    }

    /// Queues a frame on a port (on the wire at the next flush); false when the port cannot
    /// send (disabled, no link, error, full queue).
    fn transmit(&mut self, port: usize, frame: &[u8]) -> bool {
        transmit_on(&mut self.ports, &mut self.tx_pending, port, frame)
    }

    /// Chooses the exception ring for a punt, as `PUNT` says.
    fn punt_queue(&self, reason: PuntReason, p: &Parsed, hash: u32) -> u32 {
        let fixed = self.regs.reason_queue[reason as usize];
        if fixed != 0xFF {
            return fixed;
        }
        if p.l3_offset != 0 && self.is_lip(&p.tuple.dst_addr, p.ipv6) {
            return u32::from(p.tuple.dst_port.get()) & self.regs.lport_mask;
        }
        self.regs.reta[(hash & 63) as usize]
    }

    fn is_lip(&self, addr: &[u8; 16], ipv6: bool) -> bool {
        // The registers hold the address as little-endian words of its bytes: compared as
        // words, without rebuilding each entry's bytes.
        let word = |i: usize| u32::from_le_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
        let words = [word(0), word(4), word(8), word(12)];
        self.regs.lip_ctl.iter().zip(&self.regs.lip_addr).any(|(ctl, entry)| {
            let ctl = u64::from(*ctl);
            punt::LIP_CTL::VALID.get(ctl) != 0
                && (punt::LIP_CTL::IPV6.get(ctl) != 0) == ipv6
                && if ipv6 { *entry == words } else { entry[0] == words[0] }
        })
    }

    pub(super) fn punt(
        &mut self,
        reason: PuntReason,
        p: &Parsed,
        frame: &[u8],
        port: u8,
        hit: Option<HitInfo>,
        now_ns: u64,
    ) {
        let hash =
            if p.l3_offset != 0 { steering_hash(self.regs.steer_seed, &p.tuple, p.proto, p.ipv6) } else { 0 };
        let queue = self.punt_queue(reason, p, hash);
        let ring_index = (ring_id::EXCEPTION0 + queue) as usize;
        if queue >= self.regs.queues || ring_index >= self.rings.len() || !self.rings[ring_index].enabled {
            if let Some(ring) = self.rings.get_mut(ring_index) {
                ring.drops = ring.drops.wrapping_add(1);
            }
            return self.count_drop(DropReason::QueueDisabled);
        }
        let ring = &self.rings[ring_index];
        if frame.len() > ring.buf_size as usize {
            return self.count_drop(DropReason::ExceptionTooBig);
        }
        if ring.full() {
            self.rings[ring_index].drops = self.rings[ring_index].drops.wrapping_add(1);
            return self.count_drop(DropReason::ExceptionRingFull);
        }
        if !ring.within_share(reason.into(), self.regs.reason_share[reason as usize]) {
            self.rings[ring_index].drops = self.rings[ring_index].drops.wrapping_add(1);
            return self.count_drop(DropReason::PuntShare);
        }
        let index = ring.prod;
        let mut flags = ExceptionFlags::new()
            .with_phase(ring.phase(index))
            .with_vlan(p.vlan_tci.is_some())
            .with_ipv6(p.ipv6);
        if let Some(h) = hit {
            flags = flags.with_hit(true).with_reply(h.reply);
        }
        let desc = ExceptionDesc {
            length: U16::new(frame.len() as u16),
            reason: reason.into(),
            port,
            flags,
            vlan_tci: U16::new(p.vlan_tci.unwrap_or(0)),
            hash: U32::new(hash),
            record: U32::new(hit.map_or(0, |h| h.record)),
            timestamp: U64::new(now_ns),
            l3_offset: p.l3_offset as u8,
            l4_offset: p.l4_offset as u8,
            queue: queue as u8,
            reserved: 0,
            cookie: U32::new(hit.map_or(0, |h| h.cookie)),
        };
        let (buf, entry) = (ring.buffer_addr(index), ring.entry_addr(index));
        if self.mem.write(buf, frame).is_err() || self.mem.write(entry, desc.as_bytes()).is_err() {
            self.dma_error(control::ERROR::DMA_WRITE.mask() as u32, ErrorCode::DmaWrite);
            return self.count_drop(DropReason::DmaError);
        }
        self.rings[ring_index].note_punt(index, reason.into());
        self.rings[ring_index].prod = index.wrapping_add(1);
        self.count_punt(reason);
        self.irq_notify(ring_index as u32, 1);
    }

    /// Sends the frames the host queued on the inject ring.
    pub(super) fn process_injects(&mut self) {
        let id = ring_id::INJECT as usize;
        while self.rings[id].enabled && self.rings[id].used() > 0 {
            let index = self.rings[id].cons;
            let mut desc = InjectDesc::new_zeroed();
            if self.mem.read(self.rings[id].entry_addr(index), desc.as_mut_bytes()).is_err() {
                self.dma_error(control::ERROR::DMA_READ.mask() as u32, ErrorCode::DmaRead);
                break;
            }
            let port = usize::from(desc.port);
            let len = usize::from(desc.length.get());
            let max = self.ports.get(port).map_or(0, |p| p.mtu as usize + 18);
            if desc.flags.phase() != self.rings[id].phase(index) || len < 14 || len > max {
                self.rings[id].cons = index.wrapping_add(1);
                self.count_drop(DropReason::BadInject);
                continue;
            }
            let mut frame = std::mem::take(&mut self.scratch_frame);
            frame.resize(len, 0);
            let read = self.mem.read(desc.addr.get(), &mut frame);
            // The entry is consumed once its frame has been read, as a card moves its consumer
            // index after the DMA read completes: the host may reuse the buffer from then on.
            self.rings[id].cons = index.wrapping_add(1);
            if read.is_err() {
                self.dma_error(control::ERROR::DMA_READ.mask() as u32, ErrorCode::DmaRead);
                self.count_drop(DropReason::DmaError);
            } else if self.transmit(port, &frame) {
                self.counters.injected += 1;
            } else {
                self.count_drop(DropReason::PortDown);
            }
            self.scratch_frame = frame;
        }
        self.flush_ports();
    }

    /// Writes an event, or counts it lost when the event ring is disabled or full.
    pub(super) fn post_event(&mut self, mut event: Event) {
        let id = ring_id::EVENT as usize;
        let ring = &self.rings[id];
        if !ring.enabled || ring.full() {
            self.counters.events_lost += 1;
            self.rings[id].drops = self.rings[id].drops.wrapping_add(1);
            if self.rings[id].enabled {
                self.regs.error |= control::ERROR::EVENT_OVERFLOW.mask() as u32;
            }
            return;
        }
        let index = ring.prod;
        event.flags.set_phase(ring.phase(index));
        if self.mem.write(ring.entry_addr(index), event.as_bytes()).is_err() {
            self.regs.error |= control::ERROR::DMA_WRITE.mask() as u32;
            self.counters.events_lost += 1;
            return;
        }
        self.rings[id].prod = index.wrapping_add(1);
        self.counters.events += 1;
        self.irq_notify(ring_id::EVENT, 1);
    }

    pub(super) fn dma_error(&mut self, bit: u32, code: ErrorCode) {
        let first = self.regs.error & bit == 0;
        self.regs.error |= bit;
        if first {
            let ev = Event {
                kind: EventKind::Error.into(),
                cause: code.into(),
                timestamp: U64::new(self.clock.now_ns()),
                ..Event::default()
            };
            self.post_event(ev);
        }
    }
}

/// [`Device::transmit`] over the device's ports and its set of ports with frames queued, so
/// that a frame built in another of the device's fields can be sent from where it is.
fn transmit_on(ports: &mut [super::PortState], tx_pending: &mut u32, port: usize, frame: &[u8]) -> bool {
    let Some(state) = ports.get_mut(port) else { return false };
    let up = state.enable && state.link_up();
    let sent = up
        && state.io.as_mut().is_some_and(|io| match io.send(frame) {
            Ok(()) => true,
            Err(e) => {
                // Once per run of failures: a dead port must not flood the log per packet.
                if !state.send_failing {
                    tracing::warn!(port, error = %e, "port send failed; counting drops until it recovers");
                }
                state.send_failing = true;
                false
            }
        });
    if sent {
        state.send_failing = false;
        state.counters.tx_packets += 1;
        state.counters.tx_bytes += frame.len() as u64;
        *tx_pending |= 1 << port;
    } else {
        state.counters.drops += 1;
    }
    sent
}
