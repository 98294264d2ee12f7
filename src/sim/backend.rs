//! The vfio-user server's side of the device: the PCI function as `sluice sim` exposes it
//! (regions, configuration space, MSI-X vectors), the [`vfio_user::ServerBackend`] that turns
//! protocol requests into BAR0 accesses and DMA map changes, and [`MappedMemory`], the client's
//! memfds mapped here so the model's DMA touches the driver's own pages.

use super::CONFIG_SIZE;
use memmap2::{MmapOptions, MmapRaw};
use sim_model::device::Device;
use sim_model::mem::{DmaFault, DmaMemory};
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE, vfio_region_info,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion};

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in the datapath while holding the lock leaves the model consistent enough to
    // be reset by the next client; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The IRQ indexes of a PCI function: only MSI-X has vectors.
pub(super) fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| IrqInfo {
            index,
            flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
            count: if index == VFIO_PCI_MSIX_IRQ_INDEX { u32::from(rtl_spec::pci::MSIX_VECTORS) } else { 0 },
        })
        .collect()
}

/// The regions of a PCI function: BAR0 and the configuration space; the rest are empty.
pub(super) fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let size = match index {
                VFIO_PCI_BAR0_REGION_INDEX => rtl_spec::regs::BAR0_SIZE,
                VFIO_PCI_CONFIG_REGION_INDEX => CONFIG_SIZE as u64,
                _ => 0,
            };
            let flags = if size == 0 { 0 } else { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    flags,
                    index,
                    cap_offset: 0,
                    size,
                    offset: 0,
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

/// The eventfds the client gave for the MSI-X vectors.
#[derive(Default)]
pub(super) struct Vectors {
    pub(super) fds: Mutex<Vec<Option<File>>>,
}

impl Vectors {
    pub(super) fn fire(&self, v: u16) {
        if let Some(Some(fd)) = lock(&self.fds).get(usize::from(v)) {
            // A full eventfd counter already means "pending": nothing is lost if this fails.
            let _ = (&*fd).write(&1u64.to_ne_bytes());
        }
    }

    pub(super) fn clear(&self) {
        lock(&self.fds).clear();
    }
}

/// The PCI configuration space: a type-0 header with the Sluice ids and a 64-bit memory
/// BAR0. Only the command register and BAR0/1 (for sizing) are writable.
pub(super) struct ConfigSpace {
    pub(super) bytes: [u8; CONFIG_SIZE],
}

impl ConfigSpace {
    pub(super) fn new() -> Self {
        use rtl_spec::pci;
        let mut bytes = [0u8; CONFIG_SIZE];
        bytes[0x00..0x02].copy_from_slice(&pci::VENDOR_ID.to_le_bytes());
        bytes[0x02..0x04].copy_from_slice(&pci::DEVICE_ID.to_le_bytes());
        bytes[0x08] = pci::REVISION_ID;
        bytes[0x09..0x0C].copy_from_slice(&pci::CLASS_CODE.to_le_bytes()[..3]);
        // BAR0: memory, 64-bit (type 0b10), non-prefetchable.
        bytes[0x10..0x14].copy_from_slice(&0b100u32.to_le_bytes());
        bytes[0x2C..0x2E].copy_from_slice(&pci::SUBSYSTEM_VENDOR_ID.to_le_bytes());
        bytes[0x2E..0x30].copy_from_slice(&pci::SUBSYSTEM_ID_MODEL.to_le_bytes());
        ConfigSpace { bytes }
    }

    fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.bytes.get(o))
                .copied()
                .unwrap_or(0xFF);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let size_mask = !(rtl_spec::regs::BAR0_SIZE - 1);
        for (i, &b) in data.iter().enumerate() {
            let Some(o) = usize::try_from(offset).ok().and_then(|o| o.checked_add(i)) else { return };
            match o {
                // Command register: memory space, bus master and friends; kept as written.
                0x04 | 0x05 => self.bytes[o] = b,
                // BAR0 low and high dwords: address bits above the size stick, the low flag
                // bits are read-only, so writing all ones reads back the size.
                0x10..=0x17 => {
                    let shift = 8 * (o - 0x10);
                    let mask = (size_mask >> shift) as u8 & if o == 0x10 { 0xF0 } else { 0xFF };
                    self.bytes[o] = (self.bytes[o] & !mask) | (b & mask);
                }
                _ => {}
            }
        }
    }
}

/// The device as the protocol thread serves it.
pub(super) struct Backend {
    pub(super) device: Arc<Mutex<Device>>,
    pub(super) memory: Arc<MappedMemory>,
    pub(super) vectors: Arc<Vectors>,
    pub(super) config: ConfigSpace,
}

impl Backend {
    /// The client went away: forget its memory and eventfds. The device is not reset (a card
    /// does not notice its driver's process dying either): its flow table keeps forwarding,
    /// so a restarted daemon can adopt the flows (a punt meanwhile finds no memory and is
    /// counted as a DMA-fault drop). The next driver resets it, or brings it up keeping the
    /// table.
    pub(super) fn disconnect(&mut self) {
        self.memory.clear();
        self.vectors.clear();
        self.config = ConfigSpace::new();
    }
}

pub(super) fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidInput, msg)
}

// Region accesses never fail: the crate's client reads a full reply for them whatever the
// server says, so an error reply would desynchronise it. An access outside a region or of an
// odd size reads all ones and writes nothing, as a PCIe unsupported request does.
impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> Result<(), std::io::Error> {
        match region {
            VFIO_PCI_BAR0_REGION_INDEX => {
                let at = u32::try_from(offset)
                    .ok()
                    .filter(|o| u64::from(*o) + data.len() as u64 <= rtl_spec::regs::BAR0_SIZE);
                match (at, data.len()) {
                    (Some(o), 4) => data.copy_from_slice(&lock(&self.device).read32(o).to_le_bytes()),
                    (Some(o), 8) => data.copy_from_slice(&lock(&self.device).read64(o).to_le_bytes()),
                    _ => {
                        tracing::debug!(offset, len = data.len(), "unsupported BAR0 read");
                        data.fill(0xFF);
                    }
                }
            }
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.read(offset, data),
            _ => data.fill(0xFF),
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        match region {
            VFIO_PCI_BAR0_REGION_INDEX => {
                let at = u32::try_from(offset)
                    .ok()
                    .filter(|o| u64::from(*o) + data.len() as u64 <= rtl_spec::regs::BAR0_SIZE);
                match (at, <[u8; 4]>::try_from(data), <[u8; 8]>::try_from(data)) {
                    (Some(o), Ok(v), _) => lock(&self.device).write32(o, u32::from_le_bytes(v)),
                    (Some(o), _, Ok(v)) => lock(&self.device).write64(o, u64::from_le_bytes(v)),
                    _ => tracing::debug!(offset, len = data.len(), "unsupported BAR0 write dropped"),
                }
            }
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.write(offset, data),
            _ => {}
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        _flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> Result<(), std::io::Error> {
        let result = fd
            .ok_or_else(|| {
                invalid(format!(
                    "DMA_MAP at IOVA {address:#x} without a file descriptor: this server needs the \
                     memory shared (DMA_READ/DMA_WRITE messages are not supported)"
                ))
            })
            .and_then(|file| self.memory.map(address, size, offset, &file));
        if let Err(e) = &result {
            tracing::warn!(iova = address, size, error = %e, "DMA_MAP refused");
        }
        result
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> Result<(), std::io::Error> {
        if flags.contains(DmaUnmapFlags::UNMAP_ALL) {
            self.memory.clear();
            return Ok(());
        }
        if self.memory.unmap(address, size) {
            Ok(())
        } else {
            tracing::warn!(iova = address, size, "DMA_UNMAP of a range that is not mapped");
            Err(invalid(format!("no DMA mapping of {size} bytes at IOVA {address:#x}")))
        }
    }

    fn reset(&mut self) -> Result<(), std::io::Error> {
        lock(&self.device).reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> Result<(), std::io::Error> {
        let vectors = u32::from(rtl_spec::pci::MSIX_VECTORS);
        let end = start.checked_add(count).filter(|&e| e <= vectors);
        let (Some(end), VFIO_PCI_MSIX_IRQ_INDEX) = (end, index) else {
            if count == 0 {
                return Ok(());
            }
            return Err(invalid(format!(
                "SET_IRQS index {index} vectors {start}+{count}: only MSI-X 0..{vectors}"
            )));
        };
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        if action != VFIO_IRQ_SET_ACTION_TRIGGER {
            // Masking is done in the device (VEC_CTRL.ARMED); the PCI-level mask is accepted
            // and has no effect.
            return Ok(());
        }
        match data {
            VFIO_IRQ_SET_DATA_EVENTFD if fds.len() == count as usize => {
                let mut table = lock(&self.vectors.fds);
                if table.len() < end as usize {
                    table.resize_with(end as usize, || None);
                }
                for (slot, fd) in table[start as usize..end as usize].iter_mut().zip(fds) {
                    *slot = Some(fd);
                }
                Ok(())
            }
            // No descriptors (or count 0): disable the vectors' eventfds.
            VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_NONE if fds.is_empty() => {
                let mut table = lock(&self.vectors.fds);
                if count == 0 {
                    table.clear();
                } else if data == VFIO_IRQ_SET_DATA_NONE {
                    drop(table);
                    // DATA_NONE with a count: fire the vectors now (a loopback test).
                    for v in start..end {
                        self.vectors.fire(v as u16);
                    }
                } else {
                    for slot in table.iter_mut().take(end as usize).skip(start as usize) {
                        *slot = None;
                    }
                }
                Ok(())
            }
            _ => Err(invalid(format!(
                "SET_IRQS flags {flags:#x} with {} descriptors for {count} vectors",
                fds.len()
            ))),
        }
    }
}

/// One mapping of client memory: device addresses `iova..iova + len`.
pub(super) struct Mapping {
    iova: u64,
    len: u64,
    map: MmapRaw,
}

/// The client's DMA memory, mapped from the memfds it passed with `DMA_MAP`. The model
/// reaches it only by copying with volatile byte accesses through the raw mapping, never
/// through a Rust reference, because the driver writes the same pages at any moment. A
/// mapping is only removed under the write lock, so no copy runs while its pages go away.
#[derive(Default)]
pub struct MappedMemory {
    maps: RwLock<Vec<Mapping>>,
}

impl MappedMemory {
    /// Maps `size` bytes of `file` from `offset` at `iova`. Refuses an empty, wrapping or
    /// overlapping range.
    pub fn map(&self, iova: u64, size: u64, offset: u64, file: &File) -> Result<(), std::io::Error> {
        let end = iova.checked_add(size).filter(|_| size > 0);
        let Some(end) = end else {
            return Err(invalid(format!("DMA_MAP of {size} bytes at IOVA {iova:#x}: empty or wraps")));
        };
        let len =
            usize::try_from(size).map_err(|_| invalid(format!("DMA_MAP of {size} bytes: too large")))?;
        let map = MmapOptions::new().offset(offset).len(len).map_raw(file)?;
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = maps.iter().find(|m| iova < m.iova + m.len && m.iova < end) {
            return Err(invalid(format!(
                "DMA_MAP {iova:#x}+{size:#x} overlaps the mapping at {:#x}+{:#x}",
                m.iova, m.len
            )));
        }
        maps.push(Mapping { iova, len: size, map });
        Ok(())
    }

    /// Unmaps the mapping at exactly `iova` of `size` bytes (any size if `size` is 0).
    /// Returns whether there was one.
    pub fn unmap(&self, iova: u64, size: u64) -> bool {
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        let before = maps.len();
        maps.retain(|m| !(m.iova == iova && (size == 0 || m.len == size)));
        maps.len() != before
    }

    /// Unmaps everything.
    pub fn clear(&self) {
        self.maps.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Runs `f` with the start of the mapped bytes for `iova..iova + len`, which must lie in
    /// one mapping, while holding the read lock.
    fn with<R>(&self, iova: u64, len: usize, f: impl FnOnce(*mut u8) -> R) -> Result<R, DmaFault> {
        let fault = DmaFault { iova, len };
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let m = maps
            .iter()
            .find(|m| iova >= m.iova && (len as u64) <= m.len && iova - m.iova <= m.len - len as u64)
            .ok_or(fault)?;
        let start = usize::try_from(iova - m.iova).map_err(|_| fault)?;
        // SAFETY: `start + len <= m.len`, the length of the live mapping (checked above), so
        // the pointer stays inside it; the read lock keeps the mapping alive while `f` runs.
        let p = unsafe { m.map.as_mut_ptr().add(start) };
        Ok(f(p))
    }
}

impl DmaMemory for MappedMemory {
    fn read(&self, iova: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        self.with(iova, buf.len(), |p| {
            for (i, b) in buf.iter_mut().enumerate() {
                // SAFETY: `p..p + buf.len()` lies in the live mapping (see `with`); the driver
                // may change the bytes at any time, which a volatile byte read tolerates.
                *b = unsafe { p.add(i).read_volatile() };
            }
        })
    }

    fn write(&self, iova: u64, data: &[u8]) -> Result<(), DmaFault> {
        self.with(iova, data.len(), |p| {
            for (i, b) in data.iter().enumerate() {
                // SAFETY: as in `read`: inside the live mapping, written volatile.
                unsafe { p.add(i).write_volatile(*b) };
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd(len: u64) -> File {
        let f = tempfile_in_memory();
        f.set_len(len).unwrap();
        f
    }

    /// An anonymous file (unlinked at once), standing in for the driver's memfd.
    fn tempfile_in_memory() -> File {
        let path = std::env::temp_dir().join(format!(
            "sluice-sim-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn mapped_memory_shares_pages_with_the_file_and_checks_bounds() {
        use std::os::unix::fs::FileExt;
        let f = memfd(8192);
        let m = MappedMemory::default();
        m.map(0x4000_0000, 8192, 0, &f).unwrap();
        assert!(m.map(0x4000_1000, 4096, 0, &f).is_err(), "overlap refused");
        assert!(m.map(u64::MAX - 10, 4096, 0, &f).is_err(), "wrap refused");
        m.write(0x4000_0010, &[1, 2, 3]).unwrap();
        let mut b = [0u8; 3];
        f.read_exact_at(&mut b, 0x10).unwrap();
        assert_eq!(b, [1, 2, 3], "the device's write is in the file");
        f.write_all_at(&[9, 8], 0x1FFE).unwrap();
        let mut b = [0u8; 2];
        m.read(0x4000_1FFE, &mut b).unwrap();
        assert_eq!(b, [9, 8], "the host's write is seen by the device");
        assert_eq!(m.read(0x4000_1FFF, &mut b), Err(DmaFault { iova: 0x4000_1FFF, len: 2 }));
        assert!(m.read(0x3FFF_FFFF, &mut b).is_err());
        assert!(m.unmap(0x4000_0000, 8192));
        assert!(m.read(0x4000_0000, &mut b).is_err());
        assert!(!m.unmap(0x4000_0000, 8192));
    }

    #[test]
    fn config_space_has_the_ids_and_bar0_sizes() {
        let mut c = ConfigSpace::new();
        let mut b = [0u8; 4];
        c.read(0, &mut b);
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), rtl_spec::pci::VENDOR_ID);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), rtl_spec::pci::DEVICE_ID);
        c.read(0x08, &mut b);
        assert_eq!(u32::from_le_bytes(b) >> 8, rtl_spec::pci::CLASS_CODE);
        c.write(0x10, &u32::MAX.to_le_bytes());
        c.read(0x10, &mut b);
        let low = u32::from_le_bytes(b);
        assert_eq!(low & 0xF, 0b100, "64-bit memory BAR");
        assert_eq!(!(low & !0xF) + 1, rtl_spec::regs::BAR0_SIZE as u32, "sizes as BAR0_SIZE");
        c.read(0xFE, &mut b);
        assert_eq!(b[2..], [0xFF, 0xFF], "beyond the space reads all ones");
    }
}
