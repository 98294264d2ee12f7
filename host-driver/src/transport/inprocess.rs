//! The in-process transport: the sim-model linked into this process, driven through exactly the
//! register and DMA semantics of a real device. The model reaches the driver's DMA memory
//! through [`SharedRegions`], which copies with volatile accesses as the driver does.
//!
//! This module is the host's only way to the model: the daemon's embedded default, `sluice
//! device info` and `sluice flash --device sim:FILE` reach it through here (the model's wires on
//! Linux interfaces, [`open_interface`]; its flash kept in a file, [`open_flash_file`]), never
//! through `sim_model` itself. Its geometry is the contract's [`ModelConfig`].

use super::{IovaAllocator, Transport};
use crate::dma::{DmaBacking, DmaRegion};
use crate::error::DriverError;
use rtl_spec::clock::Clock;
use rtl_spec::image::ModelConfig;
use sim_model::device::Device;
use sim_model::flash::Flash;
use sim_model::mem::{DmaFault, DmaMemory};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

pub use sim_model::port::{Port as ModelPort, PortKind, is_bad_setting, open_interface};

/// The model's flash kept in `path` (`sluice flash --device sim:FILE`): the file is created, or
/// filled when empty, with the factory image of `factory`. Power the model on from it with
/// [`InProcess::with_flash`].
pub fn open_flash_file(path: &Path, factory: &ModelConfig) -> std::io::Result<Flash> {
    Flash::open(path, &sim_model::flash::factory_image(factory))
}

/// The driver's DMA regions as the model sees them: by IOVA.
#[derive(Default)]
pub struct SharedRegions {
    regions: RwLock<Vec<DmaRegion>>,
}

impl SharedRegions {
    /// Runs `access` on the region that holds `[iova, iova + len)` and the offset in it. The
    /// regions are kept sorted by IOVA, so this is a binary search under a read lock, with no
    /// copy of the region's handle (the model does this for every descriptor and frame).
    fn with_region<T>(
        &self,
        iova: u64,
        len: usize,
        access: impl FnOnce(&DmaRegion, usize) -> T,
    ) -> Result<T, DmaFault> {
        let fault = DmaFault { iova, len };
        let regions = self.regions.read().map_err(|_| fault)?;
        // The last region starting at or below `iova`.
        let i = regions.partition_point(|r| r.iova() <= iova).checked_sub(1).ok_or(fault)?;
        let r = &regions[i];
        let off = (iova - r.iova()) as usize;
        if off.checked_add(len).is_none_or(|end| end > r.len()) {
            return Err(fault);
        }
        Ok(access(r, off))
    }

    fn insert(&self, region: DmaRegion) -> Result<(), DriverError> {
        let mut regions =
            self.regions.write().map_err(|_| DriverError::BringUp("DMA map poisoned".into()))?;
        let at = regions.partition_point(|r| r.iova() < region.iova());
        regions.insert(at, region);
        Ok(())
    }
}

impl DmaMemory for SharedRegions {
    fn read(&self, iova: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        self.with_region(iova, buf.len(), |r, off| r.read(off, buf))
    }
    fn write(&self, iova: u64, data: &[u8]) -> Result<(), DmaFault> {
        self.with_region(iova, data.len(), |r, off| r.write(off, data))
    }
}

/// The sim-model in this process.
pub struct InProcess {
    device: Device,
    regions: Arc<SharedRegions>,
    iovas: IovaAllocator,
    vectors: Arc<Mutex<Vec<Option<EventFd>>>>,
}

impl InProcess {
    /// A model of geometry `cfg` on `clock` (its flash in memory, holding the factory image).
    pub fn new(cfg: ModelConfig, clock: Arc<dyn Clock>) -> Result<Self, DriverError> {
        let regions = Arc::new(SharedRegions::default());
        let device = Device::new(cfg, regions.clone(), clock).map_err(DriverError::BringUp)?;
        Ok(Self::around(device, regions))
    }

    /// A model that powers on from `flash` (factory image `factory` when no slot is valid).
    pub fn with_flash(
        flash: Flash,
        factory: ModelConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DriverError> {
        let regions = Arc::new(SharedRegions::default());
        let device =
            Device::with_flash(flash, factory, regions.clone(), clock).map_err(DriverError::BringUp)?;
        Ok(Self::around(device, regions))
    }

    fn around(mut device: Device, regions: Arc<SharedRegions>) -> Self {
        let vectors: Arc<Mutex<Vec<Option<EventFd>>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = vectors.clone();
        device.set_interrupt_sink(Box::new(move |v| {
            if let Ok(fds) = sink.lock() {
                if let Some(Some(fd)) = fds.get(usize::from(v)) {
                    // A full eventfd counter already means "pending": nothing is lost.
                    let _ = fd.write(1);
                }
            }
        }));
        InProcess { device, regions, iovas: IovaAllocator::default(), vectors }
    }

    /// Attaches model port `n` to a wire (memory, pcap, AF_PACKET).
    pub fn attach_port(&mut self, n: u8, port: Box<dyn ModelPort>) -> Result<(), DriverError> {
        self.device.attach_port(n, port).map_err(DriverError::BringUp)
    }

    /// The model itself, for tests that inject frames or step time.
    pub fn device(&mut self) -> &mut Device {
        &mut self.device
    }
}

impl Transport for InProcess {
    fn describe(&self) -> String {
        "in-process model".to_string()
    }
    fn read32(&mut self, offset: u32) -> u32 {
        self.device.read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.device.write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.device.read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.device.write64(offset, value);
    }
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        let region = DmaRegion::new(DmaBacking::new(len)?, self.iovas.take(len));
        self.regions.insert(region.clone())?;
        Ok(region)
    }
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        if let Ok(mut regions) = self.regions.regions.write() {
            regions.retain(|r| r.iova() != region.iova());
        }
        Ok(())
    }
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| DriverError::io("eventfd", e))?;
        let ours = fd.try_clone().map_err(|e| DriverError::io("eventfd dup", e))?;
        let mut fds =
            self.vectors.lock().map_err(|_| DriverError::BringUp("vector table poisoned".into()))?;
        let v = usize::from(vector);
        if fds.len() <= v {
            fds.resize_with(v + 1, || None);
        }
        fds[v] = Some(ours);
        Ok(Some(fd))
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        self.device.reset();
        Ok(())
    }
    fn service(&mut self) {
        self.device.poll_ports(32);
        self.device.tick();
    }
}

/// An in-process model that the driver and its owner share: the driver drives it through
/// [`Transport`], the owner (a test, `replay`, the daemon's statistics) reaches the model
/// itself with [`SharedInProcess::with_device`]. Clones are the same device.
#[derive(Clone)]
pub struct SharedInProcess(Arc<Mutex<InProcess>>);

impl SharedInProcess {
    /// Shares `model`.
    pub fn new(model: InProcess) -> Self {
        SharedInProcess(Arc::new(Mutex::new(model)))
    }

    /// Runs `f` on the model (its ports, its clock-driven work, `set_stalled`...).
    pub fn with_device<R>(&self, f: impl FnOnce(&mut Device) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(g.device())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InProcess> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Transport for SharedInProcess {
    fn describe(&self) -> String {
        self.lock().describe()
    }
    fn read32(&mut self, offset: u32) -> u32 {
        self.lock().read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.lock().write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.lock().read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.lock().write64(offset, value);
    }
    fn alloc_dma(&mut self, len: usize) -> Result<DmaRegion, DriverError> {
        self.lock().alloc_dma(len)
    }
    fn free_dma(&mut self, region: &DmaRegion) -> Result<(), DriverError> {
        self.lock().free_dma(region)
    }
    fn interrupt(&mut self, vector: u16) -> Result<Option<EventFd>, DriverError> {
        self.lock().interrupt(vector)
    }
    fn reset(&mut self) -> Result<(), DriverError> {
        self.lock().reset()
    }
    fn service(&mut self) {
        self.lock().service();
    }
}
