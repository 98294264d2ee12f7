//! Flow commands through the command ring of a device with a populated table.
//!
//! Input: records of `head` and up to 256 command bytes (zero-padded), `len` (u16 LE) between
//! them. `head` bit 0: write the phase bit as given instead of the right one; bit 1: use the
//! valid IPv4 record as the payload's first 128 bytes (so inserts get past validation);
//! bits 4..: seconds the clock moves first. At most 64 commands.
//!
//! Invariants:
//! - one completion per command, echoing its opcode, record and cookie, with its ring index
//!   and a status the specification defines;
//! - a refused command changes nothing: the table image (records, index buckets, stash,
//!   next hops) is byte-for-byte what it was;
//! - after every command, `OCCUPANCY` is the number of valid records, each valid record is
//!   one an Insert could have written (known protocol, reserved bits clear, two different
//!   keys, next hops in range), and every invalid record is all zeroes with no timestamp delta.
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use fuzz_harness::Input;
use libfuzzer_sys::fuzz_target;
use rtl_spec::codes::{FlowProto, Opcode, Status};
use rtl_spec::formats::{FlowCommand, FlowRecord};
use rtl_spec::regs::{flow_table, next_hop};
use sim_model::device::TableImage;
use sluice_test_support::flows::Conn;
use sluice_test_support::model::ModelHost as Nic;
use zerocopy::{FromBytes, IntoBytes};

const MAX_COMMANDS: usize = 64;

/// The table image as bytes, to compare.
fn snapshot(t: &TableImage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(t.records.as_bytes());
    out.extend_from_slice(t.ext.as_bytes());
    out.extend_from_slice(t.buckets.as_bytes());
    out.extend_from_slice(t.stash.as_bytes());
    out.extend_from_slice(t.next_hops.as_bytes());
    out
}

/// Where `Read` commands may write a record.
const READ_BUF: u64 = 0x7000_0000;

fn check_table(nic: &mut Nic) {
    let occupancy = nic.dev.read32(flow_table::BASE + flow_table::OCCUPANCY);
    let sets = nic.dev.read32(next_hop::BASE + next_hop::COUNTER_SETS);
    let t = nic.dev.table_image();
    let mut live = 0;
    for (rec, ext) in t.records.iter().zip(t.ext) {
        if rec.ctl.valid() {
            live += 1;
            assert!(FlowProto::try_from(rec.ctl.proto()).is_ok(), "{rec:?}");
            assert!(u32::from(rec.ctl.counter_set()) < sets, "{rec:?} names a set beyond the bank");
            assert_ne!(rec.key(false), rec.key(true));
            assert!((rec.dir_orig.next_hop.get() as usize) < t.next_hops.len());
            assert!((rec.dir_reply.next_hop.get() as usize) < t.next_hops.len());
        } else {
            assert_eq!(*rec, FlowRecord::default(), "an invalid record is all zeroes");
            assert_eq!(ext.ts_delta.get(), 0, "a free record keeps no timestamp delta (spec 1.4)");
        }
    }
    assert_eq!(occupancy, live, "OCCUPANCY counts the valid records");
}

fuzz_target!(|data: &[u8]| {
    let mut nic = Nic::populated();
    assert!(nic.mem.map(READ_BUF, 128));
    let valid = Conn::v4_tcp().record();
    let mut input = Input::new(data);
    let mut n = 0;
    while !input.is_empty() && n < MAX_COMMANDS {
        n += 1;
        let (head, bytes) = input.record();
        nic.clock.advance(u64::from(head >> 4) * 1_000_000_000);
        let mut raw = [0u8; 256];
        raw[..bytes.len().min(256)].copy_from_slice(&bytes[..bytes.len().min(256)]);
        let mut cmd = FlowCommand::read_from_bytes(&raw).unwrap();
        if head & 2 != 0 {
            cmd.payload[..128].copy_from_slice(valid.as_bytes());
        }
        if cmd.opcode == Opcode::Read as u8 && head & 4 != 0 {
            cmd.dma_addr = READ_BUF.into();
        }
        let index = nic.cmd_prod();
        let before = snapshot(&nic.dev.table_image());
        let cpl = if head & 1 != 0 { nic.submit_raw(&[cmd]) } else { nic.submit(&[cmd]) };
        assert_eq!(cpl.len(), 1, "one completion per command");
        let c = cpl[0];
        assert_eq!(c.opcode, cmd.opcode);
        assert_eq!(c.record, cmd.record);
        assert_eq!(c.cookie, cmd.cookie);
        assert_eq!(c.index.get(), index);
        let status = Status::try_from(c.status).expect("a status the specification defines");
        if status != Status::Ok {
            assert!(
                before == snapshot(&nic.dev.table_image()),
                "refused ({status:?}) and changed the table: {cmd:?}"
            );
        }
        nic.events();
        check_table(&mut nic);
    }
});
