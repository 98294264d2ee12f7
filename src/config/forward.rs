//! A service's forwarding mode (`forward`, `nat_gateway`) and the checks that tie it to the
//! ports and routes: what each of LVS's modes needs of the network before a connection is ever
//! forwarded, found at load time (or at `sluice service add` / `backend add`) instead of as
//! connections that hang.
//!
//! - `dr` sends the client's packet unchanged to the server's MAC: every server is on a
//!   directly connected network of a port, and listens on the VIP's port.
//! - `tun` sends the client's packet unchanged inside IP-in-IP: every server is reachable
//!   through a port or a `[[route]]`, listens on the VIP's port, and the service has a local
//!   address of the VIP's family for the tunnel's source.
//! - `nat` leaves the client's address in the packet, so replies come back through the
//!   balancer only if the servers route through it: the service names that gateway
//!   (`nat_gateway`, one of a port's own addresses) and every server is on that port's network.
//!   This is the "route hint": the configuration states the servers' gateway, and the check holds
//!   the servers to be where that gateway can be theirs.
//!
//! Every message is one line naming the key, the service and what the mode needs.

use super::error::Problem;
use super::validate::{choice, connected_port, host_ip, missing, owner_of};
use super::{Forward, Port, Protocol, Route};
use std::net::{IpAddr, SocketAddr};

/// The modes' words, in the order the documentation lists them.
const WORDS: [&str; 4] = ["fullnat", "nat", "dr", "tun"];

/// What the mode checks of a backend need to know of its service.
pub(super) struct Mode<'a> {
    /// `service[i]`.
    pub at: &'a str,
    pub vip: SocketAddr,
    pub protocol: Protocol,
    pub forward: Forward,
    pub nat_gateway: Option<IpAddr>,
}

impl Mode<'_> {
    fn service(&self) -> String {
        format!("{} ({}/{}, forward = \"{}\")", self.at, self.vip, self.protocol, self.forward)
    }
}

/// `forward`: one of the four words (default `fullnat`).
pub(super) fn forward(path: &str, value: Option<&str>) -> Result<Forward, Problem> {
    let word = choice(path, value, "fullnat", &WORDS)?;
    Ok(Forward::parse(word).unwrap_or_default())
}

/// `nat_gateway`: required with `nat` (one of a port's own addresses, of the VIP's family),
/// refused otherwise.
pub(super) fn nat_gateway(
    at: &str,
    forward: Forward,
    value: Option<&str>,
    vip: SocketAddr,
    ports: &[Port],
) -> Result<Option<IpAddr>, Problem> {
    let path = format!("{at}.nat_gateway");
    match (forward, value) {
        (Forward::Nat, None) => Err(missing(
            at,
            "nat_gateway",
            &format!(
                "forward = \"nat\" on {vip} leaves the client's address in the packet, so the servers \
                 must route their replies through the balancer: name the port address they use as their \
                 gateway, like nat_gateway = \"{}\"",
                if vip.is_ipv4() { "10.10.2.254" } else { "fd00:2::fe" }
            ),
        )),
        (Forward::Nat, Some(s)) => {
            let ip = host_ip(&path, s)?;
            if ip.is_ipv4() != vip.is_ipv4() {
                return Err(Problem::string(&path, s, &format!("an address of the VIP {vip}'s family")));
            }
            if owner_of(ports, &ip).is_none() {
                return Err(Problem::string(
                    &path,
                    s,
                    "one of a port's own addresses (port[].addresses): the servers' gateway must be \
                     the balancer itself, or their replies bypass it",
                ));
            }
            Ok(Some(ip))
        }
        (_, Some(_)) => Err(Problem::key(
            &path,
            &format!("only forward = \"nat\" has a gateway ({at} forwards with forward = \"{forward}\")"),
        )),
        (_, None) => Ok(None),
    }
}

/// Whether the mode takes `local_addresses`: FullNAT's LIPs, TUN's tunnel source.
pub(super) fn uses_local_addresses(forward: Forward) -> bool {
    matches!(forward, Forward::FullNat | Forward::Tun)
}

/// The error for `local_addresses` given to a mode that has no use for them.
pub(super) fn local_addresses_unused(at: &str, forward: Forward) -> Problem {
    Problem::key(
        &format!("{at}.local_addresses"),
        &format!(
            "forward = \"{forward}\" uses no local address (the servers see the client's address); \
             only fullnat (LIPs) and tun (the tunnel's source) take local_addresses"
        ),
    )
}

/// `synproxy = true` needs FullNAT: the proxy translates sequence numbers both ways, and DR and
/// TUN never see the server's side.
pub(super) fn synproxy(at: &str, forward: Forward) -> Result<(), Problem> {
    if forward == Forward::FullNat {
        return Ok(());
    }
    let path = format!("{at}.synproxy");
    Err(Problem::raw(
        &path,
        format!(
            "{path} = true with forward = \"{forward}\": the SYN proxy needs forward = \"fullnat\" (it \
             translates sequence numbers in both directions)"
        ),
    ))
}

/// The mode's checks of one backend `address` (written `written`, at `path`), before the checks
/// every backend has, so that a server the mode cannot reach is named by the mode.
pub(super) fn backend(
    path: &str,
    written: &str,
    address: SocketAddr,
    mode: &Mode<'_>,
    ports: &[Port],
    routes: &[Route],
) -> Result<(), Problem> {
    let ip = address.ip();
    if ip.is_ipv4() != mode.vip.is_ipv4() {
        // The family check of every backend names this one.
        return Ok(());
    }
    let fail =
        |why: String| Err(Problem::raw(path, format!("{path} = \"{written}\": {}: {why}", mode.service())));
    if mode.forward.one_way() && address.port() != mode.vip.port() {
        return fail(format!(
            "expected the VIP's port {} (the client's packet reaches the server unchanged, so it listens \
             on the VIP's port)",
            mode.vip.port()
        ));
    }
    match mode.forward {
        Forward::Dr if connected_port(ports, &ip).is_none() => fail(
            "expected a server on a directly connected network (DR sends the client's packet to the \
             server's MAC), but no port has an address on its network"
                .into(),
        ),
        Forward::Tun
            if connected_port(ports, &ip).is_none() && !routes.iter().any(|r| r.prefix.contains(&ip)) =>
        {
            fail(
                "expected a server the tunnel can reach, but no port has an address on its network and \
                 no [[route]] covers it"
                    .into(),
            )
        }
        Forward::Nat => {
            let gateway = mode.nat_gateway.unwrap_or(ip);
            let on_gateway_port = owner_of(ports, &gateway)
                .is_some_and(|(k, _)| ports[k].addresses.iter().any(|c| c.contains(&ip)));
            if on_gateway_port {
                Ok(())
            } else {
                fail(format!(
                    "expected a server on the network of nat_gateway {gateway}, which it routes its replies \
                     through (NAT's replies must come back through the balancer)"
                ))
            }
        }
        _ => Ok(()),
    }
}
