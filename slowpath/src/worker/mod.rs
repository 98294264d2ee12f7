//! A slow-path worker: one exception ring's packets, one shard of the connections, one slice of
//! every LIP's ports, one timer wheel. Nothing in it is shared with another worker, so the
//! per-packet path takes no lock: a worker reads the service snapshot it was handed, decides,
//! and writes what the device side must do into an [`Out`] (packets to route and send, flows to
//! install or remove, counters to query). The device side ([`crate::engine`]) applies an `Out`
//! and hands results back ([`Worker::on_installed`], [`Worker::on_counters`],
//! [`Worker::on_flow_event`]).
//!
//! Submodules: `conns` (the connection store: compact records in a slab, one index for both
//! tuples), `path` (connections: new ones, their packets, expiry), `proxy` (the SYN proxy's
//! cookies, server-side handshake and held segments), `pp` (PROXY protocol v2: the header
//! toward the server and its retransmission), `toa` (the client's address in a TCP option until the
//! server is established), `icmp` (echo, errors quoting a flow, resets), `stats` (drop reasons
//! and counters), `sync` (events to the peers, standby copies of theirs made active by a packet).

mod conns;
mod icmp;
mod limits;
mod path;
mod pp;
mod proxy;
mod stats;
mod sync;
mod teardown;
mod toa;

pub use conns::Conn;
use conns::ConnStore;
pub use stats::{Discard, WorkerStats};

use crate::addr::FastMap;
use crate::conn::{Endpoints, Offload, OffloadPolicy, State, Timeouts};
use crate::laddr::{PortPools, PortRange};
use crate::packet::{self, L3, L4};
use crate::sched::Scheduler;
use crate::service::{Proto, ServiceKey, ServiceTable};
use crate::timer::{Expired, TimerWheel};
use flow_offload::{Flow, FlowCounters, FlowHashes, Handle};
use rtl_spec::codes::{FlowCause, PuntReason};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Bits of a flow cookie that name the connection's slot; the bits above name the worker.
pub const COOKIE_SLOT_BITS: u32 = 28;

/// A packet punted to this worker.
#[derive(Clone, Debug)]
pub struct Punt {
    /// Ingress port.
    pub port: u8,
    /// Why the NIC punted it (`None` when it came another way, e.g. from another worker).
    pub reason: Option<PuntReason>,
    /// On a hit: the record and whether the reply tuple matched.
    pub hit: Option<(Handle, bool)>,
    /// The frame as received.
    pub frame: Vec<u8>,
}

/// An IP packet to route and send (no L2 header yet: the device side resolves the next hop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tx {
    /// Where it goes.
    pub dst: IpAddr,
    /// The IP packet.
    pub packet: Vec<u8>,
}

/// A flow the worker wants in the NIC.
#[derive(Clone, Copy, Debug)]
pub struct InstallReq {
    /// The connection's slot.
    pub slot: u32,
    /// Its generation (a stale result is ignored).
    pub generation: u32,
    /// The flow; its next hops are filled in by the device side.
    pub flow: Flow,
    /// Its tuples' hashes, computed on the connection's first packet.
    pub hashes: FlowHashes,
    /// The connection's endpoints (the device side routes toward the client and the server).
    pub endpoints: Endpoints,
    /// What the original direction's next hop does: the rewrite (FullNAT, NAT), DR's route or
    /// TUN's tunnel.
    pub action: crate::network::HopAction,
    /// A PROXY-protocol connection: the header's length. The device side writes the flow
    /// server first with it as the sequence delta ([`crate::proxy_protocol::server_first`]).
    pub server_first: Option<u32>,
}

/// What a worker asks of the device side.
#[derive(Debug, Default)]
pub struct Out {
    /// IP packets to route and send.
    pub tx: Vec<Tx>,
    /// ARP and neighbour-discovery frames for the network layer (port, frame).
    pub neighbor: Vec<(u8, Vec<u8>)>,
    /// Frames for the host's own interface of a port (port, frame).
    pub to_host: Vec<(u8, Vec<u8>)>,
    /// Flows to install.
    pub installs: Vec<InstallReq>,
    /// Flows to remove.
    pub removes: Vec<Handle>,
    /// Offloaded connections whose NIC idle time is needed (slot, generation, handle).
    pub queries: Vec<(u32, u32, Handle)>,
    /// Packets that belong to another worker (worker, packet).
    pub handoff: Vec<(u16, Punt)>,
    /// Frame buffers going round between the engine's frame pool and the worker: the worker
    /// leaves the frames it is done with here and writes the packets it sends into buffers
    /// taken from here, so the packet path allocates no buffer in a steady state. Not work:
    /// [`Out::is_empty`] ignores it.
    pub spent: Vec<Vec<u8>>,
}

impl Out {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
            && self.neighbor.is_empty()
            && self.to_host.is_empty()
            && self.installs.is_empty()
            && self.removes.is_empty()
            && self.queries.is_empty()
            && self.handoff.is_empty()
    }
}

/// How a worker runs.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// Workers in all (a power of two).
    pub workers: u16,
    /// Per-state timeouts.
    pub timeouts: Timeouts,
    /// When connections are offloaded.
    pub policy: OffloadPolicy,
    /// LIP port range and quarantine.
    pub ports: PortRange,
    /// Half-open (SYN_RECV) connections this worker holds at most.
    pub half_open_limit: u32,
    /// Half-open (SYN_RECV) connections one client address may hold in this worker (0: no
    /// per-source limit).
    pub half_open_per_source: u32,
    /// Answer ICMP echo to VIPs.
    pub icmp_echo: bool,
    /// The NIC's steering-hash seed (to find the owner of a client tuple).
    pub steer_seed: u32,
    /// The NIC flow table's placement seeds: each connection's tuples are hashed once with
    /// them, and the hashes serve the connection index and the install alike.
    pub seeds: rtl_spec::hash::Seeds,
    /// The smallest port MTU: a TOA option is inserted only into packets that stay within it.
    pub min_mtu: u16,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            workers: 1,
            timeouts: Timeouts::default(),
            policy: OffloadPolicy::default(),
            ports: PortRange::default(),
            half_open_limit: 65536,
            half_open_per_source: 0,
            icmp_echo: true,
            steer_seed: 0x5F37_59DF,
            seeds: rtl_spec::hash::Seeds::default(),
            min_mtu: 1500,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TupleKey {
    proto: u8,
    src: SocketAddr,
    dst: SocketAddr,
}

/// A worker.
pub struct Worker {
    id: u16,
    cfg: WorkerConfig,
    services: Arc<ServiceTable>,
    schedulers: Vec<Box<dyn Scheduler>>,
    conns: ConnStore,
    ports: PortPools,
    timers: TimerWheel,
    lip_turn: usize,
    /// Tuples of connections removed with a reset: their next packets are answered with RST.
    reset_tuples: FastMap<TupleKey, u64>,
    /// The SYN proxy's cookie key.
    cookies: crate::synproxy::SynCookies,
    /// SYN-proxied connections' own state, by slot.
    proxies: FastMap<u32, proxy::Proxy>,
    /// Client segments the proxied connections hold, together (at most
    /// [`proxy::HELD_FRAMES_PER_WORKER`]).
    held_frames: usize,
    /// PROXY-protocol connections' own state, by slot.
    pps: FastMap<u32, pp::PpConn>,
    /// TOA connections whose server is not established yet: their client segments carry the
    /// option and they are not offloaded.
    toas: crate::addr::FastSet<u32>,
    /// Half-open connections per client address (with `half_open_per_source`).
    half_open_src: limits::HalfOpenBySource,
    stats: Arc<WorkerStats>,
    expired: Vec<Expired>,
    /// The connections whose timers fired (kept between rounds).
    due: Vec<(u32, u32)>,
    /// Connection sync: the queue events leave by, the peers' standby copies, the peers' LIPs
    /// and those whose first copy this worker made active (see `sync`).
    sync: sync::WorkerSync,
}

impl Worker {
    /// Worker `id` of `cfg.workers`, starting at `now_ns` with `services`.
    pub fn new(id: u16, cfg: WorkerConfig, services: Arc<ServiceTable>, now_ns: u64) -> Self {
        let schedulers = services.services.iter().map(|s| s.scheduler.clone_box()).collect();
        Worker {
            id,
            cfg,
            services,
            schedulers,
            conns: ConnStore::new(cfg.seeds, now_ns),
            ports: PortPools::new(id, cfg.workers, cfg.ports),
            timers: TimerWheel::new(now_ns),
            lip_turn: usize::from(id),
            reset_tuples: FastMap::default(),
            cookies: crate::synproxy::SynCookies::default(),
            proxies: FastMap::default(),
            held_frames: 0,
            pps: FastMap::default(),
            toas: crate::addr::FastSet::default(),
            half_open_src: limits::HalfOpenBySource::new(cfg.half_open_per_source),
            stats: Arc::new(WorkerStats::default()),
            expired: Vec::new(),
            due: Vec::new(),
            sync: sync::WorkerSync::default(),
        }
    }

    /// Its number.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// Its port pools' counters.
    pub fn port_stats(&self) -> crate::laddr::LportStats {
        self.ports.stats()
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
    }

    /// Takes a new service snapshot. Connections of services or servers that are gone stay
    /// until they close (use [`Self::reset_backend`] to cut them).
    ///
    /// A service whose scheduler the snapshot carried over (same epoch: nothing it reads
    /// changed) keeps this worker's copy, and with it its position (rr, wrr) or its view of the
    /// loads (lc, wlc): a health change on one service does not restart every other's rotation.
    pub fn set_services(&mut self, services: Arc<ServiceTable>) {
        let old = std::mem::take(&mut self.schedulers);
        self.schedulers = crate::service::carry_schedulers(&self.services, old, &services);
        self.services = services;
    }

    /// The connections with their routes (for `sluice flows`).
    pub fn conns(&self) -> impl Iterator<Item = (&Conn, conns::RouteRef<'_>)> {
        self.conns.iter().map(|(_, c, r)| (c, r))
    }

    /// Connections now.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Heap bytes of the connection store (slab and index), for the memory figures.
    pub fn conn_heap_bytes(&self) -> usize {
        self.conns.heap_bytes()
    }

    /// The flow cookie of a slot.
    fn cookie(&self, slot: u32) -> u32 {
        (u32::from(self.id) << COOKIE_SLOT_BITS) | slot
    }

    /// Handles one punted packet.
    pub fn handle(&mut self, punt: Punt, now_ns: u64, out: &mut Out) {
        WorkerStats::inc(&self.stats.packets);
        let Ok(pkt) = packet::parse(&punt.frame) else {
            return self.stats.discard(Discard::Malformed);
        };
        match pkt.net {
            L3::Arp => return out.neighbor.push((punt.port, punt.frame)),
            L3::Other(_) => return self.stats.discard(Discard::Unsupported),
            L3::Ip(_) => {}
        }
        let Some(ip) = pkt.ip().copied() else { return };
        if !packet::verify_checksums(&punt.frame, &pkt) {
            return self.stats.discard(Discard::BadChecksum);
        }
        if let L4::Icmp { kind, .. } = pkt.l4 {
            if ip.is_v6() && (133..=137).contains(&kind) {
                // Router and neighbour discovery belong to the network layer (and the host).
                return out.neighbor.push((punt.port, punt.frame));
            }
        }
        if ip.fragment {
            return self.stats.discard(Discard::Fragment);
        }
        match pkt.l4 {
            L4::Tcp { .. } | L4::Udp { .. } => self.transport(punt, &pkt, now_ns, out),
            L4::Icmp { kind, code } => self.icmp(punt, &pkt, kind, code, out),
            L4::None => {
                if self.services.is_vip(ip.dst) || self.services.is_lip(ip.dst) {
                    self.stats.discard(Discard::Unsupported);
                } else {
                    out.to_host.push((punt.port, punt.frame));
                }
            }
        }
    }

    /// Lets time act: expires connections whose timeout passed (or asks the NIC how idle an
    /// offloaded one really is).
    pub fn advance(&mut self, now_ns: u64, out: &mut Out) {
        // The PROXY-protocol headers' retransmissions.
        let mut expired = std::mem::take(&mut self.expired);
        expired.clear();
        self.timers.advance(now_ns, &mut expired);
        for e in &expired {
            self.pp_timer(e.key, e.generation & !pp::PP_TIMER, now_ns, out);
        }
        self.expired = expired;
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        self.conns.advance_timers(now_ns, &mut due);
        for &(slot, generation) in &due {
            self.on_timer(slot, generation, now_ns, out);
        }
        self.due = due;
        self.standby_sweep(now_ns);
        if !self.reset_tuples.is_empty() {
            self.reset_tuples.retain(|_, until| *until > now_ns);
        }
    }

    /// The result of an install.
    pub fn on_installed(&mut self, slot: u32, generation: u32, result: Result<Handle, ()>, out: &mut Out) {
        let Some(c) = self.conn_mut(slot, generation) else {
            // The connection ended while its install was on the way: take the flow back out.
            if let Ok(h) = result {
                out.removes.push(h);
            }
            return;
        };
        match result {
            Ok(h) => {
                c.set_offload(Offload::Nic(h));
                WorkerStats::inc(&self.stats.offloaded);
            }
            Err(()) => {
                c.set_offload(Offload::Refused);
                WorkerStats::inc(&self.stats.offload_full);
            }
        }
    }

    /// The NIC's counters of an offloaded connection (answer to a query): the connection lives
    /// on if the NIC saw it within its timeout, and ends now otherwise.
    pub fn on_counters(
        &mut self,
        slot: u32,
        generation: u32,
        counters: Option<FlowCounters>,
        now_ns: u64,
        out: &mut Out,
    ) {
        let timeouts = self.cfg.timeouts;
        let Some(c) = self.conn_mut(slot, generation) else { return };
        c.set_querying(false);
        let flags = match counters {
            Some(k) => {
                let seen = now_ns.saturating_sub(u64::from(k.idle_ms) * 1_000_000);
                c.seen(seen, now_ns);
                c.add_nic(&k);
                k.tcp_flags
            }
            // The NIC no longer holds it (reset, eviction): the host path takes over.
            None => {
                c.set_offload(Offload::Host);
                [0; 2]
            }
        };
        // A FIN the NIC forwarded whose event was lost (a full event ring) still closes the
        // connection: the flags of its flow say so.
        if (flags[0] | flags[1]) & teardown::FIN != 0 {
            self.fin_seen_by_nic(slot, flags, now_ns);
        }
        let Some(c) = self.conn_mut(slot, generation) else { return };
        let deadline = c.last_ns(now_ns) + timeouts.of(c.state).as_nanos() as u64;
        if deadline > now_ns {
            self.conns.arm(slot, deadline);
            self.sync_emit(slot, crate::sync::SyncKind::Changed, now_ns);
        } else {
            self.expire(slot, generation, now_ns, out);
        }
    }

    /// A flow event from the NIC about one of this worker's connections.
    pub fn on_flow_event(
        &mut self,
        cookie: u32,
        handle: Handle,
        cause: FlowCause,
        counters: FlowCounters,
        now_ns: u64,
        out: &mut Out,
    ) {
        let slot = cookie & ((1 << COOKIE_SLOT_BITS) - 1);
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.offload() != Offload::Nic(handle) {
            return;
        }
        // The record's counters since the last clearing read. They are taken when the record
        // goes (idle: the connection ends now; evicted or deleted: gone from the NIC); a FIN or
        // RST leaves the record, whose counters the next clearing read will bring.
        if matches!(cause, FlowCause::Idle | FlowCause::Evicted | FlowCause::Host) {
            c.add_nic(&counters);
        }
        match cause {
            FlowCause::Idle => {
                let generation = c.generation;
                self.expire(slot, generation, now_ns, out);
            }
            FlowCause::Evicted => c.set_offload(Offload::Host),
            // Forwarded by the NIC (`offload.forward_fin`), or punted too (then the state has
            // moved with the packet, and moves no further here).
            FlowCause::Fin => self.fin_seen_by_nic(slot, counters.tcp_flags, now_ns),
            // A RST on a hit is always punted: the state moved with the packet.
            _ => {}
        }
    }

    /// The NIC refused (or lost) the flow of a connection: the host path keeps it.
    pub fn on_offload_lost(&mut self, cookie: u32, handle: Handle) {
        let slot = cookie & ((1 << COOKIE_SLOT_BITS) - 1);
        if let Some(c) = self.conns.get_mut(slot) {
            if c.offload() == Offload::Nic(handle) {
                c.set_offload(Offload::Refused);
                WorkerStats::inc(&self.stats.offload_full);
            }
        }
    }

    fn conn_mut(&mut self, slot: u32, generation: u32) -> Option<&mut Conn> {
        self.conns.current_mut(slot, generation)
    }

    /// Which worker owns a client-side tuple: the NIC's symmetric steering hash through the
    /// redirection table the engine programs (entry `n` → worker `n % workers`).
    pub fn owner_of_client_tuple(&self, src: SocketAddr, dst: SocketAddr, proto: u8) -> u16 {
        // One worker owns everything: no hash (every new connection's SYN asks).
        if self.cfg.workers == 1 {
            return 0;
        }
        let t = crate::addr::tuple(src, dst);
        let h = rtl_spec::hash::steering_hash(self.cfg.steer_seed, &t, proto, src.is_ipv6());
        ((h & 63) % u32::from(self.cfg.workers)) as u16
    }

    /// Which worker owns a local port.
    pub fn owner_of_lport(&self, lport: u16) -> u16 {
        lport & (self.cfg.workers - 1)
    }

    /// Removes every connection of a server (or of a whole service with `rs` None); with
    /// `reset`, packets that still arrive for them are answered with a TCP reset.
    pub fn reset_backend(
        &mut self,
        service: &ServiceKey,
        rs: Option<SocketAddr>,
        reset: bool,
        now_ns: u64,
        out: &mut Out,
    ) -> usize {
        let victims: Vec<(u32, u32)> = self
            .conns
            .iter()
            .filter(|(_, _, r)| r.service() == *service && rs.is_none_or(|rs| r.rs == rs))
            .map(|(i, c, _)| (i, c.generation))
            .collect();
        for &(slot, generation) in &victims {
            if reset {
                if let Some(c) = self.conns.get(slot).filter(|c| c.generation == generation) {
                    let route = self.conns.route(c);
                    if route.proto == Proto::Tcp {
                        let until = now_ns + 60_000_000_000;
                        let ep = c.ep(route);
                        self.reset_tuples.insert(TupleKey { proto: 6, src: ep.client, dst: ep.vip }, until);
                        self.reset_tuples.insert(TupleKey { proto: 6, src: ep.rs, dst: ep.lip }, until);
                    }
                }
            }
            self.expire(slot, generation, now_ns, out);
        }
        victims.len()
    }

    /// Adopts a flow the NIC held from an earlier run of the daemon. Returns the flow's new
    /// cookie, or `None` when it is not one of this worker's (or its service is gone).
    /// `flow` is as the host thinks of it (client → VIP first); `server_first` says its record
    /// is written the other way round (a PROXY-protocol connection, see
    /// [`crate::proxy_protocol::client_first`]).
    pub fn adopt(&mut self, handle: Handle, flow: &Flow, server_first: bool, now_ns: u64) -> Option<u32> {
        let v6 = flow.ipv6;
        let ep = Endpoints {
            client: crate::addr::src_of(&flow.orig, v6),
            vip: crate::addr::dst_of(&flow.orig, v6),
            rs: crate::addr::src_of(&flow.reply, v6),
            lip: crate::addr::dst_of(&flow.reply, v6),
        };
        let proto = Proto::from_number(flow.proto)?;
        let key = ServiceKey { vip: ep.vip, proto };
        let services = self.services.clone();
        let (_, svc) = services.find(&key)?;
        let backend = svc.backend(ep.rs)?;
        let forward = svc.config.forward;
        // A NAT flow's reply tuple is server → client (no local port); a FullNAT one holds its
        // local port again.
        let held = if forward.uses_lip() {
            svc.config.local_addresses.contains(&ep.lip.ip())
                && self.ports.reserve(ep.lip.ip(), ep.rs, ep.lip.port())
        } else {
            ep.lip == ep.client
        };
        if !held {
            return None;
        }
        let state =
            State::from_host_state(flow.host_state).unwrap_or(State::Tcp(crate::conn::TcpState::Established));
        let orig = self.conns.tag(&conns::lookup_key(flow.proto, ep.client, ep.vip));
        let slot = self.insert_conn(ep, proto, forward, state, now_ns, (&backend.stats, &svc.stats), orig);
        if let Some(c) = self.conns.get_mut(slot) {
            c.set_offload(Offload::Nic(handle));
        }
        match (flow.seq_delta, server_first) {
            (Some(len), true) => {
                if let Some(c) = self.conns.get_mut(slot) {
                    c.set_server_first(true);
                }
                self.pps.insert(slot, pp::PpConn::adopted(len));
            }
            (Some(seq), false) => {
                let translation = crate::synproxy::Translation { seq, ts: flow.ts_delta };
                self.proxies.insert(slot, proxy::Proxy::adopted(translation));
            }
            (None, _) => {}
        }
        Some(self.cookie(slot))
    }
}
