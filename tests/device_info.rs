//! `sluice device info` on the embedded model, and the clear refusal of a PCI device on a
//! machine without VFIO.

use std::process::Command;

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("run sluice")
}

#[test]
fn device_info_on_the_embedded_model_prints_identity_and_geometry() {
    let out = sluice(&["device", "info"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "spec version   1.5",
        "counter sets   2048",
        "1048576 records",
        "crc32c",
        "capabilities",
        "port 0",
        "flow_table@0x400",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let out = sluice(&["device", "info", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spec_version"], "1.5");
    assert_eq!(v["geometry"]["slots_per_bucket"], 4);
    assert_eq!(v["blocks"].as_array().unwrap().len(), rtl_spec::regs::ALL_BLOCKS.len());
}

#[test]
fn device_info_on_a_pci_address_without_vfio_fails_clearly() {
    // With or without /dev/vfio, there is no Sluice card at this address here.
    let out = sluice(&["device", "info", "--pci", "0000:03:00.0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0000:03:00.0") && err.contains("no /dev/vfio"), "{err}");
}

#[test]
fn device_info_on_a_missing_socket_names_it() {
    let out = sluice(&["device", "info", "--vfio-user", "/nonexistent/sluice-nic.sock"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/sluice-nic.sock"), "{err}");
}
