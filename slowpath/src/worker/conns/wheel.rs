//! The connections' timers: a hashed wheel whose lists run through the connection records.
//!
//! The same wheel as [`crate::timer::TimerWheel`] ([`SLOTS`] slots of [`TICK_NS`]), but a
//! connection's timer is not an entry of its own: each record carries the links of a doubly
//! linked list and the tick its deadline falls in, and each slot of the wheel is the head of
//! a list. Arming, re-arming and removal are O(1) and exact (a re-armed timer leaves its old
//! list, so no stale timers wait in the wheel), and a timer costs no memory beyond the
//! record's 12 bytes: a connection table of 100M connections holds no separate timer array
//! that grows by doubling. Ticks are counted from the wheel's start in 32 bits and compared
//! wrapping, as [`crate::timer`] does (deadlines up to 248 days ahead).

use super::ConnStore;
use crate::timer::{SLOTS, TICK_NS};

/// No connection: the end of a list, or a record not linked.
pub(super) const NIL: u32 = u32::MAX;

/// The wheel's heads and time.
#[derive(Debug)]
pub(super) struct Wheel {
    heads: Vec<u32>,
    /// The last tick whose slot has been visited (every tick up to it has wholly passed).
    tick: u64,
    /// The tick the wheel started at: records count their deadline's tick from it.
    epoch: u64,
    armed: usize,
}

impl Wheel {
    pub(super) fn new(now_ns: u64) -> Self {
        let tick = (now_ns / TICK_NS).saturating_sub(1);
        Wheel { heads: vec![NIL; SLOTS], tick, epoch: tick, armed: 0 }
    }

    /// The tick of `deadline_ns` (not before the next one), absolute and from the epoch.
    fn tick_of(&self, deadline_ns: u64) -> (u64, u32) {
        let t = (deadline_ns / TICK_NS).max(self.tick + 1);
        // Truncated to 32 bits on purpose: compared wrapping.
        (t, t.wrapping_sub(self.epoch) as u32)
    }
}

/// Whether tick `a` comes before tick `b` (ticks from the epoch, at most 2^31 apart).
fn before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

impl ConnStore {
    /// Timers armed now (one per connection at most).
    #[cfg(test)]
    pub(in crate::worker) fn timers_armed(&self) -> usize {
        self.wheel.armed
    }

    /// Arms the timer of the connection in `slot` for `deadline_ns` (a deadline in the past
    /// fires at the next [`Self::advance_timers`]), moving it if it was armed.
    pub(in crate::worker) fn arm(&mut self, slot: u32, deadline_ns: u64) {
        self.unlink(slot);
        let (t, rel) = self.wheel.tick_of(deadline_ns);
        let bucket = (t % SLOTS as u64) as usize;
        let head = self.wheel.heads[bucket];
        let Some(c) = self.get_mut(slot) else { return };
        c.timer = [NIL, head];
        c.deadline_tick = rel;
        c.set_flag(super::ARMED, true);
        if let Some(h) = self.get_mut(head) {
            h.timer[0] = slot;
        }
        self.wheel.heads[bucket] = slot;
        self.wheel.armed += 1;
    }

    /// Whether `deadline_ns` falls in an earlier tick than the connection's armed deadline (or
    /// nothing is armed): a shorter timeout re-arms at once, a longer one waits for the armed
    /// timer.
    pub(in crate::worker) fn fires_later_than(&self, slot: u32, deadline_ns: u64) -> bool {
        let Some(c) = self.get(slot) else { return false };
        !c.armed() || before(self.wheel.tick_of(deadline_ns).1, c.deadline_tick)
    }

    /// Takes the connection in `slot` out of its timer list, if it is in one.
    pub(super) fn unlink(&mut self, slot: u32) {
        let Some(c) = self.get_mut(slot) else { return };
        if !c.armed() {
            return;
        }
        let [prev, next] = c.timer;
        let rel = c.deadline_tick;
        c.set_flag(super::ARMED, false);
        c.timer = [NIL, NIL];
        if let Some(n) = self.get_mut(next) {
            n.timer[0] = prev;
        }
        if let Some(p) = self.get_mut(prev) {
            p.timer[1] = next;
        } else {
            let bucket = (self.wheel.epoch.wrapping_add(u64::from(rel)) % SLOTS as u64) as usize;
            self.wheel.heads[bucket] = next;
        }
        self.wheel.armed -= 1;
    }

    /// Moves time to `now_ns` and appends `(slot, generation)` of every connection whose
    /// deadline has passed, up to one tick late (only ticks that have wholly passed are
    /// visited); their timers are disarmed.
    pub(in crate::worker) fn advance_timers(&mut self, now_ns: u64, out: &mut Vec<(u32, u32)>) {
        let Some(done) = (now_ns / TICK_NS).checked_sub(1) else { return };
        if done <= self.wheel.tick {
            return;
        }
        let steps = (done - self.wheel.tick).min(SLOTS as u64);
        // Truncated to 32 bits on purpose, as the records' ticks are.
        let done_rel = done.wrapping_sub(self.wheel.epoch) as u32;
        for i in 1..=steps {
            let bucket = ((self.wheel.tick + i) % SLOTS as u64) as usize;
            let mut at = self.wheel.heads[bucket];
            while let Some(c) = self.get(at) {
                let next = c.timer[1];
                if !before(done_rel, c.deadline_tick) {
                    out.push((at, c.generation));
                    self.unlink(at);
                }
                at = next;
            }
        }
        self.wheel.tick = done;
    }
}
