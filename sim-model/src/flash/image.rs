//! What the NIC's boot ROM does with an image: the checks of `NIC_BOOT_CHECKS` (header, length,
//! CRC-32, SHA-256, payload) and the loading of a model configuration. The NIC never checks a
//! signature: it holds no keys (the host does that before writing). The header parser, the
//! digest and the payload format are the contract's ([`rtl_spec::image`]).
//!
//! Also the factory image: the model's built-in configuration packed as an (unsigned) image, so
//! a new flash can be initialised with it and a blank one still boots.

use crate::device::ModelConfig;
use rtl_spec::codes::{ImageCheck, ImageTarget};
use rtl_spec::formats::{IMAGE_HEADER_SIZE, IMAGE_MAX_PAYLOAD, ImageHeader};
use rtl_spec::image::{geometry_of, header_of, image_digest, model_caps, unsigned_header};
use zerocopy::IntoBytes;

/// An image that passed the boot checks: its header and the configuration it loads.
#[derive(Clone, Debug)]
pub struct BootImage {
    /// The header.
    pub header: ImageHeader,
    /// The model configuration of its payload.
    pub config: ModelConfig,
}

/// The check an image failed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFault {
    /// Which check.
    pub check: ImageCheck,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for ImageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} check failed: {}", self.check.name(), self.reason)
    }
}

fn fault(check: ImageCheck, reason: impl Into<String>) -> ImageFault {
    ImageFault { check, reason: reason.into() }
}

/// Runs the NIC's boot checks on `slot` (the slot's bytes from offset 0; may be longer than the
/// image) and loads its payload.
pub fn check(slot: &[u8]) -> Result<BootImage, ImageFault> {
    let header = check_header(slot)?;
    let len = header.payload_len.get();
    let end = IMAGE_HEADER_SIZE + len as usize;
    if len > IMAGE_MAX_PAYLOAD || end > slot.len() {
        return Err(fault(ImageCheck::Truncated, format!("payload of {len} bytes does not fit")));
    }
    let payload = &slot[IMAGE_HEADER_SIZE..end];
    let crc = crc32fast::hash(payload);
    if crc != header.payload_crc32.get() {
        return Err(fault(
            ImageCheck::Crc32,
            format!("payload CRC32 {crc:#010x}, header says {:#010x}", header.payload_crc32),
        ));
    }
    if image_digest(&header, payload) != header.sha256 {
        return Err(fault(ImageCheck::Sha256, "SHA-256 of header and payload differs from the header's"));
    }
    let config = load_payload(&header, payload).map_err(|e| fault(ImageCheck::Payload, e))?;
    Ok(BootImage { header, config })
}

/// The first of [`check`]'s checks, those of the header alone (`bytes` from the slot's offset 0,
/// at least [`IMAGE_HEADER_SIZE`] of them to get past the first): the header if they pass, else
/// the fault `check` gives for any bytes that start with the same header. Lets the flash
/// controller read a payload only for a header that gets that far.
pub fn check_header(bytes: &[u8]) -> Result<ImageHeader, ImageFault> {
    let header = header_of(bytes).ok_or_else(|| fault(ImageCheck::Truncated, "shorter than a header"))?;
    if header.magic == [0xFF; 8] {
        return Err(fault(ImageCheck::Header, "the slot is erased"));
    }
    if let Some(p) = header.header_problem() {
        return Err(fault(ImageCheck::Header, p));
    }
    Ok(header)
}

/// Loads a payload: for the model, a model configuration that agrees with the header.
fn load_payload(header: &ImageHeader, payload: &[u8]) -> Result<ModelConfig, String> {
    match ImageTarget::try_from(header.target) {
        Ok(ImageTarget::Model) => {}
        Ok(ImageTarget::Fpga) => {
            return Err("an FPGA bitstream: the software NIC loads model configurations only".into());
        }
        Err(e) => return Err(e.to_string()),
    }
    let text =
        std::str::from_utf8(payload).map_err(|e| format!("the model configuration is not UTF-8: {e}"))?;
    let cfg = ModelConfig::from_toml(text)?;
    let declared = geometry_of(&cfg);
    if declared != header.geometry {
        return Err("the model configuration's geometry differs from the header's".into());
    }
    if cfg.build_id != header.build_id.get() || cfg.build_time != header.build_time.get() {
        return Err(format!(
            "the model configuration says build {:#010x} at {}, the header {:#010x} at {}",
            cfg.build_id, cfg.build_time, header.build_id, header.build_time
        ));
    }
    Ok(cfg)
}

/// The factory image of `cfg`: an unsigned model image of this specification's version.
pub fn factory_image(cfg: &ModelConfig) -> Vec<u8> {
    let payload = cfg.to_toml();
    let header = unsigned_header(cfg, rtl_spec::SPEC_VERSION, model_caps(), payload.as_bytes());
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(payload.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factory_image_passes_and_each_corruption_fails_its_own_check() {
        let cfg = ModelConfig::small(1024);
        let img = factory_image(&cfg);
        let ok = check(&img).expect("factory image boots");
        assert_eq!(ok.config, cfg);
        let fails = |bytes: &[u8]| check(bytes).unwrap_err().check;
        let mut bad = img.clone();
        bad[IMAGE_HEADER_SIZE + 3] ^= 1;
        assert_eq!(fails(&bad), ImageCheck::Crc32);
        let mut bad = img.clone();
        bad[0x14] ^= 1; // build id
        assert_eq!(fails(&bad), ImageCheck::Sha256);
        let mut bad = img.clone();
        bad[0] = b'X';
        assert_eq!(fails(&bad), ImageCheck::Header);
        assert_eq!(fails(&img[..img.len() - 1]), ImageCheck::Truncated);
        assert_eq!(fails(&vec![0xFF; 4096]), ImageCheck::Header);
        // A consistent image whose payload is not a configuration fails the payload check.
        let payload = b"records = \"many\"";
        let h = unsigned_header(&cfg, rtl_spec::SPEC_VERSION, 0, payload);
        let mut img = h.as_bytes().to_vec();
        img.extend_from_slice(payload);
        assert_eq!(fails(&img), ImageCheck::Payload);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// The boot checks never panic on a mutated or cut image.
        #[test]
        fn no_mutated_image_panics_the_boot_checks(
            edits in proptest::collection::vec((0..usize::MAX, 0..=u8::MAX), 1..6),
            cut in 0..usize::MAX,
        ) {
            let img = factory_image(&ModelConfig::small(1024));
            let mut m = img.clone();
            for (at, v) in edits {
                let at = at % m.len();
                m[at] = v;
            }
            let _ = check(&m);
            let _ = check(&m[..cut % (m.len() + 1)]);
        }
    }
}
