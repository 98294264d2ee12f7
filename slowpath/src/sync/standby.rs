//! A worker's standby connections: the copies of its peers' connections that the sync stream
//! brought, kept beside the worker's own connection store (not in it) so that the packet path
//! of active connections is untouched: a standby copy is looked up only when a packet's tuple
//! misses the active store, and leaves this store on that packet to become an active
//! connection.
//!
//! A copy is found by either tuple (client → VIP, server → LIP), as an active connection is,
//! because the first packet after a fail-over may come from either side. It ages out at its
//! deadline (the remaining timeout the owner reported, plus [`GRACE_NS`], so the owner's
//! refresh of a live connection arrives before the copy would expire) and an "ended" event
//! removes it. The store is swept once a second, not per packet.

use super::SyncEvent;
use crate::addr::FastMap;
use std::net::SocketAddr;

/// Time a copy outlives the timeout its owner reported: the owner refreshes a live
/// connection when its own timer fires, which is at that same deadline.
pub const GRACE_NS: u64 = 10_000_000_000;

/// How often expired copies are swept.
const SWEEP_NS: u64 = 1_000_000_000;

type Key = (u8, SocketAddr, SocketAddr);

#[derive(Debug)]
struct Copy {
    event: SyncEvent,
    deadline_ns: u64,
}

/// One worker's standby copies.
#[derive(Debug, Default)]
pub struct Standby {
    copies: Vec<Option<Copy>>,
    free: Vec<u32>,
    by_tuple: FastMap<Key, u32>,
    next_sweep_ns: u64,
}

fn keys(e: &SyncEvent) -> (Key, Key) {
    let p = e.proto.number();
    ((p, e.ep.client, e.ep.vip), (p, e.ep.rs, e.ep.lip))
}

impl Standby {
    /// Copies held.
    pub fn len(&self) -> usize {
        self.copies.len() - self.free.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes an event of a peer's connection at `now_ns`: a created or changed connection is
    /// copied (replacing an older copy of either tuple), an ended one is removed.
    pub fn apply(&mut self, e: SyncEvent, now_ns: u64) {
        let (orig, reply) = keys(&e);
        // An older copy of either tuple goes: the tuple was reused, or this is its update.
        for k in [orig, reply] {
            if let Some(&i) = self.by_tuple.get(&k) {
                self.remove(i);
            }
        }
        if e.kind == super::SyncKind::Ended {
            return;
        }
        let copy = Copy { event: e, deadline_ns: now_ns + u64::from(e.timeout_ms) * 1_000_000 + GRACE_NS };
        let i = match self.free.pop() {
            Some(i) => {
                self.copies[i as usize] = Some(copy);
                i
            }
            None => {
                self.copies.push(Some(copy));
                (self.copies.len() - 1) as u32
            }
        };
        self.by_tuple.insert(orig, i);
        self.by_tuple.insert(reply, i);
    }

    fn remove(&mut self, i: u32) -> Option<SyncEvent> {
        let c = self.copies.get_mut(i as usize)?.take()?;
        let (orig, reply) = keys(&c.event);
        self.by_tuple.remove(&orig);
        self.by_tuple.remove(&reply);
        self.free.push(i);
        Some(c.event)
    }

    /// Takes out the copy one of whose tuples is `proto`, `src` → `dst`, to make it active.
    pub fn take(&mut self, proto: u8, src: SocketAddr, dst: SocketAddr) -> Option<SyncEvent> {
        let i = *self.by_tuple.get(&(proto, src, dst))?;
        self.remove(i)
    }

    /// Drops the copies whose deadline passed (at most once a second). Returns how many.
    pub fn sweep(&mut self, now_ns: u64) -> usize {
        if now_ns < self.next_sweep_ns || self.is_empty() {
            return 0;
        }
        self.next_sweep_ns = now_ns + SWEEP_NS;
        let old: Vec<u32> = self
            .copies
            .iter()
            .enumerate()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| c.deadline_ns <= now_ns))
            .map(|(i, _)| i as u32)
            .collect();
        for &i in &old {
            self.remove(i);
        }
        old.len()
    }

    /// Every copy (for `sluice flows`-like listings and tests).
    pub fn iter(&self) -> impl Iterator<Item = &SyncEvent> {
        self.copies.iter().flatten().map(|c| &c.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::SyncKind;
    use crate::sync::tests::event;

    #[test]
    fn a_copy_is_found_by_either_tuple_and_taken_once() {
        let mut s = Standby::default();
        let e = event(4000);
        s.apply(e, 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(6, e.ep.rs, e.ep.lip), Some(e), "the server's side finds it");
        assert_eq!(s.take(6, e.ep.client, e.ep.vip), None, "taken with both its tuples");
        assert!(s.is_empty());
        s.apply(e, 0);
        assert_eq!(s.take(6, e.ep.client, e.ep.vip), Some(e), "the client's side finds it");
        assert_eq!(s.take(17, e.ep.client, e.ep.vip), None);
    }

    #[test]
    fn updates_replace_ended_removes_and_old_copies_age_out() {
        let mut s = Standby::default();
        let a = event(4000);
        s.apply(a, 0);
        s.apply(SyncEvent { kind: SyncKind::Changed, timeout_ms: 1_000, ..a }, 0);
        assert_eq!(s.len(), 1, "an update replaces the copy");
        let mut b = event(4001);
        b.ep.lip.set_port(2050);
        s.apply(b, 0);
        assert_eq!(s.len(), 2);
        s.apply(SyncEvent { kind: SyncKind::Ended, ..b }, 0);
        assert_eq!(s.len(), 1, "ended removes");
        // 4000's deadline is 1 s + the grace.
        assert_eq!(s.sweep(GRACE_NS), 0);
        assert_eq!(s.sweep(GRACE_NS + 1_000_000_000), 1);
        assert!(s.is_empty());
    }
}
