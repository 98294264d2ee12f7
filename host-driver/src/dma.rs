//! DMA memory: host memory the device reads and writes, with the address (IOVA) the device
//! knows it by.
//!
//! Memory is a memfd mapped shared, so the same pages can be handed to another process (the
//! vfio-user model) or mapped for the IOMMU (kernel VFIO). The device may change it at any
//! moment, so the driver never forms a Rust reference into it: every access is a volatile read
//! or write through the raw mapping, as rust-vmm's `VolatileSlice` does.

use crate::error::DriverError;
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

/// Bytes per volatile access of [`DmaRegion::read`] and [`DmaRegion::write`]: one SSE
/// register on x86_64 (a single 16-byte load or store each, where two 8-byte ones would be
/// twice the instructions on every frame and command), two `u64`s elsewhere.
const WORD: usize = 16;

#[cfg(target_arch = "x86_64")]
type Word = std::arch::x86_64::__m128i;
#[cfg(not(target_arch = "x86_64"))]
type Word = [u64; 2];

#[inline]
fn word_bytes(w: Word) -> [u8; WORD] {
    // SAFETY: both are 16 bytes of plain data with no invalid bit patterns.
    unsafe { std::mem::transmute::<Word, [u8; WORD]>(w) }
}

#[inline]
fn bytes_word(b: [u8; WORD]) -> Word {
    // SAFETY: as in `word_bytes`.
    unsafe { std::mem::transmute::<[u8; WORD], Word>(b) }
}

/// The backing of one or more regions: a memfd and its shared mapping.
#[derive(Debug)]
pub struct DmaBacking {
    file: File,
    map: MmapRaw,
}

impl DmaBacking {
    /// `len` zeroed bytes of shareable memory.
    pub fn new(len: usize) -> Result<Arc<Self>, DriverError> {
        let name = c"sluice-dma";
        // SAFETY: `name` is a valid NUL-terminated string; memfd_create has no other inputs.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(DriverError::io("memfd_create for DMA memory", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.set_len(len as u64).map_err(|e| DriverError::io("sizing DMA memory", e))?;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|e| DriverError::io("mapping DMA memory", e))?;
        Ok(Arc::new(DmaBacking { file, map }))
    }

    /// The memfd, to share with the device side.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Bytes in the backing.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the backing is empty.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// The start of the mapping (for transports that hand it to the kernel).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
}

/// A region of DMA memory the device knows at `iova`.
#[derive(Clone, Debug)]
pub struct DmaRegion {
    backing: Arc<DmaBacking>,
    iova: u64,
}

impl DmaRegion {
    /// A region over the whole of `backing`, known to the device at `iova`.
    pub fn new(backing: Arc<DmaBacking>, iova: u64) -> Self {
        DmaRegion { backing, iova }
    }

    /// The device's address of byte 0.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.backing.len()
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.backing.is_empty()
    }

    /// The backing (memfd and mapping).
    pub fn backing(&self) -> &Arc<DmaBacking> {
        &self.backing
    }

    fn check(&self, offset: usize, len: usize) {
        let end = offset.checked_add(len).expect("DMA access overflows");
        assert!(end <= self.len(), "DMA access {offset}+{len} beyond a region of {}", self.len());
    }

    /// Copies bytes at `offset` into `buf`, with volatile reads: 16-byte words where the
    /// region's address is aligned to 16, single bytes at the unaligned head and tail (a frame
    /// or a descriptor costs a sixteenth of the accesses a byte-at-a-time copy does, and the
    /// memory, which the device may change at any time, is still never read by a plain load).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.check(offset, buf.len());
        let base = self.backing.as_ptr();
        let head = ((WORD - (base as usize + offset) % WORD) % WORD).min(buf.len());
        let (head_buf, rest) = buf.split_at_mut(head);
        for (i, b) in head_buf.iter_mut().enumerate() {
            // SAFETY: `check` keeps `offset + i` inside the live mapping `backing` owns; the
            // memory may change under us, which a volatile read tolerates.
            *b = unsafe { base.add(offset + i).read_volatile() };
        }
        let mut at = offset + head;
        let mut words = rest.chunks_exact_mut(WORD);
        for w in &mut words {
            // SAFETY: `base + at` is aligned to `WORD` (the head brought it there) and the
            // word is inside the mapping (`check` covered the whole access).
            #[allow(clippy::cast_ptr_alignment)] // aligned by construction, see above
            let v = unsafe { base.add(at).cast::<Word>().read_volatile() };
            w.copy_from_slice(&word_bytes(v));
            at += WORD;
        }
        for b in words.into_remainder() {
            // SAFETY: as above, in bounds and volatile.
            *b = unsafe { base.add(at).read_volatile() };
            at += 1;
        }
    }

    /// Copies `data` to `offset`, with volatile writes (16-byte words where aligned, as
    /// [`Self::read`]).
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len());
        let base = self.backing.as_ptr();
        let head = ((WORD - (base as usize + offset) % WORD) % WORD).min(data.len());
        let (head_data, rest) = data.split_at(head);
        for (i, b) in head_data.iter().enumerate() {
            // SAFETY: as in `read`: in bounds of the live mapping, written volatile.
            unsafe { base.add(offset + i).write_volatile(*b) };
        }
        let mut at = offset + head;
        let mut words = rest.chunks_exact(WORD);
        for w in &mut words {
            let v = bytes_word(w.try_into().unwrap_or([0; WORD]));
            // SAFETY: aligned and in bounds, as in `read`.
            #[allow(clippy::cast_ptr_alignment)] // aligned by construction, as in `read`
            unsafe {
                base.add(at).cast::<Word>().write_volatile(v);
            }
            at += WORD;
        }
        for b in words.remainder() {
            // SAFETY: in bounds and volatile.
            unsafe { base.add(at).write_volatile(*b) };
            at += 1;
        }
    }

    /// Reads a format (`rtl_spec` type) at `offset`.
    pub fn read_obj<T: zerocopy::FromBytes + zerocopy::IntoBytes>(&self, offset: usize) -> T {
        let mut value = T::new_zeroed();
        self.read(offset, value.as_mut_bytes());
        value
    }

    /// Writes a format at `offset`.
    pub fn write_obj<T: zerocopy::IntoBytes + zerocopy::Immutable>(&self, offset: usize, value: &T) {
        self.write(offset, value.as_bytes());
    }

    /// Zeroes the region.
    pub fn zero(&self) {
        let zeros = [0u8; 4096];
        let mut at = 0;
        while at < self.len() {
            let n = (self.len() - at).min(zeros.len());
            self.write(at, &zeros[..n]);
            at += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::little_endian::U32;

    #[test]
    fn regions_read_back_what_was_written_and_start_zeroed() {
        let r = DmaRegion::new(DmaBacking::new(8192).unwrap(), 0x10_0000);
        let mut b = [1u8; 4];
        r.read(4000, &mut b);
        assert_eq!(b, [0; 4]);
        r.write(8188, &[1, 2, 3, 4]);
        r.read(8188, &mut b);
        assert_eq!(b, [1, 2, 3, 4]);
        r.write_obj(16, &U32::new(0xdead_beef));
        assert_eq!(r.read_obj::<U32>(16).get(), 0xdead_beef);
        r.zero();
        assert_eq!(r.read_obj::<U32>(16).get(), 0);
        assert_eq!(r.iova(), 0x10_0000);
    }

    /// Word copies with unaligned heads and tails of every length agree with the bytes.
    #[test]
    fn copies_at_every_alignment_and_length_are_exact() {
        let r = DmaRegion::new(DmaBacking::new(4096).unwrap(), 0);
        for offset in 0..17 {
            for len in 0..41 {
                r.zero();
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + offset + 1) as u8).collect();
                r.write(100 + offset, &data);
                let mut back = vec![0u8; len + 2];
                r.read(99 + offset, &mut back);
                assert_eq!(back[0], 0, "byte before, offset {offset} len {len}");
                assert_eq!(&back[1..=len], &data[..], "offset {offset} len {len}");
                assert_eq!(back[len + 1], 0, "byte after, offset {offset} len {len}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "beyond a region")]
    fn out_of_bounds_access_is_refused() {
        let r = DmaRegion::new(DmaBacking::new(64).unwrap(), 0);
        r.write(60, &[0; 8]);
    }
}
