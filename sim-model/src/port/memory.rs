//! The in-memory port: a wire made of two queues, for tests.
//!
//! The test keeps a [`MemoryPortHandle`] and plays the other end of the wire: it pushes frames
//! the model will receive, takes the frames the model sent and pulls the cable. The port and
//! its handles share one `Arc<Mutex<..>>`, so the handle can live on another thread than the
//! model.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Port, RxBurst, RxFrame};

#[derive(Debug)]
struct Wire {
    rx: VecDeque<RxFrame>,
    tx: Vec<Vec<u8>>,
    link_up: bool,
}

fn lock(wire: &Mutex<Wire>) -> MutexGuard<'_, Wire> {
    // A test that panicked while holding the lock must not turn every later call into a second
    // panic: the queues are still consistent (each operation is a single push or take).
    wire.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A port whose wire is a pair of in-memory queues (see [`MemoryPortHandle`]).
#[derive(Debug)]
pub struct MemoryPort {
    wire: Arc<Mutex<Wire>>,
}

/// The test's end of a [`MemoryPort`]'s wire. Cloning it gives another handle on the same wire.
#[derive(Debug, Clone)]
pub struct MemoryPortHandle {
    wire: Arc<Mutex<Wire>>,
}

impl MemoryPort {
    /// A port with empty queues and the link up, and the handle that drives it.
    #[allow(clippy::new_ret_no_self)] // The handle is the point: a port alone is useless.
    pub fn new() -> (MemoryPort, MemoryPortHandle) {
        let wire = Arc::new(Mutex::new(Wire { rx: VecDeque::new(), tx: Vec::new(), link_up: true }));
        (MemoryPort { wire: Arc::clone(&wire) }, MemoryPortHandle { wire })
    }
}

impl MemoryPortHandle {
    /// Queues a frame for the model to receive, with its arrival time if the test wants one.
    pub fn push_rx(&self, frame: impl Into<Vec<u8>>, timestamp_ns: Option<u64>) {
        lock(&self.wire).rx.push_back(RxFrame { data: frame.into(), timestamp_ns });
    }

    /// Takes every frame the model sent since the last call, oldest first.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.wire).tx)
    }

    /// Sets the link state. While the link is down, frames the model sends are lost (as on a
    /// real wire) and queued received frames stay queued until it comes back.
    pub fn set_link(&self, up: bool) {
        lock(&self.wire).link_up = up;
    }

    /// How many frames are queued for the model and not yet received.
    pub fn rx_pending(&self) -> usize {
        lock(&self.wire).rx.len()
    }
}

impl Port for MemoryPort {
    fn recv_burst(&mut self, burst: &mut RxBurst, max: usize) -> io::Result<usize> {
        let mut wire = lock(&self.wire);
        if !wire.link_up {
            return Ok(0);
        }
        let n = max.min(wire.rx.len());
        for frame in wire.rx.drain(..n) {
            burst.push(&frame.data, frame.timestamp_ns);
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut wire = lock(&self.wire);
        if wire.link_up {
            wire.tx.push(frame.to_vec());
        }
        Ok(())
    }

    fn link_up(&self) -> bool {
        lock(&self.wire).link_up
    }

    fn mac(&self) -> Option<[u8; 6]> {
        None
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pass_in_order_and_batches_respect_max() {
        let (mut port, handle) = MemoryPort::new();
        let mut out = RxBurst::default();
        assert_eq!(port.recv_burst(&mut out, 4).unwrap(), 0, "empty wire never blocks");
        for i in 0..5u8 {
            handle.push_rx(vec![i; 3], if i % 2 == 0 { Some(u64::from(i) * 10) } else { None });
        }
        assert_eq!(port.recv_burst(&mut out, 3).unwrap(), 3);
        assert_eq!(handle.rx_pending(), 2);
        assert_eq!(port.recv_burst(&mut out, 3).unwrap(), 2);
        let firsts: Vec<u8> = out.iter().map(|f| f.data[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 3, 4]);
        assert_eq!(out.get(2).unwrap().timestamp_ns, Some(20));
        assert_eq!(out.get(3).unwrap().timestamp_ns, None);

        port.send(&[9, 9]).unwrap();
        port.send(&[8]).unwrap();
        assert_eq!(handle.take_tx(), vec![vec![9, 9], vec![8]]);
        assert!(handle.take_tx().is_empty(), "take_tx drains");
    }

    #[test]
    fn link_down_holds_rx_and_drops_tx() {
        let (mut port, handle) = MemoryPort::new();
        let other = handle.clone();
        other.set_link(false);
        assert!(!port.link_up());
        handle.push_rx(vec![1], None);
        let mut out = RxBurst::default();
        assert_eq!(port.recv_burst(&mut out, 8).unwrap(), 0);
        port.send(&[2]).unwrap();
        assert!(handle.take_tx().is_empty());
        other.set_link(true);
        assert!(port.link_up());
        assert_eq!(port.recv_burst(&mut out, 8).unwrap(), 1);
    }

    #[test]
    fn handle_works_from_another_thread() {
        let (mut port, handle) = MemoryPort::new();
        std::thread::spawn(move || handle.push_rx(vec![5; 60], Some(1))).join().unwrap();
        let mut out = RxBurst::default();
        assert_eq!(port.recv_burst(&mut out, 1).unwrap(), 1);
        assert_eq!(out.get(0).unwrap().data.len(), 60);
    }
}
