//! A worker's timer wheel: connection timeouts on the injected clock.
//!
//! A hashed wheel of [`SLOTS`] slots of [`TICK_NS`] each, as DPVS's per-lcore wheel: arming is
//! O(1) (push into the slot of the deadline), expiry visits only the slots whose time has come,
//! and a timer further away than one turn of the wheel simply stays in its slot until a visit
//! finds its deadline reached. Timers are never cancelled: each carries the generation of the
//! timeout it stands for, and the owner ignores an expiry whose generation is stale (a
//! connection that saw traffic re-arms with a new generation). A clock that jumps (a capture
//! with a gap, a test that skips an hour) costs one visit of every slot, not one per tick.
//!
//! An armed timer is 12 bytes (one per connection, the memory budget counts them): its
//! deadline is kept as the tick it falls in, counted from the wheel's start in 32 bits and
//! compared with wrapping arithmetic, which holds for deadlines up to 248 days ahead.

/// Length of a tick, nanoseconds (10 ms).
pub const TICK_NS: u64 = 10_000_000;
/// Slots in the wheel (one turn: about 41 s).
pub const SLOTS: usize = 4096;

/// A timer that fired: the key and generation it was armed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// What the timer is for (a connection slot).
    pub key: u32,
    /// The generation it was armed with.
    pub generation: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u32,
    generation: u32,
    /// The tick the deadline falls in, from the wheel's `epoch` (wrapping).
    tick: u32,
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<Entry>>,
    /// The last tick whose slot has been visited (every tick up to it has wholly passed).
    tick: u64,
    /// The tick the wheel started at: entries count their ticks from it.
    epoch: u64,
    armed: usize,
}

impl TimerWheel {
    /// A wheel whose time starts at `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        let tick = (now_ns / TICK_NS).saturating_sub(1);
        TimerWheel { slots: vec![Vec::new(); SLOTS], tick, epoch: tick, armed: 0 }
    }

    /// Timers armed and not yet fired (stale ones included).
    pub fn len(&self) -> usize {
        self.armed
    }

    /// No timer armed.
    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    /// Arms a timer for `key` at `deadline_ns`. A deadline in the past fires at the next
    /// [`Self::advance`].
    pub fn arm(&mut self, key: u32, generation: u32, deadline_ns: u64) {
        let t = (deadline_ns / TICK_NS).max(self.tick + 1);
        // Truncated to 32 bits on purpose: compared wrapping (see the module's docs).
        let tick = t.wrapping_sub(self.epoch) as u32;
        self.slots[(t % SLOTS as u64) as usize].push(Entry { key, generation, tick });
        self.armed += 1;
    }

    /// Moves time to `now_ns` and appends every timer whose deadline is before it, up to one
    /// tick late: only ticks that have wholly passed are visited (a timer fires once the tick
    /// its deadline falls in is over, never before its deadline).
    pub fn advance(&mut self, now_ns: u64, out: &mut Vec<Expired>) {
        let Some(done) = (now_ns / TICK_NS).checked_sub(1) else { return };
        if done <= self.tick {
            return;
        }
        let steps = (done - self.tick).min(SLOTS as u64);
        // Truncated to 32 bits on purpose, as the entries' ticks are.
        let done_rel = done.wrapping_sub(self.epoch) as u32;
        for i in 1..=steps {
            let slot = ((self.tick + i) % SLOTS as u64) as usize;
            let entries = &mut self.slots[slot];
            let before = entries.len();
            entries.retain(|e| {
                // The entry's tick is at most 2^31 ticks from now either way: it has come when
                // the wrapping distance from it to now is under half the range.
                if done_rel.wrapping_sub(e.tick) < 1 << 31 {
                    out.push(Expired { key: e.key, generation: e.generation });
                    false
                } else {
                    true
                }
            });
            self.armed -= before - entries.len();
        }
        self.tick = done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn timers_fire_at_their_deadline_not_before() {
        let mut w = TimerWheel::new(0);
        w.arm(1, 0, 3 * S);
        w.arm(2, 0, 90 * S); // beyond one turn
        w.arm(3, 7, S / 2);
        let mut out = Vec::new();
        w.advance(S, &mut out);
        assert_eq!(out, vec![Expired { key: 3, generation: 7 }]);
        out.clear();
        w.advance(3 * S - TICK_NS, &mut out);
        assert!(out.is_empty());
        w.advance(3 * S + TICK_NS, &mut out);
        assert_eq!(out, vec![Expired { key: 1, generation: 0 }], "at most a tick late");
        out.clear();
        for t in 4..90 {
            w.advance(t * S, &mut out);
            assert!(out.is_empty(), "key 2 fired early at {t} s");
        }
        w.advance(90 * S + TICK_NS, &mut out);
        assert_eq!(out, vec![Expired { key: 2, generation: 0 }]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_jump_of_an_hour_fires_everything_due_once() {
        let mut w = TimerWheel::new(0);
        for k in 0..1000 {
            w.arm(k, 0, u64::from(k) * 7 * S);
        }
        let mut out = Vec::new();
        w.advance(3600 * S + TICK_NS, &mut out);
        let mut keys: Vec<u32> = out.iter().map(|e| e.key).collect();
        keys.sort_unstable();
        let due: Vec<u32> = (0..1000).filter(|k| u64::from(*k) * 7 <= 3600).collect();
        assert_eq!(keys, due);
        assert_eq!(w.len(), 1000 - due.len());
    }

    #[test]
    fn a_past_deadline_fires_at_the_next_advance() {
        let mut w = TimerWheel::new(100 * S);
        w.arm(9, 1, 5 * S);
        let mut out = Vec::new();
        w.advance(100 * S + TICK_NS, &mut out);
        assert_eq!(out, vec![Expired { key: 9, generation: 1 }]);
    }

    #[test]
    fn deadlines_across_the_32_bit_tick_wrap_fire_on_time() {
        let start = 7 * S;
        let mut w = TimerWheel::new(start);
        let mut out = Vec::new();
        // Jump to 10 ticks before the entries' 32-bit tick count wraps (one visit of every
        // slot, as any jump), then arm across the wrap.
        let near_wrap = start + ((1u64 << 32) - 10) * TICK_NS;
        w.advance(near_wrap, &mut out);
        assert!(out.is_empty());
        w.arm(1, 0, near_wrap + 30 * TICK_NS);
        w.arm(2, 0, near_wrap + 5 * TICK_NS);
        w.advance(near_wrap + 20 * TICK_NS, &mut out);
        assert_eq!(out, vec![Expired { key: 2, generation: 0 }], "the one due before the wrap, only");
        out.clear();
        w.advance(near_wrap + 29 * TICK_NS, &mut out);
        assert!(out.is_empty(), "after the wrap, not early");
        w.advance(near_wrap + 32 * TICK_NS, &mut out);
        assert_eq!(out, vec![Expired { key: 1, generation: 0 }]);
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;

    #[test]
    fn a_timer_due_later_in_the_current_tick_fires_at_the_next_advance() {
        // The regression: a deadline inside the tick `now` is in was skipped for a whole turn.
        let mut w = TimerWheel::new(0);
        let mut out = Vec::new();
        w.advance(1_000_000_000 + 2_000_000, &mut out);
        w.arm(5, 0, 1_000_000_000 + 6_000_000);
        w.advance(1_000_000_000 + 4_000_000, &mut out);
        assert!(out.is_empty(), "not yet due");
        w.advance(1_000_000_000 + 12_000_000, &mut out);
        assert_eq!(out, vec![Expired { key: 5, generation: 0 }], "due, at most a tick late");
    }

    #[test]
    fn small_steps_fire_too() {
        let mut w = TimerWheel::new(5 * 1_000_000_000 + 3);
        w.arm(1, 0, 6_500_000_000);
        let mut out = Vec::new();
        let mut t = 5_000_000_003u64;
        while out.is_empty() && t < 10_000_000_000 {
            t += 1_234_567;
            w.advance(t, &mut out);
        }
        assert!((6_500_000_000..6_520_000_000).contains(&t), "fired at {t}");
    }
}
