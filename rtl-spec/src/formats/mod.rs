//! Every memory format the NIC and the host share, bit by bit.
//!
//! Formats are `#[repr(C)]` zerocopy types with alignment 1 (all multi-byte fields are zerocopy
//! byte-order types), so a format can be read from or written to any byte offset of DMA memory
//! or a packet buffer without copying through an intermediate. Sub-word fields are
//! `bitfield-struct` words over little-endian integers: `bitfield-struct` was chosen over
//! `bitfield` because it takes a byte-order representation (`repr = U32`), so a bitfield word is
//! itself a zerocopy field with a fixed little-endian layout on every host, and it generates
//! `const` accessors; the `bitfield` crate works on native integers and would need a swap at
//! every access.

mod flow;
mod image;
mod rings;

pub use flow::*;
pub use image::*;
pub use rings::*;

use crate::meta::FormatSpec;

/// All memory formats, in the order the specification lists them.
pub const ALL_FORMATS: &[FormatSpec] = {
    use crate::meta::Format;
    &[
        FlowRecord::SPEC,
        RecordExt::SPEC,
        FlowTuple::SPEC,
        DirParams::SPEC,
        LookupKey::SPEC,
        IndexSlot::SPEC,
        IndexBucket::SPEC,
        NextHopEntry::SPEC,
        NextHopTunnel::SPEC,
        CounterSet::SPEC,
        FlowCommand::SPEC,
        Completion::SPEC,
        ExceptionDesc::SPEC,
        InjectDesc::SPEC,
        Event::SPEC,
        ImageHeader::SPEC,
        ImageGeometry::SPEC,
        FlashStateRecord::SPEC,
    ]
};

/// Every bitfield word with its name, for the layout checks and the document.
pub const ALL_BITFIELDS: &[(&str, &[crate::meta::BitField])] = &[
    ("RecordCtl", RecordCtl::FIELDS),
    ("SlotWord", SlotWord::FIELDS),
    ("IndexPos", IndexPos::FIELDS),
    ("NextHopCtl", NextHopCtl::FIELDS),
    ("CommandFlags", CommandFlags::FIELDS),
    ("ModifyMask", ModifyMask::FIELDS),
    ("CompletionFlags", CompletionFlags::FIELDS),
    ("ExceptionFlags", ExceptionFlags::FIELDS),
    ("InjectFlags", InjectFlags::FIELDS),
    ("EventFlags", EventFlags::FIELDS),
];

#[cfg(test)]
mod tests;
