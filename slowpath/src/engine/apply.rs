//! Making a worker's [`Out`] real: IP packets routed, their next hop resolved and framed and
//! injected; flows installed with their next hops, removed, queried; frames for the host's
//! interfaces; packets handed to their owning worker; frame buffers back to the pool.

use super::Engine;
use crate::network::Hop;
use crate::worker::Out;
use flow_offload::{Handle, InstallError, Refusal};

impl Engine {
    /// Applies what worker `w` asked for, in one pass. What the worker is told in between
    /// can only ask for removes (a flow whose connection ended while it was being installed,
    /// or whose NIC counters say it is idle): those are applied after the answers, so nothing
    /// is left for another pass.
    pub(super) fn apply(&mut self, w: usize, out: &mut Out, now_ns: u64) {
        if !self.peer_lips.is_empty() {
            self.take_over(w);
        }
        for (port, frame) in out.neighbor.drain(..) {
            self.handle_neighbor(port, &frame, now_ns);
            self.queues.recycle(frame);
        }
        for (port, frame) in out.to_host.drain(..) {
            self.hand_to_host(port, &frame);
            self.queues.recycle(frame);
        }
        for tx in out.tx.drain(..) {
            let Some(hop) = self.net.route(tx.dst) else {
                self.net.count_no_route();
                continue;
            };
            let src = self.lips.iter().copied().find(|l| l.is_ipv6() == tx.dst.is_ipv6());
            self.send_ip(hop, tx.packet, now_ns, src);
        }
        let mut installs = std::mem::take(&mut out.installs);
        // The batch's home buckets first, so that their cache misses overlap instead of
        // coming one install at a time.
        for r in &installs {
            self.flows.prefetch(r.hashes);
        }
        for r in installs.drain(..) {
            let result = self.install(r.flow, r.hashes, (&r.endpoints, r.action), r.server_first, now_ns);
            self.workers[w].on_installed(r.slot, r.generation, result, out);
        }
        // Keep the buffer's capacity (on_installed never asks for installs).
        out.installs = installs;
        self.apply_removes(out);
        if !out.queries.is_empty() {
            let queries: Vec<(u32, u32, Handle)> = out.queries.drain(..).collect();
            let handles: Vec<Handle> = queries.iter().map(|q| q.2).collect();
            // Read and cleared: the connections add what the NIC counted since the last read,
            // and keep no copy of the NIC's counters.
            let mut counters = match self.flows.counters(&handles, true) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "querying flow counters failed");
                    Vec::new()
                }
            };
            // Many timers fire together (a burst of connections set up together): a sorted
            // answer is searched, not scanned per query.
            counters.sort_unstable_by_key(|(h, _)| *h);
            for (slot, generation, h) in queries {
                let k = counters.binary_search_by_key(&h, |(x, _)| *x).ok().map(|i| counters[i].1);
                self.workers[w].on_counters(slot, generation, k, now_ns, out);
            }
            // The idle connections among them ended: their flows go.
            self.apply_removes(out);
        }
        for (to, punt) in out.handoff.drain(..) {
            if let Some(q) = self.handoffs.get_mut(usize::from(to)) {
                self.stats.handoffs += 1;
                q.push_back(punt);
            }
        }
        for frame in out.spent.drain(..) {
            self.queues.recycle(frame);
        }
        debug_assert!(out.is_empty(), "a worker's answer asked for more than removes");
    }

    fn apply_removes(&mut self, out: &mut Out) {
        for h in out.removes.drain(..) {
            // A flow the NIC evicted is already gone from the table: nothing to do.
            let _ = self.flows.remove(h, false);
        }
    }

    /// Installs a flow with its next hops: toward the server for the original direction (of
    /// `action`: FullNAT's and NAT's rewrite, DR's route, TUN's tunnel), toward the client for
    /// the reply; with `server_first` (a PROXY-protocol connection: the header's length),
    /// written the other way round with that sequence delta.
    fn install(
        &mut self,
        mut flow: flow_offload::Flow,
        hashes: flow_offload::FlowHashes,
        (ep, action): (&crate::conn::Endpoints, crate::network::HopAction),
        server_first: Option<u32>,
        now_ns: u64,
    ) -> Result<Handle, ()> {
        let hops = (self.net.route(ep.rs.ip()), self.net.route(ep.client.ip()));
        let (Some(to_rs), Some(to_client)) = hops else {
            self.stats.install_invalid += 1;
            return Err(());
        };
        let (Some(a), Some(b)) =
            (self.net.next_hop_with(to_rs, action, now_ns), self.net.next_hop(to_client, now_ns))
        else {
            // No free next-hop entry: the connection stays on the host path.
            self.stats.install_full += 1;
            return Err(());
        };
        self.flush_next_hops();
        flow.next_hop_orig = a;
        flow.next_hop_reply = b;
        flow.counter_set = self.counter_set_for(ep.vip, flow.proto, ep.rs, server_first.is_some());
        let (flow, hashes) = match server_first {
            Some(len) => crate::proxy_protocol::server_first(flow, hashes, len),
            None => (flow, hashes),
        };
        match self.flows.install_hashed(flow, hashes) {
            Ok(h) => Ok(h),
            Err(InstallError::Full) => {
                self.stats.install_full += 1;
                Err(())
            }
            Err(e) => {
                self.stats.install_invalid += 1;
                tracing::warn!(error = %e, "flow not offloaded");
                Err(())
            }
        }
    }

    /// Sends an IP packet toward `hop`, or queues it while the neighbour is being resolved.
    pub(super) fn send_ip(
        &mut self,
        hop: Hop,
        packet: Vec<u8>,
        now_ns: u64,
        fallback_src: Option<std::net::IpAddr>,
    ) {
        let mtu = self.net.ports().get(usize::from(hop.port)).map_or(1500, |p| p.mtu as usize);
        if packet.len() > mtu {
            self.stats.over_mtu += 1;
            return;
        }
        match self.net.resolve(hop, None, now_ns, fallback_src) {
            Some(l2) => {
                let mut frame = std::mem::take(&mut self.frame);
                frame.clear();
                let v6 = packet.first().is_some_and(|b| b >> 4 == 6);
                l2.write(
                    &mut frame,
                    if v6 { rtl_spec::wire::ETHERTYPE_IPV6 } else { rtl_spec::wire::ETHERTYPE_IPV4 },
                );
                // No padding to Ethernet's 60 bytes: the port's MAC pads on a real wire, and the
                // NIC's own datapath does not pad either, so both paths send the same bytes.
                frame.extend_from_slice(&packet);
                self.inject(hop.port, &frame);
                self.frame = frame;
                self.queues.recycle(packet);
            }
            None => {
                self.net.resolve(hop, Some(packet), now_ns, fallback_src);
                self.flush_network();
            }
        }
    }

    /// Sends a frame out of a port; a full inject ring is flushed once and then counted.
    pub(super) fn inject(&mut self, port: u8, frame: &[u8]) {
        if self.flows.fault().is_some() {
            self.stats.device_lost += 1;
            return;
        }
        if self.queues.inject(port, frame).is_err() {
            // A recovery inside a commit built new rings: take them. Otherwise the ring is
            // full: send what it holds and try once more.
            if !self.retake_queues() {
                self.queues.flush_injects();
            }
            if self.queues.inject(port, frame).is_err() {
                self.stats.inject_full += 1;
                return;
            }
        }
        self.stats.injected += 1;
    }

    /// Frames the network layer produced (requests, released packets) and next-hop changes.
    pub(super) fn flush_network(&mut self) {
        for (port, frame) in std::mem::take(&mut self.net.out) {
            self.inject(port, &frame);
        }
        self.flush_next_hops();
    }

    fn flush_next_hops(&mut self) {
        for (n, entry, tunnel) in std::mem::take(&mut self.net.changed) {
            if let Err(e) = self.flows.set_next_hop_tunnel(n, entry, tunnel) {
                tracing::warn!(error = %e, "next-hop entry not written");
            }
        }
    }

    /// Hands a frame to the host's interface of a port.
    pub(super) fn hand_to_host(&mut self, port: u8, frame: &[u8]) {
        match self.host.get_mut(usize::from(port)).and_then(Option::as_mut) {
            Some(h) => match h.send(frame) {
                Ok(()) => self.stats.to_host += 1,
                Err(e) => {
                    self.stats.no_host += 1;
                    tracing::debug!(port, error = %e, "host interface refused a frame");
                }
            },
            None => self.stats.no_host += 1,
        }
    }

    /// Frames the host's interfaces sent: out of their ports.
    pub(super) fn poll_host(&mut self) -> usize {
        let mut n = 0;
        let mut frames = Vec::new();
        for port in 0..self.host.len() {
            frames.clear();
            let Some(h) = self.host[port].as_mut() else { continue };
            if let Err(e) = h.recv(&mut frames, 32) {
                tracing::debug!(port, error = %e, "host interface read failed");
                continue;
            }
            for f in &frames {
                self.inject(port as u8, f);
                self.stats.from_host += 1;
                n += 1;
            }
        }
        n
    }

    /// Sends the queued flow commands; a command the NIC refused is reported to the
    /// connection's worker (its flow is not offloaded after all).
    pub(super) fn commit(&mut self) {
        match self.flows.commit() {
            Ok(refused) => {
                for r in refused {
                    let Refusal::Install { handle, cookie, status } = r else { continue };
                    let w = (cookie >> crate::worker::COOKIE_SLOT_BITS) as usize;
                    tracing::warn!(
                        ?status,
                        cookie,
                        "the NIC refused an install: the connection stays on the host path"
                    );
                    if let Some(worker) = self.workers.get_mut(w) {
                        worker.on_offload_lost(cookie, handle);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "the NIC failed and could not be recovered"),
        }
    }
}
