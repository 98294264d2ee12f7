//! The seam between the driver and a device: a mapped BAR0, DMA memory with IOVAs, interrupt
//! eventfds and reset. Rings, registers and bring-up are written once above it; three
//! implementations sit below it:
//!
//! - [`vfio`]: a real card through the kernel's VFIO (`/dev/vfio`), BAR0 mapped with memmap2;
//! - [`vfio_user`]: the sim-model in another process (`sluice sim --socket`), over the
//!   vfio-user protocol, DMA memory shared as memfds;
//! - `inprocess` (feature `sim`): the sim-model linked in, for tests, `replay` and the
//!   embedded default; `threaded` runs it on a thread of its own, as the daemon does.

#[cfg(feature = "sim")]
pub mod inprocess;
#[cfg(feature = "sim")]
pub mod threaded;
pub mod vfio;
pub mod vfio_user;

use crate::dma::DmaRegion;
use crate::error::DriverError;
pub use vmm_sys_util::eventfd::EventFd;

/// A way to reach a Sluice NIC.
pub trait Transport: Send {
    /// What the transport is connected to ("in-process model", "vfio 0000:03:00.0", ...).
    fn describe(&self) -> String;
    /// Reads a 32-bit BAR0 register.
    fn read32(&mut self, offset: u32) -> u32;
    /// Writes a 32-bit BAR0 register.
    fn write32(&mut self, offset: u32, value: u32);
    /// Reads a 64-bit BAR0 register with one access.
    fn read64(&mut self, offset: u32) -> u64;
    /// Writes a 64-bit BAR0 register with one access.
    fn write64(&mut self, offset: u32, value: u64);
    /// Allocates `len` bytes of zeroed DMA memory and maps it for the device.
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError>;
    /// Unmaps a region from the device (the memory is freed when the last handle goes).
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError>;
    /// An eventfd signalled when MSI-X `vector` fires; `None` if the transport has no
    /// interrupts (the driver then polls).
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError>;
    /// Resets the device as a PCI function-level reset would.
    fn reset(&mut self) -> Result<(), DriverError>;
    /// Lets a device that lives in this thread do its work (the in-process model polls its
    /// ports and runs its timers here); a no-op for real and remote devices.
    fn service(&mut self) {}
    /// Whether the way to the device is gone (a model process that exited): register reads
    /// then return all ones. A card behind VFIO and the in-process model never are.
    fn is_broken(&self) -> bool {
        false
    }
    /// Reaches the device again after [`Self::is_broken`] (a restarted `sluice sim` on the same
    /// socket). DMA regions and interrupts of the old connection are gone with it: the driver
    /// brings the device up from scratch afterwards.
    fn reconnect(&mut self) -> Result<(), DriverError> {
        Err(DriverError::BringUp(format!("{} cannot be reconnected", self.describe())))
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn read32(&mut self, offset: u32) -> u32 {
        (**self).read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        (**self).write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        (**self).read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        (**self).write64(offset, value);
    }
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        (**self).alloc_dma(len)
    }
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        (**self).free_dma(region)
    }
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        (**self).interrupt(vector)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        (**self).reset()
    }
    fn service(&mut self) {
        (**self).service();
    }
    fn is_broken(&self) -> bool {
        (**self).is_broken()
    }
    fn reconnect(&mut self) -> Result<(), DriverError> {
        (**self).reconnect()
    }
}

/// A simple IOVA allocator: regions are placed one after another, 2 MiB aligned, from 1 GiB up.
#[derive(Debug)]
pub struct IovaAllocator {
    next: u64,
}

impl Default for IovaAllocator {
    fn default() -> Self {
        IovaAllocator { next: 1 << 30 }
    }
}

impl IovaAllocator {
    /// The IOVA for a region of `len` bytes.
    pub fn take(&mut self, len: usize) -> u64 {
        const ALIGN: u64 = 2 << 20;
        let iova = self.next;
        self.next += (len as u64).div_ceil(ALIGN).max(1) * ALIGN;
        iova
    }
}
