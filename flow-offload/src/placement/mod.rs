//! The shadow cuckoo index: the host's authoritative copy of the NIC's index.
//!
//! The host places every index slot itself and the NIC's index is a replica of this one (see
//! "Host-managed placement" in the design). This module owns the *where*: which bucket slot or
//! stash entry each tuple of each record occupies, which cuckoo moves make room for a new key,
//! and the exact [`IndexSlot`] word the NIC must hold at every position. It is pure data: it
//! issues no commands and does no I/O; the caller turns a [`Plan`] into `IndexWrite` and
//! `Insert` commands.
//!
//! Placement follows `rtl_spec::hash` bit for bit: a key may sit in one of the slots of its
//! `bucket_a` or `bucket_b`, or in any stash entry, and a lookup searches bucket_a's slots in
//! order, then bucket_b's, then the stash. [`ShadowIndex::find`] searches in the same order.
//!
//! **Make-before-break.** A [`Move`] is executed as two writes: first its `to` slot is written
//! (the entry is briefly in two slots, both pointing at the same record, and a lookup finds
//! either), then its `from` slot is cleared. A plan's moves are ordered last hop first, so each
//! move's `to` is free when it runs, and after the last move the plan's `target` is free. A
//! packet therefore never misses an installed flow while room is being made.
//!
//! The placement rule is the contract's (`rtl_spec::hash::placement`): two independent buckets
//! per key (the second hash is mixed non-linearly, since CRC-32C alone would pair buckets for
//! good and no cuckoo chain could form).
//!
//! **One hash per key, half of it stored.** An entry's key is hashed once, by the caller (the
//! slow path, on the connection's first packet), and every search, move and slot word reuses
//! that [`KeyHash`]. A bucket slot keeps 8 bytes (`cell::Cell`): the record, its direction, which of
//! the key's two buckets it sits in, and the half of the hash that position does not imply (`b`
//! in bucket_a, `a` in bucket_b; the other half's bucket bits are the position itself). That is
//! enough to filter a search, to compute an entry's other bucket for a cuckoo move and to check
//! a write, so a bucket of four slots is half a cache line and a cuckoo search reads nothing
//! else. The full hash of an entry (a planned move's, for its slot word) comes from the caller's
//! key source, `keys(record, reply)`, which hashes the record's tuple again; the stash, a few
//! entries, keeps whole entries. The index cannot tell two keys whose stored halves agree apart
//! by itself: [`ShadowIndex::find`] takes the caller's comparison against the record, exactly as
//! the NIC compares the record a slot points at.

use rtl_spec::codes::Status;
use rtl_spec::formats::{IndexPos, IndexSlot, LookupKey, SlotWord};
use rtl_spec::hash::{KeyHash, Placement, Seeds};
use zerocopy::little_endian::U32;

use cell::{Cell, Cells};
use search::SearchScratch;

/// How many bucket slots a cuckoo search may examine, whatever `max_moves` is: the search
/// reads at most this many slots, so a nearly full table never stalls the caller.
pub const MAX_SEARCH_SLOTS: usize = 4096;

/// The largest bucket or stash count an [`IndexPos`] can name (its index field is 28 bits).
pub const MAX_INDEX: u32 = 1 << 28;

/// The most slots per bucket an [`IndexPos`] can name (its slot field is 3 bits).
pub const MAX_SLOTS_PER_BUCKET: u32 = 8;

/// The most records an index entry can name (records `0..MAX_RECORDS`): a bucket slot keeps the
/// record in 30 bits, and its all-ones word marks it free.
pub const MAX_RECORDS: u32 = (1 << 30) - 1;

/// An index entry in full: a tuple's hash and the record it points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The tuple's key hash: where the entry may live and its signature.
    pub hash: KeyHash,
    /// Record index (below [`MAX_RECORDS`]).
    pub record: u32,
    /// The slot indexes the record's reply tuple (otherwise its original tuple).
    pub reply: bool,
}

impl Entry {
    /// The record and direction the entry points at.
    pub fn occupant(&self) -> Occupant {
        Occupant { record: self.record, reply: self.reply }
    }
}

/// What an occupied slot points at: a record and one of its directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Occupant {
    /// Record index.
    pub record: u32,
    /// The record's reply tuple (otherwise its original tuple).
    pub reply: bool,
}

/// One cuckoo move: write `entry` at `to`, then clear `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// The entry being moved (what `from` holds before the move).
    pub entry: Entry,
    /// Where it is.
    pub from: IndexPos,
    /// Where it goes: a free slot of the entry's other bucket.
    pub to: IndexPos,
}

/// Where a new key goes and the moves that free that place, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The position the new key takes once every move is done.
    pub target: IndexPos,
    /// Moves, last hop of the cuckoo chain first; empty when `target` is already free.
    pub moves: Vec<Move>,
}

/// The placement of both tuples of one record, made by [`ShadowIndex::place_record`].
///
/// The NIC executes it in this order: every move of `orig`, then every move of `reply` (each
/// move as `IndexWrite(to)` with [`ShadowIndex::word_of`] the move's entry, then
/// `IndexWrite(from)` with an invalid slot), then one `Insert` naming `orig.target` and
/// `reply.target`. The `reply` plan never moves the original entry (it is not live on the NIC
/// until the `Insert`), and never uses `orig.target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPlan {
    /// Placement of the original tuple.
    pub orig: Plan,
    /// Placement of the reply tuple, planned with `orig` already applied.
    pub reply: Plan,
}

/// A geometry the index cannot have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// Buckets must be a power of two, at least 2 and at most [`MAX_INDEX`].
    Buckets(u32),
    /// Slots per bucket must be 1 to [`MAX_SLOTS_PER_BUCKET`].
    SlotsPerBucket(u32),
    /// The stash may have at most [`MAX_INDEX`] entries.
    Stash(u32),
    /// An index entry names at most [`MAX_RECORDS`] records.
    Records(u32),
    /// The host cannot allocate the shadow of that geometry.
    TooLarge,
}

impl core::fmt::Display for GeometryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Buckets(n) => write!(f, "{n} buckets: not a power of two in 2..=2^28"),
            Self::SlotsPerBucket(n) => write!(f, "{n} slots per bucket: not in 1..=8"),
            Self::Stash(n) => write!(f, "{n} stash entries: more than 2^28"),
            Self::Records(n) => write!(f, "{n} records: more than 2^30 - 1"),
            Self::TooLarge => write!(f, "not enough memory for the shadow"),
        }
    }
}

impl std::error::Error for GeometryError {}

/// The host's copy of the NIC's cuckoo index.
#[derive(Clone, Debug)]
pub struct ShadowIndex {
    buckets: u32,
    slots_per_bucket: u32,
    seeds: Seeds,
    /// Bucket slots, `bucket × slots_per_bucket + slot`.
    slots: Cells,
    /// Whole entries: the stash is small, and its positions imply nothing about the hash.
    stash: Vec<Option<Entry>>,
    used: u32,
    stash_used: u32,
    /// The cuckoo search's working memory, kept between searches so that an install into a
    /// busy table allocates nothing.
    search: std::cell::RefCell<SearchScratch>,
    /// [`Self::apply`]'s pending writes, kept between calls for the same reason.
    overlay: Vec<(IndexPos, Option<Entry>)>,
}

impl ShadowIndex {
    /// An empty index of the NIC's geometry (`FLOW_TABLE` registers) and hash seeds.
    pub fn new(
        buckets: u32,
        slots_per_bucket: u32,
        stash: u32,
        seed_a: u32,
        seed_b: u32,
    ) -> Result<Self, GeometryError> {
        if !buckets.is_power_of_two() || !(2..=MAX_INDEX).contains(&buckets) {
            return Err(GeometryError::Buckets(buckets));
        }
        if !(1..=MAX_SLOTS_PER_BUCKET).contains(&slots_per_bucket) {
            return Err(GeometryError::SlotsPerBucket(slots_per_bucket));
        }
        if stash > MAX_INDEX {
            return Err(GeometryError::Stash(stash));
        }
        // Allocation failure is an error, not an abort: the geometry comes from the device.
        let mut stash_cells = Vec::new();
        let n = (buckets * slots_per_bucket) as usize;
        let slots = Cells::free(n).ok_or(GeometryError::TooLarge)?;
        if stash_cells.try_reserve_exact(stash as usize).is_err() {
            return Err(GeometryError::TooLarge);
        }
        stash_cells.resize(stash as usize, None);
        Ok(Self {
            buckets,
            slots_per_bucket,
            seeds: Seeds { a: seed_a, b: seed_b },
            slots,
            stash: stash_cells,
            used: 0,
            stash_used: 0,
            search: std::cell::RefCell::default(),
            overlay: Vec::new(),
        })
    }

    /// The table's seeds (to hash keys once and carry the hash).
    pub fn seeds(&self) -> Seeds {
        self.seeds
    }

    /// A key's hash with this table's seeds.
    pub fn hash_of(&self, key: &LookupKey) -> KeyHash {
        self.seeds.key_hash(key)
    }

    /// Where a key of this hash may live (the contract's placement rule).
    #[inline]
    pub fn placement(&self, hash: KeyHash) -> Placement {
        hash.placement(self.buckets)
    }

    /// Occupied positions, buckets and stash together.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Occupied stash entries.
    pub fn stash_used(&self) -> u32 {
        self.stash_used
    }

    /// All positions: bucket slots plus stash entries.
    pub fn capacity(&self) -> u32 {
        self.buckets * self.slots_per_bucket + self.stash.len() as u32
    }

    /// Bucket slots only (the figure occupancy is usually quoted against).
    pub fn bucket_capacity(&self) -> u32 {
        self.buckets * self.slots_per_bucket
    }

    /// What `pos` points at, if `pos` is in range and occupied.
    pub fn occupant(&self, pos: IndexPos) -> Option<Occupant> {
        match self.locate(pos)? {
            (true, i) => self.stash.get(i)?.as_ref().map(Entry::occupant),
            (false, i) => self.slots.get(i)?.occupant(),
        }
    }

    /// The entry at `pos` in full, if `pos` is in range and occupied; `keys(record, reply)` is
    /// the hash of that record's tuple (the caller owns the records, see the module doc).
    pub fn get(&self, pos: IndexPos, keys: &impl Fn(u32, bool) -> KeyHash) -> Option<Entry> {
        match self.locate(pos)? {
            (true, i) => *self.stash.get(i)?,
            (false, i) => self.slots.get(i)?.full(keys),
        }
    }

    /// Every occupied position with what it points at: bucket slots in order, then the stash.
    pub fn occupants(&self) -> impl Iterator<Item = (IndexPos, Occupant)> + '_ {
        let spb = self.slots_per_bucket as usize;
        let in_buckets = self.slots.iter().enumerate().filter_map(move |(i, c)| {
            c.occupant().map(|o| (bucket_pos((i / spb) as u32, (i % spb) as u32), o))
        });
        let in_stash = (self.stash.iter().enumerate())
            .filter_map(|(i, e)| e.as_ref().map(|e| (stash_pos(i as u32), e.occupant())));
        in_buckets.chain(in_stash)
    }

    /// Every occupied position with its entry in full (see [`Self::get`]), in the order of
    /// [`Self::occupants`].
    pub fn entries<'a, K: Fn(u32, bool) -> KeyHash>(
        &'a self,
        keys: &'a K,
    ) -> impl Iterator<Item = (IndexPos, Entry)> + 'a {
        self.occupants().filter_map(move |(pos, _)| self.get(pos, keys).map(|e| (pos, e)))
    }

    /// Where the key of `hash` is, searched as the NIC searches: bucket_a's slots, bucket_b's,
    /// the stash. An entry matches when its stored hash agrees with `hash` and `is_key` says its
    /// record holds the key in the entry's direction (the caller owns the records).
    pub fn find(&self, hash: KeyHash, is_key: impl Fn(Occupant) -> bool) -> Option<IndexPos> {
        let p = self.placement(hash);
        let spb = self.slots_per_bucket as usize;
        for b in [p.bucket_a, p.bucket_b] {
            let first = b as usize * spb;
            let bucket = self.slots.get(first..first + spb).unwrap_or_default();
            let hit = bucket.iter().position(|c| c.may_be(hash, &p, b) && c.occupant().is_some_and(&is_key));
            if let Some(s) = hit {
                return Some(bucket_pos(b, s as u32));
            }
        }
        if self.stash_used == 0 {
            return None;
        }
        (self.stash.iter().position(|e| e.as_ref().is_some_and(|e| e.hash == hash && is_key(e.occupant()))))
            .map(|i| stash_pos(i as u32))
    }

    /// Where the entry pointing at `me` is, the key's hash being `hash`, searched as
    /// [`Self::find`] searches but matched on the record and direction alone (one entry at most
    /// points at them): for a caller that knows the record, as a remove does.
    pub fn find_occupant(&self, me: Occupant, hash: KeyHash) -> Option<IndexPos> {
        let p = self.placement(hash);
        let spb = self.slots_per_bucket as usize;
        for b in [p.bucket_a, p.bucket_b] {
            let first = b as usize * spb;
            let cells = self.slots.get(first..first + spb).unwrap_or_default();
            if let Some(s) = cells.iter().position(|c| c.occupant() == Some(me)) {
                return Some(bucket_pos(b, s as u32));
            }
        }
        if self.stash_used == 0 {
            return None;
        }
        let held = |e: &Option<Entry>| e.as_ref().is_some_and(|e| e.occupant() == me);
        self.stash.iter().position(held).map(|i| stash_pos(i as u32))
    }

    /// Asks the CPU to bring the two home buckets of `hash` into cache: a batch of installs
    /// prefetches every key's buckets before it places the first, so their misses overlap.
    #[inline]
    pub fn prefetch(&self, hash: KeyHash) {
        let p = self.placement(hash);
        let spb = self.slots_per_bucket as usize;
        for b in [p.bucket_a, p.bucket_b] {
            if let Some(cell) = self.slots.get(b as usize * spb) {
                prefetch_read(cell);
            }
        }
    }

    /// The slot the NIC must hold for `entry`: its record, its signature, its direction, valid.
    pub fn word_of(&self, entry: &Entry) -> IndexSlot {
        let sig = self.placement(entry.hash).sig;
        IndexSlot {
            record: U32::new(entry.record),
            word: SlotWord::new().with_sig(sig).with_reply(entry.reply).with_valid(true),
        }
    }

    /// The slot the NIC must hold at `pos`: [`Self::word_of`] its entry (see [`Self::get`]), or
    /// an invalid (zero) slot when `pos` is free or out of range.
    pub fn slot_word(&self, pos: IndexPos, keys: &impl Fn(u32, bool) -> KeyHash) -> IndexSlot {
        self.get(pos, keys).map(|e| self.word_of(&e)).unwrap_or_default()
    }

    /// Puts `entry` at the free position `pos`, checked as the NIC checks an `IndexWrite`:
    /// `SlotOutOfRange`, `SlotLive`, or `BadPlacement` (a bucket slot outside the key's two
    /// buckets); `RecordOutOfRange` for a record an entry cannot name ([`MAX_RECORDS`]). It does
    /// not refuse a key that is already placed, because a make-before-break move places one twice
    /// for a moment; [`Self::plan`] never plans a key twice.
    pub fn occupy(&mut self, pos: IndexPos, entry: Entry) -> Result<(), Status> {
        self.check_occupy(pos, &entry, self.occupant(pos).is_some())?;
        self.put(pos, Some(entry));
        Ok(())
    }

    /// Frees `pos` and returns what it pointed at (`None` if it was free or out of range).
    pub fn clear(&mut self, pos: IndexPos) -> Option<Occupant> {
        let old = self.occupant(pos)?;
        self.put(pos, None);
        Some(old)
    }

    /// Removes the key of `hash` wherever it is (see [`Self::find`]); returns its position and
    /// what it pointed at.
    pub fn remove(
        &mut self,
        hash: KeyHash,
        is_key: impl Fn(Occupant) -> bool,
    ) -> Option<(IndexPos, Occupant)> {
        let pos = self.find(hash, is_key)?;
        self.clear(pos).map(|o| (pos, o))
    }

    /// Where a new key of `hash` goes: a free slot of bucket_a, else of bucket_b, else the
    /// shortest cuckoo chain of at most `max_moves` moves found breadth-first (bounded by
    /// [`MAX_SEARCH_SLOTS`]), else a free stash entry. `None` when there is no room for it: the
    /// flow stays on the host's software path. The caller has checked with [`Self::find`] that
    /// the key is not placed already (the index holds hashes, not keys). `keys` gives the full
    /// hash of each entry the chain moves (see [`Self::get`]).
    pub fn plan(
        &self,
        hash: KeyHash,
        max_moves: usize,
        keys: &impl Fn(u32, bool) -> KeyHash,
    ) -> Option<Plan> {
        self.plan_pinned(hash, max_moves, None, keys)
    }

    /// Places both tuples of `record` (a new flow needs two slots, taken by one `Insert`): plans
    /// and applies the original tuple, then plans the reply tuple on the resulting state with
    /// the original's slot pinned, and applies it. If the reply tuple finds no room, the
    /// original's plan is undone (see [`Self::undo`]) and the index is exactly as before: the
    /// caller issues nothing. A caller that plans the two keys itself with [`Self::plan`] and
    /// [`Self::apply`] undoes a half-placed record the same way, or by [`Self::clear`] of the
    /// first target when the first plan had no moves. `keys` answers for the records already
    /// placed; `record`'s own hashes are `orig` and `reply`.
    pub fn place_record(
        &mut self,
        record: u32,
        orig: KeyHash,
        reply: KeyHash,
        max_moves: usize,
        keys: &impl Fn(u32, bool) -> KeyHash,
    ) -> Option<RecordPlan> {
        // Two equal hashes are one key twice (the caller refuses that) or a 64-bit collision:
        // either way the NIC could not tell the directions apart, so the flow stays on the host.
        if orig == reply || record >= MAX_RECORDS {
            return None;
        }
        let keys = |r: u32, dir: bool| match (r == record, dir) {
            (true, false) => orig,
            (true, true) => reply,
            (false, _) => keys(r, dir),
        };
        let e_orig = Entry { hash: orig, record, reply: false };
        let e_reply = Entry { hash: reply, record, reply: true };
        let first = self.plan(orig, max_moves, &keys)?;
        self.apply_fresh(&first, e_orig);
        if let Some(second) = self.plan_pinned(reply, max_moves, Some(first.target), &keys) {
            self.apply_fresh(&second, e_reply);
            return Some(RecordPlan { orig: first, reply: second });
        }
        // Undoing a plan just applied cannot fail; if it somehow did, the index is still
        // consistent (the original tuple stays placed) and the caller sees `None` either way.
        let _ = self.undo(&first, e_orig);
        None
    }

    /// Applies a plan made by [`Self::plan_pinned`] on the state as it is now, for an entry of a
    /// record nothing references yet. Such a plan is valid by construction (its target was
    /// free, each move's entry was read from its `from`, the chain's slots are distinct), so
    /// the checks [`Self::apply`] makes would only repeat the search: they were half of an
    /// install's placement. Debug builds still make them, and the NIC makes its own on every
    /// write, which the replica tests compare with this index.
    fn apply_fresh(&mut self, plan: &Plan, entry: Entry) {
        debug_assert!(
            self.find(entry.hash, |o| o == entry.occupant()).is_none(),
            "a fresh entry is already placed"
        );
        debug_assert!(
            self.validate(
                plan.moves.iter().map(|m| apply::Op::Move(*m)).chain([apply::Op::Occupy(plan.target, entry)]),
                &mut Vec::new()
            )
            .is_ok(),
            "a fresh plan does not validate"
        );
        for m in &plan.moves {
            self.put(m.to, Some(m.entry));
            self.put(m.from, None);
        }
        self.put(plan.target, Some(entry));
    }

    /// The NIC's checks for writing `entry` at `pos`.
    fn check_occupy(&self, pos: IndexPos, entry: &Entry, live: bool) -> Result<(), Status> {
        if self.locate(pos).is_none() {
            return Err(Status::SlotOutOfRange);
        }
        if entry.record >= MAX_RECORDS {
            return Err(Status::RecordOutOfRange);
        }
        if live {
            return Err(Status::SlotLive);
        }
        if !pos.stash() {
            let p = self.placement(entry.hash);
            if pos.index() != p.bucket_a && pos.index() != p.bucket_b {
                return Err(Status::BadPlacement);
            }
        }
        Ok(())
    }

    /// Whether `pos` holds `entry` (in a bucket: as far as its cell tells).
    fn holds(&self, pos: IndexPos, entry: &Entry) -> bool {
        match self.locate(pos) {
            Some((true, i)) => self.stash.get(i).is_some_and(|e| e.as_ref() == Some(entry)),
            Some((false, i)) => {
                self.slots.get(i).is_some_and(|c| *c == Cell::pack(entry, pos.index(), self.buckets))
            }
            None => false,
        }
    }

    /// The cell at a bucket position (`None` for the stash or out of range).
    fn bucket_cell(&self, pos: IndexPos) -> Option<Cell> {
        match self.locate(pos)? {
            (false, i) => self.slots.get(i).copied(),
            (true, _) => None,
        }
    }

    /// The first free slot of bucket `b`.
    fn free_slot(&self, b: u32) -> Option<IndexPos> {
        let spb = self.slots_per_bucket as usize;
        let first = b as usize * spb;
        let bucket = self.slots.get(first..first + spb)?;
        bucket.iter().position(|c| c.is_free()).map(|s| bucket_pos(b, s as u32))
    }

    /// Index into `slots` or `stash` for an in-range position.
    fn locate(&self, pos: IndexPos) -> Option<(bool, usize)> {
        let index = pos.index() as usize;
        if pos.stash() {
            (pos.slot() == 0 && index < self.stash.len()).then_some((true, index))
        } else {
            let slot = u32::from(pos.slot());
            let ok = slot < self.slots_per_bucket && pos.index() < self.buckets;
            ok.then(|| (false, index * self.slots_per_bucket as usize + slot as usize))
        }
    }

    /// Writes a position, keeping the counters. Out-of-range positions are ignored.
    fn put(&mut self, pos: IndexPos, value: Option<Entry>) {
        let Some((in_stash, i)) = self.locate(pos) else { return };
        let was = if in_stash {
            let Some(cell) = self.stash.get_mut(i) else { return };
            std::mem::replace(cell, value).is_some()
        } else {
            let packed = value.map_or(Cell::FREE, |e| Cell::pack(&e, pos.index(), self.buckets));
            let Some(cell) = self.slots.get_mut(i) else { return };
            !std::mem::replace(cell, packed).is_free()
        };
        match (was, value.is_some()) {
            (false, true) => {
                self.used += 1;
                self.stash_used += u32::from(in_stash);
            }
            (true, false) => {
                self.used -= 1;
                self.stash_used -= u32::from(in_stash);
            }
            _ => {}
        }
    }
}

/// A hint to bring the cache line holding `value` in for reading; no effect where the CPU has
/// no such instruction.
#[inline]
fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it cannot fault or change memory, and the address is
    // that of a live reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            core::ptr::from_ref(value).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// The position of slot `slot` of bucket `bucket`.
fn bucket_pos(bucket: u32, slot: u32) -> IndexPos {
    IndexPos::new().with_index(bucket).with_slot(slot as u8)
}

/// The position of stash entry `i`.
fn stash_pos(i: u32) -> IndexPos {
    IndexPos::new().with_index(i).with_stash(true)
}

mod apply;
mod cell;
mod search;

#[cfg(test)]
mod tests;
