//! `[sync]` in the daemon's loop: the peers' events handed to the engine, and the LIPs of a
//! peer taken over when it goes quiet and given back when it returns (see `crate::sync`).

use super::Daemon;
use anyhow::Context as _;
use slowpath::engine::Engine;
use std::time::{Duration, Instant};

/// `[sync]` running: the threads, when the peers' liveness was last looked at, and which
/// peers were taken for dead.
pub(super) struct SyncTick {
    syncer: crate::sync::Syncer,
    checked: Instant,
    dead: Vec<bool>,
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
    Ok(Some(SyncTick { syncer, checked: Instant::now(), dead: Vec::new() }))
}

impl Daemon {
    /// `[sync]`: hands the peers' events to the engine; every 100 ms, takes over the LIPs of
    /// a peer that went quiet and gives back those of one that came back.
    pub(super) fn tick_sync(&mut self, now_ns: u64) -> usize {
        let Some(t) = &mut self.sync else { return 0 };
        let events = t.syncer.drain();
        let work = usize::from(!events.is_empty());
        if work > 0 {
            self.engine.sync_receive(events, now_ns);
        }
        if t.checked.elapsed() < Duration::from_millis(100) {
            return work;
        }
        t.checked = Instant::now();
        let live = t.syncer.liveness();
        t.dead.resize(live.len(), false);
        for (i, (lips, alive)) in live.iter().enumerate() {
            match (alive, t.dead[i]) {
                (Some(false), false) => {
                    tracing::warn!(lips = ?lips, "a sync peer sent nothing for 3 s: taking its LIPs over");
                    self.engine.take_over_lips(lips);
                    t.dead[i] = true;
                }
                (Some(true), true) => {
                    tracing::info!(lips = ?lips, "a sync peer is back: its LIPs are its own again");
                    self.engine.release_lips(lips);
                    t.dead[i] = false;
                }
                _ => {}
            }
        }
        work
    }

    /// `[sync]`'s state now.
    pub(super) fn sync_status(&self) -> Option<crate::sync::SyncStatus> {
        let t = self.sync.as_ref()?;
        Some(t.syncer.status(self.engine.standby_count(), self.engine.taken_over()))
    }
}
