//! [`RxBurst`]: the frames one receive call hands the model, in one reusable buffer.
//!
//! A burst is what the hardware's pipeline takes at a time (up to [`BURST`] frames): every
//! frame's bytes sit back to back in one `Vec<u8>`, and a small table says where each starts,
//! how long it is and when it arrived. The model keeps one burst and clears it before every
//! receive, so after the first few calls (the buffer grows to the largest burst seen and never
//! shrinks) receiving allocates nothing, whatever the port.

/// Frames in a full burst: the hardware pipeline's depth, and what the model asks a port for.
pub const BURST: usize = 32;

/// Where one frame of a burst is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    offset: usize,
    len: usize,
    timestamp_ns: Option<u64>,
}

/// Frames received together, in one contiguous buffer reused from call to call.
#[derive(Debug, Default, Clone)]
pub struct RxBurst {
    /// Frame bytes, back to back. Its length is the high-water mark, never shrunk: `used` says
    /// how much of it this burst holds, so a reused burst neither reallocates nor zeroes.
    data: Vec<u8>,
    used: usize,
    slots: Vec<Slot>,
}

/// One frame of a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstFrame<'a> {
    /// The Ethernet frame, from the destination MAC to the end of the payload (no FCS).
    pub data: &'a [u8],
    /// When it arrived, in nanoseconds, if the source knows it (a capture's timestamp, a test's
    /// chosen time); `None` when the model stamps it with its own clock.
    pub timestamp_ns: Option<u64>,
}

impl RxBurst {
    /// An empty burst with room for `frames` frames of `bytes` bytes in all.
    pub fn with_capacity(frames: usize, bytes: usize) -> Self {
        Self { data: vec![0; bytes], used: 0, slots: Vec::with_capacity(frames) }
    }

    /// Forgets every frame, keeping the memory.
    pub fn clear(&mut self) {
        self.used = 0;
        self.slots.clear();
    }

    /// Frames in the burst.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the burst holds no frame.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Frame `i` (in arrival order), if there is one.
    pub fn get(&self, i: usize) -> Option<BurstFrame<'_>> {
        let s = self.slots.get(i)?;
        Some(BurstFrame { data: &self.data[s.offset..s.offset + s.len], timestamp_ns: s.timestamp_ns })
    }

    /// The frames in arrival order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = BurstFrame<'_>> + '_ {
        self.slots.iter().map(|s| BurstFrame {
            data: &self.data[s.offset..s.offset + s.len],
            timestamp_ns: s.timestamp_ns,
        })
    }

    /// Appends a copy of `frame`.
    pub fn push(&mut self, frame: &[u8], timestamp_ns: Option<u64>) {
        self.push_with(frame.len(), timestamp_ns, |dst| {
            dst.copy_from_slice(frame);
            frame.len()
        });
    }

    /// Appends a frame of at most `max_len` bytes written in place by `fill`, which gets a
    /// buffer of `max_len` bytes (holding stale bytes) and returns how many it wrote: ports copy
    /// straight from their rings into the burst this way. Returning more than `max_len` is a
    /// bug of the caller and is cut to `max_len`.
    pub fn push_with(
        &mut self,
        max_len: usize,
        timestamp_ns: Option<u64>,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) {
        let offset = self.used;
        let end = offset + max_len;
        if self.data.len() < end {
            // Grows to the high-water mark once; later bursts reuse it as it is.
            self.data.resize(end.max(2 * self.data.len()), 0);
        }
        let len = fill(&mut self.data[offset..end]).min(max_len);
        self.used = offset + len;
        self.slots.push(Slot { offset, len, timestamp_ns });
    }

    /// Bytes of frame data the burst can hold before it grows.
    pub fn byte_capacity(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_their_order_bytes_and_times() {
        let mut b = RxBurst::with_capacity(4, 16);
        assert!(b.is_empty());
        b.push(&[1, 2, 3], Some(7));
        b.push(&[], None);
        b.push_with(10, None, |dst| {
            dst[..2].copy_from_slice(&[9, 9]);
            2
        });
        assert_eq!(b.len(), 3);
        let frames: Vec<_> = b.iter().map(|f| (f.data.to_vec(), f.timestamp_ns)).collect();
        assert_eq!(frames, vec![(vec![1, 2, 3], Some(7)), (vec![], None), (vec![9, 9], None)]);
        assert_eq!(b.get(2).unwrap().data, &[9, 9]);
        assert!(b.get(3).is_none());
    }

    #[test]
    fn a_reused_burst_does_not_grow_again() {
        let mut b = RxBurst::default();
        for _ in 0..BURST {
            b.push(&[0xab; 1514], None);
        }
        let cap = b.byte_capacity();
        assert!(cap >= BURST * 1514);
        for round in 0..10u8 {
            b.clear();
            for _ in 0..BURST {
                b.push(&[round; 1514], None);
            }
            assert_eq!(b.byte_capacity(), cap, "no growth once the high-water mark is reached");
            assert!(b.iter().all(|f| f.data.len() == 1514 && f.data.iter().all(|&x| x == round)));
        }
    }

    #[test]
    fn an_overlong_fill_is_cut() {
        let mut b = RxBurst::default();
        b.push_with(4, None, |_| 100);
        assert_eq!(b.get(0).unwrap().data.len(), 4);
    }
}
