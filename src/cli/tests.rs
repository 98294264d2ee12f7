//! Tests of the CLI's text (canned replies in, exact text out), its argument checks, the
//! client's errors and the `top` view drawn on ratatui's `TestBackend`.

use super::client::{Client, ClientError, parse_reply};
use super::format::{self, human, mm_ss};
use super::top::{TopState, render};
use super::{CliCommand, parse_address, parse_state};
use crate::control::proto::{
    BackendInfo, FlowInfo, FlowsReply, Request, ServiceInfo, ServicesReply, StatsReply, TableStats,
};
use clap::Parser as _;
use std::time::Duration;

fn backend(address: &str, weight: u32, active: u32, inactive: u32, health: &str) -> BackendInfo {
    BackendInfo {
        address: address.into(),
        weight,
        health: health.into(),
        active,
        inactive,
        ..Default::default()
    }
}

fn service(vip: &str, protocol: &str, scheduler: &str, backends: Vec<BackendInfo>) -> ServiceInfo {
    ServiceInfo {
        vip: vip.into(),
        protocol: protocol.into(),
        scheduler: scheduler.into(),
        backends,
        ..Default::default()
    }
}

#[test]
fn services_are_laid_out_as_ipvsadm_does() {
    let reply = ServicesReply {
        services: vec![
            service(
                "10.10.1.100:80",
                "tcp",
                "wrr",
                vec![backend("10.10.2.11:80", 3, 12, 4, "up"), backend("10.10.2.12:80", 1, 3, 1, "down")],
            ),
            service("10.10.1.100:53", "udp", "rr", vec![]),
        ],
        ..ServicesReply::default()
    };
    let expected = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health
TCP  10.10.1.100:80 wrr
  -> 10.10.2.11:80                FullNat 3      12         4         up
  -> 10.10.2.12:80                FullNat 1      3          1         down
UDP  10.10.1.100:53 rr
";
    assert_eq!(format::services(&reply), expected);
}

#[test]
fn services_show_lips_and_limit_as_flags_and_widen_for_ipv6() {
    let mut v6 = service(
        "[fd00::0:1]:80",
        "tcp",
        "wlc",
        vec![
            backend("[fd00:0:0:0:0:0:2:11]:8080", 1, 1234567890, 0, "unchecked"),
            backend("[fd00::2:12]:80", 10, 0, 0, "up"),
        ],
    );
    v6.local_addresses = vec!["fd00::2:1".into(), "fd00::2:2".into()];
    v6.conn_limit = 10000;
    v6.proxy_protocol = Some("v2".into());
    let text = format::services(&ServicesReply { services: vec![v6], ..ServicesReply::default() });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[2], "TCP  [fd00::1]:80 wlc lip fd00::2:1,fd00::2:2 limit 10000 proxy-protocol v2");
    // Normalised IPv6, in brackets; every column starts where its header does.
    assert!(lines[3].starts_with("  -> [fd00::2:11]:8080 "), "{text}");
    for col in ["Forward", "Weight", "ActiveConn", "InActConn", "Health"] {
        let at = lines[1].find(col).unwrap();
        for row in &lines[3..] {
            assert_eq!(&row[at - 1..at], " ", "{col} in {row:?}\n{text}");
            assert_ne!(&row[at..=at], " ", "{col} in {row:?}\n{text}");
        }
    }
    assert!(text.lines().all(|l| !l.ends_with(' ')));
}

#[test]
fn services_stats_sum_the_servers() {
    let mut s = service("10.10.1.100:80", "tcp", "wrr", vec![backend("10.10.2.11:80", 1, 0, 0, "up")]);
    s.total_connections = 7;
    s.backends[0].connections = 7;
    s.backends[0].packets_in = 100;
    s.backends[0].packets_out = 90;
    s.backends[0].bytes_in = 5000;
    s.backends[0].bytes_out = 3 << 30;
    s.backends.push(BackendInfo {
        address: "10.10.2.12:80".into(),
        packets_in: 1,
        bytes_in: 10,
        ..Default::default()
    });
    let text = format::services_stats(
        &ServicesReply { services: vec![s.clone()], ..ServicesReply::default() },
        false,
    );
    let expected = "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.10.1.100:80                      7      101       90     4.9K     3.0G
  -> 10.10.2.11:80                       7      100       90     4.9K     3.0G
  -> 10.10.2.12:80                       0        1        0       10        0
(host path and NIC together; the NIC's offloaded flows are read once a second)
";
    assert_eq!(text, expected);
    let exact =
        format::services_stats(&ServicesReply { services: vec![s], ..ServicesReply::default() }, true);
    assert!(exact.contains(" 5010 3221225472\n"), "{exact}");
}

fn flow() -> FlowInfo {
    FlowInfo {
        worker: 0,
        protocol: "tcp".into(),
        state: "ESTABLISHED".into(),
        expire_ms: 88_999,
        client: "10.10.1.10:40000".into(),
        vip: "10.10.1.100:80".into(),
        lip: "10.10.2.1:1024".into(),
        forward: "fullnat".into(),
        backend: "10.10.2.11:80".into(),
        location: "nic".into(),
        record: Some(17),
        packets_in: 12,
        packets_out: 10,
        bytes_in: 1229,
        bytes_out: 15 << 20,
        idle_ms: 1000,
    }
}

#[test]
fn flows_are_laid_out_as_ipvsadm_c_with_worker_and_local() {
    let reply = FlowsReply { total: 1, flows: vec![flow()] };
    let expected = "\
[w] pro expire state       source              virtual            local              destination        where forward packets      bytes
[0] TCP 01:28  ESTABLISHED 10.10.1.10:40000    10.10.1.100:80     10.10.2.1:1024     10.10.2.11:80      nic   FullNat 12/10        1.2K/15.0M
";
    assert_eq!(format::flows(&reply), expected);
}

#[test]
fn flows_and_services_name_the_forwarding_mode_as_ipvsadm_does() {
    let mut dr = flow();
    dr.forward = "dr".into();
    dr.lip = dr.client.clone();
    dr.location = "host".into();
    let text = format::flows(&FlowsReply { total: 1, flows: vec![dr] });
    let row = text.lines().nth(1).unwrap();
    assert!(row.contains(" Route ") && row.contains("10.10.1.100:80     -   "), "{text}");
    for (word, shown) in
        [("fullnat", "FullNat"), ("nat", "Masq"), ("dr", "Route"), ("tun", "Tunnel"), ("", "FullNat")]
    {
        let mut s = service(
            "10.10.1.100:80",
            "tcp",
            "rr",
            vec![BackendInfo { address: "10.10.2.11:80".into(), ..BackendInfo::default() }],
        );
        s.forward = word.into();
        let text = format::services(&ServicesReply { services: vec![s], ..ServicesReply::default() });
        assert!(text.lines().nth(3).unwrap().contains(&format!(" {shown} ")), "{word}: {text}");
    }
}

#[test]
fn flows_footer_when_limited_and_columns_widen_for_ipv6() {
    let mut v6 = flow();
    v6.worker = 12;
    v6.protocol = "udp".into();
    v6.state = "UDP".into();
    v6.client = "[fd00:1::1234:5678]:65000".into();
    v6.vip = "[fd00::1]:53".into();
    v6.lip = "[fd00::2:1]:1025".into();
    v6.backend = "[fd00::2:11]:53".into();
    v6.location = "host".into();
    v6.expire_ms = 300_000;
    let text = format::flows(&FlowsReply { total: 40, flows: vec![flow(), v6] });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3], "2 of 40 connections");
    assert!(
        lines[2].starts_with("[12] UDP 05:00  UDP         [fd00:1::1234:5678]:65000 [fd00::1]:53 "),
        "{text}"
    );
    for col in [
        "pro",
        "expire",
        "state",
        "source",
        "virtual",
        "local",
        "destination",
        "where",
        "forward",
        "packets",
        "bytes",
    ] {
        let at = lines[0].find(&format!(" {col}")).unwrap() + 1;
        for row in &lines[1..3] {
            assert_eq!(&row[at - 1..at], " ", "{col} in {row:?}\n{text}");
            assert_ne!(&row[at..=at], " ", "{col} in {row:?}\n{text}");
        }
    }
    // Not limited: no footer.
    assert!(!format::flows(&FlowsReply { total: 1, flows: vec![flow()] }).contains("connections"));
    assert_eq!(
        format::flows(&FlowsReply { total: 5, flows: vec![] }).lines().nth(1),
        Some("0 of 5 connections")
    );
}

#[test]
fn human_bytes_and_mm_ss() {
    assert_eq!(human(0), "0");
    assert_eq!(human(1023), "1023");
    assert_eq!(human(1024), "1.0K");
    assert_eq!(human(1229), "1.2K");
    assert_eq!(human(1024 * 1024 - 1), "1.0M");
    assert_eq!(human(15 << 20), "15.0M");
    assert_eq!(human(5 << 40), "5.0T");
    assert_eq!(human(u64::MAX), "16.0E");
    assert_eq!(mm_ss(0), "00:00");
    assert_eq!(mm_ss(999), "00:00");
    assert_eq!(mm_ss(88_000), "01:28");
    assert_eq!(mm_ss(604_800_000), "10080:00");
    assert_eq!(format::uptime(93784), "1d 02:03:04");
    assert_eq!(format::uptime(59), "00:00:59");
}

fn stats() -> StatsReply {
    let mut s = StatsReply {
        uptime_s: 3725,
        device: "in-process model".into(),
        workers: 2,
        table: TableStats { occupancy: 1234, capacity: 65536, installs: 5000, ..Default::default() },
        ..Default::default()
    };
    s.nic.hits = 985;
    s.nic.misses = 15;
    s.ports.push(crate::control::proto::PortStats {
        name: "p0".into(),
        link: true,
        counters: rtl_spec::counters::PortCounters {
            rx_packets: 1000,
            rx_bytes: 1_500_000,
            ..Default::default()
        },
    });
    s.ports.push(crate::control::proto::PortStats { name: "p1".into(), ..Default::default() });
    s.punts.insert("miss".into(), 15);
    s.punts.insert("tcp_syn".into(), 0);
    s.nic_drops.insert("bad_checksum".into(), 0);
    s.slowpath_drops.insert("no_service".into(), 3);
    s.slowpath_drops.insert("bad_checksum".into(), 9);
    s.slowpath.connections = 200;
    s.slowpath.offloaded_now = 150;
    s.rates.connections = 12.5;
    s.vips.insert("10.10.1.100:80/tcp".into(), 150);
    s.vips.insert("10.10.1.100:53/udp".into(), 50);
    s.vips.insert("10.10.1.101:443/tcp".into(), 700);
    s
}

#[test]
fn stats_in_sections_with_only_nonzero_reasons() {
    let text = format::stats(&stats());
    for want in [
        "device   in-process model\n",
        "uptime   01:02:05 (3725 s)\n",
        "workers  2\n",
        "\nports\n  name  link  rx packets  rx bytes  tx packets  tx bytes  drops\n",
        "  p0    up          1000   1500000           0         0      0\n",
        "  p1    down           0         0           0         0      0\n",
        "\nnic\n  rx packets                        0\n",
        "  hits                            985  (98.5% of lookups)\n",
        "\npunts by reason\n  miss                             15\n\n",
        "\nnic drops by reason\n  none\n",
        "\nslow-path drops by reason\n  bad_checksum                      9\n  no_service                        3\n",
        "\nflow table\n  occupancy              1234 / 65536  (1.9%)\n",
        "  offloaded now                   150  (75.0%)\n",
        "\nrates (per second)\n  connections                    12.5\n",
        "\nconnections by vip\n  10.10.1.101:443/tcp             700\n  10.10.1.100:80/tcp              150\n",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("tcp_syn"));
    assert!(text.lines().all(|l| !l.ends_with(' ')));
}

#[test]
fn addresses_and_states_are_checked_here() {
    assert_eq!(parse_address("10.10.1.100").unwrap().to_string(), "10.10.1.100");
    assert_eq!(parse_address("10.10.1.100:80").unwrap().to_string(), "10.10.1.100:80");
    assert_eq!(parse_address("fd00::1").unwrap().to_string(), "fd00::1");
    assert_eq!(parse_address("[fd00::1]").unwrap().to_string(), "fd00::1");
    assert_eq!(parse_address("[fd00:0::1]:80").unwrap().to_string(), "[fd00::1]:80");
    for bad in ["", "10.10.1", "10.10.1.100:", "10.10.1.100:99999", "fd00::1:80x", "host:80"] {
        assert!(parse_address(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_state("time_wait").unwrap(), "TIME_WAIT");
    assert_eq!(parse_state("Established").unwrap(), "ESTABLISHED");
    assert!(parse_state("SYN_SENT").unwrap_err().contains("ESTABLISHED SYN_RECV"));
}

fn parse(args: &[&str]) -> Result<CliCommand, clap::Error> {
    let cli = crate::app::Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))?;
    match cli.command {
        crate::app::Command::Control(c) => Ok(c),
        other => panic!("not a control command: {other:?}"),
    }
}

#[test]
fn ipvsadm_shortcuts_mean_the_long_options() {
    let Ok(CliCommand::Service(super::ServiceCommand::Add(a))) = parse(&[
        "service",
        "add",
        "-u",
        "10.10.1.100:53",
        "-s",
        "rr",
        "-z",
        "10.10.2.1,10.10.2.2",
        "-z",
        "fd00::2:1",
    ]) else {
        panic!()
    };
    assert_eq!(a.service.resolve(), ("10.10.1.100:53".parse().unwrap(), super::Protocol::Udp));
    assert_eq!(a.scheduler, "rr");
    assert_eq!(a.local_addresses.len(), 3);
    let Ok(CliCommand::Backend(super::BackendCommand::Set(b))) = parse(&[
        "backend",
        "set",
        "--vip",
        "[fd00::1]:80",
        "--protocol",
        "UDP",
        "-r",
        "fd00::2:11",
        "-w",
        "0",
    ]) else {
        panic!()
    };
    // A server without a port takes the service's.
    assert_eq!(b.backend.resolve(), ("[fd00::1]:80".into(), "udp".into(), "[fd00::2:11]:80".into()));
    assert_eq!(b.weight, 0);
}

#[test]
fn bad_usage_is_refused_by_clap_with_exit_2() {
    for args in [
        // Without -z the daemon refuses a FullNAT service (exit 2, its configuration check):
        // NAT and DR services take no local address, so clap cannot require one.
        &["service", "add", "-t", "10.10.1.100:80", "-u", "10.10.1.100:53", "-z", "1.1.1.1"][..], // two services
        &["service", "add", "-t", "10.10.1.100:80", "--forward", "masq"],
        &["service", "add", "--vip", "10.10.1.100:80", "-t", "10.10.1.100:80", "-z", "1.1.1.1"],
        &["service", "add", "-t", "10.10.1.100:80", "--protocol", "udp", "-z", "1.1.1.1"],
        &["service", "add", "-t", "10.10.1.100:80", "-s", "fifo", "-z", "1.1.1.1"],
        &["service", "del"],
        &["backend", "add", "-t", "10.10.1.100:80", "-r", "10.10.2.11:80", "-w", "65536"],
        &["backend", "set", "-t", "10.10.1.100:80", "-r", "10.10.2.11:80"], // no weight
        &["backend", "del", "-t", "10.10.1.100:80", "-r", "10.10.2.11:80", "-w", "1"],
        &["flows", "--state", "OPEN"],
        &["flows", "--vip", "10.10.1.300"],
        &["flows", "--limit", "-1"],
        &["services", "--exact"],
        &["stats", "--socket", "/a", "--config", "/b"],
        &["top", "--interval-ms", "0"],
    ] {
        let e = parse(args).expect_err(&format!("{args:?} parsed"));
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
}

#[test]
fn a_reply_keeps_its_data_text_exactly() {
    let line = br#"{"ok":true,"data":{"total":0,"flows":[],"z":1.50}}"#;
    let reply = parse_reply(line).unwrap();
    assert_eq!(reply.data_json, r#"{"total":0,"flows":[],"z":1.50}"#);
    assert!(reply.response.ok);
    let refused = parse_reply(b"{\"ok\":false,\"error\":\"no such service\"}\n").unwrap();
    assert_eq!(refused.response.error.as_deref(), Some("no such service"));
    assert_eq!(refused.data_json, "null");
    assert!(matches!(parse_reply(b"hello\n"), Err(ClientError::BadReply { .. })));
}

#[test]
fn client_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.sock");
    let e = Client::connect(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no daemon at {} (no such socket): start one with sluice run --config FILE, or name its socket with --socket",
            path.display()
        )
    );
    // A stale socket file: nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(Client::connect(&path).unwrap_err().to_string().contains("(connection refused)"));

    // A daemon that takes the request and never answers, then one that hangs up.
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (silent, _) = listener.accept().unwrap();
        let (hangs_up, _) = listener.accept().unwrap();
        drop(hangs_up);
        std::thread::sleep(Duration::from_millis(500));
        drop(silent);
    });
    let mut client = Client::connect_with_timeout(&path, Duration::from_millis(200)).unwrap();
    let e = client.call(&Request::Stats).unwrap_err();
    assert_eq!(e.to_string(), "the daemon did not answer within 0.2 s");
    let mut client = Client::connect(&path).unwrap();
    let e = client.call(&Request::Stats).unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. }), "{e}");
    assert!(e.to_string().ends_with("closed the connection"));
    server.join().unwrap();
    assert_eq!(
        ClientError::Timeout { after: super::client::DEFAULT_TIMEOUT }.to_string(),
        "the daemon did not answer within 5 s"
    );
}

/// The text of a `TestBackend`'s buffer, one line per row.
fn screen(terminal: &ratatui::Terminal<ratatui::backend::TestBackend>) -> String {
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn top_draws_the_header_gauge_rates_vips_and_drops() {
    let mut state = TopState::new(std::path::Path::new("/run/sluice/sluice.sock"), Duration::from_secs(1));
    let mut first = stats();
    first.slowpath.created = 100;
    first.nic.tx_packets = 1_000;
    state.update(first.clone(), Duration::from_secs(10));
    assert!(state.measured.is_none());
    let mut second = first.clone();
    second.uptime_s += 2;
    second.slowpath.created = 140;
    second.nic.tx_packets = 51_000;
    second.table.installs += 30;
    state.update(second, Duration::from_secs(12));
    let m = state.measured.clone().unwrap();
    assert!((m.connections - 20.0).abs() < 1e-9 && (m.nic_packets - 25_000.0).abs() < 1e-9);
    assert!((m.installs - 15.0).abs() < 1e-9);
    assert_eq!(state.history[1].back(), Some(&25_000));

    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(110, 30)).unwrap();
    terminal.draw(|f| render(f, &state)).unwrap();
    let text = screen(&terminal);
    for want in [
        "sluice top",
        "device in-process model",
        "uptime 01:02:07",
        "workers 2",
        "connections 200  offloaded 150 (75.0%)",
        "1234 / 65536 flows (1.9%)",
        "connections/s",
        "20.0 (12.5)",
        "nic packets/s",
        "25000.0",
        "installs/s",
        "top VIPs by connections",
        "10.10.1.101:443/tcp",
        "drops: nic 0 host 12",
        "host bad_checksum",
        "q quit",
    ] {
        assert!(text.contains(want), "{want:?} not on the screen:\n{text}");
    }
    // The busiest VIP first.
    assert!(text.find("10.10.1.101:443/tcp").unwrap() < text.find("10.10.1.100:80/tcp").unwrap());

    // A restarted daemon (counters back to small) skips a sample; a gone one shows why.
    let mut restarted = first;
    restarted.uptime_s = 1;
    state.update(restarted, Duration::from_secs(13));
    assert!(state.measured.is_none());
    state.gone = Some("the daemon at /run/sluice/sluice.sock closed the connection".into());
    terminal.draw(|f| render(f, &state)).unwrap();
    let text = screen(&terminal);
    assert!(text.contains("daemon gone: the daemon at /run/sluice/sluice.sock closed"), "{text}");
    assert!(text.contains(" - (12.5)"), "{text}");
}

#[test]
fn top_draws_on_a_tiny_terminal_without_panicking() {
    let mut state = TopState::new(std::path::Path::new("/s"), Duration::from_millis(100));
    for (w, h) in [(1, 1), (20, 5), (40, 12)] {
        let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| render(f, &state)).unwrap();
        state.update(stats(), Duration::from_secs(1));
        terminal.draw(|f| render(f, &state)).unwrap();
    }
}

#[test]
fn services_rate_has_ipvsadms_columns() {
    let mut s = service("10.10.1.100:80", "tcp", "wrr", vec![backend("10.10.2.11:80", 1, 0, 0, "up")]);
    s.backends[0].rate = crate::control::proto::TrafficRate {
        cps: 3,
        in_pps: 120,
        out_pps: 240,
        in_bps: 9000,
        out_bps: 25_000_000,
    };
    s.rate = s.backends[0].rate;
    let text = format::services_rate(&ServicesReply { services: vec![s], ..ServicesReply::default() });
    let expected = "\
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  10.10.1.100:80                      3      120      240     9000 25000000
  -> 10.10.2.11:80                       3      120      240     9000 25000000
";
    assert_eq!(text, expected);
}
