//! The counter bank (spec 1.2) through the command ring: a set is not freed while a flow names
//! it (the model's reference count), a Modify moves a flow's set, a hit adds to the record and to
//! its set in one pass so each set always holds the sum of its flows, and an ager eviction
//! releases the set.

use proptest::prelude::*;
use rtl_spec::codes::{Opcode, Status};
use rtl_spec::formats::{CounterSet, FlowCommand, FlowRecord, ModifyMask};
use rtl_spec::regs::next_hop as nh_regs;
use sim_model::device::ModelConfig;
use sluice_test_support::flows::{Conn, GW_MAC, RS_MAC, next_hop};
use sluice_test_support::model::ModelHost as Nic;
use zerocopy::IntoBytes;

fn nic() -> Nic {
    let mut nic = Nic::new(ModelConfig::small(1024), 2);
    assert_eq!(nic.set_next_hop(0, &next_hop(0, GW_MAC, None)).status, 0);
    assert_eq!(nic.set_next_hop(1, &next_hop(1, RS_MAC, None)).status, 0);
    nic
}

fn set_cmd(nic: &mut Nic, o: Opcode, set: u32) -> u8 {
    nic.command(FlowCommand { opcode: o.into(), arg: set.into(), ..FlowCommand::default() }).status
}

/// The `n`th v4 TCP connection (unique tuples), in set `set`.
fn conn(n: u16) -> Conn {
    let mut c = Conn::v4_tcp();
    c.client.1 = 30000 + n;
    c.lip.1 = 5000 + n;
    c
}

fn record_in(c: &Conn, set: u16) -> FlowRecord {
    let mut r = c.record();
    r.ctl = r.ctl.with_counter_set(set);
    r
}

fn move_to(nic: &mut Nic, record: u32, set: u16) -> u8 {
    let mut rec = FlowRecord::default();
    rec.ctl = rec.ctl.with_counter_set(set);
    let mut c = FlowCommand {
        opcode: Opcode::Modify.into(),
        record: record.into(),
        arg: ModifyMask::new().with_counter_set(true).into_bits(),
        ..FlowCommand::default()
    };
    c.payload[..128].copy_from_slice(rec.as_bytes());
    nic.command(c).status
}

fn bank_set(nic: &Nic, set: usize) -> CounterSet {
    nic.dev.counter_bank().0[set]
}

#[test]
fn a_set_is_not_freed_while_a_flow_names_it() {
    let mut n = nic();
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetAlloc, 9), Status::Ok as u8);
    let (a, b) = (conn(1), conn(2));
    assert_eq!(n.insert(1, &record_in(&a, 9)).status, 0);
    assert_eq!(n.insert(2, &record_in(&b, 9)).status, 0);
    assert_eq!(n.dev.counter_bank().2[9], 2, "two records name set 9");
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 9), Status::CounterSetInUse as u8);
    assert_eq!(n.delete(1, false).status, 0);
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 9), Status::CounterSetInUse as u8, "one left");
    n.send(0, &b.to_vip(b"still counted"));
    assert_eq!(bank_set(&n, 9).packets_orig.get(), 1, "the refused free changed nothing");
    assert_eq!(n.delete(2, false).status, 0);
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 9), Status::Ok as u8);
    assert_eq!(n.dev.read32(nh_regs::BASE + nh_regs::COUNTER_SETS_USED), 0);
    assert_eq!(bank_set(&n, 9), CounterSet::default(), "a freed set is zeroed");
    // A record may not name a freed set.
    assert_eq!(n.insert(3, &record_in(&a, 9)).status, Status::MalformedRecord as u8);
}

#[test]
fn a_moved_flow_counts_into_its_new_set_and_releases_the_old() {
    let mut n = nic();
    for set in [1, 2] {
        assert_eq!(set_cmd(&mut n, Opcode::CounterSetAlloc, set), 0);
    }
    let a = conn(1);
    assert_eq!(n.insert(5, &record_in(&a, 1)).status, 0);
    n.send(0, &a.to_vip(b"before"));
    assert_eq!(move_to(&mut n, 5, 3), Status::MalformedRecord as u8, "set 3 is not allocated");
    assert_eq!(n.dev.counter_bank().2[1], 1, "the refused move changed nothing");
    assert_eq!(move_to(&mut n, 5, 2), 0);
    assert_eq!(n.dev.counter_bank().2[1..3], [0, 1]);
    n.send(0, &a.to_vip(b"after!"));
    n.send(1, &a.to_lip(b"reply"));
    let (s1, s2) = (bank_set(&n, 1), bank_set(&n, 2));
    assert_eq!((s1.packets_orig.get(), s1.bytes_orig.get()), (1, 46));
    assert_eq!((s2.packets_orig.get(), s2.bytes_orig.get()), (1, 46));
    assert_eq!((s2.packets_reply.get(), s2.bytes_reply.get()), (1, 45));
    // The old set keeps what it counted and can be freed; the new one cannot.
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 2), Status::CounterSetInUse as u8);
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 1), 0);
    // Moving to set 0 stops the counting into a set.
    assert_eq!(move_to(&mut n, 5, 0), 0);
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 2), 0);
}

#[test]
fn an_evicted_flow_releases_its_set() {
    let mut n = nic();
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetAlloc, 4), 0);
    let mut r = record_in(&conn(1), 4);
    r.idle_timeout = 1.into();
    r.ctl = r.ctl.with_auto_delete(true);
    assert_eq!(n.insert(8, &r).status, 0);
    n.clock.advance(3_000_000_000);
    n.dev.run_ager_sweep();
    assert_eq!(n.dev.counter_bank().2[4], 0);
    assert_eq!(set_cmd(&mut n, Opcode::CounterSetFree, 4), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the frames, each set holds exactly the sum of its flows' own counters.
    #[test]
    fn each_set_counts_the_sum_of_its_flows(picks in prop::collection::vec((0u16..8, any::<bool>(), 0usize..600), 1..120)) {
        let mut n = nic();
        for set in 1..=3 {
            prop_assert_eq!(set_cmd(&mut n, Opcode::CounterSetAlloc, set), 0);
        }
        // Flows 0..8 in sets 1, 2, 3 round robin (flow 7 in none).
        let set_of = |f: u16| if f == 7 { 0 } else { f % 3 + 1 };
        for f in 0..8u16 {
            prop_assert_eq!(n.insert(u32::from(f) + 10, &record_in(&conn(f), set_of(f))).status, 0);
        }
        for (f, reply, len) in picks {
            let c = conn(f);
            let payload = vec![0x5a; len];
            if reply { n.send(1, &c.to_lip(&payload)) } else { n.send(0, &c.to_vip(&payload)) }
        }
        let records = n.dev.table_image().records.to_vec();
        for set in 1..=3u16 {
            let mut sum = CounterSet::default();
            for f in (0..8u16).filter(|f| set_of(*f) == set) {
                let r = &records[usize::from(f) + 10];
                sum.packets_orig = (sum.packets_orig.get() + u64::from(r.packets_orig.get())).into();
                sum.packets_reply = (sum.packets_reply.get() + u64::from(r.packets_reply.get())).into();
                sum.bytes_orig = (sum.bytes_orig.get() + r.bytes_orig.get()).into();
                sum.bytes_reply = (sum.bytes_reply.get() + r.bytes_reply.get()).into();
            }
            prop_assert_eq!(bank_set(&n, usize::from(set)), sum, "set {}", set);
        }
    }
}
