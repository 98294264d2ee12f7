//! Connection sync at the engine: the workers' sync queue and the peers' LIPs set once at
//! start, each received event handed to the worker that would own the connection, and the
//! take-over of a peer's LIP once one of its connections became active here.
//!
//! A peer's LIP is not answered for (ARP/ND) while the peer lives: on a network both nodes
//! share, two answers for one address would split the servers' replies. It is taken over
//! when a packet first makes one of its standby copies active, which is the sign that traffic
//! for the peer's connections now reaches this node, unless the daemon says the peer is alive
//! ([`Engine::set_live_peer_lips`]: it was heard in the last few heartbeats). A live peer's
//! connections reach this node when the router moved some of its flows here (it came back
//! into ECMP, or its BGP session flapped): the copies forward them, the servers' replies still
//! go to the owner, and its LIP stays its own; it is taken over only once the peer goes
//! quiet. From the take-over on the engine answers for it
//! and announces it once on every port (a gratuitous ARP, an unsolicited neighbour
//! advertisement), as keepalived does on a VRRP take-over, so servers' caches move at once.
//! The announcement is repeated twice, 1.2 s apart ([`REANNOUNCE_NS`]): Linux ignores an ARP
//! that would change an entry updated less than `locktime` (1 s) before, and a server that
//! talked to the dead peer a moment ago has just updated its entry for the LIP, so the first
//! announcement may be lost on it.
//! The daemon also takes a peer's LIPs over when the peer's datagrams stop for 3 s (its
//! heartbeat comes every 100 ms), since the servers may be the only ones left talking to a
//! dead peer's connections (a download's client waits in silence), and releases them when the
//! peer is heard after the take-over (it restarted). A node that starts announces its own LIPs
//! ([`Engine::announce_own_lips`]) to take the servers' caches back from the peer that held
//! them.

use super::{Engine, EngineError};
use crate::emit::{self, L2};
use crate::sync::{SyncEvent, SyncQueue, SyncStats};
use rtl_spec::wire::ArpHeader;
use std::net::{IpAddr, Ipv6Addr};

/// The time between a taken-over LIP's announcements (beyond Linux's default `locktime` of 1 s).
pub const REANNOUNCE_NS: u64 = 1_200_000_000;
/// How many times an announcement is repeated after the first.
const REANNOUNCE_TIMES: u8 = 2;

impl Engine {
    /// Reports every worker's connection events to `queue`; `peer_lips` are the peers' LIPs
    /// (replies to them are steered as replies to this node's own).
    pub fn set_sync(&mut self, queue: SyncQueue, peer_lips: Vec<IpAddr>) -> Result<(), EngineError> {
        for w in self.workers.iter_mut().chain(self.spares.iter_mut()) {
            w.set_sync(queue.clone(), peer_lips.clone());
        }
        self.sync = Some(queue);
        self.peer_lips = peer_lips;
        self.program_steering()
    }

    /// The peers' events, received: each goes to the worker whose slice holds its LIP port,
    /// which is also the worker the NIC steers its client tuple to when the nodes run the same
    /// number of workers. An event that the two would put in different workers (the nodes'
    /// `workers` differ) is ignored and counted.
    pub fn sync_receive(&mut self, events: impl IntoIterator<Item = SyncEvent>, now_ns: u64) {
        let Some(w0) = self.workers.first() else { return };
        let mut placed = Vec::new();
        for e in events {
            let w = w0.owner_of_lport(e.ep.lip.port());
            if w0.owner_of_client_tuple(e.ep.client, e.ep.vip, e.proto.number()) != w {
                if let Some(q) = &self.sync {
                    SyncStats::inc(&q.stats().ignored);
                }
                continue;
            }
            placed.push((usize::from(w), e));
        }
        for (w, e) in placed {
            if let Some(worker) = self.workers.get_mut(w) {
                worker.standby_apply(e, now_ns);
            }
        }
    }

    /// Starts reporting every active connection again (over again, if a dump was under way):
    /// a peer came up with no copy of them. [`Self::continue_sync_dump`] does the work.
    pub fn request_sync_dump(&mut self) {
        if let Some(q) = &self.sync {
            SyncStats::inc(&q.stats().resyncs);
            self.sync_dump = Some((0, 0));
        }
    }

    /// Goes on with a requested dump: as many connections as half the sync queue's room (the
    /// other half is kept for what the datapath reports meanwhile). Returns how many were
    /// reported.
    pub fn continue_sync_dump(&mut self, now_ns: u64) -> usize {
        let (Some((mut w, mut slot)), Some(q)) = (self.sync_dump, &self.sync) else { return 0 };
        let mut left = q.room() / 2;
        let mut reported = 0;
        while left > 0 {
            let Some(worker) = self.workers.get(w) else { break };
            let (sent, next) = worker.sync_dump(slot, left, now_ns);
            reported += sent;
            left -= sent;
            match next {
                Some(next) => slot = next,
                None => (w, slot) = (w + 1, 0),
            }
        }
        self.sync_dump = (w < self.workers.len()).then_some((w, slot));
        reported
    }

    /// Standby copies held by all workers.
    pub fn standby_count(&self) -> usize {
        self.workers.iter().map(crate::worker::Worker::standby_count).sum()
    }

    /// The peers' LIPs taken over (answered for) so far.
    pub fn taken_over(&self) -> &[IpAddr] {
        &self.taken
    }

    /// Takes over `lips` (a peer that stopped sending is taken for dead, so its servers' ARP
    /// requests for its LIPs are answered here and the servers told at once).
    pub fn take_over_lips(&mut self, lips: &[IpAddr]) {
        for &lip in lips {
            if !self.taken.contains(&lip) {
                tracing::info!(%lip, "a sync peer went quiet: taking over its local address");
                self.deferred.retain(|l| *l != lip);
                self.take(lip);
            }
        }
    }

    /// Stops answering for `lips` (their peer is back).
    pub fn release_lips(&mut self, lips: &[IpAddr]) {
        self.taken.retain(|l| !lips.contains(l));
        self.deferred.retain(|l| !lips.contains(l));
        self.reannounce.retain(|(l, _, _)| !lips.contains(l));
    }

    /// Repeats the announcements of taken-over LIPs that are due at `now_ns`.
    pub(super) fn repeat_announcements(&mut self, now_ns: u64) {
        let mut due = Vec::new();
        for (lip, at, left) in &mut self.reannounce {
            if *at <= now_ns {
                due.push(*lip);
                *left -= 1;
                *at = now_ns + REANNOUNCE_NS;
            }
        }
        self.reannounce.retain(|(_, _, left)| *left > 0);
        for lip in due {
            self.announce(lip);
        }
    }

    /// Takes over the peers' LIPs that worker `w` made a standby copy active with, those of a
    /// peer the daemon last said is alive excepted: they wait ([`Self::set_live_peer_lips`]).
    pub(super) fn take_over(&mut self, w: usize) {
        let Some(worker) = self.workers.get_mut(w) else { return };
        for lip in worker.take_takeovers() {
            if self.taken.contains(&lip) || self.deferred.contains(&lip) {
                continue;
            }
            if self.live_peer_lips.contains(&lip) {
                tracing::info!(%lip, "a live peer's connection reached this node: its local address stays its own");
                self.deferred.push(lip);
                continue;
            }
            tracing::info!(%lip, "a peer's connection failed over here: taking over its local address");
            self.take(lip);
        }
    }

    /// Says which peers' LIPs belong to peers alive now (heard in the last few heartbeats): a
    /// standby copy made active here does not take those over. A LIP whose copy was made active
    /// while its peer lived is taken over now if its peer is no longer in the list.
    pub fn set_live_peer_lips(&mut self, lips: Vec<IpAddr>) {
        self.live_peer_lips = lips;
        let quiet: Vec<IpAddr> =
            self.deferred.iter().copied().filter(|l| !self.live_peer_lips.contains(l)).collect();
        self.deferred.retain(|l| self.live_peer_lips.contains(l));
        for lip in quiet {
            if !self.taken.contains(&lip) {
                tracing::info!(%lip, "a peer whose connections reached this node went quiet: taking over its local address");
                self.take(lip);
            }
        }
    }

    /// LIPs whose copies were made active while their peer lived, not taken over.
    pub fn deferred_takeovers(&self) -> &[IpAddr] {
        &self.deferred
    }

    /// Answers for `lip` from now on and announces it, now and twice more.
    fn take(&mut self, lip: IpAddr) {
        self.taken.push(lip);
        self.announce(lip);
        self.reannounce.push((lip, self.now_ns + REANNOUNCE_NS, REANNOUNCE_TIMES));
    }

    /// Announces this node's own LIPs on every port, now and twice more: a node that restarted
    /// takes back the servers' caches, which a peer that took its LIPs over pointed at itself.
    pub fn announce_own_lips(&mut self) {
        for lip in self.table.lips() {
            self.announce(lip);
            self.reannounce.push((lip, self.now_ns + REANNOUNCE_NS, REANNOUNCE_TIMES));
        }
    }

    /// Announces that `lip` is reached through this node, on every port.
    fn announce(&mut self, lip: IpAddr) {
        let ports: Vec<(u8, [u8; 6])> =
            self.net.ports().iter().enumerate().map(|(n, p)| (n as u8, p.mac)).collect();
        for (port, mac) in ports {
            let frame = match lip {
                IpAddr::V4(a) => {
                    let l2 = L2 { dst: [0xff; 6], src: mac, vlan: None };
                    emit::arp(&l2, ArpHeader::REQUEST, mac, a, [0; 6], a)
                }
                IpAddr::V6(a) => {
                    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    let na = emit::neighbor_advert(a, all, mac, false);
                    emit::frame(&L2 { dst: emit::multicast_mac(all), src: mac, vlan: None }, &na)
                }
            };
            self.inject(port, &frame);
        }
    }
}
