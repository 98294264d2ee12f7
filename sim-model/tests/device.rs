//! The device through its registers and rings: bring-up, a FullNAT flow both ways, punts,
//! commands, events, the ager, interrupts, reset.

use rtl_spec::codes::{DropReason, EventKind, FlowCause, PuntReason, Status};
use rtl_spec::regs::{counters, flow_table, identity, interrupts, ring_id};
use sim_model::device::ModelConfig;
use sluice_test_support::flows::{Conn, GW_MAC, NIC_MAC, RS_MAC, next_hop};
use sluice_test_support::model::ModelHost;
use sluice_test_support::verify::checksums;

fn nic() -> ModelHost {
    let mut nic = ModelHost::new(ModelConfig::small(1024), 2);
    assert_eq!(nic.set_next_hop(0, &next_hop(0, GW_MAC, None)).status, 0);
    assert_eq!(nic.set_next_hop(1, &next_hop(1, RS_MAC, None)).status, 0);
    nic
}

#[test]
fn identity_and_geometry_read_as_specified() {
    let mut n = nic();
    assert_eq!(n.dev.read32(identity::BASE + identity::MAGIC), rtl_spec::MAGIC);
    assert_eq!(n.dev.read32(identity::BASE + identity::SPEC_VERSION), rtl_spec::SPEC_VERSION);
    assert_eq!(n.dev.read32(0), rtl_spec::codes::BlockType::Identity as u32);
    assert_eq!(n.dev.read32(flow_table::BASE + flow_table::RECORDS), 1024);
    assert_eq!(n.dev.read32(flow_table::BASE + flow_table::BUCKETS), 512);
    assert_eq!(n.dev.read32(rtl_spec::regs::ports::BASE + rtl_spec::regs::ports::STRIDE), 0x40);
    assert_eq!(n.dev.read32(rtl_spec::regs::rings::BASE + rtl_spec::regs::rings::STRIDE), 0x40);
    // Walk the chain as a driver does.
    let mut at = 0u32;
    let mut seen = 0;
    loop {
        let next = n.dev.read32(at + 8);
        seen += 1;
        if next == 0 {
            break;
        }
        at = next;
    }
    assert_eq!(seen, rtl_spec::regs::ALL_BLOCKS.len());
}

#[test]
fn a_fullnat_flow_is_rewritten_both_ways_and_counted() {
    let mut n = nic();
    let c = Conn::v4_tcp();
    assert_eq!(n.insert(7, &c.record()).status, Status::Ok as u8);
    n.send(0, &c.to_vip(b"hello"));
    let out = n.tx(1);
    assert_eq!(out.len(), 1, "forwarded to the real server's port");
    checksums(&out[0]).unwrap();
    assert_eq!(&out[0][0..6], &RS_MAC);
    assert_eq!(&out[0][6..12], &NIC_MAC);
    assert_eq!(&out[0][26..30], &[10, 10, 2, 1], "source is the LIP");
    assert_eq!(&out[0][30..34], &[10, 10, 2, 11], "destination is the real server");
    n.send(1, &c.to_lip(b"world!"));
    let back = n.tx(0);
    assert_eq!(back.len(), 1);
    checksums(&back[0]).unwrap();
    assert_eq!(&back[0][26..30], &[10, 10, 1, 100], "source is the VIP");
    assert_eq!(&back[0][30..34], &[192, 0, 2, 10], "destination is the client");
    assert_eq!(n.counter(counters::HITS), 2);
    assert_eq!(n.counter(counters::TX_PACKETS), 2);
    let q = n.command(rtl_spec::formats::FlowCommand {
        opcode: rtl_spec::codes::Opcode::Query.into(),
        record: 7.into(),
        ..Default::default()
    });
    assert_eq!((q.packets_orig.get(), q.packets_reply.get()), (1, 1));
    assert_eq!(q.bytes_orig.get(), 20 + 20 + 5);
}

#[test]
fn a_miss_is_punted_with_metadata_and_a_fin_marks_teardown() {
    let mut n = nic();
    let c = Conn::v4_tcp();
    n.send(0, &c.to_vip(b""));
    let ex = n.all_exceptions();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].0.reason, PuntReason::Miss as u8);
    assert_eq!(ex[0].0.l3_offset, 14);
    assert_eq!(ex[0].1, c.to_vip(b""), "the frame as received");
    n.insert(3, &c.record());
    n.send(0, &c.packet(c.client, c.vip, 0x11, 64, b""));
    let ex = n.all_exceptions();
    assert_eq!(ex[0].0.reason, PuntReason::TcpFin as u8);
    assert!(ex[0].0.flags.hit());
    assert_eq!(ex[0].0.record.get(), 3);
    let ev = n.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::FlowInfo as u8);
    assert_eq!(ev[0].cause, FlowCause::Fin as u8);
}

#[test]
fn the_ager_reports_idle_records_once() {
    let mut n = nic();
    let c = Conn::v4_tcp();
    let mut rec = c.record();
    rec.idle_timeout = 10.into();
    n.insert(1, &rec);
    n.dev.run_ager_sweep();
    assert!(n.events().is_empty());
    n.clock.advance(11_000_000_000);
    n.dev.run_ager_sweep();
    let ev = n.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].cause, FlowCause::Idle as u8);
    n.dev.run_ager_sweep();
    assert!(n.events().is_empty(), "reported once");
}

#[test]
fn interrupts_fire_when_armed_and_reset_clears_everything() {
    let mut n = nic();
    let src = interrupts::BASE + interrupts::SOURCE_VECTOR + 4 * ring_id::EXCEPTION0;
    n.dev.write32(src, 0x8000_0003);
    n.dev.write32(interrupts::BASE + interrupts::VEC_CTRL + 3 * 0x10, 1);
    n.send(0, &Conn::v4_tcp().to_vip(b""));
    assert_eq!(*n.irqs.lock().unwrap(), vec![3]);
    n.send(0, &Conn::v4_tcp().to_vip(b""));
    assert_eq!(n.irqs.lock().unwrap().len(), 1, "disarmed after firing");
    n.insert(1, &Conn::v4_tcp().record());
    n.bring_up();
    assert_eq!(n.dev.read32(flow_table::BASE + flow_table::OCCUPANCY), 0);
    assert_eq!(n.counter(counters::RX_PACKETS), 0);
    n.send(9, b"short");
    assert_eq!(n.drop_count(DropReason::PortDown), 1);
}

/// `PUNT.REASON_SHARE`: misses may hold a quarter of a 16-entry exception ring; the rest of a
/// flood of them is dropped and counted (`PuntShare`), a FIN on a record still finds room, and
/// once the host has taken the ring's entries the misses have their share again.
#[test]
fn a_flood_of_one_punt_reason_leaves_the_rest_of_the_ring_to_the_others() {
    let mut n = ModelHost::with_ring_log2(ModelConfig::small(1024), 1, 4);
    assert_eq!(n.set_next_hop(0, &next_hop(0, GW_MAC, None)).status, 0);
    assert_eq!(n.set_next_hop(1, &next_hop(1, RS_MAC, None)).status, 0);
    let share = rtl_spec::regs::punt::BASE + rtl_spec::regs::punt::REASON_SHARE + 4 * PuntReason::Miss as u32;
    assert_eq!(n.dev.read32(share), 100, "no bound by default");
    n.dev.write32(share, 25);
    let conn = |port: u16| Conn { client: ("192.0.2.1".parse().unwrap(), port), ..Conn::v4_tcp() };
    for p in 0..10 {
        n.send(0, &conn(2000 + p).to_vip(b""));
    }
    assert_eq!(n.drop_count(DropReason::PuntShare), 6, "4 of 16 entries for misses");
    let c = Conn::v4_tcp();
    n.insert(3, &c.record());
    n.send(0, &c.packet(c.client, c.vip, 0x11, 64, b""));
    let ex = n.exceptions(0);
    let count = |reason: PuntReason| ex.iter().filter(|(d, _)| d.reason == reason as u8).count();
    assert_eq!(count(PuntReason::Miss), 4);
    assert_eq!(count(PuntReason::TcpFin), 1, "the FIN had room");
    for p in 0..4 {
        n.send(0, &conn(3000 + p).to_vip(b""));
    }
    assert_eq!(n.exceptions(0).len(), 4, "the share is free again once the host took the entries");
    assert_eq!(n.drop_count(DropReason::PuntShare), 6);
}

/// The command engine fetches commands in bursts ahead of executing them, and that changes
/// nothing the host sees: twenty commands behind one doorbell, the twelfth with a stale phase,
/// complete in order up to and including the stale one (`BadPhase`), and the eight after it
/// stay unconsumed until the next doorbell runs them. Inserts spread over several bursts land
/// where they were placed, each completion naming its record.
#[test]
fn commands_fetched_in_bursts_complete_in_order_and_stop_at_a_bad_phase() {
    use rtl_spec::codes::Opcode;
    use rtl_spec::formats::FlowCommand;
    use rtl_spec::ring::phase_for;
    use zerocopy::little_endian::U32;
    let mut n = ModelHost::with_ring_log2(ModelConfig::small(1024), 1, 5);
    let log2 = n.ring_log2();
    let first = n.cmd_prod();
    let cmds: Vec<FlowCommand> = (0..20u32)
        .map(|i| {
            let mut c =
                FlowCommand { opcode: Opcode::Nop.into(), record: U32::new(i), ..FlowCommand::default() };
            c.flags.set_phase(phase_for(first.wrapping_add(i), log2) != (i == 11));
            c
        })
        .collect();
    let done = n.submit_raw(&cmds);
    let records: Vec<u32> = done.iter().map(|c| c.record.get()).collect();
    assert_eq!(records, (0..12).collect::<Vec<_>>(), "in order, through the stale one");
    assert!(done[..11].iter().all(|c| c.status == Status::Ok as u8));
    assert_eq!(done[11].status, Status::BadPhase as u8);
    let rest = n.submit_raw(&[]);
    assert_eq!(rest.iter().map(|c| c.record.get()).collect::<Vec<_>>(), (12..20).collect::<Vec<_>>());
    assert!(rest.iter().all(|c| c.status == Status::Ok as u8), "the next doorbell runs the rest");

    let mut n = nic();
    let conns: Vec<Conn> = (0..19u16)
        .map(|p| Conn { client: ("192.0.2.7".parse().unwrap(), 4000 + p), ..Conn::v4_tcp() })
        .collect();
    let conns: Vec<Conn> = conns.into_iter().map(|c| Conn { lip: (c.lip.0, c.client.1), ..c }).collect();
    let cmds: Vec<FlowCommand> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (o, r) = n.place(&c.record());
            n.placed.push((100 + i as u32, o, r));
            sluice_test_support::model::insert_cmd(100 + i as u32, &c.record(), o, r)
        })
        .collect();
    let done = n.submit(&cmds);
    assert_eq!(done.iter().map(|c| c.record.get()).collect::<Vec<_>>(), (100..119).collect::<Vec<_>>());
    assert!(done.iter().all(|c| c.status == Status::Ok as u8), "{done:?}");
    for c in &conns {
        n.send(0, &c.to_vip(b"x"));
    }
    assert_eq!(n.tx(1).len(), 19, "every flow of the bursts forwards");
}
