//! `sluice fw`: firmware images on the host. `keygen` makes a signing key pair, `pack` builds a
//! signed image from a payload and a manifest, `inspect` prints an image's header and whether
//! it passes the host's checks, and why not.
//!
//! The manifest (TOML) names what the header declares:
//!
//! ```toml
//! target = "model"              # "model" (payload: a model configuration) or "fpga" (a bitstream)
//! spec_version = "1.1"          # the specification the image implements
//! build_id = 0x51000002         # model: taken from the payload when left out
//! build_time = 1700000000       # seconds since the epoch; model: from the payload
//! capabilities = ["IPV6", "VLAN", "SEQ_ADJUST", "AUTO_DELETE", "MSIX", "FLASH", "TEARDOWN_FORWARD"]
//! [geometry]                    # model: from the payload when left out; fpga: required
//! records = 1048576
//! buckets = 524288
//! stash = 64
//! next_hops = 4096
//! ports = 2
//! exception_rings = 16
//! ```

pub mod image;
pub mod keys;

use anyhow::Context;
use clap::{Args, Subcommand};
use image::{Report, SPEC_SLOT_SIZE};
use rtl_spec::codes::ImageTarget;
use rtl_spec::formats::{IMAGE_MAX_PAYLOAD, ImageGeometry, ImageHeader};
use rtl_spec::image::ModelConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use zerocopy::little_endian::{U32, U64};

/// An error that is the user's input (exit code 2), not a failure while working.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Firmware image commands.
#[derive(Subcommand, Debug)]
pub enum FwCommand {
    /// Make a signing key pair: OUT.key (secret, mode 0600) and OUT.pub.
    Keygen {
        /// DIR/NAME of the pair.
        #[arg(long, value_name = "DIR/NAME")]
        out: PathBuf,
    },
    /// Build a signed image from a payload and a manifest.
    Pack(PackArgs),
    /// Print an image's header and whether it passes the host's checks.
    Inspect {
        /// The image file.
        image: PathBuf,
        /// The trusted-keys directory.
        #[arg(long, value_name = "DIR", default_value = keys::DEFAULT_KEYS_DIR)]
        keys: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `sluice fw pack`.
#[derive(Args, Debug)]
pub struct PackArgs {
    /// The payload: a model configuration (TOML) or an FPGA bitstream.
    #[arg(long, value_name = "FILE")]
    payload: PathBuf,
    /// The manifest (TOML): target, spec version, build id, capabilities, geometry.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// The secret key to sign with (from `sluice fw keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the image.
    #[arg(long, value_name = "IMAGE")]
    out: PathBuf,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    target: Option<String>,
    spec_version: String,
    build_id: Option<u32>,
    build_time: Option<u64>,
    capabilities: Option<Vec<String>>,
    geometry: Option<ManifestGeometry>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct ManifestGeometry {
    records: u32,
    buckets: u32,
    stash: u32,
    next_hops: u32,
    ports: u8,
    exception_rings: u8,
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))
}

fn caps_from(names: &[String]) -> anyhow::Result<u64> {
    let spec = rtl_spec::regs::identity::SPEC
        .registers
        .iter()
        .find(|r| r.name == "CAPS")
        .map_or(&[][..], |r| r.fields);
    names.iter().try_fold(0u64, |acc, n| {
        let f = spec.iter().find(|f| f.name.eq_ignore_ascii_case(n)).ok_or_else(|| {
            let known: Vec<&str> = spec.iter().map(|f| f.name).collect();
            bad(format!("manifest: unknown capability {n:?} (known: {})", known.join(", ")))
        })?;
        Ok(acc | f.bits.mask())
    })
}

/// Builds the header and payload `pack` writes.
fn build(payload: &[u8], manifest_text: &str, key: &ed25519_dalek::SigningKey) -> anyhow::Result<Vec<u8>> {
    let m: Manifest = toml::from_str(manifest_text).map_err(|e| bad(format!("manifest: {}", e.message())))?;
    let target = match m.target.as_deref().unwrap_or("model") {
        "model" => ImageTarget::Model,
        "fpga" => ImageTarget::Fpga,
        other => return Err(bad(format!("manifest: target {other:?}: expected \"model\" or \"fpga\""))),
    };
    let (major, minor) = m
        .spec_version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .ok_or_else(|| bad(format!("manifest: spec_version {:?}: expected MAJOR.MINOR", m.spec_version)))?;
    if payload.len() > IMAGE_MAX_PAYLOAD as usize {
        return Err(bad(format!(
            "payload is {} bytes; an image holds at most {IMAGE_MAX_PAYLOAD}",
            payload.len()
        )));
    }
    let model = match target {
        ImageTarget::Model => {
            let text = std::str::from_utf8(payload)
                .map_err(|_| bad("payload: a model configuration must be UTF-8 TOML"))?;
            Some(ModelConfig::from_toml(text).map_err(|e| bad(format!("payload: {e}")))?)
        }
        ImageTarget::Fpga => None,
    };
    let geometry = match (m.geometry, &model) {
        (Some(g), _) => ImageGeometry {
            records: U32::new(g.records),
            buckets: U32::new(g.buckets),
            stash: U32::new(g.stash),
            next_hops: U32::new(g.next_hops),
            ports: g.ports,
            exception_rings: g.exception_rings,
            reserved: [0; 6],
        },
        (None, Some(cfg)) => rtl_spec::image::geometry_of(cfg),
        (None, None) => return Err(bad("manifest: [geometry] is required for an fpga image")),
    };
    if let Some(p) = geometry.problem() {
        return Err(bad(format!("manifest: geometry: {p}")));
    }
    let build_id = m
        .build_id
        .or(model.as_ref().map(|c| c.build_id))
        .ok_or_else(|| bad("manifest: build_id is required"))?;
    let build_time = m.build_time.or(model.as_ref().map(|c| c.build_time)).unwrap_or(0);
    if let Some(cfg) = &model {
        if rtl_spec::image::geometry_of(cfg) != geometry
            || cfg.build_id != build_id
            || cfg.build_time != build_time
        {
            return Err(bad(
                "manifest and payload disagree: a model image's geometry, build_id and build_time must be the model configuration's",
            ));
        }
    }
    let caps = match &m.capabilities {
        Some(names) => caps_from(names)?,
        None => rtl_spec::image::model_caps(),
    };
    let mut h = ImageHeader {
        magic: rtl_spec::formats::IMAGE_MAGIC,
        format_version: rtl_spec::formats::IMAGE_FORMAT_VERSION.into(),
        header_size: (rtl_spec::formats::IMAGE_HEADER_SIZE as u16).into(),
        target: target.into(),
        spec_version: U32::new(u32::from(major) << 16 | u32::from(minor)),
        build_id: U32::new(build_id),
        build_time: U64::new(build_time),
        caps: U64::new(caps),
        geometry,
        payload_len: U32::new(payload.len() as u32),
        payload_crc32: U32::new(crc32fast::hash(payload)),
        ..ImageHeader::default()
    };
    image::sign(&mut h, payload, key);
    Ok(image::assemble(&h, payload))
}

/// The report as text.
fn inspect_text(path: &Path, len: usize, r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "image          {} ({len} bytes)", path.display());
    if let Some(h) = &r.header {
        let _ =
            writeln!(s, "spec version   {}.{}", h.spec_version.get() >> 16, h.spec_version.get() & 0xFFFF);
        let _ = writeln!(s, "target         {}", image::target_name(h.target));
        let _ = writeln!(s, "build          id {:#010x}, time {}", h.build_id, h.build_time);
        let _ = writeln!(s, "capabilities   {:#x}", h.caps);
        let _ = writeln!(s, "geometry       {}", image::geometry_text(h));
        let _ = writeln!(s, "payload        {} bytes, CRC32 {:#010x}", h.payload_len, h.payload_crc32);
        let _ = writeln!(s, "sha256         {}", keys::hex(&h.sha256));
        let _ = writeln!(s, "key id         {}", r.key_id.as_deref().unwrap_or("none (unsigned)"));
    }
    for c in &r.checks {
        let mark = match c.ok {
            Some(true) => "ok     ",
            Some(false) => "FAILED ",
            None => "-      ",
        };
        let _ = writeln!(s, "check {:<12} {mark} {}", c.check.name(), c.detail);
    }
    match &r.refusal {
        None => s.push_str("verdict        verified\n"),
        Some(f) => {
            let _ = writeln!(s, "verdict        refused: {f}");
        }
    }
    s
}

/// The report as JSON.
pub fn report_json(path: &Path, len: usize, r: &Report) -> serde_json::Value {
    let header = r.header.as_ref().map(|h| {
        serde_json::json!({
            "format_version": h.format_version.get(),
            "target": image::target_name(h.target),
            "spec_version": format!("{}.{}", h.spec_version.get() >> 16, h.spec_version.get() & 0xFFFF),
            "build_id": h.build_id.get(),
            "build_time": h.build_time.get(),
            "capabilities": h.caps.get(),
            "geometry": {
                "records": h.geometry.records.get(), "buckets": h.geometry.buckets.get(),
                "stash": h.geometry.stash.get(), "next_hops": h.geometry.next_hops.get(),
                "ports": h.geometry.ports, "exception_rings": h.geometry.exception_rings,
            },
            "payload_len": h.payload_len.get(),
            "payload_crc32": h.payload_crc32.get(),
            "sha256": keys::hex(&h.sha256),
        })
    });
    serde_json::json!({
        "file": path.display().to_string(),
        "size": len,
        "header": header,
        "key_id": r.key_id,
        "checks": r.checks,
        "verified": r.verified(),
        "refusal": r.refusal,
    })
}

/// Runs a firmware command, returning what to print.
pub fn run(cmd: &FwCommand) -> anyhow::Result<String> {
    match cmd {
        FwCommand::Keygen { out } => {
            let key = keys::generate().context("reading /dev/urandom")?;
            let (secret, public) = keys::write_pair(out, &key).map_err(bad)?;
            let id = keys::id_hex(keys::key_id(&key.verifying_key()));
            Ok(format!(
                "key id {id}\nsecret {} (keep it off appliance hosts)\npublic {}\ntrust it with: install -m 0644 {} {}/{id}.pub\n",
                secret.display(),
                public.display(),
                public.display(),
                keys::DEFAULT_KEYS_DIR
            ))
        }
        FwCommand::Pack(a) => {
            let payload = read_input(&a.payload)?;
            let manifest =
                String::from_utf8(read_input(&a.manifest)?).map_err(|_| bad("manifest: not UTF-8"))?;
            let key = keys::read_secret(&a.key).map_err(bad)?;
            let img = build(&payload, &manifest, &key)?;
            std::fs::write(&a.out, &img).with_context(|| format!("writing {}", a.out.display()))?;
            let id = keys::id_hex(keys::key_id(&key.verifying_key()));
            Ok(format!("{}: {} bytes, signed by key {id}\n", a.out.display(), img.len()))
        }
        FwCommand::Inspect { image, keys: dir, json } => {
            let bytes = read_input(image)?;
            let trusted = keys::TrustedKeys::load(dir);
            let r = image::verify(&bytes, &trusted, SPEC_SLOT_SIZE);
            let text = if *json {
                serde_json::to_string_pretty(&report_json(image, bytes.len(), &r))? + "\n"
            } else {
                inspect_text(image, bytes.len(), &r)
            };
            if let Some(f) = &r.refusal {
                // Print the report, then refuse: the exit code says the image is not usable.
                let _ = crate::write_stdout(&text);
                return Err(bad(format!("{}: refused: {f}", image.display())));
            }
            Ok(text)
        }
    }
}
