//! Frame buffers for punted and injected packets, recycled instead of allocated per frame
//! (ixy's mempool, with owned `Vec<u8>` buffers instead of DMA-mapped ones: the device's DMA
//! buffers stay in the rings, and a frame is copied out of or into them once).
//!
//! The pool is a free list owned by whoever owns the queues (the engine). Buffers leave it
//! with every punted frame ([`super::Queues::recv_exceptions`]) and come back when their user
//! is done ([`FramePool::give`]); a steady state allocates nothing. A buffer that is not given
//! back is simply freed: the pool makes a new one when it runs dry.

/// A free list of frame buffers of at least one size.
#[derive(Debug)]
pub struct FramePool {
    free: Vec<Vec<u8>>,
    size: usize,
    max: usize,
    made: u64,
}

impl FramePool {
    /// A pool of buffers of `size` bytes' capacity, keeping at most `max` spare ones.
    pub fn new(size: usize, max: usize) -> FramePool {
        FramePool { free: Vec::with_capacity(max), size, max, made: 0 }
    }

    /// An empty buffer with room for a whole frame: a spare one, or a new one when none is left.
    pub fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(b) => b,
            None => {
                self.made += 1;
                Vec::with_capacity(self.size)
            }
        }
    }

    /// Gives a buffer back (emptied here). One too small to hold a frame, or beyond the pool's
    /// bound, is freed instead.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() >= self.size && self.free.len() < self.max {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Buffers the pool had to make since it was created (none in a steady state).
    pub fn made(&self) -> u64 {
        self.made
    }

    /// Spare buffers now.
    pub fn spare(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::FramePool;

    #[test]
    fn buffers_come_back_emptied_and_the_pool_stays_bounded() {
        let mut p = FramePool::new(64, 2);
        let mut a = p.take();
        a.extend_from_slice(&[1, 2, 3]);
        let b = p.take();
        let c = p.take();
        assert_eq!(p.made(), 3);
        let ptr = a.as_ptr();
        p.give(a);
        p.give(b);
        p.give(c);
        assert_eq!(p.spare(), 2, "the third spare is freed");
        p.give(Vec::with_capacity(8));
        assert_eq!(p.spare(), 2, "a small buffer is not kept");
        let again = p.take();
        let again2 = p.take();
        assert!(again.is_empty() && again2.is_empty());
        assert!([again.as_ptr(), again2.as_ptr()].contains(&ptr), "the same memory, reused");
        assert_eq!(p.made(), 3, "nothing new was made");
    }
}
