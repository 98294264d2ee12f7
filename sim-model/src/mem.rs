//! Host memory as the device sees it: addressed by IOVA, reached only by DMA reads and writes
//! that copy in or out (the model never holds a reference into host memory, as hardware never
//! does). A failed access is a [`DmaFault`], which the device reports in its error register and
//! on the event ring; it never panics.

use std::sync::Mutex;

/// A DMA access to an address no region covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    /// Start of the access.
    pub iova: u64,
    /// Its length.
    pub len: usize,
}

impl std::fmt::Display for DmaFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DMA fault at IOVA {:#x} (+{} bytes)", self.iova, self.len)
    }
}

impl std::error::Error for DmaFault {}

/// Host memory reachable by DMA.
pub trait DmaMemory: Send + Sync {
    /// Copies `buf.len()` bytes at `iova` into `buf`.
    fn read(&self, iova: u64, buf: &mut [u8]) -> Result<(), DmaFault>;
    /// Copies `data` to `iova`.
    fn write(&self, iova: u64, data: &[u8]) -> Result<(), DmaFault>;
}

struct Region {
    iova: u64,
    bytes: Vec<u8>,
}

/// Memory made of regions the host maps (as an IOMMU would), for tests and the in-process model.
/// An access must lie entirely inside one region.
#[derive(Default)]
pub struct RegionMemory {
    regions: Mutex<Vec<Region>>,
}

impl RegionMemory {
    /// No regions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `len` zeroed bytes at `iova`. Returns false (and maps nothing) if the range overlaps
    /// a mapped region or wraps the address space.
    pub fn map(&self, iova: u64, len: usize) -> bool {
        let Some(end) = iova.checked_add(len as u64) else { return false };
        let mut regions = self.lock();
        if regions.iter().any(|r| iova < r.iova + r.bytes.len() as u64 && r.iova < end) {
            return false;
        }
        regions.push(Region { iova, bytes: vec![0; len] });
        true
    }

    /// Unmaps the region that starts at `iova`. Returns whether there was one.
    pub fn unmap(&self, iova: u64) -> bool {
        let mut regions = self.lock();
        let before = regions.len();
        regions.retain(|r| r.iova != iova);
        regions.len() != before
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Region>> {
        // A panic while holding the lock cannot leave a region half-resized: recover the data.
        self.regions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_range<R>(&self, iova: u64, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, DmaFault> {
        let fault = DmaFault { iova, len };
        let mut regions = self.lock();
        let region = regions
            .iter_mut()
            .find(|r| iova >= r.iova && iova - r.iova <= r.bytes.len() as u64)
            .ok_or(fault)?;
        let start = usize::try_from(iova - region.iova).map_err(|_| fault)?;
        let end = start.checked_add(len).ok_or(fault)?;
        let slice = region.bytes.get_mut(start..end).ok_or(fault)?;
        Ok(f(slice))
    }
}

impl DmaMemory for RegionMemory {
    fn read(&self, iova: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        self.with_range(iova, buf.len(), |s| buf.copy_from_slice(s))
    }
    fn write(&self, iova: u64, data: &[u8]) -> Result<(), DmaFault> {
        self.with_range(iova, data.len(), |s| s.copy_from_slice(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_inside_a_region_work_and_outside_fault() {
        let m = RegionMemory::new();
        assert!(m.map(0x1000, 64));
        assert!(!m.map(0x1020, 64), "overlap refused");
        assert!(!m.map(u64::MAX - 4, 64), "wrap refused");
        m.write(0x1010, &[1, 2, 3]).unwrap();
        let mut b = [0u8; 4];
        m.read(0x100f, &mut b).unwrap();
        assert_eq!(b, [0, 1, 2, 3]);
        assert_eq!(m.read(0x103e, &mut b), Err(DmaFault { iova: 0x103e, len: 4 }));
        assert!(m.read(0x0fff, &mut b).is_err());
        assert!(m.write(u64::MAX, &[1]).is_err());
        assert!(m.read(0x1040, &mut []).is_ok(), "an empty access at the end is inside");
        assert!(m.unmap(0x1000));
        assert!(m.read(0x1010, &mut b).is_err());
    }
}
