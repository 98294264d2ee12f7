//! This machine's limit for the fast path's memory pattern: random, independent 64-byte reads
//! from a table the size of the 1M-flow model's (256 MiB), in batches of 32 with every line
//! prefetched before any is read — what the pipelined lookup does with its buckets, then again
//! with its records. A packet needs two such reads one after the other (a bucket, then the
//! record it names), so half the reads per second is the most packets per second any lookup of
//! this table shape can reach here; the fastpath figures are stated against it.

use super::fastpath::{BURST, Rng};
use super::report::Summary;
use super::rig::Stopwatch;

/// Bytes of the table read at random (the 1M-flow model's records: 2^21 × 128 B).
const TABLE_BYTES: usize = 256 << 20;

/// One cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// Random line reads per second (millions) over `runs` runs of `reads` reads each.
pub fn random_line_reads(runs: usize, reads: u64) -> Summary {
    let mut table = vec![Line::default(); TABLE_BYTES / 64];
    for (i, l) in table.iter_mut().enumerate() {
        l.0[0] = i as u64; // touched, so every page is present before timing
    }
    let n = table.len() as u64;
    let mut rng = Rng::new(0x11FE);
    let mut sink = 0u64;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Stopwatch::start();
        for _ in 0..reads.div_ceil(BURST as u64) {
            let mut at = [0usize; BURST];
            for slot in &mut at {
                *slot = ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as usize;
                prefetch(&table[*slot]);
            }
            for &i in &at {
                sink = sink.wrapping_add(table[i].0[0]);
            }
        }
        samples.push(reads as f64 / start.secs() / 1e6);
    }
    std::hint::black_box(sink);
    Summary::of(&samples)
}

fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults; `value` is a live reference besides.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
