//! Round robin (`rr`) and interleaved weighted round robin (`wrr`), with the semantics of IPVS
//! `ip_vs_rr.c` and `ip_vs_wrr.c`.

use super::{BackendView, Scheduler, SchedulerKind, Servers};
use std::sync::Arc;

/// The longest `wrr` cycle kept as a table (picks per cycle: the sum of the weights over their
/// gcd). 64 Ki positions of 2 bytes, shared by the workers; a longer cycle keeps the pass scan.
pub(super) const WRR_CYCLE_MAX: usize = 1 << 16;

/// `rr`: the next available server after the last one picked, in list order.
///
/// The servers available at the build are written down in list order (shared by the workers),
/// so a pick reads one server: O(1) even with many servers drained or down, where a scan would
/// step over each of them. Until the rebuild that a change of health or weight brings is swapped
/// in, a listed server that is no longer available is stepped over by the scan from the last
/// pick, and one that came up waits for the rebuild; a list of another length is scanned.
#[derive(Clone, Debug, Default)]
pub(super) struct RoundRobin {
    /// The servers available at the build, in list order, and the list's length then.
    available: Option<Arc<(Box<[u32]>, usize)>>,
    /// The next position in `available`.
    at: usize,
    /// Where the next scan starts (one past the last pick).
    next: usize,
}

impl RoundRobin {
    pub(super) fn new(backends: &[BackendView]) -> Self {
        let up: Box<[u32]> =
            (0..backends.len()).filter(|&i| backends[i].available()).map(|i| i as u32).collect();
        let available = (!up.is_empty()).then(|| Arc::new((up, backends.len())));
        RoundRobin { available, at: 0, next: 0 }
    }
}

impl Scheduler for RoundRobin {
    fn pick(&mut self, backends: &dyn Servers, _client_hash: u64) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let built = self.available.as_deref().filter(|(_, len)| *len == n).map(|(up, _)| up);
        if let Some(up) = built {
            let at = self.at % up.len();
            let i = up[at] as usize;
            if backends.view(i).available() {
                self.at = at + 1;
                self.next = (i + 1) % n;
                return Some(i);
            }
        }
        let start = self.next % n;
        let i = (0..n).map(|k| (start + k) % n).find(|&i| backends.view(i).available())?;
        self.next = (i + 1) % n;
        if let Some(up) = built {
            // Back on the list where the scan left off: the first server after this one.
            self.at = up.partition_point(|&u| u as usize <= i);
        }
        Some(i)
    }

    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

/// `wrr`: IPVS's interleaved weighted round robin (see [`PassWrr`] for the order it makes).
///
/// IPVS walks the list pass by pass, each pass reading every server, which costs O(n) a pick
/// when one heavy server is picked alone for many passes. The order repeats every cycle (the
/// sum of the weights over their gcd picks), so [`build`](super::build) writes one cycle down
/// (in O(cycle + n log n), off the packet path) and a pick reads the next position: O(1). The
/// entry is checked against the view first: a server whose weight or health changed since the
/// build (the rebuild not swapped in yet), a list of another length, or a cycle longer than
/// [`WRR_CYCLE_MAX`] fall back to the pass scan, which follows such a view at once.
#[derive(Clone, Debug, Default)]
pub(super) struct WeightedRoundRobin {
    /// One cycle as built, shared by the workers' copies.
    cycle: Option<Arc<Cycle>>,
    /// The next position in the cycle.
    at: usize,
    /// The pass scan, for views that differ from the build.
    passes: PassWrr,
}

/// One `wrr` cycle: the servers in pick order, and the weights they were built with.
#[derive(Debug)]
pub(super) struct Cycle {
    order: Box<[u16]>,
    /// Per server, its weight at the build, 0 when it was not available.
    weights: Box<[u32]>,
}

impl WeightedRoundRobin {
    pub(super) fn new(backends: &[BackendView]) -> Self {
        WeightedRoundRobin { cycle: Cycle::build(backends).map(Arc::new), at: 0, passes: PassWrr::default() }
    }
}

impl Cycle {
    /// The cycle [`PassWrr`] walks from a fresh start over `backends`, level by level: the
    /// current weight goes from the largest weight down to the gcd, and each level takes, in list
    /// order, every available server whose weight is at least the level. None when nothing is
    /// available or the cycle would be longer than [`WRR_CYCLE_MAX`].
    fn build(backends: &[BackendView]) -> Option<Cycle> {
        if backends.len() > usize::from(u16::MAX) {
            return None;
        }
        let weights: Box<[u32]> = backends.iter().map(|b| if b.available() { b.weight } else { 0 }).collect();
        let (top, step) = weights
            .iter()
            .filter(|&&w| w > 0)
            .fold((0u64, 0u64), |(m, g), &w| (m.max(u64::from(w)), gcd(g, u64::from(w))));
        if top == 0 {
            return None;
        }
        let length: u64 = weights.iter().map(|&w| u64::from(w) / step).sum();
        if length > WRR_CYCLE_MAX as u64 {
            return None;
        }
        // Servers join the level set as the level falls to their weight: heaviest first.
        let mut by_weight: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
        by_weight.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
        let mut joining = by_weight.into_iter().peekable();
        let mut level_set = std::collections::BTreeSet::new();
        let mut order = Vec::with_capacity(length as usize);
        let mut level = top;
        while level >= step {
            while let Some(i) = joining.next_if(|&i| u64::from(weights[i]) >= level) {
                level_set.insert(i as u16);
            }
            order.extend(level_set.iter().copied());
            level -= step;
        }
        Some(Cycle { order: order.into_boxed_slice(), weights })
    }
}

impl Scheduler for WeightedRoundRobin {
    fn pick(&mut self, backends: &dyn Servers, _client_hash: u64) -> Option<usize> {
        if let Some(c) = self.cycle.as_deref().filter(|c| c.weights.len() == backends.len()) {
            let i = usize::from(c.order[self.at]);
            let v = backends.view(i);
            if v.available() && v.weight == c.weights[i] {
                self.at = if self.at + 1 == c.order.len() { 0 } else { self.at + 1 };
                return Some(i);
            }
        }
        self.passes.pick(backends)
    }

    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

/// IPVS's interleaved weighted round robin, pass by pass: over the list with a current weight
/// `cw` that starts at the largest weight and drops by the gcd of the weights at each new pass
/// (back to the largest after reaching 0); a pass picks, in list order, every available server
/// whose weight is at least `cw`. With weights 3:1 a cycle is A A A B; over one cycle (sum of
/// weights / gcd picks) every server is picked exactly weight / gcd times.
///
/// The largest weight and the gcd are taken from the view at the start of each pass (IPVS keeps
/// them up to date on every change instead), so a view that drifted from the build (a weight
/// changed, the heaviest server went down, the rebuild not swapped in yet) is followed at once.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PassWrr {
    /// The next position to examine; examining position 0 starts a pass.
    pos: usize,
    /// The current weight; 0 before the first pass.
    cw: u64,
}

impl PassWrr {
    /// Starts a pass: lowers the current weight. Returns false when no server is available.
    fn start_pass(&mut self, backends: &dyn Servers) -> bool {
        let views = (0..backends.len()).map(|i| backends.view(i));
        let weights = views.filter(BackendView::available).map(|b| u64::from(b.weight));
        let (top, step) = weights.fold((0, 0), |(m, g), w| (m.max(w), gcd(g, w)));
        if top == 0 {
            return false;
        }
        self.cw = self.cw.saturating_sub(step);
        // Above the top: the weights were lowered since the last pass (IPVS clamps the same way
        // when a weight changes).
        if self.cw == 0 || self.cw > top {
            self.cw = top;
        }
        true
    }

    /// The next server in the pass order, reading the view as it is now.
    pub(super) fn pick(&mut self, backends: &dyn Servers) -> Option<usize> {
        let n = backends.len();
        if self.pos >= n {
            self.pos = 0;
        }
        // At most n - 1 positions before a pass starts, and a started pass has a server with
        // weight >= cw (cw <= top), so 2n examinations always suffice; the bound only guards
        // against a logic slip turning into a hang.
        for _ in 0..n.saturating_mul(2) {
            let i = self.pos;
            self.pos = if i + 1 == n { 0 } else { i + 1 };
            if i == 0 && !self.start_pass(backends) {
                return None;
            }
            let b = &backends.view(i);
            if b.available() && u64::from(b.weight) >= self.cw {
                return Some(i);
            }
        }
        None
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Counted, Rng, views};
    use super::super::{BackendView, Scheduler, SchedulerKind, build};
    use super::{PassWrr, WRR_CYCLE_MAX, WeightedRoundRobin, gcd};

    fn sequence(kind: SchedulerKind, backends: &[super::BackendView], picks: usize) -> Vec<usize> {
        let mut s = build(kind, backends);
        (0..picks).map(|_| s.pick(&backends, 0).expect("a server is available")).collect()
    }

    #[test]
    fn rr_cycles_in_list_order() {
        assert_eq!(sequence(SchedulerKind::Rr, &views(&[1, 1, 1]), 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn rr_ignores_weights_but_skips_unavailable() {
        let mut b = views(&[5, 0, 1, 1]);
        b[2].up = false;
        assert_eq!(sequence(SchedulerKind::Rr, &b, 5), [0, 3, 0, 3, 0]);
    }

    #[test]
    fn rr_continues_after_the_last_pick_when_servers_change() {
        let mut b = views(&[1, 1, 1, 1]);
        let mut s = build(SchedulerKind::Rr, &b);
        assert_eq!(s.pick(&b, 0), Some(0));
        assert_eq!(s.pick(&b, 0), Some(1));
        b[2].up = false;
        assert_eq!(s.pick(&b, 0), Some(3));
        b[2].up = true;
        assert_eq!(s.pick(&b, 0), Some(0));
        // A shorter list than the scheduler was built for does not panic.
        assert_eq!(s.pick(&&b[..1], 0), Some(0));
    }

    #[test]
    fn wrr_3_1_gives_a_a_a_b() {
        assert_eq!(sequence(SchedulerKind::Wrr, &views(&[3, 1]), 8), [0, 0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn wrr_interleaves_like_ipvs() {
        // cw = 4: A; cw = 3: A B; cw = 2: A B C; cw = 1: A B C.
        assert_eq!(sequence(SchedulerKind::Wrr, &views(&[4, 3, 2]), 9), [0, 0, 1, 0, 1, 2, 0, 1, 2]);
        // Weights are stepped by their gcd: 4:2 is the same cycle as 2:1.
        assert_eq!(sequence(SchedulerKind::Wrr, &views(&[4, 2]), 6), [0, 0, 1, 0, 0, 1]);
        assert_eq!(sequence(SchedulerKind::Wrr, &views(&[1, 1, 1]), 4), [0, 1, 2, 0]);
    }

    #[test]
    fn wrr_1_2_3_is_exact_over_whole_cycles() {
        let b = views(&[1, 2, 3]);
        let mut s = build(SchedulerKind::Wrr, &b);
        let mut counts = [0u64; 3];
        // 100_002 = 16_667 cycles of 6 picks.
        for n in 1..=100_002u64 {
            counts[s.pick(&b, 0).unwrap()] += 1;
            if n % 6 == 0 {
                assert_eq!(counts, [n / 6, 2 * n / 6, 3 * n / 6], "after {n} picks");
            }
        }
        assert_eq!(counts, [16_667, 33_334, 50_001]);
    }

    #[test]
    fn wrr_never_picks_weight_0_or_down() {
        let mut b = views(&[2, 0, 3, 1]);
        b[3].up = false;
        let seq = sequence(SchedulerKind::Wrr, &b, 50);
        assert!(seq.iter().all(|&i| i == 0 || i == 2), "{seq:?}");
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 20);
    }

    #[test]
    fn wrr_survives_a_view_that_drifted_from_the_build() {
        let built = views(&[u32::MAX, 1]);
        let mut s = build(SchedulerKind::Wrr, &built);
        assert_eq!(s.pick(&built, 0), Some(0));
        // The heaviest server went down and the rebuild has not been swapped in: the light
        // one is picked at once, not after u32::MAX empty passes.
        let mut drifted = built.clone();
        drifted[0].up = false;
        assert_eq!(s.pick(&drifted, 0), Some(1));
        assert_eq!(s.pick(&drifted, 0), Some(1));
        // Weights lowered since the build, no longer multiples of the old gcd.
        let mut s = build(SchedulerKind::Wrr, &views(&[6, 4]));
        let odd = views(&[3, 1]);
        let seq: Vec<_> = (0..8).map(|_| s.pick(&odd, 0).unwrap()).collect();
        assert!(seq.contains(&0) && seq.contains(&1), "{seq:?}");
        // A server that came up after the build is picked once it is the only one.
        let mut s = build(SchedulerKind::Wrr, &[]);
        assert_eq!(s.pick(&views(&[7]), 0), Some(0));
    }

    /// IPVS's rr: a scan from one past the last pick.
    fn scan_rr(next: &mut usize, b: &[BackendView]) -> Option<usize> {
        let n = b.len();
        let i = (0..n).map(|k| (*next + k) % n).find(|&i| b[i].available())?;
        *next = (i + 1) % n;
        Some(i)
    }

    #[test]
    fn rr_reads_one_server_however_many_are_down_and_keeps_the_scan_order() {
        let mut rng = Rng(5);
        for case in 0..300 {
            let n = 1 + rng.below(300) as usize;
            let mut list = views(&vec![1; n]);
            for v in &mut list {
                v.up = rng.below(4) == 0;
            }
            let servers = Counted::new(list);
            let mut s = build(SchedulerKind::Rr, &servers.list);
            let mut next = 0;
            for _ in 0..2 * n {
                servers.reads.set(0);
                assert_eq!(s.pick(&servers, 0), scan_rr(&mut next, &servers.list), "case {case}");
                assert!(servers.reads.get() <= 1 || !servers.list.iter().any(BackendView::available));
            }
            // Health moves before the rebuild: every pick is a server that is up now (one that
            // came up waits for the rebuild), and the rebuilt scheduler keeps the scan's order.
            let mut drifted = servers.list.clone();
            for v in &mut drifted {
                if rng.below(5) == 0 {
                    v.up = !v.up;
                }
            }
            for _ in 0..2 * n {
                match s.pick(&drifted, 0) {
                    Some(i) => assert!(drifted[i].available(), "case {case}, drifted"),
                    None => assert!(!drifted.iter().any(BackendView::available), "case {case}"),
                }
            }
            let mut s = build(SchedulerKind::Rr, &drifted);
            let mut next = 0;
            for _ in 0..2 * n {
                assert_eq!(s.pick(&drifted, 0), scan_rr(&mut next, &drifted), "case {case}, rebuilt");
            }
        }
    }

    #[test]
    fn the_written_cycle_is_the_order_the_pass_scan_makes() {
        let mut rng = Rng(3);
        for case in 0..500 {
            let n = 1 + rng.below(20) as usize;
            let mut b =
                views(&(0..n).map(|_| [0, 1, 2, 3, 6, 12, 100][rng.below(7) as usize]).collect::<Vec<_>>());
            for v in &mut b {
                v.up = rng.below(6) != 0;
            }
            let mut table = WeightedRoundRobin::new(&b);
            let mut scan = PassWrr::default();
            let cycle: u64 = {
                let g = b.iter().filter(|v| v.available()).fold(0, |g, v| gcd(g, u64::from(v.weight)));
                b.iter().filter(|v| v.available()).map(|v| u64::from(v.weight) / g.max(1)).sum()
            };
            for k in 0..3 * cycle.max(1) {
                assert_eq!(table.pick(&b, 0), scan.pick(&b), "case {case}, pick {k} of {b:?}");
            }
        }
    }

    #[test]
    fn a_pick_reads_one_server_however_skewed_the_weights() {
        // One heavy server among 999 light ones: the pass scan reads the whole list for most
        // picks (the heavy one alone qualifies in 99 of 100 passes).
        let mut weights = vec![1u32; 1000];
        weights[0] = 100;
        let servers = Counted::new(views(&weights));
        let mut s = build(SchedulerKind::Wrr, &servers.list);
        let mut scan = PassWrr::default();
        for _ in 0..5000 {
            servers.reads.set(0);
            let i = s.pick(&servers, 0);
            assert_eq!(servers.reads.get(), 1);
            assert_eq!(i, scan.pick(&servers.list));
        }
        // A cycle too long to write down keeps the pass scan, and the same order.
        let b = views(&[WRR_CYCLE_MAX as u32, 1]);
        let mut s = build(SchedulerKind::Wrr, &b);
        let mut scan = PassWrr::default();
        for _ in 0..10 {
            assert_eq!(s.pick(&b, 0), scan.pick(&b));
        }
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(0, 0), 0);
        assert_eq!(gcd(0, 6), 6);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(u64::from(u32::MAX), 1), 1);
    }
}
