//! FullNAT local addresses: a worker's slice of every LIP's ports, handed out from free lists
//! and held back after use.
//!
//! As in DPVS, worker `w` of `n` (a power of two) owns the ports `p` with `p & (n - 1) == w`,
//! so the NIC steers a real server's reply to the worker that owns its connection by the low
//! bits of the destination port, and no two workers ever allocate the same port. The ports are
//! pooled per (LIP, real server), as DPVS sub-pools them by server: one (LIP, lport) serves
//! many servers at once, and the quarantine applies to the exact tuple. A port released from a
//! connection waits `quarantine` (default 120 s, twice Linux's 60 s TIME_WAIT) before the same
//! (LIP, lport, server) is used again, so a server still in TIME_WAIT never sees a reused
//! tuple. A pool's free list starts as a counter over the slice (ports never used) and fills
//! with ports out of quarantine, so a pool costs nothing until it is used and O(1) per
//! allocation after. Exhaustion is a refusal, counted: a port in use or in quarantine is never
//! handed out.

use crate::addr::FastMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// The port range and the rules of a worker's pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// Lowest port handed out.
    pub min: u16,
    /// Highest port handed out.
    pub max: u16,
    /// How long a released (LIP, lport, server) is held back, nanoseconds.
    pub quarantine_ns: u64,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange { min: 1024, max: 65535, quarantine_ns: 120 * 1_000_000_000 }
    }
}

#[derive(Debug, Default)]
struct Pool {
    /// Index of the next never-used port of the slice.
    fresh: u32,
    /// Ports out of quarantine, oldest first.
    free: VecDeque<u16>,
    /// Released ports and when they may be used again, in release order.
    quarantined: VecDeque<(u16, u64)>,
    in_use: u32,
}

/// What the pools count (LIP ports, not Ethernet ports: those are `network::PortConf`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LportStats {
    /// Ports handed out.
    pub allocated: u64,
    /// Ports released into quarantine.
    pub released: u64,
    /// Allocations refused: every port of the slice in use or in quarantine.
    pub exhausted: u64,
}

/// One worker's pools.
#[derive(Debug)]
pub struct PortPools {
    worker: u16,
    workers: u16,
    range: PortRange,
    pools: FastMap<(IpAddr, SocketAddr), Pool>,
    stats: LportStats,
}

impl PortPools {
    /// The pools of worker `worker` of `workers` (a power of two).
    pub fn new(worker: u16, workers: u16, range: PortRange) -> Self {
        debug_assert!(workers.is_power_of_two() && worker < workers);
        PortPools { worker, workers, range, pools: FastMap::default(), stats: LportStats::default() }
    }

    /// Ports allocated, released and refused by this worker's pools.
    pub fn stats(&self) -> LportStats {
        self.stats
    }

    /// The first port of the slice and how many ports it has.
    fn slice(&self) -> (u32, u32) {
        let mask = u32::from(self.workers) - 1;
        let min = u32::from(self.range.min);
        let first = (min & !mask) | u32::from(self.worker);
        let first = if first < min { first + u32::from(self.workers) } else { first };
        let max = u32::from(self.range.max);
        let count = if first > max { 0 } else { (max - first) / u32::from(self.workers) + 1 };
        (first, count)
    }

    /// Ports of this worker's slice (per LIP and server).
    pub fn slice_size(&self) -> u32 {
        self.slice().1
    }

    /// A port of `lip` for a connection to `rs`, or `None` when the slice is exhausted.
    pub fn alloc(&mut self, lip: IpAddr, rs: SocketAddr, now_ns: u64) -> Option<u16> {
        let (first, count) = self.slice();
        let workers = u32::from(self.workers);
        let pool = self.pools.entry((lip, rs)).or_default();
        while let Some(&(port, until)) = pool.quarantined.front() {
            if until > now_ns {
                break;
            }
            pool.quarantined.pop_front();
            pool.free.push_back(port);
        }
        let port = if pool.fresh < count {
            pool.fresh += 1;
            Some((first + (pool.fresh - 1) * workers) as u16)
        } else {
            pool.free.pop_front()
        };
        match port {
            Some(p) => {
                pool.in_use += 1;
                self.stats.allocated += 1;
                Some(p)
            }
            None => {
                self.stats.exhausted += 1;
                None
            }
        }
    }

    /// Gives a port back; it may serve `rs` again after the quarantine.
    pub fn release(&mut self, lip: IpAddr, rs: SocketAddr, port: u16, now_ns: u64) {
        let Some(pool) = self.pools.get_mut(&(lip, rs)) else { return };
        pool.in_use = pool.in_use.saturating_sub(1);
        pool.quarantined.push_back((port, now_ns.saturating_add(self.range.quarantine_ns)));
        self.stats.released += 1;
    }

    /// Marks a port as in use without allocating it (a connection adopted after a restart).
    /// Returns false if the port is not in this worker's slice.
    pub fn reserve(&mut self, lip: IpAddr, rs: SocketAddr, port: u16) -> bool {
        let (first, count) = self.slice();
        let p = u32::from(port);
        let workers = u32::from(self.workers);
        if p < first || (p - first) % workers != 0 || (p - first) / workers >= count {
            return false;
        }
        let i = (p - first) / workers;
        let pool = self.pools.entry((lip, rs)).or_default();
        // Fresh ports below the reserved one go to the free list, so the counter can skip it.
        while pool.fresh <= i {
            if pool.fresh != i {
                pool.free.push_back((first + pool.fresh * workers) as u16);
            }
            pool.fresh += 1;
        }
        pool.free.retain(|&q| q != port);
        pool.in_use += 1;
        true
    }

    /// Ports in use in all pools.
    pub fn in_use(&self) -> u64 {
        self.pools.values().map(|p| u64::from(p.in_use)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn lip() -> IpAddr {
        "10.10.2.1".parse().unwrap()
    }
    fn rs(n: u8) -> SocketAddr {
        format!("10.10.2.{n}:80").parse().unwrap()
    }

    #[test]
    fn each_worker_owns_its_slice() {
        let range = PortRange { min: 1024, max: 1100, quarantine_ns: S };
        let mut seen = std::collections::HashSet::new();
        for w in 0..4 {
            let mut p = PortPools::new(w, 4, range);
            while let Some(port) = p.alloc(lip(), rs(1), 0) {
                assert_eq!(port & 3, w, "port {port} of worker {w}");
                assert!((1024..=1100).contains(&port));
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
        assert_eq!(seen.len(), 77, "every port of the range, once");
    }

    #[test]
    fn exhaustion_is_a_counted_refusal_and_quarantine_holds_the_tuple() {
        let range = PortRange { min: 2000, max: 2009, quarantine_ns: 60 * S };
        let mut p = PortPools::new(0, 1, range);
        let ports: Vec<u16> = (0..10).map(|_| p.alloc(lip(), rs(1), 0).unwrap()).collect();
        assert_eq!(p.alloc(lip(), rs(1), 0), None);
        assert_eq!(p.stats().exhausted, 1);
        // Another server has a pool of its own: the same (LIP, lport) serves it.
        assert_eq!(p.alloc(lip(), rs(2), 0), Some(2000));
        p.release(lip(), rs(1), ports[3], 10 * S);
        assert_eq!(p.alloc(lip(), rs(1), 69 * S), None, "still in quarantine at 59 s");
        assert_eq!(p.alloc(lip(), rs(1), 70 * S), Some(ports[3]), "free after 60 s");
        assert_eq!(p.stats().exhausted, 2);
    }

    #[test]
    fn reserve_takes_a_port_out_of_the_free_list() {
        let range = PortRange { min: 1024, max: 1040, quarantine_ns: S };
        let mut p = PortPools::new(1, 2, range);
        assert!(!p.reserve(lip(), rs(1), 1024), "an even port belongs to worker 0");
        assert!(p.reserve(lip(), rs(1), 1031));
        let mut got = Vec::new();
        while let Some(port) = p.alloc(lip(), rs(1), 0) {
            got.push(port);
        }
        assert!(!got.contains(&1031));
        assert_eq!(got.len(), 7, "the odd ports 1025..=1039 but 1031");
    }
}
