//! The device's counters as values: one struct per counter block, generated with the table of
//! its registers, so that the model (which counts into these structs and answers register reads
//! from them) and the driver (which fills them from register reads) iterate the same list and
//! neither writes the counters out by hand.
//!
//! [`DatapathCounters`] is the `COUNTERS` block (global counters, punts and drops by reason);
//! [`PortCounters`] is one port's counters in the `PORTS` block (the registers at
//! `PORT_* + n × PORT_STRIDE`). Each has a `TABLE` of its scalar counters (field name, register
//! offset, meaning), `get`/`set` by register offset, and `read_with` to fill one from a register
//! read function. With serde they are their scalar counters by field name, in register order
//! (what the control protocol carries; a missing one reads 0); the by-reason arrays are left
//! out, since exports name each reason.

use crate::regs::{counters, ports};

/// One counter register: its field name in the struct, its offset in its block, its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The struct field's name (also the counter's name in exports).
    pub name: &'static str,
    /// The register's offset in its block (for a port, port 0's).
    pub offset: u32,
    /// What it counts.
    pub doc: &'static str,
}

/// Bytes between one port's registers and the next's in the `PORTS` block.
pub const PORT_STRIDE: u32 = 0x40;
/// Entries of the by-reason arrays (`PUNT_REASON`, `DROP_REASON`), indexed by code.
pub const REASONS: usize = 16;
/// Bytes between two entries of a by-reason array.
const REASON_STRIDE: u32 = 8;

macro_rules! counter_struct {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident in $block:ident {
            $( $(#[doc = $doc:literal])+ $field:ident @ $reg:ident, )*
        }
        $( extra { $( $(#[doc = $xdoc:literal])+ $xfield:ident : $xty:ty = $xreg:ident [$xstride:expr], )* } )?
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: u64, )*
            $( $( $(#[doc = $xdoc])+ #[serde(skip)] pub $xfield: $xty, )* )?
        }

        impl $name {
            /// Every scalar counter of the struct, in register order.
            pub const TABLE: &'static [Counter] = &[
                $( Counter { name: stringify!($field), offset: $block::$reg, doc: concat!($($doc),+) }, )*
            ];

            /// The counter whose register is at `offset` in the block.
            pub fn get(&self, offset: u32) -> Option<u64> {
                match offset {
                    $( $block::$reg => Some(self.$field), )*
                    _ => {
                        $( $(
                            if let Some(v) = entry(offset, $block::$xreg, $xstride).and_then(|n| self.$xfield.get(n)) {
                                return Some(*v);
                            }
                        )* )?
                        None
                    }
                }
            }

            /// Sets the counter whose register is at `offset`; false when there is none.
            pub fn set(&mut self, offset: u32, value: u64) -> bool {
                match offset {
                    $( $block::$reg => self.$field = value, )*
                    _ => {
                        $( $(
                            if let Some(c) = entry(offset, $block::$xreg, $xstride).and_then(|n| self.$xfield.get_mut(n)) {
                                *c = value;
                                return true;
                            }
                        )* )?
                        return false;
                    }
                }
                true
            }

            /// Every counter, read with `read64(offset in the block)`.
            pub fn read_with(mut read64: impl FnMut(u32) -> u64) -> Self {
                let mut c = Self::default();
                for t in Self::TABLE {
                    c.set(t.offset, read64(t.offset));
                }
                $( $(
                    for n in 0..c.$xfield.len() {
                        let offset = $block::$xreg + n as u32 * $xstride;
                        c.$xfield[n] = read64(offset);
                    }
                )* )?
                c
            }
        }
    };
}

/// The entry of an array of registers at `first`, `stride` apart, that `offset` falls in
/// (the caller bounds it by the array's length).
fn entry(offset: u32, first: u32, stride: u32) -> Option<usize> {
    Some((offset.checked_sub(first)? / stride) as usize)
}

counter_struct! {
    /// The `COUNTERS` block: what the datapath counted since the last reset.
    pub struct DatapathCounters in counters {
        /// Frames received on all ports.
        rx_packets @ RX_PACKETS,
        /// Bytes received on all ports.
        rx_bytes @ RX_BYTES,
        /// Frames sent by the datapath on a hit.
        tx_packets @ TX_PACKETS,
        /// Bytes sent by the datapath on a hit.
        tx_bytes @ TX_BYTES,
        /// Lookups that matched a record.
        hits @ HITS,
        /// Lookups that matched nothing.
        misses @ MISSES,
        /// Frames punted to the host.
        punts @ PUNTS,
        /// Frames dropped, for any reason.
        drops @ DROPS,
        /// Frames sent from the inject ring.
        injected @ INJECTED,
        /// Events written to the event ring.
        events @ EVENTS,
        /// Events lost to a full event ring.
        events_lost @ EVENTS_LOST,
    }
    extra {
        /// Punts by `PuntReason` (index = code; entry 0 is unused).
        punt_reason: [u64; REASONS] = PUNT_REASON[REASON_STRIDE],
        /// Drops by `DropReason` (index = code; entry 0 is unused).
        drop_reason: [u64; REASONS] = DROP_REASON[REASON_STRIDE],
    }
}

counter_struct! {
    /// One port's counters in the `PORTS` block (offsets are port 0's; port `n` adds
    /// `n × PORT_STRIDE`).
    pub struct PortCounters in ports {
        /// Frames received on the port.
        rx_packets @ PORT_RX_PACKETS,
        /// Bytes received on the port.
        rx_bytes @ PORT_RX_BYTES,
        /// Frames sent on the port.
        tx_packets @ PORT_TX_PACKETS,
        /// Bytes sent on the port.
        tx_bytes @ PORT_TX_BYTES,
        /// Frames dropped at the port.
        drops @ PORT_DROPS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_register_is_in_its_table_once() {
        for (table, block) in [
            (DatapathCounters::TABLE, crate::regs::counters::SPEC.registers),
            (PortCounters::TABLE, crate::regs::ports::SPEC.registers),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for c in table {
                assert!(seen.insert(c.offset), "{} twice", c.name);
                let reg = block.iter().find(|r| r.offset == c.offset).expect("a register of the block");
                assert_eq!(reg.width, 64, "{} is a 64-bit counter", c.name);
            }
        }
    }

    #[test]
    fn get_set_and_read_with_agree() {
        let c = DatapathCounters::read_with(u64::from);
        for t in DatapathCounters::TABLE {
            assert_eq!(c.get(t.offset), Some(u64::from(t.offset)));
        }
        assert_eq!(c.punt_reason[3], u64::from(counters::PUNT_REASON + 24));
        assert_eq!(c.get(counters::DROP_REASON + 8 * 15), Some(u64::from(counters::DROP_REASON + 120)));
        assert_eq!(c.get(counters::DROP_REASON + 8 * 16), None, "beyond the array");
        let mut d = DatapathCounters::default();
        assert!(d.set(counters::HITS, 7) && d.hits == 7);
        assert!(d.set(counters::PUNT_REASON + 8, 2) && d.punt_reason[1] == 2);
        assert!(!d.set(0x7fc, 1), "no counter there");
        let p = PortCounters::read_with(|off| u64::from(off) * 2);
        assert_eq!(p.drops, u64::from(ports::PORT_DROPS) * 2);
    }
}
