//! The inject ring: frames the host sends out of a port unchanged, copied into the ring's DMA
//! buffers and published with one doorbell per batch.
//!
//! The device's consumer index is read from its register only when the ring looks full by the
//! last value read (a cached consumer index, as ixy's `tx_batch` keeps its clean index): the
//! free room computed from a stale index is never more than the real one, so the answer is the
//! same as reading the register for every frame, at one MMIO read per ring's worth of frames.

use crate::dma::DmaRegion;
use crate::error::DriverError;
use crate::rings::{Producer, RingMem};
use crate::transport::Transport;
use rtl_spec::formats::InjectDesc;
use rtl_spec::ring::MAX_BUF_SIZE;
use zerocopy::little_endian::U64;

/// Bytes of DMA buffer per inject slot: the largest frame the device takes.
pub const INJECT_BUF_SIZE: usize = MAX_BUF_SIZE as usize;

/// The host side of the inject ring.
#[derive(Debug)]
pub struct InjectQueue {
    ring: Producer<InjectDesc>,
    buffers: DmaRegion,
    log2: u32,
    /// BAR0 offset of the ring's `RING_CONS`.
    cons_reg: u32,
    /// The consumer index as last read.
    cons: u32,
}

impl InjectQueue {
    pub(crate) fn new(mem: RingMem, buffers: DmaRegion, cons_reg: u32) -> Self {
        let log2 = mem.log2;
        InjectQueue { ring: Producer::new(mem), buffers, log2, cons_reg, cons: 0 }
    }

    /// Queues `frame` for port `port`; it leaves at the next [`Self::flush`]. A frame over
    /// [`INJECT_BUF_SIZE`] or a full ring is [`DriverError::RingFull`].
    pub(crate) fn push(&mut self, t: &mut dyn Transport, port: u8, frame: &[u8]) -> Result<(), DriverError> {
        if frame.len() > INJECT_BUF_SIZE {
            return Err(DriverError::RingFull("inject"));
        }
        if self.ring.free(self.cons) == 0 {
            self.cons = t.read32(self.cons_reg);
            if self.ring.free(self.cons) == 0 {
                return Err(DriverError::RingFull("inject"));
            }
        }
        let slot = rtl_spec::ring::slot(self.ring.prod(), self.log2) as usize;
        self.buffers.write(slot * INJECT_BUF_SIZE, frame);
        self.ring.push(InjectDesc {
            addr: U64::new(self.buffers.iova() + (slot * INJECT_BUF_SIZE) as u64),
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
