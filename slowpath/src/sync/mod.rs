//! Connection sync between cluster nodes (what LVS's sync daemon does, for FullNAT): the events
//! a worker reports about its connections, the bounded queue they leave the datapath through,
//! the datagram format they travel in (`wire`), and the standby copies a peer keeps of them
//! (`standby`).
//!
//! The datapath never waits for sync: a worker puts an event on the queue with `try_send`, and
//! a full queue drops the event and counts it ([`SyncStats::dropped`]).
//!
//! **Resync.** A peer that comes up (first start, or a restart: its datagrams' sequence starts
//! again) holds no copy of this node's connections, and ECMP sends it some of their packets
//! as soon as its routes are back. So every active connection is reported again, as a
//! `Changed` event, paced by the queue's room so the dump never drops what the datapath
//! reports meanwhile ([`crate::engine::Engine::request_sync_dump`]). A lost event costs at
//! most one connection's fail-over: the next event of the same connection (a state change, or
//! the refresh a live connection sends each time its timer finds it alive) carries the whole
//! record again, never a difference.
//!
//! The sockets, the sender's batching and the receiver's thread are the daemon's (the binary's
//! `sync` module); this crate owns what the workers do and what crosses the wire.

pub mod standby;
pub mod wire;

use crate::conn::{Endpoints, State};
use crate::service::Proto;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SyncKind {
    /// It was created (or adopted, or activated from a standby copy).
    Created = 1,
    /// Its state changed, or it was found alive when its timer fired (a refresh).
    Changed = 2,
    /// It ended: a peer drops its copy.
    Ended = 3,
}

impl SyncKind {
    /// The kind of a record's byte.
    pub fn from_byte(b: u8) -> Option<SyncKind> {
        match b {
            1 => Some(SyncKind::Created),
            2 => Some(SyncKind::Changed),
            3 => Some(SyncKind::Ended),
            _ => None,
        }
    }
}

/// One connection event: the whole connection, as a peer needs it to take the connection over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncEvent {
    /// What happened.
    pub kind: SyncKind,
    /// Client, VIP, LIP and port, server: both tuples.
    pub ep: Endpoints,
    /// TCP or UDP.
    pub proto: Proto,
    /// The state after the event.
    pub state: State,
    /// How long the connection lives without another packet, ms.
    pub timeout_ms: u32,
    /// A SYN-proxied connection's sequence delta (the NIC's `seq_delta`).
    pub seq_delta: Option<u32>,
    /// Its timestamp delta (the NIC's `ts_delta`; 0: none).
    pub ts_delta: u32,
}

/// Sync's counters, shared by the workers, the sender and the receiver.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Events the workers queued.
    pub queued: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Datagrams sent (heartbeats included).
    pub sent: AtomicU64,
    /// Events sent.
    pub sent_records: AtomicU64,
    /// Datagrams sending failed (the socket's error is logged once in a while).
    pub send_errors: AtomicU64,
    /// Good datagrams received from peers.
    pub received: AtomicU64,
    /// Events received.
    pub received_records: AtomicU64,
    /// Datagrams refused: malformed, another version, or from an address that is not a peer.
    pub bad: AtomicU64,
    /// Datagrams a peer sent that never arrived (gaps in its sequence numbers).
    pub lost: AtomicU64,
    /// Standby connections made active by a packet.
    pub activated: AtomicU64,
    /// Standby connections that aged out with no packet.
    pub standby_expired: AtomicU64,
    /// Received events for a connection this node holds active, or whose service or server
    /// this node does not have: ignored.
    pub ignored: AtomicU64,
    /// Full resyncs sent: every active connection reported again because a peer came up (or
    /// back after a restart) with no copy of them.
    pub resyncs: AtomicU64,
}

impl SyncStats {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The sending end of the bounded queue between the workers and the sync sender.
#[derive(Clone, Debug)]
pub struct SyncQueue {
    tx: crossbeam_channel::Sender<SyncEvent>,
    stats: Arc<SyncStats>,
}

impl SyncQueue {
    /// A queue of at most `bound` events, and its receiving end.
    pub fn bounded(
        bound: usize,
        stats: Arc<SyncStats>,
    ) -> (SyncQueue, crossbeam_channel::Receiver<SyncEvent>) {
        let (tx, rx) = crossbeam_channel::bounded(bound.max(1));
        (SyncQueue { tx, stats }, rx)
    }

    /// Queues an event, or drops and counts it when the queue is full (never blocks).
    pub fn push(&self, e: SyncEvent) {
        match self.tx.try_send(e) {
            Ok(()) => SyncStats::inc(&self.stats.queued),
            Err(_) => SyncStats::inc(&self.stats.dropped),
        }
    }

    /// Events waiting now.
    pub fn depth(&self) -> usize {
        self.tx.len()
    }

    /// Events the queue takes now before it is full.
    pub fn room(&self) -> usize {
        self.tx.capacity().unwrap_or(usize::MAX).saturating_sub(self.tx.len())
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<SyncStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::TcpState;

    pub(crate) fn event(n: u16) -> SyncEvent {
        SyncEvent {
            kind: SyncKind::Created,
            ep: Endpoints {
                client: format!("10.0.0.1:{n}").parse().unwrap(),
                vip: "10.99.0.1:80".parse().unwrap(),
                lip: "10.10.2.1:2048".parse().unwrap(),
                rs: "10.10.2.11:80".parse().unwrap(),
            },
            proto: Proto::Tcp,
            state: State::Tcp(TcpState::Established),
            timeout_ms: 90_000,
            seq_delta: None,
            ts_delta: 0,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_never_blocks() {
        let stats = Arc::new(SyncStats::default());
        let (q, rx) = SyncQueue::bounded(4, stats.clone());
        for n in 0..10 {
            q.push(event(n));
        }
        assert_eq!(q.depth(), 4);
        assert_eq!(stats.queued.load(Ordering::Relaxed), 4);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 6);
        let got: Vec<_> = rx.try_iter().map(|e| e.ep.client.port()).collect();
        assert_eq!(got, [0, 1, 2, 3], "the first events stay, in order");
        q.push(event(42));
        assert_eq!(q.depth(), 1, "room again once the sender took them");
    }
}
