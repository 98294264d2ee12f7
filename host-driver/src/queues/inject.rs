//! The inject ring: frames the host sends out of a port unchanged, copied into the ring's DMA
//! buffer (packed, see the `arena` module) and published with one doorbell per batch.
//!
//! The device's consumer index is read from its register only when the ring looks full by the
//! last value read (a cached consumer index, as ixy's `tx_batch` keeps its clean index): the
//! free room computed from a stale index is never more than the real one, so the answer is the
//! same as reading the register for every frame, at one MMIO read per ring's worth of frames.

use super::arena::InjectArena;
use crate::dma::DmaRegion;
use crate::error::DriverError;
use crate::rings::{Producer, RingMem};
use crate::transport::Transport;
use rtl_spec::formats::InjectDesc;
use rtl_spec::ring::MAX_BUF_SIZE;
use zerocopy::little_endian::U64;

/// The largest frame the inject ring takes (the largest the device takes).
pub const INJECT_BUF_SIZE: usize = MAX_BUF_SIZE as usize;

/// Bytes of inject buffer per ring entry: frames are packed, so this is an average a ring full
/// of full-size (1514-byte) frames fits in; a ring of jumbo frames fills its buffer before its
/// entries, and the queue says so as it says a full ring.
const INJECT_BYTES_PER_ENTRY: usize = 2048;

/// Bytes of the inject buffer for a ring of `1 << log2` entries (room for two of the largest
/// frames at least).
pub fn inject_buffer_bytes(log2: u32) -> usize {
    (INJECT_BYTES_PER_ENTRY << log2).max(2 * INJECT_BUF_SIZE)
}

/// The host side of the inject ring.
#[derive(Debug)]
pub struct InjectQueue {
    ring: Producer<InjectDesc>,
    buffers: DmaRegion,
    arena: InjectArena,
    /// BAR0 offset of the ring's `RING_CONS`.
    cons_reg: u32,
    /// The consumer index as last read.
    cons: u32,
}

impl InjectQueue {
    pub(crate) fn new(mem: RingMem, buffers: DmaRegion, cons_reg: u32) -> Self {
        let arena = InjectArena::new(buffers.len(), mem.log2);
        InjectQueue { ring: Producer::new(mem), buffers, arena, cons_reg, cons: 0 }
    }

    /// Queues `frame` for port `port`; it leaves at the next [`Self::flush`]. A frame over
    /// [`INJECT_BUF_SIZE`], a full ring or a full buffer is [`DriverError::RingFull`].
    pub(crate) fn push(&mut self, t: &mut dyn Transport, port: u8, frame: &[u8]) -> Result<(), DriverError> {
        if frame.len() > INJECT_BUF_SIZE {
            return Err(DriverError::RingFull("inject"));
        }
        let prod = self.ring.prod();
        let mut at = None;
        if self.ring.free(self.cons) > 0 {
            at = self.arena.place(frame.len(), prod, self.cons);
        }
        if at.is_none() {
            self.cons = t.read32(self.cons_reg);
            if self.ring.free(self.cons) > 0 {
                at = self.arena.place(frame.len(), prod, self.cons);
            }
        }
        let Some(at) = at else { return Err(DriverError::RingFull("inject")) };
        self.buffers.write(at, frame);
        self.ring.push(InjectDesc {
            addr: U64::new(self.buffers.iova() + at as u64),
            length: (frame.len() as u16).into(),
            port,
            ..InjectDesc::default()
        });
        Ok(())
    }

    /// Publishes every queued frame with one doorbell.
    pub(crate) fn flush(&mut self, t: &mut dyn Transport) {
        self.ring.flush(t);
    }
}
