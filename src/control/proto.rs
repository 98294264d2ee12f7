//! The control protocol between the CLI and a running daemon: one JSON object per line over
//! the daemon's Unix socket (`[control] socket`, mode 0600). A client writes a [`Request`] and
//! reads one [`Response`]; the daemon closes nothing between requests, so `sluice top` keeps
//! one connection and asks again every second.
//!
//! Everything a `--json` flag prints is the `data` of a response, unchanged, so scripts see
//! exactly what the daemon said.

use serde::{Deserialize, Serialize};

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The services with their real servers (`sluice services`).
    Services,
    /// The connections (`sluice flows`).
    Flows(FlowFilter),
    /// Every counter (`sluice stats`, `sluice top`).
    Stats,
    /// The device (`sluice device info` against a daemon).
    DeviceInfo,
    /// The routes announced through BIRD and its sessions (`sluice cluster`).
    Cluster,
    /// Adds a service.
    ServiceAdd(ServiceSpec),
    /// Removes a service.
    ServiceDel {
        /// VIP and port.
        vip: String,
        /// "tcp" or "udp".
        protocol: String,
        /// Cut its connections (their next packets get a reset) instead of letting them end.
        #[serde(default)]
        reset: bool,
    },
    /// Adds a real server.
    BackendAdd {
        /// The service's VIP and port.
        vip: String,
        /// The service's protocol.
        protocol: String,
        /// The server's address and port.
        address: String,
        /// Weight (default 1).
        #[serde(default = "one")]
        weight: u32,
    },
    /// Removes a real server.
    BackendDel {
        /// The service's VIP and port.
        vip: String,
        /// The service's protocol.
        protocol: String,
        /// The server's address and port.
        address: String,
        /// Cut its connections instead of letting them end.
        #[serde(default)]
        reset: bool,
    },
    /// Changes a real server's weight (0 drains it).
    BackendSet {
        /// The service's VIP and port.
        vip: String,
        /// The service's protocol.
        protocol: String,
        /// The server's address and port.
        address: String,
        /// The new weight.
        weight: u32,
    },
    /// Rereads the configuration file and applies it (as SIGHUP does).
    Reload,
}

fn one() -> u32 {
    1
}

/// What `sluice flows` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFilter {
    /// Only connections to this VIP (an address, or address:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    /// Only connections to this real server (an address, or address:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Only connections in this state (ESTABLISHED, SYN_RECV, ..., UDP; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// At most this many (the total is reported all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A service to add.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// VIP and port (`"10.10.1.100:80"`, `"[fd00::1]:80"`).
    pub vip: String,
    /// "tcp" or "udp".
    pub protocol: String,
    /// rr | wrr | lc | wlc | sh | mh.
    pub scheduler: String,
    /// fullnat | nat | dr | tun (absent: fullnat).
    #[serde(default = "fullnat")]
    pub forward: String,
    /// With `forward = "nat"`: the port address the servers route replies through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway: Option<String>,
    /// Local addresses (LIPs).
    pub local_addresses: Vec<String>,
    /// Connection limit (0: none).
    #[serde(default)]
    pub conn_limit: u32,
    /// SYN proxy (TCP only).
    #[serde(default)]
    pub synproxy: bool,
    /// PROXY protocol toward the servers ("v2"); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, in one line, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The request was refused as bad input (an address, a weight, a configuration file that
    /// does not check), not because something failed: the CLI exits 2 for it, 1 otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bad_input: bool,
    /// The result: [`ServicesReply`], [`FlowsReply`], [`StatsReply`], a device info object, or
    /// null for changes.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    /// A success carrying `data`.
    pub fn ok(data: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            bad_input: false,
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }
    /// A failure.
    pub fn err(e: impl std::fmt::Display) -> Response {
        Response { ok: false, error: Some(e.to_string()), bad_input: false, data: serde_json::Value::Null }
    }
    /// A refusal of bad input (see [`Response::bad_input`]).
    pub fn invalid(e: impl std::fmt::Display) -> Response {
        Response { bad_input: true, ..Response::err(e) }
    }
}

/// `sluice services`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesReply {
    /// The services, in configuration order.
    pub services: Vec<ServiceInfo>,
    /// `[[probe]]`: the end-to-end checks of VIPs from this node, in configuration order.
    #[serde(default)]
    pub probes: Vec<ProbeInfo>,
}

/// One `[[probe]]` and how it is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// Its name (the metrics' `probe` label).
    pub name: String,
    /// The address and port it checks.
    pub target: String,
    /// "tcp" or "http".
    pub kind: String,
    /// Up by its rise and fall (a probe starts up).
    pub up: bool,
    /// Checks done.
    pub checks: u64,
    /// Of which failed.
    pub failures: u64,
    /// The last check's time to answer, microseconds (0 when it failed).
    pub last_us: u64,
    /// The last check's outcome ("connected", "HTTP 200", "connection refused", ...).
    pub last: String,
}

/// One service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// VIP and port.
    pub vip: String,
    /// "tcp" or "udp".
    pub protocol: String,
    /// Scheduler name.
    pub scheduler: String,
    /// How it forwards: fullnat | nat | dr | tun.
    #[serde(default = "fullnat")]
    pub forward: String,
    /// LIPs.
    pub local_addresses: Vec<String>,
    /// Connection limit (0: none).
    pub conn_limit: u32,
    /// SYNs answered with SYN cookies (`synproxy`).
    #[serde(default)]
    pub synproxy: bool,
    /// What the servers are told about the client (`proxy_protocol`: "v2"); absent: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// Connections now.
    pub connections: u32,
    /// Connections since start.
    pub total_connections: u64,
    /// New connections refused for want of a server.
    pub no_backend: u64,
    /// New connections refused by the limit.
    pub over_limit: u64,
    /// New connections refused for want of a local port.
    pub no_port: u64,
    /// Its real servers.
    pub backends: Vec<BackendInfo>,
    /// Rates over the daemon's last reporting interval (about a second), host path and NIC
    /// together: the sum of its servers' (ipvsadm's --rate).
    #[serde(default)]
    pub rate: TrafficRate,
}

/// ipvsadm's `--rate` columns, per second over the daemon's last reporting interval, host path
/// and NIC together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficRate {
    /// Connections scheduled per second (CPS).
    pub cps: u64,
    /// Packets in (client to server) per second (InPPS).
    pub in_pps: u64,
    /// Packets out (server to client) per second (OutPPS).
    pub out_pps: u64,
    /// Bytes in per second (InBPS).
    pub in_bps: u64,
    /// Bytes out per second (OutBPS).
    pub out_bps: u64,
}

/// One real server's rates, for `sluice top`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRate {
    /// The service's VIP and port.
    pub vip: String,
    /// "tcp" or "udp".
    pub protocol: String,
    /// The server's address and port.
    pub backend: String,
    /// Its rates.
    pub rate: TrafficRate,
}

/// One real server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// Address and port.
    pub address: String,
    /// Weight.
    pub weight: u32,
    /// "up", "down", or "unchecked" (no health check configured).
    pub health: String,
    /// Connections in ESTABLISHED (ipvsadm's ActiveConn).
    pub active: u32,
    /// Other connections (InActConn).
    pub inactive: u32,
    /// Connections scheduled to it since it was added.
    pub connections: u64,
    /// Packets to it, host path and NIC together (the NIC's part is `nic_packets_in`).
    pub packets_in: u64,
    /// Packets from it, host path and NIC together.
    pub packets_out: u64,
    /// Bytes to it, host path and NIC together.
    pub bytes_in: u64,
    /// Bytes from it, host path and NIC together.
    pub bytes_out: u64,
    /// Of `packets_in`, those the NIC forwarded (offloaded flows, read from the server's counter
    /// set once per reporting interval).
    #[serde(default)]
    pub nic_packets_in: u64,
    /// Of `packets_out`, those the NIC forwarded.
    #[serde(default)]
    pub nic_packets_out: u64,
    /// Of `bytes_in`, those the NIC forwarded.
    #[serde(default)]
    pub nic_bytes_in: u64,
    /// Of `bytes_out`, those the NIC forwarded.
    #[serde(default)]
    pub nic_bytes_out: u64,
    /// Its rates over the last reporting interval.
    #[serde(default)]
    pub rate: TrafficRate,
}

/// `sluice flows`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsReply {
    /// Connections that matched the filter (before the limit).
    pub total: usize,
    /// The connections listed (at most the limit), ordered by worker then client.
    pub flows: Vec<FlowInfo>,
}

/// One connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// The worker that owns it.
    pub worker: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// ESTABLISHED, SYN_RECV, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, UDP.
    pub state: String,
    /// Milliseconds until it times out (from its last packet).
    pub expire_ms: u64,
    /// Client address and port.
    pub client: String,
    /// VIP and port.
    pub vip: String,
    /// Local address and port toward the server; the client's endpoint when the flow uses no
    /// local address (`forward` other than fullnat).
    pub lip: String,
    /// How it is forwarded: fullnat | nat | dr | tun.
    #[serde(default = "fullnat")]
    pub forward: String,
    /// Real server.
    pub backend: String,
    /// "nic" (offloaded) or "host" (the slow path forwards it).
    pub location: String,
    /// The NIC record, when offloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u32>,
    /// Packets client → server.
    pub packets_in: u64,
    /// Packets server → client.
    pub packets_out: u64,
    /// Bytes client → server.
    pub bytes_in: u64,
    /// Bytes server → client.
    pub bytes_out: u64,
    /// Milliseconds since its last packet.
    pub idle_ms: u64,
}

/// `sluice stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// What the daemon drives ("in-process model", "vfio-user /run/...", "vfio 0000:03:00.0").
    pub device: String,
    /// Workers.
    pub workers: u16,
    /// Whether the NIC is there ("up") or lost and being brought back ("lost").
    #[serde(default)]
    pub device_state: DeviceState,
    /// The NIC's datapath.
    pub nic: NicStats,
    /// The NIC's ports.
    pub ports: Vec<PortStats>,
    /// Punts by reason (NIC), name → packets.
    pub punts: std::collections::BTreeMap<String, u64>,
    /// Drops by reason (NIC), name → packets.
    pub nic_drops: std::collections::BTreeMap<String, u64>,
    /// Drops by reason (slow path), name → packets.
    pub slowpath_drops: std::collections::BTreeMap<String, u64>,
    /// The flow table.
    pub table: TableStats,
    /// The slow path.
    pub slowpath: SlowpathStats,
    /// Rates over the last interval the daemon measured (about a second).
    pub rates: Rates,
    /// Connections per VIP now, VIP/protocol → count.
    pub vips: std::collections::BTreeMap<String, u64>,
    /// Each real server's rates over the last reporting interval, host path and NIC together.
    #[serde(default)]
    pub servers: Vec<ServerRate>,
}

/// The NIC's health as the daemon sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// "up", or "lost": the NIC stopped answering, was reset behind the driver's back, or the
    /// model process went away, and the daemon is trying to bring it back.
    pub state: String,
    /// Seconds it has been lost (0 when up).
    pub lost_for_s: u64,
    /// Attempts to bring it back so far (all failed).
    pub attempts: u64,
    /// Why the last attempt failed.
    pub last_error: String,
    /// Seconds after which the daemon gives up and exits with status 1 (0: never).
    pub give_up_s: u64,
}

/// The NIC's datapath counters: the contract's `COUNTERS` block, every scalar counter by its
/// name (the by-reason ones are [`StatsReply::punts`] and [`StatsReply::nic_drops`]).
pub type NicStats = rtl_spec::counters::DatapathCounters;

/// One port: its name, its link and the contract's port counters (flattened: `rx_packets`,
/// `rx_bytes`, … beside `name` and `link`; read as `p.rx_packets`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// Name.
    pub name: String,
    /// Link up.
    pub link: bool,
    /// The port's counters.
    #[serde(flatten)]
    pub counters: rtl_spec::counters::PortCounters,
}

impl std::ops::Deref for PortStats {
    type Target = rtl_spec::counters::PortCounters;
    fn deref(&self) -> &Self::Target {
        &self.counters
    }
}

/// The flow table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    /// Flows in the NIC.
    pub occupancy: u32,
    /// Flows it holds at most.
    pub capacity: u32,
    /// Installs since start.
    pub installs: u64,
    /// Installs refused because the table was full.
    pub insert_failures: u64,
    /// Removes since start.
    pub removes: u64,
    /// Cuckoo moves written.
    pub moves: u64,
    /// Commands the NIC refused.
    pub command_errors: u64,
    /// Times the NIC was lost and brought back (only successful recoveries).
    pub recoveries: u64,
    /// Attempts to bring a lost NIC back that failed.
    #[serde(default)]
    pub recovery_failures: u64,
}

/// The slow path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowpathStats {
    /// Packets it handled (punted by the NIC).
    pub packets: u64,
    /// Packets it rewrote and sent itself.
    pub forwarded: u64,
    /// Connections created.
    pub created: u64,
    /// Connections ended.
    pub expired: u64,
    /// Connections offloaded to the NIC.
    pub offloaded: u64,
    /// Connections now.
    pub connections: u64,
    /// Of which offloaded now.
    pub offloaded_now: u64,
    /// Half-open connections now.
    pub half_open: u64,
    /// SYN-ACKs with a SYN cookie sent (SYN-proxied services).
    #[serde(default)]
    pub syn_cookies: u64,
    /// Cookies returned valid: proxied connections opened.
    #[serde(default)]
    pub syn_cookies_accepted: u64,
    /// Proxied connections whose server's options (window scale, timestamps) differed from
    /// what the client was promised.
    #[serde(default)]
    pub synproxy_mismatch: u64,
    /// PROXY protocol headers sent to servers (one per connection of a `proxy_protocol`
    /// service).
    #[serde(default)]
    pub proxy_protocol_headers: u64,
    /// PROXY protocol headers sent again (not acknowledged in time).
    #[serde(default)]
    pub proxy_protocol_retransmits: u64,
    /// Client segments that carried a TOA option to the server (`proxy_protocol = "toa"`).
    #[serde(default)]
    pub toa_inserted: u64,
    /// Client segments that went without the TOA option for want of room.
    #[serde(default)]
    pub toa_no_room: u64,
}

/// Rates per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// New connections.
    pub connections: f64,
    /// Packets the NIC forwarded on hits.
    pub nic_packets: f64,
    /// Packets the slow path handled.
    pub slowpath_packets: f64,
    /// Flow installs.
    pub installs: f64,
}

/// The forwarding mode of a service that does not say (older clients and daemons).
fn fullnat() -> String {
    "fullnat".into()
}
