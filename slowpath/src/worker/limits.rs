//! Per-source bounds of a worker: how many half-open (SYN_RECV) connections each client
//! address holds, so one source (or a few) flooding SYNs at a service without a SYN proxy
//! cannot take the whole half-open budget (`limits.half_open_per_worker`) from everyone else.
//! Only kept while a limit is set: a worker with no per-source limit pays nothing.

use crate::addr::FastMap;
use std::net::IpAddr;

/// Half-open connections per client address.
#[derive(Debug, Default)]
pub(super) struct HalfOpenBySource {
    limit: u32,
    counts: FastMap<IpAddr, u32>,
}

impl HalfOpenBySource {
    /// Counts per source with `limit` at most each (0: no limit, nothing counted).
    pub(super) fn new(limit: u32) -> Self {
        HalfOpenBySource { limit, counts: FastMap::default() }
    }

    /// Whether `source` may open one more half-open connection.
    pub(super) fn allows(&self, source: IpAddr) -> bool {
        self.limit == 0 || self.counts.get(&source).copied().unwrap_or(0) < self.limit
    }

    /// A connection of `source` entered SYN_RECV.
    pub(super) fn enter(&mut self, source: IpAddr) {
        if self.limit > 0 {
            *self.counts.entry(source).or_default() += 1;
        }
    }

    /// A connection of `source` left SYN_RECV (or ended in it).
    pub(super) fn leave(&mut self, source: IpAddr) {
        if self.limit == 0 {
            return;
        }
        if let Some(n) = self.counts.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&source);
            }
        }
    }

    /// Sources holding a half-open connection now (the map's size is bounded by the worker's
    /// half-open limit).
    #[cfg(test)]
    pub(super) fn sources(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_held_to_its_limit_and_forgotten_at_zero() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut h = HalfOpenBySource::new(2);
        h.enter(a);
        h.enter(a);
        assert!(!h.allows(a), "at its limit");
        assert!(h.allows(b), "another source is not held back");
        h.leave(a);
        assert!(h.allows(a));
        h.leave(a);
        h.leave(a);
        assert_eq!(h.sources(), 0, "a source at zero is forgotten");
        let mut off = HalfOpenBySource::new(0);
        off.enter(a);
        assert!(off.allows(a));
        assert_eq!(off.sources(), 0, "nothing kept without a limit");
    }
}
