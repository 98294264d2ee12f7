//! `IndexMove` (spec 1.5): a cuckoo move in one command. The moved entry is found at its new
//! slot and not at its old one; every refusal (empty source, another record named, live or
//! misplaced destination, out of range, a device without `INDEX_MOVE`) leaves the index as it
//! was.

use rtl_spec::codes::{Opcode, Status};
use rtl_spec::formats::{FlowCommand, FlowRecord, IndexPos};
use rtl_spec::regs::{flow_table, identity};
use sim_model::device::ModelConfig;
use sluice_test_support::flows::{Conn, GW_MAC, RS_MAC, next_hop};
use sluice_test_support::model::ModelHost;

fn nic_with_caps(caps: u64) -> ModelHost {
    let mut nic = ModelHost::with_caps(ModelConfig::small(1024), 1, caps);
    assert_eq!(nic.set_next_hop(0, &next_hop(0, GW_MAC, None)).status, 0);
    assert_eq!(nic.set_next_hop(1, &next_hop(1, RS_MAC, None)).status, 0);
    nic
}

/// The move of record 7's slot `from` to `to`.
fn move_cmd(from: IndexPos, to: IndexPos) -> FlowCommand {
    FlowCommand {
        opcode: Opcode::IndexMove.into(),
        record: 7.into(),
        slot_orig: from,
        slot_reply: to,
        ..FlowCommand::default()
    }
}

fn bucket(index: u32, slot: u8) -> IndexPos {
    IndexPos::new().with_index(index).with_slot(slot)
}

/// The two buckets `rec`'s tuple of direction `reply` may be in.
fn buckets_of(nic: &mut ModelHost, rec: &FlowRecord, reply: bool) -> (u32, u32) {
    let seed_a = nic.dev.read32(flow_table::BASE + flow_table::SEED_A);
    let seed_b = nic.dev.read32(flow_table::BASE + flow_table::SEED_B);
    let buckets = nic.dev.read32(flow_table::BASE + flow_table::BUCKETS);
    let p = rtl_spec::hash::placement(&rec.key(reply), seed_a, seed_b, buckets);
    (p.bucket_a, p.bucket_b)
}

fn index_used(nic: &mut ModelHost) -> u32 {
    nic.dev.read32(flow_table::BASE + flow_table::INDEX_USED)
}

/// Whether a packet of `c` from the client is forwarded by the NIC (a hit) rather than punted.
fn hits(nic: &mut ModelHost, c: &Conn) -> bool {
    let before = nic.tx(1).len();
    nic.send(0, &c.to_vip(b"probe"));
    nic.tx(1).len() == before + 1
}

#[test]
fn a_moved_slot_is_found_where_it_went_and_refusals_change_nothing() {
    let mut n = nic_with_caps(rtl_spec::image::model_caps());
    let c = Conn::v4_tcp();
    let rec = c.record();
    assert_eq!(n.insert(7, &rec).status, Status::Ok as u8);
    let (_, from, reply_at) = n.placed[0];
    let (a, b) = buckets_of(&mut n, &rec, false);
    let other = if from.index() == a { b } else { a };
    let to = bucket(other, 3);
    let used = index_used(&mut n);
    assert!(hits(&mut n, &c));

    let refused = |n: &mut ModelHost, cmd: FlowCommand, status: Status, what: &str| {
        assert_eq!(n.command(cmd).status, status as u8, "{what}");
        assert_eq!(index_used(n), used, "{what}: the index is as it was");
        assert!(hits(n, &c), "{what}: the flow still hits");
    };
    refused(&mut n, move_cmd(to, from), Status::SlotNotLive, "from an empty slot");
    refused(&mut n, move_cmd(from, reply_at), Status::SlotLive, "onto the flow's own reply slot");
    refused(&mut n, move_cmd(from, from), Status::SlotLive, "onto itself");
    let other_record = FlowCommand { record: 8.into(), ..move_cmd(from, to) };
    refused(&mut n, other_record, Status::SlotMismatch, "naming a record the slot does not point at");
    let (ra, rb) = buckets_of(&mut n, &rec, true);
    let nowhere = (0..512).find(|x| ![a, b, ra, rb].contains(x)).unwrap();
    refused(&mut n, move_cmd(from, bucket(nowhere, 0)), Status::BadPlacement, "to a bucket not the key's");
    refused(&mut n, move_cmd(from, bucket(512, 0)), Status::SlotOutOfRange, "to bucket 512 of 512");
    refused(&mut n, move_cmd(bucket(9, 4), to), Status::SlotOutOfRange, "from slot 4 of 4");

    // The move: one command, the entry in its other bucket, the count of live slots the same.
    assert_eq!(n.command(move_cmd(from, to)).status, Status::Ok as u8);
    assert_eq!(index_used(&mut n), used);
    assert!(hits(&mut n, &c), "found at its new slot");
    // The old slot is empty: moving from it again is refused, moving back works.
    assert_eq!(n.command(move_cmd(from, to)).status, Status::SlotNotLive as u8);
    let stash = IndexPos::new().with_index(0).with_stash(true);
    assert_eq!(n.command(move_cmd(to, stash)).status, Status::Ok as u8, "into the stash");
    assert_eq!(n.dev.read32(flow_table::BASE + flow_table::STASH_USED), 1);
    assert!(hits(&mut n, &c), "found in the stash");
    assert_eq!(n.command(move_cmd(stash, from)).status, Status::Ok as u8, "and back");
    assert_eq!(n.dev.read32(flow_table::BASE + flow_table::STASH_USED), 0);
    assert!(hits(&mut n, &c));

    // Delete names where the slots are now.
    n.placed[0].1 = from;
    assert_eq!(n.delete(7, false).status, Status::Ok as u8);
    assert_eq!(index_used(&mut n), 0);
}

/// A device whose image lacks `INDEX_MOVE` (a 1.4 card) does not know the opcode.
#[test]
fn a_device_without_index_move_refuses_the_opcode() {
    let caps = rtl_spec::image::model_caps() & !identity::CAPS::INDEX_MOVE.mask();
    let mut n = nic_with_caps(caps);
    let c = Conn::v4_tcp();
    assert_eq!(n.insert(7, &c.record()).status, Status::Ok as u8);
    let (_, from, _) = n.placed[0];
    let (a, b) = buckets_of(&mut n, &c.record(), false);
    let to = bucket(if from.index() == a { b } else { a }, 3);
    assert_eq!(n.command(move_cmd(from, to)).status, Status::BadOpcode as u8);
    assert!(hits(&mut n, &c));
}
