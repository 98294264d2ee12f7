//! From the file as written ([`RawConfig`]) to a checked [`Config`]: defaults, ranges,
//! addresses, names, references between sections. The first problem found is the error.

use super::error::{Problem, Quoted};
use super::raw::{RawConfig, RawControl, RawDevice, RawHost, RawNeighbor, RawPort, RawRoute};
use super::{
    Cidr, Config, Control, Device, Host, Icmp, MAX_PORTS, Mac, Neighbor, Port, PortKind, Route, Transport,
};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// Linux's longest interface name (IFNAMSIZ less the terminating NUL).
const IFNAME_MAX: usize = 15;

/// Checks every section and builds the typed configuration.
pub(super) fn validate(raw: &RawConfig, origin: &str) -> Result<Config, Problem> {
    let device = device(&raw.device)?;
    let control = control(&raw.control)?;
    let host = host(&raw.host)?;
    let ports = ports(&raw.port, &host)?;
    let routes = routes(&raw.route, &ports)?;
    let neighbors = neighbors(&raw.neighbor, &ports)?;
    let services = super::service::services(&raw.service, &ports, &routes)?;
    let timeouts = super::tuning::timeouts(&raw.timeouts)?;
    let offload = super::tuning::offload(&raw.offload)?;
    let limits = super::tuning::limits(&raw.limits, device.workers)?;
    let icmp = Icmp { echo: raw.icmp.echo.unwrap_or(Icmp::default().echo) };
    let routing = super::routing::routing(raw.routing.as_ref(), &raw.service, &ports, &routes)?;
    let probes = super::probe::probes(&raw.probe)?;
    let sync = super::sync::sync(raw.sync.as_ref(), &ports, &services)?;
    let routing = routing.map(|r| super::Routing {
        backup_lips: sync.as_ref().map(super::SyncConf::peer_lips).unwrap_or_default(),
        ..r
    });
    Ok(Config {
        origin: origin.to_owned(),
        device,
        control,
        ports,
        routes,
        neighbors,
        services,
        timeouts,
        offload,
        limits,
        icmp,
        host,
        routing,
        probes,
        sync,
    })
}

/// `value` (or `default` when absent) if it is in `range` and fits `T`; else
/// `PATH = VALUE: expected an integer from LO to HI{why}`.
pub(super) fn int<T: TryFrom<i64>>(
    path: &str,
    value: Option<i64>,
    default: T,
    range: RangeInclusive<i64>,
    why: &str,
) -> Result<T, Problem> {
    let Some(v) = value else { return Ok(default) };
    match T::try_from(v) {
        Ok(t) if range.contains(&v) => Ok(t),
        _ => Err(Problem::value(
            path,
            &v,
            &format!("an integer from {} to {}{why}", range.start(), range.end()),
        )),
    }
}

/// `value` (or `default`) if it is one of `choices`; else the list of them.
pub(super) fn choice<'a>(
    path: &str,
    value: Option<&'a str>,
    default: &'a str,
    choices: &[&str],
) -> Result<&'a str, Problem> {
    let v = value.unwrap_or(default);
    if choices.contains(&v) {
        return Ok(v);
    }
    let list: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
    Err(Problem::string(path, v, &format!("one of {}", list.join(", "))))
}

/// `PATH: missing key "KEY" (WHY)` for a required key absent from table `table`.
pub(super) fn missing(table: &str, key: &str, why: &str) -> Problem {
    Problem::key(table, &format!("missing key {key:?} ({why})"))
}

/// A unicast address a host or server can have: not unspecified, loopback, multicast or
/// broadcast.
pub(super) fn unicast(ip: &IpAddr) -> Result<(), &'static str> {
    let v4_broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
    if ip.is_unspecified() {
        Err("the unspecified address")
    } else if ip.is_loopback() {
        Err("a loopback address")
    } else if ip.is_multicast() || v4_broadcast {
        Err("not a unicast address")
    } else {
        Ok(())
    }
}

/// An IP address at `path` that a host or a server can have.
pub(super) fn host_ip(path: &str, s: &str) -> Result<IpAddr, Problem> {
    let ip: IpAddr = s.parse().map_err(|_| {
        let hint = if s.contains('/') {
            " (without a prefix length)"
        } else if s.parse::<SocketAddr>().is_ok() {
            " (without a port)"
        } else {
            ""
        };
        Problem::string(
            path,
            s,
            &format!("an IPv4 or IPv6 address{hint}, like \"10.10.2.1\" or \"fd00:2::1\""),
        )
    })?;
    unicast(&ip).map_err(|why| Problem::string(path, s, &format!("a unicast address ({why})")))?;
    Ok(ip)
}

/// An `ip:port` at `path` with a non-zero port and a unicast address.
pub(super) fn endpoint(path: &str, s: &str, like: &str) -> Result<SocketAddr, Problem> {
    let expected = format!("an address with a port, like {like} or \"[fd00::1]:80\"");
    let Ok(addr) = s.parse::<SocketAddr>() else {
        let hint = match s.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) if s.contains('.') || s.matches(':').count() > 1 => {
                " (an IPv6 address takes its port after brackets: \"[fd00::1]:80\")"
            }
            Ok(_) => " (the port is missing)",
            Err(_) => "",
        };
        return Err(Problem::string(path, s, &format!("{expected}{hint}")));
    };
    if addr.port() == 0 {
        return Err(Problem::string(path, s, &format!("{expected} (port 0 is not a port)")));
    }
    unicast(&addr.ip()).map_err(|why| Problem::string(path, s, &format!("a unicast address ({why})")))?;
    Ok(addr)
}

/// A MAC address at `path` that can be a station's own.
pub(super) fn unicast_mac(path: &str, s: &str) -> Result<Mac, Problem> {
    let mac: Mac = s.parse().map_err(|why: String| {
        Problem::string(path, s, &format!("a MAC address, like \"02:00:00:00:02:11\" ({why})"))
    })?;
    if !mac.is_unicast() {
        return Err(Problem::string(path, s, "a unicast MAC address (not zero, group bit clear)"));
    }
    Ok(mac)
}

/// A non-empty string at `path`.
fn non_empty<'a>(path: &str, s: &'a str, what: &str) -> Result<&'a str, Problem> {
    if s.trim().is_empty() { Err(Problem::string(path, s, what)) } else { Ok(s) }
}

/// Whether `name` is a Linux interface name: 1 to 15 bytes, no `/`, `:` or white space,
/// not `.` or `..`.
fn ifname_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// The port whose connected prefixes hold `ip`, by longest prefix, first on a tie.
pub(super) fn connected_port(ports: &[Port], ip: &IpAddr) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, port) in ports.iter().enumerate() {
        for cidr in port.addresses.iter().filter(|c| c.contains(ip)) {
            if best.is_none_or(|(_, len)| cidr.len > len) {
                best = Some((i, cidr.len));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// The port (index and name) that owns `ip` as one of its own addresses.
pub(super) fn owner_of<'a>(ports: &'a [Port], ip: &IpAddr) -> Option<(usize, &'a str)> {
    ports
        .iter()
        .enumerate()
        .find(|(_, p)| p.addresses.iter().any(|c| c.addr == *ip))
        .map(|(i, p)| (i, &*p.name))
}

fn device(raw: &RawDevice) -> Result<Device, Problem> {
    let kind = choice("device.transport", raw.transport.as_deref(), "sim", &["sim", "vfio-user", "vfio"])?;
    let socket = match &raw.socket {
        Some(s) => Some(PathBuf::from(non_empty("device.socket", s, "a path to a Unix socket")?)),
        None => None,
    };
    let pci = raw.pci.as_deref().map(pci_address).transpose()?;
    let transport = match (kind, socket, pci) {
        ("vfio-user", Some(socket), _) => Transport::VfioUser { socket },
        ("vfio-user", None, _) => {
            return Err(missing(
                "device",
                "socket",
                "transport = \"vfio-user\" needs the server's socket, like socket = \"/run/sluice/nic0.sock\"",
            ));
        }
        ("vfio", _, Some(pci)) => Transport::Vfio { pci },
        ("vfio", _, None) => {
            return Err(missing(
                "device",
                "pci",
                "transport = \"vfio\" needs the card's PCI address, like pci = \"0000:03:00.0\" (see lspci -D)",
            ));
        }
        _ => Transport::Sim,
    };
    let workers: usize = int("device.workers", raw.workers, 1, 1..=16, "")?;
    if !workers.is_power_of_two() {
        return Err(Problem::value(
            "device.workers",
            &workers,
            "a power of two: 1, 2, 4, 8 or 16 (worker i owns the local ports with lport & (workers - 1) == i)",
        ));
    }
    Ok(Device {
        transport,
        workers,
        interrupts: raw.interrupts.unwrap_or(false),
        ring_log2: int("device.ring_log2", raw.ring_log2, 10, 4..=14, " (ring entries as a power of two)")?,
        give_up_s: int("device.give_up_s", raw.give_up_s, 60, 0..=86_400, " (seconds; 0 never gives up)")?,
        datapath_thread: raw.datapath_thread,
    })
}

/// `DDDD:BB:DD.F` (domain, bus, device up to 1f, function up to 7), returned in lower case.
fn pci_address(s: &str) -> Result<String, Problem> {
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = (|| {
        let (domain, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let dev_ok = hex(dev, 2) && u8::from_str_radix(dev, 16).ok()? <= 0x1f;
        let func_ok = func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7');
        (hex(domain, 4) && hex(bus, 2) && dev_ok && func_ok).then_some(())
    })();
    match ok {
        Some(()) => Ok(s.to_ascii_lowercase()),
        None => Err(Problem::string(
            "device.pci",
            s,
            "a PCI address DDDD:BB:DD.F, like \"0000:03:00.0\" (see lspci -D)",
        )),
    }
}

fn control(raw: &RawControl) -> Result<Control, Problem> {
    let default = Control::default();
    let socket = match &raw.socket {
        Some(s) => PathBuf::from(non_empty("control.socket", s, "a path for the control socket")?),
        None => default.socket,
    };
    let metrics = match &raw.metrics {
        None => default.metrics,
        Some(s) => {
            let expected = "a loopback address with a port, like \"127.0.0.1:9100\" or \"[::1]:9100\" \
                            (metrics are served on loopback only: put a proxy in front to export them)";
            match s.parse::<SocketAddr>() {
                Ok(a) if a.ip().is_loopback() && a.port() != 0 => a,
                _ => return Err(Problem::string("control.metrics", s, expected)),
            }
        }
    };
    Ok(Control { socket, metrics })
}

fn host(raw: &RawHost) -> Result<Host, Problem> {
    let default = Host::default();
    let tap_prefix = raw.tap_prefix.clone().unwrap_or(default.tap_prefix);
    if !tap_prefix.is_empty() && !ifname_ok(&tap_prefix) {
        return Err(Problem::string(
            "host.tap_prefix",
            &tap_prefix,
            "the start of an interface name, like \"sl-\" (no /, : or spaces, under 15 characters)",
        ));
    }
    Ok(Host { tap: raw.tap.unwrap_or(default.tap), tap_prefix })
}

fn ports(raw: &[RawPort], host: &Host) -> Result<Vec<Port>, Problem> {
    if raw.is_empty() {
        return Err(Problem::raw(
            "",
            "no [[port]]: add at least one, like [[port]] name = \"p0\" addresses = [\"10.10.1.1/24\"]"
                .into(),
        ));
    }
    if raw.len() > MAX_PORTS {
        let path = format!("port[{MAX_PORTS}]");
        return Err(Problem::key(&path, &format!("too many ports: a NIC has at most {MAX_PORTS}")));
    }
    let mut ports: Vec<Port> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let port = port(i, r, host)?;
        check_port_against(i, &port, &ports)?;
        ports.push(port);
    }
    Ok(ports)
}

fn port(i: usize, raw: &RawPort, host: &Host) -> Result<Port, Problem> {
    let at = format!("port[{i}]");
    let Some(name) = &raw.name else {
        return Err(missing(&at, "name", "each port has a name, like name = \"p0\""));
    };
    let path = format!("{at}.name");
    let name_ok = |n: &str| n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > IFNAME_MAX || !name_ok(name) {
        return Err(Problem::string(&path, name, "a name of 1 to 15 characters among A-Z a-z 0-9 _ . -"));
    }
    if host.tap && host.tap_prefix.len() + name.len() > IFNAME_MAX {
        let tap = format!("{}{name}", host.tap_prefix);
        return Err(Problem::string(
            &path,
            name,
            &format!(
                "a shorter name: its TAP interface {tap:?} would be over Linux's 15 characters \
                 (shorten the name or host.tap_prefix)"
            ),
        ));
    }
    let interface = match &raw.interface {
        Some(s) if !ifname_ok(s) => {
            let expected = "a Linux interface name, 1 to 15 characters without /, : or spaces (see ip link)";
            return Err(Problem::string(&format!("{at}.interface"), s, expected));
        }
        other => other.clone(),
    };
    let mac = raw.mac.as_deref().map(|m| unicast_mac(&format!("{at}.mac"), m)).transpose()?;
    let mut addresses: Vec<Cidr> = Vec::new();
    for (j, s) in raw.addresses.iter().flatten().enumerate() {
        let cidr = own_address(&format!("{at}.addresses[{j}]"), s)?;
        if let Some(k) = addresses.iter().position(|c| c.addr == cidr.addr) {
            let path = format!("{at}.addresses[{j}]");
            return Err(Problem::string(
                &path,
                s,
                &format!("a new address ({at}.addresses[{k}] has it too)"),
            ));
        }
        addresses.push(cidr);
    }
    let has_v6 = addresses.iter().any(|c| c.addr.is_ipv6());
    let (lo, why) = if has_v6 { (1280, " (IPv6 needs 1280 at least)") } else { (68, "") };
    let mtu = int(&format!("{at}.mtu"), raw.mtu, 1500, lo..=9000, why)?;
    let kind = match raw.kind.as_deref() {
        None | Some("auto") => PortKind::Auto,
        Some("af_xdp") => PortKind::AfXdp,
        Some("af_packet") => PortKind::AfPacket,
        Some(k) => {
            return Err(Problem::string(&format!("{at}.kind"), k, "\"auto\", \"af_xdp\" or \"af_packet\""));
        }
    };
    let queue = int(&format!("{at}.queue"), raw.queue, 0, 0..=1023, "")?;
    Ok(Port { name: name.clone(), interface, mac, addresses, mtu, kind, queue })
}

/// A port's own address: a CIDR whose address is a host's (not the network's or the
/// broadcast address of a subnet that has them).
fn own_address(path: &str, s: &str) -> Result<Cidr, Problem> {
    let like = "an address with a prefix length, like \"10.10.1.1/24\" or \"fd00:1::1/64\"";
    let cidr: Cidr = s.parse().map_err(|why| Problem::string(path, s, &format!("{like} ({why})")))?;
    unicast(&cidr.addr).map_err(|why| Problem::string(path, s, &format!("{like} ({why})")))?;
    let max = if cidr.addr.is_ipv4() { 32 } else { 128 };
    if cidr.len + 1 < max && cidr.is_network() {
        let why = format!("a host address: {} is the network's own address", cidr.addr);
        return Err(Problem::string(path, s, &why));
    }
    if let IpAddr::V4(a) = cidr.addr
        && cidr.len < 31
        && (u32::from(a) | (u32::MAX >> cidr.len)) == u32::from(a)
    {
        return Err(Problem::string(
            path,
            s,
            &format!("a host address: {a} is the network's broadcast address"),
        ));
    }
    Ok(cidr)
}

/// What must differ between ports: names, interfaces, addresses, MAC addresses.
fn check_port_against(i: usize, port: &Port, earlier: &[Port]) -> Result<(), Problem> {
    let at = format!("port[{i}]");
    for (k, other) in earlier.iter().enumerate() {
        if other.name == port.name {
            let why = format!("duplicate port name (port[{k}] is {:?})", other.name);
            return Err(Problem::raw(&format!("{at}.name"), format!("{at}.name = {:?}: {why}", port.name)));
        }
        if let (Some(a), Some(b)) = (&port.interface, &other.interface)
            && a == b
        {
            let path = format!("{at}.interface");
            let why = format!("duplicate interface (port[{k}] is attached to {b:?} too)");
            return Err(Problem::raw(&path, format!("{path} = {a:?}: {why}")));
        }
        for (j, c) in port.addresses.iter().enumerate() {
            if other.addresses.iter().any(|o| o.addr == c.addr) {
                let path = format!("{at}.addresses[{j}]");
                let why = format!("duplicate address (port[{k}] {:?} has {} too)", other.name, c.addr);
                return Err(Problem::raw(&path, format!("{path} = {}: {why}", Quoted(&c.to_string()))));
            }
        }
    }
    let mac_of = |idx: usize, p: &Port| match (p.mac, &p.interface) {
        (Some(m), _) => Some((m, false)),
        (None, None) => Some((Mac::for_port_index(u8::try_from(idx).unwrap_or(u8::MAX)), true)),
        (None, Some(_)) => None,
    };
    if let Some((mac, _)) = mac_of(i, port) {
        for (k, other) in earlier.iter().enumerate() {
            if let Some((m, by_default)) = mac_of(k, other)
                && m == mac
            {
                let how = if by_default { " by default (it has neither mac nor interface)" } else { "" };
                let path = format!("{at}.mac");
                return Err(Problem::raw(
                    &path,
                    format!("{path} = \"{mac}\": duplicate MAC (port[{k}] has it{how})"),
                ));
            }
        }
    }
    Ok(())
}

/// A `port` key naming a port, as its index.
pub(super) fn port_ref(path: &str, name: &str, ports: &[Port]) -> Result<usize, Problem> {
    ports.iter().position(|p| p.name == name).ok_or_else(|| {
        let names: Vec<String> = ports.iter().map(|p| format!("{:?}", p.name)).collect();
        Problem::string(path, name, &format!("the name of a [[port]]: {}", names.join(", ")))
    })
}

fn routes(raw: &[RawRoute], ports: &[Port]) -> Result<Vec<Route>, Problem> {
    let mut routes: Vec<Route> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = format!("route[{i}]");
        let Some(p) = &r.prefix else {
            return Err(missing(&at, "prefix", "the destination, like prefix = \"0.0.0.0/0\""));
        };
        let path = format!("{at}.prefix");
        let like = "a prefix, like \"0.0.0.0/0\" or \"fd00:9::/48\"";
        let prefix: Cidr = p.parse().map_err(|why| Problem::string(&path, p, &format!("{like} ({why})")))?;
        if !prefix.is_network() {
            return Err(Problem::string(
                &path,
                p,
                &format!("a prefix without host bits: did you mean \"{}\"?", prefix.network()),
            ));
        }
        if let Some(k) = routes.iter().position(|o| o.prefix == prefix) {
            return Err(Problem::raw(&path, format!("{path} = {p:?}: duplicate route (also route[{k}])")));
        }
        let Some(v) = &r.via else {
            return Err(missing(&at, "via", "the gateway, like via = \"10.10.1.254\""));
        };
        let path = format!("{at}.via");
        let via = host_ip(&path, v)?;
        if via.is_ipv4() != prefix.addr.is_ipv4() {
            let family = if prefix.addr.is_ipv4() { "an IPv4" } else { "an IPv6" };
            return Err(Problem::string(&path, v, &format!("{family} gateway, as the prefix {prefix} is")));
        }
        if let Some((k, name)) = owner_of(ports, &via) {
            let why = format!("another host's address: {via} is this host's own (port[{k}] {name:?})");
            return Err(Problem::string(&path, v, &why));
        }
        let port = match &r.port {
            Some(name) => port_ref(&format!("{at}.port"), name, ports)?,
            None => connected_port(ports, &via).ok_or_else(|| {
                Problem::string(
                    &path,
                    v,
                    "an address on a port's network: no port has an address on it \
                                           (add port = \"NAME\" or give that port an address there)",
                )
            })?,
        };
        routes.push(Route { prefix, via, port: ports[port].name.clone() });
    }
    Ok(routes)
}

fn neighbors(raw: &[RawNeighbor], ports: &[Port]) -> Result<Vec<Neighbor>, Problem> {
    let mut out: Vec<Neighbor> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = format!("neighbor[{i}]");
        let Some(a) = &r.address else {
            return Err(missing(&at, "address", "the neighbour's IP address, like address = \"10.10.2.11\""));
        };
        let path = format!("{at}.address");
        let address = host_ip(&path, a)?;
        if let Some(k) = out.iter().position(|n| n.address == address) {
            return Err(Problem::raw(
                &path,
                format!("{path} = {a:?}: duplicate neighbor (also neighbor[{k}])"),
            ));
        }
        if let Some((k, name)) = owner_of(ports, &address) {
            return Err(Problem::string(
                &path,
                a,
                &format!("another host's address: it is this host's own (port[{k}] {name:?})"),
            ));
        }
        let Some(m) = &r.mac else {
            return Err(missing(&at, "mac", "its MAC address, like mac = \"02:00:00:00:02:11\""));
        };
        let mac = unicast_mac(&format!("{at}.mac"), m)?;
        let port = match &r.port {
            Some(name) => Some(port_ref(&format!("{at}.port"), name, ports)?),
            None => connected_port(ports, &address),
        };
        out.push(Neighbor { address, mac, port: port.map(|p| ports[p].name.clone()) });
    }
    Ok(out)
}

/// `CamelCase` as `snake_case` (the contract's code names as metrics and `sluice stats` print them).
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
