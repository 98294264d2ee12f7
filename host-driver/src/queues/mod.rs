//! The packet queues a driver lends to the code that moves packets (the slow-path engine):
//! every exception ring, the inject ring, and the frame pool their frames come from and go
//! back to.
//!
//! The [`crate::Nic`] builds them at bring-up and keeps the command, completion and event
//! rings; [`crate::Nic::take_queues`] hands the rest over as one [`Queues`], which its owner
//! drives without going through the `Nic` (each queue rings its own doorbell over the shared
//! [`crate::link::Link`]). A reset or a reconnect builds new rings: the `Queues` taken before
//! turn inert ([`Queues::is_live`] false: nothing received, every inject refused) and the
//! owner takes the new ones from the `Nic` again.
//!
//! - [`exceptions`]: one exception ring ([`ExceptionQueue`], [`Exception`]);
//! - [`inject`]: the inject ring, with a cached consumer index ([`InjectQueue`]);
//! - [`pool`]: the frame buffers ([`FramePool`]).

mod arena;
pub mod exceptions;
pub mod inject;
pub mod pool;

pub use exceptions::{Exception, ExceptionQueue};
pub use inject::{INJECT_BUF_SIZE, InjectQueue, inject_buffer_bytes};
pub use pool::FramePool;

use crate::error::DriverError;
use crate::link::Link;
use crate::nic::{BlockMap, DeviceCounters, NicConfig};
use rtl_spec::codes::BlockType;

/// Spare frame buffers a pool keeps per exception ring entry (so a full ring's worth of
/// frames in flight through the workers comes back without allocating).
const SPARES_PER_ENTRY: usize = 2;

/// The exception and inject rings of one brought-up device, their frame pool, and what the
/// owner of the packet path sets and reads beside them: which ring a punted packet goes to
/// (steering), the ports the injects leave by (MTU, MAC), and the datapath's counters.
#[derive(Debug)]
pub struct Queues {
    link: Link,
    exceptions: Vec<ExceptionQueue>,
    inject: InjectQueue,
    pool: FramePool,
    blocks: BlockMap,
    ports: usize,
}

impl Queues {
    pub(crate) fn new(
        link: Link,
        exceptions: Vec<ExceptionQueue>,
        inject: InjectQueue,
        cfg: &NicConfig,
        blocks: BlockMap,
        ports: usize,
    ) -> Self {
        let spares = exceptions.len().max(1) * (SPARES_PER_ENTRY << cfg.ring_log2);
        let pool = FramePool::new(cfg.buf_size as usize, spares);
        Queues { link, exceptions, inject, pool, blocks, ports }
    }

    /// Whether these are still the device's rings (false after a reset or a reconnect built
    /// new ones: take those from the `Nic`).
    pub fn is_live(&self) -> bool {
        self.link.lock().is_live()
    }

    /// Exception rings (one per slow-path worker).
    pub fn exception_queues(&self) -> usize {
        self.exceptions.len()
    }

    /// Punted packets from exception ring `queue` (at most `max`), their frames from the pool.
    pub fn recv_exceptions(&mut self, queue: usize, out: &mut Vec<Exception>, max: usize) -> usize {
        let mut t = self.link.lock();
        if !t.is_live() {
            return 0;
        }
        t.service();
        let Some(q) = self.exceptions.get_mut(queue) else { return 0 };
        q.poll(&mut *t, &mut self.pool, out, max)
    }

    /// Queues a frame to send unchanged on `port`; it leaves at [`Self::flush_injects`]. A
    /// full ring (or a frame over [`INJECT_BUF_SIZE`]) is [`DriverError::RingFull`]; rings that
    /// are no longer the device's refuse with [`DriverError::BringUp`].
    pub fn inject(&mut self, port: u8, frame: &[u8]) -> Result<(), DriverError> {
        let mut t = self.link.lock();
        if !t.is_live() {
            return Err(DriverError::BringUp("the inject ring is gone with its device".into()));
        }
        self.inject.push(&mut *t, port, frame)
    }

    /// Sends every queued inject with one doorbell.
    pub fn flush_injects(&mut self) {
        let mut t = self.link.lock();
        if t.is_live() {
            self.inject.flush(&mut *t);
        }
    }

    /// Gives a frame buffer back to the pool (a punted frame, or any buffer the caller is done
    /// with).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.pool.give(buf);
    }

    /// An empty buffer from the pool, for a frame the caller builds.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.pool.take()
    }

    /// The frame pool.
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Steers punted packets: a packet to one of `lips` goes to exception ring
    /// `dst_port & lport_mask`, every other one by the symmetric hash (see
    /// [`crate::Nic::set_lip_steering`]; programmed again after a reset).
    pub fn set_lip_steering(
        &mut self,
        lips: &[std::net::IpAddr],
        lport_mask: u32,
    ) -> Result<(), DriverError> {
        let mut t = self.link.lock();
        let rings = self.exceptions.len() as u32;
        crate::nic::set_lip_steering(&mut *t, &self.blocks, rings, lips, lport_mask)?;
        t.remember_steering(lips, lport_mask);
        Ok(())
    }

    /// The seed of the device's symmetric steering hash (`PUNT.STEER_SEED`), so that the host
    /// computes the worker of a tuple as the device does.
    pub fn steer_seed(&mut self) -> Result<u32, DriverError> {
        let base = self.blocks.base(BlockType::Punt)?;
        Ok(self.link.lock().read32(base + rtl_spec::regs::punt::STEER_SEED))
    }

    /// Sets port `n`'s IP MTU (packets over it are punted) and MAC.
    pub fn configure_port(&mut self, n: u8, mtu: u32, mac: [u8; 6]) -> Result<(), DriverError> {
        crate::nic::configure_port(&mut *self.link.lock(), &self.blocks, self.ports, n, mtu, mac)
    }

    /// Reads the device's counters (datapath, punts and drops by reason, ports, table).
    pub fn read_counters(&mut self) -> Result<DeviceCounters, DriverError> {
        crate::nic::read_counters(&mut *self.link.lock(), &self.blocks, self.ports)
    }

    pub(crate) fn exceptions_mut(&mut self) -> &mut [ExceptionQueue] {
        &mut self.exceptions
    }
}
