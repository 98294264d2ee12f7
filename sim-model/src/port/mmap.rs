//! Memory shared with the kernel: the mappings behind AF_XDP's UMEM and AF_PACKET's rings,
//! and the only way the ports touch them.
//!
//! The kernel writes these pages while the process runs, so no Rust reference ever points into
//! them: [`Mapping`] hands out raw addresses only, frame bytes are copied with volatile word
//! accesses ([`copy_in`], [`copy_out`]), and the status words that pass a slot between kernel
//! and user are read and written as atomics ([`status`]) with acquire/release ordering, which
//! is what orders the frame copies against the handover.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

/// A mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// the only handle to it, and every access goes through raw pointers with the ordering rules of
// this module.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `len` bytes of private anonymous memory, page aligned, populated (UMEM).
    pub fn anonymous(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping: no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::checked(p, len)
    }

    /// `len` bytes of the object behind `fd` at `offset`, shared (a packet socket's rings).
    pub fn shared(fd: BorrowedFd<'_>, len: usize, offset: libc::off_t) -> io::Result<Self> {
        // SAFETY: maps the kernel's ring memory of a socket we hold into fresh address space.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset,
            )
        };
        Self::checked(p, len)
    }

    fn checked(p: *mut libc::c_void, len: usize) -> io::Result<Self> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { base, len })
    }

    /// The first byte.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The address of byte `offset`, if `offset..offset + len` lies inside the mapping.
    pub fn at(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        // SAFETY: `offset <= end <= self.len`: the pointer stays inside the mapping.
        (end <= self.len).then(|| unsafe { self.base.as_ptr().add(offset) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `mmap` returned; nothing refers to it once self goes.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`, with volatile reads (whole
/// aligned words where it can).
///
/// # Safety
/// `src..src + dst.len()` must lie in a live mapping, and the kernel must have handed those
/// bytes over (their status read with acquire ordering) and not take them back during the copy.
pub unsafe fn copy_in(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let mut i = 0;
    // Bytes up to the first aligned word, then words, then the tail.
    while i < len && (src as usize + i) % 8 != 0 {
        // SAFETY: `i < len`: inside the range the caller vouches for.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
    while i + 8 <= len {
        // SAFETY: as above, and `src + i` is 8-aligned here.
        #[allow(clippy::cast_ptr_alignment)] // Aligned: the loop above got there.
        let w = unsafe { src.add(i).cast::<u64>().read_volatile() };
        dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
        i += 8;
    }
    while i < len {
        // SAFETY: `i < len`.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
}

/// Copies `src` into shared memory at `dst`, with volatile writes (whole aligned words where
/// it can).
///
/// # Safety
/// `dst..dst + src.len()` must lie in a live mapping that user space owns at the moment (a
/// free frame, a slot whose status says so); it is handed over afterwards with release
/// ordering.
pub unsafe fn copy_out(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let mut i = 0;
    while i < len && (dst as usize + i) % 8 != 0 {
        // SAFETY: `i < len`: inside the range the caller vouches for.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
    while i + 8 <= len {
        let mut w = [0u8; 8];
        w.copy_from_slice(&src[i..i + 8]);
        // SAFETY: as above, and `dst + i` is 8-aligned here.
        #[allow(clippy::cast_ptr_alignment)] // Aligned: the loop above got there.
        unsafe {
            dst.add(i).cast::<u64>().write_volatile(u64::from_ne_bytes(w));
        };
        i += 8;
    }
    while i < len {
        // SAFETY: `i < len`.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
}

/// The 32-bit status word at `p`, shared with the kernel, as an atomic.
///
/// # Safety
/// `p` must be 4-aligned, inside a live mapping, and the mapping must outlive the returned
/// reference (an `AtomicU32` may alias memory another party writes: that is what atomics are).
#[allow(clippy::cast_ptr_alignment)] // Aligned by the contract (checked in debug builds).
pub unsafe fn status<'a>(p: *mut u8) -> &'a AtomicU32 {
    debug_assert_eq!(p as usize % 4, 0, "a status word is 4-aligned");
    // SAFETY: per the contract; AtomicU32 has the size and alignment of u32.
    unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }
}

/// Reads a plain-old-data header the kernel wrote at `p`, volatile and unaligned-safe.
///
/// # Safety
/// `p..p + size_of::<T>()` must lie in a live mapping the kernel handed over; `T` must be
/// valid for any bit pattern.
pub unsafe fn read_header<T: Copy>(p: *const u8) -> T {
    let mut v = std::mem::MaybeUninit::<T>::uninit();
    // SAFETY: `v` is exactly size_of::<T>() bytes of writable memory; the source range is
    // vouched for by the caller, and every bit pattern is a valid T.
    unsafe {
        let dst = std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), size_of::<T>());
        copy_in(p, dst);
        v.assume_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_round_trip_at_every_alignment() {
        let m = Mapping::anonymous(4096).unwrap();
        assert_eq!(m.len(), 4096);
        assert!(m.at(4000, 97).is_none() && m.at(usize::MAX, 2).is_none());
        let data: Vec<u8> = (0..200u8).collect();
        for off in 0..9 {
            for len in [0, 1, 7, 8, 9, 63, 200] {
                let p = m.at(off, len).unwrap();
                // SAFETY: inside the private mapping this test owns; no one else writes it.
                unsafe { copy_out(&data[..len], p) };
                let mut back = vec![0u8; len];
                // SAFETY: as above.
                unsafe { copy_in(p, &mut back) };
                assert_eq!(back, data[..len], "offset {off} length {len}");
            }
        }
        // SAFETY: as above; offset 8 is 4-aligned.
        let s = unsafe { status(m.at(8, 4).unwrap()) };
        s.store(0xdead_beef, std::sync::atomic::Ordering::Release);
        // SAFETY: as above.
        let v: u32 = unsafe { read_header(m.at(8, 4).unwrap()) };
        assert_eq!(v, 0xdead_beef);
    }
}
