//! The memory behind the flow table's arrays (records, index buckets): one anonymous mapping per
//! array, page-aligned, and for an array of 2 MiB or more aligned to 2 MiB and advised for
//! transparent huge pages.
//!
//! Why not a `Vec`: a large `Vec` comes from the allocator's own mapping, which starts 16 bytes
//! past a page boundary, so a 128-byte record spans three cache lines instead of two and a
//! 32-byte bucket sometimes spans two. The datapath prefetches the lines a lookup needs (see
//! [`super::pipeline`]); a line it did not know about is a full memory stall per packet. The
//! hardware's table memory is line-aligned by construction; the model's is too.
//!
//! The mapping is zero-filled and lazy, as the `Vec`s were: a large table costs nothing until it
//! is touched, and a huge page is taken only where the table is.

use memmap2::{MmapMut, MmapOptions};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use zerocopy::FromZeros;

/// Huge-page size on x86_64 and aarch64 (4 KiB base pages): the alignment of every array.
const HUGE: usize = 2 << 20;

/// A fixed-length, zero-initialised array of `T` in its own 2 MiB-aligned mapping.
pub struct TableMemory<T> {
    /// Keeps the mapping alive; `start` points into it.
    _map: Option<MmapMut>,
    start: *mut T,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a TableMemory owns its mapping exclusively (no other pointer to it escapes except
// through `&self`/`&mut self` borrows), exactly as a `Vec<T>` owns its buffer.
unsafe impl<T: Send> Send for TableMemory<T> {}
// SAFETY: shared access only hands out `&[T]`, as `Vec<T>` does.
unsafe impl<T: Sync> Sync for TableMemory<T> {}

impl<T: FromZeros> TableMemory<T> {
    /// `len` zeroed elements; empty when the mapping cannot be made (as `new_vec_zeroed` gave an
    /// empty `Vec` on failure: the geometry check then refuses the table).
    pub fn zeroed(len: usize) -> Self {
        let empty = TableMemory {
            _map: None,
            start: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
            _owns: PhantomData,
        };
        let Some(bytes) = len.checked_mul(std::mem::size_of::<T>()) else { return empty };
        if bytes == 0 {
            return empty;
        }
        // An array smaller than a huge page stays on base pages (a mapping is page-aligned, which
        // is line-aligned): a huge page would cost 2 MiB of zeroing for a small table, which
        // tests and fuzzing create by the thousand. A larger one gets room to slide its start to
        // the next 2 MiB boundary; the slack is never touched, so it costs address space only.
        let huge = bytes >= HUGE;
        let slack = if huge { HUGE } else { 0 };
        let Ok(mut map) = MmapOptions::new().len(bytes + slack).map_anon() else { return empty };
        let base = map.as_mut_ptr();
        let offset = if huge { (base as usize).next_multiple_of(HUGE) - base as usize } else { 0 };
        // SAFETY: `offset < HUGE` only when the mapping has `HUGE` bytes of slack (0 otherwise), so
        // `base + offset` and the `bytes` after it lie inside the mapping.
        let start = unsafe { base.add(offset) };
        if huge {
            advise_huge_pages(start, bytes);
        }
        // A page-aligned address is aligned for any `T` this holds (alignment ≤ 128).
        debug_assert_eq!(start as usize % std::mem::align_of::<T>(), 0);
        TableMemory { _map: Some(map), start: start.cast::<T>(), len, _owns: PhantomData }
    }
}

impl<T> Deref for TableMemory<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `start` is aligned for `T` and points at `len` elements inside the mapping this
        // value owns (or is dangling with `len == 0`); the mapping was zero-filled, and `T:
        // FromZeros` (checked at construction) makes all-zero bytes a valid `T`; every later write
        // goes through `&mut [T]`, so the bytes stay valid `T`s.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }
}

impl<T> DerefMut for TableMemory<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow of the elements.
        unsafe { std::slice::from_raw_parts_mut(self.start, self.len) }
    }
}

/// Asks the kernel for transparent huge pages behind `bytes` at `start` (2 MiB-aligned): a hint,
/// ignored where THP is off.
fn advise_huge_pages(start: *mut u8, bytes: usize) {
    let whole = bytes.next_multiple_of(HUGE);
    // SAFETY: the range lies inside the mapping just made (it has `HUGE` bytes of slack past
    // `bytes`, and `whole - bytes < HUGE`); MADV_HUGEPAGE changes only how the kernel backs the
    // pages, never their contents or their validity.
    let _ = unsafe { libc::madvise(start.cast::<libc::c_void>(), whole, libc::MADV_HUGEPAGE) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtl_spec::formats::{FlowRecord, IndexBucket};

    #[test]
    fn large_arrays_start_on_a_huge_page_small_ones_on_a_page_and_all_are_zero() {
        let records = TableMemory::<FlowRecord>::zeroed(1 << 15);
        assert_eq!(records.len(), 1 << 15);
        assert_eq!(records.as_ptr() as usize % HUGE, 0);
        assert!(records.iter().all(|r| !r.ctl.valid()));
        let buckets = TableMemory::<IndexBucket>::zeroed(100);
        assert_eq!(buckets.as_ptr() as usize % 4096, 0);
        assert!(buckets.iter().all(|b| !b.slot0.word.valid()));
    }

    #[test]
    fn writes_stay_and_an_empty_array_is_empty() {
        let mut buckets = TableMemory::<u64>::zeroed(1000);
        buckets[999] = 7;
        buckets[0] = 3;
        assert_eq!(buckets.iter().sum::<u64>(), 10);
        let empty = TableMemory::<u64>::zeroed(0);
        assert!(empty.is_empty());
        assert_eq!(empty.first(), None);
    }
}
