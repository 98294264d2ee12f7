//! From a configuration to a running engine: the device opened on its transport and brought up,
//! the ports set, the engine built from the typed configuration, the host's interfaces made.

use crate::config::{self, Config, HealthKind, Protocol, TcpOffloadAfter, Transport, UdpOffloadAfter};
use anyhow::{Context, bail};
use flow_offload::FlowTable;
use host_driver::transport::Transport as _;
use host_driver::transport::inprocess;
use host_driver::{Nic, NicConfig};
use rtl_spec::clock::Clock;
use rtl_spec::image::ModelConfig;
use slowpath::conn::{OffloadPolicy, Timeouts};
use slowpath::engine::{Engine, EngineConfig};
use slowpath::laddr::PortRange;
use slowpath::network::{PortConf, Prefix, RouteConf};
use slowpath::sched::SchedulerKind;
use slowpath::service::{
    BackendConfig, HealthCheck, HealthKind as SpHealthKind, Proto, ServiceConfig, ServiceKey,
};
use std::sync::Arc;

/// The MAC a port uses: the configured one, else its interface's, else `02:00:00:00:00:NN`.
pub fn port_mac(cfg: &Config, index: usize) -> [u8; 6] {
    // `port_mac` is None exactly when the interface decides.
    cfg.port_mac(index)
        .or_else(|| cfg.ports[index].interface.as_deref().and_then(interface_mac).map(config::Mac))
        .unwrap_or_else(|| config::Mac::for_port_index(index as u8))
        .0
}

/// The MAC of a Linux interface, from sysfs.
pub fn interface_mac(iface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).ok()?;
    let m: config::Mac = text.trim().parse().ok()?;
    Some(m.0)
}

/// The services of a configuration, as the slow path takes them.
pub fn services(cfg: &Config) -> Vec<ServiceConfig> {
    cfg.services.iter().map(service).collect()
}

/// One configured service as the slow path's.
pub fn service(s: &crate::config::Service) -> ServiceConfig {
    ServiceConfig {
        key: ServiceKey { vip: s.vip, proto: proto(s.protocol) },
        scheduler: s.scheduler.parse().unwrap_or(SchedulerKind::Wlc),
        forward: s.forward,
        local_addresses: s.local_addresses.clone(),
        conn_limit: s.conn_limit,
        synproxy: s.synproxy,
        synproxy_offer: slowpath::synproxy::Offer {
            timestamps: s.synproxy_timestamps,
            wscale: s.synproxy_wscale,
        },
        proxy_protocol: match s.proxy_protocol.as_deref() {
            Some("v2") => Some(slowpath::proxy_protocol::ProxyProtocol::V2),
            Some("toa") => Some(slowpath::proxy_protocol::ProxyProtocol::Toa),
            _ => None,
        },
        health: s.health.as_ref().map(health_check),
        backends: s
            .backends
            .iter()
            .map(|b| BackendConfig { addr: b.address, weight: u32::from(b.weight) })
            .collect(),
    }
}

/// A configured check (a service's `health`, a probe's `check`) as the slow path runs it.
pub fn health_check(h: &crate::config::Health) -> HealthCheck {
    HealthCheck {
        kind: match &h.kind {
            HealthKind::Tcp => SpHealthKind::Tcp,
            HealthKind::Http { path, expect, host } => {
                SpHealthKind::Http { path: path.clone(), expect: *expect, host: host.clone() }
            }
        },
        interval: h.interval,
        timeout: h.timeout,
        rise: h.rise,
        fall: h.fall,
    }
}

/// A configuration's protocol as the slow path's.
pub fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
    }
}

/// The engine's configuration.
pub fn engine_config(cfg: &Config) -> anyhow::Result<EngineConfig> {
    let port_index = |name: &str| -> anyhow::Result<u8> {
        cfg.port_index(name).map(|i| i as u8).with_context(|| format!("no port named {name:?}"))
    };
    let t = &cfg.timeouts;
    Ok(EngineConfig {
        workers: u16::try_from(cfg.device.workers).context("workers")?,
        timeouts: Timeouts {
            tcp_established: t.tcp_established,
            tcp_syn_recv: t.tcp_syn_recv,
            tcp_fin_wait: t.tcp_fin_wait,
            tcp_close_wait: t.tcp_close_wait,
            tcp_last_ack: t.tcp_last_ack,
            tcp_time_wait: t.tcp_time_wait,
            tcp_close: t.tcp_close,
            udp: t.udp,
        },
        policy: OffloadPolicy {
            enabled: cfg.offload.enabled,
            tcp_after_handshake: cfg.offload.tcp_after == TcpOffloadAfter::Handshake,
            udp_after_reply: cfg.offload.udp_after == UdpOffloadAfter::Reply,
            min_packets: u64::from(cfg.offload.min_packets),
            min_age: cfg.offload.min_age,
        },
        ports_range: PortRange {
            min: cfg.limits.lport_min,
            max: cfg.limits.lport_max,
            quarantine_ns: u64::try_from(t.quarantine.as_nanos()).unwrap_or(u64::MAX),
        },
        half_open_limit: cfg.limits.half_open_per_worker,
        half_open_per_source: cfg.limits.half_open_per_source,
        icmp_echo: cfg.icmp.echo,
        ports: cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortConf {
                name: p.name.clone(),
                mac: port_mac(cfg, i),
                mtu: u32::from(p.mtu),
                addresses: p.addresses.iter().map(|c| Prefix { addr: c.addr, len: c.len }).collect(),
            })
            .collect(),
        routes: cfg
            .routes
            .iter()
            .map(|r| {
                Ok(RouteConf {
                    prefix: Prefix { addr: r.prefix.addr, len: r.prefix.len },
                    via: r.via,
                    port: Some(port_index(&r.port)?),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        neighbors: cfg
            .neighbors
            .iter()
            .filter_map(|n| {
                let port = match &n.port {
                    Some(p) => cfg.port_index(p),
                    None => cfg.connected_port(&n.address),
                }?;
                Some((port as u8, n.address, n.mac.0))
            })
            .collect(),
        services: services(cfg),
        // Workers 1..n on threads of their own: the same result as in turn (replay relies
        // on that), in less time.
        parallel: true,
    })
}

/// A port that cannot be attached for a reason its configuration or the machine's state can
/// fix (no such interface or queue, an interface that is down, no permission): the daemon
/// exits with code 2, as for a bad file.
#[derive(Debug)]
pub struct BadPortSetting(pub String);

impl std::fmt::Display for BadPortSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPortSetting {}

/// Opens the wire of the in-process model's port `p` on `iface`, of the kind it asks for.
fn attach(p: &config::Port, iface: &str) -> anyhow::Result<Box<dyn inprocess::ModelPort>> {
    use inprocess::{PortKind as Kind, is_bad_setting, open_interface};
    let kind = match p.kind {
        config::PortKind::Auto => Kind::Auto,
        config::PortKind::AfXdp => Kind::AfXdp,
        config::PortKind::AfPacket => Kind::AfPacket,
    };
    open_interface(&format!("port {}", p.name), iface, kind, p.queue).map_err(|e| {
        let message = format!("port {} (interface {iface}): {e}", p.name);
        if is_bad_setting(&e) { BadPortSetting(message).into() } else { anyhow::anyhow!(message) }
    })
}

/// What the daemon drives, for `sluice stats`.
pub struct Device {
    /// The engine over it.
    pub engine: Engine,
    /// "in-process model", "vfio-user PATH", "vfio ADDR".
    pub describe: String,
    /// Descriptors that poll readable when the in-process model's ports have frames, when the
    /// model runs in the daemon's loop: the idle loop sleeps on them. Empty otherwise.
    pub wake_fds: Vec<std::os::fd::RawFd>,
}

/// Whether the in-process model's datapath gets a thread of its own: as configured, else when
/// the host has cores to spare for it (four or more; on fewer, a spinning datapath thread takes
/// the core the slow path and the kernel's veth work need, measured slower end to end).
pub fn datapath_thread(cfg: &Config) -> bool {
    cfg.device
        .datapath_thread
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get) >= 4)
}

/// `limits.punt_share` as the register values, by punt reason code (100: no bound).
fn punt_share(limits: &crate::config::Limits) -> [u8; 16] {
    let mut out = [100u8; 16];
    for v in rtl_spec::codes::PuntReason::SPEC.values {
        if let Some(&p) = limits.punt_share.get(&crate::config::snake_case(v.name)) {
            if let Some(slot) = out.get_mut(v.value as usize) {
                *slot = p;
            }
        }
    }
    out
}

/// Opens the configured device, brings it up and builds the engine, at the clock's time.
pub fn open(cfg: &Config, clock: &Arc<dyn Clock>) -> anyhow::Result<Device> {
    let workers = u32::try_from(cfg.device.workers).context("workers")?;
    // A NIC outside this process (a card, a `sluice sim`) may still be forwarding the flows an
    // earlier daemon offloaded: bring it up without a reset and adopt them (a hitless restart).
    // The in-process model starts empty with this process.
    let adopt = cfg.device.transport != Transport::Sim;
    let nic_cfg = NicConfig {
        ring_log2: u32::from(cfg.device.ring_log2),
        exception_rings: workers,
        interrupts: cfg.device.interrupts,
        preserve_table: adopt,
        punt_share: punt_share(&cfg.limits),
        forward_fin: cfg.offload.forward_fin,
        ..NicConfig::default()
    };
    let mut wake_fds = Vec::new();
    let transport: Box<dyn host_driver::transport::Transport> = match &cfg.device.transport {
        Transport::Sim => {
            let mut model = inprocess::InProcess::new(ModelConfig::default(), clock.clone())?;
            for (i, p) in cfg.ports.iter().enumerate() {
                if let Some(iface) = &p.interface {
                    let port = attach(p, iface)?;
                    tracing::info!(port = %p.name, wire = %port.describe(), "port attached");
                    model.attach_port(i as u8, port)?;
                }
            }
            if datapath_thread(cfg) {
                Box::new(host_driver::transport::threaded::ThreadedInProcess::start(model)?)
            } else {
                wake_fds = model.device().port_fds();
                Box::new(model)
            }
        }
        Transport::VfioUser { socket } => {
            Box::new(host_driver::transport::vfio_user::VfioUserTransport::connect(socket)?)
        }
        Transport::Vfio { pci } => Box::new(host_driver::transport::vfio::VfioTransport::open(pci)?),
    };
    let describe = transport.describe();
    let mut nic = Nic::bring_up(transport, nic_cfg).context("bringing the NIC up")?;
    if cfg.ports.len() > nic.info().ports.len() {
        bail!("the configuration has {} ports, the NIC {}", cfg.ports.len(), nic.info().ports.len());
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        nic.configure_port(i as u8, u32::from(p.mtu), port_mac(cfg, i))?;
    }
    let (flows, adopted) = if adopt {
        let (flows, adopted) =
            FlowTable::adopt(nic).map_err(|e| anyhow::anyhow!("adopting the NIC's flows: {e}"))?;
        (flows, Some(adopted))
    } else {
        (FlowTable::new(nic).map_err(|e| anyhow::anyhow!("flow table: {e}"))?, None)
    };
    let mut engine =
        Engine::new(flows, engine_config(cfg)?, clock.now_ns()).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(adopted) = adopted
        && (!adopted.flows.is_empty() || adopted.skipped > 0)
    {
        let (found, skipped) = (adopted.flows.len(), adopted.skipped);
        let taken = engine.adopt(adopted);
        tracing::warn!(
            found,
            adopted = taken,
            skipped,
            "the NIC was still forwarding flows of an earlier run: adopted as connections"
        );
    }
    Ok(Device { engine, describe, wake_fds })
}
