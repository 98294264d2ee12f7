//! The index of a worker's connections: both tuples of every connection by hash, in one
//! linear-probing table of 8-byte cells (the tuple's `KeyHash::a` and the slot with the
//! direction in its low bit), with backward-shift deletion (no tombstones), so lookups stay
//! short however many connections come and go.

use crate::conn::Dir;

/// A cell of the index: a tuple's hash and `slot << 1 | reply`; empty when `at` is `EMPTY`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cell {
    tag: u32,
    at: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE_CELL: Cell = Cell { tag: 0, at: EMPTY };

/// Both tuples of every connection, by hash (linear probing, backward-shift deletion).
#[derive(Debug)]
pub(super) struct TupleIndex {
    pub(super) cells: Vec<Cell>,
    pub(super) len: usize,
}

impl Cell {
    #[cfg(test)]
    pub(super) fn is_free(self) -> bool {
        self.at == EMPTY
    }
}

impl TupleIndex {
    pub(super) fn new() -> Self {
        TupleIndex { cells: vec![FREE_CELL; 64], len: 0 }
    }

    fn mask(&self) -> usize {
        self.cells.len() - 1
    }

    /// The first cell of hash `tag` for which `is` says yes.
    pub(super) fn find(&self, tag: u32, is: impl Fn(u32, Dir) -> bool) -> Option<(u32, Dir)> {
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            let c = self.cells[i];
            if c.at == EMPTY {
                return None;
            }
            if c.tag == tag {
                let (slot, dir) = (c.at >> 1, if c.at & 1 == 0 { Dir::Orig } else { Dir::Reply });
                if is(slot, dir) {
                    return Some((slot, dir));
                }
            }
            i = (i + 1) & mask;
        }
    }

    pub(super) fn insert(&mut self, tag: u32, at: u32) {
        // At most 7/8 full, so every probe ends at an empty cell.
        if (self.len + 1) * 8 > self.cells.len() * 7 {
            self.grow();
        }
        self.put(Cell { tag, at });
        self.len += 1;
    }

    fn put(&mut self, cell: Cell) {
        let mask = self.mask();
        let mut i = cell.tag as usize & mask;
        while self.cells[i].at != EMPTY {
            i = (i + 1) & mask;
        }
        self.cells[i] = cell;
    }

    fn grow(&mut self) {
        // Reserved, advised for huge pages (a large index is read at random on every packet the
        // host path sees), then filled.
        let mut doubled = Vec::with_capacity(self.cells.len() * 2);
        host_driver::memory::advise_huge_pages(&doubled);
        doubled.resize(self.cells.len() * 2, FREE_CELL);
        let old = std::mem::replace(&mut self.cells, doubled);
        for c in old.into_iter().filter(|c| c.at != EMPTY) {
            self.put(c);
        }
    }

    /// Removes the cell `(tag, at)`; the cells after it that may move back do.
    pub(super) fn remove(&mut self, tag: u32, at: u32) -> bool {
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            let c = self.cells[i];
            if c.at == EMPTY {
                return false;
            }
            if c.tag == tag && c.at == at {
                break;
            }
            i = (i + 1) & mask;
        }
        let mut j = (i + 1) & mask;
        while self.cells[j].at != EMPTY {
            let home = self.cells[j].tag as usize & mask;
            // The cell at j may fill the hole at i when i lies on its probe path [home, j).
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(i) & mask {
                self.cells[i] = self.cells[j];
                i = j;
            }
            j = (j + 1) & mask;
        }
        self.cells[i] = FREE_CELL;
        self.len -= 1;
        true
    }

    pub(super) fn bytes(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>()
    }
}
