//! The shadow's flow records, compact: what the host keeps of every record the NIC holds.
//!
//! The store is allocated once for the NIC's geometry, so its bytes per record are the host's
//! cost of every record, used or not. A record is 41 bytes, byte-aligned ([`Compact`]): an IPv4
//! flow's two tuples inline (4-byte addresses, so 12 bytes a tuple), the cookie, the sequence
//! delta, the next hops, the idle timeout, the counter set (11 bits, as the NIC's record names
//! it) with the flags (live, IPv6, UDP, sequence adjustment, Insert pending), and the host
//! state. An IPv6 flow's tuples (72 bytes) live in a side slab that
//! grows with the IPv6 flows installed, its slot named by the record; a freed slot is zeroed and
//! reused first. A SYN-proxied flow's timestamp delta (spec 1.4, [`Flow::ts_delta`]) lives in a
//! sparse side map keyed by record, holding only the non-zero ones: few flows are proxied with
//! timestamps, so the other records pay nothing for it. The index positions of a record's two
//! tuples are not kept: the index finds them from the tuples' hashes when a record goes (see
//! [`crate::table::FlowTable`]).
//!
//! A free record is one whose live flag is clear (no `Option` tag); freed records form a LIFO
//! list threaded through their cookie fields, and records never used yet are the ones from
//! `fresh` up, so a new store builds no list and installs take the lowest records first, as
//! they always did. The [`Flow`] a record holds is rebuilt on demand.

use crate::placement::{GeometryError, MAX_RECORDS};
use crate::table::Flow;
use rtl_spec::formats::{FlowTuple, LookupKey};
use zerocopy::little_endian::{U16, U32};
use zerocopy::network_endian;

/// The highest counter set a record can name (the NIC's record holds 11 bits of it).
pub(crate) const MAX_COUNTER_SET: u16 = 0x7FF;

/// End of the free list.
const NONE: u32 = u32::MAX;

/// Flags in the top bits of [`Compact::ctl`], above the counter set.
const LIVE: u16 = 1 << 15;
const IPV6: u16 = 1 << 14;
const UDP: u16 = 1 << 13;
const SEQ_ADJUST: u16 = 1 << 12;
/// The install's Insert command has not completed yet (see [`Records::settle`]).
const PENDING: u16 = 1 << 11;

/// One record as the shadow keeps it (see the module doc). Byte-aligned, so 41 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Compact {
    /// IPv4: the original then the reply tuple, each as source address, destination address,
    /// source port, destination port (4 + 4 + 2 + 2 bytes, network order); IPv6: the side slab's
    /// slot, little-endian, in the first 4 bytes.
    tuples: [u8; 24],
    /// A live record's cookie; a free one's next free record ([`NONE`] ends the list).
    cookie: U32,
    /// The sequence delta (with [`SEQ_ADJUST`]).
    seq_delta: U32,
    next_hop_orig: U16,
    next_hop_reply: U16,
    idle_timeout: U16,
    /// [`LIVE`], [`IPV6`], [`UDP`] (else TCP), [`SEQ_ADJUST`], [`PENDING`]; the counter set in
    /// bits 10..0.
    ctl: U16,
    host_state: u8,
}

impl Compact {
    const FREE: Compact = Compact {
        tuples: [0; 24],
        cookie: U32::ZERO,
        seq_delta: U32::ZERO,
        next_hop_orig: U16::ZERO,
        next_hop_reply: U16::ZERO,
        idle_timeout: U16::ZERO,
        ctl: U16::ZERO,
        host_state: 0,
    };

    fn has(&self, flag: u16) -> bool {
        self.ctl.get() & flag != 0
    }

    fn slab_slot(&self) -> usize {
        u32::from_le_bytes([self.tuples[0], self.tuples[1], self.tuples[2], self.tuples[3]]) as usize
    }
}

/// An IPv4 tuple in 12 bytes.
fn pack_v4(t: &FlowTuple, out: &mut [u8]) {
    out[0..4].copy_from_slice(&t.src_addr[..4]);
    out[4..8].copy_from_slice(&t.dst_addr[..4]);
    out[8..10].copy_from_slice(&t.src_port.to_bytes());
    out[10..12].copy_from_slice(&t.dst_port.to_bytes());
}

fn unpack_v4(b: &[u8]) -> FlowTuple {
    let mut t = FlowTuple::default();
    t.src_addr[..4].copy_from_slice(&b[0..4]);
    t.dst_addr[..4].copy_from_slice(&b[4..8]);
    t.src_port = network_endian::U16::from_bytes([b[8], b[9]]);
    t.dst_port = network_endian::U16::from_bytes([b[10], b[11]]);
    t
}

/// The records of the shadow: a fixed array of [`Compact`] records and the IPv6 side slab.
#[derive(Debug)]
pub(crate) struct Records {
    slots: Vec<Compact>,
    /// IPv6 tuples (original, reply), by slab slot.
    v6: Vec<[FlowTuple; 2]>,
    /// Free slab slots.
    v6_free: Vec<u32>,
    /// The non-zero timestamp deltas, by record (removed when the record is freed).
    ts: std::collections::HashMap<u32, u32>,
    /// The last record freed (the head of the free list), or [`NONE`].
    free_head: u32,
    /// Records from here up were never used (and are free).
    fresh: u32,
    live: u32,
}

impl Records {
    /// `n` free records. Fails when an index entry cannot name that many records, or the host
    /// cannot allocate them.
    pub(crate) fn new(n: u32) -> Result<Self, GeometryError> {
        if n > MAX_RECORDS {
            return Err(GeometryError::Records(n));
        }
        let mut slots = Vec::new();
        slots.try_reserve_exact(n as usize).map_err(|_| GeometryError::TooLarge)?;
        host_driver::memory::advise_huge_pages(&slots);
        slots.resize(n as usize, Compact::FREE);
        Ok(Records {
            slots,
            v6: Vec::new(),
            v6_free: Vec::new(),
            ts: std::collections::HashMap::new(),
            free_head: NONE,
            fresh: 0,
            live: 0,
        })
    }

    /// Records in all.
    pub(crate) fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Live records.
    pub(crate) fn live(&self) -> u32 {
        self.live
    }

    /// The record the next [`Self::insert`] takes: the last one freed, else the lowest never
    /// used. `None` when every record is live.
    pub(crate) fn next_free(&self) -> Option<u32> {
        if self.free_head == NONE {
            (self.fresh < self.capacity()).then_some(self.fresh)
        } else {
            Some(self.free_head)
        }
    }

    fn live_record(&self, r: u32) -> Option<&Compact> {
        self.slots.get(r as usize).filter(|c| c.has(LIVE))
    }

    fn live_record_mut(&mut self, r: u32) -> Option<&mut Compact> {
        self.slots.get_mut(r as usize).filter(|c| c.has(LIVE))
    }

    /// Whether record `r` is live.
    pub(crate) fn is_live(&self, r: u32) -> bool {
        self.live_record(r).is_some()
    }

    /// Stores `flow` (validated: TCP or UDP, an IPv4 flow's addresses in their first 4 bytes, a
    /// counter set of at most [`MAX_COUNTER_SET`]) in the record [`Self::next_free`] names, its
    /// Insert pending; returns the record, or `None` when none is free.
    pub(crate) fn insert(&mut self, flow: &Flow) -> Option<u32> {
        debug_assert!(flow.proto == 6 || flow.proto == 17);
        debug_assert!(flow.counter_set <= MAX_COUNTER_SET);
        let r = self.next_free()?;
        if r == self.free_head {
            self.free_head = self.slots[r as usize].cookie.get();
        } else {
            self.fresh += 1;
        }
        let mut tuples = [0u8; 24];
        if flow.ipv6 {
            let slot = match self.v6_free.pop() {
                Some(s) => {
                    self.v6[s as usize] = [flow.orig, flow.reply];
                    s
                }
                None => {
                    self.v6.push([flow.orig, flow.reply]);
                    self.v6.len() as u32 - 1
                }
            };
            tuples[..4].copy_from_slice(&slot.to_le_bytes());
        } else {
            pack_v4(&flow.orig, &mut tuples[..12]);
            pack_v4(&flow.reply, &mut tuples[12..]);
        }
        let flags = LIVE
            | PENDING
            | if flow.ipv6 { IPV6 } else { 0 }
            | if flow.proto == 17 { UDP } else { 0 }
            | if flow.seq_delta.is_some() { SEQ_ADJUST } else { 0 };
        self.slots[r as usize] = Compact {
            tuples,
            cookie: U32::new(flow.cookie),
            seq_delta: U32::new(flow.seq_delta.unwrap_or(0)),
            next_hop_orig: U16::new(flow.next_hop_orig),
            next_hop_reply: U16::new(flow.next_hop_reply),
            idle_timeout: U16::new(flow.idle_timeout),
            ctl: U16::new(flags | (flow.counter_set & MAX_COUNTER_SET)),
            host_state: flow.host_state,
        };
        // A record is freed before it is taken again, so no old delta is left to overwrite.
        if flow.ts_delta != 0 {
            self.ts.insert(r, flow.ts_delta);
        }
        self.live += 1;
        Some(r)
    }

    /// Frees record `r` and returns the flow it held (`None` if it was not live). An IPv6
    /// flow's slab slot is zeroed and freed.
    pub(crate) fn remove(&mut self, r: u32) -> Option<Flow> {
        let flow = self.flow(r)?;
        let c = &mut self.slots[r as usize];
        if c.has(IPV6) {
            let slot = c.slab_slot();
            self.v6[slot] = [FlowTuple::default(); 2];
            self.v6_free.push(slot as u32);
        }
        *c = Compact { cookie: U32::new(self.free_head), ..Compact::FREE };
        if !self.ts.is_empty() {
            self.ts.remove(&r);
        }
        self.free_head = r;
        self.live -= 1;
        Some(flow)
    }

    /// The flow record `r` holds.
    pub(crate) fn flow(&self, r: u32) -> Option<Flow> {
        let c = self.live_record(r)?;
        let (orig, reply) = self.tuples(c);
        Some(Flow {
            orig,
            reply,
            proto: if c.has(UDP) { 17 } else { 6 },
            ipv6: c.has(IPV6),
            next_hop_orig: c.next_hop_orig.get(),
            next_hop_reply: c.next_hop_reply.get(),
            idle_timeout: c.idle_timeout.get(),
            cookie: c.cookie.get(),
            host_state: c.host_state,
            counter_set: c.ctl.get() & MAX_COUNTER_SET,
            seq_delta: c.has(SEQ_ADJUST).then(|| c.seq_delta.get()),
            ts_delta: self.ts.get(&r).copied().unwrap_or(0),
        })
    }

    fn tuples(&self, c: &Compact) -> (FlowTuple, FlowTuple) {
        if c.has(IPV6) {
            let [o, r] = self.v6[c.slab_slot()];
            (o, r)
        } else {
            (unpack_v4(&c.tuples[..12]), unpack_v4(&c.tuples[12..]))
        }
    }

    /// The lookup key of record `r`'s original (or, with `reply`, reply) tuple.
    pub(crate) fn key(&self, r: u32, reply: bool) -> Option<LookupKey> {
        let c = self.live_record(r)?;
        let (orig, rep) = self.tuples(c);
        Some(LookupKey::new(if reply { rep } else { orig }, if c.has(UDP) { 17 } else { 6 }, c.has(IPV6)))
    }

    /// Whether record `r` is live and the Insert of the install that filled it has not
    /// completed yet.
    pub(crate) fn is_pending(&self, r: u32) -> bool {
        self.live_record(r).is_some_and(|c| c.has(PENDING))
    }

    /// The Insert of record `r`'s install completed (or was dropped with every other command
    /// when the device was rewritten): the install is no longer pending.
    pub(crate) fn settle(&mut self, r: u32) {
        if let Some(c) = self.live_record_mut(r) {
            c.ctl = U16::new(c.ctl.get() & !PENDING);
        }
    }

    /// [`Self::settle`] for every record.
    pub(crate) fn settle_all(&mut self) {
        for c in &mut self.slots[..self.fresh as usize] {
            c.ctl = U16::new(c.ctl.get() & !PENDING);
        }
    }

    /// Rewrites record `r`'s cookie; returns the flow as it is now.
    pub(crate) fn set_cookie(&mut self, r: u32, cookie: u32) -> Option<Flow> {
        self.live_record_mut(r)?.cookie = U32::new(cookie);
        self.flow(r)
    }

    /// Rewrites record `r`'s next hops; returns the flow as it is now.
    pub(crate) fn set_next_hops(&mut self, r: u32, orig: u16, reply: u16) -> Option<Flow> {
        let c = self.live_record_mut(r)?;
        c.next_hop_orig = U16::new(orig);
        c.next_hop_reply = U16::new(reply);
        self.flow(r)
    }

    /// Rewrites record `r`'s counter set (at most [`MAX_COUNTER_SET`]); returns the flow as it
    /// is now.
    pub(crate) fn set_counter_set(&mut self, r: u32, set: u16) -> Option<Flow> {
        debug_assert!(set <= MAX_COUNTER_SET);
        let c = self.live_record_mut(r)?;
        c.ctl = U16::new(c.ctl.get() & !MAX_COUNTER_SET | (set & MAX_COUNTER_SET));
        self.flow(r)
    }

    /// Every live record with its flow, lowest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, Flow)> + '_ {
        (0..self.fresh).filter_map(|r| self.flow(r).map(|f| (r, f)))
    }

    /// IPv6 side-slab slots allocated (live or free).
    #[cfg(test)]
    fn slab_len(&self) -> usize {
        self.v6.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&a);
        out
    }

    fn tuple(src: [u8; 16], dst: [u8; 16], sp: u16, dp: u16) -> FlowTuple {
        FlowTuple { src_addr: src, dst_addr: dst, src_port: sp.into(), dst_port: dp.into() }
    }

    /// A flow with every field set to something distinct.
    fn flow_v4(n: u8) -> Flow {
        Flow {
            orig: tuple(v4([192, 0, 2, n]), v4([10, 10, 1, 100]), 40000 + u16::from(n), 443),
            reply: tuple(v4([10, 10, 2, 7]), v4([10, 10, 3, 1]), 8443, 2048 + u16::from(n)),
            proto: 6,
            ipv6: false,
            next_hop_orig: 4095,
            next_hop_reply: 1,
            idle_timeout: 65535,
            cookie: 0xDEAD_0000 | u32::from(n),
            host_state: 0xA5,
            counter_set: MAX_COUNTER_SET,
            seq_delta: Some(0x8000_0001),
            ts_delta: 0xFFFF_FFF0 | u32::from(n),
        }
    }

    fn flow_v6(n: u8) -> Flow {
        let a = |last: u8| {
            let mut x = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            x[15] = last;
            x[8] = n;
            x
        };
        Flow {
            orig: tuple(a(1), a(2), 50000, 80),
            reply: tuple(a(3), a(4), 8080, 3000 + u16::from(n)),
            proto: 17,
            ipv6: true,
            next_hop_orig: 2,
            next_hop_reply: 3,
            idle_timeout: 30,
            cookie: u32::from(n),
            host_state: 0,
            counter_set: 5,
            seq_delta: None,
            ts_delta: 0,
        }
    }

    #[test]
    fn a_record_is_41_bytes_and_byte_aligned() {
        // The shadow's bytes per record: this plus two 8-byte index cells. Growing it is a
        // decision, not an accident.
        assert_eq!(std::mem::size_of::<Compact>(), 41);
        assert_eq!(std::mem::align_of::<Compact>(), 1);
    }

    #[test]
    fn v4_and_v6_flows_round_trip_every_field() {
        let mut store = Records::new(8).unwrap();
        let tcp4 = flow_v4(1);
        let udp4 =
            Flow { proto: 17, seq_delta: None, ts_delta: 0, counter_set: 0, host_state: 0, ..flow_v4(2) };
        let udp6 = flow_v6(3);
        let tcp6 = Flow {
            proto: 6,
            seq_delta: Some(0),
            ts_delta: 1,
            host_state: 0xFF,
            counter_set: 0,
            ..flow_v6(4)
        };
        for (i, f) in [tcp4, udp4, udp6, tcp6].iter().enumerate() {
            let r = store.insert(f).unwrap();
            assert_eq!(r, i as u32, "the lowest free record first");
            assert_eq!(store.flow(r), Some(*f));
            assert!(store.is_pending(r));
            assert_eq!(store.key(r, false), Some(f.key(false)));
            assert_eq!(store.key(r, true), Some(f.key(true)));
        }
        assert_eq!(store.live(), 4);
        assert_eq!(store.slab_len(), 2, "only the IPv6 flows use the slab");
        assert_eq!(store.iter().map(|(_, f)| f).collect::<Vec<_>>(), vec![tcp4, udp4, udp6, tcp6]);
        // The setters change their field and nothing else.
        assert_eq!(store.set_cookie(2, 77), Some(Flow { cookie: 77, ..udp6 }));
        assert_eq!(store.set_next_hops(0, 9, 8), Some(Flow { next_hop_orig: 9, next_hop_reply: 8, ..tcp4 }));
        assert_eq!(
            store.set_counter_set(0, 3),
            Some(Flow { next_hop_orig: 9, next_hop_reply: 8, counter_set: 3, ..tcp4 })
        );
        assert_eq!(
            store.set_counter_set(3, MAX_COUNTER_SET),
            Some(Flow { counter_set: MAX_COUNTER_SET, ..tcp6 })
        );
        assert_eq!(store.set_cookie(5, 1), None, "a free record has nothing to set");
        // Settling an install changes nothing of its flow.
        store.settle(1);
        assert!(!store.is_pending(1) && store.is_pending(0));
        assert_eq!(store.flow(1), Some(udp4));
        store.settle_all();
        assert!((0..4).all(|r| !store.is_pending(r)));
        assert_eq!(store.iter().map(|(_, f)| f).nth(2), Some(Flow { cookie: 77, ..udp6 }));
    }

    #[test]
    fn timestamp_deltas_live_in_the_side_map_only_while_their_record_does() {
        let mut store = Records::new(4).unwrap();
        let proxied = flow_v4(1);
        let plain = Flow { seq_delta: None, ts_delta: 0, ..flow_v4(2) };
        let r = store.insert(&proxied).unwrap();
        let p = store.insert(&plain).unwrap();
        assert_eq!(store.ts.len(), 1, "only a non-zero delta takes an entry");
        assert_eq!((store.flow(r).unwrap().ts_delta, store.flow(p).unwrap().ts_delta), (proxied.ts_delta, 0));
        // The setters keep it.
        assert_eq!(store.set_cookie(r, 5).map(|f| f.ts_delta), Some(proxied.ts_delta));
        assert_eq!(store.remove(r), Some(Flow { cookie: 5, ..proxied }));
        assert!(store.ts.is_empty(), "freed with its record");
        // The record taken again by a flow without timestamps inherits nothing.
        let again = Flow { seq_delta: Some(3), ts_delta: 0, ..flow_v4(3) };
        assert_eq!(store.insert(&again), Some(r));
        assert_eq!(store.flow(r), Some(again));
        assert!(store.ts.is_empty());
    }

    #[test]
    fn a_reused_slab_slot_holds_only_the_new_flows_tuples() {
        let mut store = Records::new(4).unwrap();
        let old = flow_v6(1);
        let r = store.insert(&old).unwrap();
        assert_eq!(store.remove(r), Some(old));
        assert_eq!(store.v6[0], [FlowTuple::default(); 2], "a freed slot keeps nothing of its flow");
        assert_eq!((store.flow(r), store.key(r, false), store.live()), (None, None, 0));
        // The new flow differs from the old one in every tuple byte that can differ.
        let mut new = flow_v6(2);
        new.orig.src_addr = [0xFE; 16];
        new.reply.dst_addr = [0x11; 16];
        let r2 = store.insert(&new).unwrap();
        assert_eq!(r2, r, "the freed record first");
        assert_eq!(store.slab_len(), 1, "the freed slab slot is reused");
        assert_eq!(store.flow(r2), Some(new));
        // A v4 flow in the record after it leaves the slab slot free for the next v6 flow.
        store.remove(r2);
        let v4 = flow_v4(3);
        assert_eq!(store.insert(&v4), Some(r));
        assert_eq!(store.flow(r), Some(v4));
        let r3 = store.insert(&flow_v6(4)).unwrap();
        assert_eq!((store.slab_len(), store.flow(r3)), (1, Some(flow_v6(4))));
    }

    #[test]
    fn records_are_taken_lowest_first_and_freed_ones_again_last_freed_first() {
        let mut store = Records::new(4).unwrap();
        let f = flow_v4(0);
        let taken: Vec<u32> = (0..3).map(|_| store.insert(&f).unwrap()).collect();
        assert_eq!(taken, [0, 1, 2]);
        store.remove(1);
        store.remove(0);
        assert_eq!(store.remove(0), None, "freed twice");
        assert_eq!(store.next_free(), Some(0));
        let again: Vec<u32> = (0..3).map(|_| store.insert(&f).unwrap()).collect();
        assert_eq!(again, [0, 1, 3]);
        assert_eq!((store.next_free(), store.insert(&f), store.live()), (None, None, 4));
        assert_eq!(store.iter().map(|(r, _)| r).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(matches!(Records::new(MAX_RECORDS + 1), Err(GeometryError::Records(_))));
    }
}
