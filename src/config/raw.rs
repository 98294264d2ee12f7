//! The file as written: what serde reads, before any check. Every key is optional here and
//! every value keeps its TOML type (strings, `i64`, `bool`), so that each check, default and
//! message lives in one place (`validate`); unknown keys are refused here, by serde
//! (`deny_unknown_fields`), and turned into one-line messages by `error`.
//!
//! The field names are the keys of the file: part of the product's interface.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub device: RawDevice,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub port: Vec<RawPort>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub neighbor: Vec<RawNeighbor>,
    #[serde(default)]
    pub service: Vec<RawService>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub offload: RawOffload,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub icmp: RawIcmp,
    #[serde(default)]
    pub host: RawHost,
    pub routing: Option<RawRouting>,
    #[serde(default)]
    pub probe: Vec<RawProbe>,
    pub sync: Option<RawSync>,
}

/// `[sync]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub port: Option<i64>,
    pub queue: Option<i64>,
    pub batch_ms: Option<i64>,
    pub node_id: Option<i64>,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default)]
    pub peer: Vec<RawSyncPeer>,
}

/// One `[[sync.peer]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyncPeer {
    pub address: Option<String>,
    #[serde(default)]
    pub lips: Vec<String>,
}

/// One `[[probe]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub name: Option<String>,
    pub target: Option<String>,
    pub check: Option<RawHealth>,
}

/// `[device]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub transport: Option<String>,
    pub socket: Option<String>,
    pub pci: Option<String>,
    pub workers: Option<i64>,
    pub interrupts: Option<bool>,
    pub ring_log2: Option<i64>,
    pub give_up_s: Option<i64>,
    pub datapath_thread: Option<bool>,
}

/// `[control]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    pub socket: Option<String>,
    pub metrics: Option<String>,
}

/// One `[[port]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPort {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub addresses: Option<Vec<String>>,
    pub mtu: Option<i64>,
    pub kind: Option<String>,
    pub queue: Option<i64>,
}

/// One `[[route]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: Option<String>,
    pub via: Option<String>,
    pub port: Option<String>,
}

/// One `[[neighbor]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub address: Option<String>,
    pub mac: Option<String>,
    pub port: Option<String>,
}

/// One `[[service]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub vip: Option<String>,
    pub protocol: Option<String>,
    pub scheduler: Option<String>,
    pub forward: Option<String>,
    pub nat_gateway: Option<String>,
    pub local_addresses: Option<Vec<String>>,
    pub conn_limit: Option<i64>,
    pub synproxy: Option<bool>,
    pub synproxy_wscale: Option<i64>,
    pub synproxy_timestamps: Option<bool>,
    pub proxy_protocol: Option<String>,
    pub health: Option<RawHealth>,
    #[serde(default)]
    pub backend: Vec<RawBackend>,
    pub priority: Option<i64>,
}

/// A service's `health = { … }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub kind: Option<String>,
    pub interval_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub path: Option<String>,
    pub expect: Option<i64>,
    pub host: Option<String>,
}

/// One `[[service.backend]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub address: Option<String>,
    pub weight: Option<i64>,
}

/// `[timeouts]`, in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub tcp_established: Option<i64>,
    pub tcp_syn_recv: Option<i64>,
    pub tcp_fin_wait: Option<i64>,
    pub tcp_close_wait: Option<i64>,
    pub tcp_time_wait: Option<i64>,
    pub tcp_last_ack: Option<i64>,
    pub tcp_close: Option<i64>,
    pub udp: Option<i64>,
    pub quarantine: Option<i64>,
}

/// `[offload]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffload {
    pub enabled: Option<bool>,
    pub tcp_after: Option<String>,
    pub udp_after: Option<String>,
    pub min_packets: Option<i64>,
    pub min_age_ms: Option<i64>,
    pub forward_fin: Option<bool>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub half_open_per_worker: Option<i64>,
    pub half_open_per_source: Option<i64>,
    pub punt_share: Option<std::collections::BTreeMap<String, i64>>,
    pub lport_min: Option<i64>,
    pub lport_max: Option<i64>,
}

/// `[icmp]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIcmp {
    pub echo: Option<bool>,
}

/// `[host]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub tap: Option<bool>,
    pub tap_prefix: Option<String>,
}

/// `[routing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub bird_socket: Option<String>,
    pub include_file: Option<String>,
    pub asn: Option<i64>,
    pub bfd: Option<bool>,
    pub bfd_interval_ms: Option<i64>,
    pub bfd_multiplier: Option<i64>,
    pub hold_time_s: Option<i64>,
    pub announce_lips: Option<bool>,
    #[serde(default)]
    pub peer: Vec<RawPeer>,
}

/// One `[[routing.peer]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    pub address: Option<String>,
    pub asn: Option<i64>,
    pub port: Option<i64>,
    pub bfd: Option<bool>,
}
