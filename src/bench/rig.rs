//! The benchmark rig: the in-process NIC model with two bench ports (p0 the client side, p1 the
//! server side), the driver, flow-offload and the slow-path engine on a manual clock, wired as
//! `sluice_test_support::engine` wires them for the tests; and a small frame builder of its own
//! (the bench ships in the binary, which links no test support).
//!
//! The ports cost next to nothing: a received frame is handed to `Device::receive` directly, a
//! sent one is counted and, on a capturing port, its first [`HEAD`] bytes are copied into a
//! buffer whose capacity is reused (no allocation per frame). So what is timed is the
//! slow path, the driver and the model, not packet I/O.

use host_driver::transport::inprocess::{InProcess, SharedInProcess};
use host_driver::{Nic, NicConfig};
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::port::{Port, RxBurst};
use slowpath::conn::Timeouts;
use slowpath::engine::{Engine, EngineConfig};
use slowpath::network::{PortConf, Prefix, RouteConf};
use slowpath::sched::SchedulerKind;
use slowpath::service::{BackendConfig, Proto, ServiceConfig, ServiceKey};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// MAC of model port p0 (client side).
pub const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// MAC of model port p1 (server side).
pub const P1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// MAC of the router in front of the clients.
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0xFE];
/// The VIP (TCP port [`VIP_PORT`]).
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 100);
/// The service port.
pub const VIP_PORT: u16 = 80;
/// Bytes of each sent frame a capturing port keeps (Ethernet + IPv4 + TCP without options).
pub const HEAD: usize = 54;

/// The MAC of real server `n`.
pub fn rs_mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [2, 0, 0, b[1], b[2], b[3]]
}

/// Real server `n` (0-based): 10.10.2.(n+1):80 (n < 250).
pub fn rs_addr(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 2, (n + 1) as u8)
}

/// Local address `n` (0-based): 10.10.3.(n+1).
pub fn lip_addr(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 3, (n + 1) as u8)
}

/// Client `n`: 100.64.0.0/10 behind the router, 16384 ports per address, every one distinct.
pub fn client(n: u64) -> (Ipv4Addr, u16) {
    let ip = 0x6440_0000u32 + (n >> 14) as u32;
    (Ipv4Addr::from(ip), 1024 + (n & 0x3FFF) as u16)
}

#[derive(Default)]
struct Capture {
    keep: bool,
    sent: u64,
    heads: Vec<[u8; HEAD]>,
}

/// The bench's end of a model port: counts what the model sent and keeps its headers.
#[derive(Clone, Default)]
pub struct Wire(Arc<Mutex<Capture>>);

impl Wire {
    /// A wire that keeps the header of every frame sent (until [`Self::drain`]).
    pub fn capturing() -> Self {
        Wire(Arc::new(Mutex::new(Capture { keep: true, ..Capture::default() })))
    }

    /// A wire that only counts.
    pub fn counting() -> Self {
        Wire::default()
    }

    /// Frames the model sent so far.
    pub fn sent(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).sent
    }

    /// Hands the kept headers to `f`, then forgets them (keeping the buffer's capacity).
    pub fn drain<R>(&self, f: impl FnOnce(&[[u8; HEAD]]) -> R) -> R {
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let r = f(&c.heads);
        c.heads.clear();
        r
    }

    /// The port to attach to the model.
    pub fn port(&self) -> Box<dyn Port> {
        Box::new(BenchPort { wire: self.clone(), keep: None, sent: 0, heads: Vec::new() })
    }
}

/// The model's side: what it sends is gathered here and handed to the [`Wire`] at the flush
/// (once per burst), as a NIC's transmit ring is written per burst, so the bench's sink does not
/// add a lock per frame to the datapath it measures.
struct BenchPort {
    wire: Wire,
    /// Whether the wire keeps headers, read at the first frame after a flush.
    keep: Option<bool>,
    sent: u64,
    heads: Vec<[u8; HEAD]>,
}

impl Port for BenchPort {
    fn recv_burst(&mut self, _burst: &mut RxBurst, _max: usize) -> std::io::Result<usize> {
        // Frames reach the model through `Device::receive`, never through the port.
        Ok(0)
    }
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.sent += 1;
        let keep =
            *self.keep.get_or_insert_with(|| self.wire.0.lock().unwrap_or_else(PoisonError::into_inner).keep);
        if keep {
            let mut h = [0u8; HEAD];
            let n = frame.len().min(HEAD);
            h[..n].copy_from_slice(&frame[..n]);
            self.heads.push(h);
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.sent > 0 {
            let mut c = self.wire.0.lock().unwrap_or_else(PoisonError::into_inner);
            c.sent += self.sent;
            c.heads.append(&mut self.heads);
            self.sent = 0;
        }
        self.keep = None;
        Ok(())
    }
    fn link_up(&self) -> bool {
        true
    }
    fn mac(&self) -> Option<[u8; 6]> {
        None
    }
    fn describe(&self) -> String {
        "bench".into()
    }
}

/// The model, brought up by the driver, with its two wires.
pub struct Model {
    /// The device, shared with the driver.
    pub shared: SharedInProcess,
    /// The manual clock both run on.
    pub clock: Arc<ManualClock>,
    /// What p0 (client side) sent.
    pub p0: Wire,
    /// What p1 (server side) sent.
    pub p1: Wire,
}

/// A model of `records` records (`records / 2` buckets, a 64-entry stash), brought up by the
/// driver with `exception_rings` rings; p1 keeps the headers it sends when `capture`.
pub fn model(records: u32, exception_rings: u32, capture: bool) -> anyhow::Result<(Model, Nic)> {
    let clock = Arc::new(ManualClock::new(1_000_000_000_000));
    let mc = ModelConfig {
        records,
        buckets: (records / 2).max(2),
        stash: 64,
        next_hops: 4096,
        ..ModelConfig::default()
    };
    let mut inproc = InProcess::new(mc, clock.clone())?;
    let (p0, p1) = (Wire::counting(), if capture { Wire::capturing() } else { Wire::counting() });
    inproc.attach_port(0, p0.port())?;
    inproc.attach_port(1, p1.port())?;
    let shared = SharedInProcess::new(inproc);
    let nic_cfg = NicConfig {
        ring_log2: 10,
        exception_rings,
        command_timeout: Duration::from_secs(5),
        ..NicConfig::default()
    };
    let nic = Nic::bring_up(Box::new(shared.clone()), nic_cfg)?;
    Ok((Model { shared, clock, p0, p1 }, nic))
}

/// How many servers and local addresses the service has.
#[derive(Clone, Copy, Debug)]
pub struct Topology {
    /// Slow-path workers (1 or 2...).
    pub workers: u16,
    /// Real servers (at most 250).
    pub servers: u32,
    /// Local addresses (at most 16: the NIC's LIP filter holds 16).
    pub lips: u32,
    /// The scheduler.
    pub scheduler: SchedulerKind,
}

impl Topology {
    /// Concurrent connections the (LIP, server) port pools allow (ports 1024..=65535 each).
    pub fn port_capacity(&self) -> u64 {
        u64::from(self.servers) * u64::from(self.lips) * 64512
    }
}

fn pfx(addr: IpAddr, len: u8) -> Prefix {
    Prefix { addr, len }
}

/// The engine's configuration for `t`: p0 toward the clients (behind a router), p1 toward the
/// servers, one TCP service on the VIP.
pub fn engine_config(t: Topology) -> EngineConfig {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let mut neighbors = vec![(0, v4(10, 10, 1, 254), ROUTER_MAC)];
    neighbors.extend((0..t.servers).map(|n| (1, IpAddr::V4(rs_addr(n)), rs_mac(n))));
    EngineConfig {
        workers: t.workers,
        ports: vec![
            PortConf {
                name: "p0".into(),
                mac: P0_MAC,
                mtu: 1500,
                addresses: vec![pfx(v4(10, 10, 1, 1), 24)],
            },
            PortConf {
                name: "p1".into(),
                mac: P1_MAC,
                mtu: 1500,
                addresses: vec![pfx(v4(10, 10, 2, 254), 24)],
            },
        ],
        neighbors,
        routes: vec![RouteConf { prefix: pfx(v4(0, 0, 0, 0), 0), via: v4(10, 10, 1, 254), port: Some(0) }],
        services: vec![ServiceConfig {
            key: ServiceKey { vip: SocketAddr::new(IpAddr::V4(VIP), VIP_PORT), proto: Proto::Tcp },
            scheduler: t.scheduler,
            forward: slowpath::service::Forward::FullNat,
            local_addresses: (0..t.lips).map(|n| IpAddr::V4(lip_addr(n))).collect(),
            conn_limit: 0,
            synproxy: false,
            synproxy_offer: slowpath::synproxy::Offer::default(),
            proxy_protocol: None,
            health: None,
            backends: (0..t.servers)
                .map(|n| BackendConfig { addr: SocketAddr::new(IpAddr::V4(rs_addr(n)), 80), weight: 1 })
                .collect(),
        }],
        timeouts: Timeouts::default(),
        half_open_limit: 1 << 20,
        ..EngineConfig::default()
    }
}

/// The whole appliance in one process.
pub struct Rig {
    /// The slow path and its device side.
    pub engine: Engine,
    /// The model and its wires.
    pub model: Model,
}

/// Touches the model's table memory before a measurement by installing and removing
/// throwaway flows, enough that every page of its index has been written.
///
/// The model allocates its table zeroed and lazily (`calloc`), so the first write to each
/// 4 KiB page of its index costs a page fault; a NIC's DRAM is simply there. Without this, a
/// connection into a large, empty table pays two faults (its two tuples land in random
/// buckets), which measures the model's allocator rather than the host's path.
pub fn warm(flows: &mut flow_offload::FlowTable) -> anyhow::Result<()> {
    let g = flows.nic_ref().info().geometry.clone();
    // Two keys per flow over `buckets × 32 B / 4 KiB` pages: 16 keys per page leaves none
    // untouched (e^-16 per page), bounded by the table's own size.
    let pages = u64::from(g.buckets) * 32 / 4096;
    let n = (pages * 8).max(1024).min(u64::from(g.records) / 2) as u32;
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        handles.push(flows.install(super::insert::flow(i))?);
        if i % 256 == 255 {
            flows.commit()?;
        }
    }
    flows.commit()?;
    for h in handles {
        flows.remove(h, false)?;
    }
    flows.commit()?;
    anyhow::ensure!(flows.occupancy() == 0, "the warm-up left flows behind");
    Ok(())
}

/// Minor page faults of this thread so far.
pub fn minor_faults() -> u64 {
    // SAFETY: `ru` is a valid rusage for the call to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD reads the calling thread's counters.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut ru) };
    if rc == 0 { u64::try_from(ru.ru_minflt).unwrap_or(0) } else { 0 }
}

/// Builds the appliance over a model of `records` records, its table memory touched.
pub fn rig(t: Topology, records: u32) -> anyhow::Result<Rig> {
    let (model, nic) = model(records, u32::from(t.workers), true)?;
    let mut flows = flow_offload::FlowTable::new(nic)?;
    warm(&mut flows)?;
    let now = sim_model::clock::Clock::now_ns(model.clock.as_ref());
    let engine = Engine::new(flows, engine_config(t), now)?;
    Ok(Rig { engine, model })
}

/// The CPU time this process has used (every thread: the polling thread and the worker
/// threads), nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

static TIMED_WALL_NS: AtomicU64 = AtomicU64::new(0);
static TIMED_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// Times a run on the process's CPU clock (and the wall clock beside it).
///
/// The machine is shared: another process may take a core in the middle of a window, and the
/// wall clock would charge that time to the code under test. The process's CPU time does not
/// (what the other process does to the caches still shows). Every figure is per core (per CPU
/// second, summed over the polling thread and the worker threads), so rates are computed on
/// CPU time; [`cpu_share`] says how much CPU per wall second the runs had (above 1.0 with
/// worker threads on both cores).
pub struct Stopwatch {
    wall: std::time::Instant,
    cpu: u64,
}

impl Stopwatch {
    /// Starts.
    pub fn start() -> Self {
        Stopwatch { wall: std::time::Instant::now(), cpu: thread_cpu_ns() }
    }

    /// Seconds of CPU time since the start (the wall clock's where no CPU clock is available).
    pub fn secs(&self) -> f64 {
        let wall = self.wall.elapsed().as_nanos() as u64;
        let cpu = thread_cpu_ns().saturating_sub(self.cpu);
        TIMED_WALL_NS.fetch_add(wall, Ordering::Relaxed);
        TIMED_CPU_NS.fetch_add(cpu, Ordering::Relaxed);
        let ns = if cpu > 0 { cpu } else { wall };
        ns.max(1) as f64 / 1e9
    }
}

/// CPU time over wall time of every timed run so far (1.0: the core was ours throughout).
pub fn cpu_share() -> f64 {
    let wall = TIMED_WALL_NS.load(Ordering::Relaxed);
    if wall == 0 { 1.0 } else { TIMED_CPU_NS.load(Ordering::Relaxed) as f64 / wall as f64 }
}

/// A TCP segment over IPv4, as the builder writes it.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IP source.
    pub src: Ipv4Addr,
    /// IP destination.
    pub dst: Ipv4Addr,
    /// TCP source port.
    pub sport: u16,
    /// TCP destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// TCP flags (FIN 1, SYN 2, RST 4, ACK 16).
    pub flags: u8,
    /// Payload bytes (zeros).
    pub payload: usize,
}

/// TCP flag SYN.
pub const SYN: u8 = 0x02;
/// TCP flag ACK.
pub const ACK: u8 = 0x10;

fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes `s` into `out` (cleared first): Ethernet, IPv4 (TTL 64, DF), TCP without options,
/// every checksum computed. Its own code, independent of the crates under test.
pub fn write_seg(s: &Seg, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&s.dst_mac);
    out.extend_from_slice(&s.src_mac);
    out.extend_from_slice(&[0x08, 0x00]);
    let total = (40 + s.payload) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&s.src.octets());
    ip[16..20].copy_from_slice(&s.dst.octets());
    let c = fold(sum16(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&ip);
    let l4 = out.len();
    out.extend_from_slice(&s.sport.to_be_bytes());
    out.extend_from_slice(&s.dport.to_be_bytes());
    out.extend_from_slice(&s.seq.to_be_bytes());
    out.extend_from_slice(&s.ack.to_be_bytes());
    out.extend_from_slice(&[0x50, s.flags, 0x72, 0x10, 0, 0, 0, 0]);
    out.resize(out.len() + s.payload, 0);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&s.src.octets());
    pseudo[4..8].copy_from_slice(&s.dst.octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&((20 + s.payload) as u16).to_be_bytes());
    let c = fold(sum16(sum16(0, &pseudo), &out[l4..]));
    out[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// The endpoints of a captured IPv4/TCP header: (source, source port, destination, port).
pub fn endpoints(h: &[u8; HEAD]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let a = |o: usize| Ipv4Addr::new(h[o], h[o + 1], h[o + 2], h[o + 3]);
    let p = |o: usize| u16::from_be_bytes([h[o], h[o + 1]]);
    (a(26), p(34), a(30), p(36))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_writes_frames_the_slow_path_accepts() {
        let mut f = Vec::new();
        let s = Seg {
            src_mac: ROUTER_MAC,
            dst_mac: P0_MAC,
            src: Ipv4Addr::new(100, 64, 0, 1),
            dst: VIP,
            sport: 1234,
            dport: 80,
            seq: 7,
            ack: 0,
            flags: SYN,
            payload: 3,
        };
        write_seg(&s, &mut f);
        assert_eq!(f.len(), 57);
        let pkt = slowpath::packet::parse(&f).unwrap();
        assert!(slowpath::packet::verify_checksums(&f, &pkt), "checksums as the slow path computes them");
        let mut h = [0u8; HEAD];
        h.copy_from_slice(&f[..HEAD]);
        assert_eq!(endpoints(&h), (s.src, 1234, VIP, 80));
    }
}
