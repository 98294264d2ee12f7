//! What the daemon says about itself: the engine's state turned into the control protocol's
//! replies (`sluice services`, `flows`, `stats`) and into Prometheus text (`/metrics`).

use crate::control::proto::{
    BackendInfo, DeviceState, FlowFilter, FlowInfo, FlowsReply, NicStats, PortStats, Rates, ServiceInfo,
    ServicesReply, SlowpathStats, StatsReply, TableStats, TrafficRate,
};
use slowpath::engine::{Engine, EngineStats};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// `CamelCase` code names as metrics and tables print them: `snake_case`.
pub fn snake(name: &str) -> String {
    crate::config::snake_case(name)
}

/// An endpoint as people write it (`[fd00::1]:80` for IPv6).
pub fn endpoint(a: SocketAddr) -> String {
    a.to_string()
}

/// `sluice services`.
pub fn services(engine: &Engine, probes: Vec<crate::control::proto::ProbeInfo>) -> ServicesReply {
    let table = engine.services().clone();
    let services = table
        .services
        .iter()
        .map(|s| ServiceInfo {
            vip: endpoint(s.config.key.vip),
            protocol: s.config.key.proto.as_str().into(),
            scheduler: s.config.scheduler.as_str().into(),
            forward: s.config.forward.as_str().into(),
            local_addresses: s.config.local_addresses.iter().map(ToString::to_string).collect(),
            conn_limit: s.config.conn_limit,
            synproxy: s.config.synproxy,
            proxy_protocol: s.config.proxy_protocol.map(|p| p.as_str().to_owned()),
            connections: s.stats.current.load(Ordering::Relaxed),
            total_connections: s.stats.connections.load(Ordering::Relaxed),
            no_backend: s.stats.no_backend.load(Ordering::Relaxed),
            over_limit: s.stats.over_limit.load(Ordering::Relaxed),
            no_port: s.stats.no_port.load(Ordering::Relaxed),
            rate: TrafficRate::default(),
            backends: s
                .backends
                .iter()
                .map(|b| BackendInfo {
                    address: endpoint(b.addr),
                    weight: b.weight,
                    health: if s.config.health.is_none() {
                        "unchecked".into()
                    } else if b.up {
                        "up".into()
                    } else {
                        "down".into()
                    },
                    active: b.stats.active.load(Ordering::Relaxed),
                    inactive: b.stats.inactive.load(Ordering::Relaxed),
                    connections: b.stats.connections.load(Ordering::Relaxed),
                    packets_in: b.stats.packets_in.load(Ordering::Relaxed)
                        + b.stats.nic_packets_in.load(Ordering::Relaxed),
                    packets_out: b.stats.packets_out.load(Ordering::Relaxed)
                        + b.stats.nic_packets_out.load(Ordering::Relaxed),
                    bytes_in: b.stats.bytes_in.load(Ordering::Relaxed)
                        + b.stats.nic_bytes_in.load(Ordering::Relaxed),
                    bytes_out: b.stats.bytes_out.load(Ordering::Relaxed)
                        + b.stats.nic_bytes_out.load(Ordering::Relaxed),
                    nic_packets_in: b.stats.nic_packets_in.load(Ordering::Relaxed),
                    nic_packets_out: b.stats.nic_packets_out.load(Ordering::Relaxed),
                    nic_bytes_in: b.stats.nic_bytes_in.load(Ordering::Relaxed),
                    nic_bytes_out: b.stats.nic_bytes_out.load(Ordering::Relaxed),
                    rate: TrafficRate::default(),
                })
                .collect(),
        })
        .collect();
    ServicesReply { services, probes }
}

/// Whether `a` matches a filter written as an address or an address:port.
fn matches_endpoint(filter: &str, a: SocketAddr) -> bool {
    if let Ok(e) = filter.parse::<SocketAddr>() {
        return e == a;
    }
    filter.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip == a.ip())
}

/// `sluice flows`.
pub fn flows(engine: &mut Engine, f: &FlowFilter) -> FlowsReply {
    let mut picked: Vec<slowpath::engine::ConnInfo> = engine
        .conns(false)
        .into_iter()
        .filter(|c| f.vip.as_deref().is_none_or(|v| matches_endpoint(v, c.endpoints.vip)))
        .filter(|c| f.backend.as_deref().is_none_or(|b| matches_endpoint(b, c.endpoints.rs)))
        .filter(|c| f.state.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(c.state)))
        .collect();
    picked.sort_by(|a, b| {
        (a.worker, a.endpoints.client, a.endpoints.vip).cmp(&(b.worker, b.endpoints.client, b.endpoints.vip))
    });
    let total = picked.len();
    if let Some(n) = f.limit {
        picked.truncate(n);
    }
    // Live NIC counters for the listed ones only.
    engine.refresh(&mut picked);
    let flows = picked
        .into_iter()
        .map(|c| FlowInfo {
            worker: c.worker,
            protocol: c.proto.into(),
            state: c.state.into(),
            expire_ms: c.expire_ms,
            client: endpoint(c.endpoints.client),
            vip: endpoint(c.endpoints.vip),
            lip: endpoint(c.endpoints.lip),
            forward: c.forward.as_str().into(),
            backend: endpoint(c.endpoints.rs),
            location: c.location.as_str().into(),
            record: c.record,
            packets_in: c.packets[0],
            packets_out: c.packets[1],
            bytes_in: c.bytes[0],
            bytes_out: c.bytes[1],
            idle_ms: c.idle_ms,
        })
        .collect();
    FlowsReply { total, flows }
}

/// `sluice stats` from one snapshot of the engine's counters.
pub fn stats(engine: &Engine, st: &EngineStats, describe: &str, uptime_s: u64, rates: Rates) -> StatsReply {
    let device_state = match engine.flows_ref().fault() {
        None => DeviceState { state: "up".into(), ..DeviceState::default() },
        Some(f) => DeviceState {
            state: "lost".into(),
            lost_for_s: f.duration().as_secs(),
            attempts: f.attempts,
            last_error: f.last_error.clone(),
            give_up_s: 0,
        },
    };
    let punt_names = rtl_spec::codes::PuntReason::SPEC.values;
    let drop_names = rtl_spec::codes::DropReason::SPEC.values;
    let by_code = |counts: &[u64; 16], names: &[rtl_spec::CodeValue]| -> BTreeMap<String, u64> {
        names.iter().filter_map(|v| counts.get(v.value as usize).map(|c| (snake(v.name), *c))).collect()
    };
    let mut slowpath_drops: BTreeMap<String, u64> = BTreeMap::new();
    let mut sp = SlowpathStats::default();
    for w in &st.workers {
        for (name, n) in &w.drops {
            *slowpath_drops.entry((*name).to_string()).or_default() += n;
        }
        sp.packets += w.packets;
        sp.forwarded += w.forwarded;
        sp.created += w.created;
        sp.expired += w.expired;
        sp.offloaded += w.offloaded;
        sp.connections += w.current;
        sp.half_open += w.half_open;
        sp.syn_cookies += w.syn_cookies;
        sp.syn_cookies_accepted += w.syn_cookies_accepted;
        sp.synproxy_mismatch += w.synproxy_mismatch;
        sp.proxy_protocol_headers += w.pp_headers;
        sp.proxy_protocol_retransmits += w.pp_retransmits;
        sp.toa_inserted += w.toa_inserted;
        sp.toa_no_room += w.toa_no_room;
    }
    sp.offloaded_now = u64::from(st.occupancy);
    let mut vips: BTreeMap<String, u64> = BTreeMap::new();
    for s in &engine.services().services {
        vips.insert(s.config.key.to_string(), u64::from(s.stats.current.load(Ordering::Relaxed)));
    }
    StatsReply {
        uptime_s,
        device: describe.into(),
        workers: engine.config().workers,
        device_state,
        nic: NicStats { punt_reason: Default::default(), drop_reason: Default::default(), ..st.nic.datapath },
        ports: st
            .nic
            .ports
            .iter()
            .zip(engine.network().ports())
            .map(|(c, p)| PortStats { name: p.name.clone(), link: c.link, counters: c.counters })
            .collect(),
        punts: by_code(&st.nic.punt_reason, punt_names),
        nic_drops: by_code(&st.nic.drop_reason, drop_names),
        slowpath_drops,
        table: TableStats {
            occupancy: st.occupancy,
            capacity: st.capacity,
            installs: st.table.installs,
            insert_failures: st.table.full,
            removes: st.table.removes,
            moves: st.table.moves,
            command_errors: st.table.command_errors,
            recoveries: st.table.recoveries,
            recovery_failures: st.table.recovery_failures,
        },
        slowpath: sp,
        rates,
        vips,
        servers: Vec::new(),
    }
}

/// One metric family's header.
pub(super) fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP sluice_{name} {help}\n# TYPE sluice_{name} {kind}");
}

/// A per-server value.
type BackendValue = fn(&BackendInfo) -> u64;

/// Prometheus text exposition (format 0.0.4) of the services and a stats reply.
pub fn prometheus(svc: &ServicesReply, st: &StatsReply) -> String {
    let mut o = String::new();
    service_metrics(&mut o, svc);
    backend_metrics(&mut o, svc);
    probe_metrics(&mut o, svc);
    super::traffic::metrics(&mut o, svc);
    for (name, help, counts) in [
        ("nic_punts_total", "Packets the NIC punted to the host, per reason.", &st.punts),
        ("nic_drops_total", "Packets the NIC dropped, per reason.", &st.nic_drops),
        ("slowpath_drops_total", "Packets the slow path dropped, per reason.", &st.slowpath_drops),
    ] {
        family(&mut o, name, "counter", help);
        for (r, n) in counts {
            let _ = writeln!(o, "sluice_{name}{{reason=\"{r}\"}} {n}");
        }
    }
    scalar_metrics(&mut o, st);
    client_address_metrics(&mut o, st);
    counter_metrics(&mut o, st);
    o
}

/// The NIC's counters, generated from the contract's tables: `nic_<counter>_total` for each
/// scalar of the `COUNTERS` block but punts and drops (exported by reason above), and
/// `port_<counter>_total{port=…}` for each port counter, described as the register is.
fn counter_metrics(o: &mut String, st: &StatsReply) {
    for c in NicStats::TABLE.iter().filter(|c| !matches!(c.name, "punts" | "drops")) {
        let name = format!("nic_{}_total", c.name);
        family(o, &name, "counter", c.doc.trim());
        let _ = writeln!(o, "sluice_{name} {}", st.nic.get(c.offset).unwrap_or(0));
    }
    for c in rtl_spec::counters::PortCounters::TABLE {
        let name = format!("port_{}_total", c.name);
        family(o, &name, "counter", c.doc.trim());
        for p in &st.ports {
            let _ = writeln!(o, "sluice_{name}{{port=\"{}\"}} {}", p.name, p.get(c.offset).unwrap_or(0));
        }
    }
}

/// `[[probe]]`: up, checks by result, and the last answer's latency, per probe.
fn probe_metrics(o: &mut String, svc: &ServicesReply) {
    if svc.probes.is_empty() {
        return;
    }
    let label =
        |p: &crate::control::proto::ProbeInfo| format!("probe=\"{}\",target=\"{}\"", p.name, p.target);
    family(o, "probe_up", "gauge", "1 while the probe passes (by its rise and fall).");
    for p in &svc.probes {
        let _ = writeln!(o, "sluice_probe_up{{{}}} {}", label(p), u8::from(p.up));
    }
    family(o, "probe_checks_total", "counter", "Probe checks, by result.");
    for p in &svc.probes {
        let _ =
            writeln!(o, "sluice_probe_checks_total{{{},result=\"ok\"}} {}", label(p), p.checks - p.failures);
        let _ = writeln!(o, "sluice_probe_checks_total{{{},result=\"failed\"}} {}", label(p), p.failures);
    }
    family(o, "probe_latency_seconds", "gauge", "The last passing check's time to answer.");
    for p in &svc.probes {
        let (secs, us) = (p.last_us / 1_000_000, p.last_us % 1_000_000);
        let _ = writeln!(o, "sluice_probe_latency_seconds{{{}}} {secs}.{us:06}", label(p));
    }
}

fn service_metrics(o: &mut String, svc: &ServicesReply) {
    family(
        o,
        "service_info",
        "gauge",
        "Always 1, per virtual service: its forwarding mode (forward = fullnat, nat, dr or tun).",
    );
    for s in &svc.services {
        let _ = writeln!(
            o,
            "sluice_service_info{{vip=\"{}\",protocol=\"{}\",forward=\"{}\"}} 1",
            s.vip, s.protocol, s.forward
        );
    }
    family(o, "service_connections", "gauge", "Connections now, per virtual service.");
    for s in &svc.services {
        let _ = writeln!(
            o,
            "sluice_service_connections{{vip=\"{}\",protocol=\"{}\"}} {}",
            s.vip, s.protocol, s.connections
        );
    }
    family(o, "service_connections_total", "counter", "Connections created, per virtual service.");
    for s in &svc.services {
        let _ = writeln!(
            o,
            "sluice_service_connections_total{{vip=\"{}\",protocol=\"{}\"}} {}",
            s.vip, s.protocol, s.total_connections
        );
    }
    family(o, "service_refused_total", "counter", "New connections refused, per service and reason.");
    for s in &svc.services {
        for (reason, n) in
            [("no_backend", s.no_backend), ("over_limit", s.over_limit), ("no_port", s.no_port)]
        {
            let _ = writeln!(
                o,
                "sluice_service_refused_total{{vip=\"{}\",protocol=\"{}\",reason=\"{reason}\"}} {n}",
                s.vip, s.protocol
            );
        }
    }
}

fn backend_metrics(o: &mut String, svc: &ServicesReply) {
    let per_backend: [(&str, &str, &str, BackendValue); 7] = [
        ("backend_active_connections", "gauge", "Connections in ESTABLISHED, per real server.", |b| {
            u64::from(b.active)
        }),
        ("backend_inactive_connections", "gauge", "Other connections, per real server.", |b| {
            u64::from(b.inactive)
        }),
        ("backend_connections_total", "counter", "Connections scheduled, per real server.", |b| {
            b.connections
        }),
        ("backend_weight", "gauge", "Weight, per real server.", |b| u64::from(b.weight)),
        ("backend_up", "gauge", "1 when the real server passes its health check (or has none).", |b| {
            u64::from(b.health != "down")
        }),
        (
            "backend_host_packets_total",
            "counter",
            "Packets the host path forwarded, per real server, both directions.",
            |b| (b.packets_in - b.nic_packets_in) + (b.packets_out - b.nic_packets_out),
        ),
        (
            "backend_host_bytes_total",
            "counter",
            "Bytes the host path forwarded, per real server, both directions.",
            |b| (b.bytes_in - b.nic_bytes_in) + (b.bytes_out - b.nic_bytes_out),
        ),
    ];
    for (name, kind, help, value) in per_backend {
        family(o, name, kind, help);
        for s in &svc.services {
            for b in &s.backends {
                let _ = writeln!(
                    o,
                    "sluice_{name}{{vip=\"{}\",protocol=\"{}\",backend=\"{}\"}} {}",
                    s.vip,
                    s.protocol,
                    b.address,
                    value(b)
                );
            }
        }
    }
}

fn scalar_metrics(o: &mut String, st: &StatsReply) {
    let scalars: [(&str, &str, &str, String); 18] = [
        ("flow_table_occupancy", "gauge", "Flows in the NIC's table.", st.table.occupancy.to_string()),
        (
            "synproxy_cookies_total",
            "counter",
            "SYN-ACKs with a SYN cookie sent (SYN-proxied services).",
            st.slowpath.syn_cookies.to_string(),
        ),
        (
            "synproxy_cookies_accepted_total",
            "counter",
            "SYN cookies returned valid: proxied connections opened.",
            st.slowpath.syn_cookies_accepted.to_string(),
        ),
        (
            "synproxy_mismatch_total",
            "counter",
            "Proxied connections whose server answered without the timestamps or the window \
             scale the SYN proxy promised the client, or with a smaller scale: synproxy_wscale \
             is above the servers'.",
            st.slowpath.synproxy_mismatch.to_string(),
        ),
        (
            "flow_table_capacity",
            "gauge",
            "Flows the NIC's table holds at most.",
            st.table.capacity.to_string(),
        ),
        ("flow_table_inserts_total", "counter", "Flows installed.", st.table.installs.to_string()),
        (
            "flow_table_insert_failures_total",
            "counter",
            "Installs refused because the table was full.",
            st.table.insert_failures.to_string(),
        ),
        ("flow_table_removes_total", "counter", "Flows removed.", st.table.removes.to_string()),
        (
            "flow_table_insert_rate",
            "gauge",
            "Flow installs per second, last interval.",
            format!("{:.1}", st.rates.installs),
        ),
        (
            "flow_table_recoveries_total",
            "counter",
            "Times the NIC was lost and brought back (reset or reconnected, table rewritten).",
            st.table.recoveries.to_string(),
        ),
        (
            "flow_table_recovery_failures_total",
            "counter",
            "Attempts to bring a lost NIC back that failed.",
            st.table.recovery_failures.to_string(),
        ),
        (
            "device_up",
            "gauge",
            "1 while the NIC answers, 0 while it is lost and being brought back.",
            u8::from(st.device_state.state != "lost").to_string(),
        ),
        (
            "device_lost_seconds",
            "gauge",
            "Seconds the NIC has been lost (0 while up).",
            st.device_state.lost_for_s.to_string(),
        ),
        (
            "slowpath_packets_total",
            "counter",
            "Packets the slow path handled.",
            st.slowpath.packets.to_string(),
        ),
        ("slowpath_connections", "gauge", "Connections now.", st.slowpath.connections.to_string()),
        (
            "slowpath_connections_created_total",
            "counter",
            "Connections created.",
            st.slowpath.created.to_string(),
        ),
        (
            "slowpath_offloaded_total",
            "counter",
            "Connections offloaded to the NIC.",
            st.slowpath.offloaded.to_string(),
        ),
        ("uptime_seconds", "gauge", "Seconds since the daemon started.", st.uptime_s.to_string()),
    ];
    for (name, kind, help, v) in scalars {
        family(o, name, kind, help);
        let _ = writeln!(o, "sluice_{name} {v}");
    }
}

/// What the servers were told about the clients: PROXY protocol v2 headers and TOA options.
fn client_address_metrics(o: &mut String, st: &StatsReply) {
    let scalars: [(&str, &str, &str, String); 4] = [
        (
            "proxy_protocol_headers_total",
            "counter",
            "PROXY protocol v2 headers sent to servers (proxy_protocol services).",
            st.slowpath.proxy_protocol_headers.to_string(),
        ),
        (
            "proxy_protocol_retransmits_total",
            "counter",
            "PROXY protocol v2 headers sent again, not acknowledged in time.",
            st.slowpath.proxy_protocol_retransmits.to_string(),
        ),
        (
            "toa_inserted_total",
            "counter",
            "Client segments that carried the TOA option to the server (proxy_protocol = toa).",
            st.slowpath.toa_inserted.to_string(),
        ),
        (
            "toa_no_room_total",
            "counter",
            "Client segments sent without the TOA option for want of room (TCP header or MTU).",
            st.slowpath.toa_no_room.to_string(),
        ),
    ];
    for (name, kind, help, v) in scalars {
        family(o, name, kind, help);
        let _ = writeln!(o, "sluice_{name} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_endpoints() {
        assert_eq!(snake("TcpSyn"), "tcp_syn");
        assert_eq!(snake("Miss"), "miss");
        assert_eq!(snake("NoNextHop"), "no_next_hop");
        assert!(matches_endpoint("10.0.0.1", "10.0.0.1:80".parse().unwrap()));
        assert!(matches_endpoint("10.0.0.1:80", "10.0.0.1:80".parse().unwrap()));
        assert!(!matches_endpoint("10.0.0.1:81", "10.0.0.1:80".parse().unwrap()));
        assert!(matches_endpoint("[fd00::1]", "[fd00::1]:80".parse().unwrap()));
        assert!(matches_endpoint("fd00::1", "[fd00::1]:80".parse().unwrap()));
    }

    #[test]
    fn prometheus_text_is_well_formed() {
        let svc = ServicesReply {
            services: vec![ServiceInfo {
                vip: "10.10.1.100:80".into(),
                protocol: "tcp".into(),
                forward: "nat".into(),
                backends: vec![BackendInfo {
                    address: "10.10.2.11:80".into(),
                    health: "up".into(),
                    weight: 3,
                    ..BackendInfo::default()
                }],
                ..ServiceInfo::default()
            }],
            probes: vec![crate::control::proto::ProbeInfo {
                name: "vip".into(),
                target: "10.99.0.100:80".into(),
                kind: "http".into(),
                up: true,
                checks: 5,
                failures: 1,
                last_us: 1500,
                last: "HTTP 200".into(),
            }],
        };
        let mut st = StatsReply::default();
        st.punts.insert("miss".into(), 7);
        let text = prometheus(&svc, &st);
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP sluice_")
                    || line.starts_with("# TYPE sluice_")
                    || line.starts_with("sluice_"),
                "{line}"
            );
        }
        assert!(text.contains(
            "sluice_backend_weight{vip=\"10.10.1.100:80\",protocol=\"tcp\",backend=\"10.10.2.11:80\"} 3"
        ));
        assert!(text.contains("sluice_nic_punts_total{reason=\"miss\"} 7"));
        assert!(
            text.contains("sluice_service_info{vip=\"10.10.1.100:80\",protocol=\"tcp\",forward=\"nat\"} 1")
        );
        assert!(text.contains("sluice_probe_up{probe=\"vip\",target=\"10.99.0.100:80\"} 1"));
        assert!(text.contains(
            "sluice_probe_checks_total{probe=\"vip\",target=\"10.99.0.100:80\",result=\"failed\"} 1"
        ));
        assert!(
            text.contains("sluice_probe_latency_seconds{probe=\"vip\",target=\"10.99.0.100:80\"} 0.001500")
        );
        assert!(text.contains("# TYPE sluice_flow_table_occupancy gauge"));
        // The counter families are the contract's tables, each once.
        for name in ["nic_hits_total", "nic_misses_total", "nic_rx_packets_total", "nic_injected_total"] {
            assert_eq!(text.matches(&format!("# TYPE sluice_{name} counter")).count(), 1, "{name}");
        }
        assert!(text.contains("# HELP sluice_nic_hits_total Lookups that matched a record."));
        assert!(!text.contains("sluice_nic_punts_total 0"), "punts are exported by reason only");
    }
}
