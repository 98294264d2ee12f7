//! A minimal host for the model: host memory, the device brought up as SPEC.md's bring-up page
//! says, and the ring bookkeeping a driver does, written only against `rtl_spec` (registers,
//! formats, ring rules). Small rings, so that making one per input is cheap.

use crate::flows::{Conn, GW_MAC, RS_MAC, next_hop};
use rtl_spec::codes::Opcode;
use rtl_spec::formats::{Completion, ExceptionDesc, FlowCommand, FlowRecord, IndexPos, NextHopEntry};
use rtl_spec::regs::{control, counters, doorbell_offset, flow_table, ports, punt, ring_id, rings};
use rtl_spec::ring::phase_for;
use sim_model::clock::ManualClock;
use sim_model::device::{Device, ModelConfig};
use sim_model::mem::{DmaMemory, RegionMemory};
use sim_model::port::{MemoryPort, MemoryPortHandle};
use std::sync::Arc;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

/// Ring size (log2) of every ring.
pub const LOG2: u32 = 6;
const CMD: u64 = 0x10_0000;
const CPL: u64 = 0x20_0000;
const INJ: u64 = 0x30_0000;
const EVT: u64 = 0x40_0000;
/// Where `Read` commands may write a record.
pub const READ_BUF: u64 = 0x7000_0000;
const fn exc(n: u32) -> u64 {
    0x100_0000 + n as u64 * 0x10_0000
}
const fn exc_buf(n: u32) -> u64 {
    0x1000_0000 + n as u64 * 0x100_0000
}

/// The device and its host.
pub struct Nic {
    /// The model.
    pub dev: Device,
    /// Host memory.
    pub mem: Arc<RegionMemory>,
    /// The model's time.
    pub clock: Arc<ManualClock>,
    /// The wire side of each port.
    pub ports: Vec<MemoryPortHandle>,
    queues: u32,
    cmd_prod: u32,
    cpl_cons: u32,
    evt_cons: u32,
    exc_cons: Vec<u32>,
}

impl Nic {
    /// A device of `cfg` with `queues` exception rings, every port enabled, the datapath on.
    pub fn new(cfg: ModelConfig, queues: u32) -> Nic {
        let mem = Arc::new(RegionMemory::new());
        let clock = Arc::new(ManualClock::new(1_000_000_000));
        for (base, len) in [(CMD, 256u64), (CPL, 64), (INJ, 32), (EVT, 64)] {
            assert!(mem.map(base, (len << LOG2) as usize));
        }
        assert!(mem.map(READ_BUF, 128));
        for q in 0..queues {
            assert!(mem.map(exc(q), 32 << LOG2));
            assert!(mem.map(exc_buf(q), 2048 << LOG2));
        }
        let mut dev = Device::new(cfg, mem.clone(), clock.clone()).expect("valid config");
        let nports = dev.read32(ports::BASE + ports::COUNT);
        let mut handles = Vec::new();
        for n in 0..nports {
            let (port, handle) = MemoryPort::new();
            dev.attach_port(n as u8, Box::new(port)).unwrap();
            handles.push(handle);
        }
        let mut nic = Nic {
            dev,
            mem,
            clock,
            ports: handles,
            queues,
            cmd_prod: 0,
            cpl_cons: 0,
            evt_cons: 0,
            exc_cons: Vec::new(),
        };
        nic.bring_up();
        nic
    }

    /// The device the datapath and command targets start from: 16 records, two next hops,
    /// an IPv4 TCP flow (record 1) and an IPv6 UDP flow (record 2), two exception rings.
    pub fn populated() -> Nic {
        let mut nic = Nic::new(ModelConfig::small(16), 2);
        assert_eq!(nic.set_next_hop(0, &next_hop(0, GW_MAC, None)).status, 0);
        assert_eq!(nic.set_next_hop(1, &next_hop(1, RS_MAC, None)).status, 0);
        assert_eq!(nic.insert(1, &Conn::v4_tcp().record()).status, 0);
        assert_eq!(nic.insert(2, &Conn::v6_tcp().udp().record()).status, 0);
        nic
    }

    fn bring_up(&mut self) {
        let d = &mut self.dev;
        d.write32(control::BASE + control::CTRL, control::CTRL::RESET.mask() as u32);
        let setup = |d: &mut Device, id: u32, base: u64, buf: Option<u64>| {
            let r = rings::BASE + id * 0x40;
            d.write64(r + rings::RING_BASE, base);
            d.write32(r + rings::RING_SIZE_LOG2, LOG2);
            if let Some(b) = buf {
                d.write64(r + rings::RING_BUF_BASE, b);
                d.write32(r + rings::RING_BUF_SIZE, 2048);
            }
            d.write32(r + rings::RING_CTRL, 1);
            assert_eq!(d.read32(r + rings::RING_STATUS) & 1, 1, "ring {id} enabled");
        };
        setup(d, ring_id::COMMAND, CMD, None);
        setup(d, ring_id::COMPLETION, CPL, None);
        setup(d, ring_id::INJECT, INJ, None);
        setup(d, ring_id::EVENT, EVT, None);
        for q in 0..self.queues {
            setup(d, ring_id::EXCEPTION0 + q, exc(q), Some(exc_buf(q)));
        }
        d.write32(punt::BASE + punt::QUEUES, self.queues);
        for n in 0..64 {
            d.write32(punt::BASE + punt::RETA + 4 * n, n % self.queues);
        }
        for p in 0..self.ports.len() as u32 {
            d.write32(ports::BASE + ports::PORT_CTRL + p * 0x40, 1);
        }
        d.write32(control::BASE + control::CTRL, 1);
        self.exc_cons = vec![0; self.queues as usize];
    }

    /// Writes `cmd` at the producer index, with the right phase unless `raw`, rings the
    /// doorbell and returns the completions that came back.
    pub fn submit(&mut self, cmd: &FlowCommand, raw: bool) -> Vec<Completion> {
        let mut c = *cmd;
        if !raw {
            c.flags.set_phase(phase_for(self.cmd_prod, LOG2));
        }
        let slot = u64::from(self.cmd_prod & ((1 << LOG2) - 1));
        self.mem.write(CMD + slot * 256, c.as_bytes()).unwrap();
        self.cmd_prod = self.cmd_prod.wrapping_add(1);
        self.dev.write32(doorbell_offset(ring_id::COMMAND), self.cmd_prod);
        self.completions()
    }

    /// The producer index of the command ring (the next command's ring index).
    pub fn cmd_prod(&self) -> u32 {
        self.cmd_prod
    }

    fn completions(&mut self) -> Vec<Completion> {
        let mut out = Vec::new();
        loop {
            let slot = u64::from(self.cpl_cons & ((1 << LOG2) - 1));
            let mut b = [0u8; 64];
            self.mem.read(CPL + slot * 64, &mut b).unwrap();
            let c = Completion::read_from_bytes(&b).unwrap();
            if c.flags.phase() != phase_for(self.cpl_cons, LOG2) {
                break;
            }
            out.push(c);
            self.cpl_cons = self.cpl_cons.wrapping_add(1);
        }
        if !out.is_empty() {
            self.dev.write32(doorbell_offset(ring_id::COMPLETION), self.cpl_cons);
        }
        out
    }

    fn command(&mut self, cmd: FlowCommand) -> Completion {
        let c = self.submit(&cmd, false);
        assert_eq!(c.len(), 1, "one completion per command");
        c[0]
    }

    /// Inserts `rec` at `index` in the first free slots of its buckets (the table is empty
    /// but for what this harness put there, so the first slot of each bucket that is not the
    /// other direction's).
    pub fn insert(&mut self, index: u32, rec: &FlowRecord) -> Completion {
        let seed_a = self.dev.read32(flow_table::BASE + flow_table::SEED_A);
        let seed_b = self.dev.read32(flow_table::BASE + flow_table::SEED_B);
        let buckets = self.dev.read32(flow_table::BASE + flow_table::BUCKETS);
        let image = self.dev.table_image();
        let mut taken: Vec<IndexPos> = Vec::new();
        let mut pick = |key: rtl_spec::formats::LookupKey| {
            let p = rtl_spec::hash::placement(&key, seed_a, seed_b, buckets);
            for b in [p.bucket_a, p.bucket_b] {
                for s in 0..4u8 {
                    let pos = IndexPos::new().with_index(b).with_slot(s);
                    let bucket = &image.buckets[b as usize];
                    let slot = [bucket.slot0, bucket.slot1, bucket.slot2, bucket.slot3][usize::from(s)];
                    let used = slot.word.valid();
                    if !used && !taken.contains(&pos) {
                        taken.push(pos);
                        return pos;
                    }
                }
            }
            panic!("no free slot for the key");
        };
        let o = pick(rec.key(false));
        let r = pick(rec.key(true));
        let mut cmd = FlowCommand {
            opcode: Opcode::Insert.into(),
            record: U32::new(index),
            cookie: U64::new(0xC0 + u64::from(index)),
            slot_orig: o,
            slot_reply: r,
            ..FlowCommand::default()
        };
        cmd.payload[..128].copy_from_slice(rec.as_bytes());
        self.command(cmd)
    }

    /// Sets next-hop entry `n`.
    pub fn set_next_hop(&mut self, n: u32, entry: &NextHopEntry) -> Completion {
        let mut cmd =
            FlowCommand { opcode: Opcode::NextHopSet.into(), arg: U32::new(n), ..FlowCommand::default() };
        cmd.payload[..16].copy_from_slice(entry.as_bytes());
        self.command(cmd)
    }

    /// Punted packets waiting on every exception ring (consumed), with their ring's number.
    pub fn exceptions(&mut self) -> Vec<(u32, ExceptionDesc, Vec<u8>)> {
        let mut out = Vec::new();
        for q in 0..self.queues {
            let mut got = false;
            loop {
                let cons = self.exc_cons[q as usize];
                let slot = u64::from(cons & ((1 << LOG2) - 1));
                let mut b = [0u8; 32];
                self.mem.read(exc(q) + slot * 32, &mut b).unwrap();
                let d = ExceptionDesc::read_from_bytes(&b).unwrap();
                if d.flags.phase() != phase_for(cons, LOG2) {
                    break;
                }
                let mut frame = vec![0u8; usize::from(d.length.get()).min(2048)];
                self.mem.read(exc_buf(q) + slot * 2048, &mut frame).unwrap();
                out.push((q, d, frame));
                self.exc_cons[q as usize] = cons.wrapping_add(1);
                got = true;
            }
            if got {
                self.dev.write32(doorbell_offset(ring_id::EXCEPTION0 + q), self.exc_cons[q as usize]);
            }
        }
        out
    }

    /// Events waiting on the event ring (consumed).
    pub fn events(&mut self) -> usize {
        let mut n = 0;
        loop {
            let slot = u64::from(self.evt_cons & ((1 << LOG2) - 1));
            let mut b = [0u8; 64];
            self.mem.read(EVT + slot * 64, &mut b).unwrap();
            let e = rtl_spec::formats::Event::read_from_bytes(&b).unwrap();
            if e.flags.phase() != phase_for(self.evt_cons, LOG2) {
                break;
            }
            n += 1;
            self.evt_cons = self.evt_cons.wrapping_add(1);
        }
        if n > 0 {
            self.dev.write32(doorbell_offset(ring_id::EVENT), self.evt_cons);
        }
        n
    }

    /// A global counter.
    pub fn counter(&mut self, reg: u32) -> u64 {
        self.dev.read64(counters::BASE + reg)
    }

    /// The sum of the 16 per-reason counters at `reg` (`PUNT_REASON`, `DROP_REASON`).
    pub fn reason_sum(&mut self, reg: u32) -> u64 {
        (0..16).map(|r| self.dev.read64(counters::BASE + reg + 8 * r)).sum()
    }

    /// Frames that left port `port` since the last call.
    pub fn tx(&self, port: usize) -> Vec<Vec<u8>> {
        self.ports[port].take_tx()
    }
}
