//! `rtl-spec/SPEC.md` is what `sluice spec` prints, `sluice spec --json` is valid JSON that
//! lists the blocks the contract requires, and the RTL's generated files
//! (`rtl/generated/sluice_spec_pkg.sv`, `rtl/generated/sluice.rdl`) are what `sluice spec --sv`
//! and `sluice spec --rdl` print.

use std::process::Command;

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("run sluice")
}

/// The file at `path` (from the repository root) is exactly what `sluice spec ARGS` prints.
fn checked_in_is_printed(args: &[&str], path: &str) {
    let out = sluice(args);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let checked_in =
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_default();
    if printed != checked_in {
        let line = printed.lines().zip(checked_in.lines()).position(|(a, b)| a != b);
        panic!(
            "{path} is stale (first difference at line {}); regenerate it with \
             `cargo run --release -- {} > {path}`",
            line.map_or_else(|| "end".to_string(), |l| (l + 1).to_string()),
            args.join(" ")
        );
    }
}

#[test]
fn checked_in_spec_md_is_what_sluice_spec_prints() {
    checked_in_is_printed(&["spec"], "rtl-spec/SPEC.md");
}

#[test]
fn checked_in_sv_package_is_what_sluice_spec_sv_prints() {
    checked_in_is_printed(&["spec", "--sv"], "rtl/generated/sluice_spec_pkg.sv");
}

#[test]
fn checked_in_rdl_is_what_sluice_spec_rdl_prints() {
    checked_in_is_printed(&["spec", "--rdl"], "rtl/generated/sluice.rdl");
}

#[test]
fn spec_json_parses_and_lists_every_required_block() {
    let out = sluice(&["spec", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let blocks = v["blocks"].as_array().expect("blocks");
    let names: Vec<&str> = blocks.iter().filter_map(|b| b["name"].as_str()).collect();
    for want in [
        "identity",
        "control",
        "ports",
        "flow_table",
        "next_hop",
        "rings",
        "interrupts",
        "ager",
        "punt",
        "counters",
        "flash",
    ] {
        assert!(names.contains(&want), "block {want} missing from {names:?}");
    }
    for b in blocks {
        for r in b["registers"].as_array().unwrap() {
            assert!(r["offset"].is_u64() && r["width"].is_u64() && r["access"].is_string());
            assert!(r["reset"].is_u64() && r["fields"].is_array());
        }
    }
    let formats = v["formats"].as_array().unwrap();
    for want in
        ["FlowRecord", "FlowCommand", "Completion", "ExceptionDesc", "InjectDesc", "Event", "IndexBucket"]
    {
        let f = formats.iter().find(|f| f["name"] == want).unwrap_or_else(|| panic!("{want}"));
        for field in f["fields"].as_array().unwrap() {
            assert!(field["offset"].is_u64() && field["name"].is_string() && field["doc"].is_string());
        }
    }
}

#[test]
fn unknown_arguments_are_refused_with_exit_code_2() {
    let out = sluice(&["spec", "--yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yaml"));
    let out = sluice(&["spec", "--sv", "--rdl"]);
    assert_eq!(out.status.code(), Some(2), "one output format at a time");
}
