//! The TCP option walk of a SYN-proxied flow's hit (record flag `seq_adjust`): SACK block edges
//! and timestamp option fields translated in place, each change folded into the TCP checksum
//! incrementally (RFC 1624), as SPEC.md's "Sequence and timestamp translation" says.
//!
//! The walk is the one a receiver does: end-of-list stops it, NOP is one byte, every other
//! option carries its length, and an option whose length is below 2 or runs past the options
//! stops it, leaving what follows alone. The RTL's walker (`rtl/src/sl_sack.sv`) follows the
//! same rules; the fixture corpus holds the two to the same bytes.

use super::headers::{TCP_OPT_EOL, TCP_OPT_NOP, TCP_OPT_SACK, TCP_OPT_TIMESTAMP, TCP_OPT_TIMESTAMP_LEN};
use rtl_spec::checksum::{apply, delta};
use zerocopy::network_endian::U32;
use zerocopy::{FromBytes, IntoBytes};

/// What the walk changes: the direction's half of the translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OptionEdit {
    /// Reply direction: `ts_delta` added to the TSval of every timestamp option.
    Reply {
        /// Added to TSval.
        ts_delta: u32,
    },
    /// Original direction: `seq_delta` subtracted from both edges of every SACK block, and
    /// `ts_delta` from the TSecr of every timestamp option.
    Original {
        /// Subtracted from every SACK edge.
        seq_delta: u32,
        /// Subtracted from TSecr.
        ts_delta: u32,
    },
}

/// Applies `edit` to the well-formed options of `options` (the bytes after the fixed TCP
/// header, up to its data offset) and returns `csum` updated for every change. A `ts_delta` of
/// 0 leaves the timestamp options and the checksum exactly as they are (no `0xFFFF` → `0x0000`
/// turn of an unchanged field): a record without a timestamp translation forwards as before.
pub(crate) fn adjust_options(options: &mut [u8], edit: OptionEdit, mut csum: u16) -> u16 {
    let (sack_sub, ts_delta) = match edit {
        OptionEdit::Reply { ts_delta } => (None, ts_delta),
        OptionEdit::Original { seq_delta, ts_delta } => (Some(seq_delta), ts_delta),
    };
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        match kind {
            TCP_OPT_EOL => break,
            TCP_OPT_NOP => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let Some(len) = options.get(at + 1).map(|&l| usize::from(l)) else { break };
        let Some(option) = options.get_mut(at..at + len).filter(|_| len >= 2) else { break };
        match (kind, sack_sub) {
            (TCP_OPT_SACK, Some(sub)) if (len - 2) % 8 == 0 => {
                // Blocks of (left edge, right edge) follow kind and length.
                for edge in option.get_mut(2..).unwrap_or_default().chunks_exact_mut(4) {
                    if let Ok(edge) = U32::mut_from_bytes(edge) {
                        csum = update(edge, |v| v.wrapping_sub(sub), csum);
                    }
                }
            }
            (TCP_OPT_TIMESTAMP, _) if len == usize::from(TCP_OPT_TIMESTAMP_LEN) && ts_delta != 0 => {
                // Kind, length, TSval (2..6), TSecr (6..10).
                let (field, new): (_, fn(u32, u32) -> u32) = match edit {
                    OptionEdit::Reply { .. } => (option.get_mut(2..6), u32::wrapping_add),
                    OptionEdit::Original { .. } => (option.get_mut(6..10), u32::wrapping_sub),
                };
                if let Some(Ok(field)) = field.map(U32::mut_from_bytes) {
                    csum = update(field, |v| new(v, ts_delta), csum);
                }
            }
            _ => {}
        }
        at += len;
    }
    csum
}

/// Replaces a 32-bit field by `f(field)` and returns `csum` updated for the change.
pub(crate) fn update(field: &mut U32, f: impl FnOnce(u32) -> u32, csum: u16) -> u16 {
    let old = *field;
    field.set(f(old.get()));
    apply(csum, delta(old.as_bytes(), field.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIG1: OptionEdit = OptionEdit::Original { seq_delta: 1, ts_delta: 0 };

    /// NOP, NOP, a timestamp option (TSval, TSecr), then a SACK block.
    fn ts_and_sack(tsval: u32, tsecr: u32) -> Vec<u8> {
        let mut o = vec![1, 1, 8, 10];
        o.extend(tsval.to_be_bytes());
        o.extend(tsecr.to_be_bytes());
        o.extend([1, 1, 5, 10, 0, 0, 0, 9, 0, 0, 0, 20]);
        o
    }

    fn word(o: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(o[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn malformed_sack_options_are_left_alone() {
        // NOP, a SACK whose length is not 2 + 8n, then a SACK running past the options.
        let mut options = [1, 5, 6, 0, 0, 0, 9, 5, 10, 0, 0, 0];
        let csum = adjust_options(&mut options, ORIG1, 0x1234);
        assert_eq!((options, csum), ([1, 5, 6, 0, 0, 0, 9, 5, 10, 0, 0, 0], 0x1234));
        // Zero length stops the walk instead of looping.
        let mut options = [5, 0, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(adjust_options(&mut options, ORIG1, 0x1234), 0x1234);
        // End of list hides what follows.
        let mut options = [0, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0];
        assert_eq!(adjust_options(&mut options, ORIG1, 0x1234), 0x1234);
        let mut options = [1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        adjust_options(&mut options, ORIG1, 0x1234);
        assert_eq!(options, [1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn tsval_and_tsecr_are_translated_with_wrap_and_sack_only_in_the_original_direction() {
        let mut o = ts_and_sack(0xFFFF_FFF0, 0x0000_0005);
        adjust_options(&mut o, OptionEdit::Reply { ts_delta: 0x20 }, 0);
        assert_eq!((word(&o, 4), word(&o, 8)), (0x10, 5), "TSval wraps, TSecr untouched");
        assert_eq!((word(&o, 16), word(&o, 20)), (9, 20), "the reply direction leaves SACK alone");

        let mut o = ts_and_sack(0xFFFF_FFF0, 0x0000_0005);
        adjust_options(&mut o, OptionEdit::Original { seq_delta: 10, ts_delta: 0x20 }, 0);
        assert_eq!((word(&o, 4), word(&o, 8)), (0xFFFF_FFF0, 0xFFFF_FFE5), "TSecr wraps, TSval untouched");
        assert_eq!((word(&o, 16), word(&o, 20)), (0xFFFF_FFFF, 10), "SACK edges by seq_delta");
    }

    #[test]
    fn the_checksum_follows_every_change_as_a_recomputation_would() {
        // A checksum over the options alone: the same arithmetic as over a whole segment.
        let sum = |o: &[u8]| rtl_spec::checksum::full(o);
        for edit in [
            OptionEdit::Reply { ts_delta: 0x8000_0001 },
            OptionEdit::Original { seq_delta: 0x1234_5678, ts_delta: 0xFFFF_FFFF },
            OptionEdit::Original { seq_delta: 0, ts_delta: 7 },
        ] {
            let mut o = ts_and_sack(0x0102_0304, 0xA0B0_C0D0);
            let before = sum(&o);
            let csum = adjust_options(&mut o, edit, before);
            assert_ne!(o, ts_and_sack(0x0102_0304, 0xA0B0_C0D0));
            assert_eq!(csum, sum(&o), "{edit:?}");
        }
    }

    #[test]
    fn a_zero_ts_delta_and_malformed_or_absent_timestamps_change_nothing() {
        let before = ts_and_sack(0x0102_0304, 0xA0B0_C0D0);
        // 0xFFFF is the checksum an unchanged field would turn into 0x0000: it must stay.
        let mut o = before.clone();
        assert_eq!(adjust_options(&mut o, OptionEdit::Reply { ts_delta: 0 }, 0xFFFF), 0xFFFF);
        assert_eq!(o, before);
        // A timestamp option of another length than 10, or cut short, is not one.
        for bad in [
            vec![8, 8, 0, 0, 0, 1, 0, 0],
            vec![1, 8, 10, 0, 0, 0, 1, 0, 0],
            vec![0, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
        ] {
            let mut o = bad.clone();
            assert_eq!(adjust_options(&mut o, OptionEdit::Reply { ts_delta: 3 }, 0x1234), 0x1234, "{bad:?}");
            assert_eq!(o, bad);
        }
        // No options at all.
        assert_eq!(adjust_options(&mut [], OptionEdit::Original { seq_delta: 1, ts_delta: 1 }, 9), 9);
    }
}
