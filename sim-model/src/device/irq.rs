//! Interrupts: the source → vector map, arming and coalescing.
//!
//! A source is a ring (numbered as the rings). When the device produces entries on a source
//! whose `SOURCE_VECTOR.ENABLE` is set, they count toward its vector. An armed vector fires
//! once `COAL_COUNT` entries are pending or `COAL_USEC` have passed since the first one (both
//! 0: at once); firing disarms it. Arming a vector whose sources already hold unconsumed
//! entries fires it at once, so a host that drains, then arms, never misses a wake-up.

use super::Device;

/// Called with the vector number when a vector fires (an eventfd write, a callback...).
pub type InterruptSink = Box<dyn FnMut(u16) + Send>;

/// Number of vectors.
pub const VECTORS: usize = 32;
/// Number of source entries in the map.
pub const SOURCES: usize = 64;

#[derive(Clone, Copy, Default)]
pub(crate) struct Vector {
    pub armed: bool,
    pub coal_usec: u32,
    pub coal_count: u32,
    pub fired: u32,
    pub pending: u32,
    pub first_pending_ns: u64,
}

pub(crate) struct Irq {
    pub source_vector: [u32; SOURCES],
    pub vectors: [Vector; VECTORS],
    pub sink: Option<InterruptSink>,
}

impl Irq {
    pub fn new() -> Self {
        Irq { source_vector: [0; SOURCES], vectors: [Vector::default(); VECTORS], sink: None }
    }

    pub fn reset(&mut self) {
        self.source_vector = [0; SOURCES];
        self.vectors = [Vector::default(); VECTORS];
    }

    /// The vector of `source`, if the source raises interrupts.
    fn vector_of(&self, source: u32) -> Option<usize> {
        let map = *self.source_vector.get(source as usize)?;
        let enabled = rtl_spec::regs::interrupts::SOURCE_VECTOR::ENABLE.get(u64::from(map)) != 0;
        let v = rtl_spec::regs::interrupts::SOURCE_VECTOR::VECTOR.get(u64::from(map)) as usize;
        (enabled && v < VECTORS).then_some(v)
    }

    fn fire(&mut self, v: usize) {
        let vec = &mut self.vectors[v];
        vec.armed = false;
        vec.pending = 0;
        vec.fired = vec.fired.wrapping_add(1);
        if let Some(sink) = self.sink.as_mut() {
            sink(v as u16);
        }
    }

    fn due(vec: &Vector, now_ns: u64) -> bool {
        if vec.pending == 0 {
            return false;
        }
        let immediate = vec.coal_count == 0 && vec.coal_usec == 0;
        let by_count = vec.coal_count != 0 && vec.pending >= vec.coal_count;
        let by_time = vec.coal_usec != 0
            && now_ns.saturating_sub(vec.first_pending_ns) >= u64::from(vec.coal_usec) * 1000;
        immediate || by_count || by_time
    }
}

impl Device {
    /// Records `n` new entries on ring `source`.
    pub(super) fn irq_notify(&mut self, source: u32, n: u32) {
        let Some(v) = self.irq.vector_of(source) else { return };
        let now = self.clock.now_ns();
        let vec = &mut self.irq.vectors[v];
        if vec.pending == 0 {
            vec.first_pending_ns = now;
        }
        vec.pending = vec.pending.saturating_add(n);
        if vec.armed && Irq::due(vec, now) {
            self.irq.fire(v);
        }
    }

    /// Arms vector `v`; fires at once when a source mapped to it has unconsumed entries.
    pub(super) fn irq_arm(&mut self, v: usize) {
        if v >= VECTORS {
            return;
        }
        self.irq.vectors[v].armed = true;
        let waiting = (0..self.rings.len() as u32).any(|r| {
            self.irq.vector_of(r) == Some(v)
                && !self.rings[r as usize].host_produced()
                && self.rings[r as usize].used() > 0
        });
        if waiting {
            self.irq.fire(v);
        }
    }

    /// Fires armed vectors whose coalescing time has passed.
    pub(super) fn irq_timers(&mut self, now_ns: u64) {
        for v in 0..VECTORS {
            let vec = &self.irq.vectors[v];
            if vec.armed && Irq::due(vec, now_ns) {
                self.irq.fire(v);
            }
        }
    }
}
