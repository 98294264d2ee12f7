//! `[sync]` and `[[sync.peer]]`: connection sync with the other nodes of a cluster (the
//! daemon's side is `crate::sync`). This module owns their checks and defaults.
//!
//! A peer is named with its LIPs (`lips`), not only its address: a node announces its peers'
//! LIPs as backup routes and steers replies to them before any connection of the peer has
//! been synced, so the LIPs must be known from the start; learning them from the stream would
//! leave a quiet peer's LIPs unannounced exactly when it dies. They are also checked here
//! against this node's own LIPs, which a peer must never claim.

use super::error::Problem;
use super::raw::RawSync;
use super::validate::{host_ip, int, owner_of};
use super::{Port, Service};
use serde::Serialize;
use std::net::IpAddr;

/// The default UDP port (both ends).
pub const DEFAULT_PORT: u16 = 8848;

/// `[sync]`: present only when the file has the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncConf {
    /// `port`: the UDP port sync datagrams are sent to and received on (default 8848).
    pub port: u16,
    /// `queue`: connection events waiting for the sender at most (default 65536); more are
    /// dropped and counted, the datapath never waits.
    pub queue: usize,
    /// `batch_ms`: how long the sender gathers events into one datagram at most (default 10).
    pub batch_ms: u32,
    /// `node_id`: this node's id in the datagrams (default: from its first port address).
    pub node_id: Option<u32>,
    /// `[[sync.peer]]` and `peers`, at least one, in file order.
    pub peers: Vec<SyncPeer>,
}

/// One peer: another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncPeer {
    /// `address` (*required*): the peer's own (port) address; datagrams go there and only
    /// datagrams from there are taken.
    pub address: IpAddr,
    /// `lips`: the peer's local addresses (default none): announced as backup routes and
    /// taken over when the peer's connections fail over here.
    pub lips: Vec<IpAddr>,
}

impl SyncConf {
    /// Every peer's LIPs.
    pub fn peer_lips(&self) -> Vec<IpAddr> {
        self.peers.iter().flat_map(|p| p.lips.iter().copied()).collect()
    }
}

/// Checks `[sync]`.
pub(super) fn sync(
    raw: Option<&RawSync>,
    ports: &[Port],
    services: &[Service],
) -> Result<Option<SyncConf>, Problem> {
    let Some(raw) = raw else { return Ok(None) };
    let port = int("sync.port", raw.port, DEFAULT_PORT, 1..=65_535, " (0 is no port)")?;
    let queue = int("sync.queue", raw.queue, 65_536usize, 1..=16_777_216, "")?;
    let batch_ms = int("sync.batch_ms", raw.batch_ms, 10u32, 1..=1000, "")?;
    let node_id = match raw.node_id {
        Some(v) => Some(int("sync.node_id", Some(v), 0u32, 1..=i64::from(u32::MAX), "")?),
        None => None,
    };
    let own_lips: Vec<IpAddr> = services.iter().flat_map(|s| s.local_addresses.iter().copied()).collect();
    let mut peers: Vec<SyncPeer> = Vec::new();
    let listed = raw.peers.iter().map(|a| (Some(a.as_str()), &[][..], None));
    let tables = raw.peer.iter().enumerate().map(|(i, p)| (p.address.as_deref(), p.lips.as_slice(), Some(i)));
    for (k, (address, lips, table)) in listed.chain(tables).enumerate() {
        let at = match table {
            Some(i) => format!("sync.peer[{i}]"),
            None => format!("sync.peers[{k}]"),
        };
        let Some(a) = address else {
            return Err(super::validate::missing(
                &at,
                "address",
                "the peer node's address, like address = \"10.10.2.252\"",
            ));
        };
        let path = if table.is_some() { format!("{at}.address") } else { at.clone() };
        let address = host_ip(&path, a)?;
        if let Some((n, name)) = owner_of(ports, &address) {
            let why = format!("another node's address: {address} is this node's own (port[{n}] {name:?})");
            return Err(Problem::string(&path, a, &why));
        }
        if peers.iter().any(|q| q.address == address) {
            return Err(Problem::raw(&path, format!("{path} = {a:?}: duplicate sync peer")));
        }
        let mut parsed = Vec::new();
        for (j, l) in lips.iter().enumerate() {
            let lpath = format!("{at}.lips[{j}]");
            let lip = host_ip(&lpath, l)?;
            if own_lips.contains(&lip) || owner_of(ports, &lip).is_some() {
                return Err(Problem::string(&lpath, l, "the peer's own LIP: this address is this node's"));
            }
            if parsed.contains(&lip) || peers.iter().any(|q| q.lips.contains(&lip)) {
                return Err(Problem::raw(&lpath, format!("{lpath} = {l:?}: listed twice")));
            }
            parsed.push(lip);
        }
        peers.push(SyncPeer { address, lips: parsed });
    }
    if peers.is_empty() {
        return Err(Problem::key(
            "sync",
            "no peer: give the other nodes, like [[sync.peer]] address = \"10.10.2.252\", lips = [\"10.10.2.2\"]",
        ));
    }
    Ok(Some(SyncConf { port, queue, batch_ms, node_id, peers }))
}
