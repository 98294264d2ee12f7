//! The connection path of a worker: a new connection (service, scheduler, LIP and port), the
//! packets of a known one in either direction (state, counters, the software rewrite, the
//! PROXY protocol header and shift, the offload decision), timeouts and expiry.

use super::conns::{NewConn, lookup_key};
use super::pp::{ClientAddress, PpConn};
use super::{Discard, InstallReq, Out, Punt, TupleKey, Tx, Worker, WorkerStats};
use crate::addr::tuple;
use crate::conn::{Dir, Endpoints, Offload, State, TcpState};
use crate::nat;
use crate::network::HopAction;
use crate::packet::{L4, Pkt};
use crate::proxy_protocol::ProxyProtocol;
use crate::service::{BackendStats, Forward, Proto, ServiceKey, ServiceStats};
use flow_offload::Flow;
use rtl_spec::hash::Seeds;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

impl Worker {
    /// A TCP or UDP packet.
    pub(super) fn transport(&mut self, punt: Punt, pkt: &Pkt, now_ns: u64, out: &mut Out) {
        let Some(ip) = pkt.ip().copied() else { return };
        let Some((sport, dport)) = pkt.ports() else { return };
        let (src, dst) = (SocketAddr::new(ip.src, sport), SocketAddr::new(ip.dst, dport));
        let lookup = lookup_key(ip.proto, src, dst);
        // The tuple's hash (its first half, all the index needs), once: the lookup uses it,
        // and a new connection is filed under it.
        let tag = self.conns.tag(&lookup);
        let flags = pkt.tcp_flags();
        if let Some((slot, dir)) = self.conns.find_hashed(tag, &lookup) {
            let new_syn = dir == Dir::Orig && flags & (SYN | ACK | RST) == SYN;
            let proxied = !self.proxies.is_empty() && self.proxies.contains_key(&slot);
            let pp_reused = new_syn
                && ((!self.pps.is_empty()
                    && self.pps.get(&slot).is_some_and(|p| p.is_new_syn(pkt.tcp_seq())))
                    || self.toa_reused(slot));
            // A client's SYN on a connection that has closed (in TIME_WAIT, or reset) is a new
            // connection on a reused port. While its server still takes new connections, it
            // reuses the old one (server, LIP port and offloaded flow: one punted SYN, where a
            // new connection costs three punts, an install and a remove; a client cycling
            // through its ports at thousands a second reuses most of them). When the server no
            // longer does (drained to weight 0, failed, removed), the old connection ends here
            // and the SYN is scheduled afresh, as LVS's `conn_reuse_mode = 1` does, so such a
            // server gets nothing through reused ports. A SYN during the handshake is a
            // retransmission, and one on an open connection does not replace it.
            let closed_reused = new_syn
                && self.conns.get(slot).is_some_and(|c| {
                    matches!(c.state, State::Tcp(TcpState::TimeWait | TcpState::Close))
                        && !self.server_takes_new(c)
                });
            if !proxied && !pp_reused && !closed_reused {
                self.conn_packet(slot, dir, &punt, pkt, now_ns, out);
                return out.spent.push(punt.frame);
            }
            if proxied && !new_syn {
                return self.proxied_packet(slot, dir, punt, pkt, now_ns, out);
            }
            // A client's new SYN on the tuple of a proxied or PROXY-protocol connection that is
            // closing (its port reused within TIME_WAIT): the old translation does not apply to
            // the new connection, which starts afresh (proven with a cookie, or with a header
            // of its own) like any other.
            let generation = self.conns.get(slot).map_or(0, |c| c.generation);
            self.expire(slot, generation, now_ns, out);
        }
        // A peer's connection that failed over to this node: its standby copy becomes active,
        // and the packet is one of a known connection.
        if self.activate(ip.proto, src, dst, now_ns) {
            return self.transport(punt, pkt, now_ns, out);
        }
        if !self.reset_tuples.is_empty()
            && self.reset_tuples.contains_key(&TupleKey { proto: ip.proto, src, dst })
        {
            if flags & RST == 0 {
                if let Some(rst) = super::icmp::reset_for(pkt) {
                    out.tx.push(rst);
                    WorkerStats::inc(&self.stats.resets);
                }
            }
            return;
        }
        let proto = Proto::from_number(ip.proto);
        let service =
            proto.and_then(|p| self.services.find(&ServiceKey { vip: dst, proto: p }).map(|(i, _)| i));
        let nat_vip =
            if service.is_none() { proto.and_then(|p| self.services.nat_vip_of(src, p)) } else { None };
        match service {
            Some(index) => {
                if ip.proto == 6 && self.services.services[index].config.synproxy {
                    return self.proxy_first(index, src, dst, tag, punt, pkt, now_ns, out);
                }
                if ip.proto == 6 && (flags & (SYN | ACK | RST)) != SYN {
                    return self.stats.discard(Discard::NoConnection);
                }
                self.new_conn(index, src, tag, &punt, pkt, now_ns, out);
                out.spent.push(punt.frame);
            }
            None if self.services.is_lip(ip.dst) || self.is_peer_lip(ip.dst) => {
                // A server's packet to a LIP port this worker does not own: the NIC steered it
                // by hash because it is not in the LIP filter, or the filter is full.
                let owner = self.owner_of_lport(dport);
                if owner != self.id && punt.reason.is_some() {
                    out.handoff.push((owner, Punt { reason: None, ..punt }));
                } else {
                    self.stats.discard(Discard::NoConnection);
                }
            }
            None if nat_vip.is_some() => {
                // A NAT server's reply that missed: its connection lives with the worker that
                // owns the client's tuple (client → VIP), which the NIC did not steer it to.
                let vip = nat_vip.unwrap_or(dst);
                let owner = self.owner_of_client_tuple(dst, vip, ip.proto);
                if owner != self.id && punt.reason.is_some() {
                    out.handoff.push((owner, Punt { reason: None, ..punt }));
                } else {
                    self.stats.discard(Discard::NoConnection);
                }
            }
            None if self.services.is_vip(ip.dst) => {
                let owner = self.owner_of_client_tuple(src, dst, ip.proto);
                if owner != self.id && punt.reason.is_some() {
                    out.handoff.push((owner, Punt { reason: None, ..punt }));
                } else if ip.proto == 6 && flags & SYN == 0 {
                    self.stats.discard(Discard::NoConnection);
                } else {
                    self.stats.discard(Discard::NoService);
                }
            }
            None => out.to_host.push((punt.port, punt.frame)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_conn(
        &mut self,
        index: usize,
        client: SocketAddr,
        orig_tag: u32,
        punt: &Punt,
        pkt: &Pkt,
        now_ns: u64,
        out: &mut Out,
    ) {
        if let Some(slot) = self.open_conn(index, client, orig_tag, now_ns) {
            match (self.services.services[index].config.proxy_protocol, pkt.l4) {
                (Some(ProxyProtocol::V2), L4::Tcp { seq, .. }) => {
                    self.pps.insert(slot, PpConn::new(seq, client.is_ipv6()));
                }
                (Some(ProxyProtocol::Toa), L4::Tcp { .. }) if client.is_ipv4() => {
                    self.toas.insert(slot);
                }
                _ => {}
            }
            self.conn_packet(slot, Dir::Orig, punt, pkt, now_ns, out);
        }
    }

    /// Creates a connection of service `index` for `client`: the service's bounds, the
    /// scheduler's server, a LIP port. Returns its slot, or `None` (counted) when it is refused.
    pub(super) fn open_conn(
        &mut self,
        index: usize,
        client: SocketAddr,
        orig_tag: u32,
        now_ns: u64,
    ) -> Option<u32> {
        let services = self.services.clone();
        let svc = &services.services[index];
        let proto = svc.config.key.proto;
        if proto == Proto::Tcp
            && self.stats.half_open.load(Ordering::Relaxed) >= u64::from(self.cfg.half_open_limit)
        {
            self.stats.discard(Discard::HalfOpen);
            return None;
        }
        if proto == Proto::Tcp && !self.half_open_src.allows(client.ip()) {
            self.stats.discard(Discard::HalfOpenSource);
            return None;
        }
        if svc.config.conn_limit > 0 && svc.stats.current.load(Ordering::Relaxed) >= svc.config.conn_limit {
            svc.stats.over_limit.fetch_add(1, Ordering::Relaxed);
            self.stats.discard(Discard::OverLimit);
            return None;
        }
        let hash = crate::addr::hash_addr(client.ip());
        let picked = self.schedulers.get_mut(index).and_then(|s| s.pick(svc, hash));
        let Some(b) = picked else {
            svc.stats.no_backend.fetch_add(1, Ordering::Relaxed);
            self.stats.discard(Discard::NoBackend);
            return None;
        };
        let backend = &svc.backends[b];
        let rs = backend.addr;
        let forward = svc.config.forward;
        if !forward.uses_lip() {
            // NAT, DR, TUN: the server sees the client's address, so the client's endpoint
            // stands where FullNAT's local address would (the reply tuple is server → client).
            let ep = Endpoints { client, vip: svc.config.key.vip, lip: client, rs };
            return Some(self.open_with(ep, proto, forward, now_ns, backend, svc, orig_tag));
        }
        // LIPs of the server's family, in turn; the first with a free port wins.
        let family = || svc.config.local_addresses.iter().filter(|l| l.is_ipv6() == rs.is_ipv6());
        let n = family().count();
        let mut chosen = None;
        for lip in family().cycle().skip(self.lip_turn % n.max(1)).take(n) {
            if let Some(port) = self.ports.alloc(*lip, rs, now_ns) {
                chosen = Some(SocketAddr::new(*lip, port));
                break;
            }
        }
        self.lip_turn = self.lip_turn.wrapping_add(1);
        let Some(lip) = chosen else {
            svc.stats.no_port.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(service = %svc.config.key, server = %rs, "no local port free: connection refused");
            self.stats.discard(Discard::NoPort);
            return None;
        };
        let ep = Endpoints { client, vip: svc.config.key.vip, lip, rs };
        Some(self.open_with(ep, proto, forward, now_ns, backend, svc, orig_tag))
    }

    /// The part of [`Self::open_conn`] after the endpoints are chosen.
    #[allow(clippy::too_many_arguments)]
    fn open_with(
        &mut self,
        ep: Endpoints,
        proto: Proto,
        forward: Forward,
        now_ns: u64,
        backend: &crate::service::Backend,
        svc: &crate::service::Service,
        orig_tag: u32,
    ) -> u32 {
        let state =
            if proto == Proto::Tcp { State::Tcp(TcpState::SynRecv) } else { State::Udp { replied: false } };
        backend.stats.connections.fetch_add(1, Ordering::Relaxed);
        svc.stats.connections.fetch_add(1, Ordering::Relaxed);
        let counters = (&backend.stats, &svc.stats);
        let slot = self.insert_conn(ep, proto, forward, state, now_ns, counters, orig_tag);
        WorkerStats::inc(&self.stats.created);
        slot
    }

    /// Files a new connection under both its tuples and arms its timer. `orig_tag` is the
    /// index hash of its client → VIP tuple, computed for the lookup that missed; the store
    /// hashes the server → LIP tuple.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_conn(
        &mut self,
        ep: Endpoints,
        proto: Proto,
        forward: Forward,
        state: State,
        now_ns: u64,
        (backend_stats, service_stats): (&Arc<BackendStats>, &Arc<ServiceStats>),
        orig_tag: u32,
    ) -> u32 {
        count_state(backend_stats, state, 1);
        service_stats.current.fetch_add(1, Ordering::Relaxed);
        if state == State::Tcp(TcpState::SynRecv) {
            self.stats.half_open.fetch_add(1, Ordering::Relaxed);
            self.half_open_src.enter(ep.client.ip());
        }
        self.stats.current.fetch_add(1, Ordering::Relaxed);
        let deadline_ns = now_ns + self.cfg.timeouts.of(state).as_nanos() as u64;
        let new = NewConn { ep, proto, forward, state, now_ns, deadline_ns, backend_stats, service_stats };
        let slot = self.conns.insert(&new, orig_tag);
        self.sync_emit(slot, crate::sync::SyncKind::Created, now_ns);
        slot
    }

    /// A packet of a known connection.
    pub(super) fn conn_packet(
        &mut self,
        slot: u32,
        dir: Dir,
        punt: &Punt,
        pkt: &Pkt,
        now_ns: u64,
        out: &mut Out,
    ) {
        let policy = self.cfg.policy;
        let timeouts = self.cfg.timeouts;
        let cookie = self.cookie(slot);
        let stats = &*self.stats;
        let Some((c, route)) = self.conns.with_route(slot) else { return };
        let backend_stats = &*route.backend_stats;
        let flags = pkt.tcp_flags();
        let before = c.state;
        let forward = route.forward;
        c.state = match (c.state, pkt.l4) {
            // DR, TUN: only the client's packets are seen, and only they move the state.
            (State::Tcp(s), L4::Tcp { .. }) if forward.one_way() => {
                State::Tcp(if dir == Dir::Orig { s.next_one_way(flags) } else { s })
            }
            (State::Tcp(s), L4::Tcp { .. }) => State::Tcp(s.next(dir, flags)),
            (State::Udp { replied }, _) => State::Udp { replied: replied || dir == Dir::Reply },
            (s, _) => s,
        };
        let changed = c.state != before;
        if changed {
            let client = c.ep(route).client.ip();
            super::teardown::account(
                stats,
                backend_stats,
                &mut self.half_open_src,
                (before, c.state),
                client,
            );
        }
        c.seen(now_ns, now_ns);
        let ip = pkt.ip().copied();
        let len = ip.map_or(0, |i| (i.end - pkt.l3) as u64);
        c.count(dir, len);
        if dir == Dir::Orig {
            backend_stats.packets_in.fetch_add(1, Ordering::Relaxed);
            backend_stats.bytes_in.fetch_add(len, Ordering::Relaxed);
        } else {
            backend_stats.packets_out.fetch_add(1, Ordering::Relaxed);
            backend_stats.bytes_out.fetch_add(len, Ordering::Relaxed);
        }
        let ep = c.ep(route);
        let (from, to, dst) = match dir {
            Dir::Orig => (tuple(ep.client, ep.vip), tuple(ep.lip, ep.rs), ep.rs.ip()),
            Dir::Reply => (tuple(ep.rs, ep.lip), tuple(ep.vip, ep.client), ep.client.ip()),
        };
        let proto = route.proto;
        let established = c.state == State::Tcp(TcpState::Established);
        let delta =
            if self.proxies.is_empty() { None } else { self.proxies.get(&slot).and_then(|p| p.delta) };
        let (server_first, held_on_host) = self.send(
            (slot, dir, established, now_ns),
            (forward, &ep, proto),
            punt,
            pkt,
            (&from, &to, dst),
            out,
        );
        let seeds = self.conns.seeds();
        let Some(c) = self.conns.get_mut(slot) else { return };
        let age = c.age(now_ns);
        // DR's and TUN's flows leave through a next hop of their own (spec 1.3's Route and
        // Tunnel actions); a TUN service without a tunnel source stays on the host path.
        let action = match forward {
            Forward::FullNat | Forward::Nat => Some(HopAction::Rewrite),
            Forward::Dr => Some(HopAction::Route),
            Forward::Tun => tunnel_source(&self.services, &ep, proto)
                .map(|src| HopAction::Tunnel { src, dst: ep.rs.ip() }),
        };
        if let Some(action) = action.filter(|_| c.offload() == Offload::Host)
            && !held_on_host
            && policy.qualifies(c.state, age, c.packets()[0] + c.packets()[1])
        {
            let idle = timeouts.of(c.state).as_secs().min(u64::from(u16::MAX)) as u16;
            let req = install_req(
                (c, &ep, proto, seeds),
                (slot, cookie, idle),
                (dir, &from, &to),
                (delta, server_first),
                action,
            );
            out.installs.push(req);
            c.set_offload(Offload::Pending);
            c.set_server_first(server_first.is_some());
        }
        // A shorter timeout than the one armed (a close) re-arms now; a longer one is found
        // when the armed timer fires.
        let deadline = now_ns + timeouts.of(c.state).as_nanos() as u64;
        if self.conns.fires_later_than(slot, deadline) {
            self.conns.arm(slot, deadline);
        }
        self.sync_changed(changed, slot, now_ns);
    }

    /// Sends a packet of connection `slot` toward `dst` as its mode forwards: rewritten from
    /// `from` to `to` (FullNAT, NAT), or as it came (DR; TUN inside an outer header). A packet
    /// of a one-way connection that comes the other way (a server answering through the
    /// balancer after all) is passed on to the client as it came.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        (slot, dir, established, now_ns): (u32, Dir, bool, u64),
        (forward, ep, proto): (Forward, &Endpoints, Proto),
        punt: &Punt,
        pkt: &Pkt,
        route: (&rtl_spec::formats::FlowTuple, &rtl_spec::formats::FlowTuple, std::net::IpAddr),
        out: &mut Out,
    ) -> (Option<u32>, bool) {
        let mut packet = out.spent.pop().unwrap_or_default();
        packet.clear();
        packet.reserve(punt.frame.len() + 40);
        if !forward.one_way() {
            return self.rewrite_and_send(
                (slot, dir, established, now_ns),
                ep,
                punt,
                pkt,
                route,
                packet,
                out,
            );
        }
        let dst = route.2;
        let sent = match (forward, dir) {
            (Forward::Tun, Dir::Orig) => tunnel_source(&self.services, ep, proto)
                .is_some_and(|src| crate::encap::tunnel(&punt.frame, pkt, src, dst, &mut packet)),
            _ => crate::encap::route(&punt.frame, pkt, &mut packet),
        };
        if sent {
            out.tx.push(Tx { dst, packet });
            WorkerStats::inc(&self.stats.forwarded);
        } else {
            self.stats.discard(Discard::Unsupported);
        }
        (None, false)
    }

    /// The FullNAT/NAT rewrite of a packet of connection `slot` from `from` to `to`, sent
    /// toward `dst`, with what the server is told about the client (PROXY protocol v2, TOA).
    /// Returns the PROXY-protocol header's length when the flow is to be written server first,
    /// and whether the connection must stay on the host path for now.
    #[allow(clippy::too_many_arguments)]
    fn rewrite_and_send(
        &mut self,
        (slot, dir, established, now_ns): (u32, Dir, bool, u64),
        ep: &Endpoints,
        punt: &Punt,
        pkt: &Pkt,
        (from, to, dst): (&rtl_spec::formats::FlowTuple, &rtl_spec::formats::FlowTuple, std::net::IpAddr),
        mut packet: Vec<u8>,
        out: &mut Out,
    ) -> (Option<u32>, bool) {
        let stats = &*self.stats;
        let ip = pkt.ip().copied();
        let (mut server_first, mut held_on_host) = (None, false);
        match nat::rewrite_l3(&punt.frame, pkt, from, to, &mut packet) {
            Ok(()) => {
                // A SYN-proxied connection's sequence translation, as the NIC's `seq_adjust`.
                let delta = if self.proxies.is_empty() {
                    None
                } else {
                    self.proxies.get(&slot).and_then(|p| p.delta)
                };
                if let (Some(d), Some(ip)) = (delta, ip) {
                    crate::synproxy::adjust(&mut packet, ip.l4 - pkt.l3, dir == Dir::Reply, d);
                }
                if !self.pps.is_empty() || !self.toas.is_empty() {
                    let mut tell = ClientAddress {
                        pps: &mut self.pps,
                        toas: &mut self.toas,
                        timers: &mut self.timers,
                        stats,
                        mtu: self.cfg.min_mtu,
                    };
                    (server_first, held_on_host) = tell.apply(
                        (slot, dir, established),
                        (&punt.frame, pkt),
                        ep,
                        now_ns,
                        &mut packet,
                        &mut out.tx,
                    );
                }
                out.tx.push(Tx { dst, packet });
                WorkerStats::inc(&stats.forwarded);
            }
            Err(nat::RewriteError::TtlExpired) => stats.discard(Discard::TtlExpired),
            Err(nat::RewriteError::NotRewritable) => stats.discard(Discard::Unsupported),
        }
        (server_first, held_on_host)
    }

    /// A connection's timer fired (it is disarmed).
    pub(super) fn on_timer(&mut self, slot: u32, generation: u32, now_ns: u64, out: &mut Out) {
        let timeouts = self.cfg.timeouts;
        let Some(c) = self.conns.current_mut(slot, generation) else { return };
        let deadline = c.last_ns(now_ns) + timeouts.of(c.state).as_nanos() as u64;
        if deadline > now_ns {
            self.conns.arm(slot, deadline);
            // Alive: the peers' copies get their deadline moved too.
            return self.sync_emit(slot, crate::sync::SyncKind::Changed, now_ns);
        }
        // The NIC forwards an offloaded connection without the host seeing it: ask how idle it
        // is before ending it. The answer comes back through `on_counters`.
        if let Offload::Nic(h) = c.offload() {
            if !c.querying() && matches!(c.state, State::Tcp(TcpState::Established) | State::Udp { .. }) {
                c.set_querying(true);
                out.queries.push((slot, c.generation, h));
                return;
            }
        }
        let generation = c.generation;
        self.expire(slot, generation, now_ns, out);
    }

    /// Whether the server of connection `c` still takes new connections: its service still has
    /// it, up and with a weight.
    fn server_takes_new(&self, c: &super::Conn) -> bool {
        let route = self.conns.route(c);
        (self.services.find(&route.service()))
            .and_then(|(_, s)| s.backend(route.rs))
            .is_some_and(|b| b.up && b.weight > 0)
    }

    /// Ends a connection: its NIC flow removed, its port into quarantine, its counts dropped.
    pub(super) fn expire(&mut self, slot: u32, generation: u32, now_ns: u64, out: &mut Out) {
        let Some((c, route, ep)) = self.conns.remove(slot, generation) else { return };
        if !self.proxies.is_empty() {
            if let Some(p) = self.proxies.remove(&slot) {
                self.held_frames -= p.held_count();
            }
        }
        if !self.pps.is_empty() {
            self.pps.remove(&slot);
        }
        if !self.toas.is_empty() {
            self.toas.remove(&slot);
        }
        if let Offload::Nic(h) = c.offload() {
            out.removes.push(h);
        }
        self.sync_ended(&c, ep, route.proto, now_ns);
        if route.forward.uses_lip() {
            self.ports.release(ep.lip.ip(), ep.rs, ep.lip.port(), now_ns);
        }
        count_state(&route.backend_stats, c.state, -1);
        route.service_stats.current.fetch_sub(1, Ordering::Relaxed);
        if c.state == State::Tcp(TcpState::SynRecv) {
            self.stats.half_open.fetch_sub(1, Ordering::Relaxed);
            self.half_open_src.leave(ep.client.ip());
        }
        self.stats.current.fetch_sub(1, Ordering::Relaxed);
        WorkerStats::inc(&self.stats.expired);
    }
}

/// The install of connection `c` at `slot` (its flow `cookie`, `idle` timeout), from the
/// tuples of the packet that qualified it (`dir`, `from`, `to`), with a SYN proxy's sequence
/// translation or a PROXY-protocol header's length (`server_first`).
fn install_req(
    (c, ep, proto, seeds): (&super::Conn, &crate::conn::Endpoints, crate::service::Proto, Seeds),
    (slot, cookie, idle): (u32, u32, u16),
    (dir, from, to): (Dir, &rtl_spec::formats::FlowTuple, &rtl_spec::formats::FlowTuple),
    (translation, server_first): (Option<crate::synproxy::Translation>, Option<u32>),
    action: HopAction,
) -> InstallReq {
    InstallReq {
        slot,
        generation: c.generation,
        flow: Flow {
            orig: from_for(dir, from, to, true),
            reply: from_for(dir, from, to, false),
            proto: proto.number(),
            ipv6: ep.client.is_ipv6(),
            next_hop_orig: 0,
            next_hop_reply: 0,
            idle_timeout: idle,
            cookie,
            host_state: c.state.to_host_state(),
            // Filled in by the device side, which allocates one set per server.
            counter_set: 0,
            seq_delta: translation.map(|t| t.seq),
            ts_delta: translation.map_or(0, |t| t.ts),
        },
        // Hashed again rather than kept in the record: twice per install, and 16 bytes less
        // in every connection's.
        hashes: super::conns::flow_hashes(seeds, ep, proto),
        endpoints: *ep,
        action,
        server_first,
    }
}

/// The flow's original tuple (client → VIP) or reply tuple (server → LIP), whichever
/// direction the packet that triggered the install went.
fn from_for(
    dir: Dir,
    from: &rtl_spec::formats::FlowTuple,
    to: &rtl_spec::formats::FlowTuple,
    orig: bool,
) -> rtl_spec::formats::FlowTuple {
    match (dir, orig) {
        (Dir::Orig, true) => *from,
        (Dir::Orig, false) => to.reversed(),
        (Dir::Reply, true) => to.reversed(),
        (Dir::Reply, false) => *from,
    }
}

/// The outer source of a TUN connection's tunnel: its service's first local address of the
/// server's family.
fn tunnel_source(
    services: &crate::service::ServiceTable,
    ep: &Endpoints,
    proto: Proto,
) -> Option<std::net::IpAddr> {
    let (_, s) = services.find(&ServiceKey { vip: ep.vip, proto })?;
    s.config.local_addresses.iter().copied().find(|a| a.is_ipv6() == ep.rs.is_ipv6())
}

/// Moves a server's active/inactive count for a connection in `state` by `delta`.
pub(super) fn count_state(b: &BackendStats, state: State, delta: i32) {
    let c = if state.is_active() { &b.active } else { &b.inactive };
    if delta > 0 {
        c.fetch_add(1, Ordering::Relaxed);
    } else {
        c.fetch_sub(1, Ordering::Relaxed);
    }
}
