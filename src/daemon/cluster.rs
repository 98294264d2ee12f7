//! `[sync]` in the daemon's loop: the peers' events handed to the engine, and the LIPs of a
//! peer taken over when it goes quiet and given back when it returns (see `crate::sync`).

use super::Daemon;
use std::time::{Duration, Instant};

impl Daemon {
    /// `[sync]`: hands the peers' events to the engine; every 100 ms, takes over the LIPs of
    /// a peer that went quiet and gives back those of one that came back.
    pub(super) fn tick_sync(&mut self, now_ns: u64) -> usize {
        let Some(s) = &self.sync else { return 0 };
        let events = s.drain();
        let work = usize::from(!events.is_empty());
        if work > 0 {
            self.engine.sync_receive(events, now_ns);
        }
        if self.sync_checked.elapsed() < Duration::from_millis(100) {
            return work;
        }
        self.sync_checked = Instant::now();
        let live = s.liveness();
        self.dead_peers.resize(live.len(), false);
        for (i, (lips, alive)) in live.iter().enumerate() {
            match (alive, self.dead_peers[i]) {
                (Some(false), false) => {
                    tracing::warn!(lips = ?lips, "a sync peer sent nothing for 3 s: taking its LIPs over");
                    self.engine.take_over_lips(lips);
                    self.dead_peers[i] = true;
                }
                (Some(true), true) => {
                    tracing::info!(lips = ?lips, "a sync peer is back: its LIPs are its own again");
                    self.engine.release_lips(lips);
                    self.dead_peers[i] = false;
                }
                _ => {}
            }
        }
        work
    }

    /// `[sync]`'s state now.
    pub(super) fn sync_status(&self) -> Option<crate::sync::SyncStatus> {
        let s = self.sync.as_ref()?;
        Some(s.status(self.engine.standby_count(), self.engine.taken_over()))
    }
}
