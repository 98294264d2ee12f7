//! One exception ring: the packets the NIC punts to one slow-path worker, copied out of their
//! DMA buffers into pooled frames, the consumer index handed back with one doorbell per batch.

use super::pool::FramePool;
use crate::dma::DmaRegion;
use crate::rings::{Consumer, RingMem};
use crate::transport::Transport;
use rtl_spec::formats::ExceptionDesc;

/// A punted packet.
#[derive(Clone, Debug)]
pub struct Exception {
    /// Its descriptor.
    pub desc: ExceptionDesc,
    /// The frame as received (a pooled buffer: give it back with
    /// [`super::Queues::recycle`] when done).
    pub frame: Vec<u8>,
}

/// The host side of one exception ring.
#[derive(Debug)]
pub struct ExceptionQueue {
    ring: Consumer<ExceptionDesc>,
    buffers: DmaRegion,
    buf_size: usize,
    log2: u32,
    /// The BAR0 offset that re-arms this ring's interrupt vector, when it has one.
    pub(crate) rearm: Option<u32>,
    got: Vec<(u32, ExceptionDesc)>,
}

impl ExceptionQueue {
    pub(crate) fn new(mem: RingMem, buffers: DmaRegion, buf_size: u32) -> Self {
        let log2 = mem.log2;
        ExceptionQueue {
            ring: Consumer::new(mem),
            buffers,
            buf_size: buf_size as usize,
            log2,
            rearm: None,
            got: Vec::new(),
        }
    }

    /// Takes up to `max` punted packets into `out`, their frames from `pool`. Returns how many.
    pub(crate) fn poll(
        &mut self,
        t: &mut dyn Transport,
        pool: &mut FramePool,
        out: &mut Vec<Exception>,
        max: usize,
    ) -> usize {
        self.got.clear();
        let n = self.ring.poll(t, &mut self.got, max);
        for &(index, desc) in &self.got {
            let slot = rtl_spec::ring::slot(index, self.log2) as usize;
            let mut frame = pool.take();
            frame.resize(usize::from(desc.length.get()).min(self.buf_size), 0);
            self.buffers.read(slot * self.buf_size, &mut frame);
            out.push(Exception { desc, frame });
        }
        if n > 0 {
            if let Some(reg) = self.rearm {
                t.write32(reg, 1);
            }
        }
        n
    }
}
