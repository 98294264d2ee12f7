//! Spec 1.4: the TCP timestamp translation of SYN-proxied flows. A `seq_adjust` record's
//! `ts_delta` (the record extension memory) is added to TSval of reply packets and subtracted
//! from TSecr of original ones, beside the sequence translation; a zero delta, a record without
//! `seq_adjust`, a segment without a well-formed timestamp option and UDP are left alone. Then
//! the commands that carry it: Insert and Modify (payload bytes 128..132), Read and Query (the
//! completion's `ts_delta`), Delete, the ager's eviction and Flush (which zero it), and a device
//! without capability `TS_ADJUST`, which refuses a non-zero delta and changes nothing.

#[allow(clippy::wildcard_imports)]
use super::*;
use etherparse::TcpOptionElement;
use rtl_spec::checksum::{apply, delta};
use rtl_spec::regs::identity;
use sim_model::mem::DmaMemory;
use sluice_test_support::flows::{CLIENT_MAC, NIC_MAC};
use sluice_test_support::model::with_ts_delta;
use std::net::IpAddr;

/// Host memory the Read cases map for the record.
const READ_BUF: u64 = 0x6100_0000;

/// What a test segment carries besides its addresses.
#[derive(Clone)]
struct Seg {
    seq: u32,
    ack: u32,
    /// A timestamp option (TSval, TSecr), after two NOPs.
    ts: Option<(u32, u32)>,
    /// SACK blocks, after two NOPs.
    sack: Vec<(u32, u32)>,
    /// The SACK option before the timestamp option (it is after it otherwise).
    sack_first: bool,
}

impl Seg {
    fn new(seq: u32, ack: u32, ts: Option<(u32, u32)>) -> Seg {
        Seg { seq, ack, ts, sack: Vec::new(), sack_first: false }
    }

    fn sack(mut self, sack: &[(u32, u32)], first: bool) -> Seg {
        self.sack = sack.to_vec();
        self.sack_first = first;
        self
    }

    /// What the NIC makes of it: `seq_delta` and `ts_delta` applied in direction `reply`.
    fn translated(&self, reply: bool, seq_delta: u32, ts_delta: u32) -> Seg {
        let mut s = self.clone();
        if reply {
            s.seq = s.seq.wrapping_add(seq_delta);
            s.ts = s.ts.map(|(val, ecr)| (val.wrapping_add(ts_delta), ecr));
        } else {
            s.ack = s.ack.wrapping_sub(seq_delta);
            s.sack =
                s.sack.iter().map(|(l, r)| (l.wrapping_sub(seq_delta), r.wrapping_sub(seq_delta))).collect();
            s.ts = s.ts.map(|(val, ecr)| (val, ecr.wrapping_sub(ts_delta)));
        }
        s
    }

    fn options(&self) -> Vec<TcpOptionElement> {
        use TcpOptionElement::Noop;
        let ts = self.ts.map(|(v, e)| [Noop, Noop, TcpOptionElement::Timestamp(v, e)]);
        let sack = self.sack.split_first().map(|(first, rest)| {
            let mut more = [None; 3];
            for (m, b) in more.iter_mut().zip(rest) {
                *m = Some(*b);
            }
            [Noop, Noop, TcpOptionElement::SelectiveAcknowledgement(*first, more)]
        });
        let (a, b) = if self.sack_first { (sack, ts) } else { (ts, sack) };
        a.into_iter().chain(b).flatten().collect()
    }
}

/// The frame of `s` in direction `reply` of `c`: as received (`sent` false: client or server
/// → NIC) or as the NIC must send it (through next hop 1 toward the server, 0 toward the
/// client).
fn frame(c: &Conn, reply: bool, s: &Seg, sent: bool) -> Vec<u8> {
    let (src, dst): ((IpAddr, u16), (IpAddr, u16)) = match (reply, sent) {
        (false, false) => (c.client, c.vip),
        (true, false) => (c.rs, c.lip),
        (false, true) => (c.lip, c.rs),
        (true, true) => (c.vip, c.client),
    };
    let l4 = L4::Tcp { sport: src.1, dport: dst.1, flags: ACK, seq: s.seq, ack: s.ack, window: 64240 };
    let payload: &[u8] = if reply { b"server data" } else { b"client data" };
    let hop = nh(u32::from(!reply));
    let (macs, ttl) = if sent { ((hop.src_mac, hop.dst_mac), 63) } else { ((CLIENT_MAC, NIC_MAC), 64) };
    let mut p = Pkt::ip(src.0, dst.0, ttl, l4, payload).l2(macs.0, macs.1);
    p.tcp_options = s.options();
    p.build()
}

/// A forwarded segment: `s` in, its translation by (`seq_delta`, `ts_delta`) out.
fn translated(desc: &str, c: &Conn, reply: bool, s: &Seg, seq_delta: u32, ts_delta: u32) -> Case {
    let want = frame(c, reply, &s.translated(reply, seq_delta, ts_delta), true);
    Case::frame(desc, u8::from(reply), frame(c, reply, s, false), Verdict::Tx(u8::from(!reply), want))
}

/// `f` with the length byte of its timestamp option (the first `NOP NOP 8 10`) set to `len`,
/// the TCP checksum fixed up for the change: a malformed option the walk must stop at.
fn ts_len(mut f: Vec<u8>, len: u8) -> Vec<u8> {
    let l4 = if f[12..14] == [0x86, 0xdd] { 14 + 40 } else { 14 + usize::from(f[14] & 0xf) * 4 };
    let at = (l4 + 20..f.len() - 4).find(|&i| f[i..i + 4] == [1, 1, 8, 10]).expect("a timestamp option") + 2;
    let csum = u16::from_be_bytes([f[l4 + 16], f[l4 + 17]]);
    let fixed = apply(csum, delta(&[8, 10], &[8, len]));
    f[at + 1] = len;
    f[l4 + 16..l4 + 18].copy_from_slice(&fixed.to_be_bytes());
    f
}

fn adjusted(c: &Conn, seq_delta: u32) -> FlowRecord {
    let mut r = c.record();
    r.ctl = r.ctl.with_seq_adjust(true);
    r.seq_delta = seq_delta.into();
    r
}

/// Inserts `rec` at `index` with `ts_delta`, which must succeed.
fn insert(index: u32, rec: FlowRecord, ts_delta: u32) -> Step {
    Step::Custom(Box::new(move |nic| {
        assert_eq!(nic.insert_ext(index, &rec, ts_delta).status, S::Ok as u8, "insert of {index}");
    }))
}

/// A Modify of `record` with `mask`, the payload's record built by `edit` and `ts_delta` after it.
fn modify(
    record: u32,
    mask: ModifyMask,
    rec: FlowRecord,
    ts_delta: u32,
) -> impl Fn(&mut ModelHost) -> FlowCommand {
    move |_| {
        let mut c = FlowCommand { arg: mask.into_bits(), ..op(Opcode::Modify, record) };
        c.payload[..128].copy_from_slice(rec.as_bytes());
        with_ts_delta(c, ts_delta)
    }
}

/// The completion of a Query (or a Read) of `record` reports `ts_delta`.
fn reports(o: Opcode, record: u32, want: u32) -> Check {
    Check::Custom(Box::new(move |nic| {
        let c = nic.command(FlowCommand { dma_addr: READ_BUF.into(), ..op(o, record) });
        let got = (c.status, c.ts_delta.get());
        if got == (S::Ok as u8, want) {
            Ok(())
        } else {
            Err(format!("{o:?} of {record}: {got:x?}, expected ts_delta {want:#x}"))
        }
    }))
}

/// Record `record`, read back, has cookie `want`.
fn cookie_is(record: u32, want: u32) -> Check {
    Check::Custom(Box::new(move |nic| {
        let c = nic.command(FlowCommand { dma_addr: READ_BUF.into(), ..op(Opcode::Read, record) });
        let mut b = [0u8; 128];
        nic.mem.read(READ_BUF, &mut b).map_err(|e| format!("{e:?}"))?;
        let got =
            <FlowRecord as zerocopy::FromBytes>::read_from_bytes(&b).map_err(|_| "short read")?.cookie.get();
        if c.status == S::Ok as u8 && got == want {
            Ok(())
        } else {
            Err(format!("cookie {got:#x}, expected {want:#x}"))
        }
    }))
}

/// The command's completion carries `want` as `ts_delta`.
fn completion_ts(want: u32) -> impl Fn(&crate::corpus::runner::Observed) -> Result<(), String> {
    move |o| {
        let got = o.completion.ok_or("no completion")?.ts_delta.get();
        if got == want { Ok(()) } else { Err(format!("completion ts_delta {got:#x}, expected {want:#x}")) }
    }
}

#[allow(clippy::too_many_lines)]
pub(super) fn timestamps() -> Vec<Case> {
    let (a4, a6, z4, n4, u4, e4) = (v4(70), v6(71), v4(72), v4(73), v4(74).udp(), v4(75));
    let (d4, t4) = (0x200, 0x8000_0010);
    let (d6, t6) = (0x8000_0001, 0xFFFF_FF00);
    let t4b = 0x0000_1000;
    let mut evicted = adjusted(&e4, 5);
    evicted.idle_timeout = 1.into();
    evicted.ctl = evicted.ctl.with_auto_delete(true);
    let no_ts_adjust = rtl_spec::image::model_caps() & !identity::CAPS::TS_ADJUST.mask();
    let o4 = Seg::new(0x1234_5678, 0x100, Some((0x1111_1111, 0x0000_0008)))
        .sack(&[(0x150, 0x180), (0x10, 0x90)], false);
    let r4 = Seg::new(0xFFFF_FF00, 0x0abc_0000, Some((0x9000_0000, 0x2222)));
    let o_ts = Seg::new(0x1234_5678, 0x100, Some((0x0102_0304, 0x0506_0708)));
    let seq_only = ModifyMask::new().with_seq_delta(true);
    vec![
        translated(
            "ts_adjust: original packet, TSecr reduced (wrapping), ack and SACK by seq_delta",
            &a4,
            false,
            &o4,
            d4,
            t4,
        )
        .setup(vec![
            Step::Fresh(1024, true),
            Step::Custom(Box::new(|nic| assert!(nic.mem.map(READ_BUF, 4096)))),
            insert(70, adjusted(&a4, d4), t4),
            insert(71, adjusted(&a6, d6), t6),
            insert(72, adjusted(&z4, 0x300), 0),
            insert(73, n4.record(), 0x55),
            insert(74, adjusted(&u4, 0x10), 0x20),
        ]),
        translated(
            "ts_adjust: reply packet, TSval increased (wrapping), seq by seq_delta",
            &a4,
            true,
            &r4,
            d4,
            t4,
        ),
        translated(
            "ts_adjust: the SACK option before the timestamp option, three blocks",
            &a4,
            false,
            &Seg::new(5, 6, Some((7, 0x8000_0000))).sack(&[(1, 2), (3, 4), (0xFFFF_FFFF, 0x10)], true),
            d4,
            t4,
        ),
        translated(
            "ts_adjust v6: original packet",
            &a6,
            false,
            &Seg::new(1, 0x7000_0000, Some((0xAAAA_0000, 0x0000_0100)))
                .sack(&[(0x7000_0100, 0x7000_0200)], true),
            d6,
            t6,
        ),
        translated(
            "ts_adjust v6: reply packet",
            &a6,
            true,
            &Seg::new(0x9000_0000, 2, Some((0x10, 0x20))),
            d6,
            t6,
        ),
        translated(
            "ts_adjust: original packet without a timestamp option: ack and SACK only",
            &a4,
            false,
            &Seg::new(1, 0x5000, None).sack(&[(0x6000, 0x7000)], false),
            d4,
            t4,
        ),
        translated(
            "ts_adjust: reply packet without options: seq only",
            &a4,
            true,
            &Seg::new(9, 9, None),
            d4,
            t4,
        ),
        Case::frame(
            "ts_adjust: a timestamp option whose length runs past the options is left alone",
            0,
            ts_len(frame(&a4, false, &o_ts, false), 40),
            Verdict::Tx(1, ts_len(frame(&a4, false, &o_ts.translated(false, d4, 0), true), 40)),
        ),
        Case::frame(
            "ts_adjust: a timestamp option of length 8 is not one: left alone",
            1,
            ts_len(frame(&a4, true, &r4, false), 8),
            Verdict::Tx(0, ts_len(frame(&a4, true, &r4.translated(true, d4, 0), true), 8)),
        ),
        translated("a zero ts_delta leaves the timestamp option alone (original)", &z4, false, &o4, 0x300, 0),
        translated("a zero ts_delta leaves the timestamp option alone (reply)", &z4, true, &r4, 0x300, 0),
        translated("a record without seq_adjust ignores its ts_delta", &n4, false, &o4, 0, 0),
        fwd(
            "UDP with seq_adjust and a ts_delta: only the NAT",
            &u4,
            true,
            &pkt(&u4, true, ACK, 64, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
        ),
        // The commands that carry it.
        Case::cmd(
            "Read reports the record's ts_delta",
            |_| FlowCommand { dma_addr: READ_BUF.into(), ..op(Opcode::Read, 70) },
            S::Ok,
        )
        .inspect(completion_ts(t4)),
        Case::cmd("Query reports the record's ts_delta", |_| op(Opcode::Query, 71), S::Ok)
            .inspect(completion_ts(t6)),
        Case::cmd("Query of a record inserted with ts_delta 0 reports 0", |_| op(Opcode::Query, 72), S::Ok)
            .inspect(completion_ts(0)),
        Case::cmd(
            "Modify ts_delta",
            modify(70, ModifyMask::new().with_ts_delta(true), FlowRecord::default(), t4b),
            S::Ok,
        )
        .after(vec![reports(Opcode::Query, 70, t4b), reports(Opcode::Read, 70, t4b)]),
        translated("the next reply packet uses the new ts_delta", &a4, true, &r4, d4, t4b),
        Case::cmd(
            "Modify of seq_delta alone keeps ts_delta, whatever the payload's bytes 128..132",
            modify(70, seq_only, adjusted(&a4, d4), 0xDEAD),
            S::Ok,
        )
        .after(vec![reports(Opcode::Query, 70, t4b)]),
        Case::cmd(
            "Modify with ts_delta and reserved bit 8 applies nothing",
            modify(70, ModifyMask::from_bits(0x180u32.into()), FlowRecord::default(), 0x77),
            S::BadArgument,
        )
        .after(vec![reports(Opcode::Query, 70, t4b)]),
        Case::insert("a record index reused after a Delete starts with ts_delta 0", 70, adjusted(&a4, d4))
            .setup(vec![Step::Custom(Box::new(|nic| assert_eq!(nic.delete(70, false).status, S::Ok as u8)))])
            .after(vec![reports(Opcode::Query, 70, 0), reports(Opcode::Read, 70, 0)]),
        translated("so its packets keep their timestamps", &a4, true, &r4, d4, 0),
        Case::sweep("the ager's own deletion zeroes ts_delta")
            .setup(vec![insert(75, evicted, 0x4444), Step::Advance(2)])
            .events(vec![ev(FlowCause::Evicted, 75, false)])
            .after(vec![reports(Opcode::Read, 75, 0)]),
        Case::cmd("Flush zeroes every ts_delta", |_| op(Opcode::Flush, 0), S::Ok)
            .after(vec![reports(Opcode::Read, 71, 0), reports(Opcode::Read, 74, 0), Check::Occupancy(0)])
            .cleanup(vec![Step::Custom(Box::new(|nic| nic.placed.clear()))]),
        // A card whose image lacks TS_ADJUST: a non-zero delta is refused, zero is fine.
        Case::cmd(
            "no TS_ADJUST: Insert with a non-zero ts_delta is refused",
            move |nic| {
                let (o, r) = nic.place(&adjusted(&a4, d4));
                with_ts_delta(insert_cmd(70, &adjusted(&a4, d4), o, r), 1)
            },
            S::BadArgument,
        )
        .setup(vec![
            Step::Fresh(1024, false),
            Step::Custom(Box::new(move |nic| {
                *nic = ModelHost::with_caps(sim_model::device::ModelConfig::small(1024), 2, no_ts_adjust);
                for n in 0..3 {
                    assert_eq!(nic.set_next_hop(n, &nh(n)).status, S::Ok as u8);
                }
                assert!(nic.mem.map(READ_BUF, 4096));
            })),
        ])
        .after(vec![Check::Occupancy(0), Check::Misses(1, frame(&a4, true, &r4, false))]),
        Case::cmd(
            "no TS_ADJUST: Insert with ts_delta 0 is accepted",
            move |nic| insert_placed(nic, 70, &adjusted(&a4, d4)),
            S::Ok,
        )
        .cleanup(vec![Step::Custom(Box::new(move |nic| {
            let (o, r) = nic.place(&adjusted(&a4, d4));
            nic.placed.push((70, o, r));
        }))]),
        Case::cmd(
            "no TS_ADJUST: Modify with a non-zero ts_delta is refused",
            modify(70, ModifyMask::new().with_ts_delta(true).with_cookie(true), FlowRecord::default(), 9),
            S::BadArgument,
        )
        .after(vec![reports(Opcode::Query, 70, 0), cookie_is(70, 0xabc)]),
        Case::cmd(
            "no TS_ADJUST: Modify with ts_delta 0 is accepted",
            modify(70, ModifyMask::new().with_ts_delta(true), FlowRecord::default(), 0),
            S::Ok,
        ),
        translated("no TS_ADJUST: the sequence translation alone", &a4, true, &r4, d4, 0),
    ]
}
