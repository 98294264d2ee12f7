//! Layout tests: sizes, field coverage, bitfield placement and byte-level round trips over
//! literal bytes, so a reader sees the wire format in the test.

use super::*;
use crate::meta::FieldLayout;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

#[test]
fn sizes_are_the_published_ones() {
    let expected: &[(&str, usize)] = &[
        ("FlowRecord", 128),
        ("RecordExt", 4),
        ("FlowTuple", 36),
        ("DirParams", 6),
        ("LookupKey", 40),
        ("IndexSlot", 8),
        ("IndexBucket", 32),
        ("NextHopEntry", 16),
        ("CounterSet", 32),
        ("FlowCommand", 256),
        ("Completion", 64),
        ("ExceptionDesc", 32),
        ("InjectDesc", 32),
        ("Event", 64),
        ("ImageHeader", 256),
        ("ImageGeometry", 24),
        ("FlashStateRecord", 32),
    ];
    for (name, size) in expected {
        let spec = ALL_FORMATS.iter().find(|f| f.name == *name).expect(name);
        assert_eq!(spec.size, *size, "{name}");
    }
    assert_eq!(size_of::<FlowRecord>(), 128);
    assert_eq!(size_of::<FlowCommand>(), 256);
    assert_eq!(align_of::<FlowRecord>(), 1, "formats are placeable at any offset");
    assert_eq!(align_of::<FlowCommand>(), 1);
}

#[test]
fn fields_cover_every_byte_once_and_are_documented() {
    for f in ALL_FORMATS {
        let mut next = 0usize;
        for field in f.fields {
            assert_eq!(field.offset, next, "{}.{} leaves a gap or overlaps", f.name, field.name);
            assert!(!field.doc.trim().is_empty(), "{}.{} has no doc", f.name, field.name);
            next += field.size;
            if let FieldLayout::Bits(bits) = field.layout {
                let used: u32 = bits.iter().map(|b| b.bits.width()).sum();
                assert_eq!(used as usize, field.size * 8, "{}.{} bits", f.name, field.name);
            }
        }
        assert_eq!(next, f.size, "{} fields do not add up to its size", f.name);
        assert!(!f.doc.trim().is_empty(), "{} has no doc", f.name);
    }
}

#[test]
fn bitfield_tables_match_the_generated_accessors() {
    let mut bad = Vec::new();
    bad.extend(RecordCtl::layout_mismatches());
    bad.extend(SlotWord::layout_mismatches());
    bad.extend(IndexPos::layout_mismatches());
    bad.extend(NextHopCtl::layout_mismatches());
    bad.extend(CommandFlags::layout_mismatches());
    bad.extend(ModifyMask::layout_mismatches());
    bad.extend(CompletionFlags::layout_mismatches());
    bad.extend(ExceptionFlags::layout_mismatches());
    bad.extend(InjectFlags::layout_mismatches());
    bad.extend(EventFlags::layout_mismatches());
    assert!(bad.is_empty(), "tables disagree with accessors: {bad:?}");
    for (name, fields) in ALL_BITFIELDS {
        for f in *fields {
            assert!(!f.doc.trim().is_empty(), "{name}.{} has no doc", f.name);
        }
    }
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a);
    out
}

fn sample_record() -> FlowRecord {
    FlowRecord {
        ctl: RecordCtl::new().with_valid(true).with_proto(6).with_host_state(3),
        cookie: U32::new(0x0102_0304),
        orig: FlowTuple {
            src_addr: v4([192, 0, 2, 1]),
            dst_addr: v4([10, 10, 1, 100]),
            src_port: 40000.into(),
            dst_port: 80.into(),
        },
        reply: FlowTuple {
            src_addr: v4([10, 10, 2, 11]),
            dst_addr: v4([10, 10, 2, 1]),
            src_port: 80.into(),
            dst_port: 1025.into(),
        },
        idle_timeout: U16::new(900),
        tcp_flags_orig: 0x12,
        tcp_flags_reply: 0x10,
        last_seen: U32::new(77),
        dir_orig: DirParams { next_hop: U16::new(5), l3_delta: U16::new(0xabcd), l4_delta: U16::new(0x1234) },
        dir_reply: DirParams {
            next_hop: U16::new(6),
            l3_delta: U16::new(0x5432),
            l4_delta: U16::new(0xedcb),
        },
        seq_delta: U32::new(0),
        packets_orig: U32::new(10),
        packets_reply: U32::new(9),
        bytes_orig: U64::new(1000),
        bytes_reply: U64::new(90_000),
    }
}

#[test]
fn flow_record_bytes_are_where_the_spec_says() {
    let r = sample_record();
    let b = r.as_bytes();
    assert_eq!(&b[0..4], &[0x01, 0x06, 0x03, 0x00], "ctl: valid, proto 6, host_state 3");
    assert_eq!(&b[4..8], &[0x04, 0x03, 0x02, 0x01], "cookie is little-endian");
    assert_eq!(&b[8..12], &[192, 0, 2, 1], "orig.src_addr in network order");
    assert_eq!(&b[8 + 32..8 + 36], &[0x9c, 0x40, 0x00, 0x50], "ports big-endian: 40000, 80");
    assert_eq!(&b[0x2c..0x30], &[10, 10, 2, 11], "reply tuple at 0x2c");
    assert_eq!(&b[0x50..0x52], &[0x84, 0x03], "idle timeout 900");
    assert_eq!(&b[0x58..0x5a], &[5, 0], "dir_orig.next_hop at 0x58");
    assert_eq!(&b[0x5e..0x60], &[6, 0], "dir_reply.next_hop at 0x5e");
    assert_eq!(&b[0x78..0x80], &90_000u64.to_le_bytes(), "bytes_reply ends the record");
    let back = FlowRecord::read_from_bytes(b).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.key(true).tuple, r.reply);
    assert_eq!(r.orig.reversed().reversed(), r.orig);
}

#[test]
fn formats_parse_from_unaligned_buffers_and_refuse_short_ones() {
    let r = sample_record();
    let mut buf = [0u8; 1 + 128];
    buf[1..].copy_from_slice(r.as_bytes());
    let view = FlowRecord::ref_from_bytes(&buf[1..]).unwrap();
    assert_eq!(view.cookie.get(), 0x0102_0304);
    assert!(FlowRecord::ref_from_bytes(&buf[1..100]).is_err());
    assert!(Event::read_from_bytes(&[0u8; 63][..]).is_err());
}

#[test]
fn command_and_completion_layouts() {
    let mut cmd = FlowCommand {
        opcode: crate::codes::Opcode::Insert.into(),
        flags: CommandFlags::new().with_phase(true).with_report(true),
        record: U32::new(0x00ab_cdef),
        cookie: U64::new(0x1122_3344_5566_7788),
        slot_orig: IndexPos::new().with_index(0x0ff_ffff).with_slot(3),
        slot_reply: IndexPos::new().with_index(2).with_stash(true),
        ..FlowCommand::default()
    };
    cmd.payload[..128].copy_from_slice(sample_record().as_bytes());
    let b = cmd.as_bytes();
    assert_eq!(b[0], 1);
    assert_eq!(&b[2..4], &[0x03, 0x00]);
    assert_eq!(&b[4..8], &[0xef, 0xcd, 0xab, 0x00]);
    assert_eq!(&b[8..16], &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    assert_eq!(&b[16..20], &[0xff, 0xff, 0xff, 0x30], "bucket in 27:0, slot 3 in 30:28");
    assert_eq!(&b[20..24], &[0x02, 0x00, 0x00, 0x80], "stash bit is bit 31");
    assert_eq!(&b[0x40..0x44], &[0x01, 0x06, 0x03, 0x00], "payload starts at 0x40");
    assert_eq!(FlowCommand::read_from_bytes(b).unwrap(), cmd);
    let rec = FlowRecord::read_from_prefix(&cmd.payload).unwrap().0;
    assert_eq!(rec, sample_record());
    // Since 1.4 the record's extension word follows it in the payload.
    cmd.payload[128..132].copy_from_slice(RecordExt { ts_delta: U32::new(0x0102_0304) }.as_bytes());
    assert_eq!(&cmd.as_bytes()[0x40 + 128..0x40 + 132], &[4, 3, 2, 1]);

    let cpl = Completion {
        opcode: 4,
        status: crate::codes::Status::RecordNotLive.into(),
        flags: CompletionFlags::new().with_phase(true),
        record: U32::new(9),
        cookie: U64::new(7),
        idle_ms: U32::new(1500),
        index: U32::new(0xffff_ffff),
        ts_delta: U32::new(0x8765_4321),
        ..Completion::default()
    };
    let b = cpl.as_bytes();
    assert_eq!(&b[0..4], &[4, 5, 1, 0]);
    assert_eq!(&b[0x28..0x2c], &1500u32.to_le_bytes());
    assert_eq!(&b[0x30..0x34], &[0xff; 4]);
    assert_eq!(&b[0x34..0x38], &[0x21, 0x43, 0x65, 0x87], "ts_delta (1.4) in bytes that were reserved");
    assert_eq!(&b[0x38..0x40], &[0; 8]);
    assert_eq!(Completion::read_from_bytes(b).unwrap(), cpl);
}

#[test]
fn exception_inject_and_event_layouts() {
    let ex = ExceptionDesc {
        length: U16::new(60),
        reason: crate::codes::PuntReason::TcpFin.into(),
        port: 1,
        flags: ExceptionFlags::new().with_phase(true).with_hit(true).with_reply(true),
        vlan_tci: U16::new(0),
        hash: U32::new(0xdead_beef),
        record: U32::new(42),
        timestamp: U64::new(1_000_000_007),
        l3_offset: 14,
        l4_offset: 34,
        queue: 1,
        reserved: 0,
        cookie: U32::new(5),
    };
    let b = ex.as_bytes();
    assert_eq!(&b[0..6], &[60, 0, 3, 1, 0b111, 0]);
    assert_eq!(&b[0x18..0x1b], &[14, 34, 1]);
    assert_eq!(ExceptionDesc::read_from_bytes(b).unwrap(), ex);

    let inj = InjectDesc {
        addr: U64::new(0x1_0000_2000),
        length: U16::new(1514),
        port: 2,
        flags: InjectFlags::new().with_phase(true),
        cookie: U64::new(3),
        ..InjectDesc::default()
    };
    let b = inj.as_bytes();
    assert_eq!(&b[0..8], &[0x00, 0x20, 0x00, 0x00, 0x01, 0, 0, 0]);
    assert_eq!(&b[8..13], &[0xea, 0x05, 2, 0, 1]);
    assert_eq!(InjectDesc::read_from_bytes(b).unwrap(), inj);

    let ev = Event {
        kind: crate::codes::EventKind::FlowInfo.into(),
        cause: crate::codes::FlowCause::Idle.into(),
        flags: EventFlags::new().with_phase(true).with_live(true),
        record: U32::new(17),
        bytes_reply: U64::new(u64::MAX),
        ..Event::default()
    };
    let b = ev.as_bytes();
    assert_eq!(&b[0..4], &[1, 1, 3, 0]);
    assert_eq!(&b[0x28..0x30], &[0xff; 8]);
    assert_eq!(Event::read_from_bytes(b).unwrap(), ev);
}

#[test]
fn index_and_next_hop_layouts() {
    let slot = IndexSlot {
        record: U32::new(0x0102_0304),
        word: SlotWord::new().with_sig(0xbeef).with_reply(true).with_valid(true),
    };
    assert_eq!(slot.as_bytes(), &[4, 3, 2, 1, 0xef, 0xbe, 0x03, 0x00]);
    let mut bucket = IndexBucket::default();
    *bucket.slot_mut(2) = slot;
    assert_eq!(&bucket.as_bytes()[16..24], slot.as_bytes());
    assert_eq!(*bucket.slot(2), slot);

    let nh = NextHopEntry {
        dst_mac: [2, 0, 0, 0, 2, 0x11],
        src_mac: [2, 0, 0, 0, 0, 1],
        vlan_tci: 100.into(),
        ctl: NextHopCtl::new().with_valid(true).with_vlan(true).with_port(1),
    };
    let b = nh.as_bytes();
    assert_eq!(&b[12..16], &[0x00, 0x64, 0x07, 0x00], "TCI in network order; port in 9:2");
    assert_eq!(NextHopEntry::read_from_bytes(b).unwrap(), nh);
}

#[test]
fn image_header_layout_is_the_published_one() {
    use core::mem::offset_of;
    assert_eq!(offset_of!(ImageHeader, spec_version), 0x10);
    assert_eq!(offset_of!(ImageHeader, geometry), 0x28);
    assert_eq!(offset_of!(ImageHeader, payload_len), 0x40);
    assert_eq!(offset_of!(ImageHeader, key_id), 0x48);
    assert_eq!(offset_of!(ImageHeader, sha256), IMAGE_HASHED_BYTES);
    assert_eq!(offset_of!(ImageHeader, signature), 0xA0);
    assert_eq!(offset_of!(FlashStateRecord, crc32), FlashStateRecord::CRC_SPAN);
    assert_eq!(
        u64::from(FLASH_SLOT_SIZE),
        crate::regs::flash::SPEC.registers.iter().find(|r| r.name == "SLOT_SIZE").unwrap().reset
    );
    assert_eq!(
        u64::from(FLASH_BOOT_LIMIT),
        crate::regs::flash::SPEC.registers.iter().find(|r| r.name == "BOOT_LIMIT").unwrap().reset
    );
    // A zeroed header is not an image, and names why.
    let h = ImageHeader::default();
    assert!(h.header_problem().unwrap().contains("magic"));
    assert!(h.is_unsigned());
    let mut h = ImageHeader {
        magic: IMAGE_MAGIC,
        format_version: U16::new(1),
        header_size: U16::new(256),
        target: 2,
        ..ImageHeader::default()
    };
    assert_eq!(h.header_problem(), None);
    h.reserved1[3] = 1;
    assert!(h.header_problem().unwrap().contains("reserved"));
    let g = ImageGeometry {
        records: U32::new(1024),
        buckets: U32::new(512),
        stash: U32::new(8),
        next_hops: U32::new(64),
        ports: 2,
        exception_rings: 4,
        reserved: [0; 6],
    };
    assert_eq!(g.problem(), None);
    assert!(ImageGeometry { records: U32::new(1000), ..g }.problem().unwrap().starts_with("records = 1000"));
    assert!(ImageGeometry { ports: 9, ..g }.problem().unwrap().starts_with("ports = 9"));
}

#[test]
fn the_check_lists_start_with_the_header_and_differ_where_the_spec_says() {
    use crate::codes::ImageCheck;
    assert_eq!(NIC_BOOT_CHECKS[0], ImageCheck::Header);
    assert_eq!(HOST_CHECKS[0], ImageCheck::Header);
    assert!(!NIC_BOOT_CHECKS.contains(&ImageCheck::Signature), "the NIC holds no keys");
    assert!(HOST_CHECKS.contains(&ImageCheck::Signature));
}

#[test]
fn ts_delta_takes_the_first_modify_bit_after_counter_set() {
    let mask = ModifyMask::new().with_ts_delta(true);
    assert_eq!(mask.into_bits().get(), 1 << 7);
    assert_eq!(ModifyMask::new().with_counter_set(true).into_bits().get(), 1 << 6);
    assert_eq!(ModifyMask::from_bits(U32::new(1 << 8)).reserved(), 1, "bit 8 up stays reserved");
}

#[test]
fn counter_set_lives_in_the_bits_that_were_reserved() {
    let ctl = RecordCtl::new().with_valid(true).with_proto(6).with_host_state(0x5a).with_counter_set(0x7ab);
    assert_eq!(ctl.counter_set(), 0x7ab);
    // Bits 7:5 hold set bits 10:8, bits 31:24 hold set bits 7:0; proto and host_state stay put.
    assert_eq!(ctl.into_bits().get(), 0x01 | (0x7 << 5) | (6 << 8) | (0x5a << 16) | (0xab << 24));
    assert_eq!(RecordCtl::new().with_counter_set(0x800).counter_set(), 0, "only 11 bits");
    let mut set = CounterSet::default();
    set.add(false, 100);
    set.add(true, 60);
    set.add(true, 40);
    let b = set.as_bytes();
    assert_eq!(&b[0..8], &1u64.to_le_bytes());
    assert_eq!(&b[8..16], &2u64.to_le_bytes());
    assert_eq!(&b[16..24], &100u64.to_le_bytes());
    assert_eq!(&b[24..32], &100u64.to_le_bytes());
}
