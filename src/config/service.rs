//! `[[service]]`, its `health` and its `[[service.backend]]`s: the checks that tie a service to
//! the rest of the file (VIPs against port addresses, LIPs against VIPs, backends against LIP
//! families and routes).

use super::error::Problem;
use super::raw::{RawBackend, RawHealth, RawService};
use super::validate::{choice, connected_port, endpoint, host_ip, int, missing, owner_of};
use super::{Backend, Health, HealthKind, Port, Protocol, Route, SCHEDULERS, Service};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Checks every service. VIPs are read first, so that a LIP can be checked against the VIPs
/// of services further down.
pub(super) fn services(
    raw: &[RawService],
    ports: &[Port],
    routes: &[Route],
) -> Result<Vec<Service>, Problem> {
    let mut keys: Vec<(SocketAddr, Protocol)> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let key = vip(i, r, ports)?;
        if let Some(k) = keys.iter().position(|&other| other == key) {
            let at = format!("service[{i}]");
            let message = format!("{at}: duplicate service {}/{} (also service[{k}])", key.0, key.1);
            return Err(Problem::raw(&at, message));
        }
        keys.push(key);
    }
    let vips: Vec<IpAddr> = keys.iter().map(|(a, _)| a.ip()).collect();
    raw.iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (r, (vip, protocol)))| service(i, r, vip, protocol, &vips, ports, routes))
        .collect()
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
    if let Some((k, name)) = owner_of(ports, &vip.ip()) {
        let why = format!(
            "an address of its own: {} is port {name:?}'s (port[{k}].addresses), which the host's \
             kernel answers",
            vip.ip()
        );
        return Err(Problem::string(&path, v, &why));
    }
    let protocol = match choice(&format!("{at}.protocol"), r.protocol.as_deref(), "tcp", &["tcp", "udp"])? {
        "tcp" => Protocol::Tcp,
        _ => Protocol::Udp,
    };
    Ok((vip, protocol))
}

fn service(
    i: usize,
    r: &RawService,
    vip: SocketAddr,
    protocol: Protocol,
    vips: &[IpAddr],
    ports: &[Port],
    routes: &[Route],
) -> Result<Service, Problem> {
    let at = format!("service[{i}]");
    let scheduler =
        choice(&format!("{at}.scheduler"), r.scheduler.as_deref(), "wlc", &SCHEDULERS)?.to_owned();
    let local_addresses = lips(&at, r.local_addresses.as_deref(), vips, ports)?;
    let conn_limit =
        int(&format!("{at}.conn_limit"), r.conn_limit, 0, 0..=i64::from(u32::MAX), " (0: no limit)")?;
    let health = r.health.as_ref().map(|h| health(&format!("{at}.health"), h)).transpose()?;
    if r.backend.is_empty() {
        let message =
            format!("{at} ({vip}/{protocol}) has no backends: add at least one [[service.backend]]");
        return Err(Problem::raw(&at, message));
    }
    let mut backends: Vec<Backend> = Vec::with_capacity(r.backend.len());
    for (j, b) in r.backend.iter().enumerate() {
        let backend = backend(&format!("{at}.backend[{j}]"), b, &local_addresses, vips, ports, routes)?;
        if let Some(k) = backends.iter().position(|o| o.address == backend.address) {
            let path = format!("{at}.backend[{j}].address");
            let message =
                format!("{path} = \"{}\": duplicate backend (also {at}.backend[{k}])", backend.address);
            return Err(Problem::raw(&path, message));
        }
        backends.push(backend);
    }
    Ok(Service { vip, protocol, scheduler, local_addresses, conn_limit, health, backends })
}

/// `local_addresses`: at least one; each unicast, listed once, neither a VIP nor a port's own.
fn lips(at: &str, raw: Option<&[String]>, vips: &[IpAddr], ports: &[Port]) -> Result<Vec<IpAddr>, Problem> {
    let why = "FullNAT connects to the backends from a local address (LIP) of their family, \
               like local_addresses = [\"10.10.2.1\"]";
    let raw = match raw {
        None => return Err(missing(at, "local_addresses", why)),
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
        if vips.contains(&ip) {
            return Err(Problem::string(&path, s, "an address of its own: it is a service's VIP"));
        }
        if let Some((k, name)) = owner_of(ports, &ip) {
            let why = format!("an address of its own: it is port {name:?}'s (port[{k}].addresses)");
            return Err(Problem::string(&path, s, &why));
        }
        lips.push(ip);
    }
    Ok(lips)
}

/// `health = { kind = …, … }`.
fn health(at: &str, raw: &RawHealth) -> Result<Health, Problem> {
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
    lips: &[IpAddr],
    vips: &[IpAddr],
    ports: &[Port],
    routes: &[Route],
) -> Result<Backend, Problem> {
    let Some(a) = &raw.address else {
        return Err(missing(
            at,
            "address",
            "the real server's address and port, like address = \"10.10.2.11:80\"",
        ));
    };
    let path = format!("{at}.address");
    let address = endpoint(&path, a, "\"10.10.2.11:80\"")?;
    let ip = address.ip();
    if !lips.iter().any(|l| l.is_ipv4() == ip.is_ipv4()) {
        let (family, other) = if ip.is_ipv4() { ("IPv4", "IPv6") } else { ("IPv6", "IPv4") };
        let list: Vec<String> = lips.iter().map(ToString::to_string).collect();
        let service = at.rsplit_once(".backend").map_or(at, |(s, _)| s);
        let why = format!(
            "an {family} backend needs an {family} local address, and {service}.local_addresses has only \
             {other} ({}): add one or use an {other} backend",
            list.join(", ")
        );
        return Err(Problem::raw(&path, format!("{path} = {a:?}: {why}")));
    }
    if lips.contains(&ip) || vips.contains(&ip) || owner_of(ports, &ip).is_some() {
        return Err(Problem::string(
            &path,
            a,
            "another host's address: it is one of this host's own (a VIP, a LIP or a port address)",
        ));
    }
    if connected_port(ports, &ip).is_none() && !routes.iter().any(|r| r.prefix.contains(&ip)) {
        return Err(Problem::string(
            &path,
            a,
            "a reachable address: no port has an address on its network and no [[route]] covers it",
        ));
    }
    let weight = int(&format!("{at}.weight"), raw.weight, 1, 0..=65535, " (0 drains)")?;
    Ok(Backend { address, weight })
}
