//! The in-process model on a thread of its own, as a card sits beside the host: the thread
//! moves the frames between the model's ports and its datapath and runs its timers, while the
//! driver, on the caller's thread, reaches the same device through its registers and rings
//! (punted frames come over the exception rings, as from a card). The device is shared under
//! one lock, taken per register access by the driver and per burst by the thread.
//!
//! The thread polls adaptively: it spins while bursts keep coming and for [`SPIN_ROUNDS`]
//! empty rounds after, then sleeps in `poll()` on the ports' descriptors (at most
//! [`IDLE_SLEEP`], so timers still run), so an idle appliance costs nothing.

use super::Transport;
use super::inprocess::{InProcess, SharedInProcess};
use crate::dma::DmaRegion;
use crate::error::DriverError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;

/// Empty rounds the thread spins through before it sleeps.
pub const SPIN_ROUNDS: u32 = 2_000;
/// The longest sleep of an idle thread (the model's timers need it back this often).
pub const IDLE_SLEEP: Duration = Duration::from_micros(500);
/// Frames taken from each port per round.
const BURST: usize = 32;

/// The in-process model, driven by a thread of its own.
pub struct ThreadedInProcess {
    shared: SharedInProcess,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadedInProcess {
    /// Starts the thread for `model`.
    pub fn start(model: InProcess) -> Result<Self, DriverError> {
        let shared = SharedInProcess::new(model);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sluice-nic".into())
                .spawn(move || datapath_loop(&shared, &stop))
                .map_err(|e| DriverError::io("starting the model's datapath thread", e))?
        };
        Ok(ThreadedInProcess { shared, stop, thread: Some(thread) })
    }

    /// The model, shared (for tests and statistics).
    pub fn shared(&self) -> &SharedInProcess {
        &self.shared
    }
}

fn datapath_loop(shared: &SharedInProcess, stop: &AtomicBool) {
    let fds = shared.with_device(|d| d.port_fds());
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let moved = shared.with_device(|d| {
            let n = d.poll_ports(BURST);
            d.tick();
            n
        });
        if moved > 0 {
            idle = 0;
        } else if idle < SPIN_ROUNDS {
            idle += 1;
            std::hint::spin_loop();
        } else {
            sim_model::device::wait_readable(&fds, IDLE_SLEEP);
        }
    }
}

impl Drop for ThreadedInProcess {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Transport for ThreadedInProcess {
    fn describe(&self) -> String {
        format!("{} (datapath on its own thread)", self.shared.describe())
    }
    fn read32(&mut self, offset: u32) -> u32 {
        self.shared.read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.shared.write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.shared.read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.shared.write64(offset, value);
    }
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        self.shared.alloc_dma(len)
    }
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        self.shared.free_dma(region)
    }
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        self.shared.interrupt(vector)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        self.shared.reset()
    }
    // The thread does the model's work: nothing to do on the driver's thread.
    fn service(&mut self) {}
}
