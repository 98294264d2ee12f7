//! Transparent huge pages for the host's large tables: the flow shadow's index and records
//! (`flow_offload`) and the slow path's connection index.
//!
//! Their reads are random: a remove or a cuckoo move touches a bucket and a record anywhere in
//! tens or hundreds of MiB, a connection lookup a cell anywhere in its index. On 4 KiB pages
//! nearly every such read also misses the TLB, and on a virtual machine the page walk behind it
//! is itself several memory reads. The kernel backs memory with 2 MiB pages only where asked
//! (`transparent_hugepage=madvise`, the common default), so each array asks for them over its
//! buffer before the buffer is first written: the pages are then faulted in huge. A hint only:
//! ignored where THP is off, and never a change to what the memory holds.

/// Huge-page size on x86_64 and aarch64 (4 KiB base pages).
const HUGE: usize = 2 << 20;

/// Asks for huge pages behind the whole 2 MiB-aligned part of `buf`'s allocated buffer
/// (`capacity`, not `len`): call it after reserving and before filling. A buffer with no whole
/// aligned 2 MiB inside it (a small table) is left as it is.
pub fn advise_huge_pages<T>(buf: &Vec<T>) {
    let start = buf.as_ptr() as usize;
    let Some((first, last)) = aligned_interior(start, start + buf.capacity() * size_of::<T>()) else {
        return;
    };
    #[cfg(target_os = "linux")]
    // SAFETY: `first..last` lies inside the buffer `buf` owns (rounded inward), and MADV_HUGEPAGE
    // changes only how the kernel backs those pages, never their contents or their validity.
    unsafe {
        libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (first, last);
}

/// The whole 2 MiB pages inside `start..end`: `start` rounded up, `end` rounded down.
fn aligned_interior(start: usize, end: usize) -> Option<(usize, usize)> {
    let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    (first < last).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_aligned_huge_pages_inside_the_buffer_are_advised() {
        assert_eq!(aligned_interior(HUGE + 16, 4 * HUGE + 16), Some((2 * HUGE, 4 * HUGE)));
        assert_eq!(aligned_interior(2 * HUGE, 3 * HUGE), Some((2 * HUGE, 3 * HUGE)));
        assert_eq!(aligned_interior(HUGE + 16, 3 * HUGE - 1), None, "no whole page inside");
        assert_eq!(aligned_interior(4096, 8192), None);
        // A real buffer: advised, then filled, keeps what was written.
        let mut big: Vec<u64> = Vec::with_capacity(3 * HUGE / 8);
        advise_huge_pages(&big);
        big.resize(3 * HUGE / 8, 7);
        assert!(big.iter().all(|&v| v == 7));
    }
}
