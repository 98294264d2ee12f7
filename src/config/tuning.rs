//! The tuning sections of the configuration: `[timeouts]`, `[offload]`, `[limits]`, `[icmp]` and
//! `[host]` (what each key means is in the key table of the module above). They are plain
//! values with their defaults; `raw` reads them, and the checks of `[timeouts]`, `[offload]`
//! and `[limits]` (ranges, and the rules between their keys) are here, called by `validate`.

use super::duration;
use super::error::Problem;
use super::raw::{RawLimits, RawOffload, RawTimeouts};
use super::validate::{choice, int, snake_case};
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
    /// `forward_fin` (default true): the NIC forwards a FIN of an offloaded flow itself and
    /// reports it with a flow event, from which the slow path moves the connection's state;
    /// false punts every such FIN to the slow path, which forwards it.
    pub forward_fin: bool,
}

impl Default for Offload {
    fn default() -> Self {
        Self {
            enabled: true,
            tcp_after: TcpOffloadAfter::Handshake,
            udp_after: UdpOffloadAfter::Reply,
            min_packets: 0,
            min_age: Duration::ZERO,
            forward_fin: true,
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

fn seconds(path: &str, v: Option<i64>, default: Duration) -> Result<Duration, Problem> {
    Ok(Duration::from_secs(int(path, v, default.as_secs(), 1..=604_800, " seconds")?))
}

pub(super) fn timeouts(raw: &RawTimeouts) -> Result<Timeouts, Problem> {
    let d = Timeouts::default();
    let t = Timeouts {
        tcp_established: seconds("timeouts.tcp_established", raw.tcp_established, d.tcp_established)?,
        tcp_syn_recv: seconds("timeouts.tcp_syn_recv", raw.tcp_syn_recv, d.tcp_syn_recv)?,
        tcp_fin_wait: seconds("timeouts.tcp_fin_wait", raw.tcp_fin_wait, d.tcp_fin_wait)?,
        tcp_close_wait: seconds("timeouts.tcp_close_wait", raw.tcp_close_wait, d.tcp_close_wait)?,
        tcp_time_wait: seconds("timeouts.tcp_time_wait", raw.tcp_time_wait, d.tcp_time_wait)?,
        tcp_last_ack: seconds("timeouts.tcp_last_ack", raw.tcp_last_ack, d.tcp_last_ack)?,
        tcp_close: seconds("timeouts.tcp_close", raw.tcp_close, d.tcp_close)?,
        udp: seconds("timeouts.udp", raw.udp, d.udp)?,
        quarantine: seconds("timeouts.quarantine", raw.quarantine, d.quarantine)?,
    };
    let floor = (2 * t.tcp_time_wait.as_secs()).max(60);
    if t.quarantine.as_secs() < floor {
        let why = format!(
            "at least {floor} seconds (the larger of 60 and 2 × timeouts.tcp_time_wait = {}): a \
             (LIP, lport, real server) tuple reused sooner can meet the real server's TIME_WAIT",
            2 * t.tcp_time_wait.as_secs()
        );
        return Err(Problem::value("timeouts.quarantine", &t.quarantine.as_secs(), &why));
    }
    Ok(t)
}

pub(super) fn offload(raw: &RawOffload) -> Result<Offload, Problem> {
    let tcp_after = match choice(
        "offload.tcp_after",
        raw.tcp_after.as_deref(),
        "handshake",
        &["handshake", "first_packet"],
    )? {
        "handshake" => TcpOffloadAfter::Handshake,
        _ => TcpOffloadAfter::FirstPacket,
    };
    let udp_after =
        match choice("offload.udp_after", raw.udp_after.as_deref(), "reply", &["reply", "first_packet"])? {
            "reply" => UdpOffloadAfter::Reply,
            _ => UdpOffloadAfter::FirstPacket,
        };
    Ok(Offload {
        enabled: raw.enabled.unwrap_or(true),
        tcp_after,
        udp_after,
        min_packets: int("offload.min_packets", raw.min_packets, 0, 0..=i64::from(u32::MAX), "")?,
        min_age: Duration::from_millis(int("offload.min_age_ms", raw.min_age_ms, 0, 0..=3_600_000, " ms")?),
        forward_fin: raw.forward_fin.unwrap_or(true),
    })
}

pub(super) fn limits(raw: &RawLimits, workers: usize) -> Result<Limits, Problem> {
    let d = Limits::default();
    let half_open_per_worker = int(
        "limits.half_open_per_worker",
        raw.half_open_per_worker,
        d.half_open_per_worker,
        1..=i64::from(u32::MAX),
        "",
    )?;
    let half_open_per_source = int(
        "limits.half_open_per_source",
        raw.half_open_per_source,
        d.half_open_per_source,
        0..=i64::from(u32::MAX),
        " (0: no per-source limit)",
    )?;
    let lport_min: u16 = int("limits.lport_min", raw.lport_min, d.lport_min, 1..=65535, "")?;
    let lport_max: u16 = int("limits.lport_max", raw.lport_max, d.lport_max, 1..=65535, "")?;
    if lport_min >= lport_max {
        let why = format!("a port above limits.lport_min ({lport_min})");
        return Err(Problem::value("limits.lport_max", &lport_max, &why));
    }
    if usize::from(lport_max - lport_min) + 1 < workers {
        let why = format!("a range of at least device.workers ({workers}) ports: each worker owns a slice");
        return Err(Problem::value("limits.lport_max", &lport_max, &why));
    }
    let mut punt_share = std::collections::BTreeMap::new();
    let names: Vec<String> =
        rtl_spec::codes::PuntReason::SPEC.values.iter().map(|v| snake_case(v.name)).collect();
    for (reason, &percent) in raw.punt_share.iter().flatten() {
        let path = format!("limits.punt_share.{reason}");
        if !names.contains(reason) {
            let why = format!("not a punt reason (expected one of: {})", names.join(", "));
            return Err(Problem::key(&path, &why));
        }
        let p: u8 = int(&path, Some(percent), 100, 1..=100, " percent of an exception ring")?;
        punt_share.insert(reason.clone(), p);
    }
    Ok(Limits { half_open_per_worker, half_open_per_source, punt_share, lport_min, lport_max })
}
