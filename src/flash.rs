//! `sluice flash`: write a firmware image to a NIC's inactive slot and activate it, or show,
//! activate, roll back and confirm what is there.
//!
//! Writing follows the bar set by mstflint, xbmgmt and fwupd: every host check on the image
//! first (signature against the trusted keys, spec version, geometry, size), with nothing
//! touched when one fails (exit 2); then erase and program the slot the running image did not
//! come from, with a progress bar on a terminal; read it back and compare; let the NIC verify
//! it; activate it for the next reset. `--reset` resets the device afterwards so it boots the
//! new image now. The booted image must then be confirmed (`--confirm`, or the daemon's
//! bring-up); an image never confirmed falls back (watchdog, boot limit).
//!
//! Devices: `vfio-user:PATH` (`sluice sim`), `pci:ADDR` or a bare PCI address (kernel VFIO),
//! `sim:FILE` (an in-process model whose flash is FILE, created with the factory image when
//! missing; every command is one power cycle of that model).

use crate::fw::keys::{self, TrustedKeys};
use crate::fw::{BadInput, image};
use anyhow::Context;
use clap::Args;
use host_driver::flash::{FlashController, FlashStatus};
use host_driver::transport::Transport;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `sluice flash`.
#[allow(clippy::struct_excessive_bools)] // clap flags
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["image", "status", "activate", "rollback", "confirm"]))]
pub struct FlashArgs {
    /// The device: vfio-user:PATH, pci:ADDR, a PCI address (0000:03:00.0) or sim:FILE.
    #[arg(long, value_name = "DEV")]
    device: String,
    /// The image to write into the inactive slot and activate.
    image: Option<PathBuf>,
    /// Show both slots, the active and booted ones, fallback and confirmation.
    #[arg(long)]
    status: bool,
    /// Make the inactive slot (which must hold a valid, trusted image) active for the next reset.
    #[arg(long)]
    activate: bool,
    /// Make the other slot active again (it must pass the NIC's checks).
    #[arg(long)]
    rollback: bool,
    /// Confirm the running image (after the driver identified and probed it).
    #[arg(long)]
    confirm: bool,
    /// The trusted-keys directory (one `<key-id>.pub` per trusted signing key).
    #[arg(long, value_name = "DIR", default_value = keys::DEFAULT_KEYS_DIR)]
    keys: PathBuf,
    /// Do every check and print what would be done, without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Reset the device afterwards, so it boots the active slot now.
    #[arg(long)]
    reset: bool,
    /// Print JSON (`--status`).
    #[arg(long)]
    json: bool,
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// Opens the transport `dev` names.
fn open(dev: &str) -> anyhow::Result<Box<dyn Transport>> {
    if let Some(path) = dev.strip_prefix("vfio-user:") {
        return Ok(Box::new(host_driver::transport::vfio_user::VfioUserTransport::connect(path.as_ref())?));
    }
    if let Some(file) = dev.strip_prefix("sim:") {
        use host_driver::transport::inprocess::{InProcess, open_flash_file};
        let factory = rtl_spec::image::ModelConfig::default();
        let flash = open_flash_file(file.as_ref(), &factory)
            .with_context(|| format!("opening the model's flash {file}"))?;
        let clock = std::sync::Arc::new(rtl_spec::clock::SystemClock::default());
        return Ok(Box::new(InProcess::with_flash(flash, factory, clock)?));
    }
    let pci = dev.strip_prefix("pci:").unwrap_or(dev);
    let looks_pci = pci.len() == 12
        && pci.as_bytes()[4] == b':'
        && pci.as_bytes()[7] == b':'
        && pci.as_bytes()[10] == b'.';
    if dev.starts_with("pci:") || looks_pci {
        return Ok(Box::new(host_driver::transport::vfio::VfioTransport::open(pci)?));
    }
    Err(bad(format!(
        "--device {dev:?}: expected vfio-user:PATH, pci:ADDR, a PCI address like 0000:03:00.0, or sim:FILE"
    )))
}

/// One slot as `--status` shows it.
#[derive(serde::Serialize)]
struct SlotView {
    slot: u32,
    nic_ok: bool,
    build_id: Option<u32>,
    spec_version: Option<String>,
    key_id: Option<String>,
    host_verdict: String,
}

fn slot_view(
    fc: &mut FlashController<'_>,
    st: &FlashStatus,
    slot: u32,
    trusted: &TrustedKeys,
) -> anyhow::Result<SlotView> {
    let bytes = fc.read_image(slot)?;
    let r = image::verify(&bytes, trusted, st.slot_size);
    let h = r.header.filter(|h| h.magic == rtl_spec::formats::IMAGE_MAGIC);
    let host_verdict = match (&h, &r.refusal) {
        (None, _) if bytes.iter().all(|b| *b == 0xFF) => "empty (erased)".to_string(),
        (_, None) => format!("valid, signed by trusted key {}", r.key_id.as_deref().unwrap_or("?")),
        (_, Some(f)) => format!("the host would refuse it: {f}"),
    };
    Ok(SlotView {
        slot,
        nic_ok: st.slot_ok.get(slot as usize).copied().unwrap_or(false),
        build_id: h.map(|h| h.build_id.get()),
        spec_version: h.map(|h| format!("{}.{}", h.spec_version.get() >> 16, h.spec_version.get() & 0xFFFF)),
        key_id: r.key_id,
        host_verdict,
    })
}

fn status_text(st: &FlashStatus, slots: &[SlotView]) -> String {
    let mut s = String::new();
    let booted =
        st.booted.map_or_else(|| "factory image (neither slot valid)".to_string(), |b| format!("slot {b}"));
    let _ = writeln!(s, "active         slot {} (booted at the next reset)", st.active);
    let _ = writeln!(s, "booted         {booted}, build {:#010x}", st.image_build_id);
    let fell = if !st.fell_back {
        "no".to_string()
    } else if st.unconfirmed {
        "yes: the activated image was not confirmed in time".to_string()
    } else {
        format!("yes: the active slot failed its {} check", st.failed_check.as_deref().unwrap_or("boot"))
    };
    let _ = writeln!(s, "fell back      {fell}");
    let conf = if st.confirmed {
        "yes".to_string()
    } else if st.trial {
        format!(
            "no: trial boot {} of {}; falls back unless confirmed within {} ms",
            st.boot_tries, st.boot_limit, st.confirm_timeout_ms
        )
    } else {
        "no (not needed: this image is settled)".to_string()
    };
    let _ = writeln!(s, "confirmed      {conf}");
    for v in slots {
        let id = v.build_id.map_or_else(|| "-".to_string(), |b| format!("{b:#010x}"));
        let _ = writeln!(
            s,
            "slot {}         build {id}, spec {}, NIC check {}, {}",
            v.slot,
            v.spec_version.as_deref().unwrap_or("-"),
            if v.nic_ok { "passes" } else { "fails" },
            v.host_verdict
        );
    }
    s
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {bytes}/{total_bytes}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn reset_and_report(t: &mut dyn Transport, expect_slot: u32) -> anyhow::Result<String> {
    t.reset().context("resetting the device")?;
    let mut fc = FlashController::open(t).context("reading the flash controller after the reset")?;
    let st = fc.status();
    if st.booted != Some(expect_slot) {
        anyhow::bail!(
            "after the reset the device booted {} (fell back: {}), not slot {expect_slot}",
            st.booted.map_or_else(|| "the factory image".into(), |b| format!("slot {b}")),
            st.fell_back
        );
    }
    Ok(format!(
        "reset: booted slot {expect_slot}, build {:#010x}; confirm it with sluice flash --confirm\n",
        st.image_build_id
    ))
}

/// Writes `bytes` into `target` and activates it, as `sluice flash IMAGE` does: the host
/// checks first (a refused image touches nothing, exit 2), then erase and program, read back
/// and compare, the NIC's own check, and activation for the next reset. `progress`: progress
/// bars on a terminal. The fuzz target `flash_image` runs every image through this.
pub fn install(
    fc: &mut FlashController<'_>,
    target: u32,
    bytes: &[u8],
    trusted: &TrustedKeys,
    progress: bool,
) -> anyhow::Result<()> {
    let slot_size = fc.status().slot_size;
    if let Some(f) = image::verify(bytes, trusted, slot_size).refusal {
        return Err(bad(format!("refused: {f}")));
    }
    let bar = |what| {
        if progress { progress_bar(bytes.len() as u64, what) } else { indicatif::ProgressBar::hidden() }
    };
    let writing = bar("writing");
    fc.write_slot(target, bytes, &mut |n| writing.set_position(n))?;
    writing.finish_and_clear();
    let verifying = bar("verifying");
    let back = fc.read_slot(target, bytes.len(), &mut |n| verifying.set_position(n))?;
    verifying.finish_and_clear();
    if let Some(at) = back.iter().zip(bytes).position(|(a, b)| a != b) {
        anyhow::bail!(
            "read-back of slot {target} differs from the image at byte {at}; the slot is not activated"
        );
    }
    fc.verify(target)?;
    fc.activate(target)?;
    Ok(())
}

/// Runs `sluice flash`, returning what to print.
pub fn run(a: &FlashArgs) -> anyhow::Result<String> {
    let trusted = TrustedKeys::load(&a.keys);
    // The image is checked before the device is even opened.
    let image_bytes = match &a.image {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
            if let Some(f) = image::verify(&bytes, &trusted, image::SPEC_SLOT_SIZE).refusal {
                return Err(bad(format!("refused {}: {f}", path.display())));
            }
            Some(bytes)
        }
        None => None,
    };
    let mut t = open(&a.device)?;
    let mut fc = FlashController::open(t.as_mut()).context("opening the flash controller")?;
    let st = fc.status();
    if a.status {
        let slots = (0..st.slot_count.min(2))
            .map(|s| slot_view(&mut fc, &st, s, &trusted))
            .collect::<anyhow::Result<Vec<_>>>()?;
        return Ok(if a.json {
            serde_json::to_string_pretty(
                &serde_json::json!({ "device": a.device, "status": st, "slots": slots }),
            )? + "\n"
        } else {
            status_text(&st, &slots)
        });
    }
    if a.confirm {
        drop(fc);
        let (info, _) = host_driver::nic::probe(t.as_mut())
            .context("the driver cannot drive this image; not confirming")?;
        let mut fc = FlashController::open(t.as_mut())?;
        fc.confirm();
        return Ok(format!(
            "confirmed build {:#010x} (spec {}) in slot {}\n",
            info.build_id,
            info.spec_version,
            fc.status().booted.map_or_else(|| "factory".into(), |b| b.to_string())
        ));
    }
    let mut out = String::new();
    let target = if a.rollback { 1 - st.active.min(1) } else { st.inactive() };
    if let Some(bytes) = &image_bytes {
        if let Some(f) = image::verify(bytes, &trusted, st.slot_size).refusal {
            return Err(bad(format!("refused: {f}")));
        }
        let build = rtl_spec::image::header_of(bytes).map_or(0, |h| h.build_id.get());
        if a.dry_run {
            return Ok(format!(
                "dry run: would write {} bytes (build {build:#010x}) to slot {target}, read it back, verify and activate it; nothing written\n",
                bytes.len()
            ));
        }
        install(&mut fc, target, bytes, &trusted, true)?;
        let _ = writeln!(
            out,
            "slot {target}: build {build:#010x} written, read back and verified; active at the next reset"
        );
    } else {
        // --activate / --rollback
        let what = if a.rollback { "roll back to" } else { "activate" };
        if a.activate {
            let img = fc.read_image(target)?;
            if let Some(f) = image::verify(&img, &trusted, st.slot_size).refusal {
                return Err(bad(format!("slot {target} cannot be activated: {f}")));
            }
        }
        if a.dry_run {
            return Ok(format!("dry run: would {what} slot {target}; nothing changed\n"));
        }
        fc.activate(target)?;
        let _ = writeln!(out, "slot {target} is active at the next reset");
    }
    drop(fc);
    if a.reset {
        out.push_str(&reset_and_report(t.as_mut(), target)?);
    }
    Ok(out)
}
