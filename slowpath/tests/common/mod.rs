//! The rig for the slow path's tests: the in-process NIC model with two memory ports (p0 the
//! client side, p1 the server side), the driver, flow-offload and the engine on a manual
//! clock; and frames built by etherparse, independently of the crate under test.
#![allow(dead_code)]

use etherparse::PacketBuilder;
use flow_offload::FlowTable;
use host_driver::transport::inprocess::{InProcess, SharedInProcess};
use host_driver::{Nic, NicConfig};
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::port::{MemoryPort, MemoryPortHandle};
use slowpath::conn::Timeouts;
use slowpath::engine::{Engine, EngineConfig};
use slowpath::network::{PortConf, Prefix};
use slowpath::sched::SchedulerKind;
use slowpath::service::{BackendConfig, Proto, ServiceConfig, ServiceKey};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const P1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0xFE];
pub const RS1_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x11];
pub const RS2_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x12];
pub const S: u64 = 1_000_000_000;

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
pub fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix { addr: a.parse().unwrap(), len: l.parse().unwrap() }
}

pub struct Rig {
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
    pub model: SharedInProcess,
    pub p0: MemoryPortHandle,
    pub p1: MemoryPortHandle,
}

/// The services of most tests: TCP and UDP on 10.10.1.100, TCP on [fd00:1::100]:80, each with
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
        local_addresses: vec![ip("10.10.2.1")],
        conn_limit: 0,
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

pub fn rig_with(cfg: EngineConfig, records: u32) -> Rig {
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
    let nic = Nic::bring_up(Box::new(model.clone()), nic_cfg).unwrap();
    let flows = FlowTable::new(nic).unwrap();
    let engine = Engine::new(flows, cfg, clock.now()).unwrap();
    Rig { engine, clock, model, p0, p1 }
}

pub fn rig() -> Rig {
    rig_with(config(1, services(SchedulerKind::Rr, &[("10.10.2.11:80", 1), ("[fd00:2::11]:80", 1)])), 1024)
}

trait Now {
    fn now(&self) -> u64;
}
impl Now for ManualClock {
    fn now(&self) -> u64 {
        sim_model::clock::Clock::now_ns(self)
    }
}

impl Rig {
    pub fn now(&self) -> u64 {
        self.clock.now()
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
        let mut engine = Engine::new(flows, cfg, clock.now()).unwrap();
        let n = engine.adopt(adopted);
        let mut r = Rig { engine, clock, model, p0, p1 };
        r.settle();
        (r, n)
    }

    pub fn occupancy(&self) -> u32 {
        self.model.with_device(|d| {
            d.read32(rtl_spec::regs::flow_table::BASE + rtl_spec::regs::flow_table::OCCUPANCY)
        })
    }

    pub fn nic_hits(&self) -> u64 {
        self.model.with_device(|d| d.read64(rtl_spec::regs::counters::BASE + rtl_spec::regs::counters::HITS))
    }

    pub fn worker_packets(&self) -> u64 {
        self.engine
            .workers()
            .iter()
            .map(|w| w.stats().packets.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }
}

/// What a TCP segment carries.
#[derive(Clone, Debug)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub ttl: u8,
    pub seq: u32,
    pub ack: Option<u32>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: Vec<u8>,
}

impl Seg {
    pub fn new(src: &str, dst: &str) -> Seg {
        Seg {
            src: sa(src),
            dst: sa(dst),
            ttl: 64,
            seq: 1000,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            payload: Vec::new(),
        }
    }
    pub fn syn(mut self) -> Self {
        self.syn = true;
        self
    }
    pub fn fin(mut self) -> Self {
        self.fin = true;
        self
    }
    pub fn rst(mut self) -> Self {
        self.rst = true;
        self
    }
    pub fn ack(mut self, a: u32) -> Self {
        self.ack = Some(a);
        self
    }
    pub fn seq(mut self, s: u32) -> Self {
        self.seq = s;
        self
    }
    pub fn data(mut self, d: &[u8]) -> Self {
        self.payload = d.to_vec();
        self
    }
    pub fn ttl(mut self, t: u8) -> Self {
        self.ttl = t;
        self
    }
    /// The frame, built by etherparse.
    pub fn frame(&self, l2_src: [u8; 6], l2_dst: [u8; 6]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(l2_src, l2_dst);
        let b = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), self.ttl),
            (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), self.ttl),
            _ => panic!("mixed families"),
        };
        let mut b = b.tcp(self.src.port(), self.dst.port(), self.seq, 29200);
        if self.syn {
            b = b.syn();
        }
        if self.fin {
            b = b.fin();
        }
        if self.rst {
            b = b.rst();
        }
        if let Some(a) = self.ack {
            b = b.ack(a);
        }
        let mut out = Vec::new();
        b.write(&mut out, &self.payload).unwrap();
        out
    }
    /// The same segment between other endpoints, one hop later.
    pub fn rewritten(&self, src: SocketAddr, dst: SocketAddr) -> Seg {
        Seg { src, dst, ttl: self.ttl - 1, ..self.clone() }
    }
}

/// A UDP datagram frame, built by etherparse.
pub fn udp(src: &str, dst: &str, ttl: u8, payload: &[u8], l2_src: [u8; 6], l2_dst: [u8; 6]) -> Vec<u8> {
    let (src, dst) = (sa(src), sa(dst));
    let b = PacketBuilder::ethernet2(l2_src, l2_dst);
    let b = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), ttl),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    b.udp(src.port(), dst.port()).write(&mut out, payload).unwrap();
    out
}

/// The TCP/UDP endpoints of a frame, read by etherparse (which also checked its checksums).
pub fn endpoints(frame: &[u8]) -> (SocketAddr, SocketAddr) {
    checksums_ok(frame).unwrap();
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let (s, d): (IpAddr, IpAddr) = match p.net.unwrap() {
        etherparse::NetSlice::Ipv4(i) => {
            (i.header().source_addr().into(), i.header().destination_addr().into())
        }
        etherparse::NetSlice::Ipv6(i) => {
            (i.header().source_addr().into(), i.header().destination_addr().into())
        }
        etherparse::NetSlice::Arp(_) => panic!("not IP"),
    };
    let (sp, dp) = match p.transport.unwrap() {
        etherparse::TransportSlice::Tcp(t) => (t.source_port(), t.destination_port()),
        etherparse::TransportSlice::Udp(u) => (u.source_port(), u.destination_port()),
        _ => panic!("not TCP/UDP"),
    };
    (SocketAddr::new(s, sp), SocketAddr::new(d, dp))
}

/// Every checksum of `frame` as etherparse computes it.
pub fn checksums_ok(frame: &[u8]) -> Result<(), String> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| e.to_string())?;
    match (p.net.as_ref().ok_or("no IP")?, p.transport.as_ref().ok_or("no transport")?) {
        (NetSlice::Ipv4(ip), t) => {
            let h = ip.header().to_header();
            if h.header_checksum != h.calc_header_checksum() {
                return Err("IPv4 header checksum".into());
            }
            let ok = match t {
                TransportSlice::Tcp(x) => {
                    x.checksum() == x.to_header().calc_checksum_ipv4(&h, x.payload()).unwrap()
                }
                TransportSlice::Udp(x) => {
                    x.checksum() == 0
                        || x.checksum() == x.to_header().calc_checksum_ipv4(&h, x.payload()).unwrap()
                }
                TransportSlice::Icmpv4(x) => x.checksum() == x.icmp_type().calc_checksum(x.payload()),
                _ => false,
            };
            if ok { Ok(()) } else { Err("transport checksum".into()) }
        }
        (NetSlice::Ipv6(ip), t) => {
            let h = ip.header().to_header();
            let ok = match t {
                TransportSlice::Tcp(x) => {
                    x.checksum() == x.to_header().calc_checksum_ipv6(&h, x.payload()).unwrap()
                }
                TransportSlice::Udp(x) => {
                    x.checksum() == x.to_header().calc_checksum_ipv6(&h, x.payload()).unwrap()
                }
                TransportSlice::Icmpv6(x) => {
                    x.checksum() == x.icmp_type().calc_checksum(h.source, h.destination, x.payload()).unwrap()
                }
                _ => false,
            };
            if ok { Ok(()) } else { Err("transport checksum".into()) }
        }
        _ => Err("not IP".into()),
    }
}
