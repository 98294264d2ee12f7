//! `[routing]`, `[[routing.peer]]` and each service's `priority`: how the node announces its
//! VIPs and LIPs through a local BIRD (the daemon's side is `crate::routing`). This module
//! owns their checks and defaults; it looks at nothing on the machine ([`check_socket`] does,
//! for `sluice run` and `sluice config check`).

use super::error::Problem;
use super::raw::{RawRouting, RawService};
use super::validate::{connected_port, host_ip, int, owner_of};
use super::{Port, Route};
use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The lowest (least preferred) `priority`: each step is one more AS-path prepend.
pub const MAX_PRIORITY: u8 = 9;

/// `[routing]`: present only when the file has the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routing {
    /// `bird_socket`: BIRD's control socket (*required*), as `birdc -s` takes it.
    pub bird_socket: PathBuf,
    /// `include_file`: the file the daemon writes (peers, routes, BFD) and the BIRD
    /// configuration includes (default `/run/sluice/bird/sluice.conf`; BIRD includes `/run/sluice/bird/*.conf`).
    pub include_file: PathBuf,
    /// `asn`: this node's AS number (*required*).
    pub asn: u32,
    /// `bfd`: BFD on every session (default true).
    pub bfd: bool,
    /// `bfd_interval_ms`: BFD transmit and receive interval (default 100).
    pub bfd_interval_ms: u32,
    /// `bfd_multiplier`: BFD packets missed before the session is down (default 3).
    pub bfd_multiplier: u32,
    /// `hold_time_s`: BGP hold time, 3..=65535 (default 3; keepalives every third of it).
    pub hold_time_s: u32,
    /// `announce_lips`: announce the services' local addresses too (default true), so replies
    /// from servers behind a router find the node that owns the connection.
    pub announce_lips: bool,
    /// `[[routing.peer]]`, at least one, in file order.
    pub peers: Vec<Peer>,
    /// Each VIP address with a `priority` other than 0, from the services (one per address).
    pub priorities: Vec<(IpAddr, u8)>,
    /// The `[sync]` peers' LIPs: announced too (with `announce_lips`), at [`BACKUP_PRIORITY`],
    /// so when a peer dies its LIPs' routes move here with its synced connections.
    pub backup_lips: Vec<IpAddr>,
}

/// The priority of a peer's LIP announced as a backup route: the least preferred, so the
/// owner's own route (priority 0) wins while it lives.
pub const BACKUP_PRIORITY: u8 = MAX_PRIORITY;

impl Routing {
    /// The priority of a VIP address (0 unless a service gives one).
    pub fn priority(&self, vip: &IpAddr) -> u8 {
        self.priorities.iter().find(|(a, _)| a == vip).map_or(0, |(_, p)| *p)
    }
}

/// One `[[routing.peer]]`: a BGP neighbour (a router) on one of the ports' networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// `address` (*required*): on a port's connected network (BGP and BFD go out of that
    /// port's host interface).
    pub address: IpAddr,
    /// `asn` (*required*): the peer's AS number; equal to `routing.asn` makes an iBGP session.
    pub asn: u32,
    /// `port`: the peer's BGP port (default 179).
    pub port: u16,
    /// `bfd`: this session's BFD (default `routing.bfd`).
    pub bfd: bool,
}

/// An AS number: 1..=4294967295 (0 is reserved).
fn asn(path: &str, v: Option<i64>, what: &str) -> Result<u32, Problem> {
    let Some(v) = v else {
        let (table, key) = path.rsplit_once('.').unwrap_or(("routing", path));
        return Err(super::validate::missing(table, key, what));
    };
    int(path, Some(v), 0u32, 1..=i64::from(u32::MAX), " (an AS number; 0 is reserved)")
}

/// Checks `[routing]` and the services' priorities; `None` when there is no `[routing]` and
/// no service gives a priority.
pub(super) fn routing(
    raw: Option<&RawRouting>,
    services: &[RawService],
    ports: &[Port],
    routes: &[Route],
) -> Result<Option<Routing>, Problem> {
    let priorities = priorities(services)?;
    let Some(raw) = raw else {
        if let Some((_, _, i)) = priorities.first() {
            let path = format!("service[{i}].priority");
            return Err(Problem::key(
                &path,
                "a priority needs a [routing] table (nothing announces the VIP)",
            ));
        }
        return Ok(None);
    };
    let Some(sock) = raw.bird_socket.as_deref() else {
        return Err(super::validate::missing(
            "routing",
            "bird_socket",
            "BIRD's control socket, like bird_socket = \"/run/bird/bird.ctl\"",
        ));
    };
    if sock.is_empty() || !sock.starts_with('/') {
        return Err(Problem::string(
            "routing.bird_socket",
            sock,
            "an absolute path, like \"/run/bird/bird.ctl\"",
        ));
    }
    let include = raw.include_file.as_deref().unwrap_or("/run/sluice/bird/sluice.conf");
    if !include.starts_with('/') || include.ends_with('/') || include.contains('"') {
        return Err(Problem::string(
            "routing.include_file",
            include,
            "an absolute file path without quotes, like \"/run/sluice/bird/sluice.conf\"",
        ));
    }
    let local_asn = asn("routing.asn", raw.asn, "this node's AS number, like asn = 65001")?;
    let bfd = raw.bfd.unwrap_or(true);
    let bfd_interval_ms = int("routing.bfd_interval_ms", raw.bfd_interval_ms, 100u32, 10..=10_000, "")?;
    let bfd_multiplier = int("routing.bfd_multiplier", raw.bfd_multiplier, 3u32, 2..=255, "")?;
    let hold_time_s = int("routing.hold_time_s", raw.hold_time_s, 3u32, 3..=65_535, " (BGP's least is 3)")?;
    if raw.peer.is_empty() {
        return Err(Problem::key(
            "routing",
            "no [[routing.peer]]: give at least one router to announce to (address and asn)",
        ));
    }
    let peers = peers(raw, ports, routes, bfd)?;
    Ok(Some(Routing {
        bird_socket: PathBuf::from(sock),
        include_file: PathBuf::from(include),
        asn: local_asn,
        bfd,
        bfd_interval_ms,
        bfd_multiplier,
        hold_time_s,
        announce_lips: raw.announce_lips.unwrap_or(true),
        peers,
        priorities: priorities.into_iter().map(|(a, p, _)| (a, p)).collect(),
        // Filled in once `[sync]` is read.
        backup_lips: Vec::new(),
    }))
}

/// Each VIP address a service gives a `priority`, with it and the first service giving it;
/// services on one address must agree (one address is one route).
fn priorities(services: &[RawService]) -> Result<Vec<(IpAddr, u8, usize)>, Problem> {
    let mut priorities: Vec<(IpAddr, u8, usize)> = Vec::new();
    for (i, s) in services.iter().enumerate() {
        let path = format!("service[{i}].priority");
        let Some(p) = s.priority else { continue };
        let p: u8 = int(&path, Some(p), 0u8, 0..=i64::from(MAX_PRIORITY), " (0 is the most preferred)")?;
        // The services were checked before: the VIP parses.
        let Some(vip) = s.vip.as_deref().and_then(|v| v.parse::<std::net::SocketAddr>().ok()) else {
            continue;
        };
        if let Some((_, q, k)) = priorities.iter().find(|(a, _, _)| *a == vip.ip()) {
            if *q != p {
                return Err(Problem::raw(
                    &path,
                    format!(
                        "{path} = {p}: duplicate priority for VIP {}: service[{k}].priority = {q} (one address is \
                         one route: give every service on it the same priority)",
                        vip.ip()
                    ),
                ));
            }
            continue;
        }
        priorities.push((vip.ip(), p, i));
    }
    Ok(priorities)
}

/// `[[routing.peer]]`: each on a port's network, none twice.
fn peers(raw: &RawRouting, ports: &[Port], routes: &[Route], bfd: bool) -> Result<Vec<Peer>, Problem> {
    let mut peers: Vec<Peer> = Vec::new();
    for (i, p) in raw.peer.iter().enumerate() {
        let at = format!("routing.peer[{i}]");
        let Some(a) = &p.address else {
            return Err(super::validate::missing(
                &at,
                "address",
                "the router, like address = \"10.10.3.254\"",
            ));
        };
        let path = format!("{at}.address");
        let address = host_ip(&path, a)?;
        if let Some((k, name)) = owner_of(ports, &address) {
            let why = format!("a router's address: {address} is this host's own (port[{k}] {name:?})");
            return Err(Problem::string(&path, a, &why));
        }
        if connected_port(ports, &address).is_none() {
            let via = if routes.iter().any(|r| r.prefix.contains(&address)) {
                " (a route is not enough)"
            } else {
                ""
            };
            return Err(Problem::string(
                &path,
                a,
                &format!(
                    "an address on a port's network: BGP and BFD speak to a directly connected router{via}"
                ),
            ));
        }
        if let Some(k) = peers.iter().position(|q| q.address == address) {
            return Err(Problem::raw(
                &path,
                format!("{path} = {a:?}: duplicate peer (also routing.peer[{k}])"),
            ));
        }
        let peer_asn = asn(&format!("{at}.asn"), p.asn, "the router's AS number, like asn = 65000")?;
        let port = int(&format!("{at}.port"), p.port, 179u16, 1..=65_535, "")?;
        peers.push(Peer { address, asn: peer_asn, port, bfd: p.bfd.unwrap_or(bfd) });
    }
    Ok(peers)
}

/// Connects to BIRD's control socket and reads its greeting: `Err` with one line naming
/// `routing.bird_socket` when nothing answers there.
pub(super) fn check_socket(r: &Routing) -> Result<(), Problem> {
    let path = "routing.bird_socket";
    crate::routing::bird::Bird::connect(&r.bird_socket, std::time::Duration::from_secs(2))
        .map(|_| ())
        .map_err(|e| {
            Problem::raw(
                path,
                format!(
                    "{path} = {:?}: cannot reach BIRD: {e} (is bird running, with -s at this path?)",
                    r.bird_socket.display().to_string()
                ),
            )
        })
}
