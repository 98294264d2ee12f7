//! The appliance's view of its links: ports and their addresses, the routing table (connected
//! prefixes per port, static routes), the neighbour table (ARP and IPv6 ND, with states,
//! retries and static entries), and the NIC's next-hop entries that flows point at.
//!
//! A next hop is a (port, neighbour address) pair with one entry in the NIC's next-hop table;
//! every flow toward that neighbour points at the entry, so when the neighbour's MAC changes
//! one `NextHopSet` rewrites the L2 header of all of them. Packets the host sends toward a
//! neighbour that is not resolved yet wait in a short queue while a request goes out (three
//! tries, one second apart); what still waits after that is dropped and counted.
//!
//! An entry also carries its action (spec 1.3, [`HopAction`]): the FullNAT/NAT rewrite, which
//! every FullNAT and NAT flow toward a neighbour shares, or DR's route or TUN's tunnel, which
//! get entries of their own (a tunnel's per server, its outer addresses with it). A neighbour's
//! new MAC rewrites every entry that leads to it.

use crate::addr::FastMap;
use crate::emit::L2;
use crate::emit::{self, BROADCAST};
use rtl_spec::codes::NextHopAction;
use rtl_spec::formats::{NextHopCtl, NextHopEntry, NextHopTunnel};
use std::collections::VecDeque;
use std::net::IpAddr;

/// How long a learned neighbour counts as reachable before the next use refreshes it.
pub const REACHABLE_NS: u64 = 300 * 1_000_000_000;
/// Between requests for an unresolved neighbour.
pub const RETRY_NS: u64 = 1_000_000_000;
/// Requests before the packets waiting for a neighbour are dropped.
pub const MAX_TRIES: u32 = 3;
/// Packets that may wait for one neighbour.
pub const MAX_WAITING: usize = 64;

/// A prefix: an address and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address (host bits may be set: a port address is written "10.10.1.1/24").
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Whether `a` is inside.
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(x)) => {
                let m = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len.min(32))) };
                u32::from(p) & m == u32::from(x) & m
            }
            (IpAddr::V6(p), IpAddr::V6(x)) => {
                let m = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len.min(128))) };
                u128::from(p) & m == u128::from(x) & m
            }
            _ => false,
        }
    }
}

/// A port as the slow path knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConf {
    /// Name ("p0").
    pub name: String,
    /// The port's own MAC, the source of every frame it sends.
    pub mac: [u8; 6],
    /// MTU (IP bytes).
    pub mtu: u32,
    /// The host's own addresses on it, with their prefixes (connected routes).
    pub addresses: Vec<Prefix>,
}

/// A static route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteConf {
    /// Destination prefix.
    pub prefix: Prefix,
    /// The gateway the prefix is reached through (on a connected prefix).
    pub via: IpAddr,
    /// Egress port (`None`: the port whose connected prefix holds `via`).
    pub port: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route {
    prefix: Prefix,
    port: u8,
    via: Option<IpAddr>,
}

/// A neighbour's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighState {
    /// Requested, not answered.
    Incomplete,
    /// Answered or heard from recently.
    Reachable,
    /// Known, not confirmed for a while: used, and refreshed when used.
    Stale,
    /// From the configuration; never expires.
    Static,
}

/// A neighbour.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// Its MAC, once known.
    pub mac: Option<[u8; 6]>,
    /// Where its resolution stands (incomplete, reachable, stale, static).
    pub state: NeighState,
    /// When it was last confirmed (or requested, while incomplete).
    pub updated_ns: u64,
    /// Requests sent since the last answer.
    pub tries: u32,
    /// The NIC next-hop entry that points at it, once a flow needed one.
    pub next_hop: Option<u16>,
    waiting: VecDeque<Vec<u8>>,
}

impl Neighbor {
    /// A neighbour nothing is known of yet.
    fn unknown(now_ns: u64) -> Self {
        Neighbor {
            mac: None,
            state: NeighState::Incomplete,
            updated_ns: now_ns,
            tries: 0,
            next_hop: None,
            waiting: VecDeque::new(),
        }
    }
}

/// What the network counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Packets with no route.
    pub no_route: u64,
    /// Packets dropped waiting for a neighbour that never answered (or too many waiting).
    pub unresolved: u64,
    /// ARP/ND requests sent.
    pub requests: u64,
    /// ARP/ND answers sent for the appliance's addresses.
    pub answers: u64,
    /// Next-hop entries in use.
    pub next_hops: u64,
}

/// Where a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Egress port.
    pub port: u8,
    /// The neighbour the frame is addressed to (the destination, or the gateway).
    pub neighbor: IpAddr,
}

/// What a next-hop entry does to the packets of the flows that name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HopAction {
    /// The record's rewrite (FullNAT, NAT).
    #[default]
    Rewrite,
    /// The packet unchanged to the neighbour (DR).
    Route,
    /// The packet unchanged inside IP-in-IP from `src` to `dst` (TUN).
    Tunnel {
        /// Outer source: the appliance's address.
        src: IpAddr,
        /// Outer destination: the server.
        dst: IpAddr,
    },
}

/// Ports, routes and neighbours.
#[derive(Debug)]
pub struct Network {
    ports: Vec<PortConf>,
    routes: Vec<Route>,
    // Ordered, so retries and dumps come in the same order every run (replay is deterministic).
    /// By (port, address): hashed, since every packet the host sends looks its neighbour up
    /// (an ordered map cost 4% of a connection's setup in comparisons of addresses).
    neighbors: FastMap<(u8, IpAddr), Neighbor>,
    next_hops: Vec<Option<(u8, IpAddr, HopAction)>>,
    /// The entries of actions other than `Rewrite` (whose entry is the neighbour's own).
    special: FastMap<(u8, IpAddr, HopAction), u16>,
    /// Next-hop entries to write into the NIC (index, entry, tunnel), taken by the caller.
    pub changed: Vec<(u16, NextHopEntry, NextHopTunnel)>,
    /// Frames to send (port, frame): requests, and packets released by an answer.
    pub out: Vec<(u8, Vec<u8>)>,
    stats: NetStats,
}

impl Network {
    /// The network of `ports` and `routes`, with room for `next_hops` NIC entries. A route
    /// whose gateway is on no port is an error naming it.
    pub fn new(ports: Vec<PortConf>, routes: &[RouteConf], next_hops: u16) -> Result<Self, String> {
        let mut net = Network {
            ports,
            routes: Vec::new(),
            neighbors: FastMap::default(),
            next_hops: vec![None; usize::from(next_hops)],
            special: FastMap::default(),
            changed: Vec::new(),
            out: Vec::new(),
            stats: NetStats::default(),
        };
        for (n, p) in net.ports.iter().enumerate() {
            for a in &p.addresses {
                net.routes.push(Route { prefix: *a, port: n as u8, via: None });
            }
        }
        for r in routes {
            let port = match r.port {
                Some(p) => p,
                None => net.connected_port(r.via).ok_or_else(|| {
                    format!(
                        "route {}/{} via {}: no port has that gateway on a connected prefix",
                        r.prefix.addr, r.prefix.len, r.via
                    )
                })?,
            };
            net.routes.push(Route { prefix: r.prefix, port, via: Some(r.via) });
        }
        // Longest prefix first; connected before static at equal length.
        net.routes.sort_by_key(|r| (std::cmp::Reverse(r.prefix.len), r.via.is_some()));
        Ok(net)
    }

    /// What the network layer counted (resolutions, drops for want of a route or a neighbour).
    pub fn stats(&self) -> NetStats {
        NetStats { next_hops: self.next_hops.iter().filter(|h| h.is_some()).count() as u64, ..self.stats }
    }

    /// The ports.
    pub fn ports(&self) -> &[PortConf] {
        &self.ports
    }

    fn connected_port(&self, a: IpAddr) -> Option<u8> {
        self.ports.iter().position(|p| p.addresses.iter().any(|x| x.contains(a))).map(|n| n as u8)
    }

    /// Whether `a` is one of the host's own port addresses, and on which port.
    pub fn own_port_address(&self, a: IpAddr) -> Option<u8> {
        self.ports.iter().position(|p| p.addresses.iter().any(|x| x.addr == a)).map(|n| n as u8)
    }

    /// The route toward `dst`.
    pub fn route(&self, dst: IpAddr) -> Option<Hop> {
        let r = self.routes.iter().find(|r| r.prefix.contains(dst))?;
        Some(Hop { port: r.port, neighbor: r.via.unwrap_or(dst) })
    }

    /// An address of the host on `port` to send requests from: one whose prefix holds
    /// `toward`, else any of the family, else `fallback` (a VIP or LIP on that link).
    fn source_for(&self, port: u8, toward: IpAddr, fallback: Option<IpAddr>) -> Option<IpAddr> {
        let p = self.ports.get(usize::from(port))?;
        p.addresses
            .iter()
            .find(|a| a.contains(toward))
            .or_else(|| p.addresses.iter().find(|a| a.addr.is_ipv6() == toward.is_ipv6()))
            .map(|a| a.addr)
            .or(fallback.filter(|f| f.is_ipv6() == toward.is_ipv6()))
    }

    /// Adds a static neighbour.
    pub fn add_static(&mut self, port: u8, addr: IpAddr, mac: [u8; 6]) {
        self.learn(port, addr, mac, 0, true);
    }

    /// Records that `addr` on `port` is at `mac` (an ARP or ND message from it, or a static
    /// entry). Releases the packets waiting for it and rewrites its next-hop entry if its MAC
    /// changed.
    pub fn learn(&mut self, port: u8, addr: IpAddr, mac: [u8; 6], now_ns: u64, is_static: bool) {
        let Some(pmac) = self.ports.get(usize::from(port)).map(|p| p.mac) else { return };
        let n = self.neighbors.entry((port, addr)).or_insert_with(|| Neighbor::unknown(now_ns));
        if n.state == NeighState::Static && !is_static {
            return;
        }
        let changed = n.mac != Some(mac);
        n.mac = Some(mac);
        n.state = if is_static { NeighState::Static } else { NeighState::Reachable };
        n.updated_ns = now_ns;
        n.tries = 0;
        let l2 = L2 { dst: mac, src: pmac, vlan: None };
        for pkt in n.waiting.drain(..) {
            self.out.push((port, emit::frame(&l2, &pkt)));
        }
        if changed {
            if let Some(h) = n.next_hop {
                self.changed.push(entry(h, port, pmac, Some(mac), HopAction::Rewrite));
            }
            for (&(p, a, action), &h) in &self.special {
                if (p, a) == (port, addr) {
                    self.changed.push(entry(h, port, pmac, Some(mac), action));
                }
            }
        }
    }

    /// The L2 header toward `hop`, or `None` while it is being resolved — then `packet` (an IP
    /// packet, no L2) waits for the answer, and a request goes out if one is due.
    pub fn resolve(
        &mut self,
        hop: Hop,
        packet: Option<Vec<u8>>,
        now_ns: u64,
        fallback_src: Option<IpAddr>,
    ) -> Option<L2> {
        let pmac = self.ports.get(usize::from(hop.port))?.mac;
        let n = self.neighbors.entry((hop.port, hop.neighbor)).or_insert_with(|| Neighbor::unknown(now_ns));
        if let Some(mac) = n.mac {
            if n.state == NeighState::Reachable && now_ns.saturating_sub(n.updated_ns) > REACHABLE_NS {
                n.state = NeighState::Stale;
            }
            if n.state == NeighState::Stale && now_ns.saturating_sub(n.updated_ns) > REACHABLE_NS + RETRY_NS {
                n.updated_ns = now_ns - REACHABLE_NS; // one refresh per second at most
                self.request(hop, fallback_src, Some(mac));
            }
            return Some(L2 { dst: mac, src: pmac, vlan: None });
        }
        if let Some(p) = packet {
            if n.waiting.len() < MAX_WAITING {
                n.waiting.push_back(p);
            } else {
                self.stats.unresolved += 1;
            }
        }
        if n.tries == 0 {
            n.tries = 1;
            n.updated_ns = now_ns;
            self.request(hop, fallback_src, None);
        }
        None
    }

    /// Sends an ARP request or a neighbour solicitation for `hop` (unicast to `known` when
    /// refreshing).
    fn request(&mut self, hop: Hop, fallback_src: Option<IpAddr>, known: Option<[u8; 6]>) {
        let Some(pmac) = self.ports.get(usize::from(hop.port)).map(|p| p.mac) else { return };
        let Some(src) = self.source_for(hop.port, hop.neighbor, fallback_src) else { return };
        let frame = match (src, hop.neighbor) {
            (IpAddr::V4(s), IpAddr::V4(t)) => {
                let l2 = L2 { dst: known.unwrap_or(BROADCAST), src: pmac, vlan: None };
                emit::arp(&l2, 1, pmac, s, [0; 6], t)
            }
            (IpAddr::V6(s), IpAddr::V6(t)) => {
                let dst = known.unwrap_or_else(|| emit::multicast_mac(emit::solicited_node(t)));
                emit::frame(&L2 { dst, src: pmac, vlan: None }, &emit::neighbor_solicit(s, t, pmac))
            }
            _ => return,
        };
        self.stats.requests += 1;
        self.out.push((hop.port, frame));
    }

    /// Retries requests that went unanswered and gives up (dropping what waits) after
    /// [`MAX_TRIES`].
    pub fn tick(&mut self, now_ns: u64, fallback_src: impl Fn(IpAddr) -> Option<IpAddr>) {
        let mut retry = Vec::new();
        for ((port, addr), n) in &mut self.neighbors {
            if n.mac.is_some() || n.tries == 0 || now_ns.saturating_sub(n.updated_ns) < RETRY_NS {
                continue;
            }
            if n.tries >= MAX_TRIES {
                self.stats.unresolved += n.waiting.len() as u64;
                n.waiting.clear();
                n.tries = 0;
                continue;
            }
            n.tries += 1;
            n.updated_ns = now_ns;
            retry.push(Hop { port: *port, neighbor: *addr });
        }
        for hop in retry {
            self.request(hop, fallback_src(hop.neighbor), None);
        }
    }

    /// The NIC next-hop entry for `hop` (allocated on first use; written as soon as the
    /// neighbour's MAC is known, invalid until then so the NIC punts instead of misdelivering).
    pub fn next_hop(&mut self, hop: Hop, now_ns: u64) -> Option<u16> {
        self.next_hop_with(hop, HopAction::Rewrite, now_ns)
    }

    /// [`Self::next_hop`] for an entry of `action`: the neighbour's own entry for `Rewrite`,
    /// one of its own for each other action (and tunnel).
    pub fn next_hop_with(&mut self, hop: Hop, action: HopAction, now_ns: u64) -> Option<u16> {
        let pmac = self.ports.get(usize::from(hop.port))?.mac;
        let existing = if action == HopAction::Rewrite {
            self.neighbors.get(&(hop.port, hop.neighbor)).and_then(|n| n.next_hop)
        } else {
            self.special.get(&(hop.port, hop.neighbor, action)).copied()
        };
        if existing.is_some() {
            return existing;
        }
        let free = self.next_hops.iter().position(Option::is_none)? as u16;
        self.next_hops[usize::from(free)] = Some((hop.port, hop.neighbor, action));
        let n = self.neighbors.entry((hop.port, hop.neighbor)).or_insert_with(|| Neighbor::unknown(now_ns));
        if action == HopAction::Rewrite {
            n.next_hop = Some(free);
        } else {
            self.special.insert((hop.port, hop.neighbor, action), free);
        }
        let mac = n.mac;
        self.changed.push(entry(free, hop.port, pmac, mac, action));
        Some(free)
    }

    /// Every next-hop entry in use (for a rewrite after a device reset).
    pub fn next_hop_entries(&self) -> Vec<(u16, NextHopEntry, NextHopTunnel)> {
        self.next_hops
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let (port, addr, action) = (*h)?;
                let pmac = self.ports.get(usize::from(port))?.mac;
                let mac = self.neighbors.get(&(port, addr)).and_then(|n| n.mac);
                Some(entry(i as u16, port, pmac, mac, action))
            })
            .collect()
    }

    /// The neighbour table (port, address, neighbour) in order, for `sluice stats` and tests.
    pub fn neighbors(&self) -> impl Iterator<Item = (u8, IpAddr, &Neighbor)> {
        let mut all: Vec<_> = self.neighbors.iter().map(|((p, a), n)| (*p, *a, n)).collect();
        all.sort_unstable_by_key(|&(p, a, _)| (p, a));
        all.into_iter()
    }

    /// Counts an answer sent for one of the appliance's addresses.
    pub fn count_answer(&mut self) {
        self.stats.answers += 1;
    }

    /// Counts a packet with no route.
    pub fn count_no_route(&mut self) {
        self.stats.no_route += 1;
    }
}

/// A next-hop entry: valid only with a MAC.
/// Entry `n` toward `dst` (invalid while its MAC is unknown) from a port of MAC `src`.
fn entry(
    n: u16,
    port: u8,
    src: [u8; 6],
    dst: Option<[u8; 6]>,
    action: HopAction,
) -> (u16, NextHopEntry, NextHopTunnel) {
    let (code, tunnel) = match action {
        HopAction::Rewrite => (NextHopAction::Rewrite, NextHopTunnel::default()),
        HopAction::Route => (NextHopAction::Route, NextHopTunnel::default()),
        HopAction::Tunnel { src, dst } => (
            NextHopAction::Tunnel,
            NextHopTunnel { src: crate::addr::to_bytes(src), dst: crate::addr::to_bytes(dst) },
        ),
    };
    let e = NextHopEntry {
        dst_mac: dst.unwrap_or([0; 6]),
        src_mac: src,
        vlan_tci: 0.into(),
        ctl: NextHopCtl::new().with_valid(dst.is_some()).with_port(port).with_action(code.into()),
    };
    (n, e, tunnel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfx(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix { addr: a.parse().unwrap(), len: l.parse().unwrap() }
    }

    fn net() -> Network {
        let ports = vec![
            PortConf {
                name: "p0".into(),
                mac: [2, 0, 0, 0, 0, 1],
                mtu: 1500,
                addresses: vec![pfx("10.10.1.1/24"), pfx("fd00:1::1/64")],
            },
            PortConf {
                name: "p1".into(),
                mac: [2, 0, 0, 0, 0, 2],
                mtu: 1500,
                addresses: vec![pfx("10.10.2.254/24")],
            },
        ];
        let routes =
            [RouteConf { prefix: pfx("0.0.0.0/0"), via: "10.10.1.254".parse().unwrap(), port: None }];
        Network::new(ports, &routes, 16).unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_the_default_goes_via_the_gateway() {
        let n = net();
        assert_eq!(
            n.route("10.10.2.11".parse().unwrap()),
            Some(Hop { port: 1, neighbor: "10.10.2.11".parse().unwrap() })
        );
        assert_eq!(
            n.route("192.0.2.7".parse().unwrap()),
            Some(Hop { port: 0, neighbor: "10.10.1.254".parse().unwrap() })
        );
        assert_eq!(n.route("fd00:1::9".parse().unwrap()).map(|h| h.port), Some(0));
        assert_eq!(n.route("fd00:9::9".parse().unwrap()), None);
        assert!(
            Network::new(
                vec![],
                &[RouteConf { prefix: pfx("0.0.0.0/0"), via: "1.2.3.4".parse().unwrap(), port: None }],
                4
            )
            .is_err()
        );
    }

    #[test]
    fn unresolved_packets_wait_for_the_answer_and_the_next_hop_follows_the_mac() {
        let mut n = net();
        let hop = n.route("10.10.2.11".parse().unwrap()).unwrap();
        let h = n.next_hop(hop, 0).unwrap();
        assert_eq!(n.changed.len(), 1);
        assert!(!n.changed[0].1.ctl.valid(), "no MAC yet: invalid, the NIC punts");
        assert_eq!(n.resolve(hop, Some(vec![0x45; 20]), 0, None), None);
        let (port, req) = n.out.pop().unwrap();
        assert_eq!(port, 1);
        assert_eq!(&req[..6], &BROADCAST);
        assert_eq!(&req[28..32], &[10, 10, 2, 254], "asked from the port address");
        n.learn(1, "10.10.2.11".parse().unwrap(), [2, 0, 0, 0, 2, 0x11], 5, false);
        let (port, released) = n.out.pop().unwrap();
        assert_eq!((port, &released[..6]), (1, &[2, 0, 0, 0, 2, 0x11][..]));
        let (idx, e, _) = n.changed.pop().unwrap();
        assert_eq!(idx, h);
        assert!(e.ctl.valid());
        assert_eq!(e.dst_mac, [2, 0, 0, 0, 2, 0x11]);
        // The MAC moves: one rewrite of the same entry.
        n.learn(1, "10.10.2.11".parse().unwrap(), [2, 0, 0, 0, 2, 0x12], 6, false);
        assert_eq!(n.changed.pop().map(|(i, e, _)| (i, e.dst_mac)), Some((h, [2, 0, 0, 0, 2, 0x12])));
        assert_eq!(n.next_hop(hop, 7), Some(h), "same neighbour, same entry");
    }

    #[test]
    fn unanswered_requests_are_retried_then_dropped_and_counted() {
        let mut n = net();
        let hop = n.route("10.10.2.99".parse().unwrap()).unwrap();
        n.resolve(hop, Some(vec![0x45; 20]), 0, None);
        n.resolve(hop, Some(vec![0x45; 20]), 0, None);
        assert_eq!(n.out.len(), 1, "one request for two packets");
        for s in 1..=4u64 {
            n.tick(s * RETRY_NS, |_| None);
        }
        assert_eq!(n.stats().requests, 3);
        assert_eq!(n.stats().unresolved, 2);
    }

    #[test]
    fn a_static_neighbour_is_not_overridden() {
        let mut n = net();
        let a = "10.10.2.11".parse().unwrap();
        n.add_static(1, a, [2, 0, 0, 0, 2, 0x11]);
        n.learn(1, a, [6, 6, 6, 6, 6, 6], 9, false);
        let hop = Hop { port: 1, neighbor: a };
        assert_eq!(n.resolve(hop, None, 10, None).map(|l| l.dst), Some([2, 0, 0, 0, 2, 0x11]));
    }
}
