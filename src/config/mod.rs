//! The daemon's configuration: a TOML file read into typed, checked structures.
//!
//! [`load`] reads a file and [`parse`] a text; each gives a [`Config`] in which every value has
//! been checked (addresses parse, names are unique, references resolve, ranges hold), or one
//! [`ConfigError`] whose message is a single line naming the file, the line when known, the
//! key path (`service[0].backend[1].address`), the value as written and what was expected.
//! [`EXAMPLE`] is a complete, commented configuration with every key (`sluice config example`).
//! [`check_interfaces`] is the one check that looks at the machine (the daemon calls it where
//! interfaces are used: transport `"sim"`).
//!
//! Unknown keys are errors (a misspelt key silently falling back to its default is the worst
//! kind of configuration bug). Every key is optional unless marked *required*.
//!
//! # Keys
//!
//! | key | value | default | meaning |
//! |---|---|---|---|
//! | `device.transport` | `"sim"`, `"vfio-user"`, `"vfio"` | `"sim"` | The NIC: the in-process model, the model in another process (`sluice sim`), or the card bound to vfio-pci. |
//! | `device.socket` | path | *required for vfio-user* | The vfio-user server's Unix socket. Checked when given, used only by vfio-user. |
//! | `device.pci` | `"DDDD:BB:DD.F"` | *required for vfio* | The card's PCI address (stored in lower case). Checked when given, used only by vfio. |
//! | `device.workers` | 1, 2, 4, 8 or 16 | 1 | Slow-path workers; worker `i` owns the local ports with `lport & (workers - 1) == i`. |
//! | `device.interrupts` | bool | false | Sleep on MSI-X interrupts instead of busy polling the rings. |
//! | `device.ring_log2` | 4..=14 | 10 | Entries of each ring, as a power of two (10: 1024). |
//! | `device.datapath_thread` | bool | on with 4+ CPUs | `sim` only: the in-process model's datapath (its ports, its timers) on a thread of its own, as a card beside the host, spinning while busy and sleeping on its ports when idle; false: in the slow path's loop, which then sleeps in `poll()` on the ports and host interfaces when idle. |
//! | `device.give_up_s` | 0..=86400 | 60 | Seconds the NIC may stay lost (model process gone, card not answering) while the daemon retries with backoff; then it exits with status 1 for systemd to restart it. 0: never give up. |
//! | `control.socket` | path | `/run/sluice/sluice.sock` | The control socket (`sluice flows`, `stats`, …). |
//! | `control.metrics` | loopback `ip:port` | `127.0.0.1:9100` | Prometheus metrics; loopback only (a proxy exports them). |
//! | `port[].name` | 1..=15 of `A-Z a-z 0-9 _ . -` | *required* | Unique; the port's name everywhere else (routes, neighbours, CLI). |
//! | `port[].interface` | Linux interface name | none | `sim` only: the Linux interface the model's port is attached to. Unique. |
//! | `port[].mac` | `"02:00:00:00:02:11"` (`:` or `-`) | see [`Config::port_mac`] | The port's MAC address; unicast. |
//! | `port[].addresses` | list of CIDRs | `[]` | The host's own addresses on this port (on its TAP); their networks are the port's connected prefixes. Unique across ports; not a network or broadcast address. |
//! | `port[].mtu` | 68..=9000 (1280..=9000 with an IPv6 address) | 1500 | IP MTU. |
//! | `port[].kind` | `"auto"`, `"af_xdp"`, `"af_packet"` | `"auto"` | `sim` only: how the port attaches to its `interface`: AF_XDP, AF_PACKET (TPACKET_V3 rings), or AF_XDP falling back to AF_PACKET with one warning saying why. |
//! | `port[].queue` | 0..=1023 | 0 | `sim` only: the interface's receive queue an AF_XDP port binds to. |
//! | `route[].prefix` | CIDR, no host bits | *required* | Destination; unique. |
//! | `route[].via` | address of the prefix's family | *required* | Gateway; not one of the host's own addresses. |
//! | `route[].port` | port name | the port with a connected prefix holding `via` (longest match) | Where the gateway is. |
//! | `neighbor[].address` | IP address | *required* | A static ARP/ND entry; unique; not one of the host's own addresses. |
//! | `neighbor[].mac` | MAC | *required* | Its MAC address. |
//! | `neighbor[].port` | port name | the port with a connected prefix holding the address, else none (any port) | |
//! | `service[].vip` | `"10.10.1.100:80"`, `"[fd00::1]:80"` | *required* | Unique with the protocol: one address may carry TCP :80 and UDP :53. Not a port address. |
//! | `service[].protocol` | `"tcp"`, `"udp"` | `"tcp"` | |
//! | `service[].scheduler` | `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh` | `"wlc"` | IPVS's names and default. |
//! | `service[].forward` | `"fullnat"`, `"nat"`, `"dr"`, `"tun"` | `"fullnat"` | How connections reach the servers (LVS's modes). `dr`: every backend on a port's network, on the VIP's port. `tun`: on the VIP's port, reached through a port or a route. `nat`: needs `nat_gateway`. |
//! | `service[].nat_gateway` | a port's own address | *required with `forward = "nat"`*, refused otherwise | The address the servers route their replies through (their default gateway): every backend must be on its port's network. |
//! | `service[].local_addresses` | list of IP addresses | *required* for `fullnat` (the LIPs) and `tun` (the tunnel's source, the first of the VIP's family); refused for `nat` and `dr` | FullNAT's LIPs: at least one of each backend's family; not a VIP, not a port address. Services may share them. |
//! | `service[].conn_limit` | 0..=4294967295 | 0 | Connections at most; 0 = no limit. |
//! | `service[].synproxy` | `true`, `false` | `false` | SYN proxy: SYNs are answered with SYN cookies and the server is opened only for a client whose ACK returns one (TCP only). |
//! | `service[].synproxy_wscale` | 0..=14 | 7 | With `synproxy`: the window scale the real servers use, or below it (Linux picks 7 with 6 MiB of `tcp_rmem`, 10 with recent kernels' 32 MiB; `ss -ti` on a server shows `wscale:<client>,<server>`). The proxy tells clients this one before any server has answered: a server with a larger scale is safe (clients see smaller windows than it offers), one with a smaller scale is counted in `synproxy_mismatch`. Only with `synproxy = true`. |
//! | `service[].synproxy_timestamps` | `true`, `false` | `true` | With `synproxy`: offer TCP timestamps to clients that ask, translated to the server's clock on every packet (by the NIC's `ts_delta` once offloaded). Window scaling needs them (the client's scale is kept in the cookie's timestamp): `false` also turns window scaling off. Only with `synproxy = true`. |
//! | `service[].proxy_protocol` | `"v2"`, `"toa"` | none | The client's address and port for the servers: a PROXY protocol v2 header at the start of the server-side stream, or LVS's TOA TCP option (IPv4 only) (TCP only; not with `synproxy`). |
//! | `service[].health` | inline table | none | Health check; without it a backend is always up. |
//! | `service[].health.kind` | `"tcp"`, `"http"` | *required* | Connect, or `GET path` and compare the status. |
//! | `service[].health.interval_ms` | 1..=3600000 | 1000 | Between checks. |
//! | `service[].health.timeout_ms` | 1..=`interval_ms` | the smaller of `interval_ms` and 1000 | One check's deadline. |
//! | `service[].health.rise` / `fall` | 1..=1000 | 2 / 3 | Good checks to go up / failed checks to go down (keepalived's); a backend starts up. |
//! | `service[].health.path` | starts with `/` | `"/"` | `http` only. |
//! | `service[].health.expect` | 100..=599 | 200 | `http` only: the status that means up. |
//! | `service[].health.host` | host name | none (the backend's address) | `http` only: the `Host` header. |
//! | `service[].backend[].address` | `ip:port` | *required* | A real server; unique in its service; its family must be one of the service's LIPs'; reachable through a connected prefix or a route; not a VIP, LIP or port address. |
//! | `service[].backend[].weight` | 0..=65535 | 1 | 0 drains: no new connections. |
//! | `probe[].target` | `"10.99.0.100:80"` | *required* | `[[probe]]` `target`: a VIP checked end to end from this node (routed by the host, through the router in a cluster). |
//! | `probe[].name` | text, unique | the target | The label in metrics and `sluice services`. |
//! | `probe[].check` | inline table with the keys of `service[].health` | `{ kind = "tcp" }` | How, how often, rise and fall. |
//! | `timeouts.tcp_established` | seconds, 1..=604800 | 90 | DPVS's defaults, all of them. |
//! | `timeouts.tcp_syn_recv` | seconds | 30 | |
//! | `timeouts.tcp_fin_wait`, `tcp_close_wait`, `tcp_time_wait`, `tcp_last_ack` | seconds | 7 each | |
//! | `timeouts.tcp_close` | seconds | 3 | |
//! | `timeouts.udp` | seconds | 300 | |
//! | `timeouts.quarantine` | seconds, ≥ 60 and ≥ 2 × `tcp_time_wait` | 120 | A (LIP, lport, RS) tuple is not reused for this long after close, so a real server's TIME_WAIT never sees it again. |
//! | `offload.enabled` | bool | true | Push qualifying flows into the NIC's table. |
//! | `offload.tcp_after` | `"handshake"`, `"first_packet"` | `"handshake"` | When a TCP flow qualifies. |
//! | `offload.udp_after` | `"reply"`, `"first_packet"` | `"reply"` | When a UDP flow qualifies. |
//! | `offload.min_packets` | 0..=4294967295 | 0 | Packets a flow must have seen first (holds back short connections). |
//! | `offload.min_age_ms` | 0..=3600000 | 0 | Age a flow must have reached first. |
//! | `offload.forward_fin` | bool | true | The NIC forwards an offloaded flow's FINs itself and reports each with a flow event, from which the slow path moves the connection's state (false: such FINs are punted). Needs the device's `TEARDOWN_FORWARD`; RSTs are always punted. |
//! | `limits.half_open_per_worker` | 1..=4294967295 | 65536 | TCP connections in SYN_RECV per worker. |
//! | `limits.punt_share` | inline table: punt reason = 1..=100 | none | The percentage of each exception ring a punt reason's packets may hold at once, like `{ miss = 75 }` (reasons as `sluice stats` names them: `miss`, `tcp_syn`, `tcp_fin`, `tcp_rst`, `arp`, `icmp`, ...); more is dropped and counted (`punt_share`), so a flood of one reason leaves room for the others. |
//! | `limits.half_open_per_source` | 0..=4294967295 | 0 | TCP connections in SYN_RECV one client address holds per worker; 0 = no per-source limit (clients behind one NAT share an address). |
//! | `limits.lport_min` / `lport_max` | 1..=65535, min < max | 1024 / 65535 | FullNAT's local port range; at least `workers` ports. |
//! | `icmp.echo` | bool | true | Answer pings to VIPs. |
//! | `host.tap` | bool | true | The host's own traffic through a TAP interface per port (the daemon decides what happens when it cannot create one). |
//! | `host.tap_prefix` | interface-name characters | `"sl-"` | TAP name = prefix + port name, at most 15 characters. |
//! | `service[].priority` | 0..=9 | 0 | With `[routing]`: how much less this VIP is preferred (0 most); services on one address agree. See `routing.rs`. |
//! | `routing.bird_socket` | absolute path | *required with `[routing]`* | BIRD's control socket; must answer when the daemon starts. |
//! | `routing.include_file` | absolute path | `/run/sluice/bird/sluice.conf` | The file the daemon writes for BIRD to include. |
//! | `routing.asn` | 1..=4294967295 | *required* | This node's AS number. |
//! | `routing.bfd` | bool | true | BFD on every session. |
//! | `routing.bfd_interval_ms` / `bfd_multiplier` | 10..=10000 / 2..=255 | 100 / 3 | BFD timers. |
//! | `routing.hold_time_s` | 3..=65535 | 3 | BGP hold time. |
//! | `routing.announce_lips` | bool | true | Announce the services' LIPs too. |
//! | `routing.peer[].address` | IP on a port's network | *required* | A router (BGP neighbour); unique. |
//! | `routing.peer[].asn` | 1..=4294967295 | *required* | Its AS number (= `routing.asn`: iBGP). |
//! | `routing.peer[].port` | 1..=65535 | 179 | Its BGP port. |
//! | `routing.peer[].bfd` | bool | `routing.bfd` | BFD on this session. |
//! | `sync.port` | 1..=65535 | 8848 | `[sync]`: the UDP port connection sync is sent to and received on. |
//! | `sync.queue` | 1..=16777216 | 65536 | Connection events waiting for the sender at most; more are dropped and counted. |
//! | `sync.batch_ms` | 1..=1000 | 10 | How long the sender gathers events into one datagram at most. |
//! | `sync.node_id` | 1..=4294967295 | from the first port address | This node's id in the datagrams. |
//! | `sync.peers` | list of addresses | [] | Peer nodes without LIPs (shorthand for `[[sync.peer]]` with `address` only). |
//! | `sync.peer[].address` | IP, not this node's | *required* | A peer node; only its datagrams are taken. Unique. |
//! | `sync.peer[].lips` | list of IPs, not this node's | [] | The peer's LIPs: announced as backup routes (priority 9, with `[routing]` and `announce_lips`), and taken over on fail-over. |

mod addr;
mod error;
mod forward;
mod probe;
mod raw;
mod routing;
mod service;
mod sync;
mod tuning;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edits;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_forward;
#[cfg(test)]
mod tests_routing;
#[cfg(test)]
mod tests_services;
#[cfg(test)]
mod tests_sync;
#[cfg(test)]
mod tests_synproxy;

pub use addr::{Cidr, Mac};
pub use error::ConfigError;
pub use probe::{MAX_PROBES, Probe, kind_name as probe_kind};
pub use routing::{BACKUP_PRIORITY, MAX_PRIORITY, Peer, Routing};
pub use service::{backend_at_run_time, service_at_run_time, weight_at_run_time};
pub use slowpath::service::Forward;
pub use sync::{SyncConf, SyncPeer};
pub use tuning::{Host, Icmp, Limits, Offload, TcpOffloadAfter, Timeouts, UdpOffloadAfter};
pub use validate::snake_case;

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A complete, commented configuration using every key, that parses: what `sluice config
/// example` prints and the README shows.
pub const EXAMPLE: &str = include_str!("example.toml");

/// The most ports a NIC has (the ports block's `COUNT` is at most 8).
pub const MAX_PORTS: usize = 8;

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Where it came from (the file's path, or [`parse`]'s origin), for messages.
    pub origin: String,
    /// `[device]`.
    pub device: Device,
    /// `[control]`.
    pub control: Control,
    /// `[[port]]`, in file order (a port's index is its position here); at least one, at most
    /// [`MAX_PORTS`].
    pub ports: Vec<Port>,
    /// `[[route]]`, in file order.
    pub routes: Vec<Route>,
    /// `[[neighbor]]`, in file order.
    pub neighbors: Vec<Neighbor>,
    /// `[[service]]`, in file order.
    pub services: Vec<Service>,
    /// `[timeouts]`.
    pub timeouts: Timeouts,
    /// `[offload]`.
    pub offload: Offload,
    /// `[limits]`.
    pub limits: Limits,
    /// `[icmp]`.
    pub icmp: Icmp,
    /// `[host]`.
    pub host: Host,
    /// `[routing]` (see `routing.rs` for its keys); `None`: nothing is announced.
    pub routing: Option<Routing>,
    /// `[[probe]]`: end-to-end checks of VIPs from this node (see `probe.rs`).
    pub probes: Vec<Probe>,
    /// `[sync]` (see `sync.rs`); `None`: connections are not synced.
    pub sync: Option<SyncConf>,
}

/// `[device]`: which NIC and how the slow path drives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// `transport` with its `socket` or `pci`.
    #[serde(flatten)]
    pub transport: Transport,
    /// `workers`: slow-path workers, a power of two from 1 to 16 (default 1). Worker `i` owns
    /// the local ports with `lport & (workers - 1) == i`, and one exception ring.
    pub workers: usize,
    /// `interrupts`: sleep on MSI-X interrupts (true) or busy poll the rings (false, default).
    pub interrupts: bool,
    /// `ring_log2`: each ring has `1 << ring_log2` entries, 4..=14 (default 10).
    pub ring_log2: u8,
    /// `give_up_s`: seconds the NIC may stay lost before the daemon exits with status 1
    /// (default 60; 0: never).
    pub give_up_s: u32,
    /// `datapath_thread`: with `transport = "sim"`, run the model's datapath on a thread of its
    /// own instead of in the slow path's loop; unset: when the host has four or more CPUs.
    pub datapath_thread: Option<bool>,
}

/// `device.transport`: how the driver reaches the NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "transport", rename_all = "kebab-case")]
pub enum Transport {
    /// `"sim"` (default): the software NIC in this process.
    Sim,
    /// `"vfio-user"`: the software NIC served by `sluice sim --socket PATH`.
    VfioUser {
        /// `device.socket` (required).
        socket: PathBuf,
    },
    /// `"vfio"`: the card bound to vfio-pci.
    Vfio {
        /// `device.pci`, `DDDD:BB:DD.F` in lower case (required).
        pci: String,
    },
}

/// `[control]`: how people and Prometheus reach the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// `socket`: the control socket (default `/run/sluice/sluice.sock`, created mode 0600).
    pub socket: PathBuf,
    /// `metrics`: the Prometheus endpoint (default `127.0.0.1:9100`); always a loopback address.
    pub metrics: SocketAddr,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/sluice/sluice.sock"),
            metrics: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9100),
        }
    }
}

/// One `[[port]]`: a NIC port and the host's own addresses on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// `name`: unique, 1 to 15 characters of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    /// `interface`: the Linux interface the in-process model's port is attached to (transport
    /// `sim`; other transports ignore it). Unique. Its existence is checked by
    /// [`check_interfaces`], not here.
    pub interface: Option<String>,
    /// `mac`, when given; see [`Config::port_mac`] for the default.
    pub mac: Option<Mac>,
    /// `addresses`: the host's own addresses (they live on the port's TAP interface); each
    /// one's network is a connected prefix of the port.
    pub addresses: Vec<Cidr>,
    /// `mtu`: the IP MTU, 68..=9000 (1280 at least with an IPv6 address; default 1500).
    pub mtu: u16,
    /// `kind`: how the model's port attaches to `interface` (default `auto`).
    pub kind: PortKind,
    /// `queue`: the receive queue an AF_XDP port binds to, 0..=1023 (default 0).
    pub queue: u32,
}

/// `port.kind`: what attaches the in-process model's port to its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    /// `"auto"` (default): AF_XDP, or AF_PACKET (with one warning saying why) where AF_XDP
    /// cannot be had.
    #[default]
    Auto,
    /// `"af_xdp"`: an AF_XDP socket and an XDP program; an error where they cannot be had.
    AfXdp,
    /// `"af_packet"`: a packet socket with TPACKET_V3 rings.
    AfPacket,
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `prefix`: the destination, without host bits; unique.
    pub prefix: Cidr,
    /// `via`: the gateway, of the prefix's family.
    pub via: IpAddr,
    /// `port`, or when omitted the port with the longest connected prefix holding `via`.
    pub port: String,
}

/// One `[[neighbor]]`: a static ARP/ND entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbor {
    /// `address`; unique.
    pub address: IpAddr,
    /// `mac`.
    pub mac: Mac,
    /// `port`, or when omitted the port with the longest connected prefix holding the
    /// address; `None` when no port has one (the entry then serves whichever port the address
    /// is reached through).
    pub port: Option<String>,
}

/// `service.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `"tcp"` (default).
    Tcp,
    /// `"udp"`.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// The schedulers `service.scheduler` accepts (IPVS's names); the default is `wlc`.
pub const SCHEDULERS: [&str; 6] = ["rr", "wrr", "lc", "wlc", "sh", "mh"];

/// What `service.proxy_protocol` accepts; absent means none.
pub const PROXY_PROTOCOLS: [&str; 2] = ["v2", "toa"];

/// One `[[service]]`: a virtual service and its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// `vip`: the address and port clients connect to. (vip, protocol) is unique.
    pub vip: SocketAddr,
    /// `protocol` (default tcp).
    pub protocol: Protocol,
    /// `scheduler`: one of [`SCHEDULERS`] (default `"wlc"`).
    pub scheduler: String,
    /// `forward`: how connections reach the servers (default FullNAT).
    #[serde(serialize_with = "forward_word")]
    pub forward: Forward,
    /// `nat_gateway`: with `forward = "nat"`, the port address the servers route replies
    /// through.
    pub nat_gateway: Option<IpAddr>,
    /// `local_addresses`: FullNAT's LIPs, at least one, in file order; none is a VIP or a port
    /// address; every backend's family has one.
    pub local_addresses: Vec<IpAddr>,
    /// `conn_limit`: connections at most, 0 = no limit (default).
    pub conn_limit: u32,
    /// `synproxy`: answer SYNs with SYN cookies, open toward the server only for clients
    /// that prove their address (default false; TCP only).
    pub synproxy: bool,
    /// `synproxy_wscale`: the window scale the servers use, which the SYN proxy tells clients
    /// (0..=14, default 7; only with `synproxy`).
    pub synproxy_wscale: u8,
    /// `synproxy_timestamps`: the SYN proxy offers TCP timestamps, and with them window
    /// scaling, to clients that ask (default true; only with `synproxy`).
    pub synproxy_timestamps: bool,
    /// `proxy_protocol`: one of [`PROXY_PROTOCOLS`] (`"v2"`: a PROXY protocol v2 header at the
    /// start of the server-side stream; `"toa"`: LVS's TCP option 254, IPv4 only); `None`
    /// (default): nothing. TCP, FullNAT, not with `synproxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// `health`; `None`: a backend is always up.
    pub health: Option<Health>,
    /// `[[service.backend]]`, at least one, in file order.
    pub backends: Vec<Backend>,
}

/// A forwarding mode as the configuration writes it (serde hands the field by reference).
#[allow(clippy::trivially_copy_pass_by_ref)]
fn forward_word<S: serde::Serializer>(f: &Forward, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(f.as_str())
}

impl Service {
    /// `10.10.1.100:80/tcp`, as messages name a service.
    pub fn name(&self) -> String {
        format!("{}/{}", self.vip, self.protocol)
    }
}

/// A service's `health`. A backend starts up, goes down after `fall` failed checks in a row
/// and up again after `rise` good ones; checks leave from the address of the port that routes
/// to the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `kind` and its own keys.
    #[serde(flatten)]
    pub kind: HealthKind,
    /// `interval_ms` (default 1000).
    #[serde(serialize_with = "duration")]
    pub interval: Duration,
    /// `timeout_ms`, at most the interval (default: the smaller of the interval and 1 s).
    #[serde(serialize_with = "duration")]
    pub timeout: Duration,
    /// `rise` (default 2).
    pub rise: u32,
    /// `fall` (default 3).
    pub fall: u32,
}

/// `health.kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HealthKind {
    /// `"tcp"`: a connect to the backend's address and port succeeds.
    Tcp,
    /// `"http"`: `GET path` answers with status `expect`.
    Http {
        /// `path` (default `"/"`).
        path: String,
        /// `expect` (default 200).
        expect: u16,
        /// `host`: the `Host` header (default: the backend's address).
        host: Option<String>,
    },
}

/// One `[[service.backend]]`: a real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// `address`: unique within its service.
    pub address: SocketAddr,
    /// `weight`, 0..=65535 (default 1); 0 drains (no new connections).
    pub weight: u16,
}

impl Config {
    /// The index of the port named `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// The MAC address of port `index` as far as the configuration decides it: its `mac`; or
    /// `None` when it has an `interface` and no `mac` (the daemon uses the interface's MAC); or
    /// `02:00:00:00:00:NN` with NN = index + 1 (hex) when it has neither. `None` also for an
    /// index past the last port.
    pub fn port_mac(&self, index: usize) -> Option<Mac> {
        let port = self.ports.get(index)?;
        match (port.mac, &port.interface) {
            (Some(mac), _) => Some(mac),
            (None, Some(_)) => None,
            (None, None) => Some(Mac::for_port_index(u8::try_from(index).ok()?)),
        }
    }

    /// The port whose connected prefixes (its addresses' networks) hold `ip`, by longest
    /// prefix; the first such port on a tie.
    pub fn connected_port(&self, ip: &IpAddr) -> Option<usize> {
        validate::connected_port(&self.ports, ip)
    }
}

/// The largest configuration file read (100k services of a few hundred bytes each fit; a file
/// beyond it, or `/dev/zero`, is refused without reading it all).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads at most [`MAX_FILE_BYTES`] of `path` as UTF-8 text.
fn read_capped(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "too large"));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// Reads and checks the configuration file at `path`. A file that cannot be read (missing,
/// unreadable, not UTF-8, larger than [`MAX_FILE_BYTES`]) is an error naming it.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = read_capped(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such file (give the configuration with --config FILE; `sluice config example` prints one)"
                    .to_owned()
            }
            std::io::ErrorKind::PermissionDenied => "permission denied (cannot read the file)".to_owned(),
            std::io::ErrorKind::InvalidData => "not UTF-8 text: a configuration is a TOML file".to_owned(),
            std::io::ErrorKind::IsADirectory => "is a directory, not a configuration file".to_owned(),
            std::io::ErrorKind::FileTooLarge => format!(
                "larger than {} MiB: not a configuration file (a service takes a few hundred bytes)",
                MAX_FILE_BYTES >> 20
            ),
            _ => format!("cannot read: {e}"),
        };
        ConfigError::new(&origin, None, error::Problem::raw("", why))
    })?;
    parse(&text, &origin)
}

/// Parses and checks a configuration; `origin` names it in messages (a file name, or something
/// like `"<stdin>"`).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_with(text, origin, None)
}

/// [`load`] with `device.transport` replaced by `transport` (`sluice run --transport`): the
/// socket or PCI address still come from `[device]`, and are checked as usual.
pub fn load_with_transport(path: &Path, transport: Option<&str>) -> Result<Config, ConfigError> {
    let Some(t) = transport else { return load(path) };
    // `load` names every reason a file cannot be read; reading it again here only on success.
    let cfg = load(path)?;
    let text = read_capped(path).map_err(|_| {
        ConfigError::new(
            &cfg.origin,
            None,
            error::Problem { path: String::new(), message: "cannot read the file".into() },
        )
    })?;
    parse_with(&text, &cfg.origin, Some(t))
}

fn parse_with(text: &str, origin: &str, transport: Option<&str>) -> Result<Config, ConfigError> {
    let tree = toml::de::DeTable::parse(text).map_err(|e| error::syntax(origin, text, &e))?;
    error::tables_written_as_lists(origin, text, tree.get_ref())?;
    let mut raw: raw::RawConfig = serde::Deserialize::deserialize(toml::de::Deserializer::from(tree.clone()))
        .map_err(|e| error::schema(origin, text, tree.get_ref(), &e))?;
    if let Some(t) = transport {
        raw.device.transport = Some(t.to_string());
    }
    validate::validate(&raw, origin).map_err(|problem| {
        let line = error::position_of(tree.get_ref(), &problem.path).map(|pos| error::line_of(text, pos));
        ConfigError::new(origin, line, problem)
    })
}

/// Checks what the configuration names on this machine's file system: a `[control] socket`
/// path that exists must be a socket (a stale one is replaced at start; any other file is
/// refused, never deleted). `sluice run` and `sluice config check` both call it.
pub fn check_paths(cfg: &Config) -> Result<(), ConfigError> {
    use std::os::unix::fs::FileTypeExt;
    let socket = &cfg.control.socket;
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if !meta.file_type().is_socket() => {
            let message = format!(
                "control.socket = {:?}: exists and is not a socket; refusing to replace it (remove it or \
                 choose another path)",
                socket.display().to_string()
            );
            Err(ConfigError::new(&cfg.origin, None, error::Problem::raw("control.socket", message)))
        }
        _ => Ok(()),
    }?;
    match &cfg.routing {
        Some(r) => routing::check_socket(r).map_err(|p| ConfigError::new(&cfg.origin, None, p)),
        None => Ok(()),
    }
}

/// For transport `sim`, checks that every port's `interface` exists on this machine
/// (`/sys/class/net/NAME`); other transports attach interfaces elsewhere and pass. The
/// daemon calls it before it attaches the model's ports.
pub fn check_interfaces(cfg: &Config) -> Result<(), ConfigError> {
    check_interfaces_in(cfg, Path::new("/sys/class/net"))
}

/// [`check_interfaces`] against another directory of interfaces (for tests).
fn check_interfaces_in(cfg: &Config, sys_class_net: &Path) -> Result<(), ConfigError> {
    if cfg.device.transport != Transport::Sim {
        return Ok(());
    }
    for (i, port) in cfg.ports.iter().enumerate() {
        if let Some(name) = &port.interface
            && !sys_class_net.join(name).exists()
        {
            let path = format!("port[{i}].interface");
            let message = format!("{path} = {name:?}: no such network interface (see ip link)");
            return Err(ConfigError::new(&cfg.origin, None, error::Problem::raw(&path, message)));
        }
    }
    Ok(())
}

/// Serializes a duration as people write one: `"90s"`, or `"250ms"` when not whole seconds.
fn duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_nanos() == 0 {
        s.collect_str(&format_args!("{}s", d.as_secs()))
    } else {
        s.collect_str(&format_args!("{}ms", d.as_millis()))
    }
}
