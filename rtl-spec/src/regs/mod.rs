//! BAR0: the register blocks, their chain and the doorbell region.
//!
//! Each block starts with the same three registers: `TYPE` (0x00), `VERSION` (0x04) and `NEXT`
//! (0x08, the BAR0 offset of the next block, 0 at the end). A driver starts at offset 0 (the
//! identity block), follows `NEXT`, and finds each block by its type, so an image may move,
//! add or drop blocks without breaking a driver that checks what it finds. The offsets in each
//! block module are relative to the block's base; `BASE` is where the v1 layout puts it.

mod datapath;
mod device;

pub use datapath::{ager, flow_table, interrupts, next_hop, punt, rings};
pub use device::{FLASH_CONFIRM_KEY, control, counters, flash, identity, ports};

use crate::meta::BlockSpec;

/// Size of BAR0 in bytes.
pub const BAR0_SIZE: u64 = 0x4_0000;

/// Offsets of the header every block starts with.
pub mod header {
    /// Block type word.
    pub const TYPE: u32 = 0x00;
    /// Block version, `major << 16 | minor`.
    pub const VERSION: u32 = 0x04;
    /// BAR0 offset of the next block; 0 ends the chain.
    pub const NEXT: u32 = 0x08;
}

/// Fixed ring ids (the `r` in `rings::RING_* + r × STRIDE` and in the doorbell address).
pub mod ring_id {
    /// Host → NIC flow commands.
    pub const COMMAND: u32 = 0;
    /// NIC → host completions.
    pub const COMPLETION: u32 = 1;
    /// Host → NIC packets.
    pub const INJECT: u32 = 2;
    /// NIC → host events.
    pub const EVENT: u32 = 3;
    /// NIC → host exception ring 0; ring `n` is `EXCEPTION0 + n`.
    pub const EXCEPTION0: u32 = 4;
    /// The highest number of exception rings the layout has room for.
    pub const MAX_EXCEPTION: u32 = 16;
}

/// BAR0 offset of ring `ring`'s doorbell in the v1 layout (the device says so in
/// `RING_DOORBELL`; drivers read it from there).
pub const fn doorbell_offset(ring: u32) -> u32 {
    0x1_0000 + ring * 0x1000
}

/// Every block, in chain order.
pub const ALL_BLOCKS: &[BlockSpec] = &[
    identity::SPEC,
    control::SPEC,
    counters::SPEC,
    flow_table::SPEC,
    next_hop::SPEC,
    ager::SPEC,
    flash::SPEC,
    punt::SPEC,
    interrupts::SPEC,
    ports::SPEC,
    rings::SPEC,
];

/// The v1 base of each block, in chain order (same order as [`ALL_BLOCKS`]).
pub const ALL_BASES: &[u32] = &[
    identity::BASE,
    control::BASE,
    counters::BASE,
    flow_table::BASE,
    next_hop::BASE,
    ager::BASE,
    flash::BASE,
    punt::BASE,
    interrupts::BASE,
    ports::BASE,
    rings::BASE,
];

/// The NEXT value each block carries in the v1 layout, in chain order.
pub const ALL_NEXT: &[u32] = &[
    identity::NEXT_BLOCK,
    control::NEXT_BLOCK,
    counters::NEXT_BLOCK,
    flow_table::NEXT_BLOCK,
    next_hop::NEXT_BLOCK,
    ager::NEXT_BLOCK,
    flash::NEXT_BLOCK,
    punt::NEXT_BLOCK,
    interrupts::NEXT_BLOCK,
    ports::NEXT_BLOCK,
    rings::NEXT_BLOCK,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::BlockType;

    #[test]
    fn the_chain_visits_every_block_once_and_ends() {
        let mut at = 0u32;
        let mut seen = Vec::new();
        loop {
            let i = ALL_BASES.iter().position(|b| *b == at).expect("NEXT points at a block");
            assert!(!seen.contains(&i), "chain loops");
            seen.push(i);
            at = ALL_NEXT[i];
            if at == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), ALL_BLOCKS.len());
        assert_eq!(seen, (0..ALL_BLOCKS.len()).collect::<Vec<_>>(), "ALL_BLOCKS is in chain order");
    }

    #[test]
    fn blocks_do_not_overlap_each_other_or_the_doorbells() {
        let mut spans: Vec<(u32, u32, &str)> =
            ALL_BLOCKS.iter().zip(ALL_BASES).map(|(b, base)| (*base, base + b.size, b.name)).collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{} overlaps {}", w[0].2, w[1].2);
        }
        let last = spans.last().unwrap();
        assert!(last.1 <= doorbell_offset(0), "{} runs into the doorbells", last.2);
        let top = doorbell_offset(ring_id::EXCEPTION0 + ring_id::MAX_EXCEPTION);
        assert!(u64::from(top) <= BAR0_SIZE);
        for b in ALL_BASES {
            assert_eq!(b % 0x100, 0, "blocks are 256-byte aligned");
        }
    }

    #[test]
    fn registers_fit_their_block_and_do_not_overlap() {
        for b in ALL_BLOCKS {
            assert!(BlockType::try_from(b.block_type).is_ok(), "{}", b.name);
            let mut words: Vec<(u32, &str)> = Vec::new();
            for r in b.registers {
                assert!(r.width == 32 || r.width == 64, "{}.{}", b.name, r.name);
                let bytes = u32::from(r.width / 8);
                assert_eq!(r.offset % bytes, 0, "{}.{} is naturally aligned", b.name, r.name);
                assert!(!r.doc.trim().is_empty(), "{}.{} has no doc", b.name, r.name);
                if r.width == 32 {
                    assert!(u32::try_from(r.reset).is_ok(), "{}.{} reset fits", b.name, r.name);
                }
                for f in r.fields {
                    assert!(u32::from(f.bits.hi) < u32::from(r.width), "{}.{}.{}", b.name, r.name, f.name);
                    assert!(f.bits.lo <= f.bits.hi);
                    assert!(!f.doc.trim().is_empty(), "{}.{}.{} has no doc", b.name, r.name, f.name);
                }
                for n in 0..r.count {
                    let at = r.offset + n * r.stride;
                    assert!(at + bytes <= b.size, "{}.{}[{n}] is outside the block", b.name, r.name);
                    for w in 0..bytes / 4 {
                        words.push((at + 4 * w, r.name));
                    }
                }
            }
            words.sort_unstable();
            for w in words.windows(2) {
                assert_ne!(
                    w[0].0, w[1].0,
                    "{}: {} and {} share offset {:#x}",
                    b.name, w[0].1, w[1].1, w[0].0
                );
            }
        }
    }

    #[test]
    fn fields_within_a_register_do_not_overlap() {
        for b in ALL_BLOCKS {
            for r in b.registers {
                let mut used = 0u64;
                for f in r.fields {
                    assert_eq!(used & f.bits.mask(), 0, "{}.{}.{}", b.name, r.name, f.name);
                    used |= f.bits.mask();
                }
            }
        }
    }

    #[test]
    fn doorbells_are_on_pages_of_their_own() {
        for r in 0..ring_id::EXCEPTION0 + ring_id::MAX_EXCEPTION {
            assert_eq!(doorbell_offset(r) % 4096, 0);
            assert_eq!(doorbell_offset(r + 1) - doorbell_offset(r), 4096);
        }
        assert_eq!(
            identity::SPEC.registers.iter().find(|r| r.name == "DOORBELL_BASE").unwrap().reset,
            0x1_0000
        );
    }

    #[test]
    fn offset_constants_and_field_modules_are_usable() {
        assert_eq!(control::CTRL, 0x10);
        assert_eq!(control::CTRL::RESET.mask(), 0b10);
        assert_eq!(identity::SPEC_VERSION::MAJOR.get(0x0001_0002), 1);
        assert_eq!(identity::SPEC_VERSION::MINOR.get(0x0001_0002), 2);
        assert_eq!(rings::RING_BASE + 3 * 0x40, 0x100);
        assert_eq!(flash::STATUS::RESULT.set(0, 4), 0x400);
    }
}
