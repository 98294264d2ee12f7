//! Packets per second through the model's datapath on hits: 64-byte frames (60 bytes without
//! the FCS: Ethernet, IPv4, TCP, 6 bytes of payload), in batches of 32, each to a flow drawn
//! uniformly at random from the `n` installed (either direction), so that the table's size
//! shows as cache misses.
//!
//! Each batch takes the model once (one lock, as a burst from the wire) and hands it 32 frames
//! with `Device::receive_burst`; the model parses all, hashes each once, prefetches each key's
//! first bucket, then the record its matching slot names (or the second bucket, then its
//! record), then looks up (two buckets, then the stash), rewrites and sends on the egress port,
//! a counting sink that takes its lock once per burst. Frames are two templates (one per direction)
//! whose addresses and ports are patched per packet: the datapath never verifies checksums
//! (it updates them by the record's delta), so no checksum is recomputed, and the patching is
//! timed alone and reported so it can be subtracted. Every run checks that each packet hit.

use super::insert;
use super::report::Summary;
use super::rig::{self, Model, P0_MAC, P1_MAC, ROUTER_MAC};
use flow_offload::{FlowTable, Handle};
use rtl_spec::regs::counters;
use std::net::Ipv4Addr;
use std::time::Instant;

/// Frames per batch.
pub const BURST: usize = 32;
/// Bytes of a frame without the FCS (64 on the wire).
pub const FRAME: usize = 60;

/// xorshift64*: the random flows (fast, and the same sequence every run).
#[derive(Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn template(src: (Ipv4Addr, [u8; 6]), dst: (Ipv4Addr, [u8; 6])) -> Vec<u8> {
    let mut f = Vec::new();
    let s = rig::Seg {
        src_mac: src.1,
        dst_mac: dst.1,
        src: src.0,
        dst: dst.0,
        sport: 1,
        dport: 1,
        seq: 1000,
        ack: 2000,
        flags: rig::ACK,
        payload: FRAME - 54,
    };
    rig::write_seg(&s, &mut f);
    f
}

/// Writes into `buf` the hit frame of flow `n` in one direction; returns the ingress port.
fn patch(buf: &mut [u8], n: u32, reply: bool) -> u8 {
    let f = insert::flow(n);
    let t = if reply { f.reply } else { f.orig };
    buf[26..30].copy_from_slice(&t.src_addr[..4]);
    buf[30..34].copy_from_slice(&t.dst_addr[..4]);
    buf[34..36].copy_from_slice(&t.src_port.get().to_be_bytes());
    buf[36..38].copy_from_slice(&t.dst_port.get().to_be_bytes());
    u8::from(reply)
}

/// A table with flows installed, and the frames that hit them.
pub struct Hits {
    model: Model,
    table: FlowTable,
    handles: Vec<Handle>,
    bufs: Vec<Vec<u8>>,
    ports: [u8; BURST],
    rng: Rng,
}

impl Hits {
    /// A model of `records` records, empty.
    pub fn new(records: u32) -> anyhow::Result<Self> {
        let (model, table) = insert::table(records)?;
        let orig = template((Ipv4Addr::new(100, 64, 0, 0), ROUTER_MAC), (rig::VIP, P0_MAC));
        let reply = template((rig::rs_addr(0), rig::rs_mac(0)), (Ipv4Addr::new(10, 11, 0, 0), P1_MAC));
        let bufs = (0..BURST * 2).map(|i| if i % 2 == 0 { orig.clone() } else { reply.clone() }).collect();
        Ok(Hits { model, table, handles: Vec::new(), bufs, ports: [0; BURST], rng: Rng::new(0x5EED) })
    }

    /// Flows installed.
    pub fn flows(&self) -> u64 {
        self.handles.len() as u64
    }

    /// Installs flows up to `n` in all.
    pub fn grow(&mut self, n: u64) -> anyhow::Result<()> {
        let have = self.handles.len() as u32;
        let n = u32::try_from(n)?;
        if n > have {
            insert::fill(&mut self.table, have, n, &mut self.handles)?;
        }
        Ok(())
    }

    /// Draws the next burst: frame `i` of the burst in `bufs[2i]` (orig) or `bufs[2i+1]`.
    fn draw(&mut self) {
        let n = self.handles.len() as u64;
        for i in 0..BURST {
            let r = self.rng.next_u64();
            let flow = ((u128::from(r >> 1) * u128::from(n)) >> 63) as u32;
            let reply = r & 1 == 1;
            let b = &mut self.bufs[2 * i + usize::from(reply)];
            self.ports[i] = patch(b, flow, reply);
        }
    }

    fn buf(&self, i: usize) -> &[u8] {
        &self.bufs[2 * i + usize::from(self.ports[i])]
    }

    /// Sends `packets` hit frames (rounded up to bursts). Returns packets per second and
    /// checks that each one hit and was sent.
    pub fn run(&mut self, packets: u64) -> anyhow::Result<f64> {
        let bursts = packets.div_ceil(BURST as u64);
        let hits0 = self.hits();
        let start = rig::Stopwatch::start();
        for _ in 0..bursts {
            self.draw();
            let (bufs, ports) = (&self.bufs, &self.ports);
            self.model.shared.with_device(|d| {
                let mut burst: [(u8, &[u8]); BURST] = [(0, &[]); BURST];
                for (i, &p) in ports.iter().enumerate() {
                    burst[i] = (p, &bufs[2 * i + usize::from(p)]);
                }
                d.receive_burst(&burst);
            });
        }
        let secs = start.secs();
        let hits = self.hits() - hits0;
        let sent = bursts * BURST as u64;
        anyhow::ensure!(hits == sent, "{hits} hits of {sent} packets");
        Ok(sent as f64 / secs)
    }

    /// The harness alone (drawing and patching the frames): nanoseconds per packet.
    pub fn harness_ns(&mut self, packets: u64) -> f64 {
        let bursts = packets.div_ceil(BURST as u64);
        let start = rig::Stopwatch::start();
        let mut sum = 0u64;
        for _ in 0..bursts {
            self.draw();
            for i in 0..BURST {
                sum = sum.wrapping_add(u64::from(self.buf(i)[27]));
            }
        }
        std::hint::black_box(sum);
        start.secs() * 1e9 / (bursts * BURST as u64) as f64
    }

    fn hits(&self) -> u64 {
        self.model.shared.with_device(|d| d.read64(counters::BASE + counters::HITS))
    }
}

/// One measured table size.
#[derive(Clone, Debug)]
pub struct Point {
    /// Flows installed.
    pub flows: u64,
    /// Mpps.
    pub mpps: Summary,
    /// Harness cost per packet, ns (included in the Mpps).
    pub harness_ns: f64,
}

/// Mpps at each of `checkpoints` flows in one `records` table: `runs` runs of `packets`.
pub fn ramp(
    records: u32,
    checkpoints: &[u64],
    runs: usize,
    packets: u64,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<Point>> {
    let mut h = Hits::new(records)?;
    let mut out = Vec::new();
    for &c in checkpoints {
        let t = Instant::now();
        h.grow(c)?;
        progress(&format!("fastpath: {} flows installed in {:.1} s", h.flows(), t.elapsed().as_secs_f64()));
        h.run(packets / 4)?;
        let mut samples = Vec::new();
        for _ in 0..runs {
            samples.push(h.run(packets)? / 1e6);
        }
        let harness_ns = h.harness_ns(packets);
        out.push(Point { flows: h.flows(), mpps: Summary::of(&samples), harness_ns });
    }
    Ok(out)
}
