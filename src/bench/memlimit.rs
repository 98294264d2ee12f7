//! This machine's limit for the fast path's memory pattern: random, independent 64-byte reads
//! from a table the size of the 1M-flow model's (256 MiB), in batches of 32 with every line
//! prefetched before any is read — what the pipelined lookup does with its buckets, then again
//! with its records. A packet needs two such reads one after the other (a bucket, then the
//! record it names), so half the reads per second is the most packets per second any lookup of
//! this table shape can reach here; the fastpath figures are stated against it.
//!
//! Beside it, the latency of one load that misses every cache: a pointer chase through the same
//! table in one random cycle, each read's address in the line before. A prefetch must be issued
//! at least that long before its line is used, which is what sets the lookup pipeline's stage
//! distance (158-176 ns on the VM where that distance was chosen).

use super::fastpath::{BURST, Rng};
use super::report::Summary;
use super::rig::Stopwatch;
use zerocopy::FromBytes;

/// Bytes of the table read at random (the 1M-flow model's records: 2^21 × 128 B).
const TABLE_BYTES: usize = 256 << 20;

/// Words of one cache line.
const LINE_WORDS: usize = 8;

/// The table: an anonymous mapping advised for transparent huge pages, as the model's table
/// memory is (so that TLB misses cost here what they cost the lookup), every page touched.
fn line_table() -> anyhow::Result<memmap2::MmapMut> {
    let mut map = memmap2::MmapMut::map_anon(TABLE_BYTES)?;
    // Advice only: where the kernel gives no huge pages, the figures say so by being slower.
    let _ = map.advise(memmap2::Advice::HugePage);
    map.fill(1);
    Ok(map)
}

/// The table as words (a mapping is page-aligned, so the view always exists).
fn words(map: &mut memmap2::MmapMut) -> &mut [u64] {
    <[u64]>::mut_from_bytes(&mut map[..]).unwrap_or_default()
}

/// Random line reads per second (millions) over `runs` runs of `reads` reads each.
pub fn random_line_reads(runs: usize, reads: u64) -> anyhow::Result<Summary> {
    let mut map = line_table()?;
    let table = words(&mut map);
    let n = (table.len() / LINE_WORDS) as u64;
    let mut rng = Rng::new(0x11FE);
    let mut sink = 0u64;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Stopwatch::start();
        for _ in 0..reads.div_ceil(BURST as u64) {
            let mut at = [0usize; BURST];
            for slot in &mut at {
                *slot = ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as usize * LINE_WORDS;
                if let Some(word) = table.get(*slot) {
                    prefetch(word);
                }
            }
            for &i in &at {
                sink = sink.wrapping_add(table.get(i).copied().unwrap_or(0));
            }
        }
        samples.push(reads as f64 / start.secs() / 1e6);
    }
    std::hint::black_box(sink);
    Ok(Summary::of(&samples))
}

/// Nanoseconds per dependent load (each address read from the line before) over `runs` runs of
/// `loads` loads each, through the table in one random cycle of all its lines.
pub fn dependent_load_ns(runs: usize, loads: u64) -> anyhow::Result<Summary> {
    let mut map = line_table()?;
    let table = words(&mut map);
    let lines = table.len() / LINE_WORDS;
    let next = single_cycle(lines as u32, &mut Rng::new(0x1A7E));
    for (line, &to) in next.iter().enumerate() {
        table[line * LINE_WORDS] = u64::from(to) * LINE_WORDS as u64;
    }
    drop(next);
    let mut at = 0usize;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Stopwatch::start();
        for _ in 0..loads {
            at = table.get(at).map_or(0, |&w| w as usize);
        }
        samples.push(start.secs() * 1e9 / loads as f64);
    }
    std::hint::black_box(at);
    Ok(Summary::of(&samples))
}

/// A random permutation of `0..n` that is one cycle through all of them (Sattolo's shuffle), so
/// a chase along it never settles into a short loop that fits in a cache.
fn single_cycle(n: u32, rng: &mut Rng) -> Vec<u32> {
    let mut next: Vec<u32> = (0..n).collect();
    for i in (1..n as usize).rev() {
        let j = ((u128::from(rng.next_u64()) * i as u128) >> 64) as usize;
        next.swap(i, j);
    }
    next
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chase_visits_every_line_before_it_returns() {
        for n in [2u32, 3, 17, 1000] {
            let next = single_cycle(n, &mut Rng::new(u64::from(n)));
            // A permutation always leads back to 0; one cycle of all does so after n steps.
            let (mut at, mut steps) = (next[0], 1u32);
            while at != 0 {
                at = next[at as usize];
                steps += 1;
            }
            assert_eq!(steps, n, "the chase returned to line 0 after {steps} of {n} lines");
        }
    }
}
