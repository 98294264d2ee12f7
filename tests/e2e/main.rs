//! End to end with real TCP and UDP stacks: the Linux kernel's, in network namespaces, through
//! the appliance (`sluice run` on the in-process model attached to veths, and `sluice sim` +
//! `sluice run --transport vfio-user`). Every test runs over AF_XDP ports; the FullNAT and
//! transfer set and the wrk load run over AF_PACKET ports too. Run as root (each test is
//! `#[ignore = "needs root: …"]`; `scripts/test-all` runs them).

mod harness;
mod modes;
mod proxy_protocol;

use harness::{Appliance, Mode, SLUICE, Wire, have, require_root};
use sha2::Digest;
use std::collections::HashMap;

fn sha(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The pattern `/bytes/N` sends (see `sluice internal`).
/// The requests wrk completed ("N requests in ..."), 0 when its output has no such line.
fn wrk_requests(text: &str) -> u64 {
    text.lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(7) % 251) as u8).collect()
}

fn http_fullnat_ipv6_udp_icmp_and_large_transfers(a: &Appliance) {
    // HTTP to the VIP reaches both servers, which see the LIP and never the client.
    let lines = a.get("http://10.10.1.100/", 4);
    assert_eq!(lines.len(), 4);
    for l in &lines {
        assert!(l.starts_with("200 rs"), "{l}");
        assert!(l.contains("you are 10.10.2.1:"), "the server sees the LIP: {l}");
        assert!(!l.contains("10.10.1.10"), "the server never sees the client: {l}");
    }
    assert!(lines.iter().any(|l| l.contains("rs1")) && lines.iter().any(|l| l.contains("rs2")));
    // The servers have no route to the client: FullNAT needs none.
    let route = std::process::Command::new("ip")
        .args(["netns", "exec", &a.net.servers[0], "ip", "route", "get", "10.10.1.10"])
        .output()
        .unwrap();
    assert!(!route.status.success(), "server 1 has no route to the client");

    // curl, a client nobody here wrote.
    assert!(have("curl"), "curl is not installed (scripts/test-all installs it)");
    {
        let out = a.client(&["curl", "-sS", "--max-time", "10", "http://10.10.1.100/"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("you are 10.10.2.1:"));
    }

    // IPv6 VIP to IPv6 servers.
    for l in a.get("http://[fd00:1::100]/", 2) {
        assert!(l.starts_with("200 rs") && l.contains("you are [fd00:2::1]:"), "{l}");
    }

    // UDP through the UDP VIP.
    let out = a.client(&[
        SLUICE,
        "internal",
        "udp-send",
        "--to",
        "10.10.1.100:53",
        "--message",
        "hello",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    for l in text.lines() {
        assert!(l.starts_with("10.10.1.100:53 rs") && l.ends_with(": hello"), "{l}");
    }

    // ICMP echo to the VIP.
    assert!(have("ping"), "ping is not installed (scripts/test-all installs it)");
    {
        let out = a.client(&["ping", "-c", "2", "-W", "2", "10.10.1.100"]);
        assert!(out.status.success(), "ping the VIP: {}", String::from_utf8_lossy(&out.stdout));
    }

    // Large transfers each way arrive byte-identical.
    let mb = 24_000_000usize;
    let before = a.stats();
    assert!(have("curl"), "curl is not installed (scripts/test-all installs it)");
    {
        let out = a.client(&["curl", "-sS", "--max-time", "60", &format!("http://10.10.1.100/bytes/{mb}")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout.len(), mb);
        assert_eq!(sha(&out.stdout), sha(&pattern(mb)), "download byte-identical");
        let file = a.dir.join("upload.bin");
        let data: Vec<u8> = (0..mb).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let out = a.client(&[
            "curl",
            "-sS",
            "--max-time",
            "60",
            "--data-binary",
            &format!("@{}", file.display()),
            "-H",
            "Content-Type: application/octet-stream",
            "http://10.10.1.100/sink",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let reply = String::from_utf8_lossy(&out.stdout);
        assert!(
            reply.contains(&format!("received {mb} bytes sha256 {}", sha(&data))),
            "upload byte-identical: {reply}"
        );
    }
    // The flows are offloaded: the NIC carried the transfers, the slow path only saw the
    // handshakes and teardowns.
    let after = a.stats();
    let hits = after["nic"]["hits"].as_u64().unwrap() - before["nic"]["hits"].as_u64().unwrap();
    let slow =
        after["slowpath"]["packets"].as_u64().unwrap() - before["slowpath"]["packets"].as_u64().unwrap();
    eprintln!("large transfers: {hits} NIC hits, {slow} slow-path packets");
    assert!(hits > 10_000, "the NIC forwarded the bulk: {hits}");
    assert!(slow < hits / 100, "the slow path saw little of it: {slow} vs {hits}");
    assert!(after["slowpath"]["offloaded"].as_u64().unwrap() > 0);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn real_tcp_and_udp_through_the_in_process_model() {
    require_root();
    let a = Appliance::start("sl-e2e1", 2, Mode::InProcess(Wire::AfXdp), "rr", &[1, 1], None, "");
    http_fullnat_ipv6_udp_icmp_and_large_transfers(&a);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn real_tcp_and_udp_through_the_in_process_model_over_af_packet() {
    require_root();
    let a = Appliance::start("sl-e2e6", 2, Mode::InProcess(Wire::AfPacket), "rr", &[1, 1], None, "");
    http_fullnat_ipv6_udp_icmp_and_large_transfers(&a);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn real_tcp_through_sluice_sim_over_vfio_user() {
    require_root();
    let a = Appliance::start("sl-e2e2", 2, Mode::VfioUser(Wire::AfXdp), "rr", &[1, 1], None, "");
    assert!(a.stats()["device"].as_str().unwrap().contains("vfio-user"));
    http_fullnat_ipv6_udp_icmp_and_large_transfers(&a);
}

fn many_concurrent_connections(prefix: &str, wire: Wire, datapath_thread: bool) {
    let extra = format!(
        "[device]\ndatapath_thread = {datapath_thread}\n[timeouts]\ntcp_fin_wait = 1\ntcp_time_wait = 1\n\
         tcp_close_wait = 1\ntcp_last_ack = 1\ntcp_close = 1\n"
    );
    let a = Appliance::start(prefix, 2, Mode::InProcess(wire), "wrr", &[3, 1], None, &extra);
    // Weighted scheduling shows the configured ratio over many connections (each a new one).
    let lines = a.get("http://10.10.1.100/", 200);
    let mut per: HashMap<String, u32> = HashMap::new();
    for l in &lines {
        *per.entry(l.split(':').next().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per.get("200 rs1"), Some(&150), "{per:?}");
    assert_eq!(per.get("200 rs2"), Some(&50), "{per:?}");
    // Hundreds of concurrent connections from a load generator.
    assert!(have("wrk"), "wrk is not installed (scripts/test-all installs it)");
    {
        // Keep-alive connections: wrk counts a server's close after each response as a read
        // error, so churn is exercised by the 200 sequential connections above instead.
        let out = a.client(&["wrk", "-t2", "-c200", "-d3s", "--timeout", "5s", "http://10.10.1.100/"]);
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{text}");
        assert!(out.status.success());
        assert!(!text.contains("Socket errors"), "every connection completed: {text}");
        assert!(!text.contains("Non-2xx"), "{text}");
        let done = wrk_requests(&text);
        assert!(done > 200, "{done} requests");
    }
    // Afterwards the flow table empties as the connections close and age.
    a.wait_for(30, "the flow table empties", |a| {
        let s = a.stats();
        s["table"]["occupancy"] == 0 && s["slowpath"]["connections"] == 0
    });
    assert_eq!(a.flows()["total"], 0);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn many_concurrent_connections_complete_and_the_table_empties() {
    require_root();
    many_concurrent_connections("sl-e2e3", Wire::AfXdp, false);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn many_concurrent_connections_with_the_datapath_on_its_own_thread() {
    require_root();
    many_concurrent_connections("sl-e2e9", Wire::AfXdp, true);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn many_concurrent_connections_over_af_packet() {
    require_root();
    many_concurrent_connections("sl-e2e7", Wire::AfPacket, false);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn a_killed_server_leaves_and_returns_through_the_health_check() {
    require_root();
    let health = "{ kind = \"tcp\", interval_ms = 200, timeout_ms = 200, rise = 2, fall = 2 }";
    let mut a = Appliance::start("sl-e2e4", 2, Mode::InProcess(Wire::AfXdp), "rr", &[1, 1], Some(health), "");
    let up = |a: &Appliance, n: usize| {
        let s = a.ask(&serde_json::json!({"cmd": "services"}));
        s["services"][0]["backends"][n]["health"] == "up"
    };
    a.wait_for(10, "both servers up", |a| up(a, 0) && up(a, 1));
    a.kill_server(1);
    a.wait_for(10, "server 2 marked down", |a| !up(a, 1));
    for l in a.get("http://10.10.1.100/", 6) {
        assert!(l.starts_with("200 rs1"), "new connections go to the others: {l}");
    }
    a.start_server(1);
    a.wait_for(10, "server 2 back up", |a| up(a, 1));
    let lines = a.get("http://10.10.1.100/", 6);
    assert!(lines.iter().any(|l| l.starts_with("200 rs2")), "it returns: {lines:?}");
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn the_cli_shows_live_flows_drains_and_counters() {
    require_root();
    let a = Appliance::start("sl-e2e5", 2, Mode::InProcess(Wire::AfXdp), "rr", &[1, 1], None, "");
    let sock = a.socket.display().to_string();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(SLUICE).args(args).args(["--socket", &sock]).output().unwrap();
        assert!(out.status.success(), "sluice {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A long download keeps one connection open while the CLI looks at it.
    let client = a.net.client.clone();
    let long = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &client,
                "curl",
                "-sS",
                "--limit-rate",
                "2M",
                "-o",
                "/dev/null",
                "http://10.10.1.100/bytes/6000000",
            ])
            .output()
            .unwrap()
    });
    // Wait (up to 5 s) for the download's connection to show; it lasts about 3 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut flows = String::new();
    while std::time::Instant::now() < deadline {
        flows = cli(&["flows", "--vip", "10.10.1.100:80", "--state", "established"]);
        if flows.contains("ESTABLISHED") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        flows.lines().any(|l| l.contains("ESTABLISHED") && l.contains("10.10.1.10:") && l.contains(" nic ")),
        "{flows}"
    );
    // Drain server 1: new connections all go to server 2.
    cli(&["backend", "set", "-t", "10.10.1.100:80", "-r", "10.10.2.11:80", "-w", "0"]);
    for l in a.get("http://10.10.1.100/", 4) {
        assert!(l.starts_with("200 rs2"), "{l}");
    }
    let services = cli(&["services"]);
    assert!(services.contains("10.10.2.11:80                FullNat 0"), "{services}");
    let stats = cli(&["stats"]);
    assert!(stats.contains("hits"), "{stats}");
    let out = long.join().unwrap();
    assert!(
        out.status.success(),
        "the drained server's connection finished: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Prometheus from the appliance's namespace.
    let m = std::process::Command::new("ip")
        .args(["netns", "exec", &a.net.lb, "curl", "-sS", "http://127.0.0.1:9100/metrics"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&m.stdout);
    assert!(
        text.contains(
            "sluice_backend_weight{vip=\"10.10.1.100:80\",protocol=\"tcp\",backend=\"10.10.2.11:80\"} 0"
        ),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("sluice_nic_hits_total ") && !l.ends_with(" 0")), "NIC hits");
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn bad_port_settings_stop_the_daemon_with_one_line_naming_the_port() {
    require_root();
    let net = harness::topo::FullNat::build("sl-e2e8", 1).expect("build the namespaces");
    let dir = std::env::temp_dir().join(format!("sl-e2e8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str], cfg: Option<&str>| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &net.lb, SLUICE]).args(args);
        if let Some(text) = cfg {
            let path = dir.join("sluice.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(&path);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).trim().to_string())
    };
    let base = net.config(&dir.join("sluice.sock"), "127.0.0.1:9100", "rr", &[1], None);
    // A queue the veth does not have.
    let cfg = base.replacen("interface = \"lb0\"", "interface = \"lb0\"\nkind = \"af_xdp\"\nqueue = 5", 1);
    let (code, err) = run(&["run"], Some(&cfg));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("port p0 (interface lb0)") && err.contains("no receive queue 5"), "{err}");
    let (code, err) = run(&["sim", "--socket", "/nonexistent/nic.sock", "--port", "p0=lb0,queue=5"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("p0=lb0,queue=5") && err.contains("no receive queue 5"), "{err}");
    // An interface that is down, whatever the kind.
    harness::topo::ns_run(&net.lb, &["ip", "link", "set", "lb1", "down"]).unwrap();
    for kind in ["af_packet", "af_xdp", "auto"] {
        let cfg = base.replacen("interface = \"lb1\"", &format!("interface = \"lb1\"\nkind = \"{kind}\""), 1);
        let (code, err) = run(&["run"], Some(&cfg));
        assert_eq!(code, Some(2), "{kind}: {err}");
        assert_eq!(err.lines().count(), 1, "{kind}: {err}");
        assert!(err.contains("port p1 (interface lb1)") && err.contains("lb1 is down"), "{kind}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn a_download_survives_kill_9_of_the_daemon_through_the_nic() {
    require_root();
    let mut a = Appliance::start("sl-e2eh", 1, Mode::VfioUser(Wire::AfXdp), "rr", &[1], None, "");
    // Twenty downloads slow enough to be running across the restart (about 8 s each).
    let (n, mb) = (20usize, 24_000_000usize);
    let url = format!("http://10.10.1.100/bytes/{mb}");
    let mut downloads = Vec::new();
    for _ in 0..n {
        let mut curl = a.client_spawn(&["curl", "-sS", "--max-time", "90", "--limit-rate", "3M", &url]);
        // Each body is read as it comes, so the downloads run at their rate across the restart.
        let mut body = curl.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut body, &mut v).unwrap();
            v
        });
        downloads.push((curl, reader));
    }
    a.wait_for(15, "every download is offloaded", |a| {
        a.stats()["table"]["occupancy"].as_u64().unwrap_or(0) >= n as u64
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    // kill -9, then a new daemon on the same model: it adopts the flows the NIC kept forwarding.
    a.restart_daemon_hard();
    assert_eq!(a.logged("adopted as connections"), 1, "the new daemon adopted the NIC's flows");
    // The restarted daemon lists them in `sluice flows`.
    let flows = a.flows();
    let listed = flows["flows"].as_array().map_or(0, |f| {
        f.iter().filter(|f| f["vip"] == "10.10.1.100:80" && f["state"] == "ESTABLISHED").count()
    });
    assert!(listed >= n, "the restarted daemon lists the {n} downloads: {listed} listed, {flows}");
    // The adopted flows count into their server's counter set of the new run: the server's NIC
    // bytes grow while the downloads go on.
    let start = std::time::Instant::now();
    let mut seen = (0, 0);
    while start.elapsed() < std::time::Duration::from_secs(20) {
        seen = server_bytes_out(&a, "10.10.2.11:80");
        if seen.1 >= 4 << 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.1 >= 4 << 20, "the adopted flows' bytes after the restart: {seen:?} (total, NIC)");
    let want = sha(&pattern(mb));
    for (i, (curl, reader)) in downloads.into_iter().enumerate() {
        let out = curl.wait_with_output().unwrap();
        let body = reader.join().unwrap();
        assert!(out.status.success(), "download {i} broke: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(body.len(), mb, "download {i}");
        assert_eq!(sha(&body), want, "download {i} byte-identical across the restart");
    }
    // And new connections work through the new daemon.
    assert_eq!(a.get("http://10.10.1.100/", 3).len(), 3);
}

/// The bytes of `backend`'s offloaded traffic to the client, as `sluice services --stats --json`
/// gives them (host path and NIC together), and the NIC's part.
fn server_bytes_out(a: &Appliance, backend: &str) -> (u64, u64) {
    let sock = a.socket.display().to_string();
    let out = std::process::Command::new(SLUICE)
        .args(["services", "--stats", "--json", "--socket", &sock])
        .output()
        .unwrap();
    assert!(out.status.success(), "services --stats --json: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("services --json");
    let v = if v.get("data").is_some() { v["data"].clone() } else { v };
    let b = v["services"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == backend)
        .cloned()
        .unwrap_or_default();
    (b["bytes_out"].as_u64().unwrap_or(0), b["nic_bytes_out"].as_u64().unwrap_or(0))
}

#[test]
#[ignore = "needs root: network namespaces and veth pairs (scripts/test-all runs it)"]
fn an_offloaded_download_shows_in_its_servers_bytes_while_it_runs() {
    require_root();
    let a = Appliance::start("sl-e2eb", 1, Mode::InProcess(Wire::AfXdp), "rr", &[1], None, "");
    // 40 MB at 8 MB/s: the flow is offloaded for about 5 s, and 24 MB have passed after 3.
    let mb24 = 24u64 << 20;
    let url = "http://10.10.1.100/bytes/40000000";
    let mut curl =
        a.client_spawn(&["curl", "-sS", "--max-time", "60", "--limit-rate", "8M", "-o", "/dev/null", url]);
    let start = std::time::Instant::now();
    let mut seen = (0, 0);
    while start.elapsed() < std::time::Duration::from_secs(20) {
        seen = server_bytes_out(&a, "10.10.2.11:80");
        if seen.0 >= mb24 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.0 >= mb24, "the server's bytes stayed at {seen:?} (total, NIC)");
    assert!(seen.1 >= mb24 - (1 << 20), "the NIC forwarded it: {seen:?}");
    // Still offloaded: the download runs and its flow is in the NIC.
    assert!(curl.try_wait().unwrap().is_none(), "the download is still running");
    let flows = a.flows();
    let in_nic = flows["flows"].as_array().unwrap().iter().any(|f| f["location"] == "nic");
    assert!(in_nic, "the flow is offloaded: {flows}");
    assert!(a.stats()["table"]["occupancy"].as_u64().unwrap_or(0) > 0);
    // /metrics counts it in the same family as the host path, path="nic".
    let m = std::process::Command::new("ip")
        .args(["netns", "exec", &a.net.lb, "curl", "-sS", "http://127.0.0.1:9100/metrics"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&m.stdout);
    let prefix = "sluice_backend_bytes_total{vip=\"10.10.1.100:80\",protocol=\"tcp\",backend=\"10.10.2.11:80\",direction=\"out\",path=\"nic\"} ";
    let nic: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    assert!(nic >= mb24 - (1 << 20), "/metrics: {nic}");
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success(), "the download broke: {}", String::from_utf8_lossy(&out.stderr));
}

/// The daemon's resident memory, kB (`VmRSS` of `sluice run` with this configuration).
fn daemon_rss_kb(a: &Appliance) -> u64 {
    let pattern = format!("run --config {}", a.config.display());
    let out = std::process::Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).split_whitespace().next().map(str::to_string);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.expect("the daemon runs"))).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs root: network namespaces, veth pairs and hping3 (scripts/test-all runs it)"]
fn a_syn_flood_at_a_synproxy_vip_leaves_real_connections_whole() {
    require_root();
    assert!(
        have("hping3") && have("wrk") && have("curl"),
        "hping3, wrk and curl (scripts/test-all installs them)"
    );
    let a = Appliance::start(
        "sl-e2eS",
        2,
        Mode::InProcess(Wire::AfXdp),
        "rr",
        &[1, 1],
        None,
        "[service]\nsynproxy = true\n",
    );
    // Through the proxy, a transfer is byte-identical (the sequence translation in the NIC).
    let mb = 24_000_000usize;
    let out = a.client(&["curl", "-sS", "--max-time", "60", &format!("http://10.10.1.100/bytes/{mb}")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha(&out.stdout), sha(&pattern(mb)), "download through the SYN proxy byte-identical");
    // Linux clients and servers both ask for timestamps and window scaling: the proxy offers
    // them (the servers' scale is Linux's default 7, `synproxy_wscale`'s default), the client
    // takes them (its own segments then carry timestamps), its PAWS check drops nothing (the
    // servers' TSvals are translated into the proxy's clock), and the servers answered as
    // promised.
    let dump =
        a.client_spawn(&["timeout", "10", "tcpdump", "-i", "any", "-nn", "-v", "-c", "6", "tcp port 80"]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let url = format!("http://10.10.1.100/bytes/{mb}");
    let out = a.client(&["curl", "-sS", "--max-time", "60", &url]);
    assert_eq!(sha(&out.stdout), sha(&pattern(mb)), "a second download, byte-identical");
    let dump = String::from_utf8_lossy(&dump.wait_with_output().unwrap().stdout).to_string();
    let syn_ack = dump.lines().find(|l| l.contains("Flags [S.]")).unwrap_or_default();
    assert!(syn_ack.contains("TS val") && syn_ack.contains("wscale 7"), "the proxy's SYN-ACK: {dump}");
    let client_ack = dump.lines().find(|l| l.contains("> 10.10.1.100.80: Flags [.]")).unwrap_or_default();
    assert!(client_ack.contains("TS val"), "the client took timestamps: {dump}");
    let paws = a.client(&["nstat", "-az", "TcpExtPAWSEstab"]);
    let paws = String::from_utf8_lossy(&paws.stdout).to_string();
    let dropped = paws.lines().find_map(|l| l.strip_prefix("TcpExtPAWSEstab")).map(str::trim);
    assert_eq!(dropped.and_then(|v| v.split_whitespace().next()), Some("0"), "PAWS dropped nothing: {paws}");
    let mismatched = a.stats()["slowpath"]["synproxy_mismatch"].as_u64();
    assert_eq!(mismatched, Some(0), "the servers answered with the promised options");
    let before = a.stats();
    let rss_before = daemon_rss_kb(&a);

    // A flood of spoofed SYNs at the VIP while wrk opens and uses real connections.
    let mut flood = a.client_spawn(&["hping3", "--flood", "--rand-source", "-S", "-p", "80", "10.10.1.100"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mid = a.stats();
    let out = a.client(&["wrk", "-t2", "-c20", "-d5s", "--timeout", "5s", "http://10.10.1.100/"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let during = a.stats();
    let rss_during = daemon_rss_kb(&a);
    let _ = flood.kill();
    let _ = flood.wait();
    eprintln!("{text}");
    assert!(out.status.success());
    assert!(!text.contains("Socket errors"), "every wrk connection completed under the flood: {text}");
    let done = wrk_requests(&text);
    assert!(done > 100, "{done} requests under the flood");

    let n = |v: &serde_json::Value, k: &str| v["slowpath"][k].as_u64().unwrap_or(0);
    let cookies = n(&during, "syn_cookies") - n(&before, "syn_cookies");
    let accepted = n(&during, "syn_cookies_accepted") - n(&before, "syn_cookies_accepted");
    eprintln!(
        "flood: {cookies} cookies sent, {accepted} returned, half-open during {} / {}, RSS {rss_before} -> {rss_during} kB, NIC drops {}",
        n(&mid, "half_open"),
        n(&during, "half_open"),
        during["nic_drops"]
    );
    assert!(cookies > 10 * accepted.max(1), "the flood was answered with cookies: {cookies} vs {accepted}");
    assert!(
        n(&during, "half_open") <= 20,
        "no half-open state for unproven SYNs: {}",
        n(&during, "half_open")
    );
    assert!(
        n(&during, "connections") <= 40,
        "only real clients hold connections: {}",
        n(&during, "connections")
    );
    assert!(rss_during < rss_before + 32 * 1024, "memory bounded: {rss_before} -> {rss_during} kB");
}
