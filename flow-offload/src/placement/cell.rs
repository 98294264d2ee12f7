//! The 8-byte bucket slot of the shadow index: an entry's record and direction, which of its key's
//! two buckets it sits in, and the half of the key hash that position does not imply (see the
//! module doc of [`super`]).

use super::{Entry, Occupant};
use rtl_spec::hash::{KeyHash, Placement};

/// A bucket slot as the shadow stores it: 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cell {
    /// `record << 2 | in_b << 1 | reply`, or [`Cell::FREE`].
    tag: u32,
    /// The half of the entry's hash its bucket does not imply: `b` when the entry sits in its
    /// bucket_a, `a` when it sits in its bucket_b.
    half: u32,
}

impl Cell {
    pub(super) const FREE: Cell = Cell { tag: u32::MAX, half: 0 };
    const REPLY: u32 = 1;
    const IN_B: u32 = 2;

    /// `entry` as it is stored in bucket `bucket`, one of its two.
    pub(super) fn pack(entry: &Entry, bucket: u32, buckets: u32) -> Cell {
        let in_b = bucket != entry.hash.placement(buckets).bucket_a;
        Cell {
            tag: (entry.record << 2) | (u32::from(in_b) * Self::IN_B) | u32::from(entry.reply),
            half: if in_b { entry.hash.a } else { entry.hash.b },
        }
    }

    pub(super) fn is_free(self) -> bool {
        self.tag == Self::FREE.tag
    }

    pub(super) fn in_b(self) -> bool {
        self.tag & Self::IN_B != 0
    }

    pub(super) fn occupant(self) -> Option<Occupant> {
        (!self.is_free()).then_some(Occupant { record: self.tag >> 2, reply: self.tag & Self::REPLY != 0 })
    }

    /// The entry's other bucket, the cell being in bucket `bucket` (the contract's rule: bucket_b
    /// is `b`'s, or bucket_a's neighbour when the two coincide).
    pub(super) fn other_bucket(self, bucket: u32, buckets: u32) -> u32 {
        let mask = buckets.wrapping_sub(1);
        if self.in_b() {
            return self.half & mask;
        }
        let b = self.half & mask;
        if b == bucket { bucket ^ 1 } else { b }
    }

    /// Whether the cell, in bucket `bucket`, may be the entry of `hash` (placed `p`): the side
    /// and the stored half agree.
    pub(super) fn may_be(self, hash: KeyHash, p: &Placement, bucket: u32) -> bool {
        !self.is_free()
            && if bucket == p.bucket_a {
                !self.in_b() && self.half == hash.b
            } else {
                self.in_b() && self.half == hash.a
            }
    }

    /// The cell's entry in full, its hash from `keys`. A key source that disagrees with the cell
    /// (an entry placed with hashes that are not its tuple's) makes a plan moving the entry fail
    /// validation ([`super::ShadowIndex::apply`]: `SlotMismatch`), never a wrong move.
    pub(super) fn full(self, keys: &impl Fn(u32, bool) -> KeyHash) -> Option<Entry> {
        let o = self.occupant()?;
        Some(Entry { hash: keys(o.record, o.reply), record: o.record, reply: o.reply })
    }
}

/// Cells in a cache line.
const CELLS_PER_LINE: usize = 64 / size_of::<Cell>();

/// One cache line of cells, aligned to a line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([Cell; CELLS_PER_LINE]);

const _: () = assert!(size_of::<Line>() == CELLS_PER_LINE * size_of::<Cell>() && size_of::<Cell>() == 8);

/// The index's bucket slots, a `[Cell]` whose first cell starts a cache line, so a bucket of 4
/// (32 bytes) or 8 never straddles two lines: a `Vec<Cell>`'s buffer starts 16 bytes past a
/// line, which put every other 4-slot bucket across two (and a prefetch of its first cell
/// brought half of it). A large index is on huge pages ([`host_driver::memory`]).
#[derive(Clone)]
pub(super) struct Cells {
    lines: Vec<Line>,
    len: usize,
}

impl Cells {
    /// `len` free cells, or `None` when the host cannot allocate them.
    pub(super) fn free(len: usize) -> Option<Cells> {
        let mut lines = Vec::new();
        lines.try_reserve_exact(len.div_ceil(CELLS_PER_LINE)).ok()?;
        host_driver::memory::advise_huge_pages(&lines);
        lines.resize(len.div_ceil(CELLS_PER_LINE), Line([Cell::FREE; CELLS_PER_LINE]));
        Some(Cells { lines, len })
    }
}

impl std::ops::Deref for Cells {
    type Target = [Cell];
    fn deref(&self) -> &[Cell] {
        // SAFETY: `Line` is `repr(C)` around `[Cell; CELLS_PER_LINE]` with no padding (asserted
        // above), so the lines are `lines.len() × CELLS_PER_LINE` initialised cells back to back,
        // and `len` is at most that; the borrow of `self` keeps the buffer alive and unchanged.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<Cell>(), self.len) }
    }
}

impl std::ops::DerefMut for Cells {
    fn deref_mut(&mut self) -> &mut [Cell] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow of the cells.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<Cell>(), self.len) }
    }
}

impl std::fmt::Debug for Cells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
