//! The tuning sections of the configuration: `[timeouts]`, `[offload]`, `[limits]`, `[icmp]` and
//! `[host]` (what each key means is in the key table of the module above). They are plain
//! values with their defaults; `raw` reads them and `validate` checks them.

use super::duration;
use serde::Serialize;
use std::time::Duration;

/// `[timeouts]`: LVS-style per-state idle timeouts, written in seconds (defaults DPVS's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// `tcp_established` (90 s).
    #[serde(serialize_with = "duration")]
    pub tcp_established: Duration,
    /// `tcp_syn_recv` (30 s).
    #[serde(serialize_with = "duration")]
    pub tcp_syn_recv: Duration,
    /// `tcp_fin_wait` (7 s).
    #[serde(serialize_with = "duration")]
    pub tcp_fin_wait: Duration,
    /// `tcp_close_wait` (7 s).
    #[serde(serialize_with = "duration")]
    pub tcp_close_wait: Duration,
    /// `tcp_time_wait` (7 s).
    #[serde(serialize_with = "duration")]
    pub tcp_time_wait: Duration,
    /// `tcp_last_ack` (7 s).
    #[serde(serialize_with = "duration")]
    pub tcp_last_ack: Duration,
    /// `tcp_close` (3 s).
    #[serde(serialize_with = "duration")]
    pub tcp_close: Duration,
    /// `udp` (300 s).
    #[serde(serialize_with = "duration")]
    pub udp: Duration,
    /// `quarantine` (120 s): a (LIP, lport, RS) tuple is not reused for this long after its
    /// connection closed; at least 60 s and at least 2 × `tcp_time_wait`.
    #[serde(serialize_with = "duration")]
    pub quarantine: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            tcp_established: s(90),
            tcp_syn_recv: s(30),
            tcp_fin_wait: s(7),
            tcp_close_wait: s(7),
            tcp_time_wait: s(7),
            tcp_last_ack: s(7),
            tcp_close: s(3),
            udp: s(300),
            quarantine: s(120),
        }
    }
}

/// `offload.tcp_after`: when a TCP flow qualifies for the NIC's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpOffloadAfter {
    /// `"handshake"` (default): once the 3-way handshake completes (the kernel flowtable's rule).
    Handshake,
    /// `"first_packet"`: as soon as the connection is created.
    FirstPacket,
}

/// `offload.udp_after`: when a UDP flow qualifies for the NIC's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UdpOffloadAfter {
    /// `"reply"` (default): once the backend has answered.
    Reply,
    /// `"first_packet"`: as soon as the flow is created.
    FirstPacket,
}

/// `[offload]`: which flows go into the NIC's table, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offload {
    /// `enabled` (default true); false keeps every flow on the host's software path.
    pub enabled: bool,
    /// `tcp_after` (default handshake).
    pub tcp_after: TcpOffloadAfter,
    /// `udp_after` (default reply).
    pub udp_after: UdpOffloadAfter,
    /// `min_packets`: packets a flow must have seen before it qualifies (default 0).
    pub min_packets: u32,
    /// `min_age_ms`: how old a flow must be before it qualifies (default 0).
    #[serde(serialize_with = "duration")]
    pub min_age: Duration,
}

impl Default for Offload {
    fn default() -> Self {
        Self {
            enabled: true,
            tcp_after: TcpOffloadAfter::Handshake,
            udp_after: UdpOffloadAfter::Reply,
            min_packets: 0,
            min_age: Duration::ZERO,
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// `half_open_per_worker`: TCP connections in SYN_RECV one worker holds at most (default
    /// 65536, at least 1).
    pub half_open_per_worker: u32,
    /// `half_open_per_source`: SYN_RECV connections one client address holds per worker
    /// (default 0: no limit).
    pub half_open_per_source: u32,
    /// `punt_share`: per punt reason (its snake-case name, as `sluice stats` prints it), the
    /// percentage of each exception ring its punts may hold at once (default: none bounded).
    pub punt_share: std::collections::BTreeMap<String, u8>,
    /// `lport_min` (default 1024): FullNAT's local ports are `lport_min..=lport_max`.
    pub lport_min: u16,
    /// `lport_max` (default 65535), above `lport_min`; the range holds at least `workers` ports.
    pub lport_max: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            half_open_per_worker: 65536,
            half_open_per_source: 0,
            punt_share: std::collections::BTreeMap::new(),
            lport_min: 1024,
            lport_max: 65535,
        }
    }
}

/// `[icmp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Icmp {
    /// `echo`: answer pings to VIPs (default true).
    pub echo: bool,
}

impl Default for Icmp {
    fn default() -> Self {
        Self { echo: true }
    }
}

/// `[host]`: the host's own traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// `tap` (default true): packets for a port's own addresses go to a TAP interface per port
    /// and what the kernel sends there leaves through the port; the daemon decides what
    /// happens when it cannot create one.
    pub tap: bool,
    /// `tap_prefix` (default `"sl-"`): a port's TAP is named prefix + port name (15 characters
    /// at most, Linux's limit, checked against every port's name).
    pub tap_prefix: String,
}

impl Default for Host {
    fn default() -> Self {
        Self { tap: true, tap_prefix: "sl-".into() }
    }
}
