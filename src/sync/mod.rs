//! Connection sync's sockets (`[sync]`): the sender thread that batches the workers' events
//! into datagrams for every peer, the receiver thread that checks what peers send, and what
//! `sluice cluster` and the metrics show about both. The events, the datagram format and the
//! standby copies are `slowpath::sync`'s; the engine takes the received events from the daemon's
//! loop ([`Syncer::drain`]), never from these threads.
//!
//! **Sender.** One UDP socket bound to `[sync] port` (so peers see datagrams from the port they
//! send to). Events wait at most `batch_ms` for company, a datagram carries up to 15; an idle
//! node sends an empty datagram every second, so a peer's "last seen" says the node lives
//! even when no connection changes. Unicast to each peer; no multicast.
//!
//! **Receiver.** Datagrams are taken only from a configured peer's address, and refused whole
//! when malformed or of another version (counted as `bad`, never a panic); a gap in a peer's
//! sequence numbers counts the datagrams lost. Good events go to the daemon's loop through a
//! bounded channel (a full one drops and counts, like the workers' queue).
//!
//! **Resync.** A peer heard for the first time, again after [`DEAD_AFTER`] of silence, or
//! restarted (its sequence numbers went back) has no copy of this node's connections: the
//! receiver flags it, and the daemon's loop has the engine report every active connection
//! again (`slowpath::sync`'s "Resync").

use crate::config::{Config, SyncConf};
use serde::{Deserialize, Serialize};
use slowpath::sync::wire::{self, MAX_RECORDS};
use slowpath::sync::{SyncEvent, SyncQueue, SyncStats};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An idle sender's heartbeat period: short, so that a few missing ones tell a dead peer from
/// a live one while its clients' connections are failing over (16 bytes, ten times a second).
const HEARTBEAT: Duration = Duration::from_millis(100);
/// A peer heard within this (three heartbeats) is alive: a standby copy of one of its
/// connections made active here does not take its LIPs over (the router moved a flow, the
/// peer still answers for its servers). Silent longer, it does.
pub const QUIET_AFTER: Duration = Duration::from_millis(300);
/// A peer silent this long is taken for dead even if none of its connections came here: its
/// LIPs are taken over (its servers may be the only ones still talking to it).
pub const DEAD_AFTER: Duration = Duration::from_secs(3);
/// How long the threads block at most (so they notice a stop).
const TICK: Duration = Duration::from_millis(100);
/// Datagrams waiting for the daemon's loop at most.
const RECEIVED_BOUND: usize = 4096;

/// What one peer looks like from here.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    /// Its address.
    pub address: String,
    /// Its LIPs (backup routes, taken over on fail-over).
    pub lips: Vec<String>,
    /// Its node id, once a datagram came.
    pub node_id: Option<u32>,
    /// Seconds since its last datagram (`None`: none yet). With its heartbeat every second,
    /// more than a few seconds means it is gone or unreachable: this is the sync lag.
    pub last_seen_s: Option<f64>,
    /// Datagrams received from it.
    pub datagrams: u64,
    /// Events received from it.
    pub records: u64,
    /// Its datagrams that never arrived (sequence gaps).
    pub lost: u64,
}

/// `[sync]`'s state, as `sluice cluster` shows it (`sync` in its reply).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncStatus {
    /// This node's id.
    pub node_id: u32,
    /// The UDP port.
    pub port: u16,
    /// Events waiting for the sender now.
    pub queue_depth: usize,
    /// The queue's bound.
    pub queue_bound: usize,
    /// Events queued by the workers.
    pub queued: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Datagrams sent (heartbeats included) and events in them.
    pub sent: u64,
    /// Events sent.
    pub sent_records: u64,
    /// Datagrams that could not be sent.
    pub send_errors: u64,
    /// Good datagrams received.
    pub received: u64,
    /// Events received.
    pub received_records: u64,
    /// Datagrams refused (malformed, another version, not from a peer).
    pub bad: u64,
    /// Peers' datagrams lost on the way.
    pub lost: u64,
    /// Standby copies of the peers' connections held now.
    pub standby: usize,
    /// Standby copies made active by a packet (connections failed over here).
    pub activated: u64,
    /// Full resyncs sent to a peer that came up or back.
    #[serde(default)]
    pub resyncs: u64,
    /// Standby copies that aged out.
    pub standby_expired: u64,
    /// Events ignored (the connection is active here, or its service or server is not).
    pub ignored: u64,
    /// Peers' LIPs taken over (answered for) after one of their connections failed over.
    pub taken_over: Vec<String>,
    /// The peers.
    pub peers: Vec<PeerStatus>,
}

struct Peer {
    address: IpAddr,
    lips: Vec<IpAddr>,
    node_id: Option<u32>,
    last_seen: Option<Instant>,
    last_seq: Option<u32>,
    datagrams: u64,
    records: u64,
    lost: u64,
}

/// The running sender and receiver.
pub struct Syncer {
    conf: SyncConf,
    node_id: u32,
    queue: SyncQueue,
    stats: Arc<SyncStats>,
    peers: Arc<Mutex<Vec<Peer>>>,
    received: crossbeam_channel::Receiver<Vec<SyncEvent>>,
    /// A peer came up or back since the daemon's loop last looked.
    resync: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// This node's id: `node_id`, or the first port address's low 32 bits.
pub fn node_id(cfg: &Config, s: &SyncConf) -> u32 {
    s.node_id.unwrap_or_else(|| {
        let a = cfg.ports.iter().flat_map(|p| p.addresses.iter()).map(|c| c.addr).next();
        match a {
            Some(IpAddr::V4(a)) => u32::from(a),
            Some(IpAddr::V6(a)) => (u128::from(a) & 0xffff_ffff) as u32,
            None => 1,
        }
    })
}

/// The address a socket of the other family reaches `a` at (IPv4 through an IPv6 socket is
/// v4-mapped).
fn target(a: IpAddr, port: u16, v6_socket: bool) -> SocketAddr {
    match (a, v6_socket) {
        (IpAddr::V4(v4), true) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port),
        _ => SocketAddr::new(a, port),
    }
}

fn unmapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        IpAddr::V4(_) => a,
    }
}

impl Syncer {
    /// Binds the port and starts both threads; the returned queue goes to the engine
    /// (`Engine::set_sync`).
    pub fn start(cfg: &Config, conf: &SyncConf) -> anyhow::Result<Syncer> {
        use anyhow::Context as _;
        let node = node_id(cfg, conf);
        let v6 = conf.peers.iter().any(|p| p.address.is_ipv6());
        let any = if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
        let socket = UdpSocket::bind(SocketAddr::new(any, conf.port))
            .with_context(|| format!("[sync] port = {}: binding the UDP port", conf.port))?;
        socket.set_read_timeout(Some(TICK))?;
        let stats = Arc::new(SyncStats::default());
        let (queue, events) = SyncQueue::bounded(conf.queue, stats.clone());
        let peers: Vec<Peer> = conf
            .peers
            .iter()
            .map(|p| Peer {
                address: p.address,
                lips: p.lips.clone(),
                node_id: None,
                last_seen: None,
                last_seq: None,
                datagrams: 0,
                records: 0,
                lost: 0,
            })
            .collect();
        let peers = Arc::new(Mutex::new(peers));
        let stop = Arc::new(AtomicBool::new(false));
        let (received_tx, received) = crossbeam_channel::bounded(RECEIVED_BOUND);
        let targets: Vec<SocketAddr> = conf.peers.iter().map(|p| target(p.address, conf.port, v6)).collect();
        let batch = Duration::from_millis(u64::from(conf.batch_ms));
        let send_socket = socket.try_clone()?;
        let (st, sp) = (stats.clone(), stop.clone());
        let sender = std::thread::Builder::new()
            .name("sync-send".into())
            .spawn(move || send_loop(&send_socket, &targets, node, batch, &events, &st, &sp))?;
        let resync = Arc::new(AtomicBool::new(false));
        let (st, sp, ps, rs) = (stats.clone(), stop.clone(), peers.clone(), resync.clone());
        let listener = std::thread::Builder::new()
            .name("sync-recv".into())
            .spawn(move || recv_loop(&socket, node, &ps, (&received_tx, &rs), &st, &sp))?;
        Ok(Syncer {
            conf: conf.clone(),
            node_id: node,
            queue,
            stats,
            peers,
            received,
            resync,
            stop,
            threads: vec![sender, listener],
        })
    }

    /// The workers' end of the event queue.
    pub fn queue(&self) -> SyncQueue {
        self.queue.clone()
    }

    /// Whether a peer came up or back since the last call (it needs a resync).
    pub fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::Relaxed)
    }

    /// The events received since the last call.
    pub fn drain(&self) -> Vec<SyncEvent> {
        self.received.try_iter().flatten().collect()
    }

    /// What `sluice cluster` shows; `standby` and `taken_over` are the engine's.
    pub fn status(&self, standby: usize, taken_over: &[IpAddr]) -> SyncStatus {
        let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stats;
        let now = Instant::now();
        let peers = self
            .peers
            .lock()
            .map(|ps| {
                ps.iter()
                    .map(|p| PeerStatus {
                        address: p.address.to_string(),
                        lips: p.lips.iter().map(ToString::to_string).collect(),
                        node_id: p.node_id,
                        last_seen_s: p.last_seen.map(|t| now.duration_since(t).as_secs_f64()),
                        datagrams: p.datagrams,
                        records: p.records,
                        lost: p.lost,
                    })
                    .collect()
            })
            .unwrap_or_default();
        SyncStatus {
            node_id: self.node_id,
            port: self.conf.port,
            queue_depth: self.queue.depth(),
            queue_bound: self.conf.queue,
            queued: c(&s.queued),
            dropped: c(&s.dropped),
            sent: c(&s.sent),
            sent_records: c(&s.sent_records),
            send_errors: c(&s.send_errors),
            received: c(&s.received),
            received_records: c(&s.received_records),
            bad: c(&s.bad),
            lost: c(&s.lost),
            standby,
            activated: c(&s.activated),
            resyncs: c(&s.resyncs),
            standby_expired: c(&s.standby_expired),
            ignored: c(&s.ignored),
            taken_over: taken_over.iter().map(ToString::to_string).collect(),
            peers,
        }
    }

    /// Each peer's LIPs and how long ago it was last heard (`None`: never).
    pub fn liveness(&self) -> Vec<(Vec<IpAddr>, Option<Duration>)> {
        let Ok(ps) = self.peers.lock() else { return Vec::new() };
        ps.iter().map(|p| (p.lips.clone(), p.last_seen.map(|t| t.elapsed()))).collect()
    }

    /// Stops both threads.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Gathers events into datagrams: sent when full, when the first event waited `batch`, or
/// (empty) when nothing was sent for a [`HEARTBEAT`].
fn send_loop(
    socket: &UdpSocket,
    targets: &[SocketAddr],
    node: u32,
    batch: Duration,
    events: &crossbeam_channel::Receiver<SyncEvent>,
    stats: &SyncStats,
    stop: &AtomicBool,
) {
    let mut pending: Vec<SyncEvent> = Vec::with_capacity(MAX_RECORDS);
    let mut first_at = Instant::now();
    let mut last_sent = Instant::now();
    let mut seq = 0u32;
    let mut datagram = Vec::with_capacity(wire::HEADER_LEN + MAX_RECORDS * wire::RECORD_LEN);
    let mut errors_logged = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = if pending.is_empty() { last_sent + HEARTBEAT } else { first_at + batch };
        let wait = due.saturating_duration_since(Instant::now()).min(TICK);
        let full = match events.recv_timeout(wait) {
            Ok(e) => {
                if pending.is_empty() {
                    first_at = Instant::now();
                }
                pending.push(e);
                while pending.len() < MAX_RECORDS {
                    match events.try_recv() {
                        Ok(e) => pending.push(e),
                        Err(_) => break,
                    }
                }
                pending.len() == MAX_RECORDS
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => false,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        if !full && Instant::now() < due {
            continue;
        }
        wire::encode(node, seq, &pending, &mut datagram);
        seq = seq.wrapping_add(1);
        for t in targets {
            match socket.send_to(&datagram, t) {
                Ok(_) => {
                    SyncStats::inc(&stats.sent);
                    stats.sent_records.fetch_add(pending.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    SyncStats::inc(&stats.send_errors);
                    // Once, then every 1000th: a dead peer's "unreachable" would flood the log.
                    if errors_logged % 1000 == 0 {
                        tracing::warn!(peer = %t, error = %e, "sending connection sync failed");
                    }
                    errors_logged += 1;
                }
            }
        }
        pending.clear();
        last_sent = Instant::now();
    }
}

/// Takes the peers' datagrams: checked, counted, handed to the daemon's loop.
fn recv_loop(
    socket: &UdpSocket,
    node: u32,
    peers: &Mutex<Vec<Peer>>,
    (out, resync): (&crossbeam_channel::Sender<Vec<SyncEvent>>, &AtomicBool),
    stats: &SyncStats,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                continue;
            }
            // ICMP port unreachable from a peer that is down shows up here: not ours to fix.
            Err(_) => continue,
        };
        let from = unmapped(from.ip());
        let Ok(mut ps) = peers.lock() else { return };
        let Some(peer) = ps.iter_mut().find(|p| p.address == from) else {
            SyncStats::inc(&stats.bad);
            tracing::debug!(%from, "a sync datagram from an address that is not a peer: refused");
            continue;
        };
        let d = match wire::decode(&buf[..n]) {
            Ok(d) if d.node != node => d,
            Ok(_) => {
                SyncStats::inc(&stats.bad);
                tracing::debug!(%from, "a sync datagram with this node's own id: refused");
                continue;
            }
            Err(e) => {
                SyncStats::inc(&stats.bad);
                tracing::debug!(%from, error = %e, "a bad sync datagram: refused");
                continue;
            }
        };
        if peer_came_up(peer, d.node, d.seq) {
            tracing::info!(%from, node = d.node, "a sync peer came up: reporting every connection to it again");
            resync.store(true, Ordering::Relaxed);
        }
        if let Some(last) = peer.last_seq.filter(|_| peer.node_id == Some(d.node)) {
            // A restarted peer starts again from 0: no gap is counted for that.
            let gap = d.seq.wrapping_sub(last).wrapping_sub(1);
            if d.seq != 0 && gap < 1 << 16 {
                peer.lost += u64::from(gap);
                stats.lost.fetch_add(u64::from(gap), Ordering::Relaxed);
            }
        }
        peer.last_seq = Some(d.seq);
        peer.node_id = Some(d.node);
        peer.last_seen = Some(Instant::now());
        peer.datagrams += 1;
        peer.records += d.events.len() as u64;
        drop(ps);
        SyncStats::inc(&stats.received);
        stats.received_records.fetch_add(d.events.len() as u64, Ordering::Relaxed);
        if d.events.is_empty() {
            continue;
        }
        let n = d.events.len() as u64;
        if out.try_send(d.events).is_err() {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Whether a datagram from `node` with sequence number `seq` shows that the peer came up
/// without this node's connections: heard for the first time, another node at its address,
/// back after [`DEAD_AFTER`] of silence, or restarted (its sequence numbers went back).
fn peer_came_up(peer: &Peer, node: u32, seq: u32) -> bool {
    peer.node_id != Some(node)
        || peer.last_seen.is_none_or(|t| t.elapsed() >= DEAD_AFTER)
        || peer.last_seq.is_some_and(|last| seq < last)
}

/// Prometheus text for `[sync]`.
pub fn metrics(st: &SyncStatus) -> String {
    let mut s = String::new();
    let series: [(&str, &str, &str, u64); 11] = [
        ("sent_total", "counter", "Sync datagrams sent (heartbeats included).", st.sent),
        ("sent_records_total", "counter", "Connection events sent.", st.sent_records),
        ("received_total", "counter", "Good sync datagrams received.", st.received),
        ("received_records_total", "counter", "Connection events received.", st.received_records),
        ("dropped_total", "counter", "Connection events dropped on a full queue.", st.dropped),
        (
            "bad_total",
            "counter",
            "Sync datagrams refused (malformed, another version, not from a peer).",
            st.bad,
        ),
        ("lost_total", "counter", "Peers' sync datagrams lost on the way.", st.lost),
        ("queue_depth", "gauge", "Connection events waiting for the sender.", st.queue_depth as u64),
        ("standby_connections", "gauge", "Standby copies of peers' connections.", st.standby as u64),
        (
            "activated_total",
            "counter",
            "Standby connections made active by a packet (failed over here).",
            st.activated,
        ),
        ("resyncs_total", "counter", "Full resyncs sent to a peer that came up or back.", st.resyncs),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(
            s,
            "# HELP sluice_sync_{name} {help}\n# TYPE sluice_sync_{name} {kind}\nsluice_sync_{name} {value}"
        );
    }
    s.push_str("# HELP sluice_sync_lag_seconds Seconds since each peer's last sync datagram (heartbeat every second).\n");
    s.push_str("# TYPE sluice_sync_lag_seconds gauge\n");
    // A peer never heard from has no lag to show: it is absent from the series.
    for p in &st.peers {
        if let Some(l) = p.last_seen_s {
            let _ = writeln!(s, "sluice_sync_lag_seconds{{peer=\"{}\"}} {l:.3}", p.address);
        }
    }
    s
}

/// The lines `sluice cluster` prints about sync.
pub fn format(st: &SyncStatus) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nSync: node {} on UDP port {}, queue {}/{}, {} standby, {} activated, taken over: {}",
        st.node_id,
        st.port,
        st.queue_depth,
        st.queue_bound,
        st.standby,
        st.activated,
        if st.taken_over.is_empty() { "none".to_string() } else { st.taken_over.join(" ") }
    );
    let _ = writeln!(
        s,
        "  sent {} datagrams ({} events), received {} ({} events), dropped {}, bad {}, lost {}, send errors {}, resyncs {}",
        st.sent,
        st.sent_records,
        st.received,
        st.received_records,
        st.dropped,
        st.bad,
        st.lost,
        st.send_errors,
        st.resyncs
    );
    let _ = writeln!(s, "\nPeer                 Node        Last seen  Datagrams   Events     Lost  LIPs");
    for p in &st.peers {
        let seen = p.last_seen_s.map_or("never".to_string(), |l| format!("{l:.1} s ago"));
        let node = p.node_id.map_or("-".to_string(), |n| n.to_string());
        let _ = writeln!(
            s,
            "{:<20} {:<11} {:>10} {:>10} {:>8} {:>8}  {}",
            p.address,
            node,
            seen,
            p.datagrams,
            p.records,
            p.lost,
            p.lips.join(" ")
        );
    }
    s
}

#[cfg(test)]
mod tests;
