//! Micro-benchmarks of the four inner steps the `sluice bench` paths are made of:
//!
//! - `slowpath/parse+rewrite`: the slow path parses one TCP/IPv4 frame, verifies its checksums
//!   and rewrites it FullNAT (addresses, ports, TTL, checksum deltas) into a reused buffer;
//! - `sched/pick`: one scheduler decision among 64 servers (wrr, and weighted Maglev `mh`), wrr
//!   among 1000 with one heavy server, and `wlc` among 64 and 4096 whose counts move as
//!   connections open and close;
//! - `placement/insert at 90%`: the shadow cuckoo index places both tuples of a record at 90%
//!   load (moves included) and takes them out again;
//! - `model/hit`: the model's datapath on one hit (parse, lookup, rewrite, send to a sink).
//!
//! `cargo bench --bench micro`; figures are printed by criterion, never asserted.
// criterion's macros define the undocumented `benches` and `main`.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use flow_offload::placement::ShadowIndex;
use flow_offload::{Flow, FlowTable};
use host_driver::transport::inprocess::{InProcess, SharedInProcess};
use host_driver::{Nic, NicConfig};
use rtl_spec::formats::{FlowTuple, LookupKey, NextHopCtl, NextHopEntry};
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::port::{Port, RxBurst};
use slowpath::sched::{BackendView, SchedulerKind};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn addr(a: Ipv4Addr) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a.octets());
    out
}

fn tuple(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> FlowTuple {
    FlowTuple { src_addr: addr(src), dst_addr: addr(dst), src_port: sport.into(), dst_port: dport.into() }
}

/// A 60-byte TCP ACK frame with valid checksums, built by the slow path's own builders.
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut tcp = vec![0u8; 26];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
    tcp[14] = 0x72;
    let ip = slowpath::emit::ip_packet(IpAddr::V4(src), IpAddr::V4(dst), 6, 64, tcp, 16);
    let l2 = slowpath::emit::L2 { dst: [2, 0, 0, 0, 0, 1], src: [2, 0, 0, 0, 1, 0xFE], vlan: None };
    slowpath::emit::frame(&l2, &ip)
}

fn parse_rewrite(c: &mut Criterion) {
    let (client, vip) = (Ipv4Addr::new(100, 64, 0, 9), Ipv4Addr::new(10, 10, 1, 100));
    let (lip, rs) = (Ipv4Addr::new(10, 10, 3, 1), Ipv4Addr::new(10, 10, 2, 11));
    let f = frame(client, 40000, vip, 80);
    let (from, to) = (tuple(client, 40000, vip, 80), tuple(lip, 2048, rs, 80));
    let mut out = Vec::with_capacity(128);
    c.bench_function("slowpath/parse+rewrite", |b| {
        b.iter(|| {
            let pkt = slowpath::packet::parse(black_box(&f)).unwrap();
            assert!(slowpath::packet::verify_checksums(&f, &pkt));
            slowpath::nat::rewrite_l3(&f, &pkt, &from, &to, &mut out).unwrap();
            black_box(out.len())
        });
    });
}

fn pick(c: &mut Criterion) {
    let views: Vec<BackendView> = (0..64u64)
        .map(|i| BackendView { weight: 1 + (i % 4) as u32, up: true, active: 0, inactive: 0, id: i * 7919 })
        .collect();
    for kind in [SchedulerKind::Wrr, SchedulerKind::Mh] {
        let mut s = slowpath::sched::build(kind, &views);
        let mut h = 0u64;
        c.bench_function(&format!("sched/pick {kind:?} (64 servers)"), |b| {
            b.iter(|| {
                h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
                black_box(s.pick(&views, h))
            });
        });
    }
    // wrr with one heavy server among 1000 light ones: IPVS's pass scan reads the whole list for
    // most picks; the written-down cycle reads one position.
    let mut skewed: Vec<BackendView> = (0..1000u64)
        .map(|i| BackendView { weight: 1, up: true, active: 0, inactive: 0, id: i * 7919 })
        .collect();
    skewed[0].weight = 100;
    let mut wrr = slowpath::sched::build(SchedulerKind::Wrr, &skewed);
    c.bench_function("sched/pick Wrr (1000 servers, one of weight 100)", |b| {
        b.iter(|| black_box(wrr.pick(&skewed, 0)));
    });
    // Weighted least connections, the default: each pick opens a connection on the server it
    // picked and one closes elsewhere, as in a loaded appliance.
    for n in [64u64, 4096] {
        let mut views: Vec<BackendView> = (0..n)
            .map(|i| BackendView {
                weight: 1 + (i % 4) as u32,
                up: true,
                active: 100,
                inactive: 0,
                id: i * 7919,
            })
            .collect();
        let mut wlc = slowpath::sched::build(SchedulerKind::Wlc, &views);
        let mut hash = 0u64;
        c.bench_function(&format!("sched/pick Wlc ({n} servers, counts moving)"), |b| {
            b.iter(|| {
                hash = hash.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let i = wlc.pick(&views, hash).unwrap_or(0);
                views[i].active += 1;
                let j = (hash >> 40) as usize % views.len();
                views[j].active = views[j].active.saturating_sub(1);
                black_box(i)
            });
        });
    }
}

fn key(n: u32, reply: bool) -> LookupKey {
    let a = Ipv4Addr::from(0x6440_0000 + n);
    let t = if reply {
        tuple(Ipv4Addr::new(10, 10, 2, 1), 80, a, 1024)
    } else {
        tuple(a, 1024, Ipv4Addr::new(10, 10, 1, 100), 80)
    };
    LookupKey::new(t, 6, false)
}

fn placement(c: &mut Criterion) {
    let buckets = 1 << 16;
    let mut index = ShadowIndex::new(buckets, 4, 64, 0x1234_5678, 0x9ABC_DEF0).unwrap();
    let records = buckets * 2;
    let full = records * 9 / 10;
    // The index's key source: record r's tuples are key(r, ..), hashed again as the table does.
    let seeds = index.seeds();
    let keys = move |r: u32, reply: bool| seeds.key_hash(&key(r, reply));
    for r in 0..full {
        let (o, rep) = (index.hash_of(&key(r, false)), index.hash_of(&key(r, true)));
        index.place_record(r, o, rep, 8, &keys).expect("90% fits");
    }
    let mut n = full;
    c.bench_function("placement/insert at 90% (2^16 buckets x 4)", |b| {
        b.iter(|| {
            n += 1;
            // The hashes are computed once per connection, as the slow path does.
            let (o, r) = (index.hash_of(&key(n, false)), index.hash_of(&key(n, true)));
            let plan = index.place_record(full, o, r, 8, &keys);
            black_box(&plan);
            if plan.is_some() {
                index.remove(o, |e| e.record == full);
                index.remove(r, |e| e.record == full);
            }
        });
    });
}

struct Sink;

impl Port for Sink {
    fn recv_burst(&mut self, _: &mut RxBurst, _: usize) -> std::io::Result<usize> {
        Ok(0)
    }
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        black_box(frame);
        Ok(())
    }
    fn link_up(&self) -> bool {
        true
    }
    fn mac(&self) -> Option<[u8; 6]> {
        None
    }
    fn describe(&self) -> String {
        "sink".into()
    }
}

fn model_hit(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let mut model = InProcess::new(ModelConfig::small(1024), clock).unwrap();
    model.attach_port(0, Box::new(Sink)).unwrap();
    model.attach_port(1, Box::new(Sink)).unwrap();
    let shared = SharedInProcess::new(model);
    let nic =
        Nic::bring_up(Box::new(shared.clone()), NicConfig { ring_log2: 8, ..NicConfig::default() }).unwrap();
    let mut table = FlowTable::new(nic).unwrap();
    let hop = NextHopEntry {
        dst_mac: [2, 0, 0, 0, 2, 11],
        src_mac: [2, 0, 0, 0, 0, 2],
        vlan_tci: 0.into(),
        ctl: NextHopCtl::new().with_valid(true).with_port(1),
    };
    table.set_next_hop(0, hop).unwrap();
    let (client, vip) = (Ipv4Addr::new(100, 64, 0, 9), Ipv4Addr::new(10, 10, 1, 100));
    let flow = Flow {
        orig: tuple(client, 40000, vip, 80),
        reply: tuple(Ipv4Addr::new(10, 10, 2, 11), 80, Ipv4Addr::new(10, 10, 3, 1), 2048),
        proto: 6,
        ipv6: false,
        next_hop_orig: 0,
        next_hop_reply: 0,
        idle_timeout: 90,
        cookie: 1,
        host_state: 2,
        counter_set: 0,
        seq_delta: None,
        ts_delta: 0,
    };
    table.install(flow).unwrap();
    assert!(table.commit().unwrap().is_empty());
    let f = frame(client, 40000, vip, 80);
    c.bench_function("model/hit (one 60-byte TCP frame)", |b| {
        b.iter(|| shared.with_device(|d| d.receive(0, black_box(&f))));
    });
    let hits =
        shared.with_device(|d| d.read64(rtl_spec::regs::counters::BASE + rtl_spec::regs::counters::HITS));
    assert!(hits > 0, "the frame hit");
}

criterion_group!(benches, parse_rewrite, pick, placement, model_hit);
criterion_main!(benches);
