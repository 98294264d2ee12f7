//! Flow-table memory: the bidirectional flow record, its tuples, the cuckoo index (slots,
//! buckets, slot positions), the next-hop entry and the counter bank's set.
//!
//! Addresses and ports are stored in network byte order, exactly as they appear in packets, so
//! the NIC compares and copies them without swapping. Everything else is little-endian.

// bitfield-struct generates `with_*` builders and fallible `try_*` accessors (Result<_, ()>).
#![allow(clippy::return_self_not_must_use, clippy::result_unit_err)]

use crate::meta::{hw_bits, hw_format};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::network_endian;

/// Counter sets in the bank (`NEXT_HOP.COUNTER_SETS`): set numbers are 11 bits (0 means none).
pub const COUNTER_SETS: u32 = 2048;

hw_format! {
    /// One set of the counter bank (since 1.2): what every record naming it forwarded, per
    /// direction. One set per real server of each virtual service; the host allocates sets as it
    /// allocates next-hop entries and reads the whole bank with one `CounterBankRead`, so reading
    /// the figures costs it O(sets), whatever the number of flows. Zeroed by `CounterSetAlloc`.
    pub struct CounterSet (32 bytes) {
        /// Packets hit in the original direction (client to server).
        pub packets_orig: U64,
        /// Packets hit in the reply direction (server to client).
        pub packets_reply: U64,
        /// Bytes (IP length) hit in the original direction.
        pub bytes_orig: U64,
        /// Bytes (IP length) hit in the reply direction.
        pub bytes_reply: U64,
    }
}

hw_format! {
    /// One direction of a connection: the addresses and ports a packet of that direction carries.
    /// An IPv4 address occupies bytes 0..4; bytes 4..16 are zero.
    pub struct FlowTuple (36 bytes) {
        /// Source address.
        pub src_addr: [u8; 16],
        /// Destination address.
        pub dst_addr: [u8; 16],
        /// Source port.
        pub src_port: network_endian::U16,
        /// Destination port.
        pub dst_port: network_endian::U16,
    }
}

hw_format! {
    /// The 40 bytes both index hashes are computed over (see [`crate::hash`]).
    pub struct LookupKey (40 bytes) {
        /// The tuple as the packet carries it.
        pub tuple: FlowTuple,
        /// IP protocol number (6 TCP, 17 UDP).
        pub proto: u8,
        /// 4 for IPv4, 6 for IPv6.
        pub family: u8,
        /// Zero.
        pub reserved: [u8; 2],
    }
}

hw_bits! {
    /// The control word of a flow record.
    pub struct RecordCtl: u32 as U32 {
        /// The record is live. Written by Insert, cleared by Delete and Flush.
        valid: bool = 1,
        /// Both tuples are IPv6 (otherwise IPv4).
        ipv6: bool = 1,
        /// When the record goes idle the NIC deletes it itself (event cause EVICTED) instead of
        /// only reporting it. Needs capability `AUTO_DELETE`.
        auto_delete: bool = 1,
        /// Set by the NIC when a FIN or RST hits the record. The record keeps forwarding packets
        /// without those flags; the host removes it when its connection closes.
        teardown: bool = 1,
        /// Apply `seq_delta` (SYN-proxied flows), and (since 1.4) the record's `ts_delta` from
        /// the record extension memory ([`RecordExt`]). Needs capability `SEQ_ADJUST`.
        seq_adjust: bool = 1,
        /// Bits 10..8 of `counter_set` (since 1.2; zero before). Read and written through
        /// [`RecordCtl::counter_set`].
        counter_set_hi: u8 = 3,
        /// IP protocol of both directions (6 TCP, 17 UDP).
        proto: u8 = 8,
        /// Opaque to the NIC: the host's own state for the flow, kept for reconciliation after a
        /// host restart.
        host_state: u8 = 8,
        /// Bits 7..0 of `counter_set` (since 1.2; zero before). The record's counter set: a hit
        /// adds its packet and bytes to this set of the counter bank as well as to the record's
        /// own counters, in the same pass. 0: none. The set must be allocated
        /// (`CounterSetAlloc`); a record naming one that is not is malformed.
        counter_set_lo: u8 = 8,
    }
}

hw_format! {
    /// What the NIC does to a packet of one direction. The new addresses and ports are not stored:
    /// a packet that matched one tuple leaves with the *other* tuple reversed (source = the other
    /// tuple's destination, destination = its source), as in the kernel's flow table.
    pub struct DirParams (6 bytes) {
        /// Next-hop entry that supplies the outgoing L2 header and port.
        pub next_hop: U16,
        /// RFC 1624 checksum delta for the IPv4 header checksum: the ones'-complement sum of
        /// `~old + new` over the 16-bit words of both addresses. Zero for IPv6.
        pub l3_delta: U16,
        /// RFC 1624 checksum delta for the TCP/UDP checksum: the same sum over the pseudo-header
        /// address words and both port words.
        pub l4_delta: U16,
    }
}

hw_format! {
    /// One connection: both tuples, the rewrite of each direction, counters and state. Records
    /// are `RECORD_SIZE` (128) bytes and live at `record index × 128` in the NIC's table memory.
    pub struct FlowRecord (128 bytes) {
        /// Control word.
        pub ctl: RecordCtl,
        /// The host's handle for the connection, echoed in every event about the record.
        pub cookie: U32,
        /// Original direction: client → VIP.
        pub orig: FlowTuple,
        /// Reply direction: real server → local address (LIP).
        pub reply: FlowTuple,
        /// Idle timeout in seconds; 0 means the record never ages.
        pub idle_timeout: U16,
        /// OR of the TCP flags seen in the original direction.
        pub tcp_flags_orig: u8,
        /// OR of the TCP flags seen in the reply direction.
        pub tcp_flags_reply: u8,
        /// Device time of the last hit, in ager ticks (`AGER.TICK_US`), wrapping.
        pub last_seen: U32,
        /// Rewrite of the original direction (client → VIP becomes LIP → real server).
        pub dir_orig: DirParams,
        /// Rewrite of the reply direction (real server → LIP becomes VIP → client).
        pub dir_reply: DirParams,
        /// With `seq_adjust`: added to the sequence number of reply packets, and subtracted from
        /// the acknowledgement number and the SACK block edges of original packets, with the TCP
        /// checksum fixed up incrementally. The timestamp translation that goes with it (since
        /// 1.4) is the record's `ts_delta`, in the record extension memory ([`RecordExt`]).
        pub seq_delta: U32,
        /// Packets hit in the original direction.
        pub packets_orig: U32,
        /// Packets hit in the reply direction.
        pub packets_reply: U32,
        /// Bytes (IP length) hit in the original direction.
        pub bytes_orig: U64,
        /// Bytes (IP length) hit in the reply direction.
        pub bytes_reply: U64,
    }
}

hw_format! {
    /// A record's extension word (since 1.4): what a record needs beyond its 128 bytes, kept in
    /// the NIC's record extension memory, a RAM of its own beside the record table, one entry
    /// per record at `record index × 4`. Zero at reset and after Flush; written by every Insert
    /// (so a reused record index never inherits an old value) and by a Modify with
    /// [`crate::formats::ModifyMask`] `ts_delta`; zeroed by Delete and by the ager's own
    /// deletion. Carried at payload bytes 128..132 of Insert and Modify, right after the record;
    /// reported in the [`crate::formats::Completion`] of Read and Query.
    pub struct RecordExt (4 bytes) {
        /// TCP timestamp translation of a SYN-proxied flow (`ts_delta = Tp − Ts`, the proxy's
        /// TSval minus the server's). Applied on every hit of a TCP record with `seq_adjust`
        /// whose packet carries a well-formed timestamp option (kind 8, length 10, found by the
        /// option walk that finds SACK blocks): added to TSval of reply packets, subtracted from
        /// TSecr of original packets, each change folded into the TCP checksum incrementally as
        /// `seq_delta`'s are. 0 changes nothing (the option and the checksum are left as they
        /// are). A device without capability `TS_ADJUST` refuses a non-zero value
        /// (`BadArgument`) and holds 0.
        pub ts_delta: U32,
    }
}

hw_bits! {
    /// The control word of an index slot.
    pub struct SlotWord: u32 as U32 {
        /// Signature of the tuple (see [`crate::hash::Placement`]); a lookup reads the record only
        /// when the signature matches.
        sig: u16 = 16,
        /// Which tuple of the record the slot indexes: 0 original, 1 reply.
        reply: bool = 1,
        /// The slot is live.
        valid: bool = 1,
        /// Zero.
        reserved: u16 = 14,
    }
}

hw_format! {
    /// One slot of the cuckoo index. Each live record has exactly two live slots, one per tuple.
    pub struct IndexSlot (8 bytes) {
        /// Record index.
        pub record: U32,
        /// Signature, direction and valid bit.
        pub word: SlotWord,
    }
}

hw_format! {
    /// A bucket of the index: `SLOTS_PER_BUCKET` (4) slots, searched in order.
    pub struct IndexBucket (32 bytes) {
        /// Slot 0.
        pub slot0: IndexSlot,
        /// Slot 1.
        pub slot1: IndexSlot,
        /// Slot 2.
        pub slot2: IndexSlot,
        /// Slot 3.
        pub slot3: IndexSlot,
    }
}

hw_bits! {
    /// Where an index slot is: a bucket and a slot in it, or an entry of the stash.
    pub struct IndexPos: u32 as U32 {
        /// Bucket number (or stash entry when `stash` is set).
        index: u32 = 28,
        /// Slot within the bucket (below `SLOTS_PER_BUCKET`); zero for the stash.
        slot: u8 = 3,
        /// The position is in the stash.
        stash: bool = 1,
    }
}

hw_bits! {
    /// The control word of a next-hop entry.
    pub struct NextHopCtl: u16 as U16 {
        /// The entry may be used. A hit on a flow whose next hop is not valid is punted
        /// (reason `NoNextHop`).
        valid: bool = 1,
        /// Insert an 802.1Q tag with `vlan_tci`.
        vlan: bool = 1,
        /// Egress port.
        port: u8 = 8,
        /// What a hit does to the packet ([`crate::codes::NextHopAction`]; since 1.3, in bits
        /// that were reserved, so 0, `Rewrite`, is what every older entry holds). A `NextHopSet` with
        /// a value that is not an action, or with `Tunnel` on a device without capability
        /// `TUNNEL`, is refused (`BadArgument`).
        action: u8 = 2,
        /// Zero.
        reserved: u8 = 4,
    }
}

hw_format! {
    /// The outer addresses of a `Tunnel` next-hop entry (since 1.3): the second half of the
    /// `NextHopSet` payload, bytes 16..48, read only when the entry's action is `Tunnel`, and
    /// kept beside the entry (the table of entries keeps its 16-byte stride). The outer header
    /// has the family of the packet it carries; an IPv4 address occupies bytes 0..4.
    ///
    /// The outer header, bit for bit. IPv4: version 4, IHL 5, the inner TOS byte, total length
    /// = inner length + 20, identification 0, the inner DF bit and no other flag or offset, TTL
    /// 64, protocol 4, a header checksum computed over the 20 bytes. IPv6: version 6, the inner
    /// traffic class, flow label 0, payload length = inner length, next header 41, hop limit 64.
    pub struct NextHopTunnel (32 bytes) {
        /// Outer source: the balancer's own address.
        pub src: [u8; 16],
        /// Outer destination: the real server.
        pub dst: [u8; 16],
    }
}

hw_format! {
    /// A next-hop entry: the L2 header a rewritten packet leaves with and (since 1.3) what a hit
    /// does to the packet. Many flows share one entry, so a neighbour's new MAC is one write.
    pub struct NextHopEntry (16 bytes) {
        /// Destination MAC.
        pub dst_mac: [u8; 6],
        /// Source MAC.
        pub src_mac: [u8; 6],
        /// 802.1Q tag control (PCP, DEI, VID) when `vlan` is set.
        pub vlan_tci: network_endian::U16,
        /// Valid bit, VLAN bit and egress port.
        pub ctl: NextHopCtl,
    }
}

impl FlowTuple {
    /// The tuple a reply to this one carries: addresses and ports swapped.
    pub fn reversed(&self) -> FlowTuple {
        FlowTuple {
            src_addr: self.dst_addr,
            dst_addr: self.src_addr,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }
}

impl NextHopCtl {
    /// The entry's action, or `None` for a value that is not one.
    pub fn hit_action(&self) -> Option<crate::codes::NextHopAction> {
        crate::codes::NextHopAction::try_from(self.action()).ok()
    }
}

impl RecordCtl {
    /// The record's counter set (0: none): `counter_set_hi` and `counter_set_lo` joined.
    pub const fn counter_set(&self) -> u16 {
        ((self.counter_set_hi() as u16) << 8) | self.counter_set_lo() as u16
    }

    /// The control word naming counter set `set` (its low 11 bits).
    pub const fn with_counter_set(self, set: u16) -> Self {
        self.with_counter_set_hi(((set >> 8) & 7) as u8).with_counter_set_lo(set as u8)
    }
}

impl CounterSet {
    /// Adds one hit of `bytes` in direction `reply` (wrapping, as the hardware's adders do).
    pub fn add(&mut self, reply: bool, bytes: u64) {
        let (p, b) = if reply {
            (&mut self.packets_reply, &mut self.bytes_reply)
        } else {
            (&mut self.packets_orig, &mut self.bytes_orig)
        };
        *p = U64::new(p.get().wrapping_add(1));
        *b = U64::new(b.get().wrapping_add(bytes));
    }
}

impl LookupKey {
    /// The key of a tuple.
    pub fn new(tuple: FlowTuple, proto: u8, ipv6: bool) -> Self {
        LookupKey { tuple, proto, family: if ipv6 { 6 } else { 4 }, reserved: [0; 2] }
    }
}

impl FlowRecord {
    /// The tuple of one direction (`reply` false: original).
    pub fn tuple(&self, reply: bool) -> &FlowTuple {
        if reply { &self.reply } else { &self.orig }
    }
    /// The lookup key of one direction.
    pub fn key(&self, reply: bool) -> LookupKey {
        LookupKey::new(*self.tuple(reply), self.ctl.proto(), self.ctl.ipv6())
    }
    /// The rewrite parameters of one direction.
    pub fn dir(&self, reply: bool) -> &DirParams {
        if reply { &self.dir_reply } else { &self.dir_orig }
    }
}

impl IndexBucket {
    /// Slot `n` (0..4).
    pub fn slot(&self, n: usize) -> &IndexSlot {
        [&self.slot0, &self.slot1, &self.slot2, &self.slot3][n]
    }
    /// Mutable slot `n` (0..4).
    pub fn slot_mut(&mut self, n: usize) -> &mut IndexSlot {
        match n {
            0 => &mut self.slot0,
            1 => &mut self.slot1,
            2 => &mut self.slot2,
            3 => &mut self.slot3,
            _ => panic!("slot {n} is beyond SLOTS_PER_BUCKET"),
        }
    }
}
