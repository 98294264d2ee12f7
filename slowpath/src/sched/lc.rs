//! Least connections (`lc`) and weighted least connections (`wlc`), with the semantics of IPVS
//! `ip_vs_lc.c` and `ip_vs_wlc.c`: the load of a server is its overhead
//! `active * 256 + inactive` (an established connection costs far more than one in TIME_WAIT or
//! SYN_RECV), divided by the weight for `wlc`.

use super::{BackendView, Scheduler, SchedulerKind, Servers};

/// Leaves the sweep re-reads on every pick (see [`LeastConn`]).
const SWEEP: usize = 4;
/// "No leaf" in the tree (a padding slot past the last server).
const NONE: u32 = u32::MAX;

/// `lc` / `wlc`: the available server with the least overhead (per unit of weight for `wlc`).
///
/// IPVS scans every server on every pick. This keeps the servers in a tournament tree instead
/// (each inner node holds the better of its two children, the root the best server), so a pick
/// costs O(log n), not O(n). The counts belong to the connection table and change under the
/// scheduler (its own worker's connections and the other workers'), so the tree holds each
/// server's load as last read, and a pick keeps it true where it matters:
/// - the winner is re-read before it is taken: if its load rose (the usual change: it was just
///   given connections), its leaf is corrected and the tree asked again;
/// - [`SWEEP`] servers in turn are re-read on every pick, so a load that fell elsewhere (its
///   connections closed) is seen within ⌈n / 4⌉ picks.
///
/// Ties go to the server picked least recently, which spreads a burst of picks between two
/// updates of the counts (or a fresh service, every count 0) round robin, as a rotating scan
/// did. A list whose length changed since the build (a drifted view) is read anew whole.
#[derive(Clone, Debug)]
pub(super) struct LeastConn {
    /// `wlc` rather than `lc`.
    weighted: bool,
    /// Each server's load and weight as last read, and when it was last picked.
    leaves: Vec<Leaf>,
    /// The tournament: `tree[1]` is the best leaf; the leaves' slots start at `tree.len() / 2`.
    tree: Vec<u32>,
    /// Picks so far: the stamp of the next pick.
    stamp: u64,
    /// The next leaf the sweep re-reads.
    sweep: usize,
}

/// A server as the tree last saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Leaf {
    /// IPVS's overhead, `active * 256 + inactive`.
    load: u64,
    /// Its weight, 0 when it cannot take connections (drained or down).
    weight: u32,
    /// The stamp of its last pick (0: never).
    picked: u64,
}

impl Leaf {
    fn read(b: &BackendView, picked: u64) -> Leaf {
        Leaf { load: overhead(b), weight: if b.available() { b.weight } else { 0 }, picked }
    }
}

impl LeastConn {
    pub(super) fn new(weighted: bool, backends: &dyn Servers) -> Self {
        let mut s = Self { weighted, leaves: Vec::new(), tree: Vec::new(), stamp: 1, sweep: 0 };
        s.rebuild(backends);
        s
    }

    /// Reads every server and builds the tree bottom up: O(n).
    fn rebuild(&mut self, backends: &dyn Servers) {
        let n = backends.len();
        let pick_stamps: Vec<u64> = self.leaves.iter().map(|l| l.picked).collect();
        self.leaves =
            (0..n).map(|i| Leaf::read(&backends.view(i), pick_stamps.get(i).copied().unwrap_or(0))).collect();
        let slots = n.next_power_of_two().max(1);
        self.tree = vec![NONE; 2 * slots];
        for i in 0..n {
            self.tree[slots + i] = i as u32;
        }
        for node in (1..slots).rev() {
            self.tree[node] = self.better(self.tree[2 * node], self.tree[2 * node + 1]);
        }
        self.sweep %= n.max(1);
    }

    /// Sets leaf `i` and replays its matches up to the root: O(log n).
    fn set(&mut self, i: usize, leaf: Leaf) {
        self.leaves[i] = leaf;
        let slot = self.tree.len() / 2 + i;
        let mut node = slot / 2;
        while node >= 1 {
            self.tree[node] = self.better(self.tree[2 * node], self.tree[2 * node + 1]);
            node /= 2;
        }
    }

    /// The better of two leaves: an available one over one that is not, then the lower load
    /// (per weight for `wlc`), then the one picked longer ago, then the earlier in the list.
    fn better(&self, a: u32, b: u32) -> u32 {
        let (Some(x), Some(y)) = (self.leaves.get(a as usize), self.leaves.get(b as usize)) else {
            return if a == NONE { b } else { a };
        };
        let order = match (x.weight > 0, y.weight > 0) {
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            // wlc compares load / weight by cross-multiplying, as IPVS does, so there is no
            // division and no rounding; overhead < 2^41 and weight < 2^32, so u128 holds it.
            _ if self.weighted => {
                (u128::from(x.load) * u128::from(y.weight)).cmp(&(u128::from(y.load) * u128::from(x.weight)))
            }
            _ => x.load.cmp(&y.load),
        };
        match order.then(x.picked.cmp(&y.picked)).then(a.cmp(&b)) {
            std::cmp::Ordering::Greater => b,
            _ => a,
        }
    }
}

/// IPVS's `ip_vs_dest_conn_overhead`, widened so that u32::MAX counts cannot overflow.
fn overhead(b: &BackendView) -> u64 {
    (u64::from(b.active) << 8) + u64::from(b.inactive)
}

impl Scheduler for LeastConn {
    fn pick(&mut self, backends: &dyn Servers, _client_hash: u64) -> Option<usize> {
        let n = backends.len();
        if n != self.leaves.len() {
            self.rebuild(backends);
        }
        if n == 0 {
            return None;
        }
        for _ in 0..SWEEP.min(n) {
            let i = self.sweep;
            self.sweep = if i + 1 == n { 0 } else { i + 1 };
            let fresh = Leaf::read(&backends.view(i), self.leaves[i].picked);
            if fresh != self.leaves[i] {
                self.set(i, fresh);
            }
        }
        let mut reread_all = false;
        // Each round either takes the winner or corrects its leaf; the bound only guards against
        // counts that change faster than they can be read.
        for round in 0..2 * n + 8 {
            let i = self.tree[1] as usize;
            let &leaf = self.leaves.get(i)?;
            if leaf.weight == 0 {
                // Nothing the tree knows of is available: read them all once before saying so,
                // since a server may have come back since its leaf was read.
                if reread_all {
                    return None;
                }
                self.rebuild(backends);
                reread_all = true;
                continue;
            }
            let fresh = Leaf::read(&backends.view(i), leaf.picked);
            if fresh == leaf || (round >= 3 && fresh.weight > 0) {
                let stamp = self.stamp;
                self.stamp += 1;
                self.set(i, Leaf { picked: stamp, ..fresh });
                return Some(i);
            }
            self.set(i, fresh);
        }
        None
    }

    fn kind(&self) -> SchedulerKind {
        if self.weighted { SchedulerKind::Wlc } else { SchedulerKind::Lc }
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Counted, Rng, views};
    use super::super::{BackendView, SchedulerKind, build};
    use super::SWEEP;

    fn with_counts(weights: &[u32], counts: &[(u32, u32)]) -> Vec<BackendView> {
        let mut b = views(weights);
        for (v, &(active, inactive)) in b.iter_mut().zip(counts) {
            v.active = active;
            v.inactive = inactive;
        }
        b
    }

    /// Picks `picks` times, each pick adding an established connection to the server picked
    /// (as the connection table would), and returns the connections per server.
    fn accumulate(kind: SchedulerKind, weights: &[u32], picks: usize) -> Vec<u32> {
        let mut b = views(weights);
        let mut s = build(kind, &b);
        for _ in 0..picks {
            let i = s.pick(&b, 0).expect("a server is available");
            b[i].active += 1;
        }
        b.iter().map(|v| v.active).collect()
    }

    #[test]
    fn lc_picks_the_least_overhead() {
        let b = with_counts(&[1, 1, 1], &[(3, 0), (1, 7), (2, 0)]);
        assert_eq!(build(SchedulerKind::Lc, &b).pick(&b, 0), Some(1));
        // One established connection (256) outweighs 255 inactive ones.
        let b = with_counts(&[1, 1], &[(1, 0), (0, 255)]);
        assert_eq!(build(SchedulerKind::Lc, &b).pick(&b, 0), Some(1));
        let b = with_counts(&[1, 1], &[(1, 0), (0, 257)]);
        assert_eq!(build(SchedulerKind::Lc, &b).pick(&b, 0), Some(0));
    }

    #[test]
    fn lc_ignores_weights_and_skips_unavailable() {
        let mut b = with_counts(&[100, 1, 0], &[(5, 0), (4, 0), (0, 0)]);
        assert_eq!(build(SchedulerKind::Lc, &b).pick(&b, 0), Some(1));
        b[1].up = false;
        assert_eq!(build(SchedulerKind::Lc, &b).pick(&b, 0), Some(0));
    }

    #[test]
    fn lc_spreads_ties_by_rotating() {
        // Counts never updated: with every server tied the picks go round.
        let b = views(&[1, 1, 1]);
        let mut s = build(SchedulerKind::Lc, &b);
        let seq: Vec<_> = (0..6).map(|_| s.pick(&b, 0).unwrap()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        let mut s = build(SchedulerKind::Wlc, &b);
        let seq: Vec<_> = (0..6).map(|_| s.pick(&b, 0).unwrap()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn lc_equalises_accumulating_connections() {
        assert_eq!(accumulate(SchedulerKind::Lc, &[1, 5, 9], 3000), [1000, 1000, 1000]);
    }

    #[test]
    fn wlc_picks_the_least_overhead_per_weight() {
        // 512/2 = 256 < 300/1.
        let b = with_counts(&[1, 2], &[(0, 300), (2, 0)]);
        assert_eq!(build(SchedulerKind::Wlc, &b).pick(&b, 0), Some(1));
        // 768/2 = 384 > 300/1.
        let b = with_counts(&[1, 2], &[(0, 300), (3, 0)]);
        assert_eq!(build(SchedulerKind::Wlc, &b).pick(&b, 0), Some(0));
    }

    #[test]
    fn wlc_gives_connections_in_proportion_to_weight() {
        let got = accumulate(SchedulerKind::Wlc, &[1, 2, 3], 6000);
        assert_eq!(got, [1000, 2000, 3000]);
        let got = accumulate(SchedulerKind::Wlc, &[2, 1], 3001);
        assert!(got[0].abs_diff(2 * got[1]) <= 2, "{got:?}");
    }

    #[test]
    fn wlc_handles_the_largest_counts_and_weights() {
        let b = with_counts(&[u32::MAX, 1, u32::MAX], &[(u32::MAX, u32::MAX), (u32::MAX, 0), (u32::MAX, 1)]);
        // Loads per weight: 257, about 2^40, and 256 + 1/u32::MAX.
        assert_eq!(build(SchedulerKind::Wlc, &b).pick(&b, 0), Some(2));
        assert_eq!(build(SchedulerKind::Lc, &b).pick(&b, 0), Some(1));
    }

    #[test]
    fn a_pick_reads_a_handful_of_servers_not_all_of_them() {
        for kind in [SchedulerKind::Lc, SchedulerKind::Wlc] {
            let weights: Vec<u32> = (0..4096).map(|i| 1 + i % 7).collect();
            let mut servers = Counted::new(views(&weights));
            let mut s = build(kind, &servers.list);
            let mut most = 0;
            for _ in 0..20_000 {
                servers.reads.set(0);
                let i = s.pick(&servers, 0).unwrap();
                most = most.max(servers.reads.get());
                servers.list[i].active += 1;
                // Now and then a connection closes somewhere else.
                let j = (i * 7 + 3) % servers.list.len();
                servers.list[j].active = servers.list[j].active.saturating_sub(1);
            }
            // The sweep's reads, the winner's, and one more for each time the winner's load had
            // risen since it was read.
            assert!(most <= SWEEP + 4, "{kind}: a pick read {most} of 4096 servers");
        }
    }

    #[test]
    fn the_winners_own_new_connections_count_at_once() {
        // One idle server among 63 with ten connections each: exact lc gives it ten, then
        // spreads; a winner taken at its stale load would keep it until the sweep came round.
        for kind in [SchedulerKind::Lc, SchedulerKind::Wlc] {
            let mut b = views(&[1; 64]);
            for v in &mut b[1..] {
                v.active = 10;
            }
            let mut s = build(kind, &b);
            for _ in 0..30 {
                let i = s.pick(&b, 0).unwrap();
                b[i].active += 1;
            }
            assert_eq!(b[0].active, 10, "{kind}");
            assert!(b.iter().all(|v| v.active <= 11), "{kind}");
        }
    }

    /// The exact choice, as IPVS's scan makes it: the least load (per weight), ties aside.
    fn least(kind: SchedulerKind, b: &[BackendView], i: usize) -> bool {
        let key = |v: &BackendView| (u128::from(v.active) << 8) + u128::from(v.inactive);
        b.iter().filter(|v| v.available()).all(|v| match kind {
            SchedulerKind::Wlc => key(&b[i]) * u128::from(v.weight) <= key(v) * u128::from(b[i].weight),
            _ => key(&b[i]) <= key(v),
        })
    }

    #[test]
    fn loads_that_change_behind_its_back_are_caught_up_within_a_sweep() {
        let mut rng = Rng(7);
        for case in 0..300 {
            let n = 1 + rng.below(40) as usize;
            let mut b: Vec<BackendView> = views(&(0..n).map(|_| rng.below(5) as u32).collect::<Vec<_>>());
            for v in &mut b {
                v.active = rng.below(50) as u32;
                v.inactive = rng.below(300) as u32;
            }
            for kind in [SchedulerKind::Lc, SchedulerKind::Wlc] {
                let mut s = build(kind, &b);
                let mut now = b.clone();
                for _ in 0..30 {
                    // Other workers open and close connections, up and down, and health moves.
                    for v in &mut now {
                        v.active = v.active.saturating_add_signed(rng.below(21) as i32 - 10);
                        v.inactive = v.inactive.saturating_add_signed(rng.below(41) as i32 - 20);
                        if rng.below(10) == 0 {
                            v.up = !v.up;
                        }
                    }
                    // Every pick takes an available server; once a sweep has passed with the
                    // counts still, it takes the least loaded, as a full scan would.
                    for k in 0..=n.div_ceil(SWEEP) {
                        match s.pick(&now, 0) {
                            Some(i) => {
                                assert!(now[i].available(), "case {case} {kind}: picked {i} of {now:?}");
                                if k == n.div_ceil(SWEEP) {
                                    assert!(
                                        least(kind, &now, i),
                                        "case {case} {kind}: {i} is not least in {now:?}"
                                    );
                                }
                            }
                            None => assert!(!now.iter().any(BackendView::available), "case {case} {kind}"),
                        }
                    }
                }
            }
        }
    }
}
