//! The rig for the slow path's tests ([`Rig`]): the in-process NIC model with two memory ports
//! (p0 the client side, p1 the server side), the driver, flow-offload and the engine on a
//! manual clock, with the addresses, services and routes most of those tests use. Frames come
//! from [`crate::frame`].

pub use crate::frame::sa;
use flow_offload::FlowTable;
use host_driver::transport::inprocess::{InProcess, SharedInProcess};
use host_driver::{Nic, NicConfig};
use rtl_spec::clock::{Clock, ManualClock};
use rtl_spec::image::ModelConfig;
use sim_model::port::{MemoryPort, MemoryPortHandle};
use slowpath::conn::Timeouts;
use slowpath::engine::{Engine, EngineConfig};
use slowpath::network::{PortConf, Prefix};
use slowpath::sched::SchedulerKind;
use slowpath::service::{BackendConfig, Proto, ServiceConfig, ServiceKey};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Port 0's MAC (the client side).
pub const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// Port 1's MAC (the server side).
pub const P1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// The client's MAC (10.10.1.10, fd00:1::10).
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
/// The router's MAC (10.10.1.254, the default route).
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0xFE];
/// The first real server's MAC (10.10.2.11, fd00:2::11).
pub const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x11];
/// The second real server's MAC (10.10.2.12).
pub const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x12];
/// One second, in nanoseconds.
pub const S: u64 = 1_000_000_000;

/// An address, parsed.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A prefix (`"10.0.0.0/8"`), parsed.
pub fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix { addr: a.parse().unwrap(), len: l.parse().unwrap() }
}

/// The engine over the in-process model, and the wires of its two ports.
pub struct Rig {
    /// The engine.
    pub engine: Engine,
    /// Its time (and the model's).
    pub clock: Arc<ManualClock>,
    /// The model.
    pub model: SharedInProcess,
    /// Port 0's wire (the client side).
    pub p0: MemoryPortHandle,
    /// Port 1's wire (the server side).
    pub p1: MemoryPortHandle,
}

/// The services of most tests: TCP and UDP on 10.10.1.100, TCP on `[fd00:1::100]:80`, each with
/// local addresses and backends of its VIP's family.
pub fn services(scheduler: SchedulerKind, backends: &[(&str, u32)]) -> Vec<ServiceConfig> {
    let v4: Vec<BackendConfig> = backends
        .iter()
        .filter(|(a, _)| !a.starts_with('['))
        .map(|(a, w)| BackendConfig { addr: sa(a), weight: *w })
        .collect();
    let v6: Vec<BackendConfig> = backends
        .iter()
        .filter(|(a, _)| a.starts_with('['))
        .map(|(a, w)| BackendConfig { addr: sa(a), weight: *w })
        .collect();
    let mut out = vec![ServiceConfig {
        key: ServiceKey { vip: sa("10.10.1.100:80"), proto: Proto::Tcp },
        scheduler,
        forward: slowpath::service::Forward::FullNat,
        local_addresses: vec![ip("10.10.2.1")],
        conn_limit: 0,
        synproxy: false,
        synproxy_offer: slowpath::synproxy::Offer::default(),
        proxy_protocol: None,
        health: None,
        backends: v4.clone(),
    }];
    out.push(ServiceConfig {
        key: ServiceKey { vip: sa("10.10.1.100:53"), proto: Proto::Udp },
        backends: v4.iter().map(|b| BackendConfig { addr: SocketAddr::new(b.addr.ip(), 53), ..*b }).collect(),
        ..out[0].clone()
    });
    if !v6.is_empty() {
        out.push(ServiceConfig {
            key: ServiceKey { vip: sa("[fd00:1::100]:80"), proto: Proto::Tcp },
            // One family per service: its VIP's.
            local_addresses: vec![ip("fd00:2::1")],
            backends: v6,
            ..out[0].clone()
        });
    }
    out
}

/// The engine configuration of most tests: `workers`, two ports, the client, router and real
/// servers as neighbours, a default route via the router, and `services`.
pub fn config(workers: u16, services: Vec<ServiceConfig>) -> EngineConfig {
    EngineConfig {
        workers,
        ports: vec![
            PortConf {
                name: "p0".into(),
                mac: P0_MAC,
                mtu: 1500,
                addresses: vec![pfx("10.10.1.1/24"), pfx("fd00:1::1/64")],
            },
            PortConf {
                name: "p1".into(),
                mac: P1_MAC,
                mtu: 1500,
                addresses: vec![pfx("10.10.2.254/24"), pfx("fd00:2::254/64")],
            },
        ],
        neighbors: vec![
            (0, ip("10.10.1.10"), CLIENT_MAC),
            (0, ip("fd00:1::10"), CLIENT_MAC),
            (0, ip("10.10.1.254"), ROUTER_MAC),
            (1, ip("10.10.2.11"), RS1_MAC),
            (1, ip("10.10.2.12"), RS2_MAC),
            (1, ip("fd00:2::11"), RS1_MAC),
        ],
        routes: vec![slowpath::network::RouteConf {
            prefix: pfx("0.0.0.0/0"),
            via: ip("10.10.1.254"),
            port: Some(0),
        }],
        services,
        timeouts: Timeouts::default(),
        ..EngineConfig::default()
    }
}

/// A rig of `cfg` on a model of `records` flow records.
pub fn rig_with(cfg: EngineConfig, records: u32) -> Rig {
    rig_with_nic(cfg, records, |_| {})
}

/// [`rig_with`], the driver's configuration changed by `nic` first.
pub fn rig_with_nic(cfg: EngineConfig, records: u32, nic: impl FnOnce(&mut NicConfig)) -> Rig {
    let clock = Arc::new(ManualClock::new(1_000 * S));
    let mc = ModelConfig {
        records,
        buckets: (records / 2).max(2),
        stash: 8,
        next_hops: 64,
        ..ModelConfig::default()
    };
    let mut model = InProcess::new(mc, clock.clone()).unwrap();
    let (a, p0) = MemoryPort::new();
    let (b, p1) = MemoryPort::new();
    model.attach_port(0, Box::new(a)).unwrap();
    model.attach_port(1, Box::new(b)).unwrap();
    let model = SharedInProcess::new(model);
    let nic_cfg = NicConfig {
        ring_log2: 8,
        exception_rings: u32::from(cfg.workers),
        command_timeout: Duration::from_secs(2),
        ..NicConfig::default()
    };
    let mut nic_cfg = nic_cfg;
    nic(&mut nic_cfg);
    let nic = Nic::bring_up(Box::new(model.clone()), nic_cfg).unwrap();
    let flows = FlowTable::new(nic).unwrap();
    let engine = Engine::new(flows, cfg, clock.now_ns()).unwrap();
    Rig { engine, clock, model, p0, p1 }
}

/// The rig of most tests: one worker, round robin over 10.10.2.11:80 and `[fd00:2::11]:80`.
pub fn rig() -> Rig {
    rig_with(config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("[fd00:2::11]:80", 1)])), 1024)
}

impl Rig {
    /// The time now.
    pub fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Polls until nothing moves.
    pub fn settle(&mut self) {
        let now = self.now();
        for _ in 0..16 {
            if self.engine.poll(now) == 0 {
                // One more round: commands and injects of the last one are flushed by now.
                self.engine.poll(now);
                break;
            }
        }
    }

    /// Moves time on and lets it act.
    pub fn advance(&mut self, ns: u64) {
        self.clock.advance(ns);
        self.settle();
    }

    /// A frame into p0 (from the client side), then everything that came out of each port.
    pub fn client_sends(&mut self, frame: Vec<u8>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.p0.push_rx(frame, None);
        self.settle();
        (self.p0.take_tx(), self.p1.take_tx())
    }

    /// A frame into p1 (from the server side).
    pub fn server_sends(&mut self, frame: Vec<u8>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.p1.push_rx(frame, None);
        self.settle();
        (self.p0.take_tx(), self.p1.take_tx())
    }

    /// A daemon restart without a device reset: the engine goes (its NIC keeps forwarding what
    /// it holds), a new one brings the same NIC up keeping its table, adopts its flows
    /// (`FlowTable::adopt`, `Engine::adopt`) and goes on with the same ports and clock. Returns
    /// the new rig and how many flows its engine adopted.
    pub fn restart(self) -> (Rig, usize) {
        let Rig { engine, clock, model, p0, p1 } = self;
        let cfg = engine.config().clone();
        drop(engine);
        let nic_cfg = NicConfig {
            ring_log2: 8,
            exception_rings: u32::from(cfg.workers),
            command_timeout: Duration::from_secs(2),
            preserve_table: true,
            ..NicConfig::default()
        };
        let nic = Nic::bring_up(Box::new(model.clone()), nic_cfg).unwrap();
        let (flows, adopted) = FlowTable::adopt(nic).unwrap();
        let mut engine = Engine::new(flows, cfg, clock.now_ns()).unwrap();
        let n = engine.adopt(adopted);
        let mut r = Rig { engine, clock, model, p0, p1 };
        r.settle();
        (r, n)
    }

    /// The NIC's flow-table occupancy.
    pub fn occupancy(&self) -> u32 {
        self.model.with_device(|d| {
            d.read32(rtl_spec::regs::flow_table::BASE + rtl_spec::regs::flow_table::OCCUPANCY)
        })
    }

    /// The NIC's hit counter.
    pub fn nic_hits(&self) -> u64 {
        self.model.with_device(|d| d.read64(rtl_spec::regs::counters::BASE + rtl_spec::regs::counters::HITS))
    }

    /// Packets the workers dropped for `reason` (a slow-path drop reason's name).
    pub fn drops(&mut self, reason: &str) -> u64 {
        let stats = self.engine.stats();
        stats.workers.iter().filter_map(|w| w.drops.iter().find(|(n, _)| *n == reason)).map(|d| d.1).sum()
    }

    /// Packets the workers handled.
    pub fn worker_packets(&self) -> u64 {
        self.engine
            .workers()
            .iter()
            .map(|w| w.stats().packets.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}
