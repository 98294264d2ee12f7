//! The engine: the device side of the slow path and what drives the workers.
//!
//! It owns the flow table ([`flow_offload::FlowTable`], the only writer of the NIC's table,
//! which keeps the command and event rings), the device's packet queues
//! ([`host_driver::Queues`]: the exception rings, the inject ring, their frame pool, lent by
//! the table's driver at start and taken again after the device was brought back), the network layer ([`crate::network::Network`]), the control plane's services, the host's own
//! interfaces, and the workers. One [`Engine::poll`] round takes each worker's exception ring
//! in a batch, lets the worker decide, applies what it asked for (packets routed and injected,
//! flows installed or removed in one batch of commands with one doorbell), hands the NIC's
//! events to their workers, and lets time act (connection timeouts, neighbour retries).
//!
//! Each worker owns its ring, its connections and its port slice and shares nothing with another
//! on the packet path. With more than one worker, workers 1..n run on threads of their own
//! between the serial phases that touch the device (`pool`); the result is the same as running
//! them in turn, so `replay` and the tests are deterministic either way.
//!
//! Submodules: `apply` (an [`Out`] made real), `arp_nd` (answering and learning from ARP and neighbour discovery),
//! `bank` (one NIC counter set per real server, read in bulk into the servers' counters),
//! `control` (services at run time, the flow listing, statistics), `pool` (worker threads),
//! `sync` (connection sync: events to the peers, their standby copies, LIP take-over).

mod apply;
mod arp_nd;
mod bank;
mod control;
mod pool;
mod sync;

pub use control::{ConnInfo, EngineStats, HostSide, Location};

use crate::conn::{OffloadPolicy, Timeouts};
use crate::laddr::PortRange;
use crate::network::{Network, PortConf, RouteConf};
use crate::service::{ServiceConfig, ServiceTable, Services};
use crate::worker::{COOKIE_SLOT_BITS, Out, Punt, Worker, WorkerConfig};
use flow_offload::{DeviceCheck, FlowEvent, FlowTable};
use host_driver::{Exception, Queues};
use rtl_spec::codes::PuntReason;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

/// Frames taken from one exception ring per round.
pub const BATCH: usize = 64;

/// How often the engine checks that the NIC was not reset behind its back (ns).
pub const CHECK_NS: u64 = 200_000_000;

/// The host's own interface on a port (a TAP): frames for the port's own addresses go there,
/// and what the kernel sends on it goes out of the port.
pub trait HostPort: Send {
    /// Hands a frame to the host.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
    /// Takes up to `max` frames the host sent (never blocks).
    fn recv(&mut self, out: &mut Vec<Vec<u8>>, max: usize) -> std::io::Result<usize>;
}

/// Everything the engine is built from.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Workers (a power of two; one exception ring each).
    pub workers: u16,
    /// Per-state timeouts.
    pub timeouts: Timeouts,
    /// When connections are offloaded.
    pub policy: OffloadPolicy,
    /// LIP ports and quarantine.
    pub ports_range: PortRange,
    /// Half-open connections per worker.
    pub half_open_limit: u32,
    /// Half-open connections per client address in each worker (0: no limit).
    pub half_open_per_source: u32,
    /// Answer ICMP echo to VIPs.
    pub icmp_echo: bool,
    /// The Ethernet ports, in the NIC's port order.
    pub ports: Vec<PortConf>,
    /// Static routes.
    pub routes: Vec<RouteConf>,
    /// Static neighbours (port, address, MAC).
    pub neighbors: Vec<(u8, IpAddr, [u8; 6])>,
    /// The virtual services at start (more may be added at run time).
    pub services: Vec<ServiceConfig>,
    /// Run workers 1..n on threads of their own (with more than one worker). The result is
    /// the same as without; only the time differs.
    pub parallel: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let w = WorkerConfig::default();
        EngineConfig {
            workers: 1,
            timeouts: w.timeouts,
            policy: w.policy,
            ports_range: w.ports,
            half_open_limit: w.half_open_limit,
            half_open_per_source: w.half_open_per_source,
            icmp_echo: w.icmp_echo,
            ports: Vec::new(),
            routes: Vec::new(),
            neighbors: Vec::new(),
            services: Vec::new(),
            parallel: true,
        }
    }
}

/// Why the engine could not start or apply a change.
#[derive(Debug)]
pub enum EngineError {
    /// The configuration does not hold together.
    Config(String),
    /// The device failed.
    Device(host_driver::DriverError),
    /// A service change was refused.
    Service(crate::service::ServiceError),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Config(m) => write!(f, "{m}"),
            EngineError::Device(e) => write!(f, "{e}"),
            EngineError::Service(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<host_driver::DriverError> for EngineError {
    fn from(e: host_driver::DriverError) -> Self {
        EngineError::Device(e)
    }
}

impl From<crate::service::ServiceError> for EngineError {
    fn from(e: crate::service::ServiceError) -> Self {
        EngineError::Service(e)
    }
}

/// Counters of the device side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceSideStats {
    /// Punted packets received from the NIC.
    pub punted: u64,
    /// Frames injected (sent by the host path).
    pub injected: u64,
    /// Frames that found the inject ring full and were dropped.
    pub inject_full: u64,
    /// Frames not sent because the NIC was lost (see `flow_offload::health`).
    pub device_lost: u64,
    /// IP packets over the egress port's MTU, dropped.
    pub over_mtu: u64,
    /// Frames handed to the host's interfaces.
    pub to_host: u64,
    /// Frames for a host interface that does not exist (no TAP on that port), dropped.
    pub no_host: u64,
    /// Frames the host sent out of a port.
    pub from_host: u64,
    /// Installs refused because the NIC's table was full.
    pub install_full: u64,
    /// Installs refused for another reason (logged).
    pub install_invalid: u64,
    /// Packets handed from one worker to another.
    pub handoffs: u64,
    /// Rounds a worker ran on a thread of its own (rounds with packets for it; a round without
    /// runs its timers in place, without waking its thread).
    pub thread_rounds: u64,
    /// NIC flow events received.
    pub events: u64,
    /// NIC error events.
    pub device_errors: u64,
    /// Flows adopted from the NIC at start.
    pub adopted: u64,
}

/// The slow path and its device.
pub struct Engine {
    flows: FlowTable,
    /// The exception and inject rings, lent by the flow table's driver.
    queues: Queues,
    net: Network,
    workers: Vec<Worker>,
    /// Spare workers swapped in while a worker is away on its thread.
    spares: Vec<Worker>,
    pool: Option<pool::Pool>,
    batches: Vec<Vec<Punt>>,
    services: Services,
    table: Arc<ServiceTable>,
    /// Every LIP of the current snapshot (the source of ARP/ND requests where a port has no
    /// address of the family), kept with the snapshot rather than rebuilt per round.
    pub(crate) lips: Vec<IpAddr>,
    host: Vec<Option<Box<dyn HostPort>>>,
    cfg: EngineConfig,
    out: Out,
    handoffs: Vec<VecDeque<Punt>>,
    stats: DeviceSideStats,
    exceptions: Vec<Exception>,
    events: Vec<FlowEvent>,
    frame: Vec<u8>,
    now_ns: u64,
    next_check_ns: u64,
    /// The NIC's counter sets, one per real server of each service.
    banks: bank::Banks,
    /// `[sync]`: the workers' event queue, the peers' LIPs, and those taken over.
    sync: Option<crate::sync::SyncQueue>,
    peer_lips: Vec<IpAddr>,
    taken: Vec<IpAddr>,
    /// Peers' LIPs of peers alive now (the daemon's word): not taken over on an activation.
    live_peer_lips: Vec<IpAddr>,
    /// Peers' LIPs whose copies were made active while their peer lived.
    deferred: Vec<IpAddr>,
    /// A resync under way: the worker and slot it goes on from.
    sync_dump: Option<(usize, u32)>,
    /// Peers' LIPs taken over whose announcement is repeated: when next, and how many more.
    reannounce: Vec<(IpAddr, u64, u8)>,
}

impl Engine {
    /// Builds the engine over a table (whose NIC has `cfg.workers` exception rings), at time
    /// `now_ns`.
    pub fn new(mut flows: FlowTable, cfg: EngineConfig, now_ns: u64) -> Result<Engine, EngineError> {
        if !cfg.workers.is_power_of_two() || cfg.workers > 16 {
            return Err(EngineError::Config(format!(
                "workers = {}: expected a power of two up to 16",
                cfg.workers
            )));
        }
        let mut services = Services::default();
        for s in &cfg.services {
            services.add_service(s.clone())?;
        }
        let table = services.snapshot();
        let mut queues = flows.take_queues().ok_or_else(|| {
            EngineError::Config("the device's queues were lent to another owner already".into())
        })?;
        let next_hops = flows.next_hop_capacity().min(u32::from(u16::MAX)) as u16;
        let mut net = Network::new(cfg.ports.clone(), &cfg.routes, next_hops).map_err(EngineError::Config)?;
        for &(port, addr, mac) in &cfg.neighbors {
            net.add_static(port, addr, mac);
        }
        let wcfg = WorkerConfig {
            workers: cfg.workers,
            timeouts: cfg.timeouts,
            policy: cfg.policy,
            ports: cfg.ports_range,
            half_open_limit: cfg.half_open_limit,
            half_open_per_source: cfg.half_open_per_source,
            icmp_echo: cfg.icmp_echo,
            steer_seed: queues.steer_seed()?,
            seeds: flows.seeds(),
            min_mtu: cfg.ports.iter().map(|p| p.mtu).min().unwrap_or(1500).min(65535) as u16,
        };
        let workers: Vec<Worker> =
            (0..cfg.workers).map(|w| Worker::new(w, wcfg, table.clone(), now_ns)).collect();
        let parallel = cfg.parallel && cfg.workers > 1;
        let spares = if parallel {
            (1..cfg.workers).map(|w| Worker::new(w, wcfg, table.clone(), now_ns)).collect()
        } else {
            Vec::new()
        };
        let mut engine = Engine {
            host: (0..cfg.ports.len()).map(|_| None).collect(),
            handoffs: (0..cfg.workers).map(|_| VecDeque::new()).collect(),
            pool: parallel.then(|| pool::Pool::new(cfg.workers)),
            batches: (0..cfg.workers).map(|_| Vec::new()).collect(),
            spares,
            flows,
            queues,
            net,
            workers,
            services,
            table,
            lips: Vec::new(),
            cfg,
            out: Out::default(),
            stats: DeviceSideStats::default(),
            exceptions: Vec::with_capacity(BATCH),
            events: Vec::new(),
            frame: Vec::with_capacity(2048),
            now_ns,
            next_check_ns: now_ns + CHECK_NS,
            banks: bank::Banks::default(),
            sync: None,
            sync_dump: None,
            reannounce: Vec::new(),
            peer_lips: Vec::new(),
            taken: Vec::new(),
            live_peer_lips: Vec::new(),
            deferred: Vec::new(),
        };
        engine.program_steering()?;
        Ok(engine)
    }

    /// Tells the NIC which addresses are LIPs, so a server's reply reaches the worker that owns
    /// its port (the filter holds 16; replies to further LIPs are handed over by the workers).
    fn program_steering(&mut self) -> Result<(), EngineError> {
        self.lips = self.table.lips();
        let mut lips = self.lips.clone();
        lips.extend(self.peer_lips.iter().filter(|l| !self.lips.contains(l)));
        if lips.len() > 16 {
            tracing::warn!(
                lips = lips.len(),
                "more local addresses than the NIC's LIP filter holds (16): the rest are steered by hash and handed over between workers"
            );
            lips.truncate(16);
        }
        let mask = u32::from(self.cfg.workers) - 1;
        self.queues.set_lip_steering(&lips, mask)?;
        Ok(())
    }

    /// Writes each port's MTU and MAC into the NIC (after a bring-up).
    pub fn configure_ports(&mut self) {
        for (n, p) in self.cfg.ports.iter().enumerate() {
            if let Err(e) = self.queues.configure_port(n as u8, p.mtu, p.mac) {
                tracing::warn!(port = %p.name, error = %e, "port settings not written");
            }
        }
    }

    /// Attaches the host's interface of port `port`.
    pub fn attach_host(&mut self, port: u8, host: Box<dyn HostPort>) {
        if let Some(slot) = self.host.get_mut(usize::from(port)) {
            *slot = Some(host);
        }
    }

    /// Takes the device's queues again once the ones held are no longer its rings (the device
    /// was reset or reconnected, by [`FlowTable::check_device`] or inside a commit that found it
    /// hung), and writes the ports' settings, reset with the rest. Returns whether it did.
    pub(super) fn retake_queues(&mut self) -> bool {
        if self.queues.is_live() {
            return false;
        }
        let Some(queues) = self.flows.take_queues() else { return false };
        self.queues = queues;
        self.configure_ports();
        true
    }

    /// The flow table (the NIC behind it).
    pub fn flows_ref(&self) -> &FlowTable {
        &self.flows
    }

    /// The flow table (and through it the NIC).
    pub fn flows(&mut self) -> &mut FlowTable {
        &mut self.flows
    }

    /// The network layer.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The workers.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// The configuration it runs.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The current service snapshot.
    pub fn services(&self) -> &Arc<ServiceTable> {
        &self.table
    }

    /// One round at time `now_ns`. Returns how many packets and events were handled (0: idle).
    pub fn poll(&mut self, now_ns: u64) -> usize {
        self.now_ns = now_ns;
        let mut work = 0;
        if now_ns >= self.next_check_ns {
            self.next_check_ns = now_ns + CHECK_NS;
            match self.flows.check_device() {
                DeviceCheck::Recovered => work += 1,
                DeviceCheck::Up | DeviceCheck::Faulted => {}
            }
            if !self.reannounce.is_empty() {
                self.repeat_announcements(now_ns);
            }
        }
        // After a recovery (here or in a commit) the rings are new: take them, and program
        // the ports' MTU and MAC registers, reset with the rest (steering is kept by the driver).
        self.retake_queues();
        if self.flows.fault().is_some() {
            // The NIC is lost (its registers read all ones): no rings are touched until it is
            // back. Timers still run; what they decide waits in the shadow.
            self.run_workers(now_ns);
            self.commit();
            return work;
        }
        work += self.gather();
        self.run_workers(now_ns);
        work += self.poll_events(now_ns);
        work += self.poll_host();
        let lips = &self.lips;
        self.net.tick(now_ns, |t| lips.iter().copied().find(|l| l.is_ipv6() == t.is_ipv6()));
        self.flush_network();
        self.commit();
        self.queues.flush_injects();
        work
    }

    /// Takes every exception ring's batch (and the packets handed over between workers) into
    /// the workers' batches. Returns how many.
    fn gather(&mut self) -> usize {
        let mut exceptions = std::mem::take(&mut self.exceptions);
        let mut n = 0;
        for w in 0..self.workers.len() {
            exceptions.clear();
            let got = self.queues.recv_exceptions(w, &mut exceptions, BATCH);
            self.stats.punted += got as u64;
            n += got;
            let batch = &mut self.batches[w];
            for e in exceptions.drain(..) {
                let hit = e
                    .desc
                    .flags
                    .hit()
                    .then(|| (flow_offload::Handle(e.desc.record.get()), e.desc.flags.reply()));
                batch.push(Punt {
                    port: e.desc.port,
                    reason: PuntReason::try_from(e.desc.reason).ok(),
                    hit,
                    frame: e.frame,
                });
            }
            n += self.handoffs[w].len();
            batch.extend(self.handoffs[w].drain(..));
        }
        self.exceptions = exceptions;
        n
    }

    /// Runs every worker's round (its batch, then its timers) — in parallel when there is a
    /// pool — then applies what each asked for, in worker order.
    fn run_workers(&mut self, now_ns: u64) {
        let mut away = Vec::new();
        if let Some(pool) = &self.pool {
            for w in 1..self.workers.len() {
                let Some(spare) = self.spares.pop() else { break };
                let worker = std::mem::replace(&mut self.workers[w], spare);
                let mut out = Out::default();
                out.spent.push(self.queues.buffer());
                let mut job = pool::Job { worker, punts: std::mem::take(&mut self.batches[w]), now_ns, out };
                // A worker with no packets this round has only its timers to run: here, not
                // worth a wake-up of its thread and a wait for it (an idle appliance polls often).
                let ran_here = if job.punts.is_empty() {
                    pool::run_job(&mut job);
                    Some(job)
                } else {
                    self.stats.thread_rounds += 1;
                    pool.start(w, job)
                };
                away.push((w, ran_here));
            }
        }
        // Worker 0 (every worker, without a pool) runs here meanwhile.
        let here = if self.pool.is_some() { 1 } else { self.workers.len() };
        for w in 0..here.min(self.workers.len()) {
            let mut out = std::mem::take(&mut self.out);
            out.spent.push(self.queues.buffer());
            let mut punts = std::mem::take(&mut self.batches[w]);
            for p in punts.drain(..) {
                self.workers[w].handle(p, now_ns, &mut out);
            }
            self.workers[w].advance(now_ns, &mut out);
            self.batches[w] = punts;
            self.apply(w, &mut out, now_ns);
            self.out = out;
        }
        for (w, ran_here) in away {
            let job = match ran_here {
                Some(job) => Some(job),
                None => self.pool.as_ref().and_then(|p| p.finish(w)),
            };
            let Some(job) = job else { continue };
            let spare = std::mem::replace(&mut self.workers[w], job.worker);
            self.spares.push(spare);
            self.batches[w] = job.punts;
            let mut out = job.out;
            self.apply(w, &mut out, now_ns);
        }
    }

    fn poll_events(&mut self, now_ns: u64) -> usize {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let n = self.flows.poll_events(&mut events, 256);
        self.stats.events += n as u64;
        for e in events.drain(..) {
            match e {
                FlowEvent::Flow { handle, cookie, cause, counters } => {
                    let w = (cookie >> COOKIE_SLOT_BITS) as usize;
                    if w < self.workers.len() {
                        let mut out = std::mem::take(&mut self.out);
                        self.workers[w].on_flow_event(cookie, handle, cause, counters, now_ns, &mut out);
                        self.apply(w, &mut out, now_ns);
                        self.out = out;
                    }
                }
                FlowEvent::DeviceError(code, detail) => {
                    self.stats.device_errors += 1;
                    tracing::warn!(?code, detail, "the NIC reported an error");
                }
            }
        }
        self.events = events;
        n
    }
}
