//! What both sides compute from a firmware image's bytes: the header at the start of an image
//! ([`header_of`]), its SHA-256 ([`image_digest`]), the capability bits the specification
//! defines ([`model_caps`]), and the payload of a model image, a model configuration in TOML
//! ([`ModelConfig`]) with the header geometry it declares ([`geometry_of`]) and the unsigned
//! header that describes it ([`unsigned_header`]).
//!
//! The byte layout is in [`crate::formats`] (`ImageHeader`, `ImageGeometry`); the checks the NIC
//! makes at boot are the model's (`sim_model::flash::check`), those the host makes before it
//! writes are the firmware tools' (`sluice fw`, `sluice flash`). Both call into this module, so
//! the digest and the payload format are written once.

use crate::codes::ImageTarget;
use crate::formats::{
    IMAGE_FORMAT_VERSION, IMAGE_HASHED_BYTES, IMAGE_HEADER_SIZE, IMAGE_MAGIC, ImageGeometry, ImageHeader,
};
use crate::regs::ring_id;
use sha2::{Digest, Sha256};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

/// What the model is built as: the geometry and identity an FPGA image would fix. A firmware
/// image for the model carries one as its payload, in TOML ([`ModelConfig::to_toml`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Flow records (a power of two).
    pub records: u32,
    /// Index buckets (a power of two, at least 2).
    pub buckets: u32,
    /// Stash entries.
    pub stash: u32,
    /// Next-hop entries.
    pub next_hops: u32,
    /// Ethernet ports (1..=8).
    pub ports: u8,
    /// Exception rings (1..=16).
    pub exception_rings: u8,
    /// `BUILD_ID`.
    pub build_id: u32,
    /// `BUILD_TIME`, seconds since the epoch.
    #[serde(default)]
    pub build_time: u64,
}

impl Default for ModelConfig {
    /// The geometry the specification's reset values describe.
    fn default() -> Self {
        ModelConfig {
            records: 1 << 20,
            buckets: 1 << 19,
            stash: 64,
            next_hops: 4096,
            ports: 2,
            exception_rings: 16,
            build_id: 0x5100_0001,
            build_time: 0,
        }
    }
}

impl ModelConfig {
    /// A small geometry for tests (`records` records, half as many buckets, 8 stash entries).
    pub fn small(records: u32) -> Self {
        ModelConfig { records, buckets: (records / 2).max(2), stash: 8, next_hops: 64, ..Self::default() }
    }

    /// Parses and checks a model configuration written in TOML (an image's payload).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let cfg: ModelConfig =
            toml::from_str(text).map_err(|e| format!("model configuration: {}", e.message()))?;
        cfg.validate().map_err(|e| format!("model configuration: {e}"))?;
        Ok(cfg)
    }

    /// The configuration as TOML, every key written.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks the geometry; the message names the field and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        let pow2 = |name: &str, v: u32, min: u32, max: u32| {
            if v.is_power_of_two() && (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v}: expected a power of two in {min}..={max}"))
            }
        };
        pow2("records", self.records, 1, 1 << 27)?;
        pow2("buckets", self.buckets, 2, 1 << 27)?;
        if self.stash > 1024 {
            return Err(format!("stash = {}: expected at most 1024", self.stash));
        }
        if !(1..=65535).contains(&self.next_hops) {
            return Err(format!("next_hops = {}: expected 1..=65535", self.next_hops));
        }
        if !(1..=8).contains(&self.ports) {
            return Err(format!("ports = {}: expected 1..=8", self.ports));
        }
        if !(1..=ring_id::MAX_EXCEPTION).contains(&u32::from(self.exception_rings)) {
            return Err(format!("exception_rings = {}: expected 1..=16", self.exception_rings));
        }
        Ok(())
    }
}

/// The header at the start of `bytes`, if there are enough of them.
pub fn header_of(bytes: &[u8]) -> Option<ImageHeader> {
    ImageHeader::read_from_bytes(bytes.get(..IMAGE_HEADER_SIZE)?).ok()
}

/// SHA-256 of header bytes `0x00..0x80` and `payload`.
pub fn image_digest(header: &ImageHeader, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&header.as_bytes()[..IMAGE_HASHED_BYTES]);
    h.update(payload);
    h.finalize().into()
}

/// The header geometry of a model configuration.
pub fn geometry_of(cfg: &ModelConfig) -> ImageGeometry {
    ImageGeometry {
        records: U32::new(cfg.records),
        buckets: U32::new(cfg.buckets),
        stash: U32::new(cfg.stash),
        next_hops: U32::new(cfg.next_hops),
        ports: cfg.ports,
        exception_rings: cfg.exception_rings,
        reserved: [0; 6],
    }
}

/// The unsigned header for `payload` with the given identity; CRC and SHA-256 filled in.
pub fn unsigned_header(cfg: &ModelConfig, spec_version: u32, caps: u64, payload: &[u8]) -> ImageHeader {
    let mut h = ImageHeader {
        magic: IMAGE_MAGIC,
        format_version: U16::new(IMAGE_FORMAT_VERSION),
        header_size: U16::new(IMAGE_HEADER_SIZE as u16),
        target: ImageTarget::Model.into(),
        spec_version: U32::new(spec_version),
        build_id: U32::new(cfg.build_id),
        build_time: U64::new(cfg.build_time),
        caps: U64::new(caps),
        geometry: geometry_of(cfg),
        payload_len: U32::new(payload.len() as u32),
        payload_crc32: U32::new(crc32fast::hash(payload)),
        ..ImageHeader::default()
    };
    h.sha256 = image_digest(&h, payload);
    h
}

/// The capability bits the model implements (all the specification defines).
pub fn model_caps() -> u64 {
    crate::regs::identity::SPEC.registers.iter().find(|r| r.name == "CAPS").map_or(0, |r| r.reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_configuration_round_trips_through_toml_and_declares_its_geometry() {
        let cfg = ModelConfig { build_time: 1_700_000_000, ..ModelConfig::small(1024) };
        assert_eq!(ModelConfig::from_toml(&cfg.to_toml()), Ok(cfg.clone()));
        let payload = cfg.to_toml();
        let h = unsigned_header(&cfg, crate::SPEC_VERSION, model_caps(), payload.as_bytes());
        assert_eq!(h.geometry, geometry_of(&cfg));
        assert_eq!(h.header_problem(), None);
        assert_eq!(header_of(h.as_bytes()), Some(h));
        assert_eq!(header_of(&h.as_bytes()[..IMAGE_HEADER_SIZE - 1]), None);
        assert_eq!(image_digest(&h, payload.as_bytes()), h.sha256);
        assert_ne!(image_digest(&h, b"another payload"), h.sha256);
    }

    #[test]
    fn an_invalid_geometry_is_refused_by_name() {
        let bad = ModelConfig { records: 1000, ..ModelConfig::default() };
        assert_eq!(
            ModelConfig::from_toml(&bad.to_toml()),
            Err("model configuration: records = 1000: expected a power of two in 1..=134217728".into())
        );
    }
}
