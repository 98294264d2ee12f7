//! One DMA ring as the device sees it: its registers, its indices and the rules for moving
//! them. Writing entries is the caller's business (it knows the format); this module owns
//! where they go and whether there is room.

use rtl_spec::codes::RingKind;
use rtl_spec::regs::ring_id;
use rtl_spec::ring;

/// Largest `SIZE_LOG2` the model accepts (the `MAX_SIZE_LOG2` register).
pub const MAX_SIZE_LOG2: u32 = 16;

/// A ring's state.
#[derive(Clone, Debug)]
pub struct Ring {
    pub kind: RingKind,
    pub entry_size: u32,
    pub base: u64,
    pub size_log2: u32,
    pub buf_base: u64,
    pub buf_size: u32,
    pub enabled: bool,
    pub config_error: bool,
    pub prod: u32,
    pub cons: u32,
    pub drops: u32,
    /// Exception rings: the punt reason of each slot's entry, and how many entries of each
    /// reason are produced and not consumed (`PUNT.REASON_SHARE` bounds them).
    reasons: Vec<u8>,
    outstanding: [u32; 16],
}

impl Ring {
    /// The ring with id `id`, at its reset values.
    pub fn new(id: u32) -> Self {
        let (kind, entry_size) = match id {
            ring_id::COMMAND => (RingKind::Command, 256),
            ring_id::COMPLETION => (RingKind::Completion, 64),
            ring_id::INJECT => (RingKind::Inject, 32),
            ring_id::EVENT => (RingKind::Event, 64),
            _ => (RingKind::Exception, 32),
        };
        Ring {
            kind,
            entry_size,
            base: 0,
            size_log2: 0,
            buf_base: 0,
            buf_size: 2048,
            enabled: false,
            config_error: false,
            prod: 0,
            cons: 0,
            drops: 0,
            reasons: Vec::new(),
            outstanding: [0; 16],
        }
    }

    /// Whether the host produces this ring's entries.
    pub fn host_produced(&self) -> bool {
        matches!(self.kind, RingKind::Command | RingKind::Inject)
    }

    /// Applies a write of `RING_CTRL.ENABLE`. Returns false when the configuration was refused.
    pub fn set_enabled(&mut self, enable: bool) -> bool {
        if !enable {
            self.enabled = false;
            return true;
        }
        let size_ok = (1..=MAX_SIZE_LOG2).contains(&self.size_log2);
        let base_ok = self.base % 64 == 0 && self.base != 0;
        let buf_ok = self.kind != RingKind::Exception
            || (self.buf_base % 64 == 0
                && self.buf_base != 0
                && (rtl_spec::ring::MIN_BUF_SIZE..=rtl_spec::ring::MAX_BUF_SIZE).contains(&self.buf_size)
                && self.buf_size % 64 == 0);
        if size_ok && base_ok && buf_ok {
            self.enabled = true;
            self.config_error = false;
            self.prod = 0;
            self.cons = 0;
            self.outstanding = [0; 16];
            self.reasons.clear();
            if self.kind == RingKind::Exception {
                self.reasons.resize(self.capacity() as usize, 0);
            }
            true
        } else {
            self.enabled = false;
            self.config_error = true;
            false
        }
    }

    /// Entries in the ring.
    pub fn capacity(&self) -> u32 {
        1 << self.size_log2
    }

    /// Entries produced and not consumed.
    pub fn used(&self) -> u32 {
        ring::used(self.prod, self.cons)
    }

    /// Whether a NIC-produced ring has no room.
    pub fn full(&self) -> bool {
        self.used() >= self.capacity()
    }

    /// Host address of the entry at free-running index `index`.
    pub fn entry_addr(&self, index: u32) -> u64 {
        self.base + u64::from(ring::slot(index, self.size_log2)) * u64::from(self.entry_size)
    }

    /// Host address of the packet buffer of the entry at `index` (exception rings).
    pub fn buffer_addr(&self, index: u32) -> u64 {
        self.buf_base + u64::from(ring::slot(index, self.size_log2)) * u64::from(self.buf_size)
    }

    /// The phase bit of the entry at `index`.
    pub fn phase(&self, index: u32) -> bool {
        ring::phase_for(index, self.size_log2)
    }

    /// Applies a doorbell write. For host-produced rings `value` is the new producer index, for
    /// the others the new consumer index. A value that would overfill the ring, or move the
    /// consumer backwards or past the producer, is ignored; returns whether it was taken.
    pub fn doorbell(&mut self, value: u32) -> bool {
        if !self.enabled {
            return false;
        }
        if self.host_produced() {
            if ring::used(value, self.cons) <= self.capacity() {
                self.prod = value;
                return true;
            }
        } else if ring::used(self.prod, value) <= self.used() {
            // The entries the host took leave their reasons' shares.
            while self.cons != value {
                let slot = ring::slot(self.cons, self.size_log2) as usize;
                if let Some(&r) = self.reasons.get(slot) {
                    let n = &mut self.outstanding[usize::from(r) & 15];
                    *n = n.saturating_sub(1);
                }
                self.cons = self.cons.wrapping_add(1);
            }
            return true;
        }
        false
    }

    /// Whether an entry of punt reason `reason` fits the reason's share, `percent` of the ring
    /// (100, 0 or more: the whole ring).
    pub fn within_share(&self, reason: u8, percent: u32) -> bool {
        if percent == 0 || percent >= 100 {
            return true;
        }
        u64::from(self.outstanding[usize::from(reason) & 15]) * 100
            < u64::from(percent) * u64::from(self.capacity())
    }

    /// Records that the entry at `index` holds a punt of `reason`.
    pub fn note_punt(&mut self, index: u32, reason: u8) {
        let slot = ring::slot(index, self.size_log2) as usize;
        if let Some(r) = self.reasons.get_mut(slot) {
            *r = reason;
            self.outstanding[usize::from(reason) & 15] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(id: u32, log2: u32) -> Ring {
        let mut r = Ring::new(id);
        r.base = 0x1000;
        r.buf_base = 0x10_0000;
        r.size_log2 = log2;
        assert!(r.set_enabled(true));
        r
    }

    #[test]
    fn bad_configurations_are_refused() {
        let mut r = Ring::new(ring_id::COMMAND);
        r.base = 0x1001;
        r.size_log2 = 4;
        assert!(!r.set_enabled(true));
        assert!(r.config_error && !r.enabled);
        r.base = 0x1000;
        r.size_log2 = 17;
        assert!(!r.set_enabled(true));
        let mut e = Ring::new(ring_id::EXCEPTION0);
        e.base = 0x1000;
        e.size_log2 = 4;
        e.buf_base = 0x2000;
        e.buf_size = 100;
        assert!(!e.set_enabled(true), "buffer size must be a multiple of 64");
        e.buf_size = 2048;
        assert!(e.set_enabled(true));
    }

    #[test]
    fn doorbells_cannot_overfill_or_rewind() {
        let mut c = enabled(ring_id::COMMAND, 2);
        assert!(c.doorbell(4));
        assert!(!c.doorbell(5), "5 entries in a 4-entry ring");
        c.cons = 4;
        assert!(c.doorbell(8));
        let mut e = enabled(ring_id::EVENT, 2);
        e.prod = 3;
        assert!(e.doorbell(2));
        assert!(!e.doorbell(1), "consumer moves backwards");
        assert!(!e.doorbell(4), "consumer passes the producer");
        assert!(e.doorbell(3));
    }

    #[test]
    fn addresses_and_phase_follow_the_slot() {
        let r = enabled(ring_id::EXCEPTION0, 3);
        assert_eq!(r.entry_addr(9), 0x1000 + 32);
        assert_eq!(r.buffer_addr(9), 0x10_0000 + 2048);
        assert!(r.phase(7) && !r.phase(8));
    }
}
