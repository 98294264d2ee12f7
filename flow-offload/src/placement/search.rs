//! The cuckoo search: where a new key goes when both its buckets are full, as the shortest chain
//! of moves (each entry to its other bucket, which its cell tells without the full hash) that ends
//! in a free slot, found breadth-first within [`MAX_SEARCH_SLOTS`] slots.

use super::{MAX_SEARCH_SLOTS, Move, Plan, ShadowIndex, bucket_pos, stash_pos};
use rtl_spec::formats::IndexPos;
use rtl_spec::hash::KeyHash;

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

/// What a breadth-first cuckoo search needs: its queue of nodes and the buckets it visited.
#[derive(Clone, Debug, Default)]
pub(super) struct SearchScratch {
    nodes: Vec<Node>,
    visited: std::collections::HashSet<u32, std::hash::BuildHasherDefault<BucketHasher>>,
}

/// Hashes the search's bucket numbers with one multiply. They come from the keyed placement hash,
/// so nobody outside chooses them, and the set never holds more than [`MAX_SEARCH_SLOTS`]: the
/// default SipHash was a sixth of a search's instructions at 90% occupancy, for no protection.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BucketHasher(u64);

impl std::hash::Hasher for BucketHasher {
    fn finish(&self) -> u64 {
        // Fold the product's well-mixed high half into the low bits the table indexes by.
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl ShadowIndex {
    /// [`Self::plan`] with one occupied position whose entry must not move.
    pub(super) fn plan_pinned(
        &self,
        hash: KeyHash,
        max_moves: usize,
        pinned: Option<IndexPos>,
        keys: &impl Fn(u32, bool) -> KeyHash,
    ) -> Option<Plan> {
        let p = self.placement(hash);
        let home = [p.bucket_a, p.bucket_b];
        if let Some(target) = home.iter().find_map(|b| self.free_slot(*b)) {
            return Some(Plan { target, moves: Vec::new() });
        }
        if let Some(plan) = self.cuckoo_search(home, max_moves, pinned, keys) {
            return Some(plan);
        }
        let free = self.stash.iter().position(Option::is_none)?;
        Some(Plan { target: stash_pos(free as u32), moves: Vec::new() })
    }

    /// Breadth-first search from the (full) home buckets for the shortest chain of moves that
    /// ends in a free slot. Each occupied slot's entry may go to its *other* bucket, which its
    /// cell says; a bucket is expanded once, so a chain never passes through the same bucket
    /// twice and its slots are distinct.
    fn cuckoo_search(
        &self,
        home: [u32; 2],
        max_moves: usize,
        pinned: Option<IndexPos>,
        keys: &impl Fn(u32, bool) -> KeyHash,
    ) -> Option<Plan> {
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
            self.prefetch_alternatives(b);
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
            let Some(cell) = self.bucket_cell(node.pos).filter(|c| !c.is_free()) else { continue };
            let alt = cell.other_bucket(node.pos.index(), self.buckets);
            if !visited.insert(alt) {
                continue;
            }
            if let Some(free) = self.free_slot(alt) {
                return Some(self.chain(nodes, at, free, keys));
            }
            let room = nodes.len() + self.slots_per_bucket as usize <= MAX_SEARCH_SLOTS;
            if node.depth < max_moves && room {
                self.prefetch_alternatives(alt);
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

    /// Asks for the other bucket of every entry in bucket `b`: the search visits them in turn,
    /// and each is a random line, so their misses overlap instead of following one another.
    fn prefetch_alternatives(&self, b: u32) {
        let spb = self.slots_per_bucket as usize;
        let first = b as usize * spb;
        for cell in self.slots.get(first..first + spb).unwrap_or_default() {
            if !cell.is_free() {
                let alt = cell.other_bucket(b, self.buckets);
                if let Some(target) = self.slots.get(alt as usize * spb) {
                    super::prefetch_read(target);
                }
            }
        }
    }

    /// The plan for the chain ending at node `last`, whose entry moves to `free`: walking the
    /// parents back to the root yields the moves last hop first, which is the execution order.
    fn chain(
        &self,
        nodes: &[Node],
        last: usize,
        free: IndexPos,
        keys: &impl Fn(u32, bool) -> KeyHash,
    ) -> Plan {
        let mut moves = Vec::with_capacity(nodes[last].depth);
        let mut to = free;
        let mut at = last;
        loop {
            let node = nodes[at];
            if let Some(entry) = self.get(node.pos, keys) {
                moves.push(Move { entry, from: node.pos, to });
            }
            to = node.pos;
            if node.parent == NO_PARENT {
                return Plan { target: node.pos, moves };
            }
            at = node.parent;
        }
    }
}
