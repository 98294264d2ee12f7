//! Properties of the model under random input: no input panics it, every received frame is
//! accounted for, a burst gives exactly what the same frames one at a time give, and no command
//! sequence leaves an invalid record in the table.

use proptest::prelude::*;
use rtl_spec::codes::{FlowProto, Opcode, Status};
use rtl_spec::formats::{FlowCommand, FlowRecord};
use rtl_spec::regs::{counters, flow_table};
use sim_model::device::ModelConfig;
use sim_model::mem::DmaMemory;
use sluice_test_support::flows::{Conn, GW_MAC, RS_MAC, next_hop};
use sluice_test_support::model::ModelHost;
use zerocopy::{FromBytes, IntoBytes};

fn nic() -> ModelHost {
    let mut nic = ModelHost::new(ModelConfig::small(16), 2);
    nic.set_next_hop(0, &next_hop(0, GW_MAC, None));
    nic.set_next_hop(1, &next_hop(1, RS_MAC, None));
    // Both flows count into counter sets (spec 1.2), so the comparison of a burst with the same
    // frames one at a time covers the bank too.
    for set in [5u32, 6] {
        let c = nic.command(FlowCommand {
            opcode: Opcode::CounterSetAlloc.into(),
            arg: set.into(),
            ..FlowCommand::default()
        });
        assert_eq!(c.status, 0);
    }
    let mut r4 = Conn::v4_tcp().record();
    r4.ctl = r4.ctl.with_counter_set(5);
    let mut r6 = Conn::v6_tcp().udp().record();
    r6.ctl = r6.ctl.with_counter_set(6);
    assert_eq!(nic.insert(1, &r4).status, 0);
    assert_eq!(nic.insert(2, &r6).status, 0);
    nic
}

fn seeds() -> Vec<Vec<u8>> {
    let c = Conn::v4_tcp();
    let c6 = Conn::v6_tcp();
    vec![
        c.to_vip(b"payload"),
        c.to_lip(b"x"),
        c.packet(c.client, c.vip, 0x02, 64, b""),
        c6.to_vip(b"six"),
        c6.udp().to_lip(b"udp"),
    ]
}

fn accounted(nic: &mut ModelHost) -> (u64, u64) {
    let rx = nic.counter(counters::RX_PACKETS);
    let out = nic.counter(counters::TX_PACKETS) + nic.counter(counters::PUNTS) + nic.counter(counters::DROPS);
    (rx, out)
}

/// Everything a device showed the host after some frames.
#[derive(Debug, PartialEq)]
struct Observed {
    /// What left each port.
    tx: Vec<Vec<Vec<u8>>>,
    /// Every punt: descriptor and bytes.
    punts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Every event.
    events: Vec<Vec<u8>>,
    /// The datapath counters.
    counts: Vec<u64>,
    /// The counter bank's sets 5 and 6 and the records' own counters (packets and bytes).
    bank: Vec<Vec<u8>>,
}

fn observed(nic: &mut ModelHost) -> Observed {
    let regs = [
        counters::RX_PACKETS,
        counters::TX_PACKETS,
        counters::PUNTS,
        counters::DROPS,
        counters::HITS,
        counters::MISSES,
    ];
    Observed {
        tx: (0..2).map(|p| nic.tx(p)).collect(),
        punts: nic.all_exceptions().into_iter().map(|(d, b)| (d.as_bytes().to_vec(), b)).collect(),
        events: nic.events().into_iter().map(|e| e.as_bytes().to_vec()).collect(),
        counts: regs.iter().map(|r| nic.counter(*r)).collect(),
        bank: {
            let (sets, _, _) = nic.dev.counter_bank();
            let records = nic.dev.table_image().records;
            vec![
                sets[5].as_bytes().to_vec(),
                sets[6].as_bytes().to_vec(),
                records[1].as_bytes()[0x68..].to_vec(),
                records[2].as_bytes()[0x68..].to_vec(),
            ]
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_burst_gives_what_the_same_frames_one_at_a_time_give(
        picks in prop::collection::vec((0usize..7, 0u8..2, any::<u8>()), 1..70),
    ) {
        // Hits both ways, FINs and SYNs on live flows, misses, parser punts and garbage, in any
        // order and on either port, as bursts of up to 32 and one by one.
        let c = Conn::v4_tcp();
        let frames: Vec<(u8, Vec<u8>)> = picks
            .iter()
            .map(|&(kind, port, byte)| {
                let f = match kind {
                    0 | 1 => seeds()[usize::from(byte) % 5].clone(),
                    2 => c.packet(c.client, c.vip, 0x11, 64, b"fin"),
                    3 => c.packet(c.client, c.vip, 0x02, 64, b""),
                    4 => c.packet(c.client, c.vip, 0x10, 1, b"ttl"),
                    5 => vec![byte; usize::from(byte) % 90],
                    _ => Conn::v6_tcp().packet(Conn::v6_tcp().client, Conn::v6_tcp().vip, 0x10, 64, &[byte]),
                };
                (port, f)
            })
            .collect();
        let mut one = nic();
        for (port, f) in &frames {
            one.send(*port, f);
        }
        let mut burst = nic();
        let refs: Vec<(u8, &[u8])> = frames.iter().map(|(p, f)| (*p, f.as_slice())).collect();
        burst.dev.receive_burst(&refs);
        prop_assert_eq!(observed(&mut one), observed(&mut burst));
    }

    #[test]
    fn random_frames_are_accounted_for(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..40)) {
        let mut nic = nic();
        for f in &frames {
            nic.send((f.len() % 2) as u8, f);
            nic.all_exceptions();
        }
        let (rx, out) = accounted(&mut nic);
        prop_assert_eq!(rx, frames.len() as u64);
        prop_assert_eq!(rx, out);
    }

    #[test]
    fn mutated_valid_frames_are_accounted_for(
        which in 0usize..5,
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        let mut nic = nic();
        let mut f = seeds()[which].clone();
        for (at, v) in edits {
            let i = at % f.len();
            f[i] = v;
        }
        let keep = if cut % 3 == 0 { cut % (f.len() + 1) } else { f.len() };
        f.truncate(keep);
        nic.send(0, &f);
        nic.send(1, &f);
        let (rx, out) = accounted(&mut nic);
        prop_assert_eq!(rx, 2);
        prop_assert_eq!(rx, out);
        for p in 0..2 {
            for frame in nic.tx(p) {
                prop_assert!(frame.len() >= 14);
            }
        }
    }

    #[test]
    fn random_commands_never_leave_an_invalid_record(cmds in prop::collection::vec(
        (1u8..12, 0u32..20, any::<u32>(), any::<u32>(), any::<u32>(), prop::collection::vec(any::<u8>(), 128)), 1..24)
    ) {
        let mut nic = nic();
        let valid = Conn::v4_tcp().record();
        for (op, record, slot_o, slot_r, arg, payload) in cmds {
            let mut cmd = FlowCommand {
                opcode: op,
                record: record.into(),
                slot_orig: rtl_spec::formats::IndexPos::from_bits(slot_o.into()),
                slot_reply: rtl_spec::formats::IndexPos::from_bits(slot_r.into()),
                arg: arg.into(),
                ..FlowCommand::default()
            };
            // Half the time a valid record with random placement, else random bytes.
            if arg % 2 == 0 {
                cmd.payload[..128].copy_from_slice(valid.as_bytes());
            } else {
                cmd.payload[..128].copy_from_slice(&payload);
            }
            if op == Opcode::Read as u8 {
                cmd.dma_addr = u64::from(arg).into();
            }
            let cpl = nic.submit(&[cmd]);
            prop_assert_eq!(cpl.len(), 1);
            prop_assert!(Status::try_from(cpl[0].status).is_ok());
        }
        // Read every record back through the Read command and check it.
        prop_assert!(nic.mem.map(0x7000_0000, 128));
        let mut live = 0;
        for i in 0..16u32 {
            let c = nic.command(FlowCommand {
                opcode: Opcode::Read.into(),
                record: i.into(),
                dma_addr: 0x7000_0000u64.into(),
                ..FlowCommand::default()
            });
            prop_assert_eq!(c.status, 0);
            let mut b = [0u8; 128];
            nic.mem.read(0x7000_0000, &mut b).unwrap();
            let rec = FlowRecord::read_from_bytes(&b).unwrap();
            if rec.ctl.valid() {
                live += 1;
                prop_assert!(FlowProto::try_from(rec.ctl.proto()).is_ok());
                // Since 1.2 the bits that were reserved name a counter set, which must be allocated.
                let set = usize::from(rec.ctl.counter_set());
                prop_assert!(set == 0 || nic.dev.counter_bank().1[set], "record {} names free set {}", i, set);
                prop_assert!(rec.key(false) != rec.key(true));
            } else {
                prop_assert_eq!(rec, FlowRecord::default());
            }
        }
        prop_assert_eq!(live, nic.dev.read32(flow_table::BASE + flow_table::OCCUPANCY));
        let used = nic.dev.read32(flow_table::BASE + flow_table::INDEX_USED);
        prop_assert!(used >= 2 * live);
    }
}
