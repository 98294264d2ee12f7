//! The vocabulary the specification is written in, and the macros that write it.
//!
//! Every register block, memory format and code in this crate is declared once, through the
//! macros below. Each declaration produces two things from the same tokens: the Rust items the
//! driver and the model use (offset constants, `#[repr(C)]` zerocopy structs, bitfield accessors,
//! enums with a checked `TryFrom<u8>`) and a static description (`BlockSpec`, `FormatSpec`,
//! `EnumSpec`) that [`crate::doc`] renders as SPEC.md and JSON. So the document and the code
//! cannot drift: there is nothing to keep in step by hand.

use serde::Serialize;

/// How software may access a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Access {
    /// Read/write: reads return the last value written (or the reset value).
    RW,
    /// Read-only: writes are ignored.
    RO,
    /// Write-1-to-clear: reading returns the latched bits; writing a 1 clears that bit.
    W1C,
    /// Write-only: reads return 0; the write is a command (doorbells, reset requests).
    WO,
}

/// A bit range `[hi:lo]` inside a register or a bitfield word, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bits {
    /// Lowest bit.
    pub lo: u8,
    /// Highest bit (inclusive).
    pub hi: u8,
}

impl Bits {
    /// The range `[hi:lo]`.
    pub const fn new(hi: u8, lo: u8) -> Self {
        Self { lo, hi }
    }
    /// Number of bits in the range.
    pub const fn width(self) -> u32 {
        (self.hi - self.lo) as u32 + 1
    }
    /// The range as a mask in place.
    pub const fn mask(self) -> u64 {
        let w = self.width();
        let ones = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
        ones << self.lo
    }
    /// Extracts the field from a register value.
    pub const fn get(self, reg: u64) -> u64 {
        (reg & self.mask()) >> self.lo
    }
    /// Returns `reg` with the field replaced by `value` (extra high bits of `value` are dropped).
    pub const fn set(self, reg: u64, value: u64) -> u64 {
        (reg & !self.mask()) | ((value << self.lo) & self.mask())
    }
}

/// A named sub-field of a register or of a bitfield word in a memory format.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BitField {
    /// Field name as it appears in the code (lower case for formats, upper case for registers).
    pub name: &'static str,
    /// Where the field sits.
    pub bits: Bits,
    /// What it means.
    pub doc: &'static str,
}

/// One register (or an array of identical registers) in a block.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RegSpec {
    /// Register name; also the name of its offset constant.
    pub name: &'static str,
    /// Byte offset from the start of the block.
    pub offset: u32,
    /// Width in bits: 32 or 64. 64-bit registers are accessed with one 64-bit access.
    pub width: u8,
    /// Software access.
    pub access: Access,
    /// Value after reset, for the register's first instance.
    pub reset: u64,
    /// Number of instances (1 for a plain register).
    pub count: u32,
    /// Byte distance between instances (0 for a plain register).
    pub stride: u32,
    /// What it does.
    pub doc: &'static str,
    /// Sub-fields, empty when the register is one value.
    pub fields: &'static [BitField],
}

/// A register block: a header (type, version, next) followed by its registers.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BlockSpec {
    /// Block name.
    pub name: &'static str,
    /// The block type word (see [`crate::codes::BlockType`]).
    pub block_type: u32,
    /// Block version, `major << 16 | minor`.
    pub version: u32,
    /// Bytes the block occupies.
    pub size: u32,
    /// What the block is for.
    pub doc: &'static str,
    /// Its registers, in offset order.
    pub registers: &'static [RegSpec],
}

/// How a field of a memory format is built.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "kind", content = "of")]
pub enum FieldLayout {
    /// One value: an integer, an address, a byte string.
    Scalar,
    /// A little-endian word split into bit fields.
    Bits(&'static [BitField]),
    /// A nested format, laid out in place.
    Struct(&'static FormatSpec),
}

/// Implemented by every type that may appear as a field of a memory format.
pub trait FieldType {
    /// How the field is laid out inside.
    const LAYOUT: FieldLayout;
    /// How values are encoded, for the document.
    const ENCODING: &'static str;
}

/// One field of a memory format.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FieldSpec {
    /// Field name.
    pub name: &'static str,
    /// Byte offset from the start of the format.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Encoding (e.g. `u32 LE`, `u16 BE`, `bytes`).
    pub encoding: &'static str,
    /// What it means.
    pub doc: &'static str,
    /// Inner layout.
    pub layout: FieldLayout,
}

/// A memory format shared by the NIC and the host (a descriptor, a record, an event...).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FormatSpec {
    /// Type name in `rtl_spec`.
    pub name: &'static str,
    /// Size in bytes (checked at compile time against the Rust type).
    pub size: usize,
    /// What it is for.
    pub doc: &'static str,
    /// Fields in offset order.
    pub fields: &'static [FieldSpec],
}

/// Implemented by every memory format.
pub trait Format {
    /// The format's description.
    const SPEC: FormatSpec;
}

/// One value of a code.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CodeValue {
    /// Variant name.
    pub name: &'static str,
    /// Numeric value on the wire.
    pub value: u64,
    /// What it means.
    pub doc: &'static str,
}

/// A code (opcode, status, reason...): a set of stable numeric values.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EnumSpec {
    /// Type name.
    pub name: &'static str,
    /// What the code says.
    pub doc: &'static str,
    /// Its values.
    pub values: &'static [CodeValue],
}

/// A numeric value that names no known code. Carries the code's name and the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCode {
    /// Which code was being decoded.
    pub code: &'static str,
    /// The value that was found.
    pub value: u64,
}

impl core::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown {} value {:#x}", self.code, self.value)
    }
}

impl std::error::Error for UnknownCode {}

/// Lays bit fields out from bit 0 upwards, as `bitfield-struct` does with `order = Lsb`.
#[doc(hidden)]
pub const fn place_bits<const K: usize>(spec: [(&'static str, u32, &'static str); K]) -> [BitField; K] {
    let mut out = [BitField { name: "", bits: Bits { lo: 0, hi: 0 }, doc: "" }; K];
    let mut lo = 0u32;
    let mut i = 0;
    while i < K {
        let (name, width, doc) = spec[i];
        out[i] = BitField { name, bits: Bits { lo: lo as u8, hi: (lo + width - 1) as u8 }, doc };
        lo += width;
        i += 1;
    }
    out
}

macro_rules! scalar_field {
    ($($t:ty => $enc:literal),* $(,)?) => {$(
        impl FieldType for $t {
            const LAYOUT: FieldLayout = FieldLayout::Scalar;
            const ENCODING: &'static str = $enc;
        }
    )*};
}

scalar_field! {
    u8 => "u8",
    zerocopy::little_endian::U16 => "u16 LE",
    zerocopy::little_endian::U32 => "u32 LE",
    zerocopy::little_endian::U64 => "u64 LE",
    zerocopy::network_endian::U16 => "u16 BE (network order)",
    zerocopy::network_endian::U32 => "u32 BE (network order)",
}

impl<const N: usize> FieldType for [u8; N] {
    const LAYOUT: FieldLayout = FieldLayout::Scalar;
    const ENCODING: &'static str = "bytes";
}

/// Declares a little-endian bitfield word (a `bitfield-struct` type over a zerocopy LE integer)
/// and its description. Fields are laid out from bit 0 upwards in the order written.
macro_rules! hw_bits {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident : $raw:ident as $repr:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $field:ident : $fty:ident = $width:literal
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[bitfield_struct::bitfield(
            $raw,
            repr = zerocopy::little_endian::$repr,
            from = zerocopy::little_endian::$repr::new,
            into = zerocopy::little_endian::$repr::get
        )]
        #[derive(
            PartialEq, Eq,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable
        )]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                #[bits($width)]
                pub $field: $fty,
            )*
        }

        impl $name {
            /// The fields of this word, lowest bit first.
            pub const FIELDS: &'static [$crate::meta::BitField] = &$crate::meta::place_bits([
                $((stringify!($field), $width, concat!($($fdoc, "\n"),*))),*
            ]);

            /// Checks [`Self::FIELDS`] against the accessors `bitfield-struct` generated:
            /// the lowest and highest bit of every field must read back where the table says.
            #[doc(hidden)]
            pub fn layout_mismatches() -> Vec<String> {
                let mut bad = Vec::new();
                let mut i = 0usize;
                $(
                    let f = Self::FIELDS[i];
                    let lo_word = Self::from_bits(zerocopy::little_endian::$repr::new((1u64 << f.bits.lo) as $raw));
                    let hi_word = Self::from_bits(zerocopy::little_endian::$repr::new((1u64 << f.bits.hi) as $raw));
                    let top = 1u64 << (f.bits.width() - 1);
                    if u64::from(lo_word.$field()) != 1 || u64::from(hi_word.$field()) != top {
                        bad.push(format!("{}::{}", stringify!($name), f.name));
                    }
                    i += 1;
                )*
                let _ = i;
                bad
            }
        }

        impl $crate::meta::FieldType for $name {
            const LAYOUT: $crate::meta::FieldLayout = $crate::meta::FieldLayout::Bits(Self::FIELDS);
            const ENCODING: &'static str = concat!(stringify!($raw), " LE bitfield");
        }
    };
}

/// Declares a `#[repr(C)]` zerocopy memory format of a fixed size, and its description.
macro_rules! hw_format {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident ($size:literal bytes) {
            $(
                $(#[doc = $fdoc:literal])*
                pub $field:ident : $fty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[repr(C)]
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable
        )]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                pub $field: $fty,
            )*
        }

        const _: () = assert!(core::mem::size_of::<$name>() == $size, "format size");

        impl $crate::meta::Format for $name {
            const SPEC: $crate::meta::FormatSpec = $crate::meta::FormatSpec {
                name: stringify!($name),
                size: $size,
                doc: concat!($($doc, "\n"),*),
                fields: &[$(
                    $crate::meta::FieldSpec {
                        name: stringify!($field),
                        offset: core::mem::offset_of!($name, $field),
                        size: core::mem::size_of::<$fty>(),
                        encoding: <$fty as $crate::meta::FieldType>::ENCODING,
                        doc: concat!($($fdoc, "\n"),*),
                        layout: <$fty as $crate::meta::FieldType>::LAYOUT,
                    }
                ),*],
            };
        }

        impl $crate::meta::FieldType for $name {
            const LAYOUT: $crate::meta::FieldLayout =
                $crate::meta::FieldLayout::Struct(&<$name as $crate::meta::Format>::SPEC);
            const ENCODING: &'static str = "struct";
        }

        impl Default for $name {
            fn default() -> Self {
                zerocopy::FromZeros::new_zeroed()
            }
        }
    };
}

/// Declares a code: a `#[repr(u8)]` enum with stable values, a checked `TryFrom<u8>` and its
/// description.
macro_rules! hw_enum {
    (
        $(#[doc = $doc:literal])*
        pub enum $name:ident : $repr:ident {
            $(
                $(#[doc = $vdoc:literal])*
                $variant:ident = $value:literal
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[repr($repr)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        pub enum $name {
            $(
                $(#[doc = $vdoc])*
                $variant = $value,
            )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The code's description.
            pub const SPEC: $crate::meta::EnumSpec = $crate::meta::EnumSpec {
                name: stringify!($name),
                doc: concat!($($doc, "\n"),*),
                values: &[$(
                    $crate::meta::CodeValue {
                        name: stringify!($variant),
                        value: $value,
                        doc: concat!($($vdoc, "\n"),*),
                    }
                ),*],
            };

            /// The variant's name as written in the specification.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::meta::UnknownCode;
            fn try_from(value: $repr) -> Result<Self, $crate::meta::UnknownCode> {
                match value {
                    $($value => Ok($name::$variant),)*
                    other => Err($crate::meta::UnknownCode {
                        code: stringify!($name),
                        value: other as u64,
                    }),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v as $repr
            }
        }
    };
}

/// Declares a register block: a module with one offset constant per register (and, for a
/// register with fields, a same-named module of [`Bits`] constants), plus its [`BlockSpec`].
macro_rules! reg_block {
    (
        $(#[doc = $doc:literal])*
        pub mod $module:ident : $btype:ident, version ($major:literal, $minor:literal),
            at $base:literal, size $size:literal, next $next:literal {
            $(
                $(#[doc = $rdoc:literal])*
                $reg:ident @ $off:literal $([$count:literal x $stride:literal])? :
                    $width:literal $access:ident = $reset:literal
                $({
                    $(
                        $(#[doc = $fdoc:literal])*
                        $fname:ident [$hi:literal : $lo:literal]
                    ),* $(,)?
                })?
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[allow(non_snake_case)]
        pub mod $module {
            #[allow(unused_imports)]
            use $crate::meta::{Access, BitField, Bits, BlockSpec, RegSpec};

            /// The block type word this block's header carries.
            pub const BLOCK_TYPE: u32 = $crate::codes::BlockType::$btype as u32;
            /// The block version this crate describes, `major << 16 | minor`.
            pub const VERSION: u32 = ($major << 16) | $minor;
            /// Bytes the block occupies.
            pub const SIZE: u32 = $size;
            /// Where the block sits in BAR0 in the v1 layout. Drivers find it by walking the chain.
            pub const BASE: u32 = $base;
            /// The `NEXT` value this block carries in the v1 layout (0 ends the chain).
            pub const NEXT_BLOCK: u32 = $next;

            $(
                $(#[doc = $rdoc])*
                pub const $reg: u32 = $off;
                $(
                    /// The register's fields.
                    pub mod $reg {
                        use super::Bits;
                        $(
                            $(#[doc = $fdoc])*
                            pub const $fname: Bits = Bits::new($hi, $lo);
                        )*
                    }
                )?
            )*

            /// The block's description.
            pub const SPEC: BlockSpec = BlockSpec {
                name: stringify!($module),
                block_type: BLOCK_TYPE,
                version: VERSION,
                size: SIZE,
                doc: concat!($($doc, "\n"),*),
                registers: &[
                    RegSpec {
                        name: "TYPE", offset: 0, width: 32, access: Access::RO, reset: $crate::codes::BlockType::$btype as u64,
                        count: 1, stride: 0, fields: &[],
                        doc: "Block type (see BlockType).",
                    },
                    RegSpec {
                        name: "VERSION", offset: 4, width: 32, access: Access::RO,
                        reset: ($major << 16) | $minor, count: 1, stride: 0, fields: &[],
                        doc: "Block version: major in 31:16, minor in 15:0.",
                    },
                    RegSpec {
                        name: "NEXT", offset: 8, width: 32, access: Access::RO, reset: $next,
                        count: 1, stride: 0, fields: &[],
                        doc: "BAR0 offset of the next block in the chain; 0 ends the chain.",
                    },
                    $(RegSpec {
                        name: stringify!($reg),
                        offset: $off,
                        width: $width,
                        access: Access::$access,
                        reset: $reset,
                        count: $crate::meta::reg_block!(@count $($count)?),
                        stride: $crate::meta::reg_block!(@stride $($stride)?),
                        doc: concat!($($rdoc, "\n"),*),
                        fields: &[$($(
                            BitField {
                                name: stringify!($fname),
                                bits: Bits::new($hi, $lo),
                                doc: concat!($($fdoc, "\n"),*),
                            }
                        ),*)?],
                    }),*
                ],
            };
        }
    };
    (@count) => { 1 };
    (@count $c:literal) => { $c };
    (@stride) => { 0 };
    (@stride $s:literal) => { $s };
}

pub(crate) use {hw_bits, hw_enum, hw_format, reg_block};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_get_set_and_mask() {
        let b = Bits::new(23, 16);
        assert_eq!(b.width(), 8);
        assert_eq!(b.mask(), 0x00ff_0000);
        assert_eq!(b.set(0xdead_beef, 0x42), 0xde42_beef);
        assert_eq!(b.get(0xde42_beef), 0x42);
        assert_eq!(Bits::new(63, 0).mask(), u64::MAX);
        // Values wider than the field are cut, never spill into neighbours.
        assert_eq!(Bits::new(3, 0).set(0, 0xff), 0xf);
    }

    #[test]
    fn place_bits_packs_from_bit_zero() {
        let f = place_bits([("a", 1, ""), ("b", 7, ""), ("c", 24, "")]);
        assert_eq!(f[0].bits, Bits::new(0, 0));
        assert_eq!(f[1].bits, Bits::new(7, 1));
        assert_eq!(f[2].bits, Bits::new(31, 8));
    }
}
