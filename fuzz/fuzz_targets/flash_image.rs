//! Firmware images through the host's checks (`sluice fw inspect`, `sluice flash`) and the
//! NIC's boot ROM: `sluice::flash::install`, the code `sluice flash IMAGE` runs, on a model
//! (in this process) that booted its factory image from slot 0.
//!
//! Input: a mode byte, then the image. Mode bit 0: set the header's payload length to what
//! follows the header; bit 1: set the payload CRC-32; bit 2: sign the image (SHA-256 and
//! signature) with the key the host trusts. Without them almost no mutated image would get
//! past the CRC or the signature, and the later checks would never run.
//!
//! Invariants:
//! - the host's report has every check of `HOST_CHECKS` in order: passed up to the first
//!   failure, which is the refusal, and not run after it; no refusal means every check passed;
//! - the NIC's boot checks are a subset of the host's: an image the host accepts fails the
//!   NIC only at loading its payload (an FPGA bitstream, a configuration that does not load);
//! - a refused image changes no slot that boots: after a refusal by the host nothing at all
//!   was written (the inactive slot is still erased); after any refusal the active slot, the
//!   booted slot and its bytes are what they were, and a reset boots the same image;
//! - an accepted image is one the NIC's checks pass, is active, and a reset boots it.
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use ed25519_dalek::SigningKey;
use host_driver::flash::FlashController;
use host_driver::transport::Transport;
use host_driver::transport::inprocess::InProcess;
use libfuzzer_sys::fuzz_target;
use rtl_spec::codes::ImageCheck;
use rtl_spec::formats::{FLASH_SLOT_SIZE, HOST_CHECKS, IMAGE_HEADER_SIZE};
use sim_model::clock::ManualClock;
use sim_model::device::ModelConfig;
use sim_model::flash::Flash;
use sluice::fw::image;
use sluice::fw::keys::{TrustedKeys, key_id};
use std::sync::{Arc, OnceLock};
use zerocopy::IntoBytes;

/// The signing key and the host's trusted keys holding it, made once: deriving the public key
/// is a scalar multiplication, as dear as a signature.
fn keys() -> &'static (SigningKey, TrustedKeys) {
    static KEYS: OnceLock<(SigningKey, TrustedKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = SigningKey::from_bytes(&[0x5e; 32]);
        let mut t = TrustedKeys { dir: "/fuzz/keys".into(), ..TrustedKeys::default() };
        let vk = key.verifying_key();
        t.keys.insert(key_id(&vk), (vk, "/fuzz/keys/fuzz.pub".into()));
        (key, t)
    })
}

/// The image with the fix-ups the mode byte asks for.
fn fixed(mode: u8, bytes: &[u8], key: &SigningKey) -> Vec<u8> {
    let Some(mut h) = rtl_spec::image::header_of(bytes) else { return bytes.to_vec() };
    let payload = &bytes[IMAGE_HEADER_SIZE..];
    if mode & 1 != 0 {
        h.payload_len = (payload.len() as u32).into();
    }
    if mode & 2 != 0 {
        h.payload_crc32 = crc32fast::hash(payload).into();
    }
    if mode & 4 != 0 {
        image::sign(&mut h, payload, key);
    }
    [h.as_bytes(), payload].concat()
}

fn check_report(r: &image::Report) {
    assert_eq!(r.checks.len(), HOST_CHECKS.len(), "every host check reported");
    let mut failed = None;
    for (c, want) in r.checks.iter().zip(HOST_CHECKS) {
        assert_eq!(c.check, *want, "checks in HOST_CHECKS order");
        match (failed, c.ok) {
            (None, Some(false)) => failed = Some(c.check),
            (None, Some(true)) => {}
            (None, None) => assert!(r.header.is_none(), "a check skipped before any failure: {r:?}"),
            (Some(_), ok) => assert_eq!(ok, None, "a check ran after the first failure: {r:?}"),
        }
    }
    match (&r.refusal, failed) {
        (None, None) => assert!(r.verified() && r.header.is_some()),
        (Some(f), Some(check)) => assert_eq!(f.check, check, "the refusal is the first failure"),
        (Some(f), None) => assert!(r.header.is_none() && f.check == ImageCheck::Truncated, "{r:?}"),
        (None, Some(_)) => panic!("a failed check without a refusal: {r:?}"),
    }
    assert!(r.refusal.as_ref().is_none_or(|f| !f.message.is_empty() && !f.message.contains('\n')));
}

fuzz_target!(|data: &[u8]| {
    let (key, keys) = keys();
    let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let bytes = fixed(mode, rest, key);

    let report = image::verify(&bytes, keys, FLASH_SLOT_SIZE);
    check_report(&report);
    let nic = sim_model::flash::check(&bytes);
    if report.verified() {
        if let Err(f) = &nic {
            assert_eq!(f.check, ImageCheck::Payload, "the host accepted what the NIC's {f} refuses");
        }
    }

    let factory = ModelConfig { build_id: 0xfac7, ..ModelConfig::small(16) };
    let factory_image = sim_model::flash::factory_image(&factory);
    let flash = Flash::with_image(&factory_image);
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let mut t = InProcess::with_flash(flash, factory.clone(), clock).expect("the factory image boots");
    let status = |t: &mut InProcess| FlashController::open(t).expect("flash controller").status();
    // One controller for the status before, the install and the status after, as `sluice
    // flash` opens one.
    let (before, result, after) = {
        let mut fc = FlashController::open(&mut t).expect("flash controller");
        let before = fc.status();
        let result = sluice::flash::install(&mut fc, 1, &bytes, keys, false);
        (before, result, fc.status())
    };
    assert_eq!((before.active, before.booted, before.image_build_id), (0, Some(0), 0xfac7));
    let flash = t.device().flash();
    match &result {
        Err(e) => {
            if report.refusal.is_some() {
                assert!(
                    flash.is_erased(1, 0, FLASH_SLOT_SIZE as usize),
                    "refused by the host, yet written: {e}"
                );
            }
            assert_eq!(
                (after.active, after.booted),
                (0, Some(0)),
                "refused ({e}) and the active slot changed"
            );
            assert!(!after.trial, "refused ({e}) and a trial is pending");
            assert_eq!(
                flash.slot_prefix(0, factory_image.len()),
                factory_image,
                "refused ({e}): slot 0 changed"
            );
            t.reset().unwrap();
            let again = status(&mut t);
            assert_eq!(
                (again.booted, again.image_build_id),
                (Some(0), 0xfac7),
                "refused ({e}): boots another image"
            );
        }
        Ok(()) => {
            assert!(report.verified(), "installed what the host refuses");
            let booted = nic.as_ref().expect("installed what the NIC's checks refuse");
            assert_eq!(after.active, 1, "installed and not active");
            t.reset().unwrap();
            let again = status(&mut t);
            assert_eq!(again.booted, Some(1), "installed and not booted: {again:?}");
            assert_eq!(again.image_build_id, booted.config.build_id);
        }
    }
    if report.verified() && nic.is_ok() {
        assert!(result.is_ok(), "an image both sides accept was not installed: {result:?}");
    }
});
