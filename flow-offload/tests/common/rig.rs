//! The replica tests' rig: a flow table driving a model through the driver, a memory port to
//! send the model packets, and the replica check (every live flow hits its record in both
//! directions and reads back as the shadow holds it; every removed flow misses).

use super::v4;
use flow_offload::table::{Flow, FlowTable, Handle};
use host_driver::transport::inprocess::SharedInProcess;
use host_driver::{Nic, NicConfig};
use rtl_spec::codes::{Opcode, PuntReason};
use rtl_spec::formats::{FlowCommand, FlowRecord, FlowTuple};
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::port::{MemoryPort, MemoryPortHandle};
use sluice_test_support::frame::Seg;
use std::sync::Arc;
use std::time::Duration;
use zerocopy::FromBytes;

/// A flow table over a model with one memory port, on a clock the test moves.
pub struct Rig {
    pub table: FlowTable,
    pub wire: MemoryPortHandle,
    pub clock: Arc<ManualClock>,
    pub model: SharedInProcess,
}

/// [`rig_with`] with a 2 s command timeout.
pub fn rig(records: u32, stash: u32) -> Rig {
    rig_with(records, stash, Duration::from_secs(2))
}

/// [`rig_caps`] with the model's own capabilities.
pub fn rig_with(records: u32, stash: u32, command_timeout: Duration) -> Rig {
    rig_caps(records, stash, command_timeout, rtl_spec::image::model_caps())
}

/// A device whose image declares `caps` (a card of an older minor version lacks some).
pub fn rig_caps(records: u32, stash: u32, command_timeout: Duration, caps: u64) -> Rig {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let cfg = ModelConfig {
        records,
        buckets: (records / 2).max(2),
        stash,
        next_hops: 16,
        ..ModelConfig::default()
    };
    let mut model = super::model_with_caps(cfg, caps, clock.clone());
    let (port, wire) = MemoryPort::new();
    model.attach_port(0, Box::new(port)).unwrap();
    let model = SharedInProcess::new(model);
    let nic_cfg = NicConfig { ring_log2: 8, command_timeout, ..NicConfig::default() };
    let nic = Nic::bring_up(Box::new(model.clone()), nic_cfg).unwrap();
    Rig { table: FlowTable::new(nic).unwrap(), wire, clock, model }
}

/// Flow `n`: client 192.0.x.y:(1024+n) → VIP 10.10.1.100:80; RS 10.10.2.(n%200):8080 → LIP
/// 10.10.3.1:(2048+n). Distinct for every n. Every third is SYN-proxied (a sequence delta),
/// and every other one of those has timestamps (a timestamp delta, spec 1.4).
pub fn flow(n: u32) -> Flow {
    Flow {
        orig: FlowTuple {
            src_addr: v4(0xC000_0000 | (n >> 8) << 8 | (n & 0xff)),
            dst_addr: v4(0x0A0A_0164),
            src_port: ((1024 + n % 60000) as u16).into(),
            dst_port: 80.into(),
        },
        reply: FlowTuple {
            src_addr: v4(0x0A0A_0200 | (n % 200)),
            dst_addr: v4(0x0A0A_0301 + (n / 60000)),
            src_port: 8080.into(),
            dst_port: ((2048 + n % 60000) as u16).into(),
        },
        proto: 6,
        ipv6: false,
        next_hop_orig: 1,
        next_hop_reply: 0,
        idle_timeout: 0,
        cookie: n,
        host_state: (n % 7) as u8,
        counter_set: 0,
        seq_delta: (n % 3 == 0).then(|| n.wrapping_mul(0x0101_0101)),
        ts_delta: if n % 6 == 0 { n.wrapping_mul(0x9E37_79B9) | 1 } else { 0 },
    }
}

/// A TCP SYN carrying `t` (a SYN that hits is punted with the record it hit).
pub fn syn(t: &FlowTuple) -> Vec<u8> {
    segment(t).syn().frame([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1])
}

/// A TCP segment carrying tuple `t` (sequence 1, window 1000): IPv4 when both addresses end in
/// 12 zero bytes (as an IPv4 flow's must), IPv6 otherwise.
pub fn segment(t: &FlowTuple) -> Seg {
    let v4 = t.src_addr[4..] == [0; 12] && t.dst_addr[4..] == [0; 12];
    let addr = |a: &[u8; 16]| -> std::net::IpAddr {
        if v4 {
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&a[..4]).unwrap()).into()
        } else {
            std::net::Ipv6Addr::from(*a).into()
        }
    };
    let src = std::net::SocketAddr::from((addr(&t.src_addr), t.src_port.get()));
    let dst = std::net::SocketAddr::from((addr(&t.dst_addr), t.dst_port.get()));
    Seg::between(src, dst).seq(1).window(1000)
}

/// What the NIC's lookup says about a tuple: `Some((record, reply))` on a hit.
pub fn lookup(r: &mut Rig, t: &FlowTuple) -> Option<(u32, bool)> {
    r.wire.push_rx(syn(t), None);
    let mut got = Vec::new();
    for _ in 0..10 {
        r.table.nic().recv_exceptions(0, &mut got, 4);
        if !got.is_empty() {
            break;
        }
    }
    let e = got.pop().expect("the SYN was punted");
    if e.desc.reason == PuntReason::TcpSyn as u8 {
        assert!(e.desc.flags.hit());
        Some((e.desc.record.get(), e.desc.flags.reply()))
    } else {
        assert_eq!(e.desc.reason, PuntReason::Miss as u8);
        None
    }
}

/// Record `index` as the NIC holds it, and its `ts_delta` (the Read's completion carries it).
pub fn read_record(r: &mut Rig, index: u32) -> (FlowRecord, u32) {
    let nic = r.table.nic();
    let region = nic.transport().alloc_dma(4096).unwrap();
    let cmd = FlowCommand {
        opcode: Opcode::Read.into(),
        record: index.into(),
        dma_addr: region.iova().into(),
        ..FlowCommand::default()
    };
    let cpl = nic.execute(&[cmd]).unwrap()[0];
    assert_eq!(cpl.status, 0);
    let mut b = [0u8; 128];
    region.read(0, &mut b);
    nic.transport().free_dma(&region).unwrap();
    (FlowRecord::read_from_bytes(&b).unwrap(), cpl.ts_delta.get())
}

/// The replica check: every live flow hits its record in both directions and its record reads
/// back as the shadow's; every flow in `gone` misses.
pub fn check(r: &mut Rig, gone: &[u32]) {
    let live: Vec<(Handle, Flow)> = r.table.live_records().collect();
    for (h, f) in &live {
        assert_eq!(lookup(r, &f.orig), Some((h.0, false)), "flow {} original direction", f.cookie);
        assert_eq!(lookup(r, &f.reply), Some((h.0, true)), "flow {} reply direction", f.cookie);
        let (mut nic_rec, ts_delta) = read_record(r, h.0);
        let want = r.table.expected_record(*h).unwrap();
        nic_rec.last_seen = want.last_seen;
        nic_rec.tcp_flags_orig = 0;
        nic_rec.tcp_flags_reply = 0;
        assert_eq!(nic_rec, want, "record {}", h.0);
        assert_eq!(ts_delta, r.table.expected_ext(*h).unwrap().ts_delta.get(), "record {} ts_delta", h.0);
    }
    for n in gone {
        if !live.iter().any(|(_, f)| f.cookie == *n) {
            assert_eq!(lookup(r, &flow(*n).orig), None, "removed flow {n} still hits");
        }
    }
    let occupancy = r
        .table
        .nic()
        .transport()
        .read32(rtl_spec::regs::flow_table::BASE + rtl_spec::regs::flow_table::OCCUPANCY);
    assert_eq!(occupancy, live.len() as u32);
}
