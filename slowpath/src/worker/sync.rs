//! A worker's side of connection sync: it reports its connections' events to the sync queue
//! (created, state changed or refreshed, ended), keeps its peers' connections as standby copies,
//! and makes a copy an active connection on the first packet that reaches it, from either side.
//!
//! An activated copy is filed like a connection adopted after a restart: its service and server
//! must exist here (the nodes of a cluster run the same services), its state, LIP and port are
//! the ones the owner chose, and a SYN-proxied one keeps its sequence delta. It is then forwarded
//! and offloaded as any other connection. A LIP that is not this node's own (a peer's) is
//! reported once to the engine, which from then on answers ARP/ND for it and announces it
//! (gratuitous ARP, unsolicited NA), so the servers' replies follow the connection here.

use super::conns::lookup_key;
use super::{Conn, Worker, proxy};
use crate::conn::Endpoints;
use crate::service::{Proto, ServiceKey};
use crate::sync::standby::Standby;
use crate::sync::{SyncEvent, SyncKind, SyncQueue, SyncStats};
use std::net::IpAddr;

/// What a worker holds for sync.
#[derive(Debug, Default)]
pub(super) struct WorkerSync {
    /// Where its events go (none without `[sync]`).
    queue: Option<SyncQueue>,
    /// The peers' connections.
    standby: Standby,
    /// The peers' LIPs: replies to them are steered like replies to this node's own.
    peer_lips: Vec<IpAddr>,
    /// Peers' LIPs this worker made a copy of active with, for the engine to take over.
    takeovers: Vec<IpAddr>,
}

/// The event of connection `c`.
fn event_of(
    (c, ep, proto): (&Conn, Endpoints, Proto),
    kind: SyncKind,
    timeout_ns: u64,
    delta: Option<crate::synproxy::Translation>,
    now_ns: u64,
) -> SyncEvent {
    let remaining = (c.last_ns(now_ns) + timeout_ns).saturating_sub(now_ns) / 1_000_000;
    SyncEvent {
        kind,
        ep,
        proto,
        state: c.state,
        timeout_ms: remaining.min(u64::from(u32::MAX)) as u32,
        seq_delta: delta.map(|t| t.seq),
        ts_delta: delta.map_or(0, |t| t.ts),
    }
}

impl Worker {
    /// Starts reporting events to `queue`; replies to `peer_lips` are the peers' connections'.
    pub fn set_sync(&mut self, queue: SyncQueue, peer_lips: Vec<IpAddr>) {
        self.sync.queue = Some(queue);
        self.sync.peer_lips = peer_lips;
    }

    /// Whether `a` is one of the peers' LIPs.
    pub(super) fn is_peer_lip(&self, a: IpAddr) -> bool {
        !self.sync.peer_lips.is_empty() && self.sync.peer_lips.contains(&a)
    }

    /// Reports an event of the connection in `slot` (nothing without `[sync]`).
    pub(super) fn sync_emit(&self, slot: u32, kind: SyncKind, now_ns: u64) {
        let Some(q) = &self.sync.queue else { return };
        // A PROXY-protocol connection's server side is shifted by its header's length, which a
        // sync record does not carry: a peer that took it over would forward the stream
        // unshifted and corrupt it. Not synced, it breaks cleanly on failover instead.
        if !self.pps.is_empty() && self.pps.contains_key(&slot) {
            return;
        }
        let Some(c) = self.conns.get(slot) else { return };
        let timeout = self.cfg.timeouts.of(c.state).as_nanos() as u64;
        let delta = self.proxies.get(&slot).and_then(|p| p.delta);
        let route = self.conns.route(c);
        q.push(event_of((c, c.ep(route), route.proto), kind, timeout, delta, now_ns));
    }

    /// Reports again the connections from `slot` on, at most `max` of them: a resync for a
    /// peer that came up. Returns how many it reported and the slot to go on from (`None`:
    /// this worker's connections are all done).
    pub fn sync_dump(&self, slot: u32, max: usize, now_ns: u64) -> (usize, Option<u32>) {
        if self.sync.queue.is_none() {
            return (0, None);
        }
        let mut sent = 0;
        for (s, _, _) in self.conns.iter_from(slot) {
            if sent == max {
                return (sent, Some(s));
            }
            self.sync_emit(s, SyncKind::Changed, now_ns);
            sent += 1;
        }
        (sent, None)
    }

    /// Reports a state change of the connection in `slot` if there was one.
    pub(super) fn sync_changed(&self, changed: bool, slot: u32, now_ns: u64) {
        if changed {
            self.sync_emit(slot, SyncKind::Changed, now_ns);
        }
    }

    /// Reports the end of a connection just removed (its endpoints `ep`, its `proto`).
    pub(super) fn sync_ended(&self, c: &Conn, ep: Endpoints, proto: Proto, now_ns: u64) {
        if let Some(q) = &self.sync.queue {
            q.push(event_of((c, ep, proto), SyncKind::Ended, 0, None, now_ns));
        }
    }

    /// A peer's event about one of its connections (the engine hands each to the worker that
    /// owns its LIP port). An event for a connection this worker holds active is ignored: the
    /// connection moved here already.
    pub fn standby_apply(&mut self, e: SyncEvent, now_ns: u64) {
        let key = lookup_key(e.proto.number(), e.ep.client, e.ep.vip);
        if self.conns.find(&key).is_some() {
            if let Some(q) = &self.sync.queue {
                SyncStats::inc(&q.stats().ignored);
            }
            return;
        }
        self.sync.standby.apply(e, now_ns);
    }

    /// Standby copies held.
    pub fn standby_count(&self) -> usize {
        self.sync.standby.len()
    }

    /// The standby copies (for listings and tests).
    pub fn standby(&self) -> impl Iterator<Item = &SyncEvent> {
        self.sync.standby.iter()
    }

    /// Peers' LIPs this worker took connections over on since the last call.
    pub fn take_takeovers(&mut self) -> Vec<IpAddr> {
        std::mem::take(&mut self.sync.takeovers)
    }

    /// Drops standby copies past their deadline (once a second).
    pub(super) fn standby_sweep(&mut self, now_ns: u64) {
        let n = self.sync.standby.sweep(now_ns);
        if n > 0 {
            if let Some(q) = &self.sync.queue {
                q.stats().standby_expired.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Makes the standby copy whose tuple a packet `src` → `dst` carries an active connection.
    /// Returns whether it did (the caller then handles the packet as one of a known
    /// connection).
    pub(super) fn activate(
        &mut self,
        proto: u8,
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        now_ns: u64,
    ) -> bool {
        if self.sync.standby.is_empty() {
            return false;
        }
        let Some(e) = self.sync.standby.take(proto, src, dst) else { return false };
        let services = self.services.clone();
        let found = services.find(&ServiceKey { vip: e.ep.vip, proto: e.proto }).map(|(_, s)| s);
        let Some((svc, backend)) = found.and_then(|s| s.backend(e.ep.rs).map(|b| (s, b))) else {
            if let Some(q) = &self.sync.queue {
                SyncStats::inc(&q.stats().ignored);
            }
            return false;
        };
        let forward = svc.config.forward;
        // Only modes with a local address have a LIP to own (NAT's, DR's and TUN's servers
        // answer the client's own address).
        let lip = e.ep.lip.ip();
        if forward.uses_lip() {
            if svc.config.local_addresses.contains(&lip) {
                // One of this node's own LIPs (a connection that came back): its port is taken.
                self.ports.reserve(lip, e.ep.rs, e.ep.lip.port());
            } else if !self.sync.takeovers.contains(&lip) {
                self.sync.takeovers.push(lip);
            }
        }
        let orig = self.conns.tag(&lookup_key(proto, e.ep.client, e.ep.vip));
        let stats = (&backend.stats, &svc.stats);
        let slot = self.insert_conn(e.ep, e.proto, forward, e.state, now_ns, stats, orig);
        if let Some(seq) = e.seq_delta {
            let translation = crate::synproxy::Translation { seq, ts: e.ts_delta };
            self.proxies.insert(slot, proxy::Proxy::adopted(translation));
        }
        if let Some(q) = &self.sync.queue {
            SyncStats::inc(&q.stats().activated);
        }
        true
    }
}
