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
//! **One hash per key.** An entry keeps the key's [`KeyHash`], not the key: it is computed once
//! by the caller (the slow path, on the connection's first packet) and every search, move and
//! slot word reuses it. An entry is 16 bytes, so a bucket of four slots is one cache line. The
//! index therefore cannot tell two keys with the same hash apart by itself: [`ShadowIndex::find`]
//! takes the caller's comparison against the record, exactly as the NIC compares the record a
//! slot points at.

use rtl_spec::codes::Status;
use rtl_spec::formats::{IndexPos, IndexSlot, LookupKey, SlotWord};
use rtl_spec::hash::{KeyHash, Placement, Seeds};
use zerocopy::little_endian::U32;

/// How many bucket slots a cuckoo search may examine, whatever `max_moves` is: the search
/// costs at most this many hash computations, so a nearly full table never stalls the caller.
pub const MAX_SEARCH_SLOTS: usize = 4096;

/// The largest bucket or stash count an [`IndexPos`] can name (its index field is 28 bits).
pub const MAX_INDEX: u32 = 1 << 28;

/// The most slots per bucket an [`IndexPos`] can name (its slot field is 3 bits).
pub const MAX_SLOTS_PER_BUCKET: u32 = 8;

/// What one occupied index slot holds: a tuple's hash and the record it points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The tuple's key hash, kept so a move can compute the entry's other bucket.
    pub hash: KeyHash,
    /// Record index.
    pub record: u32,
    /// The slot indexes the record's reply tuple (otherwise its original tuple).
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
    /// The host cannot allocate the shadow of that geometry.
    TooLarge,
}

impl core::fmt::Display for GeometryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Buckets(n) => write!(f, "{n} buckets: not a power of two in 2..=2^28"),
            Self::SlotsPerBucket(n) => write!(f, "{n} slots per bucket: not in 1..=8"),
            Self::Stash(n) => write!(f, "{n} stash entries: more than 2^28"),
            Self::TooLarge => write!(f, "not enough memory for the shadow index"),
        }
    }
}

impl std::error::Error for GeometryError {}

/// One step of a validated state change (see [`ShadowIndex::execute`]).
#[derive(Clone, Copy)]
enum Op {
    /// Occupy a free position.
    Occupy(IndexPos, Entry),
    /// Make-before-break move.
    Move(Move),
    /// Clear a position that must hold this entry.
    Clear(IndexPos, Entry),
}

/// A node of the breadth-first cuckoo search: an occupied bucket slot whose entry could move.
#[derive(Clone, Copy, Debug)]
struct Node {
    pos: IndexPos,
    /// Index of the node whose slot this node's entry would vacate for, or `NO_PARENT`.
    parent: usize,
    /// Moves needed if this node's entry is moved (1 for the key's own buckets).
    depth: usize,
}

const NO_PARENT: usize = usize::MAX;

/// The host's copy of the NIC's cuckoo index.
#[derive(Clone, Debug)]
pub struct ShadowIndex {
    buckets: u32,
    slots_per_bucket: u32,
    seeds: Seeds,
    /// Bucket slots, `bucket × slots_per_bucket + slot`.
    slots: Vec<Option<Entry>>,
    stash: Vec<Option<Entry>>,
    used: u32,
    stash_used: u32,
    /// The cuckoo search's working memory, kept between searches so that an install into a
    /// busy table allocates nothing.
    search: std::cell::RefCell<SearchScratch>,
}

/// What a breadth-first cuckoo search needs: its queue of nodes and the buckets it visited.
#[derive(Clone, Debug, Default)]
struct SearchScratch {
    nodes: Vec<Node>,
    visited: std::collections::HashSet<u32>,
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
        let mut slots = Vec::new();
        let mut stash_cells = Vec::new();
        let n = (buckets * slots_per_bucket) as usize;
        if slots.try_reserve_exact(n).is_err() || stash_cells.try_reserve_exact(stash as usize).is_err() {
            return Err(GeometryError::TooLarge);
        }
        slots.resize(n, None);
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

    /// The entry at `pos`, if `pos` is in range and occupied.
    pub fn get(&self, pos: IndexPos) -> Option<&Entry> {
        self.cell(pos)?.as_ref()
    }

    /// Every occupied position with its entry: bucket slots in order, then the stash.
    pub fn entries(&self) -> impl Iterator<Item = (IndexPos, &Entry)> + '_ {
        let spb = self.slots_per_bucket as usize;
        let in_buckets = self.slots.iter().enumerate().filter_map(move |(i, e)| {
            let pos = bucket_pos((i / spb) as u32, (i % spb) as u32);
            e.as_ref().map(|e| (pos, e))
        });
        let in_stash =
            (self.stash.iter().enumerate()).filter_map(|(i, e)| e.as_ref().map(|e| (stash_pos(i as u32), e)));
        in_buckets.chain(in_stash)
    }

    /// Where the key of `hash` is, searched as the NIC searches: bucket_a's slots, bucket_b's,
    /// the stash. An entry matches when its hash is `hash` and `is_key` says its record holds
    /// the key in the entry's direction (the caller owns the records).
    pub fn find(&self, hash: KeyHash, is_key: impl Fn(&Entry) -> bool) -> Option<IndexPos> {
        let p = self.placement(hash);
        let spb = self.slots_per_bucket as usize;
        for b in [p.bucket_a, p.bucket_b] {
            let first = b as usize * spb;
            let bucket = self.slots.get(first..first + spb).unwrap_or_default();
            if let Some(s) =
                bucket.iter().position(|e| e.as_ref().is_some_and(|e| e.hash == hash && is_key(e)))
            {
                return Some(bucket_pos(b, s as u32));
            }
        }
        if self.stash_used == 0 {
            return None;
        }
        (self.stash.iter().position(|e| e.as_ref().is_some_and(|e| e.hash == hash && is_key(e))))
            .map(|i| stash_pos(i as u32))
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

    /// The slot the NIC must hold at `pos`: [`Self::word_of`] its entry, or an invalid (zero)
    /// slot when `pos` is free or out of range.
    pub fn slot_word(&self, pos: IndexPos) -> IndexSlot {
        self.get(pos).map(|e| self.word_of(e)).unwrap_or_default()
    }

    /// Puts `entry` at the free position `pos`, checked as the NIC checks an `IndexWrite`:
    /// `SlotOutOfRange`, `SlotLive`, or `BadPlacement` (a bucket slot outside the key's two
    /// buckets). It does not refuse a key that is already placed, because a make-before-break
    /// move places one twice for a moment; [`Self::plan`] never plans a key twice.
    pub fn occupy(&mut self, pos: IndexPos, entry: Entry) -> Result<(), Status> {
        self.check_occupy(pos, &entry, self.get(pos).is_some())?;
        self.put(pos, Some(entry));
        Ok(())
    }

    /// Frees `pos` and returns what it held (`None` if it was free or out of range).
    pub fn clear(&mut self, pos: IndexPos) -> Option<Entry> {
        let old = self.get(pos).copied()?;
        self.put(pos, None);
        Some(old)
    }

    /// Removes the key of `hash` wherever it is (see [`Self::find`]); returns its position and
    /// entry.
    pub fn remove(&mut self, hash: KeyHash, is_key: impl Fn(&Entry) -> bool) -> Option<(IndexPos, Entry)> {
        let pos = self.find(hash, is_key)?;
        self.clear(pos).map(|e| (pos, e))
    }

    /// Where a new key of `hash` goes: a free slot of bucket_a, else of bucket_b, else the
    /// shortest cuckoo chain of at most `max_moves` moves found breadth-first (bounded by
    /// [`MAX_SEARCH_SLOTS`]), else a free stash entry. `None` when there is no room for it: the
    /// flow stays on the host's software path. The caller has checked with [`Self::find`] that
    /// the key is not placed already (the index holds hashes, not keys).
    pub fn plan(&self, hash: KeyHash, max_moves: usize) -> Option<Plan> {
        self.plan_pinned(hash, max_moves, None)
    }

    /// Applies `plan`'s moves in order and puts `entry` at its target. The whole plan is
    /// validated first against the current state, and nothing changes on an error:
    /// `SlotMismatch` (a move's `from` does not hold its entry), `SlotLive`, `BadPlacement`,
    /// `SlotOutOfRange`, as [`Self::occupy`]; `BadPlacement` also when `entry` (its hash,
    /// record and direction) is already placed.
    pub fn apply(&mut self, plan: &Plan, entry: Entry) -> Result<(), Status> {
        if self.find(entry.hash, |e| *e == entry).is_some() {
            return Err(Status::BadPlacement);
        }
        let ops = plan.moves.iter().map(|m| Op::Move(*m)).chain([Op::Occupy(plan.target, entry)]);
        self.execute(&ops.collect::<Vec<_>>())
    }

    /// Reverses an applied `plan` exactly: clears its target (which must hold `entry`), then
    /// moves every moved entry back, last move first (still make-before-break). Validated as
    /// [`Self::apply`] is; nothing changes on an error.
    pub fn undo(&mut self, plan: &Plan, entry: Entry) -> Result<(), Status> {
        let back = plan.moves.iter().rev().map(|m| Op::Move(Move { entry: m.entry, from: m.to, to: m.from }));
        let ops: Vec<Op> = [Op::Clear(plan.target, entry)].into_iter().chain(back).collect();
        self.execute(&ops)
    }

    /// Places both tuples of `record` (a new flow needs two slots, taken by one `Insert`): plans
    /// and applies the original tuple, then plans the reply tuple on the resulting state with
    /// the original's slot pinned, and applies it. If the reply tuple finds no room, the
    /// original's plan is undone (see [`Self::undo`]) and the index is exactly as before: the
    /// caller issues nothing. A caller that plans the two keys itself with [`Self::plan`] and
    /// [`Self::apply`] undoes a half-placed record the same way, or by [`Self::clear`] of the
    /// first target when the first plan had no moves.
    pub fn place_record(
        &mut self,
        record: u32,
        orig: KeyHash,
        reply: KeyHash,
        max_moves: usize,
    ) -> Option<RecordPlan> {
        // Two equal hashes are one key twice (the caller refuses that) or a 64-bit collision:
        // either way the NIC could not tell the directions apart, so the flow stays on the host.
        if orig == reply {
            return None;
        }
        let e_orig = Entry { hash: orig, record, reply: false };
        let e_reply = Entry { hash: reply, record, reply: true };
        let first = self.plan(orig, max_moves)?;
        self.apply(&first, e_orig).ok()?;
        let second = self
            .plan_pinned(reply, max_moves, Some(first.target))
            .and_then(|p| self.apply(&p, e_reply).is_ok().then_some(p));
        if let Some(second) = second {
            return Some(RecordPlan { orig: first, reply: second });
        }
        // Undoing a plan just applied cannot fail; if it somehow did, the index is still
        // consistent (the original tuple stays placed) and the caller sees `None` either way.
        let _ = self.undo(&first, e_orig);
        None
    }

    /// [`Self::plan`] with one occupied position whose entry must not move.
    fn plan_pinned(&self, hash: KeyHash, max_moves: usize, pinned: Option<IndexPos>) -> Option<Plan> {
        let p = self.placement(hash);
        let home = [p.bucket_a, p.bucket_b];
        if let Some(target) = home.iter().find_map(|b| self.free_slot(*b)) {
            return Some(Plan { target, moves: Vec::new() });
        }
        if let Some(plan) = self.cuckoo_search(home, max_moves, pinned) {
            return Some(plan);
        }
        let free = self.stash.iter().position(Option::is_none)?;
        Some(Plan { target: stash_pos(free as u32), moves: Vec::new() })
    }

    /// Breadth-first search from the (full) home buckets for the shortest chain of moves that
    /// ends in a free slot. Each occupied slot's entry may go to its *other* bucket; a bucket is
    /// expanded once, so a chain never passes through the same bucket twice and its slots are
    /// distinct.
    fn cuckoo_search(&self, home: [u32; 2], max_moves: usize, pinned: Option<IndexPos>) -> Option<Plan> {
        if max_moves == 0 {
            return None;
        }
        // A hash set: the search may expand hundreds of buckets, and a linear `contains` made a
        // failing search quadratic (milliseconds per install into a full table).
        let mut scratch = self.search.borrow_mut();
        let SearchScratch { nodes, visited } = &mut *scratch;
        visited.clear();
        visited.extend(home);
        nodes.clear();
        for b in home {
            nodes.extend((0..self.slots_per_bucket).map(|s| Node {
                pos: bucket_pos(b, s),
                parent: NO_PARENT,
                depth: 1,
            }));
        }
        let mut head = 0;
        while let Some(node) = nodes.get(head).copied() {
            let at = head;
            head += 1;
            if Some(node.pos) == pinned {
                continue;
            }
            let Some(entry) = self.get(node.pos) else { continue };
            let p = self.placement(entry.hash);
            let alt = if node.pos.index() == p.bucket_a { p.bucket_b } else { p.bucket_a };
            if !visited.insert(alt) {
                continue;
            }
            if let Some(free) = self.free_slot(alt) {
                return Some(self.chain(nodes, at, free));
            }
            let room = nodes.len() + self.slots_per_bucket as usize <= MAX_SEARCH_SLOTS;
            if node.depth < max_moves && room {
                let next = (0..self.slots_per_bucket).map(|s| Node {
                    pos: bucket_pos(alt, s),
                    parent: at,
                    depth: node.depth + 1,
                });
                nodes.extend(next);
            }
        }
        None
    }

    /// The plan for the chain ending at node `last`, whose entry moves to `free`: walking the
    /// parents back to the root yields the moves last hop first, which is the execution order.
    fn chain(&self, nodes: &[Node], last: usize, free: IndexPos) -> Plan {
        let mut moves = Vec::with_capacity(nodes[last].depth);
        let mut to = free;
        let mut at = last;
        loop {
            let node = nodes[at];
            if let Some(entry) = self.get(node.pos) {
                moves.push(Move { entry: *entry, from: node.pos, to });
            }
            to = node.pos;
            if node.parent == NO_PARENT {
                return Plan { target: node.pos, moves };
            }
            at = node.parent;
        }
    }

    /// Validates every op against the state as it will be when the op runs (earlier ops
    /// included), then runs them all; on an error nothing has changed.
    fn execute(&mut self, ops: &[Op]) -> Result<(), Status> {
        // Positions the ops have written so far, newest last, over the current state.
        let mut overlay: Vec<(IndexPos, Option<Entry>)> = Vec::new();
        let look = |overlay: &[(IndexPos, Option<Entry>)], pos: IndexPos| {
            overlay.iter().rev().find(|(p, _)| *p == pos).map_or_else(|| self.get(pos).copied(), |(_, e)| *e)
        };
        for op in ops {
            match *op {
                Op::Occupy(pos, entry) => {
                    self.check_occupy(pos, &entry, look(&overlay, pos).is_some())?;
                    overlay.push((pos, Some(entry)));
                }
                Op::Move(m) => {
                    if look(&overlay, m.from) != Some(m.entry) {
                        return Err(Status::SlotMismatch);
                    }
                    self.check_occupy(m.to, &m.entry, look(&overlay, m.to).is_some())?;
                    overlay.push((m.to, Some(m.entry)));
                    overlay.push((m.from, None));
                }
                Op::Clear(pos, entry) => {
                    if look(&overlay, pos) != Some(entry) {
                        return Err(Status::SlotMismatch);
                    }
                    overlay.push((pos, None));
                }
            }
        }
        // Every write was validated in order, so replaying them gives the same end state.
        for (pos, entry) in overlay {
            self.put(pos, entry);
        }
        Ok(())
    }

    /// The NIC's checks for writing `entry` at `pos`.
    fn check_occupy(&self, pos: IndexPos, entry: &Entry, live: bool) -> Result<(), Status> {
        if self.cell(pos).is_none() {
            return Err(Status::SlotOutOfRange);
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

    /// The first free slot of bucket `b`.
    fn free_slot(&self, b: u32) -> Option<IndexPos> {
        (0..self.slots_per_bucket).map(|s| bucket_pos(b, s)).find(|pos| matches!(self.cell(*pos), Some(None)))
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

    fn cell(&self, pos: IndexPos) -> Option<&Option<Entry>> {
        match self.locate(pos)? {
            (true, i) => self.stash.get(i),
            (false, i) => self.slots.get(i),
        }
    }

    /// Writes a cell, keeping the counters. Out-of-range positions are ignored.
    fn put(&mut self, pos: IndexPos, value: Option<Entry>) {
        let Some((in_stash, i)) = self.locate(pos) else { return };
        let cell = if in_stash { self.stash.get_mut(i) } else { self.slots.get_mut(i) };
        let Some(cell) = cell else { return };
        let (was, now) = (cell.is_some(), value.is_some());
        *cell = value;
        match (was, now) {
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

#[cfg(test)]
mod tests;
