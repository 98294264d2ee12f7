//! `[[service]]`, its `health` and its `[[service.backend]]`s: the checks that tie a service to
//! the rest of the configuration (VIPs against port addresses and LIPs, LIPs against VIPs,
//! backends against the service's family and the routes).
//!
//! The same checks guard the file and the changes made at run time (`sluice service add`,
//! `sluice backend add|set` over the control socket): [`Checker`] holds what a service is
//! checked against, built once from the ports, the routes and the services, so that each check
//! costs O(1) in the number of services and a file of 100k services validates in linear time.
//!
//! A service is one address family: its VIP, its local addresses and its backends are all
//! IPv4 or all IPv6 (Sluice does not translate between the two; a mixed service would rewrite
//! one family's addresses into the other's header).

use super::error::Problem;
use super::forward::{self, Mode};
use super::raw::{RawBackend, RawHealth, RawService};
use super::validate::{choice, connected_port, endpoint, host_ip, int, missing, owner_of};
use super::{
    Backend, Config, Forward, Health, HealthKind, PROXY_PROTOCOLS, Port, Protocol, Route, SCHEDULERS, Service,
};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What services are checked against: the ports, the routes, every service's VIP and every
/// LIP, by address.
pub(crate) struct Checker<'a> {
    ports: &'a [Port],
    routes: &'a [Route],
    vips: HashSet<IpAddr>,
    lips: HashSet<IpAddr>,
}

/// `IPv4` or `IPv6`, as messages name a family.
fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl<'a> Checker<'a> {
    /// A checker for the services of `cfg` (the running configuration at run time).
    pub(crate) fn of(cfg: &'a Config) -> Self {
        let mut c =
            Checker { ports: &cfg.ports, routes: &cfg.routes, vips: HashSet::new(), lips: HashSet::new() };
        for s in &cfg.services {
            c.vips.insert(s.vip.ip());
            c.lips.extend(s.local_addresses.iter().copied());
        }
        c
    }

    /// A VIP: not a port's own address, nor a service's local address.
    fn vip(&self, path: &str, written: &str, vip: SocketAddr) -> Result<(), Problem> {
        if let Some((k, name)) = owner_of(self.ports, &vip.ip()) {
            let why = format!(
                "an address of its own: {} is port {name:?}'s (port[{k}].addresses), which the host's \
                 kernel answers",
                vip.ip()
            );
            return Err(Problem::string(path, written, &why));
        }
        if self.lips.contains(&vip.ip()) {
            let why = format!("an address of its own: {} is a service's local address (LIP)", vip.ip());
            return Err(Problem::string(path, written, &why));
        }
        Ok(())
    }

    /// One local address of the service at `vip`: the VIP's family, neither a VIP nor a port's
    /// own address.
    fn lip(&self, path: &str, written: &str, ip: IpAddr, vip: SocketAddr) -> Result<(), Problem> {
        if ip.is_ipv4() != vip.is_ipv4() {
            let why = format!(
                "an {} address like the VIP {vip} (a service's VIP, local addresses and backends are \
                 one family: Sluice does not translate between IPv4 and IPv6)",
                family(&vip.ip())
            );
            return Err(Problem::string(path, written, &why));
        }
        if self.vips.contains(&ip) || ip == vip.ip() {
            return Err(Problem::string(path, written, "an address of its own: it is a service's VIP"));
        }
        if let Some((k, name)) = owner_of(self.ports, &ip) {
            let why = format!("an address of its own: it is port {name:?}'s (port[{k}].addresses)");
            return Err(Problem::string(path, written, &why));
        }
        Ok(())
    }

    /// A backend of the service at `vip` with local addresses `lips`: the VIP's family, another
    /// host's address, reachable.
    fn backend(
        &self,
        path: &str,
        written: &str,
        address: SocketAddr,
        vip: SocketAddr,
        lips: &[IpAddr],
    ) -> Result<(), Problem> {
        let ip = address.ip();
        if ip.is_ipv4() != vip.is_ipv4() {
            let why = format!(
                "an {} backend like the VIP {vip} (a service's VIP, local addresses and backends are one \
                 family: Sluice does not translate between IPv4 and IPv6)",
                family(&vip.ip())
            );
            return Err(Problem::string(path, written, &why));
        }
        if lips.contains(&ip)
            || self.lips.contains(&ip)
            || self.vips.contains(&ip)
            || ip == vip.ip()
            || owner_of(self.ports, &ip).is_some()
        {
            return Err(Problem::string(
                path,
                written,
                "another host's address: it is one of this host's own (a VIP, a LIP or a port address)",
            ));
        }
        if connected_port(self.ports, &ip).is_none() && !self.routes.iter().any(|r| r.prefix.contains(&ip)) {
            return Err(Problem::string(
                path,
                written,
                "a reachable address: no port has an address on its network and no [[route]] covers it",
            ));
        }
        Ok(())
    }
}

/// A backend's weight, 0..=65535 (0 drains).
pub(crate) fn weight(path: &str, value: Option<i64>) -> Result<u16, Problem> {
    int(path, value, 1, 0..=65535, " (0 drains)")
}

/// Checks every service. VIPs are read first, so that a LIP can be checked against the VIPs
/// of services further down.
pub(super) fn services(
    raw: &[RawService],
    ports: &[Port],
    routes: &[Route],
) -> Result<Vec<Service>, Problem> {
    let mut keys: Vec<(SocketAddr, Protocol)> = Vec::with_capacity(raw.len());
    let mut seen: HashMap<(SocketAddr, Protocol), usize> = HashMap::with_capacity(raw.len());
    let mut checker = Checker { ports, routes, vips: HashSet::new(), lips: HashSet::new() };
    for (i, r) in raw.iter().enumerate() {
        let key = vip(i, r, ports)?;
        if let Some(k) = seen.insert(key, i) {
            let at = format!("service[{i}]");
            let message = format!("{at}: duplicate service {}/{} (also service[{k}])", key.0, key.1);
            return Err(Problem::raw(&at, message));
        }
        checker.vips.insert(key.0.ip());
        keys.push(key);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, (r, (vip, protocol))) in raw.iter().zip(keys).enumerate() {
        out.push(service(i, r, vip, protocol, &checker)?);
    }
    Ok(out)
}

/// A service's `vip` and `protocol`: its identity.
fn vip(i: usize, r: &RawService, ports: &[Port]) -> Result<(SocketAddr, Protocol), Problem> {
    let at = format!("service[{i}]");
    let Some(v) = &r.vip else {
        return Err(missing(
            &at,
            "vip",
            "the address and port clients connect to, like vip = \"10.10.1.100:80\"",
        ));
    };
    let path = format!("{at}.vip");
    let vip = endpoint(&path, v, "\"10.10.1.100:80\"")?;
    // Against the ports only: every VIP is known before the LIPs are checked against them.
    Checker { ports, routes: &[], vips: HashSet::new(), lips: HashSet::new() }.vip(&path, v, vip)?;
    let protocol = protocol(&format!("{at}.protocol"), r.protocol.as_deref())?;
    Ok((vip, protocol))
}

fn protocol(path: &str, value: Option<&str>) -> Result<Protocol, Problem> {
    Ok(match choice(path, value, "tcp", &["tcp", "udp"])? {
        "tcp" => Protocol::Tcp,
        _ => Protocol::Udp,
    })
}

fn service(
    i: usize,
    r: &RawService,
    vip: SocketAddr,
    protocol: Protocol,
    checker: &Checker<'_>,
) -> Result<Service, Problem> {
    let at = format!("service[{i}]");
    let scheduler =
        choice(&format!("{at}.scheduler"), r.scheduler.as_deref(), "wlc", &SCHEDULERS)?.to_owned();
    let forward = forward::forward(&format!("{at}.forward"), r.forward.as_deref())?;
    let nat_gateway = forward::nat_gateway(&at, forward, r.nat_gateway.as_deref(), vip, checker.ports)?;
    let local_addresses = if forward::uses_local_addresses(forward) {
        lips(&at, r.local_addresses.as_deref(), (vip, forward), checker)?
    } else if r.local_addresses.is_some() {
        return Err(forward::local_addresses_unused(&at, forward));
    } else {
        Vec::new()
    };
    let conn_limit =
        int(&format!("{at}.conn_limit"), r.conn_limit, 0, 0..=i64::from(u32::MAX), " (0: no limit)")?;
    let synproxy = r.synproxy.unwrap_or(false);
    if synproxy && protocol != Protocol::Tcp {
        let path = format!("{at}.synproxy");
        return Err(Problem::raw(
            &path,
            format!("{path} = true on {vip}/{protocol}: only TCP services have a SYN proxy"),
        ));
    }
    if synproxy {
        forward::synproxy(&at, forward)?;
    }
    let (synproxy_wscale, synproxy_timestamps) = synproxy_options(&at, r, synproxy)?;
    let path = format!("{at}.proxy_protocol");
    let proxy_protocol = match r.proxy_protocol.as_deref() {
        None => None,
        Some(v) => {
            let v = choice(&path, Some(v), "", &PROXY_PROTOCOLS)?;
            let setting = format!("{path} = {v:?}");
            proxy_protocol_fits(&setting, v, vip, protocol, synproxy, forward.as_str())
                .map_err(|m| Problem::raw(&path, m))?;
            Some(v.to_owned())
        }
    };
    let health = r.health.as_ref().map(|h| health(&format!("{at}.health"), h)).transpose()?;
    if r.backend.is_empty() {
        let message =
            format!("{at} ({vip}/{protocol}) has no backends: add at least one [[service.backend]]");
        return Err(Problem::raw(&at, message));
    }
    let mut backends: Vec<Backend> = Vec::with_capacity(r.backend.len());
    let mut seen: HashMap<SocketAddr, usize> = HashMap::with_capacity(r.backend.len());
    let mode = Mode { at: &at, vip, protocol, forward, nat_gateway };
    for (j, b) in r.backend.iter().enumerate() {
        let backend = backend(&format!("{at}.backend[{j}]"), b, &mode, &local_addresses, checker)?;
        if let Some(k) = seen.insert(backend.address, j) {
            let path = format!("{at}.backend[{j}].address");
            let message =
                format!("{path} = \"{}\": duplicate backend (also {at}.backend[{k}])", backend.address);
            return Err(Problem::raw(&path, message));
        }
        backends.push(backend);
    }
    Ok(Service {
        vip,
        protocol,
        scheduler,
        forward,
        nat_gateway,
        local_addresses,
        conn_limit,
        synproxy,
        synproxy_wscale,
        synproxy_timestamps,
        proxy_protocol,
        health,
        backends,
    })
}

/// `synproxy_wscale` and `synproxy_timestamps`: in range, and set only on a SYN-proxied
/// service (elsewhere they would say something that does not happen).
fn synproxy_options(at: &str, r: &RawService, synproxy: bool) -> Result<(u8, bool), Problem> {
    let wscale_path = format!("{at}.synproxy_wscale");
    for (path, set) in [
        (&wscale_path, r.synproxy_wscale.is_some()),
        (&format!("{at}.synproxy_timestamps"), r.synproxy_timestamps.is_some()),
    ] {
        if set && !synproxy {
            return Err(Problem::raw(
                path,
                format!("{path} is set but {at}.synproxy is not true: it only applies to the SYN proxy"),
            ));
        }
    }
    let wscale = int(&wscale_path, r.synproxy_wscale, 7, 0..=14, " (the servers' TCP window scale)")?;
    Ok((wscale, r.synproxy_timestamps.unwrap_or(true)))
}

/// Whether PROXY protocol `value` (`setting`, as the message names it) fits the
/// service: TCP only, not with the SYN proxy (a NIC flow record carries one sequence delta; for
/// TOA, the proxy's own ACK completes the server's handshake), TOA on IPv4 only, and only with FullNAT
/// (`forward`: the other modes do not rewrite the server-side stream). The error is one line.
pub(super) fn proxy_protocol_fits(
    setting: &str,
    value: &str,
    vip: SocketAddr,
    protocol: Protocol,
    synproxy: bool,
    forward: &str,
) -> Result<(), String> {
    let toa = value == "toa";
    let why = if protocol != Protocol::Tcp {
        "PROXY protocol is for TCP services only"
    } else if synproxy && toa {
        "TOA and the SYN proxy cannot be combined (the proxy completes the server's handshake with its own ACK)"
    } else if synproxy {
        "PROXY protocol and the SYN proxy cannot be combined (a NIC flow record holds one sequence delta)"
    } else if toa && vip.is_ipv6() {
        "TOA carries an IPv4 address only (use \"v2\" for IPv6)"
    } else if forward != "fullnat" {
        return Err(format!(
            "{setting} on {vip}/{protocol} with forward = {forward:?}: PROXY protocol needs forward = \"fullnat\" (only FullNAT rewrites the server-side stream)"
        ));
    } else {
        return Ok(());
    };
    Err(format!("{setting} on {vip}/{protocol}: {why}"))
}

/// `local_addresses`: at least one; each unicast, listed once, of the VIP's family, neither a
/// VIP nor a port's own.
fn lips(
    at: &str,
    raw: Option<&[String]>,
    (vip, forward): (SocketAddr, Forward),
    checker: &Checker<'_>,
) -> Result<Vec<IpAddr>, Problem> {
    let like = if vip.is_ipv4() { "[\"10.10.2.1\"]" } else { "[\"fd00:2::1\"]" };
    let why = if forward == Forward::Tun {
        format!(
            "forward = \"tun\" sends its tunnels from a local address of the VIP's family (the outer \
             source), like local_addresses = {like}"
        )
    } else {
        format!(
            "FullNAT connects to the backends from a local address (LIP) of the VIP's family, like \
             local_addresses = {like}"
        )
    };
    let raw = match raw {
        None => return Err(missing(at, "local_addresses", &why)),
        Some([]) => {
            return Err(Problem::key(&format!("{at}.local_addresses"), &format!("empty list: {why}")));
        }
        Some(list) => list,
    };
    let mut lips: Vec<IpAddr> = Vec::with_capacity(raw.len());
    for (j, s) in raw.iter().enumerate() {
        let path = format!("{at}.local_addresses[{j}]");
        let ip = host_ip(&path, s)?;
        if let Some(k) = lips.iter().position(|o| *o == ip) {
            return Err(Problem::string(
                &path,
                s,
                &format!("a new address (local_addresses[{k}] is {ip} too)"),
            ));
        }
        checker.lip(&path, s, ip, vip)?;
        lips.push(ip);
    }
    Ok(lips)
}

/// `health = { kind = …, … }`.
pub(super) fn health(at: &str, raw: &RawHealth) -> Result<Health, Problem> {
    let Some(kind) = &raw.kind else {
        return Err(missing(at, "kind", "\"tcp\" or \"http\", like health = { kind = \"tcp\" }"));
    };
    let kind = choice(&format!("{at}.kind"), Some(kind), "tcp", &["tcp", "http"])?;
    let interval: u64 = int(&format!("{at}.interval_ms"), raw.interval_ms, 1000, 1..=3_600_000, " ms")?;
    let timeout: u64 =
        int(&format!("{at}.timeout_ms"), raw.timeout_ms, interval.min(1000), 1..=3_600_000, " ms")?;
    if timeout > interval {
        let why = format!("at most interval_ms ({interval}): a check must end before the next one starts");
        return Err(Problem::value(&format!("{at}.timeout_ms"), &timeout, &why));
    }
    let rise = int(&format!("{at}.rise"), raw.rise, 2, 1..=1000, " good checks")?;
    let fall = int(&format!("{at}.fall"), raw.fall, 3, 1..=1000, " failed checks")?;
    let kind = if kind == "http" {
        http(at, raw)?
    } else {
        for (key, given) in
            [("path", raw.path.is_some()), ("expect", raw.expect.is_some()), ("host", raw.host.is_some())]
        {
            if given {
                return Err(Problem::key(
                    &format!("{at}.{key}"),
                    "only for kind = \"http\" (this check is kind = \"tcp\")",
                ));
            }
        }
        HealthKind::Tcp
    };
    let ms = Duration::from_millis;
    Ok(Health { kind, interval: ms(interval), timeout: ms(timeout), rise, fall })
}

fn http(at: &str, raw: &RawHealth) -> Result<HealthKind, Problem> {
    let path = raw.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Problem::string(
            &format!("{at}.path"),
            &path,
            "a path starting with \"/\" and without spaces, like \"/healthz\"",
        ));
    }
    let expect = int(&format!("{at}.expect"), raw.expect, 200, 100..=599, " (an HTTP status)")?;
    let host = match &raw.host {
        Some(h) if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(Problem::string(
                &format!("{at}.host"),
                h,
                "a host name for the Host header, like \"www.example.com\"",
            ));
        }
        other => other.clone(),
    };
    Ok(HealthKind::Http { path, expect, host })
}

/// One `[[service.backend]]`.
fn backend(
    at: &str,
    raw: &RawBackend,
    mode: &Mode<'_>,
    lips: &[IpAddr],
    checker: &Checker<'_>,
) -> Result<Backend, Problem> {
    let vip = mode.vip;
    let Some(a) = &raw.address else {
        return Err(missing(
            at,
            "address",
            "the real server's address and port, like address = \"10.10.2.11:80\"",
        ));
    };
    let path = format!("{at}.address");
    let address = endpoint(&path, a, "\"10.10.2.11:80\"")?;
    forward::backend(&path, a, address, mode, checker.ports, checker.routes)?;
    checker.backend(&path, a, address, vip, lips)?;
    let weight = weight(&format!("{at}.weight"), raw.weight)?;
    Ok(Backend { address, weight })
}

/// A service added at run time (`sluice service add`, the control socket's `service_add`),
/// checked as the file's services are, against the running configuration `cfg`: its VIP, its
/// protocol, scheduler and local addresses. It starts with no backends. The error is one line.
#[allow(clippy::too_many_arguments)]
pub fn service_at_run_time(
    cfg: &Config,
    vip: &str,
    protocol_name: &str,
    scheduler: &str,
    (forward_word, nat_gateway): (&str, Option<&str>),
    local_addresses: &[String],
    conn_limit: u32,
    synproxy: bool,
    proxy_protocol: Option<&str>,
) -> Result<Service, String> {
    let checker = Checker::of(cfg);
    let address = endpoint("vip", vip, "\"10.10.1.100:80\"").map_err(|p| p.message)?;
    checker.vip("vip", vip, address).map_err(|p| p.message)?;
    let protocol = protocol("protocol", Some(protocol_name)).map_err(|p| p.message)?;
    if cfg.services.iter().any(|s| s.vip == address && s.protocol == protocol) {
        return Err(format!("service {address}/{protocol} exists"));
    }
    if synproxy && protocol != Protocol::Tcp {
        return Err(format!("--synproxy on {address}/{protocol}: only TCP services have a SYN proxy"));
    }
    let scheduler =
        choice("scheduler", Some(scheduler), "wlc", &SCHEDULERS).map_err(|p| p.message)?.to_owned();
    let forward = forward::forward("forward", Some(forward_word)).map_err(|p| p.message)?;
    if let Some(v) = proxy_protocol {
        let v = choice("--proxy-protocol", Some(v), "", &PROXY_PROTOCOLS).map_err(|p| p.message)?;
        proxy_protocol_fits(
            &format!("--proxy-protocol {v}"),
            v,
            address,
            protocol,
            synproxy,
            forward.as_str(),
        )?;
    }
    if synproxy {
        forward::synproxy("service", forward).map_err(|p| p.message)?;
    }
    let nat_gateway =
        forward::nat_gateway("service", forward, nat_gateway, address, &cfg.ports).map_err(|p| p.message)?;
    let local_addresses = if forward::uses_local_addresses(forward) {
        lips("service", Some(local_addresses), (address, forward), &checker).map_err(|p| p.message)?
    } else if !local_addresses.is_empty() {
        return Err(forward::local_addresses_unused("service", forward).message);
    } else {
        Vec::new()
    };
    Ok(Service {
        vip: address,
        protocol,
        scheduler,
        forward,
        nat_gateway,
        local_addresses,
        conn_limit,
        synproxy,
        synproxy_wscale: 7,
        synproxy_timestamps: true,
        proxy_protocol: proxy_protocol.map(str::to_owned),
        health: None,
        backends: Vec::new(),
    })
}

/// A backend added at run time to `service` (`sluice backend add`), checked as the file's
/// backends are, against the running configuration `cfg`. The error is one line.
pub fn backend_at_run_time(
    cfg: &Config,
    service: &Service,
    address: &str,
    weight_given: u32,
) -> Result<Backend, String> {
    let checker = Checker::of(cfg);
    let a = endpoint("backend", address, "\"10.10.2.11:80\"").map_err(|p| p.message)?;
    let at = service.name();
    let mode = Mode {
        at: &at,
        vip: service.vip,
        protocol: service.protocol,
        forward: service.forward,
        nat_gateway: service.nat_gateway,
    };
    forward::backend("backend", address, a, &mode, &cfg.ports, &cfg.routes).map_err(|p| p.message)?;
    checker.backend("backend", address, a, service.vip, &service.local_addresses).map_err(|p| p.message)?;
    if service.backends.iter().any(|b| b.address == a) {
        return Err(format!("backend {a} of {} exists", service.name()));
    }
    let weight = weight("weight", Some(i64::from(weight_given))).map_err(|p| p.message)?;
    Ok(Backend { address: a, weight })
}

/// A weight given at run time (`sluice backend set`), 0..=65535. The error is one line.
pub fn weight_at_run_time(weight_given: u32) -> Result<u16, String> {
    weight("weight", Some(i64::from(weight_given))).map_err(|p| p.message)
}
