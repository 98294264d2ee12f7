//! The Debian package: `scripts/build-deb` builds it from the binary this test run built, and
//! it is unpacked into a scratch root (`dpkg -x`) to check its files, the conffiles list, the
//! unit, and that the shipped firmware image passes the host's checks with the shipped key and
//! flashes into a model. Ignored by default (it needs dpkg-deb); `scripts/test-all` runs it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

#[test]
#[ignore = "needs dpkg-deb (scripts/test-all installs dpkg)"]
fn the_package_builds_and_installs_the_daemon_unit_config_keys_and_firmware() {
    assert!(have("dpkg-deb") && have("dpkg"), "dpkg-deb is not installed (apt-get install dpkg)");
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_sluice");
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(Path::new(root).join("scripts/build-deb"))
        .args(["--binary", bin, "--out"])
        .arg(work.path().join("out"))
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "build-deb: {}", String::from_utf8_lossy(&out.stderr));
    let deb = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string();
    assert!(Path::new(&deb).extension().is_some_and(|x| x == "deb"), "{deb}");

    let inst = work.path().join("root");
    let x = Command::new("dpkg").arg("-x").arg(&deb).arg(&inst).status().unwrap();
    assert!(x.success());
    let ctrl = work.path().join("control");
    assert!(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl).status().unwrap().success());

    let mode = |p: &str| {
        std::fs::metadata(inst.join(p)).unwrap_or_else(|e| panic!("{p}: {e}")).permissions().mode() & 0o777
    };
    assert_eq!(mode("usr/bin/sluice"), 0o755);
    assert_eq!(mode("lib/systemd/system/sluice.service"), 0o644);
    assert_eq!(mode("etc/sluice/sluice.toml"), 0o644);
    assert_eq!(mode("usr/lib/sluice/firmware/sluice-model.img"), 0o644);
    assert_eq!(mode("usr/share/sluice/grafana/sluice-dashboard.json"), 0o644);
    assert_eq!(mode("usr/share/sluice/prometheus/sluice-alerts.yml"), 0o644);
    let unit = std::fs::read_to_string(inst.join("lib/systemd/system/sluice.service")).unwrap();
    for want in [
        "ExecStart=/usr/bin/sluice run --config /etc/sluice/sluice.toml",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(want), "unit lacks {want:?}");
    }
    let config = std::fs::read_to_string(inst.join("etc/sluice/sluice.toml")).unwrap();
    let v: toml::Value = toml::from_str(&config).expect("the shipped configuration is TOML");
    assert_eq!(v["device"]["transport"].as_str(), Some("sim"));
    assert!(v["service"][0]["backend"].as_array().is_some());
    let conffiles = std::fs::read_to_string(ctrl.join("conffiles")).unwrap();
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/sluice/sluice.toml"]);
    let control = std::fs::read_to_string(ctrl.join("control")).unwrap();
    assert!(control.contains("Package: sluice") && control.contains("Installed-Size:"), "{control}");

    // One trusted key, named by its id, which signed the shipped image.
    let keys: Vec<_> =
        std::fs::read_dir(inst.join("etc/sluice/keys")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0].file_stem().unwrap().to_string_lossy().to_string();
    assert!(name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert!(
        !inst.join("etc/sluice/keys").read_dir().unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "key")),
        "no secret key shipped"
    );
    let img = inst.join("usr/lib/sluice/firmware/sluice-model.img");
    let keys_dir = inst.join("etc/sluice/keys");
    let inspect = Command::new(inst.join("usr/bin/sluice"))
        .args(["fw", "inspect", "--json", "--keys"])
        .arg(&keys_dir)
        .arg(&img)
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let r: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(r["key_id"].as_str(), Some(name.as_str()));
    // And it flashes into a model with the installed tools, as the README's walk-through does.
    let dev = format!("sim:{}", work.path().join("nic.flash").display());
    let flash = Command::new(inst.join("usr/bin/sluice"))
        .args(["flash", "--device", &dev, "--keys"])
        .arg(&keys_dir)
        .arg(&img)
        .output()
        .unwrap();
    assert!(flash.status.success(), "{}", String::from_utf8_lossy(&flash.stderr));
}

/// The exposure score and level `systemd-analyze security --offline=true` gives the shipped unit.
fn unit_exposure(unit: &Path) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .expect("systemd-analyze runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line =
        text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let verdict = line.rsplit(':').next().unwrap().split_whitespace().collect::<Vec<_>>();
    (verdict[0].parse().unwrap(), verdict[1].to_owned())
}

#[test]
#[ignore = "needs systemd-analyze (Debian package systemd): run by scripts/test-all"]
fn the_shipped_unit_runs_with_only_what_the_daemon_needs() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/sluice.service");
    let (score, level) = unit_exposure(&unit);
    println!("sluice.service exposure: {score} {level}");
    assert!(["PERFECT", "SAFE", "OK"].contains(&level.as_str()), "exposure {score} {level}");
    let text = std::fs::read_to_string(&unit).unwrap();
    // What the daemon cannot work without stays granted.
    for needed in
        ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "AF_PACKET", "AF_XDP", "ReadWritePaths=/run/sluice"]
    {
        assert!(text.contains(needed), "the unit lost {needed}");
    }
}
