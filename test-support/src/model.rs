//! A minimal host for the model ([`ModelHost`]): host memory, a device brought up as SPEC.md's
//! bring-up page says, and the ring bookkeeping a driver does, written only against `rtl_spec`
//! (registers, formats, ring rules), never against the model's internals. Each port is attached
//! to a memory port. The sim-model tests, the fixture corpus and the fuzz targets drive the
//! model through it; the fuzz targets take small rings, so making one per input is cheap.

use rtl_spec::codes::{Opcode, Status};
use rtl_spec::formats::{
    CommandFlags, Completion, Event, ExceptionDesc, FlowCommand, FlowRecord, IndexPos, InjectDesc,
    InjectFlags, NextHopEntry,
};
use rtl_spec::regs::{control, counters, doorbell_offset, flow_table, ports, punt, ring_id, rings};
use rtl_spec::ring::phase_for;
use sim_model::clock::ManualClock;
use sim_model::device::{Device, ModelConfig};
use sim_model::mem::{DmaMemory, RegionMemory};
use sim_model::port::{MemoryPort, MemoryPortHandle};
use std::sync::{Arc, Mutex};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::flows::{Conn, GW_MAC, RS_MAC, next_hop};

/// Ring size (log2) of every ring, unless [`ModelHost::with_ring_log2`] says otherwise.
pub const LOG2: u32 = 8;
const CMD: u64 = 0x10_0000;
const CPL: u64 = 0x20_0000;
const INJ: u64 = 0x30_0000;
const EVT: u64 = 0x40_0000;
const INJ_BUF: u64 = 0x50_0000;
const fn exc(n: u32) -> u64 {
    0x100_0000 + n as u64 * 0x10_0000
}
const fn exc_buf(n: u32) -> u64 {
    0x1000_0000 + n as u64 * 0x100_0000
}

/// The device and its host.
pub struct ModelHost {
    /// The model.
    pub dev: Device,
    /// Host memory.
    pub mem: Arc<RegionMemory>,
    /// The model's time.
    pub clock: Arc<ManualClock>,
    /// The wire side of each port.
    pub ports: Vec<MemoryPortHandle>,
    /// Exception rings.
    pub queues: u32,
    /// Interrupt vectors raised, in order.
    pub irqs: Arc<Mutex<Vec<u16>>>,
    log2: u32,
    cmd_prod: u32,
    cpl_cons: u32,
    evt_cons: u32,
    inj_prod: u32,
    exc_cons: Vec<u32>,
    /// Records this host inserted and where it put their slots.
    pub placed: Vec<(u32, IndexPos, IndexPos)>,
}

impl ModelHost {
    /// A device of `cfg` brought up as the bring-up page of SPEC.md says, with `queues`
    /// exception rings of [`LOG2`], all ports enabled, the datapath on.
    pub fn new(cfg: ModelConfig, queues: u32) -> ModelHost {
        ModelHost::with_ring_log2(cfg, queues, LOG2)
    }

    /// The same with rings of `2^log2` entries.
    pub fn with_ring_log2(cfg: ModelConfig, queues: u32, log2: u32) -> ModelHost {
        ModelHost::with_image(cfg, queues, log2, None)
    }

    /// A device of `cfg` that booted an image declaring only the capabilities `caps` (a card
    /// whose image lacks some of what the model implements), brought up as [`Self::new`] does.
    pub fn with_caps(cfg: ModelConfig, queues: u32, caps: u64) -> ModelHost {
        ModelHost::with_image(cfg, queues, LOG2, Some(caps))
    }

    fn with_image(cfg: ModelConfig, queues: u32, log2: u32, caps: Option<u64>) -> ModelHost {
        let mem = Arc::new(RegionMemory::new());
        let clock = Arc::new(ManualClock::new(1_000_000_000));
        for (base, len) in [(CMD, 256u64), (CPL, 64), (INJ, 32), (EVT, 64)] {
            assert!(mem.map(base, (len << log2) as usize));
        }
        assert!(mem.map(INJ_BUF, 16384 << log2));
        for q in 0..queues {
            assert!(mem.map(exc(q), 32 << log2));
            assert!(mem.map(exc_buf(q), 2048 << log2));
        }
        let mut dev = match caps {
            None => Device::new(cfg, mem.clone(), clock.clone()),
            Some(caps) => {
                let payload = cfg.to_toml();
                let header =
                    rtl_spec::image::unsigned_header(&cfg, rtl_spec::SPEC_VERSION, caps, payload.as_bytes());
                let image = [header.as_bytes(), payload.as_bytes()].concat();
                Device::with_flash(
                    sim_model::flash::Flash::with_image(&image),
                    cfg,
                    mem.clone(),
                    clock.clone(),
                )
            }
        }
        .expect("valid config");
        let nports = dev.read32(ports::BASE + ports::COUNT);
        let mut handles = Vec::new();
        for n in 0..nports {
            let (port, handle) = MemoryPort::new();
            dev.attach_port(n as u8, Box::new(port)).unwrap();
            handles.push(handle);
        }
        let irqs = Arc::new(Mutex::new(Vec::new()));
        let sink = irqs.clone();
        dev.set_interrupt_sink(Box::new(move |v| sink.lock().unwrap().push(v)));
        let mut nic = ModelHost {
            log2,
            dev,
            mem,
            clock,
            ports: handles,
            queues,
            irqs,
            cmd_prod: 0,
            cpl_cons: 0,
            evt_cons: 0,
            inj_prod: 0,
            exc_cons: vec![0; queues as usize],
            placed: Vec::new(),
        };
        nic.bring_up();
        nic
    }

    /// The device the datapath and command fuzz targets start from: 16 records, rings of 64,
    /// two next hops, a SYN-proxied IPv4 TCP flow (record 1, with sequence and timestamp
    /// deltas) and an IPv6 UDP flow (record 2), two exception rings.
    pub fn populated() -> ModelHost {
        let mut nic = ModelHost::with_ring_log2(ModelConfig::small(16), 2, 6);
        assert_eq!(nic.set_next_hop(0, &next_hop(0, GW_MAC, None)).status, 0);
        assert_eq!(nic.set_next_hop(1, &next_hop(1, RS_MAC, None)).status, 0);
        // Record 1 is SYN-proxied (seq_adjust, and spec 1.4's ts_delta), so frames that hit it
        // go through the sequence, SACK and timestamp translation.
        let mut tcp = Conn::v4_tcp().record();
        tcp.ctl.set_seq_adjust(true);
        tcp.seq_delta = zerocopy::little_endian::U32::new(0x8000_0123);
        assert_eq!(nic.insert_ext(1, &tcp, 0xFFFF_F000).status, 0);
        assert_eq!(nic.insert(2, &Conn::v6_tcp().udp().record()).status, 0);
        nic
    }

    /// The size (log2) of every ring.
    pub fn ring_log2(&self) -> u32 {
        self.log2
    }

    /// Resets the device and brings it up again (the host's indices start over).
    pub fn bring_up(&mut self) {
        let log2 = self.log2;
        let d = &mut self.dev;
        d.write32(control::BASE + control::CTRL, control::CTRL::RESET.mask() as u32);
        assert_eq!(d.read32(control::BASE + control::STATUS) & 1, 1);
        let mut setup = |id: u32, base: u64, buf: Option<u64>| {
            let r = rings::BASE + rings::RING_BASE + id * 0x40 - rings::RING_BASE;
            d.write64(r + rings::RING_BASE, base);
            d.write32(r + rings::RING_SIZE_LOG2, log2);
            if let Some(b) = buf {
                d.write64(r + rings::RING_BUF_BASE, b);
                d.write32(r + rings::RING_BUF_SIZE, 2048);
            }
            d.write32(r + rings::RING_CTRL, 1);
            assert_eq!(d.read32(r + rings::RING_STATUS) & 1, 1, "ring {id} enabled");
        };
        setup(ring_id::COMMAND, CMD, None);
        setup(ring_id::COMPLETION, CPL, None);
        setup(ring_id::INJECT, INJ, None);
        setup(ring_id::EVENT, EVT, None);
        for q in 0..self.queues {
            setup(ring_id::EXCEPTION0 + q, exc(q), Some(exc_buf(q)));
        }
        d.write32(punt::BASE + punt::QUEUES, self.queues);
        for n in 0..64 {
            d.write32(punt::BASE + punt::RETA + 4 * n, n % self.queues);
        }
        for p in 0..self.ports.len() as u32 {
            d.write32(ports::BASE + ports::PORT_CTRL + p * 0x40, 1);
        }
        d.write32(control::BASE + control::CTRL, 1);
        self.cmd_prod = 0;
        self.cpl_cons = 0;
        self.evt_cons = 0;
        self.inj_prod = 0;
        self.exc_cons = vec![0; self.queues as usize];
        self.placed.clear();
    }

    /// Writes commands (phase set here), rings the doorbell once, and collects the completions
    /// that came back.
    pub fn submit(&mut self, cmds: &[FlowCommand]) -> Vec<Completion> {
        let phased: Vec<FlowCommand> = cmds
            .iter()
            .zip((0u32..).map(|i| self.cmd_prod.wrapping_add(i)))
            .map(|(c, index)| {
                let mut c = *c;
                c.flags.set_phase(phase_for(index, self.log2));
                c
            })
            .collect();
        self.submit_raw(&phased)
    }

    /// Writes commands exactly as given (phase included) without fixing anything up.
    pub fn submit_raw(&mut self, cmds: &[FlowCommand]) -> Vec<Completion> {
        for c in cmds {
            let slot = u64::from(self.cmd_prod & ((1 << self.log2) - 1));
            self.mem.write(CMD + slot * 256, c.as_bytes()).unwrap();
            self.cmd_prod = self.cmd_prod.wrapping_add(1);
        }
        self.dev.write32(doorbell_offset(ring_id::COMMAND), self.cmd_prod);
        self.completions()
    }

    /// The completions that came back since the last look (consumed).
    pub fn completions(&mut self) -> Vec<Completion> {
        let mut out = Vec::new();
        loop {
            let slot = u64::from(self.cpl_cons & ((1 << self.log2) - 1));
            let mut b = [0u8; 64];
            self.mem.read(CPL + slot * 64, &mut b).unwrap();
            let c = Completion::read_from_bytes(&b).unwrap();
            if c.flags.phase() != phase_for(self.cpl_cons, self.log2) {
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

    /// Submits one command and returns its one completion.
    pub fn command(&mut self, cmd: FlowCommand) -> Completion {
        let c = self.submit(&[cmd]);
        assert_eq!(c.len(), 1, "one completion per command");
        c[0]
    }

    /// Places a record the simplest legal way: first free slot of bucket A, then B, then the
    /// stash, for each direction. Returns the positions chosen.
    pub fn place(&mut self, rec: &FlowRecord) -> (IndexPos, IndexPos) {
        let mut taken = Vec::new();
        let mut pick = |key: rtl_spec::formats::LookupKey, nic: &mut ModelHost| {
            let seed_a = nic.dev.read32(flow_table::BASE + flow_table::SEED_A);
            let seed_b = nic.dev.read32(flow_table::BASE + flow_table::SEED_B);
            let buckets = nic.dev.read32(flow_table::BASE + flow_table::BUCKETS);
            let p = rtl_spec::hash::placement(&key, seed_a, seed_b, buckets);
            let occupied = nic.occupied_slots();
            for b in [p.bucket_a, p.bucket_b] {
                for s in 0..4u8 {
                    let pos = IndexPos::new().with_index(b).with_slot(s);
                    if !occupied.contains(&pos) && !taken.contains(&pos) {
                        taken.push(pos);
                        return pos;
                    }
                }
            }
            for i in 0..nic.dev.read32(flow_table::BASE + flow_table::STASH_SIZE) {
                let pos = IndexPos::new().with_index(i).with_stash(true);
                if !occupied.contains(&pos) && !taken.contains(&pos) {
                    taken.push(pos);
                    return pos;
                }
            }
            panic!("no free slot for the key");
        };
        let o = pick(rec.key(false), self);
        let r = pick(rec.key(true), self);
        (o, r)
    }

    /// Slots in use, as the host would track them (kept by the harness from its own inserts).
    pub fn occupied_slots(&self) -> Vec<IndexPos> {
        self.placed.iter().flat_map(|(_, o, r)| [*o, *r]).collect()
    }

    /// Inserts `rec` at `index` where [`Self::place`] puts it, and remembers where.
    pub fn insert(&mut self, index: u32, rec: &FlowRecord) -> Completion {
        self.insert_ext(index, rec, 0)
    }

    /// [`Self::insert`] with the record's `ts_delta` (spec 1.4) after it in the payload.
    pub fn insert_ext(&mut self, index: u32, rec: &FlowRecord, ts_delta: u32) -> Completion {
        let (o, r) = self.place(rec);
        let c = self.command(with_ts_delta(insert_cmd(index, rec, o, r), ts_delta));
        if c.status == Status::Ok as u8 {
            self.placed.push((index, o, r));
        }
        c
    }

    /// Deletes record `index` (one this host inserted), reporting its counters when `report`.
    pub fn delete(&mut self, index: u32, report: bool) -> Completion {
        let (o, r) = {
            let (_, o, r) = self.placed.iter().find(|(i, _, _)| *i == index).copied().expect("placed");
            (o, r)
        };
        let mut cmd = FlowCommand {
            opcode: Opcode::Delete.into(),
            record: U32::new(index),
            slot_orig: o,
            slot_reply: r,
            ..FlowCommand::default()
        };
        cmd.flags = CommandFlags::new().with_report(report);
        let c = self.command(cmd);
        if c.status == Status::Ok as u8 {
            self.placed.retain(|(i, _, _)| *i != index);
        }
        c
    }

    /// Sets next-hop entry `n`.
    pub fn set_next_hop(&mut self, n: u32, entry: &NextHopEntry) -> Completion {
        let mut cmd =
            FlowCommand { opcode: Opcode::NextHopSet.into(), arg: U32::new(n), ..FlowCommand::default() };
        cmd.payload[..16].copy_from_slice(entry.as_bytes());
        self.command(cmd)
    }

    /// A frame in from the wire.
    pub fn send(&mut self, port: u8, frame: &[u8]) {
        self.dev.receive(port, frame);
    }

    /// Frames that left port `port` since the last call.
    pub fn tx(&self, port: usize) -> Vec<Vec<u8>> {
        self.ports[port].take_tx()
    }

    /// Punted packets waiting on exception ring `q`.
    pub fn exceptions(&mut self, q: u32) -> Vec<(ExceptionDesc, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let cons = self.exc_cons[q as usize];
            let slot = u64::from(cons & ((1 << self.log2) - 1));
            let mut b = [0u8; 32];
            self.mem.read(exc(q) + slot * 32, &mut b).unwrap();
            let d = ExceptionDesc::read_from_bytes(&b).unwrap();
            if d.flags.phase() != phase_for(cons, self.log2) {
                break;
            }
            let mut frame = vec![0u8; usize::from(d.length.get()).min(2048)];
            self.mem.read(exc_buf(q) + slot * 2048, &mut frame).unwrap();
            out.push((d, frame));
            self.exc_cons[q as usize] = cons.wrapping_add(1);
        }
        if !out.is_empty() {
            self.dev.write32(doorbell_offset(ring_id::EXCEPTION0 + q), self.exc_cons[q as usize]);
        }
        out
    }

    /// Punted packets on every queue.
    pub fn all_exceptions(&mut self) -> Vec<(ExceptionDesc, Vec<u8>)> {
        (0..self.queues).flat_map(|q| self.exceptions(q)).collect()
    }

    /// Events waiting on the event ring (consumed).
    pub fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let slot = u64::from(self.evt_cons & ((1 << self.log2) - 1));
            let mut b = [0u8; 64];
            self.mem.read(EVT + slot * 64, &mut b).unwrap();
            let e = Event::read_from_bytes(&b).unwrap();
            if e.flags.phase() != phase_for(self.evt_cons, self.log2) {
                break;
            }
            out.push(e);
            self.evt_cons = self.evt_cons.wrapping_add(1);
        }
        if !out.is_empty() {
            self.dev.write32(doorbell_offset(ring_id::EVENT), self.evt_cons);
        }
        out
    }

    /// Queues a frame on the inject ring and rings the doorbell.
    pub fn inject(&mut self, port: u8, frame: &[u8]) {
        let slot = u64::from(self.inj_prod & ((1 << self.log2) - 1));
        let buf = INJ_BUF + slot * 16384;
        self.mem.write(buf, frame).unwrap();
        let d = InjectDesc {
            addr: U64::new(buf),
            length: (frame.len() as u16).into(),
            port,
            flags: InjectFlags::new().with_phase(phase_for(self.inj_prod, self.log2)),
            ..InjectDesc::default()
        };
        self.mem.write(INJ + slot * 32, d.as_bytes()).unwrap();
        self.inj_prod = self.inj_prod.wrapping_add(1);
        self.dev.write32(doorbell_offset(ring_id::INJECT), self.inj_prod);
    }

    /// A global counter.
    pub fn counter(&mut self, reg: u32) -> u64 {
        self.dev.read64(counters::BASE + reg)
    }
    /// The punt counter of `reason`.
    pub fn punt_count(&mut self, reason: rtl_spec::codes::PuntReason) -> u64 {
        self.dev.read64(counters::BASE + counters::PUNT_REASON + 8 * reason as u32)
    }
    /// The drop counter of `reason`.
    pub fn drop_count(&mut self, reason: rtl_spec::codes::DropReason) -> u64 {
        self.dev.read64(counters::BASE + counters::DROP_REASON + 8 * reason as u32)
    }
}

/// The `Insert` command for `rec` at `index` with its slots (cookie `0xC0 + index`).
pub fn insert_cmd(index: u32, rec: &FlowRecord, o: IndexPos, r: IndexPos) -> FlowCommand {
    let mut cmd = FlowCommand {
        opcode: Opcode::Insert.into(),
        record: U32::new(index),
        cookie: U64::new(0xC0 + u64::from(index)),
        slot_orig: o,
        slot_reply: r,
        ..FlowCommand::default()
    };
    cmd.payload[..128].copy_from_slice(rec.as_bytes());
    cmd
}

/// `cmd` (an Insert or Modify) carrying the record extension word `ts_delta` at payload bytes
/// 128..132 (spec 1.4, `RecordExt`).
#[must_use]
pub fn with_ts_delta(mut cmd: FlowCommand, ts_delta: u32) -> FlowCommand {
    let ext = rtl_spec::formats::RecordExt { ts_delta: U32::new(ts_delta) };
    cmd.payload[128..132].copy_from_slice(ext.as_bytes());
    cmd
}

impl ModelHost {
    /// Queues `frame` on the inject ring with the descriptor the harness would write, changed by
    /// `edit` (length, port, phase...), and rings the doorbell.
    pub fn inject_with(&mut self, frame: &[u8], edit: impl FnOnce(&mut InjectDesc)) {
        let slot = u64::from(self.inj_prod & ((1 << self.log2) - 1));
        let buf = INJ_BUF + slot * 16384;
        self.mem.write(buf, frame).unwrap();
        let mut d = InjectDesc {
            addr: U64::new(buf),
            length: (frame.len() as u16).into(),
            port: 0,
            flags: InjectFlags::new().with_phase(phase_for(self.inj_prod, self.log2)),
            ..InjectDesc::default()
        };
        edit(&mut d);
        self.mem.write(INJ + slot * 32, d.as_bytes()).unwrap();
        self.inj_prod = self.inj_prod.wrapping_add(1);
        self.dev.write32(doorbell_offset(ring_id::INJECT), self.inj_prod);
    }

    /// Host address of exception ring `q`'s packet buffers (one region of
    /// [`Self::exception_buffers_len`] bytes).
    pub fn exception_buffers(q: u32) -> u64 {
        exc_buf(q)
    }

    /// Bytes of exception ring `q`'s buffer region.
    pub fn exception_buffers_len(&self) -> usize {
        2048 << self.log2
    }

    /// Forgets what the host consumed on exception ring `q`, as after the ring is re-enabled.
    pub fn restart_exception_ring(&mut self, q: u32) {
        self.exc_cons[q as usize] = 0;
        self.mem.write(exc(q), &vec![0u8; 32 << self.log2]).unwrap();
    }
}

impl ModelHost {
    /// The producer index of the command ring (the next command's ring index).
    pub fn cmd_prod(&self) -> u32 {
        self.cmd_prod
    }

    /// The sum of the 16 per-reason counters at `reg` (`PUNT_REASON`, `DROP_REASON`).
    pub fn reason_sum(&mut self, reg: u32) -> u64 {
        (0..16).map(|r| self.dev.read64(counters::BASE + reg + 8 * r)).sum()
    }

    /// Punted packets on every exception ring (consumed), with their ring's number.
    pub fn exceptions_by_ring(&mut self) -> Vec<(u32, ExceptionDesc, Vec<u8>)> {
        (0..self.queues).flat_map(|q| self.exceptions(q).into_iter().map(move |(d, f)| (q, d, f))).collect()
    }

    /// Zeroes every ring the host owns in host memory, as a driver does before it re-enables
    /// rings after a reset (otherwise entries of the previous run look new to the host again).
    pub fn clear_host_rings(&self) {
        let mut rings = vec![(CMD, 256u64), (CPL, 64), (INJ, 32), (EVT, 64)];
        rings.extend((0..self.queues).map(|q| (exc(q), 32)));
        for (base, entry) in rings {
            self.mem.write(base, &vec![0u8; (entry << self.log2) as usize]).unwrap();
        }
    }
}
