//! Counter-bank cases (spec 1.2): allocating and freeing sets, every refusal with the bank
//! unchanged, hits counted into the record's set in the same pass as into the record, a flow's
//! set moved by Modify, the bank read in one DMA write, and Flush releasing every set.

#[allow(clippy::wildcard_imports)]
use super::*;
use rtl_spec::formats::CounterSet;
use rtl_spec::regs::next_hop;
use sim_model::mem::DmaMemory;
use zerocopy::FromBytes;

/// Host memory the bank is read into: the whole bank (2048 sets × 32 bytes).
const BANK_BUF: u64 = 0x6100_0000;

fn set_cmd(o: Opcode, set: u32) -> FlowCommand {
    FlowCommand { arg: U32::new(set), ..op(o, 0) }
}

fn bank_read(count: u32) -> FlowCommand {
    FlowCommand { arg: U32::new(count), dma_addr: BANK_BUF.into(), ..op(Opcode::CounterBankRead, 0) }
}

/// The `n`th v4 connection's record, naming counter set `set`.
fn rec_in(n: u16, set: u16) -> FlowRecord {
    let mut r = v4(n).record();
    r.ctl = r.ctl.with_counter_set(set);
    r
}

/// Reads the whole bank with CounterBankRead and compares set `set`: packets and bytes, both
/// directions.
fn set_is(set: usize, packets: (u64, u64), bytes: (u64, u64)) -> Check {
    Check::Custom(Box::new(move |nic| {
        let c = nic.command(bank_read(0));
        if c.status != S::Ok as u8 {
            return Err(format!("CounterBankRead completed with status {}", c.status));
        }
        let mut b = vec![0u8; 32];
        nic.mem.read(BANK_BUF + 32 * set as u64, &mut b).map_err(|e| format!("{e:?}"))?;
        let s = CounterSet::read_from_bytes(&b).map_err(|_| "short set".to_string())?;
        let got = ((s.packets_orig.get(), s.packets_reply.get()), (s.bytes_orig.get(), s.bytes_reply.get()));
        if got == (packets, bytes) {
            Ok(())
        } else {
            Err(format!("set {set}: {got:?}, expected {:?}", (packets, bytes)))
        }
    }))
}

/// `COUNTER_SETS_USED` reads `n`.
fn used(n: u32) -> Check {
    Check::Custom(Box::new(move |nic| {
        let got = nic.dev.read32(next_hop::BASE + next_hop::COUNTER_SETS_USED);
        if got == n { Ok(()) } else { Err(format!("COUNTER_SETS_USED {got}, expected {n}")) }
    }))
}

fn modify_set(record: u32, set: u16) -> FlowCommand {
    let mut rec = FlowRecord::default();
    rec.ctl = rec.ctl.with_counter_set(set);
    let mut c = FlowCommand {
        arg: ModifyMask::new().with_counter_set(true).into_bits(),
        ..op(Opcode::Modify, record)
    };
    c.payload[..128].copy_from_slice(rec.as_bytes());
    c
}

#[allow(clippy::too_many_lines)]
pub(super) fn bank() -> Vec<Case> {
    let (a, b) = (v4(40), v4(41));
    let (pa, pb) = (pkt(&a, false, ACK, 64, b"download"), pkt(&a, true, ACK, 64, &[7; 300]));
    let p_b = pkt(&b, false, ACK, 64, b"other");
    // IP lengths: 20 + 20 + payload.
    let (la, lb, l_b) = (48u64, 340u64, 45u64);
    vec![
        Case::cmd("CounterSetAlloc of set 3", |_| set_cmd(Opcode::CounterSetAlloc, 3), S::Ok)
            .setup(vec![
                Step::Fresh(1024, true),
                Step::Custom(Box::new(|nic| assert!(nic.mem.map(BANK_BUF, 2048 * 32)))),
            ])
            .after(vec![used(1), set_is(3, (0, 0), (0, 0))]),
        Case::cmd(
            "CounterSetAlloc of a live set",
            |_| set_cmd(Opcode::CounterSetAlloc, 3),
            S::CounterSetLive,
        )
        .after(vec![used(1)]),
        Case::cmd(
            "CounterSetAlloc of set 0 (none)",
            |_| set_cmd(Opcode::CounterSetAlloc, 0),
            S::CounterSetOutOfRange,
        ),
        Case::cmd(
            "CounterSetAlloc beyond COUNTER_SETS",
            |_| set_cmd(Opcode::CounterSetAlloc, 2048),
            S::CounterSetOutOfRange,
        )
        .after(vec![used(1)]),
        Case::cmd(
            "CounterSetFree of a free set",
            |_| set_cmd(Opcode::CounterSetFree, 4),
            S::CounterSetNotLive,
        ),
        Case::cmd(
            "Insert naming a set that is not allocated",
            move |nic| insert_placed(nic, 40, &rec_in(40, 4)),
            S::MalformedRecord,
        )
        .after(vec![Check::Occupancy(1), Check::Misses(0, pkt(&v4(40), false, ACK, 64, b"").build())]),
        Case::insert("Insert naming set 3", 40, rec_in(40, 3)).after(vec![Check::Occupancy(2)]),
        Case::insert("a second flow in set 3", 41, rec_in(41, 3)),
        fwd("a hit counts into the record and its set", &a, false, &pa)
            .after(vec![query(40, (1, 0), (la, 0), (ACK, 0), false), set_is(3, (1, 0), (la, 0))]),
        fwd("a reply hit counts into the set's reply direction", &a, true, &pb).after(vec![set_is(
            3,
            (1, 1),
            (la, lb),
        )]),
        fwd("the other flow's hit adds to the same set", &b, false, &p_b).after(vec![set_is(
            3,
            (2, 1),
            (la + l_b, lb),
        )]),
        Case::cmd(
            "CounterSetFree while flows name the set",
            |_| set_cmd(Opcode::CounterSetFree, 3),
            S::CounterSetInUse,
        )
        .after(vec![used(1), set_is(3, (2, 1), (la + l_b, lb))]),
        Case::cmd("Modify to a set that is not allocated", |_| modify_set(40, 7), S::MalformedRecord)
            .after(vec![set_is(3, (2, 1), (la + l_b, lb))]),
        Case::cmd("CounterSetAlloc of set 7", |_| set_cmd(Opcode::CounterSetAlloc, 7), S::Ok)
            .after(vec![used(2)]),
        Case::cmd(
            "Modify moves a flow's set (the flow moved to another server)",
            |_| modify_set(40, 7),
            S::Ok,
        ),
        fwd("after the move the flow counts into its new set", &a, false, &pa)
            .after(vec![set_is(7, (1, 0), (la, 0)), set_is(3, (2, 1), (la + l_b, lb))]),
        Case::cmd(
            "Read shows the record's new set",
            |_| FlowCommand { dma_addr: BANK_BUF.into(), ..op(Opcode::Read, 40) },
            S::Ok,
        )
        .after(vec![Check::Custom(Box::new(|nic| {
            let mut raw = [0u8; 128];
            nic.mem.read(BANK_BUF, &mut raw).map_err(|e| format!("{e:?}"))?;
            let set = FlowRecord::read_from_bytes(&raw).map_err(|_| "short".to_string())?.ctl.counter_set();
            if set == 7 { Ok(()) } else { Err(format!("record names set {set}")) }
        }))]),
        Case::cmd(
            "Delete of the other flow releases set 3",
            |nic| {
                let (_, o, r) = *nic.placed.iter().find(|p| p.0 == 41).unwrap();
                FlowCommand { slot_orig: o, slot_reply: r, ..op(Opcode::Delete, 41) }
            },
            S::Ok,
        ),
        Case::cmd("CounterSetFree of a set no flow names", |_| set_cmd(Opcode::CounterSetFree, 3), S::Ok)
            .after(vec![used(1), set_is(3, (0, 0), (0, 0))]),
        Case::cmd(
            "CounterBankRead of more sets than the bank has",
            |_| bank_read(2049),
            S::CounterSetOutOfRange,
        )
        .after(vec![set_is(7, (1, 0), (la, 0))]),
        Case {
            regs: vec![(next_hop::BASE + next_hop::BANK_READS, true, 1)],
            ..Case::cmd("CounterBankRead of the first 8 sets", |_| bank_read(8), S::Ok)
        }
        .after(vec![set_is(7, (1, 0), (la, 0))]),
        Case::cmd(
            "CounterSetFree of set 7 while its flow is live",
            |_| set_cmd(Opcode::CounterSetFree, 7),
            S::CounterSetInUse,
        ),
        Case::cmd("Flush releases every set", |_| op(Opcode::Flush, 0), S::Ok)
            .after(vec![Check::Occupancy(0), used(1)])
            .cleanup(vec![Step::Drain]),
        Case::cmd("CounterSetFree after the flush", |_| set_cmd(Opcode::CounterSetFree, 7), S::Ok)
            .after(vec![used(0)]),
    ]
}
