//! `sluice run` against the in-process model, driven by the operator's CLI over the control
//! socket: services added and removed, servers added and reweighted, flows listed, the
//! configuration reloaded (by `sluice reload` and by SIGHUP), `/metrics` read, SIGTERM
//! honoured; and bad configurations refused with one line and exit code 2. No root needed:
//! the ports have no interfaces and no host interfaces are made (`[host] tap = false`).
//! [`hostile`] holds the hostile local clients of the control socket and the metrics endpoint;
//! [`support`] starts and drives the daemon for both.

mod hostile;
mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Daemon, SLUICE, config_text, free_port};

fn backends(v: &serde_json::Value, service: usize) -> Vec<(String, u64)> {
    v["services"][service]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["address"].as_str().unwrap().to_string(), b["weight"].as_u64().unwrap()))
        .collect()
}

#[test]
fn the_cli_drives_a_running_daemon() {
    let mut d = Daemon::start();
    let text = d.ok(&["services"]);
    assert!(text.contains("TCP  10.10.1.100:80 wrr"), "{text}");
    assert!(text.contains("-> 10.10.2.11:80"), "{text}");

    // ipvsadm's verbs: a service, its servers, a weight.
    d.ok(&["service", "add", "-t", "10.10.1.200:8080", "-s", "mh", "-z", "10.10.2.3"]);
    d.ok(&["backend", "add", "-t", "10.10.1.200:8080", "-r", "10.10.2.21:8080", "-w", "2"]);
    d.ok(&["backend", "add", "-t", "10.10.1.200:8080", "-r", "10.10.2.22:8080"]);
    let v = d.services_json();
    assert_eq!(v["services"][1]["scheduler"], "mh");
    assert_eq!(backends(&v, 1), vec![("10.10.2.21:8080".into(), 2), ("10.10.2.22:8080".into(), 1)]);
    d.ok(&["backend", "set", "-t", "10.10.1.200:8080", "-r", "10.10.2.21:8080", "-w", "0"]);
    assert_eq!(backends(&d.services_json(), 1)[0].1, 0, "drained");
    d.ok(&["backend", "del", "-t", "10.10.1.200:8080", "-r", "10.10.2.22:8080"]);
    assert_eq!(backends(&d.services_json(), 1).len(), 1);
    let (code, _, err) = d.cli(&["backend", "del", "-t", "10.10.1.200:8080", "-r", "10.10.2.99:8080"]);
    assert_eq!(code, 2, "the daemon refuses an unknown server as bad input");
    assert!(err.contains("10.10.2.99:8080"), "{err}");

    // Flows (none without traffic; the end-to-end tests show them under load) and stats.
    let flows = d.ok(&["flows"]);
    assert!(flows.starts_with("[w] pro expire state"), "{flows}");
    let f: serde_json::Value =
        serde_json::from_str(&d.ok(&["flows", "--json", "--vip", "10.10.1.100"])).unwrap();
    assert_eq!(f["total"], 0);
    let st: serde_json::Value = serde_json::from_str(&d.ok(&["stats", "--json"])).unwrap();
    assert_eq!(st["device"], "in-process model");
    assert_eq!(st["workers"], 2);
    assert!(st["table"]["capacity"].as_u64().unwrap() > 0);

    // Reload: the file is the truth; a service added at run time and not in the file goes.
    std::fs::write(&d.config, config_text(&d.socket, d.metrics, true)).unwrap();
    assert_eq!(d.ok(&["reload"]).trim(), "reloaded");
    let v = d.services_json();
    assert_eq!(v["services"].as_array().unwrap().len(), 1);
    assert_eq!(backends(&v, 0), vec![("10.10.2.11:80".into(), 1), ("10.10.2.12:80".into(), 4)]);
    // And by SIGHUP.
    std::fs::write(&d.config, config_text(&d.socket, d.metrics, false)).unwrap();
    assert!(Command::new("kill").args(["-HUP", &d.child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(&d.services_json(), 0).len() != 1 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A reload of a broken file is refused as bad input (exit 2) and the running
    // configuration stays.
    std::fs::write(&d.config, "[device]\nworkers = 3\n").unwrap();
    let (code, _, err) = d.cli(&["reload"]);
    assert_eq!(code, 2);
    assert!(err.contains("workers"), "{err}");
    assert_eq!(backends(&d.services_json(), 0).len(), 1);

    // Prometheus.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.metrics)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"));
    for m in [
        "sluice_service_connections{vip=\"10.10.1.100:80\",protocol=\"tcp\"} 0",
        "sluice_backend_weight{vip=\"10.10.1.100:80\",protocol=\"tcp\",backend=\"10.10.2.11:80\"} 1",
        "# TYPE sluice_nic_punts_total counter",
        "sluice_slowpath_drops_total{reason=\"no_connection\"} 0",
        "sluice_flow_table_occupancy 0",
        "sluice_flow_table_insert_failures_total 0",
        "sluice_flow_table_insert_rate",
    ] {
        assert!(body.contains(m), "metrics lack {m}");
    }

    // The control socket is the operator's only: mode 0600.
    assert_eq!(std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777, 0o600);

    // SIGTERM: a clean exit that removes the socket.
    assert!(Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM ignored");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(!d.socket.exists());
}

#[test]
fn bad_configurations_give_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = config_text(&dir.path().join("s.sock"), free_port(), false);
    let cases: Vec<(String, &str)> = vec![
        (good.replace("workers = 2", "workers = 2\nwrokers = 1"), "unknown key \"wrokers\""),
        (good.replace("10.10.2.11:80", "10.10.2.300:80"), "10.10.2.300:80"),
        (
            good.replace("[[service.backend]]\naddress = \"10.10.2.11:80\"\nweight = 1\n", ""),
            "has no backends",
        ),
        (good.replace("name = \"p1\"", "name = \"p0\""), "duplicate port name"),
        (good.replace("name = \"p0\"", "name = \"p0\"\ninterface = \"sluice-nope9\""), "sluice-nope9"),
        // One family per service (an IPv6 VIP with IPv4 LIPs and backends left as corrupt
        // packets before this was refused).
        (good.replace("10.10.1.100:80", "[fd00:1::100]:80"), "one family"),
        // `device` is a table: written as a list, say so.
        (good.replace("[device]", "[[device]]"), "device is a table"),
        // A 5 MB unknown key is quoted by a short prefix, not echoed whole.
        (good.replace("workers = 2", &format!("workers = 2\n{} = 1", "k".repeat(5 << 20))), "unknown key"),
    ];
    for (n, (text, expect)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{n}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(SLUICE).args(["run", "--config"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {n}: {err}");
        assert!(err.contains(expect), "case {n}: expected {expect:?} in {err}");
        assert_eq!(err.trim().lines().count(), 1, "case {n}: one line: {err}");
        assert!(err.len() < 1024, "case {n}: a short line: {} bytes", err.len());
        assert!(err.contains(&format!("bad{n}.toml")), "names the file: {err}");
    }
    let out =
        Command::new(SLUICE).args(["run", "--config"]).arg(dir.path().join("missing.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn files_that_are_not_configurations_are_refused_without_harm() {
    // `/dev/zero` never ends: read up to the cap, then refused.
    let out = Command::new(SLUICE).args(["config", "check", "--config", "/dev/zero"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than 64 MiB"), "{err}");

    // A regular file where the control socket goes is refused by `config check` and `run`,
    // and left as it was.
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, config_text(&precious, free_port(), false)).unwrap();
    for verb in [&["config", "check"][..], &["run"][..]] {
        let out = Command::new(SLUICE).args(verb).arg("--config").arg(&config).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{verb:?}: {err}");
        assert!(err.contains("exists and is not a socket"), "{verb:?}: {err}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    }
}

#[test]
fn run_time_changes_meet_the_files_rules() {
    let d = Daemon::start();
    let before = d.services_json();
    let refused: &[&[&str]] = &[
        // Mixed families.
        &["service", "add", "-t", "[fd00:1::100]:81", "-z", "10.10.2.5"],
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "[fd00:2::11]:80"],
        // Weights that do not fit.
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.12:80", "-w", "70000"],
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.12:80", "-w", "4294967295"],
        &["backend", "set", "-t", "10.10.1.100:80", "-r", "10.10.2.11:80", "-w", "70000"],
        // Port 0, the host's own addresses.
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.12:0"],
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.1.100:80"],
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.254:80"],
        &["service", "add", "-t", "10.10.1.101:0", "-z", "10.10.2.5"],
        &["service", "add", "-t", "10.10.1.1:80", "-z", "10.10.2.5"],
        // A LIP equal to another service's VIP.
        &["service", "add", "-t", "10.10.1.101:80", "-z", "10.10.1.100"],
    ];
    for args in refused {
        let (code, _, err) = d.cli(args);
        assert_eq!(code, 2, "sluice {}: {err}", args.join(" "));
        assert!(err.starts_with("error:") || err.starts_with("sluice"), "sluice {}: {err}", args.join(" "));
    }
    // The socket itself refuses what the CLI's argument parser would have caught first.
    for weight in [70000u64, 4294967295] {
        let request = format!(
            r#"{{"cmd":"backend_add","vip":"10.10.1.100:80","protocol":"tcp","address":"10.10.2.12:80","weight":{weight}}}"#
        );
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["ok"], false, "{line}");
        assert_eq!(reply["bad_input"], true, "{line}");
        assert!(reply["error"].as_str().unwrap().contains("weight"), "{line}");
    }
    assert_eq!(d.services_json(), before, "a refused change changed the services");
    // And a good one still goes through.
    d.ok(&["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.12:80", "-w", "3"]);
}

/// The `sluice_*` names a text mentions.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("sluice_") {
        let start = i + at;
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || **b == b'_')
                .count();
        // Not a dashboard uid like "sluice-lb" or a file name like sluice-alerts.yml.
        if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'/') {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn the_shipped_dashboard_and_alerts_use_only_metrics_the_daemon_exports() {
    let d = Daemon::start();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.metrics)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut scrape = String::new();
    s.read_to_string(&mut scrape).unwrap();
    let exported: std::collections::BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    assert!(exported.len() > 20, "{scrape}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging");
    let dashboard = std::fs::read_to_string(root.join("grafana/sluice-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(json["panels"].as_array().unwrap().len() >= 10);
    let alerts = std::fs::read_to_string(root.join("prometheus/sluice-alerts.yml")).unwrap();
    for (file, text) in [("dashboard", &dashboard), ("alert rules", &alerts)] {
        let used = metric_names(text);
        assert!(used.len() >= 5, "{file}: {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} uses metrics the daemon does not export: {unknown:?}");
    }
}
