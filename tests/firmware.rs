//! Firmware end to end: `sluice fw keygen/pack/inspect`, `sluice flash` into the in-process model
//! (`sim:FILE`) and over vfio-user (`sluice sim --flash FILE` in a process of its own), the
//! refusal of every kind of bad image with its own message and nothing written, a write cut by
//! a power loss, an unconfirmed boot that rolls back, and a corrupt active slot that falls back.
#![allow(clippy::many_single_char_names)]

use host_driver::flash::FlashController;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const OLD_BUILD: u32 = 0x5100_0001; // the factory image's
const NEW_BUILD: u32 = 0x5100_0002;
const SLOT: usize = rtl_spec::formats::FLASH_SLOT_SIZE as usize;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).stdin(Stdio::null()).output().expect("run sluice")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(args: &[&str]) -> String {
    let o = sluice(args);
    assert!(o.status.success(), "sluice {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch directory with a signing key, its trusted-keys directory and a packed image.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let w = Work { dir: tempfile::tempdir().unwrap() };
        ok(&["fw", "keygen", "--out", &w.p("keys/release")]);
        ok(&["fw", "keygen", "--out", &w.p("keys/other")]);
        std::fs::create_dir(w.path("trusted")).unwrap();
        std::fs::copy(w.path("keys/release.pub"), w.path("trusted/release.pub")).unwrap();
        w.pack("new.img", NEW_BUILD, "1.1", "release", 0);
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// Packs a model image of build `build`, its payload padded with `pad` bytes of comments.
    fn pack(&self, name: &str, build: u32, spec: &str, key: &str, pad: usize) -> PathBuf {
        let mut payload = format!(
            "records = 4096\nbuckets = 2048\nstash = 16\nnext_hops = 256\nports = 2\nexception_rings = 4\n\
             build_id = {build}\nbuild_time = 1700000000\n"
        );
        payload.push_str(&"# pad\n".repeat(pad / 6));
        std::fs::write(self.path("payload.toml"), payload).unwrap();
        std::fs::write(
            self.path("manifest.toml"),
            format!("target = \"model\"\nspec_version = \"{spec}\"\n"),
        )
        .unwrap();
        let key = self.p(&format!("keys/{key}.key"));
        ok(&[
            "fw",
            "pack",
            "--payload",
            &self.p("payload.toml"),
            "--manifest",
            &self.p("manifest.toml"),
            "--key",
            &key,
            "--out",
            &self.p(name),
        ]);
        self.path(name)
    }

    fn flash(&self, dev: &str, args: &[&str]) -> Output {
        let mut all = vec!["flash", "--device", dev, "--keys"];
        let keys = self.p("trusted");
        all.push(&keys);
        all.extend_from_slice(args);
        sluice(&all)
    }

    fn status(&self, dev: &str) -> serde_json::Value {
        let o = self.flash(dev, &["--status", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

#[test]
fn pack_inspect_flash_into_the_in_process_model_and_the_next_boot_runs_it() {
    let w = Work::new();
    let report = ok(&["fw", "inspect", &w.p("new.img"), "--keys", &w.p("trusted")]);
    assert!(report.contains("verdict        verified"), "{report}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["fw", "inspect", &w.p("new.img"), "--keys", &w.p("trusted"), "--json"]))
            .unwrap();
    assert_eq!(
        (v["verified"].as_bool(), v["header"]["build_id"].as_u64()),
        (Some(true), Some(u64::from(NEW_BUILD)))
    );
    let dev = format!("sim:{}", w.p("nic.flash"));
    let s = w.status(&dev);
    assert_eq!(
        (s["status"]["booted"].as_u64(), s["status"]["image_build_id"].as_u64()),
        (Some(0), Some(u64::from(OLD_BUILD)))
    );
    let dry = w.flash(&dev, &["--dry-run", &w.p("new.img")]);
    assert!(dry.status.success() && text(&dry).contains("dry run"), "{}", text(&dry));
    assert_eq!(w.status(&dev)["status"]["active"], 0, "a dry run writes nothing");
    let out = w.flash(&dev, &[&w.p("new.img")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("slot 1: build 0x51000002 written, read back and verified"),
        "{}",
        text(&out)
    );
    // `sim:FILE` powers the model on for each command: this is the next boot.
    let s = w.status(&dev);
    assert_eq!(s["status"]["booted"], 1);
    assert_eq!(s["status"]["image_build_id"].as_u64(), Some(u64::from(NEW_BUILD)));
    assert_eq!(s["status"]["trial"], true);
    assert!(s["slots"][1]["host_verdict"].as_str().unwrap().starts_with("valid, signed by trusted key"));
    let c = w.flash(&dev, &["--confirm"]);
    assert!(c.status.success(), "{}", text(&c));
    for _ in 0..4 {
        let s = w.status(&dev);
        assert_eq!(
            (s["status"]["booted"].as_u64(), s["status"]["fell_back"].as_bool()),
            (Some(1), Some(false))
        );
    }
    // Roll back to the factory image, and forth again.
    assert!(w.flash(&dev, &["--rollback", "--reset"]).status.success());
    assert_eq!(w.status(&dev)["status"]["image_build_id"].as_u64(), Some(u64::from(OLD_BUILD)));
    let a = w.flash(&dev, &["--activate"]);
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(w.status(&dev)["status"]["image_build_id"].as_u64(), Some(u64::from(NEW_BUILD)));
}

#[test]
fn each_bad_image_is_refused_with_its_own_message_and_both_slots_unchanged() {
    let w = Work::new();
    let good = std::fs::read(w.path("new.img")).unwrap();
    let dev = format!("sim:{}", w.p("nic.flash"));
    w.status(&dev); // creates the flash file
    let before = std::fs::read(w.path("nic.flash")).unwrap();
    let variant = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        edit(&mut b);
        std::fs::write(w.path(name), b).unwrap();
        name.to_string()
    };
    let unsigned = sim_model::flash::factory_image(&sim_model::device::ModelConfig::small(1024));
    std::fs::write(w.path("unsigned.img"), unsigned).unwrap();
    w.pack("future.img", NEW_BUILD, "2.0", "release", 0);
    w.pack("wrongkey.img", NEW_BUILD, "1.1", "other", 0);
    let cases: Vec<(String, &str)> = vec![
        (variant("payload.img", &|b| b[300] ^= 0x01), "payload CRC32 mismatch"),
        (variant("header.img", &|b| b[0x14] ^= 0x01), "header SHA-256 mismatch"),
        (variant("signature.img", &|b| b[0xB0] ^= 0x01), "signature does not verify with key"),
        (variant("truncated.img", &|b| b.truncate(b.len() - 10)), "image truncated: header says"),
        (variant("short.img", &|b| b.truncate(100)), "shorter than the 256-byte header"),
        (variant("magic.img", &|b| b[0] = b'X'), "not a firmware image"),
        ("wrongkey.img".into(), "signed by unknown key"),
        ("future.img".into(), "image implements spec 2.0; this driver drives 1.x"),
        ("unsigned.img".into(), "unsigned image"),
    ];
    let mut seen = std::collections::HashSet::new();
    for (name, want) in &cases {
        let o = w.flash(&dev, &[&w.p(name)]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: expected {want:?} in {err:?}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(seen.insert(err.replace(name.as_str(), "")), "{name}: message not distinct");
        let i = sluice(&["fw", "inspect", &w.p(name), "--keys", &w.p("trusted")]);
        assert_eq!(i.status.code(), Some(2), "inspect {name}");
        assert!(text(&i).contains(want), "inspect {name}: {}", text(&i));
        assert_eq!(std::fs::read(w.path("nic.flash")).unwrap(), before, "{name}: the flash changed");
    }
    assert_eq!(w.status(&dev)["status"]["image_build_id"].as_u64(), Some(u64::from(OLD_BUILD)));
    let bad_dev = sluice(&["flash", "--device", "floppy:0", "--status"]);
    assert_eq!(bad_dev.status.code(), Some(2), "{}", text(&bad_dev));
    let vfio = sluice(&["flash", "--device", "0000:03:00.0", "--status"]);
    assert_eq!(vfio.status.code(), Some(1), "{}", text(&vfio));
    assert!(text(&vfio).contains("0000:03:00.0"), "{}", text(&vfio));
}

#[test]
fn a_boot_never_confirmed_falls_back_after_the_boot_limit() {
    let w = Work::new();
    let dev = format!("sim:{}", w.p("nic.flash"));
    assert!(w.flash(&dev, &[&w.p("new.img")]).status.success());
    for boot in 1..=rtl_spec::formats::FLASH_BOOT_LIMIT {
        let s = w.status(&dev);
        assert_eq!(
            (s["status"]["boot_tries"].as_u64(), s["status"]["booted"].as_u64()),
            (Some(u64::from(boot)), Some(1))
        );
    }
    let s = w.status(&dev);
    assert_eq!((s["status"]["booted"].as_u64(), s["status"]["active"].as_u64()), (Some(0), Some(0)));
    assert_eq!(
        (s["status"]["fell_back"].as_bool(), s["status"]["unconfirmed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(s["status"]["image_build_id"].as_u64(), Some(u64::from(OLD_BUILD)));
}

#[test]
fn a_corrupt_active_slot_falls_back_with_the_failed_check_and_an_event() {
    use host_driver::transport::inprocess::InProcess;
    let w = Work::new();
    let dev = format!("sim:{}", w.p("nic.flash"));
    assert!(w.flash(&dev, &[&w.p("new.img")]).status.success());
    assert!(w.flash(&dev, &["--confirm"]).status.success());
    let mut bytes = std::fs::read(w.path("nic.flash")).unwrap();
    bytes[SLOT + 300] ^= 0x40; // a payload byte of slot 1
    std::fs::write(w.path("nic.flash"), &bytes).unwrap();
    let s = w.status(&dev);
    assert_eq!((s["status"]["booted"].as_u64(), s["status"]["fell_back"].as_bool()), (Some(0), Some(true)));
    assert_eq!(s["status"]["failed_check"], "Crc32");
    // Once more, driven by the driver: the fallback event is the first on the event ring.
    std::fs::write(w.path("nic2.flash"), &bytes).unwrap();
    let factory = sim_model::device::ModelConfig::default();
    let flash = sim_model::flash::Flash::open(&w.path("nic2.flash"), &[]).unwrap();
    let clock = std::sync::Arc::new(sim_model::clock::ManualClock::new(0));
    let t = InProcess::with_flash(flash, factory, clock).unwrap();
    let mut nic = host_driver::Nic::bring_up(Box::new(t), host_driver::NicConfig::default()).unwrap();
    let mut events = Vec::new();
    nic.recv_events(&mut events, 16);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, rtl_spec::codes::EventKind::Flash as u8);
    assert_eq!(events[0].cause, rtl_spec::codes::FlashEvent::FellBack as u8);
    assert_eq!(events[0].data.get(), 0);
}

/// `sluice sim`, killed when dropped.
struct Sim {
    child: Child,
}

impl Sim {
    fn start(socket: &Path, flash: &Path, extra: &[&str]) -> Sim {
        let _ = std::fs::remove_file(socket);
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("sim")
            .arg("--socket")
            .arg(socket)
            .arg("--flash")
            .arg(flash)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice sim");
        let mut sim = Sim { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            if let Some(status) = sim.child.try_wait().unwrap() {
                panic!("sluice sim exited early: {status}");
            }
            assert!(Instant::now() < deadline, "no socket at {} after 20 s", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        // That probe connection was a client: wait until the server took and dropped it.
        std::thread::sleep(Duration::from_millis(100));
        sim
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "sluice sim still running");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn over_vfio_user_the_flash_survives_restarts_and_an_unconfirmed_boot_rolls_back() {
    let w = Work::new();
    let socket = w.path("nic.sock");
    let flash = w.path("nic.flash");
    let dev = format!("vfio-user:{}", socket.display());
    let mut sim = Sim::start(&socket, &flash, &[]);
    let out = w.flash(&dev, &[&w.p("new.img"), "--reset"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("booted slot 1, build 0x51000002"), "{}", text(&out));
    let info: serde_json::Value = serde_json::from_str(&ok(&[
        "device",
        "info",
        "--vfio-user",
        &socket.display().to_string(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(info["build_id"].as_u64(), Some(u64::from(NEW_BUILD)));
    assert_eq!(info["geometry"]["records"], 4096, "the new image's geometry");
    // Nobody confirms: with a short watchdog the NIC falls back on its own.
    {
        let mut t = host_driver::transport::vfio_user::VfioUserTransport::connect(&socket).unwrap();
        let mut fc = FlashController::open(&mut t).unwrap();
        assert!(fc.status().trial);
        fc.set_confirm_timeout_ms(200);
        let deadline = Instant::now() + Duration::from_secs(10);
        while fc.status().booted != Some(0) {
            assert!(Instant::now() < deadline, "no fallback");
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = fc.status();
        assert!(st.fell_back && st.unconfirmed, "{st:?}");
        assert_eq!(st.image_build_id, OLD_BUILD);
    }
    // Flash again and confirm; a restart of the server (SIGKILL) keeps the flash.
    assert!(w.flash(&dev, &["--activate", "--reset"]).status.success());
    let c = w.flash(&dev, &["--confirm"]);
    assert!(c.status.success(), "{}", text(&c));
    drop(sim);
    sim = Sim::start(&socket, &flash, &[]);
    let s = w.status(&dev);
    assert_eq!(
        (s["status"]["booted"].as_u64(), s["status"]["image_build_id"].as_u64()),
        (Some(1), Some(u64::from(NEW_BUILD)))
    );
    assert_eq!(s["status"]["fell_back"], false);
    drop(sim);
}

#[test]
fn a_write_cut_by_a_power_loss_leaves_the_old_slot_active_and_bootable() {
    let w = Work::new();
    let big = w.pack("big.img", 0x5100_0003, "1.1", "release", 1 << 20);
    let socket = w.path("nic.sock");
    let flash = w.path("nic.flash");
    let dev = format!("vfio-user:{}", socket.display());
    // The server dies (abort, as at a power cut) 300 KiB into programming the image.
    let cut = (SLOT + 300 * 1024).to_string();
    let mut sim = Sim::start(&socket, &flash, &["--power-cut-after", &cut]);
    let before = std::fs::read(&flash).unwrap();
    let out = w.flash(&dev, &[&big.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!sim.wait_exit().success(), "the server died");
    let after = std::fs::read(&flash).unwrap();
    assert_eq!(after[..SLOT], before[..SLOT], "slot 0 untouched");
    assert_eq!(after[2 * SLOT..], before[2 * SLOT..], "the state area untouched");
    assert_ne!(after[SLOT..2 * SLOT], before[SLOT..2 * SLOT], "slot 1 was half written");
    drop(sim);
    let sim = Sim::start(&socket, &flash, &[]);
    let s = w.status(&dev);
    assert_eq!((s["status"]["active"].as_u64(), s["status"]["booted"].as_u64()), (Some(0), Some(0)));
    assert_eq!(s["status"]["image_build_id"].as_u64(), Some(u64::from(OLD_BUILD)));
    assert_eq!(
        (s["slots"][0]["nic_ok"].as_bool(), s["slots"][1]["nic_ok"].as_bool()),
        (Some(true), Some(false))
    );
    // The same write, done again, goes through.
    let out = w.flash(&dev, &[&big.display().to_string(), "--reset"]);
    assert!(out.status.success(), "{}", text(&out));
    drop(sim);
}

#[test]
fn bring_up_confirms_a_trial_boot_only_when_asked_to() {
    use host_driver::transport::inprocess::InProcess;
    let w = Work::new();
    let image = std::fs::read(w.path("new.img")).unwrap();
    for confirm_boot in [true, false] {
        let factory = sim_model::device::ModelConfig::small(1024);
        let flash = sim_model::flash::Flash::with_image(&sim_model::flash::factory_image(&factory));
        let clock = std::sync::Arc::new(sim_model::clock::ManualClock::new(0));
        let mut t = InProcess::with_flash(flash, factory, clock).unwrap();
        {
            let mut fc = FlashController::open(&mut t).unwrap();
            fc.write_slot(1, &image, &mut |_| {}).unwrap();
            fc.verify(1).unwrap();
            fc.activate(1).unwrap();
        }
        let cfg = host_driver::NicConfig { confirm_boot, ..host_driver::NicConfig::default() };
        let mut nic = host_driver::Nic::bring_up(Box::new(t), cfg).unwrap();
        assert_eq!(nic.info().build_id, NEW_BUILD, "bring-up's reset booted the activated image");
        let st = FlashController::open(&mut *nic.transport()).unwrap().status();
        assert_eq!((st.booted, st.confirmed, st.trial), (Some(1), confirm_boot, !confirm_boot), "{st:?}");
    }
}
