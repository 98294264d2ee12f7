//! `[sync]` in the daemon's loop: the peers' events handed to the engine, and the peers' LIPs:
//! which peers are alive (a standby copy made active here does not take a live peer's LIP),
//! which are dead (silent for [`DEAD_AFTER`]: their LIPs are taken over), and which LIPs go
//! back to their peer (it was heard again after the take-over: it restarted, or it never
//! died). See `crate::sync` and `slowpath::engine`'s sync module.

use super::Daemon;
use crate::sync::{DEAD_AFTER, QUIET_AFTER};
use anyhow::Context as _;
use slowpath::engine::Engine;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A peer heard this long after one of its LIPs was taken over gets it back: a datagram in
/// flight when it died arrives within this, one sent later means it lives.
const RELEASE_GRACE: Duration = Duration::from_millis(150);

/// `[sync]` running: the threads, when the peers' liveness was last looked at, and when each
/// LIP taken over was first seen taken.
pub(super) struct SyncTick {
    syncer: crate::sync::Syncer,
    checked: Instant,
    taken_at: HashMap<IpAddr, Instant>,
}

/// What the peers' liveness says of their LIPs now.
#[derive(Debug, Default, PartialEq, Eq)]
struct LipDecisions {
    /// LIPs of peers alive (heard within [`QUIET_AFTER`]).
    live: Vec<IpAddr>,
    /// LIPs of peers silent for [`DEAD_AFTER`], not taken yet: take them over.
    take: Vec<IpAddr>,
    /// LIPs taken over whose peer was heard after the take-over: give them back.
    release: Vec<IpAddr>,
}

/// Decides from each peer's LIPs and time since it was last heard (`None`: never), and when
/// each LIP now taken over was taken.
fn lip_decisions(
    peers: &[(Vec<IpAddr>, Option<Duration>)],
    taken_at: &HashMap<IpAddr, Instant>,
    now: Instant,
) -> LipDecisions {
    let mut d = LipDecisions::default();
    for (lips, heard) in peers {
        let Some(ago) = *heard else { continue };
        if ago < QUIET_AFTER {
            d.live.extend(lips);
        } else if ago >= DEAD_AFTER {
            d.take.extend(lips.iter().filter(|l| !taken_at.contains_key(l)));
        }
        let Some(heard_at) = now.checked_sub(ago) else { continue };
        let back = |l: &&IpAddr| taken_at.get(l).is_some_and(|&at| heard_at > at + RELEASE_GRACE);
        d.release.extend(lips.iter().filter(back));
    }
    d
}

impl SyncTick {
    /// Stops the threads.
    pub(super) fn stop(self) {
        self.syncer.stop();
    }
}

/// Starts `[sync]`'s threads and hands its queue and the peers' LIPs to the engine.
pub(super) fn start_sync(
    cfg: &crate::config::Config,
    engine: &mut Engine,
) -> anyhow::Result<Option<SyncTick>> {
    let Some(sc) = &cfg.sync else { return Ok(None) };
    let syncer = crate::sync::Syncer::start(cfg, sc)?;
    engine.set_sync(syncer.queue(), sc.peer_lips()).context("steering the sync peers' LIPs")?;
    // A node that restarted takes its LIPs back from the servers' caches, which the peer that
    // took them over pointed at itself.
    engine.announce_own_lips();
    Ok(Some(SyncTick { syncer, checked: Instant::now(), taken_at: HashMap::new() }))
}

impl Daemon {
    /// `[sync]`: hands the peers' events to the engine, reports every connection again to a
    /// peer that came up (a resync, paced by the queue); every 100 ms, tells the engine which
    /// peers are alive, takes over the LIPs of a peer silent for [`DEAD_AFTER`] and gives back
    /// those of one heard again ([`lip_decisions`]).
    pub(super) fn tick_sync(&mut self, now_ns: u64) -> usize {
        let Some(t) = &mut self.sync else { return 0 };
        let events = t.syncer.drain();
        let mut work = usize::from(!events.is_empty());
        if work > 0 {
            self.engine.sync_receive(events, now_ns);
        }
        if t.syncer.take_resync() {
            self.engine.request_sync_dump();
        }
        work += self.engine.continue_sync_dump(now_ns);
        if t.checked.elapsed() < Duration::from_millis(100) {
            return work;
        }
        let now = Instant::now();
        t.checked = now;
        let d = lip_decisions(&t.syncer.liveness(), &t.taken_at, now);
        self.engine.set_live_peer_lips(d.live);
        if !d.take.is_empty() {
            tracing::warn!(lips = ?d.take, "a sync peer sent nothing for 3 s: taking its LIPs over");
            self.engine.take_over_lips(&d.take);
        }
        if !d.release.is_empty() {
            tracing::info!(lips = ?d.release, "a sync peer was heard again: its LIPs are its own again");
            self.engine.release_lips(&d.release);
        }
        let taken = self.engine.taken_over();
        t.taken_at.retain(|l, _| taken.contains(l));
        for &l in taken {
            t.taken_at.entry(l).or_insert(now);
        }
        work
    }

    /// `[sync]`'s state now.
    pub(super) fn sync_status(&self) -> Option<crate::sync::SyncStatus> {
        let t = self.sync.as_ref()?;
        Some(t.syncer.status(self.engine.standby_count(), self.engine.taken_over()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn live_quiet_dead_and_back() {
        let now = Instant::now() + 60 * 1000 * MS;
        let (a, b, c) =
            (vec![ip("10.10.2.1")], vec![ip("10.10.2.2"), ip("fd00:2::2")], vec![ip("10.10.2.3")]);
        let none = HashMap::new();
        // Heard 50 ms ago: alive. 500 ms: quiet (neither alive nor dead). 4 s: dead. Never: nothing.
        let peers = [(a.clone(), Some(50 * MS)), (b.clone(), Some(500 * MS)), (c.clone(), Some(4000 * MS))];
        let d = lip_decisions(&peers, &none, now);
        assert_eq!(d, LipDecisions { live: a.clone(), take: c.clone(), release: vec![] });
        assert_eq!(lip_decisions(&[(a.clone(), None)], &none, now), LipDecisions::default());
        // A dead peer's LIP already taken is not taken again.
        let taken: HashMap<_, _> = [(c[0], now.checked_sub(1000 * MS).unwrap())].into();
        assert!(lip_decisions(&[(c.clone(), Some(4000 * MS))], &taken, now).take.is_empty());
    }

    #[test]
    fn a_lip_goes_back_only_when_its_peer_spoke_after_the_take_over() {
        let now = Instant::now() + 60 * 1000 * MS;
        let lips = vec![ip("10.10.2.2")];
        let taken: HashMap<_, _> = [(lips[0], now.checked_sub(2000 * MS).unwrap())].into();
        // Last heard before the take-over (it died, then its LIP was taken): kept.
        let d = lip_decisions(&[(lips.clone(), Some(2500 * MS))], &taken, now);
        assert!(d.release.is_empty());
        // A datagram that was in flight at the take-over: kept.
        let d = lip_decisions(&[(lips.clone(), Some(1900 * MS))], &taken, now);
        assert!(d.release.is_empty());
        // Heard well after: it restarted (or never died). Released, and alive again.
        let d = lip_decisions(&[(lips.clone(), Some(20 * MS))], &taken, now);
        assert_eq!((d.release, d.live), (lips.clone(), lips));
    }
}
