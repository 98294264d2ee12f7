//! Source hashing (`sh`), after IPVS `ip_vs_sh.c`: a static table of [`SH_TABLE_SIZE`] buckets,
//! each owned by one server, with every server owning a number of buckets proportional to its
//! weight; a client goes to the owner of bucket `mix64(client_hash) % SH_TABLE_SIZE`. The client
//! hash is mixed again because the bucket takes only its low bits, which a caller's hash need
//! not spread well.
//!
//! How the table is made, and what moves when:
//! - Buckets are dealt to the servers with weight > 0, up or down, by weighted turns ordered by
//!   id (so every server gets its weighted share within one bucket, and the order of the list
//!   does not matter), and the dealt sequence is then shuffled by a fixed permutation. The
//!   shuffle is what makes the next bucket after any bucket belong to a random server: a
//!   sequence dealt in turns would put the same neighbour after every bucket of a server.
//! - A bucket whose owner is down falls to the owner of the next bucket (cyclically) whose owner
//!   is up, resolved when the table is built. Because down servers keep their buckets, a health
//!   change moves only the clients of the server that changed (and they spread over the others
//!   by weight); when it comes back up its clients return.
//! - A change of weight, or of the server set (draining a server to weight 0 included),
//!   re-deals the table and moves most clients. Use `mh` where that matters.
//!
//! IPVS deals the buckets in list order, `weight` consecutive buckets at a time, which is close
//! to the weights only when they are small next to 256, and puts weight-0 servers in the table
//! too (their clients then fall back by rehashing).

use super::{
    BackendView, MAX_TABLE_BACKENDS, SH_TABLE_SIZE, Scheduler, SchedulerKind, Servers, Turns, mix64,
    table_pick,
};
use std::sync::Arc;

/// The empty bucket: no server has weight > 0, or none is up.
const NO_BACKEND: u16 = u16::MAX;

/// The seed of the fixed shuffle of the buckets (any constant; it is part of the contract, like
/// [`mix64`], because it decides which clients go where).
const SHUFFLE_SEED: u64 = 0x5348_5f74_6162_6c65;

/// `sh`: the resolved table, shared by the copies of all workers.
#[derive(Clone, Debug)]
pub(super) struct SourceHash {
    /// For each bucket, the server that takes its clients: the owner if up, else the owner of
    /// the next bucket that is up.
    table: Arc<[u16]>,
}

impl SourceHash {
    pub(super) fn new(backends: &[BackendView]) -> Self {
        Self { table: resolve(&deal(backends), backends).into() }
    }
}

/// The bucket of a client.
fn bucket(client_hash: u64) -> usize {
    (mix64(client_hash) % SH_TABLE_SIZE as u64) as usize
}

/// The owner of every bucket (positions in `backends`), before falling through down servers.
fn deal(backends: &[BackendView]) -> Vec<u16> {
    let members: Vec<usize> =
        (0..backends.len().min(MAX_TABLE_BACKENDS)).filter(|&i| backends[i].weight > 0).collect();
    if members.is_empty() {
        return vec![NO_BACKEND; SH_TABLE_SIZE];
    }
    let turns = Turns::new(members.iter().map(|&i| (backends[i].weight, backends[i].id)));
    let mut owners: Vec<u16> = turns.take(SH_TABLE_SIZE).map(|m| members[m] as u16).collect();
    // Fisher-Yates driven by a splitmix64 stream.
    let mut state = SHUFFLE_SEED;
    for i in (1..owners.len()).rev() {
        state = state.wrapping_add(0x9e3779b97f4a7c15);
        let j = (mix64(state) % (i as u64 + 1)) as usize;
        owners.swap(i, j);
    }
    owners
}

/// The server of every bucket: its owner when up, else the owner of the next bucket whose owner
/// is up (cyclically), or the empty sentinel when no owner is up.
fn resolve(owners: &[u16], backends: &[BackendView]) -> Vec<u16> {
    let up = |e: u16| backends.get(usize::from(e)).is_some_and(BackendView::available);
    let n = owners.len();
    let Some(last_up) = (0..n).rev().find(|&b| up(owners[b])) else {
        return vec![NO_BACKEND; n];
    };
    // Walking backwards from a bucket that is up, `next` is always the nearest up owner after b.
    let mut out = owners.to_vec();
    let mut next = owners[last_up];
    for k in 0..n {
        let b = (last_up + n - k) % n;
        if up(owners[b]) {
            next = owners[b];
        } else {
            out[b] = next;
        }
    }
    out
}

impl Scheduler for SourceHash {
    fn pick(&mut self, backends: &dyn Servers, client_hash: u64) -> Option<usize> {
        table_pick(&self.table, bucket(client_hash), backends, client_hash)
    }

    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Rng, views};
    use super::super::{SH_TABLE_SIZE, SchedulerKind, build};
    use super::{deal, resolve};

    fn counts(table: &[u16], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &e in table {
            c[usize::from(e)] += 1;
        }
        c
    }

    #[test]
    fn sh_deals_buckets_by_weight_within_one() {
        let c = counts(&deal(&views(&[1, 2, 3])), 3);
        // 4096 / 6 = 682.67.
        assert_eq!(c.iter().sum::<usize>(), SH_TABLE_SIZE);
        for (got, w) in c.iter().zip([1, 2, 3]) {
            assert!(got.abs_diff(SH_TABLE_SIZE * w / 6) <= 1, "{c:?}");
        }
        let c = counts(&deal(&views(&[7; 10])), 10);
        assert!(c.iter().all(|&x| x == 409 || x == 410), "{c:?}");
        // Weight 0 owns nothing.
        assert_eq!(counts(&deal(&views(&[5, 0, 5])), 3)[1], 0);
    }

    #[test]
    fn sh_same_client_same_server() {
        let b = views(&[1, 2, 3, 4, 5]);
        let mut first = build(SchedulerKind::Sh, &b);
        let mut other_worker = first.clone_box();
        let mut rebuilt = build(SchedulerKind::Sh, &b);
        let mut rng = Rng(1);
        for _ in 0..10_000 {
            let h = rng.u64();
            let s = first.pick(&b, h);
            assert!(s.is_some());
            assert_eq!(first.pick(&b, h), s);
            assert_eq!(other_worker.pick(&b, h), s);
            assert_eq!(rebuilt.pick(&b, h), s);
        }
    }

    #[test]
    fn sh_distribution_follows_weights() {
        let weights = [1, 2, 3, 10, 10];
        let total: u32 = weights.iter().sum();
        let b = views(&weights);
        let mut s = build(SchedulerKind::Sh, &b);
        let mut rng = Rng(2);
        let clients = 1_000_000;
        let mut got = [0u32; 5];
        for _ in 0..clients {
            got[s.pick(&b, rng.u64()).unwrap()] += 1;
        }
        for (i, (&g, &w)) in got.iter().zip(&weights).enumerate() {
            let want = f64::from(clients) * f64::from(w) / f64::from(total);
            let err = (f64::from(g) - want).abs() / want;
            println!("sh weight {w}: {g} clients, {:.2} % off its share", err * 100.0);
            assert!(err < 0.03, "server {i}: {g} clients for a share of {want}");
        }
    }

    #[test]
    fn sh_down_server_moves_only_its_clients() {
        let mut b = views(&[1; 8]);
        let before = resolve(&deal(&b), &b);
        b[3].up = false;
        let after = resolve(&deal(&b), &b);
        let mut moved_to = vec![0; 8];
        for (&x, &y) in before.iter().zip(&after) {
            if x == 3 {
                moved_to[usize::from(y)] += 1;
            } else {
                assert_eq!(x, y, "a client of an up server moved");
            }
        }
        // 512 buckets spread over 7 servers (73 each if even); none takes more than twice that.
        println!("sh: the buckets of a down server went to {moved_to:?}");
        assert_eq!(moved_to[3], 0);
        assert!(moved_to.iter().enumerate().all(|(i, &m)| i == 3 || (20..150).contains(&m)), "{moved_to:?}");
        // Back up: back to the same table.
        b[3].up = true;
        assert_eq!(resolve(&deal(&b), &b), before);
    }

    #[test]
    fn sh_follows_a_server_going_down_before_the_rebuild() {
        let mut b = views(&[1; 8]);
        let mut s = build(SchedulerKind::Sh, &b);
        let mut rng = Rng(3);
        let hashes: Vec<u64> = (0..5000).map(|_| rng.u64()).collect();
        let before: Vec<_> = hashes.iter().map(|&h| s.pick(&b, h).unwrap()).collect();
        b[5].up = false;
        for (&h, &was) in hashes.iter().zip(&before) {
            let now = s.pick(&b, h).unwrap();
            assert_ne!(now, 5);
            if was != 5 {
                assert_eq!(now, was);
            }
        }
    }

    #[test]
    fn sh_is_independent_of_list_order() {
        let b = views(&[3, 1, 4, 1, 5, 9, 2, 6]);
        let mut r = b.clone();
        r.reverse();
        let t = deal(&b);
        let u = deal(&r);
        for (&x, &y) in t.iter().zip(&u) {
            assert_eq!(b[usize::from(x)].id, r[usize::from(y)].id);
        }
    }
}
