//! The engine's control surface: services and servers changed at run time (each change a new
//! snapshot published to every worker), the flow listing `sluice flows` prints, statistics,
//! and adoption of the NIC's flows after a restart.

use super::{DeviceSideStats, Engine, EngineError};
use crate::conn::{Endpoints, Offload};
use crate::laddr::LportStats;
use crate::network::NetStats;
use crate::service::{BackendConfig, ServiceConfig, ServiceKey};
use crate::worker::{Discard, Out};
use flow_offload::{Adopted, Handle};
use host_driver::nic::DeviceCounters;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// Where a connection's packets are forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// By the NIC's flow table.
    Nic,
    /// By the host's slow path (not offloaded yet, held back by the policy, or refused).
    Host,
}

impl Location {
    /// "nic" or "host".
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Nic => "nic",
            Location::Host => "host",
        }
    }
}

/// One connection as `sluice flows` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The worker that owns it.
    pub worker: u16,
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// State name (ipvsadm's).
    pub state: &'static str,
    /// Milliseconds until its timeout, from its last packet.
    pub expire_ms: u64,
    /// The connection's four FullNAT endpoints (client, VIP, LIP, real server). Without a
    /// local address (NAT, DR, TUN) the LIP is the client's endpoint.
    pub endpoints: Endpoints,
    /// How it is forwarded.
    pub forward: crate::service::Forward,
    /// Where it lives.
    pub location: Location,
    /// Its NIC record, when offloaded.
    pub record: Option<u32>,
    /// Packets (original, reply), host path and NIC.
    pub packets: [u64; 2],
    /// Bytes (original, reply).
    pub bytes: [u64; 2],
    /// Milliseconds since its last packet.
    pub idle_ms: u64,
    /// What the host holds (to add the NIC's uncleared counters to on a refresh).
    pub host: HostSide,
}

/// A connection's counters as the host holds them, and its timeout, behind a [`ConnInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSide {
    /// Packets the host forwarded and the NIC reported up to the last clearing read
    /// (original, reply); a refresh adds what the NIC counted since.
    pub packets: [u64; 2],
    /// Bytes, counted as `packets` are.
    pub bytes: [u64; 2],
    /// When the host last saw a packet, ns.
    pub last_ns: u64,
    /// The state's timeout, ns.
    pub timeout_ns: u64,
    /// Its NIC record is written server first (PROXY protocol): the record's counters are
    /// read the other way round.
    pub server_first: bool,
}

/// One worker's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// Packets handled.
    pub packets: u64,
    /// Packets forwarded by the host path.
    pub forwarded: u64,
    /// Connections created.
    pub created: u64,
    /// Connections ended.
    pub expired: u64,
    /// Connections offloaded.
    pub offloaded: u64,
    /// Offloads refused (table full).
    pub offload_full: u64,
    /// Connections now.
    pub current: u64,
    /// Half-open connections now.
    pub half_open: u64,
    /// Echo replies.
    pub echo_replies: u64,
    /// ICMP errors translated.
    pub icmp_translated: u64,
    /// Resets sent.
    pub resets: u64,
    /// SYN cookies sent (SYN-proxied services).
    pub syn_cookies: u64,
    /// Valid SYN cookies returned (proxied connections opened).
    pub syn_cookies_accepted: u64,
    /// Proxied connections whose server's options differed from the client's promise.
    pub synproxy_mismatch: u64,
    /// PROXY protocol headers sent to servers.
    pub pp_headers: u64,
    /// PROXY protocol headers sent again.
    pub pp_retransmits: u64,
    /// Client segments that carried a TOA option.
    pub toa_inserted: u64,
    /// Client segments that went without it for want of room.
    pub toa_no_room: u64,
    /// Drops by reason (name, count).
    pub drops: Vec<(&'static str, u64)>,
    /// LIP port pools.
    pub ports: LportStats,
}

/// Everything the engine counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// The device side.
    pub device_side: DeviceSideStats,
    /// The NIC's own counters.
    pub nic: DeviceCounters,
    /// The flow table's counters.
    pub table: flow_offload::Stats,
    /// Flows in the table.
    pub occupancy: u32,
    /// Records the table holds at most.
    pub capacity: u32,
    /// The network layer.
    pub net: NetStats,
    /// Per worker.
    pub workers: Vec<WorkerSnapshot>,
}

impl Engine {
    fn publish(&mut self) -> Result<(), EngineError> {
        self.table = self.services.snapshot();
        for w in &mut self.workers {
            w.set_services(self.table.clone());
        }
        self.program_steering()
    }

    /// Adds a service.
    pub fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), EngineError> {
        self.services.add_service(cfg)?;
        self.publish()
    }

    /// Removes a service; with `reset` its connections are cut (their next packets get a
    /// reset), otherwise they live out their time.
    pub fn del_service(&mut self, key: &ServiceKey, reset: bool) -> Result<(), EngineError> {
        self.services.del_service(key)?;
        self.publish()?;
        if reset {
            self.cut(key, None);
        }
        Ok(())
    }

    /// Adds a real server.
    pub fn add_backend(&mut self, key: &ServiceKey, b: BackendConfig) -> Result<(), EngineError> {
        self.services.add_backend(key, b)?;
        self.publish()
    }

    /// Removes a real server; with `reset` its connections are cut, otherwise they stay.
    pub fn del_backend(
        &mut self,
        key: &ServiceKey,
        addr: SocketAddr,
        reset: bool,
    ) -> Result<(), EngineError> {
        self.services.del_backend(key, addr)?;
        self.publish()?;
        if reset {
            self.cut(key, Some(addr));
        }
        Ok(())
    }

    /// Changes a server's weight (0 drains it: no new connections, existing ones stay).
    pub fn set_weight(&mut self, key: &ServiceKey, addr: SocketAddr, weight: u32) -> Result<(), EngineError> {
        self.services.set_weight(key, addr, weight)?;
        self.publish()
    }

    /// Records a health-check result; a change takes the server out of (or back into) its
    /// scheduler. Returns whether it changed.
    pub fn set_health(&mut self, key: &ServiceKey, addr: SocketAddr, up: bool) -> bool {
        let changed = self.services.set_health(key, addr, up);
        if changed {
            if let Err(e) = self.publish() {
                tracing::warn!(error = %e, "publishing a health change");
            }
        }
        changed
    }

    /// Whether a server passes its health check.
    pub fn is_up(&self, key: &ServiceKey, addr: SocketAddr) -> bool {
        self.services.is_up(key, addr)
    }

    /// Replaces every service with `configs` (a reload): new ones added, changed ones
    /// replaced, missing ones removed; established connections stay in every case.
    pub fn replace_services(&mut self, configs: Vec<ServiceConfig>) -> Result<(), EngineError> {
        self.services.replace_all(configs)?;
        self.publish()
    }

    fn cut(&mut self, key: &ServiceKey, rs: Option<SocketAddr>) {
        let now = self.now_ns;
        for w in 0..self.workers.len() {
            let mut out = Out::default();
            self.workers[w].reset_backend(key, rs, true, now, &mut out);
            self.apply(w, &mut out, now);
        }
        self.commit();
    }

    /// Every connection, with live NIC counters when `refresh` (one batch of queries).
    pub fn conns(&mut self, refresh: bool) -> Vec<ConnInfo> {
        let now = self.now_ns;
        let timeouts = self.cfg.timeouts;
        let mut out = Vec::new();
        for w in &self.workers {
            for (c, route) in w.conns() {
                let (location, record) = match c.offload() {
                    Offload::Nic(h) => (Location::Nic, Some(h.0)),
                    _ => (Location::Host, None),
                };
                let timeout_ns = timeouts.of(c.state).as_nanos() as u64;
                out.push(ConnInfo {
                    worker: w.id(),
                    proto: route.proto.as_str(),
                    state: c.state.name(),
                    expire_ms: (c.last_ns(now) + timeout_ns).saturating_sub(now) / 1_000_000,
                    endpoints: c.ep(route),
                    forward: route.forward,
                    location,
                    record,
                    packets: c.packets(),
                    bytes: c.bytes(),
                    idle_ms: now.saturating_sub(c.last_ns(now)) / 1_000_000,
                    host: HostSide {
                        packets: c.packets(),
                        bytes: c.bytes(),
                        last_ns: c.last_ns(now),
                        timeout_ns,
                        server_first: c.server_first(),
                    },
                });
            }
        }
        if refresh {
            self.refresh(&mut out);
        }
        out
    }

    /// Brings the listed connections' packets, bytes, idle and expiry up to date with the
    /// NIC's counters (one batch of queries, for the offloaded ones only): `sluice flows
    /// --limit 10` queries ten records, not the whole table.
    pub fn refresh(&mut self, infos: &mut [ConnInfo]) {
        let handles: Vec<Handle> = infos.iter().filter_map(|i| i.record.map(Handle)).collect();
        if handles.is_empty() {
            return;
        }
        let Ok(got) = self.flows.counters(&handles, false) else { return };
        let counters: std::collections::HashMap<Handle, flow_offload::FlowCounters> =
            got.into_iter().collect();
        let now = self.now_ns;
        for i in infos.iter_mut() {
            let Some(&k) = i.record.and_then(|r| counters.get(&Handle(r))) else { continue };
            let h = i.host;
            let k = if h.server_first { crate::proxy_protocol::swap_counters(k) } else { k };
            let last = h.last_ns.max(now.saturating_sub(u64::from(k.idle_ms) * 1_000_000));
            i.packets = [h.packets[0] + u64::from(k.packets[0]), h.packets[1] + u64::from(k.packets[1])];
            i.bytes = [h.bytes[0] + k.bytes[0], h.bytes[1] + k.bytes[1]];
            i.idle_ms = now.saturating_sub(last) / 1_000_000;
            i.expire_ms = (last + h.timeout_ns).saturating_sub(now) / 1_000_000;
        }
    }

    /// Every counter.
    pub fn stats(&mut self) -> EngineStats {
        // A lost NIC's registers read all ones: its counters are unknown, shown as zero.
        let nic = if self.flows.fault().is_some() {
            host_driver::nic::DeviceCounters::default()
        } else {
            self.queues.read_counters().unwrap_or_default()
        };
        let workers = self
            .workers
            .iter()
            .map(|w| {
                let s = w.stats();
                let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                WorkerSnapshot {
                    packets: l(&s.packets),
                    forwarded: l(&s.forwarded),
                    created: l(&s.created),
                    expired: l(&s.expired),
                    offloaded: l(&s.offloaded),
                    offload_full: l(&s.offload_full),
                    current: l(&s.current),
                    half_open: l(&s.half_open),
                    echo_replies: l(&s.echo_replies),
                    icmp_translated: l(&s.icmp_translated),
                    resets: l(&s.resets),
                    syn_cookies: l(&s.syn_cookies),
                    syn_cookies_accepted: l(&s.syn_cookies_accepted),
                    synproxy_mismatch: l(&s.synproxy_mismatch),
                    pp_headers: l(&s.pp_headers),
                    pp_retransmits: l(&s.pp_retransmits),
                    toa_inserted: l(&s.toa_inserted),
                    toa_no_room: l(&s.toa_no_room),
                    drops: Discard::ALL.iter().map(|d| (d.name(), l(&s.drops[*d as usize]))).collect(),
                    ports: w.port_stats(),
                }
            })
            .collect();
        EngineStats {
            device_side: self.stats,
            nic,
            table: self.flows.stats(),
            occupancy: self.flows.occupancy(),
            capacity: self.flows.capacity(),
            net: self.net.stats(),
            workers,
        }
    }

    /// Takes over flows the NIC held from an earlier run (see [`flow_offload::FlowTable::adopt`]):
    /// each becomes a connection of the worker that owns its local port, its record's cookie
    /// rewritten to its new slot and its record pointed at its server's counter set (so the
    /// NIC's traffic of it counts into the server's figures, as for a flow installed by this
    /// run). Flows no worker can take (their service or server is gone, or the port is not one
    /// the configuration hands out) are removed. Returns how many were adopted.
    pub fn adopt(&mut self, adopted: Adopted) -> usize {
        let now = self.now_ns;
        let mut n = 0;
        for (h, flow) in adopted.flows {
            let (flow, server_first) = crate::proxy_protocol::client_first(flow);
            let lport = flow.reply.dst_port.get();
            let w = usize::from(lport & (self.cfg.workers - 1));
            match self.workers.get_mut(w).and_then(|wk| wk.adopt(h, &flow, server_first, now)) {
                Some(cookie) => {
                    let _ = self.flows.set_cookie(h, cookie);
                    self.count_adopted(h, &flow, server_first);
                    n += 1;
                }
                None => {
                    let _ = self.flows.remove(h, false);
                }
            }
        }
        self.stats.adopted = n as u64;
        self.commit();
        n
    }
}
