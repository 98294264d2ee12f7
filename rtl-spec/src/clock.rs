//! Injected time, as both sides read it: the [`Clock`] trait the model's datapath, ager and
//! `CONTROL.TIMESTAMP` take their time from, and the host's slow path and timers too, so that
//! tests and `replay` drive one clock for both; [`ManualClock`] for them, [`SystemClock`] for a
//! live run. Here rather than in the model so that host code names a clock without linking the
//! model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A source of device time in nanoseconds. Monotonic, starting anywhere.
pub trait Clock: Send + Sync {
    /// The current device time, nanoseconds.
    fn now_ns(&self) -> u64;
}

/// Time that moves only when told to: for tests and captures.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        Self { now: AtomicU64::new(start_ns) }
    }
    /// Moves the clock to `ns`. Time never goes backwards: an earlier value is ignored.
    pub fn set(&self, ns: u64) {
        self.now.fetch_max(ns, Ordering::SeqCst);
    }
    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Wall-clock time since the clock was made: for a model running live.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self { start: Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = ManualClock::new(10);
        c.advance(5);
        assert_eq!(c.now_ns(), 15);
        c.set(3);
        assert_eq!(c.now_ns(), 15);
        c.set(100);
        assert_eq!(c.now_ns(), 100);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::default();
        let a = c.now_ns();
        assert!(c.now_ns() >= a);
    }
}
