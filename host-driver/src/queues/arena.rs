//! Where the inject ring's frames sit in its DMA buffer: packed one after another, each on a
//! cache line of its own, and reused in ring order as the device consumes them.
//!
//! A slot per ring entry sized for the largest frame (16 KiB) puts every inject on a page of
//! its own, and a 1024-entry ring cycles through 16 MiB. Packed, consecutive small frames share
//! pages and the buffer is 2 MiB (a speed difference in `sluice bench --only cps` could not be
//! told from the noise of the VM it was measured on; the memory is the gain). The device reads each frame at
//! the address its descriptor gives, so this is the host's business alone: the ring format does
//! not change.
//!
//! Frames leave in ring order, so the bytes in flight are one contiguous run (possibly wrapped)
//! from the start of the oldest unconsumed entry's frame to the end of the newest; the arena
//! keeps each entry's start to know where that run begins once the consumer moves.

/// Alignment of each frame's start (one cache line).
const ALIGN: usize = 64;

/// The byte layout of the inject buffer.
#[derive(Debug)]
pub(crate) struct InjectArena {
    /// Bytes in the buffer.
    size: usize,
    /// Where the next frame goes.
    head: usize,
    /// Each ring entry's frame offset, by slot.
    starts: Vec<usize>,
    log2: u32,
}

impl InjectArena {
    /// An arena of `size` bytes for a ring of `1 << log2` entries. `size` is a multiple of
    /// [`ALIGN`].
    pub(crate) fn new(size: usize, log2: u32) -> Self {
        debug_assert_eq!(size % ALIGN, 0);
        InjectArena { size, head: 0, starts: vec![0; 1 << log2], log2 }
    }

    /// Room for a `len`-byte frame that will be ring entry `prod`, given that the device has
    /// consumed every entry before `cons`: the frame's offset, or `None` when the bytes still in
    /// flight leave no contiguous run that long (the caller reads the consumer index again, or
    /// reports the ring full).
    pub(crate) fn place(&mut self, len: usize, prod: u32, cons: u32) -> Option<usize> {
        let need = len.max(1).next_multiple_of(ALIGN);
        let at = if prod == cons {
            // Nothing in flight: start over at the front, the lines most recently used.
            (need <= self.size).then_some(0)
        } else {
            let tail = self.starts[self.slot(cons)];
            if self.head > tail {
                // In flight: [tail, head). Free: [head, size), then [0, tail).
                if self.head + need <= self.size {
                    Some(self.head)
                } else {
                    // Strictly less, so `head` never catches up with `tail` (which would read
                    // as nothing in flight).
                    (need < tail).then_some(0)
                }
            } else {
                // Wrapped: in flight [tail, size) and [0, head). Free: [head, tail).
                (self.head + need < tail).then_some(self.head)
            }
        }?;
        let slot = self.slot(prod);
        self.starts[slot] = at;
        self.head = at + need;
        Some(at)
    }

    fn slot(&self, index: u32) -> usize {
        rtl_spec::ring::slot(index, self.log2) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_share_lines_of_one_page() {
        let mut a = InjectArena::new(4096, 4);
        let offsets: Vec<usize> = (0..4).map(|i| a.place(60, i, 0).unwrap()).collect();
        assert_eq!(offsets, vec![0, 64, 128, 192]);
    }

    #[test]
    fn a_frame_that_does_not_fit_before_the_end_wraps_once_the_front_is_consumed() {
        let mut a = InjectArena::new(1024, 4);
        assert_eq!(a.place(512, 0, 0), Some(0));
        assert_eq!(a.place(384, 1, 0), Some(512));
        // 128 bytes left at the end: 256 do not fit, and the front is still in flight.
        assert_eq!(a.place(256, 2, 0), None);
        // Entry 0 consumed: the front is free, up to (not onto) entry 1's start.
        assert_eq!(a.place(256, 2, 1), Some(0));
        assert_eq!(a.place(256, 3, 1), None, "would reach entry 1's bytes");
        assert_eq!(a.place(192, 3, 1), Some(256));
    }

    #[test]
    fn an_empty_ring_starts_over_and_a_too_large_frame_never_fits() {
        let mut a = InjectArena::new(1024, 4);
        assert_eq!(a.place(1000, 0, 0), Some(0));
        assert_eq!(a.place(100, 1, 1), Some(0));
        assert_eq!(a.place(1025, 2, 2), None);
    }

    /// Drives the arena with random frame sizes and random consumption and checks, against a
    /// plain list of what is in flight, that no two in-flight frames overlap, every frame lies
    /// inside the buffer and on a line of its own, a frame is never refused with nothing in
    /// flight, and the run does fill the buffer at times.
    #[test]
    fn in_flight_frames_never_overlap() {
        let log2 = 5;
        let size = 32768;
        let mut a = InjectArena::new(size, log2);
        let (mut prod, mut cons) = (0u32, 0u32);
        let mut flight = std::collections::VecDeque::<(usize, usize)>::new();
        // A small xorshift: deterministic, no dependency.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut refused = 0;
        for _ in 0..100_000 {
            let r = next();
            if r % 3 == 0 && cons != prod {
                cons = cons.wrapping_add(1);
                flight.pop_front();
                continue;
            }
            if prod.wrapping_sub(cons) == 1 << log2 {
                continue;
            }
            let len = [60usize, 74, 1514, 2048, 9000][(r >> 8) as usize % 5];
            match a.place(len, prod, cons) {
                Some(at) => {
                    assert!(at % ALIGN == 0 && at + len <= size);
                    for &(s, l) in &flight {
                        assert!(at + len <= s || s + l <= at, "{at}+{len} overlaps {s}+{l}");
                    }
                    flight.push_back((at, len));
                    prod = prod.wrapping_add(1);
                }
                None => {
                    refused += 1;
                    assert!(!flight.is_empty(), "refused with nothing in flight");
                }
            }
        }
        assert!(refused > 0, "the run never filled the arena");
    }
}
