//! Ring arithmetic shared by both sides: free-running indices, slots and phase bits.
//!
//! Indices are free-running `u32` counters that wrap at 2^32. With `2^log2` entries, index `i`
//! lives in slot `i & (2^log2 - 1)` and is on lap `i >> log2`; the phase written with it is 1 on
//! even laps and 0 on odd ones. A ring holds at most `2^log2` unconsumed entries:
//! `prod.wrapping_sub(cons) <= 2^log2`.

/// The smallest packet buffer an exception ring takes (`RING_BUF_SIZE`), bytes.
pub const MIN_BUF_SIZE: u32 = 256;
/// The largest packet buffer an exception ring takes (`RING_BUF_SIZE`), and the largest frame
/// the inject ring sends, bytes.
pub const MAX_BUF_SIZE: u32 = 16384;

/// The slot of index `index` in a ring of `2^log2` entries.
#[inline]
pub const fn slot(index: u32, log2: u32) -> u32 {
    index & ((1u32 << log2) - 1)
}

/// The phase bit an entry written at `index` carries.
#[inline]
pub const fn phase_for(index: u32, log2: u32) -> bool {
    (index >> log2) & 1 == 0
}

/// Entries produced and not yet consumed.
#[inline]
pub const fn used(prod: u32, cons: u32) -> u32 {
    prod.wrapping_sub(cons)
}

/// Entries that may still be produced.
#[inline]
pub const fn free(prod: u32, cons: u32, log2: u32) -> u32 {
    (1u32 << log2).saturating_sub(used(prod, cons))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_flips_every_lap_and_survives_wrap() {
        assert!(phase_for(0, 4));
        assert!(phase_for(15, 4));
        assert!(!phase_for(16, 4));
        assert!(phase_for(32, 4));
        assert_eq!(slot(17, 4), 1);
        // Wrapping at 2^32 keeps the alternation: the last lap before the wrap is odd.
        assert!(!phase_for(u32::MAX, 4));
        assert!(phase_for(u32::MAX.wrapping_add(1), 4));
        assert_eq!(used(3, u32::MAX - 1), 5);
        assert_eq!(free(3, u32::MAX - 1, 3), 3);
        assert_eq!(free(8, 0, 3), 0);
    }
}
