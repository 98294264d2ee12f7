//! The host's side of a firmware image: the checks of `rtl_spec::formats::HOST_CHECKS` (each
//! refusal with a message of its own), signing, and packing an image from a payload and a
//! manifest. Nothing here panics on any input: every byte string is either an image that passes
//! or one refused with the first check it fails.

use super::keys::{TrustedKeys, id_hex, key_id};
use ed25519_dalek::{Signature, Signer, SigningKey};
use rtl_spec::codes::{ImageCheck, ImageTarget};
use rtl_spec::formats::{
    FLASH_SLOT_SIZE, HOST_CHECKS, IMAGE_HEADER_SIZE, IMAGE_SIGNATURE_CONTEXT, ImageHeader,
};
use serde::Serialize;
use zerocopy::IntoBytes;

/// A check an image failed, with its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Which check.
    pub check: ImageCheck,
    /// One line naming what is wrong.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How one check went.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// The check.
    pub check: ImageCheck,
    /// `Some(true)` passed, `Some(false)` failed, `None` not reached.
    pub ok: Option<bool>,
    /// What was found.
    pub detail: String,
}

/// The outcome of the host checks on one image.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The header, when there were enough bytes for one.
    #[serde(skip)]
    pub header: Option<ImageHeader>,
    /// Every check of `HOST_CHECKS`, in order.
    pub checks: Vec<CheckResult>,
    /// The first failure; `None` when the image may be written.
    pub refusal: Option<Refusal>,
    /// The signer's id, hex (when signed).
    pub key_id: Option<String>,
}

impl Report {
    /// The image passed every check.
    pub fn verified(&self) -> bool {
        self.refusal.is_none()
    }
}

/// The message for an image whose spec major differs.
fn spec_text(v: u32) -> String {
    format!("{}.{}", v >> 16, v & 0xFFFF)
}

/// One check on `bytes`: `Ok(detail)` or the refusal.
fn run_check(
    check: ImageCheck,
    bytes: &[u8],
    h: &ImageHeader,
    keys: &TrustedKeys,
    slot_size: u32,
) -> Result<String, String> {
    let payload_len = h.payload_len.get() as usize;
    let have = bytes.len().saturating_sub(IMAGE_HEADER_SIZE);
    let payload = bytes.get(IMAGE_HEADER_SIZE..IMAGE_HEADER_SIZE.saturating_add(payload_len)).unwrap_or(&[]);
    match check {
        ImageCheck::Header => match h.header_problem() {
            None => Ok(format!("SLUICEFW v{}, target {}", h.format_version, target_name(h.target))),
            Some(p) if h.magic != rtl_spec::formats::IMAGE_MAGIC => Err(format!("not a firmware image: {p}")),
            Some(p) => Err(format!("bad image header: {p}")),
        },
        ImageCheck::Truncated => match have.cmp(&payload_len) {
            std::cmp::Ordering::Equal => Ok(format!("{payload_len} payload bytes")),
            std::cmp::Ordering::Less => {
                Err(format!("image truncated: header says {payload_len} payload bytes, file has {have}"))
            }
            std::cmp::Ordering::Greater => Err(format!(
                "image has trailing data: header says {payload_len} payload bytes, file has {have}"
            )),
        },
        ImageCheck::Crc32 => {
            let crc = crc32fast::hash(payload);
            if crc == h.payload_crc32.get() {
                Ok(format!("{crc:#010x}"))
            } else {
                Err(format!(
                    "payload CRC32 mismatch: computed {crc:#010x}, header says {:#010x}",
                    h.payload_crc32
                ))
            }
        }
        ImageCheck::Sha256 => {
            if rtl_spec::image::image_digest(h, payload) == h.sha256 {
                Ok(super::keys::hex(&h.sha256))
            } else {
                Err("header SHA-256 mismatch: the digest of header and payload is not the one recorded"
                    .into())
            }
        }
        ImageCheck::Signature => {
            if h.is_unsigned() {
                return Err("unsigned image".into());
            }
            let id = id_hex(h.key_id);
            let Some((key, path)) = keys.keys.get(&h.key_id) else {
                return Err(format!(
                    "signed by unknown key {id} (trusted keys in {}: {})",
                    keys.dir.display(),
                    keys.ids()
                ));
            };
            let sig = Signature::from_bytes(&h.signature);
            let msg = [IMAGE_SIGNATURE_CONTEXT, &h.sha256[..]].concat();
            key.verify_strict(&msg, &sig)
                .map(|()| format!("key {id} ({})", path.display()))
                .map_err(|_| format!("signature does not verify with key {id}"))
        }
        ImageCheck::SpecVersion => {
            let v = h.spec_version.get();
            if v >> 16 == u32::from(rtl_spec::SPEC_MAJOR) {
                Ok(spec_text(v))
            } else {
                Err(format!(
                    "image implements spec {}; this driver drives {}.x",
                    spec_text(v),
                    rtl_spec::SPEC_MAJOR
                ))
            }
        }
        ImageCheck::Geometry => match h.geometry.problem() {
            None => Ok(geometry_text(h)),
            Some(p) => Err(format!("image geometry: {p}")),
        },
        ImageCheck::Size => {
            let total = IMAGE_HEADER_SIZE + payload_len;
            if total <= slot_size as usize {
                Ok(format!("{total} of {slot_size} bytes"))
            } else {
                Err(format!("image is {total} bytes; a slot holds {slot_size}"))
            }
        }
        ImageCheck::Payload => Ok(String::new()),
    }
}

/// Runs the host checks, in order, stopping at the first failure. `slot_size`: the device's
/// `SLOT_SIZE` (the specification's when no device is known).
pub fn verify(bytes: &[u8], keys: &TrustedKeys, slot_size: u32) -> Report {
    let Some(h) = rtl_spec::image::header_of(bytes) else {
        let message = format!(
            "image truncated: {} bytes, shorter than the {IMAGE_HEADER_SIZE}-byte header",
            bytes.len()
        );
        let checks =
            HOST_CHECKS.iter().map(|c| CheckResult { check: *c, ok: None, detail: String::new() }).collect();
        return Report {
            header: None,
            checks,
            refusal: Some(Refusal { check: ImageCheck::Truncated, message }),
            key_id: None,
        };
    };
    let mut refusal = None;
    let mut checks = Vec::new();
    for &check in HOST_CHECKS {
        if refusal.is_some() {
            checks.push(CheckResult { check, ok: None, detail: "not checked".into() });
            continue;
        }
        match run_check(check, bytes, &h, keys, slot_size) {
            Ok(detail) => checks.push(CheckResult { check, ok: Some(true), detail }),
            Err(message) => {
                checks.push(CheckResult { check, ok: Some(false), detail: message.clone() });
                refusal = Some(Refusal { check, message });
            }
        }
    }
    let key_id = (!h.is_unsigned()).then(|| id_hex(h.key_id));
    Report { header: Some(h), checks, refusal, key_id }
}

/// The default slot size for checks made without a device.
pub const SPEC_SLOT_SIZE: u32 = FLASH_SLOT_SIZE;

/// Name of a target byte.
pub fn target_name(t: u8) -> String {
    ImageTarget::try_from(t).map_or_else(|_| format!("unknown ({t})"), |t| t.name().to_lowercase())
}

/// The geometry as one line.
pub fn geometry_text(h: &ImageHeader) -> String {
    let g = &h.geometry;
    format!(
        "{} records, {} buckets, stash {}, {} next hops, {} ports, {} exception rings",
        g.records, g.buckets, g.stash, g.next_hops, g.ports, g.exception_rings
    )
}

/// Signs `header` (key id, then digest over header and payload, then signature) in place.
pub fn sign(header: &mut ImageHeader, payload: &[u8], key: &SigningKey) {
    header.key_id = key_id(&key.verifying_key());
    header.signature = [0; 64];
    header.sha256 = rtl_spec::image::image_digest(header, payload);
    let msg = [IMAGE_SIGNATURE_CONTEXT, &header.sha256[..]].concat();
    header.signature = key.sign(&msg).to_bytes();
}

/// Header and payload, as an image file.
pub fn assemble(header: &ImageHeader, payload: &[u8]) -> Vec<u8> {
    [header.as_bytes(), payload].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rtl_spec::image::ModelConfig;

    fn keys_with(key: &SigningKey) -> TrustedKeys {
        let mut k = TrustedKeys::default();
        k.keys.insert(key_id(&key.verifying_key()), (key.verifying_key(), "k.pub".into()));
        k
    }

    fn signed(key: &SigningKey) -> Vec<u8> {
        let cfg = ModelConfig { build_id: 0x42, ..ModelConfig::small(1024) };
        let payload = cfg.to_toml();
        let mut h = rtl_spec::image::unsigned_header(&cfg, rtl_spec::SPEC_VERSION, 0x7f, payload.as_bytes());
        sign(&mut h, payload.as_bytes(), key);
        assemble(&h, payload.as_bytes())
    }

    #[test]
    fn a_signed_image_verifies_and_every_defect_has_its_own_message() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let keys = keys_with(&key);
        let img = signed(&key);
        assert!(verify(&img, &keys, SPEC_SLOT_SIZE).verified());
        let msg = |b: &[u8]| verify(b, &keys, SPEC_SLOT_SIZE).refusal.unwrap().message;
        let flip = |at: usize| {
            let mut b = img.clone();
            b[at] ^= 1;
            b
        };
        assert!(msg(&flip(IMAGE_HEADER_SIZE + 1)).starts_with("payload CRC32 mismatch"));
        assert!(msg(&flip(0x14)).starts_with("header SHA-256 mismatch"));
        assert!(msg(&flip(0xA5)).starts_with("signature does not verify with key"));
        assert!(msg(&flip(0)).starts_with("not a firmware image"));
        assert!(msg(&img[..img.len() - 3]).starts_with("image truncated: header says"));
        assert!(msg(&img[..100]).contains("shorter than the 256-byte header"));
        let other = SigningKey::from_bytes(&[2; 32]);
        assert!(msg(&signed(&other)).starts_with("signed by unknown key"));
        assert!(verify(&img, &keys, 200).refusal.unwrap().message.starts_with("image is"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random bytes and mutated images never panic the verifier, and a mutated image is
        /// never accepted unless the mutation left it unchanged.
        #[test]
        fn no_input_panics_and_no_mutation_verifies(
            noise in proptest::collection::vec(any::<u8>(), 0..600),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let key = SigningKey::from_bytes(&[1; 32]);
            let keys = keys_with(&key);
            let _ = verify(&noise, &keys, SPEC_SLOT_SIZE);
            let img = signed(&key);
            let mut m = img.clone();
            for (at, v) in edits {
                let at = at % m.len();
                m[at] = v;
            }
            let r = verify(&m, &keys, SPEC_SLOT_SIZE);
            prop_assert!(m == img || !r.verified());
            let _ = verify(&img[..cut % (img.len() + 1)], &keys, SPEC_SLOT_SIZE);
        }
    }
}
