//! Connection schedulers: which real server a new connection of a service goes to.
//!
//! This module owns the decision and nothing else. It does not own the connection counts (the
//! connection table does, and passes them in [`BackendView`]), health (the health checker does),
//! nor when to rebuild (the service does: when its server set, a weight or a health state
//! changes it calls [`build`] off the packet path and swaps the new scheduler in whole).
//!
//! Schedulers read the servers through [`Servers`], one view at a time, so the cost column is
//! what a connection pays.
//!
//! | kind | decision | state per worker | pick cost |
//! |---|---|---|---|
//! | `rr` | next available server after the last pick | a position among the servers available at the build (shared) | O(1); a scan when the view drifted |
//! | `wrr` | IPVS interleaved weighted round robin | a position in one cycle, written down at the build (shared) | O(1); a pass scan when the view drifted or a cycle is over 64 Ki picks |
//! | `lc` | least `active * 256 + inactive` | a tournament tree of the loads as last read | O(log n) |
//! | `wlc` | least overhead / weight | the same | O(log n) |
//! | `sh` | static weighted table of [`SH_TABLE_SIZE`] buckets, by client hash | shared table | O(1) |
//! | `mh` | weighted Maglev table of [`MAGLEV_TABLE_SIZE`] entries, by client hash | shared table | O(1) |
//!
//! Every scheduler tolerates a view that has drifted from the one it was built from (a server
//! went down and the rebuild is not swapped in yet): it never returns an unavailable server, and
//! returns `None` only when no server in the view is available.
#![forbid(unsafe_code)]

mod lc;
pub mod maglev;
mod rr;
mod sh;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The Maglev lookup table size (a prime).
pub const MAGLEV_TABLE_SIZE: usize = 65537;

/// The number of buckets of the source-hashing table. IPVS uses 256. With 4096 every server
/// owns its weighted share of the buckets to within one bucket (1/4096 of the clients), which
/// is within 1 % of its share while that share is at least 100 buckets (40 servers of equal
/// weight; beyond 4096 servers some own none), and the table (8 KiB) still sits in L1.
pub const SH_TABLE_SIZE: usize = 4096;

/// How many servers the table schedulers (`sh`, `mh`) can hold: their tables store positions as
/// `u16`, with `u16::MAX` as the empty sentinel. Servers at positions at or beyond this are left
/// out of the tables (they are still reachable through the fallback scan when every server in
/// the table is unavailable, but are never scheduled otherwise).
pub const MAX_TABLE_BACKENDS: usize = u16::MAX as usize;

/// How many following table entries `sh` and `mh` try when the entry of a client names a server
/// that is not available in the current view, before scanning the server list.
const FALLBACK_PROBES: usize = 64;

/// Which scheduler a service uses. `FromStr` accepts "rr" "wrr" "lc" "wlc" "sh" "mh" (and rejects
/// anything else with an error message listing those); `Display` prints the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Interleaved weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Source hashing over a static weighted table.
    Sh,
    /// Weighted Maglev hashing.
    Mh,
}

impl SchedulerKind {
    /// Every kind, in the order the error message of `from_str` lists them.
    pub const ALL: [SchedulerKind; 6] = [Self::Rr, Self::Wrr, Self::Lc, Self::Wlc, Self::Sh, Self::Mh];

    /// The name, as in configuration and `ipvsadm -s`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rr => "rr",
            Self::Wrr => "wrr",
            Self::Lc => "lc",
            Self::Wlc => "wlc",
            Self::Sh => "sh",
            Self::Mh => "mh",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerKind {
    type Err = ParseSchedulerKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseSchedulerKindError { input: s.into() })
    }
}

/// A scheduler name that is none of the known ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSchedulerKindError {
    input: String,
}

impl ParseSchedulerKindError {
    /// The rejected name.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseSchedulerKindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scheduler {:?}: expected one of ", self.input)?;
        for (i, k) in SchedulerKind::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(k.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseSchedulerKindError {}

/// What a scheduler sees of one real server at the moment of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendView {
    /// Configured weight; 0 = draining (no new connections, existing ones stay).
    pub weight: u32,
    /// Passes its health check (a server without a health check is always up).
    pub up: bool,
    /// Connections in ESTABLISHED (IPVS "ActiveConn").
    pub active: u32,
    /// Other connections (IPVS "InActConn").
    pub inactive: u32,
    /// Stable identity of the server (a hash of its address and port, computed by the caller):
    /// Maglev permutations and source hashing are derived from it, so the same server gets the
    /// same slots whatever its position in the list.
    pub id: u64,
}

impl BackendView {
    /// Whether it may take new connections: weight > 0 and up.
    pub fn available(&self) -> bool {
        self.weight > 0 && self.up
    }
}

/// The servers of a service as a scheduler reads them: one server's view at a time, made when
/// asked for. A scheduler that looks at one server (`rr` while its next server is available,
/// `sh` and `mh` on a table hit) costs O(1) per connection whatever the number of servers, and
/// `lc`/`wlc` read a handful (O(log n) in all); only `wrr`'s fallback pass reads them all.
pub trait Servers {
    /// How many servers there are (in the order `build` was given them).
    fn len(&self) -> usize;
    /// Server `i`'s weight, health and counts now. `i < len()`.
    fn view(&self, i: usize) -> BackendView;
    /// No servers.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Servers for &[BackendView] {
    fn len(&self) -> usize {
        <[BackendView]>::len(self)
    }
    fn view(&self, i: usize) -> BackendView {
        self[i]
    }
}

impl Servers for Vec<BackendView> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn view(&self, i: usize) -> BackendView {
        self[i]
    }
}

/// A scheduler's decision state. One instance per worker (a worker never shares it), so `pick`
/// takes `&mut self` and needs no locks.
pub trait Scheduler: Send + Sync + std::fmt::Debug {
    /// Picks the server for a new connection among `backends` (the same list, in the same order,
    /// as given to `build`, with current weights/health/counts), or None when no server is
    /// available. `client_hash` is a hash of the client's address (sh and mh use it; others
    /// ignore it).
    fn pick(&mut self, backends: &dyn Servers, client_hash: u64) -> Option<usize>;
    /// Its kind.
    fn kind(&self) -> SchedulerKind;
    /// A copy for another worker (Maglev's lookup table is shared, not copied: Arc).
    fn clone_box(&self) -> Box<dyn Scheduler>;
}

impl Clone for Box<dyn Scheduler> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Builds a scheduler for `backends`. Expensive work (the Maglev table: 65537 entries) happens
/// here, off the packet path; the caller rebuilds when the server set, a weight or a health state
/// changes, and swaps the new scheduler in atomically (the result is a whole new object).
pub fn build(kind: SchedulerKind, backends: &[BackendView]) -> Box<dyn Scheduler> {
    match kind {
        SchedulerKind::Rr => Box::new(rr::RoundRobin::new(backends)),
        SchedulerKind::Wrr => Box::new(rr::WeightedRoundRobin::new(backends)),
        SchedulerKind::Lc => Box::new(lc::LeastConn::new(false, &backends)),
        SchedulerKind::Wlc => Box::new(lc::LeastConn::new(true, &backends)),
        SchedulerKind::Sh => Box::new(sh::SourceHash::new(backends)),
        SchedulerKind::Mh => {
            Box::new(maglev::MaglevScheduler { table: Arc::new(maglev::MaglevTable::new(backends)) })
        }
    }
}

/// The fixed 64-bit mix of the schedulers: the output function of splitmix64 (Steele, Lea and
/// Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) applied to
/// `x + 0x9e3779b97f4a7c15`, i.e. the first output of a splitmix64 generator seeded with `x`.
///
/// It is part of the scheduling contract and never changes: the Maglev skips (the offsets use
/// [`maglev::fmix64`]), the bucket of a client in `sh` and the shuffle of the `sh` table are
/// derived from it, and every load balancer of a cluster (and every daemon version after a
/// restart) must compute the same tables so that a client keeps landing on the same server.
/// That is why it is written out here and not taken from `std::hash`, whose output may change
/// between Rust versions.
pub const fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// Whether table entry `entry` names a server that is available in `backends`.
fn usable(backends: &dyn Servers, entry: u16) -> Option<usize> {
    let i = usize::from(entry);
    (i < backends.len() && backends.view(i).available()).then_some(i)
}

/// The decision of a table scheduler (`sh`, `mh`) for table slot `slot`: its server if available;
/// otherwise the server of the first following entry (cyclically, at most [`FALLBACK_PROBES`])
/// that is available, so a server's clients spread over the others by weight; otherwise the
/// first available server in list order from `client_hash % n`. The later steps only run while
/// the view has drifted from the table (the rebuild is not swapped in yet).
fn table_pick(table: &[u16], slot: usize, backends: &dyn Servers, client_hash: u64) -> Option<usize> {
    if let Some(i) = table.get(slot).and_then(|&e| usable(backends, e)) {
        return Some(i);
    }
    let len = table.len();
    for k in 1..=FALLBACK_PROBES.min(len) {
        if let Some(i) = usable(backends, table[(slot + k) % len]) {
            return Some(i);
        }
    }
    let n = backends.len();
    if n == 0 {
        return None;
    }
    let start = (client_hash % n as u64) as usize;
    (0..n).map(|k| (start + k) % n).find(|&i| backends.view(i).available())
}

/// One server's next turn in a weighted interleaving (stride scheduling): its `k`-th turn falls
/// at virtual time `k / weight`, so over any stretch of turns each server takes a number within
/// one of its weighted share. Ties go to the lower id, then the lower position, so the order
/// depends on the ids and weights, not on the order of the list.
#[derive(Clone, Copy, Debug)]
struct Turn {
    k: u64,
    weight: u64,
    id: u64,
    member: usize,
}

impl Ord for Turn {
    /// Reversed (the earliest turn is the greatest) because `BinaryHeap` pops its maximum.
    fn cmp(&self, other: &Self) -> Ordering {
        // k / weight against other.k / other.weight, cross-multiplied: exact, no division.
        (u128::from(other.k) * u128::from(self.weight))
            .cmp(&(u128::from(self.k) * u128::from(other.weight)))
            .then(other.id.cmp(&self.id))
            .then(other.member.cmp(&self.member))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Turn {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Turn {}

/// The endless weighted interleaving of the members `(weight, id)` (weights > 0): yields member
/// indexes, each member in proportion to its weight. Equal weights give plain turns in id order.
struct Turns {
    heap: BinaryHeap<Turn>,
}

impl Turns {
    fn new(members: impl IntoIterator<Item = (u32, u64)>) -> Self {
        let heap = members
            .into_iter()
            .enumerate()
            .filter(|(_, (w, _))| *w > 0)
            .map(|(member, (w, id))| Turn { k: 1, weight: u64::from(w), id, member })
            .collect();
        Self { heap }
    }
}

impl Iterator for Turns {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let mut top = self.heap.peek_mut()?;
        let member = top.member;
        top.k += 1;
        Some(member)
    }
}
