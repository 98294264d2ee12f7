//! Firmware images and the flash layout: the image header, the geometry it declares, the flash
//! state record, and the ordered lists of checks the NIC makes at boot and the host makes before
//! it writes an image.
//!
//! An image is a 256-byte [`ImageHeader`] followed by `payload_len` bytes of payload (the FPGA
//! bitstream on hardware; for the model, a model configuration in TOML). The SHA-256 covers the
//! first [`IMAGE_HASHED_BYTES`] bytes of the header and then the payload; the Ed25519 signature
//! is over that digest. This module only lays the bytes out: the digest, the header parser and the
//! model's payload format are in [`crate::image`]; checking is done by the NIC (boot ROM: header,
//! length, CRC32, SHA-256) and by the host tools (all of those, plus the signature, the spec
//! version and the geometry).

use crate::codes::ImageCheck;
use crate::meta::hw_format;
use zerocopy::little_endian::{U16, U32, U64};

/// The first 8 bytes of every image.
pub const IMAGE_MAGIC: [u8; 8] = *b"SLUICEFW";
/// The header layout this specification describes.
pub const IMAGE_FORMAT_VERSION: u16 = 1;
/// Bytes in an image header.
pub const IMAGE_HEADER_SIZE: usize = 256;
/// The header bytes the SHA-256 covers (everything before `sha256`).
pub const IMAGE_HASHED_BYTES: usize = 0x80;
/// Bytes in one flash slot (also `FLASH.SLOT_SIZE`): header and payload must fit in it.
pub const FLASH_SLOT_SIZE: u32 = 0x0040_0000;
/// The largest payload an image may carry.
pub const IMAGE_MAX_PAYLOAD: u32 = FLASH_SLOT_SIZE - IMAGE_HEADER_SIZE as u32;
/// Bytes in one of the two sectors of the flash state area.
pub const FLASH_STATE_SECTOR: u32 = 0x1000;
/// The first word of a valid flash state record ("SLST").
pub const FLASH_STATE_MAGIC: u32 = 0x5453_4C53;
/// How many times an activated image is booted without a confirmation before the NIC falls
/// back to the other slot (`FLASH.BOOT_LIMIT`).
pub const FLASH_BOOT_LIMIT: u32 = 3;
/// The domain string prefixed to the SHA-256 digest to form the signed message.
pub const IMAGE_SIGNATURE_CONTEXT: &[u8] = b"sluice firmware image v1\0";

hw_format! {
    /// The flow-table and device geometry an image builds, as its header declares it. The host
    /// checks it before writing; the NIC takes it from the payload it loads.
    pub struct ImageGeometry (24 bytes) {
        /// Flow records (a power of two).
        pub records: U32,
        /// Index buckets (a power of two, at least 2).
        pub buckets: U32,
        /// Stash entries (at most 1024).
        pub stash: U32,
        /// Next-hop entries (1..=65535).
        pub next_hops: U32,
        /// Ethernet ports (1..=8).
        pub ports: u8,
        /// Exception rings (1..=16).
        pub exception_rings: u8,
        /// Zero.
        pub reserved: [u8; 6],
    }
}

hw_format! {
    /// The header of a firmware image, 256 bytes, followed by the payload. Integers are
    /// little-endian; every reserved byte is zero.
    pub struct ImageHeader (256 bytes) {
        /// `SLUICEFW`.
        pub magic: [u8; 8],
        /// Header layout version: 1.
        pub format_version: U16,
        /// Bytes in the header: 256.
        pub header_size: U16,
        /// What the payload is: [`crate::codes::ImageTarget`].
        pub target: u8,
        /// Zero.
        pub reserved0: [u8; 3],
        /// The specification version the image implements, `major << 16 | minor` (what the
        /// identity block's `SPEC_VERSION` reads once it runs).
        pub spec_version: U32,
        /// Build id (`BUILD_ID` once it runs).
        pub build_id: U32,
        /// Build time, seconds since the Unix epoch (`BUILD_TIME` once it runs).
        pub build_time: U64,
        /// Capability bits (`CAPS` once it runs).
        pub caps: U64,
        /// The geometry the image builds.
        pub geometry: ImageGeometry,
        /// Bytes of payload after the header.
        pub payload_len: U32,
        /// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) of the payload.
        pub payload_crc32: U32,
        /// The signing key's id: the first 8 bytes of the SHA-256 of its 32-byte Ed25519 public
        /// key. All zero in an unsigned image.
        pub key_id: [u8; 8],
        /// Zero.
        pub reserved1: [u8; 48],
        /// SHA-256 of header bytes `0x00..0x80` followed by the payload.
        pub sha256: [u8; 32],
        /// Ed25519 signature of `"sluice firmware image v1\0"` followed by `sha256`. All zero in an
        /// unsigned image.
        pub signature: [u8; 64],
        /// Zero.
        pub reserved2: [u8; 32],
    }
}

hw_format! {
    /// A record of the flash state area. The area has two sectors of `FLASH_STATE_SECTOR` bytes
    /// after the two slots; each holds one record at its start. The NIC writes a new record
    /// (sequence + 1) over the sector holding the older one, so a write cut short leaves the
    /// other record intact; at boot it takes the valid record (magic and CRC) with the higher
    /// sequence. No valid record: slot 0 active, nothing pending.
    pub struct FlashStateRecord (32 bytes) {
        /// `0x54534C53` ("SLST").
        pub magic: U32,
        /// Incremented by every write of the state.
        pub sequence: U32,
        /// The slot booted at the next reset.
        pub active: u8,
        /// 1 when the active slot was activated and its boot not yet confirmed (a trial).
        pub pending: u8,
        /// Boots of the pending image so far; at `FLASH_BOOT_LIMIT` the next boot falls back.
        pub boots: u8,
        /// Zero.
        pub reserved: [u8; 17],
        /// CRC-32 (IEEE) of bytes `0x00..0x1C`.
        pub crc32: U32,
    }
}

/// What the NIC checks, in order, before it boots a slot (the boot ROM's checks); the first
/// that fails is the one reported (`FLASH.STATUS.DETAIL`, `BOOT_STATUS.FAILED_CHECK`). The NIC
/// never checks a signature: it holds no keys.
pub const NIC_BOOT_CHECKS: &[ImageCheck] =
    &[ImageCheck::Header, ImageCheck::Truncated, ImageCheck::Crc32, ImageCheck::Sha256, ImageCheck::Payload];

/// What the host checks, in order, before it touches the device; the first that fails refuses
/// the image, and nothing is written.
pub const HOST_CHECKS: &[ImageCheck] = &[
    ImageCheck::Header,
    ImageCheck::Truncated,
    ImageCheck::Crc32,
    ImageCheck::Sha256,
    ImageCheck::Signature,
    ImageCheck::SpecVersion,
    ImageCheck::Geometry,
    ImageCheck::Size,
];

impl ImageGeometry {
    /// The first rule the geometry breaks, naming the field, or `None` when it is valid.
    pub fn problem(&self) -> Option<String> {
        let pow2 = |name: &str, v: u32, min: u32, max: u32| {
            (!(v.is_power_of_two() && (min..=max).contains(&v)))
                .then(|| format!("{name} = {v}: expected a power of two in {min}..={max}"))
        };
        pow2("records", self.records.get(), 1, 1 << 27)
            .or_else(|| pow2("buckets", self.buckets.get(), 2, 1 << 27))
            .or_else(|| {
                (self.stash.get() > 1024).then(|| format!("stash = {}: expected at most 1024", self.stash))
            })
            .or_else(|| {
                (!(1..=65535).contains(&self.next_hops.get()))
                    .then(|| format!("next_hops = {}: expected 1..=65535", self.next_hops))
            })
            .or_else(|| {
                (!(1..=8).contains(&self.ports)).then(|| format!("ports = {}: expected 1..=8", self.ports))
            })
            .or_else(|| {
                (!(1..=16).contains(&self.exception_rings))
                    .then(|| format!("exception_rings = {}: expected 1..=16", self.exception_rings))
            })
            .or_else(|| (self.reserved != [0; 6]).then(|| "geometry reserved bytes are not zero".to_string()))
    }
}

impl ImageHeader {
    /// Whether the header's own fields are well formed: magic, format version, header size,
    /// target and reserved bytes. `None` when they are, else what is wrong.
    pub fn header_problem(&self) -> Option<String> {
        if self.magic != IMAGE_MAGIC {
            return Some(format!("bad magic {:02x?} (expected \"SLUICEFW\")", self.magic));
        }
        if self.format_version.get() != IMAGE_FORMAT_VERSION {
            return Some(format!(
                "header format version {} (this specification describes {IMAGE_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if usize::from(self.header_size.get()) != IMAGE_HEADER_SIZE {
            return Some(format!("header size {} (expected {IMAGE_HEADER_SIZE})", self.header_size));
        }
        if crate::codes::ImageTarget::try_from(self.target).is_err() {
            return Some(format!("unknown target {}", self.target));
        }
        if self.reserved0 != [0; 3] || self.reserved1 != [0; 48] || self.reserved2 != [0; 32] {
            return Some("reserved header bytes are not zero".to_string());
        }
        None
    }

    /// The image is unsigned: key id and signature are all zero.
    pub fn is_unsigned(&self) -> bool {
        self.key_id == [0; 8] && self.signature == [0; 64]
    }
}

impl FlashStateRecord {
    /// The bytes the record's CRC covers.
    pub const CRC_SPAN: usize = 0x1C;
}
