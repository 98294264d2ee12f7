//! New connections per second: the whole first-packet path, driven as a client and a server
//! would drive it, in batches.
//!
//! One batch of `b` connections is three rounds: `b` SYNs into p0 (missed, punted, scheduled,
//! a LIP port allocated, the connection created, the SYN rewritten and injected toward its
//! server); the servers' `b` SYN-ACKs into p1, built from the SYNs the bench captured (punted,
//! steered to the worker owning the LIP port, rewritten back to the client); the clients' `b`
//! ACKs into p0 (the handshake completes, the flow record is built and installed through the
//! command ring, its completion reaped, the ACK forwarded). Each round is one or more
//! `Engine::poll` calls. A connection counts only when its flow is in the NIC's table (the
//! table's occupancy), so a connection left on the host path is not counted as set up.
//!
//! The model's clock moves 100 ns per connection: time passes (the timer wheel and the ager
//! run) but no connection times out during a run.
//!
//! The ramp ([`ramp`]) sets up connections in one appliance up to each checkpoint of flows
//! and measures windows there (scaling), then on until something refuses (memory).

use super::memory as mem;
use super::report::Summary;
use super::rig::{self, ACK, P0_MAC, P1_MAC, ROUTER_MAC, Rig, SYN, Seg, Topology, VIP, VIP_PORT};
use sim_model::clock::Clock;
use slowpath::sched::SchedulerKind;
use std::time::{Duration, Instant};

/// Connections per batch (the engine takes up to 64 punts per ring and round).
pub const BATCH: usize = 64;
/// Frames a port hands the model at once (the daemon's ports read bursts of 32).
const PORT_BURST: usize = 32;
const CLIENT_ISN: u32 = 100;
const SERVER_ISN: u32 = 5000;
const STEP_NS: u64 = 100;

/// Drives connections through a [`Rig`].
pub struct Driver {
    /// The appliance.
    pub rig: Rig,
    next: u64,
    /// One round's frames, built before the model receives them as a port delivers them.
    frames: Vec<Vec<u8>>,
    syns: Vec<[u8; rig::HEAD]>,
    /// Connections the clients started (SYNs sent).
    pub started: u64,
    faults: u64,
    timed: u64,
}

/// What one call of [`Driver::connect`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    /// Connections whose flow went into the NIC's table.
    pub installed: u64,
    /// SYNs that did not reach a server (refused: no port, limits).
    pub refused: u64,
}

impl Driver {
    /// A driver over a new appliance of `t` with a model of `records` records.
    pub fn new(t: Topology, records: u32) -> anyhow::Result<Self> {
        let mut rig = rig::rig(t, records)?;
        // The NIC must answer first: an appliance whose engine cannot install is no benchmark.
        rig.engine.poll(rig.model.clock.now_ns());
        Ok(Driver {
            rig,
            next: 0,
            frames: (0..BATCH).map(|_| Vec::with_capacity(128)).collect(),
            syns: Vec::with_capacity(BATCH),
            started: 0,
            faults: 0,
            timed: 0,
        })
    }

    /// The first `n` built frames into the model on `port`, in bursts of [`PORT_BURST`] as a
    /// port's receive ring hands them over.
    fn deliver(&mut self, port: u8, n: usize) {
        let frames = &self.frames[..n];
        self.rig.model.shared.with_device(|d| {
            let mut burst: [(u8, &[u8]); PORT_BURST] = [(port, &[]); PORT_BURST];
            for chunk in frames.chunks(PORT_BURST) {
                for (slot, f) in burst.iter_mut().zip(chunk) {
                    *slot = (port, f.as_slice());
                }
                d.receive_burst(&burst[..chunk.len()]);
            }
        });
    }

    fn now(&self) -> u64 {
        self.rig.model.clock.now_ns()
    }

    /// Polls until `done` says the round is over (at most 16 polls: a round that moves nothing
    /// more is over too).
    fn poll_round(&mut self, mut done: impl FnMut(&Rig) -> bool) {
        let now = self.now();
        for _ in 0..16 {
            let work = self.rig.engine.poll(now);
            if done(&self.rig) || work == 0 {
                return;
            }
        }
    }

    /// One batch of `b` connections, from the SYN to the installed flow. Returns how many
    /// SYNs reached a server.
    fn batch(&mut self, b: usize, syns: &mut Vec<[u8; rig::HEAD]>) -> u64 {
        let first = self.next;
        self.next += b as u64;
        self.started += b as u64;
        // SYNs, client → VIP.
        for (n, frame) in (first..first + b as u64).zip(&mut self.frames) {
            let (ip, port) = rig::client(n);
            write_seg(frame, (ip, port), (VIP, VIP_PORT), (CLIENT_ISN, 0), SYN, (ROUTER_MAC, P0_MAC));
        }
        self.deliver(0, b);
        syns.clear();
        let p1 = self.rig.model.p1.clone();
        self.poll_round(|_| {
            p1.drain(|h| syns.extend_from_slice(h));
            syns.len() >= b
        });
        let got = syns.len();
        // SYN-ACKs, server → LIP, from the server each SYN went to (a frame for each, should the
        // servers' side have seen more than the round's SYNs).
        if self.frames.len() < got {
            self.frames.resize_with(got, || Vec::with_capacity(128));
        }
        for (h, frame) in syns.iter().zip(&mut self.frames) {
            let (lip, lport, rs, rport) = rig::endpoints(h);
            let rs_mac = [h[0], h[1], h[2], h[3], h[4], h[5]];
            let seq = (SERVER_ISN, CLIENT_ISN + 1);
            write_seg(frame, (rs, rport), (lip, lport), seq, SYN | ACK, (rs_mac, P1_MAC));
        }
        self.deliver(1, got);
        let p0 = self.rig.model.p0.clone();
        let p0_before = p0.sent();
        self.poll_round(|_| p0.sent() >= p0_before + got as u64);
        // ACKs, client → VIP: the handshake completes and the flow is installed.
        for (n, frame) in (first..first + b as u64).zip(&mut self.frames) {
            let (ip, port) = rig::client(n);
            let seq = (CLIENT_ISN + 1, SERVER_ISN + 1);
            write_seg(frame, (ip, port), (VIP, VIP_PORT), seq, ACK, (ROUTER_MAC, P0_MAC));
        }
        self.deliver(0, b);
        let mut acks = 0;
        self.poll_round(|r| {
            acks += r.model.p1.drain(<[_]>::len);
            acks >= got
        });
        self.rig.model.clock.advance(STEP_NS * b as u64);
        got as u64
    }

    /// Sets up `n` connections (in batches of [`BATCH`]).
    pub fn connect(&mut self, n: u64) -> Outcome {
        let before = self.rig.engine.flows().occupancy();
        let mut reached = 0;
        let mut left = n;
        let mut syns = std::mem::take(&mut self.syns);
        while left > 0 {
            let b = left.min(BATCH as u64) as usize;
            reached += self.batch(b, &mut syns);
            left -= b as u64;
        }
        self.syns = syns;
        let after = self.rig.engine.flows().occupancy();
        Outcome { installed: u64::from(after.saturating_sub(before)), refused: n - reached.min(n) }
    }

    /// Connections the workers hold.
    pub fn held(&self) -> u64 {
        self.rig.engine.workers().iter().map(|w| w.conn_count() as u64).sum()
    }

    /// Flows in the NIC's table, and its capacity.
    pub fn occupancy(&mut self) -> (u32, u32) {
        let cap = self.rig.engine.flows().nic_ref().info().geometry.records;
        (self.rig.engine.flows().occupancy(), cap)
    }

    /// Times `n` connections: connections installed per second.
    pub fn window(&mut self, n: u64) -> (f64, Outcome) {
        let faults = rig::minor_faults();
        let t = rig::Stopwatch::start();
        let o = self.connect(n);
        let rate = o.installed as f64 / t.secs();
        self.faults += rig::minor_faults() - faults;
        self.timed += n;
        (rate, o)
    }

    /// Minor page faults per connection in the timed windows so far.
    pub fn faults_per_conn(&self) -> f64 {
        if self.timed == 0 { 0.0 } else { self.faults as f64 / self.timed as f64 }
    }
}

/// Builds a TCP segment without payload: (address, port) both ends, (seq, ack), flags, MACs.
fn write_seg(
    out: &mut Vec<u8>,
    src: (std::net::Ipv4Addr, u16),
    dst: (std::net::Ipv4Addr, u16),
    seq_ack: (u32, u32),
    flags: u8,
    macs: ([u8; 6], [u8; 6]),
) {
    let s = Seg {
        src_mac: macs.0,
        dst_mac: macs.1,
        src: src.0,
        dst: dst.0,
        sport: src.1,
        dport: dst.1,
        seq: seq_ack.0,
        ack: seq_ack.1,
        flags,
        payload: 0,
    };
    rig::write_seg(&s, out);
}

/// The topology of every cps run: 64 servers and 16 LIPs (66M ports), so neither the port
/// pools nor the 120 s quarantine limit a run. 16 is as many LIPs as the NIC's LIP filter
/// holds: with more, servers' replies to the others are steered by hash, half of them to the
/// wrong worker, and two workers measure their hand-offs.
pub fn topology(workers: u16) -> Topology {
    Topology { workers, servers: 64, lips: 16, scheduler: SchedulerKind::Rr }
}

/// The connection ramp's topology (one worker, so no steering to get wrong): 32 LIPs, 132M
/// ports, so the memory run's 100M connections are not limited by ports.
pub fn ramp_topology() -> Topology {
    Topology { workers: 1, servers: 64, lips: 32, scheduler: SchedulerKind::Rr }
}

/// How a cps measurement runs.
#[derive(Clone, Copy, Debug)]
pub struct CpsPlan {
    /// Connections per timed window.
    pub window: u64,
    /// Timed windows.
    pub runs: usize,
    /// Untimed connections first.
    pub warmup: u64,
    /// NIC records.
    pub records: u32,
}

/// Connections per second with `workers` workers: the median of the windows.
pub fn cps(workers: u16, plan: CpsPlan) -> anyhow::Result<(Summary, String)> {
    let mut d = Driver::new(topology(workers), plan.records)?;
    d.connect(plan.warmup);
    let mut samples = Vec::new();
    let mut short = 0;
    for _ in 0..plan.runs {
        let (rate, o) = d.window(plan.window);
        short += plan.window - o.installed;
        samples.push(rate);
    }
    let (occ, _) = d.occupancy();
    let stats = d.rig.engine.stats();
    let pending = d.rig.engine.flows().pending();
    let note = format!(
        "{workers} worker(s), workers 1..n on threads of their own, rate per CPU second of the process; {occ} flows installed, {} moves, {pending} commands pending, {short} not installed; {:.3} page faults per connection",
        stats.table.moves,
        d.faults_per_conn()
    );
    Ok((Summary::of(&samples), note))
}

/// How the ramp runs.
#[derive(Clone, Debug)]
pub struct RampPlan {
    /// NIC records.
    pub records: u32,
    /// Flow counts at which windows are measured.
    pub checkpoints: Vec<u64>,
    /// Windows at each checkpoint.
    pub runs: usize,
    /// After the checkpoints, go on until a limit.
    pub to_limit: bool,
    /// Stop when the process's resident memory passes this.
    pub rss_cap: u64,
    /// Stop after this long.
    pub time_budget: Duration,
    /// Stop at this many connections.
    pub max_conns: u64,
}

/// One checkpoint of the ramp.
#[derive(Clone, Debug)]
pub struct RampPoint {
    /// Connections held when it was measured.
    pub flows: u64,
    /// Connections per second there.
    pub cps: Summary,
    /// Heap in use (malloc's count), bytes.
    pub heap: u64,
    /// Resident memory, bytes.
    pub rss: u64,
}

/// What the ramp found.
#[derive(Clone, Debug, Default)]
pub struct RampOutcome {
    /// The checkpoints.
    pub points: Vec<RampPoint>,
    /// Connections held at the end.
    pub held: u64,
    /// Of which in the NIC's table.
    pub offloaded: u64,
    /// What stopped it.
    pub limit: String,
    /// Seconds from the first SYN to the stop.
    pub secs: f64,
    /// Heap and RSS after the appliance was built (no connection), bytes.
    pub base: (u64, u64),
    /// Heap and RSS at the end, bytes.
    pub end: (u64, u64),
    /// Host heap bytes per connection between the first and the last checkpoint (connection
    /// table only: the shadow and the model are allocated before).
    pub heap_per_conn: f64,
    /// Connections held and seconds elapsed when the NIC's table first refused an install.
    pub nic_full_at: Option<(u64, f64)>,
}

/// The connections of one timed window at `flows` connections.
fn window_at(flows: u64) -> u64 {
    (flows / 4).clamp(250, 20_000)
}

/// Sets up connections up to each checkpoint, measuring windows there, then (with `to_limit`)
/// on until a limit.
pub fn ramp(plan: &RampPlan, mut progress: impl FnMut(&str)) -> anyhow::Result<RampOutcome> {
    let mut d = Driver::new(ramp_topology(), plan.records)?;
    let mut out = RampOutcome { base: (mem::heap(), mem::rss()), ..RampOutcome::default() };
    let t0 = Instant::now();
    for &c in &plan.checkpoints {
        let w = window_at(c);
        let have = d.held();
        if c > have {
            d.connect(c - have);
        }
        let mut samples = Vec::new();
        for _ in 0..plan.runs {
            samples.push(d.window(w).0);
        }
        let p = RampPoint { flows: d.held(), cps: Summary::of(&samples), heap: mem::heap(), rss: mem::rss() };
        progress(&format!(
            "ramp: {} connections, {:.0} conn/s, {:.3} page faults per connection so far",
            p.flows,
            p.cps.median,
            d.faults_per_conn()
        ));
        out.points.push(p);
    }
    out.limit = "checkpoints done".into();
    if plan.to_limit {
        let mut chunk = 4096;
        let cap = d.occupancy().1;
        let mut next_report = ((d.held() >> 20) + 1) << 20;
        loop {
            if t0.elapsed() > plan.time_budget {
                out.limit = format!("time budget ({} s)", plan.time_budget.as_secs());
                break;
            }
            if mem::rss() > plan.rss_cap {
                out.limit = format!("memory cap (RSS over {} GiB)", plan.rss_cap >> 30);
                break;
            }
            if d.held() >= plan.max_conns {
                out.limit = format!("connection cap ({})", plan.max_conns);
                break;
            }
            let o = d.connect(chunk);
            if out.nic_full_at.is_none() && o.installed + o.refused < chunk {
                out.nic_full_at = Some((d.held(), t0.elapsed().as_secs_f64()));
                progress(&format!(
                    "limit run: the NIC's table refused its first install at {} connections",
                    d.held()
                ));
                chunk = 256;
            }
            if o.refused > 0 {
                let s = d.rig.engine.stats();
                let drops: Vec<String> = s.workers[0]
                    .drops
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                out.limit = format!("the host refused connections ({})", drops.join(", "));
                break;
            }
            if d.held() >= next_report {
                next_report += 1 << 20;
                let (occ, _) = d.occupancy();
                progress(&format!(
                    "limit run: {} connections ({occ} of {cap} in the NIC), RSS {} MiB, {:.0} s",
                    d.held(),
                    mem::rss() >> 20,
                    t0.elapsed().as_secs_f64()
                ));
            }
        }
    }
    out.secs = t0.elapsed().as_secs_f64();
    out.held = d.held();
    out.offloaded = u64::from(d.occupancy().0);
    out.end = (mem::heap(), mem::rss());
    // Over the whole run (the appliance was built, shadow and model allocated, before `base`):
    // what the connection table holds per connection, the capacity its vectors and maps have
    // grown to included.
    if out.held > 0 {
        out.heap_per_conn = out.end.0.saturating_sub(out.base.0) as f64 / out.held as f64;
    }
    Ok(out)
}
