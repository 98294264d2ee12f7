//! The flow table as the NIC holds it: records, the record extension memory (spec 1.4), index
//! buckets and the stash, and the lookup that the datapath runs for every TCP and UDP packet.

use super::table_memory::TableMemory;
use rtl_spec::formats::{FlowCommand, FlowRecord, IndexBucket, IndexPos, IndexSlot, LookupKey, RecordExt};
use rtl_spec::hash::Placement;
use zerocopy::FromZeros;
use zerocopy::IntoBytes;

/// The table memory.
pub struct FlowTable {
    pub records: TableMemory<FlowRecord>,
    /// The record extension memory (spec 1.4): one [`RecordExt`] per record, by record index, as
    /// a card keeps it in a RAM of its own beside the record table. Zero-filled and lazily
    /// committed like the records, and written only where a word is or becomes non-zero
    /// ([`Self::set_ext`]), so a table of flows without a timestamp translation never touches
    /// it: the hit path reads it only for a `seq_adjust` record.
    pub ext: Vec<RecordExt>,
    pub buckets: TableMemory<IndexBucket>,
    pub stash: Vec<IndexSlot>,
    pub seed_a: u32,
    pub seed_b: u32,
    pub occupancy: u32,
    pub index_used: u32,
    pub stash_used: u32,
    /// NIC-internal: the ager already reported this record idle (cleared by a hit or a touch).
    /// One bit per record, so that the hit path's clearing touches a line shared by 512 records
    /// (a quarter of a MiB for 2M records, in the cache) rather than one byte of a line per hit.
    pub idle_reported: IdleBits,
}

/// Slots per bucket (`SLOTS_PER_BUCKET`).
pub const SLOTS: u32 = 4;

impl FlowTable {
    /// An empty table of the given geometry, seeded with the reset values.
    pub fn new(records: u32, buckets: u32, stash: u32) -> Self {
        // Line-aligned, on huge pages, lazy: see `table_memory`. The lookup touches a random
        // bucket and record per packet: with 4 KiB pages each is also a TLB miss, which on
        // hardware the table's SRAM/HBM does not have.
        let mut records = TableMemory::zeroed(records as usize);
        // Zeroed allocation: calloc's pages, mapped on first write.
        let ext = RecordExt::new_vec_zeroed(records.len()).unwrap_or_default();
        if ext.len() != records.len() {
            // No memory for the extension: no table, as when the records cannot be mapped,
            // rather than records without their extension words.
            records = TableMemory::zeroed(0);
        }
        let buckets = TableMemory::zeroed(buckets as usize);
        let idle_reported = IdleBits::new(records.len());
        FlowTable {
            records,
            ext,
            buckets,
            stash: IndexSlot::new_vec_zeroed(stash as usize).unwrap_or_default(),
            seed_a: seed_reset(0x28),
            seed_b: seed_reset(0x2C),
            occupancy: 0,
            index_used: 0,
            stash_used: 0,
            idle_reported,
        }
    }

    /// Where `key` may live.
    pub fn placement(&self, key: &LookupKey) -> Placement {
        super::keyhash::key_placement(key, self.seed_a, self.seed_b, self.buckets.len() as u32)
    }

    /// Finds the record holding `key` at its placement `place` (computed once per packet: the
    /// hash travels with it through the pipeline): its index and whether the key is its reply
    /// tuple.
    pub fn lookup_at(&self, key: &LookupKey, place: &Placement) -> Option<(u32, bool)> {
        let p = place;
        for bucket in [p.bucket_a, p.bucket_b] {
            if let Some(b) = self.buckets.get(bucket as usize) {
                for slot in [b.slot0, b.slot1, b.slot2, b.slot3] {
                    if let Some(hit) = self.matches(slot, p.sig, key) {
                        return Some(hit);
                    }
                }
            }
        }
        // An empty stash (the usual case: the host moves keys out of it) is not scanned: a miss,
        // every new connection's first packets, would otherwise compare every stash entry.
        if self.stash_used == 0 {
            return None;
        }
        self.stash.iter().find_map(|slot| self.matches(*slot, p.sig, key))
    }

    /// The first live slot of bucket `bucket` whose signature is `sig`: its record and whether
    /// it names the reply tuple (what the pipeline prefetches; the compare comes later, in
    /// [`Self::candidate_holds`]).
    #[inline]
    pub fn candidate_in(&self, bucket: u32, sig: u16) -> Option<(u32, bool)> {
        let b = self.buckets.get(bucket as usize)?;
        [b.slot0, b.slot1, b.slot2, b.slot3]
            .into_iter()
            .find(|slot| slot.word.valid() && slot.word.sig() == sig)
            .map(|slot| (slot.record.get(), slot.word.reply()))
    }

    /// Whether the candidate `(record, reply)` of [`Self::candidate_in`] holds `key`. When it
    /// does, it is what [`Self::lookup_at`] finds: the first slot of the scan whose signature
    /// matches (the first bucket's, or the second's when the first has none) is the candidate,
    /// and no slot before it has the signature.
    #[inline]
    pub fn candidate_holds(&self, (record, reply): (u32, bool), key: &LookupKey) -> bool {
        self.records.get(record as usize).is_some_and(|rec| rec.ctl.valid() && rec.key(reply) == *key)
    }

    #[inline]
    fn matches(&self, slot: IndexSlot, sig: u16, key: &LookupKey) -> Option<(u32, bool)> {
        if !slot.word.valid() || slot.word.sig() != sig {
            return None;
        }
        let index = slot.record.get();
        let rec = self.records.get(index as usize)?;
        let reply = slot.word.reply();
        (rec.ctl.valid() && rec.key(reply) == *key).then_some((index, reply))
    }

    /// Whether `pos` names a slot inside the geometry.
    pub fn pos_in_range(&self, pos: IndexPos) -> bool {
        if pos.stash() {
            pos.slot() == 0 && (pos.index() as usize) < self.stash.len()
        } else {
            u32::from(pos.slot()) < SLOTS && (pos.index() as usize) < self.buckets.len()
        }
    }

    /// The slot at `pos` (which must be in range).
    pub fn slot(&self, pos: IndexPos) -> Option<&IndexSlot> {
        if !self.pos_in_range(pos) {
            return None;
        }
        Some(if pos.stash() {
            &self.stash[pos.index() as usize]
        } else {
            self.buckets[pos.index() as usize].slot(pos.slot() as usize)
        })
    }

    /// Writes the slot at `pos` (which must be in range), keeping the usage counters.
    pub fn set_slot(&mut self, pos: IndexPos, value: IndexSlot) {
        if !self.pos_in_range(pos) {
            return;
        }
        let target = if pos.stash() {
            &mut self.stash[pos.index() as usize]
        } else {
            self.buckets[pos.index() as usize].slot_mut(pos.slot() as usize)
        };
        let was = target.word.valid();
        *target = value;
        let now = value.word.valid();
        if was != now {
            if now {
                self.index_used += 1;
                self.stash_used += u32::from(pos.stash());
            } else {
                self.index_used -= 1;
                self.stash_used -= u32::from(pos.stash());
            }
        }
    }

    /// Asks for the lines a flow command will touch before it runs: its record (both lines) and
    /// the buckets its two slots name. Out-of-range fields ask for nothing (the command's
    /// validation refuses them).
    pub fn prefetch_command(&self, cmd: &FlowCommand) {
        if let Some(record) = self.records.get(cmd.record.get() as usize) {
            super::pipeline::prefetch(record);
            if let Some(second) = record.as_bytes().get(64) {
                super::pipeline::prefetch(second);
            }
        }
        for pos in [cmd.slot_orig, cmd.slot_reply] {
            if let Some(bucket) = self.buckets.get(pos.index() as usize).filter(|_| !pos.stash()) {
                super::pipeline::prefetch(bucket);
            }
        }
    }

    /// Whether a slot at `pos` may index `key`: a bucket slot only in one of its two buckets.
    pub fn placement_allows(&self, pos: IndexPos, key: &LookupKey) -> bool {
        pos.stash() || allows(pos, &self.placement(key))
    }

    /// Every position whose slot points at (`record`, `reply`).
    pub fn positions_of(&self, record: u32, reply: bool) -> Vec<IndexPos> {
        let Some(rec) = self.records.get(record as usize) else { return Vec::new() };
        let p = self.placement(&rec.key(reply));
        let mut out = Vec::new();
        for b in [p.bucket_a, p.bucket_b] {
            for s in 0..SLOTS {
                let pos = IndexPos::new().with_index(b).with_slot(s as u8);
                if self.slot(pos).is_some_and(|sl| points_at(*sl, record, reply)) && !out.contains(&pos) {
                    out.push(pos);
                }
            }
        }
        for (i, sl) in self.stash.iter().enumerate() {
            if points_at(*sl, record, reply) {
                out.push(IndexPos::new().with_index(i as u32).with_stash(true));
            }
        }
        out
    }

    /// Clears a record and every slot that points at it.
    pub fn remove_record(&mut self, record: u32) {
        for reply in [false, true] {
            for pos in self.positions_of(record, reply) {
                self.set_slot(pos, IndexSlot::default());
            }
        }
        if let Some(rec) = self.records.get_mut(record as usize) {
            if rec.ctl.valid() {
                self.occupancy -= 1;
            }
            *rec = FlowRecord::default();
            self.idle_reported.clear(record as usize);
            self.set_ext(record as usize, 0);
        }
    }

    /// Record `index`'s `ts_delta` (0 for an index out of range).
    #[inline]
    pub fn ts_delta(&self, index: usize) -> u32 {
        self.ext.get(index).map_or(0, |e| e.ts_delta.get())
    }

    /// Writes record `index`'s `ts_delta`, only when the old or the new value is non-zero: a
    /// zero written over a zero would commit a page of the lazily allocated memory for nothing.
    pub fn set_ext(&mut self, index: usize, ts_delta: u32) {
        if let Some(e) = self.ext.get_mut(index)
            && (ts_delta != 0 || e.ts_delta.get() != 0)
        {
            e.ts_delta.set(ts_delta);
        }
    }
}

/// One bit per record: whether the ager has reported it idle.
pub struct IdleBits(Vec<u64>);

impl IdleBits {
    /// `n` bits, all clear.
    pub fn new(n: usize) -> Self {
        IdleBits(vec![0; n.div_ceil(64)])
    }
    /// Bit `i` (false when out of range).
    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// Sets bit `i` (ignored when out of range).
    pub fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    /// Clears bit `i` (ignored when out of range). Only writes when the bit is set, so the hit
    /// path dirties no line for a record that was never reported.
    #[inline]
    pub fn clear(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64)
            && *w & (1 << (i % 64)) != 0
        {
            *w &= !(1 << (i % 64));
        }
    }
}

/// Whether a slot at `pos` may index a key placed at `place`: the stash, or one of its two
/// buckets.
pub fn allows(pos: IndexPos, place: &Placement) -> bool {
    pos.stash() || pos.index() == place.bucket_a || pos.index() == place.bucket_b
}

/// Whether `slot` is live and points at (`record`, `reply`).
pub fn points_at(slot: IndexSlot, record: u32, reply: bool) -> bool {
    slot.word.valid() && slot.record.get() == record && slot.word.reply() == reply
}

/// The reset value of a flow-table register, from the specification.
fn seed_reset(offset: u32) -> u32 {
    rtl_spec::regs::flow_table::SPEC
        .registers
        .iter()
        .find(|r| r.offset == offset)
        .map_or(0, |r| r.reset as u32)
}

#[cfg(test)]
mod tests {
    use super::{FlowTable, IdleBits};
    use rtl_spec::formats::FlowRecord;

    #[test]
    fn the_extension_memory_follows_the_records_and_a_freed_record_keeps_no_delta() {
        let mut t = FlowTable::new(64, 32, 4);
        assert_eq!(t.ext.len(), t.records.len());
        assert!((0..64).all(|i| t.ts_delta(i) == 0));
        t.set_ext(5, 0xFFFF_FFFF);
        t.set_ext(6, 0);
        t.set_ext(64, 7); // out of range: ignored
        assert_eq!((t.ts_delta(5), t.ts_delta(6), t.ts_delta(64)), (0xFFFF_FFFF, 0, 0));
        t.set_ext(5, 0x10);
        assert_eq!(t.ts_delta(5), 0x10, "a new value replaces the old one");
        // The ager's own deletion clears the word with the record.
        t.records[5] = FlowRecord::default();
        t.remove_record(5);
        assert_eq!(t.ts_delta(5), 0);
        t.set_ext(9, 3);
        t.set_ext(9, 0);
        assert_eq!(t.ts_delta(9), 0, "zero written over a value");
    }

    #[test]
    fn a_candidate_sharing_the_signature_is_not_the_hit_and_the_full_lookup_finds_the_key() {
        use rtl_spec::formats::{IndexPos, IndexSlot, RecordCtl, SlotWord};
        use zerocopy::little_endian::U32;
        let mut t = FlowTable::new(64, 32, 4);
        let record = |port: u16| {
            let mut r =
                FlowRecord { ctl: RecordCtl::new().with_valid(true).with_proto(6), ..Default::default() };
            r.orig.src_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
            r.orig.src_port.set(port);
            r
        };
        t.records[1] = record(1111);
        t.records[2] = record(2222);
        let key = t.records[2].key(false);
        let p = t.placement(&key);
        // Record 1 under key 2's signature in the first slot (a 16-bit signature collides one
        // time in 65536), record 2 after it.
        let slot = |rec: u32| IndexSlot {
            record: U32::new(rec),
            word: SlotWord::new().with_sig(p.sig).with_valid(true),
        };
        t.set_slot(IndexPos::new().with_index(p.bucket_a).with_slot(0), slot(1));
        t.set_slot(IndexPos::new().with_index(p.bucket_a).with_slot(1), slot(2));
        let candidate = t.candidate_in(p.bucket_a, p.sig);
        assert_eq!(candidate, Some((1, false)), "the first slot with the signature");
        assert!(!t.candidate_holds((1, false), &key));
        assert_eq!(t.lookup_at(&key, &p), Some((2, false)));
        assert!(t.candidate_holds((2, false), &key));
        // A record that is not live does not hold its key.
        t.records[2].ctl = RecordCtl::new().with_proto(6);
        assert!(!t.candidate_holds((2, false), &key));
        assert!(!t.candidate_holds((99, false), &key), "out of range");
    }

    #[test]
    fn idle_bits_set_get_clear_and_ignore_out_of_range() {
        let mut bits = IdleBits::new(130);
        for i in [0, 63, 64, 129] {
            assert!(!bits.get(i));
            bits.set(i);
            assert!(bits.get(i));
        }
        assert!(!bits.get(1) && !bits.get(65) && !bits.get(128));
        bits.clear(64);
        assert!(!bits.get(64) && bits.get(63) && bits.get(129));
        bits.set(192);
        bits.clear(1000);
        assert!(!bits.get(192) && !bits.get(1000));
    }
}
