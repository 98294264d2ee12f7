//! Least connections (`lc`) and weighted least connections (`wlc`), with the semantics of IPVS
//! `ip_vs_lc.c` and `ip_vs_wlc.c`: the load of a server is its overhead
//! `active * 256 + inactive` (an established connection costs far more than one in TIME_WAIT or
//! SYN_RECV), divided by the weight for `wlc`.

use super::{BackendView, Scheduler, SchedulerKind, Servers};

/// `lc` / `wlc`: the available server with the least overhead (per unit of weight for `wlc`).
#[derive(Clone, Copy, Debug)]
pub(super) struct LeastConn {
    /// `wlc` rather than `lc`.
    weighted: bool,
    /// Where the scan starts: one past the last pick. IPVS always starts at the head of the list,
    /// so ties go to the first server; rotating spreads ties (a burst of picks between two
    /// updates of the counts, a fresh service with every count 0) like round robin.
    start: usize,
}

impl LeastConn {
    pub(super) fn new(weighted: bool) -> Self {
        Self { weighted, start: 0 }
    }
}

/// IPVS's `ip_vs_dest_conn_overhead`, widened so that u32::MAX counts cannot overflow.
fn overhead(b: &BackendView) -> u64 {
    (u64::from(b.active) << 8) + u64::from(b.inactive)
}

impl Scheduler for LeastConn {
    fn pick(&mut self, backends: &dyn Servers, _client_hash: u64) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
        let start = self.start % n;
        let mut best: Option<(usize, u64)> = None;
        for i in (0..n).map(|k| (start + k) % n) {
            let b = &backends.view(i);
            if !b.available() {
                continue;
            }
            let load = overhead(b);
            let better = match best {
                None => true,
                // wlc compares load / weight by cross-multiplying, as IPVS does, so there is no
                // division and no rounding; overhead < 2^41 and weight < 2^32, so u128 holds it.
                Some((j, least)) if self.weighted => {
                    u128::from(load) * u128::from(backends.view(j).weight)
                        < u128::from(least) * u128::from(b.weight)
                }
                Some((_, least)) => load < least,
            };
            if better {
                best = Some((i, load));
            }
        }
        let (i, _) = best?;
        self.start = (i + 1) % n;
        Some(i)
    }

    fn kind(&self) -> SchedulerKind {
        if self.weighted { SchedulerKind::Wlc } else { SchedulerKind::Lc }
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::views;
    use super::super::{BackendView, SchedulerKind, build};

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
}
