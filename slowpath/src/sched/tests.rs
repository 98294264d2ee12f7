//! What every scheduler kind must do alike: never pick a drained or down server, `None` exactly
//! when nothing is available, no panic on any input (empty lists, u32::MAX weights and counts, a
//! view that drifted from the build); the names of the kinds; the fixed mix. Also the helpers
//! of the per-scheduler tests.

use super::{BackendView, SchedulerKind, Servers, build, mix64};
use std::cell::Cell;

/// Servers of these weights, up, with no connections, and ids that look like hashes.
pub(super) fn views(weights: &[u32]) -> Vec<BackendView> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| BackendView { weight, up: true, active: 0, inactive: 0, id: mix64(i as u64 + 1) })
        .collect()
}

/// Servers that count how many views a pick reads (a pick that scans reads them all).
pub(super) struct Counted {
    pub list: Vec<BackendView>,
    pub reads: Cell<usize>,
}

impl Counted {
    pub(super) fn new(list: Vec<BackendView>) -> Self {
        Counted { list, reads: Cell::new(0) }
    }
}

impl Servers for Counted {
    fn len(&self) -> usize {
        self.list.len()
    }
    fn view(&self, i: usize) -> BackendView {
        self.reads.set(self.reads.get() + 1);
        self.list[i]
    }
}

/// A deterministic splitmix64 stream.
pub(super) struct Rng(pub u64);

impl Rng {
    pub(super) fn u64(&mut self) -> u64 {
        let x = mix64(self.0);
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        x
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }
}

/// Picks `picks` times with random client hashes, adding each connection to the counts of the
/// server picked (so that lc/wlc move on), and returns how often each server was picked.
fn spread(kind: SchedulerKind, backends: &mut [BackendView], picks: usize, rng: &mut Rng) -> Vec<usize> {
    let mut s = build(kind, backends);
    let mut got = vec![0; backends.len()];
    for _ in 0..picks {
        let i = s.pick(&&*backends, rng.u64()).expect("a server is available");
        backends[i].active += 1;
        got[i] += 1;
    }
    got
}

#[test]
fn kind_names_round_trip() {
    let names: Vec<_> = SchedulerKind::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["rr", "wrr", "lc", "wlc", "sh", "mh"]);
    for k in SchedulerKind::ALL {
        assert_eq!(k.as_str().parse::<SchedulerKind>(), Ok(k));
        assert_eq!(format!("{k}"), k.as_str());
    }
}

#[test]
fn kind_rejects_other_names_listing_the_known_ones() {
    for bad in ["", "RR", " rr", "wrr ", "maglev", "lblc", "r"] {
        let err = bad.parse::<SchedulerKind>().unwrap_err();
        assert_eq!(err.input(), bad);
        assert_eq!(
            err.to_string(),
            format!("unknown scheduler {bad:?}: expected one of rr, wrr, lc, wlc, sh, mh")
        );
    }
}

#[test]
fn every_kind_builds_its_kind_and_clones() {
    fn is_send<T: Send>(_: &T) {}
    let b = views(&[1, 2]);
    for k in SchedulerKind::ALL {
        let s = build(k, &b);
        is_send(&s);
        assert_eq!(s.kind(), k);
        assert_eq!(s.clone_box().kind(), k);
        assert_eq!(s.clone().kind(), k);
        assert!(!format!("{s:?}").is_empty());
    }
}

#[test]
fn empty_list_gives_none_for_every_kind() {
    for k in SchedulerKind::ALL {
        assert_eq!(build(k, &[]).pick(&Vec::new(), 42), None, "{k}");
        // Built for servers, asked with none (a drifted view).
        assert_eq!(build(k, &views(&[1, 2])).pick(&Vec::new(), 42), None, "{k}");
    }
}

#[test]
fn nothing_available_gives_none_for_every_kind() {
    let drained = views(&[0, 0, 0]);
    let mut down = views(&[1, 2, 3]);
    for b in &mut down {
        b.up = false;
    }
    let mut mixed = views(&[0, 5, 0]);
    mixed[1].up = false;
    for k in SchedulerKind::ALL {
        for b in [&drained, &down, &mixed] {
            let mut s = build(k, b);
            for h in [0, 1, u64::MAX] {
                assert_eq!(s.pick(b, h), None, "{k} {b:?}");
            }
        }
        // Built when all were up, asked after all went down.
        assert_eq!(build(k, &views(&[1, 2, 3])).pick(&down, 7), None, "{k}");
    }
}

#[test]
fn drained_servers_are_never_picked_by_any_kind() {
    let mut rng = Rng(10);
    for k in SchedulerKind::ALL {
        let mut b = views(&[3, 0, 1, 2, 0, 1]);
        let got = spread(k, &mut b, 3000, &mut rng);
        assert_eq!((got[1], got[4]), (0, 0), "{k}: {got:?}");
        assert!([0, 2, 3, 5].iter().all(|&i| got[i] > 0), "{k}: {got:?}");
        // Drained after the build, before the rebuild.
        let mut b = views(&[3, 1, 1, 2, 1, 1]);
        let mut s = build(k, &b);
        b[1].weight = 0;
        b[4].weight = 0;
        for _ in 0..3000 {
            let i = s.pick(&b, rng.u64()).unwrap();
            assert!(i != 1 && i != 4, "{k} picked drained {i}");
        }
    }
}

#[test]
fn down_servers_are_never_picked_by_any_kind() {
    let mut rng = Rng(11);
    for k in SchedulerKind::ALL {
        let mut b = views(&[3, 2, 1, 2, 5, 1]);
        b[0].up = false;
        b[4].up = false;
        let got = spread(k, &mut b, 3000, &mut rng);
        assert_eq!((got[0], got[4]), (0, 0), "{k}: {got:?}");
        assert!([1, 2, 3, 5].iter().all(|&i| got[i] > 0), "{k}: {got:?}");
        // Down after the build, before the rebuild.
        let mut b = views(&[3, 2, 1, 2, 5, 1]);
        let mut s = build(k, &b);
        b[0].up = false;
        b[4].up = false;
        for _ in 0..3000 {
            let i = s.pick(&b, rng.u64()).unwrap();
            assert!(i != 0 && i != 4, "{k} picked down {i}");
        }
    }
}

#[test]
fn extreme_values_do_not_panic() {
    let max = BackendView { weight: u32::MAX, up: true, active: u32::MAX, inactive: u32::MAX, id: u64::MAX };
    let lists = [
        vec![max; 3],
        vec![
            max,
            BackendView { weight: 1, id: 0, ..max },
            BackendView { weight: u32::MAX - 1, id: 0, ..max },
        ],
        vec![BackendView { weight: 1, ..max }],
    ];
    for k in SchedulerKind::ALL {
        for b in &lists {
            let mut s = build(k, b);
            for h in [0, 1, 65537, u64::MAX] {
                let i = s.pick(b, h).unwrap();
                assert!(i < b.len());
            }
        }
    }
}

/// A random server: weights and counts from the edges as well as the middle, mostly up.
fn random_view(rng: &mut Rng, position: usize) -> BackendView {
    let weight = match rng.below(6) {
        0 => 0,
        1 => 1,
        2 => u32::MAX,
        _ => rng.below(1000) as u32,
    };
    let count = |rng: &mut Rng| if rng.below(8) == 0 { u32::MAX } else { rng.below(100) as u32 };
    BackendView {
        weight,
        up: rng.below(5) != 0,
        active: count(rng),
        inactive: count(rng),
        // Now and then a duplicate id.
        id: if rng.below(10) == 0 { 99 } else { mix64(position as u64) },
    }
}

#[test]
fn random_views_pick_only_available_servers() {
    let mut rng = Rng(12);
    for case in 0..400 {
        let n = rng.below(12) as usize;
        let built: Vec<_> = (0..n).map(|i| random_view(&mut rng, i)).collect();
        // Half the time the view at pick time has drifted: other health, weights and counts,
        // sometimes another length.
        let drifted = rng.below(2) == 0;
        let mut view = built.clone();
        if drifted {
            let m = if rng.below(4) == 0 { rng.below(12) as usize } else { n };
            view = (0..m).map(|i| random_view(&mut rng, i)).collect();
        }
        let any = view.iter().any(BackendView::available);
        for k in SchedulerKind::ALL {
            let mut s = build(k, &built);
            for _ in 0..20 {
                match s.pick(&view, rng.u64()) {
                    Some(i) => assert!(view[i].available(), "case {case} {k}: picked {i} of {view:?}"),
                    None => assert!(!any, "case {case} {k}: None with {view:?}"),
                }
            }
        }
    }
}

#[test]
fn mix64_is_splitmix64() {
    // The first outputs of splitmix64 seeded with 1234567, from its reference implementation.
    let mut rng = Rng(1234567);
    let got: Vec<u64> = (0..5).map(|_| rng.u64()).collect();
    assert_eq!(
        got,
        [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821
        ]
    );
}
