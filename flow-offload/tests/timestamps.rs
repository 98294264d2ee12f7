//! A SYN-proxied flow's timestamp delta (spec 1.4) through the flow table: installed with the
//! flow (the Insert's payload bytes 128..132) and kept in the shadow, translated by the NIC,
//! rewritten after a device reset, adopted after a daemon restart from the Read completions,
//! never inherited by a flow that reuses the record, and refused, with nothing changed, on a
//! device without capability `TS_ADJUST`.

mod common;

use common::tcp_flow;
use flow_offload::table::{Flow, FlowTable, Handle, InstallError};
use host_driver::transport::inprocess::SharedInProcess;
use host_driver::{Nic, NicConfig};
use rtl_spec::codes::Opcode;
use rtl_spec::formats::{FlowCommand, FlowTuple, NextHopCtl, NextHopEntry};
use rtl_spec::regs::identity;
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::port::{MemoryPort, MemoryPortHandle};
use sluice_test_support::frame::{ACK, L4, Pkt, TcpOption};
use std::sync::Arc;

struct Rig {
    table: FlowTable,
    wire: MemoryPortHandle,
    model: SharedInProcess,
}

/// A device whose image declares `caps`, brought up, with next hops 0 and 1 on port 0.
fn rig(caps: u64) -> Rig {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let cfg = ModelConfig { next_hops: 16, ..ModelConfig::small(256) };
    let mut model = common::model_with_caps(cfg, caps, clock);
    let (port, wire) = MemoryPort::new();
    model.attach_port(0, Box::new(port)).unwrap();
    let model = SharedInProcess::new(model);
    let nic =
        Nic::bring_up(Box::new(model.clone()), NicConfig { ring_log2: 8, ..NicConfig::default() }).unwrap();
    let mut table = FlowTable::new(nic).unwrap();
    let hop = NextHopEntry {
        dst_mac: [2, 0, 0, 0, 0, 0x11],
        src_mac: [2, 0, 0, 0, 0, 1],
        vlan_tci: 0.into(),
        ctl: NextHopCtl::new().with_valid(true).with_port(0),
    };
    table.set_next_hop(0, hop).unwrap();
    table.set_next_hop(1, hop).unwrap();
    Rig { table, wire, model }
}

fn full_caps() -> u64 {
    rtl_spec::image::model_caps()
}

/// Flow `n`, SYN-proxied (`seq_delta`) with timestamp delta `ts_delta`.
fn flow(n: u16, ts_delta: u32) -> Flow {
    Flow { seq_delta: Some(0x1000), ts_delta, ..tcp_flow(n) }
}

/// The `ts_delta` the NIC holds for record `h` (from a Read's completion).
fn nic_ts_delta(t: &mut FlowTable, h: Handle) -> u32 {
    let nic = t.nic();
    let region = nic.transport().alloc_dma(4096).unwrap();
    let cmd = FlowCommand {
        opcode: Opcode::Read.into(),
        record: h.0.into(),
        dma_addr: region.iova().into(),
        ..FlowCommand::default()
    };
    let cpl = nic.execute(&[cmd]).unwrap()[0];
    nic.transport().free_dma(&region).unwrap();
    assert_eq!(cpl.status, 0);
    cpl.ts_delta.get()
}

/// The (TSval, TSecr) of the one frame the NIC sent for a segment of `t` carrying `ts`.
fn forwarded_ts(r: &mut Rig, t: &FlowTuple, ts: (u32, u32)) -> (u32, u32) {
    let ip = |a: &[u8; 16]| std::net::IpAddr::from(<[u8; 4]>::try_from(&a[..4]).unwrap());
    let l4 = L4::Tcp {
        sport: t.src_port.get(),
        dport: t.dst_port.get(),
        flags: ACK,
        seq: 1,
        ack: 1,
        window: 1000,
    };
    let mut p = Pkt::ip(ip(&t.src_addr), ip(&t.dst_addr), 64, l4, b"data");
    p.tcp_options = vec![TcpOption::Noop, TcpOption::Noop, TcpOption::Timestamp(ts.0, ts.1)];
    r.wire.push_rx(p.build(), None);
    r.table.nic().transport().service();
    let sent = r.wire.take_tx();
    assert_eq!(sent.len(), 1, "forwarded by the NIC");
    sluice_test_support::verify::checksums(&sent[0]).unwrap();
    // Untagged IPv4 without options: TCP at 34, its options (NOP, NOP, timestamp) at 54.
    let f = &sent[0];
    assert_eq!(f[54..58], [1, 1, 8, 10], "the timestamp option where it was");
    let word = |at: usize| u32::from_be_bytes(f[at..at + 4].try_into().unwrap());
    (word(58), word(62))
}

#[test]
fn an_installed_delta_is_in_the_shadow_and_the_nic_and_translates_both_directions() {
    let mut r = rig(full_caps());
    let f = flow(1, 0x8000_0000);
    let h = r.table.install(f).unwrap();
    assert!(r.table.commit().unwrap().is_empty());
    assert_eq!(r.table.get(h), Some(f));
    assert_eq!(nic_ts_delta(&mut r.table, h), 0x8000_0000);
    // Reply: TSval + ts_delta (wrapping); original: TSecr − ts_delta.
    assert_eq!(forwarded_ts(&mut r, &f.reply, (0x9000_0001, 7)), (0x1000_0001, 7));
    assert_eq!(forwarded_ts(&mut r, &f.orig, (5, 0x1000_0001)), (5, 0x9000_0001));
}

#[test]
fn a_record_reused_by_a_flow_without_timestamps_keeps_no_delta() {
    let mut r = rig(full_caps());
    let h = r.table.install(flow(1, 0xABCD)).unwrap();
    assert!(r.table.commit().unwrap().is_empty());
    r.table.remove(h, false).unwrap();
    let plain = flow(2, 0);
    let again = r.table.install(plain).unwrap();
    assert_eq!(again, h, "the freed record is taken again");
    assert!(r.table.commit().unwrap().is_empty());
    assert_eq!(r.table.get(again).map(|f| f.ts_delta), Some(0));
    assert_eq!(nic_ts_delta(&mut r.table, again), 0);
    assert_eq!(forwarded_ts(&mut r, &plain.reply, (10, 20)), (10, 20));
}

#[test]
fn a_device_without_ts_adjust_refuses_a_delta_and_nothing_changes() {
    let mut r = rig(full_caps() & !identity::CAPS::TS_ADJUST.mask());
    let err = r.table.install(flow(1, 5)).expect_err("refused");
    assert!(matches!(&err, InstallError::Invalid(m) if m.contains("TS_ADJUST")), "{err}");
    assert_eq!((r.table.occupancy(), r.table.stats().installs), (0, 0));
    assert_eq!(r.table.live_records().count(), 0);
    assert!(r.table.commit().unwrap().is_empty(), "nothing was queued");
    // Without a timestamp delta the same flow installs, and only its sequence is translated.
    let h = r.table.install(flow(1, 0)).unwrap();
    assert!(r.table.commit().unwrap().is_empty());
    assert_eq!(nic_ts_delta(&mut r.table, h), 0);
    assert_eq!(forwarded_ts(&mut r, &flow(1, 0).reply, (3, 4)), (3, 4));
}

#[test]
fn a_device_reset_is_rewritten_with_the_deltas() {
    let mut r = rig(full_caps());
    let handles: Vec<Handle> =
        (0..8).map(|n| r.table.install(flow(n, u32::from(n) * 0x111)).unwrap()).collect();
    assert!(r.table.commit().unwrap().is_empty());
    let Rig { table, wire, model } = r;
    let mut table = table.recover().unwrap();
    for (n, h) in handles.iter().enumerate() {
        assert_eq!(nic_ts_delta(&mut table, *h), n as u32 * 0x111, "record {}", h.0);
    }
    drop((wire, model));
}

#[test]
fn a_restarted_daemon_adopts_the_deltas_from_the_read_completions() {
    let mut r = rig(full_caps());
    let flows: Vec<Flow> =
        (0..20).map(|n| flow(n, if n % 2 == 0 { 0xF000_0000 | u32::from(n) } else { 0 })).collect();
    for f in &flows {
        r.table.install(*f).unwrap();
    }
    assert!(r.table.commit().unwrap().is_empty());
    let Rig { table, wire, model } = r;
    drop(table.nic_into_transport());
    let cfg = NicConfig { ring_log2: 8, preserve_table: true, ..NicConfig::default() };
    let nic = Nic::bring_up(Box::new(model.clone()), cfg).unwrap();
    let (table, adopted) = FlowTable::adopt(nic).unwrap();
    assert_eq!((adopted.flows.len(), adopted.skipped), (20, 0));
    let mut r = Rig { table, wire, model };
    for (h, f) in &adopted.flows {
        let want = flows[f.cookie as usize].ts_delta;
        assert_eq!(f.ts_delta, want, "flow {}", f.cookie);
        assert_eq!(r.table.get(*h).map(|g| g.ts_delta), Some(want));
        assert_eq!(nic_ts_delta(&mut r.table, *h), want, "reinstalled with it");
    }
    let even = flows[4];
    assert_eq!(
        forwarded_ts(&mut r, &even.reply, (0x1000_0000, 0)),
        (0x1000_0000u32.wrapping_add(even.ts_delta), 0)
    );
}
