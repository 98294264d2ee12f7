//! Weighted Maglev hashing (`mh`): the lookup table of Eisenbud et al., "Maglev: A Fast and
//! Reliable Software Network Load Balancer", NSDI 2016, §3.4 and Pseudocode 1, with weights.
//!
//! Each available server has a preference list of all `M` = [`MAGLEV_TABLE_SIZE`] entries, the
//! permutation `(offset + j * skip) mod M`, with `offset = fmix64(id) mod M` and
//! `skip = mix64(id) mod (M - 1) + 1` (`M` is prime, so every skip visits every entry). Servers
//! take turns claiming the next free entry of their own list until the table is full (the
//! paper's Pseudocode 1). Without weights every server takes one turn per round, in id order.
//! With weights, a server's `k`-th turn falls at virtual time `k / weight`, ties to the lower id
//! (stride scheduling), so each server claims a share of the entries proportional to its weight
//! and the turns of all servers stay interleaved. Katran's MaglevV2 keeps the same proportion
//! with a per-round credit (`weight / max weight` of a turn per round); virtual times keep it
//! exactly, do not depend on the order of the list, and cost O(M log N) rather than
//! O(rounds × N) when weights are very unequal. A client goes to the owner of entry
//! `client_hash mod M`.
//!
//! Only available servers (weight > 0 and up) are in the table; the caller rebuilds on every
//! change, and a server that is unavailable in the view at pick time falls to the owners of the
//! following entries (see `table_pick` in the parent module) until the rebuild is swapped in.
//!
//! Because a permutation depends only on the id, and the turn order only on ids and weights, the
//! table (as owner ids) does not depend on the order of the server list, and a server set that
//! changes by one server changes few entries besides that server's own. Measured by the tests of
//! this file (`cargo test --release -p slowpath maglev -- --nocapture`; ids are `mix64` of
//! 1, 2, ...):
//! - imbalance, equal weights: with 10 servers each owns 6553 or 6554 entries, 0.011 % from
//!   1/N (the paper's bound for M > 100 N is 1 %); with 100, 655 or 656 (0.10 %); with 600,
//!   109 or 110 (0.71 %). Weights 1:2:3 own 10923 / 21845 / 32769 entries, each within one
//!   entry of its share.
//! - removing one of 10 servers (each in turn): its 10.00 % of the table all moves, and
//!   0.22-0.33 % (0.26 % on average) of the other servers' entries change owner as well, so
//!   10.20-10.30 % of the table changes against the ideal 10 %.
//! - adding an 11th server to 10: 9.09 % of the table goes to it (its ideal share) and 0.24 %
//!   of the table moves between the old servers.
//! - building a table (release build, a shared 2-core machine): 2.3 ms with 10 servers,
//!   4.5 ms with 100, 5.6 ms with 1000.

use super::{
    BackendView, MAGLEV_TABLE_SIZE, MAX_TABLE_BACKENDS, Scheduler, SchedulerKind, Servers, Turns, mix64,
    table_pick,
};
use std::fmt;
use std::sync::Arc;

/// The entry of a table with no available server.
pub const NO_BACKEND: u16 = u16::MAX;

/// The second fixed 64-bit mix, for the offsets: the finaliser of MurmurHash3 (`fmix64`). Using
/// a different function from the skips' [`mix64`] keeps offset and skip of a server
/// uncorrelated. Part of the contract, like `mix64`.
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ceb9fe1a85ec53);
    k ^ (k >> 33)
}

/// The preference list of the server with id `id`: `(offset, skip)`, its first entry and its
/// stride through the table.
pub fn permutation(id: u64) -> (usize, usize) {
    let m = MAGLEV_TABLE_SIZE as u64;
    ((fmix64(id) % m) as usize, (mix64(id) % (m - 1) + 1) as usize)
}

/// A Maglev lookup table of [`MAGLEV_TABLE_SIZE`] entries, each the position of a server in the
/// list it was built from (or [`NO_BACKEND`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MaglevTable {
    entries: Box<[u16]>,
}

impl MaglevTable {
    /// Builds the table of the available servers of `backends`, weighted (servers at positions
    /// from [`MAX_TABLE_BACKENDS`] on are left out). Every entry is
    /// [`NO_BACKEND`] when none is available.
    pub fn new(backends: &[BackendView]) -> Self {
        let m = MAGLEV_TABLE_SIZE;
        let mut entries = vec![NO_BACKEND; m].into_boxed_slice();
        let members: Vec<usize> =
            (0..backends.len().min(MAX_TABLE_BACKENDS)).filter(|&i| backends[i].available()).collect();
        // For each member, the next entry of its preference list and its skip.
        let mut cursor: Vec<(usize, usize)> = members.iter().map(|&i| permutation(backends[i].id)).collect();
        let mut turns = Turns::new(members.iter().map(|&i| (backends[i].weight, backends[i].id)));
        let mut filled = 0;
        while filled < m {
            let Some(member) = turns.next() else { break };
            let (next, skip) = &mut cursor[member];
            // The preference list visits every entry and the table is not full, so this ends;
            // over the whole build it walks about M ln M entries.
            loop {
                let e = *next;
                *next = (*next + *skip) % m;
                if entries[e] == NO_BACKEND {
                    entries[e] = members[member] as u16;
                    filled += 1;
                    break;
                }
            }
        }
        Self { entries }
    }

    /// The position of the server for a client hash: the owner of entry `hash % M`.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let e = self.entries[Self::slot(hash)];
        (e != NO_BACKEND).then_some(usize::from(e))
    }

    /// The entry a client hash falls on.
    pub fn slot(hash: u64) -> usize {
        (hash % MAGLEV_TABLE_SIZE as u64) as usize
    }

    /// The entries: positions in the server list, [`NO_BACKEND`] for none.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// How many entries each of the first `n` positions owns.
    pub fn counts(&self, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &e in &self.entries {
            if let Some(x) = c.get_mut(usize::from(e)) {
                *x += 1;
            }
        }
        c
    }
}

impl fmt::Debug for MaglevTable {
    /// The counts of the owners, not 65537 entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owners = self.entries.iter().filter(|&&e| e != NO_BACKEND).map(|&e| usize::from(e));
        let n = owners.max().map_or(0, |m| m + 1);
        f.debug_struct("MaglevTable")
            .field("entries", &self.entries.len())
            .field("counts", &self.counts(n))
            .finish()
    }
}

/// `mh`: the table, shared by the copies of all workers.
#[derive(Clone, Debug)]
pub(super) struct MaglevScheduler {
    pub(super) table: Arc<MaglevTable>,
}

impl Scheduler for MaglevScheduler {
    fn pick(&mut self, backends: &dyn Servers, client_hash: u64) -> Option<usize> {
        table_pick(self.table.entries(), MaglevTable::slot(client_hash), backends, client_hash)
    }

    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Rng, views};
    use super::super::{SchedulerKind, build};
    use super::{
        BackendView, MAGLEV_TABLE_SIZE as M, MAX_TABLE_BACKENDS, MaglevTable, NO_BACKEND, fmix64, permutation,
    };
    use std::time::Instant;

    /// The id of the owner of every entry, so tables of lists that differ can be compared.
    fn owner_ids(backends: &[BackendView]) -> Vec<Option<u64>> {
        let t = MaglevTable::new(backends);
        t.entries().iter().map(|&e| (e != NO_BACKEND).then(|| backends[usize::from(e)].id)).collect()
    }

    /// Counts here are at most a table size, exact in f64.
    fn float(x: usize) -> f64 {
        f64::from(u32::try_from(x).unwrap())
    }

    fn percent(part: usize, whole: usize) -> f64 {
        100.0 * float(part) / float(whole)
    }

    #[test]
    fn mh_equal_weights_are_within_1_percent() {
        // The paper's condition M > 100 N holds up to N = 655.
        for n in [10, 100, 600] {
            let counts = MaglevTable::new(&views(&vec![1; n])).counts(n);
            assert_eq!(counts.iter().sum::<usize>(), M);
            let ideal = float(M) / float(n);
            let worst = counts.iter().map(|&c| (float(c) - ideal).abs() / ideal).fold(0.0, f64::max);
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            println!("mh N={n}: {lo}..={hi} entries each, worst {:.3} % from 1/N", worst * 100.0);
            assert!(worst < 0.01, "N={n}: {counts:?}");
        }
    }

    #[test]
    fn mh_weights_1_2_3_take_their_shares() {
        let counts = MaglevTable::new(&views(&[1, 2, 3])).counts(3);
        println!("mh weights 1:2:3: {counts:?} entries");
        for (c, w) in counts.iter().zip([1, 2, 3]) {
            assert!(c.abs_diff(M * w / 6) <= 1, "{counts:?}");
        }
        // Very unequal weights, and the largest.
        let counts = MaglevTable::new(&views(&[u32::MAX, 1, u32::MAX / 2])).counts(3);
        assert_eq!(counts[1], 0);
        assert!(counts[0].abs_diff(2 * counts[2]) <= 2, "{counts:?}");
    }

    #[test]
    fn mh_removing_one_of_ten_moves_little_else() {
        let all = views(&[1; 10]);
        let before = owner_ids(&all);
        let mut worst = 0.0f64;
        let mut sum = 0.0;
        for gone in 0..10 {
            let mut rest = all.clone();
            let removed = rest.remove(gone).id;
            let after = owner_ids(&rest);
            let (mut own, mut others, mut others_moved) = (0, 0, 0);
            for (x, y) in before.iter().zip(&after) {
                if *x == Some(removed) {
                    own += 1;
                    assert!(y.is_some() && *y != Some(removed));
                } else {
                    others += 1;
                    others_moved += usize::from(x != y);
                }
            }
            let moved = percent(others_moved, others);
            println!(
                "mh remove 1 of 10: its {:.2} % of the table all moved; {moved:.2} % of the other entries moved; {:.2} % of the table changed",
                percent(own, M),
                percent(own + others_moved, M)
            );
            // Ideally none of the others move; Maglev trades a few for balance. Bound: a
            // fifth of the ideal 1/N, and the whole change under twice the ideal 1/N.
            assert!(moved < 2.0, "{moved} % of the other entries moved");
            assert!(own + others_moved < 2 * M / 10);
            worst = worst.max(moved);
            sum += moved;
        }
        println!("mh remove 1 of 10: others moved {:.2} % on average, {worst:.2} % at worst", sum / 10.0);
    }

    #[test]
    fn mh_adding_an_eleventh_moves_little_else() {
        let ten = views(&[1; 10]);
        let eleven = views(&[1; 11]);
        let before = owner_ids(&ten);
        let after = owner_ids(&eleven);
        let new = eleven[10].id;
        let taken = after.iter().filter(|&&y| y == Some(new)).count();
        let between_old = before.iter().zip(&after).filter(|(x, y)| x != y && **y != Some(new)).count();
        println!(
            "mh add an 11th to 10: {:.2} % of the table went to it (ideal {:.2} %); {:.2} % moved between old servers",
            percent(taken, M),
            100.0 / 11.0,
            percent(between_old, M)
        );
        assert!(taken.abs_diff(M / 11) < M / 1100, "the new server took {taken}");
        assert!(percent(between_old, M) < 2.0);
        assert!(taken + between_old < 2 * M / 11);
    }

    #[test]
    fn mh_drained_down_and_removed_servers_give_the_same_table() {
        let all = views(&[1, 2, 3, 4, 5]);
        let mut removed = all.clone();
        removed.remove(2);
        let mut drained = all.clone();
        drained[2].weight = 0;
        let mut down = all.clone();
        down[2].up = false;
        let want = owner_ids(&removed);
        assert_eq!(owner_ids(&drained), want);
        assert_eq!(owner_ids(&down), want);
        assert_eq!(MaglevTable::new(&drained).counts(5)[2], 0);
    }

    #[test]
    fn mh_is_independent_of_list_order() {
        let b = views(&[3, 1, 4, 1, 5, 9, 2, 6]);
        let mut r = b.clone();
        r.reverse();
        r.swap(0, 3);
        assert_eq!(owner_ids(&b), owner_ids(&r));
    }

    #[test]
    fn mh_lookup_is_the_entry_of_hash_mod_m() {
        let b = views(&[1, 1, 1]);
        let t = MaglevTable::new(&b);
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let h = rng.u64();
            let slot = (h % M as u64) as usize;
            assert_eq!(t.lookup(h), Some(usize::from(t.entries()[slot])));
            assert_eq!(build(SchedulerKind::Mh, &b).pick(&b, h), t.lookup(h));
        }
        assert_eq!(t.lookup(M as u64 + 5), t.lookup(5));
        assert_eq!(MaglevTable::new(&[]).lookup(5), None);
        assert!(MaglevTable::new(&views(&[0, 0])).entries().iter().all(|&e| e == NO_BACKEND));
    }

    #[test]
    fn mh_follows_a_server_going_down_before_the_rebuild() {
        let mut b = views(&[1; 10]);
        let mut s = build(SchedulerKind::Mh, &b);
        let mut rng = Rng(8);
        let hashes: Vec<u64> = (0..20_000).map(|_| rng.u64()).collect();
        let before: Vec<_> = hashes.iter().map(|&h| s.pick(&b, h).unwrap()).collect();
        b[4].up = false;
        let mut moved_to = [0u32; 10];
        for (&h, &was) in hashes.iter().zip(&before) {
            let now = s.pick(&b, h).unwrap();
            if was == 4 {
                moved_to[now] += 1;
            } else {
                assert_eq!(now, was);
            }
        }
        println!("mh: the clients of a down server went to {moved_to:?} before the rebuild");
        assert_eq!(moved_to[4], 0);
        assert!(moved_to.iter().enumerate().all(|(i, &m)| i == 4 || m > 0), "{moved_to:?}");
    }

    #[test]
    fn mh_more_servers_than_the_table_holds() {
        let b = views(&vec![1; MAX_TABLE_BACKENDS + 10]);
        let t = MaglevTable::new(&b);
        assert!(t.entries().iter().all(|&e| usize::from(e) < MAX_TABLE_BACKENDS));
        // One round of turns fills 65535 entries; the first two servers of the next round take
        // the last two.
        let counts = t.counts(b.len());
        assert!(counts[..MAX_TABLE_BACKENDS].iter().all(|&c| c == 1 || c == 2));
        assert_eq!(counts.iter().filter(|&&c| c == 2).count(), 2);
    }

    #[test]
    fn mh_build_time() {
        for n in [10, 100, 1000] {
            let b = views(&vec![1; n]);
            let t0 = Instant::now();
            let t = MaglevTable::new(&b);
            let dt = t0.elapsed();
            println!("mh build, {n} servers: {:.2} ms", dt.as_secs_f64() * 1e3);
            assert_eq!(t.counts(n).iter().sum::<usize>(), M);
        }
    }

    #[test]
    fn mh_permutations_are_full_and_fixed() {
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xb456bcfc34c2cb2c);
        for id in [0, 1, u64::MAX] {
            let (offset, skip) = permutation(id);
            assert!(offset < M && (1..M).contains(&skip));
        }
        // Pinned: a change here reshuffles every Maglev table of every deployed balancer.
        assert_eq!(permutation(1), (40720, 23746));
    }
}
